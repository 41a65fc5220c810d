//! Discord messages as the core's `Inbound`: the same translation for gateway events
//! and catch-up (`GET /channels/{id}/messages`), with the names behind `<@id>`,
//! `<@&id>` and `<#id>` looked up (and cached) first.
//!
//! The author's name is what Discord shows in the guild: the member's nickname, else
//! the account's display name (`global_name`), else its username. Stickers become
//! `:name:` text, attachments files; a reply names the message it answers; a message
//! in a thread of a routed channel is a reply in that channel, threaded on the
//! thread's starter message (a thread started from a message has that message's id).

use crate::format::{self, Names, Reference};
use crate::ids::{native, snowflake_ms};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use switchboard_sdk::{Attachment, EventKind, Inbound, NativeMsgId, RichText, RoomKey, Sender};
use twilight_http::Client;
use twilight_model::channel::Message;
use twilight_model::channel::message::MessageType;
use twilight_model::guild::PartialMember;
use twilight_model::id::Id;
use twilight_model::user::User;

const CDN: &str = "https://cdn.discordapp.com";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Who the bridge is on Discord: its bot user and the webhooks it sends through.
#[derive(Default)]
pub struct Own {
    pub bot_user: u64,
    pub webhooks: Mutex<HashSet<u64>>,
}

impl Own {
    pub fn wrote(&self, message: &Message) -> bool {
        message.author.id.get() == self.bot_user
            || message
                .webhook_id
                .is_some_and(|webhook| lock(&self.webhooks).contains(&webhook.get()))
    }
}

/// Turns Discord messages into inbound events, keeping the names it looked up.
pub struct Translator {
    http: Option<Arc<Client>>,
    guild: u64,
    pub own: Own,
    users: Mutex<HashMap<u64, String>>,
    roles: Mutex<HashMap<u64, String>>,
    channels: Mutex<HashMap<u64, String>>,
    /// The app has no Message Content intent (known at connect).
    pub content_missing: AtomicBool,
    /// A message from someone else came without any content: said once in the log.
    empty_warned: AtomicBool,
}

/// The cached names, as the format's parser asks for them.
struct Cached<'a>(&'a Translator);

impl Names for Cached<'_> {
    fn user(&self, id: &str) -> Option<String> {
        lock(&self.0.users).get(&id.parse().ok()?).cloned()
    }
    fn role(&self, id: &str) -> Option<String> {
        lock(&self.0.roles).get(&id.parse().ok()?).cloned()
    }
    fn channel(&self, id: &str) -> Option<String> {
        lock(&self.0.channels).get(&id.parse().ok()?).cloned()
    }
}

/// The name Discord shows for `user` in a guild where it has `nick`.
pub fn shown_name(nick: Option<&str>, user: &User) -> String {
    [nick, user.global_name.as_deref(), Some(user.name.as_str())]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|name| !name.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

/// The picture Discord shows for `user` (none for the default avatars).
pub fn avatar_url(user: &User) -> Option<String> {
    user.avatar
        .map(|hash| format!("{CDN}/avatars/{}/{hash}.png", user.id))
}

/// What a message event is, for the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Edited,
}

impl Translator {
    /// `http` is `None` in tests: names not cached then stay unknown.
    pub fn new(http: Option<Arc<Client>>, guild: u64, bot_user: u64) -> Self {
        Self {
            http,
            guild,
            own: Own {
                bot_user,
                webhooks: Mutex::default(),
            },
            users: Mutex::default(),
            roles: Mutex::default(),
            channels: Mutex::default(),
            content_missing: AtomicBool::new(false),
            empty_warned: AtomicBool::new(false),
        }
    }

    pub fn know_user(&self, id: u64, name: String) {
        lock(&self.users).insert(id, name);
    }

    pub fn know_role(&self, id: u64, name: String) {
        lock(&self.roles).insert(id, name);
    }

    pub fn know_channel(&self, id: u64, name: String) {
        lock(&self.channels).insert(id, name);
    }

    pub fn know_member(&self, member: &twilight_model::guild::Member) {
        self.know_user(
            member.user.id.get(),
            shown_name(member.nick.as_deref(), &member.user),
        );
    }

    /// A new or edited message, posted in `room` (in the thread `thread` of the
    /// room's channel, if it is one), as an inbound event; `None` for what the bridge
    /// does not relay: its own messages, system messages, edits that change no text.
    pub async fn translate(
        &self,
        room: RoomKey,
        message: &Message,
        thread: Option<u64>,
        change: Change,
    ) -> Option<Inbound> {
        if self.own.wrote(message)
            || !matches!(message.kind, MessageType::Regular | MessageType::Reply)
        {
            return None;
        }
        if self.carries_nothing(message) {
            return None;
        }
        let (kind, native_id, timestamp_ms) = match change {
            Change::Created => (
                EventKind::Message,
                native(message.id.get()),
                snowflake_ms(message.id.get()),
            ),
            Change::Edited => {
                // Discord also reports embeds unfurled and pins as updates: only a
                // message whose text was edited has an edit time.
                let edited = message.edited_timestamp?;
                let edited_ms = edited.as_micros() / 1000;
                (
                    EventKind::Edit {
                        target: native(message.id.get()),
                    },
                    NativeMsgId::new(format!("{}~edited~{edited_ms}", message.id)),
                    edited_ms,
                )
            }
        };
        self.look_up(message).await;
        let sender = self.sender(message);
        let mut content = format::parse(&message.content, &Cached(self));
        let stickers: Vec<String> = message
            .sticker_items
            .iter()
            .map(|sticker| format!(":{}:", sticker.name))
            .collect();
        if !stickers.is_empty() {
            let mut text = stickers.join(" ");
            if !content.is_empty() {
                text.insert(0, ' ');
            }
            content.push_text(&text, Default::default());
        }
        let mut event = Inbound::message(room, sender, Some(native_id), content);
        event.kind = kind;
        event.timestamp_ms = timestamp_ms;
        let replied = message
            .reference
            .as_ref()
            .filter(|_| message.kind == MessageType::Reply)
            .and_then(|reference| reference.message_id)
            .map(|id| native(id.get()));
        if let Some(thread) = thread {
            event.thread = Some(native(thread));
            event.reply_to = replied.or_else(|| Some(native(thread)));
        } else {
            event.reply_to = replied;
        }
        event.attachments = message
            .attachments
            .iter()
            .map(|file| Attachment {
                name: file.filename.clone(),
                mime_type: file.content_type.clone(),
                size: Some(file.size),
                url: file.url.clone(),
            })
            .collect();
        Some(event)
    }

    /// A deleted message, as a delete of the copies of `id`.
    pub fn deleted(&self, room: RoomKey, id: u64, thread: Option<u64>) -> Inbound {
        let mut event = Inbound::message(
            room,
            // Discord does not say who deleted it.
            Sender::user("unknown", "someone"),
            Some(NativeMsgId::new(format!("{id}~deleted"))),
            RichText::default(),
        );
        event.kind = EventKind::Delete { target: native(id) };
        event.thread = thread.map(native);
        event
    }

    /// Someone else's message with nothing in it: without the Message Content intent
    /// Discord sends messages empty. Said once, loudly.
    fn carries_nothing(&self, message: &Message) -> bool {
        let empty = message.content.trim().is_empty()
            && message.attachments.is_empty()
            && message.sticker_items.is_empty()
            && message.embeds.is_empty()
            && message.poll.is_none();
        if empty && !self.empty_warned.swap(true, Ordering::Relaxed) {
            if self.content_missing.load(Ordering::Relaxed) {
                tracing::warn!(message = %message.id, "Discord: messages arrive empty because the bot has no Message Content intent; enable it in the Developer Portal (Bot, Privileged Gateway Intents, Message Content Intent) and restart");
            } else {
                tracing::warn!(message = %message.id, "Discord: a message arrived with no content, attachments or stickers; if every message does, the bot lacks the Message Content intent (Developer Portal, Bot, Privileged Gateway Intents)");
            }
        }
        empty
    }

    fn sender(&self, message: &Message) -> Sender {
        let author = &message.author;
        let name = if message.webhook_id.is_some() {
            // Another integration's webhook: its name for this message.
            shown_name(None, author)
        } else {
            member_nick(message.member.as_ref())
                .map(|nick| nick.to_owned())
                .or_else(|| lock(&self.users).get(&author.id.get()).cloned())
                .unwrap_or_else(|| shown_name(None, author))
        };
        Sender {
            id: author.id.to_string(),
            display_name: name,
            is_self: false,
            avatar_url: avatar_url(author),
        }
    }

    /// Caches the names `message` needs: its author's (from the member it carries,
    /// else fetched) and those of the users, roles and channels its text mentions.
    /// A lookup that fails leaves a placeholder name: never a lost message.
    async fn look_up(&self, message: &Message) {
        let author = &message.author;
        if message.webhook_id.is_none() {
            match &message.member {
                Some(member) => {
                    self.know_user(author.id.get(), shown_name(member.nick.as_deref(), author))
                }
                None => {
                    if !lock(&self.users).contains_key(&author.id.get()) {
                        self.fetch_member(author.id.get(), Some(author)).await;
                    }
                }
            }
        }
        for mention in &message.mentions {
            if let Some(member) = &mention.member {
                let nick = member
                    .nick
                    .as_deref()
                    .filter(|nick| !nick.trim().is_empty());
                let name = nick.map_or_else(|| mention.name.clone(), str::to_owned);
                self.know_user(mention.id.get(), name);
            }
        }
        for reference in format::references(&message.content) {
            match reference {
                Reference::User(id) => {
                    let Ok(id) = id.parse::<u64>() else { continue };
                    if !lock(&self.users).contains_key(&id) {
                        let mentioned = message.mentions.iter().find(|m| m.id.get() == id);
                        match mentioned {
                            Some(mention) if mention.member.is_none() => {
                                // Not a member any more: the account's name.
                                self.fetch_member(id, None).await;
                                if !lock(&self.users).contains_key(&id) {
                                    self.know_user(id, mention.name.clone());
                                }
                            }
                            _ => self.fetch_member(id, None).await,
                        }
                    }
                }
                Reference::Role(id) => {
                    let Ok(id) = id.parse::<u64>() else { continue };
                    if !lock(&self.roles).contains_key(&id) {
                        self.fetch_roles().await;
                    }
                }
                Reference::Channel(id) => {
                    let Ok(id) = id.parse::<u64>() else { continue };
                    if !lock(&self.channels).contains_key(&id) {
                        self.fetch_channel(id).await;
                    }
                }
            }
        }
    }

    async fn fetch_member(&self, user: u64, author: Option<&User>) {
        let (Some(http), Some(guild), Some(user_id)) = (
            &self.http,
            Id::new_checked(self.guild),
            Id::new_checked(user),
        ) else {
            return;
        };
        let answer: Result<twilight_model::guild::Member, _> =
            crate::api::read(http.guild_member(guild, user_id)).await;
        match answer {
            Ok(member) => self.know_member(&member),
            Err(failure) => {
                tracing::debug!(user, error = %failure.explain(), "Discord: cannot look up a member");
                if let Some(author) = author {
                    // Not a member (left the server): the account's own name.
                    self.know_user(user, shown_name(None, author));
                }
            }
        }
    }

    pub async fn fetch_roles(&self) {
        let (Some(http), Some(guild)) = (&self.http, Id::new_checked(self.guild)) else {
            return;
        };
        let answer: Result<Vec<twilight_model::guild::Role>, _> =
            crate::api::read(http.roles(guild)).await;
        match answer {
            Ok(roles) => {
                for role in roles {
                    self.know_role(role.id.get(), role.name);
                }
            }
            Err(failure) => {
                tracing::debug!(error = %failure.explain(), "Discord: cannot list the roles")
            }
        }
    }

    async fn fetch_channel(&self, id: u64) {
        let (Some(http), Some(channel)) = (&self.http, Id::new_checked(id)) else {
            return;
        };
        let answer: Result<twilight_model::channel::Channel, _> =
            crate::api::read(http.channel(channel)).await;
        if let Ok(channel) = answer
            && let Some(name) = channel.name
        {
            self.know_channel(id, name);
        }
    }
}

fn member_nick(member: Option<&PartialMember>) -> Option<&str> {
    member?
        .nick
        .as_deref()
        .map(str::trim)
        .filter(|nick| !nick.is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use switchboard_sdk::RoomId;

    pub(crate) const BOT: u64 = 900_000_000_000_000_001;
    pub(crate) const HOOK: u64 = 900_000_000_000_000_002;
    const AVATAR: &str = "a_0123456789abcdef0123456789abcdef";

    fn room() -> RoomKey {
        RoomKey::new("discord", RoomId::new("general"))
    }

    /// A message as Discord's gateway sends it, with `extra` fields merged in.
    pub(crate) fn message(
        id: u64,
        author: u64,
        content: &str,
        extra: serde_json::Value,
    ) -> Message {
        let mut json = serde_json::json!({
            "id": id.to_string(),
            "channel_id": "100000000000000001",
            "guild_id": "100000000000000000",
            "author": {"id": author.to_string(), "username": "bob", "global_name": "Bob B", "avatar": AVATAR, "discriminator": "0"},
            "content": content,
            "timestamp": "2024-01-01T00:00:00.000000+00:00",
            "edited_timestamp": null,
            "tts": false,
            "mention_everyone": false,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": false,
            "type": 0
        });
        for (key, value) in extra.as_object().cloned().unwrap_or_default() {
            json[key] = value;
        }
        serde_json::from_value(json).unwrap()
    }

    fn translator() -> Translator {
        let t = Translator::new(None, 100_000_000_000_000_000, BOT);
        lock(&t.own.webhooks).insert(HOOK);
        t
    }

    const ID: u64 = 1_175_928_847_299_117_063;

    #[tokio::test]
    async fn names_come_from_nick_then_global_name_then_username() {
        let t = translator();
        let nick = message(
            ID,
            5,
            "hi",
            serde_json::json!({"member": {"nick": "Bobby", "roles": [], "joined_at": null, "deaf": false, "mute": false, "flags": 0}}),
        );
        let event = t
            .translate(room(), &nick, None, Change::Created)
            .await
            .unwrap();
        assert_eq!(event.sender.display_name, "Bobby");
        assert_eq!(event.sender.id, "5");
        assert_eq!(
            event.sender.avatar_url.as_deref(),
            Some(format!("https://cdn.discordapp.com/avatars/5/{AVATAR}.png").as_str())
        );
        assert_eq!(event.native_id.unwrap().as_str(), ID.to_string());
        assert_eq!(event.timestamp_ms, snowflake_ms(ID));
        assert_eq!(event.content.to_plain(), "hi");
        let t = translator();
        let global = message(ID, 6, "hi", serde_json::json!({}));
        let event = t
            .translate(room(), &global, None, Change::Created)
            .await
            .unwrap();
        assert_eq!(event.sender.display_name, "Bob B");
        let plain = message(
            ID,
            7,
            "hi",
            serde_json::json!({"author": {"id": "7", "username": "carol", "avatar": null, "discriminator": "0"}}),
        );
        let event = t
            .translate(room(), &plain, None, Change::Created)
            .await
            .unwrap();
        assert_eq!(event.sender.display_name, "carol");
        assert_eq!(event.sender.avatar_url, None);
    }

    #[tokio::test]
    async fn replies_threads_attachments_and_stickers() {
        let t = translator();
        let reply = message(
            ID,
            5,
            "yes",
            serde_json::json!({"type": 19, "message_reference": {"message_id": "1000", "channel_id": "100000000000000001"}}),
        );
        let event = t
            .translate(room(), &reply, None, Change::Created)
            .await
            .unwrap();
        assert_eq!(event.reply_to.unwrap().as_str(), "1000");
        assert_eq!(event.thread, None);
        let in_thread = message(ID, 5, "in thread", serde_json::json!({}));
        let event = t
            .translate(room(), &in_thread, Some(777), Change::Created)
            .await
            .unwrap();
        assert_eq!(event.thread.as_ref().unwrap().as_str(), "777");
        assert_eq!(event.reply_to.unwrap().as_str(), "777");
        let files = message(
            ID,
            5,
            "",
            serde_json::json!({
                "attachments": [{"id": "3", "filename": "plan.pdf", "size": 1234, "url": "https://cdn.discordapp.com/attachments/1/3/plan.pdf", "proxy_url": "https://media.discordapp.net/attachments/1/3/plan.pdf", "content_type": "application/pdf"}],
                "sticker_items": [{"id": "4", "name": "wave", "format_type": 1}]
            }),
        );
        let event = t
            .translate(room(), &files, None, Change::Created)
            .await
            .unwrap();
        assert_eq!(event.attachments.len(), 1);
        assert_eq!(event.attachments[0].name, "plan.pdf");
        assert_eq!(event.attachments[0].size, Some(1234));
        assert_eq!(event.content.to_plain(), ":wave:");
        let both = message(
            ID,
            5,
            "look",
            serde_json::json!({"sticker_items": [{"id": "4", "name": "wave", "format_type": 1}]}),
        );
        let event = t
            .translate(room(), &both, None, Change::Created)
            .await
            .unwrap();
        assert_eq!(event.content.to_plain(), "look :wave:");
    }

    #[tokio::test]
    async fn mentions_use_the_names_discord_sent_along() {
        let t = translator();
        t.know_role(42, "mods".into());
        t.know_channel(43, "random".into());
        let text = "hi <@8> and <@&42> see <#43>";
        let with = message(
            ID,
            5,
            text,
            serde_json::json!({"mentions": [{"id": "8", "username": "dave", "avatar": null, "discriminator": "0", "public_flags": 0, "member": {"nick": "Dave D", "roles": [], "joined_at": null, "deaf": false, "mute": false, "flags": 0}}]}),
        );
        let event = t
            .translate(room(), &with, None, Change::Created)
            .await
            .unwrap();
        let plain = event.content.to_plain();
        assert!(plain.contains("Dave D"), "{plain}");
        assert!(plain.contains("mods"), "{plain}");
        assert!(plain.contains("random"), "{plain}");
    }

    #[tokio::test]
    async fn own_messages_system_messages_and_unfurls_are_not_relayed() {
        let t = translator();
        let by_bot = message(ID, BOT, "x", serde_json::json!({}));
        assert!(
            t.translate(room(), &by_bot, None, Change::Created)
                .await
                .is_none()
        );
        let by_hook = message(
            ID,
            HOOK,
            "x",
            serde_json::json!({"webhook_id": HOOK.to_string()}),
        );
        assert!(
            t.translate(room(), &by_hook, None, Change::Created)
                .await
                .is_none()
        );
        let other_hook = message(ID, 55, "x", serde_json::json!({"webhook_id": "55"}));
        let event = t
            .translate(room(), &other_hook, None, Change::Created)
            .await
            .unwrap();
        assert_eq!(event.sender.display_name, "Bob B");
        let pinned = message(ID, 5, "", serde_json::json!({"type": 6}));
        assert!(
            t.translate(room(), &pinned, None, Change::Created)
                .await
                .is_none()
        );
        let unfurl = message(ID, 5, "x", serde_json::json!({}));
        assert!(
            t.translate(room(), &unfurl, None, Change::Edited)
                .await
                .is_none()
        );
        let empty = message(ID, 5, "", serde_json::json!({}));
        assert!(
            t.translate(room(), &empty, None, Change::Created)
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn edits_and_deletes_name_their_target() {
        let t = translator();
        let edited = message(
            ID,
            5,
            "new",
            serde_json::json!({"edited_timestamp": "2024-01-01T00:00:05.000000+00:00"}),
        );
        let event = t
            .translate(room(), &edited, None, Change::Edited)
            .await
            .unwrap();
        assert_eq!(event.kind, EventKind::Edit { target: native(ID) });
        assert_eq!(
            event.native_id.unwrap().as_str(),
            format!("{ID}~edited~1704067205000")
        );
        let deleted = t.deleted(room(), ID, None);
        assert_eq!(deleted.kind, EventKind::Delete { target: native(ID) });
        assert_eq!(deleted.native_id.unwrap().as_str(), format!("{ID}~deleted"));
    }
}
