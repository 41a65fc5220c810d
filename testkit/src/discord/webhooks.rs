//! Channel webhooks: creation by the bot (needs MANAGE_WEBHOOKS), and the token
//! routes anyone holding the token may call: execute (`?wait=true` answers the
//! message, else 204; `?thread_id=` posts in a thread of the channel), get, edit
//! and delete the webhook's own messages.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::gateway::dispatch_message;
use super::rest::{
    Answer, Call, check_body, fail, not_found, ok, query_value, unknown_channel, unknown_message,
    unknown_webhook,
};
use super::shapes::{self, form_error};
use super::state::{PUBLIC_THREAD, State, Webhook, random_token};

pub(super) fn create_webhook(
    st: &mut State,
    channel: &str,
    bot_user: &str,
    app_id: &str,
    body: Option<&Value>,
) -> Answer {
    let name = body.and_then(|b| b["name"].as_str()).unwrap_or("");
    if name.is_empty() || name.chars().count() > 80 || name.to_lowercase().contains("discord") {
        return (
            StatusCode::BAD_REQUEST,
            Some(form_error(
                "name",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 80 in length.",
            )),
        );
    }
    if st.channel(channel).is_some_and(|c| c.kind == PUBLIC_THREAD) {
        return fail(
            StatusCode::BAD_REQUEST,
            50024,
            "Cannot execute action on this channel type",
        );
    }
    let hook = Webhook {
        id: st.snowflake(),
        token: random_token(68),
        channel_id: channel.to_owned(),
        guild_id: st
            .channel(channel)
            .map(|c| c.guild_id.clone())
            .unwrap_or_default(),
        name: name.to_owned(),
        creator: Some(bot_user.to_owned()),
        application_id: Some(app_id.to_owned()),
    };
    let value = shapes::webhook(st, &hook, true);
    st.webhooks.push(hook);
    ok(value)
}

pub(super) fn webhook_route(st: &mut State, call: &Call, id: &str, rest: &[&str]) -> Answer {
    let Some(hook) = st.webhook(id) else {
        return unknown_webhook();
    };
    // `/webhooks/{id}` needs the bot token; the token routes need the right token.
    let (token, rest) = match rest {
        [] if call.bot.is_none() => return fail(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized"),
        [] if call.method == Method::GET => return ok(shapes::webhook(st, hook, false)),
        [] => return not_found(),
        [token, rest @ ..] => (*token, rest),
    };
    if hook.token != token {
        return fail(StatusCode::UNAUTHORIZED, 50027, "Invalid Webhook Token");
    }
    let (hook_id, channel) = (hook.id.clone(), hook.channel_id.clone());
    let target = match query_value(call.query, "thread_id") {
        Some(thread) => match st.channel(thread).filter(|t| t.id == thread) {
            Some(t) if t.parent_id.as_deref() == Some(channel.as_str()) => t.id.clone(),
            _ => return unknown_channel(),
        },
        None => channel,
    };
    let body = call.body.cloned().unwrap_or(json!({}));
    match rest {
        [] if call.method == Method::GET => {
            ok(shapes::webhook(st, st.webhook(id).expect("found"), true))
        }
        [] if call.method == Method::POST => execute(st, &hook_id, &target, body, call.query),
        ["messages", message] => {
            let Some(index) = st
                .find(&target, message)
                .filter(|i| st.messages[*i].msg.webhook_id.as_deref() == Some(hook_id.as_str()))
            else {
                return unknown_message();
            };
            if call.method == Method::GET {
                ok(shapes::message(st, &st.messages[index], false))
            } else if call.method == Method::PATCH {
                if let Err(answer) = check_body(&body, false) {
                    return answer;
                }
                let content = body["content"].as_str().map(str::to_owned);
                st.apply_edit(index, content.as_deref(), Some(body));
                dispatch_message(st, "MESSAGE_UPDATE", index);
                ok(shapes::message(st, &st.messages[index], false))
            } else if call.method == Method::DELETE {
                st.messages[index].msg.deleted = true;
                dispatch_message(st, "MESSAGE_DELETE", index);
                (StatusCode::NO_CONTENT, None)
            } else {
                not_found()
            }
        }
        _ => not_found(),
    }
}

fn execute(
    st: &mut State,
    hook_id: &str,
    channel: &str,
    body: Value,
    query: &[(String, String)],
) -> Answer {
    if let Err(answer) = check_body(&body, true) {
        return answer;
    }
    let hook_name = st
        .webhook(hook_id)
        .map(|w| w.name.clone())
        .unwrap_or_default();
    let username = body["username"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    if let Some(name) = &username {
        let lower = name.to_lowercase();
        if name.chars().count() > 80 || lower.contains("discord") || lower.contains("clyde") {
            let text = "Username cannot contain \"discord\" or \"clyde\", nor exceed 80 characters";
            return (
                StatusCode::BAD_REQUEST,
                Some(form_error("username", "USERNAME_INVALID", text)),
            );
        }
    }
    let mut stored = st.new_message(channel, body["content"].as_str().unwrap_or(""));
    stored.msg.author_id = hook_id.to_owned();
    stored.msg.author_name = username.clone().unwrap_or(hook_name);
    stored.msg.username = username;
    stored.msg.avatar_url = body["avatar_url"].as_str().map(str::to_owned);
    stored.msg.webhook_id = Some(hook_id.to_owned());
    stored.msg.allowed_mentions = body.get("allowed_mentions").cloned();
    stored.msg.requests.push(body);
    let index = st.insert(stored);
    dispatch_message(st, "MESSAGE_CREATE", index);
    if query_value(query, "wait") == Some("true") {
        ok(shapes::message(st, &st.messages[index], false))
    } else {
        (StatusCode::NO_CONTENT, None)
    }
}
