//! How the daemon registers Discord: the `discord:` section, channel names without
//! `#` and case, and the adapter built from the section.

use crate::config::DiscordConfig;
use crate::{DiscordAdapter, canonical_room};
use std::sync::Arc;
use switchboard_sdk::{
    Adapter, AdapterError, ConfigProblem, NetworkSection, Protocol, RoomId, RoomProblem,
};

/// The section key and the adapters' protocol name.
pub(crate) const PROTOCOL: &str = "discord";

pub struct DiscordConnector;

impl NetworkSection for DiscordConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        DiscordConfig::validate(self)
    }
}

impl Protocol for DiscordConnector {
    const NAME: &'static str = PROTOCOL;
    type Section = DiscordConfig;

    fn canonical(room: &str) -> RoomId {
        canonical_room(room)
    }

    fn check_room(room: &str) -> Option<RoomProblem> {
        let name = room.trim().trim_start_matches('#');
        let bad = name.is_empty()
            || name.chars().count() > 100
            || name.chars().any(|c| c.is_whitespace() || c.is_control());
        bad.then(|| RoomProblem {
            predicate: "is not a Discord channel name or id".into(),
            hint: "write the channel's name as Discord shows it (e.g. general or #general) or its id (Developer Mode: Copy Channel ID)".into(),
        })
    }

    fn adapter(config: &DiscordConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        let adapter: Arc<dyn Adapter> = DiscordAdapter::new(config.clone())?;
        Ok(adapter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::NetworkConnector;

    #[test]
    fn builds_an_adapter_and_writes_rooms_as_events_do() {
        let section = DiscordConnector
            .read_section(serde_json::json!({"token": "a.b.c", "guild": "g"}))
            .unwrap();
        assert!(section.validate().is_empty(), "{:?}", section.validate());
        let adapter = DiscordConnector.build(&*section).unwrap();
        assert_eq!(adapter.protocol(), "discord");
        assert_eq!(
            DiscordConnector.canonical_room(" #General ").as_str(),
            "general"
        );
        assert_eq!(
            DiscordConnector
                .canonical_room("81384788765712384")
                .as_str(),
            "81384788765712384"
        );
        assert!(DiscordConnector.room_problem("#general").is_none());
        assert!(DiscordConnector.room_problem("two words").is_some());
        assert!(DiscordConnector.room_problem("#").is_some());
        let error = DiscordConnector
            .read_section(serde_json::json!({"token": "a.b.c", "guild": "g", "gild": "x"}))
            .unwrap_err();
        assert_eq!(error.path, ["gild"]);
    }
}
