//! Every metric the daemon exports, named and described once here (the table in
//! docs/metrics.md says the same). `/metrics` renders them in the Prometheus text
//! format.
//!
//! The per-message metrics keep their registered handles by network: building a
//! metrics key for every event (label strings, an `Arc` of labels, a registry lookup)
//! cost more than the increments themselves.

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use switchboard_sdk::{NetworkId, RoomId, RoomKey};

/// Inbound events an adapter submitted to the core, before any filtering
/// (`network`: where the event happened).
pub const RECEIVED: &str = "switchboard_events_received_total";
/// Inbound events durably accepted for relaying, one per event however many rooms
/// it goes to (`network`: where the event happened).
pub const ACCEPTED: &str = "switchboard_events_accepted_total";
/// Deliveries queued: one outbox row per destination room of an accepted event
/// (`network`, `route`: the destination's network and the route that reaches it).
/// Each ends as one of `_delivered`, `_skipped` or `_dead_lettered` (rows queued
/// before a restart end without having been counted here).
pub const DELIVERIES_QUEUED: &str = "switchboard_deliveries_queued_total";
/// Inbound events not relayed, by `reason` (`own_message`, `no_destination`,
/// `duplicate`, `unknown_target`).
pub const IGNORED: &str = "switchboard_events_ignored_total";
/// Deliveries sent to their destination (`network`, `route`: the destination's).
pub const DELIVERED: &str = "switchboard_events_delivered_total";
/// Deliveries with nothing to send on their destination, by `reason` (e.g. a delete
/// or a reaction on IRC).
pub const SKIPPED: &str = "switchboard_events_skipped_total";
/// Failed send attempts that will be retried (one delivery may fail many times).
pub const FAILED: &str = "switchboard_delivery_failures_total";
/// Deliveries given up, by `reason` class; the full reason is in the dead-letter table.
pub const DEAD_LETTERED: &str = "switchboard_events_dead_lettered_total";
/// Deliveries waiting in one destination room (`network`, `room`).
pub const QUEUE_DEPTH: &str = "switchboard_queue_depth";
/// Seconds since the oldest row still queued for one destination room was accepted
/// (`network`, `room`); 0 when nothing is queued. Updated about once a second.
pub const QUEUE_OLDEST_AGE: &str = "switchboard_queue_oldest_age_seconds";
/// Answers to waiting sources (webhooks, application-service transactions) held
/// because a destination room's queue was over `delivery.hold_answers_above`, by
/// `outcome`: `drained` (the queue came back under the bound) or `timed_out`
/// (answered after `delivery.hold_answers_for` anyway).
pub const ANSWERS_HELD: &str = "switchboard_answers_held_total";
/// Adapter restarts after a failed or ended connection.
pub const RECONNECTS: &str = "switchboard_reconnects_total";
/// 1 while the network's adapter reports itself connected, else 0.
pub const CONNECTED: &str = "switchboard_network_connected";
/// Seconds from accepting an event to sending it to one destination.
pub const LATENCY: &str = "switchboard_delivery_latency_seconds";
/// Every answer of the webhook endpoints (`/webhooks/NETWORK...`), by `status`,
/// refusals by the server included (404 unknown network, 405, 408, 413); requests
/// for a network that does not exist are counted under `network="(unknown)"`.
pub const WEBHOOK_REQUESTS: &str = "switchboard_webhook_requests_total";
/// HTTP connections open now.
pub const HTTP_CONNECTIONS: &str = "switchboard_http_connections";
/// The most HTTP connections served at once (see `http::HttpLimits`).
pub const HTTP_CONNECTION_LIMIT: &str = "switchboard_http_connection_limit";
/// HTTP connections refused (answered 503 and closed) because the limit was reached.
pub const HTTP_REFUSED: &str = "switchboard_http_connections_refused_total";
/// HTTP connections closed by a timeout, by `phase`: `header` (no complete request
/// head in time) or `idle` (a keep-alive connection unused for too long).
pub const HTTP_TIMED_OUT: &str = "switchboard_http_connections_timed_out_total";
/// Syncs of the store's WAL that failed; after one, the store refuses writes until
/// the daemon restarts (docs/durability.md).
pub const STORE_SYNC_FAILURES: &str = "switchboard_store_sync_failures_total";
/// Seconds one `fdatasync` of the store's WAL took: how long acknowledgements waited
/// for the disk (deliveries do not wait for it).
pub const STORE_SYNC_SECONDS: &str = "switchboard_store_sync_seconds";
/// Config reloads by `outcome`: `applied`, `unchanged`, `rejected`, `rolled_back`,
/// `conflict` (SIGHUP, `switchboard reload`, the admin API and page alike).
pub const CONFIG_RELOADS: &str = "switchboard_config_reloads_total";

/// The `network` label of webhook requests for a network that is not configured:
/// a fixed value, so that names made up by clients never become label values.
pub const UNKNOWN_NETWORK: &str = "(unknown)";

/// Installs the process-wide recorder once and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(LATENCY.to_owned()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0, 60.0,
                    ],
                )
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full(STORE_SYNC_SECONDS.to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    ],
                )
                .expect("bucket list is not empty");
            // Handles registered before the recorder existed would count nowhere.
            handles().clear();
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (an embedding program): render ours only.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The hot path's handles for one network, registered on first use.
#[derive(Default)]
struct NetworkHandles {
    received: Option<Counter>,
    latency: Option<Histogram>,
    accepted: Option<Counter>,
    /// By route, for this network as a destination.
    queued: HashMap<String, Counter>,
    delivered: HashMap<String, Counter>,
    queue_depth: HashMap<RoomId, Gauge>,
    /// By HTTP status.
    webhooks: HashMap<u16, Counter>,
}

fn handles() -> std::sync::MutexGuard<'static, HashMap<NetworkId, NetworkHandles>> {
    static HANDLES: OnceLock<Mutex<HashMap<NetworkId, NetworkHandles>>> = OnceLock::new();
    HANDLES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `f` on `network`'s handles (made on the network's first event).
fn with_network<T>(network: &NetworkId, f: impl FnOnce(&mut NetworkHandles) -> T) -> T {
    let mut handles = handles();
    if let Some(network_handles) = handles.get_mut(network) {
        return f(network_handles);
    }
    f(handles.entry(network.clone()).or_default())
}

/// The handle under `key` in `map`, registered with `register` the first time.
fn cached<'a, K, Q, H>(map: &'a mut HashMap<K, H>, key: &Q, register: impl FnOnce() -> H) -> &'a H
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: ToOwned<Owned = K> + std::hash::Hash + Eq + ?Sized,
{
    if !map.contains_key(key) {
        map.insert(key.to_owned(), register());
    }
    map.get(key).expect("inserted above")
}

pub fn received(network: &NetworkId) {
    with_network(network, |handles| {
        handles
            .received
            .get_or_insert_with(|| counter!(RECEIVED, "network" => network.to_string()))
            .increment(1)
    });
}

/// One inbound event from `network` durably accepted.
pub fn accepted(network: &NetworkId) {
    with_network(network, |handles| {
        handles
            .accepted
            .get_or_insert_with(|| counter!(ACCEPTED, "network" => network.to_string()))
            .increment(1)
    });
}

/// One delivery queued for a room of `network` (the destination) through `route`.
pub fn delivery_queued(network: &NetworkId, route: &str) {
    with_network(network, |handles| {
        cached(
            &mut handles.queued,
            route,
            || counter!(DELIVERIES_QUEUED, "network" => network.to_string(), "route" => route.to_owned()),
        )
        .increment(1)
    });
}

pub fn ignored(network: &NetworkId, reason: &'static str) {
    counter!(IGNORED, "network" => network.to_string(), "reason" => reason).increment(1);
}

pub fn delivered(room: &RoomKey, route: &str, latency: Duration) {
    let network = &room.network;
    with_network(network, |handles| {
        cached(
            &mut handles.delivered,
            route,
            || counter!(DELIVERED, "network" => network.to_string(), "route" => route.to_owned()),
        )
        .increment(1);
        handles
            .latency
            .get_or_insert_with(|| histogram!(LATENCY, "network" => network.to_string()))
            .record(latency.as_secs_f64());
    });
}

/// `reason` is a short class (`deletes_unsupported`, `reactions_unsupported`, `no_copy`).
pub fn skipped(room: &RoomKey, route: &str, reason: &'static str) {
    counter!(SKIPPED, "network" => room.network.to_string(), "route" => route.to_owned(), "reason" => reason)
        .increment(1);
}

pub fn failed(room: &RoomKey, route: &str) {
    counter!(FAILED, "network" => room.network.to_string(), "route" => route.to_owned())
        .increment(1);
}

/// `reason` is a short class (`permanent`, `expired`, `route_removed`, ...); the full
/// reason is in the dead-letter table and the log.
pub fn dead_lettered(room: &RoomKey, route: &str, reason: &'static str) {
    counter!(DEAD_LETTERED, "network" => room.network.to_string(), "route" => route.to_owned(), "reason" => reason)
        .increment(1);
}

pub fn config_reload(outcome: &'static str) {
    counter!(CONFIG_RELOADS, "outcome" => outcome).increment(1);
}

pub fn queue_depth(room: &RoomKey, depth: i64) {
    with_network(&room.network, |handles| {
        cached(&mut handles.queue_depth, &room.room, || {
            gauge!(QUEUE_DEPTH, "network" => room.network.to_string(), "room" => room.room.to_string())
        })
        .set(depth as f64)
    });
}

/// (About once a second per room: no cached handle.)
pub fn queue_oldest_age(room: &RoomKey, age_ms: i64) {
    gauge!(QUEUE_OLDEST_AGE, "network" => room.network.to_string(), "room" => room.room.to_string())
        .set(age_ms as f64 / 1000.0);
}

/// `outcome`: `drained` or `timed_out`.
pub fn answer_held(outcome: &'static str) {
    counter!(ANSWERS_HELD, "outcome" => outcome).increment(1);
}

pub fn reconnect(network: &NetworkId) {
    counter!(RECONNECTS, "network" => network.to_string()).increment(1);
}

pub fn connected(network: &NetworkId, up: bool) {
    gauge!(CONNECTED, "network" => network.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// One webhook request and the status it was answered with (refusals are counted too).
pub fn webhook(network: &NetworkId, status: u16) {
    with_network(network, |handles| {
        cached(&mut handles.webhooks, &status, || {
            counter!(WEBHOOK_REQUESTS, "network" => network.to_string(), "status" => status.to_string())
        })
        .increment(1)
    });
}

/// The HTTP server's connection limit, as sized at start.
pub fn http_connection_limit(limit: usize) {
    gauge!(HTTP_CONNECTION_LIMIT).set(limit as f64);
}

/// One HTTP connection opened (`open`) or closed.
pub fn http_connection(open: bool) {
    let gauge = gauge!(HTTP_CONNECTIONS);
    if open {
        gauge.increment(1.0)
    } else {
        gauge.decrement(1.0)
    }
}

pub fn http_refused() {
    counter!(HTTP_REFUSED).increment(1);
}

/// `phase`: `header` or `idle`.
pub fn http_timed_out(phase: &'static str) {
    counter!(HTTP_TIMED_OUT, "phase" => phase).increment(1);
}

pub fn store_sync_failed() {
    counter!(STORE_SYNC_FAILURES).increment(1);
}

/// One sync of the store's WAL, and how long the disk took.
/// (Once per sync, not per message: no cached handle.)
pub fn store_synced(took: Duration) {
    histogram!(STORE_SYNC_SECONDS).record(took.as_secs_f64());
}
