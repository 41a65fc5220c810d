//! Socket Mode: `apps.connections.open` (with the app-level token) gives a websocket
//! URL; after its `hello`, Slack sends each event in an envelope that is acknowledged
//! by its `envelope_id` once the core has the event on disk (an envelope not
//! acknowledged is sent again, so nothing is lost when the daemon dies before).
//! A `disconnect` (Slack refreshes connections every few hours) or a dropped
//! connection opens a new one at once, then catches up over `conversations.history`
//! for whatever was sent while none was open; events seen twice are relayed once.

use crate::api::{ApiError, WebApi, explain};
use crate::session::Live;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::{AdapterContext, AdapterError, ConnectionState};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// How often moved catch-up cursors are written while events flow.
pub const CURSOR_SAVE_INTERVAL: Duration = Duration::from_secs(5);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// Why one connection ended.
enum Ended {
    Cancelled,
    /// Slack asked for a new connection: open one at once.
    Refresh(String),
    Dropped(String),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    envelope_id: Option<String>,
    #[serde(default)]
    payload: serde_json::Value,
    #[serde(default)]
    reason: Option<String>,
}

pub struct SocketMode<'a> {
    pub app: &'a WebApi,
    pub bot: &'a WebApi,
    pub live: &'a Live,
    pub ctx: &'a AdapterContext,
    pub max_age: Duration,
}

impl SocketMode<'_> {
    /// Keeps a connection open until `cancel`; channels joined before are caught up.
    pub async fn run(
        &self,
        cancel: &CancellationToken,
        mut channels: Vec<String>,
    ) -> Result<(), AdapterError> {
        let mut failures: u32 = 0;
        let mut first = true;
        loop {
            if !first {
                // After a refresh the new connection is opened at once; after
                // failures, later and later.
                let delay = Duration::from_secs(1u64 << failures.min(5)).min(MAX_RECONNECT_DELAY);
                if failures > 0 {
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
            let socket = match self.open().await {
                Ok(socket) => socket,
                Err(error) if failures >= 3 || matches!(error, AdapterError::Auth(_)) => {
                    return Err(error);
                }
                Err(error) => {
                    failures += 1;
                    self.ctx.health.report(ConnectionState::Reconnecting {
                        last_error: error.to_string(),
                    });
                    first = false;
                    continue;
                }
            };
            if !first {
                channels = self.live.joined_channels();
            }
            self.live
                .catch_up(self.bot, self.ctx, &channels, self.max_age)
                .await?;
            self.ctx.health.report(ConnectionState::Connected);
            first = false;
            match self.relay(socket, cancel).await? {
                Ended::Cancelled => return Ok(()),
                Ended::Refresh(reason) => {
                    failures = 0;
                    tracing::info!(network = %self.ctx.network, %reason, "Slack: Socket Mode asked for a new connection; reconnecting");
                }
                Ended::Dropped(error) => {
                    failures = 1;
                    tracing::info!(network = %self.ctx.network, %error, "Slack: the Socket Mode connection dropped; reconnecting");
                    self.ctx
                        .health
                        .report(ConnectionState::Reconnecting { last_error: error });
                }
            }
        }
    }

    async fn open(&self) -> Result<Socket, AdapterError> {
        let answer = self
            .app
            .call_raw("apps.connections.open", &[])
            .await
            .map_err(open_error)?;
        let url = answer
            .body
            .get("url")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| AdapterError::Protocol("apps.connections.open gave no url".into()))?;
        let tls =
            switchboard_sdk::tls::client_config("Slack", false).map_err(AdapterError::Config)?;
        let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls));
        let (mut socket, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector))
                .await
                .map_err(|error| {
                    AdapterError::Connection(format!("Socket Mode websocket: {error}"))
                })?;
        let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
            while let Some(frame) = socket.next().await {
                let frame = frame.map_err(|error| {
                    AdapterError::Connection(format!("Socket Mode websocket: {error}"))
                })?;
                if let Message::Text(text) = frame
                    && let Ok(envelope) = serde_json::from_str::<Envelope>(text.as_str())
                    && envelope.kind == "hello"
                {
                    return Ok(());
                }
            }
            Err(AdapterError::Connection(
                "Socket Mode closed before hello".into(),
            ))
        })
        .await;
        match hello {
            Ok(Ok(())) => Ok(socket),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(AdapterError::Connection(format!(
                "no Socket Mode hello within {HELLO_TIMEOUT:?}"
            ))),
        }
    }

    /// Reads envelopes until the connection ends. Every branch is cancel-safe: the
    /// websocket's `next`, the room set's `changed` and the ticker lose nothing when
    /// another branch wins; the work each starts runs to its end in the loop body.
    async fn relay(
        &self,
        mut socket: Socket,
        cancel: &CancellationToken,
    ) -> Result<Ended, AdapterError> {
        let mut rooms = self.ctx.rooms.clone();
        let mut save = tokio::time::interval(CURSOR_SAVE_INTERVAL);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    let _ = socket.close(None).await;
                    self.live.save_cursors(self.ctx).await?;
                    return Ok(Ended::Cancelled);
                }
                wanted = rooms.changed() => {
                    self.live.follow_rooms(self.bot, self.ctx, &wanted).await?;
                }
                _ = save.tick() => self.live.save_cursors(self.ctx).await?,
                frame = socket.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Ping(data))) => {
                            if let Err(error) = socket.send(Message::Pong(data)).await {
                                return Ok(Ended::Dropped(error.to_string()));
                            }
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None => return Ok(Ended::Dropped("closed by Slack".into())),
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => return Ok(Ended::Dropped(error.to_string())),
                    };
                    let envelope: Envelope = match serde_json::from_str(text.as_str()) {
                        Ok(envelope) => envelope,
                        Err(error) => {
                            tracing::warn!(network = %self.ctx.network, %error, "Slack: an unreadable Socket Mode frame; skipped");
                            continue;
                        }
                    };
                    match envelope.kind.as_str() {
                        "disconnect" => return Ok(Ended::Refresh(envelope.reason.unwrap_or_default())),
                        "events_api" => {
                            // Not acknowledged when the core refuses it: Slack sends it again.
                            self.live.take_callback(self.ctx, &envelope.payload, true).await.map_err(crate::session::submit_error)?;
                        }
                        _ => {}
                    }
                    if let Some(id) = envelope.envelope_id {
                        let ack = serde_json::json!({ "envelope_id": id }).to_string();
                        if let Err(error) = socket.send(Message::text(ack)).await {
                            return Ok(Ended::Dropped(error.to_string()));
                        }
                    }
                }
            }
        }
    }
}

fn open_error(error: ApiError) -> AdapterError {
    let message = format!("apps.connections.open: {}", explain(&error));
    if error.is_auth() || error.code() == Some("not_allowed_token_type") {
        AdapterError::Auth(message)
    } else {
        AdapterError::Connection(message)
    }
}
