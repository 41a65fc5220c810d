//! The IRC adapter: one connection per configured network, owning its state machine
//! (CAP, SASL PLAIN, nick fallback, NickServ, joins with keys, PING/PONG and ping
//! timeout), flood control, splitting and formatting. Reconnecting is the daemon's
//! supervisor calling `run` again; `run` rejoins every time.

pub mod config;
mod connection;
mod connector;
pub mod format;
pub mod inbound;
pub mod outbound;
mod session;

pub use config::IrcConfig;
pub use connector::IrcConnector;

use async_trait::async_trait;
use session::Session;
use std::sync::Arc;
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, Capabilities, CurrentRun, Outbound, RoomId, SendError,
    SendReceipt, TextFormat,
};
use tokio_util::sync::CancellationToken;

pub struct IrcAdapter {
    config: IrcConfig,
    /// The live connection, while there is one; `send` fails transiently without it.
    session: CurrentRun<Session>,
    ids: inbound::IdMinter,
    /// How relayed text is written here (one instance: capabilities share it).
    text: TextFormat,
}

impl IrcAdapter {
    pub fn new(config: IrcConfig) -> Arc<Self> {
        let name_guard = match config.name_guard {
            config::NameGuard::Zwj => Some('\u{200D}'),
            config::NameGuard::Zwsp => Some('\u{200B}'),
            config::NameGuard::None => None,
        };
        Arc::new(Self {
            text: TextFormat::new(outbound::IrcText { name_guard }),
            config,
            session: CurrentRun::default(),
            ids: inbound::IdMinter::new(),
        })
    }
}

#[async_trait]
impl Adapter for IrcAdapter {
    fn protocol(&self) -> &'static str {
        connector::PROTOCOL
    }

    fn connector(&self) -> Option<&'static dyn switchboard_sdk::NetworkConnector> {
        Some(&connector::IrcConnector)
    }

    /// Line length depends on the channel and on our `nick!user@host`: see
    /// `room_capabilities`.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            rich_text: true,
            max_parts: Some(self.config.max_lines_per_message),
            text: self.text.clone(),
            ..Capabilities::default()
        }
    }

    fn room_capabilities(&self, room: &RoomId) -> Capabilities {
        let source_len = match self.session.get() {
            Some(session) => session.source_len(),
            None => session::assumed_source_len(&self.config.nick),
        };
        Capabilities {
            max_message_bytes: Some(outbound::text_budget(room.as_str(), source_len)),
            ..self.capabilities()
        }
    }

    async fn run(
        &self,
        ctx: AdapterContext,
        cancel: CancellationToken,
    ) -> Result<(), AdapterError> {
        let result = session::run(self, &ctx, &cancel).await;
        self.session.set(None);
        if cancel.is_cancelled() {
            ctx.health.report(switchboard_sdk::ConnectionState::Stopped);
        }
        result
    }

    async fn send(&self, message: &Outbound) -> Result<SendReceipt, SendError> {
        let session = self
            .session
            .get()
            .ok_or_else(|| SendError::Transient("not connected to the IRC server".into()))?;
        session.send(message, &self.ids).await
    }
}
