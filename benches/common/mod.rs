//! Helpers the benchmarks share: the machine they ran on and how busy it was, process
//! memory and CPU time, medians, dates.

// Each benchmark uses a subset.
#![allow(dead_code)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// A `kB` field (e.g. `VmRSS:`, `VmHWM:`) of `/proc/PID/status`; `pid` may be `self`.
pub fn status_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// `N cores, CPU model`, for the figures' caption.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map(|model| model.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// utime + stime of a process (all its threads, live or exited), from /proc.
pub fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|close| stat[close + 1..].split_whitespace().collect())
        .unwrap_or_default();
    let field = |index: usize| -> u64 {
        fields
            .get(index)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of the line; the remainder starts at field 3.
    field(11) + field(12)
}

/// CPU ticks of each thread of process `pid`, summed by thread name.
pub fn thread_ticks(pid: &str) -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        // The main thread is named after the binary; the daemon runs its async tasks there.
        let name = if tid == pid {
            "main".to_owned()
        } else {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        *by_name.entry(name).or_default() += cpu_ticks(&format!("{pid}/task/{tid}"));
    }
    by_name
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The file system type and mount point holding `path`, from /proc/self/mounts.
pub fn filesystem_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount)
                .then(|| (mount.len(), format!("{kind} on {mount}")))
        })
        .max()
        .map_or_else(|| "unknown file system".into(), |(_, found)| found)
}

/// Today's date (UTC), from the days since 1970 (Hinnant's civil_from_days).
pub fn today() -> String {
    let days = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400) as i64
        + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The caption line every benchmark starts with, and a warning when the machine is
/// already busy (figures are then pessimistic).
pub fn print_machine() {
    println!(
        "machine: {}; {}; load average at the start: {}",
        machine(),
        today(),
        load_average()
    );
    if load_average()
        .split(' ')
        .next()
        .and_then(|load| load.parse::<f64>().ok())
        .is_some_and(|load| load > 1.0)
    {
        println!(
            "warning: 1-minute load average above 1 (other processes, or a build that just ended): figures may be pessimistic"
        );
    }
}

/// The child side of `DaemonChild` for a daemon run from a config file, as `switchboard
/// run` does it (HTTP server off): `--daemon-child CONFIG LOG`. It starts the daemon,
/// waits until every network reports connected (at most `connect_within`), prints
/// `ready RSS_KB`, runs until stdin says `stop` or closes, shuts down, and prints
/// `stopped PEAK_RSS_KB`; if it cannot start, `failed: WHY`. Logs (`RUST_LOG`, else
/// the daemon's default filter) go to LOG.
pub fn daemon_child_from_config(args: &[String], connect_within: std::time::Duration) {
    use tokio::io::AsyncBufReadExt;
    let [config_path, log_path, ..] = args else {
        panic!("usage: --daemon-child CONFIG LOG");
    };
    let log = std::fs::File::create(log_path).expect("create the daemon log");
    let filter = switchboard::logging::filter_from_env();
    let subscriber = switchboard::logging::subscriber(filter, false, std::sync::Mutex::new(log));
    tracing::subscriber::set_global_default(subscriber).expect("the daemon's logger");
    let config = match switchboard::config::load(Path::new(config_path)) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{errors}");
            println!("failed: the config has errors");
            std::process::exit(1);
        }
    };
    let runtime = switchboard::daemon::runtime().expect("the daemon's runtime");
    runtime.block_on(async {
        let mut options =
            switchboard::DaemonOptions::from_config(config).expect("the adapters build");
        options.http_listen = None;
        let daemon = switchboard::Daemon::start(options)
            .await
            .expect("the daemon starts");
        let deadline = std::time::Instant::now() + connect_within;
        while !daemon.health().all_connected() {
            if std::time::Instant::now() > deadline {
                println!(
                    "failed: not all networks connected within {connect_within:?}: {:?}",
                    daemon.health().snapshot()
                );
                std::process::exit(1);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        println!("ready {}", status_kb("self", "VmRSS:"));
        let mut line = String::new();
        let _ = tokio::io::BufReader::new(tokio::io::stdin())
            .read_line(&mut line)
            .await;
        daemon.shutdown().await;
    });
    println!("stopped {}", status_kb("self", "VmHWM:"));
}

/// This benchmark's own binary re-run as the daemon (`--daemon-child ARGS...`). The
/// child prints `ready ...` once started, and `stopped PEAK_RSS_KB` after it read
/// `stop` on stdin (or stdin closed) and shut down.
pub struct DaemonChild {
    child: tokio::process::Child,
    pub pid: String,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl DaemonChild {
    pub fn spawn(args: &[&std::ffi::OsStr]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .arg("--daemon-child")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the daemon process");
        let pid = child.id().expect("daemon pid").to_string();
        let stdin = child.stdin.take().unwrap();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            pid,
            stdin,
            stdout,
        }
    }

    /// What follows `ready ` on the child's first line; else that line, or what
    /// happened instead.
    pub async fn ready(&mut self, limit: std::time::Duration) -> Result<String, String> {
        let line = next_line(&mut self.stdout, limit).await?;
        match line.strip_prefix("ready ") {
            Some(rest) => Ok(rest.to_owned()),
            None => Err(line),
        }
    }

    /// Tells the child to stop and waits for it (each step within `limit`); returns
    /// its peak RSS (kB), or why it did not stop cleanly.
    pub async fn stop(self, limit: std::time::Duration) -> Result<u64, String> {
        use tokio::io::AsyncWriteExt;
        let Self {
            mut child,
            mut stdin,
            mut stdout,
            ..
        } = self;
        let _ = stdin.write_all(b"stop\n").await;
        drop(stdin);
        let stopped = next_line(&mut stdout, limit)
            .await
            .unwrap_or_else(|what| what);
        let status = tokio::time::timeout(limit, child.wait()).await;
        let peak = stopped
            .strip_prefix("stopped ")
            .and_then(|kb| kb.parse().ok());
        match (status, peak) {
            (Ok(Ok(status)), Some(peak)) if status.success() => Ok(peak),
            (status, _) => Err(format!(
                "the daemon did not stop cleanly within {limit:?} ({stopped:?}, {status:?})"
            )),
        }
    }
}

/// The next line a child prints, or what happened instead within `limit`.
async fn next_line(
    stdout: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    limit: std::time::Duration,
) -> Result<String, String> {
    match tokio::time::timeout(limit, stdout.next_line()).await {
        Ok(Ok(Some(line))) => Ok(line),
        Ok(_) => Err("(the process exited)".into()),
        Err(_) => Err(format!("(nothing within {limit:?})")),
    }
}

/// Watches the disk while a scenario runs: a thread of its own overwrites 4 KiB of a
/// file beside the daemon's state and `fdatasync`s it every 20 ms, timing each sync.
/// A durable commit waits for the disk, so a shared disk's occasional long syncs decide
/// latency percentiles; this tells such a stall from a slower daemon in the same run.
/// (It adds 50 small syncs a second to the disk's load, a tenth of the daemon's at
/// 500 messages/s.)
pub struct DiskProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<std::time::Duration>>,
}

/// The longest sync a [`DiskProbe`] saw, and how many took over 10 ms.
pub struct DiskStalls {
    pub longest: std::time::Duration,
    pub over_10ms: usize,
}

impl DiskProbe {
    pub fn start(directory: &Path) -> Self {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let path = directory.join("disk-probe");
        let mut file = std::fs::File::create(&path).expect("create the disk probe's file");
        file.write_all(&[0; 4096]).unwrap();
        file.sync_all().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::os::unix::fs::FileExt;
            let mut syncs = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                file.write_all_at(&[syncs.len() as u8; 4096], 0).unwrap();
                let started = std::time::Instant::now();
                file.sync_data().unwrap();
                syncs.push(started.elapsed());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            syncs
        });
        Self { stop, thread }
    }

    pub fn finish(self) -> DiskStalls {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let syncs = self.thread.join().expect("the disk probe's thread");
        DiskStalls {
            longest: syncs.iter().copied().max().unwrap_or_default(),
            over_10ms: syncs
                .iter()
                .filter(|sync| **sync > std::time::Duration::from_millis(10))
                .count(),
        }
    }
}
