//! Catch-up against testkit's fake Slack: hundreds of messages posted while the
//! adapter was down come back over several `conversations.history` pages, each once,
//! oldest first, with the thread replies among them in their place.

use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::testing::{MemoryState, RecordingSink, wait_connected};
use switchboard_sdk::{
    Adapter, AdapterContext, ConnectionState, HealthReporter, Inbound, NetworkId, RoomId, RoomSet,
    StateHandle,
};
use switchboard_slack::{SlackAdapter, SlackConfig};
use switchboard_testkit::slack::{FakeSlack, SlackOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// Runs the adapter with `state` until it is connected, then stops it; returns what
/// it submitted.
async fn run_once(adapter: &Arc<SlackAdapter>, state: StateHandle) -> Vec<Inbound> {
    let (sink, mut inbound) = RecordingSink::new();
    let (health_tx, mut health) = mpsc::unbounded_channel();
    let ctx = AdapterContext {
        network: NetworkId::new("slack"),
        rooms: RoomSet::fixed([RoomId::new("general")]),
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
    // Connected comes after the catch-up.
    wait_connected(&mut health, WAIT).await;
    cancel.cancel();
    let ended = tokio::time::timeout(WAIT, task)
        .await
        .expect("run() did not return after cancel");
    ended.unwrap().expect("run() failed");
    let mut events = Vec::new();
    while let Ok(event) = inbound.try_recv() {
        events.push(event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_missed_messages_come_back_over_pages_once_and_in_order() {
    let slack = FakeSlack::start(SlackOptions::default()).await;
    let bob = slack.add_user("bob", "bob");
    let config: SlackConfig = serde_json::from_value(serde_json::json!({
        "api_url": slack.api_url(),
        "bot_token": slack.bot_token(),
        "app_token": slack.app_token(),
    }))
    .unwrap();
    let adapter = SlackAdapter::new(config).unwrap();
    let state: StateHandle = MemoryState::new();
    slack.post_silently(&bob, "general", "before the bridge: not replayed");
    assert!(
        run_once(&adapter, state.clone()).await.is_empty(),
        "history replayed"
    );

    let mut expected = Vec::new();
    let mut parent = String::new();
    for i in 0..450 {
        let text = format!("missed {i}");
        let ts = slack.post_silently(&bob, "general", &text);
        if i == 100 {
            parent = ts;
        }
        expected.push(text);
        if i == 300 {
            slack.reply_silently(&bob, "general", &parent, "late reply to 100");
            expected.push("late reply to 100".into());
        }
    }
    let pages_before = slack.calls("conversations.history");
    let texts: Vec<String> = run_once(&adapter, state.clone())
        .await
        .iter()
        .map(|event| event.content.to_plain())
        .collect();
    assert_eq!(texts, expected);
    assert!(
        slack.calls("conversations.history") - pages_before >= 3,
        "450 messages at 200 a page take at least three pages"
    );
    assert!(
        run_once(&adapter, state).await.is_empty(),
        "caught up twice"
    );
}
