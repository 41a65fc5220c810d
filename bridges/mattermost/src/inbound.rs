//! Native -> events: a Mattermost post (created, edited or deleted, from the websocket
//! or from catch-up) becomes one normalised `Inbound` event.

use crate::api::{FileInfo, Post, Reaction};
use crate::client::Client;
use crate::format;
use crate::reaction::ReactionId;
use std::collections::HashMap;
use std::sync::Mutex;
use switchboard_sdk::{
    Attachment, EventKind, Inbound, NativeMsgId, NetworkId, RichText, RoomId, RoomKey, Sender,
};

/// What happened to a post.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Edited,
    Deleted,
}

impl Change {
    /// The websocket event that reports this change.
    pub fn from_event(event: &str) -> Option<Self> {
        match event {
            "posted" => Some(Change::Created),
            "post_edited" => Some(Change::Edited),
            "post_deleted" => Some(Change::Deleted),
            _ => None,
        }
    }
}

/// Translates posts for one connected session: knows the bridged channels, the
/// bridge's own user, and caches the users it has looked up.
pub struct Translator {
    pub network: NetworkId,
    /// channel id -> the room as routes name it.
    pub rooms: HashMap<String, RoomId>,
    /// The bridge's own user id: its posts are never relayed back.
    pub own_user_id: String,
    pub client: Client,
    /// channel id -> how logs name it ("Town Square (town-square)").
    pub channel_names: HashMap<String, String>,
    users: Mutex<HashMap<String, Sender>>,
}

impl Translator {
    pub fn new(
        network: NetworkId,
        rooms: HashMap<String, RoomId>,
        own_user_id: String,
        client: Client,
    ) -> Self {
        Self {
            network,
            rooms,
            own_user_id,
            client,
            channel_names: HashMap::new(),
            users: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_channel_names(mut self, names: HashMap<String, String>) -> Self {
        self.channel_names = names;
        self
    }

    /// The event for one change of `post`; `None` for channels that are not bridged
    /// and for system posts that mean nothing elsewhere.
    pub async fn translate(&self, change: Change, post: &Post) -> Option<Inbound> {
        let room = self.rooms.get(&post.channel_id)?.clone();
        let mut sender = self.sender(&post.user_id).await;
        // Posts the bridge made carry the remote name in props, but are still ours.
        sender.is_self = post.user_id == self.own_user_id;
        let post_id = NativeMsgId::new(post.id.clone());
        let (kind, native_id) = match change {
            Change::Created => (created_kind(post)?, post_id),
            Change::Edited => (
                EventKind::Edit { target: post_id },
                NativeMsgId::new(format!("{}/edit/{}", post.id, post.edit_at)),
            ),
            Change::Deleted => (
                EventKind::Delete { target: post_id },
                NativeMsgId::new(format!("{}/delete", post.id)),
            ),
        };
        let content = match (&kind, change) {
            (_, Change::Deleted) => RichText::default(),
            (EventKind::Join | EventKind::Part { .. }, _) => RichText::default(),
            (EventKind::Action, _) => format::parse(strip_emphasis(post.text())),
            _ => format::parse(post.text()),
        };
        let root = (!post.root_id.is_empty()).then(|| NativeMsgId::new(post.root_id.clone()));
        let attachments = if change == Change::Created {
            self.attachments(post).await
        } else {
            Vec::new()
        };
        Some(Inbound {
            room: RoomKey {
                network: self.network.clone(),
                room,
            },
            sender,
            native_id: Some(native_id),
            timestamp_ms: match change {
                Change::Created => post.create_at,
                _ => post.update_at.max(post.create_at),
            },
            kind,
            content,
            reply_to: root.clone(),
            thread: root,
            attachments,
        })
    }

    /// The event for a reaction added to or removed from a post in `channel_id`;
    /// `None` for channels that are not bridged. Taking a reaction back deletes it.
    pub async fn translate_reaction(
        &self,
        channel_id: &str,
        added: bool,
        reaction: &Reaction,
    ) -> Option<Inbound> {
        let room = self.rooms.get(channel_id)?.clone();
        let mut sender = self.sender(&reaction.user_id).await;
        sender.is_self = reaction.user_id == self.own_user_id;
        let id = ReactionId::of(reaction).native();
        let now = switchboard_sdk::event::now_ms();
        let (kind, native_id) = if added {
            let key = switchboard_sdk::emoji::key_from_name(&reaction.emoji_name);
            let target = NativeMsgId::new(reaction.post_id.clone());
            (EventKind::Reaction { target, key }, id)
        } else {
            // The server sends no time with a removal; the id only has to be new.
            let removal = NativeMsgId::new(format!("{}/removed/{now}", id.as_str()));
            (EventKind::Delete { target: id }, removal)
        };
        Some(Inbound {
            room: RoomKey {
                network: self.network.clone(),
                room,
            },
            sender,
            native_id: Some(native_id),
            timestamp_ms: if reaction.create_at > 0 {
                reaction.create_at
            } else {
                now
            },
            kind,
            content: RichText::default(),
            reply_to: None,
            thread: None,
            attachments: Vec::new(),
        })
    }

    async fn sender(&self, user_id: &str) -> Sender {
        if let Some(known) = self.lock_users().get(user_id) {
            return known.clone();
        }
        let avatar = format!("{}/api/v4/users/{user_id}/image", self.client.base());
        let sender = match self.client.user(user_id).await {
            Ok(user) => Sender {
                id: user.id.clone(),
                display_name: user.username.clone(),
                is_self: false,
                avatar_url: Some(avatar),
            },
            // Relay under the id rather than lose the message; try the name next time.
            Err(error) => {
                tracing::warn!(%error, user_id, "Mattermost: cannot look up a user");
                return Sender::user(user_id, user_id);
            }
        };
        self.lock_users().insert(user_id.to_owned(), sender.clone());
        sender
    }

    fn lock_users(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sender>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Files as links: the post's metadata lists them; older servers only give ids.
    async fn attachments(&self, post: &Post) -> Vec<Attachment> {
        let mut infos: Vec<FileInfo> = post
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.files.clone())
            .unwrap_or_default();
        if infos.is_empty() {
            for id in post.file_ids.iter().flatten() {
                match self.client.file_info(id).await {
                    Ok(info) => infos.push(info),
                    Err(error) => {
                        tracing::warn!(%error, file = %id, "Mattermost: no info for a file");
                        infos.push(FileInfo {
                            id: id.clone(),
                            name: id.clone(),
                            ..FileInfo::default()
                        });
                    }
                }
            }
        }
        let mut attachments = Vec::with_capacity(infos.len());
        for info in infos {
            attachments.push(Attachment {
                url: self.client.file_link(&info.id).await,
                name: info.name,
                mime_type: (!info.mime_type.is_empty()).then_some(info.mime_type),
                size: (info.size > 0).then_some(info.size),
            });
        }
        attachments
    }
}

/// The kind of a new post; `None` for system posts other than joins and leaves.
fn created_kind(post: &Post) -> Option<EventKind> {
    match post.kind.as_str() {
        "" => Some(EventKind::Message),
        "me" => Some(EventKind::Action),
        "system_join_channel" => Some(EventKind::Join),
        "system_leave_channel" => Some(EventKind::Part { reason: None }),
        _ if post.is_system() => None,
        // Other custom types (plugins) still carry a readable message.
        _ => Some(EventKind::Message),
    }
}

/// `/me` posts are stored wrapped in emphasis markers.
fn strip_emphasis(message: &str) -> &str {
    for marker in ["*", "_"] {
        if let Some(inner) = message
            .strip_prefix(marker)
            .and_then(|rest| rest.strip_suffix(marker))
            && !inner.is_empty()
        {
            return inner;
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn me_posts_lose_their_emphasis() {
        assert_eq!(strip_emphasis("*waves*"), "waves");
        assert_eq!(strip_emphasis("waves"), "waves");
        assert_eq!(strip_emphasis("**"), "**");
    }

    #[test]
    fn system_posts_other_than_membership_are_not_relayed() {
        let post = |kind: &str| Post {
            kind: kind.into(),
            ..Post::default()
        };
        assert_eq!(created_kind(&post("")), Some(EventKind::Message));
        assert_eq!(
            created_kind(&post("system_join_channel")),
            Some(EventKind::Join)
        );
        assert_eq!(created_kind(&post("system_header_change")), None);
    }
}
