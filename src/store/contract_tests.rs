//! Rules every `Store` keeps, run against both implementations: what an event
//! refers to must exist, and a reaction taken back releases its id; dead letters
//! are queued again at the end of their room's order and handed to delivery, and
//! are listed newest first.

use super::{
    AcceptOutcome, CommittedRows, CommittedRowsReceiver, Completion, Destination, MemoryStore,
    PruneBefore, Requeue, SharedStore, SqliteStore,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use switchboard_sdk::{EventKind, Inbound, NativeMsgId, RichText, RoomKey, Sender};

fn event(room: &RoomKey, native_id: &str, kind: EventKind) -> Inbound {
    let mut event = Inbound::message(
        room.clone(),
        Sender::user("u1", "alice"),
        Some(NativeMsgId::new(native_id)),
        RichText::plain("x"),
    );
    event.kind = kind;
    event
}

fn reaction_to(target: &str) -> EventKind {
    EventKind::Reaction {
        target: NativeMsgId::new(target),
        key: "👍".into(),
    }
}

fn delete_of(target: &str) -> EventKind {
    EventKind::Delete {
        target: NativeMsgId::new(target),
    }
}

async fn keeps_the_rules(store: SharedStore) {
    let origin = RoomKey::new("mm", "town");
    let to = vec![Destination {
        route: Arc::from("r"),
        room: RoomKey::new("mx", "!room"),
    }];
    let accept = |native_id: &str, kind: EventKind| {
        let store = store.clone();
        let (event, to) = (event(&origin, native_id, kind), to.clone());
        async move { store.accept(event, to).await.unwrap() }
    };
    assert_eq!(
        accept("r0", reaction_to("never-bridged")).await,
        AcceptOutcome::UnknownTarget
    );
    assert!(matches!(
        accept("post", EventKind::Message).await,
        AcceptOutcome::Accepted { .. }
    ));
    let react = || accept("post/reaction/u1/+1", reaction_to("post"));
    assert!(matches!(react().await, AcceptOutcome::Accepted { .. }));
    assert_eq!(react().await, AcceptOutcome::Duplicate, "still on the post");
    assert!(matches!(
        accept("removal-1", delete_of("post/reaction/u1/+1")).await,
        AcceptOutcome::Accepted { .. }
    ));
    assert!(
        matches!(react().await, AcceptOutcome::Accepted { .. }),
        "the same person reacting the same way again is a new reaction"
    );
    // Deleting a message does not release its id: catch-up may list it again.
    assert!(matches!(
        accept("removal-2", delete_of("post")).await,
        AcceptOutcome::Accepted { .. }
    ));
    assert_eq!(
        accept("post", EventKind::Message).await,
        AcceptOutcome::Duplicate
    );
}

#[tokio::test]
async fn the_memory_store_keeps_the_rules() {
    let (store, _committed) = MemoryStore::new();
    keeps_the_rules(Arc::new(store)).await;
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _committed) = SqliteStore::open(dir.path()).unwrap();
    keeps_the_rules(Arc::new(store)).await;
}

/// A store with a clock the rule sets, and what it hands to delivery.
struct Fixture {
    store: SharedStore,
    committed: CommittedRowsReceiver,
    clock: Arc<AtomicI64>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn clock() -> (Arc<AtomicI64>, super::Clock) {
        let now = Arc::new(AtomicI64::new(1_000));
        let read = now.clone();
        (now, Arc::new(move || read.load(Ordering::SeqCst)))
    }

    fn memory() -> Self {
        let (clock, read) = Self::clock();
        let (store, committed) = MemoryStore::with_clock(read);
        Self {
            store: Arc::new(store),
            committed,
            clock,
            _dir: None,
        }
    }

    fn sqlite() -> Self {
        let (clock, read) = Self::clock();
        let dir = tempfile::tempdir().unwrap();
        let (store, committed) = SqliteStore::open_with_clock(dir.path(), read).unwrap();
        Self {
            store: Arc::new(store),
            committed,
            clock,
            _dir: Some(dir),
        }
    }

    fn set_time(&self, ms: i64) {
        self.clock.store(ms, Ordering::SeqCst);
    }

    /// Accepts a message with `text` for `rooms` (room, route); its bridged id and
    /// outbox ids in the order of `rooms`.
    async fn send(
        &self,
        native_id: &str,
        text: &str,
        rooms: &[(&RoomKey, &str)],
    ) -> (i64, Vec<i64>) {
        let event = Inbound::message(
            RoomKey::new("src", "#origin"),
            Sender::user("u1", "alice"),
            Some(NativeMsgId::new(native_id)),
            RichText::plain(text),
        );
        let to = rooms
            .iter()
            .map(|(room, route)| Destination {
                route: Arc::from(*route),
                room: (*room).clone(),
            })
            .collect();
        match self.store.accept(event, to).await.unwrap() {
            AcceptOutcome::Accepted { bridged_id, outbox } => {
                (bridged_id, outbox.into_iter().map(|(_, id)| id).collect())
            }
            other => panic!("not accepted: {other:?}"),
        }
    }

    /// Every commit handed to delivery so far. An answered write has had its rows
    /// handed over already (the SQLite store announces a batch's rows before it
    /// answers), so nothing needs waiting for.
    fn announced(&mut self) -> Vec<CommittedRows> {
        std::iter::from_fn(|| self.committed.try_recv().ok()).collect()
    }

    /// (bridged id, outbox id, seq) of `room`'s queue, in order.
    async fn queue(&self, room: &RoomKey) -> Vec<(i64, i64, i64)> {
        self.store
            .pending_after(room, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.bridged_id, row.outbox_id, row.seq))
            .collect()
    }

    /// Dead-letters every row queued for `room`, as delivery does (one
    /// `Completion::Dead` per row, e.g. for a room a reload left without routes);
    /// their outbox ids, in order.
    async fn dead_letter_queue(&self, room: &RoomKey, reason: &str) -> Vec<i64> {
        let rows = self.store.pending_after(room, 0, 100).await.unwrap();
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            self.store
                .complete(Completion::Dead {
                    outbox_id: row.outbox_id,
                    reason: reason.to_owned(),
                })
                .unwrap()
                .await
                .unwrap();
            ids.push(row.outbox_id);
        }
        ids
    }
}

/// Runs each rule against a fresh memory store and a fresh SQLite store.
macro_rules! against_both_stores {
    ($($rule:ident),* $(,)?) => {$(
        mod $rule {
            #[tokio::test]
            async fn memory() {
                super::$rule(super::Fixture::memory()).await;
            }

            #[tokio::test]
            async fn sqlite() {
                super::$rule(super::Fixture::sqlite()).await;
            }
        }
    )*};
}

against_both_stores!(
    requeued_letters_go_to_the_end_of_their_room_in_order,
    requeueing_what_is_not_a_dead_letter_changes_nothing,
    recent_dead_letters_come_newest_first_with_their_message,
    a_dead_letters_message_outlives_retention_so_it_can_be_requeued,
);

async fn requeued_letters_go_to_the_end_of_their_room_in_order(mut f: Fixture) {
    let room = RoomKey::new("irc", "#chan");
    let other = RoomKey::new("mx", "!other");
    let (first_id, first) = f.send("m1", "one", &[(&room, "r")]).await;
    let (second_id, second) = f.send("m2", "two", &[(&room, "r")]).await;
    let (third_id, third) = f.send("m3", "three", &[(&room, "r"), (&other, "r")]).await;
    f.store
        .record_failure(first[0], "timed out".into())
        .unwrap();
    f.store
        .record_failure(first[0], "timed out".into())
        .unwrap();
    f.set_time(2_000);
    assert_eq!(
        f.dead_letter_queue(&room, "route_removed").await,
        [first[0], second[0], third[0]]
    );
    let (fourth_id, fourth) = f.send("m4", "four", &[(&room, "r")]).await;
    let old_ids = [first[0], second[0], third[0], third[1], fourth[0]];
    let fourth_seq = f.queue(&room).await[0].2;
    f.announced();

    f.set_time(9_000);
    assert_eq!(
        f.store
            .requeue(Requeue::One {
                outbox_id: second[0]
            })
            .await
            .unwrap(),
        1
    );
    let announced = f.announced();
    assert_eq!(announced.len(), 1, "one commit handed to delivery");
    let [(to, row)] = &announced[0][..] else {
        panic!("one row expected: {:?}", announced[0]);
    };
    assert_eq!(to, &room);
    assert_eq!(row.bridged_id, second_id);
    assert!(!old_ids.contains(&row.outbox_id), "a new outbox id");
    assert!(row.seq > fourth_seq, "after every row queued before");
    assert_eq!(
        (row.attempts, row.created_ms, row.route.as_str()),
        (0, 1_000, "r")
    );
    assert_eq!(row.event.content.to_plain(), "two");
    let second_seq = row.seq;

    assert_eq!(
        f.store.requeue(Requeue::Room(room.clone())).await.unwrap(),
        2
    );
    let announced = f.announced();
    assert_eq!(announced.len(), 1, "one commit handed to delivery");
    let rows: Vec<(i64, i64, i64)> = announced[0]
        .iter()
        .map(|(to, row)| {
            assert_eq!(to, &room);
            assert!(!old_ids.contains(&row.outbox_id), "a new outbox id");
            assert_eq!((row.attempts, row.created_ms), (0, 1_000), "attempts reset");
            (row.bridged_id, row.outbox_id, row.seq)
        })
        .collect();
    assert_eq!(
        rows.iter().map(|row| row.0).collect::<Vec<_>>(),
        vec![first_id, third_id],
        "the room's letters in their original order"
    );
    assert!(second_seq < rows[0].2 && rows[0].2 < rows[1].2);

    let queue = f.queue(&room).await;
    assert_eq!(
        queue.iter().map(|row| row.0).collect::<Vec<_>>(),
        vec![fourth_id, second_id, first_id, third_id],
        "requeued rows wait behind what was queued before them"
    );
    assert_eq!(&queue[2..], &rows[..], "delivery reads what it was handed");
    assert!(
        f.store.dead_letters().await.unwrap().is_empty(),
        "letters removed"
    );
    assert_eq!(f.queue(&other).await.len(), 1, "the other room untouched");

    // A requeued row ends like any other.
    f.store
        .complete(Completion::Skipped {
            outbox_id: rows[0].1,
        })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(f.queue(&room).await.len(), 3);
}

async fn requeueing_what_is_not_a_dead_letter_changes_nothing(mut f: Fixture) {
    let (room, gone) = (RoomKey::new("irc", "#chan"), RoomKey::new("irc", "#gone"));
    let (_, queued) = f.send("m1", "one", &[(&room, "r")]).await;
    let (_, dead) = f.send("m2", "two", &[(&gone, "r")]).await;
    f.dead_letter_queue(&gone, "route_removed").await;
    let queue = f.queue(&room).await;
    let letters = f.store.dead_letters().await.unwrap();
    f.announced();

    for which in [
        Requeue::One { outbox_id: 999_999 },
        Requeue::One {
            outbox_id: queued[0],
        },
        Requeue::Room(room.clone()),
        Requeue::Room(RoomKey::new("irc", "#never")),
    ] {
        assert_eq!(
            f.store.requeue(which.clone()).await.unwrap(),
            0,
            "{which:?}"
        );
    }
    assert!(f.announced().is_empty(), "nothing handed to delivery");
    assert_eq!(f.queue(&room).await, queue, "a queued row is not doubled");
    assert_eq!(f.store.dead_letters().await.unwrap(), letters);

    assert_eq!(
        f.store
            .requeue(Requeue::One { outbox_id: dead[0] })
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        f.store
            .requeue(Requeue::One { outbox_id: dead[0] })
            .await
            .unwrap(),
        0,
        "a letter is requeued once"
    );
}

async fn recent_dead_letters_come_newest_first_with_their_message(f: Fixture) {
    let (a, b) = (RoomKey::new("irc", "#a"), RoomKey::new("irc", "#b"));
    let (first_id, first) = f.send("m1", "first", &[(&a, "r")]).await;
    let (second_id, second) = f.send("m2", "second", &[(&b, "r")]).await;
    let (third_id, third) = f.send("m3", "third", &[(&a, "r")]).await;
    let dead = |outbox_id: i64| {
        f.store
            .complete(Completion::Dead {
                outbox_id,
                reason: "permanent".into(),
            })
            .unwrap()
    };
    f.set_time(2_000);
    dead(first[0]).await.unwrap();
    f.set_time(3_000);
    f.dead_letter_queue(&b, "route_removed").await;
    dead(third[0]).await.unwrap();

    let recent = f.store.recent_dead_letters(10).await.unwrap();
    /// Bridged id, dead_ms, reason, (sender, text).
    type Shown<'a> = (i64, i64, &'a str, Option<(&'a str, &'a str)>);
    let shown: Vec<Shown<'_>> = recent
        .iter()
        .map(|l| {
            let summary = l
                .summary
                .as_ref()
                .map(|(who, text)| (who.as_str(), text.as_str()));
            (l.bridged_id, l.dead_ms, l.reason.as_str(), summary)
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            // Same time: the later outbox id first.
            (third_id, 3_000, "permanent", Some(("alice", "third"))),
            (second_id, 3_000, "route_removed", Some(("alice", "second"))),
            (first_id, 2_000, "permanent", Some(("alice", "first"))),
        ]
    );
    assert!(recent.iter().all(|l| l.created_ms == 1_000));
    assert_eq!(recent[0].outbox_id, third[0]);
    assert_eq!(recent[1].outbox_id, second[0]);
    assert_eq!(
        f.store.recent_dead_letters(2).await.unwrap(),
        recent[..2].to_vec()
    );
    assert!(f.store.recent_dead_letters(0).await.unwrap().is_empty());
    let all: Vec<i64> = f
        .store
        .dead_letters()
        .await
        .unwrap()
        .iter()
        .map(|l| l.outbox_id)
        .collect();
    assert_eq!(
        all,
        vec![first[0], second[0], third[0]],
        "dead_letters: by outbox id"
    );
}

async fn a_dead_letters_message_outlives_retention_so_it_can_be_requeued(mut f: Fixture) {
    let room = RoomKey::new("irc", "#gone");
    let (kept_id, _) = f.send("m1", "kept", &[(&room, "r")]).await;
    let (pruned_id, _) = f.send("m2", "pruned", &[]).await;
    f.dead_letter_queue(&room, "route_removed").await;
    f.announced();
    f.set_time(1_000_000);
    let before = PruneBefore {
        id_map_ms: 500_000,
        dead_letters_ms: 0,
    };
    let pruned = f.store.prune(before, 100).await.unwrap();
    assert_eq!(pruned.messages, 1, "the message nothing needs is pruned");
    assert_eq!(f.store.summary(pruned_id).await.unwrap(), None);
    assert_eq!(
        f.store.recent_dead_letters(10).await.unwrap()[0].summary,
        Some(("alice".into(), "kept".into()))
    );

    assert_eq!(
        f.store.requeue(Requeue::Room(room.clone())).await.unwrap(),
        1
    );
    let announced = f.announced();
    let rows: Vec<_> = announced.iter().flatten().collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1.bridged_id, kept_id);
    assert_eq!(rows[0].1.event.content.to_plain(), "kept");
}
