//! A fake Slack workspace for adapter and daemon tests, written from Slack's public
//! API reference: the Web API (`POST /api/{method}`), the Events API (signed HTTP
//! pushes with retries), Socket Mode (a websocket with envelopes and acks),
//! incoming webhooks and legacy outgoing webhooks, all served on one loopback port.
//!
//! One workspace, one app. The app has a bot user (`bot_user_id`, `bot_id`), a bot
//! token (`xoxb-`), an app-level token (`xapp-`, only for `apps.connections.open`)
//! and a signing secret. Tests play the humans (`post`, `reply`, `edit`...) and
//! inject faults (`rate_limit`, `fail_method`, `kick_bot`, `drop_sockets`...).
//!
//! Faithful (shapes, field names, error codes and statuses as Slack documents them):
//! - Web API answers are HTTP 200 with `{"ok": false, "error": ...}` on failure;
//!   `not_authed`, `invalid_auth`, `not_allowed_token_type` (an app token on a bot
//!   method and the reverse); 429 with `Retry-After` and `{"error":"ratelimited"}`;
//!   unknown methods 404 `unknown_method`. Arguments come as JSON (token only in the
//!   `Authorization` header, as Slack ignores a JSON `token`; a JSON body without a
//!   charset gets the `missing_charset` warning), as a form (token header or field)
//!   or in the query string.
//! - Who posted: a human message has `user`, `client_msg_id`, `team` and
//!   `rich_text` blocks. The bot's `chat.postMessage` has `user` = the bot user,
//!   `bot_id`, `app_id`, `bot_profile` and no subtype. With `username`/`icon_*` and
//!   the `chat:write.customize` scope (`bot_can_customize`) it becomes a classic
//!   `bot_message`: `subtype`, `bot_id`, `username`, `icons`, and no `user`; without
//!   the scope the overrides are ignored. Incoming webhook posts are `bot_message`s
//!   of the app's bot. Slack delivers the app's own messages to it, so an adapter
//!   must filter them (by `bot_id`).
//! - Threads: replies carry `thread_ts` and `parent_user_id` and stay out of
//!   `conversations.history` unless broadcast (`thread_broadcast` with `root`);
//!   parents carry `thread_ts`, `reply_count`, `reply_users`, `latest_reply`. A
//!   deleted parent with live replies becomes a `tombstone` and the event is a
//!   `message_changed`, not a `message_deleted`.
//! - Events: the `event_callback` wrapper (`token`, `team_id`, `api_app_id`,
//!   `event_id`, `event_time`, `authorizations`, `event_context`...), signed with
//!   `v0=HMAC-SHA256(secret, "v0:{ts}:{body}")`; on a non-2xx answer, a refused
//!   connection or no answer within 3 s, up to 3 retries with the same `event_id`
//!   and `X-Slack-Retry-Num` / `X-Slack-Retry-Reason` (`http_error`,
//!   `http_timeout`, `connection_failed`); `X-Slack-No-Retry: 1` stops them.
//!   `message_changed` / `message_deleted` have `hidden`, `previous_message`,
//!   `deleted_ts` and a fresh `ts`/`event_ts`.
//! - Socket Mode: `apps.connections.open` hands out single-use `ws://.../link/?ticket=`
//!   URLs; the `hello` frame; `events_api` envelopes; acks by `envelope_id`;
//!   `disconnect` frames (`warning`, `refresh_requested`, `too_many_websockets`
//!   past 10 connections); each envelope goes to one connection.
//! - Incoming webhooks answer `ok` or the documented plain-text errors with their
//!   statuses (400 `invalid_payload`/`no_text`, 403 `action_prohibited`, 404
//!   `no_service`/`channel_not_found`, 410 `channel_is_archived`).
//! - Message `ts` are unique and increasing, `"1700000000.000100"`-style, from the
//!   real clock; `conversations.history` is newest first with cursor paging.
//!
//! Simplified (and said so where it happens):
//! - Only public channels; no DMs, private channels, files API, reactions, pins,
//!   multipart bodies, or scopes other than `chat:write.customize`. Methods served:
//!   `METHODS`. The bot starts as a member of every channel. Incoming webhooks
//!   post as the app's bot and ignore a `channel` override; what Slack puts in
//!   `username` when none is given is not known, so the fake leaves it out.
//! - The Events API never gives up on a failing URL (Slack disables it after
//!   many failures) and waits for nothing but the 3 s timeout.
//! - Retry timing: `EventRetries::Immediate` by default (Slack waits 1 and 5
//!   minutes before the 2nd and 3rd retries; `EventRetries::Slack` does so).
//! - Socket Mode and the Events URL are not exclusive: an event goes to the URL
//!   when one is set, and to a socket once `apps.connections.open` was ever called.
//!   An envelope goes to the newest connection not told to disconnect; an unacked
//!   one is resent (`retry_attempt` + 1, `retry_reason` `timeout`, a reason not
//!   documented for Socket Mode) when its connection ends (to another open one,
//!   else to the next that opens) or on `redeliver_unacked`, not after Slack's
//!   own ack timeout on a live connection. No pings unless asked.
//! - Outgoing webhooks fire for every human message in any channel (no trigger
//!   words; `trigger_word` is empty), replies included.
//! - Joining posts a `channel_join` message; being kicked posts nothing.
//!
//! Module layout: this file holds the public types, the handle and the shared core;
//! `state` the workspace model; `shapes` the JSON Slack sends; `web_api` the Web API
//! and its fault injection; `events` the Events API pushes; `socket` Socket Mode;
//! `webhooks` incoming and outgoing webhooks. Every wait is bounded and panics with
//! a summary of the fake's state.

mod events;
mod shapes;
mod socket;
mod state;
mod web_api;
mod webhooks;

#[cfg(test)]
mod tests;

use crate::watched::Watched;
use std::net::SocketAddr;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

pub use events::{EventRetries, MAX_RETRIES};
pub use socket::MAX_CONNECTIONS;
use state::State;
pub use web_api::{MAX_TEXT_CHARS, METHODS};

/// How the fake workspace is set up.
#[derive(Clone, Debug)]
pub struct SlackOptions {
    /// Public channels created at start (names without `#`); the bot is a member.
    pub channels: Vec<String>,
    /// Whether the app has the `chat:write.customize` scope: `username`,
    /// `icon_url` and `icon_emoji` are honoured by `chat.postMessage` and by
    /// incoming webhooks only when true. Default true.
    pub bot_can_customize: bool,
    /// The app's signing secret, used for `X-Slack-Signature`.
    pub signing_secret: String,
    /// The bot token (`xoxb-...`) accepted by the Web API.
    pub bot_token: String,
    /// The app-level token (`xapp-...`) accepted by `apps.connections.open` only.
    pub app_token: String,
    /// The bot user's name (`auth.test` `user`, `users.info` `name`).
    pub bot_name: String,
}

impl Default for SlackOptions {
    fn default() -> Self {
        Self {
            channels: vec!["general".to_owned()],
            bot_can_customize: true,
            signing_secret: "f4k3516n1n65ecre7000000000000000".to_owned(),
            bot_token: "xoxb-1000000000001-2000000000002-FakeBotToken0000000000000".to_owned(),
            app_token: "xapp-1-A0FAKEAPP00-3000000000003-fakeapptoken0000000000000".to_owned(),
            bot_name: "switchboard".to_owned(),
        }
    }
}

/// A file shared in a message (`share_file`), as the fake stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedFile {
    /// `F...` id.
    pub id: String,
    /// The title given when sharing.
    pub title: String,
    /// The file name: the last path segment of `url`.
    pub name: String,
    /// `url_private` and `permalink` in the JSON.
    pub url: String,
    /// Guessed from the name's extension.
    pub mimetype: String,
}

/// One stored message, deleted or not, as tests inspect it. The JSON Slack sends
/// is derived from it (see `shapes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The channel id.
    pub channel: String,
    /// Unique per workspace here (per channel in Slack), increasing.
    pub ts: String,
    /// The author: a human's id, the bot user's id for plain bot posts, `None`
    /// for `bot_message`s (webhooks and customized bot posts).
    pub user: Option<String>,
    /// Set for everything the app posted.
    pub bot_id: Option<String>,
    /// The honoured `username` override, if any.
    pub username: Option<String>,
    /// The honoured `icon_url` override, if any.
    pub icon_url: Option<String>,
    /// The honoured `icon_emoji` override, if any.
    pub icon_emoji: Option<String>,
    /// The text as stored (Slack markup: `<@U123>`, `&lt;`...).
    pub text: String,
    /// The parent's ts for thread replies; `None` for a thread's parent (its JSON
    /// carries `thread_ts` = its own `ts`, as Slack's does).
    pub thread_ts: Option<String>,
    /// `bot_message`, `me_message`, `file_share`, `thread_broadcast`,
    /// `channel_join`, or `None` for a plain message.
    pub subtype: Option<String>,
    /// Files of a `file_share`.
    pub files: Vec<SharedFile>,
    /// Whether the text was changed after posting.
    pub edited: bool,
    /// Whether the message was deleted (it stays here; the API hides it).
    pub deleted: bool,
}

/// What one push to the Events API request URL got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The event wrapper's `event_id` (the same on every retry).
    pub event_id: String,
    /// `event.type` and, when there is one, `event.subtype`: `message`,
    /// `message/message_changed`...
    pub event_type: String,
    /// `X-Slack-Retry-Num`: `None` for the first attempt (no header), then 1..3.
    pub retry_num: Option<u32>,
    /// `X-Slack-Retry-Reason` sent with this attempt.
    pub retry_reason: Option<String>,
    /// The HTTP status, or 0 when there was no answer (refused, timed out).
    pub status: u16,
    /// The answer's body (or the client error when there was no answer).
    pub body: String,
    /// Whether the answer carried `X-Slack-No-Retry: 1`.
    pub no_retry: bool,
}

/// The handle on a running fake. Clones share the workspace; the server stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Inner>,
    address: SocketAddr,
    _guard: Arc<Guard>,
}

/// Stops the server, the delivery worker and the sockets with the last handle.
struct Guard {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.inner.drop_sockets();
    }
}

impl FakeSlack {
    /// Starts the fake on a free port of 127.0.0.1 with the options' channels.
    pub async fn start(options: SlackOptions) -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Slack: cannot bind 127.0.0.1:0");
        let address = listener.local_addr().expect("fake Slack: no local address");
        let base = format!("http://{address}");
        let (jobs, job_queue) = mpsc::unbounded_channel();
        // See `crate::http_client`: reqwest may want a crypto provider even for http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            // Slack follows at most 2 redirects (`too_many_redirects`).
            .redirect(reqwest::redirect::Policy::limited(2))
            .build()
            .expect("fake Slack: an HTTP client");
        let inner = Arc::new(Inner {
            state: Watched::new("Slack", State::new(options, base), shapes::describe),
            http,
            jobs,
        });
        let app = axum::Router::new()
            .merge(web_api::routes())
            .merge(socket::routes())
            .merge(webhooks::routes())
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let worker = tokio::spawn(events::worker(inner.clone(), job_queue));
        let guard = Arc::new(Guard {
            inner: inner.clone(),
            tasks: vec![server, worker],
        });
        FakeSlack {
            inner,
            address,
            _guard: guard,
        }
    }

    /// `http://127.0.0.1:PORT` without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The Web API base, `http://127.0.0.1:PORT/api/`: methods are POSTed to
    /// `{api_url}{method}`, e.g. `.../api/chat.postMessage`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.address)
    }

    /// The options the fake was started with.
    pub fn options(&self) -> SlackOptions {
        self.inner.lock().options.clone()
    }

    /// The workspace id (`T...`).
    pub fn team_id(&self) -> String {
        self.inner.lock().team_id.clone()
    }

    /// The app id (`A...`), `api_app_id` in events.
    pub fn app_id(&self) -> String {
        self.inner.lock().app_id.clone()
    }

    /// The bot user's id (`U...`): `user` of the bot's plain posts.
    pub fn bot_user_id(&self) -> String {
        self.inner.lock().bot_user_id.clone()
    }

    /// The bot id (`B...`): `bot_id` of everything the app posts.
    pub fn bot_id(&self) -> String {
        self.inner.lock().bot_id.clone()
    }

    /// The bot token (`xoxb-...`) the Web API accepts.
    pub fn bot_token(&self) -> String {
        self.inner.lock().options.bot_token.clone()
    }

    /// The app-level token (`xapp-...`) `apps.connections.open` accepts.
    pub fn app_token(&self) -> String {
        self.inner.lock().options.app_token.clone()
    }

    /// The signing secret of `X-Slack-Signature`.
    pub fn signing_secret(&self) -> String {
        self.inner.lock().options.signing_secret.clone()
    }

    /// The deprecated verification token sent as `token` in event wrappers.
    pub fn verification_token(&self) -> String {
        self.inner.lock().verification_token.clone()
    }

    /// The id (`C...`) of a channel given by name (with or without `#`) or id.
    /// Panics when there is no such channel.
    pub fn channel_id(&self, name: &str) -> String {
        let st = self.inner.lock();
        st.channel_or_panic(name).id.clone()
    }

    /// Creates a public channel (the bot is a member); returns its id.
    pub fn add_channel(&self, name: &str) -> String {
        let id = self.inner.lock().add_channel(name);
        self.inner.bump();
        id
    }

    /// Archives the channel: posting there fails with `is_archived` (Web API)
    /// or 410 `channel_is_archived` (incoming webhooks).
    pub fn archive_channel(&self, channel: &str) {
        self.inner.lock().channel_mut_or_panic(channel).archived = true;
        self.inner.bump();
    }

    /// Adds a human user named `name` (`display_name` too; `real_name` is the
    /// name capitalised). The id comes from the hint: uppercased, non
    /// alphanumerics dropped, `U` prepended unless it starts with `U` or `W`, and
    /// a counter appended if taken (`"alice"` -> `"UALICE"`). Returns the id.
    pub fn add_user(&self, id_hint: &str, name: &str) -> String {
        let id = self.inner.lock().add_user(id_hint, name);
        self.inner.bump();
        id
    }

    /// Sets a user's `real_name` and `profile.display_name` (an empty display
    /// name is what Slack users who never set one have).
    pub fn set_user_names(&self, user: &str, real_name: &str, display_name: &str) {
        let mut st = self.inner.lock();
        let user = st.user_mut_or_panic(user);
        user.real_name = real_name.to_owned();
        user.display_name = display_name.to_owned();
    }

    /// Adds a user group (`S...`) with this handle, listed by `usergroups.list`
    /// and mentioned as `<!subteam^S...>`; returns its id.
    pub fn add_usergroup(&self, handle: &str) -> String {
        let id = self.inner.lock().add_usergroup(handle);
        self.inner.bump();
        id
    }

    /// The bot is no longer a member of the channel: `chat.postMessage` and
    /// `conversations.history` answer `not_in_channel` until `conversations.join`.
    pub fn kick_bot(&self, channel: &str) {
        let bot = self.bot_user_id();
        self.inner
            .lock()
            .channel_mut_or_panic(channel)
            .members
            .remove(&bot);
        self.inner.bump();
    }

    /// Every message of the channel (name or id), oldest first, thread replies
    /// and deleted ones included.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        let st = self.inner.lock();
        let id = st.channel_or_panic(channel).id.clone();
        st.messages
            .iter()
            .filter(|m| m.msg.channel == id)
            .map(|m| m.msg.clone())
            .collect()
    }

    /// Waits until the channel holds a message matching `pred`; returns it.
    /// `pred` runs without the fake's lock held, so it may use this handle.
    /// Panics with what the fake holds on timeout.
    pub async fn wait_for_message(
        &self,
        channel: &str,
        pred: impl Fn(&Message) -> bool,
        timeout: Duration,
    ) -> Message {
        let what = format!("a matching message in {channel}");
        self.inner
            .state
            .wait_for(&what, timeout, || {
                self.messages(channel).into_iter().find(|m| pred(m))
            })
            .await
    }

    /// Waits until `check` holds; it is called with this handle after every
    /// change of the fake's state. Panics with `what` and a summary on timeout.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&FakeSlack) -> bool,
    ) {
        self.inner
            .state
            .wait_for(what, timeout, || check(self).then_some(()))
            .await;
    }
}

pub(crate) struct Inner {
    state: Watched<State>,
    /// For Events API pushes and outgoing webhooks.
    http: reqwest::Client,
    /// The Events API delivery queue (see `events::worker`).
    jobs: mpsc::UnboundedSender<events::Job>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    fn bump(&self) {
        self.state.bump();
    }

    async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&State) -> Option<T>,
    ) -> T {
        self.state.wait(what, timeout, check).await
    }
}
