//! A thin REST client for the API v4 endpoints the adapter uses, over one reqwest
//! client (rustls on ring). Every failure says whether retrying can help: 429 and 5xx
//! and transport errors are transient, other 4xx are permanent.

use crate::api::{
    AppError, Channel, FileInfo, NewPost, Post, PostList, Reaction, Team, UploadResult, User,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use switchboard_sdk::SendError;
use thiserror::Error;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const USER_AGENT: &str = concat!("switchboard/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Error, Clone)]
pub enum ApiError {
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// From `Retry-After` / `X-Ratelimit-Reset` on a 429.
        retry_after: Option<Duration>,
    },
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Status { status, .. } => *status == 429 || *status >= 500,
            ApiError::Transport(_) => true,
            ApiError::Decode(_) => false,
        }
    }

    /// A refused session (401) keeps messages queued: an operator can fix the token
    /// and nothing is lost meanwhile.
    pub fn into_send_error(self) -> SendError {
        if let ApiError::Status {
            status: 429,
            retry_after: Some(retry_after),
            ..
        } = &self
        {
            return SendError::RateLimited {
                retry_after: *retry_after,
                reason: self.to_string(),
            };
        }
        if self.is_transient() || self.status() == Some(401) {
            SendError::Transient(self.to_string())
        } else {
            SendError::Permanent(self.to_string())
        }
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Arc<str>,
    token: Arc<RwLock<String>>,
    accept_invalid_certs: bool,
}

impl Client {
    pub fn new(base: &str, accept_invalid_certs: bool) -> Result<Self, String> {
        let tls = switchboard_sdk::tls::client_config("Mattermost", accept_invalid_certs)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|error| format!("HTTP client: {error}"))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').into(),
            token: Arc::new(RwLock::new(String::new())),
            accept_invalid_certs,
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn accepts_invalid_certs(&self) -> bool {
        self.accept_invalid_certs
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn set_token(&self, token: &str) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token.to_owned();
    }

    pub fn token(&self) -> String {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v4{path}", self.base)
    }

    fn authorised(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        builder.bearer_auth(self.token())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let response = self
            .authorised(request)
            .send()
            .await
            .map_err(|error| ApiError::Transport(without_url(&error)))?;
        let response = check(response).await?;
        response
            .json::<T>()
            .await
            .map_err(|error| ApiError::Decode(without_url(&error)))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call(self.http.get(self.url(path))).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ApiError> {
        self.call(self.http.post(self.url(path)).json(body)).await
    }

    /// `POST /users/login`: the session token comes back in the `Token` header.
    pub async fn login(&self, username: &str, password: &str) -> Result<User, ApiError> {
        let body = serde_json::json!({ "login_id": username, "password": password });
        let response = self
            .http
            .post(self.url("/users/login"))
            .json(&body)
            .send()
            .await
            .map_err(|error| ApiError::Transport(without_url(&error)))?;
        let response = check(response).await?;
        let token = response
            .headers()
            .get("token")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Decode("login answered without a Token header".into()))?;
        self.set_token(&token);
        response
            .json()
            .await
            .map_err(|error| ApiError::Decode(without_url(&error)))
    }

    pub async fn me(&self) -> Result<User, ApiError> {
        self.get("/users/me").await
    }

    pub async fn user(&self, user_id: &str) -> Result<User, ApiError> {
        self.get(&format!("/users/{user_id}")).await
    }

    pub async fn team_by_name(&self, name: &str) -> Result<Team, ApiError> {
        self.get(&format!("/teams/name/{name}")).await
    }

    /// A channel by name in `team_name`'s team, or by id when no such name exists and
    /// the text is shaped like an id (asking for anything else by id only earns a
    /// "missing channel_id" 400 that hides the real problem).
    pub async fn channel(&self, team_name: &str, name_or_id: &str) -> Result<Channel, ApiError> {
        match self
            .get(&format!(
                "/teams/name/{team_name}/channels/name/{name_or_id}"
            ))
            .await
        {
            Err(error) if error.status() == Some(404) && looks_like_id(name_or_id) => {
                self.get(&format!("/channels/{name_or_id}")).await
            }
            other => other,
        }
    }

    pub async fn join_channel(&self, channel_id: &str, user_id: &str) -> Result<(), ApiError> {
        let body = serde_json::json!({ "user_id": user_id });
        self.post::<serde_json::Value>(&format!("/channels/{channel_id}/members"), &body)
            .await
            .map(drop)
    }

    /// Whether `user_id` is a member of the channel (an error when not, or unknown).
    pub async fn channel_member(&self, channel_id: &str, user_id: &str) -> Result<(), ApiError> {
        self.get::<serde_json::Value>(&format!("/channels/{channel_id}/members/{user_id}"))
            .await
            .map(drop)
    }

    /// The server's client config (old format: a flat map of strings).
    pub async fn client_config(&self) -> Result<serde_json::Value, ApiError> {
        self.get("/config/client?format=old").await
    }

    pub async fn create_post(&self, post: &NewPost<'_>) -> Result<Post, ApiError> {
        self.post("/posts", post).await
    }

    pub async fn patch_post(&self, post_id: &str, message: &str) -> Result<Post, ApiError> {
        let body = serde_json::json!({ "message": message });
        self.call(
            self.http
                .put(self.url(&format!("/posts/{post_id}/patch")))
                .json(&body),
        )
        .await
    }

    pub async fn delete_post(&self, post_id: &str) -> Result<(), ApiError> {
        self.call::<serde_json::Value>(self.http.delete(self.url(&format!("/posts/{post_id}"))))
            .await
            .map(drop)
    }

    /// `POST /reactions`: `user_id` (the bridge's own user) reacts with `emoji_name`.
    pub async fn add_reaction(
        &self,
        user_id: &str,
        post_id: &str,
        emoji_name: &str,
    ) -> Result<Reaction, ApiError> {
        let body = serde_json::json!({
            "user_id": user_id, "post_id": post_id, "emoji_name": emoji_name
        });
        self.post("/reactions", &body).await
    }

    pub async fn remove_reaction(
        &self,
        user_id: &str,
        post_id: &str,
        emoji_name: &str,
    ) -> Result<(), ApiError> {
        let path = format!("/users/{user_id}/posts/{post_id}/reactions/{emoji_name}");
        self.call::<serde_json::Value>(self.http.delete(self.url(&path)))
            .await
            .map(drop)
    }

    /// One page of a channel's live posts, newest first: the newest `per_page`, or
    /// those just older than the post `before`.
    pub async fn posts_page(
        &self,
        channel_id: &str,
        before: Option<&str>,
        per_page: usize,
    ) -> Result<PostList, ApiError> {
        let mut path = format!("/channels/{channel_id}/posts?page=0&per_page={per_page}");
        if let Some(before) = before {
            path.push_str(&format!("&before={before}"));
        }
        self.get(&path).await
    }

    /// Posts of a channel created, edited or deleted after `since_ms` (deleted ones
    /// with their text blanked), plus the roots of changed replies. The server
    /// answers at most `SINCE_LIMIT` of them, chosen before it orders them: a full
    /// answer may leave out any of the changes.
    pub async fn posts_changed_since(
        &self,
        channel_id: &str,
        since_ms: i64,
    ) -> Result<Vec<Post>, ApiError> {
        let list: PostList = self
            .get(&format!("/channels/{channel_id}/posts?since={since_ms}"))
            .await?;
        Ok(list.into_ordered())
    }

    pub async fn post_by_id(&self, post_id: &str) -> Result<Post, ApiError> {
        self.get(&format!("/posts/{post_id}")).await
    }

    pub async fn file_info(&self, file_id: &str) -> Result<FileInfo, ApiError> {
        self.get(&format!("/files/{file_id}/info")).await
    }

    /// A link that works without a session when the server has public links on,
    /// else the authenticated API address of the file.
    pub async fn file_link(&self, file_id: &str) -> String {
        #[derive(serde::Deserialize)]
        struct Link {
            link: String,
        }
        match self.get::<Link>(&format!("/files/{file_id}/link")).await {
            Ok(link) if !link.link.is_empty() => link.link,
            _ => self.url(&format!("/files/{file_id}")),
        }
    }

    pub async fn upload(
        &self,
        channel_id: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<FileInfo, ApiError> {
        let form = reqwest::multipart::Form::new()
            .text("channel_id", channel_id.to_owned())
            .part(
                "files",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
            );
        let result: UploadResult = self
            .call(self.http.post(self.url("/files")).multipart(form))
            .await?;
        result
            .file_infos
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::Decode("upload answered without a file".into()))
    }
}

/// At most this many posts answer a `since` query (the server's own limit).
pub const SINCE_LIMIT: usize = 1000;

/// Mattermost ids are 26 characters of lower-case letters and digits.
pub fn looks_like_id(text: &str) -> bool {
    text.len() == 26
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Turns a non-2xx answer into an `ApiError` with the server's own message.
pub async fn check(response: reqwest::Response) -> Result<reqwest::Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap_or_default();
    Err(status_error(status.as_u16(), &headers, &body))
}

/// The error for a non-2xx answer: Mattermost's message from the body (or the
/// body's start), and how long to wait on a 429.
pub fn status_error(status: u16, headers: &http::HeaderMap, body: &[u8]) -> ApiError {
    let body = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<AppError>(&body)
        .ok()
        .filter(|error| !error.message.is_empty())
        .map(|error| error.message)
        .unwrap_or_else(|| body.chars().take(200).collect());
    ApiError::Status {
        status,
        message,
        retry_after: retry_after(headers),
    }
}

/// Mattermost's rate limiter sends `X-Ratelimit-Reset` (seconds until the window
/// resets) and `Retry-After`.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    ["retry-after", "x-ratelimit-reset"]
        .iter()
        .filter_map(|name| {
            headers
                .get(*name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .next()
        .map(Duration::from_secs)
}

/// reqwest errors include the URL, which for incoming webhooks is a secret.
pub fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "(url)");
    }
    text
}
