//! Matrix relay benchmark: the whole daemon between a real ngircd and a real Synapse,
//! one route linking an IRC channel with a Matrix room, the Matrix side in relay-bot
//! mode (password login).
//!
//! `cargo bench --bench matrix_relay` (add `-- --quick` for a short smoke run).
//!
//! Setup: Synapse from the testkit (its SQLite database on /dev/shm), ngircd from the
//! testkit without flood penalties, an IRC user `alice` in `#bench`, a Matrix user `bob`
//! who created `#bench:localhost`. The daemon runs in a child process (this binary
//! re-run with `--daemon-child CONFIG LOG`), loading a YAML config through the library
//! as `switchboard run` does, on the same runtime (`switchboard::daemon::runtime`); its CPU time and peak RSS
//! are read from `/proc/PID`, as are Synapse's and ngircd's (children of this process).
//!
//! Phases, each with a tag and sequence numbers in the text:
//! 1. IRC -> Matrix: alice sends a burst of N lines back to back, then lines at a
//!    fixed rate; bob long-polls `/sync` and records when each message is seen.
//! 2. Matrix -> IRC: bob sends N messages one after another as fast as Synapse accepts
//!    them (each PUT awaited, so the room order is the send order), then at a fixed
//!    rate; alice records when each line arrives. The bridge's IRC flood control is
//!    lifted in these phases (`interval_ms: 0`), so what is measured is the relay.
//! 3. Matrix -> IRC with the default IRC flood control (burst 4, then one line a
//!    second) against a second ngircd that has its flood penalties on: the bound a
//!    real deployment sees.
//!
//! Prints delivered messages/s, latency (send -> seen), CPU time per message of the
//! bridge, Synapse and ngircd, which bound was hit, peak RSS, then a markdown summary.
//! A benchmark, not a test: no timing is asserted, but every message must arrive
//! exactly once and in order (and nothing else may arrive), or the run reports FAILED
//! and exits non-zero. Every wait is bounded.

mod common;

use common::{
    DaemonChild, TICKS_PER_SECOND, cpu_ticks, filesystem_of, load_average, machine, mb,
    print_machine, status_kb, today,
};
use futures::FutureExt;
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchboard_testkit::synapse::{MatrixPeer, Synapse, SynapseOptions, ensure_synapse};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const BOT: &str = "switchboard";
const BOT_ID: &str = "@switchboard:localhost";
const BOT_PASSWORD: &str = "bench-bot-password";
const PEER_PASSWORD: &str = "bench-peer-password";
const CHANNEL: &str = "#bench";
const ROOM_ALIAS: &str = "#bench:localhost";
const FILLER: &str = "the quick brown fox jumps over the lazy dog";
/// The daemon child's wait for both networks to report connected.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(90);
/// The IRC flood control the third phase runs with: the adapter's defaults.
const DEFAULT_FLOOD_BURST: usize = 4;
const DEFAULT_FLOOD_INTERVAL: Duration = Duration::from_secs(1);

struct Sizes {
    burst: usize,
    paced: usize,
    rate: u64,
    flood: usize,
}

// ---------------------------------------------------------------------------
// The daemon, in a child process.

/// The daemon config: `#bench` on the ngircd at `irc_port` linked with
/// `#bench:localhost`; `flood` is the IRC section's `flood:` lines, or empty for the
/// adapter's defaults.
fn daemon_config(state: &Path, irc_port: u16, homeserver: &str, flood: &[&str]) -> String {
    let mut lines = vec![
        format!("state_dir: {}", state.display()),
        "delivery:".into(),
        "  retry_initial: 50ms".into(),
        "  retry_max: 1s".into(),
        "  shutdown_deadline: 5s".into(),
        "networks:".into(),
        "  irc:".into(),
        "    irc:".into(),
        format!("      server: 127.0.0.1:{irc_port}"),
        "      tls: false".into(),
        format!("      nick: {BOT}"),
    ];
    lines.extend(flood.iter().map(|line| format!("      {line}")));
    lines.extend([
        "  mx:".into(),
        "    matrix:".into(),
        format!("      homeserver: {homeserver}"),
        format!("      user_id: \"{BOT_ID}\""),
        format!("      password: {BOT_PASSWORD}"),
        "routes:".into(),
        "  - name: bench".into(),
        "    rooms:".into(),
        format!("      - irc: \"{CHANNEL}\""),
        format!("      - mx: \"{ROOM_ALIAS}\""),
    ]);
    lines.join("\n") + "\n"
}

/// One daemon process with its config, state dir and log in a temp dir.
struct Bridge {
    daemon: DaemonChild,
    log: PathBuf,
    /// RSS once both networks were connected.
    connected_rss_kb: u64,
    /// From spawning the process until both networks were connected.
    started_in: Duration,
    dir: tempfile::TempDir,
}

impl Bridge {
    async fn start(config: impl FnOnce(&Path) -> String) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("switchboard-bench-")
            .tempdir()
            .unwrap();
        let config_path = dir.path().join("switchboard.yaml");
        std::fs::write(&config_path, config(&dir.path().join("state"))).unwrap();
        let log = dir.path().join("switchboard.log");
        let started = Instant::now();
        let mut daemon = DaemonChild::spawn(&[config_path.as_os_str(), log.as_os_str()]);
        let limit = CONNECT_TIMEOUT + Duration::from_secs(10);
        let rss = daemon.ready(limit).await.unwrap_or_else(|ready| {
            panic!(
                "the daemon did not get connected: {ready}\n--- its log ends with ---\n{}",
                tail(&std::fs::read_to_string(&log).unwrap_or_default(), 40)
            )
        });
        Self {
            daemon,
            log,
            connected_rss_kb: rss.parse().unwrap_or(0),
            started_in: started.elapsed(),
            dir,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the daemon; returns its peak RSS (kB).
    async fn stop(self) -> u64 {
        let log = self.log_text();
        self.daemon
            .stop(Duration::from_secs(30))
            .await
            .unwrap_or_else(|why| panic!("{why}; its log ends with:\n{}", tail(&log, 40)))
    }
}

// ---------------------------------------------------------------------------
// The other processes, and CPU time.

/// PIDs of this process's children whose command line contains `needle`.
fn children_matching(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            if !pid.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?;
            if ppid != me {
                return None;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(needle)
                .then_some(pid)
        })
        .collect()
}

/// Processes whose CPU time is reported.
struct Pids {
    daemon: String,
    synapse: Option<String>,
    ngircd: Option<String>,
}

#[derive(Clone, Copy)]
struct Cpu {
    at: Instant,
    daemon: u64,
    synapse: u64,
    ngircd: u64,
    bench: u64,
}

impl Pids {
    fn cpu(&self) -> Cpu {
        let ticks = |pid: &Option<String>| pid.as_deref().map_or(0, cpu_ticks);
        Cpu {
            at: Instant::now(),
            daemon: cpu_ticks(&self.daemon),
            synapse: ticks(&self.synapse),
            ngircd: ticks(&self.ngircd),
            bench: cpu_ticks("self"),
        }
    }
}

/// CPU seconds used between two readings, and the wall time between them.
#[derive(Clone, Copy, Default)]
struct CpuUse {
    wall: f64,
    daemon: f64,
    synapse: f64,
    ngircd: f64,
    bench: f64,
}

impl CpuUse {
    fn between(before: Cpu, after: Cpu) -> Self {
        let seconds = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_SECOND;
        Self {
            wall: (after.at - before.at).as_secs_f64(),
            daemon: seconds(before.daemon, after.daemon),
            synapse: seconds(before.synapse, after.synapse),
            ngircd: seconds(before.ngircd, after.ngircd),
            bench: seconds(before.bench, after.bench),
        }
    }

    /// Share of one core the process used, in percent.
    fn busy(&self, seconds: f64) -> f64 {
        seconds / self.wall * 100.0
    }
}

// ---------------------------------------------------------------------------
// Sending and collecting.

fn text(tag: &str, seq: usize) -> String {
    format!("{tag} {seq} {FILLER}")
}

/// The sequence number of a relayed line `<name> TAG SEQ ...`.
fn seq_of(relayed: &str, tag: &str) -> Option<usize> {
    let (_, text) = relayed.split_once("> ")?;
    text.strip_prefix(tag)?
        .strip_prefix(' ')?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// What a receiver saw, in arrival order.
#[derive(Default)]
struct Arrivals {
    got: Vec<(usize, Instant)>,
    /// Anything else that arrived where the copies go.
    unexpected: Vec<String>,
    /// Why collecting stopped early.
    failure: Option<String>,
}

fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

/// Bob's `/sync` until `count` messages tagged `tag` arrived in `room`.
async fn collect_on_matrix(
    bob: &mut MatrixPeer,
    room: &str,
    tag: &str,
    count: usize,
    timeout: Duration,
) -> Arrivals {
    let deadline = Instant::now() + timeout;
    let mut arrivals = Arrivals::default();
    while arrivals.got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            arrivals.failure = Some(format!("nothing more within {timeout:?}"));
            break;
        }
        // The peer panics when its wait runs out; that ends the phase, not the run.
        let next = AssertUnwindSafe(bob.collect_messages(room, 1, left))
            .catch_unwind()
            .await;
        let at = Instant::now();
        let events = match next {
            Ok(events) => events,
            Err(panic) => {
                arrivals.failure = Some(panic_text(panic));
                break;
            }
        };
        for event in events {
            let body = event["content"]["body"].as_str().unwrap_or_default();
            match seq_of(body, tag) {
                Some(seq) if event["sender"] == BOT_ID => arrivals.got.push((seq, at)),
                _ => arrivals.unexpected.push(format!(
                    "{} from {}: {body:?}",
                    event["type"].as_str().unwrap_or("?"),
                    event["sender"].as_str().unwrap_or("?")
                )),
            }
        }
    }
    arrivals
}

/// The IRC peer's lines in `CHANNEL` until `count` tagged `tag` arrived.
async fn collect_on_irc(
    peer: &mut IrcPeer,
    tag: &str,
    count: usize,
    timeout: Duration,
) -> Arrivals {
    let deadline = Instant::now() + timeout;
    let mut arrivals = Arrivals::default();
    while arrivals.got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(message) = peer.next_message(left).await else {
            arrivals.failure = Some(format!(
                "nothing more within {timeout:?} (or the connection closed)"
            ));
            break;
        };
        let at = Instant::now();
        if !message.target.eq_ignore_ascii_case(CHANNEL) {
            continue; // server notices to the peer itself
        }
        match seq_of(&message.text, tag) {
            Some(seq) if message.from == BOT => arrivals.got.push((seq, at)),
            _ => arrivals
                .unexpected
                .push(format!("from {}: {:?}", message.from, message.text)),
        }
    }
    arrivals
}

/// How the sender paces: everything at once, or `rate` messages a second.
#[derive(Clone, Copy)]
enum Pace {
    Burst,
    Rate(u64),
}

impl Pace {
    async fn wait_turn(self, begin: tokio::time::Instant, seq: usize) {
        if let Pace::Rate(rate) = self {
            let offset = Duration::from_nanos(seq as u64 * 1_000_000_000 / rate);
            tokio::time::sleep_until(begin + offset).await;
        }
    }
}

/// One measured phase.
struct Phase {
    label: String,
    messages: usize,
    /// First to last send.
    sending: Duration,
    /// First send to last arrival.
    relaying: Duration,
    /// Send -> first arrival of each message that arrived, sorted.
    latencies: Vec<Duration>,
    /// When each arrival came, in arrival order.
    arrived_at: Vec<Instant>,
    cpu: CpuUse,
    bound: String,
    problems: Vec<String>,
}

impl Phase {
    fn new(
        label: String,
        sent: &[Instant],
        arrivals: Arrivals,
        cpu: CpuUse,
        timeout: Duration,
    ) -> Self {
        let messages = sent.len();
        let mut problems = Vec::new();
        let seqs: Vec<usize> = arrivals.got.iter().map(|(seq, _)| *seq).collect();
        let mut copies = vec![0u32; messages];
        let mut first_arrival = vec![None; messages];
        for &(seq, at) in &arrivals.got {
            if seq < messages {
                copies[seq] += 1;
                first_arrival[seq].get_or_insert(at);
            }
        }
        let missing: Vec<usize> = (0..messages).filter(|&seq| copies[seq] == 0).collect();
        let repeated: Vec<usize> = (0..messages).filter(|&seq| copies[seq] > 1).collect();
        if let Some(failure) = &arrivals.failure {
            problems.push(format!(
                "{label}: only {} of {messages} messages arrived within {timeout:?}: {failure}",
                seqs.len()
            ));
        }
        if !missing.is_empty() {
            problems.push(format!(
                "{label}: {} missing (first: {:?})",
                missing.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        if !repeated.is_empty() {
            problems.push(format!(
                "{label}: {} arrived more than once (first: {:?})",
                repeated.len(),
                &repeated[..repeated.len().min(5)]
            ));
        }
        if let Some(position) = seqs.iter().enumerate().position(|(i, &seq)| i != seq) {
            problems.push(format!(
                "{label}: out of order: arrival {position} was message {}, expected {position}; \
                 arrivals {:?}..",
                seqs[position],
                &seqs[position.saturating_sub(2)..(position + 3).min(seqs.len())]
            ));
        }
        if !arrivals.unexpected.is_empty() {
            problems.push(format!(
                "{label}: {} unexpected message(s) where the copies go, first: {}",
                arrivals.unexpected.len(),
                arrivals.unexpected[0]
            ));
        }
        let mut latencies: Vec<Duration> = first_arrival
            .iter()
            .zip(sent)
            .filter_map(|(arrived, sent)| Some(arrived.as_ref()?.saturating_duration_since(*sent)))
            .collect();
        latencies.sort_unstable();
        let first_send = sent.first().copied().unwrap_or_else(Instant::now);
        let last_arrival = arrivals.got.iter().map(|(_, at)| *at).max();
        Self {
            label,
            messages,
            sending: sent
                .last()
                .map_or(Duration::ZERO, |last| last.duration_since(first_send)),
            relaying: last_arrival.map_or(Duration::ZERO, |last| last.duration_since(first_send)),
            latencies,
            arrived_at: arrivals.got.iter().map(|(_, at)| *at).collect(),
            cpu,
            bound: String::new(),
            problems,
        }
    }

    fn delivered_per_s(&self) -> f64 {
        self.latencies.len() as f64 / self.relaying.as_secs_f64().max(1e-9)
    }

    fn offered_per_s(&self) -> f64 {
        self.messages as f64 / self.sending.as_secs_f64().max(1e-9)
    }

    /// Arrivals per second after the first `burst`, and the median gap between them.
    fn after_burst(&self, burst: usize) -> (f64, Duration) {
        let rest = self
            .arrived_at
            .get(burst.saturating_sub(1)..)
            .unwrap_or_default();
        let (Some(first), Some(last)) = (rest.first(), rest.last()) else {
            return (0.0, Duration::ZERO);
        };
        let mut gaps: Vec<Duration> = rest
            .windows(2)
            .map(|pair| pair[1].saturating_duration_since(pair[0]))
            .collect();
        gaps.sort_unstable();
        let span = last.saturating_duration_since(*first).as_secs_f64();
        (
            (rest.len() - 1) as f64 / span.max(1e-9),
            percentile(&gaps, 0.5),
        )
    }

    fn latency(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    /// CPU microseconds per message of one process.
    fn per_message(&self, seconds: f64) -> f64 {
        seconds * 1e6 / self.messages as f64
    }

    /// Which limit the phase ran into, from the send pace and how busy each process was.
    fn explain(&mut self, pace: Pace, flood_control: bool) {
        let cpu = self.cpu;
        let busy = format!(
            "Synapse busy {:.0}% of a core, bridge {:.0}%, ngircd {:.0}%, the peers (this process) {:.0}%",
            cpu.busy(cpu.synapse),
            cpu.busy(cpu.daemon),
            cpu.busy(cpu.ngircd),
            cpu.busy(cpu.bench)
        );
        self.bound = if flood_control {
            let (rate, gap) = self.after_burst(DEFAULT_FLOOD_BURST);
            format!(
                "the bridge's own IRC flood control (burst {DEFAULT_FLOOD_BURST}, then one line every {DEFAULT_FLOOD_INTERVAL:?}): \
                 after the first {DEFAULT_FLOOD_BURST}, {rate:.2} lines/s (gap p50 {}) while the sender offered {:.0}/s; {busy}",
                secs(gap),
                self.offered_per_s()
            )
        } else if let Pace::Rate(rate) = pace {
            format!("the offered load ({rate}/s, below capacity): latency unloaded; {busy}")
        } else if self.sending.as_secs_f64() > 0.8 * self.relaying.as_secs_f64() {
            format!(
                "the sender: Synapse accepted the Matrix peer's sends (one PUT at a time) at {:.0}/s and the bridge kept up; {busy}",
                self.offered_per_s()
            )
        } else if cpu.busy(cpu.synapse) >= 75.0 {
            format!("Synapse (one Python process): {busy}")
        } else if cpu.busy(cpu.daemon) >= 75.0 {
            format!("the bridge's CPU: {busy}")
        } else {
            format!(
                "round trips: the bridge sends one message at a time per room, in order, each waiting for Synapse's answer; no process saturated ({busy})"
            )
        };
    }
}

struct World {
    synapse: Synapse,
    alice: IrcPeer,
    bob: MatrixPeer,
    room: String,
    pids: Pids,
}

impl World {
    async fn irc_to_matrix(&mut self, tag: &str, count: usize, pace: Pace) -> Phase {
        let timeout = phase_timeout(count, pace);
        let before = self.pids.cpu();
        let (alice, bob, room) = (&mut self.alice, &mut self.bob, self.room.as_str());
        let send = async {
            let mut sent = Vec::with_capacity(count);
            let begin = tokio::time::Instant::now();
            for seq in 0..count {
                pace.wait_turn(begin, seq).await;
                sent.push(Instant::now());
                alice.say(CHANNEL, &text(tag, seq)).await;
            }
            sent
        };
        let (sent, arrivals) =
            tokio::join!(send, collect_on_matrix(bob, room, tag, count, timeout));
        let cpu = CpuUse::between(before, self.pids.cpu());
        let label = format!("IRC -> Matrix, {}", pace_label(count, pace));
        let mut phase = Phase::new(label, &sent, arrivals, cpu, timeout);
        phase.explain(pace, false);
        phase
    }

    async fn matrix_to_irc(&mut self, tag: &str, count: usize, pace: Pace) -> Phase {
        let timeout = phase_timeout(count, pace);
        let before = self.pids.cpu();
        let (alice, bob, room) = (&mut self.alice, &mut self.bob, self.room.as_str());
        let arrivals = collect_on_irc(alice, tag, count, timeout);
        let send = send_from_matrix(bob, room, tag, count, pace);
        let (sent, arrivals) = tokio::join!(send, arrivals);
        let cpu = CpuUse::between(before, self.pids.cpu());
        let label = format!("Matrix -> IRC, {}", pace_label(count, pace));
        let mut phase = Phase::new(label, &sent, arrivals, cpu, timeout);
        phase.explain(pace, false);
        phase
    }
}

async fn send_from_matrix(
    bob: &mut MatrixPeer,
    room: &str,
    tag: &str,
    count: usize,
    pace: Pace,
) -> Vec<Instant> {
    let mut sent = Vec::with_capacity(count);
    let begin = tokio::time::Instant::now();
    for seq in 0..count {
        pace.wait_turn(begin, seq).await;
        sent.push(Instant::now());
        bob.send_text(room, &text(tag, seq)).await;
    }
    sent
}

fn pace_label(count: usize, pace: Pace) -> String {
    match pace {
        Pace::Burst => format!("{count} back to back"),
        Pace::Rate(rate) => format!("{count} at {rate}/s"),
    }
}

fn phase_timeout(count: usize, pace: Pace) -> Duration {
    let sending = match pace {
        Pace::Burst => 0,
        Pace::Rate(rate) => count as u64 / rate,
    };
    Duration::from_secs(90 + sending)
}

// ---------------------------------------------------------------------------
// Reporting helpers.

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The installed Synapse's version, from its dist-info directory in the venv.
fn synapse_version() -> String {
    let lib = ensure_synapse().join("lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|python| std::fs::read_dir(python.path().join("site-packages")).ok())
        .flatten()
        .filter_map(Result::ok)
        .find_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            Some(
                name.strip_prefix("matrix_synapse-")?
                    .strip_suffix(".dist-info")?
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| "(version unknown)".into())
}

fn ngircd_version() -> String {
    ["/usr/sbin/ngircd", "ngircd"]
        .iter()
        .find_map(|binary| {
            let output = std::process::Command::new(binary)
                .arg("--version")
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            let first = text.lines().next()?.trim().to_owned();
            (!first.is_empty()).then_some(first)
        })
        .unwrap_or_else(|| "ngircd (version unknown)".into())
}

fn print_phase(phase: &Phase) {
    println!(
        "{:<34} {:>6} {:>10.0} {:>11.1} {:>9} {:>9} {:>9} {:>9.0} us {:>9.0} us {:>8.0} us",
        phase.label,
        phase.latencies.len(),
        phase.offered_per_s(),
        phase.delivered_per_s(),
        ms(phase.latency(0.5)),
        ms(phase.latency(0.99)),
        ms(phase.latency(1.0)),
        phase.per_message(phase.cpu.daemon),
        phase.per_message(phase.cpu.synapse),
        phase.per_message(phase.cpu.ngircd),
    );
    println!("    bound: {}", phase.bound);
}

// ---------------------------------------------------------------------------
// The run.

async fn run(sizes: Sizes, quick: bool) -> bool {
    let run_started = Instant::now();
    let synapse = Synapse::start(SynapseOptions {
        database_on_shm: true,
        ..SynapseOptions::default()
    });
    let synapse_started = run_started.elapsed();
    let synapse_pid =
        children_matching(&synapse.dir().join("homeserver.yaml").display().to_string())
            .into_iter()
            .next();
    synapse.register(BOT, BOT_PASSWORD);
    synapse.register("bob", PEER_PASSWORD);
    let mut bob = MatrixPeer::login(&synapse.url(), "bob", PEER_PASSWORD).await;
    let room = bob.create_room(Some("bench"), false).await;

    let ngircd_before = children_matching("ngircd");
    let irc = Ngircd::start(NgircdOptions {
        name: "bench.test".into(),
        flood_throttling: false,
    });
    let ngircd_pid = children_matching("ngircd")
        .into_iter()
        .find(|pid| !ngircd_before.contains(pid));
    let alice = IrcPeer::connect(irc.port(), "alice", &[CHANNEL]).await;

    let homeserver = synapse.url();
    let bridge = Bridge::start(|state| {
        daemon_config(
            state,
            irc.port(),
            &homeserver,
            &["flood:", "  burst: 1", "  interval_ms: 0 # no pacing"],
        )
    })
    .await;
    println!(
        "Synapse {} (SQLite on {}) ready in {}; {}, flood penalties off; bridge state dir on {}",
        synapse_version(),
        filesystem_of(synapse.dir()),
        secs(synapse_started),
        ngircd_version(),
        filesystem_of(bridge.dir.path()),
    );
    println!(
        "daemon process: both networks connected {} after it was spawned, RSS then {:.1} MB; its IRC flood control lifted (flood: interval_ms: 0) until the last phase",
        secs(bridge.started_in),
        mb(bridge.connected_rss_kb)
    );
    let mut world = World {
        synapse,
        alice,
        bob,
        room,
        pids: Pids {
            daemon: bridge.daemon.pid.clone(),
            synapse: synapse_pid,
            ngircd: ngircd_pid,
        },
    };
    if world.pids.synapse.is_none() {
        println!("warning: Synapse's process was not found: its CPU time reads as 0");
    }

    // Warm-up, one message each way: the first sends set up connections and state.
    let mut problems = Vec::new();
    let warm = world.irc_to_matrix("warmup", 1, Pace::Burst).await;
    problems.extend(warm.problems);
    let warm = world.matrix_to_irc("warmup", 1, Pace::Burst).await;
    problems.extend(warm.problems);
    if !problems.is_empty() {
        print_failure(&problems, &world, &bridge.log_text());
        return false;
    }

    println!(
        "\nlatency: IRC -> Matrix from the IRC write until bob's /sync returned the event; Matrix -> IRC from before bob's PUT until alice read the line"
    );
    println!(
        "CPU per message: utime+stime from /proc over the phase, divided by its messages (10 ms ticks); Synapse's includes serving both peers"
    );
    println!(
        "\n{:<34} {:>6} {:>10} {:>11} {:>9} {:>9} {:>9} {:>12} {:>12} {:>11}",
        "phase",
        "msgs",
        "offered/s",
        "delivered/s",
        "p50",
        "p99",
        "max",
        "bridge CPU",
        "Synapse CPU",
        "ngircd CPU"
    );
    let mut phases = Vec::new();
    let schedule = [
        (true, "i2m-burst", sizes.burst, Pace::Burst),
        (true, "i2m-paced", sizes.paced, Pace::Rate(sizes.rate)),
        (false, "m2i-burst", sizes.burst, Pace::Burst),
        (false, "m2i-paced", sizes.paced, Pace::Rate(sizes.rate)),
    ];
    for (to_matrix, tag, count, pace) in schedule {
        let phase = if to_matrix {
            world.irc_to_matrix(tag, count, pace).await
        } else {
            world.matrix_to_irc(tag, count, pace).await
        };
        print_phase(&phase);
        problems.extend(phase.problems.iter().cloned());
        phases.push(phase);
    }

    // Nothing more may arrive on either side: no late duplicates, no echoes.
    let (on_irc, on_matrix) = tokio::join!(
        world.alice.drain(CHANNEL, Duration::from_secs(1)),
        world.bob.drain(&world.room, Duration::from_secs(1))
    );
    if !on_irc.is_empty() {
        problems.push(format!(
            "{} extra line(s) on IRC after the phases, first: {:?}",
            on_irc.len(),
            on_irc[0]
        ));
    }
    let late: Vec<&Value> = on_matrix
        .iter()
        .filter(|event| event["type"] == "m.room.message")
        .collect();
    if !late.is_empty() {
        problems.push(format!(
            "{} extra message(s) in the Matrix room after the phases, first: {}",
            late.len(),
            late[0]
        ));
    }
    let daemon_peak_kb = status_kb(&bridge.daemon.pid, "VmHWM:");
    let synapse_peak_kb = world
        .pids
        .synapse
        .as_deref()
        .map_or(0, |pid| status_kb(pid, "VmHWM:"));
    let daemon_log = bridge.log_text();
    let connected_rss_kb = bridge.connected_rss_kb;
    let daemon_peak_kb = daemon_peak_kb.max(bridge.stop().await);

    // The default IRC flood control, against an ngircd with its flood penalties on.
    let ngircd_before = children_matching("ngircd");
    let flood_irc = Ngircd::start(NgircdOptions {
        name: "flood.test".into(),
        flood_throttling: true,
    });
    let flood_ngircd_pid = children_matching("ngircd")
        .into_iter()
        .find(|pid| !ngircd_before.contains(pid));
    let mut carol = IrcPeer::connect(flood_irc.port(), "carol", &[CHANNEL]).await;
    let flood_bridge =
        Bridge::start(|state| daemon_config(state, flood_irc.port(), &homeserver, &[])).await;
    let flood_pids = Pids {
        daemon: flood_bridge.daemon.pid.clone(),
        synapse: world.pids.synapse.clone(),
        ngircd: flood_ngircd_pid,
    };
    let timeout = Duration::from_secs(60) + DEFAULT_FLOOD_INTERVAL * sizes.flood as u32;
    let before = flood_pids.cpu();
    let (sent, arrivals) = tokio::join!(
        send_from_matrix(
            &mut world.bob,
            &world.room,
            "m2i-flood",
            sizes.flood,
            Pace::Burst
        ),
        collect_on_irc(&mut carol, "m2i-flood", sizes.flood, timeout)
    );
    let cpu = CpuUse::between(before, flood_pids.cpu());
    let mut flood = Phase::new(
        format!("Matrix -> IRC, {} default flood", sizes.flood),
        &sent,
        arrivals,
        cpu,
        timeout,
    );
    flood.explain(Pace::Burst, true);
    let more = carol.drain(CHANNEL, Duration::from_millis(500)).await;
    if !more.is_empty() {
        flood.problems.push(format!(
            "{} extra line(s) on IRC after the flood-control phase, first: {:?}",
            more.len(),
            more[0]
        ));
    }
    let flood_log = flood_bridge.log_text();
    if flood_log.contains("Excess Flood") {
        flood
            .problems
            .push("the bridge was disconnected by ngircd for flooding (Excess Flood)".into());
    }
    print_phase(&flood);
    problems.extend(flood.problems.iter().cloned());
    flood_bridge.stop().await;

    let ok = problems.is_empty();
    summary(&Summary {
        quick,
        sizes: &sizes,
        phases: &phases,
        flood: &flood,
        daemon_peak_kb,
        connected_rss_kb,
        synapse_peak_kb,
        ok,
    });
    if !ok {
        print_failure(&problems, &world, &daemon_log);
    }
    println!("\ntotal time: {}", secs(run_started.elapsed()));
    ok
}

struct Summary<'a> {
    quick: bool,
    sizes: &'a Sizes,
    phases: &'a [Phase],
    flood: &'a Phase,
    daemon_peak_kb: u64,
    connected_rss_kb: u64,
    synapse_peak_kb: u64,
    ok: bool,
}

fn summary(s: &Summary) {
    let [to_matrix, to_matrix_paced, to_irc, to_irc_paced] = s.phases else {
        return;
    };
    println!(
        "\n## Matrix relay ({}), {}\n",
        if s.quick { "quick run" } else { "full run" },
        today()
    );
    println!(
        "machine: {}; load average at the end: {}\n",
        machine(),
        load_average()
    );
    println!("| measure | result | bound |");
    println!("|---|---|---|");
    let row = |measure: String, result: String, bound: &str| {
        println!("| {measure} | {result} | {bound} |");
    };
    row(
        format!(
            "IRC → Matrix, {} lines back to back: delivered/s; sent → seen p50 / p99",
            s.sizes.burst
        ),
        format!(
            "{:.1}/s; {} / {}",
            to_matrix.delivered_per_s(),
            ms(to_matrix.latency(0.5)),
            ms(to_matrix.latency(0.99))
        ),
        short_bound(to_matrix),
    );
    row(
        format!("IRC → Matrix at {}/s: sent → seen p50 / p99", s.sizes.rate),
        format!(
            "{} / {}",
            ms(to_matrix_paced.latency(0.5)),
            ms(to_matrix_paced.latency(0.99))
        ),
        "offered load",
    );
    row(
        format!(
            "Matrix → IRC, {} sent as fast as Synapse accepts ({:.0}/s): delivered/s; p50 / p99",
            s.sizes.burst,
            to_irc.offered_per_s()
        ),
        format!(
            "{:.1}/s; {} / {}",
            to_irc.delivered_per_s(),
            ms(to_irc.latency(0.5)),
            ms(to_irc.latency(0.99))
        ),
        short_bound(to_irc),
    );
    row(
        format!("Matrix → IRC at {}/s: p50 / p99", s.sizes.rate),
        format!(
            "{} / {}",
            ms(to_irc_paced.latency(0.5)),
            ms(to_irc_paced.latency(0.99))
        ),
        "offered load",
    );
    row(
        format!(
            "Matrix → IRC, {} at once, default IRC flood control, ngircd penalties on: delivered/s overall; after the first {DEFAULT_FLOOD_BURST}",
            s.sizes.flood
        ),
        format!(
            "{:.2}/s; {:.2}/s",
            s.flood.delivered_per_s(),
            s.flood.after_burst(DEFAULT_FLOOD_BURST).0
        ),
        "the bridge's flood control (burst 4, 1 line/s)",
    );
    for (direction, phase) in [("IRC → Matrix", to_matrix), ("Matrix → IRC", to_irc)] {
        row(
            format!("CPU per message, {direction} back to back: bridge / Synapse / ngircd"),
            format!(
                "{:.0} µs / {:.0} µs / {:.0} µs",
                phase.per_message(phase.cpu.daemon),
                phase.per_message(phase.cpu.synapse),
                phase.per_message(phase.cpu.ngircd)
            ),
            "-",
        );
    }
    row(
        "peak RSS: bridge (once connected) / Synapse".into(),
        format!(
            "{:.1} MB ({:.1} MB) / {:.0} MB",
            mb(s.daemon_peak_kb),
            mb(s.connected_rss_kb),
            mb(s.synapse_peak_kb)
        ),
        "-",
    );
    println!(
        "\n{}",
        if s.ok {
            "Every message arrived exactly once and in order, and nothing else arrived. The bridge, Synapse, ngircd and both peers share the machine's cores."
        } else {
            "FAILED: see the problems below; the figures above are not valid."
        }
    );
}

fn short_bound(phase: &Phase) -> &'static str {
    if phase.bound.starts_with("the sender") {
        "Synapse accepting the sends"
    } else if phase.bound.starts_with("Synapse") {
        "Synapse's CPU"
    } else if phase.bound.starts_with("the bridge's CPU") {
        "the bridge's CPU"
    } else {
        "round trips to Synapse, one at a time"
    }
}

fn print_failure(problems: &[String], world: &World, daemon_log: &str) {
    println!("\nFAILED: {} problem(s):", problems.len());
    for problem in problems {
        println!("  - {problem}");
    }
    println!(
        "--- the daemon's log ends with ---\n{}\n--- Synapse's log ends with ---\n{}",
        tail(daemon_log, 30),
        tail(&world.synapse.log(), 20)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--daemon-child") {
        return common::daemon_child_from_config(&args[at + 1..], CONNECT_TIMEOUT);
    }
    let quick = args.iter().any(|arg| arg == "--quick");
    let sizes = if quick {
        Sizes {
            burst: 60,
            paced: 20,
            rate: 10,
            flood: 8,
        }
    } else {
        Sizes {
            burst: 300,
            paced: 50,
            rate: 10,
            flood: 12,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "switchboard Matrix relay benchmark ({}): IRC (ngircd) <-> the daemon <-> Matrix (Synapse), one route, relay-bot mode",
        if quick { "quick" } else { "full" }
    );
    print_machine();
    if !runtime.block_on(run(sizes, quick)) {
        std::process::exit(1);
    }
}
