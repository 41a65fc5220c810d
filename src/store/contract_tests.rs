//! Rules every `Store` keeps, run against both implementations: what an event
//! refers to must exist, and a reaction taken back releases its id.

use super::{AcceptOutcome, Destination, MemoryStore, SharedStore, SqliteStore};
use std::sync::Arc;
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
