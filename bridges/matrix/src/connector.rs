//! How the daemon registers Matrix: the `matrix:` section, rooms written as aliases
//! or ids (kept as written), and the adapter built from the section.

use crate::config::is_room_reference;
use crate::{MatrixAdapter, MatrixConfig};
use std::sync::Arc;
use switchboard_sdk::{
    Adapter, AdapterError, ConfigProblem, NetworkSection, Protocol, RoomProblem,
};

/// The section key and the adapters' protocol name.
pub(crate) const PROTOCOL: &str = "matrix";

pub struct MatrixConnector;

impl NetworkSection for MatrixConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        MatrixConfig::validate(self)
    }
}

impl Protocol for MatrixConnector {
    const NAME: &'static str = PROTOCOL;
    type Section = MatrixConfig;

    fn check_room(room: &str) -> Option<RoomProblem> {
        (!is_room_reference(room)).then(|| RoomProblem {
            predicate: "is not a Matrix room alias or id".to_owned(),
            hint:
                "write an alias like \"#room:example.org\" or a room id like \"!abc:example.org\""
                    .to_owned(),
        })
    }

    fn adapter(config: &MatrixConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        let adapter: Arc<dyn Adapter> = MatrixAdapter::new(config.clone());
        Ok(adapter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::NetworkConnector;

    #[test]
    fn builds_an_adapter_of_its_protocol_from_its_section() {
        let section = MatrixConnector
            .read_section(serde_json::json!({
                "homeserver": "https://matrix.example.org",
                "user_id": "@sb:example.org",
                "access_token": "x"
            }))
            .unwrap();
        assert!(section.validate().is_empty(), "{:?}", section.validate());
        let adapter = MatrixConnector.build(&*section).unwrap();
        assert_eq!(adapter.protocol(), MatrixConnector.protocol());
        let named_by = adapter.connector().map(|connector| connector.protocol());
        assert_eq!(named_by, Some(MatrixConnector.protocol()));
        assert_eq!(
            MatrixConnector.canonical_room("#Room:example.org").as_str(),
            "#Room:example.org"
        );
        assert_eq!(MatrixConnector.room_problem("#room:example.org"), None);
        assert!(MatrixConnector.room_problem("room").is_some());
    }
}
