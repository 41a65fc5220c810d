//! The fake's payloads, fetched raw (plain HTTP client, raw websocket), against
//! the example payloads of `testkit/fixtures/discord/`: same keys, same nesting.

use serde_json::{Value, json};

use super::{TOKEN, WAIT, world};
use crate::discord::FakeDiscord;
use crate::json_shape::Fixtures;
use crate::json_socket::JsonSocket;

/// Snowflakes used as object keys (none of the fixtures has any today).
fn is_snowflake(key: &str) -> bool {
    (17..=20).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_digit())
}

const FIXTURES: Fixtures = Fixtures {
    dir: "discord",
    is_id: is_snowflake,
};

fn assert_same_shape(name: &str, actual: &Value) {
    FIXTURES.assert_same_shape(name, actual);
}

/// Fields of REST messages found only in the gateway's MESSAGE_CREATE (the fake
/// builds one message shape for both; see the README).
const GATEWAY_ONLY: [&str; 2] = ["guild_id", "member"];

/// `value` without the top-level `extras`, each checked to be there (so the
/// lists above stay true).
fn without(value: &Value, extras: &[&str]) -> Value {
    let mut value = value.clone();
    let object = value.as_object_mut().expect("an object");
    for key in extras {
        assert!(object.remove(*key).is_some(), "no {key} in {value:#}");
    }
    value
}

/// A REST call with the bot's token: status and JSON body.
async fn rest(
    discord: &FakeDiscord,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}/api/v10{path}", discord.url());
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = crate::http_client()
        .request(method, &url)
        .header("Authorization", format!("Bot {TOKEN}"))
        .timeout(WAIT);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = answer.status().as_u16();
    let body = answer
        .json()
        .await
        .unwrap_or_else(|e| panic!("{url}: no JSON body: {e}"));
    (status, body)
}

impl JsonSocket {
    async fn to_gateway(discord: &FakeDiscord) -> Self {
        Self::connect(format!("{}/?v=10&encoding=json", discord.gateway_url())).await
    }

    /// The next dispatch, checked to be `event`.
    async fn dispatch(&mut self, event: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(
            (&frame["op"], &frame["t"]),
            (&json!(0), &json!(event)),
            "expected {event}; seen {:#?}",
            self.seen
        );
        frame
    }
}

#[tokio::test]
async fn rest_payloads_match_the_fixtures() {
    let w = world().await;
    let d = &w.discord;
    let (_, me) = rest(d, "GET", "/users/@me", None).await;
    assert_same_shape("user.json", &me);
    let (_, app) = rest(d, "GET", "/applications/@me", None).await;
    assert_same_shape("application.json", &app);
    let (_, guild) = rest(d, "GET", &format!("/guilds/{}", w.guild), None).await;
    assert_same_shape("guild.json", &guild);
    for role in guild["roles"].as_array().expect("roles") {
        assert_same_shape("role.json", role);
    }
    let (_, roles) = rest(d, "GET", &format!("/guilds/{}/roles", w.guild), None).await;
    assert_eq!(roles.as_array().map(Vec::len), Some(2));
    for role in roles.as_array().expect("roles") {
        assert_same_shape("role.json", role);
    }
    let (_, channel) = rest(d, "GET", &format!("/channels/{}", w.general), None).await;
    assert_same_shape("channel.json", &channel);
    let path = format!("/guilds/{}/members/{}", w.guild, w.alice);
    let (_, member) = rest(d, "GET", &path, None).await;
    assert_same_shape("guild_member.json", &member);

    let posted = d.post(&w.general, &w.alice, "hello from alice");
    let path = format!("/channels/{}/messages/{posted}", w.general);
    let (_, message) = rest(d, "GET", &path, None).await;
    assert_same_shape("message.json", &without(&message, &GATEWAY_ONLY));

    let path = format!("/channels/{}/webhooks", w.general);
    let (status, hook) = rest(d, "POST", &path, Some(json!({ "name": "Switchboard" }))).await;
    assert_eq!(status, 200, "{hook}");
    assert_same_shape("webhook.json", &hook);
    let (_, listed) = rest(d, "GET", &path, None).await;
    assert_same_shape("webhook.json", &listed[0]);
    let path = format!(
        "/webhooks/{}/{}?wait=true",
        hook["id"].as_str().expect("an id"),
        hook["token"].as_str().expect("a token")
    );
    let body = json!({ "content": "hello from irc", "username": "bob (irc)" });
    let (status, executed) = rest(d, "POST", &path, Some(body)).await;
    assert_eq!(status, 200, "{executed}");
    // Webhook messages have no member.
    assert_same_shape("message_webhook.json", &without(&executed, &["guild_id"]));

    let (status, error) = rest(d, "GET", "/channels/42", None).await;
    assert_eq!(status, 404);
    assert_same_shape("error_unknown_channel.json", &error);
    assert_eq!(
        error,
        json!({ "message": "Unknown Channel", "code": 10003 })
    );

    d.rate_limit(&w.general, 1);
    let path = format!("/channels/{}/messages", w.general);
    let (status, limited) = rest(d, "POST", &path, Some(json!({ "content": "x" }))).await;
    assert_eq!(status, 429);
    assert_same_shape("rate_limited.json", &limited);

    let (_, gateway) = rest(d, "GET", "/gateway/bot", None).await;
    assert_same_shape("gateway_bot.json", &gateway);
}

#[tokio::test]
async fn gateway_frames_match_the_fixtures() {
    let w = world().await;
    let d = &w.discord;
    let mut socket = JsonSocket::to_gateway(d).await;
    assert_same_shape("gateway_hello.json", &socket.next().await);
    let intents = super::content_intents().bits();
    socket
        .send(json!({
            "op": 2,
            "d": {
                "token": TOKEN,
                "intents": intents,
                "properties": { "os": "linux", "browser": "fixtures", "device": "fixtures" },
            },
        }))
        .await;
    let ready = socket.dispatch("READY").await;
    assert_same_shape("gateway_ready.json", &ready);
    socket.dispatch("GUILD_CREATE").await;
    socket.send(json!({ "op": 1, "d": 2 })).await;
    assert_same_shape("gateway_heartbeat_ack.json", &socket.next().await);

    let text = format!("hello <@{}>", w.bot);
    d.post(&w.general, &w.alice, &text);
    let created = socket.dispatch("MESSAGE_CREATE").await;
    assert_same_shape("gateway_message_create.json", &created);

    // A new connection resumes the session (nothing missed: RESUMED alone).
    let session_id = ready["d"]["session_id"].clone();
    let seq = created["s"].clone();
    drop(socket);
    let mut socket = JsonSocket::to_gateway(d).await;
    socket.next().await;
    socket
        .send(json!({ "op": 6, "d": { "token": TOKEN, "session_id": session_id, "seq": seq } }))
        .await;
    assert_same_shape("gateway_resumed.json", &socket.dispatch("RESUMED").await);
    // A session it does not know is refused with op 9.
    let mut other = JsonSocket::to_gateway(d).await;
    other.next().await;
    other
        .send(json!({ "op": 6, "d": { "token": TOKEN, "session_id": "nope", "seq": 1 } }))
        .await;
    let invalid = other.next().await;
    assert_eq!(invalid["op"], 9, "{invalid}");
    assert_same_shape("gateway_invalid_session.json", &invalid);
}

/// The fixtures are payloads twilight (the adapter's library) reads.
#[test]
fn fixtures_deserialize_into_twilight_models() {
    use serde::de::DeserializeOwned;
    use twilight_model::channel::{Channel, Message, Webhook};
    use twilight_model::gateway::payload::incoming::Ready;
    use twilight_model::guild::{Guild, Member, Role};
    use twilight_model::oauth::Application;
    use twilight_model::user::CurrentUser;

    fn read<T: DeserializeOwned>(name: &str, pick: impl Fn(Value) -> Value) {
        let value: Value = serde_json::from_str(&FIXTURES.read(name)).expect("JSON");
        if let Err(e) = serde_json::from_value::<T>(pick(value)) {
            panic!("{name}: {e}");
        }
    }
    let whole = |v| v;
    let d = |v: Value| v["d"].clone();
    read::<CurrentUser>("user.json", whole);
    read::<Application>("application.json", whole);
    read::<Guild>("guild.json", whole);
    read::<Channel>("channel.json", whole);
    read::<Role>("role.json", whole);
    read::<Member>("guild_member.json", whole);
    read::<Message>("message.json", whole);
    read::<Message>("message_webhook.json", whole);
    read::<Webhook>("webhook.json", whole);
    read::<Ready>("gateway_ready.json", d);
    read::<Message>("gateway_message_create.json", d);
}
