//! Sending: with an app, `chat.postMessage` per part (the author's name and picture
//! as `username`/`icon_url` where the token may customize, a thread's parent as
//! `thread_ts`), `chat.update` for edits and `chat.delete` for deletes; in webhooks
//! mode, one POST to the incoming webhook per part. The text of every part is sent
//! exactly as the core rendered and guarded it.

use crate::api::{ApiError, WebApi, explain, without_url};
use crate::session::Live;
use switchboard_sdk::{NativeMsgId, Outbound, OutboundKind, SendError, SendReceipt};

/// `parse=none` and `link_names=false`: Slack must not turn names in relayed text
/// into mentions (the guard already defused them; this is the second lock).
const LITERAL: [(&str, &str); 2] = [("parse", "none"), ("link_names", "false")];

/// Sends one delivery through the Web API into `channel`.
pub async fn send_app(
    api: &WebApi,
    live: &Live,
    channel: &str,
    message: &Outbound,
) -> Result<SendReceipt, SendError> {
    match &message.kind {
        OutboundKind::Message {
            thread, reply_to, ..
        } => {
            let thread_ts = thread
                .as_ref()
                .or(reply_to.as_ref())
                .map(|id| id.as_str().to_owned());
            let mut native_ids = Vec::new();
            for part in &message.parts {
                let mut params: Vec<(&str, &str)> =
                    vec![("channel", channel), ("text", &part.body)];
                params.extend(LITERAL);
                if let Some(thread_ts) = &thread_ts {
                    params.push(("thread_ts", thread_ts));
                }
                if message.per_message_sender {
                    params.push(("username", &message.sender_name));
                    if let Some(avatar) = message
                        .sender_avatar
                        .as_deref()
                        .filter(|url| url.starts_with("https://"))
                    {
                        params.push(("icon_url", avatar));
                    }
                }
                let answer = match api.call_raw("chat.postMessage", &params).await {
                    Ok(answer) => answer,
                    Err(ApiError::Slack { code })
                        if code == "missing_scope" && message.per_message_sender =>
                    {
                        // The name override needs chat:write.customize: from now on
                        // the label goes into the text, which this delivery's retry
                        // is rendered with.
                        live.stop_overriding_names();
                        return Err(SendError::Transient("chat.postMessage: the token may not set a username (chat:write.customize); resending with the name in the text".into()));
                    }
                    Err(error) => {
                        if matches!(
                            error.code(),
                            Some("not_in_channel" | "channel_not_found" | "is_archived")
                        ) {
                            // Shown in /healthz for the operator, beside the dead letter.
                            live.health.join_failed(&message.room, explain(&error));
                        }
                        return Err(error.into_send_error("chat.postMessage"));
                    }
                };
                let ts = answer
                    .body
                    .get("ts")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| {
                        SendError::Transient("chat.postMessage answered without a ts".into())
                    })?;
                native_ids.push(NativeMsgId::new(ts));
            }
            Ok(SendReceipt { native_ids })
        }
        OutboundKind::Edit { targets, .. } => {
            let Some((first, rest)) = targets.split_first() else {
                return Ok(SendReceipt::default());
            };
            let text = message
                .parts
                .first()
                .map(|part| part.body.as_str())
                .unwrap_or_default();
            let mut params = vec![("channel", channel), ("ts", first.as_str()), ("text", text)];
            params.extend(LITERAL);
            api.call_raw("chat.update", &params)
                .await
                .map_err(|error| error.into_send_error("chat.update"))?;
            // The edit is one message: the copy's later parts go.
            delete_all(api, channel, rest).await?;
            Ok(SendReceipt {
                native_ids: vec![first.clone()],
            })
        }
        OutboundKind::Delete { targets } => {
            delete_all(api, channel, targets).await?;
            Ok(SendReceipt::default())
        }
        OutboundKind::Reaction { .. } => Err(SendError::Permanent(
            "reactions are not relayed to Slack".into(),
        )),
    }
}

async fn delete_all(api: &WebApi, channel: &str, targets: &[NativeMsgId]) -> Result<(), SendError> {
    for target in targets {
        match api
            .call_raw(
                "chat.delete",
                &[("channel", channel), ("ts", target.as_str())],
            )
            .await
        {
            // Already gone: what the delete wanted.
            Ok(_) => {}
            Err(ApiError::Slack { code }) if code == "message_not_found" => {}
            Err(error) => return Err(error.into_send_error("chat.delete")),
        }
    }
    Ok(())
}

/// Sends one delivery through an incoming webhook. Webhooks create messages only:
/// an edit or delete cannot reach what they posted (no `ts` comes back).
pub async fn send_hook(
    http: &reqwest::Client,
    url: &str,
    username: &str,
    message: &Outbound,
) -> Result<SendReceipt, SendError> {
    let OutboundKind::Message { .. } = &message.kind else {
        return Err(SendError::Permanent(
            "a Slack incoming webhook can only post new messages".into(),
        ));
    };
    for part in &message.parts {
        let mut body =
            serde_json::json!({ "text": part.body, "username": username, "link_names": false });
        if message.per_message_sender {
            body["username"] = message.sender_name.clone().into();
            if let Some(avatar) = message
                .sender_avatar
                .as_deref()
                .filter(|url| url.starts_with("https://"))
            {
                body["icon_url"] = avatar.into();
            }
        }
        let response = http.post(url).json(&body).send().await.map_err(|error| {
            SendError::Transient(format!("incoming webhook: {}", without_url(&error)))
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let answer = response.text().await.unwrap_or_default();
        match status {
            200..=299 => {}
            429 => {
                return Err(SendError::RateLimited {
                    retry_after: std::time::Duration::from_secs(retry_after.unwrap_or(30)),
                    reason: "incoming webhook: rate limited by Slack".into(),
                });
            }
            500..=599 => {
                return Err(SendError::Transient(format!(
                    "incoming webhook: HTTP {status} {}",
                    answer.trim()
                )));
            }
            // invalid_payload, no_service, channel_not_found, action_prohibited...
            _ => {
                return Err(SendError::Permanent(format!(
                    "incoming webhook: HTTP {status} {}",
                    answer.trim()
                )));
            }
        }
    }
    Ok(SendReceipt::default())
}
