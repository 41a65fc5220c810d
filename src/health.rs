//! Connection health of every network, and which of its rooms it has joined, as
//! adapters and the supervisor report them; read by `/healthz`, by the supervisor
//! (did a run get connected?) and by whoever must know that rooms were joined
//! ([`HealthRegistry::wait_joined`]). It is also the one place that logs a network's
//! state and room changes: one line per change, so that journald tells the story of
//! each network without repeating it on every retry.
//!
//! Rooms count as joined only on the connection that joined them: any state other
//! than `Connected` (a lost connection, a run that ended) forgets the joined rooms
//! (the adapter reports them again as it rejoins, before or after `Connected`), and a
//! network (re)started (`Starting`) begins with no room state at all, so that a
//! refusal from before a restart does not stand for the new run.

use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::Duration;
use switchboard_sdk::{ConnectionState, NetworkId, RoomId, RoomReport};
use tokio::sync::watch;

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
    /// The rooms the adapter reported joined or refused.
    pub rooms: RoomsHealth,
    /// A standing problem the adapter reported (see `HealthReporter::problem`).
    pub problem: Option<String>,
    /// Joined rooms forgotten when the connection was lost: joining them again is
    /// no news for the log.
    rejoining: BTreeSet<RoomId>,
}

/// One network's rooms, as its adapter reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoomsHealth {
    /// Joined on the current connection.
    pub joined: BTreeSet<RoomId>,
    /// Refused by the server, and not joined since.
    pub failed: BTreeMap<RoomId, RoomFailure>,
}

/// Why a room could not be joined, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomFailure {
    /// The server's refusal, as the adapter reported it.
    pub error: String,
    /// When it was first reported (ms since the Unix epoch); a retry refused for the
    /// same reason keeps it.
    pub since_ms: i64,
}

/// `/healthz` shows each network as `{"state", "since_ms", "last_error",
/// "rooms_joined", "rooms_failed"}`: the error once, whether it belongs to the
/// current state or to an earlier one; how many rooms are joined; and each refused
/// room with its error.
impl Serialize for NetworkHealth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            state: &'static str,
            since_ms: i64,
            last_error: Option<&'a str>,
            rooms_joined: usize,
            rooms_failed: BTreeMap<&'a str, &'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            problem: Option<&'a str>,
        }
        Shown {
            state: state_name(&self.state),
            since_ms: self.since_ms,
            last_error: self.last_error.as_deref(),
            rooms_joined: self.rooms.joined.len(),
            rooms_failed: self
                .rooms
                .failed
                .iter()
                .map(|(room, failure)| (room.as_str(), failure.error.as_str()))
                .collect(),
            problem: self.problem.as_deref(),
        }
        .serialize(serializer)
    }
}

/// Why [`HealthRegistry::wait_joined`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinWaitError {
    #[error("network {network} cannot join {room}: {error}")]
    Refused {
        network: NetworkId,
        room: RoomId,
        error: String,
    },
    #[error("network {network} did not join {} within {deadline:?}", list(.rooms))]
    TimedOut {
        network: NetworkId,
        /// The rooms not joined by the deadline.
        rooms: Vec<RoomId>,
        deadline: Duration,
    },
}

/// Why `wait_connected` gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectWaitError {
    #[error("network {network} failed: {error}")]
    Failed { network: NetworkId, error: String },
    #[error("network {network} did not connect within {deadline:?}{}", last_error.as_ref().map_or(String::new(), |e| format!(" (last error: {e})")))]
    TimedOut {
        network: NetworkId,
        last_error: Option<String>,
        deadline: Duration,
    },
}

fn list(rooms: &[RoomId]) -> String {
    rooms
        .iter()
        .map(RoomId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
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
    /// Bumped after every change of a network's rooms or state, for `wait_joined`.
    changed: watch::Sender<()>,
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
            rooms: RoomsHealth::default(),
            problem: None,
            rejoining: BTreeSet::new(),
        });
        let previous = std::mem::replace(&mut entry.state, state.clone());
        if state == ConnectionState::Starting {
            // A new start: nothing the previous run reported stands for it.
            entry.rooms = RoomsHealth::default();
            entry.problem = None;
            entry.rejoining.clear();
        } else if state != ConnectionState::Connected {
            // The rooms go with the connection (or with a run that ended before it
            // was up); the adapter reports them again as it rejoins.
            let joined = std::mem::take(&mut entry.rooms.joined);
            entry.rejoining.extend(joined);
        }
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
        self.changed.send_modify(|_| {});
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
        drop(networks);
        self.changed.send_modify(|_| {});
    }

    /// What `network`'s adapter reported about `room`. Ignored for a network this
    /// registry does not show (never started, or removed): a late report must not
    /// bring it back.
    /// A standing problem of the network (`None`: solved), shown on `/healthz`.
    pub fn set_problem(&self, network: &NetworkId, problem: Option<String>) {
        let mut networks = self.networks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = networks.get_mut(network) {
            entry.problem = problem;
        }
    }

    pub fn set_room(&self, network: &NetworkId, room: &RoomId, report: RoomReport) {
        let mut networks = self.networks.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = networks.get_mut(network) else {
            return;
        };
        let rooms = &mut entry.rooms;
        let news = match &report {
            RoomReport::Joined => {
                let rejoined = entry.rejoining.remove(room);
                let refused = rooms.failed.remove(room).is_some();
                rooms.joined.insert(room.clone()) && (refused || !rejoined)
            }
            RoomReport::JoinFailed { error } => {
                entry.rejoining.remove(room);
                let was_joined = rooms.joined.remove(room);
                match rooms.failed.get_mut(room) {
                    // The same refusal again (a retry): no news, and its `since` stays.
                    Some(failure) if failure.error == *error => was_joined,
                    Some(failure) => {
                        failure.error = error.clone();
                        true
                    }
                    None => {
                        let since_ms = switchboard_sdk::event::now_ms();
                        let failure = RoomFailure {
                            error: error.clone(),
                            since_ms,
                        };
                        rooms.failed.insert(room.clone(), failure);
                        true
                    }
                }
            }
            RoomReport::Left => {
                let rejoining = entry.rejoining.remove(room);
                let joined = rooms.joined.remove(room);
                let failed = rooms.failed.remove(room).is_some();
                joined || failed || rejoining
            }
        };
        drop(networks);
        self.changed.send_modify(|_| {});
        match report {
            RoomReport::Joined if news => tracing::info!(%network, %room, "room joined"),
            RoomReport::JoinFailed { error } if news => {
                tracing::warn!(%network, %room, %error, "room cannot be joined and needs attention");
            }
            RoomReport::Left if news => tracing::info!(%network, %room, "room left"),
            report => tracing::debug!(%network, %room, ?report, "room unchanged"),
        }
    }

    /// `network`'s rooms as its adapter reported them (empty for a network this
    /// registry does not show).
    pub fn rooms(&self, network: &NetworkId) -> RoomsHealth {
        self.networks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(network)
            .map(|health| health.rooms.clone())
            .unwrap_or_default()
    }

    /// Waits until `network` has joined every one of `rooms`. Fails as soon as one
    /// of them is refused (the first in `rooms` order, with the server's error), or
    /// after `deadline` naming those not joined. A refusal reported before the call
    /// counts (it is the room's last word); one from before the network's last
    /// (re)start does not (see the module header).
    pub async fn wait_joined(
        &self,
        network: &NetworkId,
        rooms: &[RoomId],
        deadline: Duration,
    ) -> Result<(), JoinWaitError> {
        let waited = self
            .wait_for(deadline, |networks| {
                let health = networks.get(network).map(|health| &health.rooms);
                let mut missing = Vec::new();
                for room in rooms {
                    if let Some(failure) = health.and_then(|health| health.failed.get(room)) {
                        return ControlFlow::Break(Err(JoinWaitError::Refused {
                            network: network.clone(),
                            room: room.clone(),
                            error: failure.error.clone(),
                        }));
                    }
                    if !health.is_some_and(|health| health.joined.contains(room)) {
                        missing.push(room.clone());
                    }
                }
                if missing.is_empty() {
                    ControlFlow::Break(Ok(()))
                } else {
                    ControlFlow::Continue(missing)
                }
            })
            .await;
        waited.unwrap_or_else(|missing| {
            Err(JoinWaitError::TimedOut {
                network: network.clone(),
                rooms: missing,
                deadline,
            })
        })
    }

    /// Waits until `network` is connected. Fails as soon as it is `Failed` (a
    /// permanent error), or after `deadline` with its last error.
    pub async fn wait_connected(
        &self,
        network: &NetworkId,
        deadline: Duration,
    ) -> Result<(), ConnectWaitError> {
        let waited = self
            .wait_for(deadline, |networks| {
                let health = networks.get(network);
                match health.map(|health| &health.state) {
                    Some(ConnectionState::Connected) => ControlFlow::Break(Ok(())),
                    Some(ConnectionState::Failed { last_error }) => {
                        ControlFlow::Break(Err(ConnectWaitError::Failed {
                            network: network.clone(),
                            error: last_error.clone(),
                        }))
                    }
                    _ => ControlFlow::Continue(health.and_then(|h| h.last_error.clone())),
                }
            })
            .await;
        waited.unwrap_or_else(|last_error| {
            Err(ConnectWaitError::TimedOut {
                network: network.clone(),
                last_error,
                deadline,
            })
        })
    }

    /// Looks at the networks now and after each change until `look` breaks with an
    /// answer; at `deadline`, gives what `look` last said it was waiting for.
    async fn wait_for<T, Pending>(
        &self,
        deadline: Duration,
        look: impl Fn(&BTreeMap<NetworkId, NetworkHealth>) -> ControlFlow<T, Pending>,
    ) -> Result<T, Pending> {
        let until = tokio::time::Instant::now() + deadline;
        // Subscribed before each look, so a change between the look and the wait
        // still wakes it.
        let mut changes = self.changed.subscribe();
        loop {
            let pending = {
                let networks = self.networks.lock().unwrap_or_else(|p| p.into_inner());
                match look(&networks) {
                    ControlFlow::Break(answer) => return Ok(answer),
                    ControlFlow::Continue(pending) => pending,
                }
            };
            // The sender lives as long as `self`: `changed` cannot fail here.
            if tokio::time::timeout_at(until, changes.changed())
                .await
                .is_err()
            {
                return Err(pending);
            }
        }
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

/// GETs a running daemon's `/healthz` (e.g. `http://127.0.0.1:9477/healthz`; a URL
/// without a path gets `/healthz`) and returns the status code and body; for
/// `switchboard healthcheck`, since the container image has no HTTP client.
pub fn probe(
    url: &str,
    timeout: Duration,
) -> Result<(u16, String), crate::http::client::RequestError> {
    crate::http::client::request("GET", url, "/healthz", &[], b"", timeout)
        .map(|answer| (answer.status, answer.body))
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

    fn room(name: &str) -> RoomId {
        RoomId::new(name)
    }

    fn refused(error: &str) -> RoomReport {
        RoomReport::JoinFailed {
            error: error.to_owned(),
        }
    }

    /// A registry with `network` connected, as the daemon has it after a start.
    fn connected(network: &NetworkId) -> std::sync::Arc<HealthRegistry> {
        let registry = std::sync::Arc::new(HealthRegistry::default());
        registry.set(network, ConnectionState::Starting);
        registry.set(network, ConnectionState::Connected);
        registry
    }

    #[test]
    fn a_standing_problem_shows_until_solved_or_the_network_starts_again() {
        let network = NetworkId::new("discord");
        let registry = connected(&network);
        let shown = |registry: &HealthRegistry| {
            serde_json::to_value(&registry.snapshot()[&network]).unwrap()["problem"].clone()
        };
        assert_eq!(shown(&registry), serde_json::Value::Null);
        registry.set_problem(&network, Some("no Message Content intent".into()));
        assert_eq!(shown(&registry), "no Message Content intent");
        assert_eq!(
            registry.snapshot()[&network].state,
            ConnectionState::Connected,
            "a problem is not a state"
        );
        registry.set_problem(&network, None);
        assert_eq!(shown(&registry), serde_json::Value::Null);
        registry.set_problem(&network, Some("again".into()));
        registry.set(&network, ConnectionState::Starting);
        assert_eq!(shown(&registry), serde_json::Value::Null);
    }

    #[test]
    fn healthz_shows_rooms_joined_and_refused() {
        let network = NetworkId::new("irc");
        let registry = connected(&network);
        registry.set_room(&network, &room("#a"), RoomReport::Joined);
        registry.set_room(&network, &room("#b"), RoomReport::Joined);
        registry.set_room(&network, &room("#locked"), refused("473: invite only"));
        let value = serde_json::to_value(&registry.snapshot()[&network]).unwrap();
        assert_eq!(value["state"], "connected");
        assert_eq!(value["rooms_joined"], 2);
        assert_eq!(
            value["rooms_failed"],
            serde_json::json!({"#locked": "473: invite only"})
        );
        let rooms = registry.rooms(&network);
        assert_eq!(rooms.joined, [room("#a"), room("#b")].into());
        assert_eq!(rooms.failed[&room("#locked")].error, "473: invite only");
        // A refusal repeated keeps its first time; a join clears it; leaving forgets.
        let since = rooms.failed[&room("#locked")].since_ms;
        registry.set_room(&network, &room("#locked"), refused("473: invite only"));
        assert_eq!(
            registry.rooms(&network).failed[&room("#locked")].since_ms,
            since
        );
        registry.set_room(&network, &room("#locked"), RoomReport::Joined);
        registry.set_room(&network, &room("#a"), RoomReport::Left);
        let rooms = registry.rooms(&network);
        assert!(rooms.failed.is_empty());
        assert_eq!(rooms.joined, [room("#b"), room("#locked")].into());
    }

    #[test]
    fn a_lost_connection_unjoins_every_room_and_a_restart_forgets_refusals() {
        let network = NetworkId::new("irc");
        let registry = connected(&network);
        registry.set_room(&network, &room("#a"), RoomReport::Joined);
        registry.set_room(&network, &room("#b"), refused("banned"));
        registry.set(&network, reconnecting("lost"));
        let rooms = registry.rooms(&network);
        assert!(rooms.joined.is_empty(), "{rooms:?}");
        assert_eq!(rooms.failed.len(), 1, "a refusal is kept until re-reported");
        // Joined by a run that ended before it was up: forgotten with that run.
        registry.set_room(&network, &room("#a"), RoomReport::Joined);
        registry.set(&network, reconnecting("websocket refused"));
        assert!(registry.rooms(&network).joined.is_empty());
        // Joined again while reconnecting: it stays joined once connected.
        registry.set_room(&network, &room("#a"), RoomReport::Joined);
        registry.set(&network, ConnectionState::Connected);
        assert_eq!(registry.rooms(&network).joined, [room("#a")].into());
        registry.set(&network, ConnectionState::Starting);
        assert_eq!(registry.rooms(&network), RoomsHealth::default());
        // A report for a network the registry does not show brings nothing back.
        registry.remove(&network);
        registry.set_room(&network, &room("#a"), RoomReport::Joined);
        assert!(registry.snapshot().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn wait_connected_waits_for_connected_and_gives_up_on_failed_or_at_the_deadline() {
        let network = NetworkId::new("irc");
        let registry = std::sync::Arc::new(HealthRegistry::default());
        registry.set(&network, ConnectionState::Starting);
        let waiter = {
            let (registry, network) = (registry.clone(), network.clone());
            tokio::spawn(async move {
                registry
                    .wait_connected(&network, Duration::from_secs(30))
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        registry.set(&network, ConnectionState::Connected);
        assert_eq!(waiter.await.unwrap(), Ok(()));

        registry.set(&network, reconnecting("connection refused"));
        let timed_out = registry
            .wait_connected(&network, Duration::from_secs(5))
            .await;
        assert_eq!(
            timed_out,
            Err(ConnectWaitError::TimedOut {
                network: network.clone(),
                last_error: Some("connection refused".into()),
                deadline: Duration::from_secs(5),
            })
        );
        registry.set(
            &network,
            ConnectionState::Failed {
                last_error: "bad password".into(),
            },
        );
        assert!(matches!(
            registry.wait_connected(&network, Duration::from_secs(5)).await,
            Err(ConnectWaitError::Failed { error, .. }) if error == "bad password"
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_joined_returns_once_every_room_is_joined() {
        let network = NetworkId::new("irc");
        let registry = connected(&network);
        registry.set_room(&network, &room("#a"), RoomReport::Joined);
        let waiter = {
            let (registry, network) = (registry.clone(), network.clone());
            tokio::spawn(async move {
                let rooms = [room("#a"), room("#b")];
                registry
                    .wait_joined(&network, &rooms, Duration::from_secs(30))
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "#b is not joined yet");
        registry.set_room(&network, &room("#b"), RoomReport::Joined);
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_joined_fails_at_the_first_refusal() {
        let network = NetworkId::new("irc");
        let registry = connected(&network);
        let started = tokio::time::Instant::now();
        let waiter = {
            let (registry, network) = (registry.clone(), network.clone());
            tokio::spawn(async move {
                let rooms = [room("#a"), room("#b")];
                registry
                    .wait_joined(&network, &rooms, Duration::from_secs(30))
                    .await
            })
        };
        tokio::task::yield_now().await;
        registry.set_room(&network, &room("#b"), refused("474: banned"));
        let error = waiter.await.unwrap().unwrap_err();
        assert_eq!(
            error,
            JoinWaitError::Refused {
                network: network.clone(),
                room: room("#b"),
                error: "474: banned".into()
            }
        );
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "failed before the deadline"
        );
        // A refusal already known fails a new wait at once.
        let again = registry
            .wait_joined(&network, &[room("#b")], Duration::from_secs(30))
            .await;
        assert!(matches!(again, Err(JoinWaitError::Refused { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_joined_times_out_naming_the_rooms_not_joined() {
        let network = NetworkId::new("irc");
        let registry = connected(&network);
        registry.set_room(&network, &room("#a"), RoomReport::Joined);
        let started = tokio::time::Instant::now();
        let rooms = [room("#a"), room("#b"), room("#c")];
        let error = registry
            .wait_joined(&network, &rooms, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(
            error,
            JoinWaitError::TimedOut {
                network: network.clone(),
                rooms: vec![room("#b"), room("#c")],
                deadline: Duration::from_secs(30),
            }
        );
        assert_eq!(
            error.to_string(),
            "network irc did not join #b, #c within 30s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_connection_holds_wait_joined_until_rooms_are_rejoined() {
        let network = NetworkId::new("irc");
        let registry = connected(&network);
        registry.set_room(&network, &room("#a"), RoomReport::Joined);
        registry.set(&network, reconnecting("lost"));
        let waiter = {
            let (registry, network) = (registry.clone(), network.clone());
            tokio::spawn(async move {
                registry
                    .wait_joined(&network, &[room("#a")], Duration::from_secs(30))
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "#a went with the connection");
        registry.set_room(&network, &room("#a"), RoomReport::Joined);
        assert_eq!(waiter.await.unwrap(), Ok(()));
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
