//! Rendering one stored event for one destination room: nick template and the
//! fallbacks for what the target network cannot do (edits become correction lines,
//! replies become quotes, files become links, deletes are skipped).
//!
//! Mass mentions are not touched here. Whether `@all` notifies anyone depends on the
//! destination's own rules and on the exact text it is sent as (Mattermost decodes
//! escapes and trims `_` before it looks; IRC has no such thing), so each adapter's
//! renderer guards its final text: `format::render` of the Mattermost and Matrix
//! adapters. Text reaches the adapter as written.
//!
//! Pure functions: the delivery worker looks up the ids first and passes them in.

use super::{Member, Route};
use switchboard_sdk::{
    Capabilities, EventKind, Inbound, MessageStyle, NativeMsgId, Origin, Outbound, OutboundKind,
    RichText, Span, Style,
};

/// What the id map says about the event's references in the destination room.
#[derive(Debug, Default, Clone)]
pub struct Resolved {
    /// Copies of the edited/deleted message in the destination room (all parts).
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
    pub capabilities: &'a Capabilities,
    /// The origin network's protocol name, for `{protocol}`.
    pub origin_protocol: &'a str,
    /// The destination adapter's name guard.
    pub guard_name: &'a dyn Fn(&str) -> String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Send(Box<Outbound>),
    /// Nothing to send there; the reason is recorded.
    Skip(&'static str),
}

const QUOTE_CHARS: usize = 50;

pub fn render(
    event: &Inbound,
    delivery_id: i64,
    resolved: &Resolved,
    target: &Target<'_>,
) -> Rendered {
    let caps = target.capabilities;
    let name = event.sender.display_name.clone();
    let guarded = (target.guard_name)(&name);
    let label = render_template(
        target
            .member
            .nick_template
            .as_deref()
            .unwrap_or(&target.route.nick_template),
        event,
        &guarded,
        target.origin_protocol,
    );
    let mut content = event.content.clone();
    let outbound = |kind: OutboundKind, sender_label: String| {
        Box::new(Outbound {
            room: target.member.room.room.clone(),
            delivery_id,
            sender_name: name.clone(),
            sender_avatar: event.sender.avatar_url.clone(),
            // Lines the bridge speaks itself (no label) have no remote author.
            origin: if sender_label.is_empty() {
                Origin::default()
            } else {
                Origin {
                    network: event.room.network.clone(),
                    protocol: target.origin_protocol.to_owned(),
                    sender_id: event.sender.id.clone(),
                }
            },
            sender_label,
            kind,
        })
    };
    let message = |style: MessageStyle, content: RichText, reply_to, thread, attachments| {
        OutboundKind::Message {
            style,
            content,
            reply_to,
            thread,
            attachments,
        }
    };
    let style = match &event.kind {
        EventKind::Message => MessageStyle::Normal,
        EventKind::Action => MessageStyle::Action,
        EventKind::Notice => MessageStyle::Notice,
        EventKind::Edit { .. } => {
            if caps.edits && !resolved.target_copies.is_empty() {
                return Rendered::Send(outbound(
                    OutboundKind::Edit {
                        targets: resolved.target_copies.clone(),
                        content,
                    },
                    label,
                ));
            }
            content.prepend_plain("(correction) ");
            return Rendered::Send(outbound(
                message(MessageStyle::Normal, content, None, None, Vec::new()),
                label,
            ));
        }
        EventKind::Delete { .. } => {
            if !caps.deletes {
                return Rendered::Skip("the target network has no deletes");
            }
            if resolved.target_copies.is_empty() {
                return Rendered::Skip("no copy of the deleted message in this room");
            }
            return Rendered::Send(outbound(
                OutboundKind::Delete {
                    targets: resolved.target_copies.clone(),
                },
                label,
            ));
        }
        kind => {
            let line = membership_line(kind, &guarded, event);
            return Rendered::Send(outbound(
                message(
                    MessageStyle::Notice,
                    RichText::plain(line),
                    None,
                    None,
                    Vec::new(),
                ),
                String::new(),
            ));
        }
    };

    let reply_to = resolved.reply_target.clone().filter(|_| caps.replies);
    let thread = resolved.thread_root.clone().filter(|_| caps.threads);
    if reply_to.is_none()
        && thread.is_none()
        && let Some((author, text)) = &resolved.reply_quote
    {
        content.prepend_plain(&quote(&(target.guard_name)(author), text));
    }
    let mut attachments = event.attachments.clone();
    if !caps.attachments {
        for file in attachments.drain(..) {
            if !content.is_empty() {
                content.push_text("\n", Style::default());
            }
            content.push(Span::Link {
                text: file.url.clone(),
                url: file.url,
                style: Style::default(),
            });
        }
    }
    Rendered::Send(outbound(
        message(style, content, reply_to, thread, attachments),
        label,
    ))
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
