//! How the daemon registers IRC: the `irc:` section, channel names compared without
//! case (RFC 1459 casemapping), and the adapter built from the section.

use crate::inbound::canonical_channel;
use crate::{IrcAdapter, IrcConfig};
use std::sync::Arc;
use switchboard_sdk::connector::{read_section, section_as};
use switchboard_sdk::{
    Adapter, AdapterError, ConfigProblem, NetworkConnector, NetworkSection, RoomId, SectionError,
};

/// The section key and the adapters' protocol name.
pub(crate) const PROTOCOL: &str = "irc";

pub struct IrcConnector;

impl NetworkSection for IrcConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        IrcConfig::validate(self)
    }
}

impl NetworkConnector for IrcConnector {
    fn protocol(&self) -> &'static str {
        PROTOCOL
    }

    fn read_section(
        &self,
        section: serde_json::Value,
    ) -> Result<Arc<dyn NetworkSection>, SectionError> {
        read_section::<IrcConfig>(section)
    }

    fn canonical_room(&self, room: &str) -> RoomId {
        RoomId::new(canonical_channel(room))
    }

    fn build(&self, section: &dyn NetworkSection) -> Result<Arc<dyn Adapter>, AdapterError> {
        let config = section_as::<IrcConfig>(PROTOCOL, section)?;
        Ok(IrcAdapter::new(config.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_an_adapter_of_its_protocol_from_its_section() {
        let section = IrcConnector
            .read_section(serde_json::json!({"server": "irc.example.org:6697", "nick": "sb"}))
            .unwrap();
        assert!(section.validate().is_empty());
        let adapter = IrcConnector.build(&*section).unwrap();
        assert_eq!(adapter.protocol(), IrcConnector.protocol());
        assert_eq!(
            IrcConnector.canonical_room("#Rust[Dev]").as_str(),
            "#rust{dev}"
        );
        assert_eq!(IrcConnector.room_problem("anything"), None);
    }
}
