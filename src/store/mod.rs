//! Durable state in SQLite: the bridged messages, the native-id map, the outbox and
//! the dead-letter table.
//!
//! All writes go through one writer thread that groups whatever is queued into one
//! transaction (group commit), so a burst costs one fsync, not one per event. After
//! the commit, new outbox rows are handed to delivery in memory (`CommitListener`).
//! Reads (a room's backlog at start or after an overflow, id lookups) use a small
//! pool of read connections; WAL lets them run beside the writer.

mod private;
mod read;
mod schema;
mod writer;

use crate::router::Destination;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchboard_sdk::{Inbound, NativeMsgId, NetworkId, RoomKey, SubmitError};
use thiserror::Error;
use tokio::sync::oneshot;

pub use private::private_dir;
pub use read::PendingRow;

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

/// Told, on the writer thread and in commit order, of every new outbox row, so
/// delivery can take it from memory instead of reading it back from disk.
pub trait CommitListener: Send + Sync + 'static {
    fn rows_committed(&self, rows: Vec<(RoomKey, PendingRow)>);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub outbox_id: i64,
    pub bridged_id: i64,
    pub route: String,
    pub room: RoomKey,
    pub attempts: i64,
    pub reason: String,
}

/// A cheap, cloneable handle to the store.
#[derive(Clone)]
pub struct Store {
    writer: writer::WriterHandle,
    readers: Arc<read::ReadPool>,
}

pub const DATABASE_FILE: &str = "switchboard.sqlite3";

impl Store {
    /// Opens (creating if needed) the database in `state_dir` and applies migrations.
    /// The directory is made 0700 and the database files 0600 (see `private`).
    pub fn open(state_dir: &Path, listener: Arc<dyn CommitListener>) -> Result<Self, StoreError> {
        private::private_dir(state_dir).map_err(|source| StoreError::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let path = state_dir.join(DATABASE_FILE);
        private::private_database(&path).map_err(|source| StoreError::StateDir {
            path: path.clone(),
            source,
        })?;
        let mut conn = open_writer(&path)?;
        schema::migrate(&mut conn)?;
        let writer = writer::spawn(conn, listener)?;
        let readers = Arc::new(read::ReadPool::new(path));
        Ok(Self { writer, readers })
    }

    /// Records the event and its fan-out in one transaction; returns after the commit.
    pub async fn accept(
        &self,
        event: Inbound,
        destinations: Vec<Destination>,
    ) -> Result<AcceptOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(writer::Command::Accept {
            event: Arc::new(event),
            destinations,
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues the end of a row; the returned receiver resolves once it is committed.
    /// Callers that need the result visible (e.g. before an id lookup) await it.
    pub fn complete(&self, completion: Completion) -> Result<oneshot::Receiver<()>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Command::Complete { completion, reply })?;
        Ok(rx)
    }

    /// Notes a failed attempt (for operators looking at the outbox).
    pub fn record_failure(&self, outbox_id: i64, error: String) -> Result<(), StoreError> {
        self.writer
            .send(writer::Command::Failure { outbox_id, error })
    }

    /// Up to `limit` undelivered rows for `room` with an id above `after_id`, in order.
    pub async fn pending_after(
        &self,
        room: &RoomKey,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<PendingRow>, StoreError> {
        let room = room.clone();
        self.readers
            .with(move |conn| read::pending_after(conn, &room, after_id, limit))
            .await
    }

    /// The native ids (in part order) that a bridged message became in `room`,
    /// including the origin if the message came from there.
    pub async fn native_ids_in(
        &self,
        bridged_id: i64,
        room: &RoomKey,
    ) -> Result<Vec<NativeMsgId>, StoreError> {
        let room = room.clone();
        self.readers
            .with(move |conn| read::native_ids_in(conn, bridged_id, &room))
            .await
    }

    /// Sender name and plain text of a bridged message (for reply quotes).
    pub async fn summary(&self, bridged_id: i64) -> Result<Option<(String, String)>, StoreError> {
        self.readers
            .with(move |conn| read::summary(conn, bridged_id))
            .await
    }

    /// Rooms with undelivered rows and how many each has (delivery resumes there at start).
    pub async fn pending_rooms(&self) -> Result<Vec<(RoomKey, i64)>, StoreError> {
        self.readers.with(read::pending_rooms).await
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.readers.with(read::dead_letters).await
    }

    /// A value `network`'s adapter saved (see `AdapterState`).
    pub async fn adapter_state(
        &self,
        network: &NetworkId,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let (network, key) = (network.to_string(), key.to_owned());
        self.readers
            .with(move |conn| read::adapter_state(conn, &network, &key))
            .await
    }

    /// Saves an adapter's value with the next group commit; returns once durable.
    pub async fn save_adapter_state(
        &self,
        network: &NetworkId,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(writer::Command::SaveState {
            network: network.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// The state handle one network's adapter gets.
    pub fn state_for(&self, network: &NetworkId) -> switchboard_sdk::StateHandle {
        Arc::new(NetworkState {
            store: self.clone(),
            network: network.clone(),
        })
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(writer::Command::Flush { reply })?;
        rx.await.map_err(|_| StoreError::Closed)
    }
}

/// The writer's connection, configured (WAL, `synchronous = FULL`: see `schema`).
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    schema::configure(&conn)?;
    Ok(conn)
}

/// One network's view of `adapter_state`.
struct NetworkState {
    store: Store,
    network: NetworkId,
}

#[async_trait::async_trait]
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
