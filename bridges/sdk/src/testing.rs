//! Test support: a scriptable fake adapter and the conformance suite every adapter runs.
//!
//! The fake stands in for a network in router and store tests: it records what it was
//! asked to send, can be told to fail or to be slow, and injects inbound events as a
//! native user would. The conformance suite drives a real adapter against a real (or
//! faithfully faked) server through a small harness trait.

use crate::adapter::{
    Adapter, AdapterContext, AdapterState, Capabilities, ConnectionState, HealthReporter,
    InboundHandler, InboundSink, SubmitOutcome,
};
use crate::context::{RoomSet, Rooms};
use crate::error::{AdapterError, SendError, SubmitError};
use crate::event::{EventKind, Inbound, Outbound, OutboundKind, SendReceipt, Sender};
use crate::ids::{NativeMsgId, NetworkId, RoomId, RoomKey};
use crate::rich::RichText;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// A plain message from `alice` (label `<alice> `, delivery 1) to `room`: the delivery
/// most adapter tests send.
pub fn message_from_alice(room: &str, text: &str) -> Outbound {
    Outbound {
        room: RoomId::new(room),
        delivery_id: 1,
        sender_name: "alice".into(),
        sender_avatar: None,
        sender_label: "<alice> ".into(),
        origin: Default::default(),
        kind: OutboundKind::Message {
            style: crate::event::MessageStyle::Normal,
            content: RichText::plain(text),
            reply_to: None,
            thread: None,
            attachments: Vec::new(),
        },
    }
}

/// A scriptable in-memory network.
pub struct FakeAdapter {
    protocol: &'static str,
    capabilities: Capabilities,
    state: Mutex<FakeState>,
    changed: Notify,
    next_id: AtomicU64,
}

#[derive(Default)]
struct FakeState {
    sent: Vec<Outbound>,
    scripted_failures: VecDeque<SendError>,
    down: bool,
    send_delay: Option<Duration>,
    context: Option<AdapterContext>,
    runs: usize,
}

impl FakeAdapter {
    pub fn new(capabilities: Capabilities) -> Arc<Self> {
        Arc::new(Self {
            protocol: "fake",
            capabilities,
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
        self.changed.notify_waiters();
        let mut rooms = ctx.rooms.clone();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = rooms.changed() => self.changed.notify_waiters(),
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

/// Connects the conformance suite to one adapter and a native peer on its server.
#[async_trait]
pub trait ConformanceHarness: Send {
    type Adapter: Adapter;
    fn adapter(&self) -> Arc<Self::Adapter>;
    fn network(&self) -> NetworkId;
    /// A room the adapter can join and the peer is in.
    fn room(&self) -> RoomId;
    /// A native user (not the bridge) says `text` in the room.
    async fn peer_say(&mut self, text: &str);
    /// Waits up to `timeout` until the peer has seen a message containing `needle`.
    async fn peer_saw(&mut self, needle: &str, timeout: Duration) -> bool;
}

const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// The behaviour every adapter must show: connect and report health, send and return
/// ids, normalise inbound, edit/delete per capability, stop on cancel, refuse to send
/// transiently once stopped.
pub async fn run_conformance<H: ConformanceHarness>(harness: &mut H) {
    let adapter = harness.adapter();
    let RunningAdapter {
        mut inbound,
        mut health,
        cancel,
        task: runner,
        data_dir: _data_dir,
    } = spawn_adapter(adapter.clone(), harness.network(), vec![harness.room()]);

    // 1. connects and says so
    wait_connected(&mut health, STEP_TIMEOUT).await;

    // 2. send returns native ids and the peer sees the message
    let room = harness.room();
    let outbound = Outbound {
        room: room.clone(),
        delivery_id: 1,
        sender_name: "conformer".into(),
        sender_avatar: None,
        sender_label: "<conformer> ".into(),
        origin: crate::Origin {
            network: NetworkId::new("conformance"),
            protocol: "test".into(),
            sender_id: "conformer".into(),
        },
        kind: OutboundKind::Message {
            style: crate::event::MessageStyle::Normal,
            content: RichText::plain("conformance hello"),
            reply_to: None,
            thread: None,
            attachments: Vec::new(),
        },
    };
    let receipt = send_until_joined(&*adapter, &outbound).await;
    assert!(
        !receipt.native_ids.is_empty(),
        "conformance: send returned no native ids"
    );
    assert!(
        harness.peer_saw("conformance hello", STEP_TIMEOUT).await,
        "conformance: the peer never saw the sent message"
    );

    // 3. inbound is normalised
    harness.peer_say("conformance from peer").await;
    let event = tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            let event = inbound.recv().await.expect("inbound sink closed");
            if event.kind == EventKind::Message
                && event.content.to_plain().contains("conformance from peer")
            {
                return event;
            }
        }
    })
    .await
    .expect("conformance: the peer's message never arrived as an inbound event");
    assert_eq!(
        event.room,
        RoomKey {
            network: harness.network(),
            room: room.clone()
        }
    );
    assert!(
        !event.sender.is_self,
        "conformance: a peer's message was marked as our own"
    );
    assert!(
        !event.sender.display_name.is_empty(),
        "conformance: empty sender name"
    );

    // 4. edits and deletes per capability
    let capabilities = adapter.capabilities();
    if capabilities.edits {
        let edit = Outbound {
            kind: OutboundKind::Edit {
                targets: receipt.native_ids.clone(),
                content: RichText::plain("conformance edited"),
            },
            ..outbound.clone()
        };
        adapter.send(&edit).await.expect("conformance: edit failed");
    }
    if capabilities.deletes {
        let delete = Outbound {
            kind: OutboundKind::Delete {
                targets: receipt.native_ids.clone(),
            },
            ..outbound.clone()
        };
        adapter
            .send(&delete)
            .await
            .expect("conformance: delete failed");
    }

    // 5. stops on cancel, promptly
    cancel.cancel();
    let stopped = tokio::time::timeout(STEP_TIMEOUT, runner).await;
    assert!(
        stopped.is_ok(),
        "conformance: run() did not return within {STEP_TIMEOUT:?} of cancel"
    );

    // 6. once stopped, sends fail transiently (the core keeps the row)
    match adapter.send(&outbound).await {
        Err(error) => assert!(
            error.is_retryable(),
            "conformance: send after stop must be transient, got {error}"
        ),
        Ok(_) => panic!("conformance: send succeeded after the adapter stopped"),
    }
}

/// Right after `Connected` the room join may still be in flight; retry transient errors
/// for a bounded time.
async fn send_until_joined<A: Adapter + ?Sized>(adapter: &A, outbound: &Outbound) -> SendReceipt {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        match adapter.send(outbound).await {
            Ok(receipt) => return receipt,
            Err(error) if error.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("conformance: send failed: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeHarness {
        adapter: Arc<FakeAdapter>,
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
        let running = spawn_adapter_in(adapter.clone(), NetworkId::new("fake"), rooms);
        adapter
            .wait_for_rooms(&["#a"], Duration::from_secs(5))
            .await;
        updater.set([RoomId::new("#a"), RoomId::new("#b")]);
        adapter
            .wait_for_rooms(&["#a", "#b"], Duration::from_secs(5))
            .await;
        updater.set([RoomId::new("#b")]);
        adapter
            .wait_for_rooms(&["#b"], Duration::from_secs(5))
            .await;
        assert_eq!(adapter.runs(), 1, "a room change is no new run");
        running.cancel.cancel();
        running.task.await.unwrap().unwrap();
        assert!(adapter.rooms().is_none(), "stopped");
    }

    #[tokio::test]
    async fn fake_adapter_passes_conformance() {
        let adapter = FakeAdapter::new(Capabilities {
            edits: true,
            deletes: true,
            ..Capabilities::default()
        });
        run_conformance(&mut FakeHarness { adapter }).await;
    }
}
