//! The `matrix:` section of a network in the config file: relay-bot mode (one
//! ordinary account speaks for everyone, names come from the nick template) or,
//! with an `appservice:` part, application-service mode (one ghost user per sender).

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
    /// Application-service (puppet) mode: each remote sender speaks as a ghost user of
    /// their own. Needs the homeserver admin to install the registration that
    /// `switchboard matrix-registration` prints. `user_id` is then the bridge bot.
    #[serde(default)]
    pub appservice: Option<AppserviceConfig>,
}

/// The `appservice:` part of a Matrix network.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppserviceConfig {
    /// Where the homeserver reaches this daemon; default
    /// `http://<http.listen>/webhooks/<network>`.
    #[serde(default)]
    pub url: Option<String>,
    /// The registration's `id` (default `switchboard-<network>`).
    #[serde(default)]
    pub id: Option<String>,
    /// Ghost users are `@<ghost_prefix><network>_<name>:<server>`; the registration
    /// claims every user id with this prefix. Default `_switchboard_`.
    #[serde(default = "default_prefix")]
    pub ghost_prefix: String,
    /// The alias namespace claimed in the registration: `#<alias_prefix>...`.
    /// Default `_switchboard_`.
    #[serde(default = "default_prefix")]
    pub alias_prefix: String,
    /// Appended to a ghost's display name; `{protocol}` becomes the origin's protocol
    /// (IRC, Mattermost...), `{network}` its network name. Default ` ({protocol})`.
    #[serde(default = "default_ghost_suffix")]
    pub ghost_suffix: String,
    /// The tokens shared with the homeserver. When unset (the usual case),
    /// `switchboard matrix-registration` generates them and keeps them in the state
    /// database, where the daemon finds them.
    #[serde(default)]
    pub as_token: Option<String>,
    #[serde(default)]
    pub hs_token: Option<String>,
}

fn default_prefix() -> String {
    "_switchboard_".into()
}
fn default_ghost_suffix() -> String {
    " ({protocol})".into()
}

/// A year back is past any real catch-up, and keeps `secs * 1000` far from overflowing.
const MAX_CATCH_UP_MAX_AGE_SECS: u64 = 365 * 24 * 60 * 60;

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
                ConfigProblem::value(&["homeserver"], "is not an http(s) URL")
                    .with_hint("write the client API address, e.g. https://matrix.example.org"),
            );
        }
        if !is_user_id(&self.user_id) {
            problems.push(
                ConfigProblem::value(&["user_id"], "is not a Matrix user id")
                    .with_hint("write it in full, e.g. @switchboard:example.org"),
            );
        }
        if self.catch_up_max_age_secs > MAX_CATCH_UP_MAX_AGE_SECS {
            problems.push(ConfigProblem::new(
                &["catch_up_max_age_secs"],
                format!(
                    "catch_up_max_age_secs must be at most {MAX_CATCH_UP_MAX_AGE_SECS} (365 days)"
                ),
            ));
        }
        match (&self.password, &self.access_token, &self.appservice) {
            (None, None, None) => problems.push(ConfigProblem::new(
                &[],
                "no way to log in: set `password` or `access_token`, or an `appservice` section",
            )),
            (Some(_), Some(_), _) => problems.push(ConfigProblem::new(
                &[],
                "set only one of `password` and `access_token`",
            )),
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => problems.push(
                ConfigProblem::new(
                    &["appservice"],
                    "an application service logs in with its registration's as_token",
                )
                .with_hint("remove `password`/`access_token`, or the `appservice` section"),
            ),
            _ => {}
        }
        if let Some(appservice) = &self.appservice {
            problems.extend(appservice.validate());
        }
        problems
    }

    /// The homeserver's name: the server part of the bot's user id.
    pub fn server_name(&self) -> &str {
        self.user_id
            .split_once(':')
            .map_or("", |(_, server)| server)
    }

    /// The bot's localpart (the registration's `sender_localpart`).
    pub fn bot_localpart(&self) -> &str {
        crate::inbound::localpart(&self.user_id)
    }
}

impl AppserviceConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for (key, prefix) in [
            ("ghost_prefix", &self.ghost_prefix),
            ("alias_prefix", &self.alias_prefix),
        ] {
            let valid = !prefix.is_empty()
                && prefix.bytes().all(|byte| {
                    byte.is_ascii_lowercase()
                        || byte.is_ascii_digit()
                        || matches!(byte, b'_' | b'-' | b'.' | b'=' | b'/')
                });
            if !valid {
                problems.push(
                    ConfigProblem::value(
                        &["appservice", key],
                        "cannot start a Matrix user id or alias",
                    )
                    .with_hint("use lower-case letters, digits and _ - . = /, e.g. _switchboard_"),
                );
            }
        }
        if let Some(url) = &self.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(ConfigProblem::value(
                &["appservice", "url"],
                "is not an http(s) URL",
            ));
        }
        if self.as_token.is_some() != self.hs_token.is_some() {
            problems.push(
                ConfigProblem::new(
                    &["appservice"],
                    "set both `as_token` and `hs_token`, or neither",
                )
                .with_hint("leave both out and `switchboard matrix-registration` makes them"),
            );
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
            appservice: None,
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
    fn appservice_sections_are_checked() {
        let appservice = AppserviceConfig {
            url: None,
            id: None,
            ghost_prefix: "_sb_".into(),
            alias_prefix: "_sb_".into(),
            ghost_suffix: default_ghost_suffix(),
            as_token: None,
            hs_token: None,
        };
        let puppets = MatrixConfig {
            password: None,
            appservice: Some(appservice.clone()),
            ..config()
        };
        assert!(puppets.validate().is_empty(), "{:?}", puppets.validate());
        assert_eq!(puppets.server_name(), "example.org");
        assert_eq!(puppets.bot_localpart(), "bot");
        let with_password = MatrixConfig {
            appservice: Some(appservice.clone()),
            ..config()
        };
        assert_eq!(with_password.validate().len(), 1);
        let bad = MatrixConfig {
            password: None,
            appservice: Some(AppserviceConfig {
                ghost_prefix: "Ghost!".into(),
                as_token: Some("a".into()),
                ..appservice
            }),
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
