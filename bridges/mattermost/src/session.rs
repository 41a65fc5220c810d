//! One run of the bot API: authenticate, resolve the team and channels (joining
//! them), open the websocket (authentication challenge, `hello`), catch up on what was
//! missed since the saved cursor, then relay events until cancelled or disconnected.
//!
//! Each routed channel is reported to the core (`ctx.health`) joined once it is
//! resolved and the bot is a member, refused with the server's error when it cannot
//! be found or joined, and left when the routes drop it; every run reports them all
//! again. A channel missing at the start still fails the run (a setup problem, see
//! `not_found_or`); one added while running is left out alone.
//!
//! Catch-up runs before the buffered websocket events are read, so posts reach the
//! core in order; the core's native-id dedup makes any overlap harmless, which is why
//! the cursor may lag (it is saved every few seconds, not per post).
//!
//! Nothing a server sends is dropped unseen: an event whose post cannot be read is
//! counted, logged (throttled) and fetched again over REST.

mod catch_up;
mod throttle;

use crate::api::{Post, Unreadable, WsMessage};
use crate::client::{ApiError, Client, SINCE_LIMIT};
use crate::inbound::{Change, Translator};
use crate::{Live, MattermostAdapter};
use catch_up::{Cursors, change_time};
use futures::{SinkExt, StreamExt};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::event::now_ms;
use switchboard_sdk::{AdapterContext, AdapterError, ConnectionState, RoomId, SubmitError};
use throttle::Throttle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const HELLO_TIMEOUT: Duration = Duration::from_secs(20);
const PING_EVERY: Duration = Duration::from_secs(15);
/// Without any frame for this long (pings unanswered) the connection is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
const CURSOR_SAVE_EVERY: Duration = Duration::from_secs(3);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn run(
    adapter: &MattermostAdapter,
    ctx: &AdapterContext,
    cancel: &CancellationToken,
) -> Result<(), AdapterError> {
    let started_ms = now_ms();
    let live = connect_rest(adapter, ctx).await?;
    adapter.live.set(Some(live.clone()));
    let mut socket = tokio::select! {
        socket = open_websocket(&adapter.client) => socket?,
        () = cancel.cancelled() => return Ok(()),
    };

    let mut watch = Watch::new(ctx, &live);
    let (mut cursors, rewound) = Cursors::load(ctx, live.channels.values(), started_ms).await?;
    for (channel, saved) in rewound {
        watch.future_timestamp(&channel, "(saved cursor)", saved);
    }
    let max_age = Duration::from_secs(adapter.config.catch_up_max_age_secs);
    catch_up(ctx, &live.translator, &mut cursors, &mut watch, max_age).await?;
    cursors.save(ctx).await;
    // Connected only once caught up, as the other adapters do: a healthy network is
    // one that relays live, and a failing catch-up ends this run without ever
    // having claimed it.
    ctx.health.report(ConnectionState::Connected);
    tracing::info!(network = %ctx.network, channels = live.channels.len(), "Mattermost: connected");

    let mut live = live;
    let result = relay(
        adapter,
        ctx,
        &mut live,
        &mut socket,
        &mut cursors,
        &mut watch,
        cancel,
    )
    .await;
    cursors.save(ctx).await;
    if cancel.is_cancelled() {
        let _ = socket.close(None).await;
    }
    result
}

/// Authenticates and resolves everything `send` needs, which stays valid while the
/// websocket reconnects.
async fn connect_rest(
    adapter: &MattermostAdapter,
    ctx: &AdapterContext,
) -> Result<Arc<Live>, AdapterError> {
    let client = &adapter.client;
    let me = match adapter.config.mode() {
        crate::config::Mode::Login(login) => client.login(&login.username, &login.password).await,
        crate::config::Mode::Token(token) => {
            client.set_token(&token);
            client.me().await
        }
        crate::config::Mode::Webhooks(_) => {
            return Err(AdapterError::Config("webhook mode has no session".into()));
        }
    }
    .map_err(|error| connect_error("authentication", error))?;
    let team_name = &adapter.config.team;
    let team = client.team_by_name(team_name).await.map_err(|error| {
        not_found_or(
            format!("team {team_name:?} not found (or the bot is not a member of it)"),
            error,
        )
    })?;
    let mut channels = HashMap::new();
    let mut rooms = HashMap::new();
    let mut names = HashMap::new();
    for room in ctx.rooms.current().iter() {
        let channel = resolve_channel(client, ctx, &team.name, team_name, room, &me.id)
            .await
            .inspect_err(|error| {
                // A refusal (not a server that is down, which ends the run to retry soon).
                if let AdapterError::Config(refusal) = error {
                    ctx.health.join_failed(room, refusal.as_str());
                }
            })?;
        ctx.health.joined(room);
        names.insert(channel.id.clone(), describe_channel(&channel));
        channels.insert(room.clone(), channel.id.clone());
        rooms.insert(channel.id, room.clone());
    }
    let names_overridden = adapter.config.override_names && server_allows_override(client).await;
    let translator = Translator::new(ctx.network.clone(), rooms, me.id.clone(), client.clone())
        .with_channel_names(names);
    Ok(Arc::new(Live {
        channels,
        names_overridden,
        translator: Arc::new(translator),
    }))
}

/// Finds a routed room's channel in the team and makes sure the bot is a member.
async fn resolve_channel(
    client: &Client,
    ctx: &AdapterContext,
    team: &str,
    configured_team: &str,
    room: &RoomId,
    own_user_id: &str,
) -> Result<crate::api::Channel, AdapterError> {
    let channel = client.channel(team, room.as_str()).await.map_err(|error| {
        not_found_or(
            format!(
                "channel {room} not found in team {configured_team} (or the bot is not a member)"
            ),
            error,
        )
    })?;
    if let Err(error) = client.join_channel(&channel.id, own_user_id).await {
        // The bot may be in a channel it may not add members to (a private one).
        if client
            .channel_member(&channel.id, own_user_id)
            .await
            .is_err()
        {
            return Err(not_found_or(
                format!("cannot join channel {room} in team {configured_team}"),
                error,
            ));
        }
        tracing::debug!(network = %ctx.network, %room, %error, "Mattermost: cannot join the channel, but the bot is a member");
    }
    Ok(channel)
}

/// The routes changed this network's rooms: resolves (and joins) the channels added,
/// whose catch-up starts now, and stops relaying those removed, on the same
/// connection. A channel that cannot be resolved is reported refused and left out;
/// its rows wait until the next change of the rooms (which tries it again) or the
/// next connection resolves it.
async fn follow_rooms(
    adapter: &MattermostAdapter,
    ctx: &AdapterContext,
    live: &mut Arc<Live>,
    cursors: &mut Cursors,
    watch: &mut Watch,
    refused: &mut BTreeSet<RoomId>,
    current: &BTreeSet<RoomId>,
) -> Result<(), AdapterError> {
    // A refused room the routes dropped is left too, though it was never served.
    for room in refused.difference(current) {
        ctx.health.left(room);
    }
    refused.retain(|room| current.contains(room));
    let served: BTreeSet<RoomId> = live.channels.keys().cloned().collect();
    // A refused room still routed is among those added (it is not served): tried
    // again at each change, as the channel may exist now.
    let changes = switchboard_sdk::RoomChanges::between(&served, current);
    if changes.is_empty() {
        return Ok(());
    }
    let client = &adapter.client;
    let mut channels = live.channels.clone();
    let mut rooms = live.translator.rooms.clone();
    let mut names = live.translator.channel_names.clone();
    for room in &changes.removed {
        if let Some(channel) = channels.remove(room) {
            tracing::info!(network = %ctx.network, %room, "Mattermost: channel no longer routed; not relayed any more");
            rooms.remove(&channel);
            cursors.forget(&channel);
        }
        ctx.health.left(room);
    }
    if !changes.added.is_empty() {
        let team_name = &adapter.config.team;
        let team = client
            .team_by_name(team_name)
            .await
            .map_err(|error| connect_error("team", error))?;
        for room in &changes.added {
            let own_user_id = &live.translator.own_user_id;
            match resolve_channel(client, ctx, &team.name, team_name, room, own_user_id).await {
                Ok(channel) => {
                    tracing::info!(network = %ctx.network, %room, "Mattermost: channel newly routed; relaying it");
                    ctx.health.joined(room);
                    refused.remove(room);
                    names.insert(channel.id.clone(), describe_channel(&channel));
                    // What was said before the room was routed is not relayed.
                    cursors.start_at(&channel.id, now_ms());
                    channels.insert(room.clone(), channel.id.clone());
                    rooms.insert(channel.id, room.clone());
                }
                Err(error) => {
                    // Whatever the cause, it is not joined until the next change or run.
                    tracing::debug!(network = %ctx.network, %room, %error, "Mattermost: cannot resolve a newly routed channel; its messages stay queued");
                    let refusal = match error {
                        AdapterError::Config(refusal) => refusal,
                        other => other.to_string(),
                    };
                    ctx.health.join_failed(room, refusal);
                    refused.insert(room.clone());
                }
            }
        }
    }
    let translator = Translator::new(
        ctx.network.clone(),
        rooms,
        live.translator.own_user_id.clone(),
        client.clone(),
    )
    .with_channel_names(names.clone());
    watch.names = names;
    let next = Arc::new(Live {
        channels,
        names_overridden: live.names_overridden,
        translator: Arc::new(translator),
    });
    adapter.live.set(Some(next.clone()));
    *live = next;
    cursors.save(ctx).await;
    Ok(())
}

/// Degrade per feature rather than gate on a version: an unreadable client config
/// just means names go into the text.
async fn server_allows_override(client: &Client) -> bool {
    match client.client_config().await {
        Ok(config) => {
            config
                .get("EnablePostUsernameOverride")
                .and_then(|v| v.as_str())
                == Some("true")
        }
        Err(error) => {
            tracing::warn!(%error, "Mattermost: cannot read the client config; names go into the text");
            false
        }
    }
}

/// "Town Square (town-square)", for logs.
fn describe_channel(channel: &crate::api::Channel) -> String {
    match channel.display_name.as_str() {
        "" => channel.name.clone(),
        display if display == channel.name => channel.name.clone(),
        display => format!("{display} ({})", channel.name),
    }
}

/// A team or channel the server will not show us is a setup problem that retrying
/// soon will not fix: the network is reported failed (and retried slowly), with
/// what to check instead of the server's words for a wrong path (whose "missing
/// channel_id" sent people looking in the wrong place). Other failures are classed
/// as usual.
fn not_found_or(not_found: String, error: ApiError) -> AdapterError {
    match error.status() {
        Some(400 | 403 | 404) => AdapterError::Config(format!("{not_found}: {error}")),
        _ => connect_error(&not_found, error),
    }
}

fn connect_error(what: &str, error: ApiError) -> AdapterError {
    match error.status() {
        Some(401) => AdapterError::Auth(format!("{what}: {error}")),
        Some(403 | 404) => AdapterError::Config(format!("{what}: {error}")),
        _ => AdapterError::Connection(format!("{what}: {error}")),
    }
}

async fn open_websocket(client: &Client) -> Result<Socket, AdapterError> {
    let url = format!(
        "{}/api/v4/websocket",
        client
            .base()
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    );
    let tls = switchboard_sdk::tls::client_config("Mattermost", client.accepts_invalid_certs())
        .map_err(AdapterError::Config)?;
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls));
    let (mut socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector))
            .await
            .map_err(|error| AdapterError::Connection(format!("websocket: {error}")))?;
    let challenge = serde_json::json!({
        "seq": 1,
        "action": "authentication_challenge",
        "data": { "token": client.token() },
    });
    socket
        .send(Message::text(challenge.to_string()))
        .await
        .map_err(|error| AdapterError::Connection(format!("websocket: {error}")))?;
    let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
        while let Some(frame) = socket.next().await {
            let frame =
                frame.map_err(|error| AdapterError::Connection(format!("websocket: {error}")))?;
            let Some(message) = parse_frame(&frame) else {
                continue;
            };
            if message.seq_reply == Some(1) && message.status.as_deref() != Some("OK") {
                return Err(AdapterError::Auth(
                    "the websocket refused the authentication challenge".into(),
                ));
            }
            if message.event.as_deref() == Some("hello") {
                return Ok(());
            }
        }
        Err(AdapterError::Connection(
            "websocket closed before hello".into(),
        ))
    })
    .await;
    match hello {
        Ok(Ok(())) => Ok(socket),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(AdapterError::Connection(format!(
            "no websocket hello within {HELLO_TIMEOUT:?}"
        ))),
    }
}

fn parse_frame(frame: &Message) -> Option<WsMessage> {
    match frame {
        Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
        _ => None,
    }
}

/// Reads events until cancelled or the connection fails.
async fn relay(
    adapter: &MattermostAdapter,
    ctx: &AdapterContext,
    live: &mut Arc<Live>,
    socket: &mut Socket,
    cursors: &mut Cursors,
    watch: &mut Watch,
    cancel: &CancellationToken,
) -> Result<(), AdapterError> {
    let max_age = Duration::from_secs(adapter.config.catch_up_max_age_secs);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut save = tokio::time::interval(CURSOR_SAVE_EVERY);
    let mut action_seq = 2i64;
    let mut expected_seq: Option<i64> = None;
    let mut last_frame = tokio::time::Instant::now();
    let mut room_set = ctx.rooms.clone();
    // Rooms added on this connection that could not be resolved (to report them left
    // when the routes drop them).
    let mut refused = BTreeSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            current = room_set.changed() => {
                follow_rooms(adapter, ctx, live, cursors, watch, &mut refused, &current).await?;
            }
            _ = save.tick() => cursors.save(ctx).await,
            _ = ping.tick() => {
                if last_frame.elapsed() > SILENCE_LIMIT {
                    return Err(AdapterError::Connection(format!("websocket silent for {SILENCE_LIMIT:?}")));
                }
                let frame = serde_json::json!({ "action": "ping", "seq": action_seq });
                action_seq += 1;
                socket.send(Message::text(frame.to_string())).await
                    .map_err(|error| AdapterError::Connection(format!("websocket: {error}")))?;
            }
            frame = socket.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(error)) => return Err(AdapterError::Connection(format!("websocket: {error}"))),
                    None => return Err(AdapterError::Connection("websocket closed by the server".into())),
                };
                last_frame = tokio::time::Instant::now();
                if matches!(frame, Message::Close(_)) {
                    return Err(AdapterError::Connection("websocket closed by the server".into()));
                }
                let message = match frame {
                    Message::Text(ref text) => match serde_json::from_str::<WsMessage>(text.as_str()) {
                        Ok(message) => message,
                        Err(error) => {
                            // Its seq is unknown: the gap it leaves brings a catch-up.
                            watch.unreadable("websocket", "a websocket frame", &error.to_string(), "the next event's seq will show the gap");
                            continue;
                        }
                    },
                    _ => continue,
                };
                let Some(event) = message.event.as_deref() else { continue };
                if let Some(seq) = message.seq {
                    // A gap means the server dropped events for us: fetch them.
                    if expected_seq.is_some_and(|expected| seq > expected) {
                        tracing::warn!(network = %ctx.network, seq, "Mattermost: websocket events missed; catching up");
                        catch_up(ctx, &live.translator, cursors, watch, max_age).await?;
                    }
                    expected_seq = Some(seq + 1);
                }
                if let Some(added) = reaction_change(event) {
                    relay_reaction(ctx, &live.translator, watch, &message, added).await?;
                    continue;
                }
                let Some(change) = Change::from_event(event) else { continue };
                let post = match message.post() {
                    Ok(post) => post,
                    Err(unreadable) => {
                        recover_unreadable(ctx, live, cursors, watch, max_age, event, unreadable).await?;
                        continue;
                    }
                };
                if change == Change::Created && cursors.caught_up.contains(&post.id) {
                    continue;
                }
                relay_post(ctx, &live.translator, cursors, watch, change, &post).await?;
            }
        }
    }
}

/// What a run logs about and counts: the channels' names, and the throttles of the
/// warnings a misbehaving server could repeat on every event.
struct Watch {
    network: switchboard_sdk::NetworkId,
    /// channel id -> "Display Name (name)".
    names: HashMap<String, String>,
    future: Throttle,
    unreadable: Throttle,
}

/// One warning line per this interval for each kind of repeated problem.
const WARN_EVERY: Duration = Duration::from_secs(60);

impl Watch {
    fn new(ctx: &AdapterContext, live: &Live) -> Self {
        Self {
            network: ctx.network.clone(),
            names: live.translator.channel_names.clone(),
            future: Throttle::new(WARN_EVERY),
            unreadable: Throttle::new(WARN_EVERY),
        }
    }

    fn name<'a>(&'a self, channel_id: &'a str) -> &'a str {
        self.names
            .get(channel_id)
            .map_or(channel_id, String::as_str)
    }

    /// A post dated further ahead of the daemon's clock than clocks drift.
    fn future_timestamp(&mut self, channel_id: &str, post_id: &str, at_ms: i64) {
        if let Some(suppressed) = self.future.admit() {
            let ahead = Duration::from_millis(at_ms.saturating_sub(now_ms()).max(0) as u64);
            tracing::warn!(
                network = %self.network,
                channel = self.name(channel_id),
                post = post_id,
                ahead = %format_args!("{}s", ahead.as_secs()),
                not_logged = suppressed,
                "Mattermost: a post is dated ahead of this machine's clock (is the server's clock right?); its timestamp does not move the catch-up cursor past now"
            );
        }
    }

    /// An event or a listed post that cannot be read; counted, and logged (throttled).
    fn unreadable(&mut self, source: &'static str, what: &str, reason: &str, next: &str) {
        metrics::counter!(UNREADABLE_METRIC, "network" => self.network.to_string(), "source" => source)
            .increment(1);
        if let Some(suppressed) = self.unreadable.admit() {
            tracing::warn!(
                network = %self.network,
                source,
                %reason,
                not_logged = suppressed,
                "Mattermost: {what} cannot be read; {next}"
            );
        }
    }
}

/// Counts events and listed posts the adapter could not read, by where they came
/// from (`websocket` or `rest`).
pub const UNREADABLE_METRIC: &str = "switchboard_mattermost_unreadable_posts_total";

async fn relay_post(
    ctx: &AdapterContext,
    translator: &Translator,
    cursors: &mut Cursors,
    watch: &mut Watch,
    change: Change,
    post: &Post,
) -> Result<(), AdapterError> {
    if let Some(event) = translator.translate(change, post).await {
        ctx.inbound
            .submit_unacknowledged(event)
            .await
            .map_err(submit_error)?;
    }
    if let Err(at_ms) = cursors.advance(&post.channel_id, change_time(change, post)) {
        watch.future_timestamp(&post.channel_id, &post.id, at_ms);
    }
    Ok(())
}

/// `Some(true)` for `reaction_added`, `Some(false)` for `reaction_removed`.
fn reaction_change(event: &str) -> Option<bool> {
    match event {
        "reaction_added" => Some(true),
        "reaction_removed" => Some(false),
        _ => None,
    }
}

/// A reaction event: relayed as a reaction or as the removal of one. Catch-up does
/// not list reactions, so one that cannot be read is counted and logged, not fetched.
async fn relay_reaction(
    ctx: &AdapterContext,
    translator: &Translator,
    watch: &mut Watch,
    message: &WsMessage,
    added: bool,
) -> Result<(), AdapterError> {
    let reaction = match message.reaction() {
        Ok(reaction) => reaction,
        Err(reason) => {
            watch.unreadable(
                "websocket",
                "a reaction event",
                &reason,
                "it is not relayed",
            );
            return Ok(());
        }
    };
    let channel_id = &message.broadcast.channel_id;
    if let Some(event) = translator
        .translate_reaction(channel_id, added, &reaction)
        .await
    {
        ctx.inbound
            .submit_unacknowledged(event)
            .await
            .map_err(submit_error)?;
    }
    Ok(())
}

fn submit_error(error: SubmitError) -> AdapterError {
    // Not acknowledged: the cursor stays behind and catch-up brings it again.
    AdapterError::Connection(format!("the core did not accept an event: {error}"))
}

/// Posts changed in each bridged channel since its cursor (bounded by `max_age`),
/// relayed in the order the changes happened.
async fn catch_up(
    ctx: &AdapterContext,
    translator: &Translator,
    cursors: &mut Cursors,
    watch: &mut Watch,
    max_age: Duration,
) -> Result<(), AdapterError> {
    let oldest = now_ms().saturating_sub(max_age.as_millis() as i64);
    cursors.caught_up.clear();
    for (channel, cursor) in cursors.positions() {
        // One millisecond back: posts sharing the cursor's millisecond are not missed,
        // and those already relayed are duplicates the core drops.
        let since = cursor.saturating_sub(1).max(oldest);
        let changes = catch_up::changes_since(&translator.client, &channel, since)
            .await
            .map_err(|error| {
                AdapterError::Connection(format!(
                    "catch-up of channel {}: {error}",
                    watch.name(&channel)
                ))
            })?;
        if !changes.list.is_empty() {
            tracing::info!(
                network = %ctx.network,
                channel = watch.name(&channel),
                changes = changes.list.len(),
                "Mattermost: catching up"
            );
        }
        if changes.edits_may_be_missing {
            tracing::warn!(
                network = %ctx.network,
                channel = watch.name(&channel),
                "Mattermost: over {SINCE_LIMIT} posts changed while disconnected; all new posts are relayed, but edits and deletes of older posts may be missing"
            );
        }
        for (post_id, reason) in &changes.unreadable {
            let what = format!("post {post_id} in channel {}", watch.name(&channel));
            watch.unreadable("rest", &what, reason, "not relayed");
        }
        for (change, post) in changes.list {
            if change == Change::Created {
                cursors.caught_up.insert(post.id.clone());
            }
            relay_post(ctx, translator, cursors, watch, change, &post).await?;
        }
    }
    Ok(())
}

/// A `posted`/`post_edited`/`post_deleted` event whose post cannot be read: counted
/// and logged, then the post is fetched by id, or, without a usable id (or for a
/// deletion, which the API no longer shows by id), every channel catches up.
async fn recover_unreadable(
    ctx: &AdapterContext,
    live: &Live,
    cursors: &mut Cursors,
    watch: &mut Watch,
    max_age: Duration,
    event: &str,
    unreadable: Unreadable,
) -> Result<(), AdapterError> {
    let translator = &live.translator;
    let reason = unreadable.reason.as_str();
    let id = unreadable
        .post_id
        .filter(|id| crate::client::looks_like_id(id) && !event.ends_with("deleted"));
    let Some(id) = id else {
        watch.unreadable(
            "websocket",
            &format!("a `{event}` event"),
            reason,
            "catching up over REST",
        );
        return catch_up(ctx, translator, cursors, watch, max_age).await;
    };
    watch.unreadable(
        "websocket",
        &format!("the `{event}` event of post {id}"),
        reason,
        "fetching the post over REST",
    );
    let fetched = match translator.client.post_by_id(&id).await {
        Ok(post) => match post.unreadable() {
            None => Some(post),
            Some(problem) => {
                watch.unreadable(
                    "rest",
                    &format!("post {id}"),
                    problem,
                    "catching up over REST",
                );
                None
            }
        },
        Err(error) => {
            tracing::info!(network = %ctx.network, post = %id, %error, "Mattermost: cannot fetch an unreadable event's post; catching up over REST");
            None
        }
    };
    match fetched {
        Some(post) => {
            let change = Change::from_event(event).unwrap_or(Change::Created);
            relay_post(ctx, translator, cursors, watch, change, &post).await
        }
        None => catch_up(ctx, translator, cursors, watch, max_age).await,
    }
}

/// For `Live`: which room is which channel.
pub fn channel_of(live: &Live, room: &RoomId) -> Option<String> {
    live.channels.get(room).cloned()
}
