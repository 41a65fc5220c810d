//! A thin client for the Web API methods the adapter calls: form-encoded POSTs with
//! the token in `Authorization`, answers read as `{"ok": ..., "error": ...}`. Every
//! failure says whether retrying can help, and a 429 carries its `Retry-After`.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;
use switchboard_sdk::SendError;
use thiserror::Error;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const USER_AGENT: &str = concat!("switchboard/", env!("CARGO_PKG_VERSION"));
/// Slack's advice when a 429 comes without `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// `{"ok": false, "error": CODE}`: Slack's own error code.
    #[error("Slack said {code}")]
    Slack { code: String },
    #[error("rate limited for {0:?}")]
    RateLimited(Duration),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unexpected answer: {0}")]
    Decode(String),
}

/// Error codes that no retry will change: the operator must act (invite the bot,
/// fix the token or the scopes), and a message retried forever would hide that.
const PERMANENT_CODES: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_allowed_token_type",
    "restricted_action",
    "msg_too_long",
    "no_text",
    "too_many_attachments",
    "cant_update_message",
    "cant_delete_message",
    "edit_window_closed",
    "message_not_found",
    "invalid_blocks",
    "team_access_not_granted",
    "ekm_access_denied",
];

impl ApiError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Slack { code } => Some(code),
            _ => None,
        }
    }

    pub fn is_permanent(&self) -> bool {
        match self {
            ApiError::Slack { code } => PERMANENT_CODES.contains(&code.as_str()),
            ApiError::Status(status) => (400..500).contains(status) && *status != 429,
            ApiError::RateLimited(_) | ApiError::Transport(_) | ApiError::Decode(_) => false,
        }
    }

    /// The token itself is refused: nothing will work until the operator fixes it.
    pub fn is_auth(&self) -> bool {
        matches!(
            self.code(),
            Some(
                "invalid_auth"
                    | "not_authed"
                    | "account_inactive"
                    | "token_revoked"
                    | "token_expired"
            )
        )
    }

    /// A delivery that failed this way, with a message an operator can act on.
    pub fn into_send_error(self, method: &str) -> SendError {
        match self {
            ApiError::RateLimited(retry_after) => SendError::RateLimited {
                retry_after,
                reason: format!("{method}: rate limited by Slack"),
            },
            error if error.is_permanent() => {
                SendError::Permanent(format!("{method}: {}", explain(&error)))
            }
            error => SendError::Transient(format!("{method}: {error}")),
        }
    }
}

/// An error code with what the operator can do about it.
pub fn explain(error: &ApiError) -> String {
    let advice = match error.code() {
        Some("channel_not_found") => " (no such channel, or the bot cannot see it)",
        Some("not_in_channel") => " (invite the bot: /invite @bot in the channel)",
        Some("invalid_auth" | "not_authed" | "token_revoked" | "token_expired") => {
            " (the token is refused: check bot_token / app_token)"
        }
        Some("missing_scope") => " (the app lacks a scope: see docs/slack.md)",
        Some("is_archived") => " (the channel is archived)",
        _ => "",
    };
    format!("{error}{advice}")
}

/// One Web API token's client.
#[derive(Clone)]
pub struct WebApi {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// An answer with the response headers the adapter looks at.
pub struct Answer {
    pub body: Value,
    /// `X-OAuth-Scopes`: the scopes the token has, where Slack says.
    pub scopes: Option<String>,
}

impl WebApi {
    pub fn new(base: &str, token: &str) -> Result<Self, String> {
        let http = http_client()?;
        Ok(Self {
            http,
            base: base.to_owned(),
            token: token.to_owned(),
        })
    }

    /// Calls `method` with form `params` and decodes the answer as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        let answer = self.call_raw(method, params).await?;
        serde_json::from_value(answer.body)
            .map_err(|error| ApiError::Decode(format!("{method}: {error}")))
    }

    /// Calls `method` and returns the whole answer once `ok` is true.
    pub async fn call_raw(
        &self,
        method: &str,
        params: &[(&str, &str)],
    ) -> Result<Answer, ApiError> {
        let response = self
            .http
            .post(format!("{}{method}", self.base))
            .bearer_auth(&self.token)
            .form(params)
            .send()
            .await
            .map_err(|error| ApiError::Transport(without_url(&error)))?;
        let status = response.status().as_u16();
        if status == 429 {
            return Err(ApiError::RateLimited(retry_after(response.headers())));
        }
        let scopes = response
            .headers()
            .get("x-oauth-scopes")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        if !(200..300).contains(&status) {
            return Err(ApiError::Status(status));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|error| ApiError::Decode(format!("{method}: {}", without_url(&error))))?;
        if body.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(Answer { body, scopes })
        } else {
            let code = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error");
            if code == "ratelimited" {
                return Err(ApiError::RateLimited(DEFAULT_RETRY_AFTER));
            }
            Err(ApiError::Slack {
                code: code.to_owned(),
            })
        }
    }
}

/// The reqwest client every Slack call uses: rustls with the platform's roots.
pub fn http_client() -> Result<reqwest::Client, String> {
    let tls = switchboard_sdk::tls::client_config("Slack", false)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|error| format!("cannot build the Slack HTTP client: {error}"))
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
}

/// A transport error without its URL: an incoming-webhook URL is a secret.
pub fn without_url(error: &reqwest::Error) -> String {
    let mut shown = error.to_string();
    if let Some(url) = error.url() {
        shown = shown.replace(url.as_str(), "<url>");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_errors_are_permanent_and_say_what_to_do() {
        let error = ApiError::Slack {
            code: "not_in_channel".into(),
        };
        match error.into_send_error("chat.postMessage") {
            SendError::Permanent(message) => assert!(message.contains("/invite"), "{message}"),
            other => panic!("{other:?}"),
        }
        let transient = ApiError::Slack {
            code: "internal_error".into(),
        };
        assert!(matches!(
            transient.into_send_error("m"),
            SendError::Transient(_)
        ));
        let limited = ApiError::RateLimited(Duration::from_secs(7)).into_send_error("m");
        assert!(
            matches!(limited, SendError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(7))
        );
        assert!(
            ApiError::Slack {
                code: "invalid_auth".into()
            }
            .is_auth()
        );
    }
}
