//! One run of an app (Socket Mode or Events API): who the bot is (`auth.test`), which
//! channel each routed room is (joined where Slack lets a bot join), catch-up over
//! `conversations.history` since the last relayed `ts`, and the state both event
//! sources share: the room map, the catch-up cursors and the event ids already taken.

use crate::api::{ApiError, WebApi, explain};
use crate::inbound::{Own, SlackMessage, Translator, ts_after};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_sdk::{
    AdapterContext, AdapterError, ConnectionState, RoomChanges, RoomId, RoomKey, SubmitError,
};

/// How many event ids are remembered to refuse Slack's retries of an event already
/// taken (it retries three times within about an hour; ids older than this many
/// events fall back on the core's own duplicate check by message `ts`).
const REMEMBERED_EVENTS: usize = 4096;

/// What a connected app run has resolved, shared with `send` and the webhook handler.
pub struct Live {
    pub translator: Translator,
    /// Where `send` reports a channel Slack no longer lets the bot post in.
    pub health: switchboard_sdk::HealthReporter,
    /// The config asks for per-message names and the token has `chat:write.customize`.
    pub names_overridden: AtomicBool,
    rooms: Mutex<RoomMap>,
    cursors: Mutex<Cursors>,
    seen: Mutex<SeenEvents>,
}

#[derive(Default)]
struct RoomMap {
    by_room: HashMap<RoomId, String>,
    by_channel: HashMap<String, RoomId>,
}

#[derive(Default)]
struct Cursors {
    latest: HashMap<String, String>,
    unsaved: BTreeSet<String>,
}

#[derive(Default)]
struct SeenEvents {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Live {
    pub fn channel_of(&self, room: &RoomId) -> Option<String> {
        lock(&self.rooms).by_room.get(room).cloned()
    }

    /// The channels of every room joined now.
    pub fn joined_channels(&self) -> Vec<String> {
        lock(&self.rooms).by_channel.keys().cloned().collect()
    }

    pub fn room_of(&self, channel: &str) -> Option<RoomId> {
        lock(&self.rooms).by_channel.get(channel).cloned()
    }

    /// Whether the event was taken before (a retry, a redelivered envelope).
    pub fn seen(&self, event_id: &str) -> bool {
        lock(&self.seen).ids.contains(event_id)
    }

    /// Remembers an event taken (after the core accepted it).
    pub fn taken(&self, event_id: &str) {
        let mut seen = lock(&self.seen);
        if event_id.is_empty() || !seen.ids.insert(event_id.to_owned()) {
            return;
        }
        seen.order.push_back(event_id.to_owned());
        if seen.order.len() > REMEMBERED_EVENTS
            && let Some(oldest) = seen.order.pop_front()
        {
            seen.ids.remove(&oldest);
        }
    }

    /// Moves the channel's catch-up cursor to `ts` if it is later.
    pub fn relayed(&self, channel: &str, ts: &str) {
        let mut cursors = lock(&self.cursors);
        let later = cursors
            .latest
            .get(channel)
            .is_none_or(|current| ts_after(ts, current));
        if later {
            cursors.latest.insert(channel.to_owned(), ts.to_owned());
            cursors.unsaved.insert(channel.to_owned());
        }
    }

    /// Saves the cursors moved since the last save. A cursor saved late only makes a
    /// catch-up fetch again what the core then recognises as duplicates.
    pub async fn save_cursors(&self, ctx: &AdapterContext) -> Result<(), AdapterError> {
        let moved: Vec<(String, String)> = {
            let mut cursors = lock(&self.cursors);
            let unsaved = std::mem::take(&mut cursors.unsaved);
            unsaved
                .into_iter()
                .filter_map(|channel| cursors.latest.get(&channel).map(|ts| (channel, ts.clone())))
                .collect()
        };
        for (channel, ts) in moved {
            ctx.state
                .save(&cursor_key(&channel), &ts)
                .await
                .map_err(submit_error)?;
        }
        Ok(())
    }

    /// Submits one message event from `channel`: translated, then queued for
    /// delivery. `acknowledged`: the source is told only after this returns, so it
    /// must wait for the disk; otherwise the cursor (saved later) is the record.
    pub async fn relay(
        &self,
        ctx: &AdapterContext,
        channel: &str,
        message: &SlackMessage,
        acknowledged: bool,
    ) -> Result<(), SubmitError> {
        let Some(room) = self.room_of(channel) else {
            return Ok(());
        };
        let key = RoomKey {
            network: ctx.network.clone(),
            room,
        };
        if let Some(event) = self.translator.translate(key, message).await {
            if acknowledged {
                ctx.inbound.submit(event).await?;
            } else {
                ctx.inbound.submit_unacknowledged(event).await?;
            }
        }
        // Only new messages move the cursor: history lists messages, not changes.
        if !message.ts.is_empty() && crate::inbound::is_new_message(message) {
            self.relayed(channel, &message.ts);
        }
        Ok(())
    }

    /// Takes one `event_callback` envelope (Events API request body, Socket Mode
    /// payload): a message event is relayed once, however often Slack sends it.
    pub async fn take_callback(
        &self,
        ctx: &AdapterContext,
        payload: &serde_json::Value,
        acknowledged: bool,
    ) -> Result<(), SubmitError> {
        let event_id = payload
            .get("event_id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if self.seen(event_id) {
            metrics::counter!("switchboard_slack_events_repeated_total", "network" => ctx.network.to_string()).increment(1);
            return Ok(());
        }
        let event = payload.get("event").cloned().unwrap_or_default();
        if event.get("type").and_then(serde_json::Value::as_str) == Some("message") {
            match serde_json::from_value::<SlackMessage>(event) {
                Ok(message) => {
                    let channel = message.channel.clone().unwrap_or_default();
                    self.relay(ctx, &channel, &message, acknowledged).await?;
                }
                Err(error) => {
                    tracing::warn!(network = %ctx.network, %event_id, %error, "Slack: a message event could not be read; not relayed");
                }
            }
        }
        self.taken(event_id);
        Ok(())
    }
}

fn cursor_key(channel: &str) -> String {
    format!("cursor:{channel}")
}

pub fn submit_error(error: SubmitError) -> AdapterError {
    AdapterError::Connection(format!("the core did not take an event: {error}"))
}

/// What `/healthz` and the log say when names are wanted but the token may not set
/// them.
const NO_CUSTOMIZE_SCOPE: &str = "the token lacks the chat:write.customize scope: senders are named in the text instead of under their own name and picture; add the scope (OAuth & Permissions) and reinstall the app";

/// Connects an app: who the bot is, whether it may name senders, and its channels.
pub async fn connect(
    api: &WebApi,
    ctx: &AdapterContext,
    customize_names: bool,
) -> Result<Live, AdapterError> {
    let answer = api
        .call_raw("auth.test", &[])
        .await
        .map_err(|error| connect_error(ctx, "auth.test", error))?;
    let who: AuthTest = serde_json::from_value(answer.body)
        .map_err(|error| AdapterError::Protocol(format!("auth.test: {error}")))?;
    let may_customize = answer.scopes.as_deref().is_none_or(|scopes| {
        scopes
            .split(',')
            .any(|scope| scope.trim() == "chat:write.customize")
    });
    if customize_names && !may_customize {
        tracing::warn!(network = %ctx.network, "Slack: {NO_CUSTOMIZE_SCOPE}");
        ctx.health.problem(Some(NO_CUSTOMIZE_SCOPE.into()));
    }
    let own = Own {
        user_id: who.user_id,
        bot_id: who.bot_id.unwrap_or_default(),
    };
    tracing::info!(network = %ctx.network, team = %who.team, bot = %own.user_id, "Slack: authenticated");
    Ok(Live {
        translator: Translator::new(Some(api.clone()), own),
        health: ctx.health.clone(),
        names_overridden: AtomicBool::new(customize_names && may_customize),
        rooms: Mutex::default(),
        cursors: Mutex::default(),
        seen: Mutex::default(),
    })
}

fn connect_error(ctx: &AdapterContext, what: &str, error: ApiError) -> AdapterError {
    let message = format!("{what}: {}", explain(&error));
    if error.is_auth() {
        ctx.health.report(ConnectionState::Failed {
            last_error: message.clone(),
        });
        AdapterError::Auth(message)
    } else {
        AdapterError::Connection(message)
    }
}

#[derive(Deserialize)]
struct AuthTest {
    #[serde(default)]
    team: String,
    user_id: String,
    #[serde(default)]
    bot_id: Option<String>,
}

#[derive(Deserialize, Clone)]
struct Channel {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    is_private: bool,
    #[serde(default)]
    is_member: bool,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    next_cursor: String,
}

impl Live {
    /// Joins the rooms of `wanted` not joined yet and forgets those no longer in
    /// it, reporting each; a room added gets no catch-up (there is nothing of it
    /// the bridge missed). Returns the channels newly joined.
    pub async fn follow_rooms(
        &self,
        api: &WebApi,
        ctx: &AdapterContext,
        wanted: &BTreeSet<RoomId>,
    ) -> Result<Vec<String>, AdapterError> {
        let current: BTreeSet<RoomId> = lock(&self.rooms).by_room.keys().cloned().collect();
        let changes = RoomChanges::between(&current, wanted);
        for room in &changes.removed {
            let mut rooms = lock(&self.rooms);
            if let Some(channel) = rooms.by_room.remove(room) {
                rooms.by_channel.remove(&channel);
            }
            ctx.health.left(room);
        }
        if changes.added.is_empty() {
            return Ok(Vec::new());
        }
        let channels = list_channels(api)
            .await
            .map_err(|error| connect_error(ctx, "conversations.list", error))?;
        let mut joined = Vec::new();
        for room in changes.added {
            let found = channels.iter().find(|channel| {
                channel.id.to_lowercase() == room.as_str()
                    || channel.name.to_lowercase() == room.as_str()
            });
            let Some(channel) = found else {
                ctx.health.join_failed(
                    &room,
                    "channel_not_found: no channel of that name that the bot can see",
                );
                tracing::warn!(network = %ctx.network, %room, "Slack: no such channel, or the bot cannot see it");
                continue;
            };
            if !channel.is_member {
                if channel.is_private {
                    ctx.health.join_failed(
                        &room,
                        "not_in_channel: a private channel; invite the bot (/invite @bot)",
                    );
                    tracing::warn!(network = %ctx.network, %room, "Slack: the bot is not in this private channel; invite it");
                    continue;
                }
                if let Err(error) = api
                    .call_raw("conversations.join", &[("channel", &channel.id)])
                    .await
                {
                    if error.is_permanent() {
                        ctx.health.join_failed(&room, explain(&error));
                        tracing::warn!(network = %ctx.network, %room, error = %explain(&error), "Slack: cannot join the channel");
                        continue;
                    }
                    return Err(connect_error(ctx, "conversations.join", error));
                }
            }
            self.translator.know_channel(&channel.id, &channel.name);
            {
                let mut rooms = lock(&self.rooms);
                rooms.by_room.insert(room.clone(), channel.id.clone());
                rooms.by_channel.insert(channel.id.clone(), room.clone());
            }
            tracing::info!(network = %ctx.network, %room, channel = %channel.id, "Slack: relaying the channel");
            ctx.health.joined(&room);
            joined.push(channel.id.clone());
        }
        Ok(joined)
    }

    /// Relays what `channels` received since their cursors, oldest first, at most
    /// `max_age` back; a channel without a cursor (new to the bridge) starts now.
    pub async fn catch_up(
        &self,
        api: &WebApi,
        ctx: &AdapterContext,
        channels: &[String],
        max_age: Duration,
    ) -> Result<(), AdapterError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let floor = format!("{}.000000", now.saturating_sub(max_age).as_secs());
        for channel in channels {
            let saved = ctx
                .state
                .load(&cursor_key(channel))
                .await
                .map_err(submit_error)?;
            let Some(cursor) = saved else {
                // New to the bridge: start after the newest message there now, by
                // Slack's own `ts` (this machine's clock may differ from Slack's).
                let newest = newest_ts(api, channel)
                    .await
                    .map_err(|error| connect_error(ctx, "conversations.history", error))?;
                self.relayed(channel, &newest);
                continue;
            };
            lock(&self.cursors)
                .latest
                .entry(channel.clone())
                .or_insert_with(|| cursor.clone());
            let oldest = if ts_after(&floor, &cursor) {
                floor.clone()
            } else {
                cursor
            };
            let messages = history_since(api, channel, &oldest)
                .await
                .map_err(|error| connect_error(ctx, "conversations.history", error))?;
            if !messages.is_empty() {
                tracing::info!(network = %ctx.network, channel = %channel, count = messages.len(), "Slack: catching up");
            }
            for message in messages {
                self.relay(ctx, channel, &message, false)
                    .await
                    .map_err(submit_error)?;
            }
        }
        self.save_cursors(ctx).await
    }
}

async fn list_channels(api: &WebApi) -> Result<Vec<Channel>, ApiError> {
    let params = [
        ("types", "public_channel,private_channel"),
        ("exclude_archived", "true"),
    ];
    paged(api, "conversations.list", &params).await
}

/// One page of a cursor-paged Web API method; its items are under `channels` or
/// `messages`, whichever the method names them.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: serde::de::DeserializeOwned"))]
struct Page<T> {
    #[serde(default, alias = "channels", alias = "messages")]
    items: Vec<T>,
    #[serde(default)]
    has_more: Option<bool>,
    #[serde(default)]
    response_metadata: Option<Metadata>,
}

/// Every item of a cursor-paged method, in the order Slack pages them: `params`
/// plus `limit` and `cursor`, until Slack gives no next cursor or says there is
/// no more.
async fn paged<T: serde::de::DeserializeOwned>(
    api: &WebApi,
    method: &str,
    params: &[(&str, &str)],
) -> Result<Vec<T>, ApiError> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut call: Vec<(&str, &str)> = params.to_vec();
        call.extend([("limit", "200"), ("cursor", cursor.as_str())]);
        let page: Page<T> = api.call(method, &call).await?;
        items.extend(page.items);
        cursor = page.response_metadata.unwrap_or_default().next_cursor;
        if page.has_more == Some(false) || cursor.is_empty() {
            return Ok(items);
        }
    }
}

/// The `ts` of the newest message in `channel`, or "0" in an empty channel.
async fn newest_ts(api: &WebApi, channel: &str) -> Result<String, ApiError> {
    let page: Page<SlackMessage> = api
        .call(
            "conversations.history",
            &[("channel", channel), ("limit", "1")],
        )
        .await?;
    Ok(page
        .items
        .iter()
        .map(|message| message.ts.clone())
        .reduce(|a, b| if ts_after(&b, &a) { b } else { a })
        .unwrap_or_else(|| "0".into()))
}

/// Every message of `channel` after `oldest`, oldest first (the API pages newest first).
async fn history_since(
    api: &WebApi,
    channel: &str,
    oldest: &str,
) -> Result<Vec<SlackMessage>, ApiError> {
    let params = [
        ("channel", channel),
        ("oldest", oldest),
        ("inclusive", "false"),
    ];
    let mut messages: Vec<SlackMessage> = paged(api, "conversations.history", &params)
        .await?
        .into_iter()
        .filter(|message: &SlackMessage| ts_after(&message.ts, oldest))
        .collect();
    // History lists a thread's parent, not its replies: those newer than `oldest`
    // come from `conversations.replies`, for the parents history showed.
    let threads: Vec<String> = messages
        .iter()
        .filter(|message| {
            message
                .latest_reply
                .as_deref()
                .is_some_and(|latest| ts_after(latest, oldest))
        })
        .map(|message| message.ts.clone())
        .collect();
    for parent in threads {
        messages.extend(replies_since(api, channel, &parent, oldest).await?);
    }
    messages.sort_by(|a, b| {
        if ts_after(&a.ts, &b.ts) {
            std::cmp::Ordering::Greater
        } else if ts_after(&b.ts, &a.ts) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Equal
        }
    });
    messages.dedup_by(|a, b| a.ts == b.ts);
    Ok(messages)
}

/// The replies in the thread of `parent` after `oldest` (the parent itself not).
async fn replies_since(
    api: &WebApi,
    channel: &str,
    parent: &str,
    oldest: &str,
) -> Result<Vec<SlackMessage>, ApiError> {
    let params = [("channel", channel), ("ts", parent), ("oldest", oldest)];
    let replies: Vec<SlackMessage> = paged(api, "conversations.replies", &params).await?;
    Ok(replies
        .into_iter()
        .filter(|message| message.ts != parent && ts_after(&message.ts, oldest))
        .collect())
}

impl Live {
    pub fn names_overridden(&self) -> bool {
        self.names_overridden.load(Ordering::Relaxed)
    }

    /// Slack refused a name override: from now on the label goes into the text.
    pub fn stop_overriding_names(&self) {
        if self.names_overridden.swap(false, Ordering::Relaxed) {
            self.health.problem(Some(NO_CUSTOMIZE_SCOPE.into()));
        }
    }
}
