//! Helpers shared by the daemon-level tests: routes, daemons over fake networks, and a
//! minimal HTTP GET.
#![allow(dead_code)]

pub mod bridge;
pub mod gate;
pub mod pings;
pub mod reloading;

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
        ..DeliveryConfig::default()
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

/// `start` with delivery settings of the test's own.
pub async fn start_with_delivery(
    state_dir: &Path,
    routes: Vec<RouteConfig>,
    adapters: Vec<(&str, Arc<dyn Adapter>)>,
    delivery: DeliveryConfig,
) -> Daemon {
    Daemon::start(DaemonOptions {
        delivery,
        ..options(state_dir, routes, adapters)
    })
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

/// A fake network as the daemon takes it.
pub fn dyn_adapter(fake: &Arc<FakeAdapter>) -> Arc<dyn Adapter> {
    fake.clone()
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

/// An authenticated GET to the homeserver; the JSON answer. HTTP/1.0, so the body is
/// not chunked.
pub async fn get_json(port: u16, path: &str, token: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header end in {response:?}"));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "GET {path}: {response}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

/// Percent-encodes a path segment.
pub fn enc(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// A real Synapse with the bridge's account (`switchboard`, `bridge_password`) and
/// bob, logged in, in the room `#bridge:localhost` he created; returns the room id.
pub async fn synapse_with_bob(
    bridge_password: &str,
) -> (
    switchboard_testkit::synapse::Synapse,
    switchboard_testkit::synapse::MatrixPeer,
    String,
) {
    use switchboard_testkit::synapse::{MatrixPeer, Synapse, SynapseOptions};
    let synapse = Synapse::start(SynapseOptions::default());
    synapse.register("switchboard", bridge_password);
    synapse.register("bob", "bob-password");
    let mut bob = MatrixPeer::login(&synapse.url(), "bob", "bob-password").await;
    let room = bob.create_room(Some("bridge"), false).await;
    (synapse, bob, room)
}

/// Waits until the bridge's Matrix user (`@switchboard:localhost` in every test) has
/// joined `room`, as `peer` sees it (the bridge joins its rooms when it starts).
pub async fn bridge_bot_joined(peer: &switchboard_testkit::synapse::MatrixPeer, room: &str) {
    eventually("the bridge joins the Matrix room", || async {
        peer.joined_members(room)
            .await
            .iter()
            .any(|member| member == "@switchboard:localhost")
    })
    .await;
}

/// An IRC line by which the bridge (nick `switchboard`) does `command` (in `channel`;
/// any target when empty), as a peer sharing the channel sees it.
pub fn bridge_does(command: &'static str, channel: &'static str) -> impl Fn(&str) -> bool {
    move |line: &str| {
        let mut words = line.split_whitespace();
        words
            .next()
            .is_some_and(|source| source.starts_with(":switchboard!"))
            && words.next() == Some(command)
            && (channel.is_empty()
                || words.next().is_some_and(|target| {
                    target.trim_start_matches(':').eq_ignore_ascii_case(channel)
                }))
    }
}
