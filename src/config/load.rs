//! From a file to a typed `Config`, collecting every problem on the way.

use super::errors::{ConfigError, ConfigErrors, did_you_mean, suggest};
use super::tree::{Node, Pos, Value};
use super::types::*;
use super::{duration, protocols};
use regex::Regex;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const TOP_KEYS: &[&str] = &["state_dir", "http", "delivery", "networks", "routes"];
const HTTP_KEYS: &[&str] = &["listen", "allow_non_loopback"];
const DELIVERY_KEYS: &[&str] = &["retry_initial", "retry_max", "shutdown_deadline"];
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

/// Reads, parses and validates `path`, reporting every problem found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        file: file.clone(),
        errors,
    };
    let text = std::fs::read_to_string(path).map_err(|error| {
        fail(vec![ConfigError {
            pos: None,
            message: format!("cannot read: {error}"),
            hint: None,
        }])
    })?;
    load_str(&text).map_err(fail)
}

/// Validates config text; errors carry positions but no file name.
pub fn load_str(text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut root: Node = match serde_saphyr::from_str(text) {
        Ok(root) => root,
        Err(error) => {
            let pos = error
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    column: l.column(),
                })
                .unwrap_or(Pos { line: 1, column: 1 });
            let message = strip_location(&error.without_snippet().to_string());
            return Err(vec![ConfigError::at(
                pos,
                format!("YAML syntax: {message}"),
            )]);
        }
    };
    let mut loader = Loader {
        text,
        errors: Vec::new(),
        secrets: Vec::new(),
    };
    loader.substitute_env(&mut root);
    let config = loader.config(&root);
    let mut errors = loader.errors;
    if errors.is_empty() {
        return Ok(config);
    }
    errors.sort_by_key(|e| e.pos);
    errors.dedup();
    Err(errors)
}

fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

pub(super) struct Loader<'t> {
    text: &'t str,
    errors: Vec<ConfigError>,
    /// Positions and values of strings that came from the environment: never echoed.
    secrets: Vec<(Pos, String)>,
}

impl Loader<'_> {
    fn error(&mut self, error: ConfigError) {
        let mut error = error;
        for (_, secret) in &self.secrets {
            if !secret.is_empty() && error.message.contains(secret.as_str()) {
                error.message = error.message.replace(secret.as_str(), "<from environment>");
            }
        }
        self.errors.push(error);
    }

    fn unknown_key(&mut self, key: &Node, known: &[&str]) {
        let name = key.key_text();
        self.error(
            ConfigError::at(key.pos, format!("unknown key \"{name}\"")).hint(suggest(&name, known)),
        );
    }

    /// Replaces `${NAME}` in every string with the environment variable's value.
    fn substitute_env(&mut self, node: &mut Node) {
        match &mut node.value {
            Value::Str(text) if text.contains("${") => {
                let quoted = self
                    .char_at(node.pos)
                    .is_some_and(|c| c == '"' || c == '\'');
                let mut out = String::new();
                let mut rest = text.as_str();
                let mut offset = 0u64;
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let column = node.pos.column
                        + u64::from(quoted)
                        + offset
                        + rest[..start].chars().count() as u64;
                    let pos = Pos {
                        line: node.pos.line,
                        column,
                    };
                    let Some(end) = after.find('}') else {
                        self.error(
                            ConfigError::at(pos, "unclosed ${ in string")
                                .hint("write ${NAME} or remove the $"),
                        );
                        out.push_str(&rest[start..]);
                        rest = "";
                        break;
                    };
                    let name = &after[..end];
                    let valid = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !name.starts_with(|c: char| c.is_ascii_digit());
                    if !valid {
                        self.error(ConfigError::at(
                            pos,
                            format!("invalid environment variable name \"{name}\""),
                        ));
                    } else {
                        match std::env::var(name) {
                            Ok(value) => out.push_str(&value),
                            Err(_) => self.error(
                                ConfigError::at(pos, format!("environment variable {name} is not set"))
                                    .hint(format!("export {name}=... before starting, or put the value in the file")),
                            ),
                        }
                    }
                    offset += rest[..start + 2 + end + 1].chars().count() as u64;
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                self.secrets.push((node.pos, out.clone()));
                *text = out;
            }
            Value::Seq(items) => items.iter_mut().for_each(|item| self.substitute_env(item)),
            Value::Map(entries) => entries
                .iter_mut()
                .for_each(|(_, value)| self.substitute_env(value)),
            _ => {}
        }
    }

    fn char_at(&self, pos: Pos) -> Option<char> {
        let line = self.text.lines().nth(pos.line.checked_sub(1)? as usize)?;
        line.chars().nth(pos.column.checked_sub(1)? as usize)
    }

    /// Deserialises a section with serde, mapping its errors to positions.
    ///
    /// Serde stops at the first problem, so the offending key is removed and the
    /// section read again: one typo does not hide the next problem. Returns the value
    /// (with defaults where keys were removed) and the paths that were removed.
    fn typed<T: DeserializeOwned>(
        &mut self,
        owner: &Node,
        node: &Node,
    ) -> Option<(T, Vec<Vec<String>>)> {
        let mut json = node.to_json();
        let mut removed: Vec<Vec<String>> = Vec::new();
        for _ in 0..32 {
            match serde_path_to_error::deserialize::<_, T>(json.clone()) {
                Ok(value) => return Some((value, removed)),
                Err(error) => {
                    let path: Vec<String> = error
                        .path()
                        .iter()
                        .map(|segment| segment.to_string())
                        .collect();
                    let message = error.inner().to_string();
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
        } else if let Some(rest) = message.strip_prefix("unknown variant `") {
            let name = rest.split('`').next().unwrap_or_default();
            let expected = backticked(rest.split_once(", expected").map_or("", |(_, e)| e));
            let known: Vec<&str> = expected.iter().map(String::as_str).collect();
            let pos = node.value_at(path).map_or(node.pos, |v| v.pos);
            ConfigError::at(pos, format!("invalid value \"{name}\"")).hint(suggest(name, &known))
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
            _ => {
                self.error(ConfigError::at(
                    node.pos,
                    format!("{what} must be a string"),
                ));
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

    fn duration(&mut self, node: &Node, what: &str) -> Option<std::time::Duration> {
        let text = self.string(node, what)?;
        match duration::parse(&text) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(
                    ConfigError::at(node.pos, format!("{what}: {message}"))
                        .hint("write e.g. 500ms, 30s, 5m, 1h"),
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
            delivery: DeliveryConfig {
                retry_initial: std::time::Duration::from_secs(1),
                retry_max: std::time::Duration::from_secs(300),
                shutdown_deadline: std::time::Duration::from_secs(10),
            },
            networks: BTreeMap::new(),
            routes: Vec::new(),
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
                _ => self.unknown_key(key, TOP_KEYS),
            }
        }
        if !networks_seen {
            self.error(
                ConfigError::at(root.pos, "missing required key \"networks\"")
                    .hint("add networks: with at least two networks"),
            );
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
        let (pos, text) = listen.unwrap_or((node.pos, DEFAULT_HTTP_LISTEN.into()));
        if text == "off" {
            return HttpConfig { listen: None };
        }
        match text.parse::<SocketAddr>() {
            Ok(address) if !address.ip().is_loopback() && !allow_non_loopback => {
                self.error(
                    ConfigError::at(pos, format!("http.listen {address} is not a loopback address"))
                        .hint("/metrics and /healthz are for operators: keep them on 127.0.0.1, or set allow_non_loopback: true"),
                );
                HttpConfig { listen: None }
            }
            Ok(address) => HttpConfig {
                listen: Some(address),
            },
            Err(_) => {
                self.error(
                    ConfigError::at(pos, format!("invalid http.listen address \"{text}\""))
                        .hint("write ip:port, e.g. 127.0.0.1:9477, or off"),
                );
                HttpConfig { listen: None }
            }
        }
    }

    fn delivery(&mut self, node: &Node, delivery: &mut DeliveryConfig) {
        for (key, value) in self.map(node, "delivery") {
            let slot = match key.as_str().unwrap_or_default() {
                "retry_initial" => &mut delivery.retry_initial,
                "retry_max" => &mut delivery.retry_max,
                "shutdown_deadline" => &mut delivery.shutdown_deadline,
                _ => {
                    self.unknown_key(key, DELIVERY_KEYS);
                    continue;
                }
            };
            if let Some(d) = self.duration(value, &key.key_text()) {
                *slot = d;
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
                    .hint(format!("known protocols: {}", protocols::NAMES.join(", "))),
                );
                continue;
            };
            let protocol = protocol_key.key_text();
            if !protocols::NAMES.contains(&protocol.as_str()) {
                self.error(
                    ConfigError::at(protocol_key.pos, format!("unknown protocol \"{protocol}\""))
                        .hint(format!(
                            "{}known protocols: {}",
                            did_you_mean(&protocol, protocols::NAMES.iter().copied())
                                .map_or(String::new(), |h| format!("{h} ")),
                            protocols::NAMES.join(", ")
                        )),
                );
                continue;
            }
            if let Some(network) = protocols::parse(self, &protocol, protocol_key, protocol_section)
            {
                networks.insert(name, network);
            }
        }
        networks
    }

    /// Used by protocol parsers: deserialise and validate a section.
    pub(super) fn section<T: DeserializeOwned>(
        &mut self,
        owner: &Node,
        node: &Node,
        validate: impl FnOnce(&T) -> Vec<switchboard_sdk::ConfigProblem>,
    ) -> Option<T> {
        let (value, removed) = self.typed::<T>(owner, node)?;
        let mut clean = removed.is_empty();
        for problem in validate(&value) {
            // A key that was removed for being wrong is already reported.
            if removed.iter().any(|gone| problem.path.starts_with(gone)) {
                continue;
            }
            clean = false;
            let pos = node
                .value_at(&problem.path)
                .map_or_else(|| node.locate(&problem.path), |v| v.pos);
            self.error(ConfigError::at(pos, problem.message).maybe_hint(problem.hint));
        }
        clean.then_some(value)
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
                    ConfigError::at(item.pos, format!("duplicate route name \"{}\"", route.name))
                        .hint(format!(
                            "the first route with this name is at line {}",
                            first.line
                        )),
                );
            } else {
                names.insert(route.name.clone(), item.pos);
            }
            let room_nodes = item.get("rooms").map(|(_, rooms)| rooms);
            for (index, room) in route.rooms.iter().enumerate() {
                let pos = room_nodes
                    .and_then(|rooms| rooms.value_at(&[index.to_string()]))
                    .map_or(item.pos, |n| n.pos);
                let protocol = networks.get(&room.network).cloned().flatten();
                if let Some((problem, hint)) =
                    protocols::room_problem(protocol.as_deref(), &room.room)
                {
                    self.error(
                        ConfigError::at(pos, format!("room {}: {problem}", room.network))
                            .hint(hint),
                    );
                }
                let key = (
                    room.network.clone(),
                    protocols::canonical_room(protocol.as_deref(), &room.room),
                );
                match seen.get(&key) {
                    Some((first_route, first_pos, _, _)) if *first_route == route.name => self
                        .error(
                            ConfigError::at(
                                pos,
                                format!(
                                    "room {}: \"{}\" appears twice in route \"{}\"",
                                    room.network, room.room, route.name
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
                                    "room {}: \"{}\" has conflicting settings in routes \"{}\" and \"{}\"",
                                    room.network, room.room, first_route, route.name
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
            routes.push(route);
        }
        routes
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
                "max_age" => route.max_age = self.duration(value, "max_age"),
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
                                    "route \"{}\" has {} room(s); a route links at least two",
                                    route.name,
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
                        self.error(
                            ConfigError::at(value.pos, format!("invalid direction \"{other}\""))
                                .hint(suggest(other, DIRECTIONS)),
                        );
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
                self.error(
                    ConfigError::at(
                        node.pos,
                        format!("unknown placeholder {{{name}}} in nick_template"),
                    )
                    .hint(hint),
                );
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
                                    "invalid regex \"{pattern}\": {}",
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

/// Every `name` between backticks in `text` (serde's "expected one of" lists).
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}
