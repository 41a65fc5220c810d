//! The Mattermost adapter. Two modes: the bot API (REST to send, the websocket to
//! receive, catch-up over REST after a drop or restart) and webhooks (an incoming
//! webhook to send, the daemon's `POST /webhooks/NETWORK` to receive outgoing
//! webhooks). Names of remote senders go into `override_username` where the server
//! allows it, else into the text through the route's nick template.

mod api;
mod client;
pub mod config;
mod connector;
pub mod format;
mod inbound;
mod incoming_hook;
mod outbound;
mod reaction;
mod session;
mod webhook;

pub use config::MattermostConfig;
pub use connector::MattermostConnector;
pub use outbound::MAX_POST_BYTES;

use async_trait::async_trait;
use config::Mode;
use inbound::Translator;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, Capabilities, ConnectionState, CurrentRun, Outbound,
    RoomId, SendError, SendReceipt, TextFormat, WebhookRequest, WebhookResponse,
};
use tokio_util::sync::CancellationToken;

/// The largest outgoing-webhook call read. Its token is in the body, so this much
/// is read before anyone is authenticated: it stays small, but must hold the longest
/// post Mattermost allows (16,383 characters; form-encoded, a 4-byte character takes
/// 12 bytes: ~196 KB) with the call's other fields, or such a post would be lost.
const MAX_OUTGOING_WEBHOOK_BODY: usize = 256 * 1024;

pub struct MattermostAdapter {
    config: MattermostConfig,
    client: client::Client,
    /// Webhook mode's client for the incoming webhook (none in bot mode, or when a
    /// proxy is configured for its URL: then `client`, which speaks to proxies).
    hook: Option<incoming_hook::IncomingHook>,
    /// What the last bot-API connection resolved; `send` works from it (REST) even
    /// while the websocket reconnects.
    live: CurrentRun<Live>,
    /// How relayed text is written here (one instance: capabilities share it).
    text: TextFormat,
}

/// The resolved state of a bot-API connection.
pub(crate) struct Live {
    /// Room (as routes name it) -> channel id.
    channels: HashMap<RoomId, String>,
    /// The config asks for name overrides and the server honours them: senders are
    /// named per post, not by a label in the text.
    names_overridden: bool,
    translator: Arc<Translator>,
}

impl MattermostAdapter {
    /// Webhook mode's settings, or the refusal of a request this network does not
    /// take (bot mode; a path other than `/webhooks/NETWORK`; a method other than POST).
    fn webhook_settings(
        &self,
        request: &WebhookRequest,
    ) -> Result<&config::WebhookConfig, WebhookResponse> {
        let webhooks = match (self.config.mode(), &self.config.webhooks) {
            (Mode::Webhooks(_), Some(webhooks)) => webhooks,
            _ => {
                return Err(WebhookResponse::error(
                    404,
                    "this network uses the bot API, not webhooks",
                ));
            }
        };
        if !request.path.is_empty() || request.method() != "POST" {
            return Err(WebhookResponse::error(
                404,
                "outgoing webhooks are POSTed to /webhooks/NETWORK",
            ));
        }
        Ok(webhooks)
    }

    pub fn new(config: MattermostConfig) -> Result<Arc<Self>, AdapterError> {
        let client = client::Client::new(config.base_url(), config.accept_invalid_certs)
            .map_err(AdapterError::Config)?;
        let hook = match config.mode() {
            Mode::Webhooks(webhooks) => {
                let tls =
                    switchboard_sdk::tls::client_config("Mattermost", config.accept_invalid_certs)
                        .map_err(AdapterError::Config)?;
                incoming_hook::IncomingHook::new(&webhooks.incoming_url, tls)
                    .map_err(AdapterError::Config)?
            }
            Mode::Token(_) | Mode::Login(_) => None,
        };
        Ok(Arc::new(Self {
            config,
            client,
            hook,
            live: CurrentRun::default(),
            text: TextFormat::new(format::MattermostText),
        }))
    }

    /// Whether senders are named per post here: webhook mode relies on the config
    /// (the server's answer is not visible to a webhook); bot mode on what the
    /// server said at connect, once connected.
    fn names_overridden(&self) -> bool {
        match (self.config.mode(), self.live.get()) {
            (Mode::Webhooks(_), _) | (_, None) => self.config.override_names,
            (_, Some(live)) => live.names_overridden,
        }
    }
}

/// Channel names are lower case in Mattermost; ids too. The daemon canonicalises
/// through [`MattermostConnector`].
pub(crate) fn canonical_channel(room: &str) -> String {
    room.trim().to_lowercase()
}

#[async_trait]
impl Adapter for MattermostAdapter {
    fn protocol(&self) -> &'static str {
        connector::PROTOCOL
    }

    fn connector(&self) -> Option<&'static dyn switchboard_sdk::NetworkConnector> {
        Some(&connector::MattermostConnector)
    }

    fn capabilities(&self) -> Capabilities {
        let bot = !matches!(self.config.mode(), Mode::Webhooks(_));
        Capabilities {
            edits: bot,
            deletes: bot,
            replies: bot,
            threads: bot,
            per_message_sender: self.config.override_names,
            rich_text: true,
            attachments: bot,
            max_message_bytes: Some(outbound::MAX_POST_BYTES),
            max_parts: None,
            reactions: bot,
            text: self.text.clone(),
        }
    }

    fn room_capabilities(&self, _room: &RoomId) -> Capabilities {
        Capabilities {
            per_message_sender: self.names_overridden(),
            ..self.capabilities()
        }
    }

    async fn run(
        &self,
        ctx: AdapterContext,
        cancel: CancellationToken,
    ) -> Result<(), AdapterError> {
        let result = match self.config.mode() {
            // Nothing to hold open: requests arrive on the daemon's HTTP server.
            Mode::Webhooks(_) => {
                ctx.health.report(ConnectionState::Connected);
                cancel.cancelled().await;
                Ok(())
            }
            Mode::Token(_) | Mode::Login(_) => session::run(self, &ctx, &cancel).await,
        };
        if cancel.is_cancelled() {
            // Stopped for good: sends fail transiently so the core keeps the rows.
            self.live.set(None);
            ctx.health.report(ConnectionState::Stopped);
        }
        result
    }

    async fn send(&self, message: &Outbound) -> Result<SendReceipt, SendError> {
        if let Mode::Webhooks(webhooks) = self.config.mode() {
            let sender = match &self.hook {
                Some(hook) => outbound::HookSender::Direct(hook),
                None => outbound::HookSender::ThroughProxy {
                    client: &self.client,
                    url: &webhooks.incoming_url,
                },
            };
            return outbound::send_webhook(sender, message, &webhooks.username).await;
        }
        let live = self
            .live
            .get()
            .ok_or_else(|| SendError::Transient("not connected to Mattermost yet".into()))?;
        let channel = session::channel_of(&live, &message.room).ok_or_else(|| {
            SendError::Transient(format!("channel {} is not resolved yet", message.room))
        })?;
        let target = outbound::RestTarget {
            client: &self.client,
            channel_id: &channel,
            own_user_id: &live.translator.own_user_id,
        };
        outbound::send_rest(&target, message, self.config.max_upload_bytes).await
    }

    async fn check_webhook_request(
        &self,
        _ctx: &AdapterContext,
        request: &WebhookRequest,
    ) -> Option<WebhookResponse> {
        // The token is in the body: only the request line can be judged here.
        self.webhook_settings(request).err()
    }

    fn webhook_body_limit(&self, _path: &str) -> usize {
        MAX_OUTGOING_WEBHOOK_BODY
    }

    async fn handle_webhook(
        &self,
        ctx: &AdapterContext,
        request: WebhookRequest,
    ) -> WebhookResponse {
        let webhooks = match self.webhook_settings(&request) {
            Ok(webhooks) => webhooks,
            Err(refusal) => return refusal,
        };
        webhook::receive(ctx, &request, &webhooks.outgoing_token, |post| {
            [&post.channel_name, &post.channel_id]
                .into_iter()
                .map(|name| RoomId::new(canonical_channel(name)))
                .find(|room| ctx.rooms.contains(room))
        })
        .await
    }
}
