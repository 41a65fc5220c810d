//! The durable `Store`: SQLite (bundled), WAL, and nothing acknowledged before it is
//! on disk.
//!
//! All writes go through one writer thread that groups whatever is queued into one
//! transaction (group commit). As soon as a batch is written (in the kernel, where a
//! crash of this process cannot take it), its new outbox rows are sent to delivery in
//! memory (`CommittedRows`); its callers are answered once a `fdatasync` of the WAL
//! has put it on disk (`sync`), so one slow sync delays acknowledgements, not relays.
//! Reads (a room's backlog at start or after an overflow, id lookups) use a small
//! pool of read connections; WAL lets them run beside the writer.

mod read;
mod schema;
mod sync;
mod writer;

pub use sync::WalSync;

use super::{
    AcceptOutcome, Clock, CommittedRowsReceiver, Completion, DeadLetter, Destination, PendingRow,
    PruneBefore, Pruned, Requeue, Store, StoreError, private,
};
use async_trait::async_trait;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use switchboard_sdk::{Inbound, NativeMsgId, NetworkId, RoomKey};
use tokio::sync::oneshot;

pub const DATABASE_FILE: &str = "switchboard.sqlite3";

/// A cheap, cloneable handle to the SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: writer::WriterHandle,
    readers: Arc<read::ReadPool>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `state_dir` and applies migrations.
    /// The directory is made 0700 and the database files 0600 (see `private`).
    /// Committed outbox rows arrive on the returned receiver (drop it if nothing
    /// delivers).
    pub fn open(state_dir: &Path) -> Result<(Self, CommittedRowsReceiver), StoreError> {
        Self::open_with_clock(state_dir, super::system_clock())
    }

    /// `open`, with rows stamped (and aged) by `clock` instead of the wall clock.
    pub fn open_with_clock(
        state_dir: &Path,
        clock: Clock,
    ) -> Result<(Self, CommittedRowsReceiver), StoreError> {
        let wal_sync = sync::wal_fdatasync(&state_dir.join(DATABASE_FILE));
        Self::open_with(state_dir, clock, wal_sync)
    }

    /// `open_with_clock`, with the WAL made durable by `wal_sync` (tests hold it back
    /// or fail it).
    pub fn open_with(
        state_dir: &Path,
        clock: Clock,
        wal_sync: WalSync,
    ) -> Result<(Self, CommittedRowsReceiver), StoreError> {
        private::private_dir(state_dir).map_err(|source| StoreError::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let path = state_dir.join(DATABASE_FILE);
        private::private_database(&path).map_err(|source| StoreError::StateDir {
            path: path.clone(),
            source,
        })?;
        let conn = open_writer(&path)?;
        let (committed, receiver) = tokio::sync::mpsc::unbounded_channel();
        let writer = writer::spawn(conn, &path, committed, clock, wal_sync)?;
        let readers = Arc::new(read::ReadPool::new(path));
        Ok((Self { writer, readers }, receiver))
    }
}

impl SqliteStore {
    /// An accept answered once on disk (`wait_for_disk`) or once written.
    async fn accept_answered(
        &self,
        event: Inbound,
        destinations: Vec<Destination>,
        wait_for_disk: bool,
    ) -> Result<AcceptOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(writer::Command::Accept {
            event: Arc::new(event),
            destinations,
            wait_for_disk,
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn accept(
        &self,
        event: Inbound,
        destinations: Vec<Destination>,
    ) -> Result<AcceptOutcome, StoreError> {
        self.accept_answered(event, destinations, true).await
    }

    async fn accept_unacknowledged(
        &self,
        event: Inbound,
        destinations: Vec<Destination>,
    ) -> Result<AcceptOutcome, StoreError> {
        self.accept_answered(event, destinations, false).await
    }

    fn complete(&self, completion: Completion) -> Result<oneshot::Receiver<()>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Command::Complete { completion, reply })?;
        Ok(rx)
    }

    fn record_failure(&self, outbox_id: i64, error: String) -> Result<(), StoreError> {
        self.writer
            .send(writer::Command::Failure { outbox_id, error })
    }

    async fn pending_after(
        &self,
        room: &RoomKey,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<PendingRow>, StoreError> {
        let room = room.clone();
        self.readers
            .with(move |conn| read::pending_after(conn, &room, after_seq, limit))
            .await
    }

    async fn native_ids_in(
        &self,
        bridged_id: i64,
        room: &RoomKey,
    ) -> Result<Vec<NativeMsgId>, StoreError> {
        let room = room.clone();
        self.readers
            .with(move |conn| read::native_ids_in(conn, bridged_id, &room))
            .await
    }

    async fn summary(&self, bridged_id: i64) -> Result<Option<(String, String)>, StoreError> {
        self.readers
            .with(move |conn| read::summary(conn, bridged_id))
            .await
    }

    async fn pending_rooms(&self) -> Result<Vec<(RoomKey, i64)>, StoreError> {
        self.readers.with(read::pending_rooms).await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.readers.with(read::dead_letters).await
    }

    async fn recent_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.readers
            .with(move |conn| read::recent_dead_letters(conn, limit))
            .await
    }

    async fn requeue(&self, which: Requeue) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Command::Requeue { which, reply })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn adapter_state(
        &self,
        network: &NetworkId,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let (network, key) = (network.to_string(), key.to_owned());
        self.readers
            .with(move |conn| read::adapter_state(conn, &network, &key))
            .await
    }

    async fn save_adapter_state(
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

    async fn prune(&self, before: PruneBefore, limit: usize) -> Result<Pruned, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(writer::Command::Prune {
            before,
            limit,
            reply,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(writer::Command::Flush { reply })?;
        rx.await.map_err(|_| StoreError::Closed)
    }
}

/// The writer's connection, migrated and with its run begun (synced by SQLite), then
/// configured to leave syncing to `sync` (see `schema::configure_writer`).
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    schema::configure_common(&conn)?;
    schema::migrate(&mut conn)?;
    schema::begin_run(&mut conn)?;
    schema::configure_writer(&conn)?;
    if let Err(error) = sync::reserve_wal_space(path, &conn) {
        // Only slower: commits then append to the WAL, as without the reservation.
        tracing::warn!(%error, path = %path.display(), "store: cannot reserve space for the write-ahead log");
    }
    Ok(conn)
}

#[cfg(test)]
mod tests;
