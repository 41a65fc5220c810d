//! The normalised event model: what adapters emit (`Inbound`) and what the core
//! asks them to send (`Outbound`).

use crate::final_text::FinalText;
use crate::ids::{NativeMsgId, NetworkId, RoomId, RoomKey};
use crate::rich::RichText;
use serde::{Deserialize, Serialize};

/// Who wrote a native message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// Stable native id (IRC: the nick; elsewhere a user id).
    pub id: String,
    /// What readers see as the author's name.
    pub display_name: String,
    /// True when the bridge itself wrote it: such events are never relayed.
    pub is_self: bool,
    /// A picture of the author that other networks may show (e.g. as a post icon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

impl Sender {
    /// A user of the network, known by `id`, shown as `display_name`, without avatar.
    pub fn user(id: impl Into<String>, display_name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            display_name: display_name.into(),
            is_self: false,
            avatar_url: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub mime_type: Option<String>,
    pub size: Option<u64>,
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    Message,
    /// `/me does something`
    Action,
    Notice,
    /// The content replaces the message `target`.
    Edit {
        target: NativeMsgId,
    },
    Delete {
        target: NativeMsgId,
    },
    /// A reaction (`key`: an emoji, or a short name where the network has names)
    /// to the message `target`. Taking it back is a `Delete` of the reaction's own
    /// native id, so it finds the reaction's copies through the id map.
    Reaction {
        target: NativeMsgId,
        key: String,
    },
    Join,
    Part {
        reason: Option<String>,
    },
    Quit {
        reason: Option<String>,
    },
    Kick {
        user: String,
        reason: Option<String>,
    },
    /// The content is the new topic.
    Topic,
}

impl EventKind {
    /// Membership and topic changes: relayed only where a route asks for them.
    pub fn is_membership(&self) -> bool {
        matches!(
            self,
            EventKind::Join
                | EventKind::Part { .. }
                | EventKind::Quit { .. }
                | EventKind::Kick { .. }
        )
    }
}

/// One native event, normalised by the adapter that received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    pub room: RoomKey,
    pub sender: Sender,
    /// The native id, when the network has one; adapters mint one otherwise.
    pub native_id: Option<NativeMsgId>,
    /// Milliseconds since the Unix epoch (server time where known).
    pub timestamp_ms: i64,
    pub kind: EventKind,
    pub content: RichText,
    pub reply_to: Option<NativeMsgId>,
    pub thread: Option<NativeMsgId>,
    pub attachments: Vec<Attachment>,
}

impl Inbound {
    /// A plain message with the current time and no references: the common case.
    pub fn message(
        room: RoomKey,
        sender: Sender,
        native_id: Option<NativeMsgId>,
        content: RichText,
    ) -> Self {
        Self {
            room,
            sender,
            native_id,
            timestamp_ms: now_ms(),
            kind: EventKind::Message,
            content,
            reply_to: None,
            thread: None,
            attachments: Vec::new(),
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStyle {
    Normal,
    Action,
    Notice,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OutboundKind {
    /// A new message. `reply_to`/`thread` are already mapped to this room's native ids.
    Message {
        style: MessageStyle,
        content: RichText,
        reply_to: Option<NativeMsgId>,
        thread: Option<NativeMsgId>,
        attachments: Vec<Attachment>,
    },
    /// Replace the copy made earlier (all its parts) with new content.
    Edit {
        targets: Vec<NativeMsgId>,
        content: RichText,
    },
    /// Remove the copy made earlier (all its parts).
    Delete { targets: Vec<NativeMsgId> },
    /// React with `key` to `target` (this room's copy of the message: its first part).
    Reaction { target: NativeMsgId, key: String },
}

/// One delivery the core asks an adapter to make, already rendered for its target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    pub room: RoomId,
    /// The outbox row id: stable across retries and restarts, never reused.
    pub delivery_id: i64,
    /// Names this delivery for a destination that deduplicates sends by a key (a
    /// Matrix transaction id): stable across retries and restarts, and, when the
    /// origin event has a native id, made from that event's identity, so that an
    /// event its source sends again after a power cut lost the daemon's record of it
    /// gets the same key (docs/durability.md).
    #[serde(default)]
    pub delivery_key: String,
    /// The relayed author's plain name (for networks with per-message sender names).
    pub sender_name: String,
    /// The relayed author's picture, where the origin network has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_avatar: Option<String>,
    /// The nick template rendered for this room (e.g. `<alice> `), as the core
    /// placed it in `parts` unless `per_message_sender`. Empty for lines the bridge
    /// itself speaks.
    pub sender_label: String,
    /// The core chose to show the relayed author by the network's own per-message
    /// name (a username override, a ghost user): `sender_name`/`sender_avatar` go
    /// there and the label is not in `parts`.
    #[serde(default)]
    pub per_message_sender: bool,
    /// Where the relayed author comes from: for adapters that speak as one native
    /// user per remote sender (Matrix application-service ghosts). Empty for lines
    /// the bridge itself speaks.
    #[serde(default)]
    pub origin: Origin,
    pub kind: OutboundKind,
    /// The text to send, part after part, exactly as the destination must receive
    /// it: rendered with its text rules, labelled, split to its size limit and
    /// checked for room-wide mentions by the core. One part for an edit; none for a
    /// delete or a reaction.
    #[serde(default)]
    pub parts: Vec<FinalText>,
}

/// The relayed author's home: network, its protocol and their id there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub network: NetworkId,
    /// The origin adapter's protocol name, e.g. `irc`.
    pub protocol: String,
    /// `Sender::id` on the origin network.
    pub sender_id: String,
}

/// What `send` created: the native ids of every part, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReceipt {
    pub native_ids: Vec<NativeMsgId>,
}
