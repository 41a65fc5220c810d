//! Slack relay benchmark: the whole daemon between a real ngircd and the fake Slack of
//! the testkit in Socket Mode, one route linking `#bench` with the Slack channel
//! `general`, in both directions.
//!
//! `cargo bench --bench slack_relay` (add `-- --quick` for a short run; `-- --rounds R
//! --messages N` to choose).
//!
//! 1. Slack -> IRC: N messages posted in the fake by the user `bob`, back to back (the
//!    fake pushes each as an `events_api` envelope to the daemon's websocket), counted
//!    as they arrive at an IRC user `alice` in `#bench`.
//! 2. IRC -> Slack: alice says N lines back to back, counted as `chat.postMessage`
//!    calls of the fake and checked afterwards in `messages("general")` (the bot's).
//!
//! Each round starts everything afresh (fake Slack, ngircd, a daemon process with a new
//! state dir) and runs one warm-up message each way, then the two phases; the summary
//! takes the median of the rounds. Measured per phase: messages/s from the first post
//! (or line) to the last arrival; CPU time per message of the daemon (by thread), of
//! ngircd and of this process (the fake Slack and the IRC peer), from `/proc/PID`;
//! how busy the daemon was (CPU seconds per wall second, to tell a CPU bound from a
//! wait); and the daemon's peak RSS. CPU times come in 10 ms ticks.
//!
//! Shape: the daemon runs in a child process (this binary re-run with `--daemon-child
//! CONFIG LOG`), loading a YAML config through the library as `switchboard run` does,
//! on its runtime (`switchboard::daemon::runtime`), so that its CPU time is its own.
//! The fake Slack and alice run here on one thread (a current-thread runtime), leaving
//! as much of the two cores as possible to the daemon and ngircd. ngircd has its flood
//! penalties off, and the bridge's IRC flood control is lifted (`burst: 100,
//! interval_ms: 0`: no pacing at all), so that neither IRC side's pacing decides the
//! figure: what is measured is the relay. The state dir is a temp dir (`TMPDIR` moves
//! it, e.g. to tmpfs), on whatever file system the run prints.
//!
//! A benchmark, not a test: no timing is asserted, but every message must arrive
//! exactly once and in order, and nothing else may arrive (no echo of the bridge's own
//! posts), or it panics. Every wait is bounded.

mod common;

use common::{
    DaemonChild, TICKS_PER_SECOND, cpu_ticks, filesystem_of, load_average, machine, mb, median,
    print_machine, thread_ticks, today,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchboard_testkit::slack::{FakeSlack, SlackOptions};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const BOT: &str = "switchboard";
const CHANNEL: &str = "#bench";
const SLACK_CHANNEL: &str = "general";
const FILLER: &str = "the quick brown fox jumps over the lazy dog";
/// The daemon child's wait for both networks to report connected.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one phase may take before the run gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long nothing more may arrive after a phase.
const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------
// The daemon, in a child process.

fn daemon_config(state: &Path, irc_port: u16, slack: &FakeSlack) -> String {
    format!(
        "state_dir: {state}\n\
         delivery:\n  retry_initial: 50ms\n  retry_max: 1s\n  shutdown_deadline: 5s\n\
         networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{irc_port}\n      tls: false\n      nick: {BOT}\n\
         \x20     flood:\n        burst: 100\n        interval_ms: 0\n\
         \x20 slack:\n    slack:\n      api_url: {api}\n      bot_token: {bot}\n      app_token: {app}\n\
         routes:\n  - name: bench\n    rooms:\n      - irc: \"{CHANNEL}\"\n      - slack: {SLACK_CHANNEL}\n",
        state = state.display(),
        api = slack.api_url(),
        bot = slack.bot_token(),
        app = slack.app_token(),
    )
}

// ---------------------------------------------------------------------------
// One round's world, and CPU time.

/// PIDs of this process's children named `name` (`/proc/PID/comm`).
fn children_named(name: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|byte| byte.is_ascii_digit()))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let comm = stat
                .split_once(" (")
                .and_then(|(_, rest)| rest.rsplit_once(") "));
            comm.is_some_and(|(comm, rest)| {
                comm == name && rest.split_whitespace().nth(1) == Some(me.as_str())
            })
        })
        .collect()
}

/// CPU ticks of the processes whose time is reported.
struct Cpu {
    at: Instant,
    daemon: u64,
    daemon_threads: BTreeMap<String, u64>,
    ngircd: u64,
    bench: u64,
}

struct World {
    slack: FakeSlack,
    bob: String,
    alice: IrcPeer,
    daemon: DaemonChild,
    ngircd_pid: Option<String>,
    connected_rss_kb: u64,
    log: PathBuf,
    // Kept until the round ends: the daemon's config, log and state; ngircd.
    _dir: tempfile::TempDir,
    _irc: Ngircd,
}

impl World {
    async fn start() -> Self {
        let slack = FakeSlack::start(SlackOptions {
            channels: vec![SLACK_CHANNEL.into()],
            ..SlackOptions::default()
        })
        .await;
        let bob = slack.add_user("bob", "bob");
        let before = children_named("ngircd");
        let irc = Ngircd::start(NgircdOptions {
            name: "bench.test".into(),
            flood_throttling: false,
        });
        let ngircd_pid = children_named("ngircd")
            .into_iter()
            .find(|pid| !before.contains(pid));
        let alice = IrcPeer::connect(irc.port(), "alice", &[CHANNEL]).await;
        let dir = tempfile::Builder::new()
            .prefix("switchboard-bench-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("switchboard.yaml");
        let log = dir.path().join("switchboard.log");
        let state = dir.path().join("state");
        std::fs::write(&config, daemon_config(&state, irc.port(), &slack)).unwrap();
        let mut daemon = DaemonChild::spawn(&[config.as_os_str(), log.as_os_str()]);
        let ready = daemon
            .ready(CONNECT_TIMEOUT + Duration::from_secs(10))
            .await;
        let connected_rss_kb = ready
            .unwrap_or_else(|what| panic!("the daemon did not connect: {what}\n{}", tail(&log)))
            .parse()
            .unwrap_or(0);
        slack
            .wait_socket_connections(1, Duration::from_secs(10))
            .await;
        Self {
            slack,
            bob,
            alice,
            daemon,
            ngircd_pid,
            connected_rss_kb,
            log,
            _dir: dir,
            _irc: irc,
        }
    }

    fn cpu(&self) -> Cpu {
        Cpu {
            at: Instant::now(),
            daemon: cpu_ticks(&self.daemon.pid),
            daemon_threads: thread_ticks(&self.daemon.pid),
            ngircd: self.ngircd_pid.as_deref().map_or(0, cpu_ticks),
            bench: cpu_ticks("self"),
        }
    }

    /// Bob posts `count` messages back to back; alice must see each once, in order.
    async fn slack_to_irc(&mut self, tag: &str, count: usize) -> Phase {
        let before = self.cpu();
        for seq in 0..count {
            self.slack
                .post(&self.bob, SLACK_CHANNEL, &text(tag, seq))
                .await;
        }
        let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
        let mut next = 0;
        while next < count {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(line) = self.alice.next_message(left).await else {
                panic!(
                    "Slack -> IRC: {next} of {count} {tag} messages arrived within {PHASE_TIMEOUT:?}\n{}",
                    tail(&self.log)
                );
            };
            if !line.target.eq_ignore_ascii_case(CHANNEL) {
                continue; // server notices to alice herself
            }
            let seq = seq_of(line.text.split_once("> ").map_or("", |(_, text)| text), tag);
            assert!(
                line.from == BOT && seq == Some(next),
                "Slack -> IRC: expected {tag} {next} from {BOT}, got {line:?}"
            );
            next += 1;
        }
        let after = self.cpu();
        self.expect_quiet_irc(tag).await;
        Phase::new(count, &before, &after)
    }

    /// Alice says `count` lines back to back; each must be posted once, in order.
    async fn irc_to_slack(&mut self, tag: &str, count: usize) -> Phase {
        let target = self.slack.calls("chat.postMessage") + count;
        let before = self.cpu();
        for seq in 0..count {
            self.alice.say(CHANNEL, &text(tag, seq)).await;
        }
        let what = format!("{count} {tag} messages posted by the bridge");
        self.slack
            .wait_until(&what, PHASE_TIMEOUT, |slack| {
                slack.calls("chat.postMessage") >= target
            })
            .await;
        let after = self.cpu();
        tokio::time::sleep(QUIET).await;
        let bot = self.slack.bot_id();
        let posted: Vec<Option<usize>> = self
            .slack
            .messages(SLACK_CHANNEL)
            .iter()
            .filter(|message| message.bot_id.as_deref() == Some(bot.as_str()))
            .filter(|message| message.text.starts_with(&format!("{tag} ")))
            .map(|message| seq_of(&message.text, tag))
            .collect();
        let expected: Vec<Option<usize>> = (0..count).map(Some).collect();
        if posted != expected {
            let wrong = posted.iter().zip(&expected).position(|(a, b)| a != b);
            panic!(
                "IRC -> Slack: {} {tag} posts for {count} lines; first difference at {wrong:?}",
                posted.len()
            );
        }
        assert_eq!(
            self.slack.calls("chat.postMessage"),
            target,
            "IRC -> Slack: more chat.postMessage calls than lines"
        );
        // The fake delivers the bot's own posts back to it: none may reach IRC.
        self.expect_quiet_irc(tag).await;
        Phase::new(count, &before, &after)
    }

    async fn expect_quiet_irc(&mut self, tag: &str) {
        let extra = self.alice.drain(CHANNEL, QUIET).await;
        assert!(
            extra.is_empty(),
            "after the {tag} phase, {} more line(s) on IRC, first: {:?}",
            extra.len(),
            extra.first()
        );
    }

    /// Stops the daemon; returns its peak RSS (kB).
    async fn stop(self) -> u64 {
        let log = tail(&self.log);
        self.daemon
            .stop(Duration::from_secs(30))
            .await
            .unwrap_or_else(|why| panic!("{why}\n{log}"))
    }
}

fn text(tag: &str, seq: usize) -> String {
    format!("{tag} {seq} {FILLER}")
}

/// The sequence number of `TAG SEQ ...`.
fn seq_of(text: &str, tag: &str) -> Option<usize> {
    text.strip_prefix(tag)?
        .strip_prefix(' ')?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

fn ngircd_version() -> String {
    std::process::Command::new("/usr/sbin/ngircd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            // "ngIRCd 26.1-IDENT+IPv6+...": the name and the version.
            Some(text.lines().next()?.split('-').next()?.trim().to_owned())
        })
        .unwrap_or_else(|| "(version unknown)".into())
}

/// The end of the daemon's log, for a failure.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    format!("--- the daemon's log ends with ---\n{tail}")
}

// ---------------------------------------------------------------------------
// Figures.

/// One phase of one round.
struct Phase {
    per_s: f64,
    /// CPU time per message, microseconds.
    daemon_us: f64,
    daemon_threads: Vec<(String, f64)>,
    ngircd_us: f64,
    bench_us: f64,
    /// The daemon's CPU seconds per wall second, in percent of one core.
    daemon_busy: f64,
}

impl Phase {
    fn new(messages: usize, before: &Cpu, after: &Cpu) -> Self {
        let wall = (after.at - before.at).as_secs_f64();
        let us = |from: u64, to: u64| {
            to.saturating_sub(from) as f64 / TICKS_PER_SECOND * 1e6 / messages as f64
        };
        let daemon_threads = after
            .daemon_threads
            .iter()
            .map(|(name, ticks)| {
                let from = before.daemon_threads.get(name).copied().unwrap_or(0);
                (name.clone(), us(from, *ticks))
            })
            .filter(|(_, us)| *us > 0.0)
            .collect();
        let daemon_us = us(before.daemon, after.daemon);
        Self {
            per_s: messages as f64 / wall,
            daemon_us,
            daemon_threads,
            ngircd_us: us(before.ngircd, after.ngircd),
            bench_us: us(before.bench, after.bench),
            daemon_busy: daemon_us * messages as f64 / 1e6 / wall * 100.0,
        }
    }

    fn by_thread(&self) -> String {
        let threads: Vec<String> = self
            .daemon_threads
            .iter()
            .map(|(name, us)| format!("{name} {us:.0}"))
            .collect();
        threads.join(", ")
    }

    /// The phase whose messages/s is the median of `runs`.
    fn median_of(runs: &[Phase]) -> &Phase {
        let rate = median(runs.iter().map(|run| run.per_s).collect());
        runs.iter().find(|run| run.per_s == rate).unwrap()
    }
}

fn print_phase(round: usize, direction: &str, messages: usize, phase: &Phase) {
    println!(
        "{round:>5} {direction:<12} {messages:>8} {:>10.0} {:>12.0} us {:>11.0}% {:>11.0} us {:>12.0} us  {}",
        phase.per_s,
        phase.daemon_us,
        phase.daemon_busy,
        phase.ngircd_us,
        phase.bench_us,
        phase.by_thread()
    );
}

async fn run(rounds: usize, messages: usize, quick: bool) {
    let started = Instant::now();
    let probe = tempfile::tempdir().unwrap();
    println!(
        "{rounds} round(s), {messages} messages each way per round; daemon state dir under {} ({})",
        std::env::temp_dir().display(),
        filesystem_of(probe.path())
    );
    drop(probe);
    println!(
        "{}, flood penalties off; the bridge's IRC flood control lifted (burst 100, interval_ms 0); the fake Slack and alice on one thread of this process",
        ngircd_version()
    );
    println!(
        "\n{:>5} {:<12} {:>8} {:>10} {:>15} {:>12} {:>14} {:>15}  daemon CPU us/msg by thread",
        "round",
        "direction",
        "messages",
        "msgs/s",
        "daemon CPU/msg",
        "daemon busy",
        "ngircd CPU/msg",
        "fake+peer CPU/msg"
    );
    let (mut to_irc, mut to_slack, mut peaks, mut connected) = (vec![], vec![], vec![], vec![]);
    for round in 1..=rounds {
        let mut world = World::start().await;
        connected.push(world.connected_rss_kb);
        world.slack_to_irc("warm-s2i", 1).await;
        world.irc_to_slack("warm-i2s", 1).await;
        let phase = world.slack_to_irc("s2i", messages).await;
        print_phase(round, "Slack -> IRC", messages, &phase);
        to_irc.push(phase);
        let phase = world.irc_to_slack("i2s", messages).await;
        print_phase(round, "IRC -> Slack", messages, &phase);
        to_slack.push(phase);
        peaks.push(world.stop().await);
    }

    println!(
        "\n## Slack relay, Socket Mode, fake Slack ({}), {}\n",
        if quick { "quick run" } else { "full run" },
        today()
    );
    println!(
        "machine: {}; load average at the end: {}; {rounds} round(s) of {messages} messages each way, medians\n",
        machine(),
        load_average()
    );
    println!("| measure | Slack → IRC | IRC → Slack |");
    println!("|---|---:|---:|");
    let all = |runs: &[Phase]| {
        let rates: Vec<String> = runs.iter().map(|run| format!("{:.0}", run.per_s)).collect();
        rates.join(" ")
    };
    let (s2i, i2s) = (Phase::median_of(&to_irc), Phase::median_of(&to_slack));
    println!(
        "| messages/s, first send → last arrival (the rounds) | **{:.0}** ({}) | **{:.0}** ({}) |",
        s2i.per_s,
        all(&to_irc),
        i2s.per_s,
        all(&to_slack)
    );
    println!(
        "| daemon CPU per message; busy (% of a core) | {:.0} µs; {:.0}% | {:.0} µs; {:.0}% |",
        s2i.daemon_us, s2i.daemon_busy, i2s.daemon_us, i2s.daemon_busy
    );
    println!(
        "| daemon CPU per message by thread (µs) | {} | {} |",
        s2i.by_thread(),
        i2s.by_thread()
    );
    println!(
        "| CPU per message: ngircd / fake Slack + IRC peer (the bench process) | {:.0} µs / {:.0} µs | {:.0} µs / {:.0} µs |",
        s2i.ngircd_us, s2i.bench_us, i2s.ngircd_us, i2s.bench_us
    );
    let peak = peaks.iter().copied().max().unwrap_or(0);
    let connected = connected.iter().copied().max().unwrap_or(0);
    println!(
        "| daemon peak RSS, highest of the rounds (once connected) | {:.1} MB ({:.1} MB) | |",
        mb(peak),
        mb(connected)
    );
    println!(
        "\nbusy = the daemon's CPU seconds per wall second: well under 100% of a core means it was waiting, not computing (Slack -> IRC: Socket Mode envelopes are taken one at a time, each acknowledged once its commit is on disk)."
    );
    println!(
        "\nEvery message arrived exactly once and in order, and nothing else arrived. The daemon, ngircd, the fake Slack and the IRC peer share the machine's cores; the bridge's IRC pacing and ngircd's flood penalties were off."
    );
    println!("\ntotal time: {:.1} s", started.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--daemon-child") {
        return common::daemon_child_from_config(&args[at + 1..], CONNECT_TIMEOUT);
    }
    let quick = args.iter().any(|arg| arg == "--quick");
    let option = |name: &str, default: usize| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|at| args.get(at + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let rounds = option("--rounds", if quick { 3 } else { 5 });
    let messages = option("--messages", if quick { 500 } else { 2_000 });
    // The fake Slack and alice share one thread, so that the cores go to the daemon.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "switchboard Slack relay benchmark ({}): IRC (ngircd) <-> the daemon <-> the testkit's fake Slack, Socket Mode, one route",
        if quick { "quick" } else { "full" }
    );
    print_machine();
    runtime.block_on(run(rounds, messages, quick));
}
