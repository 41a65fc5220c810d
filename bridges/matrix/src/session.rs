//! One run: build the client (sqlite store in the data dir), restore or create the
//! session (the device is reused across restarts), join the configured rooms, then
//! sync. Each sync response's timeline events are relayed in order and only then is
//! its `next_batch` saved, so a crash replays at most one response (the core drops
//! the duplicates by event id). A gap in a room's timeline (`limited`) is filled from
//! `/messages` back to the previous token, bounded by the catch-up age. In a room the
//! bridge has just joined (a route added it), what was said before the join is not
//! relayed.
//!
//! Each routed room is reported to the core (`ctx.health`) joined once the
//! homeserver let the bot in, refused with the homeserver's error, and left when the
//! routes drop it; every run joins, and reports, them all again. A room refused at the
//! start still ends the run, as before; one added while running is left out alone.

use crate::inbound::{Translator, event_json};
use crate::{Live, MatrixAdapter, MatrixConfig};
use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::TimelineEvent;
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::api::client::filter::{FilterDefinition, RoomEventFilter, RoomFilter};
use matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter;
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId, RoomOrAliasId, UInt, UserId};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::event::now_ms;
use switchboard_sdk::{AdapterContext, AdapterError, ConnectionState, RoomId};
use tokio_util::sync::CancellationToken;

const SYNC_TOKEN: &str = "sync_token";
const SESSION: &str = "session";
const DEVICE_ID: &str = "device_id";
const TXN_SALT: &str = "txn_salt";
const LONG_POLL: Duration = Duration::from_secs(30);
/// Timeline events per room per sync: large, so gaps (and backfills) are rare.
const TIMELINE_LIMIT: u32 = 200;
/// `/messages` pages read at most to fill one gap.
const MAX_BACKFILL_PAGES: usize = 20;

pub async fn run(
    adapter: &MatrixAdapter,
    ctx: &AdapterContext,
    cancel: &CancellationToken,
) -> Result<(), AdapterError> {
    let config = &adapter.config;
    let client = build_client(config, ctx).await?;
    let own_user = authenticate(&client, config, ctx).await?;
    let txn_salt = txn_salt(ctx).await?;

    let mut rooms = HashMap::new();
    for room in ctx.rooms.current().iter() {
        let room_id = join(&client, room)
            .await
            .map_err(|error| error.reported(ctx, room))?;
        ctx.health.joined(room);
        rooms.insert(room.clone(), room_id);
    }
    let translator = Translator::new(
        ctx.network.clone(),
        by_id(&rooms),
        config.homeserver.trim_end_matches('/').to_owned(),
    );
    let mut live = Arc::new(Live {
        client: client.clone(),
        rooms,
        txn_salt,
    });
    adapter.live.set(Some(live.clone()));
    let relay = Relay {
        ctx,
        translator: &translator,
        client: &client,
        own_user: &own_user,
        oldest_ms: now_ms() - (config.catch_up_max_age_secs as i64) * 1000,
    };

    let mut token = match load(ctx, SYNC_TOKEN).await? {
        Some(token) => token,
        None => {
            // First start: what was said before the bridge existed is not relayed.
            let first = client
                .sync_once(SyncSettings::default().timeout(Duration::ZERO))
                .await
                .map_err(|error| AdapterError::Connection(format!("sync: {error}")))?;
            save(ctx, SYNC_TOKEN, &first.next_batch).await?;
            first.next_batch
        }
    };
    ctx.health.report(ConnectionState::Connected);
    tracing::info!(network = %ctx.network, rooms = live.rooms.len(), "Matrix: connected");

    let mut room_set = ctx.rooms.clone();
    // Rooms added while running that could not be joined (tried again at each
    // change, and reported left when the routes drop them).
    let mut refused = BTreeSet::new();
    loop {
        let settings = SyncSettings::default()
            .token(token.clone())
            .timeout(LONG_POLL)
            .filter(sync_filter());
        // A sync abandoned for a room change is asked again from the same token.
        let response = tokio::select! {
            response = client.sync_once(settings) => response
                .map_err(|error| AdapterError::Connection(format!("sync: {error}")))?,
            current = room_set.changed() => {
                live = follow_rooms(adapter, ctx, &live, &translator, &mut refused, &current).await;
                continue;
            }
            () = cancel.cancelled() => return Ok(()),
        };
        for (room_id, update) in &response.rooms.joined {
            if translator.room_of(room_id).is_none() {
                continue;
            }
            let events = &update.timeline.events;
            // A room the bridge has just joined: what was said before is not relayed.
            let start = events
                .iter()
                .rposition(|event| is_own_join(event, &own_user))
                .map_or(0, |join| join + 1);
            if start == 0
                && update.timeline.limited
                && let Some(prev_batch) = &update.timeline.prev_batch
            {
                let missed =
                    backfill(&client, room_id, prev_batch, &token, relay.oldest_ms).await?;
                relay.all(room_id, &missed).await?;
            }
            relay.all(room_id, &events[start..]).await?;
        }
        token = response.next_batch;
        save(ctx, SYNC_TOKEN, &token).await?;
    }
}

/// The bridge's own user joining a room (not changing its name or picture there):
/// the start of its membership, before which the room's history lies.
fn is_own_join(event: &TimelineEvent, own_user: &UserId) -> bool {
    event_json(event).is_some_and(|json| {
        json["type"] == "m.room.member"
            && json["state_key"] == own_user.as_str()
            && json["content"]["membership"] == "join"
            && json["unsigned"]["prev_content"]["membership"] != "join"
    })
}

/// Why a room was not joined.
pub(crate) enum JoinError {
    /// The homeserver said no (not invited, banned, no such alias), or the room is
    /// no room at all: the words for the operator.
    Refused(String),
    /// No answer, or one that a retry may change (rate limited, a server error).
    Failed(AdapterError),
}

impl JoinError {
    /// For the start of a run: a refusal is reported, and either ends the run as
    /// before (the supervisor tries again).
    pub(crate) fn reported(self, ctx: &AdapterContext, room: &RoomId) -> AdapterError {
        match self {
            JoinError::Refused(refusal) => {
                ctx.health.join_failed(room, refusal.as_str());
                AdapterError::Connection(format!("cannot join {room}: {refusal}"))
            }
            JoinError::Failed(error) => error,
        }
    }

    /// What `join_failed` says for a room added while running, which is not tried
    /// again on this session whatever the cause.
    pub(crate) fn refusal(self) -> String {
        match self {
            JoinError::Refused(refusal) => refusal,
            JoinError::Failed(error) => error.to_string(),
        }
    }

    /// From a homeserver's answer: an error status other than 429 or 5xx refuses.
    pub(crate) fn from_status(status: u16, text: String) -> Self {
        if (400..500).contains(&status) && status != 429 {
            JoinError::Refused(text)
        } else {
            JoinError::Failed(AdapterError::Connection(text))
        }
    }
}

/// Joins a routed room (by id or alias) and returns its id.
async fn join(client: &matrix_sdk::Client, room: &RoomId) -> Result<OwnedRoomId, JoinError> {
    let reference = <&RoomOrAliasId>::try_from(room.as_str())
        .map_err(|error| JoinError::Refused(format!("not a room id or alias: {error}")))?;
    let joined = client
        .join_room_by_id_or_alias(reference, &[])
        .await
        .map_err(|error| match error.as_client_api_error() {
            Some(answer) => JoinError::from_status(answer.status_code.as_u16(), error.to_string()),
            None => JoinError::Failed(AdapterError::Connection(format!(
                "cannot join {room}: {error}"
            ))),
        })?;
    Ok(joined.room_id().to_owned())
}

/// Room id -> the room as routes name it.
fn by_id(rooms: &HashMap<RoomId, OwnedRoomId>) -> HashMap<OwnedRoomId, RoomId> {
    rooms
        .iter()
        .map(|(room, id)| (id.clone(), room.clone()))
        .collect()
}

/// The routes changed this network's rooms: joins the rooms added and stops relaying
/// those removed, on the same session. The bot stays a member of a removed room (a
/// room it was invited to may not take it back); it only stops relaying it. A room
/// that cannot be joined is reported refused and left out; its rows wait until the
/// next change of the rooms (which tries it again) or the next run joins it.
async fn follow_rooms(
    adapter: &MatrixAdapter,
    ctx: &AdapterContext,
    live: &Arc<Live>,
    translator: &Translator,
    refused: &mut BTreeSet<RoomId>,
    current: &BTreeSet<RoomId>,
) -> Arc<Live> {
    let served: BTreeSet<RoomId> = live.rooms.keys().cloned().collect();
    let changes = room_changes(ctx, &served, refused, current);
    if changes.is_empty() {
        return live.clone();
    }
    let mut rooms = live.rooms.clone();
    for room in &changes.removed {
        tracing::info!(network = %ctx.network, %room, "Matrix: room no longer routed; not relayed any more");
        rooms.remove(room);
    }
    for room in &changes.added {
        match join(&live.client, room).await {
            Ok(room_id) => {
                tracing::info!(network = %ctx.network, %room, "Matrix: room newly routed; joined");
                ctx.health.joined(room);
                refused.remove(room);
                rooms.insert(room.clone(), room_id);
            }
            Err(error) => {
                let refusal = error.refusal();
                tracing::debug!(network = %ctx.network, %room, %refusal, "Matrix: cannot join a newly routed room; its messages stay queued");
                ctx.health.join_failed(room, refusal);
                refused.insert(room.clone());
            }
        }
    }
    translator.set_rooms(by_id(&rooms));
    let next = Arc::new(Live {
        client: live.client.clone(),
        rooms,
        txn_salt: live.txn_salt.clone(),
    });
    adapter.live.set(Some(next.clone()));
    next
}

/// What a change of the room set asks of a session serving `served`: the rooms to
/// join (refused ones still routed among them: an invite may have come since) and
/// those to drop. Every room dropped is reported left, refused ones (never served)
/// too.
pub(crate) fn room_changes(
    ctx: &AdapterContext,
    served: &BTreeSet<RoomId>,
    refused: &mut BTreeSet<RoomId>,
    current: &BTreeSet<RoomId>,
) -> switchboard_sdk::RoomChanges {
    for room in refused.difference(current) {
        ctx.health.left(room);
    }
    refused.retain(|room| current.contains(room));
    let changes = switchboard_sdk::RoomChanges::between(served, current);
    for room in &changes.removed {
        ctx.health.left(room);
    }
    changes
}

async fn build_client(
    config: &MatrixConfig,
    ctx: &AdapterContext,
) -> Result<matrix_sdk::Client, AdapterError> {
    let store = ctx.data_dir.join("matrix-store");
    std::fs::create_dir_all(&store)
        .map_err(|error| AdapterError::Config(format!("{}: {error}", store.display())))?;
    let mut builder = matrix_sdk::Client::builder()
        .homeserver_url(&config.homeserver)
        .sqlite_store(&store, None);
    if config.accept_invalid_certs {
        tracing::warn!(
            "Matrix: accept_invalid_certs is on: the homeserver's TLS certificate is NOT verified"
        );
        builder = builder.disable_ssl_verification();
    }
    builder
        .build()
        .await
        .map_err(|error| AdapterError::Config(format!("Matrix client: {error}")))
}

/// The saved session (same device, no new login), or a fresh login whose session is
/// saved. A refused saved session is forgotten and the run fails, so the next run
/// logs in again, with the same device id.
async fn authenticate(
    client: &matrix_sdk::Client,
    config: &MatrixConfig,
    ctx: &AdapterContext,
) -> Result<matrix_sdk::ruma::OwnedUserId, AdapterError> {
    use matrix_sdk::authentication::matrix::MatrixSession;
    use matrix_sdk::store::RoomLoadSettings;
    let saved: Option<MatrixSession> = load(ctx, SESSION)
        .await?
        .and_then(|json| serde_json::from_str(&json).ok())
        .filter(|session: &MatrixSession| session.meta.user_id.as_str() == config.user_id);
    let auth = client.matrix_auth();
    if let Some(session) = saved {
        auth.restore_session(session, RoomLoadSettings::default())
            .await
            .map_err(|error| AdapterError::Connection(format!("restoring the session: {error}")))?;
        return match client.whoami().await {
            Ok(whoami) => Ok(whoami.user_id),
            Err(error) if is_unauthorized(&error) => {
                save(ctx, SESSION, "").await?;
                Err(AdapterError::Connection(
                    "the saved Matrix session was refused; logging in again".into(),
                ))
            }
            Err(error) => Err(AdapterError::Connection(format!("whoami: {error}"))),
        };
    }
    let session = match (&config.password, &config.access_token) {
        (Some(password), _) => {
            let device = load(ctx, DEVICE_ID).await?;
            let mut login = auth
                .login_username(&config.user_id, password)
                .initial_device_display_name(&config.device_name);
            if let Some(device) = &device {
                login = login.device_id(device);
            }
            login.send().await.map_err(|error| {
                if error
                    .as_client_api_error()
                    .is_some_and(|e| e.status_code.as_u16() == 403)
                {
                    AdapterError::Auth(format!("login refused: {error}"))
                } else {
                    AdapterError::Connection(format!("login: {error}"))
                }
            })?;
            auth.session()
                .ok_or_else(|| AdapterError::Auth("login gave no session".into()))?
        }
        (None, Some(token)) => {
            let session = session_from_token(config, token).await?;
            auth.restore_session(session.clone(), RoomLoadSettings::default())
                .await
                .map_err(|error| AdapterError::Connection(format!("session: {error}")))?;
            session
        }
        (None, None) => return Err(AdapterError::Config("no password or access token".into())),
    };
    let json = serde_json::to_string(&session)
        .map_err(|error| AdapterError::Config(format!("session: {error}")))?;
    save(ctx, SESSION, &json).await?;
    save(ctx, DEVICE_ID, session.meta.device_id.as_str()).await?;
    Ok(session.meta.user_id)
}

/// An access token's user and device, from `/account/whoami`.
async fn session_from_token(
    config: &MatrixConfig,
    token: &str,
) -> Result<matrix_sdk::authentication::matrix::MatrixSession, AdapterError> {
    #[derive(serde::Deserialize)]
    struct WhoAmI {
        user_id: matrix_sdk::ruma::OwnedUserId,
        device_id: Option<matrix_sdk::ruma::OwnedDeviceId>,
    }
    let url = format!(
        "{}/_matrix/client/v3/account/whoami",
        config.homeserver.trim_end_matches('/')
    );
    let response = matrix_sdk::reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|error| AdapterError::Connection(format!("whoami: {}", error.without_url())))?;
    if response.status().as_u16() == 401 {
        return Err(AdapterError::Auth("the access token was refused".into()));
    }
    let bytes = response
        .error_for_status()
        .map_err(|error| AdapterError::Connection(format!("whoami: {}", error.without_url())))?
        .bytes()
        .await
        .map_err(|error| AdapterError::Connection(format!("whoami: {}", error.without_url())))?;
    let whoami: WhoAmI = serde_json::from_slice(&bytes)
        .map_err(|error| AdapterError::Connection(format!("whoami: {error}")))?;
    let device_id = whoami
        .device_id
        .ok_or_else(|| AdapterError::Config("the access token has no device".into()))?;
    Ok(matrix_sdk::authentication::matrix::MatrixSession {
        meta: matrix_sdk::SessionMeta {
            user_id: whoami.user_id,
            device_id,
        },
        tokens: matrix_sdk::SessionTokens {
            access_token: token.to_owned(),
            refresh_token: None,
        },
    })
}

fn is_unauthorized(error: &matrix_sdk::HttpError) -> bool {
    error
        .as_client_api_error()
        .is_some_and(|e| e.status_code.as_u16() == 401)
}

pub(crate) async fn txn_salt(ctx: &AdapterContext) -> Result<String, AdapterError> {
    if let Some(salt) = load(ctx, TXN_SALT).await? {
        return Ok(salt);
    }
    let salt = format!("sb{:x}", rand::random::<u64>());
    save(ctx, TXN_SALT, &salt).await?;
    Ok(salt)
}

fn sync_filter() -> Filter {
    let mut timeline = RoomEventFilter::default();
    timeline.limit = Some(UInt::from(TIMELINE_LIMIT));
    let mut room = RoomFilter::default();
    room.timeline = timeline;
    let mut definition = FilterDefinition::default();
    definition.room = room;
    Filter::FilterDefinition(definition)
}

/// The events between the previous sync token and `prev_batch`, oldest first.
async fn backfill(
    client: &matrix_sdk::Client,
    room_id: &OwnedRoomId,
    prev_batch: &str,
    previous_token: &str,
    oldest_ms: i64,
) -> Result<Vec<TimelineEvent>, AdapterError> {
    let Some(room) = client.get_room(room_id) else {
        return Ok(Vec::new());
    };
    let mut collected = Vec::new();
    let mut from = Some(prev_batch.to_owned());
    for _ in 0..MAX_BACKFILL_PAGES {
        let mut options = MessagesOptions::backward();
        options.from = from.clone();
        options.to = Some(previous_token.to_owned());
        options.limit = UInt::from(100u32);
        let page = room
            .messages(options)
            .await
            .map_err(|error| AdapterError::Connection(format!("catch-up: {error}")))?;
        let done = page.chunk.is_empty() || page.end.is_none();
        let too_old = page
            .chunk
            .iter()
            .any(|event| crate::inbound::timestamp_ms(event).is_some_and(|ts| ts < oldest_ms));
        collected.extend(page.chunk);
        if done || too_old {
            break;
        }
        from = page.end;
    }
    collected.reverse();
    Ok(collected)
}

/// What relaying a run's timeline events needs.
struct Relay<'a> {
    ctx: &'a AdapterContext,
    translator: &'a Translator,
    client: &'a matrix_sdk::Client,
    own_user: &'a OwnedUserId,
    /// Events older than this (ms since the epoch) are not caught up.
    oldest_ms: i64,
}

impl Relay<'_> {
    async fn all(
        &self,
        room_id: &OwnedRoomId,
        events: &[TimelineEvent],
    ) -> Result<(), AdapterError> {
        for event in events {
            let Some(json) = event_json(event) else {
                continue;
            };
            let Some(mut inbound) = self.translator.translate(room_id, &json) else {
                continue;
            };
            if inbound.timestamp_ms < self.oldest_ms {
                continue;
            }
            inbound.sender.is_self = inbound.sender.id == self.own_user.as_str();
            if let Some(name) = self.display_name(room_id, &inbound.sender.id).await {
                inbound.sender.display_name = name;
            }
            // Acknowledged by the sync token saved after the response (its save
            // reaches the disk only with every event submitted before it).
            let submitted = self.ctx.inbound.submit_unacknowledged(inbound).await;
            submitted.map_err(|error| {
                // Not acknowledged: the token is not saved, so the next run sees it again.
                AdapterError::Connection(format!("the core did not accept an event: {error}"))
            })?;
        }
        Ok(())
    }

    /// The sender's display name in the room, from the client's store.
    async fn display_name(&self, room_id: &OwnedRoomId, user_id: &str) -> Option<String> {
        let room = self.client.get_room(room_id)?;
        let user = <&UserId>::try_from(user_id).ok()?;
        let member = room.get_member_no_sync(user).await.ok()??;
        let name = member.display_name()?;
        (!name.trim().is_empty()).then(|| name.to_owned())
    }
}

async fn load(ctx: &AdapterContext, key: &str) -> Result<Option<String>, AdapterError> {
    ctx.state
        .load(key)
        .await
        .map_err(|error| AdapterError::Connection(format!("adapter state: {error}")))
}

async fn save(ctx: &AdapterContext, key: &str, value: &str) -> Result<(), AdapterError> {
    ctx.state
        .save(key, value)
        .await
        .map_err(|error| AdapterError::Connection(format!("adapter state: {error}")))
}
