//! Slack message events as the core's `Inbound`: the same translation for the Events
//! API, Socket Mode and catch-up (`conversations.history`), with the names behind
//! `<@U..>`, `<#C..>` and `<!subteam^..>` looked up over the Web API first.

use crate::api::WebApi;
use crate::format::{self, Names, Reference};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use switchboard_sdk::{Attachment, EventKind, Inbound, NativeMsgId, RoomKey, Sender};

/// A Slack `message` event, or a message of `conversations.history` (which has no
/// `channel`): the fields the bridge reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlackMessage {
    #[serde(rename = "type")]
    pub kind: String,
    pub subtype: Option<String>,
    pub channel: Option<String>,
    pub user: Option<String>,
    pub bot_id: Option<String>,
    pub username: Option<String>,
    pub text: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub files: Vec<SlackFile>,
    pub message: Option<Box<SlackMessage>>,
    pub previous_message: Option<Box<SlackMessage>>,
    pub deleted_ts: Option<String>,
    pub edited: Option<Edited>,
    /// On a thread's parent in history: its newest reply's `ts`.
    pub latest_reply: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlackFile {
    pub name: String,
    pub title: String,
    pub mimetype: Option<String>,
    pub size: Option<u64>,
    pub permalink: Option<String>,
    pub url_private: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Edited {
    pub user: String,
    pub ts: String,
}

/// Who the bridge is on this workspace (from `auth.test`).
#[derive(Clone, Debug, Default)]
pub struct Own {
    pub user_id: String,
    pub bot_id: String,
}

impl Own {
    fn wrote(&self, message: &SlackMessage) -> bool {
        let by = |mine: &str, theirs: &Option<String>| {
            !mine.is_empty() && theirs.as_deref() == Some(mine)
        };
        by(&self.bot_id, &message.bot_id) || by(&self.user_id, &message.user)
    }
}

#[derive(Clone, Debug)]
struct UserInfo {
    name: String,
    avatar: Option<String>,
}

/// Turns Slack messages into inbound events, keeping what it looked up.
pub struct Translator {
    api: Option<WebApi>,
    pub own: Own,
    users: Mutex<HashMap<String, UserInfo>>,
    channels: Mutex<HashMap<String, String>>,
    groups: Mutex<HashMap<String, String>>,
}

/// The cached names, as the format's parser asks for them.
struct Cached<'a>(&'a Translator);

impl Names for Cached<'_> {
    fn user(&self, id: &str) -> Option<String> {
        lock(&self.0.users).get(id).map(|user| user.name.clone())
    }
    fn channel(&self, id: &str) -> Option<String> {
        lock(&self.0.channels).get(id).cloned()
    }
    fn usergroup(&self, id: &str) -> Option<String> {
        lock(&self.0.groups).get(id).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Translator {
    /// `api` is `None` in webhooks mode: names then come from the labels Slack put
    /// into the text, or stay ids.
    pub fn new(api: Option<WebApi>, own: Own) -> Self {
        Self {
            api,
            own,
            users: Mutex::default(),
            channels: Mutex::default(),
            groups: Mutex::default(),
        }
    }

    /// Remembers a channel's name (from the channel list the session resolved).
    pub fn know_channel(&self, id: &str, name: &str) {
        lock(&self.channels).insert(id.to_owned(), name.to_owned());
    }

    /// `message`, posted in `room`, as an inbound event; `None` for what the bridge
    /// does not relay (its own messages, joins, unfurl-only changes).
    pub async fn translate(&self, room: RoomKey, message: &SlackMessage) -> Option<Inbound> {
        match message.subtype.as_deref() {
            _ if is_new_message(message) => {
                if self.own.wrote(message) {
                    return None;
                }
                let kind = if message.subtype.as_deref() == Some("me_message") {
                    EventKind::Action
                } else {
                    EventKind::Message
                };
                Some(
                    self.event(room, message, message, kind, message.ts.clone())
                        .await,
                )
            }
            Some("message_changed") => {
                let current = message.message.as_deref()?;
                // A deleted thread parent stays as a tombstone: for the copies, a delete.
                if current.subtype.as_deref() == Some("tombstone") {
                    let deleted = SlackMessage {
                        subtype: Some("message_deleted".into()),
                        deleted_ts: Some(current.ts.clone()),
                        previous_message: message.previous_message.clone(),
                        ..message.clone()
                    };
                    return Box::pin(self.translate(room, &deleted)).await;
                }
                let before = message.previous_message.as_deref();
                // Slack also reports link previews and thread counts as changes.
                if self.own.wrote(current)
                    || before.is_some_and(|before| before.text == current.text)
                {
                    return None;
                }
                let edited_at = current
                    .edited
                    .as_ref()
                    .map_or(message.ts.as_str(), |edited| &edited.ts);
                let native = format!("{}~edited~{edited_at}", current.ts);
                let kind = EventKind::Edit {
                    target: NativeMsgId::new(current.ts.clone()),
                };
                Some(self.event(room, current, message, kind, native).await)
            }
            Some("message_deleted") => {
                let deleted = message.deleted_ts.clone()?;
                let before = message.previous_message.as_deref();
                if before.is_some_and(|before| self.own.wrote(before)) {
                    return None;
                }
                let author = before.unwrap_or(message);
                let native = format!("{deleted}~deleted");
                let kind = EventKind::Delete {
                    target: NativeMsgId::new(deleted),
                };
                let mut event = self.event(room, author, message, kind, native).await;
                event.content = Default::default();
                event.attachments.clear();
                Some(event)
            }
            _ => None,
        }
    }

    /// The event for `content` (whose author and text it carries), dated by `when`.
    async fn event(
        &self,
        room: RoomKey,
        content: &SlackMessage,
        when: &SlackMessage,
        kind: EventKind,
        native: String,
    ) -> Inbound {
        self.look_up(&content.text, content.user.as_deref()).await;
        let sender = self.sender(content);
        let rich = format::parse(&content.text, &Cached(self));
        let mut event = Inbound::message(room, sender, Some(NativeMsgId::new(native)), rich);
        event.kind = kind;
        if let Some(ms) = ts_millis(&when.ts) {
            event.timestamp_ms = ms;
        }
        if let Some(thread) = content
            .thread_ts
            .as_ref()
            .filter(|thread| **thread != content.ts)
        {
            event.thread = Some(NativeMsgId::new(thread.clone()));
            event.reply_to = event.thread.clone();
        }
        event.attachments = content.files.iter().filter_map(attachment).collect();
        event
    }

    fn sender(&self, message: &SlackMessage) -> Sender {
        match (&message.user, &message.bot_id) {
            (Some(user), _) => {
                let known = lock(&self.users).get(user).cloned();
                let mut sender = Sender::user(
                    user.clone(),
                    known.as_ref().map_or(user.as_str(), |u| &u.name),
                );
                sender.avatar_url = known.and_then(|user| user.avatar);
                sender
            }
            (None, Some(bot)) => Sender::user(
                bot.clone(),
                message.username.clone().unwrap_or_else(|| "bot".into()),
            ),
            (None, None) => Sender::user(
                "unknown",
                message.username.clone().unwrap_or_else(|| "unknown".into()),
            ),
        }
    }

    /// Fetches the names `text` and `author` need that are not cached yet. A lookup
    /// that fails leaves the id (or Slack's label) in the text: never a lost message.
    async fn look_up(&self, text: &str, author: Option<&str>) {
        let Some(api) = &self.api else { return };
        let mut wanted: Vec<Reference> = format::references(text);
        if let Some(author) = author {
            wanted.push(Reference::User(author.to_owned()));
        }
        for reference in wanted {
            match reference {
                Reference::User(id) if !lock(&self.users).contains_key(&id) => {
                    if let Ok(answer) = api.call::<UserAnswer>("users.info", &[("user", &id)]).await
                    {
                        lock(&self.users).insert(id, answer.user.info());
                    }
                }
                Reference::Channel(id) if !lock(&self.channels).contains_key(&id) => {
                    if let Ok(answer) = api
                        .call::<ChannelAnswer>("conversations.info", &[("channel", &id)])
                        .await
                    {
                        lock(&self.channels).insert(id, answer.channel.name);
                    }
                }
                Reference::Usergroup(id) if !lock(&self.groups).contains_key(&id) => {
                    if let Ok(answer) = api.call::<GroupsAnswer>("usergroups.list", &[]).await {
                        let mut groups = lock(&self.groups);
                        for group in answer.usergroups {
                            groups.insert(group.id, group.handle);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[derive(Deserialize)]
struct UserAnswer {
    user: User,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct User {
    name: String,
    real_name: Option<String>,
    profile: Profile,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Profile {
    display_name: String,
    real_name: String,
    image_72: Option<String>,
}

impl User {
    /// Slack shows the display name, else the real name, else the handle.
    fn info(self) -> UserInfo {
        let name = [
            self.profile.display_name,
            self.profile.real_name,
            self.real_name.unwrap_or_default(),
            self.name,
        ]
        .into_iter()
        .find(|name| !name.trim().is_empty())
        .unwrap_or_default();
        UserInfo {
            name,
            avatar: self
                .profile
                .image_72
                .filter(|url| url.starts_with("https://")),
        }
    }
}

#[derive(Deserialize)]
struct ChannelAnswer {
    channel: NamedChannel,
}

#[derive(Deserialize)]
struct NamedChannel {
    name: String,
}

#[derive(Deserialize)]
struct GroupsAnswer {
    #[serde(default)]
    usergroups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    id: String,
    handle: String,
}

fn attachment(file: &SlackFile) -> Option<Attachment> {
    let url = file
        .permalink
        .clone()
        .or_else(|| file.url_private.clone())?;
    let name = if file.title.is_empty() {
        file.name.clone()
    } else {
        file.title.clone()
    };
    Some(Attachment {
        name,
        mime_type: file.mimetype.clone(),
        size: file.size,
        url,
    })
}

/// A message posted (not a change to one, not a join): what history lists.
pub fn is_new_message(message: &SlackMessage) -> bool {
    matches!(
        message.subtype.as_deref(),
        None | Some("me_message" | "file_share" | "thread_broadcast" | "bot_message")
    )
}

/// A Slack `ts` ("1700000000.000100": seconds and a sequence) in milliseconds.
pub fn ts_millis(ts: &str) -> Option<i64> {
    let (seconds, fraction) = ts.split_once('.').unwrap_or((ts, ""));
    let seconds: i64 = seconds.parse().ok()?;
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().unwrap_or(0);
    Some(seconds * 1000 + millis)
}

/// Whether `a` is a later `ts` than `b` (seconds, then the sequence after the dot).
pub fn ts_after(a: &str, b: &str) -> bool {
    let key = |ts: &str| {
        let (seconds, fraction) = ts.split_once('.').unwrap_or((ts, ""));
        // Slack writes six digits after the dot; pad so that "1.1" reads as 1.100000.
        let fraction = format!("{fraction:0<6}");
        (
            seconds.parse::<u64>().unwrap_or(0),
            fraction.parse::<u64>().unwrap_or(0),
        )
    };
    key(a) > key(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::RoomId;

    fn room() -> RoomKey {
        RoomKey::new("slack", RoomId::new("general"))
    }

    fn message(json: serde_json::Value) -> SlackMessage {
        serde_json::from_value(json).unwrap()
    }

    fn translator() -> Translator {
        Translator::new(
            None,
            Own {
                user_id: "UBOT".into(),
                bot_id: "BBOT".into(),
            },
        )
    }

    #[tokio::test]
    async fn messages_actions_threads_and_files() {
        let t = translator();
        let plain = t.translate(room(), &message(serde_json::json!({"type": "message", "user": "U1", "text": "hi *there*", "ts": "1700000000.000100"}))).await.unwrap();
        assert_eq!(
            (plain.kind.clone(), plain.timestamp_ms),
            (EventKind::Message, 1_700_000_000_000)
        );
        assert_eq!(plain.native_id.unwrap().as_str(), "1700000000.000100");
        let me = t.translate(room(), &message(serde_json::json!({"subtype": "me_message", "user": "U1", "text": "waves", "ts": "1.2"}))).await.unwrap();
        assert_eq!(me.kind, EventKind::Action);
        let reply = t
            .translate(
                room(),
                &message(
                    serde_json::json!({"user": "U1", "text": "r", "ts": "2.0", "thread_ts": "1.0"}),
                ),
            )
            .await
            .unwrap();
        assert_eq!(reply.thread.unwrap().as_str(), "1.0");
        let file = t.translate(room(), &message(serde_json::json!({"subtype": "file_share", "user": "U1", "text": "", "ts": "3.0", "files": [{"name": "a.png", "title": "Plan", "permalink": "https://x.slack.com/files/a"}]}))).await.unwrap();
        assert_eq!(file.attachments[0].name, "Plan");
    }

    #[tokio::test]
    async fn the_bridges_own_messages_and_unfurls_are_not_relayed() {
        let t = translator();
        for own in [
            serde_json::json!({"user": "UBOT", "text": "x", "ts": "1.0"}),
            serde_json::json!({"subtype": "bot_message", "bot_id": "BBOT", "username": "alice", "text": "x", "ts": "1.0"}),
            serde_json::json!({"subtype": "message_changed", "ts": "2.0", "message": {"bot_id": "BBOT", "text": "y", "ts": "1.0"}, "previous_message": {"bot_id": "BBOT", "text": "x", "ts": "1.0"}}),
            serde_json::json!({"subtype": "message_changed", "ts": "2.0", "message": {"user": "U1", "text": "same", "ts": "1.0"}, "previous_message": {"user": "U1", "text": "same", "ts": "1.0"}}),
            serde_json::json!({"subtype": "message_deleted", "ts": "2.0", "deleted_ts": "1.0", "previous_message": {"bot_id": "BBOT", "text": "x", "ts": "1.0"}}),
            serde_json::json!({"subtype": "channel_join", "user": "U1", "text": "joined", "ts": "1.0"}),
        ] {
            assert!(
                t.translate(room(), &message(own.clone())).await.is_none(),
                "{own}"
            );
        }
    }

    #[tokio::test]
    async fn edits_and_deletes_name_their_target() {
        let t = translator();
        let edit = t.translate(room(), &message(serde_json::json!({"subtype": "message_changed", "ts": "5.0", "message": {"user": "U1", "text": "new", "ts": "1.0", "edited": {"user": "U1", "ts": "5.0"}}, "previous_message": {"user": "U1", "text": "old", "ts": "1.0"}}))).await.unwrap();
        assert_eq!(
            edit.kind,
            EventKind::Edit {
                target: NativeMsgId::new("1.0")
            }
        );
        assert_eq!(edit.content.to_plain(), "new");
        let delete = t.translate(room(), &message(serde_json::json!({"subtype": "message_deleted", "ts": "6.0", "deleted_ts": "1.0", "previous_message": {"user": "U1", "text": "new", "ts": "1.0"}}))).await.unwrap();
        assert_eq!(
            delete.kind,
            EventKind::Delete {
                target: NativeMsgId::new("1.0")
            }
        );
        assert_ne!(edit.native_id, delete.native_id);
        let tombstone = t.translate(room(), &message(serde_json::json!({"subtype": "message_changed", "ts": "7.0", "message": {"subtype": "tombstone", "user": "USLACKBOT", "text": "This message was deleted.", "ts": "1.0"}, "previous_message": {"user": "U1", "text": "new", "ts": "1.0"}}))).await.unwrap();
        assert_eq!(
            tombstone.kind,
            EventKind::Delete {
                target: NativeMsgId::new("1.0")
            }
        );
    }

    #[test]
    fn timestamps_compare_and_convert() {
        assert_eq!(ts_millis("1700000000.123456"), Some(1_700_000_000_123));
        assert!(ts_after("10.000002", "10.000001"));
        assert!(ts_after("11.0", "10.999999"));
        assert!(!ts_after("10.1", "10.1"));
    }
}
