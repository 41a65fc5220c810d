//! Test support: a scriptable fake adapter and the conformance suite every adapter runs.
//!
//! The fake stands in for a network in router and store tests: it records what it was
//! asked to send, can be told to fail or to be slow, and injects inbound events as a
//! native user would. The conformance suite drives a real adapter against a real (or
//! faithfully faked) server through a small harness trait.

use crate::adapter::{
    Adapter, AdapterContext, AdapterState, Capabilities, ConnectionState, HealthReporter,
    InboundHandler, InboundSink, RoomReport, SubmitOutcome,
};
use crate::context::{RoomChanges, RoomSet, Rooms};
use crate::error::{AdapterError, SendError, SubmitError};
use crate::event::{Inbound, MessageStyle, Outbound, OutboundKind, SendReceipt, Sender};
use crate::final_text::{FinalText, present};
use crate::ids::{NativeMsgId, NetworkId, RoomId, RoomKey};
use crate::rich::RichText;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

mod conformance;
pub use conformance::{ConformanceHarness, STEPS as CONFORMANCE_STEPS, run_conformance};

/// A plain message from `alice` (label `<alice> `, delivery 1) to `room`: the delivery
/// most adapter tests send, its one part in plain text (`<alice> text`); see
/// [`planned`] for the parts a particular network gets.
pub fn message_from_alice(room: &str, text: &str) -> Outbound {
    Outbound {
        room: RoomId::new(room),
        delivery_id: 1,
        delivery_key: "d1".into(),
        sender_name: "alice".into(),
        sender_avatar: None,
        sender_label: "<alice> ".into(),
        per_message_sender: false,
        origin: Default::default(),
        kind: OutboundKind::Message {
            style: MessageStyle::Normal,
            content: RichText::plain(text),
            reply_to: None,
            thread: None,
            attachments: Vec::new(),
        },
        parts: vec![FinalText::plain(format!("<alice> {text}"))],
    }
}

/// `message` with its parts as the core's delivery policy makes them for `adapter`'s
/// room (label in the text or the network's own sender name, split, guarded), for
/// adapter tests that run without the core.
pub fn planned<A: Adapter + ?Sized>(adapter: &A, message: Outbound) -> Outbound {
    let capabilities = adapter.room_capabilities(&message.room);
    planned_with(&capabilities, message)
}

/// [`planned`] for a room with `capabilities`.
pub fn planned_with(capabilities: &Capabilities, message: Outbound) -> Outbound {
    present(message, capabilities).unwrap_or_else(|refusal| panic!("planned: {refusal}"))
}

/// A scriptable in-memory network.
pub struct FakeAdapter {
    protocol: &'static str,
    capabilities: Capabilities,
    /// Rooms that differ from the network (`set_room_capabilities`).
    room_capabilities: Mutex<std::collections::HashMap<RoomId, Capabilities>>,
    state: Mutex<FakeState>,
    changed: Notify,
    next_id: AtomicU64,
}

/// How the fake's server answers a join of one room (see [`FakeAdapter::set_join`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeJoin {
    /// Joined (every room's default).
    Succeed,
    /// Refused with this error.
    Refuse(String),
    /// Never answered: the room is reported neither joined nor failed.
    NeverAnswer,
}

#[derive(Default)]
struct FakeState {
    sent: Vec<Outbound>,
    scripted_failures: VecDeque<SendError>,
    down: bool,
    send_delay: Option<Duration>,
    context: Option<AdapterContext>,
    runs: usize,
    joins: std::collections::HashMap<RoomId, FakeJoin>,
}

impl FakeAdapter {
    pub fn new(capabilities: Capabilities) -> Arc<Self> {
        Arc::new(Self {
            protocol: "fake",
            capabilities,
            room_capabilities: Mutex::new(std::collections::HashMap::new()),
            state: Mutex::new(FakeState::default()),
            changed: Notify::new(),
            next_id: AtomicU64::new(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// From now on `room` can do what `capabilities` say, not what the network can.
    pub fn set_room_capabilities(&self, room: &str, capabilities: Capabilities) {
        self.room_capabilities
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(RoomId::new(room), capabilities);
    }

    /// From the next join on (a run's start, or the room added to the set), joining
    /// `room` goes as `join` says.
    pub fn set_join(&self, room: &str, join: FakeJoin) {
        self.lock().joins.insert(RoomId::new(room), join);
    }

    /// Reports the joins of `rooms` as scripted.
    fn join(&self, ctx: &AdapterContext, rooms: &[RoomId]) {
        for room in rooms {
            let join = self.lock().joins.get(room).cloned();
            match join.unwrap_or(FakeJoin::Succeed) {
                FakeJoin::Succeed => ctx.health.joined(room),
                FakeJoin::Refuse(error) => ctx.health.join_failed(room, error),
                FakeJoin::NeverAnswer => {}
            }
        }
    }

    /// Everything successfully sent so far, in order.
    pub fn sent(&self) -> Vec<Outbound> {
        self.lock().sent.clone()
    }

    /// The next sends fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = SendError>) {
        self.lock().scripted_failures.extend(errors);
    }

    /// While down, every send fails transiently (as a disconnected network would).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Every send takes this long (a slow network).
    pub fn set_send_delay(&self, delay: Option<Duration>) {
        self.lock().send_delay = delay;
    }

    /// How many times `run` has been started.
    pub fn runs(&self) -> usize {
        self.lock().runs
    }

    /// Waits until at least `count` messages were sent; panics with a clear message
    /// after `timeout`.
    pub async fn wait_for_sent(&self, count: usize, timeout: Duration) -> Vec<Outbound> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            {
                let state = self.lock();
                if state.sent.len() >= count {
                    return state.sent.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.lock().sent.len();
                panic!(
                    "fake adapter: expected {count} sent messages within {timeout:?}, got {got}"
                );
            }
        }
    }

    /// The rooms the running fake serves now (`None` while it does not run).
    pub fn rooms(&self) -> Option<Rooms> {
        self.lock().context.as_ref().map(|ctx| ctx.rooms.current())
    }

    /// Waits until the running fake serves exactly `expected`; panics with what it
    /// has after `timeout`.
    pub async fn wait_for_rooms(&self, expected: &[&str], timeout: Duration) {
        let expected: std::collections::BTreeSet<RoomId> =
            expected.iter().map(|room| RoomId::new(*room)).collect();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let rooms = self.rooms();
            if rooms.as_deref() == Some(&expected) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "fake adapter: expected rooms {expected:?} within {timeout:?}, has {rooms:?}"
                );
            }
        }
    }

    /// Waits until `run` has been called and returns its context.
    pub async fn wait_running(&self, timeout: Duration) -> AdapterContext {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(ctx) = self.lock().context.clone() {
                return ctx;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("fake adapter: run() was not called within {timeout:?}");
            }
        }
    }

    /// A native user says `text` in `room`; returns how the core took it.
    pub async fn receive(
        &self,
        room: &str,
        nick: &str,
        native_id: &str,
        text: &str,
    ) -> Result<SubmitOutcome, SubmitError> {
        let ctx = self.wait_running(Duration::from_secs(10)).await;
        let event = Inbound::message(
            RoomKey::new(ctx.network.clone(), room),
            Sender::user(nick, nick),
            Some(NativeMsgId::new(native_id)),
            RichText::plain(text),
        );
        ctx.inbound.submit(event).await
    }

    /// Submits an arbitrary event through the running context.
    pub async fn submit(&self, event: Inbound) -> Result<SubmitOutcome, SubmitError> {
        let ctx = self.wait_running(Duration::from_secs(10)).await;
        ctx.inbound.submit(event).await
    }
}

#[async_trait]
impl Adapter for FakeAdapter {
    fn protocol(&self) -> &'static str {
        self.protocol
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    fn room_capabilities(&self, room: &RoomId) -> Capabilities {
        self.room_capabilities
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(room)
            .cloned()
            .unwrap_or_else(|| self.capabilities.clone())
    }

    async fn run(
        &self,
        ctx: AdapterContext,
        cancel: CancellationToken,
    ) -> Result<(), AdapterError> {
        ctx.health.report(ConnectionState::Connected);
        {
            let mut state = self.lock();
            state.context = Some(ctx.clone());
            state.runs += 1;
        }
        let mut served = ctx.rooms.current();
        self.join(&ctx, &served.iter().cloned().collect::<Vec<_>>());
        self.changed.notify_waiters();
        let mut rooms = ctx.rooms.clone();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                current = rooms.changed() => {
                    let changes = RoomChanges::between(&served, &current);
                    for room in &changes.removed {
                        ctx.health.left(room);
                    }
                    self.join(&ctx, &changes.added);
                    served = current;
                    self.changed.notify_waiters();
                }
            }
        }
        self.lock().context = None;
        self.changed.notify_waiters();
        ctx.health.report(ConnectionState::Stopped);
        Ok(())
    }

    async fn send(&self, message: &Outbound) -> Result<SendReceipt, SendError> {
        let delay = self.lock().send_delay;
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.lock();
        if state.context.is_none() || state.down {
            return Err(SendError::Transient("fake network is not connected".into()));
        }
        if let Some(error) = state.scripted_failures.pop_front() {
            return Err(error);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        state.sent.push(message.clone());
        drop(state);
        self.changed.notify_waiters();
        Ok(SendReceipt {
            native_ids: vec![NativeMsgId::new(format!("fake-{id}"))],
        })
    }
}

/// An inbound sink that records events, for adapter tests without a core.
pub struct RecordingSink {
    tx: mpsc::UnboundedSender<Inbound>,
}

impl RecordingSink {
    /// The sink and the receiving end of what it records.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (InboundSink, mpsc::UnboundedReceiver<Inbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Self { tx }), rx)
    }
}

#[async_trait]
impl InboundHandler for RecordingSink {
    async fn submit(&self, event: Inbound) -> Result<SubmitOutcome, SubmitError> {
        self.tx.send(event).map_err(|_| SubmitError::ShuttingDown)?;
        Ok(SubmitOutcome::Accepted { destinations: 1 })
    }
}

/// Numbers the data directories of adapters run outside the daemon.
static NEXT_DATA_DIR: AtomicU64 = AtomicU64::new(0);

/// Adapter state kept in memory, for adapter tests without a core.
#[derive(Default)]
pub struct MemoryState {
    values: Mutex<std::collections::HashMap<String, String>>,
}

impl MemoryState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

#[async_trait]
impl AdapterState for MemoryState {
    async fn load(&self, key: &str) -> Result<Option<String>, SubmitError> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        Ok(values.get(key).cloned())
    }

    async fn save(&self, key: &str, value: &str) -> Result<(), SubmitError> {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.insert(key.to_owned(), value.to_owned());
        Ok(())
    }
}

/// One run of an adapter outside the daemon: what it submitted, the health it
/// reported, and the handles to stop it and see how it ended.
pub struct RunningAdapter {
    pub inbound: mpsc::UnboundedReceiver<Inbound>,
    pub health: mpsc::UnboundedReceiver<ConnectionState>,
    /// Each room report, in order (see [`next_room_report`]).
    pub rooms: mpsc::UnboundedReceiver<(RoomId, RoomReport)>,
    pub cancel: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), AdapterError>>,
    /// The run's data dir (under the system temp dir), removed when this is dropped:
    /// keep it while the adapter runs.
    pub data_dir: TempDir,
}

/// A directory removed with everything in it when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `adapter` for `rooms` with a recording sink and a recording health reporter.
pub fn spawn_adapter<A: Adapter>(
    adapter: Arc<A>,
    network: NetworkId,
    rooms: Vec<RoomId>,
) -> RunningAdapter {
    spawn_adapter_in(adapter, network, RoomSet::fixed(rooms))
}

/// Like [`spawn_adapter`], with a room set the test may change while it runs.
pub fn spawn_adapter_in<A: Adapter>(
    adapter: Arc<A>,
    network: NetworkId,
    rooms: RoomSet,
) -> RunningAdapter {
    let (sink, inbound) = RecordingSink::new();
    let (health_tx, health) = mpsc::unbounded_channel();
    let (rooms_tx, room_reports) = mpsc::unbounded_channel();
    let data_dir = TempDir(std::env::temp_dir().join(format!(
        "switchboard-adapter-{}-{}",
        std::process::id(),
        NEXT_DATA_DIR.fetch_add(1, Ordering::Relaxed)
    )));
    let ctx = AdapterContext {
        network,
        rooms,
        inbound: sink,
        health: HealthReporter::new(move |state| {
            let _ = health_tx.send(state);
        })
        .with_rooms(move |room, report| {
            let _ = rooms_tx.send((room.clone(), report));
        }),
        state: MemoryState::new(),
        data_dir: data_dir.0.clone(),
    };
    let cancel = CancellationToken::new();
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move { adapter.run(ctx, cancel).await })
    };
    RunningAdapter {
        inbound,
        health,
        rooms: room_reports,
        cancel,
        task,
        data_dir,
    }
}

/// Waits until the adapter reports `Connected`; panics after `timeout`.
pub async fn wait_connected(
    health: &mut mpsc::UnboundedReceiver<ConnectionState>,
    timeout: Duration,
) {
    let connected = tokio::time::timeout(timeout, async {
        while let Some(state) = health.recv().await {
            if state == ConnectionState::Connected {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        connected,
        Ok(true),
        "the adapter never reported Connected within {timeout:?}"
    );
}

/// The next report the adapter made about `room` (reports about other rooms before
/// it are consumed); panics after `timeout`.
pub async fn next_room_report(
    reports: &mut mpsc::UnboundedReceiver<(RoomId, RoomReport)>,
    room: &str,
    timeout: Duration,
) -> RoomReport {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (reported, report) = tokio::time::timeout_at(deadline, reports.recv())
            .await
            .unwrap_or_else(|_| panic!("no report about room {room} within {timeout:?}"))
            .unwrap_or_else(|| panic!("the adapter stopped before reporting room {room}"));
        if reported.as_str() == room {
            return report;
        }
    }
}

/// The next event the adapter submitted that `keep` accepts (earlier ones are
/// consumed); panics after `timeout`, naming `what` was awaited.
pub async fn next_inbound(
    inbound: &mut mpsc::UnboundedReceiver<Inbound>,
    what: &str,
    timeout: Duration,
    keep: impl Fn(&Inbound) -> bool,
) -> Inbound {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let event = tokio::time::timeout_at(deadline, inbound.recv())
            .await
            .unwrap_or_else(|_| panic!("no inbound event ({what}) within {timeout:?}"))
            .expect("the inbound sink is open");
        if keep(&event) {
            return event;
        }
    }
}

/// Sends a probe to `room` until whether the adapter takes it is `sendable`: an
/// adapter follows a change of its room set on its own task, and its sends show
/// when it has. Panics after `timeout`.
pub async fn until_sendable<A: Adapter + ?Sized>(
    adapter: &A,
    room: &str,
    sendable: bool,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let probe = planned(adapter, message_from_alice(room, "probe"));
        if adapter.send(&probe).await.is_ok() == sendable {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the adapter did not follow the change of {room} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeHarness {
        adapter: Arc<FakeAdapter>,
        /// Once the peer saw the first message, the next send fails permanently.
        refuse_after_first: bool,
    }

    #[async_trait]
    impl ConformanceHarness for FakeHarness {
        type Adapter = FakeAdapter;
        fn adapter(&self) -> Arc<FakeAdapter> {
            self.adapter.clone()
        }
        fn network(&self) -> NetworkId {
            NetworkId::new("fake")
        }
        fn room(&self) -> RoomId {
            RoomId::new("#room")
        }
        async fn peer_say(&mut self, text: &str) {
            let outcome = self.adapter.receive("#room", "peer", "p1", text).await;
            assert!(outcome.is_ok());
        }
        async fn peer_saw(&mut self, needle: &str, _timeout: Duration) -> bool {
            if self.refuse_after_first {
                self.adapter
                    .fail_next([SendError::Permanent("edits refused".into())]);
            }
            self.adapter.sent().iter().any(|out| match &out.kind {
                OutboundKind::Message { content, .. } => content.to_plain().contains(needle),
                _ => false,
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_fake_adapter_shows_the_rooms_it_has_now() {
        let adapter = FakeAdapter::new(Capabilities::default());
        assert!(adapter.rooms().is_none(), "not running yet");
        let (updater, rooms) = RoomSet::watched([RoomId::new("#a")]);
        let mut running = spawn_adapter_in(adapter.clone(), NetworkId::new("fake"), rooms);
        let wait = Duration::from_secs(5);
        adapter.wait_for_rooms(&["#a"], wait).await;
        let joined = next_room_report(&mut running.rooms, "#a", wait).await;
        assert_eq!(joined, RoomReport::Joined);
        updater.set([RoomId::new("#a"), RoomId::new("#b")]);
        adapter.wait_for_rooms(&["#a", "#b"], wait).await;
        let joined = next_room_report(&mut running.rooms, "#b", wait).await;
        assert_eq!(joined, RoomReport::Joined);
        updater.set([RoomId::new("#b")]);
        adapter.wait_for_rooms(&["#b"], wait).await;
        let left = next_room_report(&mut running.rooms, "#a", wait).await;
        assert_eq!(left, RoomReport::Left);
        assert_eq!(adapter.runs(), 1, "a room change is no new run");
        running.cancel.cancel();
        running.task.await.unwrap().unwrap();
        assert!(adapter.rooms().is_none(), "stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn the_fake_adapter_reports_joins_as_scripted() {
        let adapter = FakeAdapter::new(Capabilities::default());
        adapter.set_join("#banned", FakeJoin::Refuse("banned".into()));
        adapter.set_join("#silent", FakeJoin::NeverAnswer);
        let (updater, rooms) = RoomSet::watched([RoomId::new("#banned")]);
        let mut running = spawn_adapter_in(adapter.clone(), NetworkId::new("fake"), rooms);
        let wait = Duration::from_secs(5);
        assert_eq!(
            next_room_report(&mut running.rooms, "#banned", wait).await,
            RoomReport::JoinFailed {
                error: "banned".into()
            }
        );
        updater.set([RoomId::new("#silent"), RoomId::new("#ok")]);
        assert_eq!(
            next_room_report(&mut running.rooms, "#banned", wait).await,
            RoomReport::Left
        );
        assert_eq!(
            next_room_report(&mut running.rooms, "#ok", wait).await,
            RoomReport::Joined
        );
        assert!(
            running.rooms.try_recv().is_err(),
            "#silent is never answered"
        );
        running.cancel.cancel();
        running.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn fake_adapter_passes_conformance() {
        let adapter = FakeAdapter::new(Capabilities {
            edits: true,
            deletes: true,
            ..Capabilities::default()
        });
        run_conformance(&mut FakeHarness {
            adapter,
            refuse_after_first: false,
        })
        .await;
    }

    /// An adapter that declares edits but fails them: the failure names step 5.
    #[tokio::test]
    async fn a_failing_step_is_named() {
        let adapter = FakeAdapter::new(Capabilities {
            edits: true,
            ..Capabilities::default()
        });
        let run = {
            let adapter = adapter.clone();
            tokio::spawn(async move {
                let mut harness = FakeHarness {
                    adapter,
                    refuse_after_first: true,
                };
                run_conformance(&mut harness).await;
            })
        };
        let panic = run.await.expect_err("the suite must fail").into_panic();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.starts_with(&format!(
                "conformance step 5 ({}) failed: edit failed",
                CONFORMANCE_STEPS[4]
            )),
            "{message}"
        );
    }
}
