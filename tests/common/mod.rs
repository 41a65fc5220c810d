//! Helpers shared by the daemon-level tests: routes, daemons over fake networks, and a
//! minimal HTTP GET.
#![allow(dead_code)]

pub mod bridge;
pub mod gate;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use switchboard::config::{DeliveryConfig, RouteConfig};
use switchboard::supervisor::RestartPolicy;
use switchboard::{Daemon, DaemonOptions};
use switchboard_sdk::testing::FakeAdapter;
use switchboard_sdk::{Adapter, NetworkId};

pub const WAIT: Duration = Duration::from_secs(20);

pub fn route(name: &str, rooms: &[(&str, &str)]) -> RouteConfig {
    RouteConfig::linking(name, rooms.iter().copied())
}

pub fn fast_delivery() -> DeliveryConfig {
    DeliveryConfig {
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        shutdown_deadline: Duration::from_secs(2),
    }
}

pub fn fast_restart() -> RestartPolicy {
    RestartPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        ..RestartPolicy::default()
    }
}

pub async fn start(
    state_dir: &Path,
    routes: Vec<RouteConfig>,
    adapters: Vec<(&str, Arc<dyn Adapter>)>,
) -> Daemon {
    Daemon::start(options(state_dir, routes, adapters))
        .await
        .expect("daemon starts")
}

/// `start`, on an in-memory store: for tests on a paused clock whose behaviour does
/// not depend on SQLite (`state_dir` only holds the networks' data directories).
pub async fn start_in_memory(
    state_dir: &Path,
    routes: Vec<RouteConfig>,
    adapters: Vec<(&str, Arc<dyn Adapter>)>,
) -> Daemon {
    let (store, committed) = switchboard::store::MemoryStore::new();
    Daemon::start_with_store(
        options(state_dir, routes, adapters),
        Arc::new(store),
        committed,
    )
    .await
    .expect("daemon starts")
}

fn options(
    state_dir: &Path,
    routes: Vec<RouteConfig>,
    adapters: Vec<(&str, Arc<dyn Adapter>)>,
) -> DaemonOptions {
    DaemonOptions {
        state_dir: state_dir.to_owned(),
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        delivery: fast_delivery(),
        store: Default::default(),
        routes,
        adapters: adapters
            .into_iter()
            .map(|(name, adapter)| (NetworkId::new(name), adapter))
            .collect(),
        restart: fast_restart(),
    }
}

/// `count` fake networks, all with the default capabilities plus edits, deletes and
/// replies when `edits`.
pub fn fakes(count: usize, edits: bool) -> Vec<Arc<FakeAdapter>> {
    (0..count)
        .map(|_| {
            FakeAdapter::new(switchboard_sdk::Capabilities {
                edits,
                deletes: edits,
                replies: edits,
                ..Default::default()
            })
        })
        .collect()
}

pub fn texts(sent: &[switchboard_sdk::Outbound]) -> Vec<String> {
    sent.iter()
        .map(|out| match &out.kind {
            switchboard_sdk::OutboundKind::Message { content, .. } => content.to_plain(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Polls `check` until it holds, failing with `what` after `WAIT`.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP/1.1 GET; returns (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, "", "").await
}

/// One HTTP/1.1 request on its own connection; `headers` are extra header lines, each
/// ending in CRLF. Returns (status, body). The server may answer before reading a
/// large body (e.g. 413); that is fine.
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to HTTP");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let _ = stream.write_all(body.as_bytes()).await;
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("HTTP response in time")
        .ok();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
