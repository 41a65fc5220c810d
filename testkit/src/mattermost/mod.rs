//! A fake Mattermost server (API v4) for adapter and daemon tests.
//!
//! It owns an in-memory model of one Mattermost instance (teams, open channels,
//! users with tokens, posts, files, incoming and outgoing webhooks, websocket
//! clients) served over real HTTP and websockets on a loopback port, and the
//! knobs that make it misbehave the way a deployment does: failing REST calls,
//! rate limiting, slowness, dropped or refused websockets.
//!
//! Payload shapes, status codes and the websocket sequence follow the Mattermost
//! server; `testkit/fixtures/mattermost/` holds example payloads that the tests
//! compare with what this fake sends, so the two stay in step. Where the real
//! server behaves in a surprising way, the fake copies it and says so at the spot.
//!
//! Module layout: this file holds the public handle and the shared core behind
//! it; `state` the model and post operations, `shapes` the REST JSON shapes
//! and AppErrors, `rest` the HTTP routes and middleware, `websocket` the event
//! stream, `webhooks` incoming and outgoing webhooks with the small HTTP client
//! the latter needs.
//!
//! Every wait is bounded and panics with a summary of what the fake saw.

mod reactions;
mod rest;
mod shapes;
mod state;
mod webhooks;
mod websocket;

#[cfg(test)]
mod tests;

use crate::watched::Watched;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use shapes::describe;
use state::{
    Channel, FileInfo, IncomingHook, NewPost, Origin, Outbound, OutgoingCall, OutgoingHook,
    PostPatch, Socket, State, Team, User, broadcast, event, post_string,
};

/// The server version the fake claims to be.
pub const SERVER_VERSION: &str = "9.11.0";
const BUILD_NUMBER: &str = "9.11.0";
const BUILD_HASH: &str = "0e7a2b1c8d4f5e6a7b8c9d0e1f2a3b4c5d6e7f80";
const CONFIG_HASH: &str = "5d1b8c2e8f0a4b7c9e3f6a1d2c4b8e0f";
/// The longest message a post may carry, in characters (`PostMessageMaxRunesV2`).
pub const MAX_POST_CHARS: usize = 16383;
/// JSON request bodies over this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;
const MAX_FILE_BYTES: usize = 100 << 20;
const OVERRIDE_USERNAME: &str = "override_username";
const OVERRIDE_ICON_URL: &str = "override_icon_url";
const FROM_WEBHOOK: &str = "from_webhook";
const FROM_BOT: &str = "from_bot";

/// One post as the Mattermost API serialises it.
///
/// `posts()` returns the stored posts, so a deleted post keeps its message here
/// even though the API blanks it (see `GET /channels/{id}/posts?since=`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Post {
    pub id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub edit_at: i64,
    pub delete_at: i64,
    pub is_pinned: bool,
    pub user_id: String,
    pub channel_id: String,
    pub root_id: String,
    pub original_id: String,
    pub message: String,
    pub r#type: String,
    pub props: Map<String, Value>,
    pub hashtags: String,
    pub file_ids: Vec<String>,
    pub pending_post_id: String,
    pub reply_count: i64,
    pub last_reply_at: i64,
    pub participants: Option<Vec<Value>>,
    /// `{}` for a plain post, `{"files": [FileInfo...]}` with attachments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl Post {
    /// Whether the post is a system message (join, leave, header change...).
    pub fn is_system(&self) -> bool {
        self.r#type.starts_with("system_")
    }

    /// A string prop, such as `override_username` or `from_webhook`.
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props.get(name).and_then(Value::as_str)
    }
}

/// The handle on a running fake; the server stops when it is dropped.
pub struct FakeMattermost {
    inner: Arc<Inner>,
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl FakeMattermost {
    /// Starts the fake on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Mattermost: cannot bind 127.0.0.1:0");
        let address = listener
            .local_addr()
            .expect("fake Mattermost: no local address");
        let inner = Arc::new(Inner {
            state: Watched::new(
                "Mattermost",
                State::new(format!("http://{address}")),
                describe,
            ),
            runtime: tokio::runtime::Handle::current(),
        });
        let app = rest::router(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            inner,
            address,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash (the SiteURL).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `ws://127.0.0.1:PORT/api/v4/websocket`.
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/api/v4/websocket", self.address)
    }

    /// Creates an open team; returns its id.
    pub fn add_team(&self, name: &str) -> String {
        let mut st = self.inner.lock();
        let id = new_id();
        st.teams.push(Team {
            id: id.clone(),
            name: name.to_owned(),
            display_name: display_name(name),
            create_at: now_ms(),
            invite_id: new_id(),
        });
        id
    }

    /// Creates an open ("O") channel with no members; returns its id.
    /// Its display name is the name in title case (`dev-ops` -> `Dev Ops`).
    pub fn add_channel(&self, team_id: &str, name: &str) -> String {
        let mut st = self.inner.lock();
        assert!(
            st.team(team_id).is_some(),
            "fake Mattermost: add_channel in unknown team {team_id}"
        );
        let id = new_id();
        st.channels.push(Channel {
            id: id.clone(),
            team_id: team_id.to_owned(),
            name: name.to_owned(),
            display_name: display_name(name),
            create_at: now_ms(),
            members: BTreeSet::new(),
        });
        id
    }

    /// Creates a user (a bot account when `is_bot`) and a personal access
    /// token for it; returns `(user_id, token)`. The user is in no channel.
    pub fn add_user(&self, username: &str, is_bot: bool) -> (String, String) {
        let mut st = self.inner.lock();
        assert!(
            st.user_by_name(username).is_none(),
            "fake Mattermost: username {username} is taken"
        );
        let id = new_id();
        let token = new_id();
        st.users.push(User {
            id: id.clone(),
            username: username.to_owned(),
            is_bot,
            roles: "system_user".to_owned(),
            create_at: now_ms(),
            password: None,
        });
        st.tokens.insert(token.clone(), id.clone());
        (id, token)
    }

    /// Lets the user log in with `POST /api/v4/users/login` and this password.
    pub fn set_password(&self, user_id: &str, password: &str) {
        let mut st = self.inner.lock();
        let user = st.user_mut(user_id);
        user.password = Some(password.to_owned());
    }

    /// The server setting `EnablePostUsernameOverride` (default false): when
    /// false, `override_username` is dropped from posts and webhook payloads.
    pub fn set_allow_name_override(&self, allow: bool) {
        self.inner.lock().allow_name_override = allow;
    }

    /// The server setting `EnablePostIconOverride` (default false): when false,
    /// `override_icon_url` is dropped from posts and webhook payloads.
    pub fn set_allow_icon_override(&self, allow: bool) {
        self.inner.lock().allow_icon_override = allow;
    }

    /// The user joins the channel as through `POST /channels/{id}/members`:
    /// a `system_join_channel` post is created and broadcast.
    pub fn join_channel(&self, user_id: &str, channel_id: &str) {
        self.inner
            .add_member(channel_id, user_id, user_id)
            .unwrap_or_else(|e| panic!("fake Mattermost: join_channel failed: {e:?}"));
    }

    /// The user posts in the channel (joining it silently first, a test
    /// shortcut with no join post): the post is stored, broadcast as "posted"
    /// and outgoing webhooks fire.
    pub fn post_as(
        &self,
        user_id: &str,
        channel_id: &str,
        message: &str,
        root_id: Option<&str>,
    ) -> Post {
        self.inner.lock().ensure_member(channel_id, user_id);
        self.inner
            .publish(
                NewPost::by_user(user_id, channel_id, message, root_id.unwrap_or("")),
                true,
            )
            .unwrap_or_else(|e| panic!("fake Mattermost: post_as failed: {e:?}"))
    }

    /// Like `post_as`, with `(file name, bytes)` uploaded by the user and attached.
    pub fn post_with_files(
        &self,
        user_id: &str,
        channel_id: &str,
        message: &str,
        files: &[(&str, &[u8])],
    ) -> Post {
        let file_ids = {
            let mut st = self.inner.lock();
            st.ensure_member(channel_id, user_id);
            files
                .iter()
                .map(|(name, bytes)| st.store_file(user_id, channel_id, name, bytes.to_vec()))
                .collect()
        };
        let mut new = NewPost::by_user(user_id, channel_id, message, "");
        new.file_ids = file_ids;
        self.inner
            .publish(new, true)
            .unwrap_or_else(|e| panic!("fake Mattermost: post_with_files failed: {e:?}"))
    }

    /// Like `post_as`, but nothing is broadcast and no webhook fires: the post is
    /// only stored, for tests that then send its event themselves (mangled, say)
    /// with `send_raw_event`.
    pub fn post_quietly(&self, user_id: &str, channel_id: &str, message: &str) -> Post {
        let post = {
            let mut st = self.inner.lock();
            st.ensure_member(channel_id, user_id);
            st.insert_post(NewPost::by_user(user_id, channel_id, message, ""))
                .unwrap_or_else(|e| panic!("fake Mattermost: post_quietly failed: {e:?}"))
                .0
        };
        self.inner.bump();
        post
    }

    /// Like `edit_as` and `delete_post`, but nothing is broadcast: for tests that
    /// send the event themselves with `send_raw_event`.
    pub fn edit_quietly(&self, post_id: &str, message: &str) -> Post {
        let patch = PostPatch {
            message: Some(message.to_owned()),
            ..PostPatch::default()
        };
        let post = self
            .inner
            .lock()
            .apply_patch(post_id, patch)
            .unwrap_or_else(|e| panic!("fake Mattermost: edit_quietly failed: {e:?}"));
        self.inner.bump();
        post
    }

    /// See `edit_quietly`.
    pub fn delete_quietly(&self, post_id: &str) {
        let author = self
            .post(post_id)
            .unwrap_or_else(|| panic!("fake Mattermost: delete_quietly of unknown post {post_id}"))
            .user_id;
        self.inner
            .lock()
            .mark_deleted(post_id, &author)
            .unwrap_or_else(|e| panic!("fake Mattermost: delete_quietly failed: {e:?}"));
        self.inner.bump();
    }

    /// Sends an event made by the test (`data` as given, e.g. a `post` that is not
    /// what the server sends) to the channel's members, numbered like any other:
    /// for tests of hostile or malformed events, which the real server cannot be
    /// made to send.
    pub fn send_raw_event(&self, channel_id: &str, name: &str, data: Value) {
        {
            let st = self.inner.lock();
            st.send_to_channel(channel_id, &event(name, data, channel_id), None);
        }
        self.inner.bump();
    }

    /// Sets the server's clock `skew` ahead of the real time (negative: behind);
    /// posts, edits and deletes are stamped by it from now on. Setting it back to
    /// 0 is a corrected clock: later stamps are earlier than those made ahead.
    pub fn set_clock_skew(&self, skew_ms: i64) {
        let mut st = self.inner.lock();
        st.clock_skew_ms = skew_ms;
        st.last_stamp = 0;
    }

    /// The author edits the post's message; "post_edited" is broadcast.
    pub fn edit_as(&self, post_id: &str, message: &str) -> Post {
        let patch = PostPatch {
            message: Some(message.to_owned()),
            ..PostPatch::default()
        };
        self.inner
            .patch(post_id, patch)
            .unwrap_or_else(|e| panic!("fake Mattermost: edit_as failed: {e:?}"))
    }

    /// The author deletes the post (and, as the server does, its replies);
    /// "post_deleted" is broadcast.
    pub fn delete_post(&self, post_id: &str) {
        let author = self
            .post(post_id)
            .unwrap_or_else(|| panic!("fake Mattermost: delete_post of unknown post {post_id}"))
            .user_id;
        self.inner
            .delete(post_id, &author)
            .unwrap_or_else(|e| panic!("fake Mattermost: delete_post failed: {e:?}"));
    }

    /// One stored post, deleted or not.
    pub fn post(&self, post_id: &str) -> Option<Post> {
        let st = self.inner.lock();
        st.post_index(post_id).map(|i| st.posts[i].clone())
    }

    /// Every post of the channel in creation order, system and deleted ones included.
    pub fn posts(&self, channel_id: &str) -> Vec<Post> {
        self.inner.lock().channel_posts(channel_id)
    }

    /// Waits until the channel holds at least `count` posts, system and
    /// deleted ones included (so `posts(channel).len() + 1` waits for the next
    /// one); returns them all in creation order. Panics with what was seen on
    /// timeout.
    pub async fn wait_for_posts(
        &self,
        channel_id: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Post> {
        let what = format!("{count} posts in channel {channel_id}");
        self.inner
            .wait(&what, timeout, |st| {
                let posts = st.channel_posts(channel_id);
                (posts.len() >= count).then_some(posts)
            })
            .await
    }

    /// Waits until `check` holds; `check` is called with this handle after
    /// every change of the fake's state (posts, websockets, requests, webhook
    /// results), so it can use any accessor. Panics with `what` and a summary
    /// of the state on timeout.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&FakeMattermost) -> bool,
    ) {
        self.inner
            .state
            .wait_for(what, timeout, || check(self).then_some(()))
            .await;
    }

    /// The next `count` events are lost on their way to websocket clients while
    /// their `seq` numbers are used up, as when the server's send buffer for a
    /// slow client overflows: the client sees a gap in `seq`.
    pub fn lose_websocket_events(&self, count: u32) {
        self.inner.lock().lose_events = count;
    }

    /// Ends every live websocket abruptly (no close frame), as a crash or a
    /// restarting proxy would; clients see the connection end.
    pub fn drop_websockets(&self) {
        self.inner.drop_websockets();
    }

    /// While true, websocket upgrade requests are answered 503.
    pub fn refuse_websockets(&self, refuse: bool) {
        self.inner.lock().refuse_websockets = refuse;
    }

    /// Waits until at least `count` authenticated websocket clients are
    /// connected and have been sent their "hello".
    pub async fn wait_websockets(&self, count: usize, timeout: Duration) {
        let what = format!("{count} live websocket clients");
        self.inner
            .wait(&what, timeout, |st| {
                (st.sockets.len() >= count).then_some(())
            })
            .await;
    }

    /// Authenticated websocket sessions ever opened (grows on each reconnect).
    pub fn websocket_connections(&self) -> usize {
        self.inner.lock().sessions_ever
    }

    /// Authenticated websocket sessions connected now.
    pub fn live_websockets(&self) -> usize {
        self.inner.lock().sockets.len()
    }

    /// While `Some(status)`, every REST request (under `/api/v4` and `/hooks`,
    /// not the websocket) is answered that status with an AppError body.
    pub fn fail_rest(&self, status: Option<u16>) {
        self.inner.lock().fail_rest = status;
    }

    /// While `Some(n)`, at most n REST requests per second are served; the
    /// others get 429 as Mattermost sends it: `X-Ratelimit-Limit`,
    /// `X-Ratelimit-Remaining`, `X-Ratelimit-Reset` (seconds) and `Retry-After`
    /// headers, and the plain-text body `limit exceeded`, not JSON.
    pub fn rate_limit(&self, limit: Option<u32>) {
        let mut st = self.inner.lock();
        st.rate_limit = limit;
        st.rate_window = None;
    }

    /// While `Some(d)`, every REST answer is held back by `d` after the request
    /// took effect, so a client that gives up early has still changed the state.
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.inner.lock().delay = delay;
    }

    /// Creates an incoming webhook posting to the channel, owned by an internal
    /// admin user; returns its full URL (`.../hooks/ID`).
    pub fn add_incoming_webhook(&self, channel_id: &str) -> String {
        let mut st = self.inner.lock();
        let team_id = st.channel_or_panic(channel_id).team_id.clone();
        let id = new_id();
        let owner = st.hook_owner.clone();
        st.incoming_hooks.push(IncomingHook {
            id: id.clone(),
            channel_id: channel_id.to_owned(),
            team_id,
            owner,
        });
        format!("{}/hooks/{id}", st.site_url)
    }

    /// The user who created every webhook (`integrations-admin`, a system admin):
    /// posts made through an incoming webhook are authored by this user.
    pub fn hook_owner(&self) -> String {
        self.inner.lock().hook_owner.clone()
    }

    /// Creates an outgoing webhook with no trigger words on the channel: every
    /// user post there (not incoming-webhook nor system posts) is POSTed to
    /// `callback_url` (plain http), form-encoded or as JSON when `json`.
    /// A JSON answer with a `text` is posted back, as the server does.
    pub fn add_outgoing_webhook(
        &self,
        channel_id: &str,
        callback_url: &str,
        token: &str,
        json: bool,
    ) {
        let mut st = self.inner.lock();
        let team_id = st.channel_or_panic(channel_id).team_id.clone();
        let owner = st.hook_owner.clone();
        st.outgoing_hooks.push(OutgoingHook {
            channel_id: channel_id.to_owned(),
            team_id,
            callback_url: callback_url.to_owned(),
            token: token.to_owned(),
            json,
            owner,
        });
    }

    /// The HTTP status of each outgoing webhook callback, in completion order;
    /// 0 when the callback could not be reached or timed out.
    pub fn outgoing_webhook_results(&self) -> Vec<u16> {
        self.inner.lock().webhook_results.clone()
    }

    /// `(method, path with query, status)` of every HTTP request, websocket
    /// upgrades included, in arrival order of their answers.
    pub fn request_log(&self) -> Vec<(String, String, u16)> {
        self.inner.lock().request_log.clone()
    }
}

impl Drop for FakeMattermost {
    fn drop(&mut self) {
        self.server.abort();
        self.inner.drop_websockets();
    }
}

pub(crate) struct Inner {
    state: Watched<State>,
    runtime: tokio::runtime::Handle,
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

    /// Stores a new post, broadcasts it and fires outgoing webhooks.
    fn publish(self: &Arc<Self>, new: NewPost, set_online: bool) -> Result<Post, AppError> {
        let origin = new.origin;
        let (post, calls) = {
            let mut st = self.lock();
            let (post, fresh) = st.insert_post(new)?;
            let mut calls = Vec::new();
            if fresh {
                st.broadcast_posted(&post, set_online);
                if origin == Origin::User {
                    calls = st.outgoing_calls(&post);
                }
            }
            (post, calls)
        };
        self.bump();
        for call in calls {
            webhooks::fire(self.clone(), call);
        }
        Ok(post)
    }

    fn patch(&self, post_id: &str, patch: PostPatch) -> Result<Post, AppError> {
        let post = {
            let mut st = self.lock();
            let post = st.apply_patch(post_id, patch)?;
            let event = event(
                "post_edited",
                json!({ "post": post_string(&post) }),
                &post.channel_id,
            );
            st.send_to_channel(&post.channel_id, &event, None);
            post
        };
        self.bump();
        Ok(post)
    }

    fn delete(&self, post_id: &str, deleted_by: &str) -> Result<(), AppError> {
        {
            let mut st = self.lock();
            let before = st.mark_deleted(post_id, deleted_by)?;
            // The server publishes the copy it read before deleting (delete_at
            // still 0), and only sysadmins are told who deleted it.
            let post = post_string(&before);
            let plain = event("post_deleted", json!({ "post": post }), &before.channel_id);
            let for_admins = event(
                "post_deleted",
                json!({ "post": post, "delete_by": deleted_by }),
                &before.channel_id,
            );
            st.send_to_channel(&before.channel_id, &plain, Some(&for_admins));
        }
        self.bump();
        Ok(())
    }

    /// Adds `user_id` to the channel on behalf of `actor_id`, with the system
    /// post the server writes for it. Joining twice changes nothing.
    fn add_member(
        self: &Arc<Self>,
        channel_id: &str,
        user_id: &str,
        actor_id: &str,
    ) -> Result<(), AppError> {
        let system_post = {
            let mut st = self.lock();
            let user = st
                .user(user_id)
                .ok_or_else(AppError::user_not_found)?
                .username
                .clone();
            let channel = st
                .channel_mut(channel_id)
                .ok_or_else(AppError::channel_not_found)?;
            if !channel.members.insert(user_id.to_owned()) {
                return Ok(());
            }
            if actor_id == user_id {
                let mut post = NewPost::system(user_id, channel_id, "system_join_channel");
                post.message = format!("{user} joined the channel.");
                post.props.insert("username".into(), json!(user));
                post
            } else {
                let actor = st
                    .user(actor_id)
                    .ok_or_else(AppError::user_not_found)?
                    .username
                    .clone();
                let mut post = NewPost::system(actor_id, channel_id, "system_add_to_channel");
                post.message = format!("{user} added to the channel by {actor}.");
                post.props.insert("userId".into(), json!(actor_id));
                post.props.insert("username".into(), json!(actor));
                post.props.insert("addedUserId".into(), json!(user_id));
                post.props.insert("addedUsername".into(), json!(user));
                post
            }
        };
        self.publish(system_post, true)?;
        Ok(())
    }

    fn drop_websockets(&self) {
        let sockets: Vec<Socket> = self.lock().sockets.drain().map(|(_, s)| s).collect();
        for socket in sockets {
            let _ = socket.tx.send(Outbound::Close);
        }
        self.bump();
    }

    fn session_user(&self, token: &str) -> Option<String> {
        self.lock().tokens.get(token).cloned()
    }
}

/// An AppError as the server sends it; the middleware adds the request id.
#[derive(Clone, Debug)]
pub(crate) struct AppError {
    status: u16,
    id: &'static str,
    message: String,
}

/// The 32 characters Mattermost's ids are written in (its base32 alphabet).
pub const ID_ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// A 26-character id in the server's alphabet.
fn new_id() -> String {
    let mut rng = rand::rng();
    (0..26)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

fn is_valid_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// What `X-Version-Id` and the websocket "hello" report: version, build
/// number, config hash and whether the build is Enterprise.
fn server_version() -> String {
    format!("{SERVER_VERSION}.{BUILD_NUMBER}.{CONFIG_HASH}.false")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn display_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}
