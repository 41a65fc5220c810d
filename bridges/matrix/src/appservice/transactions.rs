//! The application-service API the homeserver calls, served under the daemon's
//! `/webhooks/NETWORK`: `PUT /_matrix/app/v1/transactions/{txnId}` pushes events,
//! which are relayed in order and acknowledged only once committed; a transaction id
//! already handled is acknowledged without relaying again. Every request must carry
//! the `hs_token` (compared in constant time). User and alias queries answer "not
//! found": ghosts are made by the bridge on first use, never on demand.

use super::Live;
use serde_json::Value;
use std::collections::VecDeque;
use switchboard_sdk::{AdapterContext, WebhookRequest, WebhookResponse};

/// Transaction ids remembered as done (the homeserver retries only the latest).
const REMEMBERED_TXNS: usize = 64;
const DONE_TXNS: &str = "appservice_done_txns";

/// A Matrix error body (`errcode`, `error`).
fn matrix_error(status: u16, errcode: &str, reason: &str) -> WebhookResponse {
    WebhookResponse::json(
        status,
        serde_json::json!({ "errcode": errcode, "error": reason }).to_string(),
    )
}

/// The homeserver's token: `Authorization: Bearer` (spec v1.4 on) or, from older
/// homeservers, `?access_token=`.
fn presented_token(request: &WebhookRequest) -> Option<String> {
    request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| request.query_param("access_token"))
}

/// Where the homeserver pushes transactions (followed by the transaction id).
const TRANSACTIONS: &str = "/_matrix/app/v1/transactions/";

/// The largest transaction body read: Synapse puts up to 100 events (each at most
/// 64 KiB, the spec's event size limit) in one transaction, beside up to 100
/// ephemeral events and 100 to-device messages, which are small: about 6.5 MiB at
/// worst, plus JSON framing. Read only once the `hs_token` was checked.
pub const MAX_TRANSACTION_BODY: usize = 8 * 1024 * 1024;
/// Every other endpoint (ping, user and alias queries) carries a small body at most.
pub const MAX_OTHER_BODY: usize = 64 * 1024;

/// The body limit for a request to `path`.
pub fn body_limit(path: &str) -> usize {
    if path.starts_with(TRANSACTIONS) {
        MAX_TRANSACTION_BODY
    } else {
        MAX_OTHER_BODY
    }
}

/// What the request line and headers alone decide, before the body is read: no
/// registration yet, a missing or wrong `hs_token`, a transaction not sent by PUT.
pub fn refusal_before_body(
    hs_token: Option<&str>,
    ctx: &AdapterContext,
    request: &WebhookRequest,
) -> Option<WebhookResponse> {
    let Some(expected) = hs_token else {
        return Some(matrix_error(
            503,
            "M_UNKNOWN",
            "not registered yet: run switchboard matrix-registration",
        ));
    };
    let Some(presented) = presented_token(request) else {
        tracing::warn!(network = %ctx.network, "appservice request without a token refused");
        return Some(matrix_error(401, "M_UNAUTHORIZED", "missing token"));
    };
    if !switchboard_sdk::text::secret_matches(&presented, expected) {
        tracing::warn!(network = %ctx.network, "appservice request with a wrong token refused");
        return Some(matrix_error(403, "M_FORBIDDEN", "wrong token"));
    }
    if request.path.starts_with(TRANSACTIONS) && request.method() != "PUT" {
        return Some(matrix_error(405, "M_UNRECOGNIZED", "transactions are PUT"));
    }
    None
}

pub async fn handle(
    live: Option<&Live>,
    hs_token: Option<&str>,
    ctx: &AdapterContext,
    request: &WebhookRequest,
) -> WebhookResponse {
    if let Some(refusal) = refusal_before_body(hs_token, ctx, request) {
        return refusal;
    }
    let path = request.path.as_str();
    let method = request.method();
    if let Some(txn) = path.strip_prefix(TRANSACTIONS) {
        let Some(live) = live else {
            // The homeserver keeps the events and retries.
            return matrix_error(503, "M_UNKNOWN", "not connected yet");
        };
        let txn = percent_encoding::percent_decode_str(txn).decode_utf8_lossy();
        return transaction(live, ctx, &txn, &request.body).await;
    }
    match (method, path) {
        ("POST", "/_matrix/app/v1/ping") => WebhookResponse::json(200, "{}"),
        ("GET", p) if p.starts_with("/_matrix/app/v1/users/") => {
            matrix_error(404, "M_NOT_FOUND", "no such user")
        }
        ("GET", p) if p.starts_with("/_matrix/app/v1/rooms/") => {
            matrix_error(404, "M_NOT_FOUND", "no such room alias")
        }
        _ => matrix_error(404, "M_UNRECOGNIZED", "unknown endpoint"),
    }
}

async fn transaction(live: &Live, ctx: &AdapterContext, txn: &str, body: &[u8]) -> WebhookResponse {
    let events = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut body)) => match body.remove("events") {
            Some(Value::Array(events)) => events,
            None => Vec::new(),
            Some(_) => return malformed(ctx, txn, "`events` is not a list"),
        },
        Ok(_) => return malformed(ctx, txn, "the body is not a JSON object"),
        Err(error) => return malformed(ctx, txn, &error.to_string()),
    };
    // One transaction at a time: the done-list and the order of events stay simple.
    let mut done = live.done_txns.lock().await;
    if done.iter().any(|seen| seen == txn) {
        tracing::debug!(network = %ctx.network, txn, "appservice: transaction seen before");
        return WebhookResponse::json(200, "{}");
    }
    for event in &events {
        if let Err(error) = live.relay(ctx, event).await {
            tracing::warn!(network = %ctx.network, txn, %error, "appservice: not accepted; the homeserver will retry");
            return matrix_error(500, "M_UNKNOWN", "the bridge could not store an event");
        }
    }
    done.push_back(txn.to_owned());
    while done.len() > REMEMBERED_TXNS {
        done.pop_front();
    }
    let list = serde_json::to_string(&*done).unwrap_or_default();
    if let Err(error) = ctx.state.save(DONE_TXNS, &list).await {
        // The events are committed; a retry is dropped by the core's event-id check.
        tracing::warn!(network = %ctx.network, %error, "appservice: done-list not saved");
    }
    WebhookResponse::json(200, "{}")
}

fn malformed(ctx: &AdapterContext, txn: &str, reason: &str) -> WebhookResponse {
    tracing::warn!(network = %ctx.network, txn, reason, "appservice: malformed transaction refused");
    matrix_error(400, "M_NOT_JSON", reason)
}

/// The transaction ids handled last (kept in adapter state), read once per run.
pub async fn load_done_txns(ctx: &AdapterContext) -> Result<VecDeque<String>, String> {
    let saved = ctx
        .state
        .load(DONE_TXNS)
        .await
        .map_err(|error| error.to_string())?;
    Ok(saved
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}
