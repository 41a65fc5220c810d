//! Retention: old rows are pruned by age so the database levels off instead of
//! growing with every message ever bridged.
//!
//! Pruning goes through the store in small steps (`PRUNE_STEP` rows per
//! transaction) and yields between them, so accepts queued meanwhile commit between
//! two steps instead of waiting behind one long delete. A message still needed by a
//! pending row is kept whatever its age.

use super::{PruneBefore, Pruned, SharedStore, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Bridged messages and the native-id map: past this, an edit, delete or reply
    /// to the message is no longer relayed as such, and its native id no longer
    /// counts as a duplicate.
    pub id_map: Duration,
    /// Dead letters, counted from when delivery gave up.
    pub dead_letters: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            id_map: Duration::from_secs(90 * 86_400),
            dead_letters: Duration::from_secs(30 * 86_400),
        }
    }
}

impl Retention {
    /// What is old enough to go at `now_ms`.
    pub fn before(&self, now_ms: i64) -> PruneBefore {
        let ago = |keep: Duration| {
            now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
        };
        PruneBefore {
            id_map_ms: ago(self.id_map),
            dead_letters_ms: ago(self.dead_letters),
        }
    }
}

/// Rows per pruning transaction: short enough that an accept queued behind one waits
/// a few milliseconds at most.
pub const PRUNE_STEP: usize = 500;

/// How often the daemon prunes.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// Prunes everything older than `retention` allows at `now_ms`, step by step.
pub async fn prune_all(
    store: &SharedStore,
    retention: &Retention,
    now_ms: i64,
) -> Result<Pruned, StoreError> {
    let before = retention.before(now_ms);
    let mut total = Pruned::default();
    loop {
        let step = store.prune(before, PRUNE_STEP).await?;
        total.messages += step.messages;
        total.dead_letters += step.dead_letters;
        if step.done {
            total.done = true;
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Prunes at start and then every `PRUNE_EVERY` until `cancel`.
pub async fn run(store: SharedStore, retention: Retention, cancel: CancellationToken) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = cancel.cancelled() => return,
        }
        let pruning = prune_all(&store, &retention, switchboard_sdk::event::now_ms());
        let pruned = tokio::select! {
            pruned = pruning => pruned,
            () = cancel.cancelled() => return,
        };
        match pruned {
            Ok(pruned) if pruned.messages + pruned.dead_letters > 0 => tracing::info!(
                messages = pruned.messages,
                dead_letters = pruned.dead_letters,
                "store: pruned rows past their retention"
            ),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "store: pruning failed; will try again"),
        }
    }
}
