//! Events -> native: messages as `m.room.message` (text, emote or notice, with HTML
//! when there is formatting, replies as real `m.in_reply_to`), edits as `m.replace`,
//! deletes as redactions. Every request's transaction id comes from the outbox row,
//! so the homeserver treats a retry of the same row as the same event.

use crate::{Live, format};
use matrix_sdk::ruma::{EventId, OwnedTransactionId};
use serde_json::{Value, json};
use switchboard_sdk::{
    MessageStyle, NativeMsgId, Outbound, OutboundKind, RichText, SendError, SendReceipt,
};

pub async fn send(live: &Live, message: &Outbound) -> Result<SendReceipt, SendError> {
    let room_id = live
        .rooms
        .get(&message.room)
        .ok_or_else(|| SendError::Transient(format!("room {} is not joined yet", message.room)))?;
    let room = live
        .client
        .get_room(room_id)
        .ok_or_else(|| SendError::Transient(format!("room {} is not known yet", message.room)))?;
    let txn = |part: usize| -> OwnedTransactionId {
        OwnedTransactionId::from(format!("{}-{}-{part}", live.txn_salt, message.delivery_id))
    };
    match &message.kind {
        OutboundKind::Message {
            style,
            content,
            reply_to,
            ..
        } => {
            let mut body = message_content(*style, labelled(message, content));
            if let Some(reply) = reply_to {
                body["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": reply.as_str() } });
            }
            let sent = room
                .send_raw("m.room.message", body)
                .with_transaction_id(&txn(0))
                .await
                .map_err(classify)?;
            Ok(SendReceipt {
                native_ids: vec![NativeMsgId::new(sent.response.event_id.to_string())],
            })
        }
        OutboundKind::Edit { targets, content } => {
            let Some(target) = targets.first() else {
                return Ok(SendReceipt::default());
            };
            let new_content = message_content(MessageStyle::Normal, labelled(message, content));
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
            let sent = room
                .send_raw("m.room.message", body)
                .with_transaction_id(&txn(0))
                .await
                .map_err(classify)?;
            Ok(SendReceipt {
                native_ids: vec![NativeMsgId::new(sent.response.event_id.to_string())],
            })
        }
        OutboundKind::Delete { targets } => {
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
fn labelled(message: &Outbound, content: &RichText) -> RichText {
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
        Some(429) => SendError::RateLimited {
            reason: error.to_string(),
            retry_after: std::time::Duration::from_secs(1),
        },
        Some(status) if status >= 500 || status == 401 => SendError::Transient(error.to_string()),
        Some(_) => SendError::Permanent(error.to_string()),
        None => SendError::Transient(error.to_string()),
    }
}

fn classify_http(error: &matrix_sdk::HttpError, status: Option<u16>) -> SendError {
    match status {
        Some(status) if status < 500 && status != 401 && status != 429 => {
            SendError::Permanent(error.to_string())
        }
        _ => SendError::Transient(error.to_string()),
    }
}
