//! The `slack:` section of a network in the config file.
//!
//! Three ways to connect, exactly one per network: an app in Socket Mode
//! (`bot_token` + `app_token`), an app receiving the Events API over HTTP
//! (`bot_token` + `signing_secret`), or webhooks only (`webhooks`, for workspaces
//! where nobody may install an app).

use serde::Deserialize;
use switchboard_sdk::ConfigProblem;

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Base URL of the Web API; methods are appended (tests point it at a fake).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The app's bot token (`xoxb-...`): Socket Mode and Events API modes.
    #[serde(default)]
    pub bot_token: Option<String>,
    /// The app-level token (`xapp-...`, scope `connections:write`): Socket Mode.
    #[serde(default)]
    pub app_token: Option<String>,
    /// The app's signing secret: Events API mode, whose requests it verifies.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// An incoming webhook to send and an outgoing webhook's token to receive.
    #[serde(default)]
    pub webhooks: Option<WebhookConfig>,
    /// Post as the remote sender's name and picture (`username`/`icon_url`, which
    /// needs the `chat:write.customize` scope); without the scope, or when off, the
    /// route's nick template prefixes the text.
    #[serde(default = "default_true")]
    pub customize_names: bool,
    /// After a restart or reconnect, messages older than this many seconds are not
    /// caught up (default one day).
    #[serde(default = "default_catch_up")]
    pub catch_up_max_age_secs: u64,
}

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The incoming-webhook URL messages are posted to (one channel per webhook).
    pub incoming_url: String,
    /// The token Slack sends with each outgoing-webhook or slash-command call to
    /// `POST /webhooks/NETWORK`; calls with another token are refused with 401.
    pub outgoing_token: String,
    /// The name the webhook's messages show when senders are not named per message.
    #[serde(default = "default_username")]
    pub username: String,
}

// Secrets stay out of debug prints (a config dump, a panic message).
impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("api_url", &self.api_url)
            .field("mode", &self.mode_name())
            .field("customize_names", &self.customize_names)
            .field("catch_up_max_age_secs", &self.catch_up_max_age_secs)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How the adapter talks to Slack; `validate` guarantees exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Socket,
    Events,
    Webhooks,
}

fn default_api_url() -> String {
    "https://slack.com/api/".into()
}
fn default_true() -> bool {
    true
}
fn default_catch_up() -> u64 {
    24 * 60 * 60
}
fn default_username() -> String {
    "switchboard".into()
}

/// A year back is past any real use, and keeps the time arithmetic from overflowing.
const MAX_CATCH_UP_MAX_AGE_SECS: u64 = 365 * 24 * 60 * 60;

impl SlackConfig {
    pub fn mode(&self) -> Mode {
        if self.webhooks.is_some() && self.bot_token.is_none() {
            Mode::Webhooks
        } else if self.app_token.is_some() {
            Mode::Socket
        } else {
            Mode::Events
        }
    }

    fn mode_name(&self) -> &'static str {
        match self.mode() {
            Mode::Socket => "socket",
            Mode::Events => "events",
            Mode::Webhooks => "webhooks",
        }
    }

    /// The Web API base with exactly one trailing slash.
    pub fn api_base(&self) -> String {
        format!("{}/", self.api_url.trim_end_matches('/'))
    }

    pub fn bot_token(&self) -> &str {
        self.bot_token.as_deref().unwrap_or_default()
    }

    /// Problems a user can fix in the file; checked without touching the network.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let Err(reason) = check_url(&self.api_url) {
            problems.push(
                ConfigProblem::value(&["api_url"], reason)
                    .with_hint("leave api_url out for Slack itself (https://slack.com/api/)"),
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
        match (&self.bot_token, &self.webhooks) {
            (None, None) => problems.push(
                ConfigProblem::new(
                    &[],
                    "no way to connect: set `bot_token` (with `app_token` or `signing_secret`) or `webhooks`",
                )
                .with_hint("an app in Socket Mode needs no public URL: see docs/slack.md"),
            ),
            (Some(_), Some(_)) => problems.push(
                ConfigProblem::new(&[], "set only one of `bot_token` and `webhooks`")
                    .with_hint("an app (bot token) and webhooks are two alternative modes"),
            ),
            (Some(token), None) => {
                check_token(&mut problems, "bot_token", token, "xoxb-", "the app's Bot User OAuth Token (OAuth & Permissions)");
                match (&self.app_token, &self.signing_secret) {
                    (None, None) => problems.push(
                        ConfigProblem::new(&[], "an app needs `app_token` (Socket Mode) or `signing_secret` (Events API over HTTP)")
                            .with_hint("Socket Mode needs no public URL; the Events API needs Slack to reach /webhooks/NETWORK"),
                    ),
                    (Some(_), Some(_)) => problems.push(
                        ConfigProblem::new(&["signing_secret"], "set only one of `app_token` and `signing_secret`")
                            .with_hint("Socket Mode (app_token) and the Events API over HTTP (signing_secret) are alternatives"),
                    ),
                    (Some(app), None) => check_token(&mut problems, "app_token", app, "xapp-", "an app-level token with the connections:write scope (Basic Information)"),
                    (None, Some(secret)) => {
                        if secret.trim().is_empty() {
                            problems.push(ConfigProblem::new(&["signing_secret"], "signing_secret must not be empty")
                                .with_hint("copy the Signing Secret from the app's Basic Information page"));
                        }
                    }
                }
            }
            (None, Some(webhooks)) => {
                for (key, set) in [("app_token", self.app_token.is_some()), ("signing_secret", self.signing_secret.is_some())] {
                    if set {
                        problems.push(ConfigProblem::new(&[key], format!("`{key}` belongs to an app, not to webhooks mode"))
                            .with_hint("remove it, or set `bot_token` instead of `webhooks`"));
                    }
                }
                if let Err(reason) = check_url(&webhooks.incoming_url) {
                    problems.push(ConfigProblem::value(&["webhooks", "incoming_url"], reason));
                }
                if webhooks.outgoing_token.trim().is_empty() {
                    problems.push(
                        ConfigProblem::new(&["webhooks", "outgoing_token"], "outgoing_token must not be empty")
                            .with_hint("copy the token Slack shows for the outgoing webhook or slash command"),
                    );
                }
            }
        }
        problems
    }
}

/// A token that is empty or of the wrong kind; told without the token itself.
fn check_token(
    problems: &mut Vec<ConfigProblem>,
    key: &str,
    token: &str,
    prefix: &str,
    what: &str,
) {
    if token.trim().is_empty() {
        problems.push(
            ConfigProblem::new(&[key], format!("{key} must not be empty"))
                .with_hint(format!("use {what}")),
        );
    } else if !token.starts_with(prefix) {
        // Named, not shown: a token of another kind is still a secret.
        problems.push(
            ConfigProblem::new(&[key], format!("{key} does not start with `{prefix}`"))
                .with_hint(format!("use {what}")),
        );
    }
}

/// What is wrong with `url`, told without repeating it (a webhook URL is a secret).
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

    fn read(json: serde_json::Value) -> SlackConfig {
        serde_json::from_value(json).unwrap()
    }

    fn messages(config: &SlackConfig) -> Vec<String> {
        config.validate().into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn each_mode_is_recognised_and_valid() {
        let socket = read(serde_json::json!({"bot_token": "xoxb-1", "app_token": "xapp-1"}));
        assert_eq!((socket.mode(), messages(&socket).len()), (Mode::Socket, 0));
        let events = read(serde_json::json!({"bot_token": "xoxb-1", "signing_secret": "s"}));
        assert_eq!((events.mode(), messages(&events).len()), (Mode::Events, 0));
        let hooks = read(
            serde_json::json!({"webhooks": {"incoming_url": "https://hooks.slack.com/services/T/B/x", "outgoing_token": "t"}}),
        );
        assert_eq!((hooks.mode(), messages(&hooks).len()), (Mode::Webhooks, 0));
        assert_eq!(hooks.api_base(), "https://slack.com/api/");
    }

    #[test]
    fn mixed_or_missing_modes_are_reported() {
        let none = read(serde_json::json!({}));
        assert!(messages(&none)[0].contains("no way to connect"));
        let both = read(
            serde_json::json!({"bot_token": "xoxb-1", "app_token": "xapp-1", "signing_secret": "s"}),
        );
        assert!(messages(&both)[0].contains("only one of `app_token`"));
        let app_half = read(serde_json::json!({"bot_token": "xoxb-1"}));
        assert!(messages(&app_half)[0].contains("needs `app_token`"));
        let stray = read(
            serde_json::json!({"signing_secret": "s", "webhooks": {"incoming_url": "https://h/x", "outgoing_token": "t"}}),
        );
        assert!(messages(&stray)[0].contains("belongs to an app"));
    }

    #[test]
    fn tokens_of_the_wrong_kind_are_reported_without_the_token() {
        let swapped =
            read(serde_json::json!({"bot_token": "xapp-secret", "app_token": "xoxb-secret"}));
        let problems = swapped.validate();
        assert_eq!(problems.len(), 2);
        assert!(
            problems
                .iter()
                .all(|p| !p.about_value && !p.message.contains("secret"))
        );
        assert!(!format!("{swapped:?}").contains("secret"));
    }
}
