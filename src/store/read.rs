//! Read-only queries, run on a small pool of connections off the async runtime.

use super::{DeadLetter, StoreError};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::PathBuf;
use std::sync::Mutex;
use switchboard_sdk::{Inbound, NativeMsgId, RoomKey};

/// One undelivered outbox row with the event it carries.
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub outbox_id: i64,
    pub bridged_id: i64,
    pub route: String,
    pub created_ms: i64,
    pub attempts: i64,
    pub target_id: Option<i64>,
    pub reply_to_id: Option<i64>,
    pub thread_id: Option<i64>,
    /// Shared by the rows of every destination room of the same event.
    pub event: std::sync::Arc<Inbound>,
}

/// Connections are opened on demand and kept for reuse; at most a handful exist
/// because reads are short and run on the blocking pool.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

const MAX_IDLE: usize = 4;

impl ReadPool {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub async fn with<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_with_flags(
                        &pool.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    conn.busy_timeout(std::time::Duration::from_secs(10))?;
                    conn
                }
            };
            let result = f(&conn);
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

pub fn pending_after(
    conn: &Connection,
    room: &RoomKey,
    after_id: i64,
    limit: usize,
) -> Result<Vec<PendingRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, o.bridged_id, o.route, o.created_ms, o.attempts, b.target_id, b.reply_to_id, b.thread_id, b.event \
         FROM outbox o JOIN bridged_message b ON b.id = o.bridged_id \
         WHERE o.network = ?1 AND o.room = ?2 AND o.id > ?3 ORDER BY o.id LIMIT ?4",
    )?;
    let mut rows = stmt.query(params![
        room.network.as_str(),
        room.room.as_str(),
        after_id,
        limit as i64
    ])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let json: String = row.get(8)?;
        out.push(PendingRow {
            outbox_id: row.get(0)?,
            bridged_id: row.get(1)?,
            route: row.get(2)?,
            created_ms: row.get(3)?,
            attempts: row.get(4)?,
            target_id: row.get(5)?,
            reply_to_id: row.get(6)?,
            thread_id: row.get(7)?,
            event: std::sync::Arc::new(serde_json::from_str(&json)?),
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

pub fn dead_letters(conn: &Connection) -> Result<Vec<DeadLetter>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT outbox_id, bridged_id, route, network, room, attempts, reason FROM dead_letter ORDER BY outbox_id",
    )?;
    let rows = stmt
        .query_map([], |row| {
            Ok(DeadLetter {
                outbox_id: row.get(0)?,
                bridged_id: row.get(1)?,
                route: row.get(2)?,
                room: RoomKey::new(row.get::<_, String>(3)?, row.get::<_, String>(4)?),
                attempts: row.get(5)?,
                reason: row.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
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
