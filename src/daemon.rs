//! Assembles and runs the daemon: store, routing table, delivery workers, one
//! supervised adapter per network, and the HTTP server; stops them in order.
//!
//! Each network runs under a handle of its own (cancel token, task, deadline), so a
//! network can be added, restarted or removed, and the routes swapped (each adapter
//! following its new room set on its running connection), while the rest runs on.

use crate::config::{DeliveryConfig, RouteConfig, StoreConfig};
use crate::health::HealthRegistry;
use crate::http::{self, HttpState, WebhookTargets};
use crate::router::delivery::{
    AdapterEntry, Adapters, DeliveryParts, DeliverySettings, RoomScheduler,
};
use crate::router::{Ingest, RoutingTable, SharedRoutes};
use crate::store::{CommittedRowsReceiver, SharedStore, SqliteStore, StoreError};
use crate::supervisor::{NetworkHandle, RestartPolicy};
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_sdk::{
    Adapter, AdapterContext, ConnectionState, HealthReporter, NetworkId, RoomId, RoomSet,
    RoomSetUpdater,
};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Why a change to the running networks was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NetworkChangeError {
    #[error("network {0} is already running")]
    AlreadyRunning(NetworkId),
    #[error("no network {0} is running")]
    NotRunning(NetworkId),
}

fn adapter_entry(adapter: Arc<dyn Adapter>) -> AdapterEntry {
    AdapterEntry {
        protocol: adapter.protocol(),
        adapter,
    }
}

/// Everything the daemon runs from; `config::Config` plus built adapters, or a test's
/// own fakes.
pub struct DaemonOptions {
    pub state_dir: PathBuf,
    pub http_listen: Option<SocketAddr>,
    pub delivery: DeliveryConfig,
    pub store: StoreConfig,
    pub routes: Vec<RouteConfig>,
    pub adapters: Vec<(NetworkId, Arc<dyn Adapter>)>,
    pub restart: RestartPolicy,
}

/// The runtime the daemon runs on: one thread for every async task (adapters, HTTP
/// server, delivery), beside the store's writer thread and tokio's blocking pool
/// (store reads, SQLite for matrix-sdk).
///
/// Chosen by measurement, not habit (docs/benchmarks.md): the work is many small
/// I/O-bound tasks; with several workers they are stolen back and forth and wake each other
/// across cores, which costs more than the parallelism gains. `switchboard run` and
/// the benchmarks build the same runtime here.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .thread_name("switchboard")
        .enable_all()
        .build()
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Runs until SIGTERM or SIGINT; each SIGHUP reloads the config file (in a task
/// of its own, so that a slow reload never delays a shutdown; reloads run one at a
/// time).
pub async fn run_until_shutdown(reloader: &Arc<crate::reload::Reloader>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            Some(()) = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the config file");
                let reloader = reloader.clone();
                tokio::spawn(async move { reloader.reload_file().await });
            }
        }
    }
}

/// How often the metrics recorder's buffered histogram samples are drained.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Daemon {
    http_addr: Option<SocketAddr>,
    store: SharedStore,
    health: Arc<HealthRegistry>,
    routes: SharedRoutes,
    /// Refuses new inbound events (first step of shutdown).
    intake: CancellationToken,
    delivery_cancel: CancellationToken,
    delivery_tasks: TaskTracker,
    /// What starting a network needs.
    parts: NetworkParts,
    /// The running networks; held across a stop or start, so that changes to the
    /// set of networks happen one at a time.
    networks: tokio::sync::Mutex<BTreeMap<NetworkId, RunningNetwork>>,
    /// The HTTP server and the metrics upkeep.
    background_cancel: CancellationToken,
    background_tasks: TaskTracker,
    shutdown_deadline: std::time::Duration,
    /// The running config's generation, shown in `/healthz`.
    config_status: crate::reload::SharedConfigStatus,
    /// Where the HTTP server finds the admin surface once it is handed over.
    admin: crate::admin::AdminSlot,
}

/// Everything a network's adapter is started with, shared by all networks.
struct NetworkParts {
    state_dir: PathBuf,
    restart: RestartPolicy,
    ingest: Arc<Ingest>,
    queues: Arc<RoomScheduler>,
    store: SharedStore,
    health: Arc<HealthRegistry>,
    /// The adapter map delivery looks up per send.
    adapters: Adapters,
    /// The webhook targets the HTTP server looks up per request.
    webhooks: WebhookTargets,
}

/// One network of the daemon: its adapter, the room set its runs follow, and the
/// handle of its current run (its own cancel token and task).
struct RunningNetwork {
    adapter: Arc<dyn Adapter>,
    rooms: RoomSetUpdater,
    handle: NetworkHandle,
}

impl NetworkParts {
    fn context(&self, network: &NetworkId, rooms: RoomSet) -> AdapterContext {
        let reporter = {
            let health = self.health.clone();
            let queues = self.queues.clone();
            let network = network.clone();
            let rooms_health = health.clone();
            let rooms_network = network.clone();
            let problems_health = health.clone();
            let problems_network = network.clone();
            HealthReporter::new(move |state| {
                let connected = state == ConnectionState::Connected;
                health.set(&network, state);
                crate::metrics::connected(&network, connected);
                if connected {
                    queues.network_reconnected(&network);
                }
            })
            // Joined and refused rooms, for /healthz and for waiting on joins.
            .with_rooms(move |room, report| {
                rooms_health.set_room(&rooms_network, room, report);
            })
            .with_problems(move |problem| {
                problems_health.set_problem(&problems_network, problem);
            })
        };
        AdapterContext {
            network: network.clone(),
            rooms,
            inbound: self.ingest.clone(),
            health: reporter,
            state: crate::store::state_for(&self.store, network),
            data_dir: self.state_dir.join("networks").join(
                network
                    .as_str()
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
            ),
        }
    }

    /// Starts supervising `adapter` for the rooms `rooms` holds now and later.
    fn spawn(
        &self,
        network: &NetworkId,
        adapter: &Arc<dyn Adapter>,
        rooms: &RoomSetUpdater,
    ) -> NetworkHandle {
        self.health.set(network, ConnectionState::Starting);
        let ctx = self.context(network, rooms.subscribe());
        self.webhooks
            .insert(network.clone(), adapter.clone(), ctx.clone());
        NetworkHandle::spawn(adapter.clone(), ctx, self.health.clone(), self.restart)
    }
}

/// The routing table for `routes`, with room names in the form each network's
/// adapter uses in events (its protocol's connector says which).
fn build_table(routes: &[RouteConfig], adapters: &Adapters) -> RoutingTable {
    RoutingTable::build(routes, |network, room| {
        match adapters
            .get(network)
            .and_then(|entry| entry.adapter.connector())
        {
            Some(connector) => connector.canonical_room(room),
            None => RoomId::new(room),
        }
    })
}

/// Histogram samples pile up in the recorder until drained; nobody may scrape
/// /metrics, so they are drained on a timer.
fn spawn_metrics_upkeep(
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) {
    let cancel = cancel.clone();
    tasks.spawn(async move {
        let mut upkeep = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tokio::select! {
                _ = upkeep.tick() => metrics.run_upkeep(),
                () = cancel.cancelled() => return,
            }
        }
    });
}

/// Binds the HTTP server and serves it until `cancel`; returns the bound address.
async fn serve_http(
    address: SocketAddr,
    state: HttpState,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) -> Result<SocketAddr, DaemonError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| DaemonError::Listen { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen { address, source })?;
    let cancel = cancel.clone();
    tasks.spawn(async move {
        if let Err(error) = http::serve(listener, state, cancel).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    });
    tracing::info!(address = %bound, "HTTP server listening (/healthz, /metrics)");
    Ok(bound)
}

impl Daemon {
    /// Starts on the SQLite store in `options.state_dir`.
    pub async fn start(options: DaemonOptions) -> Result<Self, DaemonError> {
        let (store, committed) = SqliteStore::open(&options.state_dir)?;
        Self::start_with_store(options, Arc::new(store), committed).await
    }

    /// Starts on `store`, whose commits arrive on `committed` (e.g. a `MemoryStore`
    /// for tests on a paused clock).
    pub async fn start_with_store(
        options: DaemonOptions,
        store: SharedStore,
        committed: CommittedRowsReceiver,
    ) -> Result<Self, DaemonError> {
        let metrics = crate::metrics::install();
        let health = Arc::new(HealthRegistry::default());
        let adapters = Adapters::default();
        for (network, adapter) in &options.adapters {
            adapters.insert(network.clone(), adapter_entry(adapter.clone()));
        }
        let table = build_table(&options.routes, &adapters);
        let routes: SharedRoutes = Arc::new(ArcSwap::from_pointee(table));
        let delivery_cancel = CancellationToken::new();
        let delivery_tasks = TaskTracker::new();
        let backlog = store.pending_rooms().await?;
        let queues = RoomScheduler::start(
            DeliveryParts {
                store: store.clone(),
                routes: routes.clone(),
                adapters: adapters.clone(),
                settings: DeliverySettings {
                    retry_initial: options.delivery.retry_initial,
                    retry_max: options.delivery.retry_max,
                    hold_answers_above: i64::try_from(options.delivery.hold_answers_above)
                        .unwrap_or(i64::MAX),
                    hold_answers_for: options.delivery.hold_answers_for,
                    lagging_after: options.delivery.lagging_after,
                },
                health: health.clone(),
                cancel: delivery_cancel.clone(),
                tracker: delivery_tasks.clone(),
            },
            backlog,
            committed,
        );

        let intake = CancellationToken::new();
        let ingest = Arc::new(Ingest::new(
            routes.clone(),
            store.clone(),
            queues.clone(),
            intake.clone(),
        ));
        let parts = NetworkParts {
            state_dir: options.state_dir.clone(),
            restart: options.restart,
            ingest,
            queues,
            store: store.clone(),
            health: health.clone(),
            adapters,
            webhooks: WebhookTargets::default(),
        };
        let mut networks = BTreeMap::new();
        for (network, adapter) in options.adapters {
            let (rooms, _) = RoomSet::watched(routes.load().rooms_of(&network));
            let handle = parts.spawn(&network, &adapter, &rooms);
            networks.insert(
                network,
                RunningNetwork {
                    adapter,
                    rooms,
                    handle,
                },
            );
        }

        let background_cancel = CancellationToken::new();
        let background_tasks = TaskTracker::new();
        background_tasks.spawn(crate::store::retention::run(
            store.clone(),
            options.store.retention,
            background_cancel.clone(),
        ));

        spawn_metrics_upkeep(metrics.clone(), &background_tasks, &background_cancel);
        let config_status = crate::reload::initial_status();
        let admin = crate::admin::AdminSlot::default();
        let http_addr = match options.http_listen {
            Some(address) => {
                let state = HttpState {
                    admin: admin.clone(),
                    config: config_status.clone(),
                    health: health.clone(),
                    metrics,
                    webhooks: parts.webhooks.clone(),
                };
                Some(serve_http(address, state, &background_tasks, &background_cancel).await?)
            }
            None => None,
        };

        Ok(Self {
            http_addr,
            store,
            health,
            routes,
            intake,
            delivery_cancel,
            delivery_tasks,
            parts,
            networks: tokio::sync::Mutex::new(networks),
            background_cancel,
            background_tasks,
            shutdown_deadline: options.delivery.shutdown_deadline,
            config_status,
            admin,
        })
    }

    /// Starts a network while the others run: it joins the rooms the routes give
    /// it, its webhooks are served, and rows queued for it flow again.
    pub async fn add_network(
        &self,
        network: NetworkId,
        adapter: Arc<dyn Adapter>,
    ) -> Result<(), NetworkChangeError> {
        let mut networks = self.networks.lock().await;
        if networks.contains_key(&network) {
            return Err(NetworkChangeError::AlreadyRunning(network));
        }
        tracing::info!(%network, "adding network");
        let (rooms, _) = RoomSet::watched(self.routes.load().rooms_of(&network));
        let handle = self.parts.spawn(&network, &adapter, &rooms);
        // Delivery sees it last: workers waiting for it wake to a running network.
        self.parts
            .adapters
            .insert(network.clone(), adapter_entry(adapter.clone()));
        self.parts.queues.serve_rooms(
            self.routes
                .load()
                .rooms()
                .into_iter()
                .filter(|room| room.network == network),
        );
        networks.insert(
            network,
            RunningNetwork {
                adapter,
                rooms,
                handle,
            },
        );
        Ok(())
    }

    /// Stops a network's run and starts `adapter` in its place (a changed section),
    /// with the same rooms; returns the adapter it replaced (to put back on a
    /// rollback). Rows queued for the network wait for the new run.
    pub async fn replace_network(
        &self,
        network: &NetworkId,
        adapter: Arc<dyn Adapter>,
    ) -> Result<Arc<dyn Adapter>, NetworkChangeError> {
        let mut networks = self.networks.lock().await;
        let running = networks
            .remove(network)
            .ok_or_else(|| NetworkChangeError::NotRunning(network.clone()))?;
        tracing::info!(%network, "replacing network (its section changed)");
        self.parts.adapters.remove(network);
        self.parts.webhooks.remove(network);
        self.stop(network, running.handle).await;
        let handle = self.parts.spawn(network, &adapter, &running.rooms);
        self.parts
            .adapters
            .insert(network.clone(), adapter_entry(adapter.clone()));
        networks.insert(
            network.clone(),
            RunningNetwork {
                adapter,
                rooms: running.rooms,
                handle,
            },
        );
        Ok(running.adapter)
    }

    /// Stops one network within the shutdown deadline, leaving the others alone, and
    /// returns its adapter. Rows queued for it stay in the store; its rooms' workers
    /// wait for it while a route still has them.
    pub async fn remove_network(
        &self,
        network: &NetworkId,
    ) -> Result<Arc<dyn Adapter>, NetworkChangeError> {
        let mut networks = self.networks.lock().await;
        let running = networks
            .remove(network)
            .ok_or_else(|| NetworkChangeError::NotRunning(network.clone()))?;
        tracing::info!(%network, "removing network");
        self.parts.adapters.remove(network);
        self.parts.webhooks.remove(network);
        self.stop(network, running.handle).await;
        self.health.remove(network);
        crate::metrics::connected(network, false);
        Ok(running.adapter)
    }

    /// Stops one network (within the shutdown deadline) and starts it again with
    /// the same adapter and rooms; the others are not touched.
    pub async fn restart_network(&self, network: &NetworkId) -> Result<(), NetworkChangeError> {
        let mut networks = self.networks.lock().await;
        let running = networks
            .remove(network)
            .ok_or_else(|| NetworkChangeError::NotRunning(network.clone()))?;
        tracing::info!(%network, "restarting network");
        let RunningNetwork {
            adapter,
            rooms,
            handle,
        } = running;
        self.stop(network, handle).await;
        let handle = self.parts.spawn(network, &adapter, &rooms);
        networks.insert(
            network.clone(),
            RunningNetwork {
                adapter,
                rooms,
                handle,
            },
        );
        Ok(())
    }

    /// Swaps in a new routing table: each network's room set follows it (its
    /// adapter joins and leaves rooms on its running connection), and rooms new to
    /// the routes get their delivery workers.
    pub async fn set_routes(&self, routes: &[RouteConfig]) {
        let networks = self.networks.lock().await;
        let table = build_table(routes, &self.parts.adapters);
        let rooms = table.rooms();
        self.routes.store(Arc::new(table));
        let table = self.routes.load();
        for (network, running) in networks.iter() {
            running.rooms.set(table.rooms_of(network));
        }
        self.parts.queues.serve_rooms(rooms);
        // Workers of rooms that lost their last route dead-letter their rows.
        self.parts.queues.routes_changed();
    }

    /// Gives each running network the rooms of the running routes and of `routes`
    /// together, without routing anything differently: a reload joins its new rooms
    /// this way first, and swaps the routes (`set_routes`) only once they are joined.
    pub async fn stage_routes(&self, routes: &[RouteConfig]) {
        let networks = self.networks.lock().await;
        let staged = build_table(routes, &self.parts.adapters);
        let running = self.routes.load();
        for (network, net) in networks.iter() {
            let mut rooms: BTreeSet<RoomId> = running.rooms_of(network).into_iter().collect();
            rooms.extend(staged.rooms_of(network));
            net.rooms.set(rooms);
        }
    }

    /// The rooms a running network's adapter is given now.
    pub async fn rooms_of(&self, network: &NetworkId) -> Option<BTreeSet<RoomId>> {
        let networks = self.networks.lock().await;
        networks
            .get(network)
            .map(|running| running.rooms.current().as_ref().clone())
    }

    async fn stop(&self, network: &NetworkId, handle: NetworkHandle) {
        if !handle.stop(self.shutdown_deadline).await {
            tracing::warn!(%network, deadline = ?self.shutdown_deadline, "network adapter did not stop in time; abandoned");
        }
    }

    /// The address the HTTP server actually bound (useful with port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn health(&self) -> &Arc<HealthRegistry> {
        &self.health
    }

    pub fn routes(&self) -> &SharedRoutes {
        &self.routes
    }

    /// Each destination room's queue: rows queued, and when the oldest was accepted.
    pub fn queues(&self) -> Vec<(switchboard_sdk::RoomKey, i64, Option<i64>)> {
        self.parts.queues.queues()
    }

    /// Turns the admin API and page on, served by `reloader` (which needs this
    /// daemon, so it comes after `start`). Shutdown turns them off again.
    pub fn serve_admin(&self, reloader: Arc<crate::reload::Reloader>) {
        self.admin.set(reloader);
    }

    pub fn config_status(&self) -> &crate::reload::SharedConfigStatus {
        &self.config_status
    }

    /// Stops in order: refuse new events, let in-flight sends finish (up to the
    /// deadline), disconnect the networks, and commit what was recorded.
    pub async fn shutdown(&self) {
        self.admin.clear();
        self.intake.cancel();
        self.delivery_cancel.cancel();
        self.delivery_tasks.close();
        if tokio::time::timeout(self.shutdown_deadline, self.delivery_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(deadline = ?self.shutdown_deadline, "shutdown: sends still in flight at the deadline; they will be retried at next start");
        }
        let networks = std::mem::take(&mut *self.networks.lock().await);
        let deadline = self.shutdown_deadline;
        let stopped = futures::future::join_all(
            networks
                .into_values()
                .map(|running| running.handle.stop(deadline)),
        )
        .await;
        if stopped.contains(&false) {
            tracing::warn!("shutdown: some network adapters did not stop in time");
        }
        self.background_cancel.cancel();
        self.background_tasks.close();
        if tokio::time::timeout(self.shutdown_deadline, self.background_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: the HTTP server did not stop in time");
        }
        if let Err(error) = self.store.flush().await {
            tracing::error!(%error, "shutdown: final store flush failed");
        }
    }
}
