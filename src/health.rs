//! Connection health of every network, as adapters and the supervisor report it; read
//! by `/healthz` and by the supervisor (did a run get connected?). It is also the one
//! place that logs a network's state changes: one line per change, so that journald
//! tells the story of each network without repeating it on every retry.

use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use switchboard_sdk::{ConnectionState, NetworkId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkHealth {
    pub state: ConnectionState,
    /// When the state last changed (ms since the Unix epoch).
    pub since_ms: i64,
    /// The most recent error, kept after the network recovers.
    pub last_error: Option<String>,
    /// How many times the network became connected (so a supervisor can tell whether
    /// a run got connected, whoever reported it).
    pub connections: u64,
}

/// `/healthz` shows each network as `{"state", "since_ms", "last_error"}`: the error
/// once, whether it belongs to the current state or to an earlier one.
impl Serialize for NetworkHealth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            state: &'static str,
            since_ms: i64,
            last_error: Option<&'a str>,
        }
        Shown {
            state: state_name(&self.state),
            since_ms: self.since_ms,
            last_error: self.last_error.as_deref(),
        }
        .serialize(serializer)
    }
}

/// The state's name as `/healthz` and the logs show it.
pub fn state_name(state: &ConnectionState) -> &'static str {
    match state {
        ConnectionState::Starting => "starting",
        ConnectionState::Connected => "connected",
        ConnectionState::Reconnecting { .. } => "reconnecting",
        ConnectionState::Failed { .. } => "failed",
        ConnectionState::Stopped => "stopped",
    }
}

fn error_of(state: &ConnectionState) -> Option<&str> {
    match state {
        ConnectionState::Reconnecting { last_error } | ConnectionState::Failed { last_error } => {
            Some(last_error)
        }
        _ => None,
    }
}

#[derive(Default)]
pub struct HealthRegistry {
    networks: Mutex<BTreeMap<NetworkId, NetworkHealth>>,
    /// Destination rooms whose oldest queued row is older than
    /// `delivery.lagging_after`, by `network/room`.
    lagging: Mutex<BTreeMap<String, Lagging>>,
}

/// A lagging destination room as `/healthz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lagging {
    /// Rows queued for the room.
    pub queued: i64,
    /// When the oldest of them was accepted (ms since the Unix epoch).
    pub oldest_queued_ms: i64,
}

impl Lagging {
    pub fn new(queued: i64, oldest_queued_ms: i64) -> Self {
        Self {
            queued,
            oldest_queued_ms,
        }
    }
}

impl HealthRegistry {
    pub fn set(&self, network: &NetworkId, state: ConnectionState) {
        self.change(network, state, None);
    }

    /// As `set`, from the supervisor after a run ended: `retry_in` is when it tries
    /// again, and goes into the log line.
    pub fn set_retrying(&self, network: &NetworkId, state: ConnectionState, retry_in: Duration) {
        self.change(network, state, Some(retry_in));
    }

    fn change(&self, network: &NetworkId, state: ConnectionState, retry_in: Option<Duration>) {
        let mut networks = self.networks.lock().unwrap_or_else(|p| p.into_inner());
        let entry = networks.entry(network.clone());
        let first = matches!(entry, std::collections::btree_map::Entry::Vacant(_));
        let entry = entry.or_insert_with(|| NetworkHealth {
            state: ConnectionState::Starting,
            since_ms: switchboard_sdk::event::now_ms(),
            last_error: None,
            connections: 0,
        });
        let previous = std::mem::replace(&mut entry.state, state.clone());
        if let Some(error) = error_of(&state) {
            entry.last_error = Some(error.to_owned());
        }
        if previous != state {
            entry.since_ms = switchboard_sdk::event::now_ms();
        }
        let new_kind = first || state_name(&previous) != state_name(&state);
        if new_kind && state == ConnectionState::Connected {
            entry.connections += 1;
        }
        drop(networks);
        if new_kind {
            log_change(network, &previous, &state, retry_in);
        } else if previous != state {
            // Same state, another error (e.g. each failed reconnect): not news.
            tracing::debug!(%network, state = state_name(&state), error = error_of(&state), "network state unchanged; new error");
        }
    }

    /// A network removed from the daemon: no longer shown or counted.
    pub fn remove(&self, network: &NetworkId) {
        let mut networks = self.networks.lock().unwrap_or_else(|p| p.into_inner());
        networks.remove(network);
    }

    pub fn snapshot(&self) -> BTreeMap<NetworkId, NetworkHealth> {
        self.networks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn state_of(&self, network: &NetworkId) -> Option<ConnectionState> {
        self.snapshot()
            .get(network)
            .map(|health| health.state.clone())
    }

    /// How many times `network` became connected so far.
    pub fn connections(&self, network: &NetworkId) -> u64 {
        self.networks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(network)
            .map_or(0, |health| health.connections)
    }

    /// Reports `room` as lagging (`Some`) or no longer (`None`).
    pub fn set_lagging(&self, room: &switchboard_sdk::RoomKey, lagging: Option<Lagging>) {
        let mut rooms = self.lagging.lock().unwrap_or_else(|p| p.into_inner());
        match lagging {
            Some(lagging) => rooms.insert(room.to_string(), lagging),
            None => rooms.remove(&room.to_string()),
        };
    }

    /// The lagging rooms, by `network/room`.
    pub fn lagging(&self) -> BTreeMap<String, Lagging> {
        self.lagging
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn all_connected(&self) -> bool {
        self.snapshot()
            .values()
            .all(|health| health.state == ConnectionState::Connected)
    }
}

/// The one line for a change of a network's state. WARN only for `Failed`, which
/// needs a human (bad credentials, a room that does not exist); losing a connection
/// and getting it back are routine.
fn log_change(
    network: &NetworkId,
    previous: &ConnectionState,
    state: &ConnectionState,
    retry_in: Option<Duration>,
) {
    let retry_in = retry_in.map(|wait| format!("{:.1}s", wait.as_secs_f64()));
    let retry_in = retry_in.as_deref();
    match state {
        ConnectionState::Starting => tracing::info!(%network, "network starting"),
        ConnectionState::Connected => tracing::info!(%network, "network connected"),
        ConnectionState::Reconnecting { last_error } => {
            if *previous == ConnectionState::Connected {
                tracing::info!(%network, error = %last_error, retry_in, "network connection lost; reconnecting");
            } else {
                tracing::info!(%network, error = %last_error, retry_in, "network cannot connect; retrying");
            }
        }
        ConnectionState::Failed { last_error } => {
            tracing::warn!(%network, error = %last_error, retry_in, "network failed and needs attention; retrying slowly");
        }
        ConnectionState::Stopped => tracing::info!(%network, "network stopped"),
    }
}

/// Why `probe` got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0:?} is not a plain http:// URL with a host and port")]
    Url(String),
    #[error("cannot reach {url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{url} did not answer with HTTP")]
    NotHttp { url: String },
}

/// GETs a running daemon's `/healthz` (e.g. `http://127.0.0.1:9477/healthz`) and
/// returns the status code and body; for `switchboard healthcheck`, since the
/// container image has no HTTP client (curl would bring libcurl and OpenSSL).
pub fn probe(url: &str, timeout: Duration) -> Result<(u16, String), ProbeError> {
    use std::io::{Read, Write};
    let bad_url = || ProbeError::Url(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(bad_url)?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/healthz"),
    };
    let io = |source| ProbeError::Io {
        url: url.to_owned(),
        source,
    };
    let address = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|_| bad_url())?
        .next()
        .ok_or_else(bad_url)?;
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut answer = Vec::new();
    stream.take(1 << 20).read_to_end(&mut answer).map_err(io)?;
    let answer = String::from_utf8_lossy(&answer);
    let not_http = || ProbeError::NotHttp {
        url: url.to_owned(),
    };
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(not_http)?;
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|line| line.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(not_http)?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconnecting(error: &str) -> ConnectionState {
        ConnectionState::Reconnecting {
            last_error: error.to_owned(),
        }
    }

    #[test]
    fn healthz_shows_the_last_error_once() {
        let registry = HealthRegistry::default();
        let network = NetworkId::new("irc");
        registry.set(&network, ConnectionState::Connected);
        registry.set(&network, reconnecting("connection refused"));
        let json = serde_json::to_string(&registry.snapshot()[&network]).unwrap();
        assert_eq!(
            json.matches("\"last_error\"").count(),
            1,
            "last_error appears once: {json}"
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["state"], "reconnecting");
        assert_eq!(value["last_error"], "connection refused");
        // Kept after recovery, for operators.
        registry.set(&network, ConnectionState::Connected);
        let value = serde_json::to_value(&registry.snapshot()[&network]).unwrap();
        assert_eq!(value["state"], "connected");
        assert_eq!(value["last_error"], "connection refused");
    }

    #[test]
    fn counts_each_time_a_network_became_connected() {
        let registry = HealthRegistry::default();
        let network = NetworkId::new("irc");
        assert_eq!(registry.connections(&network), 0);
        registry.set(&network, ConnectionState::Starting);
        registry.set(&network, ConnectionState::Connected);
        registry.set(&network, ConnectionState::Connected);
        assert_eq!(registry.connections(&network), 1);
        registry.set(&network, reconnecting("lost"));
        registry.set(&network, ConnectionState::Connected);
        assert_eq!(registry.connections(&network), 2);
    }
}
