//! `reload.watch: true`: reload when the config file changes. The file is looked at
//! once a second and, once it has stayed the same for one more look (so that an
//! editor writing it in several steps causes one reload, not a reload of half a
//! file), reloaded if its text differs from the text last applied.

use super::Reloader;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What tells one version of the file from the next without reading it.
fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

pub async fn run(reloader: Arc<Reloader>) {
    let path = reloader.path().to_owned();
    // The version whose text was last compared; `None`: compare at the first look.
    let mut compared = None;
    let mut seen = None;
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(path = %path.display(), "watching the config file for changes");
    loop {
        ticks.tick().await;
        let now = stamp(&path);
        if now.is_some() && now == seen && now != compared {
            compared = now;
            if reloader.file_differs().await {
                tracing::info!(path = %path.display(), "the config file changed: reloading");
                reloader.reload_file().await;
            }
        }
        seen = now;
    }
}
