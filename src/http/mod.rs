//! The HTTP server (axum): `/healthz`, `/metrics`, and `POST /webhooks/NETWORK` (plus
//! any request under `/webhooks/NETWORK/...`), which hands the request to that
//! network's adapter. Bound to loopback by default; the config refuses other
//! addresses unless asked.

use crate::health::HealthRegistry;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_sdk::{Adapter, AdapterContext, NetworkId, WebhookRequest};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Largest webhook body taken; a larger one gets 413 before any adapter sees it.
pub const MAX_WEBHOOK_BODY: usize = 64 * 1024;
/// Largest body under `/webhooks/NETWORK/...`: a Matrix homeserver batches up to a
/// hundred events of up to 64 KiB each into one transaction.
pub const MAX_API_BODY: usize = 8 * 1024 * 1024;

/// The adapters that may receive webhooks, with the context they run in.
pub type WebhookTargets = Arc<HashMap<NetworkId, (Arc<dyn Adapter>, AdapterContext)>>;

#[derive(Clone)]
pub struct HttpState {
    pub health: Arc<HealthRegistry>,
    pub metrics: PrometheusHandle,
    pub webhooks: WebhookTargets,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/webhooks/{network}",
            post(webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY)),
        )
        .route(
            "/webhooks/{network}/{*rest}",
            any(webhook_api).layer(DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .with_state(state)
}

async fn webhook(
    State(state): State<HttpState>,
    Path(network): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    forward(&state, network, String::new(), method, uri, headers, body).await
}

/// An API an adapter serves under its webhook path (the Matrix application-service
/// API: `PUT /webhooks/NETWORK/_matrix/app/v1/transactions/TXN`).
async fn webhook_api(
    State(state): State<HttpState>,
    Path((network, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{rest}");
    forward(&state, network, path, method, uri, headers, body).await
}

async fn forward(
    state: &HttpState,
    network: String,
    path: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let network = NetworkId::new(network);
    let Some((adapter, ctx)) = state.webhooks.get(&network) else {
        tracing::warn!(%network, "webhook for an unknown network refused");
        return (StatusCode::NOT_FOUND, "no such network\n").into_response();
    };
    let request = WebhookRequest {
        method: method.as_str().to_owned(),
        path,
        query: uri.query().unwrap_or_default().to_owned(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    let answer = adapter.handle_webhook(ctx, request).await;
    crate::metrics::webhook(&network, answer.status);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response()
}

pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
}

#[derive(Serialize)]
struct HealthBody {
    /// `ok` when every network is connected, else `degraded`.
    status: &'static str,
    networks: BTreeMap<String, crate::health::NetworkHealth>,
}

async fn healthz(State(state): State<HttpState>) -> Response {
    let networks: BTreeMap<String, _> = state
        .health
        .snapshot()
        .into_iter()
        .map(|(network, health)| (network.to_string(), health))
        .collect();
    let healthy = state.health.all_connected();
    let body = HealthBody {
        status: if healthy { "ok" } else { "degraded" },
        networks,
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
