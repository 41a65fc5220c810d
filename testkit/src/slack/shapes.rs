//! The JSON Slack sends: message objects (as the Web API, history and events show
//! them), the `event_callback` wrapper, channel, user and user group objects,
//! `rich_text` blocks for human messages, the opaque cursors, and the summary a
//! failed wait prints.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::state::{Channel, State, Stored, User, Usergroup, now_secs};

impl State {
    /// A message as `chat.postMessage`, history and events show it.
    pub(super) fn message_json(&self, stored: &Stored) -> Value {
        let m = &stored.msg;
        let mut v = Map::new();
        v.insert("type".into(), json!("message"));
        if let Some(subtype) = &m.subtype {
            v.insert("subtype".into(), json!(subtype));
        }
        v.insert("text".into(), json!(m.text));
        if let Some(user) = &m.user {
            v.insert("user".into(), json!(user));
        }
        if let Some(bot_id) = &m.bot_id {
            v.insert("bot_id".into(), json!(bot_id));
        }
        if let Some(app_id) = &stored.app_id {
            v.insert("app_id".into(), json!(app_id));
        }
        if let Some(username) = &m.username {
            v.insert("username".into(), json!(username));
        }
        if let Some(emoji) = &m.icon_emoji {
            v.insert("icons".into(), json!({ "emoji": emoji }));
        } else if let Some(url) = &m.icon_url {
            v.insert(
                "icons".into(),
                json!({ "image_36": url, "image_48": url, "image_72": url }),
            );
        }
        v.insert("ts".into(), json!(m.ts));
        let is_human = m.bot_id.is_none() && m.subtype.as_deref() != Some("channel_join");
        if is_human {
            if let Some(id) = &stored.client_msg_id {
                v.insert("client_msg_id".into(), json!(id));
            }
            v.insert("team".into(), json!(self.team_id));
            if !m.text.is_empty() && m.subtype.as_deref() != Some("me_message") {
                v.insert("blocks".into(), rich_text(&m.text));
            }
        } else if m.user.is_some() && m.bot_id.is_some() {
            // A plain post of the bot user: attributed to it, with its profile.
            v.insert("team".into(), json!(self.team_id));
            v.insert("bot_profile".into(), self.bot_profile());
        }
        if !m.files.is_empty() {
            let files: Vec<Value> = m.files.iter().map(|f| self.file_json(f, m)).collect();
            v.insert("files".into(), json!(files));
            v.insert("upload".into(), json!(true));
            v.insert("display_as_bot".into(), json!(false));
        }
        if let Some((user, ts)) = &stored.edited_by {
            v.insert("edited".into(), json!({ "user": user, "ts": ts }));
        }
        if let Some(thread_ts) = &m.thread_ts {
            v.insert("thread_ts".into(), json!(thread_ts));
            let parent = self.find(&m.channel, thread_ts).map(|i| &self.messages[i]);
            if let Some(parent) = parent {
                let author = parent.msg.user.as_ref().or(parent.msg.bot_id.as_ref());
                v.insert("parent_user_id".into(), json!(author));
                if m.subtype.as_deref() == Some("thread_broadcast") {
                    v.insert("root".into(), self.history_json(parent));
                }
            }
        } else {
            self.add_thread_info(&mut v, m.channel.as_str(), &m.ts);
        }
        Value::Object(v)
    }

    /// A message as `conversations.history` lists it: a deleted thread parent
    /// with live replies shows as a tombstone.
    pub(super) fn history_json(&self, stored: &Stored) -> Value {
        let m = &stored.msg;
        if m.deleted {
            let mut v = Map::new();
            v.insert("type".into(), json!("message"));
            v.insert("subtype".into(), json!("tombstone"));
            v.insert("text".into(), json!("This message was deleted."));
            v.insert("user".into(), json!("USLACKBOT"));
            v.insert("hidden".into(), json!(true));
            v.insert("ts".into(), json!(m.ts));
            self.add_thread_info(&mut v, &m.channel, &m.ts);
            return Value::Object(v);
        }
        self.message_json(stored)
    }

    /// A thread parent's `thread_ts`, `reply_count`, `reply_users`... if it has replies.
    fn add_thread_info(&self, v: &mut Map<String, Value>, channel: &str, ts: &str) {
        let replies = self.replies(channel, ts);
        let Some(latest) = replies.last() else {
            return;
        };
        let mut users: Vec<&str> = Vec::new();
        for reply in &replies {
            let author = reply.msg.user.as_deref().or(reply.msg.bot_id.as_deref());
            if let Some(author) = author
                && !users.contains(&author)
            {
                users.push(author);
            }
        }
        v.insert("thread_ts".into(), json!(ts));
        v.insert("reply_count".into(), json!(replies.len()));
        v.insert("reply_users_count".into(), json!(users.len()));
        v.insert("latest_reply".into(), json!(latest.msg.ts));
        v.insert("reply_users".into(), json!(users));
        v.insert("is_locked".into(), json!(false));
        v.insert("subscribed".into(), json!(false));
    }

    /// The `message` event of a stored message.
    pub(super) fn message_event(&self, index: usize) -> Value {
        let stored = &self.messages[index];
        let mut event = self.message_json(stored);
        event["channel"] = json!(stored.msg.channel);
        event["event_ts"] = json!(stored.msg.ts);
        event["channel_type"] = json!("channel");
        event
    }

    /// The `event_callback` wrapper of the Events API (and of Socket Mode payloads).
    pub(super) fn wrap_event(&self, event: Value, event_id: &str) -> Value {
        let context = json!({ "team": self.team_id, "app": self.app_id, "event": event_id });
        json!({
            "token": self.verification_token,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "context_enterprise_id": null,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": now_secs(),
            "authorizations": [{
                "enterprise_id": null,
                "team_id": self.team_id,
                "user_id": self.bot_user_id,
                "is_bot": true,
                "is_enterprise_install": false,
            }],
            "is_ext_shared_channel": false,
            "event_context": format!("4-{}", b64_encode(context.to_string().as_bytes())),
        })
    }

    pub(super) fn bot_profile(&self) -> Value {
        let icon = format!("{}/avatars/{}.png", self.base_url, self.bot_id);
        json!({
            "id": self.bot_id,
            "deleted": false,
            "name": self.options.bot_name,
            "updated": now_secs(),
            "app_id": self.app_id,
            "icons": { "image_36": icon, "image_48": icon, "image_72": icon },
            "team_id": self.team_id,
        })
    }

    fn file_json(&self, file: &super::SharedFile, m: &super::Message) -> Value {
        let created = m.ts.split('.').next().and_then(|s| s.parse::<i64>().ok());
        json!({
            "id": file.id,
            "created": created,
            "timestamp": created,
            "name": file.name,
            "title": file.title,
            "mimetype": file.mimetype,
            "filetype": file.name.rsplit_once('.').map_or("", |(_, ext)| ext),
            "user": m.user,
            "user_team": self.team_id,
            "editable": false,
            "mode": "hosted",
            "is_external": false,
            "is_public": true,
            "public_url_shared": false,
            "display_as_bot": false,
            "url_private": file.url,
            "url_private_download": file.url,
            "permalink": file.url,
        })
    }

    /// A public channel object as `conversations.*` return it.
    pub(super) fn channel_json(&self, channel: &Channel) -> Value {
        json!({
            "id": channel.id,
            "name": channel.name,
            "is_channel": true,
            "is_group": false,
            "is_im": false,
            "is_mpim": false,
            "is_private": false,
            "created": channel.created,
            "is_archived": channel.archived,
            "is_general": channel.name == "general",
            "unlinked": 0,
            "name_normalized": channel.name,
            "is_shared": false,
            "is_org_shared": false,
            "is_ext_shared": false,
            "is_pending_ext_shared": false,
            "pending_shared": [],
            "context_team_id": self.team_id,
            "updated": channel.created * 1000,
            "parent_conversation": null,
            "creator": self.bot_user_id,
            "shared_team_ids": [self.team_id],
            "pending_connected_team_ids": [],
            "is_member": channel.members.contains(&self.bot_user_id),
            "topic": { "value": "", "creator": "", "last_set": 0 },
            "purpose": { "value": "", "creator": "", "last_set": 0 },
            "previous_names": [],
            "num_members": channel.members.len(),
        })
    }

    /// A user object as `users.info` returns it.
    pub(super) fn user_json(&self, user: &User) -> Value {
        let avatar = format!("{}/avatars/{}.png", self.base_url, user.id);
        let mut profile = json!({
            "title": "",
            "phone": "",
            "skype": "",
            "real_name": user.real_name,
            "real_name_normalized": user.real_name,
            "display_name": user.display_name,
            "display_name_normalized": user.display_name,
            "fields": null,
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "avatar_hash": "g0000000000",
            "first_name": user.real_name,
            "last_name": "",
            "image_24": avatar,
            "image_32": avatar,
            "image_48": avatar,
            "image_72": avatar,
            "image_192": avatar,
            "image_512": avatar,
            "team": self.team_id,
        });
        if user.is_bot {
            profile["bot_id"] = json!(self.bot_id);
            profile["api_app_id"] = json!(self.app_id);
            profile["always_active"] = json!(false);
        }
        json!({
            "id": user.id,
            "team_id": self.team_id,
            "name": user.name,
            "deleted": false,
            "color": "9f69e7",
            "real_name": user.real_name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": false,
            "is_owner": false,
            "is_primary_owner": false,
            "is_restricted": false,
            "is_ultra_restricted": false,
            "is_bot": user.is_bot,
            "is_app_user": false,
            "updated": user.updated,
            "is_email_confirmed": !user.is_bot,
            "who_can_share_contact_card": "EVERYONE",
        })
    }

    /// A user group as `usergroups.list` returns it.
    pub(super) fn usergroup_json(&self, group: &Usergroup, include_users: bool) -> Value {
        let mut v = json!({
            "id": group.id,
            "team_id": self.team_id,
            "is_usergroup": true,
            "is_subteam": true,
            "name": group.handle,
            "description": "",
            "handle": group.handle,
            "is_external": false,
            "date_create": group.created,
            "date_update": group.created,
            "date_delete": 0,
            "auto_type": null,
            "auto_provision": false,
            "enterprise_subteam_id": "",
            "created_by": self.bot_user_id,
            "updated_by": self.bot_user_id,
            "deleted_by": null,
            "prefs": { "channels": [], "groups": [] },
            "user_count": 0,
        });
        if include_users {
            v["users"] = json!([]);
        }
        v
    }
}

/// The `rich_text` block a Slack client sends with a message, from its markup:
/// `<@U..>`, `<#C..|name>`, `<!here>`, `<!subteam^S..>` and links become their
/// elements, the rest text.
pub(super) fn rich_text(text: &str) -> Value {
    let mut elements = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        if start > 0 {
            elements.push(json!({ "type": "text", "text": unescape(&rest[..start]) }));
        }
        let inner = &rest[start + 1..start + len];
        let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
        elements.push(if let Some(user) = target.strip_prefix('@') {
            json!({ "type": "user", "user_id": user })
        } else if let Some(channel) = target.strip_prefix('#') {
            json!({ "type": "channel", "channel_id": channel })
        } else if let Some(group) = target.strip_prefix("!subteam^") {
            json!({ "type": "usergroup", "usergroup_id": group })
        } else if let Some(range) = target.strip_prefix('!') {
            json!({ "type": "broadcast", "range": range })
        } else if label.is_empty() {
            json!({ "type": "link", "url": target })
        } else {
            json!({ "type": "link", "url": target, "text": label })
        });
        rest = &rest[start + len + 1..];
    }
    if !rest.is_empty() {
        elements.push(json!({ "type": "text", "text": unescape(rest) }));
    }
    let block_id = super::state::random_string(
        4,
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    );
    json!([{
        "type": "rich_text",
        "block_id": block_id,
        "elements": [{ "type": "rich_text_section", "elements": elements }],
    }])
}

/// Markup escapes undone: rich text carries the characters themselves.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Slack's cursors are (`dGVhbTpDMDYx...`).
pub(super) fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(super) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        let value = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Lowercase hex, for signatures.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// What a timed-out wait reports.
pub(super) fn describe(st: &State) -> String {
    let mut out = String::from("the fake saw:");
    for channel in &st.channels {
        let _ = write!(out, "\n  #{} ({}):", channel.name, channel.id);
        for m in st.messages.iter().filter(|m| m.msg.channel == channel.id) {
            let m = &m.msg;
            let author = m.user.as_deref().or(m.bot_id.as_deref()).unwrap_or("?");
            let text: String = m.text.chars().take(80).collect();
            let _ = write!(
                out,
                "\n    {} {author} subtype={:?} thread={:?}{}{}: {text:?}",
                m.ts,
                m.subtype,
                m.thread_ts,
                if m.edited { " [edited]" } else { "" },
                if m.deleted { " [deleted]" } else { "" },
            );
        }
    }
    let _ = write!(out, "\n  events URL: {:?}; deliveries:", st.events_url);
    for d in st.deliveries.iter().rev().take(10).rev() {
        let _ = write!(
            out,
            "\n    {} {} retry {:?} -> {}",
            d.event_id, d.event_type, d.retry_num, d.status
        );
    }
    let _ = write!(
        out,
        "\n  sockets: {} open, {} opened ever, {} unacked envelopes",
        st.sockets.len(),
        st.sockets_opened,
        st.pending.len()
    );
    let _ = write!(out, "\n  Web API calls: {:?}", st.calls);
    let _ = write!(
        out,
        "\n  outgoing webhook results: {:?}",
        st.outgoing_results
    );
    out
}
