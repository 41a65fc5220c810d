//! One run of the bot API: authenticate, resolve the team and channels (joining
//! them), open the websocket (authentication challenge, `hello`), catch up on what was
//! missed since the saved cursor, then relay events until cancelled or disconnected.
//!
//! Catch-up runs before the buffered websocket events are read, so posts reach the
//! core in order; the core's native-id dedup makes any overlap harmless, which is why
//! the cursor may lag (it is saved every few seconds, not per post).

use crate::api::{Post, WsMessage};
use crate::client::{ApiError, Client};
use crate::inbound::{Change, Translator};
use crate::outbound::Naming;
use crate::{Live, MattermostAdapter};
use futures::{SinkExt, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::event::now_ms;
use switchboard_sdk::{AdapterContext, AdapterError, ConnectionState, RoomId, SubmitError};
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
    ctx.health.report(ConnectionState::Connected);
    tracing::info!(network = %ctx.network, channels = live.channels.len(), "Mattermost: connected");

    let mut cursors = Cursors::load(ctx, &live, started_ms).await?;
    let max_age = Duration::from_secs(adapter.config.catch_up_max_age_secs);
    catch_up(ctx, &live.translator, &mut cursors, max_age).await?;
    cursors.save(ctx).await;

    let result = relay(ctx, &live, &mut socket, &mut cursors, max_age, cancel).await;
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
    let team = client
        .team_by_name(&adapter.config.team)
        .await
        .map_err(|error| connect_error(&format!("team {:?}", adapter.config.team), error))?;
    let mut channels = HashMap::new();
    let mut rooms = HashMap::new();
    for room in &ctx.rooms {
        let channel = client
            .channel(&team.name, room.as_str())
            .await
            .map_err(|error| connect_error(&format!("channel {room}"), error))?;
        if let Err(error) = client.join_channel(&channel.id, &me.id).await {
            tracing::warn!(network = %ctx.network, %room, %error, "Mattermost: cannot join the channel; relying on existing membership");
        }
        channels.insert(room.clone(), channel.id.clone());
        rooms.insert(channel.id, room.clone());
    }
    let naming = if adapter.config.override_names && server_allows_override(client).await {
        Naming::Override
    } else {
        Naming::Label
    };
    let translator = Translator::new(ctx.network.clone(), rooms, me.id.clone(), client.clone());
    Ok(Arc::new(Live {
        channels,
        naming,
        translator: Arc::new(translator),
    }))
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
    ctx: &AdapterContext,
    live: &Live,
    socket: &mut Socket,
    cursors: &mut Cursors,
    max_age: Duration,
    cancel: &CancellationToken,
) -> Result<(), AdapterError> {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut save = tokio::time::interval(CURSOR_SAVE_EVERY);
    let mut action_seq = 2i64;
    let mut expected_seq: Option<i64> = None;
    let mut last_frame = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
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
                let Some(message) = parse_frame(&frame) else { continue };
                let Some(event) = message.event.as_deref() else { continue };
                if let Some(seq) = message.seq {
                    // A gap means the server dropped events for us: fetch them.
                    if expected_seq.is_some_and(|expected| seq > expected) {
                        tracing::warn!(network = %ctx.network, seq, "Mattermost: websocket events missed; catching up");
                        catch_up(ctx, &live.translator, cursors, max_age).await?;
                    }
                    expected_seq = Some(seq + 1);
                }
                let (Some(change), Some(post)) = (Change::from_event(event), message.post()) else {
                    continue;
                };
                if change == Change::Created && cursors.caught_up.contains(&post.id) {
                    continue;
                }
                relay_post(ctx, &live.translator, cursors, change, &post).await?;
            }
        }
    }
}

async fn relay_post(
    ctx: &AdapterContext,
    translator: &Translator,
    cursors: &mut Cursors,
    change: Change,
    post: &Post,
) -> Result<(), AdapterError> {
    if let Some(event) = translator.translate(change, post).await {
        ctx.inbound.submit(event).await.map_err(submit_error)?;
    }
    cursors.advance(&post.channel_id, post.update_at.max(post.create_at));
    Ok(())
}

fn submit_error(error: SubmitError) -> AdapterError {
    // Not acknowledged: the cursor stays behind and catch-up brings it again.
    AdapterError::Connection(format!("the core did not accept an event: {error}"))
}

/// Posts changed in each bridged channel since its cursor (bounded by `max_age`),
/// relayed oldest first.
async fn catch_up(
    ctx: &AdapterContext,
    translator: &Translator,
    cursors: &mut Cursors,
    max_age: Duration,
) -> Result<(), AdapterError> {
    let oldest = now_ms() - max_age.as_millis() as i64;
    cursors.caught_up.clear();
    let channels: Vec<(String, i64)> = cursors
        .positions
        .iter()
        .map(|(c, p)| (c.clone(), *p))
        .collect();
    for (channel, cursor) in channels {
        // One millisecond back: posts sharing the cursor's millisecond are not missed,
        // and those already relayed are duplicates the core drops.
        let since = (cursor - 1).max(oldest);
        let posts = translator
            .client
            .posts_since(&channel, since)
            .await
            .map_err(|error| AdapterError::Connection(format!("catch-up: {error}")))?;
        if !posts.is_empty() {
            tracing::info!(network = %ctx.network, channel, posts = posts.len(), "Mattermost: catching up");
        }
        for post in posts {
            match Change::of_caught_up(&post, since) {
                Some(change) => {
                    if change == Change::Created {
                        cursors.caught_up.insert(post.id.clone());
                    }
                    relay_post(ctx, translator, cursors, change, &post).await?
                }
                None => cursors.advance(&post.channel_id, post.update_at),
            }
        }
    }
    Ok(())
}

/// The newest change relayed per channel, saved as adapter state so a restart knows
/// where to catch up from.
struct Cursors {
    positions: HashMap<String, i64>,
    dirty: bool,
    /// Posts the last catch-up relayed: their `posted` events, still buffered on the
    /// websocket, need not be submitted again.
    caught_up: HashSet<String>,
}

impl Cursors {
    async fn load(
        ctx: &AdapterContext,
        live: &Live,
        default_ms: i64,
    ) -> Result<Self, AdapterError> {
        let mut positions = HashMap::new();
        let mut dirty = false;
        for channel in live.channels.values() {
            let saved = ctx
                .state
                .load(&key(channel))
                .await
                .map_err(|error| AdapterError::Connection(format!("adapter state: {error}")))?;
            let position = saved
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| {
                    // First start: the history before the bridge existed is not relayed.
                    dirty = true;
                    default_ms
                });
            positions.insert(channel.clone(), position);
        }
        Ok(Self {
            positions,
            dirty,
            caught_up: HashSet::new(),
        })
    }

    fn advance(&mut self, channel: &str, at_ms: i64) {
        if let Some(position) = self.positions.get_mut(channel)
            && at_ms > *position
        {
            *position = at_ms;
            self.dirty = true;
        }
    }

    async fn save(&mut self, ctx: &AdapterContext) {
        if !self.dirty {
            return;
        }
        for (channel, position) in &self.positions {
            if let Err(error) = ctx.state.save(&key(channel), &position.to_string()).await {
                tracing::warn!(network = %ctx.network, %error, "Mattermost: cannot save the catch-up cursor");
                return;
            }
        }
        self.dirty = false;
    }
}

fn key(channel_id: &str) -> String {
    format!("cursor/{channel_id}")
}

/// For `Live`: which room is which channel.
pub fn channel_of(live: &Live, room: &RoomId) -> Option<String> {
    live.channels.get(room).cloned()
}
