//! The Matrix adapter. Relay-bot mode: one ordinary account (matrix-sdk 0.18, sqlite
//! store in the network's data dir) joins the bridged rooms and speaks for everyone,
//! naming senders through the route's nick template. The sync token is kept in the
//! core's adapter state, so after downtime the rooms' missed messages are relayed
//! (bounded by `catch_up_max_age_secs`). Application-service mode (`appservice`):
//! the homeserver pushes events to the daemon and each remote sender speaks as a
//! ghost user. In both, sends carry transaction ids derived from the outbox row, so
//! a retry after a crash never posts twice.

pub mod appservice;
pub mod config;
mod connector;
pub mod format;
mod inbound;
mod outbound;
mod session;

pub use config::MatrixConfig;
pub use connector::MatrixConnector;

use async_trait::async_trait;
use matrix_sdk::ruma::OwnedRoomId;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, Capabilities, ConnectionState, CurrentRun, Outbound,
    RoomId, SendError, SendReceipt, TextFormat, WebhookRequest, WebhookResponse,
};
use tokio_util::sync::CancellationToken;

pub struct MatrixAdapter {
    config: MatrixConfig,
    /// The logged-in client and resolved rooms while a relay-bot run is active.
    live: CurrentRun<Live>,
    /// The same for an application-service run.
    appservice_live: CurrentRun<appservice::Live>,
    /// How relayed text is written here (one instance: capabilities share it).
    text: TextFormat,
}

/// What one run resolved; `send` works from it.
pub(crate) struct Live {
    client: matrix_sdk::Client,
    /// Room as routes name it -> room id.
    rooms: HashMap<RoomId, OwnedRoomId>,
    /// A random value kept in adapter state: transaction ids are `salt-row-part`, stable
    /// across retries of one outbox row and never reused by another database.
    txn_salt: String,
}

impl MatrixAdapter {
    pub fn new(config: MatrixConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            live: CurrentRun::default(),
            appservice_live: CurrentRun::default(),
            text: TextFormat::new(format::MatrixText),
        })
    }
}

#[async_trait]
impl Adapter for MatrixAdapter {
    fn protocol(&self) -> &'static str {
        connector::PROTOCOL
    }

    fn connector(&self) -> Option<&'static dyn switchboard_sdk::NetworkConnector> {
        Some(&connector::MatrixConnector)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            edits: true,
            deletes: true,
            replies: true,
            threads: false,
            // Ghosts are the senders; the relay bot labels the text.
            per_message_sender: self.config.appservice.is_some(),
            rich_text: true,
            attachments: false,
            max_message_bytes: None,
            max_parts: None,
            reactions: true,
            text: self.text.clone(),
        }
    }

    async fn run(
        &self,
        ctx: AdapterContext,
        cancel: CancellationToken,
    ) -> Result<(), AdapterError> {
        let result = if self.config.appservice.is_some() {
            appservice::run(self, &ctx, &cancel).await
        } else {
            session::run(self, &ctx, &cancel).await
        };
        self.live.set(None);
        self.appservice_live.set(None);
        if cancel.is_cancelled() {
            ctx.health.report(ConnectionState::Stopped);
        }
        result
    }

    async fn send(&self, message: &Outbound) -> Result<SendReceipt, SendError> {
        if self.config.appservice.is_some() {
            let live = self
                .appservice_live
                .get()
                .ok_or_else(|| SendError::Transient("not connected to Matrix".into()))?;
            return appservice::send(&live, message).await;
        }
        let live = self
            .live
            .get()
            .ok_or_else(|| SendError::Transient("not connected to Matrix".into()))?;
        outbound::send(&live, message).await
    }

    async fn check_webhook_request(
        &self,
        ctx: &AdapterContext,
        request: &WebhookRequest,
    ) -> Option<WebhookResponse> {
        if self.config.appservice.is_none() {
            return Some(not_an_appservice());
        }
        appservice::check(self, ctx, request).await
    }

    fn webhook_body_limit(&self, path: &str) -> usize {
        appservice::body_limit(path)
    }

    async fn handle_webhook(
        &self,
        ctx: &AdapterContext,
        request: WebhookRequest,
    ) -> WebhookResponse {
        if self.config.appservice.is_none() {
            return not_an_appservice();
        }
        appservice::handle(self, ctx, &request).await
    }
}

fn not_an_appservice() -> WebhookResponse {
    WebhookResponse::error(404, "this Matrix network is a relay bot, not an appservice")
}
