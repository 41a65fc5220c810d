//! Rows reach delivery before the disk confirms them; callers hear only after it did,
//! and never after it failed.

use super::super::{DATABASE_FILE, SqliteStore, WalSync};
use crate::store::{AcceptOutcome, Destination, Store, StoreError, system_clock};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;
use switchboard_sdk::{Inbound, NativeMsgId, NetworkId, RichText, RoomKey, Sender};

const WAIT: Duration = Duration::from_secs(20);

/// A WAL sync that waits until the test says how it ends.
fn held_sync() -> (WalSync, SyncSender<std::io::Result<()>>) {
    let (release, outcome) = sync_channel(0);
    let sync: WalSync = Box::new(move || outcome.recv().unwrap_or(Ok(())));
    (sync, release)
}

fn message(native_id: &str) -> Inbound {
    Inbound::message(
        RoomKey::new("a", "#a"),
        Sender::user("u1", "alice"),
        Some(NativeMsgId::new(native_id.to_owned())),
        RichText::plain("hello"),
    )
}

fn to_b() -> Vec<Destination> {
    vec![Destination {
        route: Arc::from("r"),
        room: RoomKey::new("b", "#b"),
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_gets_a_row_before_the_sync_and_its_source_the_answer_after() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, release) = held_sync();
    let (store, mut committed) = SqliteStore::open_with(dir.path(), system_clock(), sync).unwrap();
    let accepting = tokio::spawn({
        let store = store.clone();
        async move { store.accept(message("m1"), to_b()).await }
    });
    let rows = tokio::time::timeout(WAIT, committed.recv())
        .await
        .expect("the row reaches delivery while the sync is held back")
        .expect("the store is open");
    assert_eq!(rows.len(), 1);
    assert!(
        !accepting.is_finished(),
        "the source must not be answered before the sync"
    );
    // The row is readable (by delivery's look-ups) before it is on disk.
    let pending = store.pending_after(&rows[0].0, 0, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    release.send(Ok(())).unwrap();
    let outcome = tokio::time::timeout(WAIT, accepting)
        .await
        .expect("answered once synced")
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, AcceptOutcome::Accepted { .. }));
    // A saved position is answered after a sync too.
    let saving = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .save_adapter_state(&NetworkId::new("a"), "cursor", "7")
                .await
        }
    });
    release.send(Ok(())).unwrap();
    tokio::time::timeout(WAIT, saving)
        .await
        .expect("answered once synced")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_refuses_its_commands_and_every_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, release) = held_sync();
    let (store, _committed) = SqliteStore::open_with(dir.path(), system_clock(), sync).unwrap();
    let accepting = tokio::spawn({
        let store = store.clone();
        async move { store.accept(message("m1"), to_b()).await }
    });
    release
        .send(Err(std::io::Error::other("injected EIO")))
        .unwrap();
    let refused = tokio::time::timeout(WAIT, accepting)
        .await
        .expect("answered")
        .unwrap();
    assert!(
        matches!(&refused, Err(StoreError::SyncFailed(error)) if error.contains("injected EIO")),
        "{refused:?}"
    );
    let later = tokio::time::timeout(WAIT, store.accept(message("m2"), to_b()))
        .await
        .expect("answered");
    assert!(matches!(later, Err(StoreError::SyncFailed(_))), "{later:?}");
    assert!(dir.path().join(DATABASE_FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_a_writer_that_never_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _committed) = SqliteStore::open(dir.path()).unwrap();
    let wal = dir.path().join(format!("{DATABASE_FILE}-wal"));
    let mut largest = 0;
    // Each accept writes a few pages; these write several times the WAL's limit.
    for i in 0..8_000 {
        store
            .accept_unacknowledged(message(&format!("m{i}")), to_b())
            .await
            .unwrap();
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    store.flush().await.unwrap();
    // The limit is 8,000 pages of 4 KiB (plus frame headers), and one batch more.
    assert!(
        largest < 48 << 20,
        "the WAL grew to {} MiB: it never started over",
        largest >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zeros_reserved_past_the_wal_are_read_as_its_end_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join(format!("{DATABASE_FILE}-wal"));
    let (store, _committed) = SqliteStore::open(dir.path()).unwrap();
    let reserved = std::fs::metadata(&wal).unwrap().len();
    assert!(
        reserved > 8_000 * 4_096,
        "the WAL is written out when the store opens ({reserved} bytes)"
    );
    for i in 0..50 {
        let outcome = store.accept(message(&format!("m{i}")), to_b()).await;
        assert!(matches!(outcome, Ok(AcceptOutcome::Accepted { .. })));
    }
    assert_eq!(
        std::fs::metadata(&wal).unwrap().len(),
        reserved,
        "commits overwrite the reserved space"
    );
    // What a `kill -9` leaves: the database and its WAL (frames, then zeros), with
    // the store still open.
    let crashed = tempfile::tempdir().unwrap();
    for file in [DATABASE_FILE.to_owned(), format!("{DATABASE_FILE}-wal")] {
        std::fs::copy(dir.path().join(&file), crashed.path().join(&file)).unwrap();
    }
    drop(store);
    let (store, _committed) = SqliteStore::open(crashed.path()).unwrap();
    let pending = store
        .pending_after(&RoomKey::new("b", "#b"), 0, 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 50, "every acknowledged message is back");
    let again = store.accept(message("m49"), to_b()).await.unwrap();
    assert!(matches!(again, AcceptOutcome::Duplicate), "{again:?}");
}
