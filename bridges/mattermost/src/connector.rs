//! How the daemon registers Mattermost: the `mattermost:` section, channel names in
//! lower case, and the adapter built from the section.

use crate::{MattermostAdapter, MattermostConfig, canonical_channel};
use std::sync::Arc;
use switchboard_sdk::connector::{read_section, section_as};
use switchboard_sdk::{
    Adapter, AdapterError, ConfigProblem, NetworkConnector, NetworkSection, RoomId, SectionError,
};

/// The section key and the adapters' protocol name.
pub(crate) const PROTOCOL: &str = "mattermost";

pub struct MattermostConnector;

impl NetworkSection for MattermostConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        MattermostConfig::validate(self)
    }
}

impl NetworkConnector for MattermostConnector {
    fn protocol(&self) -> &'static str {
        PROTOCOL
    }

    fn read_section(
        &self,
        section: serde_json::Value,
    ) -> Result<Arc<dyn NetworkSection>, SectionError> {
        read_section::<MattermostConfig>(section)
    }

    fn canonical_room(&self, room: &str) -> RoomId {
        RoomId::new(canonical_channel(room))
    }

    fn build(&self, section: &dyn NetworkSection) -> Result<Arc<dyn Adapter>, AdapterError> {
        let config = section_as::<MattermostConfig>(PROTOCOL, section)?;
        let adapter: Arc<dyn Adapter> = MattermostAdapter::new(config.clone())?;
        Ok(adapter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            MattermostConnector.canonical_room(" Town-Square ").as_str(),
            "town-square"
        );
    }
}
