//! Operating the daemon: private state files, plain logs, the health check command,
//! and warnings only for what needs a person.

mod common;

use common::{WAIT, eventually, fakes, route, start};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::logging::CapturedLog;
use switchboard_sdk::testing::FakeAdapter;
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, Capabilities, Outbound, SendError, SendReceipt,
};
use tokio_util::sync::CancellationToken;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The modes of the state dir and of the database and its WAL files.
fn state_modes(state: &Path) -> Vec<(String, u32)> {
    let db = state.join(switchboard::store::DATABASE_FILE);
    let mut modes = vec![("state dir".to_owned(), mode(state))];
    for suffix in ["", "-wal", "-shm"] {
        let mut file = db.as_os_str().to_owned();
        file.push(suffix);
        modes.push((format!("database{suffix}"), mode(Path::new(&file))));
    }
    modes
}

fn expected_private() -> Vec<(String, u32)> {
    vec![
        ("state dir".to_owned(), 0o700),
        ("database".to_owned(), 0o600),
        ("database-wal".to_owned(), 0o600),
        ("database-shm".to_owned(), 0o600),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_is_private_whatever_the_umask() {
    // The usual umask, under which the state used to be created world-readable.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let f = fakes(2, false);
    let daemon = start(
        &state,
        vec![route("r", &[("a", "#a"), ("b", "#b")])],
        vec![("a", f[0].clone()), ("b", f[1].clone())],
    )
    .await;
    f[0].receive("#a", "alice", "m1", "hello").await.unwrap();
    f[1].wait_for_sent(1, WAIT).await;
    assert_eq!(state_modes(&state), expected_private());
    daemon.shutdown().await;

    // State left readable by an older version (or a hand-made 0755 directory) is
    // tightened at the next start.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = state.join(switchboard::store::DATABASE_FILE);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let daemon = start(
        &state,
        vec![route("r", &[("a", "#a"), ("b", "#b")])],
        vec![("a", f[0].clone()), ("b", f[1].clone())],
    )
    .await;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&db), 0o600);
    daemon.shutdown().await;
}

/// The real binary on a network that cannot connect (nothing listens on its port).
struct Daemon {
    child: std::process::Child,
    dir: tempfile::TempDir,
    healthz: String,
}

impl Daemon {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let http = switchboard_testkit::free_port();
        let nobody = switchboard_testkit::free_port();
        let config = format!(
            "state_dir: {}\nhttp:\n  listen: 127.0.0.1:{http}\nnetworks:\n  east:\n    irc:\n      server: 127.0.0.1:{nobody}\n      tls: false\n      nick: switchboard\n  west:\n    irc:\n      server: 127.0.0.1:{nobody}\n      tls: false\n      nick: switchboard\nroutes:\n  - name: ab\n    rooms:\n      - east: \"#a\"\n      - west: \"#b\"\n",
            dir.path().join("state").display()
        );
        std::fs::write(dir.path().join("switchboard.yaml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("switchboard.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["run", "-c"])
            .arg(dir.path().join("switchboard.yaml"))
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start switchboard");
        Self {
            child,
            dir,
            healthz: format!("http://127.0.0.1:{http}/healthz"),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("switchboard.log")).unwrap_or_default()
    }

    /// Waits until /healthz answers at all; returns its status.
    fn wait_answering(&self) -> u16 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok((status, _)) =
                switchboard::health::probe(&self.healthz, Duration::from_secs(2))
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never answered on {}; log:\n{}",
                self.healthz,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthcheck(&self, extra: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["healthcheck", "--url", &self.healthz])
            .args(extra)
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_daemon_creates_only_private_files_and_logs_without_colour() {
    let daemon = Daemon::start();
    assert_eq!(daemon.wait_answering(), 503, "both networks are down");
    // Everything the process creates is private, including what libraries create
    // without asking for a mode (matrix-sdk's store in a network's data dir).
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap();
    let umask = status
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))
        .map(str::trim);
    assert_eq!(umask, Some("0077"), "{status}");
    assert_eq!(
        state_modes(&daemon.dir.path().join("state")),
        expected_private()
    );

    // Its log goes to a file, not a terminal: no colour codes, and each network's
    // state change is one line.
    let log = daemon.log();
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
    assert!(log.contains("network cannot connect; retrying"), "{log}");

    // The container health check: 503 (degraded) is unhealthy, unless a liveness
    // check is asked for.
    let strict = daemon.healthcheck(&[]);
    assert_eq!(strict.status.code(), Some(1), "{strict:?}");
    assert!(
        String::from_utf8_lossy(&strict.stdout).contains("HTTP 503"),
        "{strict:?}"
    );
    let live = daemon.healthcheck(&["--degraded-ok"]);
    assert_eq!(live.status.code(), Some(0), "{live:?}");
}

#[test]
fn the_health_check_fails_when_nothing_answers() {
    let port = switchboard_testkit::free_port();
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "healthcheck",
            "--url",
            &format!("http://127.0.0.1:{port}/healthz"),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

/// A network whose connection takes until `connect` fires (sends fail meanwhile,
/// as a real adapter's do before its session exists).
struct Connecting {
    inner: Arc<FakeAdapter>,
    connect: CancellationToken,
}

#[async_trait::async_trait]
impl Adapter for Connecting {
    fn protocol(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn run(
        &self,
        ctx: AdapterContext,
        cancel: CancellationToken,
    ) -> Result<(), AdapterError> {
        tokio::select! {
            () = self.connect.cancelled() => self.inner.run(ctx, cancel).await,
            () = cancel.cancelled() => Ok(()),
        }
    }

    async fn send(&self, message: &Outbound) -> Result<SendReceipt, SendError> {
        self.inner.send(message).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_send_to_a_network_still_connecting_is_not_a_warning() {
    // The daemon's tasks run on this thread, so its log goes to this subscriber.
    let log = CapturedLog::default();
    let _guard = tracing::subscriber::set_default(switchboard::logging::subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        false,
        log.clone(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(2, false);
    let connect = CancellationToken::new();
    let b = Arc::new(Connecting {
        inner: f[1].clone(),
        connect: connect.clone(),
    });
    let daemon = start(
        dir.path(),
        vec![route("r", &[("a", "#a"), ("b", "#b")])],
        vec![("a", f[0].clone()), ("b", b)],
    )
    .await;
    let metrics = daemon.http_addr().unwrap();
    f[0].receive("#a", "alice", "m1", "while b connects")
        .await
        .unwrap();
    eventually("a send to b failed while it was connecting", || async {
        common::http_get(metrics, "/metrics")
            .await
            .1
            .lines()
            .any(|line| {
                line.starts_with(switchboard::metrics::FAILED) && line.contains("network=\"b\"")
            })
    })
    .await;
    connect.cancel();
    f[1].wait_for_sent(1, WAIT).await;
    let text = log.text();
    assert!(
        !text.contains("delivery failed"),
        "expected while connecting, not a warning:\n{text}"
    );
    assert_eq!(
        text.matches("network connected").count(),
        2,
        "one line per network connecting:\n{text}"
    );

    // A send that fails while the network is connected is worth a warning.
    f[1].fail_next([SendError::Transient("HTTP 502".into())]);
    f[0].receive("#a", "alice", "m2", "while b is up")
        .await
        .unwrap();
    f[1].wait_for_sent(2, WAIT).await;
    let text = log.text();
    assert!(
        text.lines().any(|line| line.contains("WARN")
            && line.contains("delivery failed")
            && line.contains("HTTP 502")),
        "{text}"
    );
    daemon.shutdown().await;
}
