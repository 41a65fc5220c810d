//! The sdk's conformance suite for the Discord adapter, against testkit's fake Discord.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use switchboard_discord::{DiscordAdapter, DiscordConfig};
use switchboard_sdk::testing::{ConformanceHarness, run_conformance};
use switchboard_sdk::{NetworkId, RoomId};
use switchboard_testkit::discord::FakeDiscord;

struct Harness {
    fake: FakeDiscord,
    adapter: Arc<DiscordAdapter>,
    peer: String,
}

#[async_trait]
impl ConformanceHarness for Harness {
    type Adapter = DiscordAdapter;
    fn adapter(&self) -> Arc<DiscordAdapter> {
        self.adapter.clone()
    }
    fn network(&self) -> NetworkId {
        NetworkId::new("discord")
    }
    fn room(&self) -> RoomId {
        RoomId::new("general")
    }
    async fn peer_say(&mut self, text: &str) {
        self.fake.post("general", &self.peer, text);
    }
    async fn peer_saw(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self
                .fake
                .messages("general")
                .iter()
                .any(|m| m.content.contains(needle) && !m.deleted)
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
async fn passes_the_conformance_suite() {
    let fake = FakeDiscord::start().await;
    let guild = fake.add_guild("Test Server");
    fake.add_channel(&guild, "general", None);
    fake.add_bot("bridge", "bridge.bot.token");
    let peer = fake.add_user("bob", Some("Bob"), None);
    let config: DiscordConfig = serde_json::from_value(serde_json::json!({
        "token": "bridge.bot.token",
        "guild": "Test Server",
        "api_url": fake.url(),
        "gateway_url": fake.gateway_url(),
    }))
    .unwrap();
    let adapter = DiscordAdapter::new(config).unwrap();
    run_conformance(&mut Harness {
        fake,
        adapter,
        peer,
    })
    .await;
}
