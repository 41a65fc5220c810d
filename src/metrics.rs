//! Every metric the daemon exports, named once here. `/metrics` renders them in the
//! Prometheus text format.
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

pub const RECEIVED: &str = "switchboard_events_received_total";
pub const ACCEPTED: &str = "switchboard_events_accepted_total";
pub const IGNORED: &str = "switchboard_events_ignored_total";
pub const DELIVERED: &str = "switchboard_events_delivered_total";
pub const SKIPPED: &str = "switchboard_events_skipped_total";
pub const FAILED: &str = "switchboard_delivery_failures_total";
pub const DEAD_LETTERED: &str = "switchboard_events_dead_lettered_total";
pub const QUEUE_DEPTH: &str = "switchboard_queue_depth";
pub const RECONNECTS: &str = "switchboard_reconnects_total";
pub const CONNECTED: &str = "switchboard_network_connected";
pub const LATENCY: &str = "switchboard_delivery_latency_seconds";
pub const WEBHOOK_REQUESTS: &str = "switchboard_webhook_requests_total";

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
    /// By route.
    accepted: HashMap<String, Counter>,
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

/// Outbox rows created for `route` by accepted events from `network`.
pub fn accepted(network: &NetworkId, route: &str, rooms: usize) {
    with_network(network, |handles| {
        cached(
            &mut handles.accepted,
            route,
            || counter!(ACCEPTED, "network" => network.to_string(), "route" => route.to_owned()),
        )
        .increment(rooms as u64)
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

pub fn skipped(room: &RoomKey, route: &str) {
    counter!(SKIPPED, "network" => room.network.to_string(), "route" => route.to_owned())
        .increment(1);
}

pub fn failed(room: &RoomKey, route: &str) {
    counter!(FAILED, "network" => room.network.to_string(), "route" => route.to_owned())
        .increment(1);
}

/// `reason` is a short class (`permanent`, `expired`, `no_route`, ...); the full
/// reason is in the dead-letter table and the log.
pub fn dead_lettered(room: &RoomKey, route: &str, reason: &'static str) {
    counter!(DEAD_LETTERED, "network" => room.network.to_string(), "route" => route.to_owned(), "reason" => reason)
        .increment(1);
}

pub fn queue_depth(room: &RoomKey, depth: i64) {
    with_network(&room.network, |handles| {
        cached(&mut handles.queue_depth, &room.room, || {
            gauge!(QUEUE_DEPTH, "network" => room.network.to_string(), "room" => room.room.to_string())
        })
        .set(depth as f64)
    });
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
