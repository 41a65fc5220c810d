//! The registration the homeserver admin installs (`switchboard matrix-registration`)
//! and the two tokens in it: `as_token` (the bridge authenticates to the homeserver)
//! and `hs_token` (the homeserver authenticates to the bridge). Unless the config
//! sets them, they are generated once and kept in the network's adapter state, so
//! printing the registration again gives the same file and the daemon finds them.

use crate::MatrixConfig;
use switchboard_sdk::{AdapterState, SubmitError};

const AS_TOKEN: &str = "appservice_as_token";
const HS_TOKEN: &str = "appservice_hs_token";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    pub as_token: String,
    pub hs_token: String,
}

/// The tokens from the config, else from the state; `None` before the first
/// `switchboard matrix-registration`.
pub async fn load_tokens(
    config: &MatrixConfig,
    state: &dyn AdapterState,
) -> Result<Option<Tokens>, SubmitError> {
    if let Some(appservice) = &config.appservice
        && let (Some(as_token), Some(hs_token)) = (&appservice.as_token, &appservice.hs_token)
    {
        return Ok(Some(Tokens {
            as_token: as_token.clone(),
            hs_token: hs_token.clone(),
        }));
    }
    match (state.load(AS_TOKEN).await?, state.load(HS_TOKEN).await?) {
        (Some(as_token), Some(hs_token)) => Ok(Some(Tokens { as_token, hs_token })),
        _ => Ok(None),
    }
}

/// The tokens, generated and saved when there are none yet.
pub async fn tokens_or_new(
    config: &MatrixConfig,
    state: &dyn AdapterState,
) -> Result<Tokens, SubmitError> {
    if let Some(tokens) = load_tokens(config, state).await? {
        return Ok(tokens);
    }
    let tokens = Tokens {
        as_token: random_token(),
        hs_token: random_token(),
    };
    state.save(AS_TOKEN, &tokens.as_token).await?;
    state.save(HS_TOKEN, &tokens.hs_token).await?;
    Ok(tokens)
}

/// 256 bits from the thread RNG (a CSPRNG seeded by the OS), as hex.
fn random_token() -> String {
    format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

/// The registration YAML for the network `network`, reachable at `url`.
pub fn registration_yaml(
    config: &MatrixConfig,
    network: &str,
    url: &str,
    tokens: &Tokens,
) -> Result<String, String> {
    let Some(appservice) = &config.appservice else {
        return Err(format!(
            "network {network:?} has no `appservice` section: it runs as a relay bot"
        ));
    };
    let id = appservice
        .id
        .clone()
        .unwrap_or_else(|| format!("switchboard-{network}"));
    let server = regex::escape(config.server_name());
    // JSON strings are valid YAML double-quoted scalars: no hand-made escaping.
    let quoted = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let users = format!("@{}.*:{server}", regex::escape(&appservice.ghost_prefix));
    let aliases = format!("#{}.*:{server}", regex::escape(&appservice.alias_prefix));
    Ok(format!(
        "# Matrix application-service registration for Switchboard network {network:?}.\n\
         # Install it on the homeserver (Synapse: list this file under\n\
         # `app_service_config_files` in homeserver.yaml) and restart the homeserver.\n\
         # The tokens are secrets: keep this file readable by the homeserver only.\n\
         id: {id}\n\
         url: {url}\n\
         as_token: {as_token}\n\
         hs_token: {hs_token}\n\
         sender_localpart: {sender}\n\
         rate_limited: false\n\
         namespaces:\n  \
           users:\n    \
             - exclusive: true\n      \
               regex: {users}\n  \
           aliases:\n    \
             - exclusive: true\n      \
               regex: {aliases}\n  \
           rooms: []\n",
        id = quoted(&id),
        url = quoted(url),
        as_token = quoted(&tokens.as_token),
        hs_token = quoted(&tokens.hs_token),
        sender = quoted(config.bot_localpart()),
        users = quoted(&users),
        aliases = quoted(&aliases),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppserviceConfig;
    use switchboard_sdk::testing::MemoryState;

    fn config() -> MatrixConfig {
        MatrixConfig {
            homeserver: "http://127.0.0.1:8008".into(),
            user_id: "@switchboard:example.org".into(),
            password: None,
            access_token: None,
            device_name: "Switchboard".into(),
            catch_up_max_age_secs: 60,
            accept_invalid_certs: false,
            appservice: Some(AppserviceConfig {
                url: None,
                id: None,
                ghost_prefix: "_sb_".into(),
                alias_prefix: "_sb_".into(),
                ghost_suffix: " ({protocol})".into(),
                as_token: None,
                hs_token: None,
            }),
        }
    }

    #[tokio::test]
    async fn tokens_are_generated_once_and_kept() {
        let state = MemoryState::default();
        assert_eq!(load_tokens(&config(), &state).await.unwrap(), None);
        let first = tokens_or_new(&config(), &state).await.unwrap();
        assert_eq!(first.as_token.len(), 64);
        assert_ne!(first.as_token, first.hs_token);
        assert_eq!(tokens_or_new(&config(), &state).await.unwrap(), first);
        assert_eq!(load_tokens(&config(), &state).await.unwrap(), Some(first));
    }

    #[test]
    fn the_registration_claims_the_namespaces() {
        let tokens = Tokens {
            as_token: "a".into(),
            hs_token: "h".into(),
        };
        let yaml = registration_yaml(
            &config(),
            "matrix",
            "http://127.0.0.1:9477/webhooks/matrix",
            &tokens,
        )
        .unwrap();
        for line in [
            "id: \"switchboard-matrix\"",
            "url: \"http://127.0.0.1:9477/webhooks/matrix\"",
            "sender_localpart: \"switchboard\"",
            "regex: \"@_sb_.*:example\\\\.org\"",
            "regex: \"#_sb_.*:example\\\\.org\"",
            "as_token: \"a\"",
        ] {
            assert!(yaml.contains(line), "{line} missing in:\n{yaml}");
        }
        let relay_bot = MatrixConfig {
            appservice: None,
            ..config()
        };
        assert!(registration_yaml(&relay_bot, "m", "http://x", &tokens).is_err());
    }
}
