//! The room set a running adapter serves, as a value the core may change while the
//! adapter runs: a route gains a room (the adapter joins it without reconnecting) or
//! loses one (the adapter leaves it, or stops relaying it).
//!
//! The core holds the [`RoomSetUpdater`]; each run of an adapter gets a [`RoomSet`]
//! (in `AdapterContext::rooms`) that reads the latest set and wakes on changes.

use crate::ids::RoomId;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::watch;

/// One snapshot of a network's rooms, in canonical form.
pub type Rooms = Arc<BTreeSet<RoomId>>;

/// The rooms of one network, as the routes currently name them.
#[derive(Clone, Debug)]
pub struct RoomSet {
    receiver: watch::Receiver<Rooms>,
}

/// The core's end of a [`RoomSet`]: what it sets, every subscriber sees.
#[derive(Debug)]
pub struct RoomSetUpdater {
    sender: watch::Sender<Rooms>,
}

/// What differs between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomChanges {
    pub added: Vec<RoomId>,
    pub removed: Vec<RoomId>,
}

impl RoomChanges {
    /// The rooms in `new` and not in `old`, and those in `old` and not in `new`.
    pub fn between(old: &BTreeSet<RoomId>, new: &BTreeSet<RoomId>) -> Self {
        Self {
            added: new.difference(old).cloned().collect(),
            removed: old.difference(new).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl RoomSet {
    /// A set the core can change through the returned updater.
    pub fn watched(rooms: impl IntoIterator<Item = RoomId>) -> (RoomSetUpdater, RoomSet) {
        let (sender, receiver) = watch::channel(Arc::new(rooms.into_iter().collect()));
        (RoomSetUpdater { sender }, RoomSet { receiver })
    }

    /// A set that never changes (tests and tools that run an adapter on their own).
    pub fn fixed(rooms: impl IntoIterator<Item = RoomId>) -> RoomSet {
        // With the updater gone, `changed` waits forever.
        Self::watched(rooms).1
    }

    /// The rooms now.
    pub fn current(&self) -> Rooms {
        self.receiver.borrow().clone()
    }

    pub fn contains(&self, room: &RoomId) -> bool {
        self.receiver.borrow().contains(room)
    }

    /// Waits until the set may differ from what this handle last saw through
    /// `changed` (or, for a fresh clone, what its original had seen), and returns the
    /// rooms then. Cancel-safe, so it can sit in a `select!` loop; an adapter compares
    /// the result with what it has applied ([`RoomChanges::between`]), since a wake
    /// may bring a set equal to the one it already serves. Never returns once the
    /// core dropped its updater: the set can no longer change.
    pub async fn changed(&mut self) -> Rooms {
        if self.receiver.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        self.receiver.borrow_and_update().clone()
    }
}

impl RoomSetUpdater {
    /// Replaces the set; subscribers wake only if it differs.
    pub fn set(&self, rooms: impl IntoIterator<Item = RoomId>) {
        let rooms: BTreeSet<RoomId> = rooms.into_iter().collect();
        self.sender.send_if_modified(|current| {
            if **current == rooms {
                return false;
            }
            *current = Arc::new(rooms);
            true
        });
    }

    /// Another handle on the same set, for a new run of the adapter.
    pub fn subscribe(&self) -> RoomSet {
        RoomSet {
            receiver: self.sender.subscribe(),
        }
    }

    pub fn current(&self) -> Rooms {
        self.sender.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rooms(names: &[&str]) -> Vec<RoomId> {
        names.iter().map(|name| RoomId::new(*name)).collect()
    }

    fn set(names: &[&str]) -> BTreeSet<RoomId> {
        rooms(names).into_iter().collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_wakes_the_adapter_with_the_new_set() {
        let (updater, mut watched) = RoomSet::watched(rooms(&["#a"]));
        assert_eq!(*watched.current(), set(&["#a"]));
        let waiter = tokio::spawn(async move { watched.changed().await });
        updater.set(rooms(&["#a", "#b"]));
        let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the change woke no one")
            .unwrap();
        assert_eq!(*seen, set(&["#a", "#b"]));
    }

    #[tokio::test(start_paused = true)]
    async fn setting_the_same_rooms_wakes_no_one() {
        let (updater, mut watched) = RoomSet::watched(rooms(&["#a", "#b"]));
        updater.set(rooms(&["#b", "#a"]));
        let woke = tokio::time::timeout(Duration::from_secs(5), watched.changed()).await;
        assert!(woke.is_err(), "woke for an unchanged set: {woke:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_set_never_changes() {
        let mut fixed = RoomSet::fixed(rooms(&["#a"]));
        let woke = tokio::time::timeout(Duration::from_secs(3600), fixed.changed()).await;
        assert!(woke.is_err(), "a fixed set reported a change: {woke:?}");
        assert!(fixed.contains(&RoomId::new("#a")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_made_while_nobody_waited_is_not_missed() {
        let (updater, mut watched) = RoomSet::watched(rooms(&["#a"]));
        // A `changed()` abandoned by a select does not lose the change that follows.
        let abandoned = tokio::time::timeout(Duration::from_millis(10), watched.changed()).await;
        assert!(abandoned.is_err());
        updater.set(rooms(&["#c"]));
        let seen = tokio::time::timeout(Duration::from_secs(5), watched.changed())
            .await
            .expect("the change was lost");
        assert_eq!(*seen, set(&["#c"]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_subscriber_sees_the_latest_set() {
        let (updater, _first) = RoomSet::watched(rooms(&["#a"]));
        updater.set(rooms(&["#b"]));
        assert_eq!(*updater.subscribe().current(), set(&["#b"]));
        assert_eq!(*updater.current(), set(&["#b"]));
    }

    #[test]
    fn changes_between_two_sets() {
        let changes = RoomChanges::between(&set(&["#a", "#b"]), &set(&["#b", "#c"]));
        assert_eq!(changes.added, rooms(&["#c"]));
        assert_eq!(changes.removed, rooms(&["#a"]));
        assert!(RoomChanges::between(&set(&["#a"]), &set(&["#a"])).is_empty());
    }
}
