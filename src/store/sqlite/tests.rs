//! The SQLite store against its contract: migrations keep pending rows in order, the
//! per-room sequence, dedup by the id map's unique key, and retention that levels
//! the database off under days of simulated traffic; requeued rows stored like new
//! ones, and a dead letter whose message is gone refused.

use super::*;
use crate::store::{Requeue, Retention, SharedStore, retention};
use rusqlite::params;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use switchboard_sdk::{EventKind, RichText, Sender};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

fn message(room: &RoomKey, native_id: &str, text: &str) -> Inbound {
    Inbound::message(
        room.clone(),
        Sender::user("u1", "alice"),
        Some(NativeMsgId::new(native_id.to_owned())),
        RichText::plain(text),
    )
}

fn to(room: &RoomKey) -> Vec<Destination> {
    vec![Destination {
        route: Arc::from("r"),
        room: room.clone(),
    }]
}

fn count(dir: &Path, table: &str) -> i64 {
    let conn = Connection::open(dir.join(DATABASE_FILE)).unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
        row.get(0)
    })
    .unwrap()
}

#[tokio::test]
async fn pending_rows_of_an_older_database_keep_their_order_after_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE_FILE);
    {
        // A database as version 2 left it, with rows pending in two rooms.
        let mut conn = Connection::open(&path).unwrap();
        schema::configure_common(&conn).unwrap();
        for (version, sql) in &schema::MIGRATIONS[..2] {
            let tx = conn.transaction().unwrap();
            tx.execute_batch(sql).unwrap();
            tx.pragma_update(None, "user_version", version).unwrap();
            tx.commit().unwrap();
        }
        let event = serde_json::to_string(&message(&RoomKey::new("a", "#a"), "m", "x")).unwrap();
        for i in 1..=6 {
            conn.execute(
                "INSERT INTO bridged_message (id, origin_network, origin_room, sender_name, event, created_ms) \
                 VALUES (?1, 'a', '#a', 'alice', ?2, 0)",
                params![i, event],
            )
            .unwrap();
            let room = if i % 2 == 0 { "#even" } else { "#odd" };
            conn.execute(
                "INSERT INTO outbox (bridged_id, route, network, room, created_ms) VALUES (?1, 'r', 'b', ?2, 0)",
                params![i, room],
            )
            .unwrap();
        }
    }
    let (store, _committed) = SqliteStore::open(dir.path()).unwrap();
    let even = RoomKey::new("b", "#even");
    let before: Vec<i64> = store
        .pending_after(&even, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|row| row.bridged_id)
        .collect();
    assert_eq!(before, vec![2, 4, 6], "pending rows keep their order");
    let AcceptOutcome::Accepted { bridged_id, .. } = store
        .accept(message(&RoomKey::new("a", "#a"), "new", "new"), to(&even))
        .await
        .unwrap()
    else {
        panic!("not accepted");
    };
    let rows = store.pending_after(&even, 0, 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|row| row.bridged_id).collect::<Vec<_>>(),
        vec![2, 4, 6, bridged_id],
        "a new row comes after the migrated ones"
    );
    let last_old = rows[2].seq;
    assert_eq!(
        store
            .pending_after(&even, last_old, 10)
            .await
            .unwrap()
            .len(),
        1,
        "the cursor skips what was seen"
    );
}

#[tokio::test]
async fn each_room_has_its_own_sequence_and_duplicates_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut committed) = SqliteStore::open(dir.path()).unwrap();
    let origin = RoomKey::new("a", "#a");
    let (b, c) = (RoomKey::new("b", "#b"), RoomKey::new("c", "#c"));
    for i in 0..3 {
        let destinations = if i == 1 {
            to(&b)
        } else {
            vec![to(&b).remove(0), to(&c).remove(0)]
        };
        store
            .accept(message(&origin, &format!("m{i}"), "x"), destinations)
            .await
            .unwrap();
    }
    let seqs = |rows: Vec<PendingRow>| rows.iter().map(|row| row.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.pending_after(&b, 0, 10).await.unwrap()),
        vec![1, 2, 3]
    );
    assert_eq!(
        seqs(store.pending_after(&c, 0, 10).await.unwrap()),
        vec![1, 2]
    );
    let mut handed = 0;
    while let Ok(rows) = committed.try_recv() {
        handed += rows.len();
    }
    assert_eq!(handed, 5, "every committed row is handed to delivery");
    assert_eq!(
        store
            .accept(message(&origin, "m1", "again"), to(&b))
            .await
            .unwrap(),
        AcceptOutcome::Duplicate
    );
    assert_eq!(
        count(dir.path(), "bridged_message"),
        3,
        "nothing kept of it"
    );
    assert_eq!(count(dir.path(), "outbox"), 5);
    assert!(committed.try_recv().is_err(), "nothing handed to delivery");
}

#[tokio::test]
async fn a_room_never_reuses_a_sequence_number_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let origin = RoomKey::new("a", "#a");
    let b = RoomKey::new("b", "#b");
    {
        let (store, _committed) = SqliteStore::open(dir.path()).unwrap();
        for i in 0..2 {
            let AcceptOutcome::Accepted { outbox, .. } = store
                .accept(message(&origin, &format!("m{i}"), "x"), to(&b))
                .await
                .unwrap()
            else {
                panic!("not accepted");
            };
            store
                .complete(Completion::Skipped {
                    outbox_id: outbox[0].1,
                })
                .unwrap()
                .await
                .unwrap();
        }
        store.flush().await.unwrap();
    }
    assert_eq!(count(dir.path(), "outbox"), 0, "the outbox emptied");
    let (store, _committed) = SqliteStore::open(dir.path()).unwrap();
    store
        .accept(message(&origin, "m2", "x"), to(&b))
        .await
        .unwrap();
    let rows = store.pending_after(&b, 0, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    // Numbers are reserved in blocks: a restart goes on above the reservation.
    assert!(rows[0].seq > 2, "{rows:?}");
    let AcceptOutcome::Accepted { .. } = store
        .accept(message(&origin, "m3", "x"), to(&b))
        .await
        .unwrap()
    else {
        panic!("not accepted");
    };
    let rows = store.pending_after(&b, 0, 10).await.unwrap();
    assert!(rows[1].seq > rows[0].seq, "{rows:?}");
}

#[tokio::test]
async fn a_requeued_row_is_stored_fresh_and_keeps_its_place_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let origin = RoomKey::new("a", "#a");
    let b = RoomKey::new("b", "#b");
    let (clock_ms, clock) = simulated_clock(1_000);
    let requeued: Vec<(i64, i64)> = {
        let (store, _committed) = SqliteStore::open_with_clock(dir.path(), clock).unwrap();
        for i in 0..2 {
            store
                .accept(message(&origin, &format!("m{i}"), "x"), to(&b))
                .await
                .unwrap();
        }
        let first = store.pending_after(&b, 0, 1).await.unwrap()[0].outbox_id;
        store.record_failure(first, "timed out".into()).unwrap();
        clock_ms.store(2_000, Ordering::SeqCst);
        assert_eq!(dead_letter_queue(&store, &b).await, 2);
        assert_eq!(store.requeue(Requeue::Room(b.clone())).await.unwrap(), 2);
        let rows = store.pending_after(&b, 0, 10).await.unwrap();
        rows.iter().map(|row| (row.bridged_id, row.seq)).collect()
    };
    let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
    let stored: Vec<(i64, Option<String>, i64)> = conn
        .prepare("SELECT attempts, last_error, created_ms FROM outbox ORDER BY seq")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stored,
        vec![(0, None, 1_000), (0, None, 1_000)],
        "no attempts, no error"
    );
    assert_eq!(count(dir.path(), "dead_letter"), 0);

    let (store, _committed) = SqliteStore::open(dir.path()).unwrap();
    let AcceptOutcome::Accepted { bridged_id, .. } = store
        .accept(message(&origin, "m2", "x"), to(&b))
        .await
        .unwrap()
    else {
        panic!("not accepted");
    };
    let rows = store.pending_after(&b, 0, 10).await.unwrap();
    let order: Vec<i64> = rows.iter().map(|row| row.bridged_id).collect();
    assert_eq!(order, vec![requeued[0].0, requeued[1].0, bridged_id]);
    assert_eq!(
        rows[1].seq, requeued[1].1,
        "the requeued rows' numbers were saved"
    );
    assert!(rows[2].seq > requeued[1].1, "{rows:?}");
}

#[tokio::test]
async fn a_letter_whose_message_is_gone_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut committed) = SqliteStore::open(dir.path()).unwrap();
    let origin = RoomKey::new("a", "#a");
    let b = RoomKey::new("b", "#b");
    let mut ids = Vec::new();
    for i in 0..2 {
        let AcceptOutcome::Accepted { bridged_id, outbox } = store
            .accept(message(&origin, &format!("m{i}"), "x"), to(&b))
            .await
            .unwrap()
        else {
            panic!("not accepted");
        };
        ids.push((bridged_id, outbox[0].1));
    }
    assert_eq!(dead_letter_queue(&store, &b).await, 2);
    while committed.try_recv().is_ok() {}
    // Retention never does this (see `still_needed`); a hand-edited database might.
    let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
    conn.pragma_update(None, "foreign_keys", false).unwrap();
    conn.execute("DELETE FROM bridged_message WHERE id = ?1", [ids[1].0])
        .unwrap();

    let refused = store.requeue(Requeue::Room(b.clone())).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::MessageGone { outbox_id, bridged_id })
                if (bridged_id, outbox_id) == ids[1]
        ),
        "{refused:?}"
    );
    assert_eq!(count(dir.path(), "outbox"), 0, "nothing requeued");
    assert_eq!(count(dir.path(), "dead_letter"), 2, "both letters kept");
    assert!(committed.try_recv().is_err(), "nothing handed to delivery");
    let letters = store.dead_letters().await.unwrap();
    assert_eq!(letters[1].summary, None, "shown without its message");
    assert!(letters[0].summary.is_some());

    let one = Requeue::One {
        outbox_id: ids[0].1,
    };
    assert_eq!(
        store.requeue(one).await.unwrap(),
        1,
        "the other one still can"
    );
    assert_eq!(committed.try_recv().unwrap().len(), 1);
}

/// Dead-letters every row queued for `room` as delivery does (a `Completion::Dead`
/// per row, committed); how many there were.
async fn dead_letter_queue(store: &SqliteStore, room: &RoomKey) -> usize {
    let rows = store.pending_after(room, 0, 100).await.unwrap();
    for row in &rows {
        let dead = Completion::Dead {
            outbox_id: row.outbox_id,
            reason: format!("{room} is no longer in any route"),
        };
        store.complete(dead).unwrap().await.unwrap();
    }
    rows.len()
}

/// Simulated time for the store's stamps.
fn simulated_clock(start_ms: i64) -> (Arc<AtomicI64>, crate::store::Clock) {
    let now = Arc::new(AtomicI64::new(start_ms));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    (now, clock)
}

/// Pages in use by the database (what the file holds once checkpointed), and free.
fn pages(dir: &Path) -> (i64, i64) {
    let conn = Connection::open(dir.join(DATABASE_FILE)).unwrap();
    let total: i64 = conn
        .pragma_query_value(None, "page_count", |row| row.get(0))
        .unwrap();
    let free: i64 = conn
        .pragma_query_value(None, "freelist_count", |row| row.get(0))
        .unwrap();
    (total, free)
}

/// Twelve simulated days of steady traffic (replies and dead letters included) with
/// short retention: the row counts and the database's pages stop growing once the
/// oldest rows age out, and a message a pending row needs is never pruned.
#[tokio::test]
async fn retention_levels_the_database_off_under_days_of_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let start_ms = 1_700_000_000_000;
    let (now, clock) = simulated_clock(start_ms);
    let (store, _committed) = SqliteStore::open_with_clock(dir.path(), clock).unwrap();
    let store: SharedStore = Arc::new(store);
    let retention = Retention {
        id_map: Duration::from_secs(2 * 86_400),
        dead_letters: Duration::from_secs(86_400),
    };
    let origin = RoomKey::new("a", "#a");
    let (up, down) = (RoomKey::new("b", "#b"), RoomKey::new("c", "#c"));

    // Day 0: one message to a room that stays down all along, answered by a reply
    // that is pending there too: both must survive every pruning.
    let AcceptOutcome::Accepted {
        bridged_id: stuck, ..
    } = store
        .accept(message(&origin, "stuck", "first"), to(&down))
        .await
        .unwrap()
    else {
        panic!("not accepted");
    };
    let mut reply = message(&origin, "stuck-reply", "answer");
    reply.reply_to = Some(NativeMsgId::new("stuck"));
    store.accept(reply, to(&down)).await.unwrap();

    let per_hour = 40;
    let mut sizes = Vec::new();
    for day in 0..12 {
        for hour in 0..24 {
            now.store(start_ms + day * DAY_MS + hour * HOUR_MS, Ordering::SeqCst);
            let accepts = (0..per_hour).map(|i| {
                let store = store.clone();
                let mut event = message(&origin, &format!("d{day}h{hour}m{i}"), "hello");
                if i % 5 == 4 {
                    event.reply_to = Some(NativeMsgId::new(format!("d{day}h{hour}m{}", i - 1)));
                }
                if i % 13 == 12 {
                    event.kind = EventKind::Edit {
                        target: NativeMsgId::new(format!("d{day}h{hour}m0")),
                    };
                }
                let destinations = to(&up);
                async move { store.accept(event, destinations).await.unwrap() }
            });
            let mut last = None;
            for (i, outcome) in futures::future::join_all(accepts)
                .await
                .into_iter()
                .enumerate()
            {
                let AcceptOutcome::Accepted { bridged_id, outbox } = outcome else {
                    panic!("not accepted: {outcome:?}");
                };
                let outbox_id = outbox[0].1;
                let completion = if i % 10 == 9 {
                    Completion::Dead {
                        outbox_id,
                        reason: "refused".into(),
                    }
                } else {
                    Completion::Delivered {
                        outbox_id,
                        bridged_id,
                        room: up.clone(),
                        native_ids: vec![
                            NativeMsgId::new(format!("copy-{bridged_id}-0")),
                            NativeMsgId::new(format!("copy-{bridged_id}-1")),
                        ],
                    }
                };
                last = Some(store.complete(completion).unwrap());
            }
            last.unwrap().await.unwrap();
            if hour % 6 == 5 {
                let now_ms = now.load(Ordering::SeqCst);
                retention::prune_all(&store, &retention, now_ms)
                    .await
                    .unwrap();
            }
        }
        store.flush().await.unwrap();
        sizes.push((
            day,
            count(dir.path(), "bridged_message"),
            count(dir.path(), "native_copy"),
            count(dir.path(), "dead_letter"),
            pages(dir.path()),
        ));
    }
    for (day, messages, copies, dead, (pages, free)) in &sizes {
        println!(
            "day {day}: {messages} messages, {copies} native ids, {dead} dead letters, {pages} pages ({free} free)"
        );
    }
    // Kept: ~2 days of messages (+ the stuck pair), ~1 day of dead letters.
    let per_day = 24 * per_hour;
    for &(day, messages, copies, dead, _) in &sizes[3..] {
        assert!(
            messages <= 2 * per_day + per_day / 4 + 2,
            "day {day}: {messages} messages kept"
        );
        assert!(copies <= 3 * messages, "day {day}: {copies} native ids");
        assert!(
            dead <= per_day / 10 + per_day / 40,
            "day {day}: {dead} dead letters"
        );
    }
    let (_, _, _, _, (pages_day_4, _)) = sizes[4];
    let (_, _, _, _, (pages_last, free_last)) = sizes[11];
    assert!(
        pages_last <= pages_day_4 + pages_day_4 / 10,
        "the database kept growing: {pages_day_4} pages on day 4, {pages_last} on day 11 ({free_last} free); {sizes:?}"
    );
    // The stuck message and the reply waiting behind it are still there.
    assert!(store.summary(stuck).await.unwrap().is_some());
    assert_eq!(
        store.pending_after(&down, 0, 10).await.unwrap().len(),
        2,
        "pending rows untouched"
    );
    assert_eq!(
        store.native_ids_in(stuck, &origin).await.unwrap(),
        vec![NativeMsgId::new("stuck")],
        "its id map entry is kept"
    );
}
