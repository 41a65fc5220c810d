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
    Adapter, AdapterContext, AdapterError, Capabilities, CurrentRun, Outbound, SendError,
    SendReceipt,
};
use tokio_util::sync::CancellationToken;

pub struct IrcAdapter {
    config: IrcConfig,
    /// The live connection, while there is one; `send` fails transiently without it.
    session: CurrentRun<Session>,
    ids: inbound::IdMinter,
}

impl IrcAdapter {
    pub fn new(config: IrcConfig) -> Arc<Self> {
        Arc::new(Self {
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

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            rich_text: true,
            ..Capabilities::default()
        }
    }

    fn guard_name(&self, name: &str) -> String {
        let guard = match self.config.name_guard {
            config::NameGuard::Zwj => '\u{200D}',
            config::NameGuard::Zwsp => '\u{200B}',
            config::NameGuard::None => return name.to_owned(),
        };
        switchboard_sdk::text::guard_name(name, guard)
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
