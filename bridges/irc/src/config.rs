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
        if let Err(message) = parse_server_address(&self.server) {
            problems.push(
                ConfigProblem::new(&["server"], message)
                    .with_hint("write it as host:port, e.g. irc.libera.chat:6697"),
            );
        }
        if self.nick.is_empty() || self.nick.contains([' ', ',', '*', '?', '!', '@', '#', ':']) {
            problems.push(ConfigProblem::new(
                &["nick"],
                format!("invalid IRC nick {:?}", self.nick),
            ));
        }
        if self.flood.burst == 0 {
            problems.push(ConfigProblem::new(
                &["flood", "burst"],
                "burst must be at least 1",
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

/// The largest `max_lines_per_message`: at the default pace, 1000 lines already hold
/// a channel's queue for over 16 minutes.
const MAX_LINES_PER_MESSAGE: usize = 1_000;

/// Splits `host:port` (IPv6 as `[::1]:6667`) into its parts.
pub fn parse_server_address(address: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid server address {address:?}: missing :port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("invalid server address {address:?}: bad host"));
    }
    let port: u16 = port.parse().map_err(|_| {
        format!("invalid server address {address:?}: port {port:?} is not a number from 1 to 65535")
    })?;
    if port == 0 {
        return Err(format!("invalid server address {address:?}: port 0"));
    }
    Ok((host.to_owned(), port))
}
