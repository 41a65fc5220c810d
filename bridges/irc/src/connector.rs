//! How the daemon registers IRC: the `irc:` section, channel names compared without
//! case (RFC 1459 casemapping), and the adapter built from the section.

use crate::inbound::canonical_channel;
use crate::{IrcAdapter, IrcConfig};
use std::sync::Arc;
use switchboard_sdk::{Adapter, AdapterError, ConfigProblem, NetworkSection, Protocol, RoomId};

/// The section key and the adapters' protocol name.
pub(crate) const PROTOCOL: &str = "irc";

pub struct IrcConnector;

impl NetworkSection for IrcConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        IrcConfig::validate(self)
    }
}

impl Protocol for IrcConnector {
    const NAME: &'static str = PROTOCOL;
    type Section = IrcConfig;

    fn canonical(room: &str) -> RoomId {
        RoomId::new(canonical_channel(room))
    }

    fn adapter(config: &IrcConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(IrcAdapter::new(config.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::NetworkConnector;

    #[test]
    fn builds_an_adapter_of_its_protocol_from_its_section() {
        let section = IrcConnector
            .read_section(serde_json::json!({"server": "irc.example.org:6697", "nick": "sb"}))
            .unwrap();
        assert!(section.validate().is_empty());
        let adapter = IrcConnector.build(&*section).unwrap();
        assert_eq!(adapter.protocol(), IrcConnector.protocol());
        let named_by = adapter.connector().map(|connector| connector.protocol());
        assert_eq!(named_by, Some(IrcConnector.protocol()));
        assert_eq!(
            IrcConnector.canonical_room("#Rust[Dev]").as_str(),
            "#rust{dev}"
        );
        assert_eq!(IrcConnector.room_problem("anything"), None);
    }
}
