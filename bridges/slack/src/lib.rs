//! The Slack adapter. Three ways to connect, chosen in the network's section:
//! webhooks only (an incoming webhook to send, outgoing-webhook form posts to
//! `POST /webhooks/NETWORK` to receive), an app with a bot token receiving the Events
//! API over HTTP at the same path, or an app in Socket Mode receiving over a
//! websocket. Apps send with the Web API (`chat.postMessage`, `chat.update`,
//! `chat.delete`) and catch up with `conversations.history` after downtime. Names of
//! remote senders go into `username` where the token may set it, else into the text.

mod api;
pub mod config;
mod connector;
mod events;
pub mod format;
mod inbound;
mod outbound;
mod session;
mod socket;
mod webhook;

pub use config::SlackConfig;
pub use connector::SlackConnector;

use async_trait::async_trait;
use config::Mode;
use session::Live;
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, Capabilities, ConnectionState, CurrentRun, Outbound,
    RoomId, SendError, SendReceipt, TextFormat, WebhookRequest, WebhookResponse,
};
use tokio_util::sync::CancellationToken;

/// An Events API request carries one event: a message of at most 40,000 characters,
/// JSON-escaped (up to 6 bytes each as `\uXXXX`), in its envelope.
const MAX_EVENT_BODY: usize = 512 * 1024;

pub struct SlackAdapter {
    config: SlackConfig,
    /// The bot token's client (app modes).
    bot: Option<api::WebApi>,
    /// The app-level token's client (Socket Mode).
    app: Option<api::WebApi>,
    /// Webhooks mode's client for the incoming webhook.
    hook: reqwest::Client,
    live: CurrentRun<Live>,
    text: TextFormat,
}

/// Channel names as routes write them: `#general` and `general` are one room, and
/// Slack's names and ids compare without case.
pub(crate) fn canonical_room(room: &str) -> RoomId {
    RoomId::new(room.trim().trim_start_matches('#').to_lowercase())
}

impl SlackAdapter {
    pub fn new(config: SlackConfig) -> Result<Arc<Self>, AdapterError> {
        let base = config.api_base();
        let client = |token: &str| api::WebApi::new(&base, token).map_err(AdapterError::Config);
        let bot = match config.mode() {
            Mode::Webhooks => None,
            Mode::Socket | Mode::Events => Some(client(config.bot_token())?),
        };
        let app = match (&config.app_token, config.mode()) {
            (Some(token), Mode::Socket) => Some(client(token)?),
            _ => None,
        };
        Ok(Arc::new(Self {
            hook: api::http_client().map_err(AdapterError::Config)?,
            config,
            bot,
            app,
            live: CurrentRun::default(),
            text: TextFormat::new(format::SLACK_TEXT),
        }))
    }

    fn names_overridden(&self) -> bool {
        match (self.config.mode(), self.live.get()) {
            (Mode::Webhooks, _) | (_, None) => self.config.customize_names,
            (_, Some(live)) => live.names_overridden(),
        }
    }

    async fn run_app(
        &self,
        ctx: &AdapterContext,
        cancel: &CancellationToken,
    ) -> Result<(), AdapterError> {
        let bot = self
            .bot
            .as_ref()
            .ok_or_else(|| AdapterError::Config("no bot token".into()))?;
        let live = Arc::new(session::connect(bot, ctx, self.config.customize_names).await?);
        let channels = live.follow_rooms(bot, ctx, &ctx.rooms.current()).await?;
        self.live.set(Some(live.clone()));
        let max_age = Duration::from_secs(self.config.catch_up_max_age_secs);
        match (self.config.mode(), &self.app) {
            (Mode::Socket, Some(app)) => {
                let socket = socket::SocketMode {
                    app,
                    bot,
                    live: &live,
                    ctx,
                    max_age,
                };
                socket.run(cancel, channels).await
            }
            _ => {
                // Events arrive on the daemon's HTTP server; this run keeps the rooms
                // and cursors.
                live.catch_up(bot, ctx, &channels, max_age).await?;
                ctx.health.report(ConnectionState::Connected);
                let mut rooms = ctx.rooms.clone();
                let mut save = tokio::time::interval(socket::CURSOR_SAVE_INTERVAL);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return live.save_cursors(ctx).await,
                        wanted = rooms.changed() => {
                            live.follow_rooms(bot, ctx, &wanted).await?;
                        }
                        _ = save.tick() => live.save_cursors(ctx).await?,
                    }
                }
            }
        }
    }

    /// The refusal of a request this network does not take, judged by its request
    /// line and headers: Socket Mode takes none; the Events API needs fresh signature
    /// headers; webhooks are POSTs to `/webhooks/NETWORK`.
    fn refuse_early(&self, network: &str, request: &WebhookRequest) -> Option<WebhookResponse> {
        if !request.path.is_empty() || request.method() != "POST" {
            return Some(WebhookResponse::error(
                404,
                "Slack requests are POSTed to /webhooks/NETWORK",
            ));
        }
        match self.config.mode() {
            Mode::Socket => Some(WebhookResponse::error(
                404,
                "this network uses Socket Mode, not HTTP requests",
            )),
            Mode::Events => events::check_headers(request, events::now_secs())
                .err()
                .map(|refusal| refusal.answer(network)),
            Mode::Webhooks => None,
        }
    }
}

#[async_trait]
impl Adapter for SlackAdapter {
    fn protocol(&self) -> &'static str {
        connector::PROTOCOL
    }

    fn connector(&self) -> Option<&'static dyn switchboard_sdk::NetworkConnector> {
        Some(&connector::SlackConnector)
    }

    fn capabilities(&self) -> Capabilities {
        let app = self.config.mode() != Mode::Webhooks;
        Capabilities {
            edits: app,
            deletes: app,
            replies: app,
            threads: app,
            per_message_sender: self.config.customize_names,
            rich_text: true,
            attachments: false,
            max_message_bytes: Some(format::MAX_MESSAGE_BYTES),
            max_parts: None,
            reactions: false,
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
            Mode::Webhooks => {
                for room in ctx.rooms.current().iter() {
                    ctx.health.joined(room);
                }
                ctx.health.report(ConnectionState::Connected);
                cancel.cancelled().await;
                Ok(())
            }
            Mode::Socket | Mode::Events => self.run_app(&ctx, &cancel).await,
        };
        if cancel.is_cancelled() {
            self.live.set(None);
            ctx.health.report(ConnectionState::Stopped);
        }
        result
    }

    async fn send(&self, message: &Outbound) -> Result<SendReceipt, SendError> {
        if let (Mode::Webhooks, Some(webhooks)) = (self.config.mode(), &self.config.webhooks) {
            return outbound::send_hook(
                &self.hook,
                &webhooks.incoming_url,
                &webhooks.username,
                message,
            )
            .await;
        }
        let (Some(bot), Some(live)) = (&self.bot, self.live.get()) else {
            return Err(SendError::Transient("not connected to Slack yet".into()));
        };
        let channel = live.channel_of(&message.room).ok_or_else(|| {
            SendError::Transient(format!("channel {} is not joined yet", message.room))
        })?;
        outbound::send_app(bot, &live, &channel, message).await
    }

    async fn check_webhook_request(
        &self,
        ctx: &AdapterContext,
        request: &WebhookRequest,
    ) -> Option<WebhookResponse> {
        self.refuse_early(ctx.network.as_str(), request)
    }

    fn webhook_body_limit(&self, _path: &str) -> usize {
        MAX_EVENT_BODY
    }

    async fn handle_webhook(
        &self,
        ctx: &AdapterContext,
        request: WebhookRequest,
    ) -> WebhookResponse {
        if let Some(refusal) = self.refuse_early(ctx.network.as_str(), &request) {
            return refusal;
        }
        match (
            self.config.mode(),
            &self.config.webhooks,
            &self.config.signing_secret,
        ) {
            (Mode::Webhooks, Some(webhooks), _) => {
                webhook::receive(ctx, &request, &webhooks.outgoing_token, &webhooks.username).await
            }
            (Mode::Events, _, Some(secret)) => {
                if let Err(refusal) = events::verify(&request, secret, events::now_secs()) {
                    return refusal.answer(ctx.network.as_str());
                }
                events::receive(ctx, self.live.get().as_deref(), &request).await
            }
            _ => WebhookResponse::error(404, "this network takes no HTTP requests"),
        }
    }
}
