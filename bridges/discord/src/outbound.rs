//! Sending: through the channel's webhook (`POST /webhooks/{id}/{token}?wait=true`
//! with the relayed sender's name and picture) where the room has one, else as the
//! bot (`POST /channels/{id}/messages`, the sender's label in the text as the core
//! rendered it). A reply is a `message_reference`, which webhooks cannot carry: in a
//! webhook room a reply goes as the bot, with the sender's name put before its text.
//! A message for a thread goes into the thread. Every request carries
//! `allowed_mentions: {"parse": []}`, so nothing relayed pings anyone, whatever the
//! text (which the core has guarded already).
//!
//! Edits and deletes go the way the copy was sent (webhook or bot); for a copy sent
//! before a restart, the webhook first and the bot when Discord says the webhook did
//! not write it (see `ids`).

use crate::api::{Failure, code, done, no_mentions, read};
use crate::ids::message_id;
use crate::session::{Hook, Live, Sent};
use std::time::Duration;
use switchboard_sdk::{
    ConnectionState, MessageStyle, NativeMsgId, Outbound, OutboundKind, RichText, SendError,
    SendReceipt,
};
use twilight_model::channel::Message;
use twilight_model::id::Id;

/// Longest a single request may wait (twilight's rate limiter included) before the
/// core is told to retry later.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// Discord's limit on a message's text, in characters.
const MAX_CHARS: usize = 2000;
/// Discord's limit on a webhook username, in characters.
const MAX_USERNAME_CHARS: usize = 80;

async fn bounded<T>(
    what: &str,
    request: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(REQUEST_DEADLINE, request).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Unreachable(format!(
            "{what}: no answer within {REQUEST_DEADLINE:?}"
        ))),
    }
}

/// A relayed sender's name as a webhook username: what Discord accepts (1 to 80
/// characters, not containing "discord" or "clyde", not "everyone" or "here"), with
/// the words it refuses broken by an invisible character.
pub fn webhook_username(name: &str) -> String {
    let flat: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut name = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    for word in ["discord", "clyde"] {
        name = break_word(&name, word);
    }
    if name.is_empty() {
        name = "someone".into();
    }
    if matches!(name.to_lowercase().as_str(), "everyone" | "here") {
        name.insert(1, '\u{200B}');
    }
    name.chars().take(MAX_USERNAME_CHARS).collect()
}

/// `text` with a zero-width space after the first letter of every occurrence of
/// `word` (ASCII, any case).
fn break_word(text: &str, word: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len() + 8);
    let mut from = 0;
    while let Some(found) = lower[from..].find(word) {
        let start = from + found;
        out.push_str(&text[from..=start]);
        out.push('\u{200B}');
        from = start + 1;
    }
    out.push_str(&text[from..]);
    out
}

/// The sender's label as the bot puts it before the text where a webhook would have
/// named the sender: the core's label (`alice: `), escaped and guarded.
fn label_of(message: &Outbound, style: MessageStyle) -> String {
    if message.sender_label.is_empty() {
        return String::new();
    }
    let label = switchboard_sdk::text::label_in_text(&message.sender_label, style);
    let trimmed = label.trim_end();
    let rendered = crate::format::render(&RichText::plain(trimmed));
    format!("{rendered}{}", &label[trimmed.len()..])
}

/// Sends one delivery into the room's channel.
pub async fn send(live: &Live, message: &Outbound) -> Result<SendReceipt, SendError> {
    let Some(channel) = live.channel_of(&message.room) else {
        return Err(SendError::Transient(format!(
            "channel {} is not joined yet",
            message.room
        )));
    };
    match &message.kind {
        OutboundKind::Message {
            style,
            reply_to,
            thread,
            ..
        } => {
            post(
                live,
                channel,
                message,
                *style,
                reply_to.as_ref(),
                thread.as_ref(),
            )
            .await
        }
        OutboundKind::Edit { targets, .. } => edit(live, channel, message, targets).await,
        OutboundKind::Delete { targets } => {
            for target in targets {
                remove(live, channel, target).await?;
            }
            Ok(SendReceipt::default())
        }
        OutboundKind::Reaction { .. } => Err(SendError::Permanent(
            "reactions are not relayed to Discord".into(),
        )),
    }
}

/// A failure as the core's error, told to `/healthz` where it is about the room or
/// the token rather than this one message.
fn failed(live: &Live, message: &Outbound, what: &str, failure: Failure) -> SendError {
    if failure == Failure::Unauthorized {
        live.health.report(ConnectionState::Failed {
            last_error: format!("Discord: {}", failure.explain()),
        });
    } else if failure.is_channel_refusal() {
        live.health.join_failed(&message.room, failure.explain());
    }
    failure.into_send_error(what)
}

async fn post(
    live: &Live,
    channel: u64,
    message: &Outbound,
    style: MessageStyle,
    reply_to: Option<&NativeMsgId>,
    thread: Option<&NativeMsgId>,
) -> Result<SendReceipt, SendError> {
    let thread = thread.and_then(message_id);
    let reply = reply_to.and_then(message_id);
    // Into the thread when it is one of this channel's; else a reply to its root.
    let in_thread = thread.filter(|thread| live.thread_parent(*thread) == Some(channel));
    let reference = match in_thread {
        Some(thread) => reply.filter(|reply| *reply != thread),
        None => reply.or(thread),
    };
    let target = in_thread.unwrap_or(channel);
    let hook = live.hook(channel).filter(|_| message.per_message_sender);
    let label = if message.per_message_sender {
        label_of(message, style)
    } else {
        String::new()
    };
    let mut native_ids = Vec::new();
    for (index, part) in message.parts.iter().enumerate() {
        let reference = reference.filter(|_| index == 0);
        // A reply goes as the bot (webhooks cannot reply), its name in front, if
        // that still fits; else by the webhook without the reference.
        let labelled = if message.per_message_sender
            && (hook.is_none() || reference.is_some())
            && index == 0
        {
            let text = format!("{label}{}", part.body);
            (hook.is_none() || text.chars().count() <= MAX_CHARS).then_some(text)
        } else {
            None
        };
        let id = match (&hook, &labelled) {
            (Some(hook), None) => by_hook(live, message, hook, in_thread, &part.body).await?,
            _ => {
                let text = labelled.as_deref().unwrap_or(&part.body);
                let reference = reference.filter(|_| hook.is_none() || labelled.is_some());
                by_bot(live, message, target, text, reference).await?
            }
        };
        live.sent(
            id,
            Sent {
                webhook: hook
                    .as_ref()
                    .filter(|_| labelled.is_none())
                    .map(|hook| hook.id),
                thread: in_thread,
                labelled: labelled.is_some() && message.per_message_sender,
            },
        );
        native_ids.push(crate::ids::native(id));
    }
    Ok(SendReceipt { native_ids })
}

async fn by_hook(
    live: &Live,
    message: &Outbound,
    hook: &Hook,
    thread: Option<u64>,
    text: &str,
) -> Result<u64, SendError> {
    let none = no_mentions();
    let username = webhook_username(&message.sender_name);
    let avatar = message
        .sender_avatar
        .as_deref()
        .filter(|url| url.starts_with("https://"));
    let Some(hook_id) = Id::new_checked(hook.id) else {
        return Err(SendError::Permanent("a webhook id of 0".into()));
    };
    let mut request = live
        .http
        .execute_webhook(hook_id, &hook.token)
        .content(text)
        .username(&username)
        .allowed_mentions(Some(&none));
    if let Some(avatar) = avatar {
        request = request.avatar_url(avatar);
    }
    if let Some(thread) = thread.and_then(Id::new_checked) {
        request = request.thread_id(thread);
    }
    match bounded("POST /webhooks", read::<_, Message>(request.wait())).await {
        Ok(posted) => Ok(posted.id.get()),
        Err(failure) if failure.code() == Some(code::UNKNOWN_WEBHOOK) => {
            // Someone deleted the webhook: the room sends as the bot (with the
            // label the core renders once it sees the room's new capabilities).
            let channel = live.channel_of(&message.room).unwrap_or_default();
            live.drop_hook(channel);
            tracing::warn!(network = %live.network, room = %message.room, "Discord: the channel webhook was deleted; sending as the bot until the next connection makes another");
            Err(SendError::Transient(
                "the channel webhook was deleted; resending as the bot".into(),
            ))
        }
        Err(failure) => Err(failed(
            live,
            message,
            "POST /webhooks/{id}/{token}",
            failure,
        )),
    }
}

async fn by_bot(
    live: &Live,
    message: &Outbound,
    channel: u64,
    text: &str,
    reference: Option<u64>,
) -> Result<u64, SendError> {
    let none = no_mentions();
    let Some(channel_id) = Id::new_checked(channel) else {
        return Err(SendError::Permanent("a channel id of 0".into()));
    };
    let mut request = live
        .http
        .create_message(channel_id)
        .content(text)
        .allowed_mentions(Some(&none));
    if let Some(reference) = reference.and_then(Id::new_checked) {
        request = request.reply(reference).fail_if_not_exists(false);
    }
    match bounded("POST /channels/{id}/messages", read::<_, Message>(request)).await {
        Ok(posted) => Ok(posted.id.get()),
        Err(failure) => Err(failed(
            live,
            message,
            "POST /channels/{id}/messages",
            failure,
        )),
    }
}

/// The webhook that may have written `id` (as far as the adapter knows), and the
/// channel (or thread) it is in.
fn way_of(live: &Live, channel: u64, id: u64) -> (Option<Hook>, bool, u64, Option<Sent>) {
    let way = live.sent_way(id);
    let hook = live.hook(channel);
    match way {
        Some(sent) => {
            let hook = hook.filter(|hook| Some(hook.id) == sent.webhook);
            let place = sent.thread.unwrap_or(channel);
            (hook, true, place, Some(sent))
        }
        None => (hook, false, channel, None),
    }
}

async fn edit(
    live: &Live,
    channel: u64,
    message: &Outbound,
    targets: &[NativeMsgId],
) -> Result<SendReceipt, SendError> {
    let Some((first, rest)) = targets.split_first() else {
        return Ok(SendReceipt::default());
    };
    let Some(id) = message_id(first) else {
        return Err(SendError::Permanent(format!(
            "{first} is not a Discord message id"
        )));
    };
    let body = message
        .parts
        .first()
        .map(|part| part.body.as_str())
        .unwrap_or_default();
    let (hook, known, place, sent) = way_of(live, channel, id);
    let text = if sent.is_some_and(|sent| sent.labelled) {
        format!("{}{body}", label_of(message, MessageStyle::Normal))
    } else {
        body.to_owned()
    };
    let none = no_mentions();
    let (Some(message_id), Some(place_id)) = (Id::new_checked(id), Id::new_checked(place)) else {
        return Err(SendError::Permanent("an id of 0".into()));
    };
    if let Some(hook) = &hook
        && let Some(hook_id) = Id::new_checked(hook.id)
    {
        let mut request = live
            .http
            .update_webhook_message(hook_id, &hook.token, message_id)
            .content(Some(&text))
            .allowed_mentions(Some(&none));
        if let Some(thread) = sent.and_then(|sent| sent.thread).and_then(Id::new_checked) {
            request = request.thread_id(thread);
        }
        match bounded("PATCH /webhooks/.../messages", done(request)).await {
            Ok(()) => {
                delete_rest(live, channel, message, rest).await?;
                return Ok(SendReceipt {
                    native_ids: vec![first.clone()],
                });
            }
            // Not the webhook's message (sent as the bot before a restart).
            Err(failure) if !known && failure.is_permanent() => {}
            Err(failure) => {
                return Err(failed(
                    live,
                    message,
                    "PATCH /webhooks/{id}/{token}/messages/{id}",
                    failure,
                ));
            }
        }
    }
    let request = live
        .http
        .update_message(place_id, message_id)
        .content(Some(&text))
        .allowed_mentions(Some(&none));
    bounded("PATCH /channels/{id}/messages/{id}", done(request))
        .await
        .map_err(|failure| failed(live, message, "PATCH /channels/{id}/messages/{id}", failure))?;
    delete_rest(live, channel, message, rest).await?;
    Ok(SendReceipt {
        native_ids: vec![first.clone()],
    })
}

/// An edit replaces the copy with one message: its later parts go.
async fn delete_rest(
    live: &Live,
    channel: u64,
    message: &Outbound,
    rest: &[NativeMsgId],
) -> Result<(), SendError> {
    for target in rest {
        remove(live, channel, target)
            .await
            .map_err(|error| match error {
                SendError::Permanent(reason) => SendError::Permanent(format!(
                    "{reason} (deleting the later parts of an edited copy in {})",
                    message.room
                )),
                other => other,
            })?;
    }
    Ok(())
}

/// Deletes one copy; one already gone counts as deleted.
async fn remove(live: &Live, channel: u64, target: &NativeMsgId) -> Result<(), SendError> {
    let Some(id) = message_id(target) else {
        return Err(SendError::Permanent(format!(
            "{target} is not a Discord message id"
        )));
    };
    live.deleting(id);
    let (hook, known, place, sent) = way_of(live, channel, id);
    let (Some(message_id), Some(place_id)) = (Id::new_checked(id), Id::new_checked(place)) else {
        return Err(SendError::Permanent("an id of 0".into()));
    };
    if let Some(hook) = &hook
        && let Some(hook_id) = Id::new_checked(hook.id)
    {
        let mut request = live
            .http
            .delete_webhook_message(hook_id, &hook.token, message_id);
        if let Some(thread) = sent.and_then(|sent| sent.thread).and_then(Id::new_checked) {
            request = request.thread_id(thread);
        }
        match bounded("DELETE /webhooks/.../messages", done(request)).await {
            Ok(()) => return Ok(()),
            Err(failure) if known && failure.is_unknown_message() => return Ok(()),
            Err(failure) if !known && failure.is_permanent() => {}
            Err(failure) => {
                return Err(failure.into_send_error("DELETE /webhooks/{id}/{token}/messages/{id}"));
            }
        }
    }
    match bounded(
        "DELETE /channels/{id}/messages/{id}",
        done(live.http.delete_message(place_id, message_id)),
    )
    .await
    {
        Ok(()) => Ok(()),
        Err(failure) if failure.is_unknown_message() => Ok(()),
        Err(failure) => Err(failure.into_send_error("DELETE /channels/{id}/messages/{id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_usernames_are_what_discord_accepts() {
        assert_eq!(webhook_username("alice"), "alice");
        assert_eq!(webhook_username("  two\nlines\t "), "two lines");
        assert_eq!(webhook_username(""), "someone");
        let broken = webhook_username("Discord fan of CLYDE");
        assert!(!broken.to_lowercase().contains("discord"), "{broken:?}");
        assert!(!broken.to_lowercase().contains("clyde"), "{broken:?}");
        assert_eq!(broken.replace('\u{200B}', ""), "Discord fan of CLYDE");
        assert_ne!(webhook_username("everyone"), "everyone");
        assert_ne!(webhook_username("Here"), "Here");
        let long = webhook_username(&"é".repeat(100));
        assert_eq!(long.chars().count(), 80);
    }
}
