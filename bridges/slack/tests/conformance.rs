//! The sdk's conformance suite for the Slack adapter in Socket Mode, against
//! testkit's fake Slack. (The Events API, which needs the daemon's HTTP server, runs
//! end to end in the workspace's `tests/slack_bridge.rs`.)

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::testing::{ConformanceHarness, run_conformance};
use switchboard_sdk::{NetworkId, RoomId};
use switchboard_slack::{SlackAdapter, SlackConfig};
use switchboard_testkit::slack::{FakeSlack, SlackOptions};

struct Harness {
    slack: FakeSlack,
    adapter: Arc<SlackAdapter>,
    peer: String,
}

#[async_trait]
impl ConformanceHarness for Harness {
    type Adapter = SlackAdapter;
    fn adapter(&self) -> Arc<SlackAdapter> {
        self.adapter.clone()
    }
    fn network(&self) -> NetworkId {
        NetworkId::new("slack")
    }
    fn room(&self) -> RoomId {
        RoomId::new("general")
    }
    async fn peer_say(&mut self, text: &str) {
        self.slack.post(&self.peer, "general", text).await;
    }
    async fn peer_saw(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self
                .slack
                .messages("general")
                .iter()
                .any(|m| m.text.contains(needle) && !m.deleted)
            {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_passes_the_conformance_suite() {
    let slack = FakeSlack::start(SlackOptions::default()).await;
    let peer = slack.add_user("bob", "bob");
    let config: SlackConfig = serde_json::from_value(serde_json::json!({
        "api_url": slack.api_url(),
        "bot_token": slack.bot_token(),
        "app_token": slack.app_token(),
    }))
    .unwrap();
    let adapter = SlackAdapter::new(config).unwrap();
    run_conformance(&mut Harness {
        slack,
        adapter,
        peer,
    })
    .await;
}
