//! The floor of the Mattermost webhook relay benchmark: what relaying costs on this
//! machine without the core. The daemon's own HTTP server and the Mattermost adapter
//! on both sides, but each accepted post goes straight to the outgoing adapter's
//! `send` (one at a time per channel, so in order like the daemon), and is answered
//! after the sink took it: no store, no commit, no queue, no routing table.
//!
//! It is not a bridge (a crash loses whatever is in flight), only a yardstick: the
//! daemon's throughput as a share of the floor's, measured in the same run, says how
//! much the core costs, whatever the machine's speed and noise that day.

use async_trait::async_trait;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use switchboard::health::HealthRegistry;
use switchboard::http::{HttpState, serve};
use switchboard_sdk::adapter::InboundHandler;
use switchboard_sdk::testing::MemoryState;
use switchboard_sdk::{
    Adapter, AdapterContext, EventKind, HealthReporter, Inbound, MessageStyle, NetworkId, Origin,
    Outbound, OutboundKind, RoomId, SubmitError, SubmitOutcome,
};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

/// Sends every inbound post on to the same channel of the other network, one at a
/// time per channel, and returns once it was sent.
struct DirectRelay {
    to: Arc<dyn Adapter>,
    turns: HashMap<RoomId, tokio::sync::Mutex<()>>,
    next_delivery_id: AtomicI64,
}

#[async_trait]
impl InboundHandler for DirectRelay {
    async fn submit(&self, event: Inbound) -> Result<SubmitOutcome, SubmitError> {
        let Some(turn) = self.turns.get(&event.room.room) else {
            return Ok(SubmitOutcome::Ignored);
        };
        let style = match event.kind {
            EventKind::Action => MessageStyle::Action,
            _ => MessageStyle::Normal,
        };
        let outbound = Outbound {
            room: event.room.room.clone(),
            delivery_id: self.next_delivery_id.fetch_add(1, Ordering::Relaxed),
            delivery_key: String::new(),
            sender_name: event.sender.display_name,
            sender_avatar: event.sender.avatar_url,
            sender_label: String::new(),
            per_message_sender: false,
            origin: Origin::default(),
            kind: OutboundKind::Message {
                style,
                content: event.content,
                reply_to: None,
                thread: None,
                attachments: Vec::new(),
            },
            parts: Vec::new(),
        };
        // The text work the core's delivery policy does (render, split, guard).
        let outbound = switchboard_sdk::testing::planned(&*self.to, outbound);
        let _turn = turn.lock().await;
        self.to
            .send(&outbound)
            .await
            .map(|_| SubmitOutcome::Accepted { destinations: 1 })
            .map_err(|error| SubmitError::Storage(format!("not relayed: {error:?}")))
    }
}

/// Runs the floor relay from `from` (`mm-a`) to `to` (`mm-b`) for `routes` channels:
/// prints `ready HTTP_ADDRESS RSS_KB` and serves until stdin says `stop` or closes.
pub async fn run(routes: u64, from: Arc<dyn Adapter>, to: Arc<dyn Adapter>, rss_before_kb: u64) {
    let connector = from
        .connector()
        .expect("the Mattermost adapter has a connector");
    let rooms: Vec<RoomId> = (0..routes)
        .map(|i| connector.canonical_room(&format!("chan-{i}")))
        .collect();
    let relay = DirectRelay {
        to,
        turns: rooms
            .iter()
            .map(|room| (room.clone(), tokio::sync::Mutex::new(())))
            .collect(),
        next_delivery_id: AtomicI64::new(1),
    };
    let network = NetworkId::new("mm-a");
    let ctx = AdapterContext {
        network: network.clone(),
        rooms: switchboard_sdk::RoomSet::fixed(rooms),
        inbound: Arc::new(relay),
        health: HealthReporter::discard(),
        state: Arc::new(MemoryState::default()),
        data_dir: std::env::temp_dir(),
    };
    let health = Arc::new(HealthRegistry::default());
    health.set(&network, switchboard_sdk::ConnectionState::Connected);
    let state = HttpState {
        admin: Default::default(),
        config: switchboard::reload::initial_status(),
        health,
        metrics: switchboard::metrics::install(),
        webhooks: [(network, (from, ctx))].into_iter().collect(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(serve(listener, state, cancel.clone()));
    println!("ready {address} {rss_before_kb}");
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    cancel.cancel();
    let _ = server.await;
}
