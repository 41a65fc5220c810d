//! The client-server API as the application service: the `as_token` authenticates
//! every request and `user_id=` picks which of the service's users acts (the bridge
//! bot when absent). Plain JSON over reqwest: matrix-sdk's client has no way to
//! masquerade as another user.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_sdk::SendError;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Api {
    http: reqwest::Client,
    base: String,
    as_token: String,
}

/// A refused or failed request.
#[derive(Debug)]
pub enum ApiError {
    /// The homeserver answered with an error status.
    Status {
        status: u16,
        errcode: String,
        message: String,
        /// From a 429's `retry_after_ms`.
        retry_after: Option<Duration>,
    },
    /// No answer (connection, timeout, unreadable body).
    Network(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Network(_) => None,
        }
    }

    pub fn errcode(&self) -> &str {
        match self {
            ApiError::Status { errcode, .. } => errcode,
            ApiError::Network(_) => "",
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status {
                status,
                errcode,
                message,
                ..
            } => write!(f, "{status} {errcode}: {message}"),
            ApiError::Network(reason) => f.write_str(reason),
        }
    }
}

impl From<ApiError> for SendError {
    fn from(error: ApiError) -> Self {
        match &error {
            ApiError::Status {
                retry_after: Some(retry_after),
                ..
            } => SendError::RateLimited {
                reason: error.to_string(),
                retry_after: *retry_after,
            },
            ApiError::Status { status, .. } => {
                crate::outbound::classify_status(*status, error.to_string())
            }
            ApiError::Network(reason) => SendError::Transient(reason.clone()),
        }
    }
}

/// One path segment, percent-encoded (room ids, user ids, transaction ids).
fn segment(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

impl Api {
    pub fn new(
        homeserver: &str,
        as_token: &str,
        accept_invalid_certs: bool,
    ) -> Result<Self, String> {
        let tls = switchboard_sdk::tls::client_config("Matrix", accept_invalid_certs)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("HTTP client: {error}"))?;
        Ok(Self {
            http,
            base: homeserver.trim_end_matches('/').to_owned(),
            as_token: as_token.to_owned(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        as_user: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut request = self
            .http
            .request(method, format!("{}/_matrix/client/v3{path}", self.base))
            .bearer_auth(&self.as_token);
        if let Some(user) = as_user {
            request = request.query(&[("user_id", user)]);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| ApiError::Network(error.without_url().to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| ApiError::Network(error.without_url().to_string()))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Err(ApiError::Status {
            status,
            errcode: text("errcode"),
            message: text("error"),
            retry_after: (status == 429).then(|| {
                Duration::from_millis(
                    value
                        .get("retry_after_ms")
                        .and_then(Value::as_u64)
                        .unwrap_or(1000),
                )
            }),
        })
    }

    /// The bridge bot's user id, which proves the homeserver knows the `as_token`.
    pub async fn whoami(&self) -> Result<String, ApiError> {
        let answer = self
            .call(Method::GET, "/account/whoami", None, None)
            .await?;
        Ok(answer
            .get("user_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    /// Creates a user of the service's namespace; one that exists already is fine.
    pub async fn register(&self, localpart: &str) -> Result<(), ApiError> {
        let body = json!({
            "type": "m.login.application_service",
            "username": localpart,
            "inhibit_login": true,
        });
        match self
            .call(Method::POST, "/register", None, Some(&body))
            .await
        {
            Err(error) if error.errcode() == "M_USER_IN_USE" => Ok(()),
            other => other.map(drop),
        }
    }

    pub async fn set_display_name(&self, user: &str, name: &str) -> Result<(), ApiError> {
        let path = format!("/profile/{}/displayname", segment(user));
        let body = json!({ "displayname": name });
        self.call(Method::PUT, &path, Some(user), Some(&body))
            .await
            .map(drop)
    }

    /// Joins `room` (id or alias) as `as_user` (the bot when `None`); the room id.
    pub async fn join(&self, room: &str, as_user: Option<&str>) -> Result<String, ApiError> {
        let path = format!("/join/{}", segment(room));
        let answer = self
            .call(Method::POST, &path, as_user, Some(&json!({})))
            .await?;
        Ok(answer
            .get("room_id")
            .and_then(Value::as_str)
            .unwrap_or(room)
            .to_owned())
    }

    /// The bot invites `user` (for rooms one cannot join uninvited).
    pub async fn invite(&self, room_id: &str, user: &str) -> Result<(), ApiError> {
        let path = format!("/rooms/{}/invite", segment(room_id));
        self.call(Method::POST, &path, None, Some(&json!({ "user_id": user })))
            .await
            .map(drop)
    }

    /// Sends a room event of `event_type` (`m.room.message`, `m.reaction`); the
    /// event id.
    pub async fn send_event(
        &self,
        room_id: &str,
        event_type: &str,
        txn: &str,
        as_user: Option<&str>,
        content: &Value,
    ) -> Result<String, ApiError> {
        let path = format!(
            "/rooms/{}/send/{}/{}",
            segment(room_id),
            segment(event_type),
            segment(txn)
        );
        let answer = self
            .call(Method::PUT, &path, as_user, Some(content))
            .await?;
        answer
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Network("the send answer has no event_id".into()))
    }

    pub async fn redact(
        &self,
        room_id: &str,
        event_id: &str,
        txn: &str,
        as_user: Option<&str>,
    ) -> Result<(), ApiError> {
        let path = format!(
            "/rooms/{}/redact/{}/{}",
            segment(room_id),
            segment(event_id),
            segment(txn)
        );
        self.call(Method::PUT, &path, as_user, Some(&json!({})))
            .await
            .map(drop)
    }

    /// `user`'s display name in the room, where they set one.
    pub async fn member_name(&self, room_id: &str, user: &str) -> Option<String> {
        let path = format!(
            "/rooms/{}/state/m.room.member/{}",
            segment(room_id),
            segment(user)
        );
        let answer = self.call(Method::GET, &path, None, None).await.ok()?;
        answer
            .get("displayname")
            .and_then(Value::as_str)
            .filter(|name| !name.trim().is_empty())
            .map(str::to_owned)
    }
}
