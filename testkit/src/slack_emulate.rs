//! `SlackEmulator`: Slack's Web API as emulated by the npm package `emulate` 0.11.2
//! (vercel-labs/emulate), one Node.js process per emulator on a free loopback port,
//! seeded with a workspace, a bot, three people and a few channels; killed on drop.
//!
//! What emulate covers, and what it does not (no Events API pushes, no Socket Mode, no
//! 429s, any unknown token accepted), is in docs/testing-slack.md; the tests at the end
//! of this file pin both, so an upgrade that changes either fails here first. Whatever
//! emulate lacks is tested against the hand-written fake in `crate::slack`.
//!
//! The install (`npm install emulate@0.11.2` into a cache dir) is made once per machine
//! by `scripts/ensure-emulate`, which `SlackEmulator::start` runs when the install is
//! missing. Starting an emulator takes about 0.5-1 s (Node.js start and seeding).

use crate::free_port;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The pinned emulate version; `scripts/ensure-emulate` installs exactly this one.
pub const EMULATE_VERSION: &str = "0.11.2";
/// Overrides where emulate is installed (default
/// `${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/emulate-0.11.2`).
pub const DIR_ENV: &str = "SWITCHBOARD_EMULATE_DIR";
/// Written by `scripts/ensure-emulate` after a checked install; a dir without it is redone.
const MARKER: &str = ".switchboard-complete";
const ENTRY: &str = "node_modules/emulate/dist/index.js";

/// From spawning node to the first HTTP answer (normally 0.5-1 s).
const START_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `wait_for_message` polls before it fails.
const WAIT: Duration = Duration::from_secs(10);

/// The seeded workspace. emulate always names its team `T000000001`.
const TEAM_ID: &str = "T000000001";
const TEAM_NAME: &str = "Switchboard Test";
const TEAM_DOMAIN: &str = "switchboard-test";
const BOT_TOKEN: &str = "xoxb-switchboard-emulate";
const BOT_ID: &str = "B0SWBOT001";
const BOT_USER_ID: &str = "U0SWBOT001";
const BOT_NAME: &str = "switchboard";
const APP_ID: &str = "A0SWAPP001";
/// People in the seeded workspace, besides emulate's own `admin` (`U000000001`).
const PEOPLE: [(&str, &str); 3] = [
    ("alice", "Alice Liddell"),
    ("bob", "Bob Builder"),
    ("carol", "Carol Danvers"),
];
/// The token `messages` reads with: `admin`, a member of every seeded channel.
const INSPECTOR_USER: &str = "admin";
const WEBHOOK_LABEL: &str = "switchboard-webhook";

/// One emulate process serving Slack's Web API on `127.0.0.1:port`.
///
/// Seeded workspace (ids are fixed unless noted; emulate makes the others up at start,
/// look them up with `user_id` / `channel_id`):
///
/// * team `T000000001` "Switchboard Test" (domain `switchboard-test`);
/// * a Slack app `A0SWAPP001` whose bot is `B0SWBOT001`, bot user `U0SWBOT001` named
///   `switchboard`, with the bot token `bot_token()` (all of emulate's default scopes;
///   scopes are not enforced);
/// * people `admin` (`U000000001`, emulate's own), `alice`, `bob`, `carol`, each with a
///   user token `user_token(name)`;
/// * public channels `general` (`C000000001`), `random` (`C000000002`), `bridge`,
///   `offtopic`, and the private channel `secret`. Every person is a member of every
///   channel; the bot of none (join with `conversations.join`; emulate lets it post to
///   public channels anyway);
/// * an incoming webhook posting to `bridge` as the bot: `incoming_webhook_url()`.
pub struct SlackEmulator {
    port: u16,
    child: Child,
    http: reqwest::Client,
    users: BTreeMap<String, String>,
    channels: BTreeMap<String, String>,
    webhook_url: String,
    started_in: Duration,
    dir: tempfile::TempDir,
}

impl SlackEmulator {
    /// Installs emulate if needed (`scripts/ensure-emulate`), starts it on a free port
    /// with the seed above, waits until it answers HTTP and looks up the ids it made up.
    /// Panics with emulate's output when it does not come up within 30 s.
    pub async fn start() -> SlackEmulator {
        let install = tokio::task::spawn_blocking(ensure_emulate)
            .await
            .unwrap_or_else(|e| panic!("installing emulate failed: {e}"));
        let entry = install.join(ENTRY);
        let dir = tempfile::Builder::new()
            .prefix("slack-emulate-")
            .tempdir()
            .expect("temp dir for emulate");
        let seed = dir.path().join("seed.json");
        std::fs::write(&seed, seed_json().to_string()).expect("write emulate's seed.json");
        let http = crate::http_client();
        let started = Instant::now();
        // free_port only finds a port free right now: node may lose it to another
        // process before it binds, so a start that fails with EADDRINUSE is retried.
        let mut attempt = 1;
        let (port, child) = loop {
            let port = free_port();
            let mut child = spawn(&entry, &seed, port, dir.path());
            match wait_ready(&http, port, &mut child).await {
                Ok(()) => break (port, child),
                Err(problem) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = read_log(dir.path());
                    if attempt < 3 && log.contains("EADDRINUSE") {
                        attempt += 1;
                        continue;
                    }
                    panic!(
                        "emulate {EMULATE_VERSION} (slack) did not start on port {port}: \
                         {problem}\n--- emulate output ---\n{}",
                        tail(&log, 40)
                    );
                }
            }
        };
        let mut emulator = SlackEmulator {
            port,
            child,
            http,
            users: BTreeMap::new(),
            channels: BTreeMap::new(),
            webhook_url: String::new(),
            started_in: started.elapsed(),
            dir,
        };
        emulator.discover().await;
        emulator
    }

    /// Reads the ids emulate made up (people, channels, the webhook token).
    async fn discover(&mut self) {
        let inspector = self.user_token(INSPECTOR_USER);
        let users = self
            .call_ok(&inspector, "users.list", json!({"limit": 1000}))
            .await;
        for user in users["members"].as_array().into_iter().flatten() {
            if let (Some(name), Some(id)) = (user["name"].as_str(), user["id"].as_str()) {
                self.users.insert(name.to_owned(), id.to_owned());
            }
        }
        let channels = self
            .call_ok(
                &inspector,
                "conversations.list",
                json!({"types": "public_channel,private_channel", "limit": 1000}),
            )
            .await;
        for channel in channels["channels"].as_array().into_iter().flatten() {
            if let (Some(name), Some(id)) = (channel["name"].as_str(), channel["id"].as_str()) {
                self.channels.insert(name.to_owned(), id.to_owned());
            }
        }
        // The webhook's token is random and only shown on the inspector's Auth tab.
        let auth_page = self.inspector_page("auth").await;
        let path = auth_page
            .split("<tr>")
            .find(|row| row.contains(&format!("<td>{WEBHOOK_LABEL}</td>")))
            .and_then(|row| {
                row.split("<td>")
                    .find(|cell| cell.starts_with("/services/"))
            })
            .and_then(|cell| cell.split('<').next())
            .unwrap_or_else(|| {
                panic!("no incoming webhook `{WEBHOOK_LABEL}` on emulate's Auth tab:\n{auth_page}")
            });
        self.webhook_url = format!("{}{path}", self.url());
    }

    /// `http://127.0.0.1:PORT`: also the inspector (HTML; `/?tab=messages|channels|auth|events`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT/api/`: append a Web API method name (`chat.postMessage`).
    pub fn api_url(&self) -> String {
        format!("{}/api/", self.url())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bot token (`xoxb-…`) of the seeded app; `auth.test` says user `switchboard`.
    pub fn bot_token(&self) -> &str {
        BOT_TOKEN
    }

    /// The bot user's id, `U0SWBOT001` (what `auth.test` returns as `user_id`).
    pub fn bot_user_id(&self) -> &str {
        BOT_USER_ID
    }

    /// The bot's id, `B0SWBOT001` (`auth.test`'s `bot_id`).
    pub fn bot_id(&self) -> &str {
        BOT_ID
    }

    /// The bot user's name, `switchboard`.
    pub fn bot_name(&self) -> &str {
        BOT_NAME
    }

    /// The app's id, `A0SWAPP001`.
    pub fn app_id(&self) -> &str {
        APP_ID
    }

    /// `T000000001`.
    pub fn team_id(&self) -> &str {
        TEAM_ID
    }

    /// The names of the seeded people: `alice`, `bob`, `carol` (plus emulate's `admin`).
    pub fn people(&self) -> Vec<&'static str> {
        PEOPLE.iter().map(|(name, _)| *name).collect()
    }

    /// A user token (`xoxp-…`) acting as `name` (`admin`, `alice`, `bob`, `carol`).
    pub fn user_token(&self, name: &str) -> String {
        assert!(
            name == INSPECTOR_USER || PEOPLE.iter().any(|(person, _)| *person == name),
            "no seeded person `{name}` (there are admin, alice, bob and carol)"
        );
        format!("xoxp-emulate-{name}")
    }

    /// The user id of a seeded person or bot user, by name (`alice`, `switchboard`).
    pub fn user_id(&self, name: &str) -> &str {
        self.users.get(name).unwrap_or_else(|| {
            panic!(
                "no user `{name}` in emulate; users: {:?}",
                self.users.keys()
            )
        })
    }

    /// The id of a seeded channel, by name without `#` (`bridge`, `secret`, `general`).
    pub fn channel_id(&self, name: &str) -> &str {
        self.channels.get(name).unwrap_or_else(|| {
            panic!(
                "no channel `{name}` in emulate; channels: {:?}",
                self.channels.keys()
            )
        })
    }

    /// Every seeded channel: name -> id.
    pub fn channels(&self) -> &BTreeMap<String, String> {
        &self.channels
    }

    /// The incoming webhook posting to `bridge` as the bot:
    /// `http://127.0.0.1:PORT/services/T000000001/B0SWBOT001/X…`. It answers `ok`
    /// (text/plain) to a JSON body `{"text": …}`; emulate honours `username`,
    /// `icon_url`, `thread_ts` and a bare channel name in `channel`.
    pub fn incoming_webhook_url(&self) -> &str {
        &self.webhook_url
    }

    /// How long the last start took, from spawning node to the first HTTP answer.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// emulate's stdout and stderr so far.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Calls a Web API method with `token` and JSON arguments (emulate accepts JSON and
    /// form bodies for every method) and returns the JSON answer, `ok` or not. Panics
    /// when emulate does not answer JSON (unknown methods answer 404 with a JSON body
    /// `{"message": "Not Found", …}`, not Slack's `unknown_method`).
    pub async fn call(&self, token: &str, method: &str, args: Value) -> Value {
        let url = format!("{}{method}", self.api_url());
        let response = self
            .http
            .post(&url)
            .bearer_auth(token)
            .json(&args)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("POST {url} answered {status} without JSON ({e}): {body}"))
    }

    /// `call`, panicking unless the answer has `"ok": true`.
    pub async fn call_ok(&self, token: &str, method: &str, args: Value) -> Value {
        let answer = self.call(token, method, args.clone()).await;
        if answer["ok"] != json!(true) {
            panic!("{method} {args} was refused by emulate: {answer}");
        }
        answer
    }

    /// Posts `text` to `channel` (a name or an id) as the seeded person `user`, the way a
    /// Slack user would be seen by a bridge; returns the message's `ts`.
    pub async fn post_as(&self, user: &str, channel: &str, text: &str) -> String {
        let token = self.user_token(user);
        let channel = self.resolve_channel(channel);
        let answer = self
            .call_ok(
                &token,
                "chat.postMessage",
                json!({"channel": channel, "text": text}),
            )
            .await;
        answer["ts"]
            .as_str()
            .unwrap_or_else(|| panic!("chat.postMessage answered no ts: {answer}"))
            .to_owned()
    }

    /// Every message in `channel` (a name or an id), thread replies included, oldest
    /// first, as emulate stores them (`user`, `text`, `ts`, `thread_ts`, `username`,
    /// `icon_url`, `edited`, `subtype`, `bot_id`, …). emulate's inspector is HTML only,
    /// so this reads `conversations.history` and `conversations.replies` as `admin`
    /// (a member of every seeded channel), or as the bot for conversations admin is
    /// not in (the bot's DMs).
    pub async fn messages(&self, channel: &str) -> Vec<Value> {
        let channel = self.resolve_channel(channel);
        let inspector = self.user_token(INSPECTOR_USER);
        let token = match self.history_page(&inspector, &channel, "").await {
            answer if answer["error"] == "not_in_channel" => BOT_TOKEN.to_owned(),
            _ => inspector,
        };
        let mut messages = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self.history_page(&token, &channel, &cursor).await;
            if page["ok"] != json!(true) {
                panic!("conversations.history {channel} was refused by emulate: {page}");
            }
            messages.extend(page["messages"].as_array().cloned().unwrap_or_default());
            cursor = page["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if cursor.is_empty() {
                break;
            }
        }
        let mut replies = Vec::new();
        for parent in &messages {
            if parent["reply_count"].as_u64().unwrap_or(0) == 0 {
                continue;
            }
            let thread = self
                .call_ok(
                    &token,
                    "conversations.replies",
                    json!({"channel": channel, "ts": parent["ts"]}),
                )
                .await;
            replies.extend(
                thread["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|reply| reply["ts"] != parent["ts"])
                    .cloned(),
            );
        }
        messages.extend(replies);
        messages.sort_by_key(|message| ts_key(message["ts"].as_str().unwrap_or_default()));
        messages.dedup_by(|a, b| a["ts"] == b["ts"]);
        messages
    }

    /// Polls `messages(channel)` until one satisfies `matches` and returns it; fails
    /// after 10 s listing what the channel holds. `what` names the awaited message.
    pub async fn wait_for_message(
        &self,
        channel: &str,
        what: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let messages = self.messages(channel).await;
            if let Some(found) = messages.iter().find(|message| matches(message)) {
                return found.clone();
            }
            if started.elapsed() > WAIT {
                let seen: Vec<String> = messages
                    .iter()
                    .map(|m| format!("{} {}: {}", m["ts"], m["user"], m["text"]))
                    .collect();
                panic!(
                    "no message in {channel} matched {what} within {WAIT:?}; it holds:\n{}",
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn history_page(&self, token: &str, channel: &str, cursor: &str) -> Value {
        let mut args = json!({"channel": channel, "limit": 1000});
        if !cursor.is_empty() {
            args["cursor"] = json!(cursor);
        }
        self.call(token, "conversations.history", args).await
    }

    /// A channel name (with or without `#`) of a seeded channel becomes its id; anything
    /// else (an id) is kept.
    fn resolve_channel(&self, channel: &str) -> String {
        let name = channel.trim_start_matches('#');
        self.channels
            .get(name)
            .cloned()
            .unwrap_or_else(|| channel.to_owned())
    }

    /// The inspector's HTML for one tab (`messages`, `channels`, `auth`, `events`).
    async fn inspector_page(&self, tab: &str) -> String {
        let url = format!("{}/?tab={tab}", self.url());
        let response = self
            .http
            .get(&url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {url} answered {status}: {body}");
        body
    }
}

impl Drop for SlackEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dir holding an emulate install (`<dir>/node_modules/emulate`), installing it first
/// with `scripts/ensure-emulate` if needed. Blocking; once per process.
pub fn ensure_emulate() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = install_dir()
            && dir.join(MARKER).is_file()
            && dir.join(ENTRY).is_file()
        {
            return dir;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ensure-emulate");
        let output = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            panic!(
                "{} failed ({}); emulate {EMULATE_VERSION} needs node and npm and, the first \
                 time, the npm registry:\n{}",
                script.display(),
                output.status,
                tail(&stderr, 40)
            );
        }
        eprint!("{stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            dir.join(ENTRY).is_file(),
            "{} printed {dir:?}, which holds no {ENTRY}",
            script.display()
        );
        dir
    })
    .clone()
}

/// Where `scripts/ensure-emulate` installs (the same rules as the script).
fn install_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = set(DIR_ENV) {
        return Some(PathBuf::from(dir));
    }
    let cache = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join(format!("switchboard/emulate-{EMULATE_VERSION}")))
}

fn spawn(entry: &Path, seed: &Path, port: u16, dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("emulate.log"))
        .expect("open emulate.log");
    Command::new("node")
        .arg(entry)
        .args(["start", "--service", "slack", "--port", &port.to_string()])
        .arg("--seed")
        .arg(seed)
        .args(["--base-url", &format!("http://127.0.0.1:{port}")])
        // The seed is passed explicitly; a cwd of our own keeps emulate from finding
        // an emulate.config.* of someone else's.
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("emulate.log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start node {}: {e} (is Node.js installed?)",
                entry.display()
            )
        })
}

/// Polls the inspector page until it answers, the process exits, or 30 s pass.
async fn wait_ready(http: &reqwest::Client, port: u16, child: &mut Child) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{port}/");
    let started = Instant::now();
    let mut last = String::from("no attempt yet");
    while started.elapsed() < START_TIMEOUT {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("node exited with {status} while starting"));
        }
        match http.get(&url).timeout(Duration::from_secs(2)).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => last = format!("GET {url} answered {}", response.status()),
            Err(e) => last = format!("GET {url} failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!(
        "no answer within {START_TIMEOUT:?}; last try: {last}"
    ))
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("emulate.log")).unwrap_or_default()
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A Slack `ts` ("1700000000.000123") as a sortable pair. emulate's fraction is a
/// process-wide counter, so it can outgrow six digits; string order would then be wrong.
fn ts_key(ts: &str) -> (u64, u64) {
    let (seconds, fraction) = ts.split_once('.').unwrap_or((ts, "0"));
    (seconds.parse().unwrap_or(0), fraction.parse().unwrap_or(0))
}

/// The seed config (emulate's `--seed` file, JSON), as described on `SlackEmulator`.
/// Order matters to emulate: channels get every user seeded before them as members; the
/// app (and so its bot user) comes after, so the bot is in no channel.
fn seed_json() -> Value {
    let mut tokens = vec![json!({
        "token": BOT_TOKEN,
        "type": "bot",
        "user": BOT_USER_ID,
        "app_id": APP_ID,
        "bot_id": BOT_ID,
        "bot_user_id": BOT_USER_ID,
    })];
    for name in std::iter::once(INSPECTOR_USER).chain(PEOPLE.iter().map(|(name, _)| *name)) {
        tokens.push(json!({"token": format!("xoxp-emulate-{name}"), "type": "user", "user": name}));
    }
    json!({
        "slack": {
            "team": {"name": TEAM_NAME, "domain": TEAM_DOMAIN},
            "users": PEOPLE.iter().map(|(name, real_name)| json!({
                "name": name,
                "real_name": real_name,
                "email": format!("{name}@example.com"),
            })).collect::<Vec<_>>(),
            "channels": [
                {"name": "bridge", "topic": "Bridged to IRC and Matrix", "purpose": "Switchboard tests"},
                {"name": "offtopic", "topic": "Not bridged"},
                {"name": "secret", "is_private": true, "topic": "Private"},
            ],
            "oauth_apps": [{
                "client_id": "1000000001.2000000001",
                "client_secret": "switchboard-emulate-secret",
                "app_id": APP_ID,
                "name": "Switchboard",
                "bot_name": BOT_NAME,
                "bot_id": BOT_ID,
                "bot_user_id": BOT_USER_ID,
                "redirect_uris": ["http://127.0.0.1/slack/oauth"],
            }],
            "tokens": tokens,
            "incoming_webhooks": [{"channel": "bridge", "label": WEBHOOK_LABEL}],
        }
    })
}

#[cfg(test)]
mod tests {
    //! What Switchboard's Slack tests rely on from emulate 0.11.2, and (the `gap_` tests)
    //! what it lacks or does differently from Slack, as docs/testing-slack.md lists. A
    //! `gap_` test failing after an upgrade may be good news: update the doc.

    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::{CONTENT_TYPE, HeaderMap};
    use std::future::Future;

    /// Bounds each test, starting (and a first install) included.
    const TEST_LIMIT: Duration = Duration::from_secs(180);

    async fn bounded(test: impl Future<Output = ()>) {
        tokio::time::timeout(TEST_LIMIT, test)
            .await
            .unwrap_or_else(|_| panic!("the test took longer than {TEST_LIMIT:?}"));
    }

    /// Sends `request` and returns status, headers and body text.
    async fn send(request: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, String) {
        let response = request
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .expect("emulate answers");
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap_or_default())
    }

    /// `application/x-www-form-urlencoded`, the encoding Slack's docs use for every method.
    fn form(pairs: &[(&str, &str)]) -> String {
        let encode = |text: &str| -> String {
            text.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        pairs
            .iter()
            .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn is_slack_ts(ts: &Value) -> bool {
        let Some((seconds, fraction)) = ts.as_str().and_then(|ts| ts.split_once('.')) else {
            return false;
        };
        seconds.len() == 10
            && fraction.len() >= 6
            && (seconds.to_owned() + fraction)
                .bytes()
                .all(|b| b.is_ascii_digit())
    }

    fn texts(messages: &[Value]) -> Vec<&str> {
        messages
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default())
            .collect()
    }

    fn names(channels: &Value) -> Vec<&str> {
        channels["channels"]
            .as_array()
            .expect("a channels array")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn starts_seeded_and_the_bot_token_passes_auth_test() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            eprintln!(
                "emulate {EMULATE_VERSION} (slack) answered {:?} after spawning node",
                slack.started_in()
            );
            let auth = slack
                .call_ok(slack.bot_token(), "auth.test", json!({}))
                .await;
            assert_eq!(auth["user_id"], BOT_USER_ID, "{auth}");
            assert_eq!(auth["user"], BOT_NAME, "{auth}");
            assert_eq!(auth["bot_id"], BOT_ID, "{auth}");
            assert_eq!(auth["app_id"], APP_ID, "{auth}");
            assert_eq!(auth["team_id"], TEAM_ID, "{auth}");
            assert_eq!(auth["team"], TEAM_NAME, "{auth}");
            assert_eq!(auth["url"], "https://switchboard-test.slack.com/", "{auth}");

            let alice = slack
                .call_ok(&slack.user_token("alice"), "auth.test", json!({}))
                .await;
            assert_eq!(alice["user_id"], slack.user_id("alice"), "{alice}");
            assert_eq!(alice["user"], "alice", "{alice}");
            assert!(alice.get("bot_id").is_none(), "{alice}");

            assert_eq!(slack.channel_id("general"), "C000000001");
            assert_eq!(slack.user_id("admin"), "U000000001");
            assert_eq!(slack.user_id(BOT_NAME), BOT_USER_ID);
            for name in ["bridge", "offtopic", "secret"] {
                assert!(slack.channel_id(name).starts_with('C'), "{name}");
            }
            for name in slack.people() {
                assert!(slack.user_id(name).starts_with('U'), "{name}");
            }
            assert!(
                slack
                    .incoming_webhook_url()
                    .starts_with(&format!("{}/services/{TEAM_ID}/{BOT_ID}/X", slack.url())),
                "{}",
                slack.incoming_webhook_url()
            );
            assert_eq!(
                slack.api_url(),
                format!("http://127.0.0.1:{}/api/", slack.port())
            );
        })
        .await;
    }

    #[tokio::test]
    async fn conversations_list_info_join_and_members() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            let bot = slack.bot_token();
            let bridge = slack.channel_id("bridge");

            // Public channels by default; the bot is in none of them yet.
            let list = slack.call_ok(bot, "conversations.list", json!({})).await;
            assert_eq!(
                names(&list),
                ["general", "random", "bridge", "offtopic"],
                "{list}"
            );
            assert!(
                list["channels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| c["is_member"] == false && c["is_channel"] == true),
                "{list}"
            );
            assert_eq!(list["response_metadata"]["next_cursor"], "", "{list}");
            // Private channels only for members.
            let types = json!({"types": "public_channel,private_channel"});
            let list = slack
                .call_ok(bot, "conversations.list", types.clone())
                .await;
            assert!(!names(&list).contains(&"secret"), "{list}");
            let alice = slack.user_token("alice");
            let list = slack.call_ok(&alice, "conversations.list", types).await;
            let secret = list["channels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "secret")
                .unwrap_or_else(|| panic!("alice does not see #secret: {list}"));
            assert_eq!(secret["is_private"], true, "{secret}");
            assert_eq!(secret["is_member"], true, "{secret}");

            // Cursor paging: `limit` per page, `next_cursor` empty on the last.
            let mut seen = Vec::new();
            let mut cursor = String::new();
            for _ in 0..10 {
                let page = slack
                    .call_ok(
                        bot,
                        "conversations.list",
                        json!({"limit": 2, "cursor": cursor}),
                    )
                    .await;
                assert!(names(&page).len() <= 2, "{page}");
                seen.extend(names(&page).into_iter().map(str::to_owned));
                cursor = page["response_metadata"]["next_cursor"]
                    .as_str()
                    .expect("a next_cursor")
                    .to_owned();
                if cursor.is_empty() {
                    break;
                }
            }
            assert_eq!(seen, ["general", "random", "bridge", "offtopic"]);

            let info = slack
                .call_ok(bot, "conversations.info", json!({"channel": bridge}))
                .await;
            let channel = &info["channel"];
            assert_eq!(channel["id"], bridge, "{info}");
            assert_eq!(channel["name"], "bridge", "{info}");
            assert_eq!(channel["is_private"], false, "{info}");
            assert_eq!(channel["is_archived"], false, "{info}");
            assert_eq!(channel["is_member"], false, "{info}");
            assert_eq!(
                channel["topic"]["value"], "Bridged to IRC and Matrix",
                "{info}"
            );
            assert_eq!(channel["purpose"]["value"], "Switchboard tests", "{info}");
            assert_eq!(channel["num_members"], 4, "{info}");

            // Joining: the answer and later reads say is_member; joining twice is fine.
            let joined = slack
                .call_ok(bot, "conversations.join", json!({"channel": bridge}))
                .await;
            assert_eq!(joined["channel"]["id"], bridge, "{joined}");
            assert_eq!(joined["channel"]["is_member"], true, "{joined}");
            slack
                .call_ok(bot, "conversations.join", json!({"channel": bridge}))
                .await;
            let info = slack
                .call_ok(bot, "conversations.info", json!({"channel": bridge}))
                .await;
            assert_eq!(info["channel"]["is_member"], true, "{info}");
            assert_eq!(info["channel"]["num_members"], 5, "{info}");
            let members = slack
                .call_ok(bot, "conversations.members", json!({"channel": bridge}))
                .await;
            assert!(
                members["members"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(BOT_USER_ID)),
                "{members}"
            );

            // Errors.
            for method in [
                "conversations.info",
                "conversations.join",
                "conversations.history",
            ] {
                let answer = slack
                    .call(bot, method, json!({"channel": "C0NOSUCH00"}))
                    .await;
                assert_eq!(
                    answer,
                    json!({"ok": false, "error": "channel_not_found"}),
                    "{method}"
                );
                // A private channel the bot is not in.
                let answer = slack
                    .call(bot, method, json!({"channel": slack.channel_id("secret")}))
                    .await;
                assert_eq!(
                    answer,
                    json!({"ok": false, "error": "not_in_channel"}),
                    "{method}"
                );
            }
            // conversations.join wants an id; a name is not found.
            let answer = slack
                .call(bot, "conversations.join", json!({"channel": "bridge"}))
                .await;
            assert_eq!(answer["error"], "channel_not_found", "{answer}");
        })
        .await;
    }

    #[tokio::test]
    async fn post_message_returns_ts_and_keeps_username_and_icon() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            let bot = slack.bot_token();
            let bridge = slack.channel_id("bridge").to_owned();

            let posted = slack
                .call_ok(
                    bot,
                    "chat.postMessage",
                    json!({
                        "channel": bridge,
                        "text": "hello from IRC",
                        "username": "alice (irc)",
                        "icon_url": "https://example.com/alice.png",
                    }),
                )
                .await;
            assert_eq!(posted["channel"], bridge, "{posted}");
            assert!(is_slack_ts(&posted["ts"]), "{posted}");
            let message = &posted["message"];
            assert_eq!(message["ts"], posted["ts"], "{posted}");
            assert_eq!(message["type"], "message", "{posted}");
            assert_eq!(message["text"], "hello from IRC", "{posted}");
            assert_eq!(message["user"], BOT_USER_ID, "{posted}");
            assert_eq!(message["username"], "alice (irc)", "{posted}");
            assert_eq!(
                message["icon_url"], "https://example.com/alice.png",
                "{posted}"
            );

            // A channel name resolves to the id; the ts grows with every message.
            let by_name = slack
                .call_ok(
                    bot,
                    "chat.postMessage",
                    json!({"channel": "bridge", "text": "second"}),
                )
                .await;
            assert_eq!(by_name["channel"], bridge, "{by_name}");
            let first = ts_key(posted["ts"].as_str().unwrap());
            let second = ts_key(by_name["ts"].as_str().unwrap());
            assert!(second > first, "{posted} then {by_name}");

            // Form-encoded bodies work like JSON ones.
            let text = "third & last: ünïcödé <@U000000001> *bold*";
            let (status, _, body) = send(
                slack
                    .http
                    .post(format!("{}chat.postMessage", slack.api_url()))
                    .bearer_auth(bot)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form(&[("channel", &bridge), ("text", text)])),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let answer: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["ok"], true, "{answer}");
            assert_eq!(answer["message"]["text"], text, "{answer}");

            // As a person, through a user token.
            let ts = slack.post_as("alice", "bridge", "from alice").await;
            let stored = slack.messages("bridge").await;
            assert_eq!(
                texts(&stored),
                ["hello from IRC", "second", text, "from alice"],
                "{stored:?}"
            );
            assert_eq!(stored[0]["username"], "alice (irc)");
            assert_eq!(stored[0]["icon_url"], "https://example.com/alice.png");
            assert_eq!(stored[3]["ts"], ts);
            assert_eq!(stored[3]["user"], slack.user_id("alice"));

            // A user id as the channel opens (or reuses) the DM with that user.
            let dm = slack
                .call_ok(
                    bot,
                    "chat.postMessage",
                    json!({"channel": slack.user_id("bob"), "text": "psst"}),
                )
                .await;
            let dm_id = dm["channel"].as_str().unwrap().to_owned();
            assert!(dm_id.starts_with('D'), "{dm}");
            let again = slack
                .call_ok(
                    bot,
                    "chat.postMessage",
                    json!({"channel": slack.user_id("bob"), "text": "again"}),
                )
                .await;
            assert_eq!(again["channel"], dm_id.as_str(), "{again}");
            assert_eq!(texts(&slack.messages(&dm_id).await), ["psst", "again"]);

            // Errors.
            let refused = |args: Value, error: &'static str| {
                let slack = &slack;
                async move {
                    let answer = slack.call(bot, "chat.postMessage", args.clone()).await;
                    assert_eq!(answer, json!({"ok": false, "error": error}), "{args}");
                }
            };
            refused(
                json!({"channel": "C0NOSUCH00", "text": "x"}),
                "channel_not_found",
            )
            .await;
            refused(
                json!({"channel": "nosuch", "text": "x"}),
                "channel_not_found",
            )
            .await;
            refused(
                json!({"channel": slack.channel_id("secret"), "text": "x"}),
                "not_in_channel",
            )
            .await;
            refused(json!({"channel": bridge, "text": ""}), "no_text").await;
            refused(json!({"text": "x"}), "channel_not_found").await;
        })
        .await;
    }

    #[tokio::test]
    async fn thread_replies_carry_thread_ts_and_count_on_the_parent() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            let bridge = slack.channel_id("bridge").to_owned();
            let parent = slack.post_as("alice", "bridge", "a question").await;
            let reply = slack
                .call_ok(
                    slack.bot_token(),
                    "chat.postMessage",
                    json!({"channel": bridge, "text": "an answer", "thread_ts": parent}),
                )
                .await;
            assert_eq!(reply["message"]["thread_ts"], parent.as_str(), "{reply}");
            assert_ne!(reply["ts"], parent.as_str(), "{reply}");
            slack
                .call_ok(
                    &slack.user_token("bob"),
                    "chat.postMessage",
                    json!({"channel": bridge, "text": "me too", "thread_ts": parent}),
                )
                .await;

            let thread = slack
                .call_ok(
                    slack.bot_token(),
                    "conversations.replies",
                    json!({"channel": bridge, "ts": parent}),
                )
                .await;
            let messages = thread["messages"].as_array().unwrap();
            assert_eq!(
                texts(messages),
                ["a question", "an answer", "me too"],
                "{thread}"
            );
            assert_eq!(messages[0]["reply_count"], 2, "{thread}");
            assert_eq!(
                messages[0]["reply_users"],
                json!([BOT_USER_ID, slack.user_id("bob")]),
                "{thread}"
            );
            assert!(
                messages[1..]
                    .iter()
                    .all(|m| m["thread_ts"] == parent.as_str()),
                "{thread}"
            );

            // The channel's history holds only the parent.
            let history = slack
                .call_ok(
                    slack.bot_token(),
                    "conversations.history",
                    json!({"channel": bridge}),
                )
                .await;
            assert_eq!(
                texts(history["messages"].as_array().unwrap()),
                ["a question"],
                "{history}"
            );
            // `messages` adds the replies, in order.
            assert_eq!(
                texts(&slack.messages("bridge").await),
                ["a question", "an answer", "me too"]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn update_and_delete_only_own_messages() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            let bot = slack.bot_token();
            let alice = slack.user_token("alice");
            let bridge = slack.channel_id("bridge").to_owned();
            let ts = slack
                .call_ok(
                    bot,
                    "chat.postMessage",
                    json!({"channel": bridge, "text": "typo", "username": "bob (irc)"}),
                )
                .await["ts"]
                .as_str()
                .unwrap()
                .to_owned();

            let updated = slack
                .call_ok(
                    bot,
                    "chat.update",
                    json!({"channel": bridge, "ts": ts, "text": "fixed"}),
                )
                .await;
            assert_eq!(updated["channel"], bridge, "{updated}");
            assert_eq!(updated["ts"], ts.as_str(), "{updated}");
            assert_eq!(updated["text"], "fixed", "{updated}");
            assert_eq!(updated["message"]["text"], "fixed", "{updated}");
            assert_eq!(
                updated["message"]["edited"]["user"], BOT_USER_ID,
                "{updated}"
            );
            assert!(
                is_slack_ts(&updated["message"]["edited"]["ts"]),
                "{updated}"
            );
            // The username set when posting stays.
            assert_eq!(updated["message"]["username"], "bob (irc)", "{updated}");
            let stored = slack.messages("bridge").await;
            assert_eq!(texts(&stored), ["fixed"]);
            assert_eq!(stored[0]["edited"], updated["message"]["edited"]);

            let error = |method: &'static str, token: String, ts: String, error: &'static str| {
                let slack = &slack;
                let bridge = bridge.clone();
                async move {
                    let answer = slack
                        .call(
                            &token,
                            method,
                            json!({"channel": bridge, "ts": ts, "text": "x"}),
                        )
                        .await;
                    assert_eq!(answer, json!({"ok": false, "error": error}), "{method}");
                }
            };
            let theirs = slack.post_as("alice", "bridge", "alice's").await;
            error(
                "chat.update",
                alice.clone(),
                ts.clone(),
                "cant_update_message",
            )
            .await;
            error(
                "chat.update",
                bot.to_owned(),
                theirs.clone(),
                "cant_update_message",
            )
            .await;
            error("chat.delete", bot.to_owned(), theirs, "cant_delete_message").await;
            let missing = "1000000000.000001".to_owned();
            error(
                "chat.update",
                bot.to_owned(),
                missing.clone(),
                "message_not_found",
            )
            .await;
            error("chat.delete", bot.to_owned(), missing, "message_not_found").await;

            let deleted = slack
                .call_ok(bot, "chat.delete", json!({"channel": bridge, "ts": ts}))
                .await;
            assert_eq!(
                deleted,
                json!({"ok": true, "channel": bridge, "ts": ts}),
                "{deleted}"
            );
            assert_eq!(texts(&slack.messages("bridge").await), ["alice's"]);
            error("chat.delete", bot.to_owned(), ts, "message_not_found").await;
        })
        .await;
    }

    #[tokio::test]
    async fn history_pages_newest_first_through_cursors() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            let offtopic = slack.channel_id("offtopic").to_owned();
            for n in 1..=5 {
                slack.post_as("carol", "offtopic", &format!("m{n}")).await;
            }
            let mut pages = Vec::new();
            let mut cursor = String::new();
            for _ in 0..10 {
                let mut args = json!({"channel": offtopic, "limit": 2});
                if !cursor.is_empty() {
                    args["cursor"] = json!(cursor);
                }
                let page = slack
                    .call_ok(slack.bot_token(), "conversations.history", args)
                    .await;
                cursor = page["response_metadata"]["next_cursor"]
                    .as_str()
                    .expect("a next_cursor")
                    .to_owned();
                assert_eq!(page["has_more"], !cursor.is_empty(), "{page}");
                pages.push(
                    texts(page["messages"].as_array().unwrap())
                        .into_iter()
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                );
                if cursor.is_empty() {
                    break;
                }
            }
            assert_eq!(pages, [vec!["m5", "m4"], vec!["m3", "m2"], vec!["m1"]]);

            // The Slack adapter's catch-up call: a form with an empty first cursor.
            // (emulate ignores `oldest`; the adapter filters by ts itself.)
            let (status, headers, body) = send(
                slack
                    .http
                    .post(format!("{}conversations.history", slack.api_url()))
                    .bearer_auth(BOT_TOKEN)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("channel", &offtopic),
                        ("oldest", "0"),
                        ("inclusive", "false"),
                        ("limit", "2"),
                        ("cursor", ""),
                    ])),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(
                headers[CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json"),
                "{headers:?}"
            );
            let page: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(texts(page["messages"].as_array().unwrap()), ["m5", "m4"]);
            assert_eq!(page["has_more"], true, "{page}");
        })
        .await;
    }

    #[tokio::test]
    async fn users_info_list_and_bots_info() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            let bot = slack.bot_token();
            let info = slack
                .call_ok(bot, "users.info", json!({"user": slack.user_id("alice")}))
                .await;
            let user = &info["user"];
            assert_eq!(user["id"], slack.user_id("alice"), "{info}");
            assert_eq!(user["team_id"], TEAM_ID, "{info}");
            assert_eq!(user["name"], "alice", "{info}");
            assert_eq!(user["real_name"], "Alice Liddell", "{info}");
            assert_eq!(user["is_bot"], false, "{info}");
            assert_eq!(user["deleted"], false, "{info}");
            assert_eq!(user["profile"]["display_name"], "alice", "{info}");
            assert_eq!(user["profile"]["real_name"], "Alice Liddell", "{info}");
            assert_eq!(user["profile"]["email"], "alice@example.com", "{info}");

            let info = slack
                .call_ok(bot, "users.info", json!({"user": BOT_USER_ID}))
                .await;
            assert_eq!(info["user"]["is_bot"], true, "{info}");
            assert_eq!(info["user"]["name"], BOT_NAME, "{info}");

            let answer = slack
                .call(bot, "users.info", json!({"user": "U0NOSUCH00"}))
                .await;
            assert_eq!(answer, json!({"ok": false, "error": "user_not_found"}));

            let list = slack.call_ok(bot, "users.list", json!({})).await;
            let names: Vec<&str> = list["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["name"].as_str().unwrap_or_default())
                .collect();
            assert_eq!(
                names,
                ["admin", "alice", "bob", "carol", BOT_NAME],
                "{list}"
            );

            let bot_info = slack
                .call_ok(bot, "bots.info", json!({"bot": BOT_ID}))
                .await;
            assert_eq!(bot_info["bot"]["id"], BOT_ID, "{bot_info}");
            assert_eq!(bot_info["bot"]["name"], BOT_NAME, "{bot_info}");
        })
        .await;
    }

    #[tokio::test]
    async fn incoming_webhook_posts_as_the_bot_with_username() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            let hook =
                |body: Value| send(slack.http.post(slack.incoming_webhook_url()).json(&body));
            let (status, headers, body) = hook(json!({
                "text": "from a webhook",
                "username": "dave (matrix)",
                "icon_url": "https://example.com/dave.png",
            }))
            .await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
            assert!(
                headers[CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain"),
                "{headers:?}"
            );
            let message = slack
                .wait_for_message("bridge", "the webhook's message", |m| {
                    m["text"] == "from a webhook"
                })
                .await;
            assert_eq!(message["subtype"], "bot_message", "{message}");
            assert_eq!(message["bot_id"], BOT_ID, "{message}");
            assert_eq!(message["username"], "dave (matrix)", "{message}");
            assert_eq!(
                message["icon_url"], "https://example.com/dave.png",
                "{message}"
            );
            assert!(is_slack_ts(&message["ts"]), "{message}");

            // A bare channel name redirects it.
            let (status, _, _) = hook(json!({"text": "elsewhere", "channel": "offtopic"})).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(texts(&slack.messages("offtopic").await), ["elsewhere"]);

            let (status, _, body) = hook(json!({})).await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::BAD_REQUEST, "no_text")
            );
        })
        .await;
    }

    #[tokio::test]
    async fn gap_any_token_is_accepted_and_unknown_methods_are_404() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            // Slack: invalid_auth. emulate: an unknown token is emulate's admin.
            let auth = slack
                .call("xoxb-this-token-does-not-exist", "auth.test", json!({}))
                .await;
            assert_eq!(auth["ok"], true, "{auth}");
            assert_eq!(auth["user_id"], "U000000001", "{auth}");
            // Slack names the token's scopes in X-OAuth-Scopes; emulate sends none (the
            // adapter then assumes chat:write.customize).
            let (_, headers, _) = send(
                slack
                    .http
                    .post(format!("{}auth.test", slack.api_url()))
                    .bearer_auth(BOT_TOKEN),
            )
            .await;
            assert!(headers.get("x-oauth-scopes").is_none(), "{headers:?}");
            assert!(
                headers.get("x-accepted-oauth-scopes").is_none(),
                "{headers:?}"
            );
            // Without an Authorization header: not_authed (also for a `token` argument,
            // which Slack accepts).
            let (status, _, body) = send(
                slack
                    .http
                    .post(format!("{}auth.test", slack.api_url()))
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form(&[("token", BOT_TOKEN)])),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap(),
                json!({"ok": false, "error": "not_authed"})
            );

            // Methods emulate does not have: 404 with a JSON body (Slack: unknown_method).
            for method in [
                "usergroups.list",
                "apps.connections.open",
                "rtm.connect",
                "conversations.replies.nosuch",
            ] {
                let (status, _, body) = send(
                    slack
                        .http
                        .post(format!("{}{method}", slack.api_url()))
                        .bearer_auth(BOT_TOKEN),
                )
                .await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {body}");
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["message"], "Not Found", "{method}: {body}");
                assert!(body.get("ok").is_none(), "{method}: {body}");
            }
            // Methods exist for POST only, and read arguments from the body only.
            let history = format!(
                "{}conversations.history?channel={}",
                slack.api_url(),
                slack.channel_id("bridge")
            );
            let (status, _, _) = send(slack.http.get(&history).bearer_auth(BOT_TOKEN)).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            let (status, _, body) = send(slack.http.post(&history).bearer_auth(BOT_TOKEN)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap(),
                json!({"ok": false, "error": "channel_not_found"})
            );
        })
        .await;
    }

    #[tokio::test]
    async fn gap_message_shapes_and_membership_differ_from_slack() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            let bot = slack.bot_token();
            let offtopic = slack.channel_id("offtopic").to_owned();
            // Slack: not_in_channel (without chat:write.public). emulate: posted.
            let posted = slack
                .call_ok(
                    bot,
                    "chat.postMessage",
                    json!({"channel": offtopic, "text": "not a member", "username": "x"}),
                )
                .await;
            // Slack marks a bot's message with bot_id, app_id (and subtype bot_message
            // with a username); emulate only with the bot user's `user`.
            let message = &posted["message"];
            assert_eq!(message["user"], BOT_USER_ID, "{posted}");
            for absent in ["bot_id", "app_id", "subtype", "bot_profile", "team", "blocks"] {
                assert!(message.get(absent).is_none(), "{absent} in {posted}");
            }
            // Slack: not_in_channel for a bot outside the channel. emulate: readable.
            let history = slack
                .call_ok(bot, "conversations.history", json!({"channel": offtopic}))
                .await;
            assert_eq!(texts(history["messages"].as_array().unwrap()), ["not a member"]);

            // oldest/latest/inclusive are ignored: everything comes back.
            let first = slack.post_as("alice", "offtopic", "one").await;
            let second = slack.post_as("alice", "offtopic", "two").await;
            for args in [
                json!({"channel": offtopic, "oldest": second}),
                json!({"channel": offtopic, "latest": first}),
                json!({"channel": offtopic, "oldest": first, "latest": second, "inclusive": false}),
            ] {
                let history = slack
                    .call_ok(bot, "conversations.history", args.clone())
                    .await;
                assert_eq!(
                    texts(history["messages"].as_array().unwrap()),
                    ["two", "one", "not a member"],
                    "{args}"
                );
            }

            // A broadcast reply stays out of the channel's history (Slack: shown with
            // subtype thread_broadcast); the parent gets no thread_ts of its own.
            let reply = slack
                .call_ok(
                    bot,
                    "chat.postMessage",
                    json!({"channel": offtopic, "text": "broadcast", "thread_ts": first,
                           "reply_broadcast": true}),
                )
                .await;
            assert_eq!(reply["message"]["reply_broadcast"], true, "{reply}");
            assert!(reply["message"].get("subtype").is_none(), "{reply}");
            let history = slack
                .call_ok(bot, "conversations.history", json!({"channel": offtopic}))
                .await;
            let messages = history["messages"].as_array().unwrap();
            assert_eq!(texts(messages), ["two", "one", "not a member"]);
            assert_eq!(messages[1]["reply_count"], 1, "{history}");
            assert!(messages[1].get("thread_ts").is_none(), "{history}");
            // A thread_ts naming no message is accepted.
            slack
                .call_ok(
                    bot,
                    "chat.postMessage",
                    json!({"channel": offtopic, "text": "orphan", "thread_ts": "1000000000.000001"}),
                )
                .await;

            // Incoming webhooks: any token posts (to #general unless `channel` names
            // another); `#name` is not understood (the webhook's channel is used); the
            // stored message has the bot id as its `user`.
            let fake = format!("{}/services/{TEAM_ID}/{BOT_ID}/XNOSUCHHOOK", slack.url());
            let (status, _, body) = send(slack.http.post(&fake).json(&json!({"text": "forged"}))).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
            assert_eq!(texts(&slack.messages("general").await), ["forged"]);
            let (status, _, _) = send(
                slack
                    .http
                    .post(slack.incoming_webhook_url())
                    .json(&json!({"text": "hash", "channel": "#offtopic"})),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            let hooked = slack
                .wait_for_message("bridge", "the #offtopic webhook message", |m| m["text"] == "hash")
                .await;
            assert_eq!(hooked["user"], BOT_ID, "{hooked}");
        })
        .await;
    }

    #[tokio::test]
    async fn gap_no_event_deliveries_and_no_socket_mode() {
        bounded(async {
            let slack = SlackEmulator::start().await;
            slack
                .post_as("alice", "bridge", "an event Slack would push")
                .await;
            slack
                .call_ok(
                    slack.bot_token(),
                    "conversations.join",
                    json!({"channel": slack.channel_id("bridge")}),
                )
                .await;
            // emulate builds event_callback payloads for messages, edits, deletions,
            // joins and reactions, but a Slack emulator has no way to subscribe a
            // request URL (the seed's `signing_secret` is stored and never used).
            let events = slack.inspector_page("events").await;
            assert!(
                events.contains("No Slack event subscriptions are registered."),
                "{events}"
            );
            assert!(
                events.contains("No Slack event deliveries yet."),
                "{events}"
            );
            let answer = slack
                .call(slack.bot_token(), "apps.connections.open", json!({}))
                .await;
            assert_eq!(answer["message"], "Not Found", "{answer}");
        })
        .await;
    }
}
