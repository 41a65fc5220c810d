//! The Events API over HTTP: Slack POSTs each event to `/webhooks/NETWORK`, signed
//! with the app's signing secret. A request is taken only if its `X-Slack-Signature`
//! (v0: HMAC-SHA256 of `v0:TIMESTAMP:BODY`) matches in constant time and its
//! timestamp is within five minutes (a replayed request is refused). It is answered
//! once the core has the event on disk; Slack's retries of an event already taken
//! are answered without relaying it again.

use crate::session::Live;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_sdk::{AdapterContext, SubmitError, WebhookRequest, WebhookResponse};

/// Slack's own bound: requests older (or newer) than this are refused as replays.
const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;

/// Why a request is refused before its content is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingSignature,
    Stale,
    BadSignature,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::MissingSignature => "missing_signature",
            Refusal::Stale => "stale_timestamp",
            Refusal::BadSignature => "bad_signature",
        }
    }

    /// Refused, logged and counted (`switchboard_slack_requests_refused_total`).
    pub fn answer(self, network: &str) -> WebhookResponse {
        metrics::counter!("switchboard_slack_requests_refused_total", "network" => network.to_owned(), "reason" => self.reason()).increment(1);
        tracing::warn!(
            network,
            reason = self.reason(),
            "Slack: an Events API request was refused; nothing relayed"
        );
        WebhookResponse::error(401, self.reason())
    }
}

/// What the headers alone decide: a signature is there and the timestamp is fresh.
pub fn check_headers(request: &WebhookRequest, now_secs: i64) -> Result<(), Refusal> {
    let timestamp = request
        .header("x-slack-request-timestamp")
        .and_then(|value| value.trim().parse::<i64>().ok());
    let Some(timestamp) = timestamp else {
        return Err(Refusal::MissingSignature);
    };
    if request.header("x-slack-signature").is_none() {
        return Err(Refusal::MissingSignature);
    }
    if (now_secs - timestamp).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(Refusal::Stale);
    }
    Ok(())
}

/// The whole check: fresh headers, and the signature over exactly these bytes.
pub fn verify(request: &WebhookRequest, secret: &str, now_secs: i64) -> Result<(), Refusal> {
    check_headers(request, now_secs)?;
    let timestamp = request
        .header("x-slack-request-timestamp")
        .unwrap_or_default()
        .trim();
    let given = request.header("x-slack-signature").unwrap_or_default();
    let given = given
        .strip_prefix("v0=")
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
        .ok_or(Refusal::BadSignature)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| Refusal::BadSignature)?;
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(&request.body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).map_err(|_| Refusal::BadSignature)
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Answers one verified Events API request.
pub async fn receive(
    ctx: &AdapterContext,
    live: Option<&Live>,
    request: &WebhookRequest,
) -> WebhookResponse {
    let body: serde_json::Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(network = %ctx.network, %error, "Slack: an Events API request is not JSON; refused");
            return WebhookResponse::error(400, "invalid JSON");
        }
    };
    match body.get("type").and_then(serde_json::Value::as_str) {
        Some("url_verification") => {
            let challenge = body
                .get("challenge")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            WebhookResponse::json(
                200,
                serde_json::json!({ "challenge": challenge }).to_string(),
            )
        }
        Some("event_callback") => {
            // Before the run has resolved the channels, an event has nowhere to go:
            // a 503 makes Slack send it again.
            let Some(live) = live else {
                return WebhookResponse::error(503, "not connected yet; retry");
            };
            if let Some(retry) = request.header("x-slack-retry-num") {
                tracing::info!(network = %ctx.network, retry, reason = request.header("x-slack-retry-reason").unwrap_or_default(), "Slack: an event is sent again");
            }
            match live.take_callback(ctx, &body, true).await {
                Ok(()) => WebhookResponse::json(200, "{}"),
                Err(SubmitError::ShuttingDown) => WebhookResponse::error(503, "shutting down"),
                Err(SubmitError::Storage(_)) => WebhookResponse::error(503, "not stored; retry"),
            }
        }
        // app_rate_limited and types the bridge has no use for: taken, nothing to do.
        _ => WebhookResponse::json(200, "{}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(body: &str, secret: &str, timestamp: i64) -> WebhookRequest {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{timestamp}:{body}").as_bytes());
        let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        WebhookRequest {
            headers: vec![
                ("x-slack-request-timestamp".into(), timestamp.to_string()),
                ("x-slack-signature".into(), signature),
                ("content-type".into(), "application/json".into()),
            ],
            body: body.as_bytes().to_vec(),
            ..WebhookRequest::default()
        }
    }

    #[test]
    fn a_signed_fresh_request_passes_and_every_alteration_fails() {
        let now = 1_700_000_000;
        let good = signed(r#"{"type":"event_callback"}"#, "secret", now);
        assert_eq!(verify(&good, "secret", now + 10), Ok(()));
        assert_eq!(verify(&good, "other", now), Err(Refusal::BadSignature));
        let mut altered = good.clone();
        altered.body.push(b' ');
        assert_eq!(verify(&altered, "secret", now), Err(Refusal::BadSignature));
        assert_eq!(verify(&good, "secret", now + 301), Err(Refusal::Stale));
        assert_eq!(verify(&good, "secret", now - 301), Err(Refusal::Stale));
        let mut unsigned = good.clone();
        unsigned
            .headers
            .retain(|(name, _)| name != "x-slack-signature");
        assert_eq!(
            verify(&unsigned, "secret", now),
            Err(Refusal::MissingSignature)
        );
        let mut garbled = good;
        garbled.headers[1].1 = "v0=zz".into();
        assert_eq!(verify(&garbled, "secret", now), Err(Refusal::BadSignature));
    }
}
