//! Assembles and runs the daemon: store, routing table, delivery workers, one
//! supervised adapter per network, and the HTTP server; stops them in order.

use crate::config::{DeliveryConfig, RouteConfig, StoreConfig};
use crate::health::HealthRegistry;
use crate::http::{self, HttpState};
use crate::router::delivery::{
    AdapterEntry, Adapters, DeliveryParts, DeliverySettings, RoomQueues,
};
use crate::router::{Ingest, RoutingTable, SharedRoutes};
use crate::store::{CommittedRowsReceiver, SharedStore, SqliteStore, StoreError};
use crate::supervisor::{self, RestartPolicy};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_sdk::{
    Adapter, AdapterContext, ConnectionState, HealthReporter, NetworkId, RoomId,
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
/// Chosen by measurement, not habit: in the webhook relay benchmark on a 2-core
/// machine, this runtime relayed 15,100 messages/s on 16 routes at 74 us of daemon CPU
/// per message, where tokio's multi-thread runtime with 2 workers relayed 12,400/s
/// at 99 us and with 1 worker 10,900/s at 110 us. The work is many small I/O-bound
/// tasks; with several workers they are stolen back and forth and wake each other
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
    network_cancel: CancellationToken,
    network_tasks: TaskTracker,
    shutdown_deadline: std::time::Duration,
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
        let adapters: HashMap<NetworkId, AdapterEntry> = options
            .adapters
            .into_iter()
            .map(|(network, adapter)| {
                let entry = AdapterEntry {
                    protocol: adapter.protocol(),
                    capabilities: adapter.capabilities(),
                    adapter,
                };
                (network, entry)
            })
            .collect();
        let adapters: Adapters = Arc::new(adapters);
        let table = RoutingTable::build(&options.routes, |network, room| {
            match adapters.get(network) {
                Some(entry) => crate::protocols::canonical_room(entry.protocol, room),
                None => RoomId::new(room),
            }
        });
        let routes: SharedRoutes = Arc::new(ArcSwap::from_pointee(table));
        let delivery_cancel = CancellationToken::new();
        let delivery_tasks = TaskTracker::new();
        let backlog = store.pending_rooms().await?;
        let queues = RoomQueues::start(
            DeliveryParts {
                store: store.clone(),
                routes: routes.clone(),
                adapters: adapters.clone(),
                settings: DeliverySettings {
                    retry_initial: options.delivery.retry_initial,
                    retry_max: options.delivery.retry_max,
                },
                health: health.clone(),
                cancel: delivery_cancel.clone(),
                tracker: delivery_tasks.clone(),
            },
            backlog,
            committed,
        );

        let intake = CancellationToken::new();
        let ingest = Arc::new(Ingest::new(routes.clone(), store.clone(), intake.clone()));
        let network_cancel = CancellationToken::new();
        let network_tasks = TaskTracker::new();
        let mut webhook_targets = HashMap::new();
        for (network, entry) in adapters.iter() {
            health.set(network, ConnectionState::Starting);
            let reporter = {
                let health = health.clone();
                let queues = queues.clone();
                let network = network.clone();
                HealthReporter::new(move |state| {
                    let connected = state == ConnectionState::Connected;
                    health.set(&network, state);
                    crate::metrics::connected(&network, connected);
                    if connected {
                        queues.network_reconnected(&network);
                    }
                })
            };
            let ctx = AdapterContext {
                network: network.clone(),
                rooms: routes.load().rooms_of(network),
                inbound: ingest.clone(),
                health: reporter,
                state: crate::store::state_for(&store, network),
                data_dir: options.state_dir.join("networks").join(
                    network
                        .as_str()
                        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
                ),
            };
            webhook_targets.insert(network.clone(), (entry.adapter.clone(), ctx.clone()));
            network_tasks.spawn(supervisor::supervise(
                entry.adapter.clone(),
                ctx,
                health.clone(),
                options.restart,
                network_cancel.clone(),
            ));
        }

        network_tasks.spawn(crate::store::retention::run(
            store.clone(),
            options.store.retention,
            network_cancel.clone(),
        ));

        // Histogram samples pile up in the recorder until drained; nobody may scrape
        // /metrics, so drain them on a timer.
        {
            let metrics = metrics.clone();
            let cancel = network_cancel.clone();
            network_tasks.spawn(async move {
                let mut upkeep = tokio::time::interval(METRICS_UPKEEP);
                loop {
                    tokio::select! {
                        _ = upkeep.tick() => metrics.run_upkeep(),
                        () = cancel.cancelled() => return,
                    }
                }
            });
        }

        let http_addr = match options.http_listen {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| DaemonError::Listen { address, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| DaemonError::Listen { address, source })?;
                let state = HttpState {
                    health: health.clone(),
                    metrics,
                    webhooks: Arc::new(webhook_targets),
                };
                let cancel = network_cancel.clone();
                network_tasks.spawn(async move {
                    if let Err(error) = http::serve(listener, state, cancel).await {
                        tracing::error!(%error, "HTTP server stopped");
                    }
                });
                tracing::info!(address = %bound, "HTTP server listening (/healthz, /metrics)");
                Some(bound)
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
            network_cancel,
            network_tasks,
            shutdown_deadline: options.delivery.shutdown_deadline,
        })
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

    /// Stops in order: refuse new events, let in-flight sends finish (up to the
    /// deadline), disconnect the networks, and commit what was recorded.
    pub async fn shutdown(self) {
        self.intake.cancel();
        self.delivery_cancel.cancel();
        self.delivery_tasks.close();
        if tokio::time::timeout(self.shutdown_deadline, self.delivery_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(deadline = ?self.shutdown_deadline, "shutdown: sends still in flight at the deadline; they will be retried at next start");
        }
        self.network_cancel.cancel();
        self.network_tasks.close();
        if tokio::time::timeout(self.shutdown_deadline, self.network_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: some network adapters did not stop in time");
        }
        if let Err(error) = self.store.flush().await {
            tracing::error!(%error, "shutdown: final store flush failed");
        }
    }
}
