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
    loader: &mut Loader<'_>,
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
