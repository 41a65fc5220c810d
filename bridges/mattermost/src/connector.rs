//! How the daemon registers Mattermost: the `mattermost:` section, channel names in
//! lower case, and the adapter built from the section.

use crate::config::MattermostConfig;
use crate::{MattermostAdapter, canonical_channel};
use std::sync::Arc;
use switchboard_sdk::{Adapter, AdapterError, ConfigProblem, NetworkSection, Protocol, RoomId};

/// The section key and the adapters' protocol name.
pub(crate) const PROTOCOL: &str = "mattermost";

pub struct MattermostConnector;

impl NetworkSection for MattermostConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        MattermostConfig::validate(self)
    }
}

impl Protocol for MattermostConnector {
    const NAME: &'static str = PROTOCOL;
    type Section = MattermostConfig;

    fn canonical(room: &str) -> RoomId {
        RoomId::new(canonical_channel(room))
    }

    fn adapter(config: &MattermostConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        let adapter: Arc<dyn Adapter> = MattermostAdapter::new(config.clone())?;
        Ok(adapter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::NetworkConnector;

    #[test]
    fn builds_an_adapter_of_its_protocol_from_its_section() {
        let section = MattermostConnector
            .read_section(serde_json::json!({
                "server": "https://chat.example.org", "team": "t", "token": "x"
            }))
            .unwrap();
        assert!(section.validate().is_empty(), "{:?}", section.validate());
        let adapter = MattermostConnector.build(&*section).unwrap();
        assert_eq!(adapter.protocol(), MattermostConnector.protocol());
        let named_by = adapter.connector().map(|connector| connector.protocol());
        assert_eq!(named_by, Some(MattermostConnector.protocol()));
        assert_eq!(
            MattermostConnector.canonical_room(" Town-Square ").as_str(),
            "town-square"
        );
    }
}
