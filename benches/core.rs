//! Core benchmark: routing + durable commit (SQLite WAL, group commit; answered
//! after the WAL's fdatasync, delivered once written) + per-room delivery to an
//! in-process adapter.
//!
//! `cargo bench --bench core` (add `-- --quick` for a short smoke run). Prints:
//! throughput with fan-out 1/3/10, accept-to-send latency at fixed offered rates
//! (open loop), and RSS of an idle daemon with 100 routes. A benchmark, not a test:
//! nothing here asserts a timing.

mod common;

use common::{machine, median, status_kb};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use switchboard::config::{DeliveryConfig, RouteConfig};
use switchboard::supervisor::RestartPolicy;
use switchboard::{Daemon, DaemonOptions};
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, Capabilities, ConnectionState, Inbound, NativeMsgId,
    NetworkId, Outbound, OutboundKind, RichText, RoomKey, SendError, SendReceipt, Sender,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Counts deliveries and notes when each arrived; keeps nothing else.
struct Sink {
    context: OnceLock<AdapterContext>,
    started: Instant,
    delivered: AtomicU64,
    arrivals: Mutex<Vec<(u64, u64)>>,
    record_arrivals: bool,
    target: AtomicU64,
    done: Notify,
}

impl Sink {
    fn new(record_arrivals: bool, started: Instant) -> Arc<Self> {
        Arc::new(Self {
            context: OnceLock::new(),
            started,
            delivered: AtomicU64::new(0),
            arrivals: Mutex::new(Vec::new()),
            record_arrivals,
            target: AtomicU64::new(u64::MAX),
            done: Notify::new(),
        })
    }
}

impl Sink {
    /// Waits until `expected` deliveries were made; panics after `timeout`.
    async fn wait_for(&self, expected: u64, timeout: Duration) {
        let notified = self.done.notified();
        if self.delivered.load(Ordering::Relaxed) < expected {
            tokio::time::timeout(timeout, notified)
                .await
                .expect("all delivered");
        }
    }
}

#[async_trait::async_trait]
impl Adapter for Sink {
    fn protocol(&self) -> &'static str {
        "bench"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn run(
        &self,
        ctx: AdapterContext,
        cancel: CancellationToken,
    ) -> Result<(), AdapterError> {
        ctx.health.report(ConnectionState::Connected);
        let _ = self.context.set(ctx);
        cancel.cancelled().await;
        Ok(())
    }
    async fn send(&self, message: &Outbound) -> Result<SendReceipt, SendError> {
        let now = self.started.elapsed().as_nanos() as u64;
        if self.record_arrivals
            && let OutboundKind::Message { content, .. } = &message.kind
            && let Ok(seq) = content.to_plain().parse::<u64>()
        {
            self.arrivals.lock().unwrap().push((seq, now));
        }
        let count = self.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        if count >= self.target.load(Ordering::Relaxed) {
            self.done.notify_one();
        }
        Ok(SendReceipt {
            native_ids: vec![NativeMsgId::new(format!("s{}", message.delivery_id))],
        })
    }
}

fn route(name: &str, rooms: Vec<(&str, String)>) -> RouteConfig {
    RouteConfig::linking(name, rooms)
}

struct Setup {
    daemon: Daemon,
    source: Arc<Sink>,
    sink: Arc<Sink>,
    _dir: tempfile::TempDir,
}

async fn setup(routes: Vec<RouteConfig>, record_arrivals: bool, started: Instant) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let source = Sink::new(false, started);
    let sink = Sink::new(record_arrivals, started);
    let daemon = Daemon::start(DaemonOptions {
        state_dir: dir.path().to_owned(),
        http_listen: None,
        delivery: DeliveryConfig {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            shutdown_deadline: Duration::from_secs(5),
            ..DeliveryConfig::default()
        },
        store: Default::default(),
        routes,
        adapters: vec![
            (NetworkId::new("src"), source.clone() as Arc<dyn Adapter>),
            (NetworkId::new("dst"), sink.clone() as Arc<dyn Adapter>),
        ],
        restart: RestartPolicy::default(),
    })
    .await
    .unwrap();
    while source.context.get().is_none() || sink.context.get().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Setup {
        daemon,
        source,
        sink,
        _dir: dir,
    }
}

fn event(seq: u64) -> Inbound {
    Inbound::message(
        RoomKey::new("src", "#origin"),
        Sender::user("alice", "alice"),
        Some(NativeMsgId::new(format!("m{seq}"))),
        RichText::plain(seq.to_string()),
    )
}

fn fanout_routes(fanout: usize) -> Vec<RouteConfig> {
    let mut rooms = vec![("src", "#origin".to_owned())];
    rooms.extend((0..fanout).map(|i| ("dst", format!("#d{i}"))));
    vec![route("bench", rooms)]
}

/// Events/s from the first submit until every copy reached the sink.
async fn throughput(fanout: usize, events: u64, submitters: u64) -> f64 {
    let started = Instant::now();
    let s = setup(fanout_routes(fanout), false, started).await;
    s.sink
        .target
        .store(events * fanout as u64, Ordering::Relaxed);
    let ctx = s.source.context.get().unwrap().clone();
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..submitters {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut seq = worker;
            while seq < events {
                ctx.inbound.submit(event(seq)).await.unwrap();
                seq += submitters;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    s.sink
        .wait_for(events * fanout as u64, Duration::from_secs(300))
        .await;
    let elapsed = begin.elapsed();
    s.daemon.shutdown().await;
    events as f64 / elapsed.as_secs_f64()
}

struct Latency {
    accept_p50: Duration,
    accept_p99: Duration,
    send_p50: Duration,
    send_p99: Duration,
    send_max: Duration,
}

/// Open loop: event i is submitted at start + i/rate, whatever happened before.
async fn latency(rate: u64, seconds: u64, fanout: usize) -> Latency {
    let started = Instant::now();
    let s = setup(fanout_routes(fanout), true, started).await;
    let events = rate * seconds;
    s.sink
        .target
        .store(events * fanout as u64, Ordering::Relaxed);
    let ctx = s.source.context.get().unwrap().clone();
    let submitted_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
    let accept: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::with_capacity(events as usize)));
    let begin = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(events as usize);
    for seq in 0..events {
        tokio::time::sleep_until(begin + Duration::from_nanos(seq * 1_000_000_000 / rate)).await;
        let (ctx, submitted_at, accept) = (ctx.clone(), submitted_at.clone(), accept.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = started.elapsed().as_nanos() as u64;
            submitted_at[seq as usize].store(t0, Ordering::Relaxed);
            ctx.inbound.submit(event(seq)).await.unwrap();
            accept
                .lock()
                .unwrap()
                .push(started.elapsed().as_nanos() as u64 - t0);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    s.sink
        .wait_for(events * fanout as u64, Duration::from_secs(120))
        .await;
    let mut sends: Vec<u64> = s
        .sink
        .arrivals
        .lock()
        .unwrap()
        .iter()
        .map(|(seq, at)| at.saturating_sub(submitted_at[*seq as usize].load(Ordering::Relaxed)))
        .collect();
    let mut accepts = accept.lock().unwrap().clone();
    s.daemon.shutdown().await;
    sends.sort_unstable();
    accepts.sort_unstable();
    let pct = |v: &[u64], p: f64| Duration::from_nanos(v[((v.len() as f64 - 1.0) * p) as usize]);
    Latency {
        accept_p50: pct(&accepts, 0.50),
        accept_p99: pct(&accepts, 0.99),
        send_p50: pct(&sends, 0.50),
        send_p99: pct(&sends, 0.99),
        send_max: Duration::from_nanos(*sends.last().unwrap()),
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "switchboard core benchmark ({})",
        if quick { "quick" } else { "full" }
    );
    println!("machine: {}", machine());
    runtime.block_on(async {
        // Idle RSS first, while the process is fresh.
        let base = status_kb("self", "VmRSS:");
        let started = Instant::now();
        let routes = (0..100)
            .map(|i| route(&format!("r{i}"), vec![("src", format!("#s{i}")), ("dst", format!("#d{i}"))]))
            .collect();
        let idle = setup(routes, false, started).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = status_kb("self", "VmRSS:");
        println!(
            "idle, 100 routes (200 rooms, 200 delivery workers): RSS {:.1} MB (process before the daemon started: {:.1} MB)",
            rss as f64 / 1024.0,
            base as f64 / 1024.0
        );
        idle.daemon.shutdown().await;

        let (events, reps) = if quick { (2_000, 1) } else { (20_000, 3) };
        println!("\nthroughput: {events} events, median of {reps} runs, durable (WAL, answered after fdatasync)");
        println!("{:>8} {:>12} {:>16}", "fan-out", "submitters", "events/s");
        for fanout in [1usize, 3, 10] {
            for submitters in [1u64, 64] {
                let mut runs = Vec::new();
                for _ in 0..reps {
                    runs.push(throughput(fanout, events, submitters).await);
                }
                println!("{fanout:>8} {submitters:>12} {:>16.0}", median(runs));
            }
        }

        let seconds = if quick { 1 } else { 5 };
        println!("\nlatency, fan-out 3, open loop for {seconds}s (accept = submit until durably committed; send = submit until the adapter's send)");
        println!("{:>8} {:>12} {:>12} {:>12} {:>12} {:>12}", "rate/s", "accept p50", "accept p99", "send p50", "send p99", "send max");
        for rate in [500u64, 2_000] {
            let l = latency(rate, seconds, 3).await;
            println!(
                "{rate:>8} {:>12.2?} {:>12.2?} {:>12.2?} {:>12.2?} {:>12.2?}",
                l.accept_p50, l.accept_p99, l.send_p50, l.send_p99, l.send_max
            );
        }
        println!("\npeak RSS of the whole run: {:.1} MB", status_kb("self", "VmHWM:") as f64 / 1024.0);
    });
}
