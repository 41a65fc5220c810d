//! What the catch-up and misbehaving-server tests share: a fake server with a bot and
//! a user, and an adapter run that can be stopped and started again on the same
//! adapter state, as the daemon's supervisor does after a drop or a restart.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use switchboard_mattermost::MattermostAdapter;
use switchboard_mattermost::config::MattermostConfig;
use switchboard_sdk::testing::{MemoryState, RecordingSink};
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, ConnectionState, HealthReporter, Inbound, NativeMsgId,
    NetworkId, RoomId, RoomReport,
};
use switchboard_testkit::mattermost::FakeMattermost;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(30);

/// The next event that is not a membership change (joins show up as system posts).
pub async fn next_event(inbound: &mut UnboundedReceiver<Inbound>, what: &str) -> Inbound {
    switchboard_sdk::testing::next_inbound(inbound, what, WAIT, |event| !event.kind.is_membership())
        .await
}

pub struct Server {
    pub mm: FakeMattermost,
    pub team: String,
    pub town: String,
    pub bot: String,
    pub bot_token: String,
    pub bob: String,
    pub bob_token: String,
}

pub async fn server() -> Server {
    let mm = FakeMattermost::start().await;
    mm.set_allow_name_override(true);
    let team = mm.add_team("core");
    let town = mm.add_channel(&team, "town-square");
    let (bot, bot_token) = mm.add_user("bridge", true);
    let (bob, bob_token) = mm.add_user("bob", false);
    Server {
        mm,
        team,
        town,
        bot,
        bot_token,
        bob,
        bob_token,
    }
}

pub fn config(url: &str, token: &str) -> MattermostConfig {
    MattermostConfig {
        server: url.to_owned(),
        team: "core".into(),
        token: Some(token.to_owned()),
        login: None,
        webhooks: None,
        override_names: true,
        catch_up_max_age_secs: 3600,
        accept_invalid_certs: false,
        max_upload_bytes: 1024,
    }
}

/// An adapter on `rooms` whose runs share one state and one inbound queue.
pub struct Bridge {
    pub adapter: Arc<MattermostAdapter>,
    pub ctx: AdapterContext,
    pub inbound: UnboundedReceiver<Inbound>,
    health: UnboundedReceiver<ConnectionState>,
    /// What every run reported about its rooms, in order.
    pub rooms: UnboundedReceiver<(RoomId, RoomReport)>,
    run: Option<(
        tokio::task::JoinHandle<Result<(), AdapterError>>,
        CancellationToken,
    )>,
    /// Native ids already returned by `distinct`: catch-up may submit a post again
    /// (it reads from a millisecond before its cursor), which the core would drop.
    seen: HashSet<Option<NativeMsgId>>,
    /// The ids `distinct` saw again, in order.
    pub again: Vec<Option<NativeMsgId>>,
}

impl Bridge {
    pub fn new(config: MattermostConfig, rooms: &[&str]) -> Self {
        Self::on_network("mm", config, rooms)
    }

    /// As `new`, on a network of this name (metrics are counted by network).
    pub fn on_network(network: &str, config: MattermostConfig, rooms: &[&str]) -> Self {
        let (sink, inbound) = RecordingSink::new();
        let (health_tx, health) = unbounded_channel();
        let (rooms_tx, room_reports) = unbounded_channel();
        let ctx = AdapterContext {
            network: NetworkId::new(network),
            rooms: switchboard_sdk::RoomSet::fixed(rooms.iter().map(|room| RoomId::new(*room))),
            inbound: sink,
            health: HealthReporter::new(move |state| {
                let _ = health_tx.send(state);
            })
            .with_rooms(move |room, report| {
                let _ = rooms_tx.send((room.clone(), report));
            }),
            state: MemoryState::new(),
            data_dir: std::env::temp_dir(),
        };
        Self {
            adapter: MattermostAdapter::new(config).unwrap(),
            ctx,
            inbound,
            health,
            rooms: room_reports,
            run: None,
            seen: HashSet::new(),
            again: Vec::new(),
        }
    }

    /// Starts a run and waits until it is connected (catch-up done).
    pub async fn start(&mut self) {
        let cancel = CancellationToken::new();
        let task = {
            let (adapter, ctx, cancel) = (self.adapter.clone(), self.ctx.clone(), cancel.clone());
            tokio::spawn(async move { adapter.run(ctx, cancel).await })
        };
        self.run = Some((task, cancel));
        let connected = tokio::time::timeout(WAIT, async {
            while let Some(state) = self.health.recv().await {
                if state == ConnectionState::Connected {
                    return;
                }
            }
        })
        .await;
        assert!(
            connected.is_ok(),
            "the adapter did not connect within {WAIT:?}"
        );
    }

    /// Runs once and returns how the run ended (it must end by itself).
    pub async fn run_to_end(&mut self) -> Result<(), AdapterError> {
        let (adapter, ctx) = (self.adapter.clone(), self.ctx.clone());
        tokio::time::timeout(WAIT, adapter.run(ctx, CancellationToken::new()))
            .await
            .expect("the run did not end")
    }

    /// Stops the run as a daemon shutdown does.
    pub async fn stop(&mut self) {
        if let Some((task, cancel)) = self.run.take() {
            cancel.cancel();
            let _ = tokio::time::timeout(WAIT, task)
                .await
                .expect("the run did not stop");
        }
    }

    /// Waits until the run ends by itself (e.g. its websocket dropped).
    pub async fn ended(&mut self) -> Result<(), AdapterError> {
        let (task, _) = self.run.take().expect("a run");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the run did not end")
            .expect("the run panicked")
    }

    /// The next `count` events not seen before (membership changes skipped).
    pub async fn distinct(&mut self, count: usize, what: &str) -> Vec<Inbound> {
        let mut got = Vec::new();
        while got.len() < count {
            let event = tokio::time::timeout(WAIT, self.inbound.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("{what}: {} of {count} events within {WAIT:?}", got.len())
                })
                .expect("inbound sink open");
            if event.kind.is_membership() {
                continue;
            }
            if !self.seen.insert(event.native_id.clone()) {
                self.again.push(event.native_id.clone());
                continue;
            }
            got.push(event);
        }
        got
    }

    /// Events already queued that were not seen before (membership changes skipped).
    pub fn queued_new(&mut self) -> Vec<Inbound> {
        let mut got = Vec::new();
        while let Ok(event) = self.inbound.try_recv() {
            if !event.kind.is_membership() && self.seen.insert(event.native_id.clone()) {
                got.push(event);
            }
        }
        got
    }
}
