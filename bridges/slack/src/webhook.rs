//! Webhooks mode, receiving side: a legacy outgoing webhook or a slash command POSTs
//! a form to `/webhooks/NETWORK`. The token is compared in constant time; the message
//! is relayed, and only then answered (an empty 200, so Slack posts nothing back).

use crate::format;
use crate::inbound::ts_millis;
use serde::Deserialize;
use switchboard_sdk::{
    AdapterContext, EventKind, Inbound, NativeMsgId, RoomId, RoomKey, Sender, SubmitError,
    WebhookRequest, WebhookResponse,
};

/// The fields of an outgoing-webhook or slash-command call the bridge reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Call {
    pub token: String,
    pub channel_id: String,
    pub channel_name: String,
    pub timestamp: String,
    pub user_id: String,
    pub user_name: String,
    pub text: String,
    /// Set by slash commands (`/relay`), which carry no message timestamp.
    pub command: String,
    pub trigger_id: String,
    /// Outgoing webhooks fire for other integrations' messages too.
    pub bot_id: String,
}

pub async fn receive(
    ctx: &AdapterContext,
    request: &WebhookRequest,
    expected_token: &str,
    own_username: &str,
) -> WebhookResponse {
    let content_type = request.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        tracing::warn!(network = %ctx.network, content_type, "Slack webhook: not a form; refused");
        return WebhookResponse::error(415, "expected a form (application/x-www-form-urlencoded)");
    }
    let call: Call = match serde_urlencoded::from_bytes(&request.body) {
        Ok(call) => call,
        Err(error) => {
            tracing::warn!(network = %ctx.network, %error, "Slack webhook: malformed form refused");
            return WebhookResponse::error(400, &format!("invalid form: {error}"));
        }
    };
    if !switchboard_sdk::text::secret_matches(&call.token, expected_token) {
        metrics::counter!("switchboard_slack_requests_refused_total", "network" => ctx.network.to_string(), "reason" => "bad_token").increment(1);
        tracing::warn!(network = %ctx.network, channel = %call.channel_name, "Slack webhook: wrong or missing token; nothing relayed");
        return WebhookResponse::error(401, "invalid token");
    }
    // The bridge's own posts (made through the incoming webhook, as a bot) and
    // Slackbot's are not relayed back.
    if !call.bot_id.is_empty()
        || call.user_id == "USLACKBOT"
        || (call.user_name == own_username && call.user_id.is_empty())
    {
        return WebhookResponse::json(200, "{}");
    }
    let native = if call.command.is_empty() {
        &call.timestamp
    } else {
        &call.trigger_id
    };
    if call.user_id.is_empty() || native.is_empty() {
        return WebhookResponse::error(
            400,
            "user_id and timestamp (or a slash command's trigger_id) are required",
        );
    }
    let room = [&call.channel_name, &call.channel_id]
        .into_iter()
        .map(|name| crate::canonical_room(name))
        .find(|room| ctx.rooms.contains(room));
    let Some(room) = room else {
        tracing::info!(network = %ctx.network, channel = %call.channel_name, "Slack webhook: channel is in no route; ignored");
        return WebhookResponse::json(200, "{}");
    };
    let mut event = Inbound::message(
        RoomKey {
            network: ctx.network.clone(),
            room: RoomId::new(room.as_str()),
        },
        Sender::user(call.user_id.clone(), call.user_name.clone()),
        Some(NativeMsgId::new(native.clone())),
        format::parse(&call.text, &format::NoNames),
    );
    if let Some(ms) = ts_millis(&call.timestamp) {
        event.timestamp_ms = ms;
    }
    if call.command == "/me" {
        event.kind = EventKind::Action;
    }
    match ctx.inbound.submit(event).await {
        Ok(_) => WebhookResponse::json(200, "{}"),
        Err(SubmitError::ShuttingDown) => WebhookResponse::error(503, "shutting down"),
        Err(SubmitError::Storage(_)) => WebhookResponse::error(503, "not stored; retry"),
    }
}
