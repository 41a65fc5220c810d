//! The fake driven through twilight 0.18, the client library of the Discord
//! adapter: every payload it sends must deserialize into twilight's models, and the
//! gateway must carry a real shard through identify, resume and its failures.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use twilight_gateway::queue::Queue;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};
use twilight_http::api_error::ApiError;
use twilight_http::error::ErrorType;
use twilight_model::id::Id;

use super::FakeDiscord;

mod fixtures;
mod gateway;
mod rest;

pub(super) const TOKEN: &str = "fake-bot-token.switchboard";
pub(super) const ALICE_AVATAR: &str = "0123456789abcdef0123456789abcdef";
pub(super) const WAIT: Duration = Duration::from_secs(10);

pub(super) struct World {
    pub discord: FakeDiscord,
    pub guild: String,
    pub general: String,
    pub alice: String,
    pub bot: String,
}

pub(super) async fn world() -> World {
    let discord = FakeDiscord::start().await;
    let bot = discord.add_bot("switchboard", TOKEN);
    let guild = discord.add_guild("My Server");
    let category = discord.add_category(&guild, "Text Channels");
    let general = discord.add_channel(&guild, "general", Some(&category));
    discord.add_channel(&guild, "random", Some(&category));
    let alice = discord.add_user("alice", Some("Alice A."), Some(ALICE_AVATAR));
    discord.add_member(&guild, &alice, Some("ali"));
    World {
        discord,
        guild,
        general,
        alice,
        bot,
    }
}

pub(super) fn http(discord: &FakeDiscord, token: &str) -> twilight_http::Client {
    // See `crate::http_client`: hyper-rustls wants a process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    twilight_http::Client::builder()
        .token(token.to_owned())
        .proxy(discord.host_port(), true)
        .timeout(WAIT)
        .build()
}

pub(super) fn id<T>(text: &str) -> Id<T> {
    Id::new(text.parse().expect("a snowflake"))
}

/// Identifies at once: twilight's default queue spaces identifies 5 s apart.
pub(super) struct Immediate;

impl Queue for Immediate {
    fn enqueue(&self, _shard: u32) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(());
        rx
    }
}

/// A shard polled by its own task; events arrive with the session's sequence.
pub(super) struct Gateway {
    events: mpsc::UnboundedReceiver<Result<(Event, Option<u64>), String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn connect(discord: &FakeDiscord, token: &str, intents: Intents) -> Gateway {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ConfigBuilder::new(token.to_owned(), intents)
        .proxy_url(discord.gateway_url())
        .queue(Immediate)
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let (tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
            let item = item
                .map(|event| (event, shard.session().map(|s| s.sequence())))
                .map_err(|e| format!("{e}: {e:?}"));
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    Gateway { events, task }
}

impl Gateway {
    /// The next event, failing on errors, on the end of the stream and on timeout.
    pub(super) async fn next(&mut self, what: &str) -> (Event, Option<u64>) {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(Ok(event))) => event,
            Ok(Some(Err(e))) => panic!("gateway error while waiting for {what}: {e}"),
            Ok(None) => panic!("the shard ended while waiting for {what}"),
            Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
        }
    }

    /// Skips events until `pick` accepts one.
    pub(super) async fn until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        loop {
            let (event, _) = self.next(what).await;
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }

    /// Whether the stream ended (a fatal close), within the bound.
    pub(super) async fn ended(&mut self) -> bool {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(None) => return true,
                Ok(Some(_)) => {}
                Err(_) => return false,
            }
        }
    }

    /// READY then GUILD_CREATE; returns the READY session id.
    pub(super) async fn ready(&mut self) -> String {
        let session = self
            .until("READY", |e| match e {
                Event::Ready(ready) => Some(ready.session_id.clone()),
                _ => None,
            })
            .await;
        self.until("GUILD_CREATE", |e| {
            matches!(e, Event::GuildCreate(_)).then_some(())
        })
        .await;
        session
    }
}

pub(super) fn content_intents() -> Intents {
    Intents::GUILDS | Intents::GUILD_MESSAGES | Intents::MESSAGE_CONTENT
}

pub(super) fn api_code(error: &twilight_http::Error) -> (u16, u64) {
    match error.kind() {
        ErrorType::Response { status, error, .. } => match error {
            ApiError::General(general) => (status.get(), general.code),
            other => panic!("unexpected API error {other:?}"),
        },
        other => panic!("unexpected error {other:?}"),
    }
}

/// Each shape straight into its twilight model, so a missing field is named.
#[tokio::test]
async fn shapes_deserialize_into_twilight_models() {
    use twilight_model::channel::{Channel, Message};
    use twilight_model::guild::{Guild, Member, Role};
    let w = world().await;
    let posted = w.discord.post(&w.general, &w.alice, "hi");
    let thread = w.discord.add_thread(&w.general, &posted, "t");
    w.discord.post(&thread, &w.alice, "in thread");
    let st = w.discord.inner.lock();
    let guild = st.guild(&w.guild).unwrap();
    let value = super::shapes::gateway_guild(&st, guild, &w.bot);
    for role in value["roles"].as_array().unwrap() {
        serde_json::from_value::<Role>(role.clone()).unwrap();
    }
    for member in value["members"].as_array().unwrap() {
        serde_json::from_value::<Member>(member.clone()).unwrap();
    }
    for channel in value["channels"]
        .as_array()
        .unwrap()
        .iter()
        .chain(value["threads"].as_array().unwrap())
    {
        serde_json::from_value::<Channel>(channel.clone()).unwrap();
    }
    serde_json::from_value::<Guild>(value).unwrap();
    for stored in &st.messages {
        serde_json::from_value::<Message>(super::shapes::message(&st, stored, false)).unwrap();
    }
}
