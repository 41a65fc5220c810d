//! The core end to end over fake networks: routing, durability, ordering, isolation,
//! retries, dead letters, restarts, edits through the id map, and supervision.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use switchboard::config::DeliveryConfig;
use switchboard_sdk::testing::FakeAdapter;
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, Capabilities, EventKind, Inbound, NativeMsgId,
    OutboundKind, RichText, RoomKey, SendError, SendReceipt, Sender, SubmitOutcome,
};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_with_template_and_ignores_duplicates_and_echoes() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(2, false);
    let daemon = start(
        dir.path(),
        vec![route("r", &[("a", "#a"), ("b", "#b")])],
        vec![("a", dyn_adapter(&f[0])), ("b", dyn_adapter(&f[1]))],
    )
    .await;
    let outcome = f[0].receive("#a", "alice", "m1", "hello").await.unwrap();
    assert_eq!(outcome, SubmitOutcome::Accepted { destinations: 1 });
    let sent = f[1].wait_for_sent(1, WAIT).await;
    assert_eq!(sent[0].sender_label, "<alice> ");
    assert_eq!(texts(&sent), vec!["hello"]);
    assert_eq!(
        f[0].receive("#a", "alice", "m1", "hello").await.unwrap(),
        SubmitOutcome::Duplicate
    );
    let b_room = RoomKey::new("b", "#b");
    eventually("the copy on b is in the id map", || async {
        daemon.store().native_ids_in(1, &b_room).await.unwrap() == vec![NativeMsgId::new("fake-1")]
    })
    .await;
    // The copy we made on b comes back as an inbound event on b: never relayed again.
    assert_eq!(
        f[1].receive("#b", "alice", "fake-1", "hello")
            .await
            .unwrap(),
        SubmitOutcome::Duplicate
    );
    assert!(
        f[0].sent().is_empty(),
        "nothing may echo back to the origin"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_way_route_has_no_echo_and_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(3, false);
    let daemon = start(
        dir.path(),
        vec![route("r", &[("a", "#a"), ("b", "#b"), ("c", "#c")])],
        vec![
            ("a", dyn_adapter(&f[0])),
            ("b", dyn_adapter(&f[1])),
            ("c", dyn_adapter(&f[2])),
        ],
    )
    .await;
    for i in 0..10 {
        f[0].receive("#a", "alice", &format!("a{i}"), &format!("from a {i}"))
            .await
            .unwrap();
        f[1].receive("#b", "bob", &format!("b{i}"), &format!("from b {i}"))
            .await
            .unwrap();
    }
    let on_c = f[2].wait_for_sent(20, WAIT).await;
    f[0].wait_for_sent(10, WAIT).await;
    f[1].wait_for_sent(10, WAIT).await;
    // Every bridged message (20) has its copies in the two other rooms recorded.
    for bridged_id in 1..=20 {
        eventually("every copy is in the id map", || async {
            let mut copies = 0;
            for room in [
                RoomKey::new("a", "#a"),
                RoomKey::new("b", "#b"),
                RoomKey::new("c", "#c"),
            ] {
                copies += daemon
                    .store()
                    .native_ids_in(bridged_id, &room)
                    .await
                    .unwrap()
                    .len();
            }
            copies == 3 // the origin and two copies
        })
        .await;
    }
    // Echoes of every copy come back and are refused.
    for (fake, room) in [(&f[0], "#a"), (&f[1], "#b"), (&f[2], "#c")] {
        for i in 1..=fake.sent().len() {
            let echoed = fake
                .receive(room, "x", &format!("fake-{i}"), "echo")
                .await
                .unwrap();
            assert_eq!(
                echoed,
                SubmitOutcome::Duplicate,
                "echo of copy fake-{i} on {room}"
            );
        }
    }
    daemon.shutdown().await;
    assert_eq!(on_c.len(), 20);
    assert_eq!(f[0].sent().len(), 10, "a receives only b's lines");
    assert_eq!(f[1].sent().len(), 10, "b receives only a's lines");
    let a_on_c: Vec<String> = texts(&on_c)
        .into_iter()
        .filter(|t| t.starts_with("from a"))
        .collect();
    assert_eq!(
        a_on_c,
        (0..10).map(|i| format!("from a {i}")).collect::<Vec<_>>()
    );
}

// In memory on a paused clock: retries and restarts take no real time.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_send_is_not_retried_before_the_network_allows() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(2, false);
    let _daemon = start_in_memory(
        dir.path(),
        vec![route("r", &[("a", "#a"), ("b", "#b")])],
        vec![("a", dyn_adapter(&f[0])), ("b", dyn_adapter(&f[1]))],
    )
    .await;
    let retry_after = Duration::from_millis(300);
    f[1].fail_next([SendError::RateLimited {
        reason: "429".into(),
        retry_after,
    }]);
    let started = tokio::time::Instant::now();
    f[0].receive("#a", "alice", "m1", "slow down")
        .await
        .unwrap();
    let sent = f[1].wait_for_sent(1, WAIT).await;
    // A lower bound only (the retry policy's floor), never an upper one.
    assert!(
        started.elapsed() >= retry_after,
        "retried after {:?}, before the {retry_after:?} the network asked for",
        started.elapsed()
    );
    assert_eq!(texts(&sent), vec!["slow down"]);
}

// In memory on a paused clock: retries and restarts take no real time.
#[tokio::test(start_paused = true)]
async fn transient_failures_retry_in_order_and_permanent_ones_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(2, false);
    let daemon = start_in_memory(
        dir.path(),
        vec![route("r", &[("a", "#a"), ("b", "#b")])],
        vec![("a", dyn_adapter(&f[0])), ("b", dyn_adapter(&f[1]))],
    )
    .await;
    f[1].fail_next([
        SendError::Transient("503".into()),
        SendError::Transient("503".into()),
        SendError::Permanent("message too large".into()),
        SendError::Transient("503".into()),
    ]);
    for i in 0..20 {
        f[0].receive("#a", "alice", &format!("m{i}"), &format!("line {i}"))
            .await
            .unwrap();
    }
    let sent = f[1].wait_for_sent(19, WAIT).await;
    let expected: Vec<String> = (1..20).map(|i| format!("line {i}")).collect();
    assert_eq!(
        texts(&sent),
        expected,
        "line 0 was refused for good; the rest in order"
    );
    eventually("the refused line is dead-lettered", || async {
        !daemon.store().dead_letters().await.unwrap().is_empty()
    })
    .await;
    let dead = daemon.store().dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("message too large"),
        "reason: {}",
        dead[0].reason
    );
    assert_eq!(
        dead[0].attempts, 2,
        "two transient attempts were recorded before it"
    );
    let (_, metrics) = http_get(daemon.http_addr().unwrap(), "/metrics").await;
    assert!(
        metrics.contains("switchboard_events_dead_lettered_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchboard_delivery_failures_total"),
        "{metrics}"
    );
    daemon.shutdown().await;
}

// In memory on a paused clock: retries and restarts take no real time.
#[tokio::test(start_paused = true)]
async fn a_slow_or_down_room_holds_back_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(4, false);
    let daemon = start_in_memory(
        dir.path(),
        vec![
            route("one", &[("a", "#a"), ("slow", "#s")]),
            route("two", &[("c", "#c"), ("d", "#d")]),
            route("three", &[("a", "#a2"), ("c", "#c2")]),
        ],
        vec![
            ("a", dyn_adapter(&f[0])),
            ("slow", dyn_adapter(&f[1])),
            ("c", dyn_adapter(&f[2])),
            ("d", dyn_adapter(&f[3])),
        ],
    )
    .await;
    f[1].set_down(true);
    for i in 0..5 {
        f[0].receive("#a", "alice", &format!("a{i}"), &format!("to slow {i}"))
            .await
            .unwrap();
        f[2].receive("#c", "carol", &format!("c{i}"), &format!("to d {i}"))
            .await
            .unwrap();
        f[0].receive("#a2", "alice", &format!("a2{i}"), &format!("to c {i}"))
            .await
            .unwrap();
    }
    assert_eq!(f[3].wait_for_sent(5, WAIT).await.len(), 5);
    assert_eq!(
        f[2].wait_for_sent(5, WAIT).await.len(),
        5,
        "another room of the same origin network flows"
    );
    assert!(f[1].sent().is_empty());
    f[1].set_down(false);
    let sent = f[1].wait_for_sent(5, WAIT).await;
    assert_eq!(
        texts(&sent),
        (0..5).map(|i| format!("to slow {i}")).collect::<Vec<_>>()
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_rows_survive_a_restart_and_edits_follow_the_id_map() {
    let dir = tempfile::tempdir().unwrap();
    let routes = vec![route("r", &[("a", "#a"), ("b", "#b")])];
    let f = fakes(2, true);
    let daemon = start(
        dir.path(),
        routes.clone(),
        vec![("a", dyn_adapter(&f[0])), ("b", dyn_adapter(&f[1]))],
    )
    .await;
    f[0].receive("#a", "alice", "orig", "first version")
        .await
        .unwrap();
    f[1].wait_for_sent(1, WAIT).await;
    f[1].set_down(true);
    for i in 0..5 {
        f[0].receive("#a", "alice", &format!("p{i}"), &format!("pending {i}"))
            .await
            .unwrap();
    }
    daemon.shutdown().await;

    let f = fakes(2, true);
    let daemon = start(
        dir.path(),
        routes,
        vec![("a", dyn_adapter(&f[0])), ("b", dyn_adapter(&f[1]))],
    )
    .await;
    let sent = f[1].wait_for_sent(5, WAIT).await;
    assert_eq!(
        texts(&sent),
        (0..5).map(|i| format!("pending {i}")).collect::<Vec<_>>()
    );
    // Edit and delete of a message relayed before the restart reach the right copy.
    let mut edit = Inbound::message(
        RoomKey::new("a", "#a"),
        Sender::user("alice", "alice"),
        Some(NativeMsgId::new("edit-1")),
        RichText::plain("second version"),
    );
    edit.kind = EventKind::Edit {
        target: NativeMsgId::new("orig"),
    };
    assert_eq!(
        f[0].submit(edit).await.unwrap(),
        SubmitOutcome::Accepted { destinations: 1 }
    );
    let mut delete = Inbound::message(
        RoomKey::new("a", "#a"),
        Sender::user("alice", "alice"),
        Some(NativeMsgId::new("delete-1")),
        RichText::default(),
    );
    delete.kind = EventKind::Delete {
        target: NativeMsgId::new("orig"),
    };
    f[0].submit(delete).await.unwrap();
    let sent = f[1].wait_for_sent(7, WAIT).await;
    assert_eq!(
        sent[5].kind,
        OutboundKind::Edit {
            targets: vec![NativeMsgId::new("fake-1")],
            content: RichText::plain("second version")
        }
    );
    assert_eq!(
        sent[6].kind,
        OutboundKind::Delete {
            targets: vec![NativeMsgId::new("fake-1")]
        }
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_older_than_max_age_are_expired_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = route("r", &[("a", "#a"), ("b", "#b")]);
    r.max_age = Some(Duration::from_millis(200));
    let f = fakes(2, false);
    let daemon = start(
        dir.path(),
        vec![r],
        vec![("a", dyn_adapter(&f[0])), ("b", dyn_adapter(&f[1]))],
    )
    .await;
    f[1].set_down(true);
    f[0].receive("#a", "alice", "m1", "stale soon")
        .await
        .unwrap();
    eventually("the row expires", || async {
        !daemon.store().dead_letters().await.unwrap().is_empty()
    })
    .await;
    let dead = daemon.store().dead_letters().await.unwrap();
    assert!(dead[0].reason.starts_with("expired"), "{}", dead[0].reason);
    f[1].set_down(false);
    f[0].receive("#a", "alice", "m2", "fresh").await.unwrap();
    assert_eq!(texts(&f[1].wait_for_sent(1, WAIT).await), vec!["fresh"]);
    let (_, metrics) = http_get(daemon.http_addr().unwrap(), "/metrics").await;
    assert!(metrics.contains("reason=\"expired\""), "{metrics}");
    daemon.shutdown().await;
}

/// An adapter whose first runs panic or fail; later runs behave like the fake.
struct Flaky {
    inner: Arc<FakeAdapter>,
    crashes_left: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Adapter for Flaky {
    fn protocol(&self) -> &'static str {
        "flaky"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn run(
        &self,
        ctx: AdapterContext,
        cancel: CancellationToken,
    ) -> Result<(), AdapterError> {
        let left = self.crashes_left.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.crashes_left
                .store(left - 1, std::sync::atomic::Ordering::SeqCst);
            if left.is_multiple_of(2) {
                panic!("simulated adapter bug");
            }
            return Err(AdapterError::Connection("simulated connection loss".into()));
        }
        self.inner.run(ctx, cancel).await
    }
    async fn send(&self, message: &switchboard_sdk::Outbound) -> Result<SendReceipt, SendError> {
        self.inner.send(message).await
    }
}

// In memory on a paused clock: retries and restarts take no real time.
#[tokio::test(start_paused = true)]
async fn a_crashing_adapter_is_restarted_and_never_stops_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(3, false);
    let flaky = Arc::new(Flaky {
        inner: f[2].clone(),
        crashes_left: 4.into(),
    });
    let daemon = start_in_memory(
        dir.path(),
        vec![route("r", &[("a", "#a"), ("b", "#b"), ("c", "#c")])],
        vec![
            ("a", dyn_adapter(&f[0])),
            ("b", dyn_adapter(&f[1])),
            ("c", flaky),
        ],
    )
    .await;
    f[0].receive("#a", "alice", "m1", "hello").await.unwrap();
    assert_eq!(texts(&f[1].wait_for_sent(1, WAIT).await), vec!["hello"]);
    // c crashed four times (two panics), was restarted, and then got the message too.
    assert_eq!(texts(&f[2].wait_for_sent(1, WAIT).await), vec!["hello"]);
    eventually("health shows every network connected", || async {
        daemon.health().all_connected()
    })
    .await;
    let (status, body) = http_get(daemon.http_addr().unwrap(), "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("simulated"),
        "the last error is kept for operators: {body}"
    );
    let (_, metrics) = http_get(daemon.http_addr().unwrap(), "/metrics").await;
    assert!(
        metrics.contains("switchboard_reconnects_total{network=\"c\"} 4"),
        "{metrics}"
    );
    daemon.shutdown().await;
}

// In memory on a paused clock: retries and restarts take no real time.
#[tokio::test(start_paused = true)]
async fn healthz_reports_a_down_network() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(1, false);
    let down = Arc::new(Flaky {
        inner: f[0].clone(),
        crashes_left: usize::MAX.into(),
    });
    let ok = fakes(1, false);
    let daemon = start_in_memory(
        dir.path(),
        vec![route("r", &[("a", "#a"), ("b", "#b")])],
        vec![("a", down), ("b", dyn_adapter(&ok[0]))],
    )
    .await;
    ok[0].wait_running(WAIT).await;
    let addr = daemon.http_addr().unwrap();
    eventually("/healthz reports the failing network", || async {
        let (status, body) = http_get(addr, "/healthz").await;
        status == 503
            && body.contains("\"state\":\"reconnecting\"")
            && body.contains("\"b\":{\"state\":\"connected\"")
    })
    .await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_memory_is_read_back_in_order_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(2, false);
    // The submitter's answers are not held: this is about what the queue does.
    let daemon = start_with_delivery(
        dir.path(),
        vec![route("r", &[("a", "#a"), ("b", "#b")])],
        vec![("a", dyn_adapter(&f[0])), ("b", dyn_adapter(&f[1]))],
        DeliveryConfig {
            hold_answers_above: 1_000_000,
            ..fast_delivery()
        },
    )
    .await;
    f[1].set_down(true);
    // More than the in-memory inbox (512) and many disk reads (32 each).
    let total = 1300;
    let submitter = {
        let a = f[0].clone();
        tokio::spawn(async move {
            for i in 0..total {
                a.receive("#a", "alice", &format!("m{i}"), &format!("n{i}"))
                    .await
                    .unwrap();
            }
        })
    };
    // Bring b back while events are still arriving: disk and memory rows interleave.
    // More than the inbox is enough; how fast the rest arrives is the disk's pace
    // (one fsync per event from one submitter), which a busy machine slows down.
    eventually("a backlog larger than the inbox builds up", || async {
        let (_, metrics) = http_get(daemon.http_addr().unwrap(), "/metrics").await;
        metrics
            .lines()
            .find(|l| l.starts_with("switchboard_queue_depth{network=\"b\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .is_some_and(|depth| depth > 600.0)
    })
    .await;
    f[1].set_down(false);
    submitter.await.unwrap();
    let sent = f[1].wait_for_sent(total, Duration::from_secs(60)).await;
    assert_eq!(
        texts(&sent),
        (0..total).map(|i| format!("n{i}")).collect::<Vec<_>>()
    );
    daemon.shutdown().await;
}

/// Two rooms of one network that differ: one names senders per message and shows
/// reactions, the other does neither. The label, and whether a reaction is sent or
/// skipped (and counted), follow each room, not the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_room_is_delivered_to_as_its_own_capabilities_say() {
    let dir = tempfile::tempdir().unwrap();
    let f = fakes(2, false);
    f[1].set_room_capabilities(
        "#named",
        Capabilities {
            per_message_sender: true,
            reactions: true,
            ..Capabilities::default()
        },
    );
    let daemon = start(
        dir.path(),
        vec![route("r", &[("a", "#a"), ("b", "#named"), ("b", "#plain")])],
        vec![("a", dyn_adapter(&f[0])), ("b", dyn_adapter(&f[1]))],
    )
    .await;
    f[0].receive("#a", "alice", "m1", "hello").await.unwrap();
    let sent = f[1].wait_for_sent(2, WAIT).await;
    let to = |room: &str| {
        sent.iter()
            .find(|out| out.room.as_str() == room)
            .unwrap_or_else(|| panic!("nothing sent to {room}: {sent:?}"))
            .clone()
    };
    let named = to("#named");
    assert!(named.per_message_sender);
    assert_eq!(named.sender_name, "alice");
    assert_eq!(
        named.parts,
        vec![switchboard_sdk::FinalText::plain("hello")]
    );
    let plain = to("#plain");
    assert!(!plain.per_message_sender);
    assert_eq!(
        plain.parts,
        vec![switchboard_sdk::FinalText::plain("<alice> hello")]
    );

    // A reaction to it: shown in #named on that room's copy, skipped in #plain.
    let named_copy = f[1]
        .sent()
        .iter()
        .position(|out| out.room.as_str() == "#named")
        .map(|index| NativeMsgId::new(format!("fake-{}", index + 1)))
        .unwrap();
    let b_named = RoomKey::new("b", "#named");
    eventually("the copy in #named is in the id map", || async {
        daemon.store().native_ids_in(1, &b_named).await.unwrap() == vec![named_copy.clone()]
    })
    .await;
    let mut reaction = Inbound::message(
        RoomKey::new("a", "#a"),
        Sender::user("bob", "bob"),
        Some(NativeMsgId::new("r1")),
        RichText::default(),
    );
    reaction.kind = EventKind::Reaction {
        target: NativeMsgId::new("m1"),
        key: "👍".into(),
    };
    assert_eq!(
        f[0].submit(reaction).await.unwrap(),
        SubmitOutcome::Accepted { destinations: 2 }
    );
    let sent = f[1].wait_for_sent(3, WAIT).await;
    assert_eq!(sent[2].room.as_str(), "#named");
    assert_eq!(
        sent[2].kind,
        OutboundKind::Reaction {
            target: named_copy,
            key: "👍".into()
        }
    );
    let addr = daemon.http_addr().unwrap();
    eventually("the skipped reaction is counted", || async {
        http_get(addr, "/metrics").await.1.lines().any(|line| {
            line.starts_with("switchboard_events_skipped_total{")
                && line.contains("reason=\"reactions_unsupported\"")
                && line.ends_with(" 1")
        })
    })
    .await;
    assert_eq!(f[1].sent().len(), 3, "nothing else was sent");

    // A reaction to a message the bridge never saw is not accepted at all.
    let mut unknown = Inbound::message(
        RoomKey::new("a", "#a"),
        Sender::user("bob", "bob"),
        Some(NativeMsgId::new("r2")),
        RichText::default(),
    );
    unknown.kind = EventKind::Reaction {
        target: NativeMsgId::new("never-seen"),
        key: "👍".into(),
    };
    assert_eq!(f[0].submit(unknown).await.unwrap(), SubmitOutcome::Ignored);
    daemon.shutdown().await;
}
