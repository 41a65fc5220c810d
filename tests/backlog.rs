//! A destination room's backlog: answers to waiting sources are held (never refused)
//! while the room is over its bound, for at most `hold_answers_for`; sources that
//! cannot wait are never held; and a lagging room shows in `/healthz`, `/metrics` and
//! the log (WARN when it starts, INFO when it catches up), through the real binary.

mod common;

use common::bridge::BridgeProcess;
use common::{WAIT, dyn_adapter, fakes, http_get, route};
use std::sync::Arc;
use std::time::Duration;
use switchboard::config::DeliveryConfig;
use switchboard_sdk::testing::FakeAdapter;
use switchboard_sdk::{Inbound, NativeMsgId, RichText, RoomKey, Sender, SubmitOutcome};
use switchboard_testkit::mattermost::FakeMattermost;
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

fn delivery(hold_above: u64, hold_for: Duration) -> DeliveryConfig {
    DeliveryConfig {
        hold_answers_above: hold_above,
        hold_answers_for: hold_for,
        ..common::fast_delivery()
    }
}

/// A daemon routing `a/#a` to `b/#b` on fakes; `b` is down until the test says.
async fn daemon_with_b_down(
    dir: &std::path::Path,
    delivery: DeliveryConfig,
) -> (switchboard::Daemon, Vec<Arc<FakeAdapter>>) {
    let f = fakes(2, false);
    f[1].set_down(true);
    let daemon = common::start_with_delivery(
        dir,
        vec![route("r", &[("a", "#a"), ("b", "#b")])],
        vec![("a", dyn_adapter(&f[0])), ("b", dyn_adapter(&f[1]))],
        delivery,
    )
    .await;
    (daemon, f)
}

async fn metric(daemon: &switchboard::Daemon, line_prefix: &str) -> Option<f64> {
    common::bridge::metric(daemon.http_addr().unwrap(), line_prefix).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_held_while_its_room_is_over_the_bound_and_given_once_it_drains() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, f) = daemon_with_b_down(dir.path(), delivery(2, Duration::from_secs(20))).await;
    // Two rows queued: at the bound, not over it, so not held.
    for i in 0..2 {
        let outcome = f[0]
            .receive("#a", "alice", &format!("m{i}"), &format!("queued {i}"))
            .await
            .unwrap();
        assert!(matches!(outcome, SubmitOutcome::Accepted { .. }));
    }
    // The third takes the room over the bound. (Its own answer may or may not be
    // held: the room's count can trail the answer by a moment.)
    let depth = |expected: f64| {
        let daemon = &daemon;
        async move {
            metric(daemon, "switchboard_queue_depth{network=\"b\",room=\"#b\"}").await
                == Some(expected)
        }
    };
    let mut submits = vec![tokio::spawn({
        let a = f[0].clone();
        async move { a.receive("#a", "alice", "m2", "queued 2").await }
    })];
    common::eventually("the room has three rows queued", || depth(3.0)).await;
    // Over the bound now: these answers are held until the room drains (each is
    // queued before the next is sent, so their order is known).
    for i in 3..5 {
        let a = f[0].clone();
        submits.push(tokio::spawn(async move {
            a.receive("#a", "alice", &format!("m{i}"), &format!("queued {i}"))
                .await
        }));
        let what = format!("the room has {} rows queued", i + 1);
        common::eventually(&what, || depth(i as f64 + 1.0)).await;
    }
    assert!(
        submits.iter().skip(1).all(|submit| !submit.is_finished()),
        "answered while the room was over its bound"
    );
    f[1].set_down(false);
    for submit in submits {
        let outcome = tokio::time::timeout(WAIT, submit)
            .await
            .expect("answered once the room drained")
            .unwrap()
            .unwrap();
        assert!(matches!(outcome, SubmitOutcome::Accepted { .. }));
    }
    let sent = f[1].wait_for_sent(5, WAIT).await;
    assert_eq!(
        common::texts(&sent),
        (0..5).map(|i| format!("queued {i}")).collect::<Vec<_>>(),
        "nothing refused, lost or reordered"
    );
    assert!(
        metric(
            &daemon,
            "switchboard_answers_held_total{outcome=\"drained\"}"
        )
        .await
        .is_some_and(|held| held >= 1.0)
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_answer_is_given_after_hold_answers_for_however_far_behind_the_room_is() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, f) = daemon_with_b_down(dir.path(), delivery(0, Duration::from_millis(200))).await;
    let outcome = tokio::time::timeout(WAIT, f[0].receive("#a", "alice", "m0", "held"))
        .await
        .expect("answered after hold_answers_for")
        .unwrap();
    assert!(matches!(outcome, SubmitOutcome::Accepted { .. }));
    assert!(f[1].sent().is_empty(), "the room is still down");
    assert!(
        metric(
            &daemon,
            "switchboard_answers_held_total{outcome=\"timed_out\"}"
        )
        .await
        .is_some_and(|held| held >= 1.0)
    );
    f[1].set_down(false);
    assert_eq!(f[1].wait_for_sent(1, WAIT).await.len(), 1);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_cannot_wait_are_never_held() {
    let dir = tempfile::tempdir().unwrap();
    // Held answers would wait far longer than this test's WAIT.
    let (daemon, f) = daemon_with_b_down(dir.path(), delivery(0, Duration::from_secs(20))).await;
    let ctx = f[0].wait_running(WAIT).await;
    for i in 0..5 {
        let event = Inbound::message(
            RoomKey::new("a", "#a"),
            Sender::user("alice", "alice"),
            Some(NativeMsgId::new(format!("m{i}"))),
            RichText::plain(format!("unacknowledged {i}")),
        );
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            ctx.inbound.submit_unacknowledged(event),
        )
        .await
        .expect("an unacknowledged submit is never held")
        .unwrap();
        assert!(matches!(outcome, SubmitOutcome::Accepted { .. }));
    }
    f[1].set_down(false);
    assert_eq!(f[1].wait_for_sent(5, WAIT).await.len(), 5);
    daemon.shutdown().await;
}

/// The `/healthz` JSON.
async fn healthz(bridge: &BridgeProcess) -> (u16, serde_json::Value) {
    let (status, body) = http_get(bridge.http, "/healthz").await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_room_is_logged_shown_in_healthz_and_metrics_until_it_catches_up() {
    let mm = FakeMattermost::start().await;
    let team = mm.add_team("core");
    let town = mm.add_channel(&team, "town-square");
    let (bot, bot_token) = mm.add_user("bridge", true);
    let irc = Ngircd::start(NgircdOptions::default());
    let mut alice = IrcPeer::connect(irc.port(), "alice", &["#a"]).await;
    let bridge = BridgeProcess::start(|http, state| {
        format!(
            "state_dir: {state}\nhttp:\n  listen: {http}\n\
             delivery:\n  retry_initial: 50ms\n  retry_max: 200ms\n  lagging_after: 300ms\n\
             networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n\
             \x20 mm:\n    mattermost:\n      server: {url}\n      team: core\n      token: {bot_token}\n\
             routes:\n  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mm: town-square\n",
            state = state.display(),
            port = irc.port(),
            url = mm.url(),
        )
    });
    bridge.wait_healthy().await;
    assert_eq!(healthz(&bridge).await.1["status"], "ok");

    // Mattermost refuses every post: the room's queue grows old.
    mm.fail_rest(Some(500));
    alice.say("#a", "stuck for a while").await;
    common::eventually("healthz shows the room lagging", || async {
        healthz(&bridge).await.1["lagging"]["mm/town-square"]["queued"] == 1
    })
    .await;
    let (status, health) = healthz(&bridge).await;
    assert_eq!(status, 200, "a lagging room is not an unhealthy daemon");
    assert_eq!(health["status"], "lagging");
    assert!(health["lagging"]["mm/town-square"]["oldest_queued_ms"].as_i64() > Some(0));
    let age = bridge
        .metric("switchboard_queue_oldest_age_seconds{network=\"mm\",room=\"town-square\"}")
        .await;
    assert!(age.is_some_and(|age| age > 0.3), "{age:?}");

    mm.fail_rest(None);
    let what = "the post reaches Mattermost";
    mm.wait_until(what, WAIT, |mm| {
        mm.posts(&town).iter().any(|post| post.user_id == bot)
    })
    .await;
    common::eventually("healthz shows the room caught up", || async {
        healthz(&bridge).await.1["status"] == "ok"
    })
    .await;
    assert_eq!(
        bridge
            .metric("switchboard_queue_oldest_age_seconds{network=\"mm\",room=\"town-square\"}")
            .await,
        Some(0.0)
    );
    let log = bridge.log();
    let lagging: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("room is lagging"))
        .collect();
    assert_eq!(lagging.len(), 1, "one line when it starts lagging:\n{log}");
    assert!(lagging[0].contains("WARN") && lagging[0].contains("mm/town-square"));
    let caught_up: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("room caught up"))
        .collect();
    assert_eq!(caught_up.len(), 1, "one line when it catches up:\n{log}");
    assert!(caught_up[0].contains("INFO"));
}
