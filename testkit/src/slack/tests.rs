//! Drives the fake with a real HTTP client, a real websocket client and a small
//! HTTP receiver standing in for the app's request URL and outgoing webhook.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{EventRetries, FakeSlack, SlackOptions};

const WAIT: Duration = Duration::from_secs(10);

async fn fake() -> FakeSlack {
    let options = SlackOptions {
        channels: vec!["general".into(), "bridge".into()],
        ..SlackOptions::default()
    };
    FakeSlack::start(options).await
}

/// Calls a Web API method with a JSON body; returns status, headers and body.
async fn api(
    fake: &FakeSlack,
    token: Option<&str>,
    method: &str,
    args: Value,
) -> (u16, HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{method}", fake.api_url()))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(args.to_string());
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = tokio::time::timeout(WAIT, request.send())
        .await
        .unwrap_or_else(|_| panic!("{method}: no answer within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body: Value = response.json().await.expect("a JSON answer");
    (status, headers, body)
}

/// A Web API call with the bot token that must succeed.
async fn bot(fake: &FakeSlack, method: &str, args: Value) -> Value {
    let token = fake.options().bot_token;
    let (status, _, body) = api(fake, Some(&token), method, args).await;
    assert_eq!(
        (status, &body["ok"]),
        (200, &json!(true)),
        "{method}: {body}"
    );
    body
}

/// What the test's receiver answers to each request, in order (then 200).
#[derive(Clone)]
enum Reply {
    Status(u16),
    NoRetry(u16),
    /// Never answers: the fake's timeout must end the request.
    Hang,
    Json(Value),
}

struct Seen {
    headers: HeaderMap,
    body: String,
}

/// An HTTP server standing in for the app: records requests, answers as told.
struct Receiver {
    url: String,
    seen: mpsc::UnboundedReceiver<Seen>,
    server: tokio::task::JoinHandle<()>,
}

type ReceiverState = (Arc<Mutex<VecDeque<Reply>>>, mpsc::UnboundedSender<Seen>);

async fn receive(
    AxumState((replies, seen)): AxumState<ReceiverState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let _ = seen.send(Seen { headers, body });
    let reply = replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::NoRetry(code) => (
            StatusCode::from_u16(code).unwrap(),
            [("X-Slack-No-Retry", "1")],
        )
            .into_response(),
        Reply::Hang => std::future::pending().await,
        Reply::Json(value) => axum::Json(value).into_response(),
    }
}

impl Receiver {
    async fn start(replies: Vec<Reply>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/slack/events", listener.local_addr().unwrap());
        let (tx, seen) = mpsc::unbounded_channel();
        let state: ReceiverState = (Arc::new(Mutex::new(replies.into())), tx);
        let app = axum::Router::new().fallback(receive).with_state(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, seen, server }
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .unwrap_or_else(|_| panic!("the receiver got no request within {WAIT:?}"))
            .expect("the receiver stopped")
    }

    /// The next request's JSON body.
    async fn next_json(&mut self) -> (HeaderMap, Value) {
        let seen = self.next().await;
        let body = serde_json::from_str(&seen.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", seen.body));
        (seen.headers, body)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Socket Mode client that remembers every frame, to report it on failure.
struct Client {
    ws: Ws,
    seen: Vec<Value>,
}

impl Client {
    /// Opens a connection the way an app does: `apps.connections.open`, then the URL.
    async fn open(fake: &FakeSlack) -> Client {
        let token = fake.options().app_token;
        let (_, _, body) = api(fake, Some(&token), "apps.connections.open", json!({})).await;
        let url = body["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no url: {body}"));
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("websocket connect timed out")
            .expect("websocket connect failed");
        Client {
            ws,
            seen: Vec::new(),
        }
    }

    async fn next(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}; seen {:#?}", self.seen));
            match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("a JSON frame");
                    self.seen.push(value.clone());
                    return value;
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                other => panic!("the socket ended ({other:?}); seen {:#?}", self.seen),
            }
        }
    }

    async fn ack(&mut self, envelope: &Value) {
        let ack = json!({ "envelope_id": envelope["envelope_id"] }).to_string();
        self.ws
            .send(WsMessage::Text(ack.into()))
            .await
            .expect("ack sent");
    }

    /// Waits for the end; returns whether a close frame came first.
    async fn end(&mut self) -> bool {
        let ended = tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(WsMessage::Close(_))) => return true,
                    Some(Err(_)) | None => return false,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        ended.unwrap_or_else(|_| {
            panic!(
                "the socket did not end within {WAIT:?}; seen {:#?}",
                self.seen
            )
        })
    }
}

#[tokio::test]
async fn the_web_api_checks_tokens_and_bodies() {
    let fake = fake().await;
    let options = fake.options();
    let (status, _, body) = api(&fake, None, "auth.test", json!({})).await;
    assert_eq!(
        (status, body),
        (200, json!({ "ok": false, "error": "not_authed" }))
    );
    let (_, _, body) = api(&fake, Some("xoxb-wrong"), "auth.test", json!({})).await;
    assert_eq!(body["error"], "invalid_auth");
    let (_, _, body) = api(&fake, Some(&options.app_token), "auth.test", json!({})).await;
    assert_eq!(body["error"], "not_allowed_token_type");
    let (_, _, body) = api(
        &fake,
        Some(&options.bot_token),
        "apps.connections.open",
        json!({}),
    )
    .await;
    assert_eq!(body["error"], "not_allowed_token_type");
    let (status, _, body) = api(&fake, Some(&options.bot_token), "chat.nothing", json!({})).await;
    assert_eq!((status, &body["error"]), (404, &json!("unknown_method")));

    let me = bot(&fake, "auth.test", json!({})).await;
    assert_eq!(me["user_id"], json!(fake.bot_user_id()));
    assert_eq!(me["bot_id"], json!(fake.bot_id()));
    assert_eq!(me["team_id"], json!(fake.team_id()));
    assert!(me.get("warning").is_none(), "{me}");

    // A JSON body's token is ignored; a form's is read; JSON without a charset warns.
    let client = reqwest::Client::new();
    let url = format!("{}auth.test", fake.api_url());
    let json_token = json!({ "token": options.bot_token }).to_string();
    let answer: Value = client
        .post(&url)
        .header("Content-Type", "application/json")
        .body(json_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["error"], "not_authed");
    let form = format!("token={}", options.bot_token);
    let answer: Value = client
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    let answer: Value = client
        .post(&url)
        .header("Content-Type", "application/json")
        .bearer_auth(&options.bot_token)
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["warning"], "missing_charset");
    assert_eq!(
        answer["response_metadata"]["warnings"],
        json!(["missing_charset"])
    );
    assert_eq!(fake.calls("auth.test"), 7);
}

#[tokio::test]
async fn users_usergroups_and_channels_are_listed() {
    let fake = fake().await;
    let alice = fake.add_user("alice", "alice");
    assert_eq!(alice, "UALICE");
    assert_eq!(fake.add_user("alice", "alice2"), "UALICE2");
    let user = bot(&fake, "users.info", json!({ "user": alice })).await;
    assert_eq!(user["user"]["name"], "alice");
    assert_eq!(user["user"]["real_name"], "Alice");
    assert_eq!(user["user"]["profile"]["display_name"], "alice");
    assert_eq!(user["user"]["is_bot"], false);
    let (_, _, missing) = api(
        &fake,
        Some(&fake.options().bot_token),
        "users.info",
        json!({ "user": "UNOBODY" }),
    )
    .await;
    assert_eq!(missing["error"], "user_not_found");
    let me = bot(&fake, "users.info", json!({ "user": fake.bot_user_id() })).await;
    assert_eq!(me["user"]["profile"]["bot_id"], json!(fake.bot_id()));

    let group = fake.add_usergroup("ops");
    let groups = bot(&fake, "usergroups.list", json!({ "include_users": true })).await;
    assert_eq!(groups["usergroups"][0]["id"], json!(group));
    assert_eq!(groups["usergroups"][0]["handle"], "ops");
    assert!(group.starts_with('S'));

    for name in ["c3", "c4", "c5"] {
        fake.add_channel(name);
    }
    let mut names = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = bot(
            &fake,
            "conversations.list",
            json!({ "limit": 2, "cursor": cursor, "types": "public_channel" }),
        )
        .await;
        let channels = page["channels"].as_array().unwrap();
        assert!(channels.len() <= 2);
        names.extend(
            channels
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned()),
        );
        cursor = page["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(names, ["general", "bridge", "c3", "c4", "c5"]);
    let private = bot(
        &fake,
        "conversations.list",
        json!({ "types": "private_channel" }),
    )
    .await;
    assert_eq!(private["channels"], json!([]));
    let info = bot(
        &fake,
        "conversations.info",
        json!({ "channel": fake.channel_id("bridge") }),
    )
    .await;
    assert_eq!(info["channel"]["name"], "bridge");
    assert_eq!(info["channel"]["is_member"], true);
    assert_eq!(info["channel"]["is_channel"], true);

    fake.kick_bot("bridge");
    let info = bot(&fake, "conversations.info", json!({ "channel": "bridge" })).await;
    assert_eq!(info["channel"]["is_member"], false);
    let joined = bot(
        &fake,
        "conversations.join",
        json!({ "channel": fake.channel_id("bridge") }),
    )
    .await;
    assert_eq!(joined["channel"]["is_member"], true);
    assert!(joined.get("warning").is_none());
    let join = fake.messages("bridge").pop().unwrap();
    assert_eq!(join.subtype.as_deref(), Some("channel_join"));
    let again = bot(
        &fake,
        "conversations.join",
        json!({ "channel": fake.channel_id("bridge") }),
    )
    .await;
    assert_eq!(again["warning"], "already_in_channel");
    assert_eq!(
        again["response_metadata"]["warnings"],
        json!(["already_in_channel"])
    );
}

#[tokio::test]
async fn posts_reach_history_and_the_request_url() {
    let fake = fake().await;
    let mut app = Receiver::start(vec![]).await;
    fake.set_events_url(&app.url);
    let alice = fake.add_user("alice", "alice");
    let channel = fake.channel_id("bridge");

    let ts = fake
        .post(&alice, "bridge", "hello <@UALICE> &amp; co")
        .await;
    let (_, wrapper) = app.next_json().await;
    assert_eq!(wrapper["type"], "event_callback");
    assert_eq!(wrapper["api_app_id"], json!(fake.app_id()));
    assert_eq!(wrapper["token"], json!(fake.verification_token()));
    assert!(wrapper["event_id"].as_str().unwrap().starts_with("Ev"));
    assert_eq!(
        wrapper["authorizations"][0]["user_id"],
        json!(fake.bot_user_id())
    );
    let event = &wrapper["event"];
    assert_eq!(
        (
            &event["type"],
            &event["user"],
            &event["ts"],
            &event["channel"],
            &event["channel_type"]
        ),
        (
            &json!("message"),
            &json!(alice),
            &json!(ts),
            &json!(channel),
            &json!("channel")
        )
    );
    assert!(
        event.get("subtype").is_none() && event.get("bot_id").is_none(),
        "{event}"
    );
    let elements = &event["blocks"][0]["elements"][0]["elements"];
    assert_eq!(elements[1], json!({ "type": "user", "user_id": "UALICE" }));
    assert_eq!(elements[2], json!({ "type": "text", "text": " & co" }));

    let posted = bot(
        &fake,
        "chat.postMessage",
        json!({ "channel": "#bridge", "text": "from irc", "unfurl_links": false }),
    )
    .await;
    assert_eq!(posted["channel"], json!(channel));
    let message = &posted["message"];
    assert_eq!(message["user"], json!(fake.bot_user_id()));
    assert_eq!(message["bot_id"], json!(fake.bot_id()));
    assert!(message.get("subtype").is_none(), "{message}");
    let (_, own) = app.next_json().await;
    assert_eq!(own["event"]["bot_id"], json!(fake.bot_id()));
    assert_eq!(own["event"]["ts"], posted["ts"]);

    let reply = fake.reply(&alice, "bridge", &ts, "in thread").await;
    let (_, replied) = app.next_json().await;
    assert_eq!(
        (
            &replied["event"]["thread_ts"],
            &replied["event"]["parent_user_id"]
        ),
        (&json!(ts), &json!(alice))
    );
    fake.me_message(&alice, "bridge", "waves").await;
    assert_eq!(app.next_json().await.1["event"]["subtype"], "me_message");
    fake.share_file(
        &alice,
        "bridge",
        "Cat",
        "https://files.example/cat.png",
        "look",
    )
    .await;
    let (_, shared) = app.next_json().await;
    assert_eq!(shared["event"]["subtype"], "file_share");
    assert_eq!(shared["event"]["files"][0]["name"], "cat.png");
    assert_eq!(shared["event"]["files"][0]["mimetype"], "image/png");

    let history = bot(
        &fake,
        "conversations.history",
        json!({ "channel": channel }),
    )
    .await;
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["look", "waves", "from irc", "hello <@UALICE> &amp; co"]
    );
    let parent = &history["messages"][3];
    assert_eq!(
        (&parent["reply_count"], &parent["latest_reply"]),
        (&json!(1), &json!(reply))
    );
    assert_eq!(parent["thread_ts"], json!(ts));
    let thread = bot(
        &fake,
        "conversations.replies",
        json!({ "channel": channel, "ts": ts }),
    )
    .await;
    assert_eq!(thread["messages"].as_array().unwrap().len(), 2);
    assert_eq!(fake.messages("bridge").len(), 5);
    let found = fake
        .wait_for_message("bridge", |m| m.text == "from irc", WAIT)
        .await;
    assert_eq!(found.bot_id, Some(fake.bot_id()));
    assert_eq!(fake.event_deliveries().len(), 5);
    assert!(
        fake.event_deliveries()
            .iter()
            .all(|d| d.status == 200 && d.retry_num.is_none())
    );
}

#[tokio::test]
async fn the_customize_scope_decides_bot_message() {
    for allowed in [true, false] {
        let options = SlackOptions {
            bot_can_customize: allowed,
            ..SlackOptions::default()
        };
        let fake = FakeSlack::start(options).await;
        let args = json!({ "channel": "general", "text": "hi", "username": "alice (irc)", "icon_url": "http://x/a.png" });
        let posted = bot(&fake, "chat.postMessage", args).await;
        let message = &posted["message"];
        let stored = fake.messages("general").pop().unwrap();
        if allowed {
            assert_eq!(message["subtype"], "bot_message");
            assert_eq!(message["username"], "alice (irc)");
            assert_eq!(message["icons"]["image_48"], "http://x/a.png");
            assert!(message.get("user").is_none(), "{message}");
            assert_eq!(
                (stored.username.as_deref(), stored.user),
                (Some("alice (irc)"), None)
            );
        } else {
            assert!(
                message.get("subtype").is_none() && message.get("username").is_none(),
                "{message}"
            );
            assert_eq!(message["user"], json!(fake.bot_user_id()));
            assert_eq!(stored.username, None);
        }
        assert_eq!(message["bot_id"], json!(fake.bot_id()));
    }
}

fn hmac_hex(secret: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn pushes_are_signed_with_the_secret() {
    let fake = fake().await;
    let mut app = Receiver::start(vec![]).await;
    fake.set_events_url(&app.url);
    let alice = fake.add_user("alice", "alice");
    fake.post_silently(&alice, "general", "never pushed");
    fake.post(&alice, "general", "signed").await;
    let seen = app.next().await;
    let timestamp = header(&seen.headers, "x-slack-request-timestamp").expect("a timestamp");
    let age = super::state::now_secs() - timestamp.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "stale timestamp {timestamp}");
    let secret = fake.options().signing_secret;
    let expected = format!(
        "v0={}",
        hmac_hex(&secret, &format!("v0:{timestamp}:{}", seen.body))
    );
    assert_eq!(
        header(&seen.headers, "x-slack-signature"),
        Some(expected.as_str())
    );
    assert_eq!(
        header(&seen.headers, "content-type"),
        Some("application/json")
    );
    assert!(header(&seen.headers, "x-slack-retry-num").is_none());

    let signed = fake.signed_headers("{}", 1_700_000_000);
    assert_eq!(
        signed[1].1,
        format!("v0={}", hmac_hex(&secret, "v0:1700000000:{}"))
    );
    let bad = vec![("X-Slack-Signature".to_owned(), "v0=00".to_owned())];
    assert_eq!(fake.push_raw("{\"x\":1}", bad).await.0, 200);
    let raw = app.next().await;
    assert_eq!(
        (raw.body.as_str(), header(&raw.headers, "x-slack-signature")),
        ("{\"x\":1}", Some("v0=00"))
    );
    assert_eq!(
        fake.event_deliveries().len(),
        1,
        "raw pushes are not deliveries"
    );
}

#[tokio::test]
async fn url_verification_sends_the_challenge() {
    let fake = fake().await;
    let app = Receiver::start(vec![Reply::Json(json!({ "challenge": "echoed" }))]).await;
    fake.set_events_url(&app.url);
    let (status, body) = fake.url_verification().await;
    assert_eq!((status, body.as_str()), (200, r#"{"challenge":"echoed"}"#));
    let mut app = app;
    let (headers, sent) = app.next_json().await;
    assert_eq!(sent["type"], "url_verification");
    assert_eq!(sent["challenge"], json!(fake.last_challenge().unwrap()));
    assert!(
        header(&headers, "x-slack-signature")
            .unwrap()
            .starts_with("v0=")
    );
}

#[tokio::test]
async fn failed_pushes_are_retried_with_the_same_event_id() {
    let fake = fake().await;
    let mut app = Receiver::start(vec![
        Reply::Status(500),
        Reply::Status(503),
        Reply::Status(200),
    ])
    .await;
    fake.set_events_url(&app.url);
    let alice = fake.add_user("alice", "alice");
    fake.post(&alice, "general", "again").await;
    let mut ids = Vec::new();
    for (num, reason) in [
        (None, None),
        (Some("1"), Some("http_error")),
        (Some("2"), Some("http_error")),
    ] {
        let (headers, body) = app.next_json().await;
        assert_eq!(
            (
                header(&headers, "x-slack-retry-num"),
                header(&headers, "x-slack-retry-reason")
            ),
            (num, reason)
        );
        ids.push(body["event_id"].clone());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let deliveries = fake.wait_deliveries(3, WAIT).await;
    let summary: Vec<_> = deliveries.iter().map(|d| (d.retry_num, d.status)).collect();
    assert_eq!(summary, [(None, 500), (Some(1), 503), (Some(2), 200)]);

    // Four failures: the first attempt and 3 retries, then Slack gives up.
    let mut app = Receiver::start(vec![Reply::Status(500); 5]).await;
    fake.set_events_url(&app.url);
    fake.post(&alice, "general", "gives up").await;
    let deliveries = fake.wait_deliveries(7, WAIT).await;
    assert_eq!(deliveries[6].retry_num, Some(3));
    assert_eq!(deliveries[6].retry_reason.as_deref(), Some("http_error"));
    for _ in 0..4 {
        app.next().await;
    }
    // X-Slack-No-Retry: 1 stops retries.
    let app = Receiver::start(vec![Reply::NoRetry(500)]).await;
    fake.set_events_url(&app.url);
    fake.post(&alice, "general", "no retry").await;
    fake.post(&alice, "general", "next").await;
    let deliveries = fake.wait_deliveries(9, WAIT).await;
    assert!(deliveries[7].no_retry && deliveries[7].status == 500);
    assert_eq!((deliveries[8].retry_num, deliveries[8].status), (None, 200));
}

#[tokio::test]
async fn timeouts_and_retries_on_demand() {
    let fake = fake().await;
    fake.set_events_timeout(Duration::from_millis(300));
    let app = Receiver::start(vec![Reply::Hang]).await;
    fake.set_events_url(&app.url);
    let alice = fake.add_user("alice", "alice");
    fake.post(&alice, "general", "slow").await;
    let deliveries = fake.wait_deliveries(2, WAIT).await;
    assert_eq!(deliveries[0].status, 0);
    assert_eq!(
        (
            deliveries[1].retry_num,
            deliveries[1].retry_reason.as_deref()
        ),
        (Some(1), Some("http_timeout"))
    );
    assert_eq!(deliveries[0].event_id, deliveries[1].event_id);
    // A loaded machine may need another retry before the 200.
    fake.wait_until("the retry answered", WAIT, |f| {
        f.event_deliveries().iter().any(|d| d.status == 200)
    })
    .await;

    fake.set_event_retries(EventRetries::OnDemand);
    let refused = Receiver::start(vec![Reply::Status(500)]).await;
    fake.set_events_url(&refused.url);
    let before = fake.event_deliveries().len();
    fake.post(&alice, "general", "later").await;
    let deliveries = fake.wait_deliveries(before + 1, WAIT).await;
    assert_eq!(deliveries[before].status, 500);
    let retry = fake.retry_last_event("http_timeout").await;
    assert_eq!(
        (retry.retry_num, retry.retry_reason.as_deref(), retry.status),
        (Some(1), Some("http_timeout"), 200)
    );
    assert_eq!(retry.event_id, deliveries[before].event_id);
    assert_eq!(
        fake.event_deliveries().len(),
        before + 2,
        "no automatic retry"
    );
}

#[tokio::test]
async fn history_pages_newest_first() {
    let fake = fake().await;
    let alice = fake.add_user("alice", "alice");
    let stamps: Vec<String> = (0..7)
        .map(|i| fake.post_silently(&alice, "bridge", &format!("m{i}")))
        .collect();
    assert!(
        stamps
            .windows(2)
            .all(|w| super::state::ts_micros(&w[0]) < super::state::ts_micros(&w[1]))
    );
    let channel = fake.channel_id("bridge");
    let mut texts = Vec::new();
    let mut cursor = Value::Null;
    for page in 0.. {
        let body = bot(
            &fake,
            "conversations.history",
            json!({ "channel": channel, "limit": 3, "cursor": cursor }),
        )
        .await;
        texts.extend(
            body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["text"].as_str().unwrap().to_owned()),
        );
        assert_eq!(body["has_more"], page < 2, "{body}");
        cursor = body["response_metadata"]["next_cursor"].clone();
        if page == 2 {
            assert!(cursor.is_null());
            break;
        }
    }
    assert_eq!(texts, ["m6", "m5", "m4", "m3", "m2", "m1", "m0"]);

    let window = json!({ "channel": channel, "oldest": stamps[1], "latest": stamps[4] });
    let body = bot(&fake, "conversations.history", window.clone()).await;
    let texts: Vec<_> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("m3"), json!("m2")]);
    let mut inclusive = window;
    inclusive["inclusive"] = json!(true);
    let body = bot(&fake, "conversations.history", inclusive).await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 4);

    fake.reply(&alice, "bridge", &stamps[6], "hidden reply")
        .await;
    let body = bot(
        &fake,
        "conversations.history",
        json!({ "channel": channel, "limit": 1 }),
    )
    .await;
    assert_eq!(body["messages"][0]["text"], "m6");
    assert_eq!(body["messages"][0]["reply_count"], 1);
    let (_, _, bad) = api(
        &fake,
        Some(&fake.options().bot_token),
        "conversations.history",
        json!({ "channel": channel, "cursor": "!!" }),
    )
    .await;
    assert_eq!(bad["error"], "invalid_cursor");
    fake.kick_bot("bridge");
    let (_, _, out) = api(
        &fake,
        Some(&fake.options().bot_token),
        "conversations.history",
        json!({ "channel": channel }),
    )
    .await;
    assert_eq!(out["error"], "not_in_channel");
    let (_, _, post) = api(
        &fake,
        Some(&fake.options().bot_token),
        "chat.postMessage",
        json!({ "channel": channel, "text": "x" }),
    )
    .await;
    assert_eq!(post["error"], "not_in_channel");
}

#[tokio::test]
async fn rate_limits_and_forced_failures() {
    let fake = fake().await;
    let token = fake.options().bot_token;
    fake.rate_limit("chat.postMessage", Some("bridge"), 2, 7);
    let args = json!({ "channel": "bridge", "text": "x" });
    for _ in 0..2 {
        let (status, headers, body) =
            api(&fake, Some(&token), "chat.postMessage", args.clone()).await;
        assert_eq!((status, header(&headers, "retry-after")), (429, Some("7")));
        assert_eq!(body, json!({ "ok": false, "error": "ratelimited" }));
    }
    bot(
        &fake,
        "chat.postMessage",
        json!({ "channel": "general", "text": "elsewhere" }),
    )
    .await;
    bot(&fake, "chat.postMessage", args.clone()).await;
    assert_eq!(fake.calls("chat.postMessage"), 4);
    assert_eq!(fake.messages("bridge").len(), 1);

    fake.fail_method("chat.postMessage", "channel_not_found", 1);
    let (status, _, body) = api(&fake, Some(&token), "chat.postMessage", args.clone()).await;
    assert_eq!((status, &body["error"]), (200, &json!("channel_not_found")));
    bot(&fake, "chat.postMessage", args).await;
    let (_, _, body) = api(
        &fake,
        Some(&token),
        "chat.postMessage",
        json!({ "channel": "nowhere", "text": "x" }),
    )
    .await;
    assert_eq!(body["error"], "channel_not_found");
    let (_, _, body) = api(
        &fake,
        Some(&token),
        "chat.postMessage",
        json!({ "channel": "bridge", "text": " " }),
    )
    .await;
    assert_eq!(body["error"], "no_text");
    let long = "x".repeat(super::web_api::MAX_TEXT_CHARS + 1);
    let (_, _, body) = api(
        &fake,
        Some(&token),
        "chat.postMessage",
        json!({ "channel": "bridge", "text": long }),
    )
    .await;
    assert_eq!(body["error"], "msg_too_long");
    assert_eq!(fake.api_calls("chat.postMessage")[0]["text"], "x");
}

#[tokio::test]
async fn edits_and_deletes_become_events() {
    let fake = fake().await;
    let mut app = Receiver::start(vec![]).await;
    fake.set_events_url(&app.url);
    let alice = fake.add_user("alice", "alice");
    let channel = fake.channel_id("general");
    let ts = fake.post(&alice, "general", "typo").await;
    app.next().await;
    fake.edit("general", &ts, "fixed").await;
    let (_, changed) = app.next_json().await;
    let event = &changed["event"];
    assert_eq!(
        (&event["subtype"], &event["hidden"]),
        (&json!("message_changed"), &json!(true))
    );
    assert_eq!(
        (
            &event["message"]["text"],
            &event["previous_message"]["text"]
        ),
        (&json!("fixed"), &json!("typo"))
    );
    assert_eq!(event["message"]["edited"]["user"], json!(alice));
    assert_ne!(event["ts"], json!(ts));
    let (_, _, refused) = api(
        &fake,
        Some(&fake.options().bot_token),
        "chat.update",
        json!({ "channel": channel, "ts": ts, "text": "mine" }),
    )
    .await;
    assert_eq!(refused["error"], "cant_update_message");

    let posted = bot(
        &fake,
        "chat.postMessage",
        json!({ "channel": channel, "text": "bot says" }),
    )
    .await;
    app.next().await;
    let own = posted["ts"].clone();
    let updated = bot(
        &fake,
        "chat.update",
        json!({ "channel": channel, "ts": own, "text": "bot said" }),
    )
    .await;
    assert_eq!(updated["text"], "bot said");
    assert_eq!(
        app.next_json().await.1["event"]["message"]["edited"]["user"],
        json!(fake.bot_user_id())
    );
    bot(
        &fake,
        "chat.delete",
        json!({ "channel": channel, "ts": own }),
    )
    .await;
    let (_, deleted) = app.next_json().await;
    assert_eq!(
        (
            &deleted["event"]["subtype"],
            &deleted["event"]["deleted_ts"]
        ),
        (&json!("message_deleted"), &own)
    );
    let (_, _, gone) = api(
        &fake,
        Some(&fake.options().bot_token),
        "chat.update",
        json!({ "channel": channel, "ts": own, "text": "x" }),
    )
    .await;
    assert_eq!(gone["error"], "message_not_found");

    // A parent with replies turns into a tombstone.
    fake.reply(&alice, "general", &ts, "reply").await;
    app.next().await;
    fake.delete("general", &ts).await;
    let (_, tomb) = app.next_json().await;
    assert_eq!(
        (
            &tomb["event"]["subtype"],
            &tomb["event"]["message"]["subtype"]
        ),
        (&json!("message_changed"), &json!("tombstone"))
    );
    let history = bot(
        &fake,
        "conversations.history",
        json!({ "channel": channel }),
    )
    .await;
    assert_eq!(history["messages"][0]["subtype"], "tombstone");
    assert!(
        fake.messages("general")
            .iter()
            .any(|m| m.ts == ts && m.deleted && m.edited)
    );
}

#[tokio::test]
async fn socket_mode_says_hello_and_redelivers_what_was_not_acked() {
    let fake = fake().await;
    let alice = fake.add_user("alice", "alice");
    let mut first = Client::open(&fake).await;
    let hello = first.next().await;
    assert_eq!(
        (&hello["type"], &hello["num_connections"]),
        (&json!("hello"), &json!(1))
    );
    assert_eq!(hello["connection_info"]["app_id"], json!(fake.app_id()));
    assert!(hello["debug_info"]["approximate_connection_time"].is_number());
    fake.wait_socket_connections(1, WAIT).await;

    fake.post(&alice, "general", "one").await;
    let envelope = first.next().await;
    assert_eq!(
        (&envelope["type"], &envelope["accepts_response_payload"]),
        (&json!("events_api"), &json!(false))
    );
    assert_eq!(
        (&envelope["retry_attempt"], &envelope["retry_reason"]),
        (&json!(0), &json!(""))
    );
    assert_eq!(envelope["payload"]["type"], "event_callback");
    assert_eq!(envelope["payload"]["event"]["text"], "one");
    first.ack(&envelope).await;
    fake.wait_until("the ack", WAIT, |f| f.unacked_envelopes() == 0)
        .await;
    assert_eq!(
        fake.acked_envelopes(),
        [envelope["envelope_id"].as_str().unwrap()]
    );

    fake.post(&alice, "general", "two").await;
    let unacked = first.next().await;
    assert_eq!(fake.unacked_envelopes(), 1);
    first.ws.close(None).await.unwrap();
    fake.wait_socket_connections(0, WAIT).await;
    fake.post(&alice, "general", "three").await;

    let mut second = Client::open(&fake).await;
    assert_eq!(second.next().await["num_connections"], 1);
    let again = second.next().await;
    assert_eq!(again["envelope_id"], unacked["envelope_id"]);
    assert_eq!(again["payload"]["event_id"], unacked["payload"]["event_id"]);
    assert_eq!(
        (&again["retry_attempt"], &again["retry_reason"]),
        (&json!(1), &json!("timeout"))
    );
    let queued = second.next().await;
    assert_eq!(
        (
            &queued["payload"]["event"]["text"],
            &queued["retry_attempt"]
        ),
        (&json!("three"), &json!(0))
    );
    second.ack(&again).await;
    second.ack(&queued).await;
    fake.wait_until("both acks", WAIT, |f| f.unacked_envelopes() == 0)
        .await;
    assert_eq!(fake.socket_connections_opened(), 2);

    fake.ping_sockets();
    let ping = tokio::time::timeout(WAIT, second.ws.next()).await.unwrap();
    assert!(matches!(ping, Some(Ok(WsMessage::Ping(_)))), "{ping:?}");
    // The client queued its pong on reading the ping; flushing sends it.
    second.ws.flush().await.unwrap();
    fake.wait_until("a pong", WAIT, |f| f.socket_pongs() == 1)
        .await;
    second
        .ws
        .send(WsMessage::Ping(b"hi".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WAIT, second.ws.next()).await.unwrap();
    assert!(matches!(pong, Some(Ok(WsMessage::Pong(_)))), "{pong:?}");
}

#[tokio::test]
async fn socket_mode_disconnects_and_drops() {
    let fake = fake().await;
    fake.set_disconnect_grace(Duration::from_millis(100));
    let alice = fake.add_user("alice", "alice");
    let mut old = Client::open(&fake).await;
    old.next().await;
    fake.send_disconnect("refresh_requested").await;
    let frame = old.next().await;
    assert_eq!(
        (&frame["type"], &frame["reason"]),
        (&json!("disconnect"), &json!("refresh_requested"))
    );
    let mut new = Client::open(&fake).await;
    assert_eq!(new.next().await["type"], "hello");
    fake.post(&alice, "general", "to the new one").await;
    let envelope = new.next().await;
    assert_eq!(envelope["payload"]["event"]["text"], "to the new one");
    new.ack(&envelope).await;
    assert!(old.end().await, "a close frame after the grace");
    fake.wait_socket_connections(1, WAIT).await;

    // An envelope whose connection ends unacked moves to another open one.
    let mut newest = Client::open(&fake).await;
    assert_eq!(newest.next().await["num_connections"], 2);
    fake.post(&alice, "general", "hand over").await;
    let lost = newest.next().await;
    newest.ws.close(None).await.unwrap();
    let moved = new.next().await;
    assert_eq!(moved["envelope_id"], lost["envelope_id"]);
    assert_eq!(moved["retry_attempt"], 1);
    new.ack(&moved).await;
    fake.wait_until("the ack", WAIT, |f| f.unacked_envelopes() == 0)
        .await;

    fake.drop_sockets();
    assert_eq!(fake.socket_connections(), 0);
    assert!(!new.end().await, "no close frame on a drop");

    // A ticket works once.
    let token = fake.options().app_token;
    let (_, _, body) = api(&fake, Some(&token), "apps.connections.open", json!({})).await;
    let url = body["url"].as_str().unwrap();
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.contains("/link/?ticket="),
        "{url}"
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    drop(ws);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn incoming_webhooks_post_and_refuse_as_slack_does() {
    let fake = fake().await;
    let url = fake.incoming_webhook_url("bridge");
    assert_eq!(url, fake.incoming_webhook_url("#bridge"));
    let client = reqwest::Client::new();
    let send = |body: String| {
        client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let answer = send(json!({ "text": "hook", "username": "bob (irc)" }).to_string())
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.text().await.unwrap(), "ok");
    let stored = fake.messages("bridge").pop().unwrap();
    assert_eq!(
        (stored.subtype.as_deref(), stored.username.as_deref()),
        (Some("bot_message"), Some("bob (irc)"))
    );
    assert_eq!((stored.user, stored.bot_id), (None, Some(fake.bot_id())));

    let refusals = [
        ("not json".to_owned(), 400, "invalid_payload"),
        (json!({ "text": "" }).to_string(), 400, "no_text"),
    ];
    for (body, status, text) in refusals {
        let answer = send(body).await.unwrap();
        assert_eq!(
            (answer.status().as_u16(), answer.text().await.unwrap()),
            (status, text.to_owned())
        );
    }
    fake.fail_method("incoming_webhook", "action_prohibited", 1);
    let answer = send(json!({ "text": "x" }).to_string()).await.unwrap();
    assert_eq!(
        (answer.status().as_u16(), answer.text().await.unwrap()),
        (403, "action_prohibited".to_owned())
    );
    fake.rate_limit("incoming_webhook", None, 1, 3);
    let answer = send(json!({ "text": "x" }).to_string()).await.unwrap();
    assert_eq!(
        (
            answer.status().as_u16(),
            header(answer.headers(), "retry-after")
        ),
        (429, Some("3"))
    );
    fake.archive_channel("bridge");
    let answer = send(json!({ "text": "x" }).to_string()).await.unwrap();
    assert_eq!(
        (answer.status().as_u16(), answer.text().await.unwrap()),
        (410, "channel_is_archived".to_owned())
    );
    let unknown = client
        .post(format!("{}/services/T0/B0/nope", fake.base_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (unknown.status().as_u16(), unknown.text().await.unwrap()),
        (404, "no_service".to_owned())
    );

    let strict = FakeSlack::start(SlackOptions {
        bot_can_customize: false,
        ..SlackOptions::default()
    })
    .await;
    let url = strict.incoming_webhook_url("general");
    client
        .post(&url)
        .body(json!({ "text": "plain", "username": "ignored" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(strict.messages("general")[0].username, None);
}

#[tokio::test]
async fn the_outgoing_webhook_posts_human_messages_as_forms() {
    let fake = fake().await;
    let mut hook = Receiver::start(vec![Reply::Json(json!({ "text": "pong" }))]).await;
    fake.set_outgoing_webhook(&hook.url, "hooktoken");
    let alice = fake.add_user("alice", "alice");
    bot(
        &fake,
        "chat.postMessage",
        json!({ "channel": "bridge", "text": "bots do not fire it" }),
    )
    .await;
    let ts = fake.post(&alice, "bridge", "ping & more").await;
    let seen = hook.next().await;
    assert_eq!(
        header(&seen.headers, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: std::collections::BTreeMap<String, String> = super::web_api::form_decode(&seen.body)
        .into_iter()
        .collect();
    assert_eq!(form["token"], "hooktoken");
    assert_eq!(form["channel_id"], fake.channel_id("bridge"));
    assert_eq!(form["channel_name"], "bridge");
    assert_eq!(
        (form["user_id"].as_str(), form["user_name"].as_str()),
        (alice.as_str(), "alice")
    );
    assert_eq!(
        (form["text"].as_str(), form["timestamp"].as_str()),
        ("ping & more", ts.as_str())
    );
    assert_eq!(form["team_id"], fake.team_id());
    assert_eq!(form["trigger_word"], "");
    let answer = fake
        .wait_for_message("bridge", |m| m.text == "pong", WAIT)
        .await;
    assert_eq!(answer.subtype.as_deref(), Some("bot_message"));
    assert_ne!(answer.bot_id, Some(fake.bot_id()));
    assert_eq!(fake.outgoing_webhook_results(), [200]);
}
