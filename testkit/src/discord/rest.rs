//! REST v10 under `/api/v10/`: the routes the adapter uses (see the spec), the
//! `Authorization: Bot TOKEN` check, Discord's error bodies, rate-limit headers on
//! every answer, and the faults tests inject (a status for every call, 429 on one
//! channel's routes, a channel hidden from the bots).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxumState};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::gateway::dispatch_message;
use super::shapes::{self, error, form_error};
use super::state::{PUBLIC_THREAD, State};
use super::webhooks::{create_webhook, webhook_route};
use super::{Inner, RestRequest};

/// Discord refuses message content longer than this many characters.
pub const MAX_CONTENT_CHARS: usize = 2000;
/// `GET /channels/{id}/messages` returns at most this many.
pub const MAX_PAGE: usize = 100;

/// An answer: status and JSON body (`None`: no body, 204).
pub(super) type Answer = (StatusCode, Option<Value>);

pub(super) fn ok(body: Value) -> Answer {
    (StatusCode::OK, Some(body))
}

pub(super) fn fail(status: StatusCode, code: u32, message: &str) -> Answer {
    (status, Some(error(code, message)))
}

pub(super) fn unknown_channel() -> Answer {
    fail(StatusCode::NOT_FOUND, 10003, "Unknown Channel")
}

pub(super) fn unknown_message() -> Answer {
    fail(StatusCode::NOT_FOUND, 10008, "Unknown Message")
}

pub(super) fn unknown_webhook() -> Answer {
    fail(StatusCode::NOT_FOUND, 10015, "Unknown Webhook")
}

fn missing_access() -> Answer {
    fail(StatusCode::FORBIDDEN, 50001, "Missing Access")
}

pub(super) fn not_found() -> Answer {
    fail(StatusCode::NOT_FOUND, 0, "404: Not Found")
}

pub(super) async fn handle(
    AxumState(inner): AxumState<Arc<Inner>>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let body_json: Option<Value> = serde_json::from_slice(&body).ok();
    let query = parse_query(query.as_deref().unwrap_or(""));
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bot "))
        .map(str::to_owned);
    let (answer, limited, bucket) = {
        let mut st = inner.lock();
        let segments: Vec<&str> = path
            .strip_prefix("/api/v10/")
            .unwrap_or("")
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let bucket = format!("{method} {}", bucket_route(&segments));
        let channel = route_channel(&st, &segments, &query);
        let mut limited = None;
        let answer = if !path.starts_with("/api/v10/") {
            not_found()
        } else if let Some(status) = st.fail_status {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = format!(
                "{}: {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            fail(status, 0, &text)
        } else if channel
            .as_ref()
            .is_some_and(|c| st.rate_limits.get(c).is_some_and(|n| *n > 0))
        {
            let channel = channel.expect("checked");
            if let Some(n) = st.rate_limits.get_mut(&channel) {
                *n -= 1;
            }
            st.rate_limited += 1;
            limited = Some(st.retry_after);
            let body = json!({
                "message": "You are being rate limited.",
                "retry_after": st.retry_after,
                "global": false,
            });
            (StatusCode::TOO_MANY_REQUESTS, Some(body))
        } else {
            let needs_token = !matches!(segments.as_slice(), ["webhooks", _, _, ..]);
            let bot = token
                .as_deref()
                .and_then(|t| st.bot_by_token(t))
                .map(|b| (b.user_id.clone(), b.application_id.clone()));
            match bot {
                None if needs_token => fail(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized"),
                bot => {
                    let call = Call {
                        method: &method,
                        segments: &segments,
                        query: &query,
                        body: body_json.as_ref(),
                        bot,
                    };
                    route(&mut st, &call)
                }
            }
        };
        st.requests.push(RestRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body: body_json.clone(),
            status: answer.0.as_u16(),
        });
        (answer, limited, bucket)
    };
    inner.bump();
    respond(answer, limited, &bucket)
}

fn respond((status, body): Answer, limited: Option<f64>, bucket: &str) -> Response {
    let mut response = match body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    let headers = response.headers_mut();
    let bucket_hash = format!("{:016x}", fnv(bucket));
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    put("x-ratelimit-bucket", bucket_hash);
    put("x-ratelimit-limit", "5".to_owned());
    match limited {
        Some(after) => {
            put("x-ratelimit-remaining", "0".to_owned());
            put("x-ratelimit-reset-after", format!("{after:.3}"));
            put("x-ratelimit-scope", "user".to_owned());
            put(RETRY_AFTER.as_str(), format!("{}", after.ceil() as u64));
        }
        None => {
            put("x-ratelimit-remaining", "4".to_owned());
            put("x-ratelimit-reset-after", "1.000".to_owned());
        }
    }
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() + 1.0)
        .unwrap_or(0.0);
    put("x-ratelimit-reset", format!("{reset:.3}"));
    if body_is_json(status) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

fn body_is_json(status: StatusCode) -> bool {
    status != StatusCode::NO_CONTENT
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The route with ids replaced, for the bucket header (major parameters kept, as
/// Discord's buckets are per channel, guild and webhook).
fn bucket_route(segments: &[&str]) -> String {
    let mut out = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let major = i == 1 && matches!(segments[0], "channels" | "guilds" | "webhooks");
        if s.bytes().all(|b| b.is_ascii_digit()) && !major {
            out.push("{id}");
        } else {
            out.push(s);
        }
    }
    out.join("/")
}

/// The channel a route concerns, for rate limits: the channel of `/channels/{id}`
/// routes, and the target channel of a webhook's token routes.
fn route_channel(st: &State, segments: &[&str], query: &[(String, String)]) -> Option<String> {
    match segments {
        ["channels", id, ..] => Some((*id).to_owned()),
        ["webhooks", id, _, ..] => query_value(query, "thread_id")
            .map(str::to_owned)
            .or_else(|| st.webhook(id).map(|w| w.channel_id.clone())),
        _ => None,
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

pub(super) fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(super) struct Call<'a> {
    pub method: &'a Method,
    pub segments: &'a [&'a str],
    pub query: &'a [(String, String)],
    pub body: Option<&'a Value>,
    /// The authenticated bot: user id and application id.
    pub bot: Option<(String, String)>,
}

fn route(st: &mut State, call: &Call) -> Answer {
    let get = call.method == Method::GET;
    let post = call.method == Method::POST;
    let patch = call.method == Method::PATCH;
    let delete = call.method == Method::DELETE;
    let (bot_user, app_id) = call.bot.clone().unwrap_or_default();
    match call.segments {
        ["users", "@me"] if get => match st.user(&bot_user) {
            Some(u) => ok(shapes::current_user(u)),
            None => not_found(),
        },
        ["users", "@me", "guilds"] if get => {
            let guilds = st.guilds.iter().map(|g| shapes::current_user_guild(st, g));
            ok(Value::Array(guilds.collect()))
        }
        ["applications", "@me"] if get => ok(shapes::application(st, &app_id, &bot_user)),
        ["oauth2", "applications", "@me"] if get => ok(shapes::application(st, &app_id, &bot_user)),
        ["gateway"] if get => ok(json!({ "url": st.gateway_url })),
        ["gateway", "bot"] if get => ok(json!({
            "url": st.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1,
            },
        })),
        ["guilds", guild, rest @ ..] => guild_route(st, call, guild, rest),
        ["channels", channel, rest @ ..] => {
            let Some(c) = st.channel(channel).filter(|c| c.id == *channel) else {
                return unknown_channel();
            };
            if hidden(st, &c.id) {
                return missing_access();
            }
            let channel = c.id.clone();
            match rest {
                [] if get => ok(shapes::channel(st, st.channel(&channel).expect("found"))),
                ["messages"] if get => list_messages(st, &channel, call.query),
                ["messages"] if post => create_message(st, &channel, &bot_user, call.body),
                ["messages", id] if get => match st.find(&channel, id) {
                    Some(i) => ok(shapes::message(st, &st.messages[i], false)),
                    None => unknown_message(),
                },
                ["messages", id] if patch => edit_message(st, &channel, id, &bot_user, call.body),
                ["messages", id] if delete => delete_message(st, &channel, id, &bot_user),
                ["webhooks"] if get || post => {
                    if !st.manage_webhooks {
                        return fail(StatusCode::FORBIDDEN, 50013, "Missing Permissions");
                    }
                    if get {
                        let hooks = st.webhooks.iter().filter(|w| w.channel_id == channel);
                        return ok(hooks.map(|w| shapes::webhook(st, w, true)).collect());
                    }
                    create_webhook(st, &channel, &bot_user, &app_id, call.body)
                }
                _ => not_found(),
            }
        }
        ["webhooks", id, rest @ ..] => webhook_route(st, call, id, rest),
        _ => not_found(),
    }
}

/// Whether the bots were removed from the channel (or from a thread's parent).
fn hidden(st: &State, channel_id: &str) -> bool {
    st.channel(channel_id).is_some_and(|c| {
        c.hidden_from_bots
            || c.parent_id
                .as_deref()
                .and_then(|p| st.channel(p))
                .is_some_and(|p| p.hidden_from_bots)
    })
}

fn guild_route(st: &mut State, call: &Call, guild: &str, rest: &[&str]) -> Answer {
    if call.method != Method::GET {
        return not_found();
    }
    let Some(g) = st.guilds.iter().find(|g| g.id == guild) else {
        return fail(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
    };
    match rest {
        [] => {
            let mut value = shapes::guild(st, g);
            if query_value(call.query, "with_counts") == Some("true") {
                value["approximate_member_count"] = json!(g.members.len());
                value["approximate_presence_count"] = json!(0);
            }
            ok(value)
        }
        ["channels"] => {
            let channels = st
                .channels
                .iter()
                .filter(|c| c.guild_id == g.id && c.kind != PUBLIC_THREAD);
            ok(channels.map(|c| shapes::channel(st, c)).collect())
        }
        ["roles"] => ok(g.roles.iter().map(|r| shapes::role(st, r)).collect()),
        ["threads", "active"] => {
            let threads = st
                .channels
                .iter()
                .filter(|c| c.guild_id == g.id && c.kind == PUBLIC_THREAD);
            let threads: Vec<Value> = threads.map(|c| shapes::channel(st, c)).collect();
            ok(json!({ "threads": threads, "members": [] }))
        }
        ["members"] => {
            let limit = query_value(call.query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(1usize);
            let after = query_value(call.query, "after").and_then(|a| a.parse::<u64>().ok());
            let members = g
                .members
                .iter()
                .filter(|m| after.is_none_or(|a| m.user_id.parse::<u64>().unwrap_or(0) > a))
                .take(limit.clamp(1, 1000));
            ok(members.map(|m| shapes::member(st, m)).collect())
        }
        ["members", user] => match g.members.iter().find(|m| m.user_id == *user) {
            Some(m) => ok(shapes::member(st, m)),
            None if st.user(user).is_some_and(|u| u.id == *user) => {
                fail(StatusCode::NOT_FOUND, 10007, "Unknown Member")
            }
            None => fail(StatusCode::NOT_FOUND, 10013, "Unknown User"),
        },
        _ => not_found(),
    }
}

fn list_messages(st: &State, channel: &str, query: &[(String, String)]) -> Answer {
    let number = |key| query_value(query, key).and_then(|v| v.parse::<u64>().ok());
    let limit = number("limit").unwrap_or(50).clamp(1, MAX_PAGE as u64) as usize;
    let (after, before) = (number("after"), number("before"));
    let live = st
        .messages
        .iter()
        .filter(|m| m.msg.channel_id == channel && !m.msg.deleted);
    let id = |m: &&super::state::Stored| m.msg.id.parse::<u64>().unwrap_or(0);
    let page: Vec<Value> = match (after, before) {
        // `after`: the oldest `limit` messages after it, answered newest first.
        (Some(after), _) => {
            let mut page: Vec<_> = live.filter(|m| id(m) > after).take(limit).collect();
            page.reverse();
            page.into_iter()
                .map(|m| shapes::message(st, m, false))
                .collect()
        }
        (None, before) => {
            let older: Vec<_> = live.filter(|m| before.is_none_or(|b| id(m) < b)).collect();
            older
                .into_iter()
                .rev()
                .take(limit)
                .map(|m| shapes::message(st, m, false))
                .collect()
        }
    };
    ok(Value::Array(page))
}

/// Checks a create or edit body: content length, and emptiness for creations.
pub(super) fn check_body(body: &Value, creating: bool) -> Result<(), Answer> {
    let content = body["content"].as_str().unwrap_or("");
    if content.chars().count() > MAX_CONTENT_CHARS {
        let text = format!("Must be {MAX_CONTENT_CHARS} or fewer in length.");
        return Err((
            StatusCode::BAD_REQUEST,
            Some(form_error("content", "BASE_TYPE_MAX_LENGTH", &text)),
        ));
    }
    let has = |key: &str| body[key].as_array().is_some_and(|a| !a.is_empty());
    if creating && content.is_empty() && !has("embeds") && !has("sticker_ids") {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            50006,
            "Cannot send an empty message",
        ));
    }
    Ok(())
}

/// The replied-to message of a creation body, checked to exist in the channel.
fn reply_target(st: &State, channel: &str, body: &Value) -> Result<Option<String>, Answer> {
    let Some(reference) = body.get("message_reference").filter(|r| !r.is_null()) else {
        return Ok(None);
    };
    let id = match &reference["message_id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Ok(None),
    };
    if st.find(channel, &id).is_some() {
        return Ok(Some(id));
    }
    if reference["fail_if_not_exists"] == json!(false) {
        return Ok(None);
    }
    Err((
        StatusCode::BAD_REQUEST,
        Some(form_error(
            "message_reference",
            "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
            "Unknown message",
        )),
    ))
}

fn create_message(st: &mut State, channel: &str, bot_user: &str, body: Option<&Value>) -> Answer {
    let Some(body) = body else {
        return fail(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        );
    };
    if let Err(answer) = check_body(body, true) {
        return answer;
    }
    let reply_to = match reply_target(st, channel, body) {
        Ok(reply_to) => reply_to,
        Err(answer) => return answer,
    };
    let name = st
        .user(bot_user)
        .map(|u| u.username.clone())
        .unwrap_or_default();
    let mut stored = st.new_message(channel, body["content"].as_str().unwrap_or(""));
    stored.author_user = Some(bot_user.to_owned());
    stored.msg.author_id = bot_user.to_owned();
    stored.msg.author_name = name;
    stored.msg.reply_to = reply_to;
    stored.msg.allowed_mentions = body.get("allowed_mentions").cloned();
    stored.msg.requests.push(body.clone());
    let index = st.insert(stored);
    dispatch_message(st, "MESSAGE_CREATE", index);
    ok(shapes::message(st, &st.messages[index], false))
}

fn edit_message(
    st: &mut State,
    channel: &str,
    id: &str,
    bot_user: &str,
    body: Option<&Value>,
) -> Answer {
    let Some(index) = st.find(channel, id) else {
        return unknown_message();
    };
    let msg = &st.messages[index];
    if msg.msg.webhook_id.is_some() || msg.author_user.as_deref() != Some(bot_user) {
        return fail(
            StatusCode::FORBIDDEN,
            50005,
            "Cannot edit a message authored by another user",
        );
    }
    let body = body.cloned().unwrap_or(json!({}));
    if let Err(answer) = check_body(&body, false) {
        return answer;
    }
    let content = body["content"].as_str().map(str::to_owned);
    st.apply_edit(index, content.as_deref(), Some(body));
    dispatch_message(st, "MESSAGE_UPDATE", index);
    ok(shapes::message(st, &st.messages[index], false))
}

/// The bot deletes its own messages; others' need `MANAGE_MESSAGES`, which the
/// fake's bots have.
fn delete_message(st: &mut State, channel: &str, id: &str, bot_user: &str) -> Answer {
    let _ = bot_user;
    let Some(index) = st.find(channel, id) else {
        return unknown_message();
    };
    st.messages[index].msg.deleted = true;
    dispatch_message(st, "MESSAGE_DELETE", index);
    (StatusCode::NO_CONTENT, None)
}
