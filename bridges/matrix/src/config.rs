//! The `matrix:` section of a network in the config file (relay-bot mode: one
//! ordinary account speaks for everyone, names come from the nick template).

use serde::Deserialize;
use switchboard_sdk::ConfigProblem;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// The homeserver's client-server API URL, e.g. `https://matrix.example.org`.
    pub homeserver: String,
    /// The bot's full user id, e.g. `@switchboard:example.org`.
    pub user_id: String,
    /// Password login (the device id is kept in the state dir, so restarts reuse it).
    #[serde(default)]
    pub password: Option<String>,
    /// An access token instead of a password.
    #[serde(default)]
    pub access_token: Option<String>,
    /// The name other users see for the bot's device. Default `Switchboard`.
    #[serde(default = "default_device_name")]
    pub device_name: String,
    /// After downtime, messages older than this many seconds are not caught up
    /// (default one day).
    #[serde(default = "default_catch_up")]
    pub catch_up_max_age_secs: u64,
    /// Accept any TLS certificate (self-signed test servers). Off unless set explicitly.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

fn default_device_name() -> String {
    "Switchboard".into()
}
fn default_catch_up() -> u64 {
    24 * 60 * 60
}

impl MatrixConfig {
    /// Problems a user can fix in the file; checked without touching the network.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let url_ok = ["https://", "http://"].iter().any(|scheme| {
            self.homeserver.len() > scheme.len() && self.homeserver.starts_with(scheme)
        });
        if !url_ok {
            problems.push(
                ConfigProblem::new(
                    &["homeserver"],
                    format!("{:?} is not an http(s) URL", self.homeserver),
                )
                .with_hint("write the client API address, e.g. https://matrix.example.org"),
            );
        }
        if !is_user_id(&self.user_id) {
            problems.push(
                ConfigProblem::new(
                    &["user_id"],
                    format!("{:?} is not a Matrix user id", self.user_id),
                )
                .with_hint("write it in full, e.g. @switchboard:example.org"),
            );
        }
        match (&self.password, &self.access_token) {
            (None, None) => problems.push(ConfigProblem::new(
                &[],
                "no way to log in: set `password` or `access_token`",
            )),
            (Some(_), Some(_)) => problems.push(ConfigProblem::new(
                &[],
                "set only one of `password` and `access_token`",
            )),
            _ => {}
        }
        problems
    }
}

fn is_user_id(id: &str) -> bool {
    id.strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(local, server)| !local.is_empty() && !server.is_empty())
}

/// A room in a route: an alias (`#room:server`) or an id (`!opaque`, with or without
/// `:server` since room version 12).
pub fn is_room_reference(room: &str) -> bool {
    (room.starts_with('#') && room.contains(':') && room.len() > 3)
        || (room.starts_with('!') && room.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MatrixConfig {
        MatrixConfig {
            homeserver: "https://matrix.example.org".into(),
            user_id: "@bot:example.org".into(),
            password: Some("p".into()),
            access_token: None,
            device_name: default_device_name(),
            catch_up_max_age_secs: 60,
            accept_invalid_certs: false,
        }
    }

    #[test]
    fn valid_and_invalid_sections() {
        assert!(config().validate().is_empty());
        let bad = MatrixConfig {
            user_id: "bot".into(),
            password: None,
            ..config()
        };
        let problems = bad.validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn room_references() {
        assert!(is_room_reference("#room:example.org"));
        assert!(is_room_reference("!abcdef"));
        assert!(is_room_reference("!abcdef:example.org"));
        assert!(!is_room_reference("room"));
    }
}
