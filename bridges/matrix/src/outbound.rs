//! Events -> native: messages as `m.room.message` (text, emote or notice, with the
//! `body` and `formatted_body` the core decided, replies as real `m.in_reply_to`),
//! edits as `m.replace`, deletes as redactions, reactions as `m.reaction`
//! annotations. Every request's transaction id comes from the outbox row, so the
//! homeserver treats a retry of the same row as the same event. `request` builds
//! what to send for both modes; `send` sends it as the relay bot.

use crate::Live;
use matrix_sdk::ruma::{EventId, OwnedTransactionId};
use serde_json::{Value, json};
use switchboard_sdk::{
    FinalText, MessageStyle, NativeMsgId, Outbound, OutboundKind, SendError, SendReceipt,
};

/// What one outbound message asks of the homeserver, whoever sends it (the relay bot
/// or a ghost).
pub enum Request {
    /// One `m.room.message` event with this content.
    Message(Value),
    /// One `m.reaction` event with this content.
    Reaction(Value),
    /// Redactions of these events, one request each.
    Redact(Vec<NativeMsgId>),
}

/// The request for `message`, whose text (label included or not) the core decided.
pub fn request(message: &Outbound) -> Option<Request> {
    let text = message.parts.first().cloned().unwrap_or_default();
    match &message.kind {
        OutboundKind::Message {
            style, reply_to, ..
        } => {
            let mut body = message_content(*style, text);
            if let Some(reply) = reply_to {
                body["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": reply.as_str() } });
            }
            Some(Request::Message(body))
        }
        OutboundKind::Edit { targets, .. } => {
            let target = targets.first()?;
            let new_content = message_content(MessageStyle::Normal, text);
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
        OutboundKind::Reaction { target, key } => Some(Request::Reaction(json!({
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": target.as_str(),
                "key": key,
            }
        }))),
    }
}

/// The transaction id of part `part` of a delivery: stable across retries and
/// restarts, and the same for an origin event sent again after a power cut lost the
/// record of its delivery, so the homeserver answers with the event it already made.
pub fn txn_id(salt: &str, message: &Outbound, part: usize) -> String {
    format!("{salt}-{}-{part}", message.delivery_key)
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
    let (event_type, body) = match request(message) {
        None => return Ok(SendReceipt::default()),
        Some(Request::Message(body)) => ("m.room.message", body),
        Some(Request::Reaction(body)) => ("m.reaction", body),
        Some(Request::Redact(targets)) => return redact(&room, &targets, txn).await,
    };
    let sent = room
        .send_raw(event_type, body)
        .with_transaction_id(&txn(0))
        .await
        .map_err(classify)?;
    Ok(SendReceipt {
        native_ids: vec![NativeMsgId::new(sent.response.event_id.to_string())],
    })
}

/// Redacts every part of a copy; one already gone is fine.
async fn redact(
    room: &matrix_sdk::Room,
    targets: &[NativeMsgId],
    txn: impl Fn(usize) -> OwnedTransactionId,
) -> Result<SendReceipt, SendError> {
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

/// `m.mentions: {}` says the bridge means to notify nobody, so `@room` or a name in
/// relayed text never pings under the intentional-mentions push rules.
fn message_content(style: MessageStyle, text: FinalText) -> Value {
    let FinalText { body, html } = text;
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
