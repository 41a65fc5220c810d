//! A `Store` held in memory: the same contract as the SQLite store (per-room
//! sequence, dedup on the native-id map, committed rows handed to delivery) without
//! files, threads or blocking reads, so that delivery tests run on a paused tokio
//! clock. Nothing survives the process; durability tests use `SqliteStore`.
//!
//! A dead letter keeps the whole row it was, so that a requeue can rebuild the
//! row from it, as the SQLite store rebuilds it from the message it points at.

use super::{
    AcceptOutcome, AcceptedEvent, Clock, CommittedRows, CommittedRowsReceiver, Completion,
    DeadLetter, Destination, PendingRow, PruneBefore, Pruned, References, Requeue, Store,
    StoreError, releases_origin_id,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_sdk::{Inbound, NativeMsgId, NetworkId, RoomKey};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

pub struct MemoryStore {
    state: Mutex<State>,
    delivery: UnboundedSender<CommittedRows>,
    clock: Clock,
}

/// One bridged message as the id map and reply quotes need it.
struct Message {
    sender_name: String,
    event: Arc<Inbound>,
    created_ms: i64,
}

/// One outbox row with what it needs to become a `PendingRow` again.
struct OutboxRow {
    room: RoomKey,
    row: PendingRow,
}

/// One dead letter: the row it was, why and when delivery gave up on it.
struct DeadRow {
    room: RoomKey,
    row: PendingRow,
    reason: String,
    dead_ms: i64,
}

#[derive(Default)]
struct State {
    messages: BTreeMap<i64, Message>,
    next_bridged_id: i64,
    /// (room, native id) -> (bridged id, part); the origin is part -1.
    native_ids: HashMap<(RoomKey, NativeMsgId), (i64, i64)>,
    room_sequence: HashMap<RoomKey, i64>,
    outbox: BTreeMap<i64, OutboxRow>,
    next_outbox_id: i64,
    /// By outbox id.
    dead_letters: BTreeMap<i64, DeadRow>,
    adapter_state: HashMap<(NetworkId, String), String>,
}

impl MemoryStore {
    /// An empty store; committed rows arrive on the returned receiver.
    pub fn new() -> (Self, CommittedRowsReceiver) {
        Self::with_clock(super::system_clock())
    }

    pub fn with_clock(clock: Clock) -> (Self, CommittedRowsReceiver) {
        let (delivery, committed) = tokio::sync::mpsc::unbounded_channel();
        let store = Self {
            state: Mutex::new(State::default()),
            delivery,
            clock,
        };
        (store, committed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn lookup(&self, room: &RoomKey, native_id: &NativeMsgId) -> Option<i64> {
        self.native_ids
            .get(&(room.clone(), native_id.clone()))
            .map(|(bridged_id, _)| *bridged_id)
    }

    fn accept(
        &mut self,
        event: Inbound,
        destinations: Vec<Destination>,
        now: i64,
    ) -> (AcceptOutcome, CommittedRows) {
        let lookup = |id: &NativeMsgId| Ok::<_, Infallible>(self.lookup(&event.room, id));
        let Ok(Some(references)) = References::resolve(&event, lookup) else {
            return (AcceptOutcome::UnknownTarget, Vec::new());
        };
        let bridged_id = self.next_bridged_id + 1;
        if let Some(native_id) = &event.native_id {
            let key = (event.room.clone(), native_id.clone());
            if self.native_ids.contains_key(&key) {
                return (AcceptOutcome::Duplicate, Vec::new());
            }
            self.native_ids.insert(key, (bridged_id, -1));
        }
        self.next_bridged_id = bridged_id;
        if let Some(target) = references.target_id
            && let Some(stored) = self.messages.get(&target)
            && releases_origin_id(&event, &stored.event)
        {
            self.native_ids
                .retain(|_, (owner, part)| !(*owner == target && *part == -1));
        }
        let event = Arc::new(event);
        self.messages.insert(
            bridged_id,
            Message {
                sender_name: event.sender.display_name.clone(),
                event: event.clone(),
                created_ms: now,
            },
        );
        let accepted = AcceptedEvent {
            bridged_id,
            references,
            event: &event,
            now,
        };
        let mut outbox = Vec::with_capacity(destinations.len());
        let mut rows = Vec::with_capacity(destinations.len());
        for destination in destinations {
            let seq = self
                .room_sequence
                .entry(destination.room.clone())
                .or_insert(0);
            *seq += 1;
            self.next_outbox_id += 1;
            let row = accepted.row(&destination, self.next_outbox_id, *seq);
            self.outbox.insert(
                row.outbox_id,
                OutboxRow {
                    room: destination.room.clone(),
                    row: row.clone(),
                },
            );
            outbox.push((destination.room.clone(), row.outbox_id));
            rows.push((destination.room, row));
        }
        (AcceptOutcome::Accepted { bridged_id, outbox }, rows)
    }

    fn complete(&mut self, completion: Completion, now: i64) {
        match completion {
            Completion::Delivered {
                outbox_id,
                bridged_id,
                room,
                native_ids,
            } => {
                for (part, native_id) in native_ids.into_iter().enumerate() {
                    self.native_ids
                        .entry((room.clone(), native_id))
                        .or_insert((bridged_id, part as i64));
                }
                self.outbox.remove(&outbox_id);
            }
            Completion::Skipped { outbox_id } => {
                self.outbox.remove(&outbox_id);
            }
            Completion::Dead { outbox_id, reason } => {
                if let Some(OutboxRow { room, row }) = self.outbox.remove(&outbox_id) {
                    let dead = DeadRow {
                        room,
                        row,
                        reason,
                        dead_ms: now,
                    };
                    self.dead_letters.insert(outbox_id, dead);
                }
            }
        }
    }

    /// Queues the chosen dead letters again (see `Store::requeue`); the new rows.
    fn requeue(&mut self, which: Requeue) -> Result<CommittedRows, StoreError> {
        let ids: Vec<i64> = match &which {
            Requeue::One { outbox_id } => self
                .dead_letters
                .contains_key(outbox_id)
                .then_some(*outbox_id)
                .into_iter()
                .collect(),
            // By outbox id: the room's original order.
            Requeue::Room(room) => self
                .dead_letters
                .iter()
                .filter(|(_, dead)| &dead.room == room)
                .map(|(id, _)| *id)
                .collect(),
        };
        // All or nothing, as in one transaction.
        for id in &ids {
            let bridged_id = self.dead_letters[id].row.bridged_id;
            if !self.messages.contains_key(&bridged_id) {
                return Err(StoreError::MessageGone {
                    outbox_id: *id,
                    bridged_id,
                });
            }
        }
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(DeadRow { room, mut row, .. }) = self.dead_letters.remove(&id) else {
                continue;
            };
            let seq = self.room_sequence.entry(room.clone()).or_insert(0);
            *seq += 1;
            self.next_outbox_id += 1;
            row.outbox_id = self.next_outbox_id;
            row.seq = *seq;
            row.attempts = 0;
            self.outbox.insert(
                row.outbox_id,
                OutboxRow {
                    room: room.clone(),
                    row: row.clone(),
                },
            );
            rows.push((room, row));
        }
        Ok(rows)
    }

    fn summary(&self, bridged_id: i64) -> Option<(String, String)> {
        self.messages.get(&bridged_id).map(|message| {
            (
                message.sender_name.clone(),
                message.event.content.to_plain(),
            )
        })
    }

    fn letter(&self, outbox_id: i64, dead: &DeadRow) -> DeadLetter {
        DeadLetter {
            outbox_id,
            bridged_id: dead.row.bridged_id,
            route: dead.row.route.clone(),
            room: dead.room.clone(),
            attempts: dead.row.attempts,
            reason: dead.reason.clone(),
            created_ms: dead.row.created_ms,
            dead_ms: dead.dead_ms,
            summary: self.summary(dead.row.bridged_id),
        }
    }

    fn prune(&mut self, before: PruneBefore, limit: usize) -> Pruned {
        let mut needed = std::collections::HashSet::new();
        for OutboxRow { row, .. } in self.outbox.values() {
            needed.extend([
                Some(row.bridged_id),
                row.references.target_id,
                row.references.reply_to_id,
                row.references.thread_id,
            ]);
        }
        needed.extend(
            self.dead_letters
                .values()
                .map(|dead| Some(dead.row.bridged_id)),
        );
        let old: Vec<i64> = self
            .messages
            .iter()
            .filter(|(id, message)| {
                message.created_ms < before.id_map_ms && !needed.contains(&Some(**id))
            })
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        for id in &old {
            self.messages.remove(id);
        }
        self.native_ids
            .retain(|_, (bridged_id, _)| self.messages.contains_key(bridged_id));
        let dead: Vec<i64> = self
            .dead_letters
            .iter()
            .filter(|(_, dead)| dead.dead_ms < before.dead_letters_ms)
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        for id in &dead {
            self.dead_letters.remove(id);
        }
        Pruned {
            messages: old.len(),
            dead_letters: dead.len(),
            done: old.len() < limit && dead.len() < limit,
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn accept(
        &self,
        event: Inbound,
        destinations: Vec<Destination>,
    ) -> Result<AcceptOutcome, StoreError> {
        let mut state = self.lock();
        let (outcome, rows) = state.accept(event, destinations, (self.clock)());
        if !rows.is_empty() {
            // Sent under the lock, so commits reach delivery in their order.
            let _ = self.delivery.send(rows);
        }
        Ok(outcome)
    }

    async fn pending_after(
        &self,
        room: &RoomKey,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<PendingRow>, StoreError> {
        let state = self.lock();
        let mut rows: Vec<PendingRow> = state
            .outbox
            .values()
            .filter(|pending| &pending.room == room && pending.row.seq > after_seq)
            .map(|pending| pending.row.clone())
            .collect();
        rows.sort_by_key(|row| row.seq);
        rows.truncate(limit);
        Ok(rows)
    }

    async fn pending_rooms(&self) -> Result<Vec<(RoomKey, i64)>, StoreError> {
        let mut counts: BTreeMap<RoomKey, i64> = BTreeMap::new();
        for pending in self.lock().outbox.values() {
            *counts.entry(pending.room.clone()).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }

    fn complete(&self, completion: Completion) -> Result<oneshot::Receiver<()>, StoreError> {
        self.lock().complete(completion, (self.clock)());
        let (done, committed) = oneshot::channel();
        let _ = done.send(());
        Ok(committed)
    }

    fn record_failure(&self, outbox_id: i64, _error: String) -> Result<(), StoreError> {
        if let Some(pending) = self.lock().outbox.get_mut(&outbox_id) {
            pending.row.attempts += 1;
        }
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let state = self.lock();
        Ok(state
            .dead_letters
            .iter()
            .map(|(id, dead)| state.letter(*id, dead))
            .collect())
    }

    async fn recent_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let state = self.lock();
        let mut newest: Vec<(&i64, &DeadRow)> = state.dead_letters.iter().collect();
        newest.sort_by_key(|(id, dead)| std::cmp::Reverse((dead.dead_ms, **id)));
        Ok(newest
            .into_iter()
            .take(limit)
            .map(|(id, dead)| state.letter(*id, dead))
            .collect())
    }

    async fn requeue(&self, which: Requeue) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let rows = state.requeue(which)?;
        let requeued = rows.len() as u64;
        if !rows.is_empty() {
            // Under the lock, like an accept's rows: commits reach delivery in order.
            let _ = self.delivery.send(rows);
        }
        Ok(requeued)
    }

    async fn native_ids_in(
        &self,
        bridged_id: i64,
        room: &RoomKey,
    ) -> Result<Vec<NativeMsgId>, StoreError> {
        let state = self.lock();
        let mut parts: Vec<(i64, NativeMsgId)> = state
            .native_ids
            .iter()
            .filter(|((in_room, _), (id, _))| in_room == room && *id == bridged_id)
            .map(|((_, native_id), (_, part))| (*part, native_id.clone()))
            .collect();
        parts.sort();
        Ok(parts.into_iter().map(|(_, native_id)| native_id).collect())
    }

    async fn summary(&self, bridged_id: i64) -> Result<Option<(String, String)>, StoreError> {
        Ok(self.lock().summary(bridged_id))
    }

    async fn adapter_state(
        &self,
        network: &NetworkId,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .adapter_state
            .get(&(network.clone(), key.to_owned()))
            .cloned())
    }

    async fn save_adapter_state(
        &self,
        network: &NetworkId,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.lock()
            .adapter_state
            .insert((network.clone(), key.to_owned()), value.to_owned());
        Ok(())
    }

    async fn prune(&self, before: PruneBefore, limit: usize) -> Result<Pruned, StoreError> {
        Ok(self.lock().prune(before, limit))
    }

    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
