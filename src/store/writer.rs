//! The single writer thread: applies queued commands in batches, one transaction per
//! batch (group commit), and only then answers the callers and wakes delivery.
//!
//! The answering runs on the callers' runtime when there is one (the announcer task):
//! a task woken from a foreign thread costs that runtime a syscall each, so the
//! writer wakes the announcer once per batch and the announcer wakes the callers.
//!
//! A batch runs without savepoints; only if one of its commands fails is it rolled
//! back and run again with a savepoint per command, so that the failure costs that
//! command alone.

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
        event: Arc<Inbound>,
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
    let announce = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let (to_announcer, batches) = tokio::sync::mpsc::unbounded_channel();
            runtime.spawn(announcer(batches, listener.clone()));
            Announce::Runtime(to_announcer)
        }
        // Outside a runtime (e.g. the `matrix-registration` command), in place.
        Err(_) => Announce::InPlace,
    };
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(conn, rx, announce, listener))
        .map_err(|source| StoreError::StateDir {
            path: "store-writer thread".into(),
            source,
        })?;
    Ok(WriterHandle(tx))
}

/// Where committed batches are announced (to delivery and the callers).
enum Announce {
    /// To the announcer task on the callers' runtime.
    Runtime(tokio::sync::mpsc::UnboundedSender<Committed>),
    /// On the writer thread.
    InPlace,
}

/// Announces batches in commit order, on the runtime of the callers it wakes.
async fn announcer(
    mut batches: tokio::sync::mpsc::UnboundedReceiver<Committed>,
    listener: Arc<dyn CommitListener>,
) {
    while let Some(committed) = batches.recv().await {
        committed.announce(&*listener);
    }
}

/// A batch after its transaction: what to tell delivery and each caller.
struct Committed {
    batch: Vec<Command>,
    outcome: rusqlite::Result<Vec<Applied>>,
    new_rows: Vec<(RoomKey, PendingRow)>,
}

impl Committed {
    /// Hands the new rows to delivery, then answers every caller.
    fn announce(self, listener: &dyn CommitListener) {
        if self.outcome.is_ok() && !self.new_rows.is_empty() {
            listener.rows_committed(self.new_rows);
        }
        answer(self.batch, self.outcome);
    }
}

/// What one command did, told to its caller once the batch is committed.
enum Applied {
    Accept(Result<AcceptOutcome, StoreError>),
    Done,
}

/// How a batch isolates its commands from each other.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// All in one transaction, no savepoints: the cheap path, taken first.
    None,
    /// Each command in its own savepoint, so a failing one undoes only its own
    /// writes: the batch is re-run this way only after a command failed.
    PerCommand,
}

/// A command failed in a batch run without isolation; nothing was committed.
struct CommandFailed;

fn run(
    mut conn: Connection,
    rx: mpsc::Receiver<Command>,
    announce: Announce,
    listener: Arc<dyn CommitListener>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let committed = process(&mut conn, batch);
        match &announce {
            Announce::Runtime(announcer) => {
                // The runtime is gone only at shutdown; its callers are gone with it.
                if let Err(unsent) = announcer.send(committed) {
                    unsent.0.announce(&*listener);
                }
            }
            Announce::InPlace => committed.announce(&*listener),
        }
    }
}

/// Commits one batch; what it committed is announced by the caller.
fn process(conn: &mut Connection, batch: Vec<Command>) -> Committed {
    let mut new_rows: Vec<(RoomKey, PendingRow)> = Vec::new();
    let outcome = match apply_batch(conn, &batch, Isolation::None, &mut new_rows) {
        Ok(result) => result,
        Err(CommandFailed) => {
            new_rows.clear();
            match apply_batch(conn, &batch, Isolation::PerCommand, &mut new_rows) {
                Ok(result) => result,
                Err(CommandFailed) => unreachable!("isolated commands never fail the batch"),
            }
        }
    };
    if let Err(error) = &outcome {
        tracing::error!(%error, "store: batch commit failed; its events were not accepted");
    }
    Committed {
        batch,
        outcome,
        new_rows,
    }
}

/// Tells every caller of the batch what became of its command.
fn answer(batch: Vec<Command>, committed: rusqlite::Result<Vec<Applied>>) {
    let applied = match committed {
        Ok(applied) => applied,
        Err(error) => batch
            .iter()
            .map(|_| Applied::Accept(Err(StoreError::Sqlite(clone_error(&error)))))
            .collect(),
    };
    for (command, applied) in batch.into_iter().zip(applied) {
        match (command, applied) {
            (Command::Accept { reply, .. }, Applied::Accept(result)) => {
                let _ = reply.send(result);
            }
            (Command::Accept { reply, .. }, Applied::Done) => {
                let _ = reply.send(Err(StoreError::Closed));
            }
            (Command::Complete { reply, .. }, _)
            | (Command::SaveState { reply, .. }, _)
            | (Command::Flush { reply }, _) => {
                let _ = reply.send(());
            }
            (Command::Failure { .. }, _) => {}
        }
    }
}

fn clone_error(error: &rusqlite::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(error.to_string().into())
}

/// Applies the batch in one transaction. `Ok(Err(_))` is a failed commit (every
/// caller is told); `Err(CommandFailed)` means re-run it with `PerCommand`.
fn apply_batch(
    conn: &mut Connection,
    batch: &[Command],
    isolation: Isolation,
    new_rows: &mut Vec<(RoomKey, PendingRow)>,
) -> Result<rusqlite::Result<Vec<Applied>>, CommandFailed> {
    let mut tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(error) => return Ok(Err(error)),
    };
    let mut applied = Vec::with_capacity(batch.len());
    for command in batch {
        let result = match isolation {
            Isolation::None => apply(&tx, command, new_rows),
            Isolation::PerCommand => in_savepoint(&mut tx, |sp| apply(sp, command, new_rows)),
        };
        match result {
            Ok(outcome) => applied.push(outcome),
            Err(_) if isolation == Isolation::None => return Err(CommandFailed),
            Err(error) => applied.push(failed(command, error)),
        }
    }
    Ok(tx.commit().map(|()| applied))
}

/// One command's writes; its new outbox rows are added to `new_rows`.
fn apply(
    conn: &Connection,
    command: &Command,
    new_rows: &mut Vec<(RoomKey, PendingRow)>,
) -> rusqlite::Result<Applied> {
    match command {
        Command::Accept {
            event,
            destinations,
            ..
        } => {
            let (outcome, rows) = accept(conn, event, destinations)?;
            new_rows.extend(rows);
            Ok(Applied::Accept(Ok(outcome)))
        }
        Command::Complete { completion, .. } => complete(conn, completion).map(|()| Applied::Done),
        Command::Failure { outbox_id, error } => conn
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            )?
            .execute(params![outbox_id, error])
            .map(|_| Applied::Done),
        Command::SaveState {
            network,
            key,
            value,
            ..
        } => conn
            .prepare_cached(
                "INSERT INTO adapter_state (network, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (network, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![network.as_str(), key, value])
            .map(|_| Applied::Done),
        Command::Flush { .. } => Ok(Applied::Done),
    }
}

/// What a command that failed in its savepoint tells its caller (and the log: only
/// an accept's caller can act on the error; the others are bookkeeping).
fn failed(command: &Command, error: rusqlite::Error) -> Applied {
    match command {
        Command::Accept { .. } => return Applied::Accept(Err(StoreError::from(error))),
        Command::Complete { completion, .. } => {
            tracing::error!(%error, ?completion, "store: could not record a completed delivery");
        }
        Command::Failure { outbox_id, .. } => {
            tracing::error!(%error, outbox_id, "store: could not note a failed attempt");
        }
        Command::SaveState { network, .. } => {
            tracing::error!(%error, %network, "store: could not save adapter state");
        }
        Command::Flush { .. } => {}
    }
    Applied::Done
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
        EventKind::Edit { target }
        | EventKind::Delete { target }
        | EventKind::Reaction { target, .. } => match lookup(conn, &event.room, target)? {
            Some(id) => Some(id),
            None => return Ok((AcceptOutcome::UnknownTarget, Vec::new())),
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use switchboard_sdk::{RichText, RoomId, Sender};

    #[derive(Default)]
    struct Rows(Mutex<Vec<i64>>);

    impl CommitListener for Rows {
        fn rows_committed(&self, rows: Vec<(RoomKey, PendingRow)>) {
            let mut seen = self.0.lock().unwrap();
            seen.extend(rows.iter().map(|(_, row)| row.outbox_id));
        }
    }

    fn room(network: &str) -> RoomKey {
        RoomKey {
            network: NetworkId::new(network),
            room: RoomId::new("chan"),
        }
    }

    fn accept(
        native_id: &str,
    ) -> (
        Command,
        oneshot::Receiver<Result<AcceptOutcome, StoreError>>,
    ) {
        let (reply, rx) = oneshot::channel();
        let event = Inbound::message(
            room("a"),
            Sender::user("u1", "alice"),
            Some(NativeMsgId::new(native_id.to_owned())),
            RichText::plain("hello"),
        );
        let command = Command::Accept {
            event: Arc::new(event),
            destinations: vec![Destination {
                route: Arc::from("r"),
                room: room("b"),
            }],
            reply,
        };
        (command, rx)
    }

    #[test]
    fn a_failing_command_costs_only_itself_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let mut conn = Connection::open(&path).unwrap();
        super::super::schema::configure(&conn).unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        // Saving adapter state now fails; the accepts around it must not.
        conn.execute_batch("DROP TABLE adapter_state").unwrap();
        let (first, first_reply) = accept("m1");
        let (saved, save_reply) = oneshot::channel();
        let save = Command::SaveState {
            network: NetworkId::new("a"),
            key: "cursor".into(),
            value: "1".into(),
            reply: saved,
        };
        let (second, second_reply) = accept("m2");
        let (again, again_reply) = accept("m1");
        let listener = Rows::default();
        process(&mut conn, vec![first, save, second, again]).announce(&listener);
        let outcome = |rx: oneshot::Receiver<Result<AcceptOutcome, StoreError>>| {
            rx.blocking_recv().unwrap().unwrap()
        };
        assert!(matches!(
            outcome(first_reply),
            AcceptOutcome::Accepted { .. }
        ));
        assert!(matches!(
            outcome(second_reply),
            AcceptOutcome::Accepted { .. }
        ));
        assert_eq!(outcome(again_reply), AcceptOutcome::Duplicate);
        save_reply
            .blocking_recv()
            .expect("the failed save is answered");
        let stored: i64 = conn
            .query_row("SELECT COUNT(*) FROM bridged_message", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stored, 2, "both accepted events are committed");
        assert_eq!(
            listener.0.lock().unwrap().len(),
            2,
            "delivery told once each"
        );
    }

    #[test]
    fn a_batch_without_failures_commits_without_savepoints() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("db.sqlite3")).unwrap();
        super::super::schema::configure(&conn).unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let (first, _) = accept("m1");
        let (second, _) = accept("m1");
        let mut rows = Vec::new();
        let applied = apply_batch(&mut conn, &[first, second], Isolation::None, &mut rows);
        let Ok(Ok(applied)) = applied else {
            panic!("the batch did not commit");
        };
        assert!(matches!(
            &applied[..],
            [
                Applied::Accept(Ok(AcceptOutcome::Accepted { .. })),
                Applied::Accept(Ok(AcceptOutcome::Duplicate))
            ]
        ));
        assert_eq!(rows.len(), 1);
    }
}
