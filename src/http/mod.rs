//! The HTTP server (axum routes on our own hyper accept loop, `server`):
//! `/healthz`, `/metrics`, and `POST /webhooks/NETWORK` (plus any request under
//! `/webhooks/NETWORK/...`), which hands the request to that network's adapter.
//! Bound to loopback by default; the config refuses other addresses unless asked.
//!
//! A webhook request is judged before its body is read: an unknown network (404), a
//! wrong method (405) and whatever the adapter refuses from the request line and
//! headers ([`Adapter::check_webhook_request`], e.g. Matrix's `hs_token`) are
//! answered without reading it; then at most the adapter's
//! [`Adapter::webhook_body_limit`] is read (413 beyond it), within the body-read
//! timeout (408). Every answer of these endpoints is counted in
//! `switchboard_webhook_requests_total`. Values from the request (the network name
//! in the URL) are logged only as escaped (`?`) fields, never in the message.

pub mod client;
mod server;

pub use server::{
    BODY_READ_TIMEOUT, FD_RESERVE, HEADER_READ_TIMEOUT, HttpLimits, IDLE_TIMEOUT, MAX_CONNECTIONS,
    MAX_HEAD_BYTES, connection_cap, raise_fd_limit,
};

use crate::health::HealthRegistry;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use switchboard_sdk::{Adapter, AdapterContext, NetworkId, WebhookRequest, WebhookResponse};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One network that may receive webhooks: its adapter and the context it runs in.
pub type WebhookTarget = (Arc<dyn Adapter>, AdapterContext);

/// The networks that may receive webhooks, looked up per request: a network added
/// or removed while the daemon runs is served (or refused) from the next request on.
#[derive(Clone, Default)]
pub struct WebhookTargets(Arc<arc_swap::ArcSwap<HashMap<NetworkId, Arc<WebhookTarget>>>>);

impl WebhookTargets {
    pub fn get(&self, network: &NetworkId) -> Option<Arc<WebhookTarget>> {
        self.0.load().get(network).cloned()
    }

    pub fn insert(&self, network: NetworkId, adapter: Arc<dyn Adapter>, ctx: AdapterContext) {
        let target = Arc::new((adapter, ctx));
        self.0.rcu(|targets| {
            let mut targets = HashMap::clone(targets);
            targets.insert(network.clone(), target.clone());
            targets
        });
    }

    pub fn remove(&self, network: &NetworkId) {
        self.0.rcu(|targets| {
            let mut targets = HashMap::clone(targets);
            targets.remove(network);
            targets
        });
    }
}

impl FromIterator<(NetworkId, WebhookTarget)> for WebhookTargets {
    fn from_iter<I: IntoIterator<Item = (NetworkId, WebhookTarget)>>(targets: I) -> Self {
        let targets = targets
            .into_iter()
            .map(|(network, target)| (network, Arc::new(target)))
            .collect();
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(targets)))
    }
}

#[derive(Clone)]
pub struct HttpState {
    pub health: Arc<HealthRegistry>,
    pub metrics: PrometheusHandle,
    pub webhooks: WebhookTargets,
    /// `/admin` (off until the daemon fills it; see `admin`).
    pub admin: crate::admin::AdminSlot,
    /// The running config's generation, for `/healthz`.
    pub config: crate::reload::SharedConfigStatus,
}

/// What the handlers share: the daemon's state and this server's own settings.
#[derive(Clone)]
struct Served {
    state: HttpState,
    body_read: Duration,
    /// Rate limits for warnings a client can provoke at will.
    unknown_network_log: Arc<Throttle>,
    too_large_log: Arc<Throttle>,
}

fn router(state: HttpState, limits: &HttpLimits) -> Router {
    let served = Served {
        state,
        body_read: limits.body_read,
        unknown_network_log: Arc::default(),
        too_large_log: Arc::default(),
    };
    let admin = crate::admin::router(served.state.admin.clone());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/webhooks/{network}", any(webhook))
        .route("/webhooks/{network}/{*rest}", any(webhook_api))
        .with_state(served)
        .merge(admin)
}

/// Serves until `cancel` fires, with the default limits and the connection cap
/// sized from this process's open-file limit ([`HttpLimits::for_this_process`]).
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, state, HttpLimits::for_this_process(), cancel).await
}

/// Serves until `cancel` fires, then finishes the requests under way and returns.
pub async fn serve_with(
    listener: TcpListener,
    state: HttpState,
    limits: HttpLimits,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let router = router(state, &limits);
    server::serve(listener, router, limits, cancel).await
}

async fn webhook(
    State(served): State<Served>,
    network: Result<Path<String>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Response {
    let network = network.ok().map(|Path(network)| network);
    counted(&served, network, String::new(), request).await
}

/// An API an adapter serves under its webhook path (the Matrix application-service
/// API: `PUT /webhooks/NETWORK/_matrix/app/v1/transactions/TXN`).
async fn webhook_api(
    State(served): State<Served>,
    parts: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Response {
    let (network, path) = match parts {
        Ok(Path((network, rest))) => (Some(network), format!("/{rest}")),
        Err(_) => (None, String::new()),
    };
    counted(&served, network, path, request).await
}

/// Answers a webhook request and counts the answer under its network and status.
async fn counted(
    served: &Served,
    network: Option<String>,
    path: String,
    request: Request,
) -> Response {
    let target = network
        .map(NetworkId::new)
        .and_then(|network| Some((network.clone(), served.state.webhooks.get(&network)?)));
    let Some((network, target)) = target else {
        crate::metrics::webhook(&NetworkId::new(crate::metrics::UNKNOWN_NETWORK), 404);
        if let Some(suppressed) = served.unknown_network_log.allow() {
            // The name is the client's: logged escaped (`?`), never in the message.
            let path = request.uri().path();
            tracing::warn!(path = ?path, suppressed, "webhook for an unknown network refused");
        }
        return (StatusCode::NOT_FOUND, "no such network\n").into_response();
    };
    let (adapter, ctx) = &*target;
    let response = forward(served, &network, adapter.as_ref(), ctx, path, request).await;
    crate::metrics::webhook(&network, response.status().as_u16());
    response
}

async fn forward(
    served: &Served,
    network: &NetworkId,
    adapter: &dyn Adapter,
    ctx: &AdapterContext,
    path: String,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if path.is_empty() && parts.method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            "webhooks are POSTed\n",
        )
            .into_response();
    }
    let mut request = WebhookRequest {
        method: parts.method.as_str().to_owned(),
        path,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: Vec::new(),
    };
    if let Some(refusal) = adapter.check_webhook_request(ctx, &request).await {
        return respond(refusal);
    }
    let limit = adapter.webhook_body_limit(&request.path);
    match read_body(body, &parts.headers, limit, served.body_read).await {
        Ok(bytes) => request.body = bytes.into(),
        Err(BodyError::TooLarge) => {
            if let Some(suppressed) = served.too_large_log.allow() {
                tracing::warn!(%network, limit, suppressed, "webhook body over the size limit refused (413); what it carried is not relayed");
            }
            return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n").into_response();
        }
        Err(BodyError::TimedOut) => {
            tracing::debug!(%network, "webhook body not received in time (408)");
            return (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                "body not received in time\n",
            )
                .into_response();
        }
        Err(BodyError::Unreadable) => {
            return (StatusCode::BAD_REQUEST, "unreadable body\n").into_response();
        }
    }
    respond(adapter.handle_webhook(ctx, request).await)
}

fn respond(answer: WebhookResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response()
}

enum BodyError {
    TooLarge,
    TimedOut,
    /// The client broke off or sent a malformed body.
    Unreadable,
}

/// Reads a request body of at most `limit` bytes within `timeout`. A declared
/// length over the limit is refused before anything is read.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Unreadable),
    }
}

/// Lets a warning that clients can provoke at will through at most once a minute;
/// `allow` returns how many were held back since the last one that went through.
#[derive(Default)]
struct Throttle {
    last: Mutex<Option<(Instant, u64)>>,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(60);

    fn allow(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match &mut *last {
            Some((at, held_back)) if now.duration_since(*at) < Self::EVERY => {
                *held_back += 1;
                None
            }
            slot => {
                let held_back = slot.map_or(0, |(_, held_back)| held_back);
                *slot = Some((now, 0));
                Some(held_back)
            }
        }
    }
}

#[derive(Serialize)]
struct HealthBody {
    /// `degraded` (answered 503) while a network is not connected; else `lagging`
    /// while a destination room's oldest queued row is older than
    /// `delivery.lagging_after`; else `ok`.
    status: &'static str,
    networks: BTreeMap<String, crate::health::NetworkHealth>,
    /// The lagging rooms, by `network/room`.
    lagging: BTreeMap<String, crate::health::Lagging>,
    /// The running config: its generation, when it was applied, and how the last
    /// reload went.
    config: Arc<crate::reload::ConfigStatus>,
}

async fn healthz(State(Served { state, .. }): State<Served>) -> Response {
    let networks: BTreeMap<String, _> = state
        .health
        .snapshot()
        .into_iter()
        .map(|(network, health)| (network.to_string(), health))
        .collect();
    let healthy = state.health.all_connected();
    let lagging = state.health.lagging();
    let status = match (healthy, lagging.is_empty()) {
        (false, _) => "degraded",
        (true, false) => "lagging",
        (true, true) => "ok",
    };
    let body = HealthBody {
        status,
        networks,
        lagging,
        config: state.config.load_full(),
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(Served { state, .. }): State<Served>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
