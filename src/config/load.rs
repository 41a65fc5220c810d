//! From a file to a typed `Config`, collecting every problem on the way.

use super::env::EnvValues;
use super::errors::{ConfigError, ConfigErrors, did_you_mean, suggest};
use super::tree::{Node, Pos, Value};
use super::types::*;
use super::{duration, yaml};
use crate::protocols;
use regex::Regex;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_sdk::{NetworkConnector, SectionError};

const TOP_KEYS: &[&str] = &[
    "state_dir",
    "http",
    "delivery",
    "store",
    "networks",
    "routes",
    "admin",
    "reload",
];
const ADMIN_KEYS: &[&str] = &["enabled", "token"];
const RELOAD_KEYS: &[&str] = &["watch", "join_deadline"];
/// Shorter tokens are guessable; the admin API can rewrite the config.
const MIN_ADMIN_TOKEN: usize = 16;
const MAX_JOIN_DEADLINE: Duration = Duration::from_secs(3_600);
const STORE_KEYS: &[&str] = &["retention"];
const RETENTION_KEYS: &[&str] = &["id_map", "dead_letters"];
const HTTP_KEYS: &[&str] = &["listen", "allow_non_loopback"];
const DELIVERY_KEYS: &[&str] = &[
    "retry_initial",
    "retry_max",
    "shutdown_deadline",
    "hold_answers_above",
    "hold_answers_for",
    "lagging_after",
];
const ROUTE_KEYS: &[&str] = &[
    "name",
    "rooms",
    "nick_template",
    "relay_membership",
    "max_age",
    "ignore",
];
const IGNORE_KEYS: &[&str] = &["nicks", "text"];
const ROOM_OPTION_KEYS: &[&str] = &["direction", "nick_template"];
const DIRECTIONS: &[&str] = &["both", "source", "sink"];
const PLACEHOLDERS: &[&str] = &["nick", "network", "protocol", "room"];
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9477";

/// The longest each duration setting may be: past these a value is a mistake (a
/// retry once a year helps nobody), and they keep every sum far from overflowing.
const MAX_RETRY_INITIAL: Duration = Duration::from_secs(3_600);
const MAX_RETRY_MAX: Duration = Duration::from_secs(86_400);
const MAX_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(3_600);
/// Well under any webhook sender's timeout (Mattermost's is 30 s).
const MAX_HOLD_ANSWERS_FOR: Duration = Duration::from_secs(20);
const MAX_LAGGING_AFTER: Duration = Duration::from_secs(7 * 86_400);
const MAX_HOLD_ANSWERS_ABOVE: u64 = 1_000_000;
const MAX_MAX_AGE: Duration = Duration::from_secs(365 * 86_400);
const MAX_RETENTION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Reads, parses and validates `path`, reporting every problem found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        file: file.clone(),
        errors,
    };
    let bytes = std::fs::read(path).map_err(|error| {
        fail(vec![ConfigError {
            pos: None,
            message: format!("cannot read: {error}"),
            hint: None,
        }])
    })?;
    load_bytes(&bytes).map_err(fail)
}

/// Validates the bytes of a config file; errors carry positions but no file name.
pub fn load_bytes(bytes: &[u8]) -> Result<Config, Vec<ConfigError>> {
    load_str(yaml::text(bytes).map_err(|error| vec![error])?)
}

/// Validates config text; errors carry positions but no file name.
pub fn load_str(text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut root = yaml::parse(text)?;
    let (env, mut errors) = EnvValues::substitute(&mut root, text, &|name| std::env::var(name));
    let mut loader = Loader {
        errors: Vec::new(),
        env,
    };
    let config = loader.config(&root);
    errors.append(&mut loader.errors);
    if errors.is_empty() {
        return Ok(config);
    }
    errors.sort_by_key(|e| e.pos);
    errors.dedup();
    Err(errors)
}

pub(super) struct Loader {
    errors: Vec<ConfigError>,
    /// Which values came from the environment: never shown, named instead.
    env: EnvValues,
}

impl Loader {
    fn error(&mut self, error: ConfigError) {
        // A variable that is not set is the only problem reported for its value.
        if error.pos.is_some_and(|pos| self.env.unresolved(pos)) {
            return;
        }
        // Messages name environment values through `subject`; should one still show
        // such a value in any form, it is replaced whole.
        let error = match self.env.leaked_in(&error) {
            Some(origin) => ConfigError {
                message: format!(
                    "{origin} is not valid here (the details would show the value, which is never printed)"
                ),
                hint: None,
                ..error
            },
            None => error,
        };
        self.errors.push(error);
    }

    /// How a message refers to a value: quoted as written, or, for a value from the
    /// environment, by the variable and line it came from.
    fn subject(&self, node: &Node) -> String {
        self.env
            .describe(node.pos)
            .unwrap_or_else(|| match &node.value {
                Value::Str(text) => format!("{text:?}"),
                _ => node.key_text(),
            })
    }

    fn unknown_key(&mut self, key: &Node, known: &[&str]) {
        let name = key.key_text();
        self.error(
            ConfigError::at(key.pos, format!("unknown key \"{name}\"")).hint(suggest(&name, known)),
        );
    }

    /// Reads a section with `read` (serde underneath), mapping its errors to positions.
    ///
    /// Serde stops at the first problem, so the offending key is removed and the
    /// section read again: one typo does not hide the next problem. Returns the value
    /// (with defaults where keys were removed) and the paths that were removed.
    fn typed<T>(
        &mut self,
        owner: &Node,
        node: &Node,
        read: impl Fn(serde_json::Value) -> Result<T, SectionError>,
    ) -> Option<(T, Vec<Vec<String>>)> {
        let mut json = node.to_json();
        let mut removed: Vec<Vec<String>> = Vec::new();
        for _ in 0..32 {
            match read(json.clone()) {
                Ok(value) => return Some((value, removed)),
                Err(SectionError { path, message }) => {
                    // A required key we removed ourselves, or one already suggested for
                    // a misspelt key ("nik": did you mean "nick"?), is not a new problem.
                    if let Some(missing) = message
                        .strip_prefix("missing field `")
                        .and_then(|m| m.split('`').next())
                        && removed
                            .iter()
                            .filter_map(|gone| gone.last())
                            .any(|gone| gone == missing || did_you_mean(gone, [missing]).is_some())
                    {
                        return None;
                    }
                    self.report_serde(owner, node, &path, message);
                    if !remove_at(&mut json, &path) {
                        return None;
                    }
                    removed.push(path);
                }
            }
        }
        None
    }

    /// Turns one serde error into a positioned problem with a hint.
    fn report_serde(&mut self, owner: &Node, node: &Node, path: &[String], message: String) {
        let converted = if let Some(rest) = message.strip_prefix("unknown field `") {
            let name = rest.split('`').next().unwrap_or_default();
            let expected = backticked(rest.split_once(", expected").map_or("", |(_, e)| e));
            let known: Vec<&str> = expected.iter().map(String::as_str).collect();
            ConfigError::at(node.locate(path), format!("unknown key \"{name}\""))
                .hint(suggest(name, &known))
        } else if let Some(rest) = message.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or_default();
            // At the top of the section the owning key (`irc:`) is the clearest place.
            let pos = if path.is_empty() {
                owner.pos
            } else {
                node.locate(path)
            };
            ConfigError::at(pos, format!("missing required key \"{name}\""))
        } else if let Some(value) = node.value_at(path)
            && let Some(origin) = self.env.describe(value.pos)
        {
            // Serde's message quotes the value; say what was expected instead.
            let key = path.last().map_or("the value", String::as_str);
            let error = match message.strip_prefix("unknown variant `") {
                Some(rest) => {
                    ConfigError::at(value.pos, format!("{origin} is not a valid \"{key}\""))
                        .hint(suggest("", &backticked_known(rest)))
                }
                None => {
                    let expected = message
                        .rsplit_once(", expected ")
                        .map_or(String::new(), |(_, expected)| {
                            format!(": expected {expected}")
                        });
                    ConfigError::at(
                        value.pos,
                        format!("{origin} is not valid for \"{key}\"{expected}"),
                    )
                }
            };
            self.error(error);
            return;
        } else if let Some(rest) = message.strip_prefix("unknown variant `") {
            let name = rest.split('`').next().unwrap_or_default();
            let pos = node.value_at(path).map_or(node.pos, |v| v.pos);
            ConfigError::at(pos, format!("invalid value \"{name}\""))
                .hint(suggest(name, &backticked_known(rest)))
        } else if message.starts_with("invalid type: floating point")
            && let Some((_, expected)) = message.rsplit_once(", expected ")
            && ["u8", "u16", "u32", "u64", "usize", "i32", "i64"].contains(&expected)
        {
            // A whole number past u64::MAX reaches serde as a float.
            let pos = node.value_at(path).map_or(node.pos, |v| v.pos);
            let key = path.last().map_or("the value", String::as_str);
            ConfigError::at(
                pos,
                format!("\"{key}\": the number is too large or not a whole number"),
            )
        } else {
            let pos = node.value_at(path).map_or(node.pos, |v| v.pos);
            let key = path
                .last()
                .map(|k| format!("\"{k}\": "))
                .unwrap_or_default();
            ConfigError::at(pos, format!("{key}{message}"))
        };
        self.error(converted);
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::UInt(u) => Some(u.to_string()),
            _ => {
                self.error(ConfigError::at(
                    node.pos,
                    format!("{what} must be a string"),
                ));
                None
            }
        }
    }

    /// A whole number from 0 to `max`.
    fn count(&mut self, node: &Node, what: &str, max: u64) -> Option<u64> {
        let count = match node.value {
            Value::UInt(u) => Some(u),
            Value::Int(i) => u64::try_from(i).ok(),
            _ => None,
        };
        match count {
            Some(count) if count <= max => Some(count),
            _ => {
                let subject = self.subject(node);
                self.error(
                    ConfigError::at(node.pos, format!("{what}: {subject} is not a count"))
                        .hint(format!("write a whole number from 0 to {max}, e.g. 128")),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> bool {
        match node.value {
            Value::Bool(b) => b,
            _ => {
                self.error(ConfigError::at(
                    node.pos,
                    format!("{what} must be true or false"),
                ));
                false
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str, max: Duration) -> Option<Duration> {
        let text = self.string(node, what)?;
        match duration::parse(&text, max) {
            Ok(d) => Some(d),
            Err(predicate) => {
                let subject = self.subject(node);
                self.error(
                    ConfigError::at(node.pos, format!("{what}: {subject} {predicate}")).hint(
                        format!(
                            "write a number and a unit (ms, s, m, h, d), e.g. 500ms, 30s, 1h30m; at most {}",
                            duration::format(max)
                        ),
                    ),
                );
                None
            }
        }
    }

    fn map<'n>(&mut self, node: &'n Node, what: &str) -> &'n [(Node, Node)] {
        match node.entries() {
            Some(entries) => entries,
            None => {
                if node.value != Value::Null {
                    self.error(ConfigError::at(
                        node.pos,
                        format!("{what} must be a mapping of keys to values"),
                    ));
                }
                &[]
            }
        }
    }

    fn config(&mut self, root: &Node) -> Config {
        let mut config = Config {
            state_dir: PathBuf::from("./state"),
            http: HttpConfig {
                listen: Some(DEFAULT_HTTP_LISTEN.parse().expect("valid default")),
            },
            delivery: DeliveryConfig::default(),
            store: StoreConfig::default(),
            networks: BTreeMap::new(),
            routes: Vec::new(),
            admin: AdminConfig::default(),
            reload: ReloadConfig::default(),
        };
        if root.entries().is_none() {
            self.error(ConfigError::at(
                root.pos,
                "the config must be a mapping with networks: and routes:",
            ));
            return config;
        }
        let entries = self.map(root, "the config");
        let mut routes_node = None;
        let mut admin_node = None;
        let mut networks_seen = false;
        // Every network named in the file, valid or not, so that a mistake inside a
        // network section is not reported again as "unknown network" in routes.
        let mut declared: BTreeMap<String, Option<String>> = BTreeMap::new();
        for (key, value) in entries {
            match key.as_str().unwrap_or_default() {
                "state_dir" => {
                    if let Some(dir) = self.string(value, "state_dir") {
                        config.state_dir = PathBuf::from(dir);
                    }
                }
                "http" => config.http = self.http(value),
                "delivery" => self.delivery(value, &mut config.delivery),
                "store" => self.store(value, &mut config.store),
                "networks" => {
                    networks_seen = true;
                    declared = self
                        .map(value, "networks")
                        .iter()
                        .map(|(k, v)| (k.key_text(), protocol_of(v)))
                        .collect();
                    config.networks = self.networks(value);
                }
                "routes" => routes_node = Some(value),
                "admin" => admin_node = Some(value),
                "reload" => self.reload(value, &mut config.reload),
                _ => self.unknown_key(key, TOP_KEYS),
            }
        }
        if !networks_seen {
            self.error(
                ConfigError::at(root.pos, "missing required key \"networks\"")
                    .hint("add networks: with at least two networks"),
            );
        }
        if let Some(admin) = admin_node {
            config.admin = self.admin(admin, config.http.listen.is_some());
        }
        match routes_node {
            Some(routes) => config.routes = self.routes(routes, &declared),
            None => self.error(
                ConfigError::at(root.pos, "missing required key \"routes\"")
                    .hint("add routes: linking rooms of your networks"),
            ),
        }
        config
    }

    fn http(&mut self, node: &Node) -> HttpConfig {
        let mut listen: Option<(Pos, String)> = None;
        let mut allow_non_loopback = false;
        for (key, value) in self.map(node, "http") {
            match key.as_str().unwrap_or_default() {
                "listen" => match &value.value {
                    Value::Bool(false) => listen = Some((value.pos, "off".into())),
                    _ => listen = self.string(value, "http.listen").map(|s| (value.pos, s)),
                },
                "allow_non_loopback" => {
                    allow_non_loopback = self.boolean(value, "allow_non_loopback")
                }
                _ => self.unknown_key(key, HTTP_KEYS),
            }
        }
        let subject = listen
            .as_ref()
            .and_then(|(pos, _)| self.env.describe(*pos))
            .unwrap_or_else(|| {
                format!(
                    "\"{}\"",
                    listen
                        .as_ref()
                        .map_or(DEFAULT_HTTP_LISTEN, |(_, text)| text)
                )
            });
        let (pos, text) = listen.unwrap_or((node.pos, DEFAULT_HTTP_LISTEN.into()));
        if text == "off" {
            return HttpConfig { listen: None };
        }
        match text.parse::<SocketAddr>() {
            Ok(address) if !address.ip().is_loopback() && !allow_non_loopback => {
                self.error(
                    ConfigError::at(pos, format!("http.listen: {subject} is not a loopback address"))
                        .hint("/metrics and /healthz are for operators: keep them on 127.0.0.1, or set allow_non_loopback: true"),
                );
                HttpConfig { listen: None }
            }
            Ok(address) => HttpConfig {
                listen: Some(address),
            },
            Err(_) => {
                self.error(
                    ConfigError::at(pos, format!("http.listen: {subject} is not an address"))
                        .hint("write ip:port, e.g. 127.0.0.1:9477, or off"),
                );
                HttpConfig { listen: None }
            }
        }
    }

    fn admin(&mut self, node: &Node, http_on: bool) -> AdminConfig {
        let mut enabled = None;
        let mut token = None;
        for (key, value) in self.map(node, "admin") {
            match key.as_str().unwrap_or_default() {
                "enabled" => enabled = Some((value.pos, self.boolean(value, "admin.enabled"))),
                "token" => token = self.string(value, "admin.token").map(|t| (value, t)),
                _ => self.unknown_key(key, ADMIN_KEYS),
            }
        }
        let Some((pos, true)) = enabled else {
            return AdminConfig::default();
        };
        if !http_on {
            self.error(
                ConfigError::at(
                    pos,
                    "admin.enabled: the admin API needs the HTTP server, and http.listen is off",
                )
                .hint("set http.listen, e.g. 127.0.0.1:9477"),
            );
            return AdminConfig::default();
        }
        match token {
            None => {
                self.error(
                    ConfigError::at(pos, "admin.enabled is true but admin.token is missing")
                        .hint("add token: ${SWITCHBOARD_ADMIN_TOKEN} and set that variable to a long random string"),
                );
                AdminConfig::default()
            }
            Some((node, token)) if token.chars().count() < MIN_ADMIN_TOKEN => {
                let subject = self
                    .env
                    .describe(node.pos)
                    .unwrap_or_else(|| "the token".into());
                self.error(
                    ConfigError::at(
                        node.pos,
                        format!(
                            "admin.token: {subject} is shorter than {MIN_ADMIN_TOKEN} characters"
                        ),
                    )
                    .hint("use a long random string, e.g. from `openssl rand -hex 32`"),
                );
                AdminConfig::default()
            }
            Some((_, token)) => AdminConfig { token: Some(token) },
        }
    }

    fn reload(&mut self, node: &Node, reload: &mut ReloadConfig) {
        for (key, value) in self.map(node, "reload") {
            match key.as_str().unwrap_or_default() {
                "watch" => reload.watch = self.boolean(value, "reload.watch"),
                "join_deadline" => {
                    if let Some(d) = self.duration(value, "reload.join_deadline", MAX_JOIN_DEADLINE)
                    {
                        reload.join_deadline = d;
                    }
                }
                _ => self.unknown_key(key, RELOAD_KEYS),
            }
        }
    }

    fn delivery(&mut self, node: &Node, delivery: &mut DeliveryConfig) {
        for (key, value) in self.map(node, "delivery") {
            let (slot, max) = match key.as_str().unwrap_or_default() {
                "retry_initial" => (&mut delivery.retry_initial, MAX_RETRY_INITIAL),
                "retry_max" => (&mut delivery.retry_max, MAX_RETRY_MAX),
                "shutdown_deadline" => (&mut delivery.shutdown_deadline, MAX_SHUTDOWN_DEADLINE),
                "hold_answers_for" => (&mut delivery.hold_answers_for, MAX_HOLD_ANSWERS_FOR),
                "lagging_after" => (&mut delivery.lagging_after, MAX_LAGGING_AFTER),
                "hold_answers_above" => {
                    if let Some(count) = self.count(value, &key.key_text(), MAX_HOLD_ANSWERS_ABOVE)
                    {
                        delivery.hold_answers_above = count;
                    }
                    continue;
                }
                _ => {
                    self.unknown_key(key, DELIVERY_KEYS);
                    continue;
                }
            };
            if let Some(d) = self.duration(value, &key.key_text(), max) {
                *slot = d;
            }
        }
    }

    fn store(&mut self, node: &Node, store: &mut StoreConfig) {
        for (key, value) in self.map(node, "store") {
            match key.as_str().unwrap_or_default() {
                "retention" => {
                    let retention = &mut store.retention;
                    for (key, value) in self.map(value, "store.retention") {
                        let slot = match key.as_str().unwrap_or_default() {
                            "id_map" => &mut retention.id_map,
                            "dead_letters" => &mut retention.dead_letters,
                            _ => {
                                self.unknown_key(key, RETENTION_KEYS);
                                continue;
                            }
                        };
                        if let Some(d) = self.duration(value, &key.key_text(), MAX_RETENTION) {
                            *slot = d;
                        }
                    }
                }
                _ => self.unknown_key(key, STORE_KEYS),
            }
        }
    }

    fn networks(&mut self, node: &Node) -> BTreeMap<String, NetworkConfig> {
        let mut networks = BTreeMap::new();
        for (key, section) in self.map(node, "networks") {
            let name = key.key_text();
            let entries = self.map(section, &format!("network \"{name}\""));
            let [(protocol_key, protocol_section)] = entries else {
                self.error(
                    ConfigError::at(
                        key.pos,
                        format!("network \"{name}\" must have exactly one protocol section"),
                    )
                    .hint(format!(
                        "known protocols: {}",
                        protocols::names().join(", ")
                    )),
                );
                continue;
            };
            let protocol = protocol_key.key_text();
            let Some(connector) = protocols::connector(&protocol) else {
                let known = protocols::names();
                self.error(
                    ConfigError::at(protocol_key.pos, format!("unknown protocol \"{protocol}\""))
                        .hint(format!(
                            "{}known protocols: {}",
                            did_you_mean(&protocol, known.iter().copied())
                                .map_or(String::new(), |h| format!("{h} ")),
                            known.join(", ")
                        )),
                );
                continue;
            };
            if let Some(network) = self.section(connector, protocol_key, protocol_section) {
                networks.insert(name, network);
            }
        }
        networks
    }

    /// Reads and validates one network's section with its protocol's connector.
    fn section(
        &mut self,
        connector: &'static dyn NetworkConnector,
        owner: &Node,
        node: &Node,
    ) -> Option<NetworkConfig> {
        let (section, removed) = self.typed(owner, node, |json| connector.read_section(json))?;
        let mut clean = removed.is_empty();
        for problem in section.validate() {
            // A key that was removed for being wrong is already reported.
            if removed.iter().any(|gone| problem.path.starts_with(gone)) {
                continue;
            }
            clean = false;
            let value = node.value_at(&problem.path);
            let pos = value.map_or_else(|| node.locate(&problem.path), |v| v.pos);
            let message = match value {
                Some(value) if problem.about_value => {
                    format!("{} {}", self.subject(value), problem.message)
                }
                None if problem.about_value => format!("the value {}", problem.message),
                _ => problem.message,
            };
            self.error(ConfigError::at(pos, message).maybe_hint(problem.hint));
        }
        clean.then_some(NetworkConfig {
            connector,
            section,
            written: std::sync::Arc::new(node.to_json()),
        })
    }

    fn routes(
        &mut self,
        node: &Node,
        networks: &BTreeMap<String, Option<String>>,
    ) -> Vec<RouteConfig> {
        let Value::Seq(items) = &node.value else {
            self.error(
                ConfigError::at(node.pos, "routes must be a list")
                    .hint("write each route as `- name: ...`"),
            );
            return Vec::new();
        };
        let mut routes = Vec::new();
        let mut names: HashMap<String, Pos> = HashMap::new();
        // (network, room) -> (route, position, direction, template) of its first appearance
        let mut seen: HashMap<(String, String), FirstAppearance> = HashMap::new();
        for item in items {
            let Some(route) = self.route(item, networks) else {
                continue;
            };
            if let Some(first) = names.get(&route.name) {
                self.error(
                    ConfigError::at(
                        item.pos,
                        format!("duplicate route name {}", self.route_name(item)),
                    )
                    .hint(format!(
                        "the first route with this name is at line {}",
                        first.line
                    )),
                );
            } else {
                names.insert(route.name.clone(), item.pos);
            }
            self.check_room_uses(item, &route, networks, &mut seen);
            routes.push(route);
        }
        routes
    }

    /// Checks each room of `route`: its name against its protocol's rules, and that a
    /// room used by several routes has the same settings in all of them (`seen`
    /// remembers each room's first appearance).
    fn check_room_uses(
        &mut self,
        item: &Node,
        route: &RouteConfig,
        networks: &BTreeMap<String, Option<String>>,
        seen: &mut HashMap<(String, String), FirstAppearance>,
    ) {
        let room_nodes = item.get("rooms").map(|(_, rooms)| rooms);
        for (index, room) in route.rooms.iter().enumerate() {
            let room_node = room_nodes.and_then(|rooms| rooms.value_at(&[index.to_string()]));
            let pos = room_node.map_or(item.pos, |n| n.pos);
            let room_value = room_node
                .and_then(|n| n.get(&room.network))
                .map(|(_, value)| value);
            let shown = room_value.map_or_else(|| format!("{:?}", room.room), |v| self.subject(v));
            let protocol = networks.get(&room.network).cloned().flatten();
            let problem = protocol
                .as_deref()
                .and_then(protocols::connector)
                .and_then(|connector| connector.room_problem(&room.room));
            if let Some(problem) = problem {
                self.error(
                    ConfigError::at(
                        pos,
                        format!("room {}: {shown} {}", room.network, problem.predicate),
                    )
                    .hint(problem.hint),
                );
            }
            let canonical = match protocol.as_deref() {
                Some(protocol) => protocols::canonical_room(protocol, &room.room),
                None => switchboard_sdk::RoomId::new(room.room.clone()),
            };
            let key = (room.network.clone(), canonical.as_str().to_owned());
            match seen.get(&key) {
                Some((first_route, first_pos, _, _)) if *first_route == route.name => self.error(
                    ConfigError::at(
                        pos,
                        format!(
                            "room {}: {shown} appears twice in route \"{}\"",
                            room.network, route.name
                        ),
                    )
                    .hint(format!("first at line {}; remove one", first_pos.line)),
                ),
                Some((first_route, first_pos, direction, template))
                    if *direction != room.direction || *template != room.nick_template =>
                {
                    self.error(
                        ConfigError::at(
                            pos,
                            format!(
                                "room {}: {shown} has conflicting settings in routes \"{}\" and \"{}\"",
                                room.network, first_route, route.name
                            ),
                        )
                        .hint(format!(
                            "line {} gives it {}; here it has {}; give a room the same settings in every route",
                            first_pos.line,
                            describe_room_settings(*direction, template.as_deref()),
                            describe_room_settings(room.direction, room.nick_template.as_deref())
                        )),
                    );
                }
                Some(_) => {}
                None => {
                    seen.insert(
                        key,
                        (
                            route.name.clone(),
                            pos,
                            room.direction,
                            room.nick_template.clone(),
                        ),
                    );
                }
            }
        }
    }

    /// A route's name as messages show it (see `subject`).
    fn route_name(&self, route: &Node) -> String {
        route
            .get("name")
            .map_or_else(|| "\"\"".to_owned(), |(_, name)| self.subject(name))
    }

    fn route(
        &mut self,
        node: &Node,
        networks: &BTreeMap<String, Option<String>>,
    ) -> Option<RouteConfig> {
        let Some(entries) = node.entries() else {
            self.error(ConfigError::at(
                node.pos,
                "a route must be a mapping with name: and rooms:",
            ));
            return None;
        };
        let errors_before = self.errors.len();
        let mut route = RouteConfig::linking("", Vec::<(String, String)>::new());
        let mut has_name = false;
        let mut rooms_node = None;
        for (key, value) in entries {
            match key.as_str().unwrap_or_default() {
                "name" => {
                    has_name = true;
                    route.name = self.string(value, "name").unwrap_or_default();
                }
                "rooms" => rooms_node = Some((key, value)),
                "nick_template" => {
                    if let Some(template) = self.template(value) {
                        route.nick_template = template;
                    }
                }
                "relay_membership" => {
                    route.relay_membership = self.boolean(value, "relay_membership")
                }
                "max_age" => route.max_age = self.duration(value, "max_age", MAX_MAX_AGE),
                "ignore" => route.ignore = self.ignore(value),
                _ => self.unknown_key(key, ROUTE_KEYS),
            }
        }
        if !has_name {
            self.error(
                ConfigError::at(node.pos, "missing required key \"name\" in route")
                    .hint("give every route a unique name"),
            );
        }
        match rooms_node {
            None => self.error(ConfigError::at(
                node.pos,
                "missing required key \"rooms\" in route",
            )),
            Some((key, rooms)) => {
                if let Value::Seq(items) = &rooms.value {
                    for item in items {
                        if let Some(room) = self.room(item, networks) {
                            route.rooms.push(room);
                        }
                    }
                    if items.len() < 2 {
                        self.error(
                            ConfigError::at(
                                key.pos,
                                format!(
                                    "route {} has {} room(s); a route links at least two",
                                    self.route_name(node),
                                    items.len()
                                ),
                            )
                            .hint("add another `- network: \"#room\"` entry"),
                        );
                    }
                } else {
                    self.error(ConfigError::at(
                        rooms.pos,
                        "rooms must be a list of `- network: room` entries",
                    ));
                }
            }
        }
        (self.errors.len() == errors_before).then_some(route)
    }

    fn room(
        &mut self,
        node: &Node,
        networks: &BTreeMap<String, Option<String>>,
    ) -> Option<RouteRoom> {
        let Some(entries) = node.entries() else {
            self.error(ConfigError::at(
                node.pos,
                "a room must be written `- network: room`",
            ));
            return None;
        };
        let mut direction = Direction::Both;
        let mut nick_template = None;
        let mut target: Option<(String, String)> = None;
        let mut ok = true;
        for (key, value) in entries {
            let name = key.key_text();
            match name.as_str() {
                "direction" => match self.string(value, "direction").as_deref() {
                    Some("both") => direction = Direction::Both,
                    Some("source") => direction = Direction::Source,
                    Some("sink") => direction = Direction::Sink,
                    Some(other) => {
                        ok = false;
                        let error = match self.env.describe(value.pos) {
                            Some(origin) => {
                                ConfigError::at(value.pos, format!("{origin} is not a direction"))
                                    .hint(suggest("", DIRECTIONS))
                            }
                            None => {
                                ConfigError::at(value.pos, format!("invalid direction \"{other}\""))
                                    .hint(suggest(other, DIRECTIONS))
                            }
                        };
                        self.error(error);
                    }
                    None => ok = false,
                },
                "nick_template" => nick_template = self.template(value),
                _ if target.is_some() => {
                    ok = false;
                    let hint = did_you_mean(&name, ROOM_OPTION_KEYS.iter().copied())
                        .unwrap_or_else(|| {
                            format!(
                                "a room names one network; its options are {}",
                                ROOM_OPTION_KEYS.join(", ")
                            )
                        });
                    self.error(
                        ConfigError::at(key.pos, format!("unexpected key \"{name}\" in room"))
                            .hint(hint),
                    );
                }
                _ => {
                    if !networks.contains_key(&name) {
                        ok = false;
                        let mut known: Vec<&str> = networks.keys().map(String::as_str).collect();
                        known.extend(ROOM_OPTION_KEYS);
                        let hint = did_you_mean(&name, known).unwrap_or_else(|| {
                            "networks are defined under networks: at the top".to_owned()
                        });
                        self.error(
                            ConfigError::at(key.pos, format!("unknown network \"{name}\""))
                                .hint(hint),
                        );
                    }
                    match self.string(value, "room") {
                        Some(room) if !room.trim().is_empty() => target = Some((name, room)),
                        Some(_) => {
                            ok = false;
                            self.error(ConfigError::at(value.pos, "empty room name"));
                        }
                        None => ok = false,
                    }
                }
            }
        }
        let Some((network, room)) = target else {
            if ok {
                self.error(
                    ConfigError::at(node.pos, "room entry names no network")
                        .hint("write `- network: \"#room\"`"),
                );
            }
            return None;
        };
        ok.then_some(RouteRoom {
            network,
            room,
            direction,
            nick_template,
        })
    }

    fn template(&mut self, node: &Node) -> Option<String> {
        let template = self.string(node, "nick_template")?;
        let mut rest = template.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { break };
            let name = &after[..close];
            if !PLACEHOLDERS.contains(&name) {
                let hint = did_you_mean(name, PLACEHOLDERS.iter().copied()).unwrap_or_else(|| {
                    "placeholders are {nick}, {network}, {protocol}, {room}".to_owned()
                });
                let message = match self.env.describe(node.pos) {
                    Some(origin) => format!("{origin} has an unknown placeholder"),
                    None => format!("unknown placeholder {{{name}}} in nick_template"),
                };
                self.error(ConfigError::at(node.pos, message).hint(hint));
                return None;
            }
            rest = &after[close + 1..];
        }
        Some(template)
    }

    fn ignore(&mut self, node: &Node) -> IgnoreRules {
        let mut rules = IgnoreRules::default();
        for (key, value) in self.map(node, "ignore") {
            let list = match key.as_str().unwrap_or_default() {
                "nicks" => &mut rules.nicks,
                "text" => &mut rules.text,
                _ => {
                    self.unknown_key(key, IGNORE_KEYS);
                    continue;
                }
            };
            let Value::Seq(items) = &value.value else {
                self.error(ConfigError::at(
                    value.pos,
                    format!("ignore.{} must be a list of regexes", key.key_text()),
                ));
                continue;
            };
            for item in items {
                let Some(pattern) = self.string(item, "an ignore rule") else {
                    continue;
                };
                match Regex::new(&pattern) {
                    Ok(regex) => list.push(regex),
                    Err(error) => {
                        let detail = error.to_string();
                        let last = detail
                            .lines()
                            .rfind(|l| !l.trim().is_empty())
                            .unwrap_or("invalid");
                        self.error(
                            ConfigError::at(
                                item.pos,
                                format!(
                                    "{} is not a valid regex: {}",
                                    self.subject(item),
                                    last.trim().trim_start_matches("error: ")
                                ),
                            )
                            .hint("rules use Rust regex syntax (https://docs.rs/regex)"),
                        );
                    }
                }
            }
        }
        rules
    }
}

/// Where a room was first seen: (route, position, direction, nick_template).
type FirstAppearance = (String, Pos, Direction, Option<String>);

fn describe_room_settings(direction: Direction, template: Option<&str>) -> String {
    let direction = match direction {
        Direction::Both => "both",
        Direction::Source => "source",
        Direction::Sink => "sink",
    };
    match template {
        Some(template) => format!("direction {direction} and nick_template {template:?}"),
        None => format!("direction {direction} and the route's nick_template"),
    }
}

/// Removes the entry at `path` from a JSON object tree; false if there is none.
fn remove_at(json: &mut serde_json::Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = json;
    for part in parents {
        current = match current {
            serde_json::Value::Object(map) => match map.get_mut(part) {
                Some(next) => next,
                None => return false,
            },
            serde_json::Value::Array(items) => {
                match part.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(next) => next,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match current {
        serde_json::Value::Object(map) => map.remove(last).is_some(),
        _ => false,
    }
}

/// The protocol section name of a network node (`irc` in `libera: {irc: ...}`).
fn protocol_of(node: &Node) -> Option<String> {
    match node.entries() {
        Some([(key, _)]) => Some(key.key_text()),
        _ => None,
    }
}

/// The names serde lists after ", expected" in an "unknown variant" message.
fn backticked_known(rest: &str) -> Vec<&str> {
    rest.split_once(", expected")
        .map_or("", |(_, expected)| expected)
        .split('`')
        .skip(1)
        .step_by(2)
        .collect()
}

/// Every `name` between backticks in `text` (serde's "expected one of" lists).
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}
