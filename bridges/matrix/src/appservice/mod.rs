//! Application-service (puppet) mode: the homeserver pushes the bridged rooms'
//! events to the daemon (`transactions`), and every remote sender speaks as a ghost
//! user of their own (`ghosts`), through the client-server API as the service
//! (`api`, `user_id` masquerading). The bridge bot (the registration's
//! `sender_localpart`) joins the rooms and speaks the bridge's own lines. Events
//! from the bot and from ghosts are marked as the bridge's own, so nothing loops.
//! The homeserver queues events while the daemon is down and retries, so there is
//! no catch-up of our own; `catch_up_max_age_secs` still bounds what is relayed.
//! The bot's rooms are reported joined, refused or left as in `session`.

mod api;
mod ghosts;
pub mod registration;
mod transactions;

pub(crate) use transactions::body_limit;

use crate::config::AppserviceConfig;
use crate::inbound::{Translator, localpart};
use crate::outbound::{self, Request};
use crate::session::{JoinError, room_changes};
use crate::{MatrixAdapter, MatrixConfig};
use api::Api;
use ghosts::Ghosts;
use matrix_sdk::ruma::{OwnedRoomId, RoomId as MatrixRoomId};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use switchboard_sdk::event::now_ms;
use switchboard_sdk::{
    AdapterContext, AdapterError, ConnectionState, NativeMsgId, Outbound, RoomId, SendError,
    SendReceipt, WebhookRequest, WebhookResponse,
};
use tokio_util::sync::CancellationToken;

/// What one run resolved; sends and transactions work from it.
pub(crate) struct Live {
    api: Api,
    config: MatrixConfig,
    hs_token: String,
    /// Room as routes name it -> room id; replaced when the routes change.
    rooms: Mutex<HashMap<RoomId, String>>,
    translator: Translator,
    ghosts: Ghosts,
    /// (room id, user id) -> display name, kept current from member events.
    names: Mutex<HashMap<(String, String), String>>,
    txn_salt: String,
    /// The transaction ids handled last, as saved in adapter state; held while a
    /// transaction is relayed, so they are relayed one at a time, in order.
    done_txns: tokio::sync::Mutex<VecDeque<String>>,
}

impl Live {
    fn appservice(&self) -> &AppserviceConfig {
        self.config
            .appservice
            .as_ref()
            .expect("appservice mode has an appservice section")
    }

    fn is_own(&self, user_id: &str) -> bool {
        user_id == self.config.user_id
            || ghosts::is_ghost(
                user_id,
                &self.appservice().ghost_prefix,
                self.config.server_name(),
            )
    }

    /// Relays one event of a transaction; `Ok` once committed (or not relayed).
    async fn relay(&self, ctx: &AdapterContext, event: &Value) -> Result<(), String> {
        let Some(room_id) = event
            .get("room_id")
            .and_then(Value::as_str)
            .and_then(|id| <&MatrixRoomId>::try_from(id).ok())
        else {
            return Ok(());
        };
        self.remember_name(room_id.as_str(), event);
        let Some(mut inbound) = self.translator.translate(room_id, event) else {
            return Ok(());
        };
        let oldest_ms = now_ms() - (self.config.catch_up_max_age_secs as i64) * 1000;
        if inbound.timestamp_ms < oldest_ms {
            return Ok(());
        }
        inbound.sender.is_self = self.is_own(&inbound.sender.id);
        if !inbound.sender.is_self {
            inbound.sender.display_name = self.name(room_id.as_str(), &inbound.sender.id).await;
        }
        ctx.inbound
            .submit(inbound)
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// A member event tells the member's current display name.
    fn remember_name(&self, room_id: &str, event: &Value) {
        if event.get("type").and_then(Value::as_str) != Some("m.room.member") {
            return;
        }
        let (Some(user), Some(name)) = (
            event.get("state_key").and_then(Value::as_str),
            event
                .get("content")
                .and_then(|content| content.get("displayname"))
                .and_then(Value::as_str)
                .filter(|name| !name.trim().is_empty()),
        ) else {
            return;
        };
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.insert((room_id.to_owned(), user.to_owned()), name.to_owned());
    }

    async fn name(&self, room_id: &str, user_id: &str) -> String {
        let key = (room_id.to_owned(), user_id.to_owned());
        if let Some(name) = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return name.clone();
        }
        let name = self
            .api
            .member_name(room_id, user_id)
            .await
            .unwrap_or_else(|| localpart(user_id).to_owned());
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, name.clone());
        name
    }
}

pub(crate) async fn run(
    adapter: &MatrixAdapter,
    ctx: &AdapterContext,
    cancel: &CancellationToken,
) -> Result<(), AdapterError> {
    let config = &adapter.config;
    let tokens = registration::load_tokens(config, &*ctx.state)
        .await
        .map_err(|error| AdapterError::Connection(format!("adapter state: {error}")))?
        .ok_or_else(|| {
            AdapterError::Config(
                "no application-service tokens yet: run `switchboard matrix-registration -c CONFIG` \
                 and install what it prints on the homeserver"
                    .into(),
            )
        })?;
    let api = Api::new(
        &config.homeserver,
        &tokens.as_token,
        config.accept_invalid_certs,
    )
    .map_err(AdapterError::Config)?;
    match api.whoami().await {
        Ok(user) if user == config.user_id => {}
        Ok(user) => {
            return Err(AdapterError::Config(format!(
                "the as_token belongs to {user}, not to user_id {}",
                config.user_id
            )));
        }
        Err(error) if matches!(error.status(), Some(401 | 403)) => {
            return Err(AdapterError::Auth(format!(
                "the homeserver refused the as_token ({error}): is the registration installed?"
            )));
        }
        Err(error) => return Err(AdapterError::Connection(format!("whoami: {error}"))),
    }
    let mut rooms = HashMap::new();
    for room in ctx.rooms.current().iter() {
        let room_id = join(&api, room)
            .await
            .map_err(|error| error.reported(ctx, room))?;
        ctx.health.joined(room);
        rooms.insert(room.clone(), room_id);
    }
    let live = Live {
        api,
        config: config.clone(),
        hs_token: tokens.hs_token,
        translator: Translator::new(
            ctx.network.clone(),
            by_id(&rooms),
            config.homeserver.trim_end_matches('/').to_owned(),
        ),
        rooms: Mutex::new(rooms),
        ghosts: Ghosts::default(),
        names: Mutex::default(),
        txn_salt: crate::session::txn_salt(ctx).await?,
        done_txns: tokio::sync::Mutex::new(
            transactions::load_done_txns(ctx)
                .await
                .map_err(|error| AdapterError::Connection(format!("adapter state: {error}")))?,
        ),
    };
    let live = Arc::new(live);
    adapter.appservice_live.set(Some(live.clone()));
    ctx.health.report(ConnectionState::Connected);
    tracing::info!(network = %ctx.network, rooms = ctx.rooms.current().len(), "Matrix appservice: connected");
    let mut room_set = ctx.rooms.clone();
    // Rooms added while running that could not be joined.
    let mut refused = BTreeSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            current = room_set.changed() => follow_rooms(ctx, &live, &mut refused, &current).await,
        }
    }
}

/// The bot joins a routed room (by id or alias); returns its id.
async fn join(api: &Api, room: &RoomId) -> Result<String, JoinError> {
    let room_id = api
        .join(room.as_str(), None)
        .await
        .map_err(|error| match error.status() {
            Some(status) => JoinError::from_status(status, error.to_string()),
            None => JoinError::Failed(AdapterError::Connection(format!(
                "cannot join {room}: {error}"
            ))),
        })?;
    OwnedRoomId::try_from(room_id.as_str()).map_err(|error| {
        JoinError::Failed(AdapterError::Connection(format!(
            "room id {room_id}: {error}"
        )))
    })?;
    Ok(room_id)
}

/// Room id -> the room as routes name it (ids the homeserver gave are valid).
fn by_id(rooms: &HashMap<RoomId, String>) -> HashMap<OwnedRoomId, RoomId> {
    rooms
        .iter()
        .filter_map(|(room, id)| Some((OwnedRoomId::try_from(id.as_str()).ok()?, room.clone())))
        .collect()
}

/// The routes changed this network's rooms: the bot joins the rooms added, and
/// those removed are no longer relayed (the bot and its ghosts stay members: a room
/// it was invited to may not take it back). A room that cannot be joined is
/// reported refused and left out; its rows wait until the next change of the rooms
/// (which tries it again) or the next run joins it.
async fn follow_rooms(
    ctx: &AdapterContext,
    live: &Live,
    refused: &mut BTreeSet<RoomId>,
    current: &BTreeSet<RoomId>,
) {
    let mut rooms = live.rooms.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let served = rooms.keys().cloned().collect();
    let changes = room_changes(ctx, &served, refused, current);
    for room in &changes.removed {
        tracing::info!(network = %ctx.network, %room, "Matrix appservice: room no longer routed; not relayed any more");
        rooms.remove(room);
    }
    for room in &changes.added {
        match join(&live.api, room).await {
            Ok(room_id) => {
                tracing::info!(network = %ctx.network, %room, "Matrix appservice: room newly routed; joined");
                ctx.health.joined(room);
                refused.remove(room);
                rooms.insert(room.clone(), room_id);
            }
            Err(error) => {
                let refusal = error.refusal();
                tracing::debug!(network = %ctx.network, %room, %refusal, "Matrix appservice: cannot join a newly routed room; its messages stay queued");
                ctx.health.join_failed(room, refusal);
                refused.insert(room.clone());
            }
        }
    }
    live.translator.set_rooms(by_id(&rooms));
    *live.rooms.lock().unwrap_or_else(|p| p.into_inner()) = rooms;
}

/// The current run, if any, and the `hs_token` requests must carry.
async fn run_and_token(
    adapter: &MatrixAdapter,
    ctx: &AdapterContext,
) -> (Option<Arc<Live>>, Option<String>) {
    let live = adapter.appservice_live.get();
    let hs_token = match &live {
        Some(live) => Some(live.hs_token.clone()),
        // Not connected yet: the token still decides between 401/403 and 503.
        None => registration::load_tokens(&adapter.config, &*ctx.state)
            .await
            .ok()
            .flatten()
            .map(|tokens| tokens.hs_token),
    };
    (live, hs_token)
}

/// A request under `/webhooks/NETWORK/...`, before its body is read: refused here
/// unless it carries the `hs_token` (see `transactions::refusal_before_body`).
pub(crate) async fn check(
    adapter: &MatrixAdapter,
    ctx: &AdapterContext,
    request: &WebhookRequest,
) -> Option<WebhookResponse> {
    let (_, hs_token) = run_and_token(adapter, ctx).await;
    transactions::refusal_before_body(hs_token.as_deref(), ctx, request)
}

/// A request under `/webhooks/NETWORK/...`: the application-service API.
pub(crate) async fn handle(
    adapter: &MatrixAdapter,
    ctx: &AdapterContext,
    request: &WebhookRequest,
) -> WebhookResponse {
    let (live, hs_token) = run_and_token(adapter, ctx).await;
    transactions::handle(live.as_deref(), hs_token.as_deref(), ctx, request).await
}

/// Sends as the sender's ghost (the bot for the bridge's own lines).
pub(crate) async fn send(live: &Live, message: &Outbound) -> Result<SendReceipt, SendError> {
    let room_id = live
        .rooms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&message.room)
        .cloned()
        .ok_or_else(|| SendError::Transient(format!("room {} is not joined yet", message.room)))?;
    let room_id = &room_id;
    let ghost = if message.origin.sender_id.is_empty() {
        None
    } else {
        let appservice = live.appservice();
        let local = ghosts::localpart(&appservice.ghost_prefix, &message.origin);
        let user_id = format!("@{local}:{}", live.config.server_name());
        let name = ghosts::display_name(
            &message.sender_name,
            &appservice.ghost_suffix,
            &message.origin,
        );
        live.ghosts
            .ensure(&live.api, &user_id, &local, &name, room_id)
            .await?;
        Some(user_id)
    };
    let txn = |part: usize| outbound::txn_id(&live.txn_salt, message, part);
    let (event_type, body) = match outbound::request(message) {
        None => return Ok(SendReceipt::default()),
        Some(Request::Message(body)) => ("m.room.message", body),
        Some(Request::Reaction(body)) => ("m.reaction", body),
        Some(Request::Redact(targets)) => {
            return redact(live, room_id, &targets, ghost.as_deref(), txn).await;
        }
    };
    match live
        .api
        .send_event(room_id, event_type, &txn(0), ghost.as_deref(), &body)
        .await
    {
        Ok(event_id) => Ok(SendReceipt {
            native_ids: vec![NativeMsgId::new(event_id)],
        }),
        Err(error) => {
            if error.status() == Some(403)
                && let Some(ghost) = &ghost
            {
                // Perhaps kicked: this row is dead-lettered with the reason, and
                // the next message joins the ghost again.
                live.ghosts.forget_room(ghost, room_id).await;
            }
            Err(error.into())
        }
    }
}

/// Redacts every part of a copy, as the ghost and else as the bot; one already
/// gone is fine.
async fn redact(
    live: &Live,
    room_id: &str,
    targets: &[NativeMsgId],
    ghost: Option<&str>,
    txn: impl Fn(usize) -> String,
) -> Result<SendReceipt, SendError> {
    for (part, target) in targets.iter().enumerate() {
        let as_ghost = live
            .api
            .redact(room_id, target.as_str(), &txn(part), ghost)
            .await;
        let result = match as_ghost {
            // A copy the bot sent (or one the ghost may not redact): the bot
            // tries with its own power level.
            Err(error) if error.status() == Some(403) && ghost.is_some() => {
                live.api
                    .redact(room_id, target.as_str(), &txn(part), None)
                    .await
            }
            other => other,
        };
        match result {
            Ok(()) => {}
            Err(error) if error.status() == Some(404) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(SendReceipt::default())
}
