//! The Events API: every event is wrapped (`event_callback`), handed to Socket
//! Mode, and POSTed to the request URL signed with the signing secret. A worker
//! delivers the pushes one at a time, in order, and retries failed ones as
//! Slack does: same body and `event_id`, `X-Slack-Retry-Num` 1..3 and
//! `X-Slack-Retry-Reason`, unless the app answered `X-Slack-No-Retry: 1`.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};

use super::shapes::hex;
use super::state::{ALNUM, LastEvent, now_secs, random_string};
use super::{Delivery, FakeSlack, Inner};

/// Slack retries a failed push at most 3 times.
pub const MAX_RETRIES: u32 = 3;
const USER_AGENT: &str = "Slackbot 1.0 (+https://api.slack.com/robots)";
/// How long `push_raw` and `url_verification` wait for an answer.
const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// When failed pushes are retried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventRetries {
    /// All 3 retries right after each failure (the default: no test waits).
    #[default]
    Immediate,
    /// No automatic retries: a test sends them with `retry_last_event`.
    OnDemand,
    /// Slack's schedule: at once, after 1 minute, after 5 minutes.
    Slack,
}

/// One push of one event (its first attempt or a retry).
pub(super) struct Job {
    pub body: String,
    pub event_id: String,
    pub event_type: String,
    pub retry_num: u32,
    pub reason: Option<String>,
    /// Told the outcome of this attempt, for `retry_last_event`.
    pub reply: Option<oneshot::Sender<Delivery>>,
}

/// `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}` under the secret.
pub(super) fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex(&mac.finalize().into_bytes()))
}

impl Inner {
    /// Sends an event to every subscriber: the request URL (through the worker)
    /// and Socket Mode.
    pub(super) fn emit(&self, event: Value) {
        let event_type = match event["subtype"].as_str() {
            Some(subtype) => format!("{}/{subtype}", event["type"].as_str().unwrap_or("")),
            None => event["type"].as_str().unwrap_or("").to_owned(),
        };
        let job = {
            let mut st = self.lock();
            let event_id = format!("Ev0{}", random_string(9, ALNUM));
            let wrapped = st.wrap_event(event, &event_id);
            let job = st.events_url.as_ref().map(|_| Job {
                body: wrapped.to_string(),
                event_id,
                event_type,
                retry_num: 0,
                reason: None,
                reply: None,
            });
            if st.socket_mode {
                st.queue_envelope(wrapped);
            }
            job
        };
        if let Some(job) = job {
            let _ = self.jobs.send(job);
        }
        self.bump();
    }

    /// Pushes one job, then its retries as the retry mode says.
    async fn deliver(self: Arc<Self>, mut job: Job) {
        loop {
            let (url, timeout, secret, retries) = {
                let st = self.lock();
                let secret = st.options.signing_secret.clone();
                (st.events_url.clone(), st.events_timeout, secret, st.retries)
            };
            // The URL was unset after the event was queued: nobody to tell.
            let Some(url) = url else { return };
            let (delivery, failure) = self.push_once(&url, &job, timeout, &secret).await;
            {
                let mut st = self.lock();
                st.deliveries.push(delivery.clone());
                st.last_event = Some(LastEvent {
                    body: job.body.clone(),
                    event_id: job.event_id.clone(),
                    event_type: job.event_type.clone(),
                    retry_num: job.retry_num,
                });
            }
            self.bump();
            if let Some(reply) = job.reply.take() {
                let _ = reply.send(delivery.clone());
            }
            let Some(reason) = failure else { return };
            if delivery.no_retry
                || job.retry_num >= MAX_RETRIES
                || retries == EventRetries::OnDemand
            {
                return;
            }
            job.retry_num += 1;
            job.reason = Some(reason.to_owned());
            if retries == EventRetries::Slack && job.retry_num > 1 {
                let delay = if job.retry_num == 2 { 60 } else { 300 };
                let jobs = self.jobs.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(delay)).await;
                    let _ = jobs.send(job);
                });
                return;
            }
        }
    }

    /// One signed POST; the delivery and, when it failed, Slack's retry reason.
    async fn push_once(
        &self,
        url: &str,
        job: &Job,
        timeout: Duration,
        secret: &str,
    ) -> (Delivery, Option<&'static str>) {
        let timestamp = now_secs();
        let mut request = self
            .http
            .post(url)
            .timeout(timeout)
            .header("Content-Type", "application/json")
            .header("User-Agent", USER_AGENT)
            .header("X-Slack-Request-Timestamp", timestamp.to_string())
            .header("X-Slack-Signature", signature(secret, timestamp, &job.body));
        if let (true, Some(reason)) = (job.retry_num > 0, &job.reason) {
            request = request
                .header("X-Slack-Retry-Num", job.retry_num.to_string())
                .header("X-Slack-Retry-Reason", reason.as_str());
        }
        let mut delivery = Delivery {
            event_id: job.event_id.clone(),
            event_type: job.event_type.clone(),
            retry_num: (job.retry_num > 0).then_some(job.retry_num),
            retry_reason: job.reason.clone().filter(|_| job.retry_num > 0),
            status: 0,
            body: String::new(),
            no_retry: false,
        };
        let failure = match request.body(job.body.clone()).send().await {
            Ok(response) => {
                let status = response.status();
                delivery.status = status.as_u16();
                delivery.no_retry = response
                    .headers()
                    .get("x-slack-no-retry")
                    .is_some_and(|v| v.as_bytes() == b"1");
                match response.text().await {
                    Ok(body) => {
                        delivery.body = body;
                        (!status.is_success()).then_some("http_error")
                    }
                    // The body did not arrive in time: an answer Slack gave up on.
                    Err(e) if e.is_timeout() => Some("http_timeout"),
                    Err(_) => (!status.is_success()).then_some("http_error"),
                }
            }
            Err(e) => {
                delivery.body = e.to_string();
                Some(if e.is_timeout() {
                    "http_timeout"
                } else if e.is_redirect() {
                    "too_many_redirects"
                } else if e.is_connect() {
                    "connection_failed"
                } else {
                    "unknown_error"
                })
            }
        };
        (delivery, failure)
    }
}

/// Delivers the queued pushes one after another, so they arrive in order.
pub(super) async fn worker(inner: Arc<Inner>, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = queue.recv().await {
        inner.clone().deliver(job).await;
    }
}

impl FakeSlack {
    /// Sets the Events API request URL: from now on every event is POSTed there,
    /// signed. Events that happened before are not sent.
    pub fn set_events_url(&self, url: &str) {
        self.inner.lock().events_url = Some(url.to_owned());
    }

    /// When failed pushes are retried (default `EventRetries::Immediate`).
    pub fn set_event_retries(&self, retries: EventRetries) {
        self.inner.lock().retries = retries;
    }

    /// How long a push may take before it counts as `http_timeout` (Slack: 3 s).
    pub fn set_events_timeout(&self, timeout: Duration) {
        self.inner.lock().events_timeout = timeout;
    }

    /// Every push to the request URL so far, retries included, in order.
    pub fn event_deliveries(&self) -> Vec<Delivery> {
        self.inner.lock().deliveries.clone()
    }

    /// Waits until at least `count` pushes were made; returns them all.
    pub async fn wait_deliveries(&self, count: usize, timeout: Duration) -> Vec<Delivery> {
        let what = format!("{count} Events API deliveries");
        self.inner
            .wait(&what, timeout, |st| {
                (st.deliveries.len() >= count).then(|| st.deliveries.clone())
            })
            .await
    }

    /// Pushes the last pushed event again now, as retry number last + 1 with
    /// `X-Slack-Retry-Reason: reason` (e.g. `http_timeout`); returns what it got.
    /// Panics if no event was pushed yet.
    pub async fn retry_last_event(&self, reason: &str) -> Delivery {
        let (reply, answer) = oneshot::channel();
        let job = {
            let st = self.inner.lock();
            let last = st
                .last_event
                .as_ref()
                .expect("fake Slack: retry_last_event before any event was pushed");
            Job {
                body: last.body.clone(),
                event_id: last.event_id.clone(),
                event_type: last.event_type.clone(),
                retry_num: last.retry_num + 1,
                reason: Some(reason.to_owned()),
                reply: Some(reply),
            }
        };
        let _ = self.inner.jobs.send(job);
        let wait = self.inner.lock().events_timeout + RAW_TIMEOUT;
        tokio::time::timeout(wait, answer)
            .await
            .expect("fake Slack: the retry was not pushed in time")
            .expect("fake Slack: the delivery worker stopped")
    }

    /// The signature headers Slack would send with `body` at `timestamp`:
    /// `X-Slack-Request-Timestamp` and `X-Slack-Signature`.
    pub fn signed_headers(&self, body: &str, timestamp: i64) -> Vec<(String, String)> {
        let secret = self.inner.lock().options.signing_secret.clone();
        vec![
            (
                "X-Slack-Request-Timestamp".to_owned(),
                timestamp.to_string(),
            ),
            (
                "X-Slack-Signature".to_owned(),
                signature(&secret, timestamp, body),
            ),
        ]
    }

    /// POSTs anything to the request URL with exactly these headers (plus
    /// `Content-Type: application/json` unless given): for bad signatures,
    /// stale timestamps, malformed bodies. Returns the status and body; status
    /// 0 and the client error when there was no answer. Panics without a URL.
    pub async fn push_raw(&self, body: &str, headers: Vec<(String, String)>) -> (u16, String) {
        let url = self
            .inner
            .lock()
            .events_url
            .clone()
            .expect("fake Slack: push_raw without set_events_url");
        let mut request = self
            .inner
            .http
            .post(&url)
            .timeout(RAW_TIMEOUT)
            .body(body.to_owned());
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("Content-Type", "application/json");
        }
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    /// Sends the signed `url_verification` request Slack sends when a request URL
    /// is saved; returns the status and body. The app must answer 200 with the
    /// challenge (`last_challenge`) as plain text, JSON `{"challenge": ...}` or a form.
    pub async fn url_verification(&self) -> (u16, String) {
        let challenge = random_string(
            48,
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        );
        self.inner.lock().last_challenge = Some(challenge.clone());
        let body = json!({
            "token": self.verification_token(),
            "challenge": challenge,
            "type": "url_verification",
        })
        .to_string();
        let headers = self.signed_headers(&body, now_secs());
        self.push_raw(&body, headers).await
    }

    /// The challenge of the last `url_verification`.
    pub fn last_challenge(&self) -> Option<String> {
        self.inner.lock().last_challenge.clone()
    }
}
