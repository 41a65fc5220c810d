//! The protocol table: which section names exist under a network, and how each is
//! parsed. Adding a protocol is one entry in `NAMES` and one arm in `parse`.

use super::load::Loader;
use super::tree::Node;
use super::types::NetworkConfig;

pub const NAMES: &[&str] = &[
    #[cfg(feature = "irc")]
    "irc",
    #[cfg(feature = "mattermost")]
    "mattermost",
    #[cfg(feature = "matrix")]
    "matrix",
];

pub(super) fn parse(
    loader: &mut Loader,
    protocol: &str,
    key: &Node,
    section: &Node,
) -> Option<NetworkConfig> {
    match protocol {
        #[cfg(feature = "irc")]
        "irc" => loader
            .section(key, section, switchboard_irc::IrcConfig::validate)
            .map(NetworkConfig::Irc),
        #[cfg(feature = "mattermost")]
        "mattermost" => loader
            .section(
                key,
                section,
                switchboard_mattermost::MattermostConfig::validate,
            )
            .map(NetworkConfig::Mattermost),
        #[cfg(feature = "matrix")]
        "matrix" => loader
            .section(key, section, switchboard_matrix::MatrixConfig::validate)
            .map(NetworkConfig::Matrix),
        _ => None,
    }
}

/// Rooms are compared in the form their network uses (IRC channels ignore case).
pub fn canonical_room(protocol: Option<&str>, room: &str) -> String {
    match protocol {
        #[cfg(feature = "irc")]
        Some("irc") => switchboard_irc::canonical_channel(room),
        #[cfg(feature = "mattermost")]
        Some("mattermost") => switchboard_mattermost::canonical_channel(room),
        _ => room.to_owned(),
    }
}

/// Why a route's room cannot be a room of its network (a predicate that does not
/// repeat the room), with a hint; `None` when it can.
pub fn room_problem(protocol: Option<&str>, room: &str) -> Option<(String, &'static str)> {
    // Without the adapters that check their rooms, nothing reads `room`.
    let _ = room;
    match protocol {
        #[cfg(feature = "matrix")]
        Some("matrix") if !switchboard_matrix::config::is_room_reference(room) => Some((
            "is not a Matrix room alias or id".to_owned(),
            "write an alias like \"#room:example.org\" or a room id like \"!abc:example.org\"",
        )),
        _ => None,
    }
}
