//! The store at the bottom of the house: the `Store` trait and the rows it deals in
//! (bridged messages, the native-id map, the outbox, dead letters, adapter state).
//!
//! It imports nothing from routing or delivery. Delivery consumes what the store
//! commits through the `CommittedRowsReceiver` the store's constructor returns, so
//! that new rows reach their room's worker from memory right after the commit.
//! Order per destination room is a per-room sequence the store assigns in the accept
//! transaction; dedup is a unique constraint on the native-id map. `sqlite` is the
//! durable implementation; `memory` serves tests on a paused clock.
//!
//! Only delivery moves rows to the dead letters (`Completion::Dead`, once it is done
//! with a row; a room a reload left without routes has its rows dead-lettered that
//! way too). Operators can queue dead letters again (`requeue`): under new outbox
//! ids, at the end of their room's order, and handed to delivery like freshly
//! accepted rows. Nothing else takes a row out of the outbox, so a row is never
//! both queued and a dead letter, and a worker's completion always finds its row.

#[cfg(test)]
mod contract_tests;
mod memory;
mod private;
pub mod retention;
pub mod sqlite;

use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_sdk::{EventKind, Inbound, NativeMsgId, NetworkId, RoomKey, SubmitError};
use thiserror::Error;
use tokio::sync::oneshot;

pub use memory::MemoryStore;
pub use private::private_dir;
pub use retention::Retention;
pub use sqlite::{DATABASE_FILE, SqliteStore};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create or secure the state at {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored event is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the store is closed")]
    Closed,
    #[error(
        "the disk did not confirm a write ({0}); nothing more is accepted until the daemon restarts"
    )]
    SyncFailed(String),
    /// A dead letter cannot be queued again: the message it carries is no longer
    /// stored. Retention keeps every message a dead letter carries, so this means
    /// the database was changed by hand; nothing was requeued.
    #[error("dead letter {outbox_id} cannot be requeued: its message {bridged_id} is gone")]
    MessageGone { outbox_id: i64, bridged_id: i64 },
}

/// One room an event must be delivered to, and the route that sends it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub route: Arc<str>,
    pub room: RoomKey,
}

/// How the store took an inbound event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Committed: the bridged message id and one outbox row per destination.
    Accepted {
        bridged_id: i64,
        outbox: Vec<(RoomKey, i64)>,
    },
    /// The native id is already known: a duplicate, or an echo of a copy we made.
    Duplicate,
    /// An edit or delete of a message that was never bridged.
    UnknownTarget,
}

/// The end of one outbox row.
#[derive(Debug, Clone)]
pub enum Completion {
    /// Sent; `native_ids` are the parts it became in the destination room.
    Delivered {
        outbox_id: i64,
        bridged_id: i64,
        room: RoomKey,
        native_ids: Vec<NativeMsgId>,
    },
    /// Nothing to send there (e.g. a delete on a network without deletes): done.
    Skipped { outbox_id: i64 },
    /// Will never be delivered: moved to the dead-letter table.
    Dead { outbox_id: i64, reason: String },
}

/// The stored messages an event refers to, by bridged id: what it edits, deletes
/// or reacts to, what it replies to, and its thread root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct References {
    pub target_id: Option<i64>,
    pub reply_to_id: Option<i64>,
    pub thread_id: Option<i64>,
}

impl References {
    /// Resolves `event`'s references in its own room through `lookup` (native id ->
    /// bridged id). `None` when it edits, deletes or reacts to a message that was
    /// never bridged: such an event has nothing to act on anywhere. A reply to an
    /// unknown message is still relayed, without its reference.
    pub fn resolve<E>(
        event: &Inbound,
        mut lookup: impl FnMut(&NativeMsgId) -> Result<Option<i64>, E>,
    ) -> Result<Option<Self>, E> {
        let target_id = match &event.kind {
            EventKind::Edit { target }
            | EventKind::Delete { target }
            | EventKind::Reaction { target, .. } => match lookup(target)? {
                Some(id) => Some(id),
                None => return Ok(None),
            },
            _ => None,
        };
        let mut optional = |id: &Option<NativeMsgId>| match id {
            Some(id) => lookup(id),
            None => Ok(None),
        };
        Ok(Some(Self {
            target_id,
            reply_to_id: optional(&event.reply_to)?,
            thread_id: optional(&event.thread)?,
        }))
    }

    pub fn any(&self) -> bool {
        self.target_id.is_some() || self.reply_to_id.is_some() || self.thread_id.is_some()
    }
}

/// Whether accepting `event`, which deletes the stored `target`, releases the
/// target's origin id. Networks that name a reaction by (message, user, emoji) —
/// Mattermost, Slack, Discord — give the same id to the same person reacting the
/// same way again after taking it back; without the release that second reaction
/// would be taken for a duplicate of the first.
pub fn releases_origin_id(event: &Inbound, target: &Inbound) -> bool {
    matches!(event.kind, EventKind::Delete { .. })
        && matches!(target.kind, EventKind::Reaction { .. })
}

/// One undelivered outbox row with the event it carries.
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub outbox_id: i64,
    /// Its place in its destination room's order (increasing, never reused there).
    pub seq: i64,
    pub bridged_id: i64,
    pub route: String,
    pub created_ms: i64,
    pub attempts: i64,
    pub references: References,
    /// Shared by the rows of every destination room of the same event.
    pub event: Arc<Inbound>,
}

/// What an accept transaction stored for one event, from which each destination's
/// new row is made.
pub struct AcceptedEvent<'a> {
    pub bridged_id: i64,
    pub references: References,
    pub event: &'a Arc<Inbound>,
    pub now: i64,
}

impl AcceptedEvent<'_> {
    /// The row just queued for `destination` under `outbox_id` at `seq`.
    pub fn row(&self, destination: &Destination, outbox_id: i64, seq: i64) -> PendingRow {
        PendingRow {
            outbox_id,
            seq,
            bridged_id: self.bridged_id,
            route: destination.route.to_string(),
            created_ms: self.now,
            attempts: 0,
            references: self.references,
            event: self.event.clone(),
        }
    }
}

/// The new outbox rows of one commit, in commit order, with their destination room.
pub type CommittedRows = Vec<(RoomKey, PendingRow)>;

/// Where delivery takes committed rows from; every commit with new rows sends one
/// `CommittedRows`, in commit order.
pub type CommittedRowsReceiver = tokio::sync::mpsc::UnboundedReceiver<CommittedRows>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub outbox_id: i64,
    pub bridged_id: i64,
    pub route: String,
    pub room: RoomKey,
    pub attempts: i64,
    pub reason: String,
    /// When the event was accepted and when delivery gave up (ms since the epoch).
    pub created_ms: i64,
    pub dead_ms: i64,
    /// Sender name and plain text of the message (as `Store::summary` gives them),
    /// so that an operator sees what was not delivered; `None` only if the message
    /// is no longer stored.
    pub summary: Option<(String, String)>,
}

/// Which dead letters `Store::requeue` queues again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeue {
    /// The dead letter of this (former) outbox row.
    One { outbox_id: i64 },
    /// Every dead letter of this room, in their original order.
    Room(RoomKey),
}

/// What one pruning step removes: rows older than these times (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneBefore {
    /// Bridged messages and their native ids (unless a pending row still needs them).
    pub id_map_ms: i64,
    pub dead_letters_ms: i64,
}

/// What one pruning step removed; `done` once nothing older is left to look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub messages: usize,
    pub dead_letters: usize,
    pub done: bool,
}

/// Durable state as the core uses it. Writes are committed before their future
/// resolves (or, for `complete`, before its receiver does).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records the event and its fan-out (one outbox row per destination, each with
    /// the next sequence number of its room) in one transaction. Returns once that is
    /// on disk: the caller may acknowledge the event's source then.
    async fn accept(
        &self,
        event: Inbound,
        destinations: Vec<Destination>,
    ) -> Result<AcceptOutcome, StoreError>;

    /// `accept` for an event whose source is never acknowledged (IRC) or is
    /// acknowledged by a later durable write (a cursor saved with
    /// `save_adapter_state`, which reaches the disk only with everything before it):
    /// returns once the event is written in order, without waiting for the disk.
    async fn accept_unacknowledged(
        &self,
        event: Inbound,
        destinations: Vec<Destination>,
    ) -> Result<AcceptOutcome, StoreError> {
        self.accept(event, destinations).await
    }

    /// Up to `limit` undelivered rows for `room` with a sequence above `after_seq`,
    /// in order.
    async fn pending_after(
        &self,
        room: &RoomKey,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<PendingRow>, StoreError>;

    /// Rooms with undelivered rows and how many each has (delivery resumes there).
    async fn pending_rooms(&self) -> Result<Vec<(RoomKey, i64)>, StoreError>;

    /// Queues the end of a row; the returned receiver resolves once it is committed.
    /// Callers that need the result visible (e.g. before an id lookup) await it.
    fn complete(&self, completion: Completion) -> Result<oneshot::Receiver<()>, StoreError>;

    /// Notes a failed attempt (for operators looking at the outbox).
    fn record_failure(&self, outbox_id: i64, error: String) -> Result<(), StoreError>;

    /// Every dead letter, by outbox id.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError>;

    /// At most `limit` dead letters, the newest first (by `dead_ms`, then outbox id).
    async fn recent_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;

    /// Queues dead letters again, in one transaction: each gets a new outbox id and
    /// the next sequence number of its room (the end of the room's queue; a room's
    /// letters in their original order), no attempts and no error, its `created_ms`
    /// kept, and its dead letter is removed. The new rows reach delivery on the
    /// committed channel like freshly accepted rows. Returns how many were requeued:
    /// 0 when nothing matched. `StoreError::MessageGone` (and nothing requeued) if a
    /// letter's message is no longer stored.
    async fn requeue(&self, which: Requeue) -> Result<u64, StoreError>;

    /// The native ids (in part order) that a bridged message became in `room`,
    /// including the origin if the message came from there.
    async fn native_ids_in(
        &self,
        bridged_id: i64,
        room: &RoomKey,
    ) -> Result<Vec<NativeMsgId>, StoreError>;

    /// Sender name and plain text of a bridged message (for reply quotes).
    async fn summary(&self, bridged_id: i64) -> Result<Option<(String, String)>, StoreError>;

    /// A value `network`'s adapter saved (see `AdapterState`).
    async fn adapter_state(
        &self,
        network: &NetworkId,
        key: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Saves an adapter's value; returns once durable.
    async fn save_adapter_state(
        &self,
        network: &NetworkId,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError>;

    /// Removes at most `limit` old bridged messages and `limit` old dead letters in
    /// one short transaction (see `retention`). Never a message a pending row needs.
    async fn prune(&self, before: PruneBefore, limit: usize) -> Result<Pruned, StoreError>;

    /// Waits until everything queued so far is committed.
    async fn flush(&self) -> Result<(), StoreError>;
}

/// The store as the daemon shares it.
pub type SharedStore = Arc<dyn Store>;

/// The state handle one network's adapter gets.
pub fn state_for(store: &SharedStore, network: &NetworkId) -> switchboard_sdk::StateHandle {
    Arc::new(NetworkState {
        store: store.clone(),
        network: network.clone(),
    })
}

/// One network's view of `adapter_state`.
struct NetworkState {
    store: SharedStore,
    network: NetworkId,
}

#[async_trait]
impl switchboard_sdk::AdapterState for NetworkState {
    async fn load(&self, key: &str) -> Result<Option<String>, SubmitError> {
        self.store
            .adapter_state(&self.network, key)
            .await
            .map_err(|error| SubmitError::Storage(error.to_string()))
    }

    async fn save(&self, key: &str, value: &str) -> Result<(), SubmitError> {
        self.store
            .save_adapter_state(&self.network, key, value)
            .await
            .map_err(|error| SubmitError::Storage(error.to_string()))
    }
}

/// Milliseconds since the epoch, as a store stamps its rows; replaceable in tests
/// that simulate days of traffic.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(switchboard_sdk::event::now_ms)
}
