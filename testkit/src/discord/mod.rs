//! A fake Discord for adapter tests, written from Discord's public API reference:
//! REST v10 (`/api/v10/...`), the gateway websocket (JSON encoding, no
//! compression) and channel webhooks, all on one loopback port. Payloads are built
//! so that twilight 0.18 (the adapter's client library) deserializes them.
//!
//! Tests set the world up (`add_guild`, `add_channel`, `add_user`, `add_bot`...),
//! play the humans (`post`, `edit`, `delete`, `add_thread`) and inject faults
//! (`fail_rest`, `rate_limit`, `refuse_token`, `remove_bot_from_channel`,
//! `drop_sockets`, `close_sockets`, `refuse_next_resume`...).
//!
//! Faithful:
//! - Snowflake ids from the clock and Discord's epoch, unique and increasing, so
//!   `after=` paging and timestamps derive from ids as on Discord.
//! - Errors as Discord sends them (`{"message","code"}`: 0 401 Unauthorized,
//!   10003 Unknown Channel, 10004 Unknown Guild, 10007 Unknown Member, 10008
//!   Unknown Message, 10015 Unknown Webhook, 50001 Missing Access, 50005 editing
//!   another's message, 50006 empty message, 50013 Missing Permissions, 50027
//!   Invalid Webhook Token, 50035 form errors such as content over 2000 chars).
//! - Rate-limit headers on every answer; 429 with `retry_after` (seconds, float),
//!   `global: false`, `Retry-After` and `X-RateLimit-Scope: user`.
//! - Webhook messages carry `webhook_id` and an author made of the webhook id and
//!   the `username` given (else the webhook's name), `bot: true`.
//! - Gateway: Hello, Identify (4004 for a bad token, 4014 for MESSAGE_CONTENT
//!   without the application flag), READY (`resume_gateway_url` is this fake),
//!   GUILD_CREATE with channels, threads, roles and members, heartbeat acks,
//!   Resume with replay of every dispatch after `seq` then RESUMED, op 9 for a
//!   refused resume, op 7 on request. Dispatches numbered per session; every
//!   message created, edited or deleted (REST, webhook, human) goes to every
//!   session with GUILD_MESSAGES, the bot's own included; a session without
//!   MESSAGE_CONTENT gets blank content for others' messages not mentioning it.
//!
//! Simplified (and said where it happens): one application flag and one
//! MANAGE_WEBHOOKS knob shared by every bot; bots are members of every guild
//! and may delete any message; no embeds, reactions, DMs, files upload,
//! presences or member chunking; no compression; a session's dispatches are
//! kept forever.
//!
//! `testkit/fixtures/discord/` holds example payloads written from the reference;
//! the tests compare the key shapes of the fake's answers and frames with them.
//!
//! Module layout: this file holds the public types, the handle, setup and
//! faults; `state` the model; `shapes` the JSON; `rest` the REST API and its
//! faults; `webhooks` the webhook routes; `gateway` the websocket and its knobs;
//! `humans` what tests do as people on Discord. Every wait is bounded and
//! panics with a summary of the fake's state.

mod gateway;
mod humans;
mod rest;
mod shapes;
mod state;
mod webhooks;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use crate::watched::Watched;

pub use gateway::{INTENT_GUILD_MESSAGES, INTENT_GUILDS, INTENT_MESSAGE_CONTENT};
pub use rest::{MAX_CONTENT_CHARS, MAX_PAGE};
use state::{GUILD_CATEGORY, GUILD_TEXT, State, Webhook, random_token};

/// A file attached to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub url: String,
    pub size: u64,
}

/// How a human's message is posted beyond its text.
#[derive(Clone, Debug, Default)]
pub struct PostOptions {
    /// A reply (`message_reference`, type 19) to this message of the same channel.
    pub reply_to: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Sticker names (`sticker_items`).
    pub stickers: Vec<String>,
}

/// One stored message, deleted or not, as tests inspect it.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: String,
    /// The channel, or the thread for messages in a thread.
    pub channel_id: String,
    /// The author's user id, or the webhook id for webhook messages.
    pub author_id: String,
    /// The author's username, or for webhook messages the name shown.
    pub author_name: String,
    pub webhook_id: Option<String>,
    /// The `username` a webhook execution gave.
    pub username: Option<String>,
    /// The `avatar_url` a webhook execution gave.
    pub avatar_url: Option<String>,
    pub content: String,
    /// `message_reference.message_id` of a reply.
    pub reply_to: Option<String>,
    pub attachments: Vec<Attachment>,
    pub stickers: Vec<String>,
    pub edited: bool,
    pub deleted: bool,
    /// The raw JSON bodies of the request that created it and of each edit
    /// (empty for humans' messages).
    pub requests: Vec<Value>,
    /// `allowed_mentions` of the last request that carried one.
    pub allowed_mentions: Option<Value>,
}

/// One REST request, as the fake answered it.
#[derive(Clone, Debug, PartialEq)]
pub struct RestRequest {
    pub method: String,
    /// Full path, e.g. `/api/v10/channels/123/messages`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub status: u16,
}

/// The handle on a running fake. Clones share it; the server stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct FakeDiscord {
    inner: Arc<Inner>,
    address: SocketAddr,
    _guard: Arc<Guard>,
}

struct Guard {
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.server.abort();
        let st = self.inner.lock();
        for connection in st.connections.values() {
            let _ = connection.tx.send(gateway::Outbound::Drop);
        }
    }
}

impl FakeDiscord {
    /// Starts an empty fake (no guild, no bot) on a free port of 127.0.0.1.
    pub async fn start() -> FakeDiscord {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Discord: cannot bind 127.0.0.1:0");
        let address = listener
            .local_addr()
            .expect("fake Discord: no local address");
        let state = State::new(format!("ws://{address}"));
        let inner = Arc::new(Inner {
            state: Watched::new("Discord", state, shapes::describe),
        });
        let app = axum::Router::new()
            .route("/", axum::routing::get(gateway::upgrade))
            .fallback(rest::handle)
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let guard = Arc::new(Guard {
            inner: inner.clone(),
            server,
        });
        FakeDiscord {
            inner,
            address,
            _guard: guard,
        }
    }

    /// `http://127.0.0.1:PORT`: REST is served under `/api/v10/`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `127.0.0.1:PORT`, what twilight-http's `proxy(.., true)` takes.
    pub fn host_port(&self) -> String {
        self.address.to_string()
    }

    /// `ws://127.0.0.1:PORT`: the gateway is at `/?v=10&encoding=json`.
    pub fn gateway_url(&self) -> String {
        format!("ws://{}", self.address)
    }

    /// Adds a guild (every bot joins it with a managed role); returns its id,
    /// which is also its `@everyone` role's id.
    pub fn add_guild(&self, name: &str) -> String {
        self.change(|st| st.add_guild(name))
    }

    /// Adds a text channel to the guild (id or name), under a category (id or
    /// name) if given; returns its id.
    pub fn add_channel(&self, guild: &str, name: &str, category: Option<&str>) -> String {
        self.change(|st| st.add_channel(guild, name, GUILD_TEXT, category))
    }

    /// Adds a category to the guild; returns its id.
    pub fn add_category(&self, guild: &str, name: &str) -> String {
        self.change(|st| st.add_channel(guild, name, GUILD_CATEGORY, None))
    }

    /// Adds a user (`global_name` is the display name; `avatar` an image hash: 32
    /// hex digits, `a_` first for an animated one, as twilight insists); returns
    /// its id. Users become members of a guild on their first post there.
    pub fn add_user(
        &self,
        username: &str,
        global_name: Option<&str>,
        avatar: Option<&str>,
    ) -> String {
        if let Some(hash) = avatar {
            let hex = hash.strip_prefix("a_").unwrap_or(hash);
            assert!(
                hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                "fake Discord: avatar {hash:?} is not an image hash (32 hex digits)"
            );
        }
        self.change(|st| {
            let id = st.snowflake();
            st.users.push(state::User {
                id: id.clone(),
                username: username.to_owned(),
                global_name: global_name.map(str::to_owned),
                avatar: avatar.map(str::to_owned),
                bot: false,
            });
            id
        })
    }

    /// Makes the user (id or username) a member of the guild with this nick
    /// (or sets the nick of a member).
    pub fn add_member(&self, guild: &str, user: &str, nick: Option<&str>) {
        self.change(|st| {
            let user_id = st.user_or_panic(user).id.clone();
            let guild_id = st.guild_or_panic(guild).id.clone();
            st.ensure_member(&guild_id, &user_id);
            let guild = st.guild_mut(&guild_id).expect("found");
            let member = guild.members.iter_mut().find(|m| m.user_id == user_id);
            member.expect("just added").nick = nick.map(str::to_owned);
        })
    }

    /// Adds a role to the guild; returns its id.
    pub fn add_role(&self, guild: &str, name: &str) -> String {
        self.change(|st| {
            let id = st.snowflake();
            let guild = st
                .guild_mut(guild)
                .unwrap_or_else(|| panic!("fake Discord: no guild {guild}"));
            let position = guild.roles.len() as i64;
            guild.roles.push(state::Role {
                id: id.clone(),
                name: name.to_owned(),
                permissions: 0,
                position,
                managed: false,
            });
            id
        })
    }

    /// Gives a member a role.
    pub fn grant_role(&self, guild: &str, user: &str, role: &str) {
        self.change(|st| {
            let user_id = st.user_or_panic(user).id.clone();
            let guild_id = st.guild_or_panic(guild).id.clone();
            st.ensure_member(&guild_id, &user_id);
            let guild = st.guild_mut(&guild_id).expect("found");
            let member = guild.members.iter_mut().find(|m| m.user_id == user_id);
            member.expect("a member").roles.push(role.to_owned());
        })
    }

    /// Adds a bot user with its application and token (REST `Bot TOKEN`, gateway
    /// Identify); it joins every guild, present and future. Returns its user id.
    pub fn add_bot(&self, name: &str, token: &str) -> String {
        self.change(|st| st.add_bot(name, token))
    }

    /// The application id of the bot (user id).
    pub fn application_id(&self, bot_user: &str) -> String {
        let st = self.inner.lock();
        let bot = st.bots.iter().find(|b| b.user_id == bot_user);
        bot.unwrap_or_else(|| panic!("fake Discord: no bot {bot_user}"))
            .application_id
            .clone()
    }

    /// Whether the application has the message content intent flag (default on).
    /// Off: Identify asking MESSAGE_CONTENT is closed with 4014.
    pub fn set_message_content_intent(&self, enabled: bool) {
        self.change(|st| st.message_content_flag = enabled);
    }

    /// Whether the bots have MANAGE_WEBHOOKS (default yes). No: listing and
    /// creating webhooks answer 403 50013.
    pub fn set_manage_webhooks(&self, allowed: bool) {
        self.change(|st| st.manage_webhooks = allowed);
    }

    /// A webhook that already exists on the channel, created by a human (no
    /// application); returns `(id, token)`.
    pub fn add_webhook(&self, channel: &str, name: &str) -> (String, String) {
        self.change(|st| {
            let c = st.channel_or_panic(channel);
            let (channel_id, guild_id) = (c.id.clone(), c.guild_id.clone());
            let hook = Webhook {
                id: st.snowflake(),
                token: random_token(68),
                channel_id,
                guild_id,
                name: name.to_owned(),
                creator: None,
                application_id: None,
            };
            let ids = (hook.id.clone(), hook.token.clone());
            st.webhooks.push(hook);
            ids
        })
    }

    /// The webhooks of a channel: `(id, token, name)`.
    pub fn webhooks(&self, channel: &str) -> Vec<(String, String, String)> {
        let st = self.inner.lock();
        let id = st.channel_or_panic(channel).id.clone();
        st.webhooks
            .iter()
            .filter(|w| w.channel_id == id)
            .map(|w| (w.id.clone(), w.token.clone(), w.name.clone()))
            .collect()
    }

    /// The id of a channel or thread given by name (with or without `#`) or id.
    pub fn channel_id(&self, name: &str) -> String {
        self.inner.lock().channel_or_panic(name).id.clone()
    }

    /// The bots lose access to the channel (and its threads): REST answers 403
    /// 50001, no events come from it, and an overwrite denies them VIEW_CHANNEL.
    pub fn remove_bot_from_channel(&self, channel: &str) {
        self.change(|st| st.channel_mut_or_panic(channel).hidden_from_bots = true);
    }

    /// Gives the bots access to the channel again.
    pub fn restore_bot_in_channel(&self, channel: &str) {
        self.change(|st| st.channel_mut_or_panic(channel).hidden_from_bots = false);
    }

    /// The bot's token stops working (reset): 401 on REST, 4004 on Identify,
    /// resumes refused.
    pub fn refuse_token(&self, token: &str) {
        self.change(|st| {
            for bot in st.bots.iter_mut().filter(|b| b.token == token) {
                bot.refused = true;
            }
        });
    }

    /// Every REST call answers `status` with Discord's generic body, until `None`.
    pub fn fail_rest(&self, status: Option<u16>) {
        self.change(|st| st.fail_status = status);
    }

    /// The next `n` REST requests on the channel's routes (and webhook executions
    /// into it) get 429.
    pub fn rate_limit(&self, channel: &str, n: usize) {
        self.change(|st| {
            let id = st.channel_or_panic(channel).id.clone();
            st.rate_limits.insert(id, n);
        });
    }

    /// The `retry_after` of 429 answers, in seconds (default 0.05).
    pub fn set_retry_after(&self, seconds: f64) {
        self.change(|st| st.retry_after = seconds);
    }

    /// 429 answers given so far.
    pub fn rate_limited_count(&self) -> usize {
        self.inner.lock().rate_limited
    }

    /// Every REST request so far, in order.
    pub fn requests(&self) -> Vec<RestRequest> {
        self.inner.lock().requests.clone()
    }

    /// Every message of the channel or thread, oldest first, deleted ones included.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        let st = self.inner.lock();
        let id = st.channel_or_panic(channel).id.clone();
        st.messages
            .iter()
            .filter(|m| m.msg.channel_id == id)
            .map(|m| m.msg.clone())
            .collect()
    }

    /// Every message in every channel, oldest first.
    pub fn all_messages(&self) -> Vec<Message> {
        let st = self.inner.lock();
        st.messages.iter().map(|m| m.msg.clone()).collect()
    }

    /// Waits until the channel holds a message matching `pred`; returns it.
    pub async fn wait_for_message(
        &self,
        channel: &str,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        let what = format!("a matching message in {channel}");
        let mut found = None;
        self.wait_until(&what, timeout, |fake| {
            found = fake.messages(channel).into_iter().find(|m| pred(m));
            found.is_some()
        })
        .await;
        found.expect("checked")
    }

    /// Waits until `check` holds; it is called with this handle after every
    /// change of the fake's state. Panics with `what` and a summary on timeout.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&FakeDiscord) -> bool,
    ) {
        self.inner
            .state
            .wait_for(what, timeout, || check(self).then_some(()))
            .await;
    }

    /// Runs `f` on the state under the lock, then wakes the waiters.
    fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.inner.lock());
        self.inner.bump();
        out
    }
}

pub(crate) struct Inner {
    state: Watched<State>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Wakes the waits: called after every change a test may wait for.
    fn bump(&self) {
        self.state.bump();
    }
}
