//! The state a fake server shares with its tests, and the one bounded wait they
//! all use. Every change a test may wait for bumps a counter; a wait subscribes to
//! it before it looks, so no change can slip in between the look and the wait, and
//! no test needs to sleep and poll.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

pub struct Watched<S> {
    state: Mutex<S>,
    changes: watch::Sender<u64>,
    /// The fake's name and a summary of its state, for the message of a wait that
    /// timed out.
    name: &'static str,
    describe: fn(&S) -> String,
}

impl<S> Watched<S> {
    pub fn new(name: &'static str, state: S, describe: fn(&S) -> String) -> Self {
        let (changes, _) = watch::channel(0u64);
        Watched {
            state: Mutex::new(state),
            changes,
            name,
            describe,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, S> {
        // A panicking test must not turn every later call into a poison error.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every wait to look again.
    pub fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Waits until `check`, called on the state after every change, finds
    /// something; returns it.
    pub async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&S) -> Option<T>,
    ) -> T {
        self.wait_for(what, timeout, || check(&self.lock())).await
    }

    /// Waits until `check` finds something; it runs without the lock held after
    /// every change, so it may use any accessor of the fake. Panics with `what` and
    /// a summary of the state on timeout.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.changes.subscribe();
        loop {
            if let Some(found) = check() {
                return found;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let seen = (self.describe)(&self.lock());
                panic!(
                    "fake {}: timed out after {timeout:?} waiting for {what}; {seen}",
                    self.name
                );
            }
        }
    }
}
