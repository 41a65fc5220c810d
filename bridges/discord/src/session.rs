//! One run's state over REST: who the bot is (`/users/@me`, `/applications/@me`),
//! the guild and its channels, which channel each routed room is (checked readable,
//! its webhook found or created), the threads of routed channels, what the bridge
//! sent (so its own messages are never relayed back, and edits go the way the copy
//! went), and the catch-up cursors (the last message id seen per channel, saved as
//! adapter state under `cursor:{channel id}`). Relaying, and catch-up through
//! `GET /channels/{id}/messages?after=` pages, are in `relay.rs`.

mod relay;

use crate::api::{Failure, read};
use crate::config::{self, DiscordConfig, Webhooks};
use crate::ids::{snowflake_at, snowflake_ms};
use crate::inbound::{Change, Translator};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_sdk::event::now_ms;
use switchboard_sdk::{
    AdapterContext, AdapterError, ConnectionState, HealthReporter, RoomChanges, RoomId, RoomKey,
    SubmitError,
};
use twilight_http::Client;
use twilight_model::channel::{Channel, ChannelType, Message, Webhook};
use twilight_model::id::Id;
use twilight_model::id::marker::{ChannelMarker, GuildMarker};

/// The name of the channel webhooks the bridge sends through.
pub const WEBHOOK_NAME: &str = "Switchboard";
/// Messages per page of channel history: the API's maximum.
const PAGE: u16 = 100;
/// How many sent messages the adapter remembers the sending way of.
const REMEMBERED_SENT: usize = 10_000;
/// What `/healthz` and the log say when the app has no Message Content intent.
pub const NO_CONTENT_INTENT: &str = "the Discord app has no Message Content intent: messages from Discord arrive empty and are not relayed (sending works); enable it in the Developer Portal (Bot, Privileged Gateway Intents, Message Content Intent), then restart";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A channel's webhook, as `send` uses it.
#[derive(Clone)]
pub struct Hook {
    pub id: u64,
    pub token: String,
}

/// How a message the bridge sent was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The webhook it went through; `None`: as the bot.
    pub webhook: Option<u64>,
    /// The thread it went into, if it did.
    pub thread: Option<u64>,
    /// Sent as the bot with the sender's name put in front of the text.
    pub labelled: bool,
}

#[derive(Default)]
struct RoomMap {
    by_room: HashMap<RoomId, u64>,
    by_channel: HashMap<u64, RoomId>,
}

#[derive(Default)]
struct Cursors {
    latest: HashMap<u64, u64>,
    unsaved: BTreeSet<u64>,
}

#[derive(Default)]
struct SentLog {
    order: VecDeque<u64>,
    ways: HashMap<u64, Sent>,
}

/// What a connected run has resolved, shared with `send`.
pub struct Live {
    pub http: Arc<Client>,
    pub health: HealthReporter,
    pub network: switchboard_sdk::NetworkId,
    pub guild: Id<GuildMarker>,
    pub guild_name: String,
    pub app_id: Option<u64>,
    pub translator: Arc<Translator>,
    pub webhooks: Webhooks,
    /// The webhooks the config gives, by canonical room: id and token.
    given_webhooks: HashMap<RoomId, (u64, String)>,
    /// The app has the Message Content intent (at least the limited one).
    pub content_intent: bool,
    rooms: Mutex<RoomMap>,
    /// Thread channel -> its parent channel (a routed one).
    threads: Mutex<HashMap<u64, u64>>,
    /// Channels known not to be routed or threads of routed ones.
    elsewhere: Mutex<HashSet<u64>>,
    hooks: Mutex<HashMap<u64, Hook>>,
    sent: Mutex<SentLog>,
    /// Messages the bridge deleted: their gateway deletes are its own.
    deleted: Mutex<SentLog>,
    cursors: Mutex<Cursors>,
    hook_refusal_told: AtomicBool,
}

pub fn cursor_key(channel: u64) -> String {
    format!("cursor:{channel}")
}

pub fn submit_error(error: SubmitError) -> AdapterError {
    AdapterError::Connection(format!("the core did not take an event: {error}"))
}

fn state_error(error: SubmitError) -> AdapterError {
    AdapterError::Connection(format!("adapter state: {error}"))
}

/// Reports an authentication failure as the network's state before it ends the run.
fn fail(ctx: &AdapterContext, what: &str, failure: Failure) -> AdapterError {
    let error = failure.into_adapter_error(what);
    if let AdapterError::Auth(message) | AdapterError::Config(message) = &error {
        ctx.health.report(ConnectionState::Failed {
            last_error: format!("Discord: {message}"),
        });
    }
    error
}

/// Who the bot is, whether it may read message content, and its guild.
pub async fn connect(
    config: &DiscordConfig,
    http: Arc<Client>,
    ctx: &AdapterContext,
) -> Result<Live, AdapterError> {
    let me: serde_json::Value = read(http.current_user())
        .await
        .map_err(|failure| fail(ctx, "GET /users/@me", failure))?;
    let bot_user = snowflake_field(&me, "id")
        .ok_or_else(|| AdapterError::Protocol("GET /users/@me answered without an id".into()))?;
    let app: serde_json::Value = read(http.current_user_application())
        .await
        .map_err(|failure| fail(ctx, "GET /applications/@me", failure))?;
    let flags = app
        .get("flags")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let content_intent = flags & ((1 << 18) | (1 << 19)) != 0;
    if !content_intent {
        tracing::warn!(network = %ctx.network, "Discord: {NO_CONTENT_INTENT}");
        ctx.health.problem(Some(NO_CONTENT_INTENT.into()));
    }
    let (guild, guild_name) = find_guild(config, &http, ctx).await?;
    let translator = Translator::new(Some(http.clone()), guild.get(), bot_user);
    translator
        .content_missing
        .store(!content_intent, Ordering::Relaxed);
    let translator = Arc::new(translator);
    translator.fetch_roles().await;
    tracing::info!(network = %ctx.network, bot = bot_user, guild = %guild_name, content_intent, "Discord: authenticated");
    Ok(Live {
        http,
        health: ctx.health.clone(),
        network: ctx.network.clone(),
        guild,
        guild_name,
        app_id: snowflake_field(&app, "id"),
        translator,
        webhooks: config.webhooks,
        given_webhooks: config
            .channel_webhooks
            .iter()
            .filter_map(|(channel, url)| {
                let room = crate::canonical_room(channel);
                config::webhook_parts(url).map(|hook| (room, hook))
            })
            .collect(),
        content_intent,
        rooms: Mutex::default(),
        threads: Mutex::default(),
        elsewhere: Mutex::default(),
        hooks: Mutex::default(),
        sent: Mutex::default(),
        deleted: Mutex::default(),
        cursors: Mutex::default(),
        hook_refusal_told: AtomicBool::new(false),
    })
}

fn snowflake_field(value: &serde_json::Value, key: &str) -> Option<u64> {
    match value.get(key)? {
        serde_json::Value::String(text) => text.parse().ok(),
        serde_json::Value::Number(number) => number.as_u64(),
        _ => None,
    }
}

/// The configured guild, by id or by name among the bot's guilds.
async fn find_guild(
    config: &DiscordConfig,
    http: &Client,
    ctx: &AdapterContext,
) -> Result<(Id<GuildMarker>, String), AdapterError> {
    if let Some(id) = config.guild_id().and_then(Id::new_checked) {
        let guild: serde_json::Value = read(http.guild(id)).await.map_err(|failure| {
            let what = format!(
                "guild {id}: not found, or the bot is not in it (invite it with the bot scope)"
            );
            fail(ctx, &what, failure)
        })?;
        let name = guild
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        return Ok((id, name));
    }
    let guilds: Vec<serde_json::Value> = read(http.current_user_guilds())
        .await
        .map_err(|failure| fail(ctx, "GET /users/@me/guilds", failure))?;
    let wanted = config.guild.trim();
    let named = |exact: bool| {
        guilds.iter().find(|guild| {
            let name = guild
                .get("name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            if exact {
                name == wanted
            } else {
                name.eq_ignore_ascii_case(wanted)
            }
        })
    };
    let found = named(true).or_else(|| named(false));
    let Some(found) = found.and_then(|guild| {
        let id = Id::new_checked(snowflake_field(guild, "id")?)?;
        let name = guild.get("name")?.as_str()?.to_owned();
        Some((id, name))
    }) else {
        let message = format!(
            "Discord: the bot is in no server named {wanted:?} (it is in {} server(s)); invite it, or write the server's id",
            guilds.len()
        );
        ctx.health.report(ConnectionState::Failed {
            last_error: message.clone(),
        });
        return Err(AdapterError::Config(message));
    };
    Ok(found)
}

/// Text channels whose messages the bridge can relay.
fn is_text(kind: ChannelType) -> bool {
    matches!(
        kind,
        ChannelType::GuildText | ChannelType::GuildAnnouncement
    )
}

fn is_thread(kind: ChannelType) -> bool {
    matches!(
        kind,
        ChannelType::PublicThread | ChannelType::PrivateThread | ChannelType::AnnouncementThread
    )
}

impl Live {
    pub fn channel_of(&self, room: &RoomId) -> Option<u64> {
        lock(&self.rooms).by_room.get(room).copied()
    }

    pub fn room_of(&self, channel: u64) -> Option<RoomId> {
        lock(&self.rooms).by_channel.get(&channel).cloned()
    }

    pub fn joined_rooms(&self) -> Vec<RoomId> {
        lock(&self.rooms).by_room.keys().cloned().collect()
    }

    pub fn hook(&self, channel: u64) -> Option<Hook> {
        lock(&self.hooks).get(&channel).cloned()
    }

    /// Whether the room's messages go through its webhook (names per message).
    pub fn names_per_message(&self, room: &RoomId) -> bool {
        self.channel_of(room)
            .is_some_and(|channel| lock(&self.hooks).contains_key(&channel))
    }

    /// Forgets a webhook Discord no longer takes (deleted by someone): the room
    /// sends as the bot until the next run finds or makes another.
    pub fn drop_hook(&self, channel: u64) {
        lock(&self.hooks).remove(&channel);
    }

    pub fn thread_parent(&self, thread: u64) -> Option<u64> {
        lock(&self.threads).get(&thread).copied()
    }

    /// Learns a channel: its name, and, for a thread of a routed channel, its parent.
    pub fn learn_channel(&self, channel: &Channel) {
        if let Some(name) = &channel.name {
            self.translator.know_channel(channel.id.get(), name.clone());
        }
        if is_thread(channel.kind)
            && let Some(parent) = channel.parent_id
            && lock(&self.rooms).by_channel.contains_key(&parent.get())
        {
            lock(&self.threads).insert(channel.id.get(), parent.get());
            lock(&self.elsewhere).remove(&channel.id.get());
        }
    }

    pub fn forget_thread(&self, thread: u64) {
        lock(&self.threads).remove(&thread);
    }

    /// Where a message of `channel` belongs: its room, and the thread it is in.
    /// A channel not seen before is looked up once (`GET /channels/{id}`).
    pub async fn place_of(&self, channel: u64) -> Option<(RoomId, Option<u64>)> {
        if let Some(room) = self.room_of(channel) {
            return Some((room, None));
        }
        if let Some(parent) = self.thread_parent(channel) {
            return self.room_of(parent).map(|room| (room, Some(channel)));
        }
        if lock(&self.elsewhere).contains(&channel) {
            return None;
        }
        let id = Id::<ChannelMarker>::new_checked(channel)?;
        match read::<_, Channel>(self.http.channel(id)).await {
            Ok(found) => {
                self.learn_channel(&found);
                if self.thread_parent(channel).is_none() {
                    lock(&self.elsewhere).insert(channel);
                }
            }
            Err(failure) => {
                tracing::debug!(network = %self.network, channel, error = %failure.explain(), "Discord: cannot look up a channel; its messages are not relayed");
                if failure.is_permanent() {
                    lock(&self.elsewhere).insert(channel);
                }
                return None;
            }
        }
        let parent = self.thread_parent(channel)?;
        self.room_of(parent).map(|room| (room, Some(channel)))
    }

    /// Resolves the rooms of `wanted` not served yet, reporting each joined or
    /// refused, and forgets those no longer in it. A room's channel is found by id
    /// or by name, checked readable (its newest message starts a cursor never saved
    /// before), and given its webhook.
    pub async fn follow_rooms(
        &self,
        ctx: &AdapterContext,
        wanted: &BTreeSet<RoomId>,
    ) -> Result<(), AdapterError> {
        let current: BTreeSet<RoomId> = lock(&self.rooms).by_room.keys().cloned().collect();
        let changes = RoomChanges::between(&current, wanted);
        for room in &changes.removed {
            let mut rooms = lock(&self.rooms);
            if let Some(channel) = rooms.by_room.remove(room) {
                rooms.by_channel.remove(&channel);
                lock(&self.threads).retain(|_, parent| *parent != channel);
            }
            drop(rooms);
            ctx.health.left(room);
        }
        if changes.added.is_empty() {
            return Ok(());
        }
        let channels: Vec<Channel> = read(self.http.guild_channels(self.guild))
            .await
            .map_err(|failure| fail(ctx, "GET /guilds/{guild}/channels", failure))?;
        for channel in &channels {
            if let Some(name) = &channel.name {
                self.translator.know_channel(channel.id.get(), name.clone());
            }
        }
        for room in changes.added {
            let wanted = room.as_str();
            let found = channels
                .iter()
                .filter(|channel| is_text(channel.kind))
                .find(|channel| channel.id.to_string() == wanted)
                .or_else(|| {
                    channels
                        .iter()
                        .filter(|channel| is_text(channel.kind))
                        .find(|channel| {
                            channel
                                .name
                                .as_deref()
                                .is_some_and(|name| name.to_lowercase() == wanted)
                        })
                });
            let Some(channel) = found else {
                let refusal = format!(
                    "unknown channel: no text channel {wanted:?} in the server {:?} (or the bot cannot see it)",
                    self.guild_name
                );
                tracing::warn!(network = %ctx.network, %room, "Discord: {refusal}");
                ctx.health.join_failed(&room, refusal);
                continue;
            };
            let id = channel.id;
            // Readable? (Missing Access when the bot's role cannot view it.)
            let newest: Vec<Message> = match read(self.http.channel_messages(id).limit(1)).await {
                Ok(newest) => newest,
                Err(failure) if failure.is_permanent() => {
                    let refusal = format!("cannot read #{wanted}: {}", failure.explain());
                    tracing::warn!(network = %ctx.network, %room, "Discord: {refusal}");
                    ctx.health.join_failed(&room, refusal);
                    continue;
                }
                Err(failure) => {
                    return Err(failure.into_adapter_error("GET /channels/{id}/messages"));
                }
            };
            let start = newest
                .first()
                .map_or_else(|| snowflake_at(now_ms()), |message| message.id.get());
            self.load_cursor(ctx, id.get(), start).await?;
            self.set_up_hook(ctx, &room, id).await;
            {
                let mut rooms = lock(&self.rooms);
                rooms.by_room.insert(room.clone(), id.get());
                rooms.by_channel.insert(id.get(), room.clone());
            }
            lock(&self.elsewhere).remove(&id.get());
            tracing::info!(network = %ctx.network, %room, channel = %id, webhook = self.hook(id.get()).is_some(), "Discord: relaying the channel");
            ctx.health.joined(&room);
        }
        self.save_cursors(ctx).await
    }

    /// The channel's saved cursor, or `start` for a channel new to the bridge.
    async fn load_cursor(
        &self,
        ctx: &AdapterContext,
        channel: u64,
        start: u64,
    ) -> Result<(), AdapterError> {
        let saved = ctx
            .state
            .load(&cursor_key(channel))
            .await
            .map_err(state_error)?
            .and_then(|value| value.parse::<u64>().ok());
        let mut cursors = lock(&self.cursors);
        if cursors.latest.contains_key(&channel) {
            return Ok(());
        }
        match saved {
            Some(saved) => {
                cursors.latest.insert(channel, saved);
            }
            None => {
                cursors.latest.insert(channel, start);
                cursors.unsaved.insert(channel);
            }
        }
        Ok(())
    }

    /// Finds the channel's "Switchboard" webhook made by this bot, or makes one.
    /// Without Manage Webhooks (or with `webhooks: off`) the room sends as the bot.
    async fn set_up_hook(&self, ctx: &AdapterContext, room: &RoomId, channel: Id<ChannelMarker>) {
        if self.webhooks == Webhooks::Off {
            return;
        }
        if let Some((id, token)) = self.given_webhooks.get(room) {
            self.use_hook(channel, *id, token.clone());
            return;
        }
        let found = match read::<_, Vec<Webhook>>(self.http.channel_webhooks(channel)).await {
            Ok(hooks) => hooks.into_iter().find(|hook| self.is_ours(hook)),
            Err(failure) => {
                self.no_hook(ctx, room, &failure);
                return;
            }
        };
        let hook = match found {
            Some(hook) => hook,
            None => match read::<_, Webhook>(self.http.create_webhook(channel, WEBHOOK_NAME)).await
            {
                Ok(hook) => hook,
                Err(failure) => {
                    self.no_hook(ctx, room, &failure);
                    return;
                }
            },
        };
        let Some(token) = hook.token.clone() else {
            tracing::warn!(network = %ctx.network, %room, "Discord: the channel webhook came without a token; sending as the bot");
            return;
        };
        self.use_hook(channel, hook.id.get(), token);
    }

    /// Sends the channel's messages through this webhook, and never relays its own.
    fn use_hook(&self, channel: Id<ChannelMarker>, id: u64, token: String) {
        lock(&self.translator.own.webhooks).insert(id);
        lock(&self.hooks).insert(channel.get(), Hook { id, token });
    }

    fn is_ours(&self, hook: &Webhook) -> bool {
        let by_us = hook
            .user
            .as_ref()
            .is_some_and(|user| user.id.get() == self.translator.own.bot_user)
            || hook
                .application_id
                .is_some_and(|app| Some(app.get()) == self.app_id);
        by_us && hook.name.as_deref() == Some(WEBHOOK_NAME) && hook.token.is_some()
    }

    fn no_hook(&self, ctx: &AdapterContext, room: &RoomId, failure: &Failure) {
        if failure.is_permanent() {
            if !self.hook_refusal_told.swap(true, Ordering::Relaxed) {
                tracing::warn!(network = %ctx.network, %room, error = %failure.explain(), "Discord: cannot use a channel webhook (the bot needs Manage Webhooks); sending as the bot, with each sender's name in the text");
            }
        } else {
            tracing::warn!(network = %ctx.network, %room, error = %failure.explain(), "Discord: cannot set up the channel webhook now; sending as the bot until the next connection");
        }
    }

    /// Remembers how a message was sent (for its edits and deletes).
    pub fn sent(&self, message: u64, way: Sent) {
        let mut log = lock(&self.sent);
        if log.ways.insert(message, way).is_none() {
            log.order.push_back(message);
            if log.order.len() > REMEMBERED_SENT
                && let Some(oldest) = log.order.pop_front()
            {
                log.ways.remove(&oldest);
            }
        }
    }

    pub fn sent_way(&self, message: u64) -> Option<Sent> {
        lock(&self.sent).ways.get(&message).copied()
    }

    /// Remembers a message the bridge deleted, so its gateway delete is not relayed.
    pub fn deleting(&self, message: u64) {
        let mut log = lock(&self.deleted);
        if log
            .ways
            .insert(
                message,
                Sent {
                    webhook: None,
                    thread: None,
                    labelled: false,
                },
            )
            .is_none()
        {
            log.order.push_back(message);
            if log.order.len() > REMEMBERED_SENT
                && let Some(oldest) = log.order.pop_front()
            {
                log.ways.remove(&oldest);
            }
        }
    }

    /// Whether the bridge wrote or deleted `message` itself.
    pub fn own_message(&self, message: u64) -> bool {
        lock(&self.sent).ways.contains_key(&message)
            || lock(&self.deleted).ways.contains_key(&message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_keys_name_the_channel() {
        assert_eq!(cursor_key(42), "cursor:42");
    }
}
