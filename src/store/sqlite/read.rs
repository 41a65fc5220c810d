//! Read-only queries, run on a small pool of connections off the async runtime.

use super::{DeadLetter, PendingRow, StoreError};
use crate::store::References;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use switchboard_sdk::{Inbound, NativeMsgId, RoomKey};
use tokio::sync::Semaphore;

/// Connections are opened on demand and kept for reuse. At most `MAX_READERS` reads
/// run at once, each on its own connection on the blocking pool: a flood of rooms
/// reading their backlog waits its turn instead of costing a connection, a page
/// cache and a thread each.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

const MAX_READERS: usize = 2;
/// Page cache per read connection, in KiB. Reads are short range scans and point
/// lookups; the kernel's page cache holds the file anyway.
const READ_CACHE_KIB: i64 = 512;

impl ReadPool {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_READERS)),
        }
    }

    pub async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // Owned, so that the bound holds even when the caller stops waiting.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => pool.open()?,
            };
            let result = f(&conn);
            pool.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "cache_size", -READ_CACHE_KIB)?;
        Ok(conn)
    }
}

pub fn pending_after(
    conn: &Connection,
    room: &RoomKey,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<PendingRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, o.seq, o.bridged_id, o.route, o.created_ms, o.attempts, b.target_id, b.reply_to_id, b.thread_id, b.event \
         FROM outbox o JOIN bridged_message b ON b.id = o.bridged_id \
         WHERE o.network = ?1 AND o.room = ?2 AND o.seq > ?3 ORDER BY o.seq LIMIT ?4",
    )?;
    let mut rows = stmt.query(params![
        room.network.as_str(),
        room.room.as_str(),
        after_seq,
        limit as i64
    ])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let json: String = row.get(9)?;
        out.push(PendingRow {
            outbox_id: row.get(0)?,
            seq: row.get(1)?,
            bridged_id: row.get(2)?,
            route: row.get(3)?,
            created_ms: row.get(4)?,
            attempts: row.get(5)?,
            references: References {
                target_id: row.get(6)?,
                reply_to_id: row.get(7)?,
                thread_id: row.get(8)?,
            },
            event: Arc::new(serde_json::from_str(&json)?),
        });
    }
    Ok(out)
}

pub fn native_ids_in(
    conn: &Connection,
    bridged_id: i64,
    room: &RoomKey,
) -> Result<Vec<NativeMsgId>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT native_id FROM native_copy WHERE bridged_id = ?1 AND network = ?2 AND room = ?3 ORDER BY part",
    )?;
    let ids = stmt
        .query_map(
            params![bridged_id, room.network.as_str(), room.room.as_str()],
            |row| row.get::<_, String>(0),
        )?
        .map(|id| id.map(NativeMsgId::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

pub fn summary(conn: &Connection, bridged_id: i64) -> Result<Option<(String, String)>, StoreError> {
    let found: Option<(String, String)> = conn
        .prepare_cached("SELECT sender_name, event FROM bridged_message WHERE id = ?1")?
        .query_row([bridged_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    match found {
        Some((sender, json)) => {
            let event: Inbound = serde_json::from_str(&json)?;
            Ok(Some((sender, event.content.to_plain())))
        }
        None => Ok(None),
    }
}

pub fn pending_rooms(conn: &Connection) -> Result<Vec<(RoomKey, i64)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT network, room, COUNT(*) FROM outbox GROUP BY network, room")?;
    let rooms = stmt
        .query_map([], |row| {
            Ok((
                RoomKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                row.get(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rooms)
}

/// A dead letter's columns with its message's sender and event, for its summary.
macro_rules! dead_letter_query {
    ($rest:literal) => {
        concat!(
            "SELECT d.outbox_id, d.bridged_id, d.route, d.network, d.room, d.attempts, d.reason, \
             d.created_ms, d.dead_ms, b.sender_name, b.event \
             FROM dead_letter d LEFT JOIN bridged_message b ON b.id = d.bridged_id ",
            $rest
        )
    };
}

pub fn dead_letters(conn: &Connection) -> Result<Vec<DeadLetter>, StoreError> {
    let mut stmt = conn.prepare_cached(dead_letter_query!("ORDER BY d.outbox_id"))?;
    read_dead_letters(stmt.query([])?)
}

/// The newest first; `dead_letter_by_age` serves the order.
pub fn recent_dead_letters(conn: &Connection, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
    let mut stmt = conn.prepare_cached(dead_letter_query!(
        "ORDER BY d.dead_ms DESC, d.outbox_id DESC LIMIT ?1"
    ))?;
    read_dead_letters(stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?)
}

fn read_dead_letters(mut rows: rusqlite::Rows<'_>) -> Result<Vec<DeadLetter>, StoreError> {
    let mut letters = Vec::new();
    while let Some(row) = rows.next()? {
        let sender: Option<String> = row.get(9)?;
        let json: Option<String> = row.get(10)?;
        let summary = match (sender, json) {
            (Some(sender), Some(json)) => {
                let event: Inbound = serde_json::from_str(&json)?;
                Some((sender, event.content.to_plain()))
            }
            _ => None,
        };
        letters.push(DeadLetter {
            outbox_id: row.get(0)?,
            bridged_id: row.get(1)?,
            route: row.get(2)?,
            room: RoomKey::new(row.get::<_, String>(3)?, row.get::<_, String>(4)?),
            attempts: row.get(5)?,
            reason: row.get(6)?,
            created_ms: row.get(7)?,
            dead_ms: row.get(8)?,
            summary,
        });
    }
    Ok(letters)
}

pub fn adapter_state(
    conn: &Connection,
    network: &str,
    key: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM adapter_state WHERE network = ?1 AND key = ?2")?
        .query_row(params![network, key], |row| row.get(0))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_beyond_the_bound_wait_their_turn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let pool = Arc::new(ReadPool::new(path));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let reads: Vec<_> = (0..12)
            .map(|_| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    pool.with(move |conn| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let count: i64 =
                            conn.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))?;
                        // Long enough for the other reads to pile up behind this one.
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(count)
                    })
                    .await
                })
            })
            .collect();
        for read in reads {
            assert_eq!(read.await.unwrap().unwrap(), 0);
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=MAX_READERS).contains(&most),
            "{most} reads ran at once"
        );
        let idle = pool.idle.lock().unwrap().len();
        assert!(idle <= MAX_READERS, "{idle} connections were opened");
    }
}
