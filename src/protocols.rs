//! The protocols this build knows: the one list of connectors, each behind its own
//! cargo feature. Nothing else in the daemon names an adapter; adding a protocol is
//! its crate under `bridges/`, its feature in `Cargo.toml`, and one line here.

use switchboard_sdk::{NetworkConnector, RoomId};

const CONNECTORS: &[&dyn NetworkConnector] = &[
    #[cfg(feature = "irc")]
    &switchboard_irc::IrcConnector,
    #[cfg(feature = "mattermost")]
    &switchboard_mattermost::MattermostConnector,
    #[cfg(feature = "matrix")]
    &switchboard_matrix::MatrixConnector,
    #[cfg(feature = "slack")]
    &switchboard_slack::SlackConnector,
    #[cfg(feature = "discord")]
    &switchboard_discord::DiscordConnector,
];

/// Every connector of this build, in the order the config's hints list them.
pub fn connectors() -> &'static [&'static dyn NetworkConnector] {
    CONNECTORS
}

/// The connector whose section key is `protocol`.
pub fn connector(protocol: &str) -> Option<&'static dyn NetworkConnector> {
    CONNECTORS
        .iter()
        .copied()
        .find(|connector| connector.protocol() == protocol)
}

/// The section keys of every connector (`irc`, `mattermost`...).
pub fn names() -> Vec<&'static str> {
    CONNECTORS
        .iter()
        .map(|connector| connector.protocol())
        .collect()
}

/// A room name as networks of `protocol` write it in events; as written for a
/// protocol without a connector (the fakes of tests and benchmarks).
pub fn canonical_room(protocol: &str, room: &str) -> RoomId {
    connector(protocol).map_or_else(|| RoomId::new(room), |c| c.canonical_room(room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_are_unique() {
        let mut names = names();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "two connectors share a section key");
    }

    #[test]
    fn rooms_of_unknown_protocols_stay_as_written() {
        assert_eq!(canonical_room("fake", "#Room").as_str(), "#Room");
    }

    #[test]
    fn rooms_are_canonicalised_by_their_protocols_connector() {
        for connector in connectors() {
            let room = "#Rust[Dev]";
            assert_eq!(
                canonical_room(connector.protocol(), room),
                connector.canonical_room(room)
            );
        }
    }
}
