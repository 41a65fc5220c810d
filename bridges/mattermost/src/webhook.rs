//! Webhook mode, receiving side: Mattermost's outgoing webhook calls the daemon's
//! `POST /webhooks/NETWORK` (form-encoded or JSON). The token is checked in constant
//! time; the post is relayed, and only then answered.

use crate::format;
use serde::Deserialize;
use switchboard_sdk::{
    AdapterContext, Inbound, NativeMsgId, RoomId, RoomKey, Sender, SubmitError, SubmitOutcome,
    WebhookRequest, WebhookResponse,
};

/// The fields of an outgoing-webhook call that the bridge uses.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OutgoingPost {
    pub token: String,
    pub channel_id: String,
    pub channel_name: String,
    pub timestamp: serde_json::Value,
    pub user_id: String,
    pub user_name: String,
    pub post_id: String,
    pub text: String,
    pub file_ids: String,
}

/// Checks, translates and submits one outgoing-webhook call.
pub async fn receive(
    ctx: &AdapterContext,
    request: &WebhookRequest,
    expected_token: &str,
    room_of: impl Fn(&OutgoingPost) -> Option<RoomId>,
) -> WebhookResponse {
    let post = match parse(request) {
        Ok(post) => post,
        Err(reason) => {
            tracing::warn!(network = %ctx.network, %reason, "Mattermost webhook: malformed request refused");
            return WebhookResponse::error(400, &reason);
        }
    };
    if !switchboard_sdk::text::secret_matches(&post.token, expected_token) {
        tracing::warn!(network = %ctx.network, channel = %post.channel_name, "Mattermost webhook: wrong or missing token; nothing relayed");
        return WebhookResponse::error(401, "invalid token");
    }
    if post.post_id.is_empty() || post.user_id.is_empty() {
        return WebhookResponse::error(400, "post_id and user_id are required");
    }
    let Some(room) = room_of(&post) else {
        tracing::info!(network = %ctx.network, channel = %post.channel_name, "Mattermost webhook: channel is in no route; ignored");
        return WebhookResponse::json(200, "{}");
    };
    let mut event = Inbound::message(
        RoomKey {
            network: ctx.network.clone(),
            room,
        },
        // Never the bridge's own post: Mattermost does not send posts made through an
        // incoming webhook to outgoing webhooks. (Their author is the hook's creator,
        // a real person, whose own posts must come through like anyone's; nothing in
        // the call would tell the two apart, as it carries no props.)
        Sender::user(post.user_id.clone(), post.user_name.clone()),
        Some(NativeMsgId::new(post.post_id.clone())),
        format::parse(&post.text),
    );
    if let Some(ms) = timestamp_ms(&post.timestamp) {
        event.timestamp_ms = ms;
    }
    match ctx.inbound.submit(event).await {
        Ok(SubmitOutcome::Accepted { .. } | SubmitOutcome::Duplicate | SubmitOutcome::Ignored) => {
            WebhookResponse::json(200, "{}")
        }
        Err(SubmitError::ShuttingDown) => WebhookResponse::error(503, "shutting down"),
        Err(SubmitError::Storage(_)) => WebhookResponse::error(503, "not stored; retry"),
    }
}

fn parse(request: &WebhookRequest) -> Result<OutgoingPost, String> {
    let content_type = request.header("content-type").unwrap_or_default();
    if content_type.starts_with("application/json") {
        serde_json::from_slice(&request.body).map_err(|error| format!("invalid JSON: {error}"))
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(&request.body)
            .map_err(|error| format!("invalid form: {error}"))
    } else {
        Err(format!(
            "unsupported content type {content_type:?}: expected JSON or a form"
        ))
    }
}

fn timestamp_ms(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(number) => number.as_i64(),
        serde_json::Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: &str, body: &str) -> WebhookRequest {
        WebhookRequest {
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
            ..WebhookRequest::default()
        }
    }

    #[test]
    fn form_and_json_bodies_parse() {
        let form = request(
            "application/x-www-form-urlencoded",
            "token=abc&channel_name=town-square&user_name=bob&post_id=p1&user_id=u1&text=hi+there&timestamp=1700000000000",
        );
        let post = parse(&form).unwrap();
        assert_eq!(
            (post.text.as_str(), post.token.as_str()),
            ("hi there", "abc")
        );
        assert_eq!(timestamp_ms(&post.timestamp), Some(1_700_000_000_000));
        let json = request(
            "application/json",
            r#"{"token":"abc","text":"hi","post_id":"p1","timestamp":1700000000000}"#,
        );
        assert_eq!(parse(&json).unwrap().post_id, "p1");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(parse(&request("application/json", "{not json")).is_err());
        assert!(parse(&request("text/plain", "token=abc")).is_err());
    }
}
