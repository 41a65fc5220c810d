//! The Slack adapter against `emulate` 0.11.2, the third-party Slack Web API emulator
//! (npm; installed by `scripts/ensure-emulate`): what it covers of the bridge's work
//! (docs/testing-slack.md): joining channels, posting under the sender's name, in a
//! thread, editing, deleting, and catching up with `conversations.history` on what was
//! posted while the adapter was down. Events pushed by Slack (Events API, Socket Mode)
//! are not in emulate: those tests run against testkit's fake.

use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::testing::{
    MemoryState, RecordingSink, message_from_alice, planned, wait_connected,
};
use switchboard_sdk::{
    Adapter, AdapterContext, ConnectionState, EventKind, HealthReporter, NetworkId, OutboundKind,
    RichText, RoomId, RoomSet, StateHandle,
};
use switchboard_slack::{SlackAdapter, SlackConfig};
use switchboard_testkit::slack_emulate::SlackEmulator;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn adapter(emulator: &SlackEmulator) -> Arc<SlackAdapter> {
    let config: SlackConfig = serde_json::from_value(serde_json::json!({
        "api_url": emulator.api_url(),
        "bot_token": emulator.bot_token(),
        // Events API mode: nothing is pushed by emulate, the run only resolves rooms.
        "signing_secret": "unused",
    }))
    .unwrap();
    SlackAdapter::new(config).unwrap()
}

/// One run of the adapter with `state`, as the daemon would start it.
struct Run {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), switchboard_sdk::AdapterError>>,
    inbound: mpsc::UnboundedReceiver<switchboard_sdk::Inbound>,
}

async fn run(adapter: &Arc<SlackAdapter>, state: StateHandle, rooms: &[&str]) -> Run {
    let (sink, inbound) = RecordingSink::new();
    let (health_tx, mut health) = mpsc::unbounded_channel();
    let ctx = AdapterContext {
        network: NetworkId::new("slack"),
        rooms: RoomSet::fixed(rooms.iter().map(|room| RoomId::new(*room))),
        inbound: sink,
        health: HealthReporter::new(move |state: ConnectionState| {
            let _ = health_tx.send(state);
        }),
        state,
        data_dir: std::env::temp_dir(),
    };
    let cancel = CancellationToken::new();
    let task = {
        let (adapter, cancel) = (adapter.clone(), cancel.clone());
        tokio::spawn(async move { adapter.run(ctx, cancel).await })
    };
    wait_connected(&mut health, WAIT).await;
    Run {
        cancel,
        task,
        inbound,
    }
}

impl Run {
    async fn stop(self) -> mpsc::UnboundedReceiver<switchboard_sdk::Inbound> {
        self.cancel.cancel();
        let ended = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("run() did not return after cancel");
        ended.unwrap().expect("run() failed");
        self.inbound
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_threads_edits_and_deletes_through_the_web_api() {
    let emulator = SlackEmulator::start().await;
    let adapter = adapter(&emulator);
    let running = run(&adapter, MemoryState::new(), &["general"]).await;

    let mut hello = message_from_alice("general", "hello *from* <irc> & more");
    hello.sender_avatar = Some("https://example.org/alice.png".into());
    let receipt = adapter
        .send(&planned(&*adapter, hello))
        .await
        .expect("chat.postMessage");
    let ts = receipt.native_ids[0].clone();
    let posted = emulator
        .wait_for_message("general", "the relayed message", |m| m["ts"] == ts.as_str())
        .await;
    // Literal markers and brackets arrive as text: entities, and invisible breaks
    // where a marker would otherwise format.
    let visible: String = posted["text"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .filter(|c| !matches!(c, '\u{200B}' | '\u{2060}'))
        .collect();
    assert_eq!(visible, "hello *from* &lt;irc&gt; &amp; more");
    assert_eq!(
        posted["username"], "alice",
        "the name goes into username: {posted}"
    );
    assert_eq!(posted["icon_url"], "https://example.org/alice.png");

    let mut reply = message_from_alice("general", "in the thread");
    if let OutboundKind::Message { thread, .. } = &mut reply.kind {
        *thread = Some(ts.clone());
    }
    let reply_ts = adapter
        .send(&planned(&*adapter, reply))
        .await
        .expect("a thread reply")
        .native_ids[0]
        .clone();
    let replied = emulator
        .wait_for_message("general", "the reply", |m| m["ts"] == reply_ts.as_str())
        .await;
    assert_eq!(replied["thread_ts"], ts.as_str());

    let mut edit = message_from_alice("general", "");
    edit.kind = OutboundKind::Edit {
        targets: vec![ts.clone()],
        content: RichText::plain("edited text"),
    };
    adapter
        .send(&planned(&*adapter, edit))
        .await
        .expect("chat.update");
    emulator
        .wait_for_message("general", "the edit", |m| {
            m["ts"] == ts.as_str() && m["text"] == "edited text"
        })
        .await;

    let mut delete = message_from_alice("general", "");
    delete.kind = OutboundKind::Delete {
        targets: vec![reply_ts.clone()],
    };
    adapter
        .send(&planned(&*adapter, delete))
        .await
        .expect("chat.delete");
    let deadline = tokio::time::Instant::now() + WAIT;
    while emulator
        .messages("general")
        .await
        .iter()
        .any(|m| m["ts"] == reply_ts.as_str())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reply was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_up_once_and_in_order_on_what_was_posted_while_down() {
    let emulator = SlackEmulator::start().await;
    let adapter = adapter(&emulator);
    let state: StateHandle = MemoryState::new();
    emulator
        .post_as("alice", "general", "before the bridge: not replayed")
        .await;

    let first = run(&adapter, state.clone(), &["general"]).await;
    let mut seen = first.stop().await;
    assert!(
        seen.try_recv().is_err(),
        "history from before the first run was replayed"
    );

    for text in ["while down 1", "while down 2", "while down 3"] {
        emulator.post_as("bob", "general", text).await;
    }
    // The bridge's own message (by its bot user) is never relayed back.
    let own = planned(&*adapter, message_from_alice("general", "own message"));
    let running = run(&adapter, state.clone(), &["general"]).await;
    adapter.send(&own).await.expect("posted");
    let mut inbound = running.stop().await;
    let mut texts = Vec::new();
    while let Ok(event) = inbound.try_recv() {
        assert_eq!(event.kind, EventKind::Message);
        texts.push(event.content.to_plain());
    }
    assert_eq!(texts, ["while down 1", "while down 2", "while down 3"]);

    // A third run finds nothing new: each message was relayed once.
    let third = run(&adapter, state, &["general"]).await;
    let mut again = third.stop().await;
    assert!(again.try_recv().is_err(), "caught up twice");
}
