//! The `irc:` section of a network in the config file.

use serde::Deserialize;
use std::collections::BTreeMap;
use switchboard_sdk::ConfigProblem;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IrcConfig {
    /// `host:port`.
    pub server: String,
    /// TLS with certificate verification (default true).
    #[serde(default = "default_true")]
    pub tls: bool,
    /// Accept any certificate (self-signed servers). Off unless set explicitly.
    #[serde(default)]
    pub accept_invalid_certs: bool,
    /// Server password (PASS).
    #[serde(default)]
    pub password: Option<String>,
    pub nick: String,
    /// Tried in order when the nick is in use; then `nick_` with digits.
    #[serde(default)]
    pub alt_nicks: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub realname: Option<String>,
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// Sent as `PRIVMSG NickServ :IDENTIFY <password>` after registration.
    #[serde(default)]
    pub nickserv_password: Option<String>,
    /// Channel -> key, for keyed channels.
    #[serde(default)]
    pub channel_keys: BTreeMap<String, String>,
    #[serde(default)]
    pub flood: FloodConfig,
    /// Seconds without any traffic before we PING; the same again without a reply and
    /// the connection is considered dead.
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout_secs: u64,
    /// How relayed names are kept from pinging local users with the same nick.
    #[serde(default)]
    pub name_guard: NameGuard,
    /// The most IRC lines one relayed message becomes (after splitting at newlines
    /// and at the 512-byte limit); past it the first lines are sent and the last
    /// says how many more were cut, so one huge post cannot hold a channel's queue.
    #[serde(default = "default_max_lines_per_message")]
    pub max_lines_per_message: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    pub username: String,
    pub password: String,
}

/// Token bucket for outgoing lines: `burst` lines at once, then one line every
/// `interval_ms`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FloodConfig {
    #[serde(default = "default_burst")]
    pub burst: u32,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            burst: default_burst(),
            interval_ms: default_interval_ms(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NameGuard {
    /// U+200D ZERO WIDTH JOINER after the first character.
    #[default]
    Zwj,
    /// U+200B ZERO WIDTH SPACE after the first character.
    Zwsp,
    /// Relay names unchanged.
    None,
}

fn default_true() -> bool {
    true
}
fn default_ping_timeout() -> u64 {
    120
}
fn default_max_lines_per_message() -> usize {
    10
}
fn default_burst() -> u32 {
    4
}
fn default_interval_ms() -> u64 {
    1000
}

impl IrcConfig {
    /// Problems a user can fix in the file; checked without touching the network.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let Err(reason) = split_server_address(&self.server) {
            problems.push(
                ConfigProblem::value(&["server"], format!("is not a server address: {reason}"))
                    .with_hint("write it as host:port, e.g. irc.libera.chat:6697"),
            );
        }
        if let Some(reason) = nick_problem(&self.nick) {
            problems.push(ConfigProblem::value(
                &["nick"],
                format!("is not a valid IRC nick: {reason}"),
            ));
        }
        if self.flood.burst == 0 || self.flood.burst > MAX_BURST {
            problems.push(ConfigProblem::new(
                &["flood", "burst"],
                format!("burst must be from 1 to {MAX_BURST}"),
            ));
        }
        if self.flood.interval_ms > MAX_INTERVAL_MS {
            problems.push(ConfigProblem::new(
                &["flood", "interval_ms"],
                format!("interval_ms must be at most {MAX_INTERVAL_MS} (one minute)"),
            ));
        }
        if self.ping_timeout_secs > MAX_PING_TIMEOUT_SECS {
            problems.push(ConfigProblem::new(
                &["ping_timeout_secs"],
                format!("ping_timeout_secs must be at most {MAX_PING_TIMEOUT_SECS} (one hour)"),
            ));
        }
        if !(2..=MAX_LINES_PER_MESSAGE).contains(&self.max_lines_per_message) {
            problems.push(ConfigProblem::new(
                &["max_lines_per_message"],
                format!(
                    "max_lines_per_message must be from 2 (a line of text and the line saying the rest was cut) to {MAX_LINES_PER_MESSAGE}"
                ),
            ));
        }
        problems
    }
}

/// The largest `flood.burst`, `flood.interval_ms` and `ping_timeout_secs` accepted:
/// beyond them the bridge would flood the server or never notice a dead connection,
/// and the time arithmetic on them stays far from overflowing.
const MAX_BURST: u32 = 100;
const MAX_INTERVAL_MS: u64 = 60_000;
const MAX_PING_TIMEOUT_SECS: u64 = 3_600;
/// The largest `max_lines_per_message`: at the default pace, 1000 lines already hold
/// a channel's queue for over 16 minutes.
const MAX_LINES_PER_MESSAGE: usize = 1_000;

/// Why `nick` cannot be registered, told without repeating the nick (it may come from
/// the environment); `None` when it can.
fn nick_problem(nick: &str) -> Option<String> {
    if nick.is_empty() {
        return Some("it is empty".into());
    }
    let bad = nick.chars().find(|c| {
        c.is_control() || c.is_whitespace() || [',', '*', '?', '!', '@', '#', ':'].contains(c)
    })?;
    Some(match bad {
        ' ' => "it contains a space".into(),
        c if c.is_control() => "it contains a control character".into(),
        c if c.is_whitespace() => "it contains white space".into(),
        c => format!("it contains `{c}`"),
    })
}

/// Splits `host:port` (IPv6 as `[::1]:6667`) into its parts.
pub fn parse_server_address(address: &str) -> Result<(String, u16), String> {
    split_server_address(address)
        .map_err(|reason| format!("invalid server address {address:?}: {reason}"))
}

/// `parse_server_address` with a reason that does not repeat the address.
fn split_server_address(address: &str) -> Result<(String, u16), &'static str> {
    let (host, port) = address.rsplit_once(':').ok_or("missing :port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("bad host");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("the port is not a number from 1 to 65535"),
        Ok(port) => Ok((host.to_owned(), port)),
    }
}
