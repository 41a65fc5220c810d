//! The single writer thread: applies queued commands in batches, one transaction per
//! batch (group commit), hands the new outbox rows to delivery as soon as the batch
//! is written, and leaves it to the syncer to answer the callers once it is on disk
//! (see `sync`).
//!
//! A batch runs without savepoints; only if one of its commands fails is it rolled
//! back and run again with a savepoint per command, so that the failure costs that
//! command alone. Pruning runs between batches, one short transaction per step.
//!
//! Requeueing dead letters is a command like the others, so it takes its rooms'
//! next sequence numbers from the same counters as accepts, and requeued rows reach
//! delivery with their batch.

use super::super::{
    AcceptOutcome, AcceptedEvent, Clock, CommittedRows, Completion, Destination, PendingRow,
    PruneBefore, Pruned, References, Requeue, StoreError, releases_origin_id,
};
use super::schema::CHECKPOINT_PAGES;
use super::sync::WAL_LIMIT_PAGES;
use super::sync::{self, Announce, Announcement, CheckpointRequest, SyncFailed, WalSync};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use switchboard_sdk::{EventKind, Inbound, NativeMsgId, NetworkId, RoomKey};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

/// Most commands one transaction takes; bounds commit latency under a flood.
const MAX_BATCH: usize = 2048;

pub enum Command {
    Accept {
        event: Arc<Inbound>,
        destinations: Vec<Destination>,
        /// Answer once on disk (the caller acknowledges a source), else once written.
        wait_for_disk: bool,
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
    /// Queues dead letters again (see `Store::requeue`); the new rows go to delivery
    /// with the batch's other new rows.
    Requeue {
        which: Requeue,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Runs in its own transaction between batches (see `prune`), never in one.
    Prune {
        before: PruneBefore,
        limit: usize,
        reply: oneshot::Sender<Result<Pruned, StoreError>>,
    },
}

#[derive(Clone)]
pub struct WriterHandle(mpsc::Sender<Command>);

impl WriterHandle {
    pub fn send(&self, command: Command) -> Result<(), StoreError> {
        self.0.send(command).map_err(|_| StoreError::Closed)
    }
}

/// Starts the writer with its syncer and checkpointer.
pub fn spawn(
    conn: Connection,
    database: &Path,
    delivery: UnboundedSender<CommittedRows>,
    clock: Clock,
    wal_sync: WalSync,
) -> Result<WriterHandle, StoreError> {
    let thread_failed = |source| StoreError::StateDir {
        path: "store threads".into(),
        source,
    };
    let (tx, rx) = mpsc::channel();
    let announce = Announce::new(delivery);
    let sync_failed = SyncFailed::default();
    let syncer = sync::spawn_syncer(wal_sync, announce.clone(), sync_failed.clone())
        .map_err(thread_failed)?;
    let checkpointer = sync::spawn_checkpointer(database)?;
    let helpers = Helpers {
        announce,
        syncer,
        sync_failed,
        checkpointer,
        checkpoint_asked: false,
    };
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            sync::watch_wal_pages(&conn);
            run(conn, rx, helpers, clock)
        })
        .map_err(thread_failed)?;
    Ok(WriterHandle(tx))
}

/// The writer's links to the threads that finish what it starts.
struct Helpers {
    announce: Announce,
    syncer: mpsc::Sender<Vec<Reply>>,
    sync_failed: SyncFailed,
    checkpointer: mpsc::Sender<CheckpointRequest>,
    /// A checkpoint was asked for since the WAL last started over.
    checkpoint_asked: bool,
}

impl Helpers {
    /// Hands a written batch on: its rows to delivery and the answers that need not
    /// wait to the announcer, the answers that wait for the disk to the syncer.
    fn written(&mut self, committed: Committed) {
        let (waiting, now): (Vec<Reply>, Vec<Reply>) = committed
            .replies
            .into_iter()
            .partition(Reply::waits_for_disk);
        self.announce.send(Announcement::Written {
            rows: committed.new_rows,
            replies: now,
        });
        if !waiting.is_empty()
            && let Err(unsent) = self.syncer.send(waiting)
        {
            for reply in unsent.0 {
                reply.refuse(StoreError::Closed);
            }
        }
        self.checkpoint_as_the_wal_grows();
    }

    /// Asks for a checkpoint once `CHECKPOINT_PAGES` are in the WAL, and past
    /// `WAL_LIMIT_PAGES` waits for one with the writer idle: it then copies back every
    /// frame, and the next write starts the WAL over (see `sync::WAL_LIMIT_PAGES`).
    fn checkpoint_as_the_wal_grows(&mut self) {
        let pages = sync::wal_pages();
        if pages < CHECKPOINT_PAGES {
            self.checkpoint_asked = false;
        } else if pages >= WAL_LIMIT_PAGES {
            let (done, wait) = mpsc::channel();
            if self.checkpointer.send(CheckpointRequest::Now(done)).is_ok() {
                let _ = wait.recv();
            }
            self.checkpoint_asked = false;
        } else if !self.checkpoint_asked {
            self.checkpoint_asked = self.checkpointer.send(CheckpointRequest::Soon).is_ok();
        }
    }
}

/// What one command did, told to its caller once the batch is committed.
enum Applied {
    Accept(Result<AcceptOutcome, StoreError>),
    Requeued(Result<u64, StoreError>),
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

fn run(mut conn: Connection, rx: mpsc::Receiver<Command>, mut helpers: Helpers, clock: Clock) {
    let mut state = WriterState {
        clock,
        sequences: RoomSequences::default(),
    };
    let mut prune_cursor = PruneCursor::default();
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut prune = None;
        let mut next = Some(first);
        while let Some(command) = next.take() {
            if let Command::Prune {
                before,
                limit,
                reply,
            } = command
            {
                prune = Some((before, limit, reply));
                break;
            }
            batch.push(command);
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if helpers.sync_failed.load(Ordering::Acquire) {
            refuse_after_failed_sync(batch, prune);
            continue;
        }
        if !batch.is_empty() {
            helpers.written(process(&mut conn, batch, &mut state));
        }
        if let Some((before, limit, reply)) = prune {
            let result = prune_step(&mut conn, &mut prune_cursor, before, limit);
            if let Err(error) = &result {
                tracing::error!(%error, "store: pruning old rows failed");
            }
            let _ = reply.send(result.map_err(StoreError::from));
        }
    }
    // Whichever connection closes last checkpoints the WAL into the database and
    // removes it: with syncs, so that nothing the syncer confirmed is lost then.
    if let Err(error) = conn.pragma_update(None, "synchronous", "FULL") {
        tracing::error!(%error, "store: cannot make the closing checkpoint synced");
    }
}

type PruneCommand = (
    PruneBefore,
    usize,
    oneshot::Sender<Result<Pruned, StoreError>>,
);

/// After a failed sync nothing more is written (see `sync::SyncFailed`).
fn refuse_after_failed_sync(batch: Vec<Command>, prune: Option<PruneCommand>) {
    let error = || StoreError::SyncFailed(sync::EARLIER_SYNC_FAILED.to_owned());
    for command in batch {
        Reply {
            command,
            applied: Applied::Done,
        }
        .refuse(error());
    }
    if let Some((_, _, reply)) = prune {
        let _ = reply.send(Err(error()));
    }
}

/// A batch after its transaction: the rows to hand to delivery and what to tell
/// each caller.
struct Committed {
    replies: Vec<Reply>,
    new_rows: CommittedRows,
}

/// Commits one batch; what it committed is handed on by the caller.
fn process(conn: &mut Connection, batch: Vec<Command>, state: &mut WriterState) -> Committed {
    let mut new_rows: CommittedRows = Vec::new();
    let outcome = match apply_batch(conn, &batch, Isolation::None, &mut new_rows, state) {
        Ok(result) => result,
        Err(CommandFailed) => {
            new_rows.clear();
            match apply_batch(conn, &batch, Isolation::PerCommand, &mut new_rows, state) {
                Ok(result) => result,
                Err(CommandFailed) => unreachable!("isolated commands never fail the batch"),
            }
        }
    };
    let applied = match outcome {
        Ok(applied) => applied,
        Err(error) => {
            tracing::error!(%error, "store: batch commit failed; its events were not accepted");
            new_rows.clear();
            batch
                .iter()
                .map(|command| not_committed(command, &error))
                .collect()
        }
    };
    let replies = batch
        .into_iter()
        .zip(applied)
        .map(|(command, applied)| Reply { command, applied })
        .collect();
    Committed { replies, new_rows }
}

/// A command of a written batch and what it did: what its caller is told.
pub struct Reply {
    command: Command,
    applied: Applied,
}

impl Reply {
    /// Whether the caller may act on the answer only once the batch is on disk: an
    /// accept that acknowledges its source (a duplicate's original may be in the
    /// same unsynced batch), saved adapter state (a sync position or cursor says
    /// what the source need not send again), a flush, and letters requeued (an
    /// operator told "done" must not see it undone by a crash; requeued rows still
    /// reach delivery as soon as written, as accepted rows do).
    fn waits_for_disk(&self) -> bool {
        match (&self.command, &self.applied) {
            (
                Command::Accept {
                    wait_for_disk: true,
                    ..
                },
                Applied::Accept(result),
            ) => result.is_ok(),
            (Command::Requeue { .. }, Applied::Requeued(result)) => result.is_ok(),
            (Command::SaveState { .. } | Command::Flush { .. }, _) => true,
            _ => false,
        }
    }

    pub fn send(self) {
        match (self.command, self.applied) {
            (Command::Accept { reply, .. }, Applied::Accept(result)) => {
                let _ = reply.send(result);
            }
            (Command::Accept { reply, .. }, _) => {
                let _ = reply.send(Err(StoreError::Closed));
            }
            (Command::Requeue { reply, .. }, Applied::Requeued(result)) => {
                let _ = reply.send(result);
            }
            (Command::Requeue { reply, .. }, _) => {
                let _ = reply.send(Err(StoreError::Closed));
            }
            (Command::Complete { reply, .. }, _)
            | (Command::SaveState { reply, .. }, _)
            | (Command::Flush { reply }, _) => {
                let _ = reply.send(());
            }
            (Command::Prune { reply, .. }, _) => {
                let _ = reply.send(Ok(Pruned::default()));
            }
            (Command::Failure { .. }, _) => {}
        }
    }

    /// The command's result could not be made durable: an accept is told why, the
    /// others' callers see their reply dropped (`StoreError::Closed`).
    pub fn refuse(self, error: StoreError) {
        match self.command {
            Command::Accept { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Command::Prune { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Command::Requeue { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Command::Complete { .. }
            | Command::Failure { .. }
            | Command::SaveState { .. }
            | Command::Flush { .. } => {}
        }
    }
}

fn clone_error(error: &rusqlite::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(error.to_string().into())
}

/// What a command of a batch whose commit failed tells its caller.
fn not_committed(command: &Command, error: &rusqlite::Error) -> Applied {
    let error = StoreError::Sqlite(clone_error(error));
    match command {
        Command::Requeue { .. } => Applied::Requeued(Err(error)),
        _ => Applied::Accept(Err(error)),
    }
}

/// Applies the batch in one transaction. `Ok(Err(_))` is a failed commit (every
/// caller is told); `Err(CommandFailed)` means re-run it with `PerCommand`.
fn apply_batch(
    conn: &mut Connection,
    batch: &[Command],
    isolation: Isolation,
    new_rows: &mut CommittedRows,
    state: &mut WriterState,
) -> Result<rusqlite::Result<Vec<Applied>>, CommandFailed> {
    let mut tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(error) => return Ok(Err(error)),
    };
    let mut applied = Vec::with_capacity(batch.len());
    for command in batch {
        let result = match isolation {
            Isolation::None => apply(&tx, command, new_rows, state),
            Isolation::PerCommand => {
                in_savepoint(&mut tx, |sp| apply(sp, command, new_rows, state))
            }
        };
        match result {
            Ok(outcome) => applied.push(outcome),
            Err(_) if isolation == Isolation::None => return Err(CommandFailed),
            Err(error) => applied.push(failed(command, error)),
        }
    }
    let committed = state.sequences.save(&tx).and_then(|()| tx.commit());
    if committed.is_err() {
        // The reservations written with the batch are not on disk: read them again.
        state.sequences = RoomSequences::default();
    }
    Ok(committed.map(|()| applied))
}

/// One command's writes; its new outbox rows are added to `new_rows`.
fn apply(
    conn: &Connection,
    command: &Command,
    new_rows: &mut CommittedRows,
    state: &mut WriterState,
) -> rusqlite::Result<Applied> {
    match command {
        Command::Accept {
            event,
            destinations,
            ..
        } => {
            let now = (state.clock)();
            let (outcome, rows) = accept(conn, event, destinations, now, &mut state.sequences)?;
            new_rows.extend(rows);
            Ok(Applied::Accept(Ok(outcome)))
        }
        Command::Complete { completion, .. } => {
            complete(conn, completion, (state.clock)()).map(|()| Applied::Done)
        }
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
        Command::Requeue { which, .. } => {
            let requeued = requeue(conn, which, &mut state.sequences)?;
            Ok(Applied::Requeued(requeued.map(|rows| {
                let count = rows.len() as u64;
                new_rows.extend(rows);
                count
            })))
        }
        // `run` takes pruning out of batches; nothing to write here.
        Command::Flush { .. } | Command::Prune { .. } => Ok(Applied::Done),
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
        Command::Requeue { .. } => return Applied::Requeued(Err(StoreError::from(error))),
        Command::Flush { .. } | Command::Prune { .. } => {}
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
///
/// A duplicate is found by the unique key of the native-id map, not by a look-up
/// first: the origin's id is inserted with `ON CONFLICT DO NOTHING`, and if nothing
/// was inserted the message row just written is taken back.
fn accept(
    conn: &Connection,
    event: &Arc<Inbound>,
    destinations: &[Destination],
    now: i64,
    sequences: &mut RoomSequences,
) -> rusqlite::Result<(AcceptOutcome, CommittedRows)> {
    let Some(references) = References::resolve(event, |id| lookup(conn, &event.room, id))? else {
        return Ok((AcceptOutcome::UnknownTarget, Vec::new()));
    };
    let Some(bridged_id) = insert_bridged(conn, event, &references, now)? else {
        return Ok((AcceptOutcome::Duplicate, Vec::new()));
    };
    let accepted = AcceptedEvent {
        bridged_id,
        references,
        event,
        now,
    };
    let mut outbox = Vec::with_capacity(destinations.len());
    let mut rows = Vec::with_capacity(destinations.len());
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (bridged_id, route, network, room, seq, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for destination in destinations {
        let (network, room) = (
            destination.room.network.as_str(),
            destination.room.room.as_str(),
        );
        let seq = sequences.next(conn, &destination.room)?;
        insert.execute(params![
            bridged_id,
            &*destination.route,
            network,
            room,
            seq,
            now
        ])?;
        let outbox_id = conn.last_insert_rowid();
        outbox.push((destination.room.clone(), outbox_id));
        rows.push((
            destination.room.clone(),
            accepted.row(destination, outbox_id, seq),
        ));
    }
    Ok((AcceptOutcome::Accepted { bridged_id, outbox }, rows))
}

/// Stores the bridged message and its origin's native id; `None` (and nothing
/// stored) when that native id is already known: a duplicate or an echo. The unique
/// key on the native-id map decides, not a look-up before the insert.
fn insert_bridged(
    conn: &Connection,
    event: &Inbound,
    references: &References,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    let json = serde_json::to_string(event)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(error.into()))?;
    conn.prepare_cached(
        "INSERT INTO bridged_message (origin_network, origin_room, origin_native_id, target_id, reply_to_id, \
         thread_id, sender_name, event, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        event.room.network.as_str(),
        event.room.room.as_str(),
        event.native_id.as_ref().map(NativeMsgId::as_str),
        references.target_id,
        references.reply_to_id,
        references.thread_id,
        event.sender.display_name,
        json,
        now
    ])?;
    let bridged_id = conn.last_insert_rowid();
    if let Some(native_id) = &event.native_id {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO native_copy (network, room, native_id, bridged_id, part) VALUES (?1, ?2, ?3, ?4, -1) \
                 ON CONFLICT (network, room, native_id) DO NOTHING",
            )?
            .execute(params![
                event.room.network.as_str(),
                event.room.room.as_str(),
                native_id.as_str(),
                bridged_id
            ])?;
        if inserted == 0 {
            conn.prepare_cached("DELETE FROM bridged_message WHERE id = ?1")?
                .execute([bridged_id])?;
            return Ok(None);
        }
    }
    if let (EventKind::Delete { .. }, Some(target)) = (&event.kind, references.target_id) {
        conn.prepare_cached("UPDATE bridged_message SET deleted_ms = ?2 WHERE id = ?1")?
            .execute(params![target, now])?;
        if releases_origin_id(event, &stored_event(conn, target)?) {
            conn.prepare_cached("DELETE FROM native_copy WHERE bridged_id = ?1 AND part = -1")?
                .execute([target])?;
        }
    }
    Ok(Some(bridged_id))
}

fn stored_event(conn: &Connection, bridged_id: i64) -> rusqlite::Result<Inbound> {
    let json: String = conn
        .prepare_cached("SELECT event FROM bridged_message WHERE id = ?1")?
        .query_row([bridged_id], |row| row.get(0))?;
    serde_json::from_str(&json).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, error.into())
    })
}

fn complete(conn: &Connection, completion: &Completion, now: i64) -> rusqlite::Result<()> {
    match completion {
        Completion::Delivered {
            outbox_id,
            bridged_id,
            room,
            native_ids,
        } => {
            let mut insert = conn.prepare_cached(
                "INSERT INTO native_copy (network, room, native_id, bridged_id, part) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (network, room, native_id) DO NOTHING",
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
                "INSERT INTO dead_letter (outbox_id, bridged_id, route, network, room, created_ms, attempts, reason, dead_ms) \
                 SELECT id, bridged_id, route, network, room, created_ms, attempts, ?2, ?3 FROM outbox WHERE id = ?1 \
                 ON CONFLICT (outbox_id) DO UPDATE SET attempts = excluded.attempts, reason = excluded.reason, dead_ms = excluded.dead_ms",
            )?
            .execute(params![outbox_id, reason, now])?;
            delete_outbox(conn, *outbox_id)
        }
    }
}

fn delete_outbox(conn: &Connection, outbox_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
        .execute([outbox_id])?;
    Ok(())
}

/// One dead letter to requeue, with what its new row needs from its message.
struct Letter {
    outbox_id: i64,
    bridged_id: i64,
    route: String,
    room: RoomKey,
    created_ms: i64,
    /// The message's references and event; `None` if the message is gone.
    message: Option<(References, String)>,
}

/// Queues the chosen dead letters again (see `Store::requeue`); the new rows, or
/// `Ok(Err(_))` with nothing written if one of them cannot be requeued.
///
/// Retention never prunes a message a dead letter carries (`still_needed`), and the
/// foreign key keeps it too, so `MessageGone` means a database changed by hand. The
/// messages a letter's message refers to (reply, edit target, thread root) are not
/// kept for dead letters and may be gone: delivery then finds no copy of them, as
/// for any reference to a message never bridged.
fn requeue(
    conn: &Connection,
    which: &Requeue,
    sequences: &mut RoomSequences,
) -> rusqlite::Result<Result<CommittedRows, StoreError>> {
    const LETTERS: &str = "SELECT d.outbox_id, d.bridged_id, d.route, d.network, d.room, d.created_ms, \
         b.id, b.target_id, b.reply_to_id, b.thread_id, b.event \
         FROM dead_letter d LEFT JOIN bridged_message b ON b.id = d.bridged_id";
    let letter = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Letter> {
        let message = match row.get::<_, Option<i64>>(6)? {
            Some(_) => Some((
                References {
                    target_id: row.get(7)?,
                    reply_to_id: row.get(8)?,
                    thread_id: row.get(9)?,
                },
                row.get(10)?,
            )),
            None => None,
        };
        Ok(Letter {
            outbox_id: row.get(0)?,
            bridged_id: row.get(1)?,
            route: row.get(2)?,
            room: RoomKey::new(row.get::<_, String>(3)?, row.get::<_, String>(4)?),
            created_ms: row.get(5)?,
            message,
        })
    };
    let letters = match which {
        Requeue::One { outbox_id } => conn
            .prepare_cached(&format!("{LETTERS} WHERE d.outbox_id = ?1"))?
            .query_map([outbox_id], letter)?
            .collect::<Result<Vec<_>, _>>()?,
        // By outbox id: the room's original order (`dead_letter_by_room`).
        Requeue::Room(room) => conn
            .prepare_cached(&format!(
                "{LETTERS} WHERE d.network = ?1 AND d.room = ?2 ORDER BY d.outbox_id"
            ))?
            .query_map(params![room.network.as_str(), room.room.as_str()], letter)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    // Everything is checked before anything is written: all or nothing.
    let mut ready = Vec::with_capacity(letters.len());
    for mut letter in letters {
        let Some((references, json)) = letter.message.take() else {
            return Ok(Err(StoreError::MessageGone {
                outbox_id: letter.outbox_id,
                bridged_id: letter.bridged_id,
            }));
        };
        let event: Inbound = match serde_json::from_str(&json) {
            Ok(event) => event,
            Err(error) => return Ok(Err(StoreError::Corrupt(error))),
        };
        ready.push((letter, references, event));
    }
    let mut rows = Vec::with_capacity(ready.len());
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (bridged_id, route, network, room, seq, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut remove = conn.prepare_cached("DELETE FROM dead_letter WHERE outbox_id = ?1")?;
    for (letter, references, event) in ready {
        let seq = sequences.next(conn, &letter.room)?;
        insert.execute(params![
            letter.bridged_id,
            letter.route,
            letter.room.network.as_str(),
            letter.room.room.as_str(),
            seq,
            letter.created_ms
        ])?;
        let outbox_id = conn.last_insert_rowid();
        remove.execute([letter.outbox_id])?;
        let row = PendingRow {
            outbox_id,
            seq,
            bridged_id: letter.bridged_id,
            route: letter.route,
            created_ms: letter.created_ms,
            attempts: 0,
            references,
            event: Arc::new(event),
        };
        rows.push((letter.room, row));
    }
    Ok(Ok(rows))
}

/// What the writer keeps from one batch to the next.
struct WriterState {
    clock: Clock,
    sequences: RoomSequences,
}

/// The sequence numbers of each destination room, handed out from reserved blocks.
///
/// The writer is the only writer of its database, so it counts on in memory and
/// only records in `room_sequence` how far a room's numbers are reserved: when a
/// room's next number passes its reservation, the batch's transaction reserves the
/// next `SEQUENCE_BLOCK` numbers with the rows that use them. The table is thus always
/// at or above every committed row's number, and after a restart a room goes on
/// above its reservation, so no number is ever handed out twice there; unused
/// reserved numbers are skipped, as are those of a batch that is rolled back (a
/// room's order needs increasing numbers, not consecutive ones). Reserving per
/// block rather than writing each room's number in every batch keeps a one-event
/// batch with a fan-out of 10 from writing 10 counter rows.
#[derive(Default)]
struct RoomSequences {
    /// Per room: the last number handed out, the last number reserved, and whether
    /// the reservation grew since the last `save`.
    rooms: HashMap<RoomKey, RoomNumbers>,
    grown: Vec<RoomKey>,
}

struct RoomNumbers {
    last: i64,
    reserved: i64,
    grown: bool,
}

/// How many numbers a room reserves at a time.
const SEQUENCE_BLOCK: i64 = 1024;

impl RoomSequences {
    fn next(&mut self, conn: &Connection, room: &RoomKey) -> rusqlite::Result<i64> {
        if !self.rooms.contains_key(room) {
            let stored: i64 = conn
                .prepare_cached(
                    "SELECT last_seq FROM room_sequence WHERE network = ?1 AND room = ?2",
                )?
                .query_row(params![room.network.as_str(), room.room.as_str()], |row| {
                    row.get(0)
                })
                .optional()?
                .unwrap_or(0);
            let numbers = RoomNumbers {
                last: stored,
                reserved: stored,
                grown: false,
            };
            self.rooms.insert(room.clone(), numbers);
        }
        let numbers = self.rooms.get_mut(room).expect("inserted above");
        numbers.last += 1;
        if numbers.last > numbers.reserved {
            numbers.reserved = numbers.last + SEQUENCE_BLOCK - 1;
            if !numbers.grown {
                numbers.grown = true;
                self.grown.push(room.clone());
            }
        }
        Ok(numbers.last)
    }

    /// Writes the reservations grown since the last call (in the batch's transaction).
    fn save(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.grown.is_empty() {
            return Ok(());
        }
        let mut upsert = conn.prepare_cached(
            "INSERT INTO room_sequence (network, room, last_seq) VALUES (?1, ?2, ?3) \
             ON CONFLICT (network, room) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
        )?;
        for room in self.grown.drain(..) {
            let Some(numbers) = self.rooms.get_mut(&room) else {
                continue;
            };
            numbers.grown = false;
            upsert.execute(params![
                room.network.as_str(),
                room.room.as_str(),
                numbers.reserved
            ])?;
        }
        Ok(())
    }
}

/// How far the current pruning pass over bridged messages has got: ids at or below
/// `after_id` were looked at. A pass ends at the first message that is still young
/// (ids follow time) and the next one starts from the oldest again, so messages kept
/// because a pending row needed them are looked at again later.
#[derive(Default)]
struct PruneCursor {
    after_id: i64,
}

/// One pruning step: at most `limit` bridged messages (with their native ids) and
/// `limit` dead letters, in one transaction of its own.
///
/// SQLite's foreign-key checks are off for it: with no index on the referencing
/// columns (one would cost every accept), each deleted message would make SQLite scan
/// the outbox, the dead letters and the messages' own reply/edit/thread columns.
/// What must stay is found below instead, once per step; a newer message that still
/// names a pruned one as its reply or edit target keeps a dangling id, which resolves
/// as "never bridged", as it would have with the id map gone.
fn prune_step(
    conn: &mut Connection,
    cursor: &mut PruneCursor,
    before: PruneBefore,
    limit: usize,
) -> rusqlite::Result<Pruned> {
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = prune_in_transaction(conn, cursor, before, limit);
    conn.pragma_update(None, "foreign_keys", true)?;
    result
}

fn prune_in_transaction(
    conn: &mut Connection,
    cursor: &mut PruneCursor,
    before: PruneBefore,
    limit: usize,
) -> rusqlite::Result<Pruned> {
    let tx = conn.transaction()?;
    let mut pruned = Pruned::default();
    let old: Vec<i64> = {
        let mut oldest = tx.prepare_cached(
            "SELECT id, created_ms FROM bridged_message WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let scanned = oldest
            .query_map(params![cursor.after_id, limit as i64], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        scanned
            .into_iter()
            .take_while(|(_, created_ms)| *created_ms < before.id_map_ms)
            .map(|(id, _)| id)
            .collect()
    };
    let messages_done = old.len() < limit;
    if let (Some(&first), Some(&last)) = (old.first(), old.last()) {
        let needed = still_needed(&tx, first, last)?;
        let mut delete_copies =
            tx.prepare_cached("DELETE FROM native_copy WHERE bridged_id = ?1")?;
        let mut delete_message = tx.prepare_cached("DELETE FROM bridged_message WHERE id = ?1")?;
        for id in old.iter().filter(|id| !needed.contains(id)) {
            delete_copies.execute([id])?;
            pruned.messages += delete_message.execute([id])?;
        }
        cursor.after_id = last;
    }
    if messages_done {
        cursor.after_id = 0;
    }
    pruned.dead_letters = tx
        .prepare_cached(
            "DELETE FROM dead_letter WHERE outbox_id IN \
             (SELECT outbox_id FROM dead_letter WHERE dead_ms < ?1 ORDER BY outbox_id LIMIT ?2)",
        )?
        .execute(params![before.dead_letters_ms, limit as i64])?;
    tx.commit()?;
    pruned.done = messages_done && pruned.dead_letters < limit;
    Ok(pruned)
}

/// The bridged messages between `first` and `last` that must stay: those a pending
/// or dead-lettered row carries, and those a pending row's message edits, deletes,
/// answers or threads under (its delivery looks their copies up).
fn still_needed(conn: &Connection, first: i64, last: i64) -> rusqlite::Result<HashSet<i64>> {
    let mut needed = conn.prepare_cached(
        "SELECT bridged_id FROM outbox WHERE bridged_id BETWEEN ?1 AND ?2 \
         UNION SELECT bridged_id FROM dead_letter WHERE bridged_id BETWEEN ?1 AND ?2 \
         UNION SELECT b.target_id FROM outbox o JOIN bridged_message b ON b.id = o.bridged_id \
               WHERE b.target_id BETWEEN ?1 AND ?2 \
         UNION SELECT b.reply_to_id FROM outbox o JOIN bridged_message b ON b.id = o.bridged_id \
               WHERE b.reply_to_id BETWEEN ?1 AND ?2 \
         UNION SELECT b.thread_id FROM outbox o JOIN bridged_message b ON b.id = o.bridged_id \
               WHERE b.thread_id BETWEEN ?1 AND ?2",
    )?;
    let ids = needed
        .query_map(params![first, last], |row| row.get(0))?
        .collect::<Result<HashSet<i64>, _>>()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::{RichText, RoomId, Sender};

    fn state() -> WriterState {
        WriterState {
            clock: crate::store::system_clock(),
            sequences: RoomSequences::default(),
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
            wait_for_disk: true,
            reply,
        };
        (command, rx)
    }

    #[test]
    fn a_failing_command_costs_only_itself_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let mut conn = Connection::open(&path).unwrap();
        super::super::schema::configure_common(&conn).unwrap();
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
        let (delivery, mut committed) = tokio::sync::mpsc::unbounded_channel();
        let written = process(&mut conn, vec![first, save, second, again], &mut state());
        delivery.send(written.new_rows).unwrap();
        written.replies.into_iter().for_each(Reply::send);
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
            committed.try_recv().map(|rows| rows.len()).unwrap_or(0),
            2,
            "delivery told once each"
        );
    }

    #[test]
    fn a_batch_without_failures_commits_without_savepoints() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("db.sqlite3")).unwrap();
        super::super::schema::configure_common(&conn).unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let (first, _) = accept("m1");
        let (second, _) = accept("m1");
        let mut rows = Vec::new();
        let applied = apply_batch(
            &mut conn,
            &[first, second],
            Isolation::None,
            &mut rows,
            &mut state(),
        );
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
