//! The Web API at `POST /api/{method}`: argument parsing (JSON, form, query),
//! tokens, the methods an adapter uses, and the faults tests inject (rate
//! limits answered 429 with `Retry-After`, forced `{"ok":false}` errors).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};

use super::shapes::{b64_decode, b64_encode};
use super::state::{ALNUM, State, Stored, random_string, ts_micros, uuid};
use super::{FakeSlack, Inner, Message};

/// `chat.postMessage` and `chat.update` refuse longer texts with `msg_too_long`.
pub const MAX_TEXT_CHARS: usize = 40_000;

/// The methods the fake serves; any other answers 404 `unknown_method`.
pub const METHODS: &[&str] = &[
    "api.test",
    "apps.connections.open",
    "auth.test",
    "chat.delete",
    "chat.postMessage",
    "chat.update",
    "conversations.history",
    "conversations.info",
    "conversations.join",
    "conversations.list",
    "conversations.replies",
    "usergroups.list",
    "users.info",
];

/// The next `remaining` calls of `method` (for `channel` only, when given) get 429.
pub(super) struct RateRule {
    pub method: String,
    pub channel: Option<String>,
    pub remaining: usize,
    pub retry_after: u64,
}

/// The next `remaining` calls of `method` fail with `error`.
pub(super) struct FailRule {
    pub method: String,
    pub error: String,
    pub remaining: usize,
}

/// What a fault rule does to a call.
pub(super) enum Refusal {
    RateLimited(u64),
    Failed(String),
}

type Args = Map<String, Value>;

/// A method's success: the answer's fields, warnings, and the events it causes.
struct Done {
    body: Value,
    warnings: Vec<&'static str>,
    events: Vec<Value>,
}

impl Done {
    fn new(body: Value) -> Self {
        Done {
            body,
            warnings: Vec::new(),
            events: Vec::new(),
        }
    }

    fn event(mut self, event: Value) -> Self {
        self.events.push(event);
        self
    }
}

type Outcome = Result<Done, &'static str>;

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new().route("/api/{method}", any(call))
}

async fn call(
    AxumState(inner): AxumState<Arc<Inner>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let (mut args, json_body, charset) = match parse_args(&headers, query.as_deref(), &body) {
        Ok(parsed) => parsed,
        Err(error) => return answer(StatusCode::OK, json!({ "ok": false, "error": error })),
    };
    // A JSON body's `token` is not read: Slack takes it from the header only.
    let body_token = args
        .remove("token")
        .and_then(|t| t.as_str().map(str::to_owned));
    let token = bearer(&headers).or(if json_body { None } else { body_token });
    {
        let mut st = inner.lock();
        *st.calls.entry(method.clone()).or_default() += 1;
        st.api_log
            .push((method.clone(), Value::Object(args.clone())));
    }
    inner.bump();
    if !METHODS.contains(&method.as_str()) {
        let body = json!({ "ok": false, "error": "unknown_method", "req_method": method });
        return answer(StatusCode::NOT_FOUND, body);
    }
    // `api.test` is the one method that needs no token.
    let checked = if method == "api.test" {
        Ok(())
    } else {
        check_token(&inner, &method, token.as_deref())
    };
    if let Err(error) = checked {
        return answer(StatusCode::OK, json!({ "ok": false, "error": error }));
    }
    let channel = arg_str(&args, "channel");
    match inner.gate(&method, channel.as_deref()) {
        Some(Refusal::RateLimited(after)) => {
            let mut response = answer(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "ok": false, "error": "ratelimited" }),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(after));
            return response;
        }
        Some(Refusal::Failed(error)) => {
            return answer(StatusCode::OK, json!({ "ok": false, "error": error }));
        }
        None => {}
    }
    let outcome = {
        let mut st = inner.lock();
        run(&mut st, &method, &args)
    };
    inner.bump();
    match outcome {
        Ok(mut done) => {
            if json_body && !charset {
                done.warnings.insert(0, "missing_charset");
            }
            let mut body = json!({ "ok": true });
            if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), done.body) {
                body.extend(fields);
            }
            if !done.warnings.is_empty() {
                body["warning"] = json!(done.warnings.join(","));
                body["response_metadata"]["warnings"] = json!(done.warnings);
            }
            for event in done.events {
                inner.emit(event);
            }
            let mut response = answer(StatusCode::OK, body);
            // Slack names the token's scopes on every answer (`X-OAuth-Scopes`; the
            // official SDKs read it): a bot token's, with `chat:write.customize` only
            // where the options grant it.
            let bot_token = token.as_deref() == Some(inner.lock().options.bot_token.as_str());
            if bot_token {
                let scopes = bot_scopes(inner.lock().options.bot_can_customize);
                if let Ok(value) = HeaderValue::from_str(&scopes) {
                    response.headers_mut().insert("x-oauth-scopes", value);
                }
            }
            response
        }
        Err(error) => answer(StatusCode::OK, json!({ "ok": false, "error": error })),
    }
}

/// The scopes of the fake's bot token, as `X-OAuth-Scopes` lists them.
fn bot_scopes(can_customize: bool) -> String {
    let mut scopes = vec![
        "channels:history",
        "channels:join",
        "channels:read",
        "chat:write",
        "groups:history",
        "groups:read",
        "usergroups:read",
        "users:read",
    ];
    if can_customize {
        scopes.push("chat:write.customize");
    }
    scopes.join(",")
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (
        status,
        [(CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response();
    if let Ok(id) = HeaderValue::from_str(&random_string(12, ALNUM).to_lowercase()) {
        response.headers_mut().insert("x-slack-req-id", id);
    }
    response
}

/// The arguments, whether they came as JSON, and whether a charset was given.
fn parse_args(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<(Args, bool, bool), &'static str> {
    let mut args = Args::new();
    for (key, value) in form_decode(query.unwrap_or("")) {
        args.insert(key, Value::String(value));
    }
    if body.is_empty() {
        return Ok((args, false, true));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let charset = content_type.contains("charset=");
    match content_type.split(';').next().unwrap_or("").trim() {
        "application/json" => match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => {
                args.extend(fields);
                Ok((args, true, charset))
            }
            _ => Err("invalid_json"),
        },
        "application/x-www-form-urlencoded" | "text/plain" => {
            let text = std::str::from_utf8(body).map_err(|_| "invalid_form_data")?;
            for (key, value) in form_decode(text) {
                args.insert(key, Value::String(value));
            }
            Ok((args, false, charset))
        }
        "" => Err("missing_post_type"),
        // Multipart bodies (file uploads) are not supported by the fake.
        "multipart/form-data" => Err("invalid_form_data"),
        _ => Err("invalid_post_type"),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let token = value
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("bearer "))?;
    Some(value[token.len()..].trim().to_owned())
}

/// Only `apps.connections.open` takes the app token; every other method the bot's.
fn check_token(inner: &Inner, method: &str, token: Option<&str>) -> Result<(), &'static str> {
    let st = inner.lock();
    let wants_app = method == "apps.connections.open";
    match token {
        None | Some("") => Err("not_authed"),
        Some(t) if t == st.options.app_token => {
            if wants_app {
                Ok(())
            } else {
                Err("not_allowed_token_type")
            }
        }
        Some(t) if t == st.options.bot_token => {
            if wants_app {
                Err("not_allowed_token_type")
            } else {
                Ok(())
            }
        }
        Some(_) => Err("invalid_auth"),
    }
}

impl Inner {
    /// Applies the first matching rate limit or forced failure, using it up.
    pub(super) fn gate(&self, method: &str, channel: Option<&str>) -> Option<Refusal> {
        let mut st = self.lock();
        let channel_id = channel.and_then(|c| st.channel(c)).map(|c| c.id.clone());
        let rate = st.rate_rules.iter_mut().find(|r| {
            r.method == method
                && r.remaining > 0
                && (r.channel.is_none() || r.channel == channel_id)
        });
        if let Some(rule) = rate {
            rule.remaining -= 1;
            return Some(Refusal::RateLimited(rule.retry_after));
        }
        let fail = st
            .fail_rules
            .iter_mut()
            .find(|r| r.method == method && r.remaining > 0);
        if let Some(rule) = fail {
            rule.remaining -= 1;
            return Some(Refusal::Failed(rule.error.clone()));
        }
        None
    }
}

fn run(st: &mut State, method: &str, args: &Args) -> Outcome {
    match method {
        "api.test" => Ok(Done::new(json!({ "args": args }))),
        "auth.test" => Ok(Done::new(json!({
            "url": format!("https://{}.slack.com/", st.team_domain),
            "team": st.team_name,
            "user": st.options.bot_name,
            "team_id": st.team_id,
            "user_id": st.bot_user_id,
            "bot_id": st.bot_id,
            "is_enterprise_install": false,
        }))),
        "apps.connections.open" => {
            let ticket = uuid();
            st.tickets.insert(ticket.clone());
            st.socket_mode = true;
            let ws = st.base_url.replacen("http://", "ws://", 1);
            let url = format!("{ws}/link/?ticket={ticket}&app_id={}", st.app_id);
            Ok(Done::new(json!({ "url": url })))
        }
        "chat.postMessage" => post_message(st, args),
        "chat.update" => update_message(st, args),
        "chat.delete" => delete_message(st, args),
        "conversations.history" => history(st, args),
        "conversations.replies" => replies(st, args),
        "conversations.info" => {
            let index = channel_index(st, args)?;
            Ok(Done::new(
                json!({ "channel": st.channel_json(&st.channels[index]) }),
            ))
        }
        "conversations.join" => join(st, args),
        "conversations.list" => list_channels(st, args),
        "users.info" => {
            let id = arg_str(args, "user").unwrap_or_default();
            let user = st
                .users
                .iter()
                .find(|u| u.id == id)
                .ok_or("user_not_found")?;
            Ok(Done::new(json!({ "user": st.user_json(user) })))
        }
        "usergroups.list" => {
            let users = arg_bool(args, "include_users");
            let groups: Vec<Value> = st
                .usergroups
                .iter()
                .map(|g| st.usergroup_json(g, users))
                .collect();
            Ok(Done::new(json!({ "usergroups": groups })))
        }
        _ => Err("unknown_method"),
    }
}

fn channel_index(st: &State, args: &Args) -> Result<usize, &'static str> {
    let key = arg_str(args, "channel").unwrap_or_default();
    let key = key.trim_start_matches('#');
    st.channels
        .iter()
        .position(|c| !key.is_empty() && (c.id == key || c.name == key))
        .ok_or("channel_not_found")
}

/// The text of a post or update, checked as Slack does.
fn text_arg(args: &Args) -> Result<String, &'static str> {
    let text = arg_str(args, "text").unwrap_or_default();
    let has_blocks = ["blocks", "attachments"]
        .iter()
        .any(|k| args.contains_key(*k));
    if text.trim().is_empty() && !has_blocks {
        return Err("no_text");
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err("msg_too_long");
    }
    Ok(text)
}

fn post_message(st: &mut State, args: &Args) -> Outcome {
    let index = channel_index(st, args)?;
    let channel = &st.channels[index];
    if channel.archived {
        return Err("is_archived");
    }
    if !channel.members.contains(&st.bot_user_id) {
        return Err("not_in_channel");
    }
    let channel_id = channel.id.clone();
    let text = text_arg(args)?;
    let thread_ts = arg_str(args, "thread_ts")
        .filter(|t| !t.is_empty())
        .map(|t| st.thread_root(&channel_id, &t));
    let broadcast = thread_ts.is_some() && arg_bool(args, "reply_broadcast");
    // Without chat:write.customize the overrides are silently ignored.
    let customize =
        |key: &str| arg_str(args, key).filter(|v| st.options.bot_can_customize && !v.is_empty());
    let (username, icon_url, icon_emoji) = (
        customize("username"),
        customize("icon_url"),
        customize("icon_emoji"),
    );
    let customized = username.is_some() || icon_url.is_some() || icon_emoji.is_some();
    let subtype = if broadcast {
        Some("thread_broadcast")
    } else if customized {
        Some("bot_message")
    } else {
        None
    };
    let ts = st.next_ts();
    let msg = Message {
        channel: channel_id.clone(),
        ts: ts.clone(),
        user: (!customized).then(|| st.bot_user_id.clone()),
        bot_id: Some(st.bot_id.clone()),
        username,
        icon_url,
        icon_emoji,
        text,
        thread_ts,
        subtype: subtype.map(str::to_owned),
        files: Vec::new(),
        edited: false,
        deleted: false,
    };
    let app_id = Some(st.app_id.clone());
    let index = st.insert(Stored {
        msg,
        client_msg_id: None,
        app_id,
        edited_by: None,
    });
    let message = st.message_json(&st.messages[index]);
    let event = st.message_event(index);
    Ok(Done::new(json!({ "channel": channel_id, "ts": ts, "message": message })).event(event))
}

/// The index of a message the bot may change, or the error Slack gives.
fn own_message(st: &State, args: &Args, refused: &'static str) -> Result<usize, &'static str> {
    let channel = channel_index(st, args)?;
    let ts = arg_str(args, "ts").unwrap_or_default();
    let index = st
        .find(&st.channels[channel].id, &ts)
        .ok_or("message_not_found")?;
    if st.messages[index].msg.bot_id.as_deref() != Some(st.bot_id.as_str()) {
        return Err(refused);
    }
    Ok(index)
}

fn update_message(st: &mut State, args: &Args) -> Outcome {
    let index = own_message(st, args, "cant_update_message")?;
    let text = text_arg(args)?;
    let bot = st.bot_user_id.clone();
    let event = st.apply_edit(index, &text, &bot);
    let stored = &st.messages[index];
    let body = json!({
        "channel": stored.msg.channel,
        "ts": stored.msg.ts,
        "text": stored.msg.text,
        "message": st.message_json(stored),
    });
    Ok(Done::new(body).event(event))
}

fn delete_message(st: &mut State, args: &Args) -> Outcome {
    let index = own_message(st, args, "cant_delete_message")?;
    let event = st.apply_delete(index);
    let m = &st.messages[index].msg;
    Ok(Done::new(json!({ "channel": m.channel, "ts": m.ts })).event(event))
}

fn join(st: &mut State, args: &Args) -> Outcome {
    let index = channel_index(st, args)?;
    if st.channels[index].archived {
        return Err("is_archived");
    }
    let bot = st.bot_user_id.clone();
    let joined = st.channels[index].members.insert(bot.clone());
    let channel_id = st.channels[index].id.clone();
    let mut done = Done::new(json!({ "channel": st.channel_json(&st.channels[index]) }));
    if !joined {
        done.warnings.push("already_in_channel");
        return Ok(done);
    }
    // Joining posts "<@U...> has joined the channel", which the app sees too.
    let ts = st.next_ts();
    let msg = Message {
        channel: channel_id,
        ts,
        user: Some(bot.clone()),
        bot_id: None,
        username: None,
        icon_url: None,
        icon_emoji: None,
        text: format!("<@{bot}> has joined the channel"),
        thread_ts: None,
        subtype: Some("channel_join".to_owned()),
        files: Vec::new(),
        edited: false,
        deleted: false,
    };
    let index = st.insert(Stored {
        msg,
        client_msg_id: None,
        app_id: None,
        edited_by: None,
    });
    Ok(done.event(st.message_event(index)))
}

/// `limit`: the default when absent or 0, capped at `max`.
fn limit_arg(args: &Args, default: usize, max: usize) -> Result<usize, &'static str> {
    match arg_str(args, "limit") {
        None => Ok(default),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(0) => Ok(default),
            Ok(n) => Ok(n.min(max)),
            Err(_) => Err("invalid_limit"),
        },
    }
}

/// A `next_ts:` cursor's position, in microseconds.
fn ts_cursor(args: &Args) -> Result<Option<u64>, &'static str> {
    let Some(cursor) = arg_str(args, "cursor").filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let decoded = b64_decode(&cursor).and_then(|b| String::from_utf8(b).ok());
    let micros = decoded
        .as_deref()
        .and_then(|d| d.strip_prefix("next_ts:"))
        .and_then(|d| d.parse::<u64>().ok());
    micros.map(Some).ok_or("invalid_cursor")
}

fn next_ts_cursor(ts: &str) -> String {
    b64_encode(format!("next_ts:{}", ts_micros(ts).unwrap_or(0)).as_bytes())
}

fn history(st: &mut State, args: &Args) -> Outcome {
    let index = channel_index(st, args)?;
    let channel_id = st.channels[index].id.clone();
    if !st.is_member(&channel_id) {
        return Err("not_in_channel");
    }
    let bound = |key: &str, error: &'static str| match arg_str(args, key).filter(|v| !v.is_empty())
    {
        None => Ok(None),
        Some(v) => ts_micros(&v).map(Some).ok_or(error),
    };
    let oldest = bound("oldest", "invalid_ts_oldest")?.unwrap_or(0);
    let latest = bound("latest", "invalid_ts_latest")?;
    let inclusive = arg_bool(args, "inclusive");
    let limit = limit_arg(args, 100, 999)?;
    let cursor = ts_cursor(args)?;
    let mut visible: Vec<&Stored> = st
        .messages
        .iter()
        .filter(|m| m.msg.channel == channel_id)
        .filter(|m| {
            let top =
                m.msg.thread_ts.is_none() || m.msg.subtype.as_deref() == Some("thread_broadcast");
            let shown = !m.msg.deleted || !st.replies(&channel_id, &m.msg.ts).is_empty();
            top && shown
        })
        .filter(|m| {
            let ts = ts_micros(&m.msg.ts).unwrap_or(0);
            let after = if inclusive { ts >= oldest } else { ts > oldest };
            let before = latest.is_none_or(|l| if inclusive { ts <= l } else { ts < l });
            after && before && cursor.is_none_or(|c| ts <= c)
        })
        .collect();
    visible.reverse();
    let has_more = visible.len() > limit;
    let next = visible.get(limit).map(|m| next_ts_cursor(&m.msg.ts));
    let messages: Vec<Value> = visible
        .iter()
        .take(limit)
        .map(|m| st.history_json(m))
        .collect();
    let mut body = json!({
        "messages": messages,
        "has_more": has_more,
        "pin_count": 0,
        "channel_actions_ts": null,
        "channel_actions_count": 0,
    });
    if let Some(latest) = arg_str(args, "latest").filter(|v| !v.is_empty()) {
        body["latest"] = json!(latest);
    }
    if let Some(next) = next {
        body["response_metadata"] = json!({ "next_cursor": next });
    }
    Ok(Done::new(body))
}

/// `conversations.replies`: the parent then its replies, oldest first.
fn replies(st: &mut State, args: &Args) -> Outcome {
    let index = channel_index(st, args)?;
    let channel_id = st.channels[index].id.clone();
    if !st.is_member(&channel_id) {
        return Err("not_in_channel");
    }
    let ts = arg_str(args, "ts").unwrap_or_default();
    let root = st.thread_root(&channel_id, &ts);
    let parent = st
        .messages
        .iter()
        .find(|m| m.msg.channel == channel_id && m.msg.ts == root)
        .filter(|m| !m.msg.deleted || !st.replies(&channel_id, &root).is_empty())
        .ok_or("thread_not_found")?;
    let limit = limit_arg(args, 1000, 1000)?;
    let cursor = ts_cursor(args)?;
    let mut thread = vec![parent];
    thread.extend(st.replies(&channel_id, &root));
    thread.retain(|m| cursor.is_none_or(|c| ts_micros(&m.msg.ts).unwrap_or(0) >= c));
    let has_more = thread.len() > limit;
    let mut body = json!({
        "messages": thread.iter().take(limit).map(|m| st.history_json(m)).collect::<Vec<_>>(),
        "has_more": has_more,
    });
    if let Some(next) = thread.get(limit) {
        body["response_metadata"] = json!({ "next_cursor": next_ts_cursor(&next.msg.ts) });
    }
    Ok(Done::new(body))
}

fn list_channels(st: &mut State, args: &Args) -> Outcome {
    let types = arg_str(args, "types").unwrap_or_else(|| "public_channel".to_owned());
    let public = types.split(',').any(|t| t.trim() == "public_channel");
    let exclude_archived = arg_bool(args, "exclude_archived");
    let limit = limit_arg(args, 100, 1000)?;
    let listed: Vec<_> = st
        .channels
        .iter()
        .filter(|c| public && !(exclude_archived && c.archived))
        .collect();
    let start = match arg_str(args, "cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(cursor) => {
            let id = b64_decode(&cursor)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|d| d.strip_prefix("team:").map(str::to_owned));
            id.and_then(|id| listed.iter().position(|c| c.id == id))
                .ok_or("invalid_cursor")?
        }
    };
    let page: Vec<Value> = listed
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| st.channel_json(c))
        .collect();
    let next = listed
        .get(start + limit)
        .map(|c| b64_encode(format!("team:{}", c.id).as_bytes()))
        .unwrap_or_default();
    Ok(Done::new(json!({
        "channels": page,
        "response_metadata": { "next_cursor": next },
    })))
}

/// A string argument; numbers and booleans as their text (form values are text).
pub(super) fn arg_str(args: &Args, key: &str) -> Option<String> {
    match args.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn arg_bool(args: &Args, key: &str) -> bool {
    matches!(arg_str(args, key).as_deref(), Some("true" | "1"))
}

pub(super) fn form_decode(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(key), unescape(value))
        })
        .collect()
}

fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded`, spaces as `+`.
pub(super) fn form_encode(pairs: &[(&str, String)]) -> String {
    let escape = |text: &str| {
        text.bytes().fold(String::new(), |mut out, byte| {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(byte as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{byte:02X}")),
            }
            out
        })
    };
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

impl FakeSlack {
    /// The next `times` calls of `method` (for that channel only, when given by
    /// name or id) answer HTTP 429 with `Retry-After: retry_after_secs` and
    /// `{"ok":false,"error":"ratelimited"}`. `method` may also be
    /// `"incoming_webhook"` (429, body `rate_limited`).
    pub fn rate_limit(
        &self,
        method: &str,
        channel: Option<&str>,
        times: usize,
        retry_after_secs: u64,
    ) {
        let mut st = self.inner.lock();
        let channel = channel.map(|c| st.channel_or_panic(c).id.clone());
        st.rate_rules.push(RateRule {
            method: method.to_owned(),
            channel,
            remaining: times,
            retry_after: retry_after_secs,
        });
    }

    /// The next `times` calls of `method` answer `{"ok":false,"error":error}`
    /// (HTTP 200), e.g. `("chat.postMessage", "channel_not_found", 1)`. For
    /// `"incoming_webhook"` the error is the plain-text body, with the status
    /// Slack gives it (403 `action_prohibited`, 404 `no_service`, 410
    /// `channel_is_archived`, 500 `rollup_error`, else 400).
    pub fn fail_method(&self, method: &str, error: &str, times: usize) {
        self.inner.lock().fail_rules.push(FailRule {
            method: method.to_owned(),
            error: error.to_owned(),
            remaining: times,
        });
    }

    /// How many requests `method` received, refused and failed ones included.
    pub fn calls(&self, method: &str) -> usize {
        self.inner.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// The arguments of every request to `method`, in arrival order (the token
    /// left out; form values as strings).
    pub fn api_calls(&self, method: &str) -> Vec<Value> {
        let st = self.inner.lock();
        st.api_log
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, args)| args.clone())
            .collect()
    }
}
