//! The `mattermost:` section of a network in the config file.
//!
//! Two ways to connect: the bot API (`token`, or `login` where the server allows no
//! tokens) or webhooks (`webhooks`, for admins who cannot create a bot). Exactly one.

use serde::Deserialize;
use switchboard_sdk::ConfigProblem;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MattermostConfig {
    /// Base URL of the server, e.g. `https://chat.example.org`.
    pub server: String,
    /// Team name (as in the URL); channels in routes are looked up in this team.
    pub team: String,
    /// Bot or personal access token (bot API mode).
    #[serde(default)]
    pub token: Option<String>,
    /// Username and password (bot API mode, for servers without access tokens).
    #[serde(default)]
    pub login: Option<LoginConfig>,
    /// Incoming and outgoing webhooks instead of the bot API.
    #[serde(default)]
    pub webhooks: Option<WebhookConfig>,
    /// Post as the remote sender's name and avatar (`override_username`) when the
    /// server allows integrations to override names (default true); otherwise, or when
    /// the server refuses, the route's nick template prefixes the text.
    #[serde(default = "default_true")]
    pub override_names: bool,
    /// After a reconnect or restart, posts older than this many seconds are not caught
    /// up (default one day).
    #[serde(default = "default_catch_up")]
    pub catch_up_max_age_secs: u64,
    /// Accept any TLS certificate (self-signed test servers). Off unless set explicitly.
    #[serde(default)]
    pub accept_invalid_certs: bool,
    /// Largest file (bytes) fetched from another network to be uploaded as an
    /// attachment; larger files are relayed as links (default 10 MiB).
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The incoming-webhook URL posts are sent to.
    pub incoming_url: String,
    /// The token of the outgoing webhook that calls `POST /webhooks/NETWORK` on the
    /// daemon's HTTP server; requests with another token are refused with 401.
    pub outgoing_token: String,
    /// The name the incoming webhook's posts show when senders' names are not
    /// overridden (sent as its `username`; honoured where integrations may override
    /// names). Never compared with authors: Mattermost does not send incoming-webhook
    /// posts to outgoing webhooks, so the bridge's own posts cannot come back.
    #[serde(default = "default_webhook_username")]
    pub username: String,
}

/// How the adapter talks to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Token(String),
    Login(LoginConfig),
    Webhooks(WebhookConfig),
}

fn default_true() -> bool {
    true
}
fn default_catch_up() -> u64 {
    24 * 60 * 60
}
fn default_max_upload() -> u64 {
    10 * 1024 * 1024
}
fn default_webhook_username() -> String {
    "switchboard".into()
}

impl MattermostConfig {
    /// The connection mode; `validate` guarantees there is exactly one.
    pub fn mode(&self) -> Mode {
        match (&self.token, &self.login, &self.webhooks) {
            (Some(token), _, _) => Mode::Token(token.clone()),
            (None, Some(login), _) => Mode::Login(login.clone()),
            (None, None, Some(webhooks)) => Mode::Webhooks(webhooks.clone()),
            (None, None, None) => Mode::Token(String::new()),
        }
    }

    /// The server URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.server.trim_end_matches('/')
    }

    /// Problems a user can fix in the file; checked without touching the network.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let Err(reason) = check_url(&self.server) {
            problems.push(
                ConfigProblem::value(&["server"], reason)
                    .with_hint("write the server's address, e.g. https://chat.example.org"),
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
        if self.max_upload_bytes > MAX_UPLOAD_BYTES_LIMIT {
            problems.push(ConfigProblem::new(
                &["max_upload_bytes"],
                format!("max_upload_bytes must be at most {MAX_UPLOAD_BYTES_LIMIT} (1 GiB)"),
            ));
        }
        if self.team.trim().is_empty() {
            problems.push(ConfigProblem::new(&["team"], "team must not be empty"));
        }
        let modes = [
            self.token.is_some(),
            self.login.is_some(),
            self.webhooks.is_some(),
        ];
        match modes.iter().filter(|set| **set).count() {
            0 => problems.push(
                ConfigProblem::new(&[], "no way to connect: set `token`, `login` or `webhooks`")
                    .with_hint("a bot account's access token is the recommended way"),
            ),
            1 => {}
            _ => problems.push(
                ConfigProblem::new(&[], "set only one of `token`, `login` and `webhooks`")
                    .with_hint(
                        "the bot API (token or login) and webhooks are two alternative modes",
                    ),
            ),
        }
        if self
            .token
            .as_deref()
            .is_some_and(|token| token.trim().is_empty())
        {
            problems.push(ConfigProblem::new(&["token"], "token must not be empty"));
        }
        if let Some(webhooks) = &self.webhooks {
            if let Err(reason) = check_url(&webhooks.incoming_url) {
                problems.push(ConfigProblem::value(&["webhooks", "incoming_url"], reason));
            }
            if webhooks.outgoing_token.trim().is_empty() {
                problems.push(
                    ConfigProblem::new(
                        &["webhooks", "outgoing_token"],
                        "outgoing_token must not be empty",
                    )
                    .with_hint("copy the token Mattermost shows for the outgoing webhook"),
                );
            }
        }
        problems
    }
}

/// The largest `catch_up_max_age_secs` and `max_upload_bytes` accepted: a year back
/// and 1 GiB are past any real use, and keep the time arithmetic from overflowing.
const MAX_CATCH_UP_MAX_AGE_SECS: u64 = 365 * 24 * 60 * 60;
const MAX_UPLOAD_BYTES_LIMIT: u64 = 1 << 30;

/// What is wrong with `url`, told without repeating it (it may be a secret from the
/// environment, as a webhook URL is).
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("is not an http(s) URL")?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err("has no valid host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MattermostConfig {
        MattermostConfig {
            server: "https://chat.example.org/".into(),
            team: "core".into(),
            token: Some("t".into()),
            login: None,
            webhooks: None,
            override_names: true,
            catch_up_max_age_secs: 60,
            accept_invalid_certs: false,
            max_upload_bytes: 1,
        }
    }

    #[test]
    fn exactly_one_mode() {
        assert!(config().validate().is_empty());
        assert_eq!(config().base_url(), "https://chat.example.org");
        let none = MattermostConfig {
            token: None,
            ..config()
        };
        assert!(none.validate()[0].message.contains("no way to connect"));
        let both = MattermostConfig {
            login: Some(LoginConfig {
                username: "u".into(),
                password: "p".into(),
            }),
            ..config()
        };
        assert!(both.validate()[0].message.contains("only one"));
    }

    #[test]
    fn bad_urls_are_reported() {
        let bad = MattermostConfig {
            server: "chat.example.org".into(),
            ..config()
        };
        assert_eq!(bad.validate()[0].path, vec!["server".to_owned()]);
    }
}
