//! Webhook mode, sending side: posts go to the incoming-webhook URL over a lean HTTP
//! client (hyper's keep-alive pool on rustls), with the URL parsed once.
//!
//! An incoming webhook is the hot path of webhook mode: one request per post, always
//! to the same URL. Through reqwest each one paid for parsing the URL again and for
//! redirect, retry and proxy layers a webhook never uses; the relay benchmark showed
//! that as a fifth of the daemon's CPU per message. When the environment names a
//! proxy for the URL (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, minus `NO_PROXY`),
//! the adapter keeps using reqwest, which speaks to proxies.

use crate::client::{ApiError, status_error};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::time::Duration;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer's body read (an error message); the rest is not needed.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What an incoming webhook takes: the text, the channel (one webhook may serve
/// several), and the name and picture to post as where names are overridden.
#[derive(Serialize)]
pub struct HookPost<'a> {
    pub text: &'a str,
    pub channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<&'a str>,
}

pub struct IncomingHook {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: http::Uri,
}

impl IncomingHook {
    /// A client for `url`, or `None` when a proxy is configured for it (the caller
    /// then posts through its proxy-aware client).
    pub fn new(url: &str, tls: rustls::ClientConfig) -> Result<Option<Self>, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|error| format!("incoming webhook URL: {error}"))?;
        if hyper_util::client::proxy::matcher::Matcher::from_env()
            .intercept(&uri)
            .is_some()
        {
            return Ok(None);
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Some(Self { client, uri }))
    }

    /// Posts once; any non-2xx answer is an error with Mattermost's message.
    pub async fn post(&self, post: &HookPost<'_>) -> Result<(), ApiError> {
        let body = serde_json::to_vec(post).map_err(|error| ApiError::Decode(error.to_string()))?;
        let request = http::Request::post(self.uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(
                USER_AGENT,
                HeaderValue::from_static(crate::client::USER_AGENT),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| ApiError::Transport(error.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(transport)?;
            let (head, body) = response.into_parts();
            // Read the answer to its end so the connection goes back to the pool.
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            if head.status.is_success() {
                Ok(())
            } else {
                Err(status_error(head.status.as_u16(), &head.headers, &body))
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ApiError::Transport(format!("no answer within {REQUEST_TIMEOUT:?}")))?
    }
}

/// hyper's errors never carry the URL, whose path is the webhook's secret key.
fn transport(error: hyper_util::client::legacy::Error) -> ApiError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ApiError::Transport(message)
}
