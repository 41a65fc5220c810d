//! The REST client (twilight-http) and what its errors mean for the bridge.
//!
//! twilight's rate limiter waits out each bucket (per channel for messages) and
//! retries a 429 by itself, so one rate-limited channel holds back only its own
//! sends; a 429 that still reaches the adapter becomes `SendError::RateLimited`.

use crate::config::DiscordConfig;
use std::time::Duration;
use switchboard_sdk::{AdapterError, SendError};
use twilight_http::Client;
use twilight_http::api_error::ApiError;
use twilight_http::error::{Error, ErrorType};
use twilight_model::channel::message::AllowedMentions;

/// Discord error codes the adapter tells apart.
pub mod code {
    pub const UNKNOWN_CHANNEL: u64 = 10003;
    pub const UNKNOWN_MESSAGE: u64 = 10008;
    pub const UNKNOWN_WEBHOOK: u64 = 10015;
    pub const MISSING_ACCESS: u64 = 50001;
    pub const MISSING_PERMISSIONS: u64 = 50013;
}

/// How long one request may take (twilight's own default is 10 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

pub fn client(config: &DiscordConfig) -> Client {
    let mut builder = Client::builder()
        .token(config.bare_token())
        .timeout(REQUEST_TIMEOUT)
        .default_allowed_mentions(no_mentions());
    if let Some((host, use_http)) = config.api_proxy() {
        builder = builder.proxy(host, use_http);
    }
    builder.build()
}

/// `{"parse": []}`: Discord pings nobody for the text, whatever it contains.
pub fn no_mentions() -> AllowedMentions {
    AllowedMentions::default()
}

/// What one failed request was, in Discord's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// 401: the token is wrong or revoked.
    Unauthorized,
    /// 429 that reached us: wait this long.
    RateLimited(Duration),
    /// Any other answer: its status, Discord's code (0 without one) and message.
    Refused {
        status: u16,
        code: u64,
        message: String,
    },
    /// No answer: a timeout, a refused connection, an unreadable body.
    Unreachable(String),
}

impl Failure {
    pub fn of(error: &Error) -> Self {
        match error.kind() {
            ErrorType::Unauthorized => Failure::Unauthorized,
            ErrorType::Response { status, error, .. } => {
                let status = status.get();
                if status == 401 {
                    return Failure::Unauthorized;
                }
                match error {
                    ApiError::Ratelimited(limited) => Failure::RateLimited(
                        Duration::try_from_secs_f64(limited.retry_after)
                            .unwrap_or(Duration::from_secs(1)),
                    ),
                    ApiError::General(general) => Failure::Refused {
                        status,
                        code: general.code,
                        message: general.message.clone(),
                    },
                    ApiError::Message(message) => Failure::Refused {
                        status,
                        code: 50035,
                        message: format!("invalid message: {message}"),
                    },
                    #[allow(unreachable_patterns)]
                    other => Failure::Refused {
                        status,
                        code: 0,
                        message: other.to_string(),
                    },
                }
            }
            ErrorType::Parsing { body } => Failure::Unreachable(format!(
                "an unreadable answer: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
            _ => Failure::Unreachable(error.to_string()),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Unauthorized => Some(401),
            Failure::RateLimited(_) => Some(429),
            Failure::Refused { status, .. } => Some(*status),
            Failure::Unreachable(_) => None,
        }
    }

    pub fn code(&self) -> Option<u64> {
        match self {
            Failure::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A failure no retry can fix: a refusal (4xx) other than a rate limit.
    pub fn is_permanent(&self) -> bool {
        match self {
            Failure::Unauthorized => true,
            Failure::Refused { status, .. } => (400..500).contains(status) && *status != 429,
            _ => false,
        }
    }

    /// The channel itself is out of reach: gone, or the bot may not see or post in it.
    pub fn is_channel_refusal(&self) -> bool {
        matches!(
            self.code(),
            Some(code::UNKNOWN_CHANNEL | code::MISSING_ACCESS | code::MISSING_PERMISSIONS)
        )
    }

    pub fn is_unknown_message(&self) -> bool {
        self.code() == Some(code::UNKNOWN_MESSAGE)
            || (self.status() == Some(404) && self.code() == Some(0))
    }

    /// For the operator: what Discord said and what to do about it.
    pub fn explain(&self) -> String {
        match self {
            Failure::Unauthorized => "401 Unauthorized: Discord refused the bot token (reset it in the Developer Portal and update the config)".into(),
            Failure::RateLimited(wait) => format!("429 rate limited for {wait:?}"),
            Failure::Refused { status, code, message } => {
                let advice = match *code {
                    code::UNKNOWN_CHANNEL => " (the channel does not exist, or not in this server)",
                    code::MISSING_ACCESS => " (the bot cannot see this channel: give its role View Channel there)",
                    code::MISSING_PERMISSIONS => " (the bot lacks a permission here: Send Messages, Read Message History, Manage Webhooks...)",
                    code::UNKNOWN_MESSAGE => " (the message is gone)",
                    _ => "",
                };
                format!("{status} {message} (code {code}){advice}")
            }
            Failure::Unreachable(reason) => format!("no answer: {reason}"),
        }
    }

    pub fn into_send_error(self, what: &str) -> SendError {
        match &self {
            Failure::RateLimited(wait) => SendError::RateLimited {
                reason: format!("{what}: {}", self.explain()),
                retry_after: *wait,
            },
            _ if self.is_permanent() => SendError::Permanent(format!("{what}: {}", self.explain())),
            _ => SendError::Transient(format!("{what}: {}", self.explain())),
        }
    }

    pub fn into_adapter_error(self, what: &str) -> AdapterError {
        let message = format!("{what}: {}", self.explain());
        match &self {
            Failure::Unauthorized => AdapterError::Auth(message),
            Failure::Refused {
                status: 403 | 404, ..
            } => AdapterError::Config(message),
            _ => AdapterError::Connection(message),
        }
    }
}

/// The body of a successful answer read as `U`: twilight's model of the answer (a
/// list body as a `Vec`), or `serde_json::Value` for answers the adapter reads only a
/// field or two of, so that a field twilight's model requires and a server leaves out
/// does not fail the connection.
pub async fn read<T, U: serde::de::DeserializeOwned>(
    request: impl std::future::IntoFuture<Output = Result<twilight_http::Response<T>, Error>>,
) -> Result<U, Failure> {
    let response = request.await.map_err(|error| Failure::of(&error))?;
    let bytes = response
        .bytes()
        .await
        .map_err(|error| Failure::Unreachable(format!("reading the answer: {error}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| Failure::Unreachable(format!("an unreadable answer: {error}")))
}

/// A request whose answer carries nothing the adapter reads (a 204).
pub async fn done<T>(
    request: impl std::future::IntoFuture<Output = Result<twilight_http::Response<T>, Error>>,
) -> Result<(), Failure> {
    request.await.map(drop).map_err(|error| Failure::of(&error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permanent_and_the_rest_transient() {
        let refused = |status, code| Failure::Refused {
            status,
            code,
            message: "x".into(),
        };
        assert!(refused(403, code::MISSING_PERMISSIONS).is_permanent());
        assert!(refused(403, code::MISSING_PERMISSIONS).is_channel_refusal());
        assert!(refused(404, code::UNKNOWN_CHANNEL).is_channel_refusal());
        assert!(!refused(502, 0).is_permanent());
        assert!(Failure::Unauthorized.is_permanent());
        assert!(matches!(
            Failure::RateLimited(Duration::from_millis(250)).into_send_error("post"),
            SendError::RateLimited { retry_after, .. } if retry_after == Duration::from_millis(250)
        ));
        assert!(matches!(
            refused(500, 0).into_send_error("post"),
            SendError::Transient(_)
        ));
        assert!(matches!(
            Failure::Unreachable("timeout".into()).into_send_error("post"),
            SendError::Transient(_)
        ));
        let explained = refused(403, code::MISSING_ACCESS).explain();
        assert!(explained.contains("View Channel"), "{explained}");
        assert!(matches!(
            Failure::Unauthorized.into_adapter_error("users/@me"),
            AdapterError::Auth(_)
        ));
    }

    #[test]
    fn no_mentions_is_an_empty_parse_list() {
        assert_eq!(
            serde_json::to_string(&no_mentions()).unwrap(),
            r#"{"parse":[]}"#
        );
    }
}
