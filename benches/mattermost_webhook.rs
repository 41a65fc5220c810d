//! Mattermost webhook relay benchmark: the whole daemon (HTTP server, the Mattermost
//! adapter in webhook mode, routing, durable commit, delivery) between a load
//! generator playing Mattermost's outgoing webhooks and a sink playing the
//! incoming-webhook URL.
//!
//! `cargo bench --bench mattermost_webhook` (add `-- --quick` for a short smoke run).
//!
//! Topology: two webhook-mode networks, `mm-a` and `mm-b`, whose incoming-webhook URLs
//! both point at the sink (HTTP/1.1 by hand, like the generator, so that the cores
//! go to the daemon); route i links `mm-a: chan-i` with `mm-b: chan-i`. The
//! generator POSTs form-encoded outgoing-webhook calls (a unique `post_id` as
//! random-looking as Mattermost's, sequence number in `text`) to `/webhooks/mm-a`
//! over keep-alive HTTP/1.1 connections written by hand. The daemon answers each
//! only once the event's commit is on disk (SQLite WAL, group commit, one fdatasync
//! for what was written; a fresh state dir on disk per scenario), and relays it
//! through `mm-b`'s incoming webhook to the sink as soon as it is written.
//!
//! The daemon runs in a child process (this binary, re-run with `--daemon-child`),
//! started through the library API on the runtime `switchboard run` uses
//! (`switchboard::daemon::runtime`: one async thread beside the store's writer), a
//! fresh one per scenario: its CPU time and peak RSS are read from `/proc/PID`, apart from the
//! generator's and the sink's, which run here on one thread (a current-thread runtime),
//! on the same 2 cores.
//!
//! Beside the daemon, each throughput scenario also runs the floor (`webhook_floor`):
//! the same HTTP server and adapter without the core, in the same kind of child
//! process, alternating with the daemon, so the daemon's share of it is a ratio from
//! one run.
//!
//! `-- --only daemon|floor ROUTES MESSAGES` runs one throughput scenario and prints
//! one line (with the relay's CPU by thread), to profile or to compare two builds;
//! `-- --only latency ROUTES RATE` one latency scenario; `-- --only closed IN_FLIGHT
//! ROUTES MESSAGES` a closed loop with at most IN_FLIGHT requests unanswered (1: each
//! message waits for the previous one's answer), with its relay and answer p99.
//!
//! Prints: sustained messages/s (closed loop, 64 connections) on 1 and 16 routes;
//! latency at 500 and 2,000 messages/s offered (open loop), with what the disk did
//! meanwhile (a `DiskProbe`: a durable commit waits for the disk, whose stalls decide
//! the p99); CPU time per message; peak RSS; then a markdown summary with the targets beside the figures. A
//! benchmark, not a test: no timing is asserted, but every message must reach the
//! sink exactly once, on its channel, and be in the database afterwards, or it panics.

mod common;
mod webhook_floor;

use common::{
    DaemonChild, DiskProbe, DiskStalls, TICKS_PER_SECOND, cpu_ticks, filesystem_of, load_average,
    machine, mb, median, print_machine, status_kb, thread_ticks, today,
};
use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchboard::config::{DeliveryConfig, RouteConfig};
use switchboard::supervisor::RestartPolicy;
use switchboard::{Daemon, DaemonOptions};
use switchboard_mattermost::config::WebhookConfig;
use switchboard_mattermost::{MattermostAdapter, MattermostConfig};
use switchboard_sdk::{Adapter, NetworkId};
use switchboard_testkit::mattermost::ID_ALPHABET;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The generator's outgoing-webhook token, as configured on both networks.
const TOKEN: &str = "bench-outgoing-token";
/// How long the daemon process may take to start, and each step of stopping it.
const DAEMON_LIMIT: Duration = Duration::from_secs(120);
/// Keep-alive connections of the load generator.
const CONNECTIONS: usize = 64;
/// A ledger slot with no timestamp yet.
const NOT_YET: u64 = u64::MAX;

/// Every timestamp in nanoseconds since this instant.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

/// What happened to each message, indexed by its sequence number.
struct Ledger {
    routes: u64,
    sent: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    /// When the sink first received it.
    arrived: Vec<AtomicU64>,
    /// How many times the sink received it.
    copies: Vec<AtomicU32>,
    delivered: AtomicU64,
    misrouted: AtomicU64,
    unparsable: AtomicU64,
    /// When the open loop meant to send it.
    due: Vec<AtomicU64>,
    /// Connections the open loop had to open because all were busy.
    extra_connections: AtomicU64,
}

impl Ledger {
    fn new(routes: u64, messages: u64) -> Arc<Self> {
        let column = |value| (0..messages).map(|_| AtomicU64::new(value)).collect();
        Arc::new(Self {
            routes,
            sent: column(NOT_YET),
            acked: column(NOT_YET),
            arrived: column(NOT_YET),
            copies: (0..messages).map(|_| AtomicU32::new(0)).collect(),
            delivered: AtomicU64::new(0),
            misrouted: AtomicU64::new(0),
            unparsable: AtomicU64::new(0),
            due: column(NOT_YET),
            extra_connections: AtomicU64::new(0),
        })
    }

    fn channel(&self, seq: u64) -> String {
        format!("chan-{}", seq % self.routes)
    }

    /// Nanoseconds from `from` to `to` for each message in `range`, sorted.
    fn spans(&self, range: Range<u64>, from: &[AtomicU64], to: &[AtomicU64]) -> Vec<u64> {
        let mut spans: Vec<u64> = range
            .map(|seq| {
                let (from, to) = (
                    from[seq as usize].load(Ordering::Relaxed),
                    to[seq as usize].load(Ordering::Relaxed),
                );
                to.saturating_sub(from)
            })
            .collect();
        spans.sort_unstable();
        spans
    }
}

// ---------------------------------------------------------------------------
// The sink: the incoming-webhook URL of both networks.

/// The JSON the adapter posts to an incoming webhook.
#[derive(Deserialize)]
struct IncomingPost {
    text: String,
    channel: String,
}

fn seq_of(text: &str) -> Option<u64> {
    text.strip_prefix("seq ")?.split(' ').next()?.parse().ok()
}

/// Notes one post the sink received.
fn record(ledger: &Ledger, body: &[u8]) {
    let at = now_ns();
    let parsed = serde_json::from_slice::<IncomingPost>(body)
        .ok()
        .and_then(|post| Some((seq_of(&post.text)?, post.channel)))
        .filter(|(seq, _)| (*seq as usize) < ledger.copies.len());
    let Some((seq, channel)) = parsed else {
        ledger.unparsable.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if ledger.copies[seq as usize].fetch_add(1, Ordering::Relaxed) == 0 {
        ledger.arrived[seq as usize].store(at, Ordering::Relaxed);
    }
    if channel != ledger.channel(seq) {
        ledger.misrouted.fetch_add(1, Ordering::Relaxed);
    }
    ledger.delivered.fetch_add(1, Ordering::Release);
}

/// The sink: HTTP/1.1 keep-alive by hand, like the generator, so that the two cores
/// go to the daemon rather than to the stand-in for Mattermost. It answers every
/// `POST /hooks/...` with `200 ok`, as Mattermost's incoming webhook does.
async fn start_sink(ledger: Arc<Ledger>) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let ledger = ledger.clone();
            connections.spawn(async move {
                let mut connection = Connection::new(stream);
                while let Some((head, body)) = connection.read_message().await {
                    assert!(
                        head.starts_with("POST /hooks/"),
                        "the sink got an unexpected request: {head:?}"
                    );
                    record(&ledger, &body);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
                    if connection.stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, task)
}

// ---------------------------------------------------------------------------
// The load generator: HTTP/1.1 keep-alive by hand.

struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: Vec::with_capacity(1024),
        }
    }

    async fn open(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"));
        stream.set_nodelay(true).unwrap();
        Self::new(stream)
    }

    /// Writes one request and reads its response: status and body.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request).await?;
        let (head, body) = self
            .read_message()
            .await
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in response head {head:?}"));
        Ok((status, body))
    }

    /// Reads one HTTP/1.1 message (a request or a response): its head and its
    /// body, which must have a Content-Length (the daemon and the sink send one).
    /// None when the peer closed the connection between messages.
    async fn read_message(&mut self) -> Option<(String, Vec<u8>)> {
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, value)| value.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no content-length in {head:?}"));
                let total = end + 4 + length;
                while self.buffer.len() < total {
                    if !self.fill().await {
                        panic!("connection closed inside a message: {head:?}");
                    }
                }
                let body = self.buffer[end + 4..total].to_vec();
                self.buffer.drain(..total);
                return Some((head, body));
            }
            if !self.fill().await {
                assert!(
                    self.buffer.is_empty(),
                    "connection closed inside a message head"
                );
                return None;
            }
        }
    }

    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        matches!(self.stream.read_buf(&mut self.buffer).await, Ok(read) if read > 0)
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// A post id shaped like Mattermost's (26 characters of its base32 alphabet, random
/// to the eye) and unique per `seq`: 13 characters of a hash of `seq`, then `seq`
/// itself. Real post ids are random, so each lands on its own leaf of the store's
/// native-id index; sequential ids would share leaves and flatter the store.
fn mattermost_post_id(seq: u64) -> String {
    // splitmix64's finaliser: a bijection on u64 that scatters consecutive inputs.
    let mut hash = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    hash ^= hash >> 31;
    let digit =
        |value: u64, index: u32| ID_ALPHABET[((value >> (5 * index)) & 31) as usize] as char;
    let scattered = (0..13).rev().map(|index| digit(hash, index));
    let unique = (0..13).rev().map(|index| digit(seq, index));
    scattered.chain(unique).collect()
}

/// What Mattermost's outgoing webhook POSTs for post `seq` (its default, form-encoded).
fn outgoing_webhook(host: SocketAddr, seq: u64, routes: u64) -> Vec<u8> {
    let channel = seq % routes;
    let user = seq % 7;
    let body = format!(
        "token={TOKEN}&team_id=benchteam0000000000000000&team_domain=bench\
         &channel_id=c{channel:025}&channel_name=chan-{channel}&timestamp={ms}\
         &user_id=u{user:025}&user_name=user{user}&post_id={post_id}\
         &text=seq+{seq}+the+quick+brown+fox+jumps+over+the+lazy+dog&trigger_word=&file_ids=",
        ms = unix_ms(),
        post_id = mattermost_post_id(seq),
    );
    format!(
        "POST /webhooks/mm-a HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn send_one(connection: &mut Connection, ledger: &Ledger, host: SocketAddr, seq: u64) {
    let request = outgoing_webhook(host, seq, ledger.routes);
    ledger.sent[seq as usize].store(now_ns(), Ordering::Relaxed);
    let (status, body) = connection
        .exchange(&request)
        .await
        .unwrap_or_else(|error| panic!("webhook call for seq {seq} failed: {error}"));
    ledger.acked[seq as usize].store(now_ns(), Ordering::Relaxed);
    assert_eq!(
        status,
        200,
        "webhook call for seq {seq} was answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
}

// ---------------------------------------------------------------------------
// The daemon, in a child process.

fn mattermost(sink: SocketAddr, hook: &str) -> Arc<dyn Adapter> {
    let config = MattermostConfig {
        server: "http://127.0.0.1:1".into(),
        team: "bench".into(),
        token: None,
        login: None,
        webhooks: Some(WebhookConfig {
            incoming_url: format!("http://{sink}/hooks/{hook}"),
            outgoing_token: TOKEN.into(),
            username: "switchboard".into(),
        }),
        override_names: true,
        catch_up_max_age_secs: 24 * 60 * 60,
        accept_invalid_certs: false,
        max_upload_bytes: 10 * 1024 * 1024,
    };
    let problems = config.validate();
    assert!(problems.is_empty(), "bench config is invalid: {problems:?}");
    MattermostAdapter::new(config).expect("Mattermost adapter")
}

/// `--daemon-child daemon|floor ROUTES SINK STATE_DIR`: starts the daemon (or the
/// floor relay), prints `ready HTTP_ADDRESS RSS_KB` (RSS just before it starts),
/// runs until stdin says `stop` or closes, shuts down, and prints
/// `stopped PEAK_RSS_KB`.
fn daemon_child(args: &[String]) {
    let [relay, routes, sink, state_dir, ..] = args else {
        panic!("usage: --daemon-child daemon|floor ROUTES SINK_ADDRESS STATE_DIR");
    };
    let routes: u64 = routes.parse().expect("ROUTES");
    let sink: SocketAddr = sink.parse().expect("SINK_ADDRESS");
    // The daemon's own runtime, as `switchboard run` builds it (the floor too, so the
    // two compare like with like).
    let runtime = switchboard::daemon::runtime().expect("the daemon's runtime");
    let rss_before_kb = status_kb("self", "VmRSS:");
    if relay == Relay::Floor.arg() {
        runtime.block_on(webhook_floor::run(
            routes,
            mattermost(sink, "a"),
            mattermost(sink, "b"),
            rss_before_kb,
        ));
        println!("stopped {}", status_kb("self", "VmHWM:"));
        return;
    }
    runtime.block_on(async {
        let daemon = Daemon::start(DaemonOptions {
            state_dir: PathBuf::from(state_dir),
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            delivery: DeliveryConfig {
                retry_initial: Duration::from_millis(100),
                retry_max: Duration::from_secs(1),
                shutdown_deadline: Duration::from_secs(5),
                ..DeliveryConfig::default()
            },
            store: Default::default(),
            routes: (0..routes)
                .map(|i| {
                    RouteConfig::linking(
                        &format!("r{i}"),
                        [("mm-a", format!("chan-{i}")), ("mm-b", format!("chan-{i}"))],
                    )
                })
                .collect(),
            adapters: vec![
                (NetworkId::new("mm-a"), mattermost(sink, "a")),
                (NetworkId::new("mm-b"), mattermost(sink, "b")),
            ],
            restart: RestartPolicy::default(),
        })
        .await
        .expect("daemon starts");
        let address = daemon.http_addr().expect("HTTP server listening");
        println!("ready {address} {rss_before_kb}");
        let mut line = String::new();
        let _ = BufReader::new(tokio::io::stdin())
            .read_line(&mut line)
            .await;
        daemon.shutdown().await;
    });
    println!("stopped {}", status_kb("self", "VmHWM:"));
}

/// What relays between the generator and the sink.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Relay {
    /// The daemon: durable commit, then delivery by the core.
    Daemon,
    /// The floor: the same HTTP server and adapter without the core (see `floor`).
    Floor,
}

impl Relay {
    fn arg(self) -> &'static str {
        match self {
            Relay::Daemon => "daemon",
            Relay::Floor => "floor",
        }
    }
}

/// One daemon process with its sink, state dir and generator connections.
struct Scenario {
    relay: Relay,
    daemon: DaemonChild,
    daemon_address: SocketAddr,
    daemon_rss_before_kb: u64,
    ledger: Arc<Ledger>,
    sink: JoinHandle<()>,
    idle: Arc<Mutex<Vec<Connection>>>,
    dir: tempfile::TempDir,
}

impl Scenario {
    async fn start(relay: Relay, routes: u64, messages: u64) -> Self {
        // Earlier scenarios wrote hundreds of MB: let the disk settle first, so that
        // their write-back does not slow this one's fsyncs.
        let synced = tokio::process::Command::new("sync").status().await;
        assert!(synced.is_ok_and(|status| status.success()), "sync failed");
        let ledger = Ledger::new(routes, messages);
        let (sink_address, sink) = start_sink(ledger.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let mut daemon = DaemonChild::spawn(&[
            relay.arg().as_ref(),
            routes.to_string().as_ref(),
            sink_address.to_string().as_ref(),
            dir.path().as_os_str(),
        ]);
        let ready = daemon
            .ready(DAEMON_LIMIT)
            .await
            .unwrap_or_else(|line| panic!("the daemon process did not start: {line:?}"));
        let mut fields = ready.split(' ');
        let (Some(address), Some(rss)) = (fields.next(), fields.next()) else {
            panic!("the daemon process did not start: {ready:?}");
        };
        let daemon_address: SocketAddr = address.parse().unwrap();
        let mut connections = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            connections.push(Connection::open(daemon_address).await);
        }
        // Both networks report connected at once in webhook mode; wait for it anyway.
        let healthz = format!("GET /healthz HTTP/1.1\r\nHost: {daemon_address}\r\n\r\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        while connections[0]
            .exchange(healthz.as_bytes())
            .await
            .expect("healthz")
            .0
            != 200
        {
            assert!(Instant::now() < deadline, "daemon never became healthy");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Self {
            relay,
            daemon,
            daemon_address,
            daemon_rss_before_kb: rss.parse().unwrap(),
            ledger,
            sink,
            idle: Arc::new(Mutex::new(connections)),
            dir,
        }
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join(switchboard::store::DATABASE_FILE)
    }

    fn cpu(&self) -> Cpu {
        Cpu {
            daemon: cpu_ticks(&self.daemon.pid),
            bench: cpu_ticks("self"),
            daemon_threads: thread_ticks(&self.daemon.pid),
        }
    }

    /// Every connection sends back to back until `range` is sent and acknowledged.
    async fn closed_loop(&self, range: Range<u64>) {
        self.closed_loop_with(range, CONNECTIONS).await
    }

    /// `in_flight` connections send back to back until `range` is sent and
    /// acknowledged: at most `in_flight` requests are ever unanswered.
    async fn closed_loop_with(&self, range: Range<u64>, in_flight: usize) {
        let next = Arc::new(AtomicU64::new(range.start));
        let connections: Vec<Connection> = {
            let mut idle = self.idle.lock().unwrap();
            let keep = idle.len().saturating_sub(in_flight);
            idle.split_off(keep)
        };
        let tasks: Vec<_> = connections
            .into_iter()
            .map(|mut connection| {
                let (next, ledger, host, end) = (
                    next.clone(),
                    self.ledger.clone(),
                    self.daemon_address,
                    range.end,
                );
                tokio::spawn(async move {
                    loop {
                        let seq = next.fetch_add(1, Ordering::Relaxed);
                        if seq >= end {
                            return connection;
                        }
                        send_one(&mut connection, &ledger, host, seq).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            let connection = task.await.unwrap();
            self.idle.lock().unwrap().push(connection);
        }
    }

    /// Message k of `range` is sent at start + k/rate on an idle connection (a new one
    /// if all are busy), whatever happened before: the generator never waits.
    async fn open_loop(&self, range: Range<u64>, rate: u64) {
        let begin = tokio::time::Instant::now() + Duration::from_millis(1);
        let begin_ns = now_ns() + 1_000_000;
        let mut tasks = Vec::with_capacity((range.end - range.start) as usize);
        for (k, seq) in range.enumerate() {
            let offset = k as u64 * 1_000_000_000 / rate;
            self.ledger.due[seq as usize].store(begin_ns + offset, Ordering::Relaxed);
            tokio::time::sleep_until(begin + Duration::from_nanos(offset)).await;
            let (idle, ledger, host) =
                (self.idle.clone(), self.ledger.clone(), self.daemon_address);
            tasks.push(tokio::spawn(async move {
                let pooled = idle.lock().unwrap().pop();
                let mut connection = match pooled {
                    Some(connection) => connection,
                    None => {
                        ledger.extra_connections.fetch_add(1, Ordering::Relaxed);
                        Connection::open(host).await
                    }
                };
                send_one(&mut connection, &ledger, host, seq).await;
                idle.lock().unwrap().push(connection);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// Waits until the sink has `expected` deliveries; panics after `timeout`.
    async fn wait_delivered(&self, expected: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.ledger.delivered.load(Ordering::Acquire) < expected {
            if Instant::now() > deadline {
                panic!(
                    "only {} of {expected} messages reached the sink within {timeout:?}; dead letters: {:?}",
                    self.ledger.delivered.load(Ordering::Acquire),
                    dead_letters(&self.database()),
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Latest sink arrival among `range`.
    fn last_arrival(&self, range: Range<u64>) -> u64 {
        range
            .map(|seq| self.ledger.arrived[seq as usize].load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// Stops the daemon and checks that every message reached the sink exactly once,
    /// on its channel, and is recorded in the store, with nothing left in the outbox.
    /// Returns the daemon process's peak RSS (kB).
    async fn finish(self) -> u64 {
        let database = self.database();
        drop(std::mem::take(&mut *self.idle.lock().unwrap()));
        let peak_kb = self
            .daemon
            .stop(DAEMON_LIMIT)
            .await
            .unwrap_or_else(|why| panic!("{why}"));
        self.sink.abort();
        let ledger = &self.ledger;
        let messages = ledger.copies.len() as u64;
        let (mut missing, mut repeated) = (Vec::new(), Vec::new());
        for (seq, copies) in ledger.copies.iter().enumerate() {
            match copies.load(Ordering::Relaxed) {
                0 => missing.push(seq),
                1 => {}
                n => repeated.push((seq, n)),
            }
        }
        assert!(
            missing.is_empty() && repeated.is_empty(),
            "not exactly once: {} of {messages} missing (first {:?}), {} repeated (first {:?}); dead letters: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)],
            repeated.len(),
            &repeated[..repeated.len().min(5)],
            dead_letters(&database),
        );
        let misrouted = ledger.misrouted.load(Ordering::Relaxed);
        let unparsable = ledger.unparsable.load(Ordering::Relaxed);
        assert!(
            misrouted == 0 && unparsable == 0,
            "{misrouted} posts reached the wrong channel, {unparsable} were unreadable"
        );
        if self.relay == Relay::Floor {
            return peak_kb;
        }
        let db = rusqlite::Connection::open(&database).expect("open the state database");
        let count = |sql: &str| -> u64 { db.query_row(sql, [], |row| row.get(0)).unwrap() };
        let stored = count("SELECT COUNT(*) FROM bridged_message");
        let outbox = count("SELECT COUNT(*) FROM outbox");
        let dead = count("SELECT COUNT(*) FROM dead_letter");
        assert!(
            stored == messages && outbox == 0 && dead == 0,
            "store after the run: {stored} messages recorded (expected {messages}), \
             {outbox} still in the outbox, {dead} dead-lettered"
        );
        peak_kb
    }
}

fn dead_letters(database: &Path) -> Vec<String> {
    let Ok(db) = rusqlite::Connection::open(database) else {
        return Vec::new();
    };
    let Ok(mut statement) =
        db.prepare("SELECT reason, COUNT(*) FROM dead_letter GROUP BY reason LIMIT 5")
    else {
        return Vec::new();
    };
    statement
        .query_map([], |row| {
            Ok(format!(
                "{} x {}",
                row.get::<_, i64>(1)?,
                row.get::<_, String>(0)?
            ))
        })
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Measurements.

/// CPU time so far (clock ticks) of the daemon process and of this one.
#[derive(Clone)]
struct Cpu {
    daemon: u64,
    bench: u64,
    daemon_threads: std::collections::BTreeMap<String, u64>,
}

/// CPU microseconds per message between two readings: (daemon, generator + sink).
fn cpu_per_message(before: &Cpu, after: &Cpu, messages: u64) -> (f64, f64) {
    let per = |ticks: u64| ticks as f64 / TICKS_PER_SECOND * 1e6 / messages as f64;
    (
        per(after.daemon - before.daemon),
        per(after.bench - before.bench),
    )
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    Duration::from_nanos(sorted[((sorted.len() as f64 - 1.0) * p) as usize])
}

/// Where the disk probe syncs: `DISK_PROBE_DIR` when set (so that a run with its
/// state on tmpfs still reports what the real disk did), else `default`.
fn probe_dir(default: &Path) -> PathBuf {
    std::env::var_os("DISK_PROBE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| default.to_owned())
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------
// Scenarios.

struct Throughput {
    /// From a request sent to its message reaching the sink.
    relay_p50: Duration,
    relay_p99: Duration,
    /// From a request sent to its answer.
    ack_p99: Duration,
    accepted_per_s: f64,
    delivered_per_s: f64,
    daemon_cpu_us: f64,
    bench_cpu_us: f64,
    daemon_peak_kb: u64,
    /// The daemon's CPU microseconds per message by thread name.
    daemon_threads: Vec<(String, f64)>,
}

impl Throughput {
    /// `daemon-worker 66 us, store-writer 29 us`: where the relay's CPU went.
    fn by_thread(&self) -> String {
        self.daemon_threads
            .iter()
            .map(|(name, us)| format!("{name} {us:.0} us"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Each figure's median over `runs`; the peak RSS is the largest.
    fn median_of(runs: &[Throughput]) -> Self {
        let pick = |f: fn(&Throughput) -> f64| median(runs.iter().map(f).collect());
        let middle = &runs[runs.len() / 2];
        Throughput {
            relay_p50: middle.relay_p50,
            relay_p99: middle.relay_p99,
            ack_p99: middle.ack_p99,
            accepted_per_s: pick(|t| t.accepted_per_s),
            delivered_per_s: pick(|t| t.delivered_per_s),
            daemon_cpu_us: pick(|t| t.daemon_cpu_us),
            bench_cpu_us: pick(|t| t.bench_cpu_us),
            daemon_peak_kb: runs.iter().map(|t| t.daemon_peak_kb).max().unwrap(),
            daemon_threads: runs[runs.len() / 2].daemon_threads.clone(),
        }
    }
}

/// Closed loop: `warmup` messages, then `messages` measured from the first send of
/// the measured batch until its last message reached the sink.
async fn throughput(relay: Relay, routes: u64, warmup: u64, messages: u64) -> Throughput {
    throughput_with(relay, routes, warmup, messages, CONNECTIONS).await
}

/// `throughput` with `in_flight` requests at most unanswered at a time.
async fn throughput_with(
    relay: Relay,
    routes: u64,
    warmup: u64,
    messages: u64,
    in_flight: usize,
) -> Throughput {
    let total = warmup + messages;
    let s = Scenario::start(relay, routes, total).await;
    s.closed_loop_with(0..warmup, in_flight).await;
    s.wait_delivered(warmup, Duration::from_secs(120)).await;
    let cpu_before = s.cpu();
    let begin = now_ns();
    s.closed_loop_with(warmup..total, in_flight).await;
    let acked = now_ns();
    s.wait_delivered(total, Duration::from_secs(300)).await;
    let cpu_after = s.cpu();
    let end = s.last_arrival(warmup..total);
    let (daemon_cpu_us, bench_cpu_us) = cpu_per_message(&cpu_before, &cpu_after, messages);
    let daemon_threads = cpu_after
        .daemon_threads
        .iter()
        .map(|(name, after)| {
            let before = cpu_before.daemon_threads.get(name).copied().unwrap_or(0);
            let us = (after - before.min(*after)) as f64 / TICKS_PER_SECOND * 1e6 / messages as f64;
            (name.clone(), us)
        })
        .filter(|(_, us)| *us > 0.0)
        .collect();
    let relay_spans = s
        .ledger
        .spans(warmup..total, &s.ledger.sent, &s.ledger.arrived);
    let ack_spans = s
        .ledger
        .spans(warmup..total, &s.ledger.sent, &s.ledger.acked);
    let daemon_peak_kb = s.finish().await;
    Throughput {
        relay_p50: percentile(&relay_spans, 0.50),
        relay_p99: percentile(&relay_spans, 0.99),
        ack_p99: percentile(&ack_spans, 0.99),
        accepted_per_s: messages as f64 / ((acked - begin) as f64 / 1e9),
        delivered_per_s: messages as f64 / ((end - begin) as f64 / 1e9),
        daemon_cpu_us,
        bench_cpu_us,
        daemon_peak_kb,
        daemon_threads,
    }
}

struct Latency {
    relay_p50: Duration,
    relay_p99: Duration,
    relay_max: Duration,
    ack_p50: Duration,
    ack_p99: Duration,
    /// How late the generator sent (due time to send), p99 and max.
    lag_p99: Duration,
    lag_max: Duration,
    extra_connections: u64,
    daemon_cpu_us: f64,
    daemon_peak_kb: u64,
    /// What the disk did meanwhile (syncs of a file beside the daemon's state).
    disk: DiskStalls,
}

/// Open loop at `rate` messages/s for `messages`, after a closed-loop warm-up.
async fn latency(routes: u64, rate: u64, warmup: u64, messages: u64) -> Latency {
    let total = warmup + messages;
    let s = Scenario::start(Relay::Daemon, routes, total).await;
    s.closed_loop(0..warmup).await;
    s.wait_delivered(warmup, Duration::from_secs(120)).await;
    let cpu_before = s.cpu();
    let disk = DiskProbe::start(&probe_dir(s.dir.path()));
    s.open_loop(warmup..total, rate).await;
    s.wait_delivered(total, Duration::from_secs(300)).await;
    let disk = disk.finish();
    let (daemon_cpu_us, _) = cpu_per_message(&cpu_before, &s.cpu(), messages);
    let ledger = &s.ledger;
    let relay = ledger.spans(warmup..total, &ledger.sent, &ledger.arrived);
    let ack = ledger.spans(warmup..total, &ledger.sent, &ledger.acked);
    let lag = ledger.spans(warmup..total, &ledger.due, &ledger.sent);
    let result = Latency {
        relay_p50: percentile(&relay, 0.50),
        relay_p99: percentile(&relay, 0.99),
        relay_max: percentile(&relay, 1.0),
        ack_p50: percentile(&ack, 0.50),
        ack_p99: percentile(&ack, 0.99),
        lag_p99: percentile(&lag, 0.99),
        lag_max: percentile(&lag, 1.0),
        extra_connections: ledger.extra_connections.load(Ordering::Relaxed),
        daemon_cpu_us,
        daemon_peak_kb: 0,
        disk,
    };
    let daemon_peak_kb = s.finish().await;
    Latency {
        daemon_peak_kb,
        ..result
    }
}

async fn run(quick: bool) {
    let probe = tempfile::tempdir().unwrap();
    println!(
        "state dirs: a fresh one per scenario under {} ({}); SQLite WAL, answered after fdatasync",
        std::env::temp_dir().display(),
        filesystem_of(probe.path())
    );
    drop(probe);

    let idle = Scenario::start(Relay::Daemon, 16, 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kb = status_kb(&idle.daemon.pid, "VmRSS:");
    let daemon_rss_before_kb = idle.daemon_rss_before_kb;
    let idle_peak_kb = idle.finish().await;
    println!(
        "daemon process RSS: {:.1} MB before Daemon::start, {:.1} MB idle with 16 routes and {CONNECTIONS} client connections",
        mb(daemon_rss_before_kb),
        mb(idle_rss_kb)
    );

    let reps = if quick { 1 } else { 3 };
    let warmup = if quick { 200 } else { 2_000 };
    let mut throughputs = Vec::new();
    let mut floors = Vec::new();
    println!(
        "\nthroughput: closed loop, {CONNECTIONS} connections, after {warmup} warm-up messages; {reps} run(s) each, daemon and floor alternating; the summary takes the median"
    );
    println!(
        "{:>7} {:>7} {:>9} {:>12} {:>12} {:>15} {:>18} {:>17}  relay CPU by thread",
        "relay",
        "routes",
        "messages",
        "accepted/s",
        "delivered/s",
        "relay CPU/msg",
        "gen+sink CPU/msg",
        "relay peak RSS"
    );
    for (routes, messages) in [(1u64, 20_000u64), (16, 40_000)] {
        let messages = if quick { messages / 10 } else { messages };
        let (mut runs, mut floor_runs) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            for relay in [Relay::Daemon, Relay::Floor] {
                let t = throughput(relay, routes, warmup, messages).await;
                println!(
                    "{:>7} {routes:>7} {messages:>9} {:>12.0} {:>12.0} {:>12.1} us {:>15.1} us {:>14.1} MB  {}",
                    relay.arg(),
                    t.accepted_per_s,
                    t.delivered_per_s,
                    t.daemon_cpu_us,
                    t.bench_cpu_us,
                    mb(t.daemon_peak_kb),
                    t.by_thread()
                );
                match relay {
                    Relay::Daemon => runs.push(t),
                    Relay::Floor => floor_runs.push(t),
                }
            }
        }
        throughputs.push(Throughput::median_of(&runs));
        floors.push(Throughput::median_of(&floor_runs));
    }

    let seconds = if quick { 1 } else { 5 };
    let warmup = if quick { 100 } else { 500 };
    let mut latencies = Vec::new();
    println!(
        "\nlatency: open loop for {seconds}s after {warmup} warm-up messages; relay = webhook request sent until the sink got the post; ack = until the 200; lag = how late the generator sent; disk sync = the longest fdatasync of a 4 KiB probe file beside the state, every 20 ms meanwhile, and how many took over 10 ms"
    );
    println!(
        "{:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>15} {:>17} {:>17}",
        "rate/s",
        "routes",
        "relay p50",
        "relay p99",
        "relay max",
        "ack p50",
        "ack p99",
        "lag p99",
        "lag max",
        "+conns",
        "daemon CPU/msg",
        "daemon peak RSS",
        "disk sync max/>10ms"
    );
    for rate in [500u64, 2_000] {
        for routes in [1u64, 16] {
            let l = latency(routes, rate, warmup, rate * seconds).await;
            println!(
                "{rate:>7} {routes:>7} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?} {:>7} {:>12.1} us {:>14.1} MB {:>12.2?} / {}",
                l.relay_p50,
                l.relay_p99,
                l.relay_max,
                l.ack_p50,
                l.ack_p99,
                l.lag_p99,
                l.lag_max,
                l.extra_connections,
                l.daemon_cpu_us,
                mb(l.daemon_peak_kb),
                l.disk.longest,
                l.disk.over_10ms
            );
            latencies.push(l);
        }
    }

    let daemon_peak_kb = throughputs
        .iter()
        .map(|t| t.daemon_peak_kb)
        .chain(latencies.iter().map(|l| l.daemon_peak_kb))
        .fold(idle_peak_kb, u64::max);
    let (one, sixteen) = (&throughputs[0], &throughputs[1]);
    println!(
        "\n## Mattermost webhook relay ({}), {}\n",
        if quick { "quick run" } else { "full run" },
        today()
    );
    println!(
        "machine: {}; load average at the end: {}\n",
        machine(),
        load_average()
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| sustained messages/s delivered, 1 route | {:.0} (acknowledged {:.0}/s) | >= 5,000 |",
        one.delivered_per_s, one.accepted_per_s
    );
    println!(
        "| sustained messages/s delivered, 16 routes | {:.0} (acknowledged {:.0}/s) | >= 12,000 |",
        sixteen.delivered_per_s, sixteen.accepted_per_s
    );
    for (routes, (daemon, floor)) in [1, 16].into_iter().zip(throughputs.iter().zip(&floors)) {
        println!(
            "| floor, {routes} route{}: the same HTTP server and adapter without the core, messages/s (daemon / floor) | {:.0} ({:.0}%) | - |",
            if routes == 1 { "" } else { "s" },
            floor.delivered_per_s,
            100.0 * daemon.delivered_per_s / floor.delivered_per_s
        );
    }
    for (index, l) in latencies.iter().enumerate() {
        let (rate, routes) = ([500, 2_000][index / 2], [1, 16][index % 2]);
        let plural = if routes == 1 { "" } else { "s" };
        println!(
            "| latency p50 / p99 / max at {rate}/s, {routes} route{plural}: sent -> at the sink | {} / {} / {} | {} |",
            ms(l.relay_p50),
            ms(l.relay_p99),
            ms(l.relay_max),
            if rate == 500 { "p99 < 5 ms" } else { "-" }
        );
        println!(
            "| latency p50 / p99 at {rate}/s, {routes} route{plural}: sent -> acknowledged | {} / {} | - |",
            ms(l.ack_p50),
            ms(l.ack_p99),
        );
        println!(
            "| meanwhile, the disk: longest sync of a 4 KiB probe / syncs over 10 ms | {} / {} | - |",
            ms(l.disk.longest),
            l.disk.over_10ms
        );
    }
    for (routes, (t, floor)) in [1, 16].into_iter().zip(throughputs.iter().zip(&floors)) {
        println!(
            "| CPU time per message at full load, {routes} route{}: daemon (generator + sink) [floor] | {:.0} us ({:.0} us) [{:.0} us] | - |",
            if routes == 1 { "" } else { "s" },
            t.daemon_cpu_us,
            t.bench_cpu_us,
            floor.daemon_cpu_us
        );
    }
    println!(
        "| peak RSS of the daemon process (before Daemon::start: {:.1} MB) | {:.1} MB | < 30 MB |",
        mb(daemon_rss_before_kb),
        mb(daemon_peak_kb)
    );
    println!(
        "\nEvery message was acknowledged only once its commit was on disk (WAL, fdatasync), reached the sink exactly once on its channel, and is in the store with its outbox row done. The daemon shares the 2 cores with the generator and the sink."
    );
}

/// `--only daemon|floor ROUTES MESSAGES`: one throughput scenario and nothing else,
/// to profile or to compare two builds run after run; `--only latency ROUTES RATE`:
/// one open-loop latency scenario of 5 s.
async fn only(args: &[String]) {
    if let [mode, in_flight, routes, count, ..] = args
        && mode == "closed"
    {
        let (in_flight, routes, count) = (
            in_flight.parse().unwrap(),
            routes.parse().unwrap(),
            count.parse().unwrap(),
        );
        let probe = DiskProbe::start(&probe_dir(&std::env::temp_dir()));
        let t = throughput_with(Relay::Daemon, routes, 500, count, in_flight).await;
        let disk = probe.finish();
        println!(
            "closed {in_flight} in flight, {routes} routes, {count}: delivered {:.0}/s, acknowledged {:.0}/s, relay p50 {} p99 {}, ack p99 {}, relay CPU {:.1} us/msg ({}); disk sync max {}, {} over 10 ms",
            t.delivered_per_s,
            t.accepted_per_s,
            ms(t.relay_p50),
            ms(t.relay_p99),
            ms(t.ack_p99),
            t.daemon_cpu_us,
            t.by_thread(),
            ms(disk.longest),
            disk.over_10ms
        );
        return;
    }
    let [relay, routes, count, ..] = args else {
        panic!(
            "usage: --only daemon|floor ROUTES MESSAGES, --only latency ROUTES RATE, or --only closed IN_FLIGHT ROUTES MESSAGES"
        );
    };
    let (routes, count) = (routes.parse().unwrap(), count.parse().unwrap());
    if relay == "latency" {
        let l = latency(routes, count, 500, count * 5).await;
        println!(
            "latency {routes} routes at {count}/s: relay p50 {} p99 {} max {}; ack p50 {} p99 {}; lag p99 {}; disk sync max {}, {} over 10 ms",
            ms(l.relay_p50),
            ms(l.relay_p99),
            ms(l.relay_max),
            ms(l.ack_p50),
            ms(l.ack_p99),
            ms(l.lag_p99),
            ms(l.disk.longest),
            l.disk.over_10ms
        );
        return;
    }
    let relay = if relay == Relay::Floor.arg() {
        Relay::Floor
    } else {
        Relay::Daemon
    };
    let t = throughput(relay, routes, 2_000, count).await;
    println!(
        "{} {routes} routes {count}: delivered {:.0}/s, acknowledged {:.0}/s, relay CPU {:.1} us/msg ({}), gen+sink {:.1} us/msg, peak RSS {:.1} MB",
        relay.arg(),
        t.delivered_per_s,
        t.accepted_per_s,
        t.daemon_cpu_us,
        t.by_thread(),
        t.bench_cpu_us,
        mb(t.daemon_peak_kb)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--daemon-child") {
        return daemon_child(&args[at + 1..]);
    }
    LazyLock::force(&EPOCH);
    // The generator and the sink share one thread: the leaner they are, the more of
    // the two cores goes to the daemon, as it would with Mattermost on another machine.
    // (On a 2-worker runtime they cost ~6 us more per message and the daemon relayed
    // ~15% less.)
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(at) = args.iter().position(|arg| arg == "--only") {
        return runtime.block_on(only(&args[at + 1..]));
    }
    let quick = args.iter().any(|arg| arg == "--quick");
    println!(
        "switchboard Mattermost webhook relay benchmark ({})",
        if quick { "quick" } else { "full" }
    );
    print_machine();
    runtime.block_on(run(quick));
}
