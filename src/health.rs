//! Connection health of every network, as adapters report it; read by `/healthz`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use switchboard_sdk::{ConnectionState, NetworkId};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NetworkHealth {
    #[serde(flatten)]
    pub state: ConnectionState,
    /// When the state last changed (ms since the Unix epoch).
    pub since_ms: i64,
    /// The most recent error, kept after the network recovers.
    pub last_error: Option<String>,
}

#[derive(Default)]
pub struct HealthRegistry {
    networks: Mutex<BTreeMap<NetworkId, NetworkHealth>>,
}

impl HealthRegistry {
    pub fn set(&self, network: &NetworkId, state: ConnectionState) {
        let mut networks = self.networks.lock().unwrap_or_else(|p| p.into_inner());
        let entry = networks
            .entry(network.clone())
            .or_insert_with(|| NetworkHealth {
                state: ConnectionState::Starting,
                since_ms: switchboard_sdk::event::now_ms(),
                last_error: None,
            });
        if let ConnectionState::Reconnecting { last_error }
        | ConnectionState::Failed { last_error } = &state
        {
            entry.last_error = Some(last_error.clone());
        }
        if entry.state != state {
            entry.since_ms = switchboard_sdk::event::now_ms();
        }
        entry.state = state;
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

    pub fn all_connected(&self) -> bool {
        self.snapshot()
            .values()
            .all(|health| health.state == ConnectionState::Connected)
    }
}
