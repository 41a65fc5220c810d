//! The typed, validated config the daemon runs from. Produced only by `config::load`.

use regex::Regex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::{Adapter, AdapterError, NetworkConnector, NetworkSection};

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database lives (default `./state`).
    pub state_dir: PathBuf,
    pub http: HttpConfig,
    pub delivery: DeliveryConfig,
    pub store: StoreConfig,
    /// Network name -> its protocol section. Names are `NetworkId`s.
    pub networks: BTreeMap<String, NetworkConfig>,
    pub routes: Vec<RouteConfig>,
    pub admin: AdminConfig,
    pub reload: ReloadConfig,
}

impl Config {
    /// `room` of `network` as that network's adapter writes it in events (as
    /// written when the config has no such network), so rooms compare equal however
    /// the admin spelled them.
    pub fn canonical_room(&self, network: &str, room: &str) -> switchboard_sdk::RoomId {
        match self.networks.get(network) {
            Some(section) => section.connector.canonical_room(room),
            None => switchboard_sdk::RoomId::new(room),
        }
    }
}

/// The admin API and page (docs/admin-api.md), served by the HTTP server.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// `None`: off (the default); no /admin routes exist.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in a log line or a debug print.
        f.debug_struct("AdminConfig")
            .field("enabled", &self.token.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadConfig {
    /// Reload when the config file changes (default false).
    pub watch: bool,
    /// How long rooms new to a reload may take to be joined before it is rolled
    /// back (default 30s).
    pub join_deadline: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: false,
            join_deadline: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `None`: the HTTP server is off. Default `127.0.0.1:9477`. A non-loopback address
    /// is refused unless `allow_non_loopback: true`.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// First retry delay after a transient failure (default 1s), doubled each time...
    pub retry_initial: Duration,
    /// ...up to this (default 5 min).
    pub retry_max: Duration,
    /// On SIGTERM, how long in-flight sends may take (default 10s).
    pub shutdown_deadline: Duration,
    /// Answers to sources that wait for them (webhooks, application-service
    /// transactions) are held while a destination room has more rows queued than
    /// this (default 128)...
    pub hold_answers_above: u64,
    /// ...for at most this long (default 5s).
    pub hold_answers_for: Duration,
    /// A destination room whose oldest queued row is older than this is logged and
    /// shown in `/healthz` as lagging (default 2m).
    pub lagging_after: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            shutdown_deadline: Duration::from_secs(10),
            hold_answers_above: 128,
            hold_answers_for: Duration::from_secs(5),
            lagging_after: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// How long old rows are kept (id map 90 days, dead letters 30 days by default).
    pub retention: crate::store::Retention,
}

/// One network's protocol section, read and validated by the protocol's connector.
#[derive(Clone)]
pub struct NetworkConfig {
    pub connector: &'static dyn NetworkConnector,
    /// Only `connector` looks inside (to build the network).
    pub section: Arc<dyn NetworkSection>,
    /// The section as written (after environment substitution): a reload compares
    /// it to tell whether the network changed. It holds secrets: never shown.
    pub written: Arc<serde_json::Value>,
}

impl NetworkConfig {
    /// Whether `other` describes the same network (same protocol, same section).
    pub fn same_as(&self, other: &NetworkConfig) -> bool {
        self.protocol() == other.protocol() && self.written == other.written
    }
}

impl NetworkConfig {
    /// The section key, e.g. `irc`.
    pub fn protocol(&self) -> &'static str {
        self.connector.protocol()
    }

    /// The running network this section describes.
    pub fn build(&self) -> Result<Arc<dyn Adapter>, AdapterError> {
        self.connector.build(&*self.section)
    }
}

impl std::fmt::Debug for NetworkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkConfig")
            .field("protocol", &self.protocol())
            .field("section", &self.section)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Relays out and receives (default).
    #[default]
    Both,
    /// Its messages are relayed; nothing is relayed into it.
    Source,
    /// Receives; its messages are not relayed.
    Sink,
}

impl Direction {
    pub fn sends(self) -> bool {
        matches!(self, Direction::Both | Direction::Source)
    }
    pub fn receives(self) -> bool {
        matches!(self, Direction::Both | Direction::Sink)
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub rooms: Vec<RouteRoom>,
    /// Default `<{nick}> `. Placeholders: `{nick}`, `{network}`, `{protocol}`, `{room}`.
    pub nick_template: String,
    /// Relay joins, parts, quits and kicks (default false). Topic changes are relayed
    /// with them.
    pub relay_membership: bool,
    pub ignore: IgnoreRules,
    /// Undelivered rows older than this are expired (dead-lettered as "expired").
    pub max_age: Option<Duration>,
}

pub const DEFAULT_NICK_TEMPLATE: &str = "<{nick}> ";

impl RouteConfig {
    /// Whether `other` is the same route with the same settings (regexes compared as
    /// written), so that a reload leaves it alone.
    pub fn same_as(&self, other: &RouteConfig) -> bool {
        fn written(regexes: &[Regex]) -> Vec<&str> {
            regexes.iter().map(Regex::as_str).collect()
        }
        fn patterns(rules: &IgnoreRules) -> (Vec<&str>, Vec<&str>) {
            (written(&rules.nicks), written(&rules.text))
        }
        self.name == other.name
            && self.rooms == other.rooms
            && self.nick_template == other.nick_template
            && self.relay_membership == other.relay_membership
            && self.max_age == other.max_age
            && patterns(&self.ignore) == patterns(&other.ignore)
    }
}

impl RouteConfig {
    /// A route with every option at its default, linking `rooms` (network, room).
    pub fn linking<N: Into<String>, R: Into<String>>(
        name: &str,
        rooms: impl IntoIterator<Item = (N, R)>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            rooms: rooms
                .into_iter()
                .map(|(network, room)| RouteRoom {
                    network: network.into(),
                    room: room.into(),
                    direction: Direction::Both,
                    nick_template: None,
                })
                .collect(),
            nick_template: DEFAULT_NICK_TEMPLATE.to_owned(),
            relay_membership: false,
            ignore: IgnoreRules::default(),
            max_age: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRoom {
    pub network: String,
    pub room: String,
    pub direction: Direction,
    /// Overrides the route's template for messages relayed into this room.
    pub nick_template: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    /// Senders whose name matches any of these are not relayed.
    pub nicks: Vec<Regex>,
    /// Messages whose plain text matches any of these are not relayed.
    pub text: Vec<Regex>,
}
