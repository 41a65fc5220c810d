//! Drives the fake with a raw HTTP client and a real websocket client, and
//! checks its payloads against `testkit/fixtures/mattermost/`.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::Path as AxumPath;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::FakeMattermost;
use super::webhooks::{HttpAnswer, form_decode, http_request};
use crate::json_shape::Fixtures;
use crate::json_socket::JsonSocket;

const WAIT: Duration = Duration::from_secs(10);

async fn call(
    fake: &FakeMattermost,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> HttpAnswer {
    let url = format!("{}{path}", fake.url());
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    if !bytes.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    tokio::time::timeout(WAIT, http_request(method, &url, &headers, &bytes))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} got no answer within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"))
}

fn multipart(channel_id: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "fakeboundary7d9a41";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"channel_id\"\r\n\r\n{channel_id}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    fake: &FakeMattermost,
    token: &str,
    channel_id: &str,
    name: &str,
    bytes: &[u8],
) -> HttpAnswer {
    let (content_type, body) = multipart(channel_id, name, bytes);
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", content_type.as_str()),
    ];
    let url = format!("{}/api/v4/files", fake.url());
    tokio::time::timeout(WAIT, http_request("POST", &url, &headers, &body))
        .await
        .expect("upload got no answer")
        .expect("upload failed")
}

/// Mattermost's steps for the shared websocket test client.
impl JsonSocket {
    async fn to_mattermost(fake: &FakeMattermost, bearer: Option<&str>) -> Self {
        let mut request = fake.websocket_url().into_client_request().unwrap();
        if let Some(token) = bearer {
            let value = format!("Bearer {token}").parse().unwrap();
            request.headers_mut().insert("Authorization", value);
        }
        Self::connect(request).await
    }

    /// Connects and answers the challenge; returns the client, the challenge
    /// reply and the hello.
    async fn login(fake: &FakeMattermost, token: &str) -> (Self, Value, Value) {
        let mut client = Self::to_mattermost(fake, None).await;
        client
            .send(json!({"seq": 1, "action": "authentication_challenge", "data": {"token": token}}))
            .await;
        let reply = client.next().await;
        let hello = client.next().await;
        (client, reply, hello)
    }

    async fn next_event(&mut self, name: &str) -> Value {
        let value = self.next().await;
        assert_eq!(
            value["event"], name,
            "expected a {name} event; seen {:#?}",
            self.seen
        );
        value
    }
}

fn post_of(event: &Value) -> Value {
    serde_json::from_str(
        event["data"]["post"]
            .as_str()
            .expect("data.post is a string"),
    )
    .expect("data.post holds JSON")
}

const FIXTURES: Fixtures = Fixtures {
    dir: "mattermost",
    is_id: super::is_valid_id,
};

fn fixture(name: &str) -> String {
    FIXTURES.read(name)
}

fn assert_same_shape(name: &str, actual: &Value) {
    FIXTURES.assert_same_shape(name, actual);
}

fn form_keys(body: &str) -> BTreeSet<String> {
    form_decode(body.trim())
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

struct World {
    fake: FakeMattermost,
    team: String,
    channel: String,
    alice: (String, String),
    bot: (String, String),
}

async fn world() -> World {
    let fake = FakeMattermost::start().await;
    let team = fake.add_team("switchboard");
    let channel = fake.add_channel(&team, "bridge");
    let alice = fake.add_user("alice", false);
    let bot = fake.add_user("relay", true);
    World {
        fake,
        team,
        channel,
        alice,
        bot,
    }
}

#[tokio::test]
async fn rest_calls_need_a_valid_token() {
    let w = world().await;
    let fake = &w.fake;
    let answer = call(fake, None, "GET", "/api/v4/users/me", None).await;
    assert_eq!(answer.status, 401);
    let error = answer.json();
    assert_eq!(error["id"], "api.context.session_expired.app_error");
    assert_eq!(error["status_code"], 401);
    assert_eq!(error["request_id"].as_str(), answer.header("x-request-id"));
    assert_same_shape("app_error_401.json", &error);

    let answer = call(
        fake,
        Some("notatokenatall"),
        "GET",
        "/api/v4/users/me",
        None,
    )
    .await;
    assert_eq!(answer.status, 401);

    let answer = call(fake, None, "GET", "/api/v4/system/ping", None).await;
    assert_eq!(
        (answer.status, answer.json()["status"].clone()),
        (200, json!("OK"))
    );

    let token = Some(w.alice.1.as_str());
    let me = call(fake, token, "GET", "/api/v4/users/me", None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["username"], "alice");
    assert_same_shape("user.json", &me.json());
    let bot = call(
        fake,
        token,
        "GET",
        &format!("/api/v4/users/{}", w.bot.0),
        None,
    )
    .await;
    assert_eq!(bot.json()["is_bot"], true);
    let missing = call(
        fake,
        token,
        "GET",
        "/api/v4/users/ybndrfg8ejkmcpqxot1uwisza3",
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    let malformed = call(fake, token, "GET", "/api/v4/users/nope", None).await;
    assert_eq!(malformed.status, 400);
    let image = call(
        fake,
        token,
        "GET",
        &format!("/api/v4/users/{}/image", w.bot.0),
        None,
    )
    .await;
    assert_eq!(image.header("content-type"), Some("image/png"));
    assert!(image.body.starts_with(b"\x89PNG"));
    let unknown_route = call(fake, token, "GET", "/api/v4/nothing/here", None).await;
    assert_eq!(unknown_route.json()["id"], "api.context.404.app_error");
}

#[tokio::test]
async fn login_hands_out_a_session_token() {
    let w = world().await;
    let fake = &w.fake;
    fake.set_password(&w.alice.0, "hunter2");
    let body = json!({"login_id": "alice", "password": "hunter2"});
    let answer = call(fake, None, "POST", "/api/v4/users/login", Some(body)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["id"], json!(w.alice.0));
    let token = answer.header("token").expect("a Token header").to_owned();
    let me = call(fake, Some(&token), "GET", "/api/v4/users/me", None).await;
    assert_eq!(me.json()["username"], "alice");

    let wrong = json!({"login_id": "alice", "password": "hunter3"});
    let answer = call(fake, None, "POST", "/api/v4/users/login", Some(wrong)).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.json()["id"],
        "api.user.login.invalid_credentials_email_username"
    );
    let no_password = json!({"login_id": "relay", "password": ""});
    let answer = call(fake, None, "POST", "/api/v4/users/login", Some(no_password)).await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn posts_edits_and_deletes_reach_the_websocket_in_order() {
    let w = world().await;
    let fake = &w.fake;
    let bot = Some(w.bot.1.as_str());

    let (mut ws, reply, hello) = JsonSocket::login(fake, &w.bot.1).await;
    assert_eq!(reply, json!({"status": "OK", "seq_reply": 1}));
    assert_eq!(
        (hello["event"].clone(), hello["seq"].clone()),
        (json!("hello"), json!(0))
    );
    assert_eq!(hello["broadcast"]["user_id"], json!(w.bot.0));
    fake.wait_websockets(1, WAIT).await;

    let join = json!({"user_id": w.bot.0});
    let path = format!("/api/v4/channels/{}/members", w.channel);
    assert_eq!(call(fake, bot, "POST", &path, Some(join)).await.status, 201);
    let joined = ws.next_event("posted").await;
    assert_eq!(joined["seq"], 1);
    assert_eq!(post_of(&joined)["type"], "system_join_channel");
    assert_eq!(post_of(&joined)["message"], "relay joined the channel.");

    let body = json!({"channel_id": w.channel, "message": "from irc"});
    let created = call(fake, bot, "POST", "/api/v4/posts", Some(body)).await;
    assert_eq!(created.status, 201);
    let created = created.json();
    let post_id = created["id"].as_str().unwrap().to_owned();
    assert!(super::is_valid_id(&post_id));
    assert_eq!(created["props"]["from_bot"], "true");
    let posted = ws.next_event("posted").await;
    assert_eq!(posted["seq"], 2);
    assert_eq!(posted["data"]["sender_name"], "@relay");
    assert_eq!(posted["broadcast"]["channel_id"], json!(w.channel));
    assert_eq!(post_of(&posted)["id"], json!(post_id));

    let from_alice = fake.post_as(&w.alice.0, &w.channel, "hi bot", None);
    let posted = ws.next_event("posted").await;
    assert_eq!(
        (posted["seq"].clone(), post_of(&posted)["message"].clone()),
        (json!(3), json!("hi bot"))
    );

    let patch = json!({"message": "from irc (edited)"});
    let path = format!("/api/v4/posts/{post_id}/patch");
    let edited = call(fake, bot, "PUT", &path, Some(patch.clone())).await;
    assert_eq!(edited.status, 200);
    let edited = edited.json();
    assert!(edited["edit_at"].as_i64().unwrap() > 0);
    assert_eq!(edited["update_at"], edited["edit_at"]);
    let event = ws.next_event("post_edited").await;
    assert_eq!(event["seq"], 4);
    assert_eq!(post_of(&event)["message"], "from irc (edited)");
    let path = format!("/api/v4/posts/{}/patch", from_alice.id);
    assert_eq!(call(fake, bot, "PUT", &path, Some(patch)).await.status, 403);

    let deleted = call(
        fake,
        bot,
        "DELETE",
        &format!("/api/v4/posts/{post_id}"),
        None,
    )
    .await;
    assert_eq!(
        (deleted.status, deleted.json()),
        (200, json!({"status": "OK"}))
    );
    let event = ws.next_event("post_deleted").await;
    assert_eq!(event["seq"], 5);
    assert_eq!(post_of(&event)["id"], json!(post_id));
    assert!(
        event["data"].get("delete_by").is_none(),
        "only sysadmins see delete_by"
    );
    let gone = call(fake, bot, "GET", &format!("/api/v4/posts/{post_id}"), None).await;
    assert_eq!(gone.status, 404);

    let since = from_alice.create_at - 1;
    let path = format!("/api/v4/channels/{}/posts?since={since}", w.channel);
    let list = call(fake, bot, "GET", &path, None).await.json();
    assert_eq!(list["order"], json!([from_alice.id, post_id]));
    let removed = &list["posts"][&post_id];
    assert!(removed["delete_at"].as_i64().unwrap() > 0);
    assert_eq!(removed["message"], "");
    let latest = fake
        .posts(&w.channel)
        .iter()
        .map(|p| p.update_at)
        .max()
        .unwrap();
    let path = format!("/api/v4/channels/{}/posts?since={latest}", w.channel);
    assert_eq!(
        call(fake, bot, "GET", &path, None).await.json()["order"],
        json!([])
    );

    let path = format!("/api/v4/channels/{}/posts", w.channel);
    let page = call(fake, bot, "GET", &path, None).await.json();
    assert_eq!(
        page["order"].as_array().unwrap().len(),
        2,
        "join post and alice's post"
    );

    ws.send(json!({"seq": 2, "action": "ping"})).await;
    let pong = ws.next().await;
    assert_eq!(
        (pong["seq_reply"].clone(), pong["data"]["text"].clone()),
        (json!(2), json!("pong"))
    );
    ws.send(json!({"seq": 0, "action": "ping"})).await;
    assert_eq!(
        ws.next().await["error"]["id"],
        "api.web_socket_router.bad_seq.app_error"
    );
    assert_eq!(fake.posts(&w.channel).len(), 3, "deleted posts stay listed");
}

#[tokio::test]
async fn posting_follows_the_server_rules() {
    let w = world().await;
    let fake = &w.fake;
    let alice = Some(w.alice.1.as_str());
    let body = json!({"channel_id": w.channel, "message": "not a member"});
    let answer = call(fake, alice, "POST", "/api/v4/posts", Some(body)).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["id"], "api.context.permissions.app_error");
    fake.join_channel(&w.alice.0, &w.channel);

    let long = "x".repeat(super::MAX_POST_CHARS + 1);
    let body = json!({"channel_id": w.channel, "message": long});
    let answer = call(fake, alice, "POST", "/api/v4/posts", Some(body)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json()["id"],
        "model.post.is_valid.message_length.app_error"
    );
    let huge = "y".repeat(super::MAX_BODY_BYTES + 10);
    let body = json!({"channel_id": w.channel, "message": huge});
    assert_eq!(
        call(fake, alice, "POST", "/api/v4/posts", Some(body))
            .await
            .status,
        413
    );

    let props = json!({"override_username": "bob", "from_webhook": "true", "extra": 1});
    let body = json!({"channel_id": w.channel, "message": "a", "props": props.clone()});
    let plain = call(fake, alice, "POST", "/api/v4/posts", Some(body))
        .await
        .json();
    assert_eq!(plain["props"], json!({"from_webhook": "true", "extra": 1}));
    fake.set_allow_name_override(true);
    let body = json!({"channel_id": w.channel, "message": "b", "props": props});
    let named = call(fake, alice, "POST", "/api/v4/posts", Some(body))
        .await
        .json();
    assert_eq!(named["props"]["override_username"], "bob");

    let root = fake.post_as(&w.alice.0, &w.channel, "root", None);
    let body = json!({"channel_id": w.channel, "message": "reply", "root_id": root.id});
    let reply = call(fake, alice, "POST", "/api/v4/posts", Some(body))
        .await
        .json();
    assert_eq!(reply["root_id"], json!(root.id));
    let root_now = fake.post(&root.id).unwrap();
    assert_eq!(
        (root_now.update_at, root_now.edit_at),
        (reply["create_at"].as_i64().unwrap(), 0)
    );
    assert_eq!(root_now.reply_count, 1);
    let body = json!({"channel_id": w.channel, "message": "bad", "root_id": reply["id"]});
    assert_eq!(
        call(fake, alice, "POST", "/api/v4/posts", Some(body))
            .await
            .status,
        400
    );

    let body = json!({"channel_id": w.channel, "message": "once", "pending_post_id": "p1"});
    let first = call(fake, alice, "POST", "/api/v4/posts", Some(body.clone()))
        .await
        .json();
    let again = call(fake, alice, "POST", "/api/v4/posts", Some(body))
        .await
        .json();
    assert_eq!(
        first["id"], again["id"],
        "a retry with the same pending_post_id is deduplicated"
    );

    let stamps: Vec<i64> = fake.posts(&w.channel).iter().map(|p| p.create_at).collect();
    assert!(
        stamps.windows(2).all(|pair| pair[0] < pair[1]),
        "create_at strictly increases: {stamps:?}"
    );
    let delete = format!("/api/v4/posts/{}", root.id);
    assert_eq!(call(fake, alice, "DELETE", &delete, None).await.status, 200);
    let replies = fake.post(reply["id"].as_str().unwrap()).unwrap();
    assert!(replies.delete_at > 0, "deleting a root deletes its thread");
}

#[tokio::test]
async fn websockets_can_be_dropped_and_refused() {
    let w = world().await;
    let fake = &w.fake;
    let mut header_client = JsonSocket::to_mattermost(fake, Some(&w.alice.1)).await;
    let hello = header_client.next_event("hello").await;
    assert_eq!(
        hello["data"]["server_version"]
            .as_str()
            .unwrap()
            .split('.')
            .next(),
        Some("9")
    );
    fake.wait_websockets(1, WAIT).await;
    assert_eq!(fake.websocket_connections(), 1);

    fake.drop_websockets();
    header_client.expect_end().await;
    fake.wait_until("no live websocket", WAIT, |f| f.live_websockets() == 0)
        .await;

    fake.refuse_websockets(true);
    let request = fake.websocket_url().into_client_request().unwrap();
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected a 503 refusal, got {other:?}"),
    }
    fake.refuse_websockets(false);
    let (_client, reply, _hello) = JsonSocket::login(fake, &w.alice.1).await;
    assert_eq!(reply["status"], "OK");
    fake.wait_websockets(1, WAIT).await;
    assert_eq!(fake.websocket_connections(), 2);

    let mut rejected = JsonSocket::to_mattermost(fake, None).await;
    rejected
        .send(json!({"seq": 1, "action": "authentication_challenge", "data": {"token": "bad"}}))
        .await;
    rejected.expect_end().await;
    assert!(
        rejected.seen.is_empty(),
        "a bad token gets no reply: {:?}",
        rejected.seen
    );
    let mut early = JsonSocket::to_mattermost(fake, None).await;
    early.send(json!({"seq": 1, "action": "ping"})).await;
    assert_eq!(
        early.next().await["error"]["id"],
        "api.web_socket_router.not_authenticated.app_error"
    );
    let log = fake.request_log();
    assert!(
        log.iter()
            .any(|(_, path, status)| path == "/api/v4/websocket" && *status == 503)
    );
}

#[tokio::test]
async fn rest_failures_and_delay() {
    let w = world().await;
    let fake = &w.fake;
    let alice = Some(w.alice.1.as_str());
    fake.fail_rest(Some(500));
    let answer = call(fake, alice, "GET", "/api/v4/users/me", None).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json()["status_code"], 500);
    assert_eq!(
        call(fake, None, "GET", "/api/v4/system/ping", None)
            .await
            .status,
        500
    );
    fake.fail_rest(None);
    assert_eq!(
        call(fake, alice, "GET", "/api/v4/users/me", None)
            .await
            .status,
        200
    );

    fake.set_delay(Some(Duration::from_millis(200)));
    let started = std::time::Instant::now();
    assert_eq!(
        call(fake, alice, "GET", "/api/v4/users/me", None)
            .await
            .status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    fake.set_delay(None);

    let log = fake.request_log();
    let statuses: Vec<u16> = log.iter().map(|(_, _, status)| *status).collect();
    assert_eq!(statuses, vec![500, 500, 200, 200], "{log:?}");
    assert_eq!(log[0], ("GET".into(), "/api/v4/users/me".into(), 500));
}

#[tokio::test]
async fn rate_limit_answers_429_with_mattermost_headers() {
    let w = world().await;
    let fake = &w.fake;
    fake.rate_limit(Some(1));
    let mut refused = None;
    for _ in 0..5 {
        let answer = call(fake, Some(&w.alice.1), "GET", "/api/v4/users/me", None).await;
        if answer.status == 429 {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.header("x-ratelimit-limit"), Some("1"));
    }
    let refused = refused.expect("five requests within the window got no 429");
    assert_eq!(refused.header("x-ratelimit-limit"), Some("1"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = refused
        .header("x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset >= 1);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.text(), "limit exceeded\n");
    fake.rate_limit(None);
    assert_eq!(
        call(fake, Some(&w.alice.1), "GET", "/api/v4/users/me", None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn incoming_webhooks_post_with_overrides_when_allowed() {
    let w = world().await;
    let fake = &w.fake;
    fake.join_channel(&w.alice.0, &w.channel);
    let (mut ws, _, _) = JsonSocket::login(fake, &w.alice.1).await;
    fake.wait_websockets(1, WAIT).await;
    let (hook_url, _) = webhook_sink().await;
    fake.add_outgoing_webhook(&w.channel, &hook_url, "t", false);
    let hook = fake.add_incoming_webhook(&w.channel);
    assert!(hook.starts_with(&format!("{}/hooks/", fake.url())));
    let hook_path = hook.trim_start_matches(&fake.url()).to_owned();

    fake.set_allow_name_override(true);
    let body = json!({"text": "build ok", "username": "ci", "icon_url": "http://x/i.png"});
    let answer = call(fake, None, "POST", &hook_path, Some(body)).await;
    assert_eq!((answer.status, answer.text()), (200, "ok".to_owned()));
    assert_eq!(answer.header("content-type"), Some("text/plain"));
    let posted = ws.next_event("posted").await;
    assert_eq!(posted["data"]["sender_name"], "ci");
    assert_eq!(posted["data"]["set_online"], false);
    let post = post_of(&posted);
    assert_eq!(post["props"]["from_webhook"], "true");
    assert_eq!(post["props"]["override_username"], "ci");
    assert!(
        post["props"].get("override_icon_url").is_none(),
        "icon override is off"
    );
    assert_ne!(post["user_id"], json!(w.alice.0));

    let payload =
        super::webhooks::form_encode(&[("payload", json!({"text": "via form"}).to_string())]);
    let url = format!("{}{hook_path}", fake.url());
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let answer = http_request("POST", &url, &headers, payload.as_bytes())
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let post = post_of(&ws.next_event("posted").await);
    assert_eq!(
        (
            post["message"].clone(),
            post["props"]["override_username"].clone()
        ),
        (json!("via form"), json!("webhook"))
    );

    fake.set_allow_name_override(false);
    call(
        fake,
        None,
        "POST",
        &hook_path,
        Some(json!({"text": "plain", "username": "ci"})),
    )
    .await;
    let post = post_of(&ws.next_event("posted").await);
    assert!(post["props"].get("override_username").is_none());

    let empty = call(fake, None, "POST", &hook_path, Some(json!({"text": ""}))).await;
    assert_eq!(
        (empty.status, empty.json()["id"].clone()),
        (400, json!("web.incoming_webhook.general.app_error"))
    );
    let unknown = call(
        fake,
        None,
        "POST",
        "/hooks/ybndrfg8ejkmcpqxot1uwisza3",
        Some(json!({"text": "x"})),
    )
    .await;
    assert_eq!(unknown.status, 400);

    // Webhook posts fire no outgoing webhook: the next user post is the first call.
    fake.post_as(&w.alice.0, &w.channel, "by hand", None);
    fake.wait_until("one outgoing webhook result", WAIT, |f| {
        !f.outgoing_webhook_results().is_empty()
    })
    .await;
    assert_eq!(fake.outgoing_webhook_results(), vec![200]);
}

/// A loopback HTTP server standing in for an outgoing webhook's target:
/// `/form` answers an empty 200, `/json` a reply text posted as a comment.
async fn webhook_sink() -> (String, mpsc::UnboundedReceiver<(String, String, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/{kind}",
        axum::routing::post(
            move |AxumPath(kind): AxumPath<String>, headers: HeaderMap, body: String| {
                let tx = tx.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let _ = tx.send((kind.clone(), content_type, body));
                    if kind == "json" {
                        axum::Json(json!({"text": "pong from hook", "response_type": "comment"}))
                            .into_response()
                    } else {
                        axum::http::StatusCode::OK.into_response()
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}/form"), rx)
}

#[tokio::test]
async fn outgoing_webhooks_fire_for_user_posts() {
    let w = world().await;
    let fake = &w.fake;
    let (form_url, mut calls) = webhook_sink().await;
    let json_url = form_url.replace("/form", "/json");
    fake.add_outgoing_webhook(&w.channel, &form_url, "tok-form", false);
    fake.add_outgoing_webhook(&w.channel, &json_url, "tok-json", true);

    let post = fake.post_as(&w.alice.0, &w.channel, "hello from alice", None);
    let mut received = Vec::new();
    for _ in 0..2 {
        let call = tokio::time::timeout(WAIT, calls.recv())
            .await
            .unwrap_or_else(|_| panic!("callbacks seen: {received:?}"))
            .unwrap();
        received.push(call);
    }
    received.sort();
    let (_, form_type, form_body) = &received[0];
    assert_eq!(form_type, "application/x-www-form-urlencoded");
    assert_eq!(
        form_keys(form_body),
        form_keys(&fixture("outgoing_webhook_form.txt"))
    );
    let form: Vec<(String, String)> = form_decode(form_body);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(field("token"), "tok-form");
    assert_eq!(field("text"), "hello from alice");
    assert_eq!(field("user_name"), "alice");
    assert_eq!(field("team_domain"), "switchboard");
    assert_eq!(field("team_id"), w.team);
    assert_eq!(field("timestamp"), post.create_at.to_string());
    let (_, json_type, json_body) = &received[1];
    assert_eq!(json_type, "application/json");
    let payload: Value = serde_json::from_str(json_body).unwrap();
    assert_same_shape("outgoing_webhook.json", &payload);
    assert_eq!(payload["post_id"], json!(post.id));
    assert_eq!(payload["timestamp"], json!(post.create_at));

    fake.wait_until("two outgoing webhook results", WAIT, |f| {
        f.outgoing_webhook_results().len() == 2
    })
    .await;
    assert_eq!(fake.outgoing_webhook_results(), vec![200, 200]);
    let posts = fake.wait_for_posts(&w.channel, 2, WAIT).await;
    assert_eq!(posts[1].message, "pong from hook");
    assert_eq!(posts[1].root_id, post.id);
    assert_eq!(posts[1].prop("from_webhook"), Some("true"));
}

#[tokio::test]
async fn files_upload_attach_and_share() {
    let w = world().await;
    let fake = &w.fake;
    let alice = Some(w.alice.1.as_str());
    let refused = upload(fake, &w.alice.1, &w.channel, "notes.txt", b"hello files!").await;
    assert_eq!(refused.status, 403, "uploading takes channel membership");
    fake.join_channel(&w.alice.0, &w.channel);
    let uploaded = upload(fake, &w.alice.1, &w.channel, "notes.txt", b"hello files!").await;
    assert_eq!(uploaded.status, 201);
    let uploaded = uploaded.json();
    assert_same_shape("file_upload.json", &uploaded);
    let info = &uploaded["file_infos"][0];
    assert_eq!(
        (info["size"].clone(), info["mime_type"].clone()),
        (json!(12), json!("text/plain"))
    );
    let file_id = info["id"].as_str().unwrap().to_owned();

    let link = call(
        fake,
        alice,
        "GET",
        &format!("/api/v4/files/{file_id}/link"),
        None,
    )
    .await;
    assert_eq!(link.status, 400, "a file on no post has no public link");
    let body = json!({"channel_id": w.channel, "message": "see file", "file_ids": [file_id]});
    let post = call(fake, alice, "POST", "/api/v4/posts", Some(body))
        .await
        .json();
    assert_eq!(post["file_ids"], json!([file_id]));
    assert_eq!(post["metadata"]["files"][0]["post_id"], post["id"]);

    let bytes = call(
        fake,
        alice,
        "GET",
        &format!("/api/v4/files/{file_id}"),
        None,
    )
    .await;
    assert_eq!(bytes.body, b"hello files!");
    let info = call(
        fake,
        alice,
        "GET",
        &format!("/api/v4/files/{file_id}/info"),
        None,
    )
    .await;
    assert_eq!(info.json()["name"], "notes.txt");
    let link = call(
        fake,
        alice,
        "GET",
        &format!("/api/v4/files/{file_id}/link"),
        None,
    )
    .await
    .json();
    let link = link["link"].as_str().unwrap().to_owned();
    let public = http_request("GET", &link, &[], b"").await.unwrap();
    assert_eq!(
        (public.status, public.body.as_slice()),
        (200, b"hello files!".as_slice())
    );
    let tampered = http_request("GET", &format!("{link}x"), &[], b"")
        .await
        .unwrap();
    assert_eq!(tampered.status, 400);

    let png = super::rest::AVATAR_PNG;
    let with_files = fake.post_with_files(&w.alice.0, &w.channel, "pic", &[("a.png", png)]);
    assert_eq!(with_files.file_ids.len(), 1);
    let files = &with_files.metadata.as_ref().unwrap()["files"];
    assert_eq!(
        (files[0]["width"].clone(), files[0]["mime_type"].clone()),
        (json!(1), json!("image/png"))
    );
}

#[tokio::test]
async fn payloads_match_the_fixtures() {
    let w = world().await;
    let fake = &w.fake;
    let alice = Some(w.alice.1.as_str());
    fake.set_allow_name_override(true);
    let team = call(fake, alice, "GET", "/api/v4/teams/name/switchboard", None).await;
    assert_same_shape("team.json", &team.json());
    let path = format!("/api/v4/teams/{}", w.team);
    assert_eq!(
        call(fake, alice, "GET", &path, None).await.json()["name"],
        "switchboard"
    );
    let path = format!("/api/v4/channels/{}/members", w.channel);
    let member = call(
        fake,
        alice,
        "POST",
        &path,
        Some(json!({"user_id": w.alice.0})),
    )
    .await;
    assert_eq!(member.status, 201);
    assert_same_shape("channel_member.json", &member.json());
    let channel = call(
        fake,
        alice,
        "GET",
        "/api/v4/teams/name/switchboard/channels/name/bridge",
        None,
    )
    .await;
    let channel = channel.json();
    assert_same_shape("channel.json", &channel);
    assert_eq!(channel["display_name"], "Bridge");

    let (mut ws, reply, hello) = JsonSocket::login(fake, &w.alice.1).await;
    assert_same_shape("websocket_auth_ok.json", &reply);
    assert_same_shape("websocket_hello.json", &hello);
    fake.wait_websockets(1, WAIT).await;

    let joined_at = fake.posts(&w.channel)[0].update_at;
    let body = json!({"channel_id": w.channel, "message": "hello from alice"});
    let post = call(fake, alice, "POST", "/api/v4/posts", Some(body))
        .await
        .json();
    assert_same_shape("post.json", &post);
    assert_same_shape("websocket_posted.json", &ws.next_event("posted").await);
    let path = format!("/api/v4/channels/{}/posts?since={joined_at}", w.channel);
    assert_same_shape(
        "post_list.json",
        &call(fake, alice, "GET", &path, None).await.json(),
    );

    let post_id = post["id"].as_str().unwrap();
    let path = format!("/api/v4/posts/{post_id}/patch");
    call(
        fake,
        alice,
        "PUT",
        &path,
        Some(json!({"message": "hello again"})),
    )
    .await;
    assert_same_shape(
        "websocket_post_edited.json",
        &ws.next_event("post_edited").await,
    );
    call(
        fake,
        alice,
        "DELETE",
        &format!("/api/v4/posts/{post_id}"),
        None,
    )
    .await;
    assert_same_shape(
        "websocket_post_deleted.json",
        &ws.next_event("post_deleted").await,
    );
    ws.send(json!({"seq": 2, "action": "ping"})).await;
    assert_same_shape("websocket_pong.json", &ws.next().await);

    let config = call(fake, alice, "GET", "/api/v4/config/client?format=old", None)
        .await
        .json();
    assert_same_shape("client_config.json", &config);
    assert_eq!(config["EnablePostUsernameOverride"], "true");
    let anonymous = call(fake, None, "GET", "/api/v4/config/client?format=old", None)
        .await
        .json();
    assert!(anonymous.get("EnablePostUsernameOverride").is_none());
    let new_format = call(fake, alice, "GET", "/api/v4/config/client", None).await;
    assert_eq!(new_format.status, 501);
}

#[tokio::test]
#[should_panic(expected = "timed out after")]
async fn waits_fail_with_what_was_seen() {
    let w = world().await;
    w.fake.post_as(&w.alice.0, &w.channel, "only one", None);
    w.fake
        .wait_for_posts(&w.channel, 2, Duration::from_millis(50))
        .await;
}
