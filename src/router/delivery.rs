//! Delivery: one worker per destination room takes that room's outbox rows in order,
//! renders each for its network, sends it, and records the result.
//!
//! A room whose network is slow or down holds back only itself: it retries the row at
//! its head with backoff (cut short when its network reconnects) while every other
//! room's worker flows on. Rows live in SQLite until they are delivered, skipped or
//! dead-lettered, so a crash or restart resumes exactly where delivery stopped.

use super::SharedRoutes;
use super::render::{Rendered, Resolved, Target, render};
use crate::backoff;
use crate::health::HealthRegistry;
use crate::metrics as m;
use crate::store::{
    CommittedRows, CommittedRowsReceiver, Completion, PendingRow, SharedStore, StoreError,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_sdk::{
    Adapter, ConnectionState, EventKind, NetworkId, Outbound, RoomKey, SendError,
};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What `prepare` made of a row.
enum Prepared {
    /// Ready to send to the room.
    Send {
        outbound: Box<Outbound>,
        max_age: Option<Duration>,
    },
    /// The row ended (skipped, dead-lettered) or delivery stops: `deliver`'s answer.
    Done(bool),
}

/// Rows fetched per read; with `INBOX_CAP` it bounds what a room holds in memory
/// whatever its backlog.
const BATCH: usize = 32;
/// Committed rows a room keeps in memory; past this it reads them back from disk.
/// Reading back costs more than the rows (the read connections, their page caches and
/// the event JSON parsed again), so a room that fell a little behind under a flood
/// would read back for the rest of it; 512 rows absorb that lag (docs/benchmarks.md).
const INBOX_CAP: usize = 512;

/// One configured network as delivery sees it.
pub struct AdapterEntry {
    pub adapter: Arc<dyn Adapter>,
    pub protocol: &'static str,
}

/// The configured networks as delivery sees them, looked up per send: a network
/// added or removed while the daemon runs is seen by the next row.
#[derive(Clone, Default)]
pub struct Adapters {
    map: Arc<arc_swap::ArcSwap<HashMap<NetworkId, Arc<AdapterEntry>>>>,
    /// Wakes workers that wait for their network to be (re)added, or for the
    /// routes to change.
    changed: Arc<Notify>,
}

impl Adapters {
    pub fn get(&self, network: &NetworkId) -> Option<Arc<AdapterEntry>> {
        self.map.load().get(network).cloned()
    }

    pub fn insert(&self, network: NetworkId, entry: AdapterEntry) {
        let entry = Arc::new(entry);
        self.map.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(network.clone(), entry.clone());
            map
        });
        self.changed.notify_waiters();
    }

    pub fn remove(&self, network: &NetworkId) {
        self.map.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(network);
            map
        });
    }

    /// The network's adapter, waiting while it is not configured (removed at run
    /// time: its rows stay queued until it comes back or the routes drop them).
    /// Gives up with `Unrouted` once `routed` says the room has no route left; a
    /// route change wakes the wait (`routes_changed`).
    async fn wait_for(
        &self,
        network: &NetworkId,
        cancel: &CancellationToken,
        routed: impl Fn() -> bool,
    ) -> Wait {
        let mut logged = false;
        loop {
            // Created before the look-ups, so a change in between still wakes it.
            let changed = self.changed.notified();
            if !routed() {
                return Wait::Unrouted;
            }
            if let Some(entry) = self.get(network) {
                return Wait::Ready(entry);
            }
            if !logged {
                tracing::info!(%network, "delivery: network not configured; its rows wait");
                logged = true;
            }
            tokio::select! {
                () = changed => {}
                () = cancel.cancelled() => return Wait::Shutdown,
            }
        }
    }

    /// Wakes every worker waiting for a network: the routes changed, and a room may
    /// have lost its last route.
    pub fn routes_changed(&self) {
        self.changed.notify_waiters();
    }
}

/// What a worker waiting for its room's network got.
enum Wait {
    Ready(Arc<AdapterEntry>),
    /// No route has the room any more.
    Unrouted,
    Shutdown,
}

pub struct DeliverySettings {
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Answers to sources that wait are held while a destination room has more rows
    /// queued than this (see `backlog`)...
    pub hold_answers_above: i64,
    /// ...for at most this long.
    pub hold_answers_for: Duration,
    /// A room whose oldest queued row is older than this is reported as lagging.
    pub lagging_after: Duration,
}

/// What every room worker shares.
pub struct DeliveryParts {
    pub store: SharedStore,
    pub routes: SharedRoutes,
    pub adapters: Adapters,
    pub settings: DeliverySettings,
    /// Whether a destination's network is connected (a failed send while it is not
    /// is expected, not worth a warning).
    pub health: Arc<HealthRegistry>,
    /// Stops the workers (after their in-flight send).
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
}

pub(super) struct RoomState {
    pub(super) key: RoomKey,
    inbox: Mutex<Inbox>,
    /// New rows were committed for this room.
    wake: Notify,
    /// Its network reconnected: retry the head row now.
    reconnected: Notify,
    /// Rows queued (committed and not yet delivered, skipped or dead-lettered).
    pub(super) depth: AtomicI64,
    /// When the row the worker is on was accepted (ms since the epoch): the oldest
    /// queued row. 0 while the room has nothing queued.
    pub(super) head_created_ms: AtomicI64,
    /// Whether the room is reported as lagging (see `backlog`).
    pub(super) lagging: std::sync::atomic::AtomicBool,
    /// Answers held for this room's backlog wait here (see `backlog`).
    pub(super) drained: Notify,
    pub(super) holders: std::sync::atomic::AtomicUsize,
}

/// Rows handed over by the store right after their commit, so the hot path never
/// reads them back. When it would grow past `INBOX_CAP`, or at start, `from_disk`
/// makes the worker drop it and read the outbox instead; the worker's cursor (the
/// room's sequence) skips anything it sees twice, so no row is lost, repeated or
/// reordered.
struct Inbox {
    rows: std::collections::VecDeque<PendingRow>,
    from_disk: bool,
}

/// The set of room workers. Rows the store commits (`committed`) wake (or start)
/// the worker of their room.
pub struct RoomScheduler {
    runtime: tokio::runtime::Handle,
    pub(super) shared: Arc<DeliveryParts>,
    rooms: Mutex<HashMap<RoomKey, Arc<RoomState>>>,
}

impl RoomScheduler {
    /// Starts delivering: a worker for every room in the routing table and every room
    /// with rows left from before a restart (`backlog`, with their counts), and a task
    /// that hands each commit's rows to their rooms. Must be called inside the tokio
    /// runtime that will run the workers.
    pub fn start(
        parts: DeliveryParts,
        backlog: Vec<(RoomKey, i64)>,
        committed: CommittedRowsReceiver,
    ) -> Arc<Self> {
        let rooms = parts.routes.load().rooms();
        let queues = Arc::new(Self {
            runtime: tokio::runtime::Handle::current(),
            shared: Arc::new(parts),
            rooms: Mutex::new(HashMap::new()),
        });
        // States first, while no worker can start; then one worker for each.
        for (room, count) in backlog {
            let (state, _) = queues.state_of(&room);
            state.depth.fetch_add(count, Ordering::Relaxed);
        }
        for room in rooms {
            queues.state_of(&room);
        }
        let existing: Vec<Arc<RoomState>> = queues.lock().values().cloned().collect();
        for state in existing {
            m::queue_depth(&state.key, state.depth.load(Ordering::Relaxed));
            queues.spawn_worker(state);
        }
        let tracker = queues.shared.tracker.clone();
        tracker.spawn_on(hand_over(queues.clone(), committed), &queues.runtime);
        tracker.spawn_on(super::backlog::watch(queues.clone()), &queues.runtime);
        queues
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomKey, Arc<RoomState>>> {
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state of a room, creating it (and its worker) on first use.
    fn room(&self, key: &RoomKey) -> Arc<RoomState> {
        let (state, created) = self.state_of(key);
        if created {
            self.spawn_worker(state.clone());
        }
        state
    }

    /// The state of a room, and whether it was created now (its worker not started).
    fn state_of(&self, key: &RoomKey) -> (Arc<RoomState>, bool) {
        let mut rooms = self.lock();
        if let Some(state) = rooms.get(key) {
            return (state.clone(), false);
        }
        let state = Arc::new(RoomState {
            key: key.clone(),
            inbox: Mutex::new(Inbox {
                rows: std::collections::VecDeque::new(),
                from_disk: true,
            }),
            wake: Notify::new(),
            reconnected: Notify::new(),
            depth: AtomicI64::new(0),
            head_created_ms: AtomicI64::new(0),
            lagging: Default::default(),
            drained: Notify::new(),
            holders: Default::default(),
        });
        rooms.insert(key.clone(), state.clone());
        (state, true)
    }

    fn spawn_worker(&self, state: Arc<RoomState>) {
        let shared = self.shared.clone();
        let tracker = shared.tracker.clone();
        tracker.spawn_on(room_worker(shared, state), &self.runtime);
    }

    /// Makes sure each of `rooms` has a worker (rooms a route change added).
    pub fn serve_rooms(&self, rooms: impl IntoIterator<Item = RoomKey>) {
        for room in rooms {
            self.room(&room);
        }
    }

    /// Every room with a worker: rows queued now, and when the oldest of them was
    /// accepted (ms since the epoch) while one is.
    pub fn queues(&self) -> Vec<(RoomKey, i64, Option<i64>)> {
        self.lock()
            .values()
            .map(|state| {
                let depth = state.depth.load(Ordering::Relaxed).max(0);
                let head = state.head_created_ms.load(Ordering::Relaxed);
                (
                    state.key.clone(),
                    depth,
                    (depth > 0 && head > 0).then_some(head),
                )
            })
            .collect()
    }

    /// The routes changed: workers waiting for their network or backing off look at
    /// the routes again (a room that lost its last route dead-letters its rows).
    pub fn routes_changed(&self) {
        self.shared.adapters.routes_changed();
        for state in self.lock().values() {
            state.reconnected.notify_one();
        }
    }

    /// The network is connected again: every room of it retries its head row now.
    pub fn network_reconnected(&self, network: &NetworkId) {
        for state in self
            .lock()
            .values()
            .filter(|state| &state.key.network == network)
        {
            state.reconnected.notify_one();
        }
    }
}

/// Hands every commit's rows to their rooms, in commit order, until shutdown.
async fn hand_over(queues: Arc<RoomScheduler>, mut committed: CommittedRowsReceiver) {
    loop {
        tokio::select! {
            rows = committed.recv() => match rows {
                Some(rows) => queues.rows_committed(rows),
                None => return,
            },
            _ = queues.shared.cancel.cancelled() => return,
        }
    }
}

impl RoomScheduler {
    fn rows_committed(&self, rows: CommittedRows) {
        let mut woken: Vec<Arc<RoomState>> = Vec::new();
        for (key, row) in rows {
            let state = match woken.iter().find(|state| state.key == key) {
                Some(state) => state.clone(),
                None => {
                    let state = self.room(&key);
                    woken.push(state.clone());
                    state
                }
            };
            {
                let mut inbox = state.inbox.lock().unwrap_or_else(|p| p.into_inner());
                if !inbox.from_disk && inbox.rows.len() < INBOX_CAP {
                    inbox.rows.push_back(row);
                } else {
                    inbox.from_disk = true;
                }
            }
            state.depth.fetch_add(1, Ordering::Relaxed);
        }
        for state in woken {
            m::queue_depth(&state.key, state.depth.load(Ordering::Relaxed));
            state.wake.notify_one();
        }
    }
}

/// Where a worker's next rows come from.
enum Next {
    Disk,
    Memory(Vec<PendingRow>),
    Idle,
}

async fn room_worker(shared: Arc<DeliveryParts>, state: Arc<RoomState>) {
    let mut worker = Worker {
        shared: &shared,
        state: &state,
        last_commit: None,
    };
    // The room sequence of the last row handled: rows at or below it were seen already.
    let mut cursor = 0;
    loop {
        let next = {
            let mut inbox = state.inbox.lock().unwrap_or_else(|p| p.into_inner());
            if inbox.from_disk {
                // From here on, new commits go to memory again; anything committed
                // before is on disk and read below.
                inbox.from_disk = false;
                inbox.rows.clear();
                Next::Disk
            } else if inbox.rows.is_empty() {
                Next::Idle
            } else {
                Next::Memory(inbox.rows.drain(..).collect())
            }
        };
        let rows = match next {
            Next::Idle => {
                tokio::select! {
                    _ = state.wake.notified() => {}
                    _ = shared.cancel.cancelled() => return,
                }
                continue;
            }
            Next::Memory(rows) => rows,
            Next::Disk => {
                let read = tokio::select! {
                    rows = shared.store.pending_after(&state.key, cursor, BATCH) => rows,
                    _ = shared.cancel.cancelled() => return,
                };
                match read {
                    Ok(rows) => {
                        if rows.len() == BATCH {
                            // More on disk than one read: memory rows would jump the queue.
                            state
                                .inbox
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .from_disk = true;
                        }
                        rows
                    }
                    Err(error) => {
                        tracing::error!(room = %state.key, %error, "delivery: cannot read the outbox; retrying");
                        state
                            .inbox
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .from_disk = true;
                        if !worker.pause(Duration::from_secs(1)).await {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        for row in rows {
            if row.seq <= cursor {
                continue;
            }
            cursor = row.seq;
            if !worker.deliver(row).await {
                return;
            }
        }
    }
}

/// Why a row is too old to deliver, if it is.
fn expiry(row: &PendingRow, max_age: Option<Duration>) -> Option<String> {
    let max_age = max_age?;
    let age =
        Duration::from_millis((switchboard_sdk::event::now_ms() - row.created_ms).max(0) as u64);
    (age > max_age).then(|| format!("expired: not delivered within max_age {max_age:?}"))
}

struct Worker<'a> {
    shared: &'a DeliveryParts,
    state: &'a RoomState,
    /// The commit of the previous completion; awaited before id lookups so that
    /// an edit right after its original sees the original's copies.
    last_commit: Option<oneshot::Receiver<()>>,
}

impl Worker<'_> {
    /// Delivers one row to its end (delivered, skipped or dead). Returns false when
    /// shutdown interrupted it; the row then stays for the next start.
    async fn deliver(&mut self, row: PendingRow) -> bool {
        self.state
            .head_created_ms
            .store(row.created_ms, Ordering::Relaxed);
        match self.prepare(&row).await {
            Prepared::Send { outbound, max_age } => self.send(&row, &outbound, max_age).await,
            Prepared::Done(carry_on) => carry_on,
        }
    }

    /// Checks the row is still routed and fresh, resolves its references and renders
    /// it for this room; anything that ends the row here is recorded.
    async fn prepare(&mut self, row: &PendingRow) -> Prepared {
        let key = &self.state.key;
        // Routing first: a room a reload unrouted must not wait for its network (which
        // the same reload may have removed) before its rows are dead-lettered.
        let entry = match self
            .shared
            .adapters
            .wait_for(&key.network, &self.shared.cancel, || self.still_routed())
            .await
        {
            Wait::Ready(entry) => entry,
            Wait::Unrouted => return Prepared::Done(self.unrouted(row)),
            Wait::Shutdown => return Prepared::Done(false),
        };
        let table = self.shared.routes.load_full();
        let Some((route, member)) = table.route_for(&row.route, key, &row.event.room) else {
            return Prepared::Done(self.unrouted(row));
        };
        let max_age = route.max_age;
        if let Some(expired) = expiry(row, max_age) {
            return Prepared::Done(self.dead(row, "expired", expired));
        }
        let mut attempt = 0u32;
        let resolved = loop {
            match self.resolve(row).await {
                Ok(resolved) => break resolved,
                Err(error) => {
                    tracing::error!(room = %key, %error, "delivery: id lookup failed; retrying");
                    if !self.backoff(&mut attempt, Duration::ZERO).await {
                        return Prepared::Done(false);
                    }
                }
            }
        };
        let origin_protocol = self
            .shared
            .adapters
            .get(&row.event.room.network)
            .map_or("unknown", |origin| origin.protocol);
        // Asked per delivery: a room may differ from its network, and what the
        // running connection learned (e.g. whether names may be overridden) counts.
        let capabilities = entry.adapter.room_capabilities(&key.room);
        let target = Target {
            route,
            member,
            capabilities: &capabilities,
            origin_protocol,
        };
        let outbound = match render(&row.event, row.outbox_id, &resolved, &target) {
            Rendered::Send(outbound) => *outbound,
            Rendered::Skip(skip) => {
                tracing::debug!(room = %key, outbox_id = row.outbox_id, reason = skip.reason, "delivery: nothing to send");
                m::skipped(key, &row.route, skip.class);
                return Prepared::Done(self.finish(Completion::Skipped {
                    outbox_id: row.outbox_id,
                }));
            }
            Rendered::Refuse(reason) => {
                return Prepared::Done(self.dead(row, "mention_guard", reason));
            }
        };
        Prepared::Send {
            outbound: Box::new(outbound),
            max_age,
        }
    }

    /// Sends until the room's network takes the row, refuses it, or it expires;
    /// transient failures wait with backoff (cut short when the network reconnects).
    async fn send(
        &mut self,
        row: &PendingRow,
        outbound: &Outbound,
        max_age: Option<Duration>,
    ) -> bool {
        let key = &self.state.key;
        let route_name = &row.route;
        let mut attempt = 0u32;
        loop {
            // Looked up again for each attempt: the network may have been replaced
            // (or removed, and then the row waits) while the row was retried, and
            // the room may have been unrouted.
            let current = match self
                .shared
                .adapters
                .wait_for(&key.network, &self.shared.cancel, || self.still_routed())
                .await
            {
                Wait::Ready(entry) => entry,
                Wait::Unrouted => return self.unrouted(row),
                Wait::Shutdown => return false,
            };
            match current.adapter.send(outbound).await {
                Ok(receipt) => {
                    let latency = Duration::from_millis(
                        (switchboard_sdk::event::now_ms() - row.created_ms).max(0) as u64,
                    );
                    m::delivered(key, route_name, latency);
                    return self.finish(Completion::Delivered {
                        outbox_id: row.outbox_id,
                        bridged_id: row.bridged_id,
                        room: key.clone(),
                        native_ids: receipt.native_ids,
                    });
                }
                Err(SendError::Permanent(reason)) => {
                    return self.dead(
                        row,
                        "permanent",
                        format!("refused by {}: {reason}", key.network),
                    );
                }
                Err(error @ (SendError::Transient(_) | SendError::RateLimited { .. })) => {
                    let (reason, at_least) = match error {
                        SendError::RateLimited {
                            reason,
                            retry_after,
                        } => (reason, retry_after),
                        SendError::Transient(reason) | SendError::Permanent(reason) => {
                            (reason, Duration::ZERO)
                        }
                    };
                    m::failed(key, route_name);
                    if let Some(expired) = expiry(row, max_age) {
                        return self.dead(
                            row,
                            "expired",
                            format!("{expired}; last error: {reason}"),
                        );
                    }
                    if attempt == 0 || attempt.is_multiple_of(10) {
                        if self.shared.health.state_of(&key.network)
                            == Some(ConnectionState::Connected)
                        {
                            tracing::warn!(room = %key, outbox_id = row.outbox_id, attempt, %reason, "delivery failed; will retry");
                        } else {
                            // Expected while the network (re)connects, e.g. with a
                            // backlog at start; its own state change is logged.
                            tracing::debug!(room = %key, outbox_id = row.outbox_id, attempt, %reason, "delivery waits for its network to connect");
                        }
                    }
                    if let Err(error) = self.shared.store.record_failure(row.outbox_id, reason) {
                        tracing::error!(%error, "delivery: cannot record a failed attempt");
                    }
                    if !self.backoff(&mut attempt, at_least).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Looks up, in this room, the copies an edit/delete/reaction/reply refers to.
    async fn resolve(&mut self, row: &PendingRow) -> Result<Resolved, StoreError> {
        let mut resolved = Resolved::default();
        let references = row.references;
        if !references.any() {
            return Ok(resolved);
        }
        if let Some(commit) = self.last_commit.take() {
            let _ = commit.await;
        }
        let store = &self.shared.store;
        let room = &self.state.key;
        if let Some(target) = references.target_id
            && matches!(
                row.event.kind,
                EventKind::Edit { .. } | EventKind::Delete { .. } | EventKind::Reaction { .. }
            )
        {
            resolved.target_copies = store.native_ids_in(target, room).await?;
        }
        if let Some(reply) = references.reply_to_id {
            resolved.reply_target = store.native_ids_in(reply, room).await?.into_iter().next();
            resolved.reply_quote = store.summary(reply).await?;
        }
        if let Some(root) = references.thread_id {
            resolved.thread_root = store.native_ids_in(root, room).await?.into_iter().next();
            if resolved.reply_quote.is_none() {
                resolved.reply_quote = store.summary(root).await?;
            }
        }
        Ok(resolved)
    }

    /// Whether some route still has this room.
    fn still_routed(&self) -> bool {
        self.shared.routes.load().has_room(&self.state.key)
    }

    /// The room has no route left (a reload removed it): its rows end here.
    /// No warning: an admin's reload did this, and its log line lists the rooms.
    fn unrouted(&mut self, row: &PendingRow) -> bool {
        tracing::debug!(room = %self.state.key, outbox_id = row.outbox_id, "delivery: dead-lettered: the room is in no route");
        self.record_dead(row, "route_removed", "route_removed".to_owned())
    }

    fn dead(&mut self, row: &PendingRow, class: &'static str, reason: String) -> bool {
        tracing::warn!(room = %self.state.key, outbox_id = row.outbox_id, %reason, "delivery: dead-lettered");
        self.record_dead(row, class, reason)
    }

    fn record_dead(&mut self, row: &PendingRow, class: &'static str, reason: String) -> bool {
        m::dead_lettered(&self.state.key, &row.route, class);
        self.finish(Completion::Dead {
            outbox_id: row.outbox_id,
            reason,
        })
    }

    fn finish(&mut self, completion: Completion) -> bool {
        match self.shared.store.complete(completion) {
            Ok(commit) => self.last_commit = Some(commit),
            Err(error) => tracing::error!(%error, "delivery: cannot record a completion"),
        }
        let depth = self.state.depth.fetch_sub(1, Ordering::Relaxed) - 1;
        m::queue_depth(&self.state.key, depth.max(0));
        if depth <= 0 {
            self.state.head_created_ms.store(0, Ordering::Relaxed);
        }
        if depth <= self.shared.settings.hold_answers_above
            && self.state.holders.load(Ordering::Acquire) > 0
        {
            self.state.drained.notify_waiters();
        }
        true
    }

    /// Waits before the next attempt, at least `at_least` (what a rate limit asked
    /// for); a reconnect of the network cuts a plain backoff short. Returns false on
    /// shutdown.
    async fn backoff(&self, attempt: &mut u32, at_least: Duration) -> bool {
        let settings = &self.shared.settings;
        let wait = backoff::delay(*attempt, settings.retry_initial, settings.retry_max);
        *attempt = attempt.saturating_add(1);
        if !at_least.is_zero() {
            return self.pause(wait.max(at_least)).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.state.reconnected.notified() => true,
            _ = self.shared.cancel.cancelled() => false,
        }
    }

    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.shared.cancel.cancelled() => false,
        }
    }
}
