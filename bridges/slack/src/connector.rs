//! How the daemon registers Slack: the `slack:` section, channel names without `#`
//! and case, and the adapter built from the section.

use crate::config::SlackConfig;
use crate::{SlackAdapter, canonical_room};
use std::sync::Arc;
use switchboard_sdk::{
    Adapter, AdapterError, ConfigProblem, NetworkSection, Protocol, RoomId, RoomProblem,
};

/// The section key and the adapters' protocol name.
pub(crate) const PROTOCOL: &str = "slack";

pub struct SlackConnector;

impl NetworkSection for SlackConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        SlackConfig::validate(self)
    }
}

impl Protocol for SlackConnector {
    const NAME: &'static str = PROTOCOL;
    type Section = SlackConfig;

    fn canonical(room: &str) -> RoomId {
        canonical_room(room)
    }

    fn check_room(room: &str) -> Option<RoomProblem> {
        let name = room.trim().trim_start_matches('#');
        let bad = name.is_empty()
            || name.len() > 80
            || name.chars().any(|c| c.is_whitespace() || c == ',');
        bad.then(|| RoomProblem {
            predicate: "is not a Slack channel name or id".into(),
            hint: "write the channel's name as Slack shows it (e.g. general or #general) or its id (C0123ABCD)".into(),
        })
    }

    fn adapter(config: &SlackConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        let adapter: Arc<dyn Adapter> = SlackAdapter::new(config.clone())?;
        Ok(adapter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::NetworkConnector;

    #[test]
    fn builds_an_adapter_and_writes_rooms_as_events_do() {
        let section = SlackConnector
            .read_section(serde_json::json!({"bot_token": "xoxb-1", "app_token": "xapp-1"}))
            .unwrap();
        assert!(section.validate().is_empty(), "{:?}", section.validate());
        let adapter = SlackConnector.build(&*section).unwrap();
        assert_eq!(adapter.protocol(), "slack");
        assert_eq!(
            SlackConnector.canonical_room(" #General ").as_str(),
            "general"
        );
        assert!(SlackConnector.room_problem("#general").is_none());
        assert!(SlackConnector.room_problem("C0123ABCD").is_none());
        assert!(SlackConnector.room_problem("two words").is_some());
        assert!(SlackConnector.room_problem("#").is_some());
    }
}
