//! The real `switchboard` binary as a child process, with its config, state dir and
//! log in a temp dir; and helpers to read its /healthz and /metrics.

use super::{WAIT, http_get};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct BridgeProcess {
    pub dir: tempfile::TempDir,
    pub http: SocketAddr,
    child: Option<Child>,
}

/// `networks`: (name, port) of plain-text IRC servers; `routes`: the YAML list body.
pub fn irc_config(
    http: SocketAddr,
    state_dir: &std::path::Path,
    networks: &[(&str, u16)],
    routes: &str,
) -> String {
    let mut yaml = format!(
        "state_dir: {}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 1s\n  shutdown_deadline: 5s\nnetworks:\n",
        state_dir.display()
    );
    for (name, port) in networks {
        yaml.push_str(&format!(
            "  {name}:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n"
        ));
    }
    yaml.push_str("routes:\n");
    yaml.push_str(routes);
    yaml
}

impl BridgeProcess {
    /// Writes the config made by `config(http, state_dir)` and starts the binary.
    pub fn start(config: impl Fn(SocketAddr, &std::path::Path) -> String) -> Self {
        let mut bridge = Self::prepare(config);
        bridge.spawn();
        bridge
    }

    /// Writes the config as `start` does, without starting the binary yet.
    pub fn prepare(config: impl Fn(SocketAddr, &std::path::Path) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = switchboard_testkit::free_port();
        let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let state = dir.path().join("state");
        std::fs::write(dir.path().join("switchboard.yaml"), config(http, &state)).unwrap();
        Self {
            dir,
            http,
            child: None,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("switchboard.yaml")
    }

    pub fn spawn(&mut self) {
        self.spawn_command(Command::new(env!("CARGO_BIN_EXE_switchboard")));
    }

    /// Starts the binary with extra environment variables.
    pub fn spawn_with_env(&mut self, vars: &[(&str, &std::ffi::OsStr)]) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command.envs(vars.iter().copied());
        self.spawn_command(command);
    }

    /// Starts the binary with at most `limit` open files (soft and hard), as a
    /// container or a small `LimitNOFILE` would allow (util-linux's `prlimit`).
    pub fn spawn_with_open_file_limit(&mut self, limit: u32) {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={limit}:{limit}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_switchboard"));
        self.spawn_command(command);
    }

    fn spawn_command(&mut self, mut command: Command) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = command
            .args(["run", "-c"])
            .arg(self.config_path())
            .env("RUST_LOG", "info,switchboard=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start switchboard");
        self.child = Some(child);
    }

    /// The running binary's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("switchboard.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap()
    }

    /// Waits until /healthz says every network is connected.
    pub async fn wait_healthy(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Ok((200, _))) = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                try_get(self.http, "/healthz"),
            )
            .await
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bridge never became healthy; log:\n{}",
                self.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn metric(&self, line_prefix: &str) -> Option<f64> {
        metric(self.http, line_prefix).await
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    // http_get panics on connection errors; probing must not.
    tokio::net::TcpStream::connect(addr).await?;
    Ok(http_get(addr, path).await)
}

/// The value of the first /metrics line starting with `line_prefix`.
pub async fn metric(addr: SocketAddr, line_prefix: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics").await;
    body.lines()
        .find(|line| line.starts_with(line_prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
