//! Incoming webhooks (`POST /hooks/{id}`), outgoing webhook calls, and the
//! small HTTP/1.1 client those calls (and the tests) use: plain http on
//! loopback, one request per connection.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{
    AppError, FROM_WEBHOOK, Inner, MAX_POST_CHARS, NewPost, OVERRIDE_ICON_URL, OVERRIDE_USERNAME,
    Origin, OutgoingCall, State as FakeState, rest,
};

/// The server's default `OutgoingIntegrationRequestsTimeout`.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

/// An incoming webhook or outgoing webhook answer: Slack-compatible fields.
#[derive(Deserialize, Default)]
#[serde(default)]
struct HookMessage {
    text: String,
    username: String,
    icon_url: String,
    icon_emoji: String,
    channel: String,
    props: Option<Map<String, Value>>,
    attachments: Option<Vec<Value>>,
    r#type: String,
    response_type: String,
}

/// Builds the posts a webhook message turns into, as the server's
/// CreateWebhookPost: `from_webhook`, overrides when the settings allow them
/// (`webhook` as the default name), and texts over the limit split in order.
fn webhook_posts(
    st: &FakeState,
    owner: &str,
    channel_id: &str,
    message: HookMessage,
    root_id: &str,
) -> Vec<NewPost> {
    let mut props = Map::new();
    props.insert(FROM_WEBHOOK.into(), json!("true"));
    if st.allow_name_override {
        let name = if message.username.is_empty() {
            "webhook"
        } else {
            &message.username
        };
        props.insert(OVERRIDE_USERNAME.into(), json!(name));
    }
    if st.allow_icon_override {
        if !message.icon_url.is_empty() {
            props.insert(OVERRIDE_ICON_URL.into(), json!(message.icon_url));
        }
        if !message.icon_emoji.is_empty() {
            props.insert("override_icon_emoji".into(), json!(message.icon_emoji));
        }
    }
    props.insert("webhook_display_name".into(), json!(""));
    for (key, value) in message.props.unwrap_or_default() {
        let reserved = [
            OVERRIDE_ICON_URL,
            OVERRIDE_USERNAME,
            FROM_WEBHOOK,
            "attachments",
        ];
        if !reserved.contains(&key.as_str()) {
            props.insert(key, value);
        }
    }
    let mut kind = message.r#type;
    let attachments = message.attachments.filter(|a| !a.is_empty());
    if attachments.is_some() {
        kind = "slack_attachment".to_owned();
    }
    let chars: Vec<char> = message.text.chars().collect();
    let mut chunks: Vec<String> = chars
        .chunks(MAX_POST_CHARS)
        .map(|chunk| chunk.iter().collect())
        .collect();
    if chunks.is_empty() {
        chunks.push(String::new());
    }
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, text)| {
            let mut post = NewPost::by_user(owner, channel_id, &text, root_id);
            post.origin = Origin::Webhook;
            post.r#type = kind.clone();
            post.props = props.clone();
            if let (true, Some(attachments)) = (index == last, &attachments) {
                post.props.insert("attachments".into(), json!(attachments));
            }
            post
        })
        .collect()
}

pub(super) async fn incoming(
    State(inner): State<Arc<Inner>>,
    Path(hook_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let bytes = rest::read_body(body).await?;
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let parse_error = || {
        AppError::bad_request(
            "model.incoming_hook.parse_data.app_error",
            "Unable to parse incoming data",
        )
    };
    let payload: Value = if media_type == "application/x-www-form-urlencoded" {
        let form = form_decode(std::str::from_utf8(&bytes).map_err(|_| parse_error())?);
        let payload = form
            .into_iter()
            .find(|(key, _)| key == "payload")
            .map(|(_, value)| value)
            .unwrap_or_default();
        serde_json::from_str(&payload).map_err(|_| parse_error())?
    } else {
        serde_json::from_slice(&bytes).map_err(|_| parse_error())?
    };
    let message: HookMessage = serde_json::from_value(payload).map_err(|_| parse_error())?;
    // Past parsing, the server wraps every failure in one general error that
    // keeps the inner status code.
    let general = |status: u16| {
        AppError::new(
            status,
            "web.incoming_webhook.general.app_error",
            format!(
                "Failed to handle the payload of media type {media_type} for incoming webhook {hook_id}."
            ),
        )
    };
    if message.text.is_empty() && message.attachments.is_none() {
        return Err(general(400));
    }
    if message.r#type.starts_with("system_") {
        return Err(general(400));
    }
    let posts = {
        let st = inner.lock();
        let hook = st
            .incoming_hooks
            .iter()
            .find(|h| h.id == hook_id)
            .ok_or_else(|| general(400))?;
        let channel_id = match message.channel.trim_start_matches('#') {
            "" => hook.channel_id.clone(),
            name if name.starts_with('@') => return Err(general(400)),
            name => st
                .channels
                .iter()
                .find(|c| c.team_id == hook.team_id && c.name == name)
                .map(|c| c.id.clone())
                .ok_or_else(|| general(404))?,
        };
        webhook_posts(&st, &hook.owner, &channel_id, message, "")
    };
    for post in posts {
        inner.publish(post, false).map_err(|e| general(e.status))?;
    }
    Ok(([(CONTENT_TYPE, "text/plain")], "ok").into_response())
}

/// Sends one outgoing webhook call from a task of its own, posts the answer's
/// text back if there is one, then records the status (0 when unreachable).
pub(super) fn fire(inner: Arc<Inner>, call: OutgoingCall) {
    let runtime = inner.runtime.clone();
    runtime.spawn(async move {
        let (content_type, body) = if call.json {
            let object: Map<String, Value> = call
                .payload
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect();
            ("application/json", Value::Object(object).to_string())
        } else {
            let pairs: Vec<(&str, String)> = call
                .payload
                .iter()
                .map(|(key, value)| match value {
                    Value::String(text) => (*key, text.clone()),
                    other => (*key, other.to_string()),
                })
                .collect();
            ("application/x-www-form-urlencoded", form_encode(&pairs))
        };
        let headers = [
            ("Content-Type", content_type),
            ("Accept", "application/json"),
        ];
        let request = http_request("POST", &call.url, &headers, body.as_bytes());
        let answer = match tokio::time::timeout(CALLBACK_TIMEOUT, request).await {
            Ok(Ok(answer)) => Some(answer),
            _ => None,
        };
        let reply = answer
            .as_ref()
            .filter(|a| (200..300).contains(&a.status))
            .and_then(|a| serde_json::from_slice::<HookMessage>(&a.body).ok())
            .filter(|m| {
                !m.text.is_empty() || m.attachments.as_ref().is_some_and(|a| !a.is_empty())
            });
        if let Some(reply) = reply {
            let root_id = if reply.response_type == "comment" {
                call.post_id.as_str()
            } else {
                ""
            };
            let posts = webhook_posts(&inner.lock(), &call.owner, &call.channel_id, reply, root_id);
            for post in posts {
                let _ = inner.publish(post, false);
            }
        }
        inner
            .lock()
            .webhook_results
            .push(answer.map_or(0, |a| a.status));
        inner.bump();
    });
}

/// An HTTP answer as read off the wire.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(super) struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text()))
    }
}

/// One HTTP/1.1 request over a fresh connection to a `http://` URL.
pub(super) async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpAnswer> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("not a plain http URL: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(address).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse_answer(&raw).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed HTTP answer: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}

fn parse_answer(raw: &[u8]) -> Option<HttpAnswer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some(HttpAnswer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&raw[..end]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// `application/x-www-form-urlencoded` as Go's `url.Values.Encode`: keys
/// sorted, spaces as `+`.
pub(super) fn form_encode(pairs: &[(&str, String)]) -> String {
    let mut pairs = pairs.to_vec();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
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
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
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

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}
