//! The durable `Store`: SQLite (bundled), WAL, a full fsync per commit.
//!
//! All writes go through one writer thread that groups whatever is queued into one
//! transaction (group commit), so a burst costs one fsync, not one per event. After
//! the commit, new outbox rows are sent to delivery in memory (`CommittedRows`).
//! Reads (a room's backlog at start or after an overflow, id lookups) use a small
//! pool of read connections; WAL lets them run beside the writer.

mod read;
mod schema;
mod writer;

use super::{
    AcceptOutcome, Clock, CommittedRowsReceiver, Completion, DeadLetter, Destination, PendingRow,
    PruneBefore, Pruned, Store, StoreError, private,
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
        let (committed, receiver) = tokio::sync::mpsc::unbounded_channel();
        let writer = writer::spawn(conn, committed, clock)?;
        let readers = Arc::new(read::ReadPool::new(path));
        Ok((Self { writer, readers }, receiver))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn accept(
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

/// The writer's connection, configured (WAL, `synchronous = FULL`: see `schema`).
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    schema::configure(&conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
