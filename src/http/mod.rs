//! The HTTP server (axum): `/healthz` and `/metrics`. Later: webhooks and admin API.
//! Bound to loopback by default; the config refuses other addresses unless asked.

use crate::health::HealthRegistry;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct HttpState {
    pub health: Arc<HealthRegistry>,
    pub metrics: PrometheusHandle,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
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
