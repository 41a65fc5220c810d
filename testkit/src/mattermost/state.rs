//! The fake's model: what one Mattermost instance holds, and the post
//! operations (create, patch, delete, broadcast, outgoing webhook calls) that
//! the REST routes and the test-side helpers share.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{
    AppError, FROM_BOT, FROM_WEBHOOK, MAX_POST_CHARS, OVERRIDE_ICON_URL, OVERRIDE_USERNAME, Post,
    new_id, now_ms,
};

pub(super) struct Team {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) display_name: String,
    pub(super) create_at: i64,
    pub(super) invite_id: String,
}

pub(super) struct Channel {
    pub(super) id: String,
    pub(super) team_id: String,
    pub(super) name: String,
    pub(super) display_name: String,
    pub(super) create_at: i64,
    pub(super) members: BTreeSet<String>,
}

pub(super) struct User {
    pub(super) id: String,
    pub(super) username: String,
    pub(super) is_bot: bool,
    pub(super) roles: String,
    pub(super) create_at: i64,
    pub(super) password: Option<String>,
}

impl User {
    pub(super) fn is_admin(&self) -> bool {
        self.roles.split(' ').any(|r| r == "system_admin")
    }
}

pub(super) struct StoredFile {
    pub(super) info: FileInfo,
    pub(super) bytes: Vec<u8>,
    pub(super) public_hash: String,
}

#[derive(Clone, Debug, Serialize)]
pub(super) struct FileInfo {
    pub(super) id: String,
    pub(super) user_id: String,
    pub(super) channel_id: String,
    pub(super) post_id: String,
    pub(super) create_at: i64,
    pub(super) update_at: i64,
    pub(super) delete_at: i64,
    pub(super) name: String,
    pub(super) extension: String,
    pub(super) size: usize,
    pub(super) mime_type: String,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) has_preview_image: bool,
    pub(super) mini_preview: Option<String>,
    pub(super) remote_id: String,
    pub(super) archived: bool,
}

pub(super) struct IncomingHook {
    pub(super) id: String,
    pub(super) channel_id: String,
    pub(super) team_id: String,
    pub(super) owner: String,
}

pub(super) struct OutgoingHook {
    pub(super) channel_id: String,
    pub(super) team_id: String,
    pub(super) callback_url: String,
    pub(super) token: String,
    pub(super) json: bool,
    pub(super) owner: String,
}

pub(super) struct Socket {
    pub(super) user_id: String,
    pub(super) tx: mpsc::UnboundedSender<Outbound>,
}

pub(super) enum Outbound {
    Event(Value),
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Origin {
    User,
    Webhook,
    System,
}

pub(super) struct NewPost {
    pub(super) user_id: String,
    pub(super) channel_id: String,
    pub(super) message: String,
    pub(super) root_id: String,
    pub(super) r#type: String,
    pub(super) props: Map<String, Value>,
    pub(super) file_ids: Vec<String>,
    pub(super) pending_post_id: String,
    pub(super) origin: Origin,
}

impl NewPost {
    pub(super) fn by_user(user_id: &str, channel_id: &str, message: &str, root_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            channel_id: channel_id.to_owned(),
            message: message.to_owned(),
            root_id: root_id.to_owned(),
            r#type: String::new(),
            props: Map::new(),
            file_ids: Vec::new(),
            pending_post_id: String::new(),
            origin: Origin::User,
        }
    }

    pub(super) fn system(user_id: &str, channel_id: &str, kind: &str) -> Self {
        let mut post = Self::by_user(user_id, channel_id, "", "");
        post.r#type = kind.to_owned();
        post.origin = Origin::System;
        post
    }
}

#[derive(Default)]
pub(super) struct PostPatch {
    pub(super) message: Option<String>,
    pub(super) props: Option<Map<String, Value>>,
    pub(super) file_ids: Option<Vec<String>>,
    pub(super) is_pinned: Option<bool>,
}

/// An outgoing webhook call, prepared under the lock and sent outside it.
pub(super) struct OutgoingCall {
    pub(super) url: String,
    pub(super) json: bool,
    pub(super) payload: Vec<(&'static str, Value)>,
    pub(super) post_id: String,
    pub(super) channel_id: String,
    pub(super) owner: String,
}

pub(super) struct State {
    pub(super) site_url: String,
    pub(super) teams: Vec<Team>,
    pub(super) channels: Vec<Channel>,
    pub(super) users: Vec<User>,
    /// Personal access tokens and login sessions, to user ids.
    pub(super) tokens: HashMap<String, String>,
    pub(super) posts: Vec<Post>,
    pub(super) files: HashMap<String, StoredFile>,
    pub(super) incoming_hooks: Vec<IncomingHook>,
    pub(super) outgoing_hooks: Vec<OutgoingHook>,
    pub(super) sockets: HashMap<u64, Socket>,
    pub(super) next_socket: u64,
    pub(super) sessions_ever: usize,
    pub(super) allow_name_override: bool,
    pub(super) allow_icon_override: bool,
    pub(super) refuse_websockets: bool,
    /// Events still to be lost on their way to websocket clients (their `seq` is used).
    pub(super) lose_events: u32,
    pub(super) fail_rest: Option<u16>,
    pub(super) rate_limit: Option<u32>,
    pub(super) rate_window: Option<(Instant, u32)>,
    pub(super) delay: Option<Duration>,
    pub(super) request_log: Vec<(String, String, u16)>,
    pub(super) webhook_results: Vec<u16>,
    pub(super) last_stamp: i64,
    /// How far the server's clock is from the real time (ms), for tests of a
    /// clock that runs ahead.
    pub(super) clock_skew_ms: i64,
    /// The admin who owns the webhooks, as the integration's creator would.
    pub(super) hook_owner: String,
    pub(super) reactions: Vec<super::reactions::Reaction>,
}

impl State {
    pub(super) fn new(site_url: String) -> Self {
        let hook_owner = new_id();
        Self {
            site_url,
            teams: Vec::new(),
            channels: Vec::new(),
            users: vec![User {
                id: hook_owner.clone(),
                username: "integrations-admin".to_owned(),
                is_bot: false,
                roles: "system_admin system_user".to_owned(),
                create_at: now_ms(),
                password: None,
            }],
            tokens: HashMap::new(),
            posts: Vec::new(),
            files: HashMap::new(),
            incoming_hooks: Vec::new(),
            outgoing_hooks: Vec::new(),
            sockets: HashMap::new(),
            next_socket: 0,
            lose_events: 0,
            sessions_ever: 0,
            allow_name_override: false,
            allow_icon_override: false,
            refuse_websockets: false,
            fail_rest: None,
            rate_limit: None,
            rate_window: None,
            delay: None,
            request_log: Vec::new(),
            webhook_results: Vec::new(),
            last_stamp: 0,
            clock_skew_ms: 0,
            hook_owner,
            reactions: Vec::new(),
        }
    }

    /// A millisecond timestamp strictly after every earlier one since the clock
    /// was last set, so that `since` queries see each change exactly once. (A clock
    /// set back, as after an NTP correction, stamps earlier than before.)
    pub(super) fn stamp(&mut self) -> i64 {
        self.last_stamp = (now_ms() + self.clock_skew_ms).max(self.last_stamp + 1);
        self.last_stamp
    }

    pub(super) fn team(&self, id: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.id == id)
    }

    pub(super) fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    pub(super) fn channel_mut(&mut self, id: &str) -> Option<&mut Channel> {
        self.channels.iter_mut().find(|c| c.id == id)
    }

    pub(super) fn channel_or_panic(&self, id: &str) -> &Channel {
        self.channel(id)
            .unwrap_or_else(|| panic!("fake Mattermost: unknown channel {id}"))
    }

    pub(super) fn is_member(&self, channel_id: &str, user_id: &str) -> bool {
        self.channel(channel_id)
            .is_some_and(|c| c.members.contains(user_id))
    }

    pub(super) fn ensure_member(&mut self, channel_id: &str, user_id: &str) {
        assert!(
            self.user(user_id).is_some(),
            "fake Mattermost: unknown user {user_id}"
        );
        self.channel_mut(channel_id)
            .unwrap_or_else(|| panic!("fake Mattermost: unknown channel {channel_id}"))
            .members
            .insert(user_id.to_owned());
    }

    pub(super) fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub(super) fn user_mut(&mut self, id: &str) -> &mut User {
        self.users
            .iter_mut()
            .find(|u| u.id == id)
            .unwrap_or_else(|| panic!("fake Mattermost: unknown user {id}"))
    }

    pub(super) fn user_by_name(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    pub(super) fn post_index(&self, id: &str) -> Option<usize> {
        self.posts.iter().position(|p| p.id == id)
    }

    pub(super) fn channel_posts(&self, channel_id: &str) -> Vec<Post> {
        self.posts
            .iter()
            .filter(|p| p.channel_id == channel_id)
            .cloned()
            .collect()
    }

    pub(super) fn store_file(
        &mut self,
        user_id: &str,
        channel_id: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> String {
        let id = new_id();
        let now = now_ms();
        let extension = name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        let (width, height) = png_size(&bytes).unwrap_or((0, 0));
        let info = FileInfo {
            id: id.clone(),
            user_id: user_id.to_owned(),
            channel_id: channel_id.to_owned(),
            post_id: String::new(),
            create_at: now,
            update_at: now,
            delete_at: 0,
            name: name.to_owned(),
            mime_type: mime_type(&extension).to_owned(),
            extension,
            size: bytes.len(),
            width,
            height,
            has_preview_image: width > 0,
            mini_preview: None,
            remote_id: String::new(),
            archived: false,
        };
        self.files.insert(
            id.clone(),
            StoredFile {
                info,
                bytes,
                public_hash: new_id() + &new_id(),
            },
        );
        id
    }

    /// Attaches the files the author uploaded to this channel and that no post
    /// holds yet; others are dropped silently, as the server does.
    pub(super) fn attach_files(
        &mut self,
        post_id: &str,
        user_id: &str,
        channel_id: &str,
        ids: &[String],
    ) -> Vec<String> {
        let mut attached = Vec::new();
        for id in ids {
            if let Some(file) = self.files.get_mut(id) {
                let info = &mut file.info;
                if info.user_id == user_id
                    && info.channel_id == channel_id
                    && info.post_id.is_empty()
                    && !attached.contains(id)
                {
                    info.post_id = post_id.to_owned();
                    attached.push(id.clone());
                }
            }
        }
        attached
    }

    pub(super) fn metadata(&self, file_ids: &[String]) -> Value {
        let files: Vec<&FileInfo> = file_ids
            .iter()
            .filter_map(|id| self.files.get(id).map(|f| &f.info))
            .collect();
        if files.is_empty() {
            json!({})
        } else {
            json!({ "files": files })
        }
    }

    /// Drops the props a user may not set; keeps the rest as sent.
    pub(super) fn filter_user_props(&self, props: &mut Map<String, Value>) {
        if !self.allow_name_override {
            props.remove(OVERRIDE_USERNAME);
        }
        if !self.allow_icon_override {
            props.remove(OVERRIDE_ICON_URL);
        }
    }

    /// Returns the stored post and whether it is new (false when a retry with
    /// the same `pending_post_id` found the first one, as the server dedupes).
    pub(super) fn insert_post(&mut self, mut new: NewPost) -> Result<(Post, bool), AppError> {
        if self.channel(&new.channel_id).is_none() {
            return Err(AppError::channel_not_found());
        }
        let author_is_bot = match self.user(&new.user_id) {
            Some(user) => user.is_bot,
            None => return Err(AppError::user_not_found()),
        };
        check_length(&new.message)?;
        if !new.pending_post_id.is_empty()
            && let Some(existing) = self
                .posts
                .iter()
                .find(|p| p.pending_post_id == new.pending_post_id && p.user_id == new.user_id)
        {
            return Ok((existing.clone(), false));
        }
        if !new.root_id.is_empty() {
            let root_ok = self.post_index(&new.root_id).is_some_and(|i| {
                let root = &self.posts[i];
                root.channel_id == new.channel_id && root.delete_at == 0 && root.root_id.is_empty()
            });
            if !root_ok {
                return Err(AppError::bad_request(
                    "api.post.create_post.root_id.app_error",
                    "Invalid RootId parameter.",
                ));
            }
        }
        if new.origin == Origin::User {
            self.filter_user_props(&mut new.props);
            if author_is_bot {
                new.props.insert(FROM_BOT.into(), json!("true"));
            }
        }
        let id = new_id();
        let stamp = self.stamp();
        let file_ids = self.attach_files(&id, &new.user_id, &new.channel_id, &new.file_ids);
        let mut post = Post {
            id,
            create_at: stamp,
            update_at: stamp,
            user_id: new.user_id,
            channel_id: new.channel_id,
            root_id: new.root_id,
            hashtags: hashtags(&new.message),
            message: new.message,
            r#type: new.r#type,
            props: new.props,
            metadata: Some(self.metadata(&file_ids)),
            file_ids,
            pending_post_id: new.pending_post_id,
            ..Post::default()
        };
        if !post.root_id.is_empty() {
            // The server touches the root's update_at on every reply, so a
            // `since` query returns the (unedited) root again.
            let root = self.post_index(&post.root_id).expect("root checked above");
            let root = &mut self.posts[root];
            root.update_at = stamp;
            root.reply_count += 1;
            root.last_reply_at = stamp;
            post.reply_count = root.reply_count;
            post.last_reply_at = stamp;
        }
        self.posts.push(post.clone());
        Ok((post, true))
    }

    pub(super) fn apply_patch(
        &mut self,
        post_id: &str,
        patch: PostPatch,
    ) -> Result<Post, AppError> {
        let index = self
            .post_index(post_id)
            .filter(|&i| self.posts[i].delete_at == 0)
            .ok_or_else(AppError::post_not_found)?;
        if let Some(message) = &patch.message {
            check_length(message)?;
        }
        let stamp = self.stamp();
        let (author, channel_id) = {
            let post = &self.posts[index];
            (post.user_id.clone(), post.channel_id.clone())
        };
        let attached = patch
            .file_ids
            .as_ref()
            .map(|ids| self.attach_files(post_id, &author, &channel_id, ids));
        let props = patch.props.map(|mut props| {
            self.filter_user_props(&mut props);
            props
        });
        let metadata = attached.as_ref().map(|ids| {
            let mut all = self.posts[index].file_ids.clone();
            all.extend(ids.iter().cloned());
            (all.clone(), self.metadata(&all))
        });
        let post = &mut self.posts[index];
        if let Some(message) = patch.message
            && message != post.message
        {
            // edit_at moves only when the text changes, as on the server.
            post.hashtags = hashtags(&message);
            post.message = message;
            post.edit_at = stamp;
        }
        if let Some(mut props) = props {
            for sticky in [FROM_WEBHOOK, FROM_BOT] {
                if let Some(value) = post.props.get(sticky) {
                    props.insert(sticky.into(), value.clone());
                }
            }
            post.props = props;
        }
        if let Some((file_ids, metadata)) = metadata {
            post.file_ids = file_ids;
            post.metadata = Some(metadata);
        }
        if let Some(pinned) = patch.is_pinned {
            post.is_pinned = pinned;
        }
        post.update_at = stamp;
        Ok(post.clone())
    }

    /// Marks the post and its replies deleted; returns the post as it was.
    pub(super) fn mark_deleted(
        &mut self,
        post_id: &str,
        deleted_by: &str,
    ) -> Result<Post, AppError> {
        let index = self
            .post_index(post_id)
            .filter(|&i| self.posts[i].delete_at == 0)
            .ok_or_else(AppError::post_not_found)?;
        let before = self.posts[index].clone();
        let stamp = self.stamp();
        for post in self.posts.iter_mut() {
            if post.delete_at == 0 && (post.id == post_id || post.root_id == post_id) {
                post.delete_at = stamp;
                post.update_at = stamp;
                if post.id == post_id {
                    post.props.insert("deleteBy".into(), json!(deleted_by));
                }
                for file_id in &post.file_ids {
                    if let Some(file) = self.files.get_mut(file_id) {
                        file.info.delete_at = stamp;
                    }
                }
            }
        }
        if let Some(root) = self.post_index(&before.root_id) {
            let root = &mut self.posts[root];
            root.reply_count = (root.reply_count - 1).max(0);
        }
        Ok(before)
    }

    pub(super) fn broadcast_posted(&self, post: &Post, set_online: bool) {
        let Some(channel) = self.channel(&post.channel_id) else {
            return;
        };
        let sender_name = match (post.prop(FROM_WEBHOOK), post.prop(OVERRIDE_USERNAME)) {
            _ if post.is_system() => "System".to_owned(),
            (Some("true"), Some(name)) => name.to_owned(),
            _ => self
                .user(&post.user_id)
                .map(|u| format!("@{}", u.username))
                .unwrap_or_default(),
        };
        let mut data = json!({
            "channel_display_name": channel.display_name,
            "channel_name": channel.name,
            "channel_type": "O",
            "post": post_string(post),
            "sender_name": sender_name,
            "set_online": set_online,
            "team_id": channel.team_id,
        });
        if !post.file_ids.is_empty() {
            data["otherFile"] = json!("true");
            let image = post.file_ids.iter().any(|id| {
                self.files
                    .get(id)
                    .is_some_and(|f| f.info.mime_type.starts_with("image/"))
            });
            if image {
                data["image"] = json!("true");
            }
        }
        let event = event("posted", data, &post.channel_id);
        self.send_to_channel(&post.channel_id, &event, None);
    }

    /// Queues the event for every live socket of a channel member;
    /// `for_admins`, when given, goes to sysadmins instead.
    pub(super) fn send_to_channel(
        &self,
        channel_id: &str,
        event: &Value,
        for_admins: Option<&Value>,
    ) {
        let Some(channel) = self.channel(channel_id) else {
            return;
        };
        for socket in self.sockets.values() {
            if !channel.members.contains(&socket.user_id) {
                continue;
            }
            let admin = self.user(&socket.user_id).is_some_and(User::is_admin);
            let event = match for_admins {
                Some(admin_event) if admin => admin_event,
                _ => event,
            };
            let _ = socket.tx.send(Outbound::Event(event.clone()));
        }
    }

    pub(super) fn outgoing_calls(&self, post: &Post) -> Vec<OutgoingCall> {
        if post.is_system() {
            return Vec::new();
        }
        let Some(channel) = self.channel(&post.channel_id) else {
            return Vec::new();
        };
        let team_name = self
            .team(&channel.team_id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let user_name = self
            .user(&post.user_id)
            .map(|u| u.username.clone())
            .unwrap_or_default();
        self.outgoing_hooks
            .iter()
            .filter(|hook| hook.channel_id == post.channel_id)
            .map(|hook| OutgoingCall {
                url: hook.callback_url.clone(),
                json: hook.json,
                payload: vec![
                    ("token", json!(hook.token)),
                    ("team_id", json!(hook.team_id)),
                    ("team_domain", json!(team_name)),
                    ("channel_id", json!(post.channel_id)),
                    ("channel_name", json!(channel.name)),
                    ("timestamp", json!(post.create_at)),
                    ("user_id", json!(post.user_id)),
                    ("user_name", json!(user_name)),
                    ("post_id", json!(post.id)),
                    ("text", json!(post.message)),
                    ("trigger_word", json!("")),
                    ("file_ids", json!(post.file_ids.join(","))),
                ],
                post_id: post.id.clone(),
                channel_id: post.channel_id.clone(),
                owner: hook.owner.clone(),
            })
            .collect()
    }
}

pub(super) fn check_length(message: &str) -> Result<(), AppError> {
    if message.chars().count() > MAX_POST_CHARS {
        return Err(AppError::bad_request(
            "model.post.is_valid.message_length.app_error",
            "Invalid Message property for post.",
        ));
    }
    Ok(())
}

/// A websocket event without its per-connection `seq`, broadcast to a channel.
pub(super) fn event(name: &str, data: Value, channel_id: &str) -> Value {
    json!({
        "event": name,
        "data": data,
        "broadcast": broadcast("", channel_id),
    })
}

pub(super) fn broadcast(user_id: &str, channel_id: &str) -> Value {
    json!({
        "omit_users": null,
        "user_id": user_id,
        "channel_id": channel_id,
        "team_id": "",
        "connection_id": "",
        "omit_connection_id": "",
    })
}

/// Websocket events carry the post as a JSON string, not an object.
pub(super) fn post_string(post: &Post) -> String {
    serde_json::to_string(post).expect("a post always serialises")
}

pub(super) fn hashtags(message: &str) -> String {
    message
        .split_whitespace()
        .filter(|w| {
            w.len() > 3
                && w.starts_with('#')
                && w[1..].chars().next().is_some_and(char::is_alphabetic)
                && w[1..]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn mime_type(extension: &str) -> &'static str {
    match extension {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" | "log" => "text/plain",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

pub(super) fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}
