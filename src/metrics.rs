//! Every metric the daemon exports, named once here. `/metrics` renders them in the
//! Prometheus text format.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;
use switchboard_sdk::{NetworkId, RoomKey};

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
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (an embedding program): render ours only.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

pub fn received(network: &NetworkId) {
    counter!(RECEIVED, "network" => network.to_string()).increment(1);
}

/// Outbox rows created for `route` by accepted events from `network`.
pub fn accepted(network: &NetworkId, route: &str, rooms: usize) {
    counter!(ACCEPTED, "network" => network.to_string(), "route" => route.to_owned())
        .increment(rooms as u64);
}

pub fn ignored(network: &NetworkId, reason: &'static str) {
    counter!(IGNORED, "network" => network.to_string(), "reason" => reason).increment(1);
}

pub fn delivered(room: &RoomKey, route: &str, latency: Duration) {
    counter!(DELIVERED, "network" => room.network.to_string(), "route" => route.to_owned())
        .increment(1);
    histogram!(LATENCY, "network" => room.network.to_string()).record(latency.as_secs_f64());
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
    gauge!(QUEUE_DEPTH, "network" => room.network.to_string(), "room" => room.room.to_string())
        .set(depth as f64);
}

pub fn reconnect(network: &NetworkId) {
    counter!(RECONNECTS, "network" => network.to_string()).increment(1);
}

pub fn connected(network: &NetworkId, up: bool) {
    gauge!(CONNECTED, "network" => network.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// One webhook request and the status it was answered with (refusals are counted too).
pub fn webhook(network: &NetworkId, status: u16) {
    counter!(WEBHOOK_REQUESTS, "network" => network.to_string(), "status" => status.to_string())
        .increment(1);
}
