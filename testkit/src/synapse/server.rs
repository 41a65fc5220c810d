//! `Synapse`: one homeserver process with its own temp dir, port and SQLite database.

use super::venv::{ensure_synapse, tail};
use crate::free_port;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// First start creates the database schema (~4-8 s on a busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const SERVER_NAME: &str = "localhost";
const SHARED_SECRET: &str = "test-shared-secret";

#[derive(Debug, Clone, Default)]
pub struct SynapseOptions {
    /// An application service registration (YAML text, as a bridge prints it) that
    /// Synapse loads. Its `url` is where Synapse pushes transactions; its replies must
    /// carry Content-Length.
    pub appservice_yaml: Option<String>,
    /// Puts the temp dir, so the SQLite database, on /dev/shm (about 90 instead of 20
    /// messages a second); for benchmarks.
    pub database_on_shm: bool,
    /// Appended to homeserver.yaml as-is. A key repeated here wins (the YAML loader keeps
    /// the last), e.g. `"default_room_version: \"11\"\n"`.
    pub extra_yaml: String,
}

/// Synapse on 127.0.0.1, killed on drop. `stop` and `restart` keep the port and data.
pub struct Synapse {
    port: u16,
    venv: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Synapse {
    /// Installs Synapse if needed, writes its config and signing key into a new temp dir,
    /// starts it on a free port and waits until the client API answers.
    pub fn start(options: SynapseOptions) -> Self {
        let venv = ensure_synapse();
        let dir = if options.database_on_shm {
            tempfile::Builder::new()
                .prefix("synapse-")
                .tempdir_in("/dev/shm")
                .expect("temp dir on /dev/shm")
        } else {
            tempfile::Builder::new()
                .prefix("synapse-")
                .tempdir()
                .expect("temp dir")
        };
        let path = dir.path();
        std::fs::create_dir_all(path.join("data")).expect("create the Synapse data dir");
        let appservices = match &options.appservice_yaml {
            Some(yaml) => {
                std::fs::write(path.join("appservice.yaml"), yaml).expect("write appservice.yaml");
                format!("\n  - {}/appservice.yaml", path.display())
            }
            None => " []".to_owned(),
        };
        let port = free_port();
        let config = HOMESERVER_YAML
            .replace("@APPSERVICES@", &appservices)
            .replace("@DIR@", &path.display().to_string())
            .replace("@PORT@", &port.to_string())
            + &options.extra_yaml;
        let config_path = path.join("homeserver.yaml");
        std::fs::write(&config_path, config).expect("write homeserver.yaml");
        std::fs::write(
            path.join("log.yaml"),
            LOG_YAML.replace("@DIR@", &path.display().to_string()),
        )
        .expect("write log.yaml");
        // What `--generate-keys` would write, without a 2-4 s extra Python start.
        std::fs::write(path.join("localhost.signing.key"), signing_key())
            .expect("write the signing key");
        let mut server = Self {
            port,
            venv,
            config: config_path,
            child: None,
            dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("console.log"))
            .expect("open console.log");
        let child = Command::new(self.venv.join("bin/python"))
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&self.config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("console.log handle"))
            .stderr(console)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Synapse from {}: {e}; remove the venv to reinstall it",
                    self.venv.display()
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let url = format!("{}/_matrix/client/versions", self.url());
        let started = Instant::now();
        let child = self.child.as_mut().expect("Synapse was just spawned");
        let last = super::block_on(async {
            let http = reqwest::Client::new();
            let mut last = String::from("no attempt yet");
            while started.elapsed() < START_TIMEOUT {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("Synapse exited with {status} while starting"));
                }
                match http.get(&url).timeout(Duration::from_secs(5)).send().await {
                    Ok(response) if response.status().is_success() => return Ok(()),
                    Ok(response) => last = format!("GET {url} answered {}", response.status()),
                    Err(e) => last = format!("GET {url} failed: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(format!(
                "Synapse did not answer within {START_TIMEOUT:?}; last try: {last}"
            ))
        });
        if let Err(problem) = last {
            panic!(
                "{problem}\n--- Synapse log tail ---\n{}",
                tail(&self.log(), 60)
            );
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `localhost`: user ids are `@name:localhost`.
    pub fn server_name(&self) -> &str {
        SERVER_NAME
    }

    /// The temp dir holding the config, database, media and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Registers a (non-admin) user through the shared-secret admin API and returns its
    /// full user id, `@localpart:localhost`.
    pub fn register(&self, localpart: &str, password: &str) -> String {
        let url = format!("{}/_synapse/admin/v1/register", self.url());
        let result = super::block_on(async {
            let http = reqwest::Client::new();
            let nonce: Value = http
                .get(&url)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
                .map_err(|e| format!("GET {url} failed: {e}"))?
                .json()
                .await
                .map_err(|e| format!("GET {url}: no JSON: {e}"))?;
            let nonce = nonce["nonce"]
                .as_str()
                .ok_or_else(|| format!("GET {url}: no nonce in {nonce}"))?;
            let mac = registration_mac(nonce, localpart, password);
            let response = http
                .post(&url)
                .timeout(REQUEST_TIMEOUT)
                .json(&json!({
                    "nonce": nonce,
                    "username": localpart,
                    "password": password,
                    "admin": false,
                    "mac": mac,
                }))
                .send()
                .await
                .map_err(|e| format!("POST {url} failed: {e}"))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!("POST {url} answered {status}: {body}"));
            }
            let body: Value =
                serde_json::from_str(&body).map_err(|e| format!("POST {url}: {e}: {body}"))?;
            body["user_id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("POST {url}: no user_id in {body}"))
        });
        result.unwrap_or_else(|problem| panic!("registering {localpart} on Synapse: {problem}"))
    }

    /// Kills the server; its clients see connection errors until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same database (users, rooms, tokens).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The homeserver log (warnings and up) followed by the process's own output.
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("homeserver.log"), read("console.log"))
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `mac` of the shared-secret registration API: hex HMAC-SHA1 over
/// `nonce NUL user NUL password NUL notadmin`, keyed with the shared secret.
fn registration_mac(nonce: &str, user: &str, password: &str) -> String {
    let message = [nonce, user, password, "notadmin"].join("\0");
    let mut key = [0u8; 64];
    key[..SHARED_SECRET.len()].copy_from_slice(SHARED_SECRET.as_bytes());
    let pad = |byte: u8| key.map(|k| k ^ byte);
    let inner = Sha1::new()
        .chain_update(pad(0x36))
        .chain_update(message.as_bytes())
        .finalize();
    let outer = Sha1::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A signing key file as Synapse writes it: `ed25519 <key id> <unpadded base64 seed>`.
fn signing_key() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let seed: [u8; 32] = rand::random();
    let mut encoded = String::new();
    for chunk in seed.chunks(3) {
        let bits = chunk.iter().enumerate().fold(0u32, |bits, (i, byte)| {
            bits | (u32::from(*byte) << (16 - 8 * i))
        });
        for i in 0..=chunk.len() {
            encoded.push(char::from(ALPHABET[((bits >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    let id: String = (0..4)
        .map(|_| char::from(ALPHABET[rand::random_range(0..62)]))
        .collect();
    format!("ed25519 a_{id} {encoded}\n")
}

/// The verified reference config (loopback only, no outbound traffic, rate limits
/// lifted), plus `bcrypt_rounds: 4` so registering and logging in take milliseconds.
/// `scripts/demo` starts its Synapse from the same file.
const HOMESERVER_YAML: &str = include_str!("../../synapse/homeserver.yaml.in");

const LOG_YAML: &str = include_str!("../../synapse/log.yaml.in");
