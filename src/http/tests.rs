//! The HTTP server against raw TCP clients: timeouts (header, idle, body), the
//! connection cap, webhook requests refused before their body is read, every
//! webhook answer counted, and client-made values logged escaped. Timeouts are set
//! short here; every wait for the server is bounded and fails with a message.

use super::*;
use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use switchboard_sdk::testing::{MemoryState, RecordingSink};
use switchboard_sdk::{
    AdapterError, Capabilities, HealthReporter, Outbound, SendError, SendReceipt,
};
use switchboard_sdk::{WebhookRequest, WebhookResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the server to do what it must.
const BOUND: Duration = Duration::from_secs(20);
/// Long enough never to fire during a test.
const NEVER: Duration = Duration::from_secs(3600);

/// Answers every webhook 200 with the length of the body it got.
struct Echo;

#[async_trait]
impl Adapter for Echo {
    fn protocol(&self) -> &'static str {
        "echo"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn run(&self, _: AdapterContext, cancel: CancellationToken) -> Result<(), AdapterError> {
        cancel.cancelled().await;
        Ok(())
    }
    async fn send(&self, _: &Outbound) -> Result<SendReceipt, SendError> {
        Err(SendError::Permanent("echo sends nothing".into()))
    }
    async fn handle_webhook(&self, _: &AdapterContext, request: WebhookRequest) -> WebhookResponse {
        WebhookResponse::json(200, format!("{{\"bytes\":{}}}", request.body.len()))
    }
}

fn context(network: &str) -> AdapterContext {
    AdapterContext {
        network: NetworkId::new(network),
        rooms: switchboard_sdk::RoomSet::fixed([]),
        inbound: RecordingSink::new().0,
        health: HealthReporter::discard(),
        state: MemoryState::new(),
        data_dir: std::env::temp_dir(),
    }
}

struct Server {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(limits: HttpLimits, adapters: Vec<(&str, Arc<dyn Adapter>)>) -> Self {
        let webhooks = adapters
            .into_iter()
            .map(|(name, adapter)| (NetworkId::new(name), (adapter, context(name))))
            .collect();
        let state = HttpState {
            health: Arc::new(HealthRegistry::default()),
            admin: Default::default(),
            config: crate::reload::initial_status(),
            metrics: crate::metrics::install(),
            webhooks,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve_with(listener, state, limits, cancel.clone()));
        Self { addr, cancel, task }
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(BOUND, self.task)
            .await
            .expect("the server did not stop after cancel")
            .unwrap()
            .unwrap();
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    async fn metrics(&self) -> String {
        let mut stream = self.connect().await;
        let (status, body) = exchange(&mut stream, "GET /metrics HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .expect("an answer from /metrics");
        assert_eq!(status, 200);
        body
    }
}

fn limits(header_read: Duration, body_read: Duration, idle: Duration) -> HttpLimits {
    HttpLimits {
        header_read,
        body_read,
        idle,
        max_connections: 64,
    }
}

/// Writes `request` and reads one response: status and body. `None` if the
/// server closed the connection first.
async fn exchange(stream: &mut TcpStream, request: &str) -> Option<(u16, String)> {
    stream.write_all(request.as_bytes()).await.ok()?;
    read_response(stream).await
}

/// Reads one response (bounded by `BOUND`); `None` if the connection closed first.
async fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    tokio::time::timeout(BOUND, async {
        let mut buffer = Vec::new();
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |value| value.trim().parse().unwrap());
                while buffer.len() < end + 4 + length {
                    let mut chunk = [0u8; 4096];
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]);
                return Some((status, body.into_owned()));
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("no response and no close from the server in time")
}

/// Waits (bounded) until the server closed `stream`, discarding what it sends.
async fn wait_closed(stream: &mut TcpStream, what: &str) {
    let closed = tokio::time::timeout(BOUND, async {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept {what} open");
}

/// The value of the metrics line that starts with `prefix` (0 if there is none).
fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn slow_and_silent_clients_are_closed_after_the_header_timeout() {
    let server = Server::start(limits(Duration::from_millis(300), NEVER, NEVER), vec![]).await;
    let before = metric(
        &server.metrics().await,
        "switchboard_http_connections_timed_out_total{phase=\"header\"}",
    );
    let mut silent = server.connect().await;
    // Slow-loris: a header line that never ends, one byte every 50 ms.
    let mut slow = server.connect().await;
    let trickle = async {
        slow.write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
            .await
            .unwrap();
        let mut chunk = [0u8; 64];
        loop {
            tokio::select! {
                read = slow.read(&mut chunk) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    if slow.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    assert!(
        tokio::time::timeout(BOUND, trickle).await.is_ok(),
        "the server kept a slow-loris connection open"
    );
    wait_closed(&mut silent, "a connection that never sent anything").await;
    let after = metric(
        &server.metrics().await,
        "switchboard_http_connections_timed_out_total{phase=\"header\"}",
    );
    assert!(
        after >= before + 2.0,
        "header timeouts counted: {before} -> {after}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(limits(NEVER, NEVER, Duration::from_millis(300)), vec![]).await;
    let mut stream = server.connect().await;
    let (status, _) = exchange(&mut stream, "GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .expect("an answer");
    assert_eq!(status, 200);
    wait_closed(&mut stream, "an idle keep-alive connection").await;
    server.stop().await;
}

#[tokio::test]
async fn a_trickling_body_is_cut_after_the_body_timeout() {
    let server = Server::start(
        limits(NEVER, Duration::from_millis(300), NEVER),
        vec![("trickle", Arc::new(Echo))],
    )
    .await;
    let mut stream = server.connect().await;
    stream
        .write_all(b"POST /webhooks/trickle HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\n")
        .await
        .unwrap();
    // One byte every 50 ms: the whole body would take 50 s.
    let mut answer = Vec::new();
    let trickle = async {
        let mut chunk = [0u8; 1024];
        loop {
            tokio::select! {
                read = stream.read(&mut chunk) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&chunk[..n]),
                },
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    let _ = stream.write_all(b"x").await;
                }
            }
        }
    };
    assert!(
        tokio::time::timeout(BOUND, trickle).await.is_ok(),
        "the server kept reading a trickling body"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let metrics = server.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "switchboard_webhook_requests_total{network=\"trickle\",status=\"408\"}"
        ),
        1.0,
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_and_slots_come_back() {
    let limits = HttpLimits {
        max_connections: 2,
        ..limits(NEVER, NEVER, NEVER)
    };
    let server = Server::start(limits, vec![]).await;
    let healthz = "GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n";
    // Two keep-alive connections hold both slots (each was served, so it was accepted).
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    assert_eq!(exchange(&mut first, healthz).await.map(|r| r.0), Some(200));
    assert_eq!(exchange(&mut second, healthz).await.map(|r| r.0), Some(200));
    let refused_before = metric(
        &server.metrics_on(&mut first).await,
        "switchboard_http_connections_refused_total",
    );

    let mut third = server.connect().await;
    let answer = exchange(&mut third, healthz).await;
    assert!(
        matches!(answer, None | Some((503, _))),
        "a connection beyond the cap was served: {answer:?}"
    );
    wait_closed(&mut third, "a connection beyond the cap").await;
    // The connections inside the cap are still served.
    assert_eq!(exchange(&mut first, healthz).await.map(|r| r.0), Some(200));
    let metrics = server.metrics_on(&mut first).await;
    assert!(
        metric(&metrics, "switchboard_http_connections_refused_total") >= refused_before + 1.0,
        "{metrics}"
    );

    // A client leaving frees its slot for the next one.
    drop(second);
    let served_again = tokio::time::timeout(BOUND, async {
        loop {
            let mut stream = server.connect().await;
            if let Some((200, _)) = exchange(&mut stream, healthz).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        served_again.is_ok(),
        "the slot of a closed connection never came back"
    );
    server.stop().await;
}

impl Server {
    /// `/metrics` over an open keep-alive connection (when no new one may be taken).
    async fn metrics_on(&self, stream: &mut TcpStream) -> String {
        let (status, body) = exchange(stream, "GET /metrics HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .expect("an answer from /metrics");
        assert_eq!(status, 200);
        body
    }
}

/// Sends a request head announcing a large body and then nothing: an answer can
/// only come from a server that decided without reading the body.
async fn answer_without_body(server: &Server, head: &str) -> Option<(u16, String)> {
    let mut stream = server.connect().await;
    exchange(&mut stream, head).await
}

#[tokio::test]
async fn unknown_networks_wrong_methods_and_oversized_bodies_are_refused_unread() {
    let server = Server::start(limits(NEVER, NEVER, NEVER), vec![("known", Arc::new(Echo))]).await;
    let unknown = answer_without_body(
        &server,
        "POST /webhooks/nosuch HTTP/1.1\r\nhost: t\r\ncontent-length: 8000000\r\n\r\n",
    )
    .await;
    assert_eq!(unknown.map(|r| r.0), Some(404));
    // With `Expect: 100-continue` the client is told no before it sends anything.
    let unknown = answer_without_body(
        &server,
        "PUT /webhooks/nosuch/_matrix/app/v1/transactions/1 HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 8000000\r\n\r\n",
    )
    .await;
    assert_eq!(unknown.map(|r| r.0), Some(404));
    let wrong_method = answer_without_body(
        &server,
        "PUT /webhooks/known HTTP/1.1\r\nhost: t\r\ncontent-length: 8000000\r\n\r\n",
    )
    .await;
    assert_eq!(wrong_method.map(|r| r.0), Some(405));
    let too_large = answer_without_body(
        &server,
        "POST /webhooks/known HTTP/1.1\r\nhost: t\r\ncontent-length: 65537\r\n\r\n",
    )
    .await;
    assert_eq!(too_large.map(|r| r.0), Some(413));
    // Chunked, so no declared length: cut at the limit while reading.
    let mut stream = server.connect().await;
    let chunk = "x".repeat(32 * 1024);
    let mut request = String::from(
        "POST /webhooks/known HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    for _ in 0..3 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    assert_eq!(
        exchange(&mut stream, &request).await.map(|r| r.0),
        Some(413)
    );
    // Within the limit, the adapter gets the body.
    let mut stream = server.connect().await;
    let answer = exchange(
        &mut stream,
        "POST /webhooks/known HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(answer, Some((200, "{\"bytes\":5}".into())));
    server.stop().await;
}

#[tokio::test]
async fn every_webhook_answer_is_counted_with_its_status() {
    let server = Server::start(
        limits(NEVER, NEVER, NEVER),
        vec![("counted", Arc::new(Echo))],
    )
    .await;
    let unknown = "switchboard_webhook_requests_total{network=\"(unknown)\",status=\"404\"}";
    let unknown_before = metric(&server.metrics().await, unknown);
    for request in [
        "POST /webhooks/counted-not HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n",
        "GET /webhooks/counted HTTP/1.1\r\nhost: t\r\n\r\n",
        "POST /webhooks/counted HTTP/1.1\r\nhost: t\r\ncontent-length: 100000\r\n\r\n",
        "POST /webhooks/counted HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nhi",
        "GET /webhooks/counted/anything HTTP/1.1\r\nhost: t\r\n\r\n",
    ] {
        let mut stream = server.connect().await;
        assert!(exchange(&mut stream, request).await.is_some(), "{request}");
    }
    let metrics = server.metrics().await;
    let counted = |status: u16| {
        metric(
            &metrics,
            &format!(
                "switchboard_webhook_requests_total{{network=\"counted\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(counted(405), 1.0, "{metrics}");
    assert_eq!(counted(413), 1.0, "{metrics}");
    assert_eq!(counted(200), 2.0, "{metrics}");
    assert!(
        metric(&metrics, unknown) >= unknown_before + 1.0,
        "{metrics}"
    );
    assert!(
        !metrics.contains("counted-not"),
        "a made-up network name became a label: {metrics}"
    );
    server.stop().await;
}

#[cfg(feature = "matrix")]
#[tokio::test]
async fn a_matrix_request_without_the_right_hs_token_is_refused_before_its_body() {
    let config: switchboard_matrix::MatrixConfig = serde_json::from_value(serde_json::json!({
        "homeserver": "http://127.0.0.1:1",
        "user_id": "@switchboard:localhost",
        "appservice": { "as_token": "as-secret", "hs_token": "hs-secret" },
    }))
    .unwrap();
    let matrix: Arc<dyn Adapter> = switchboard_matrix::MatrixAdapter::new(config);
    let server = Server::start(limits(NEVER, NEVER, NEVER), vec![("mx", matrix)]).await;
    let put = |auth: &str| {
        format!(
            "PUT /webhooks/mx/_matrix/app/v1/transactions/1 HTTP/1.1\r\nhost: t\r\n{auth}content-type: application/json\r\ncontent-length: 4000000\r\n\r\n"
        )
    };
    let wrong = answer_without_body(&server, &put("authorization: Bearer wrong\r\n")).await;
    assert_eq!(wrong.map(|r| r.0), Some(403));
    let missing = answer_without_body(&server, &put("")).await;
    assert_eq!(missing.map(|r| r.0), Some(401));
    // The right token: the body is read (and its size allowed: a transaction is large).
    let mut stream = server.connect().await;
    let body = "{\"events\":[]}";
    let answer = exchange(
        &mut stream,
        &format!(
            "PUT /webhooks/mx/_matrix/app/v1/transactions/1 HTTP/1.1\r\nhost: t\r\nauthorization: Bearer hs-secret\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    // Not running, so not connected: the homeserver is told to retry later.
    assert_eq!(answer.map(|r| r.0), Some(503));
    server.stop().await;
}

#[cfg(feature = "mattermost")]
#[tokio::test]
async fn a_mattermost_webhook_body_over_256_kib_is_refused_unread() {
    let config: switchboard_mattermost::MattermostConfig =
        serde_json::from_value(serde_json::json!({
            "server": "http://127.0.0.1:1",
            "team": "t",
            "webhooks": {
                "incoming_url": "http://127.0.0.1:1/hooks/x",
                "outgoing_token": "secret",
                "username": "switchboard",
            },
        }))
        .unwrap();
    let mattermost: Arc<dyn Adapter> =
        switchboard_mattermost::MattermostAdapter::new(config).unwrap();
    let server = Server::start(limits(NEVER, NEVER, NEVER), vec![("mm", mattermost)]).await;
    let post = |length: usize| {
        format!(
            "POST /webhooks/mm HTTP/1.1\r\nhost: t\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {length}\r\n\r\n"
        )
    };
    assert_eq!(
        answer_without_body(&server, &post(256 * 1024 + 1))
            .await
            .map(|r| r.0),
        Some(413)
    );
    // Anything but POST to the bare path is refused before the body, too.
    let other_path = answer_without_body(
        &server,
        "POST /webhooks/mm/other HTTP/1.1\r\nhost: t\r\ncontent-length: 60000\r\n\r\n",
    )
    .await;
    assert_eq!(other_path.map(|r| r.0), Some(404));
    server.stop().await;
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_network_name_with_control_characters_is_logged_escaped() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    // Current-thread runtime: the server's tasks log on this thread.
    let _default = tracing::subscriber::set_default(subscriber);
    let server = Server::start(limits(NEVER, NEVER, NEVER), vec![]).await;
    let mut stream = server.connect().await;
    let answer = exchange(
        &mut stream,
        "POST /webhooks/evil%0Aforged%20line%1B%5B31m HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(answer.map(|r| r.0), Some(404));
    server.stop().await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|line| line.contains("unknown network"))
        .unwrap_or_else(|| panic!("no log line for the unknown network: {log}"));
    assert!(line.contains("evil"), "{line}");
    assert!(
        !log.contains("\nforged"),
        "a raw newline from the URL: {log:?}"
    );
    assert!(!log.contains('\u{1b}'), "a raw ESC from the URL: {log:?}");
}

#[test]
fn the_connection_cap_leaves_descriptors_to_the_rest_of_the_daemon() {
    // The open-file limit of the report: 64 connections, 192 fds left.
    assert_eq!(connection_cap(256), 64);
    assert_eq!(connection_cap(1024), MAX_CONNECTIONS);
    assert_eq!(connection_cap(u64::MAX), MAX_CONNECTIONS);
    assert_eq!(connection_cap(0), 4);
    for limit in [200u64, 256, 300, 640, 1024, 4096] {
        let cap = connection_cap(limit) as u64;
        assert!(
            limit - cap >= FD_RESERVE.min(limit) && cap <= limit / 2,
            "limit {limit}: cap {cap}"
        );
    }
    // Raising never lowers the limit in force.
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    assert!(soft.is_none_or(|soft| raise_fd_limit() >= soft));
}
