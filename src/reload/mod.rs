//! Live config changes: every reload (SIGHUP, `switchboard reload`, the admin API and
//! page) is the same pipeline: check the whole new text as `switchboard check` does,
//! compare it with the running config, apply only the difference, and roll back if
//! applying fails. One reload runs at a time; the others wait their turn.
//!
//! Applying is two-phase so that routing never sees a half-applied config: networks
//! that are new or whose section changed are started, every network joins the rooms
//! of both configs, and only once the new rooms are joined (within
//! `reload.join_deadline`) is the routing table swapped and are the rooms and
//! networks the new config dropped left. Until then nothing is routed differently,
//! so a rollback has no messages to take back.

pub mod command;
pub mod diff;
mod file;
pub mod watch;

use crate::config::{self, Config, ConfigError};
use crate::daemon::Daemon;
use arc_swap::{ArcSwap, ArcSwapOption};
pub use diff::{ConfigDiff, RoomRef};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::{Adapter, NetworkId, RoomId};

/// What a reload (or a preview of one) came to.
#[derive(Debug)]
pub enum Outcome {
    Applied {
        generation: u64,
        diff: ConfigDiff,
    },
    /// The new text describes the running config (e.g. only comments changed).
    Unchanged {
        generation: u64,
    },
    /// A dry run: what applying would change.
    Preview {
        diff: ConfigDiff,
    },
    /// The new config is not valid, or changes what only a restart can; nothing
    /// changed.
    Rejected {
        errors: Vec<ConfigError>,
    },
    /// Applying failed; the previous config runs again.
    RolledBack {
        cause: String,
    },
    /// Someone else changed the config first.
    Conflict {
        generation: u64,
        reason: String,
    },
}

impl Outcome {
    /// The label in logs, `/metrics` and answers.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Unchanged { .. } => "unchanged",
            Outcome::Preview { .. } => "preview",
            Outcome::Rejected { .. } => "rejected",
            Outcome::RolledBack { .. } => "rolled_back",
            Outcome::Conflict { .. } => "conflict",
        }
    }
}

/// The running config as `/healthz` and the admin API show it.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigStatus {
    /// 1 at start, one more for each applied change.
    pub generation: u64,
    pub applied_at_ms: i64,
    pub last_reload: Option<LastReload>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastReload {
    pub outcome: &'static str,
    pub at_ms: i64,
    /// Why it was rejected or rolled back.
    pub detail: Option<String>,
}

/// Shared between the daemon (which shows it) and the reloader (which updates it).
pub type SharedConfigStatus = Arc<ArcSwap<ConfigStatus>>;

pub fn initial_status() -> SharedConfigStatus {
    Arc::new(ArcSwap::from_pointee(ConfigStatus {
        generation: 1,
        applied_at_ms: switchboard_sdk::event::now_ms(),
        last_reload: None,
    }))
}

/// The config the daemon runs, with the text it came from.
struct Running {
    config: Arc<Config>,
    /// The file's text when it was last applied or written: an API change is made
    /// to this text, and refused if the file on disk no longer holds it.
    text: String,
    generation: u64,
}

/// Where an edit's text comes from and whether it is written back.
enum Source {
    /// The file, as read now.
    File,
    /// An edit through the admin API, written back to the file once applied.
    Edit,
}

pub struct Reloader {
    daemon: Arc<Daemon>,
    path: PathBuf,
    running: tokio::sync::Mutex<Running>,
    /// The running config for readers that must not wait for a reload in progress.
    snapshot: ArcSwap<(u64, Arc<Config>)>,
    status: SharedConfigStatus,
    /// The admin token the API checks, replaced when a reload changes it.
    admin_token: Arc<ArcSwapOption<String>>,
}

impl Reloader {
    /// `config` was loaded from `text`, the content of `path`, and is what `daemon`
    /// runs.
    pub fn new(daemon: Arc<Daemon>, path: PathBuf, config: Config, text: String) -> Self {
        let config = Arc::new(config);
        let admin_token = Arc::new(ArcSwapOption::from(
            config.admin.token.clone().map(Arc::new),
        ));
        let status = daemon.config_status().clone();
        Self {
            daemon,
            path,
            snapshot: ArcSwap::from_pointee((1, config.clone())),
            running: tokio::sync::Mutex::new(Running {
                config,
                text,
                generation: 1,
            }),
            status,
            admin_token,
        }
    }

    /// The config file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn daemon(&self) -> &Arc<Daemon> {
        &self.daemon
    }

    /// The running config and its generation, without waiting for a reload.
    pub fn current(&self) -> Arc<(u64, Arc<Config>)> {
        self.snapshot.load_full()
    }

    pub fn admin_token(&self) -> &Arc<ArcSwapOption<String>> {
        &self.admin_token
    }

    /// Whether the file's text differs from the text last applied (or written).
    pub async fn file_differs(&self) -> bool {
        let running = self.running.lock().await;
        file::read(&self.path).is_ok_and(|text| text != running.text)
    }

    /// Reads the config file again and applies it.
    pub async fn reload_file(&self) -> Outcome {
        let mut running = self.running.lock().await;
        let text = match file::read(&self.path) {
            Ok(text) => text,
            Err(error) => {
                return self.finish(Outcome::Rejected {
                    errors: vec![error],
                });
            }
        };
        let outcome = self
            .apply_text(&mut running, text, false, Source::File)
            .await;
        self.finish(outcome)
    }

    /// Applies (or, with `dry_run`, previews) an edit of the routes made on the
    /// running config's text, and writes the new text to the file once applied.
    /// `if_generation` is the generation the editor last saw.
    pub async fn edit(
        &self,
        edit: &config::edit::RouteEdit,
        if_generation: u64,
        dry_run: bool,
    ) -> Result<Outcome, config::edit::EditError> {
        let mut running = self.running.lock().await;
        if running.generation != if_generation {
            return Ok(self.finish(Outcome::Conflict {
                generation: running.generation,
                reason: format!(
                    "the config changed (generation {} is running, the change was made to {if_generation})",
                    running.generation
                ),
            }));
        }
        match file::read(&self.path) {
            Ok(on_disk) if on_disk == running.text => {}
            Ok(_) => {
                return Ok(self.finish(Outcome::Conflict {
                    generation: running.generation,
                    reason: "the config file was changed on disk since it was applied; reload it first (SIGHUP or switchboard reload)".into(),
                }));
            }
            Err(error) => {
                return Ok(self.finish(Outcome::Rejected {
                    errors: vec![error],
                }));
            }
        }
        let text = config::edit::apply(&running.text, edit)?;
        let outcome = self
            .apply_text(&mut running, text, dry_run, Source::Edit)
            .await;
        Ok(if dry_run {
            outcome
        } else {
            self.finish(outcome)
        })
    }

    async fn apply_text(
        &self,
        running: &mut Running,
        text: String,
        dry_run: bool,
        source: Source,
    ) -> Outcome {
        let new = match config::load_str(&text) {
            Ok(config) => config,
            Err(errors) => return Outcome::Rejected { errors },
        };
        let restart = diff::needs_restart(&running.config, &new);
        if !restart.is_empty() {
            return Outcome::Rejected {
                errors: vec![ConfigError {
                    pos: None,
                    message: format!(
                        "{} changed: the running daemon cannot change {}",
                        restart.join(", "),
                        if restart.len() == 1 { "it" } else { "them" }
                    ),
                    hint: Some(
                        "restart switchboard to apply it, or undo it to reload the rest".into(),
                    ),
                }],
            };
        }
        let diff = diff::diff(&running.config, &new);
        if dry_run {
            return Outcome::Preview { diff };
        }
        let new = Arc::new(new);
        if diff.is_empty() {
            if let Source::Edit = source
                && let Err(error) = file::write_atomically(&self.path, &text)
            {
                return Outcome::RolledBack {
                    cause: format!("cannot write {}: {error}", self.path.display()),
                };
            }
            running.text = text;
            self.admin_token
                .store(new.admin.token.clone().map(Arc::new));
            self.snapshot
                .store(Arc::new((running.generation, new.clone())));
            running.config = new;
            return Outcome::Unchanged {
                generation: running.generation,
            };
        }
        let deadline = new.reload.join_deadline;
        if let Err(cause) = self.apply(&running.config, &new, &diff, deadline).await {
            return Outcome::RolledBack { cause };
        }
        if let Source::Edit = source
            && let Err(error) = file::write_atomically(&self.path, &text)
        {
            // File and daemon must agree: put the running config back.
            let back = diff::diff(&new, &running.config);
            let cause = format!("cannot write {}: {error}", self.path.display());
            if let Err(undo) = self.apply(&new, &running.config, &back, deadline).await {
                tracing::error!(%undo, "reload: undoing a change that could not be written failed");
            }
            return Outcome::RolledBack { cause };
        }
        running.generation += 1;
        running.text = text;
        running.config = new.clone();
        self.snapshot
            .store(Arc::new((running.generation, new.clone())));
        self.admin_token
            .store(new.admin.token.clone().map(Arc::new));
        Outcome::Applied {
            generation: running.generation,
            diff,
        }
    }

    /// Applies `diff` (from `old` to `new`), undoing what was done if any step fails.
    async fn apply(
        &self,
        old: &Config,
        new: &Config,
        diff: &ConfigDiff,
        deadline: Duration,
    ) -> Result<(), String> {
        let mut undo = Undo::default();
        let staged = self.start_and_join(new, diff, deadline, &mut undo).await;
        let daemon = &self.daemon;
        if let Err(cause) = staged {
            for network in undo.added.iter().rev() {
                let _ = daemon.remove_network(network).await;
            }
            for (network, adapter) in undo.replaced.into_iter().rev() {
                if let Err(error) = daemon.replace_network(&network, adapter).await {
                    tracing::error!(%network, %error, "reload: cannot put a network back");
                }
            }
            daemon.set_routes(&old.routes).await;
            return Err(cause);
        }
        daemon.set_routes(&new.routes).await;
        for name in &diff.networks_removed {
            let _ = daemon.remove_network(&NetworkId::new(name.clone())).await;
        }
        Ok(())
    }

    /// Starts the networks `diff` adds or changes, has every network join the rooms
    /// of both configs, and waits for the new rooms to be joined.
    async fn start_and_join(
        &self,
        new: &Config,
        diff: &ConfigDiff,
        deadline: Duration,
        undo: &mut Undo,
    ) -> Result<(), String> {
        let daemon = &self.daemon;
        let build = |name: &String| -> Result<(NetworkId, Arc<dyn Adapter>), String> {
            let adapter = new.networks[name]
                .build()
                .map_err(|error| format!("network {name} cannot start: {error}"))?;
            Ok((NetworkId::new(name.clone()), adapter))
        };
        for name in &diff.networks_changed {
            let (network, adapter) = build(name)?;
            let before = daemon
                .replace_network(&network, adapter)
                .await
                .map_err(|error| error.to_string())?;
            undo.replaced.push((network, before));
        }
        for name in &diff.networks_added {
            let (network, adapter) = build(name)?;
            daemon
                .add_network(network.clone(), adapter)
                .await
                .map_err(|error| error.to_string())?;
            undo.added.push(network);
        }
        daemon.stage_routes(&new.routes).await;
        // Rooms to see joined: every room of a network that (re)started, and the
        // rooms new to the routes on the others.
        let restarted: Vec<&String> = diff
            .networks_added
            .iter()
            .chain(&diff.networks_changed)
            .collect();
        let mut waits: std::collections::BTreeMap<String, Vec<RoomId>> = Default::default();
        for room in diff::rooms(new) {
            if restarted.contains(&&room.network) || diff.rooms_added.contains(&room) {
                waits
                    .entry(room.network)
                    .or_default()
                    .push(RoomId::new(room.room));
            }
        }
        let health = daemon.health();
        let joins = waits.iter().map(|(network, rooms)| async move {
            health
                .wait_joined(&NetworkId::new(network.clone()), rooms, deadline)
                .await
                .map_err(|error| error.to_string())
        });
        // A (re)started network must also come up, whether or not it has rooms.
        let connects = restarted.iter().map(|network| async move {
            health
                .wait_connected(&NetworkId::new((*network).clone()), deadline)
                .await
                .map_err(|error| error.to_string())
        });
        futures::future::try_join(
            futures::future::try_join_all(joins),
            futures::future::try_join_all(connects),
        )
        .await?;
        Ok(())
    }

    /// Logs and counts a finished reload, and records it for `/healthz`.
    fn finish(&self, outcome: Outcome) -> Outcome {
        let label = outcome.label();
        crate::metrics::config_reload(label);
        let detail = match &outcome {
            Outcome::Applied { generation, diff } => {
                tracing::info!(generation, diff = %serde_json::to_string(diff).unwrap_or_default(), "config reload applied");
                None
            }
            Outcome::Unchanged { .. } => {
                tracing::info!("config reload: nothing to change");
                None
            }
            Outcome::Rejected { errors } => {
                let shown = config::ConfigErrors {
                    file: self.path.display().to_string(),
                    errors: errors.clone(),
                }
                .to_string()
                .trim_end()
                .replace('\n', "; ");
                tracing::warn!(errors = %shown, "config reload rejected; nothing changed");
                Some(shown)
            }
            Outcome::RolledBack { cause } => {
                tracing::warn!(%cause, "config reload rolled back; the previous config runs");
                Some(cause.clone())
            }
            Outcome::Conflict { reason, .. } => {
                tracing::info!(%reason, "config change refused: conflict");
                Some(reason.clone())
            }
            Outcome::Preview { .. } => None,
        };
        let now = switchboard_sdk::event::now_ms();
        let before = self.status.load();
        let generation = self.snapshot.load().0;
        let applied_at_ms = if generation == before.generation {
            before.applied_at_ms
        } else {
            now
        };
        self.status.store(Arc::new(ConfigStatus {
            generation,
            applied_at_ms,
            last_reload: Some(LastReload {
                outcome: label,
                at_ms: now,
                detail,
            }),
        }));
        outcome
    }
}

/// What a failed apply must take back.
#[derive(Default)]
struct Undo {
    added: Vec<NetworkId>,
    replaced: Vec<(NetworkId, Arc<dyn Adapter>)>,
}
