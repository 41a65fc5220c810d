//! Rendering one stored event for one destination room: what to send there, with
//! the fallbacks for what the target network (or room) cannot do (edits become
//! correction lines, replies become quotes, files become links, deletes and
//! reactions are skipped). How it is then shown (the label or the network's own
//! sender name, splitting, mention safety on the final text) is `policy`'s part.
//!
//! Pure functions: the delivery worker looks up the ids first and passes them in.

use super::policy;
use super::{Member, Route};
use switchboard_sdk::{
    Capabilities, EventKind, Inbound, MessageStyle, NativeMsgId, Origin, Outbound, OutboundKind,
    RichText, RoomKey, Span, Style,
};

/// What the id map says about the event's references in the destination room.
#[derive(Debug, Default, Clone)]
pub struct Resolved {
    /// Copies of the edited/deleted/reacted-to message in the destination room (all parts).
    pub target_copies: Vec<NativeMsgId>,
    /// The native id of the answered message in the destination room.
    pub reply_target: Option<NativeMsgId>,
    /// Who wrote the answered (or thread root) message, and what it said.
    pub reply_quote: Option<(String, String)>,
    /// The native id of the thread root in the destination room.
    pub thread_root: Option<NativeMsgId>,
}

/// The destination as the renderer needs to know it.
pub struct Target<'a> {
    pub route: &'a Route,
    pub member: &'a Member,
    /// What the destination room can do (its network's, unless the room differs).
    pub capabilities: &'a Capabilities,
    /// The origin network's protocol name, for `{protocol}`.
    pub origin_protocol: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Send(Box<Outbound>),
    /// Nothing to send there.
    Skip(Skip),
    /// Must not be sent at all (dead-lettered with the reason): the destination's
    /// mention guard could not make the final text safe.
    Refuse(String),
}

/// Why a delivery has nothing to send: `class` is the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    pub class: &'static str,
    pub reason: &'static str,
}

const NO_DELETES: Skip = Skip {
    class: "deletes_unsupported",
    reason: "the target network has no deletes",
};
const NO_REACTIONS: Skip = Skip {
    class: "reactions_unsupported",
    reason: "the target network or room shows no reactions",
};
const NO_COPY: Skip = Skip {
    class: "no_copy",
    reason: "no copy of the target message in this room",
};

const QUOTE_CHARS: usize = 50;

/// The key a destination may deduplicate this delivery by (`Outbound::delivery_key`).
///
/// With a native id, a digest of the origin event's identity (its room, native id and
/// time, the time telling apart a reaction removed and added again under the same
/// id) and of the destination room: an event its source sends again after a power cut
/// lost our record of it gets the same key. Without one (its source never sends it
/// again), the outbox id, which no run reuses.
fn delivery_key(event: &Inbound, destination: &RoomKey, delivery_id: i64) -> String {
    use sha2::{Digest, Sha256};
    let Some(native_id) = &event.native_id else {
        return format!("o{delivery_id}");
    };
    let mut digest = Sha256::new();
    for field in [
        event.room.network.as_str(),
        event.room.room.as_str(),
        native_id.as_str(),
        &event.timestamp_ms.to_string(),
        destination.network.as_str(),
        destination.room.as_str(),
    ] {
        // Length-prefixed, so that no two different tuples hash the same bytes.
        digest.update((field.len() as u64).to_le_bytes());
        digest.update(field.as_bytes());
    }
    let hash = digest.finalize();
    let hex: String = hash[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("e{hex}")
}

pub fn render(
    event: &Inbound,
    delivery_id: i64,
    resolved: &Resolved,
    target: &Target<'_>,
) -> Rendered {
    let caps = target.capabilities;
    let name = &event.sender.display_name;
    let shown_name = caps.text.name_without_ping(name);
    let label = render_template(
        target
            .member
            .nick_template
            .as_deref()
            .unwrap_or(&target.route.nick_template),
        event,
        &shown_name,
        target.origin_protocol,
    );
    let kind = match what_to_send(event, resolved, caps, &shown_name) {
        Ok(kind) => kind,
        Err(skip) => return Rendered::Skip(skip),
    };
    // Lines the bridge speaks itself (membership, topics) carry no label.
    let label = if event.kind.is_membership() || event.kind == EventKind::Topic {
        String::new()
    } else {
        label
    };
    let outbound = Outbound {
        room: target.member.room.room.clone(),
        delivery_id,
        delivery_key: delivery_key(event, &target.member.room, delivery_id),
        sender_name: name.clone(),
        sender_avatar: event.sender.avatar_url.clone(),
        // Lines the bridge speaks itself (no label) have no remote author.
        origin: if label.is_empty() {
            Origin::default()
        } else {
            Origin {
                network: event.room.network.clone(),
                protocol: target.origin_protocol.to_owned(),
                sender_id: event.sender.id.clone(),
            }
        },
        sender_label: label,
        per_message_sender: false,
        kind,
        parts: Vec::new(),
    };
    match policy::present(outbound, caps) {
        Ok(outbound) => Rendered::Send(Box::new(outbound)),
        Err(refusal) => Rendered::Refuse(refusal),
    }
}

/// The native operation for this event in a room with `caps`, with the fallbacks for
/// what the room cannot do.
fn what_to_send(
    event: &Inbound,
    resolved: &Resolved,
    caps: &Capabilities,
    shown_name: &str,
) -> Result<OutboundKind, Skip> {
    let mut content = event.content.clone();
    let style = match &event.kind {
        EventKind::Message => MessageStyle::Normal,
        EventKind::Action => MessageStyle::Action,
        EventKind::Notice => MessageStyle::Notice,
        EventKind::Edit { .. } => {
            if caps.edits && !resolved.target_copies.is_empty() {
                return Ok(OutboundKind::Edit {
                    targets: resolved.target_copies.clone(),
                    content,
                });
            }
            content.prepend_plain("(correction) ");
            return Ok(plain_message(MessageStyle::Normal, content));
        }
        EventKind::Delete { .. } => {
            if !caps.deletes {
                return Err(NO_DELETES);
            }
            if resolved.target_copies.is_empty() {
                return Err(NO_COPY);
            }
            return Ok(OutboundKind::Delete {
                targets: resolved.target_copies.clone(),
            });
        }
        EventKind::Reaction { key, .. } => {
            if !caps.reactions {
                return Err(NO_REACTIONS);
            }
            // A reaction belongs on the message itself: its first part.
            let Some(first) = resolved.target_copies.first() else {
                return Err(NO_COPY);
            };
            return Ok(OutboundKind::Reaction {
                target: first.clone(),
                key: key.clone(),
            });
        }
        kind => {
            let line = membership_line(kind, shown_name, event);
            return Ok(plain_message(MessageStyle::Notice, RichText::plain(line)));
        }
    };
    let reply_to = resolved.reply_target.clone().filter(|_| caps.replies);
    let thread = resolved.thread_root.clone().filter(|_| caps.threads);
    if reply_to.is_none()
        && thread.is_none()
        && let Some((author, text)) = &resolved.reply_quote
    {
        content.prepend_plain(&quote(&caps.text.name_without_ping(author), text));
    }
    let mut attachments = event.attachments.clone();
    if !caps.attachments {
        for file in attachments.drain(..) {
            if !content.is_empty() {
                content.push_text("\n", Style::default());
            }
            // Shown by its name where the network has one ("plan.pdf (https://...)"
            // on IRC), so a reader knows what the link is before opening it.
            let text = if file.name.trim().is_empty() {
                file.url.clone()
            } else {
                file.name
            };
            content.push(Span::Link {
                text,
                url: file.url,
                style: Style::default(),
            });
        }
    }
    Ok(OutboundKind::Message {
        style,
        content,
        reply_to,
        thread,
        attachments,
    })
}

fn plain_message(style: MessageStyle, content: RichText) -> OutboundKind {
    OutboundKind::Message {
        style,
        content,
        reply_to: None,
        thread: None,
        attachments: Vec::new(),
    }
}

/// `(re alice: "the first words…") `
fn quote(author: &str, text: &str) -> String {
    let first_line = text.lines().next().unwrap_or_default();
    let mut excerpt: String = first_line.chars().take(QUOTE_CHARS).collect();
    if first_line.chars().count() > QUOTE_CHARS || text.lines().nth(1).is_some() {
        excerpt.push('…');
    }
    format!("(re {author}: \"{excerpt}\") ")
}

fn membership_line(kind: &EventKind, nick: &str, event: &Inbound) -> String {
    let room = &event.room.room;
    let network = &event.room.network;
    let reason = |reason: &Option<String>| match reason {
        Some(reason) if !reason.is_empty() => format!(" ({reason})"),
        _ => String::new(),
    };
    match kind {
        EventKind::Join => format!("*** {nick} joined {room} on {network}"),
        EventKind::Part { reason: why } => {
            format!("*** {nick} left {room} on {network}{}", reason(why))
        }
        EventKind::Quit { reason: why } => format!("*** {nick} quit {network}{}", reason(why)),
        EventKind::Kick { user, reason: why } => format!(
            "*** {user} was kicked from {room} on {network} by {nick}{}",
            reason(why)
        ),
        EventKind::Topic => format!(
            "*** {nick} set the topic of {room} on {network}: {}",
            event.content.to_plain()
        ),
        // Messages are rendered by the caller; this is only reached for membership/topic.
        _ => String::new(),
    }
}

/// Fills `{nick}`, `{network}`, `{protocol}` and `{room}` (all of the origin).
pub fn render_template(template: &str, event: &Inbound, nick: &str, protocol: &str) -> String {
    let mut out = String::with_capacity(template.len() + nick.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let Some(close) = after.find('}') else {
            out.push_str(after);
            return out;
        };
        match &after[1..close] {
            "nick" => out.push_str(nick),
            "network" => out.push_str(event.room.network.as_str()),
            "protocol" => out.push_str(protocol),
            "room" => out.push_str(event.room.room.as_str()),
            _ => out.push_str(&after[..=close]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}
