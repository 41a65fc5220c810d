//! The `discord:` section of a network in the config file.
//!
//! ```yaml
//! discord:
//!   token: ${DISCORD_BOT_TOKEN}   # the bot's token (Developer Portal, Bot page)
//!   guild: "My Server"            # the server (guild) by name or numeric id
//!   webhooks: auto                # auto (default) | off
//!   catch_up_max_age_secs: 86400
//! ```
//! `api_url` and `gateway_url` point the adapter at a fake server in tests.

use serde::Deserialize;
use switchboard_sdk::ConfigProblem;

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The bot's token, without the `Bot ` prefix (it is accepted with it too).
    pub token: String,
    /// The guild (server) whose channels the routes name: its name or numeric id.
    pub guild: String,
    /// `auto`: send through a channel webhook named "Switchboard" (each remote
    /// sender's own name and picture) where the bot may manage webhooks, else as the
    /// bot with the sender's name in the text; `off`: always as the bot.
    #[serde(default)]
    pub webhooks: Webhooks,
    /// After a restart or reconnect, messages older than this many seconds are not
    /// caught up (default one day).
    #[serde(default = "default_catch_up")]
    pub catch_up_max_age_secs: u64,
    /// The REST API's host (tests): `http://127.0.0.1:PORT` (plain HTTP) or an
    /// `https://` host; requests go to `{api_url}/api/v10/...`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// The gateway's URL (tests): `ws://127.0.0.1:PORT`.
    #[serde(default)]
    pub gateway_url: Option<String>,
    /// Webhooks an admin made, by channel (written as in routes): their URLs,
    /// `https://discord.com/api/webhooks/ID/TOKEN`. Used instead of one the bot
    /// would make, so the bot needs no Manage Webhooks for these channels.
    #[serde(default)]
    pub channel_webhooks: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Webhooks {
    #[default]
    Auto,
    Off,
}

// The token stays out of debug prints (a config dump, a panic message).
impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"<redacted>")
            .field("guild", &self.guild)
            .field("webhooks", &self.webhooks)
            .field("catch_up_max_age_secs", &self.catch_up_max_age_secs)
            .field("api_url", &self.api_url)
            .field("gateway_url", &self.gateway_url)
            // Their URLs hold the webhooks' tokens.
            .field(
                "channel_webhooks",
                &self.channel_webhooks.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn default_catch_up() -> u64 {
    24 * 60 * 60
}

/// A year back is past any real use, and keeps the time arithmetic from overflowing.
const MAX_CATCH_UP_MAX_AGE_SECS: u64 = 365 * 24 * 60 * 60;

impl DiscordConfig {
    /// The token as twilight wants it (without `Bot `).
    pub fn bare_token(&self) -> String {
        let token = self.token.trim();
        token
            .strip_prefix("Bot ")
            .unwrap_or(token)
            .trim()
            .to_owned()
    }

    /// The guild as a numeric id, when it is written as one.
    pub fn guild_id(&self) -> Option<u64> {
        let guild = self.guild.trim();
        guild
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0 && guild.len() >= 15)
    }

    /// `api_url` as twilight's proxy setting: the host (and port), and whether it is
    /// plain HTTP.
    pub fn api_proxy(&self) -> Option<(String, bool)> {
        let url = self.api_url.as_deref()?.trim().trim_end_matches('/');
        if let Some(host) = url.strip_prefix("http://") {
            Some((host.to_owned(), true))
        } else {
            url.strip_prefix("https://")
                .map(|host| (host.to_owned(), false))
        }
    }

    /// Problems a user can fix in the file; checked without touching the network.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let token = self.bare_token();
        if token.is_empty() {
            problems.push(
                ConfigProblem::new(&["token"], "token must not be empty").with_hint(
                    "copy the bot's token from the Discord Developer Portal (Bot, Reset Token)",
                ),
            );
        } else if token.chars().any(|c| c.is_whitespace() || c.is_control())
            || token.matches('.').count() != 2
        {
            // Named, not shown: whatever it is, it may be a secret.
            problems.push(
                ConfigProblem::new(&["token"], "token is not a Discord bot token (three parts separated by dots)")
                    .with_hint("copy the token from the Bot page of the Developer Portal, not the client secret or the public key"),
            );
        }
        if self.guild.trim().is_empty() {
            problems.push(
                ConfigProblem::new(&["guild"], "guild must not be empty")
                    .with_hint("write the server's name as Discord shows it, or its id (Developer Mode: right-click the server, Copy Server ID)"),
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
        if let Some(url) = &self.api_url
            && let Err(reason) = check_url(url, &["http://", "https://"], "an http(s)")
        {
            problems.push(
                ConfigProblem::value(&["api_url"], reason)
                    .with_hint("leave api_url out for Discord itself; it is for tests"),
            );
        }
        if let Some(url) = &self.gateway_url
            && let Err(reason) = check_url(url, &["ws://", "wss://"], "a ws(s)")
        {
            problems.push(
                ConfigProblem::value(&["gateway_url"], reason)
                    .with_hint("leave gateway_url out for Discord itself; it is for tests"),
            );
        }
        for (channel, url) in &self.channel_webhooks {
            if webhook_parts(url).is_none() {
                // Not ConfigProblem::value: the URL holds the webhook's token.
                problems.push(
                    ConfigProblem::new(
                        &["channel_webhooks", channel],
                        format!("the webhook of channel {channel:?} is not a Discord webhook URL"),
                    )
                    .with_hint("copy it from the channel's settings (Integrations, Webhooks, Copy Webhook URL): https://discord.com/api/webhooks/ID/TOKEN"),
                );
            }
        }
        problems
    }
}

/// The id and token of a webhook URL (`.../api/webhooks/ID/TOKEN`, versioned or
/// not, on any Discord host or a test server).
pub fn webhook_parts(url: &str) -> Option<(u64, String)> {
    let url = url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return None;
    }
    let (_, rest) = url.split_once("/webhooks/")?;
    let (id, token) = rest.split_once('/')?;
    let token = token.split(['?', '/', '#']).next().unwrap_or_default();
    let id: u64 = id.parse().ok().filter(|id| *id > 0)?;
    let token_ok = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    token_ok.then(|| (id, token.to_owned()))
}

/// What is wrong with `url`, told without repeating it.
fn check_url(url: &str, schemes: &[&str], kind: &str) -> Result<(), String> {
    let rest = schemes
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| format!("is not {kind} URL"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err("has no valid host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const TOKEN: &str =
        "MTIzNDU2Nzg5MDEyMzQ1Njc4.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789AB";

    fn read(json: serde_json::Value) -> DiscordConfig {
        serde_json::from_value(json).unwrap()
    }

    fn messages(config: &DiscordConfig) -> Vec<String> {
        config.validate().into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn a_minimal_section_is_valid_with_defaults() {
        let config = read(serde_json::json!({"token": TOKEN, "guild": "My Server"}));
        assert!(messages(&config).is_empty(), "{:?}", messages(&config));
        assert_eq!(config.webhooks, Webhooks::Auto);
        assert_eq!(config.catch_up_max_age_secs, 86_400);
        assert_eq!(config.guild_id(), None);
        assert_eq!(config.api_proxy(), None);
        let by_id = read(
            serde_json::json!({"token": format!("Bot {TOKEN}"), "guild": "81384788765712384", "webhooks": "off", "api_url": "http://127.0.0.1:4000/", "gateway_url": "ws://127.0.0.1:4000"}),
        );
        assert!(messages(&by_id).is_empty(), "{:?}", messages(&by_id));
        assert_eq!(by_id.bare_token(), TOKEN);
        assert_eq!(by_id.guild_id(), Some(81_384_788_765_712_384));
        assert_eq!(by_id.webhooks, Webhooks::Off);
        assert_eq!(by_id.api_proxy(), Some(("127.0.0.1:4000".to_owned(), true)));
    }

    #[test]
    fn bad_values_are_reported_without_the_token() {
        let config = read(
            serde_json::json!({"token": "not-a-token-secret", "guild": " ", "catch_up_max_age_secs": 99_999_999u64, "api_url": "ftp://x", "gateway_url": "http://x"}),
        );
        let problems = config.validate();
        let paths: Vec<String> = problems.iter().map(|p| p.path.join(".")).collect();
        assert_eq!(
            paths,
            [
                "token",
                "guild",
                "catch_up_max_age_secs",
                "api_url",
                "gateway_url"
            ]
        );
        assert!(problems.iter().all(|p| !p.message.contains("secret")));
        let empty = read(serde_json::json!({"token": "", "guild": "g"}));
        assert!(messages(&empty)[0].contains("must not be empty"));
        assert!(
            serde_json::from_value::<DiscordConfig>(
                serde_json::json!({"token": TOKEN, "guild": "g", "webhooks": "sometimes"})
            )
            .is_err()
        );
    }

    #[test]
    fn given_webhooks_are_read_from_their_urls_and_never_shown() {
        let url = "https://discord.com/api/webhooks/223704706495545344/3d89bb7572e0fb30d8128367b3b1b44fecd1726de135cbe28a41f8b2f777c372ba2939e72279b94526ff5d1bd4358d65cf11";
        let config = read(serde_json::json!({
            "token": TOKEN,
            "guild": "g",
            "channel_webhooks": {"#General": url, "broken": "https://discord.com/api/webhooks/x/y", "plain": "not a url"},
        }));
        let (id, token) = webhook_parts(&config.channel_webhooks["#General"]).unwrap();
        assert_eq!(id, 223_704_706_495_545_344);
        assert!(token.starts_with("3d89bb") && token.ends_with("cf11"));
        assert_eq!(
            webhook_parts("http://127.0.0.1:4000/api/v10/webhooks/12/abc_DEF-1?wait=true"),
            Some((12, "abc_DEF-1".to_owned()))
        );
        let problems = config.validate();
        let paths: Vec<String> = problems.iter().map(|p| p.path.join(".")).collect();
        assert_eq!(paths, ["channel_webhooks.broken", "channel_webhooks.plain"]);
        assert!(
            problems
                .iter()
                .all(|p| !p.about_value && !p.message.contains("discord.com"))
        );
        assert!(!format!("{config:?}").contains("3d89bb"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let config = read(serde_json::json!({"token": TOKEN, "guild": "g"}));
        let shown = format!("{config:?}");
        assert!(
            !shown.contains(TOKEN) && !shown.contains("GabcDE"),
            "{shown}"
        );
        assert!(shown.contains("redacted"));
    }
}
