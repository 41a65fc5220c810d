//! Native -> events: one timeline event of a bridged room (message, emote, notice,
//! file, edit, redaction, membership, topic) becomes one normalised `Inbound` event.
//! Events are read as JSON so unknown fields and newer room versions pass through,
//! and so the same code serves sync responses (relay bot) and application-service
//! transactions. Who the sender is (display name, the bridge itself) is the caller's
//! to fill in: the two modes know names and their own users differently.

use crate::format;
use matrix_sdk::deserialized_responses::TimelineEvent;
use matrix_sdk::ruma::{OwnedRoomId, RoomId as MatrixRoomId};
use serde_json::Value;
use std::collections::HashMap;
use switchboard_sdk::{
    Attachment, EventKind, Inbound, NativeMsgId, NetworkId, RichText, RoomId, RoomKey, Sender,
};

pub struct Translator {
    pub network: NetworkId,
    /// Room id -> the room as routes name it; replaced when the routes change.
    rooms: std::sync::RwLock<HashMap<OwnedRoomId, RoomId>>,
    /// Base URL for media links (`mxc://` becomes a download URL there).
    pub homeserver: String,
}

/// A sync response's timeline event as JSON.
pub fn event_json(event: &TimelineEvent) -> Option<Value> {
    serde_json::from_str(event.raw().json().get()).ok()
}

/// The server timestamp of a timeline event.
pub fn timestamp_ms(event: &TimelineEvent) -> Option<i64> {
    event_json(event)?.get("origin_server_ts")?.as_i64()
}

/// `@alice:example.org` -> `alice`: the name shown until a display name is known.
pub fn localpart(user_id: &str) -> &str {
    user_id
        .strip_prefix('@')
        .and_then(|rest| rest.split(':').next())
        .unwrap_or(user_id)
}

impl Translator {
    pub fn new(
        network: NetworkId,
        rooms: HashMap<OwnedRoomId, RoomId>,
        homeserver: String,
    ) -> Self {
        Self {
            network,
            rooms: std::sync::RwLock::new(rooms),
            homeserver,
        }
    }

    /// The room as routes name it, for a bridged room id.
    pub fn room_of(&self, room_id: &MatrixRoomId) -> Option<RoomId> {
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        rooms.get(room_id).cloned()
    }

    /// From now on only these rooms are relayed.
    pub fn set_rooms(&self, rooms: HashMap<OwnedRoomId, RoomId>) {
        *self.rooms.write().unwrap_or_else(|p| p.into_inner()) = rooms;
    }

    /// `None` for events that mean nothing on other networks (receipts, state the
    /// bridge does not relay, undecryptable events) and for rooms not bridged. The
    /// sender is named by their localpart and not marked as the bridge's own.
    pub fn translate(&self, room_id: &MatrixRoomId, event: &Value) -> Option<Inbound> {
        let room = self.room_of(room_id)?;
        let event_type = event.get("type")?.as_str()?;
        let event_id = event.get("event_id")?.as_str()?.to_owned();
        let sender_id = event.get("sender")?.as_str()?.to_owned();
        let content = event.get("content")?;
        let (kind, rich, reply_to, thread, attachments) = match event_type {
            "m.room.message" => self.message(content)?,
            "m.room.redaction" => {
                let target = event
                    .get("redacts")
                    .or_else(|| content.get("redacts"))?
                    .as_str()?;
                let kind = EventKind::Delete {
                    target: NativeMsgId::new(target),
                };
                (kind, RichText::default(), None, None, Vec::new())
            }
            "m.reaction" => {
                let relation = content.get("m.relates_to")?;
                if relation.get("rel_type")?.as_str()? != "m.annotation" {
                    return None;
                }
                let kind = EventKind::Reaction {
                    target: NativeMsgId::new(relation.get("event_id")?.as_str()?),
                    key: relation.get("key")?.as_str()?.to_owned(),
                };
                (kind, RichText::default(), None, None, Vec::new())
            }
            "m.room.topic" => {
                let topic = content.get("topic")?.as_str()?;
                (
                    EventKind::Topic,
                    RichText::plain(topic),
                    None,
                    None,
                    Vec::new(),
                )
            }
            "m.room.member" => (
                membership(event, &sender_id)?,
                RichText::default(),
                None,
                None,
                Vec::new(),
            ),
            _ => return None,
        };
        let name = localpart(&sender_id).to_owned();
        Some(Inbound {
            room: RoomKey {
                network: self.network.clone(),
                room,
            },
            sender: Sender::user(sender_id, name),
            native_id: Some(NativeMsgId::new(event_id)),
            timestamp_ms: event
                .get("origin_server_ts")
                .and_then(Value::as_i64)
                .unwrap_or_else(switchboard_sdk::event::now_ms),
            kind,
            content: rich,
            reply_to,
            thread,
            attachments,
        })
    }

    #[allow(clippy::type_complexity)]
    fn message(
        &self,
        content: &Value,
    ) -> Option<(
        EventKind,
        RichText,
        Option<NativeMsgId>,
        Option<NativeMsgId>,
        Vec<Attachment>,
    )> {
        let relates = content.get("m.relates_to");
        let relation = |key: &str| relates.and_then(|r| r.get(key)).and_then(Value::as_str);
        // An edit: the replacement content is in `m.new_content`.
        if relation("rel_type") == Some("m.replace") {
            let target = NativeMsgId::new(relation("event_id")?);
            let new = content.get("m.new_content").unwrap_or(content);
            let text = text_of(new, false);
            return Some((EventKind::Edit { target }, text, None, None, Vec::new()));
        }
        let reply_to = relates
            .and_then(|r| r.get("m.in_reply_to"))
            .and_then(|r| r.get("event_id"))
            .and_then(Value::as_str)
            .map(NativeMsgId::new);
        let thread = (relation("rel_type") == Some("m.thread"))
            .then(|| relation("event_id").map(NativeMsgId::new))
            .flatten();
        let is_reply = reply_to.is_some();
        let msgtype = content.get("msgtype")?.as_str()?;
        let kind = match msgtype {
            "m.emote" => EventKind::Action,
            "m.notice" => EventKind::Notice,
            _ => EventKind::Message,
        };
        let mut attachments = Vec::new();
        let mut text = text_of(content, is_reply);
        if matches!(msgtype, "m.image" | "m.file" | "m.video" | "m.audio") {
            let name = content
                .get("filename")
                .or_else(|| content.get("body"))
                .and_then(Value::as_str)
                .unwrap_or("file")
                .to_owned();
            let url = content.get("url").and_then(Value::as_str)?;
            let info = content.get("info");
            attachments.push(Attachment {
                url: self.media_url(url, &name),
                mime_type: info
                    .and_then(|i| i.get("mimetype"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                size: info.and_then(|i| i.get("size")).and_then(Value::as_u64),
                name: name.clone(),
            });
            // The body of a file event is its file name unless a caption was given.
            if content.get("filename").is_none() || text.to_plain() == name {
                text = RichText::default();
            }
        }
        Some((kind, text, reply_to, thread, attachments))
    }

    /// `mxc://server/id` as a download URL of the homeserver.
    fn media_url(&self, mxc: &str, name: &str) -> String {
        match mxc.strip_prefix("mxc://") {
            Some(path) => format!(
                "{}/_matrix/media/v3/download/{path}/{}",
                self.homeserver,
                percent_encode(name)
            ),
            None => mxc.to_owned(),
        }
    }
}

fn text_of(content: &Value, is_reply: bool) -> RichText {
    let body = content
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let html = (content.get("format").and_then(Value::as_str) == Some("org.matrix.custom.html"))
        .then(|| content.get("formatted_body").and_then(Value::as_str))
        .flatten();
    format::parse(body, html, is_reply)
}

/// Joins, leaves and kicks: only real membership changes (not profile updates).
fn membership(event: &Value, sender: &str) -> Option<EventKind> {
    let target = event.get("state_key")?.as_str()?;
    let now = event.get("content")?.get("membership")?.as_str()?;
    let before = event
        .get("unsigned")
        .and_then(|u| u.get("prev_content"))
        .and_then(|c| c.get("membership"))
        .and_then(Value::as_str);
    let reason = event
        .get("content")
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    match (before, now) {
        (Some("join"), "join") => None,
        (_, "join") => Some(EventKind::Join),
        (Some("join"), "leave") if target != sender => Some(EventKind::Kick {
            user: target.to_owned(),
            reason,
        }),
        (Some("join"), "leave" | "ban") => Some(EventKind::Part { reason }),
        _ => None,
    }
}

fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn membership_changes_are_told_apart_from_profile_updates() {
        let event = |before: Option<&str>, now: &str, sender: &str| {
            json!({
                "state_key": "@a:x", "sender": sender,
                "content": { "membership": now },
                "unsigned": { "prev_content": before.map(|b| json!({ "membership": b })) },
            })
        };
        assert_eq!(
            membership(&event(None, "join", "@a:x"), "@a:x"),
            Some(EventKind::Join)
        );
        assert_eq!(
            membership(&event(Some("join"), "join", "@a:x"), "@a:x"),
            None
        );
        assert_eq!(
            membership(&event(Some("join"), "leave", "@a:x"), "@a:x"),
            Some(EventKind::Part { reason: None })
        );
        assert!(matches!(
            membership(&event(Some("join"), "leave", "@mod:x"), "@mod:x"),
            Some(EventKind::Kick { .. })
        ));
    }

    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(percent_encode("a b/c.txt"), "a%20b%2Fc.txt");
    }
}
