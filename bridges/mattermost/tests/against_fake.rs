//! The Mattermost adapter against the fake server from testkit: the sdk conformance
//! suite; login and refused credentials; how each API error is classed for the core
//! (retry or dead-letter); thread replies, multi-part edits and file uploads on the
//! way out; edits, deletes, replies, `/me` and the bridge's own posts on the way in.

use std::sync::Arc;
use std::time::Duration;
use switchboard_mattermost::MattermostAdapter;
use switchboard_mattermost::config::{LoginConfig, MattermostConfig};
use switchboard_sdk::testing::{
    ConformanceHarness, message_from_alice, planned, run_conformance, spawn_adapter, wait_connected,
};
use switchboard_sdk::{
    Adapter, AdapterError, Attachment, EventKind, Inbound, NativeMsgId, NetworkId, Outbound,
    OutboundKind, RichText, RoomId, SendError,
};
use tokio::sync::mpsc::UnboundedReceiver;

mod common;

use common::{Server, config, next_event, server};

const WAIT: Duration = Duration::from_secs(20);

/// Alice's `text` with the parts the core would plan for `adapter`'s channel.
fn message(adapter: &dyn Adapter, text: &str) -> Outbound {
    planned(adapter, message_from_alice("town-square", text))
}

struct Harness {
    server: Server,
    adapter: Arc<MattermostAdapter>,
}

#[async_trait::async_trait]
impl ConformanceHarness for Harness {
    type Adapter = MattermostAdapter;
    fn adapter(&self) -> Arc<MattermostAdapter> {
        self.adapter.clone()
    }
    fn network(&self) -> NetworkId {
        NetworkId::new("mm")
    }
    fn room(&self) -> RoomId {
        RoomId::new("town-square")
    }
    async fn peer_say(&mut self, text: &str) {
        self.server
            .mm
            .post_as(&self.server.bob, &self.server.town, text, None);
    }
    async fn peer_saw(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self
                .server
                .mm
                .posts(&self.server.town)
                .iter()
                .any(|post| post.user_id == self.server.bot && post.message.contains(needle));
            if seen || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_the_fake_server() {
    let server = server().await;
    let adapter = MattermostAdapter::new(config(&server.mm.url(), &server.bot_token)).unwrap();
    let mut harness = Harness { server, adapter };
    run_conformance(&mut harness).await;
    // Edits and deletes really happened on the server.
    let log = harness.server.mm.request_log();
    assert!(log.iter().any(|(method, path, status)| method == "PUT"
        && path.ends_with("/patch")
        && *status == 200));
    assert!(log.iter().any(|(method, path, status)| method == "DELETE"
        && path.starts_with("/api/v4/posts/")
        && *status == 200));
}

/// Runs the adapter on town-square until connected; returns its inbound events.
async fn running(
    adapter: &Arc<MattermostAdapter>,
) -> (
    UnboundedReceiver<Inbound>,
    tokio_util::sync::CancellationToken,
) {
    let mut run = spawn_adapter(
        adapter.clone(),
        NetworkId::new("mm"),
        vec![RoomId::new("town-square")],
    );
    wait_connected(&mut run.health, WAIT).await;
    (run.inbound, run.cancel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_login_works_and_a_bad_token_is_an_auth_failure() {
    let server = server().await;
    server.mm.set_password(&server.bot, "hunter22");
    let mut login = config(&server.mm.url(), "");
    login.token = None;
    login.login = Some(LoginConfig {
        username: "bridge".into(),
        password: "hunter22".into(),
    });
    let adapter = MattermostAdapter::new(login).unwrap();
    let (_inbound, cancel) = running(&adapter).await;
    let receipt = adapter
        .send(&message(&*adapter, "after login"))
        .await
        .unwrap();
    assert_eq!(receipt.native_ids.len(), 1);
    cancel.cancel();

    let refused = MattermostAdapter::new(config(&server.mm.url(), "not-a-token")).unwrap();
    let run = spawn_adapter(
        refused,
        NetworkId::new("mm"),
        vec![RoomId::new("town-square")],
    );
    let result = tokio::time::timeout(WAIT, run.task)
        .await
        .expect("run ends")
        .unwrap();
    assert!(matches!(result, Err(AdapterError::Auth(_))), "{result:?}");
}

/// Makes the server fail every request with each status in turn and checks that the
/// adapter's send fails retryably or not as given, naming the status. Returns the
/// error texts.
async fn failures_are_classed(
    server: &Server,
    adapter: &dyn Adapter,
    statuses: &[(u16, bool)],
) -> Vec<String> {
    let mut errors = Vec::new();
    for &(status, transient) in statuses {
        server.mm.fail_rest(Some(status));
        let error = adapter
            .send(&message(adapter, "x"))
            .await
            .expect_err("the server fails");
        assert_eq!(error.is_retryable(), transient, "HTTP {status}: {error}");
        assert!(error.to_string().contains(&status.to_string()), "{error}");
        errors.push(error.to_string());
    }
    server.mm.fail_rest(None);
    errors
}

/// Sends quickly under a rate limit of one request per second until one is refused.
async fn rate_limited(server: &Server, adapter: &dyn Adapter) -> SendError {
    server.mm.rate_limit(Some(1));
    let mut limited = None;
    for _ in 0..5 {
        if let Err(error) = adapter.send(&message(adapter, "fast")).await {
            limited = Some(error);
            break;
        }
    }
    server.mm.rate_limit(None);
    limited.expect("the rate limit was never hit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_retried_or_dead_lettered_as_they_deserve() {
    let server = server().await;
    let adapter = MattermostAdapter::new(config(&server.mm.url(), &server.bot_token)).unwrap();
    let (_inbound, _cancel) = running(&adapter).await;
    let statuses = [
        (500, true),
        (503, true),
        (429, true),
        (401, true),
        (400, false),
        (403, false),
        (404, false),
        (413, false),
    ];
    for error in failures_are_classed(&server, &*adapter, &statuses).await {
        assert!(!error.contains(&server.bot_token), "token in {error}");
    }
    // A real rate limit: the adapter's sends are refused with 429 and retryable.
    let limited = rate_limited(&server, &*adapter).await;
    // The server's Retry-After is kept, so the core waits at least that long.
    assert!(
        matches!(&limited, SendError::RateLimited { retry_after, reason } if !retry_after.is_zero() && reason.contains("429")),
        "{limited}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_replies_multi_part_edits_and_uploads_on_the_way_out() {
    let server = server().await;
    let adapter = MattermostAdapter::new(config(&server.mm.url(), &server.bot_token)).unwrap();
    let (_inbound, _cancel) = running(&adapter).await;

    let root = server
        .mm
        .post_as(&server.bob, &server.town, "a question", None);
    let mut reply = message(&*adapter, "an answer");
    if let OutboundKind::Message { thread, .. } = &mut reply.kind {
        *thread = Some(NativeMsgId::new(root.id.clone()));
    }
    let receipt = adapter.send(&reply).await.unwrap();
    let answer = server.mm.post(receipt.native_ids[0].as_str()).unwrap();
    assert_eq!(answer.root_id, root.id);
    assert_eq!(answer.props["override_username"], "alice");

    // A message too long for one post becomes several; an edit keeps the first.
    let long = "word ".repeat(7_000);
    let parts = adapter
        .send(&message(&*adapter, &long))
        .await
        .unwrap()
        .native_ids;
    assert!(parts.len() >= 2, "{parts:?}");
    let mut edit = message(&*adapter, "short now");
    edit.kind = OutboundKind::Edit {
        targets: parts.clone(),
        content: RichText::plain("short now"),
    };
    adapter.send(&edit).await.unwrap();
    assert_eq!(
        server.mm.post(parts[0].as_str()).unwrap().message,
        "short now"
    );
    assert!(parts[1..].iter().all(|part| {
        server
            .mm
            .post(part.as_str())
            .is_none_or(|p| p.delete_at > 0)
    }));

    // Files from elsewhere are uploaded; one over max_upload_bytes stays a link.
    let files = FileServer::start(vec![
        ("/small.txt", b"small file".to_vec()),
        ("/big.bin", vec![7u8; 4096]),
    ])
    .await;
    let mut with_files = message(&*adapter, "files");
    if let OutboundKind::Message { attachments, .. } = &mut with_files.kind {
        attachments.push(Attachment {
            name: "small.txt".into(),
            mime_type: Some("text/plain".into()),
            size: None,
            url: files.url("/small.txt"),
        });
        attachments.push(Attachment {
            name: "big.bin".into(),
            mime_type: None,
            size: None,
            url: files.url("/big.bin"),
        });
    }
    let receipt = adapter.send(&with_files).await.unwrap();
    let post = server.mm.post(receipt.native_ids[0].as_str()).unwrap();
    assert_eq!(post.file_ids.len(), 1, "{post:?}");
    assert!(post.message.contains(&files.url("/big.bin")), "{post:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletes_replies_actions_and_own_posts_on_the_way_in() {
    let server = server().await;
    let adapter = MattermostAdapter::new(config(&server.mm.url(), &server.bot_token)).unwrap();
    let (mut inbound, _cancel) = running(&adapter).await;

    let root = server
        .mm
        .post_as(&server.bob, &server.town, "root **post**", None);
    let event = next_event(&mut inbound, "the root post").await;
    assert_eq!(event.kind, EventKind::Message);
    assert_eq!(event.native_id, Some(NativeMsgId::new(root.id.clone())));
    assert_eq!(event.sender.display_name, "bob");
    assert!(!event.sender.is_self);
    assert!(
        event
            .sender
            .avatar_url
            .as_deref()
            .is_some_and(|url| url.ends_with("/image"))
    );
    assert_eq!(event.content.to_plain(), "root post");

    server
        .mm
        .post_as(&server.bob, &server.town, "in the thread", Some(&root.id));
    let event = next_event(&mut inbound, "the reply").await;
    assert_eq!(
        event.reply_to,
        Some(NativeMsgId::new(root.id.clone())),
        "{event:?}"
    );
    assert_eq!(event.thread, Some(NativeMsgId::new(root.id.clone())));

    server.mm.edit_as(&root.id, "root edited");
    let event = next_event(&mut inbound, "the edit").await;
    assert_eq!(
        event.kind,
        EventKind::Edit {
            target: NativeMsgId::new(root.id.clone())
        }
    );
    assert_eq!(event.content.to_plain(), "root edited");

    // `/me` posts have their own type.
    let tls = switchboard_sdk::tls::client_config("test", false).unwrap();
    let created = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
        .post(format!("{}/api/v4/posts", server.mm.url()))
        .bearer_auth(&server.bob_token)
        .json(&serde_json::json!({ "channel_id": server.town, "message": "waves", "type": "me" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let event = next_event(&mut inbound, "the /me post").await;
    assert_eq!(event.kind, EventKind::Action);
    assert_eq!(event.content.to_plain(), "waves");

    // What the bridge itself posts comes back marked as its own.
    adapter
        .send(&message(&*adapter, "from the bridge"))
        .await
        .unwrap();
    let event = next_event(&mut inbound, "the bridge's own post").await;
    assert!(event.sender.is_self, "{event:?}");

    server.mm.delete_post(&root.id);
    let mut event = next_event(&mut inbound, "the delete").await;
    // Deleting a root deletes its replies too; find the root's.
    while event.kind
        != (EventKind::Delete {
            target: NativeMsgId::new(root.id.clone()),
        })
    {
        event = next_event(&mut inbound, "the root's delete").await;
    }
}

/// Serves fixed bodies over plain HTTP on loopback (stands in for another network's
/// file host).
struct FileServer {
    address: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    async fn start(files: Vec<(&'static str, Vec<u8>)>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let files = Arc::new(files);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let files = files.clone();
                tokio::spawn(async move {
                    let mut request = vec![0u8; 4096];
                    let read = stream.read(&mut request).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&request[..read]).into_owned();
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let response = match files.iter().find(|(p, _)| *p == path) {
                        Some((_, body)) => {
                            let mut response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
                            response.extend_from_slice(body);
                            response
                        }
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = stream.write_all(&response).await;
                });
            }
        });
        Self { address, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_websocket_seq_is_filled_from_the_rest_api_in_order() {
    let server = server().await;
    let adapter = MattermostAdapter::new(config(&server.mm.url(), &server.bot_token)).unwrap();
    let (mut inbound, _cancel) = running(&adapter).await;
    server
        .mm
        .post_as(&server.bob, &server.town, "before the gap", None);
    let first = next_event(&mut inbound, "the first post").await;
    assert_eq!(first.content.to_plain(), "before the gap");

    server.mm.lose_websocket_events(2);
    let lost = ["lost one", "lost two"]
        .map(|text| server.mm.post_as(&server.bob, &server.town, text, None));
    server
        .mm
        .post_as(&server.bob, &server.town, "after the gap", None);
    // The catch-up reads from one millisecond before its cursor, so the post before
    // the gap may come again: the core drops it by its id, as this loop does.
    let mut seen = std::collections::HashSet::from([first.native_id.clone()]);
    let mut texts = Vec::new();
    let mut ids = Vec::new();
    while texts.len() < 3 {
        let event = next_event(&mut inbound, "the posts around the gap").await;
        if seen.insert(event.native_id.clone()) {
            texts.push(event.content.to_plain());
            ids.push(event.native_id.clone());
        }
    }
    assert_eq!(texts, ["lost one", "lost two", "after the gap"]);
    assert_eq!(ids[0], Some(NativeMsgId::new(lost[0].id.clone())));
    // The post whose event revealed the gap was relayed by the catch-up: not again.
    server.mm.post_as(&server.bob, &server.town, "next", None);
    assert_eq!(
        next_event(&mut inbound, "the next post")
            .await
            .content
            .to_plain(),
        "next",
        "a post was relayed twice"
    );
}

/// Webhook mode, posting to `incoming_url`.
fn webhook_config(url: &str, incoming_url: &str) -> MattermostConfig {
    MattermostConfig {
        token: None,
        webhooks: Some(switchboard_mattermost::config::WebhookConfig {
            incoming_url: incoming_url.to_owned(),
            outgoing_token: "outgoing-secret".into(),
            username: "switchboard".into(),
        }),
        ..config(url, "unused")
    }
}

/// Webhook mode sends through the incoming webhook: the post lands in the channel
/// under the remote sender's name, and every failure is classed like a REST one,
/// without the webhook's URL (its path is the secret) in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_webhook_posts_and_classes_its_errors() {
    let server = server().await;
    let incoming = server.mm.add_incoming_webhook(&server.town);
    let hook_id = incoming.rsplit('/').next().unwrap().to_owned();
    let adapter = MattermostAdapter::new(webhook_config(&server.mm.url(), &incoming)).unwrap();

    let receipt = adapter
        .send(&message(&*adapter, "through the hook"))
        .await
        .unwrap();
    assert!(
        receipt.native_ids.is_empty(),
        "a webhook returns no post ids"
    );
    let posted = server
        .mm
        .posts(&server.town)
        .into_iter()
        .find(|post| post.message == "through the hook")
        .expect("the post is in the channel");
    assert_eq!(posted.prop("override_username"), Some("alice"));

    let statuses = [(500, true), (503, true), (400, false), (404, false)];
    for error in failures_are_classed(&server, &*adapter, &statuses).await {
        assert!(!error.contains(&hook_id), "secret in {error}");
    }
    let limited = rate_limited(&server, &*adapter).await;
    assert!(
        matches!(&limited, SendError::RateLimited { retry_after, .. } if !retry_after.is_zero()),
        "{limited}"
    );

    // An unreachable webhook is a transient failure that does not name the URL.
    let unreachable = format!("http://127.0.0.1:1/hooks/{hook_id}");
    let adapter = MattermostAdapter::new(webhook_config(&server.mm.url(), &unreachable)).unwrap();
    let error = adapter
        .send(&message(&*adapter, "x"))
        .await
        .expect_err("nobody listens");
    assert!(error.is_retryable(), "{error}");
    assert!(!error.to_string().contains(&hook_id), "secret in {error}");
}
