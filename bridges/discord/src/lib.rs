//! The Discord adapter: a bot on the gateway (through twilight) receives, the REST API
//! or a channel webhook (for each remote sender's own name and avatar) sends.
//!
//! One run: authenticate over REST (`/users/@me`; `/applications/@me` says whether
//! the app has the Message Content intent, without which Discord sends messages
//! empty: then the adapter warns, shows it as the network's last error on
//! `/healthz`, and identifies without that intent so the connection still works),
//! find the guild, resolve each routed room to a text channel (reported joined, or
//! refused with the reason), find or make its webhook, open the gateway, catch up on
//! what was missed since the saved cursors, then relay gateway events until
//! cancelled. See `ids` for the native message ids.

mod api;
pub mod config;
mod connector;
pub mod format;
mod gateway;
pub mod ids;
mod inbound;
mod outbound;
mod session;

pub use config::DiscordConfig;
pub use connector::DiscordConnector;
pub use outbound::webhook_username;
pub use session::{NO_CONTENT_INTENT, WEBHOOK_NAME};

use async_trait::async_trait;
use config::Webhooks;
use session::Live;
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, Capabilities, ConnectionState, CurrentRun, Outbound,
    RoomId, SendError, SendReceipt, TextFormat,
};
use tokio_util::sync::CancellationToken;

pub struct DiscordAdapter {
    config: DiscordConfig,
    live: CurrentRun<Live>,
    text: TextFormat,
    /// Paces identifies (Discord allows one per 5 s, 1,000 a day) across runs too:
    /// a run that ends and starts again identifies through the same queue. Made in
    /// the first run, since its timer is a task of the runtime.
    identify_queue: std::sync::OnceLock<twilight_gateway::queue::InMemoryQueue>,
}

/// Channel names as routes write them: `#general` and `general` are one room, and
/// names compare without case; ids stay as written.
pub(crate) fn canonical_room(room: &str) -> RoomId {
    RoomId::new(room.trim().trim_start_matches('#').to_lowercase())
}

impl DiscordAdapter {
    pub fn new(config: DiscordConfig) -> Result<Arc<Self>, AdapterError> {
        Ok(Arc::new(Self {
            config,
            live: CurrentRun::default(),
            text: TextFormat::new(format::DISCORD_TEXT),
            identify_queue: Default::default(),
        }))
    }

    async fn run_connected(
        &self,
        ctx: &AdapterContext,
        cancel: &CancellationToken,
    ) -> Result<(), AdapterError> {
        // twilight's HTTP and websocket clients take rustls's process-wide provider,
        // which a daemon linking both ring and aws-lc does not have by itself.
        switchboard_sdk::tls::install_default_provider();
        let setup = async {
            // Made in the run: twilight's rate limiter is a task of the runtime.
            let http = Arc::new(api::client(&self.config));
            let live = Arc::new(session::connect(&self.config, http, ctx).await?);
            live.follow_rooms(ctx, &ctx.rooms.current()).await?;
            Ok::<_, AdapterError>(live)
        };
        let live = tokio::select! {
            live = setup => live?,
            () = cancel.cancelled() => return Ok(()),
        };
        self.live.set(Some(live.clone()));
        let gateway = gateway::Gateway {
            live,
            ctx,
            identify_queue: self.identify_queue.get_or_init(Default::default).clone(),
            token: self.config.bare_token(),
            url: self.config.gateway_url.clone(),
            max_age: Duration::from_secs(self.config.catch_up_max_age_secs),
            up: Default::default(),
        };
        gateway.run(cancel).await
    }
}

#[async_trait]
impl Adapter for DiscordAdapter {
    fn protocol(&self) -> &'static str {
        connector::PROTOCOL
    }

    fn connector(&self) -> Option<&'static dyn switchboard_sdk::NetworkConnector> {
        Some(&connector::DiscordConnector)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            edits: true,
            deletes: true,
            replies: true,
            threads: true,
            per_message_sender: self.config.webhooks == Webhooks::Auto,
            rich_text: true,
            attachments: false,
            max_message_bytes: Some(format::MAX_MESSAGE_BYTES),
            max_parts: None,
            reactions: false,
            text: self.text.clone(),
        }
    }

    /// Names per message where the room's channel has the bridge's webhook.
    fn room_capabilities(&self, room: &RoomId) -> Capabilities {
        let per_message_sender = match self.live.get() {
            Some(live) => live.names_per_message(room),
            None => self.config.webhooks == Webhooks::Auto,
        };
        Capabilities {
            per_message_sender,
            ..self.capabilities()
        }
    }

    async fn run(
        &self,
        ctx: AdapterContext,
        cancel: CancellationToken,
    ) -> Result<(), AdapterError> {
        let result = self.run_connected(&ctx, &cancel).await;
        self.live.set(None);
        if cancel.is_cancelled() {
            ctx.health.report(ConnectionState::Stopped);
        }
        result
    }

    async fn send(&self, message: &Outbound) -> Result<SendReceipt, SendError> {
        let Some(live) = self.live.get() else {
            return Err(SendError::Transient("not connected to Discord yet".into()));
        };
        outbound::send(&live, message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_names_without_hash_and_case() {
        assert_eq!(canonical_room("#General").as_str(), "general");
        assert_eq!(canonical_room(" dev-chat ").as_str(), "dev-chat");
        assert_eq!(
            canonical_room("81384788765712384").as_str(),
            "81384788765712384"
        );
    }
}
