//! What the event and delivery counters count, through the daemon over fake
//! networks: an event bridged to two rooms is one accepted event and two queued
//! deliveries (labelled by the destination), each of which ends delivered.

mod common;

use common::*;
use std::sync::Arc;
use switchboard_sdk::{Adapter, SubmitOutcome};

/// The value of the /metrics line that starts with `prefix` (0 if there is none).
fn value(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_counts_events_and_queued_counts_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(3, false);
    let adapters: Vec<(&str, Arc<dyn Adapter>)> = vec![
        ("ma", f[0].clone()),
        ("mb", f[1].clone()),
        ("mc", f[2].clone()),
    ];
    let daemon = start(
        dir.path(),
        vec![route("three", &[("ma", "#a"), ("mb", "#b"), ("mc", "#c")])],
        adapters,
    )
    .await;
    for i in 0..3 {
        let outcome = f[0]
            .receive("#a", "alice", &format!("m{i}"), "hello")
            .await
            .unwrap();
        assert_eq!(outcome, SubmitOutcome::Accepted { destinations: 2 });
    }
    f[1].wait_for_sent(3, WAIT).await;
    f[2].wait_for_sent(3, WAIT).await;
    let addr = daemon.http_addr().unwrap();
    let delivered = |metrics: &str| {
        ["mb", "mc"].iter().all(|network| {
            let line = format!(
                "switchboard_events_delivered_total{{network=\"{network}\",route=\"three\"}}"
            );
            value(metrics, &line) == 3.0
        })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let metrics = loop {
        let metrics = http_get(addr, "/metrics").await.1;
        if delivered(&metrics) {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deliveries were never counted as delivered: {metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        value(
            &metrics,
            "switchboard_events_accepted_total{network=\"ma\"}"
        ),
        3.0,
        "three events, whatever their fan-out: {metrics}"
    );
    for network in ["mb", "mc"] {
        assert_eq!(
            value(
                &metrics,
                &format!(
                    "switchboard_deliveries_queued_total{{network=\"{network}\",route=\"three\"}}"
                )
            ),
            3.0,
            "{metrics}"
        );
    }
    assert_eq!(
        value(
            &metrics,
            "switchboard_deliveries_queued_total{network=\"ma\""
        ),
        0.0,
        "nothing is queued back to the origin: {metrics}"
    );
    daemon.shutdown().await;
}
