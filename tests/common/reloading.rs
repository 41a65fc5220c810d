//! A daemon over three fake networks `a`, `b` and `c` with its config file and its
//! reloader, for the reload and admin API tests. The file names the networks as IRC
//! sections; the daemon runs fakes under those names, so route changes never build a
//! network and the file only has to be valid.

use super::{WAIT, dyn_adapter, fakes, start};
use std::path::PathBuf;
use std::sync::Arc;
use switchboard::reload::Reloader;
use switchboard::{Daemon, config};
use switchboard_sdk::Adapter;
use switchboard_sdk::testing::FakeAdapter;

/// The `networks:` section of such a file.
pub const NETWORKS: &str = "networks:
  a:
    irc: {server: \"127.0.0.1:1\", tls: false, nick: bridge}
  b:
    irc: {server: \"127.0.0.1:1\", tls: false, nick: bridge}
  c:
    irc: {server: \"127.0.0.1:1\", tls: false, nick: bridge}
";

pub struct Reloading {
    pub daemon: Arc<Daemon>,
    pub reloader: Arc<Reloader>,
    pub fakes: Vec<Arc<FakeAdapter>>,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts the daemon on the config `text` (written to its file), with every fake
/// network running.
pub async fn start_reloading(text: &str) -> Reloading {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.yaml");
    std::fs::write(&path, text).unwrap();
    let config = config::load_str(text).expect("the test's config is valid");
    let fakes = fakes(3, false);
    let adapters: Vec<(&str, Arc<dyn Adapter>)> = ["a", "b", "c"]
        .into_iter()
        .zip(fakes.iter().map(dyn_adapter))
        .collect();
    let daemon = Arc::new(start(dir.path(), config.routes.clone(), adapters).await);
    let reloader = Arc::new(Reloader::new(
        daemon.clone(),
        path.clone(),
        config,
        text.to_owned(),
    ));
    for fake in &fakes {
        fake.wait_running(WAIT).await;
    }
    Reloading {
        daemon,
        reloader,
        fakes,
        path,
        _dir: dir,
    }
}
