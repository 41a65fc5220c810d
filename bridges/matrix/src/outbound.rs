//! Events -> native: messages as `m.room.message` (text, emote or notice, with HTML
//! when there is formatting, replies as real `m.in_reply_to`), edits as `m.replace`,
//! deletes as redactions. Every request's transaction id comes from the outbox row,
//! so the homeserver treats a retry of the same row as the same event. `request`
//! builds what to send for both modes; `send` sends it as the relay bot.

use crate::{Live, format};
use matrix_sdk::ruma::{EventId, OwnedTransactionId};
use serde_json::{Value, json};
use switchboard_sdk::{
    MessageStyle, NativeMsgId, Outbound, OutboundKind, RichText, SendError, SendReceipt,
};

/// What one outbound message asks of the homeserver, whoever sends it (the relay bot
/// or a ghost).
pub enum Request {
    /// One `m.room.message` event with this content.
    Message(Value),
    /// Redactions of these events, one request each.
    Redact(Vec<NativeMsgId>),
}

/// The request for `message`; `labelled`: put the relayed author's label before the
/// text (the relay bot speaks for everyone; a ghost is its author already).
pub fn request(message: &Outbound, labelled: bool) -> Option<Request> {
    let text = |content: &RichText| {
        if labelled {
            with_label(message, content)
        } else {
            content.clone()
        }
    };
    match &message.kind {
        OutboundKind::Message {
            style,
            content,
            reply_to,
            ..
        } => {
            let mut body = message_content(*style, text(content));
            if let Some(reply) = reply_to {
                body["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": reply.as_str() } });
            }
            Some(Request::Message(body))
        }
        OutboundKind::Edit { targets, content } => {
            let target = targets.first()?;
            let new_content = message_content(MessageStyle::Normal, text(content));
            let mut body = new_content.clone();
            // Clients without edit support show the fallback: "* new text".
            body["body"] = Value::String(format!(
                "* {}",
                new_content["body"].as_str().unwrap_or_default()
            ));
            if let Some(html) = new_content.get("formatted_body").and_then(Value::as_str) {
                body["formatted_body"] = Value::String(format!("* {html}"));
            }
            body["m.new_content"] = new_content;
            body["m.relates_to"] = json!({ "rel_type": "m.replace", "event_id": target.as_str() });
            Some(Request::Message(body))
        }
        OutboundKind::Delete { targets } => Some(Request::Redact(targets.clone())),
    }
}

/// The transaction id of part `part` of an outbox row: stable across retries.
pub fn txn_id(salt: &str, message: &Outbound, part: usize) -> String {
    format!("{salt}-{}-{part}", message.delivery_id)
}

/// Sends as the relay bot, through the matrix-sdk client.
pub async fn send(live: &Live, message: &Outbound) -> Result<SendReceipt, SendError> {
    let room_id = live
        .rooms
        .get(&message.room)
        .ok_or_else(|| SendError::Transient(format!("room {} is not joined yet", message.room)))?;
    let room = live
        .client
        .get_room(room_id)
        .ok_or_else(|| SendError::Transient(format!("room {} is not known yet", message.room)))?;
    let txn = |part: usize| OwnedTransactionId::from(txn_id(&live.txn_salt, message, part));
    match request(message, true) {
        None => Ok(SendReceipt::default()),
        Some(Request::Message(body)) => {
            let sent = room
                .send_raw("m.room.message", body)
                .with_transaction_id(&txn(0))
                .await
                .map_err(classify)?;
            Ok(SendReceipt {
                native_ids: vec![NativeMsgId::new(sent.response.event_id.to_string())],
            })
        }
        Some(Request::Redact(targets)) => {
            for (part, target) in targets.iter().enumerate() {
                let Ok(event_id) = <&EventId>::try_from(target.as_str()) else {
                    continue;
                };
                if let Err(error) = room.redact(event_id, None, Some(txn(part))).await {
                    let status = error.as_client_api_error().map(|e| e.status_code.as_u16());
                    if status != Some(404) {
                        return Err(classify_http(&error, status));
                    }
                }
            }
            Ok(SendReceipt::default())
        }
    }
}

/// The relayed author's label goes before the text: one account speaks for everyone.
fn with_label(message: &Outbound, content: &RichText) -> RichText {
    let mut content = content.clone();
    content.prepend_plain(&message.sender_label);
    content
}

/// `m.mentions: {}` says the bridge means to notify nobody, so `@room` or a name in
/// relayed text never pings under the intentional-mentions push rules.
fn message_content(style: MessageStyle, content: RichText) -> Value {
    let (body, html) = format::render(&content);
    let msgtype = match style {
        MessageStyle::Normal => "m.text",
        MessageStyle::Action => "m.emote",
        MessageStyle::Notice => "m.notice",
    };
    let mut value = json!({ "msgtype": msgtype, "body": body, "m.mentions": {} });
    if let Some(html) = html {
        value["format"] = Value::String("org.matrix.custom.html".into());
        value["formatted_body"] = Value::String(html);
    }
    value
}

fn classify(error: matrix_sdk::Error) -> SendError {
    let status = error.as_client_api_error().map(|e| e.status_code.as_u16());
    match status {
        Some(status) => classify_status(status, error.to_string()),
        None => SendError::Transient(error.to_string()),
    }
}

fn classify_http(error: &matrix_sdk::HttpError, status: Option<u16>) -> SendError {
    match status {
        Some(status) => classify_status(status, error.to_string()),
        None => SendError::Transient(error.to_string()),
    }
}

/// A homeserver's answer by status: 429 waits, 5xx and 401 are retried, other 4xx
/// would fail the same way again.
pub fn classify_status(status: u16, reason: String) -> SendError {
    match status {
        429 => SendError::RateLimited {
            reason,
            retry_after: std::time::Duration::from_secs(1),
        },
        status if status >= 500 || status == 401 => SendError::Transient(reason),
        _ => SendError::Permanent(reason),
    }
}
