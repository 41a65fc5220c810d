//! Durability off the relay path: what the writer has written reaches delivery at
//! once, and reaches its callers (who acknowledge their sources) only once on disk.
//!
//! - The **syncer** thread `fdatasync`s the WAL and then answers the callers that
//!   wait for the disk (accepts, saved adapter state, flushes). One sync covers every
//!   batch written before it, so while it waits on a slow disk the writer goes on
//!   writing (and delivering) the next batches, and the next sync covers them all.
//! - The **checkpointer** thread copies the WAL back into the database on its own
//!   connection, which syncs both files; the writer waits for that only once the WAL
//!   passes `WAL_LIMIT_PAGES`, so that it starts over.
//! - The WAL's usual size is written out when the store opens
//!   (`reserve_wal_space`), so that the syncer's syncs only write data.
//! - The **announcer** task tells delivery and callers, on the callers' runtime (a
//!   task woken from a foreign thread costs that runtime a syscall each, so the
//!   threads wake the announcer once per batch and it wakes the callers).
//!
//! docs/durability.md says what each failure does under this scheme.

use super::schema;
use super::writer::Reply;
use crate::store::{CommittedRows, StoreError};
use rusqlite::Connection;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How the syncer makes the WAL durable; a test can hold it back or fail it.
pub type WalSync = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// `fdatasync` of the database's WAL file, opened on first use (SQLite creates it
/// when the writer opens the database; it stays the same file while the writer's
/// connection is open). A sync of any descriptor of a file writes back all of that
/// file's data, whoever wrote it: the same call SQLite makes on commit with
/// `synchronous = FULL`.
pub fn wal_fdatasync(database: &Path) -> WalSync {
    let wal_path = wal_path(database);
    let mut wal: Option<File> = None;
    Box::new(move || {
        let file = match &mut wal {
            Some(file) => file,
            None => wal.insert(File::open(&wal_path)?),
        };
        file.sync_data()
    })
}

/// What the announcer is asked to tell, in the order the threads tell it.
pub enum Announcement {
    /// A batch is written: its rows go to delivery, and the callers who need not wait
    /// for the disk get their answers.
    Written {
        rows: CommittedRows,
        replies: Vec<Reply>,
    },
    /// Every batch written before is on disk (or the sync failed): the callers who
    /// waited for it.
    Synced {
        replies: Vec<Reply>,
        result: Result<(), String>,
    },
}

impl Announcement {
    fn tell(self, delivery: &UnboundedSender<CommittedRows>) {
        match self {
            Announcement::Written { rows, replies } => {
                if !rows.is_empty() {
                    // Nobody delivers (e.g. `matrix-registration`): the rows wait on disk.
                    let _ = delivery.send(rows);
                }
                replies.into_iter().for_each(Reply::send);
            }
            Announcement::Synced { replies, result } => match result {
                Ok(()) => replies.into_iter().for_each(Reply::send),
                Err(error) => {
                    for reply in replies {
                        reply.refuse(StoreError::SyncFailed(error.clone()));
                    }
                }
            },
        }
    }
}

/// Where announcements go: to the announcer task on the callers' runtime, or, with
/// no runtime (e.g. the `matrix-registration` command) or once it is gone (shutdown),
/// told in place by the thread that has them.
#[derive(Clone)]
pub struct Announce {
    announcer: Option<UnboundedSender<Announcement>>,
    delivery: UnboundedSender<CommittedRows>,
}

impl Announce {
    pub fn new(delivery: UnboundedSender<CommittedRows>) -> Self {
        let announcer = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (to_announcer, announcements) = tokio::sync::mpsc::unbounded_channel();
            runtime.spawn(announcer(announcements, delivery.clone()));
            to_announcer
        });
        Self {
            announcer,
            delivery,
        }
    }

    pub fn send(&self, announcement: Announcement) {
        let unsent = match &self.announcer {
            Some(announcer) => match announcer.send(announcement) {
                Ok(()) => return,
                Err(unsent) => unsent.0,
            },
            None => announcement,
        };
        unsent.tell(&self.delivery);
    }
}

/// Tells announcements in the order they were sent, on the callers' runtime.
async fn announcer(
    mut announcements: tokio::sync::mpsc::UnboundedReceiver<Announcement>,
    delivery: UnboundedSender<CommittedRows>,
) {
    while let Some(announcement) = announcements.recv().await {
        announcement.tell(&delivery);
    }
}

/// Set once a sync failed: after a failed `fsync` the kernel may have dropped the
/// pages it could not write and report the next sync clean, so nothing written since
/// can be known to be on disk. The writer then refuses every command until the
/// daemon restarts and reads back what the disk really holds.
pub type SyncFailed = Arc<AtomicBool>;

/// What every command after a failed sync is told.
pub const EARLIER_SYNC_FAILED: &str = "an earlier sync failed";

/// Starts the syncer; the writer sends it, after each batch, the replies that wait
/// for the disk.
pub fn spawn_syncer(
    mut sync: WalSync,
    announce: Announce,
    failed: SyncFailed,
) -> std::io::Result<mpsc::Sender<Vec<Reply>>> {
    let (tx, rx) = mpsc::channel::<Vec<Reply>>();
    std::thread::Builder::new()
        .name("store-sync".into())
        .spawn(move || {
            while let Ok(mut replies) = rx.recv() {
                while let Ok(more) = rx.try_recv() {
                    replies.extend(more);
                }
                let result = if failed.load(Ordering::Acquire) {
                    Err(EARLIER_SYNC_FAILED.to_owned())
                } else {
                    let started = std::time::Instant::now();
                    let synced = sync().map_err(|error| error.to_string());
                    crate::metrics::store_synced(started.elapsed());
                    synced
                };
                if let Err(error) = &result
                    && !failed.swap(true, Ordering::AcqRel)
                {
                    tracing::error!(
                        %error,
                        "store: the disk did not confirm a sync; nothing more is accepted until the daemon restarts"
                    );
                    crate::metrics::store_sync_failed();
                }
                announce.send(Announcement::Synced { replies, result });
            }
        })?;
    Ok(tx)
}

/// WAL pages past which the writer waits for a checkpoint before its next batch.
///
/// SQLite reuses the WAL from its start only when a write begins after a checkpoint
/// copied every frame back; beside a writer that keeps writing, a checkpoint on
/// another connection never gets there (new frames arrive while it syncs), so the WAL
/// would only grow. A growing WAL is slow to write to: every append allocates blocks,
/// and on ext4 that waits for the journal whenever a sync commits it (3-7 ms per
/// write were seen under load), while a reused WAL is overwritten in place. So once
/// the WAL is past this, the writer pauses for one checkpoint (the earlier passive
/// ones have copied most of it back, so this one is short) and the next write starts
/// the WAL over.
pub const WAL_LIMIT_PAGES: i64 = 2 * schema::CHECKPOINT_PAGES;

/// Frames of WAL space written out (as zeros) when the store opens: the WAL's usual
/// size, `WAL_LIMIT_PAGES`, and one eighth more for the batch that passes it.
pub const WAL_RESERVED_FRAMES: i64 = WAL_LIMIT_PAGES + WAL_LIMIT_PAGES / 8;

/// Writes the WAL file out to `WAL_RESERVED_FRAMES` frames of zeros and syncs it, so
/// that commits overwrite blocks the file already has instead of appending.
///
/// Why: a sync after an append must also commit the file's new size and blocks to
/// the file system's journal, and one after an overwrite only writes the data (on
/// ext4 here, about half the time; docs/benchmarks.md). SQLite deletes the WAL when
/// the last connection closes, so every run starts with a small one and would grow
/// it one append (and one journal commit per sync) at a time.
///
/// Why it is safe: SQLite never shrinks the WAL (no `journal_size_limit` is set) and
/// writes it from the start again after each complete checkpoint, so bytes past its
/// last valid frame are the normal state of a WAL. Recovery reads frames only until
/// the first whose salt and checksum do not match the header, which zeros never do.
/// Only the bytes past the file's end are written, before the writer's first batch,
/// while no other connection writes.
pub fn reserve_wal_space(database: &Path, conn: &Connection) -> std::io::Result<()> {
    use std::io::Write;
    let page_size: i64 = conn
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .map_err(std::io::Error::other)?;
    let reserved = WAL_HEADER_BYTES + WAL_RESERVED_FRAMES * (WAL_FRAME_HEADER_BYTES + page_size);
    let mut wal = std::fs::OpenOptions::new()
        .append(true)
        .open(wal_path(database))?;
    let mut missing = u64::try_from(reserved)
        .unwrap_or(0)
        .saturating_sub(wal.metadata()?.len());
    if missing == 0 {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    while missing > 0 {
        let chunk = missing.min(zeros.len() as u64) as usize;
        wal.write_all(&zeros[..chunk])?;
        missing -= chunk as u64;
    }
    wal.sync_all()
}

/// Bytes of the WAL's file header and of each frame's header (sqlite.org/fileformat).
const WAL_HEADER_BYTES: i64 = 32;
const WAL_FRAME_HEADER_BYTES: i64 = 24;

fn wal_path(database: &Path) -> PathBuf {
    let mut wal_path = database.as_os_str().to_owned();
    wal_path.push("-wal");
    PathBuf::from(wal_path)
}

/// How often the checkpointer looks at the WAL when nobody asked it to.
const IDLE_CHECK: Duration = Duration::from_secs(5);

thread_local! {
    /// Pages in the WAL after the last commit on this thread's connection (the
    /// writer's), as SQLite's WAL hook reports them.
    static WAL_PAGES: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Makes `wal_pages` report `conn`'s WAL after each commit. Replaces SQLite's own
/// autocheckpoint (itself a WAL hook), which the writer must not run anyway.
pub fn watch_wal_pages(conn: &Connection) {
    fn record(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
        WAL_PAGES.with(|count| count.set(pages.into()));
        Ok(())
    }
    conn.wal_hook(Some(record));
}

/// Pages in the WAL after the last commit made on this thread (see `watch_wal_pages`).
pub fn wal_pages() -> i64 {
    WAL_PAGES.with(std::cell::Cell::get)
}

/// What the writer asks of the checkpointer.
pub enum CheckpointRequest {
    /// `CHECKPOINT_PAGES` were written since the WAL started over.
    Soon,
    /// The WAL is past `WAL_LIMIT_PAGES`: the writer waits, idle, until this is
    /// answered.
    Now(mpsc::Sender<()>),
}

/// The checkpointer: its own connection, whose checkpoints sync the WAL before they
/// copy it back and the database file after.
pub fn spawn_checkpointer(database: &Path) -> Result<mpsc::Sender<CheckpointRequest>, StoreError> {
    let conn = Connection::open(database)?;
    schema::configure_checkpointer(&conn)?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            loop {
                let waiter = match rx.recv_timeout(IDLE_CHECK) {
                    Ok(CheckpointRequest::Soon) | Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Ok(CheckpointRequest::Now(waiter)) => Some(waiter),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                if let Err(error) = checkpoint(&conn) {
                    tracing::error!(%error, "store: checkpoint failed");
                }
                if let Some(waiter) = waiter {
                    let _ = waiter.send(());
                }
            }
        })
        .map_err(|source| StoreError::StateDir {
            path: "store-checkpoint thread".into(),
            source,
        })?;
    Ok(tx)
}

/// One passive checkpoint: never waits for the writer or readers.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

#[cfg(test)]
mod tests;
