//! The single writer thread: applies queued commands in batches, one transaction per
//! batch (group commit), and only then answers the callers and wakes delivery.

use super::{AcceptOutcome, CommitListener, Completion, PendingRow, StoreError};
use crate::router::Destination;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::sync::Arc;
use std::sync::mpsc;
use switchboard_sdk::{EventKind, Inbound, NativeMsgId, NetworkId, RoomKey};
use tokio::sync::oneshot;

/// Most commands one transaction takes; bounds commit latency under a flood.
const MAX_BATCH: usize = 2048;

pub enum Command {
    Accept {
        event: Box<Inbound>,
        destinations: Vec<Destination>,
        reply: oneshot::Sender<Result<AcceptOutcome, StoreError>>,
    },
    Complete {
        completion: Completion,
        reply: oneshot::Sender<()>,
    },
    Failure {
        outbox_id: i64,
        error: String,
    },
    SaveState {
        network: NetworkId,
        key: String,
        value: String,
        reply: oneshot::Sender<()>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Clone)]
pub struct WriterHandle(mpsc::Sender<Command>);

impl WriterHandle {
    pub fn send(&self, command: Command) -> Result<(), StoreError> {
        self.0.send(command).map_err(|_| StoreError::Closed)
    }
}

pub fn spawn(
    conn: Connection,
    listener: Arc<dyn CommitListener>,
) -> Result<WriterHandle, StoreError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(conn, rx, listener))
        .map_err(|source| StoreError::StateDir {
            path: "store-writer thread".into(),
            source,
        })?;
    Ok(WriterHandle(tx))
}

/// What to tell a caller once its batch is committed (or failed).
enum Pending {
    Accept(
        oneshot::Sender<Result<AcceptOutcome, StoreError>>,
        Result<AcceptOutcome, StoreError>,
    ),
    Done(oneshot::Sender<()>),
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Command>, listener: Arc<dyn CommitListener>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let mut pending = Vec::with_capacity(batch.len());
        let mut new_rows: Vec<(RoomKey, PendingRow)> = Vec::new();
        let committed = apply_batch(&mut conn, batch, &mut pending, &mut new_rows);
        if let Err(error) = &committed {
            tracing::error!(%error, "store: batch commit failed; its events were not accepted");
        }
        if committed.is_ok() && !new_rows.is_empty() {
            listener.rows_committed(new_rows);
        }
        for item in pending {
            match item {
                Pending::Accept(reply, result) => {
                    let result = match &committed {
                        Ok(()) => result,
                        Err(error) => Err(StoreError::Sqlite(clone_error(error))),
                    };
                    let _ = reply.send(result);
                }
                Pending::Done(reply) => {
                    let _ = reply.send(());
                }
            }
        }
    }
}

fn clone_error(error: &rusqlite::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(error.to_string().into())
}

fn apply_batch(
    conn: &mut Connection,
    batch: Vec<Command>,
    pending: &mut Vec<Pending>,
    new_rows: &mut Vec<(RoomKey, PendingRow)>,
) -> rusqlite::Result<()> {
    let mut tx = conn.transaction()?;
    for command in batch {
        match command {
            Command::Accept {
                event,
                destinations,
                reply,
            } => {
                let event: Arc<Inbound> = Arc::from(event);
                match in_savepoint(&mut tx, |tx| accept(tx, &event, &destinations)) {
                    Ok((outcome, rows)) => {
                        new_rows.extend(rows);
                        pending.push(Pending::Accept(reply, Ok(outcome)));
                    }
                    Err(error) => {
                        pending.push(Pending::Accept(reply, Err(StoreError::from(error))))
                    }
                }
            }
            Command::Complete { completion, reply } => {
                if let Err(error) = in_savepoint(&mut tx, |tx| complete(tx, &completion)) {
                    tracing::error!(%error, ?completion, "store: could not record a completed delivery");
                }
                pending.push(Pending::Done(reply));
            }
            Command::Failure { outbox_id, error } => {
                // Bookkeeping only: its failure must not cost the batch its commit.
                let noted = in_savepoint(&mut tx, |tx| {
                    tx.prepare_cached(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                    )?
                    .execute(params![outbox_id, error])
                });
                if let Err(error) = noted {
                    tracing::error!(%error, outbox_id, "store: could not note a failed attempt");
                }
            }
            Command::SaveState {
                network,
                key,
                value,
                reply,
            } => {
                let saved = in_savepoint(&mut tx, |tx| {
                    tx.prepare_cached(
                        "INSERT INTO adapter_state (network, key, value) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (network, key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute(params![network.as_str(), key, value])
                });
                if let Err(error) = saved {
                    tracing::error!(%error, %network, "store: could not save adapter state");
                }
                pending.push(Pending::Done(reply));
            }
            Command::Flush { reply } => pending.push(Pending::Done(reply)),
        }
    }
    tx.commit()
}

/// Runs `f` so that its failure undoes only its own writes, not the whole batch.
fn in_savepoint<T>(
    tx: &mut Transaction<'_>,
    f: impl FnOnce(&rusqlite::Savepoint<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let sp = tx.savepoint()?;
    let result = f(&sp);
    if result.is_ok() {
        sp.commit()?;
    }
    result
}

fn lookup(
    conn: &Connection,
    room: &RoomKey,
    native_id: &NativeMsgId,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT bridged_id FROM native_copy WHERE network = ?1 AND room = ?2 AND native_id = ?3",
    )?
    .query_row(
        params![
            room.network.as_str(),
            room.room.as_str(),
            native_id.as_str()
        ],
        |row| row.get(0),
    )
    .optional()
}

/// Records one event and its fan-out; returns the outcome and the new outbox rows.
fn accept(
    conn: &Connection,
    event: &Arc<Inbound>,
    destinations: &[Destination],
) -> rusqlite::Result<(AcceptOutcome, Vec<(RoomKey, PendingRow)>)> {
    if let Some(native_id) = &event.native_id
        && lookup(conn, &event.room, native_id)?.is_some()
    {
        return Ok((AcceptOutcome::Duplicate, Vec::new()));
    }
    let target_id = match &event.kind {
        EventKind::Edit { target } | EventKind::Delete { target } => {
            match lookup(conn, &event.room, target)? {
                Some(id) => Some(id),
                None => return Ok((AcceptOutcome::UnknownTarget, Vec::new())),
            }
        }
        _ => None,
    };
    let reply_to_id = match &event.reply_to {
        Some(id) => lookup(conn, &event.room, id)?,
        None => None,
    };
    let thread_id = match &event.thread {
        Some(id) => lookup(conn, &event.room, id)?,
        None => None,
    };
    let json = serde_json::to_string(&**event)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(error.into()))?;
    let now = switchboard_sdk::event::now_ms();
    conn.prepare_cached(
        "INSERT INTO bridged_message (origin_network, origin_room, origin_native_id, target_id, reply_to_id, \
         thread_id, sender_name, event, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        event.room.network.as_str(),
        event.room.room.as_str(),
        event.native_id.as_ref().map(NativeMsgId::as_str),
        target_id,
        reply_to_id,
        thread_id,
        event.sender.display_name,
        json,
        now
    ])?;
    let bridged_id = conn.last_insert_rowid();
    if let Some(native_id) = &event.native_id {
        conn.prepare_cached("INSERT INTO native_copy (network, room, native_id, bridged_id, part) VALUES (?1, ?2, ?3, ?4, -1)")?
            .execute(params![
                event.room.network.as_str(),
                event.room.room.as_str(),
                native_id.as_str(),
                bridged_id
            ])?;
    }
    if matches!(event.kind, EventKind::Delete { .. }) {
        conn.prepare_cached("UPDATE bridged_message SET deleted_ms = ?2 WHERE id = ?1")?
            .execute(params![target_id, now])?;
    }
    let mut outbox = Vec::with_capacity(destinations.len());
    let mut rows = Vec::with_capacity(destinations.len());
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (bridged_id, route, network, room, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for destination in destinations {
        insert.execute(params![
            bridged_id,
            &*destination.route,
            destination.room.network.as_str(),
            destination.room.room.as_str(),
            now
        ])?;
        let outbox_id = conn.last_insert_rowid();
        outbox.push((destination.room.clone(), outbox_id));
        rows.push((
            destination.room.clone(),
            PendingRow {
                outbox_id,
                bridged_id,
                route: destination.route.to_string(),
                created_ms: now,
                attempts: 0,
                target_id,
                reply_to_id,
                thread_id,
                event: event.clone(),
            },
        ));
    }
    Ok((AcceptOutcome::Accepted { bridged_id, outbox }, rows))
}

fn complete(conn: &Connection, completion: &Completion) -> rusqlite::Result<()> {
    match completion {
        Completion::Delivered {
            outbox_id,
            bridged_id,
            room,
            native_ids,
        } => {
            let mut insert = conn.prepare_cached(
                "INSERT OR IGNORE INTO native_copy (network, room, native_id, bridged_id, part) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (part, native_id) in native_ids.iter().enumerate() {
                insert.execute(params![
                    room.network.as_str(),
                    room.room.as_str(),
                    native_id.as_str(),
                    bridged_id,
                    part as i64
                ])?;
            }
            delete_outbox(conn, *outbox_id)
        }
        Completion::Skipped { outbox_id } => delete_outbox(conn, *outbox_id),
        Completion::Dead { outbox_id, reason } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO dead_letter (outbox_id, bridged_id, route, network, room, created_ms, attempts, reason, dead_ms) \
                 SELECT id, bridged_id, route, network, room, created_ms, attempts, ?2, ?3 FROM outbox WHERE id = ?1",
            )?
            .execute(params![outbox_id, reason, switchboard_sdk::event::now_ms()])?;
            delete_outbox(conn, *outbox_id)
        }
    }
}

fn delete_outbox(conn: &Connection, outbox_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
        .execute([outbox_id])?;
    Ok(())
}
