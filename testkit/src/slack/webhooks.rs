//! Incoming webhooks (`POST /services/T.../B.../secret`, answered with `ok` or a
//! plain-text error and its status) and the legacy outgoing webhook (a form POST
//! per human message; a JSON answer with `text` is posted back).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

use super::state::{ALNUM, State, Stored, new_id, random_string};
use super::web_api::{MAX_TEXT_CHARS, Refusal, form_decode, form_encode};
use super::{FakeSlack, Inner, Message};

/// How long the fake waits for an outgoing webhook's answer.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct IncomingHook {
    /// `/services/T.../B.../secret`.
    pub path: String,
    pub channel_id: String,
}

pub(super) struct OutgoingHook {
    pub url: String,
    pub token: String,
    pub service_id: String,
    /// The legacy integration's own bot, author of the answers posted back.
    pub bot_id: String,
}

/// One outgoing webhook POST to make.
pub(super) struct OutgoingCall {
    url: String,
    form: String,
    channel_id: String,
    bot_id: String,
}

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new().route("/services/{team}/{bot}/{secret}", post(incoming))
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, [(CONTENT_TYPE, "text/html")], text.to_owned()).into_response()
}

/// The status Slack gives an incoming webhook error.
fn status_of(error: &str) -> StatusCode {
    match error {
        "action_prohibited" | "posting_to_general_channel_denied" | "invalid_token" => {
            StatusCode::FORBIDDEN
        }
        "channel_not_found" | "no_service" | "team_disabled" => StatusCode::NOT_FOUND,
        "channel_is_archived" => StatusCode::GONE,
        "rollup_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn incoming(
    AxumState(inner): AxumState<Arc<Inner>>,
    Path((team, bot, secret)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/services/{team}/{bot}/{secret}");
    let channel_id = {
        let mut st = inner.lock();
        *st.calls.entry("incoming_webhook".to_owned()).or_default() += 1;
        st.incoming_hooks
            .iter()
            .find(|h| h.path == path)
            .map(|h| h.channel_id.clone())
    };
    inner.bump();
    let Some(channel_id) = channel_id else {
        return plain(StatusCode::NOT_FOUND, "no_service");
    };
    match inner.gate("incoming_webhook", Some(&channel_id)) {
        Some(Refusal::RateLimited(after)) => {
            let mut response = plain(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(after));
            return response;
        }
        Some(Refusal::Failed(error)) => return plain(status_of(&error), &error),
        None => {}
    }
    let Some(payload) = parse_payload(&headers, &body) else {
        return plain(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    let text = payload["text"].as_str().unwrap_or("").to_owned();
    let has_blocks = ["blocks", "attachments"]
        .iter()
        .any(|k| payload.get(*k).is_some());
    if text.trim().is_empty() && !has_blocks {
        return plain(StatusCode::BAD_REQUEST, "no_text");
    }
    let event = {
        let mut st = inner.lock();
        if st.channel(&channel_id).is_some_and(|c| c.archived) {
            return plain(StatusCode::GONE, "channel_is_archived");
        }
        let customize = |key: &str| {
            payload[key]
                .as_str()
                .filter(|v| st.options.bot_can_customize && !v.is_empty())
                .map(str::to_owned)
        };
        let (username, icon_url, icon_emoji) = (
            customize("username"),
            customize("icon_url"),
            customize("icon_emoji"),
        );
        let thread_ts = payload["thread_ts"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(|t| st.thread_root(&channel_id, t));
        let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
        let (bot_id, app_id) = (st.bot_id.clone(), st.app_id.clone());
        let index = store_bot_message(
            &mut st,
            &channel_id,
            &bot_id,
            Some(app_id),
            text,
            username,
            thread_ts,
        );
        let m = &mut st.messages[index].msg;
        (m.icon_url, m.icon_emoji) = (icon_url, icon_emoji);
        st.message_event(index)
    };
    inner.bump();
    inner.emit(event);
    plain(StatusCode::OK, "ok")
}

/// JSON, or a form whose `payload` field holds the JSON, as Slack accepts both.
fn parse_payload(headers: &HeaderMap, body: &[u8]) -> Option<Value> {
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let value: Value = if form {
        let text = std::str::from_utf8(body).ok()?;
        let (_, json) = form_decode(text)
            .into_iter()
            .find(|(key, _)| key == "payload")?;
        serde_json::from_str(&json).ok()?
    } else {
        serde_json::from_slice(body).ok()?
    };
    value.is_object().then_some(value)
}

/// Stores a `bot_message` (no `user`) by `bot_id`; returns its index.
fn store_bot_message(
    st: &mut State,
    channel_id: &str,
    bot_id: &str,
    app_id: Option<String>,
    text: String,
    username: Option<String>,
    thread_ts: Option<String>,
) -> usize {
    let ts = st.next_ts();
    st.insert(Stored {
        msg: Message {
            channel: channel_id.to_owned(),
            ts,
            user: None,
            bot_id: Some(bot_id.to_owned()),
            username,
            icon_url: None,
            icon_emoji: None,
            text,
            thread_ts,
            subtype: Some("bot_message".to_owned()),
            files: Vec::new(),
            edited: false,
            deleted: false,
        },
        client_msg_id: None,
        app_id,
        edited_by: None,
    })
}

impl State {
    /// The outgoing webhook call a stored human message causes, if a hook is set.
    pub(super) fn outgoing_call(&self, index: usize) -> Option<OutgoingCall> {
        let hook = self.outgoing_hook.as_ref()?;
        let m = &self.messages[index].msg;
        let user = self.user(m.user.as_deref()?)?;
        let channel = self.channel(&m.channel)?;
        let fields = [
            ("token", hook.token.clone()),
            ("team_id", self.team_id.clone()),
            ("team_domain", self.team_domain.clone()),
            ("service_id", hook.service_id.clone()),
            ("channel_id", channel.id.clone()),
            ("channel_name", channel.name.clone()),
            ("timestamp", m.ts.clone()),
            ("user_id", user.id.clone()),
            ("user_name", user.name.clone()),
            ("text", m.text.clone()),
            ("trigger_word", String::new()),
        ];
        Some(OutgoingCall {
            url: hook.url.clone(),
            form: form_encode(&fields),
            channel_id: channel.id.clone(),
            bot_id: hook.bot_id.clone(),
        })
    }
}

/// Makes one outgoing webhook call from a task of its own, records its status
/// (0 without an answer) and posts back a JSON answer's `text`.
pub(super) fn fire(inner: Arc<Inner>, call: OutgoingCall) {
    tokio::spawn(async move {
        let sent = inner
            .http
            .post(&call.url)
            .timeout(CALLBACK_TIMEOUT)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(call.form)
            .send()
            .await;
        let (status, answer) = match sent {
            Ok(response) => (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        };
        let reply: Option<Value> = serde_json::from_str(&answer).ok();
        let text = reply
            .as_ref()
            .and_then(|r| r["text"].as_str())
            .filter(|t| !t.is_empty());
        let event = match (status, text) {
            (200..=299, Some(text)) => {
                let mut st = inner.lock();
                st.outgoing_results.push(status);
                let username = reply
                    .as_ref()
                    .and_then(|r| r["username"].as_str())
                    .map(str::to_owned);
                let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
                let index = store_bot_message(
                    &mut st,
                    &call.channel_id,
                    &call.bot_id,
                    None,
                    text,
                    username,
                    None,
                );
                Some(st.message_event(index))
            }
            _ => {
                inner.lock().outgoing_results.push(status);
                None
            }
        };
        inner.bump();
        if let Some(event) = event {
            inner.emit(event);
        }
    });
}

impl FakeSlack {
    /// The incoming webhook URL of the channel (made on first use, then the
    /// same): `http://127.0.0.1:PORT/services/T.../B.../secret`. POST JSON
    /// `{text, username?, icon_url?, icon_emoji?, thread_ts?}` (or a form with
    /// `payload`); the message is a `bot_message` of the app's bot, overrides
    /// honoured only with `bot_can_customize`.
    pub fn incoming_webhook_url(&self, channel: &str) -> String {
        let mut st = self.inner.lock();
        let channel_id = st.channel_or_panic(channel).id.clone();
        if let Some(hook) = st
            .incoming_hooks
            .iter()
            .find(|h| h.channel_id == channel_id)
        {
            return format!("{}{}", st.base_url, hook.path);
        }
        let path = format!(
            "/services/{}/{}/{}",
            st.team_id,
            new_id('B'),
            random_string(24, ALNUM)
        );
        st.incoming_hooks.push(IncomingHook {
            path: path.clone(),
            channel_id,
        });
        format!("{}{path}", st.base_url)
    }

    /// Sets the legacy outgoing webhook: every human message, in any channel,
    /// is POSTed to `url` as a form with `token`, `team_id`, `team_domain`,
    /// `service_id`, `channel_id`, `channel_name`, `timestamp` (the ts),
    /// `user_id`, `user_name`, `text` and an empty `trigger_word`.
    pub fn set_outgoing_webhook(&self, url: &str, token: &str) {
        self.inner.lock().outgoing_hook = Some(OutgoingHook {
            url: url.to_owned(),
            token: token.to_owned(),
            service_id: random_string(11, b"0123456789"),
            bot_id: new_id('B'),
        });
    }

    /// The status of each outgoing webhook call, in completion order; 0 when
    /// there was no answer.
    pub fn outgoing_webhook_results(&self) -> Vec<u16> {
        self.inner.lock().outgoing_results.clone()
    }
}
