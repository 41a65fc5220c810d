//! Each destination room's backlog: made visible (queue depth and the age of the
//! oldest queued row in `/metrics`, lagging rooms in `/healthz` and the log), and kept
//! in bounds where a source can wait.
//!
//! Delivery is one request at a time per room, in order, so a flood from a source
//! that is answered as soon as its message is on disk grows the room's queue and its
//! latency without bound. A source that holds its connection open while it waits for
//! the answer (a webhook, an application-service transaction) can be slowed instead:
//! its answer is held while a destination room has more than `hold_answers_above`
//! rows queued, for at most `hold_answers_for`, well under any sender's timeout. The
//! message is already on disk and is never refused; a flood raises the sender's
//! latency instead of the queue's. Sources that cannot wait (IRC, a cursor saved
//! later) submit unacknowledged and are never held.

use super::delivery::{RoomScheduler, RoomState};
use crate::health::Lagging;
use crate::metrics as m;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchboard_sdk::RoomKey;

/// How often the watcher looks at every room, at most.
const WATCH_EVERY: Duration = Duration::from_secs(1);

impl RoomScheduler {
    /// Waits while any of `rooms` has more rows queued than the bound, for at most the
    /// configured time. Returns at once when no room is over the bound.
    pub async fn hold_answer<'a>(&self, rooms: impl IntoIterator<Item = &'a RoomKey>) {
        let settings = &self.shared.settings;
        let over: Vec<Arc<RoomState>> = {
            let known = self.lock();
            rooms
                .into_iter()
                .filter_map(|room| known.get(room).cloned())
                .filter(|state| state.depth.load(Ordering::Relaxed) > settings.hold_answers_above)
                .collect()
        };
        if over.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + settings.hold_answers_for;
        let mut outcome = "drained";
        for state in &over {
            if !drained(state, settings.hold_answers_above, deadline).await {
                outcome = "timed_out";
                break;
            }
        }
        m::answer_held(outcome);
    }

    /// One look at every room: the age gauge, and lagging rooms reported when they
    /// start and stop lagging.
    fn watch_once(&self, now_ms: i64) {
        let lagging_after = self.shared.settings.lagging_after.as_millis() as i64;
        let rooms: Vec<Arc<RoomState>> = self.lock().values().cloned().collect();
        for state in rooms {
            let depth = state.depth.load(Ordering::Relaxed);
            let head = state.head_created_ms.load(Ordering::Relaxed);
            let age_ms = if depth > 0 && head > 0 {
                (now_ms - head).max(0)
            } else {
                0
            };
            m::queue_oldest_age(&state.key, age_ms);
            let lagging = age_ms > lagging_after;
            let was_lagging = state.lagging.swap(lagging, Ordering::Relaxed);
            if lagging && !was_lagging {
                tracing::warn!(
                    room = %state.key,
                    oldest_queued_s = age_ms / 1000,
                    queued = depth,
                    "delivery: room is lagging"
                );
            } else if was_lagging && !lagging {
                tracing::info!(room = %state.key, queued = depth, "delivery: room caught up");
            }
            if lagging || was_lagging {
                let shown = lagging.then(|| Lagging::new(depth, head));
                self.shared.health.set_lagging(&state.key, shown);
            }
        }
    }
}

/// Waits until `state` has at most `bound` rows queued; false if `deadline` came
/// first.
async fn drained(state: &RoomState, bound: i64, deadline: tokio::time::Instant) -> bool {
    state.holders.fetch_add(1, Ordering::AcqRel);
    let result = loop {
        // Registered before the check, so a delivery in between still wakes it.
        let notified = state.drained.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if state.depth.load(Ordering::Relaxed) <= bound {
            break true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            break false;
        }
    };
    state.holders.fetch_sub(1, Ordering::AcqRel);
    result
}

/// Looks at every room now and then until shutdown.
pub(super) async fn watch(queues: Arc<RoomScheduler>) {
    let every = WATCH_EVERY.min(queues.shared.settings.lagging_after / 2);
    let every = every.max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => queues.watch_once(switchboard_sdk::event::now_ms()),
            () = queues.shared.cancel.cancelled() => return,
        }
    }
}
