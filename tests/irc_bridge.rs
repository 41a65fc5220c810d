//! Two (or three) real IRC servers bridged by the real daemon: both directions with
//! the nick template, /me, formatting, mention safety; a 100-line burst under flood
//! penalties; a long multi-byte message; a destination server restarted mid-stream;
//! SIGKILL with messages pending; a three-way route without echoes or duplicates.

mod common;

use common::bridge::{BridgeProcess, irc_config, metric};
use common::gate::Gate;
use common::*;
use std::sync::Arc;
use std::time::Duration;
use switchboard_irc::IrcAdapter;
use switchboard_sdk::Adapter;
use switchboard_sdk::testing::FakeAdapter;
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const ZWJ: &str = "\u{200D}";

fn server(name: &str) -> Ngircd {
    Ngircd::start(NgircdOptions {
        name: format!("{name}.test"),
        flood_throttling: false,
    })
}

const TWO_WAY: &str = "  - name: ab\n    nick_template: \"<{nick}@{network}> \"\n    rooms:\n      - east: \"#a\"\n      - west: \"#b\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ways_with_template_action_formatting_and_no_mass_mentions() {
    let (east, west) = (server("east"), server("west"));
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a"]).await;
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    let (ep, wp) = (east.port(), west.port());
    let bridge = BridgeProcess::start(|http, state| {
        irc_config(http, state, &[("east", ep), ("west", wp)], TWO_WAY)
    });
    bridge.wait_healthy().await;

    alice.say("#a", "hello from east").await;
    let got = bob.expect("#b", "hello from east", WAIT).await;
    assert_eq!(got.from, "switchboard");
    assert_eq!(got.text, format!("<a{ZWJ}lice@east> hello from east"));

    bob.say("#b", "hello from west").await;
    let got = alice.expect("#a", "hello from west", WAIT).await;
    assert_eq!(got.text, format!("<b{ZWJ}ob@west> hello from west"));

    alice.action("#a", "waves").await;
    let got = bob.expect("#b", "waves", WAIT).await;
    assert_eq!(
        got.action(),
        Some(format!("<a{ZWJ}lice@east> waves").as_str()),
        "{got:?}"
    );

    alice.say("#a", "\x02bold\x02 \x1Ditalic\x1D \x1Funder\x1F \x1Estrike\x1E \x11mono\x11 \x0304,01red\x03 done").await;
    let got = bob.expect("#b", "done", WAIT).await;
    assert_eq!(
        got.text,
        format!(
            "<a{ZWJ}lice@east> \x02bold\x02 \x1Ditalic\x1D \x1Funder\x1F \x1Estrike\x1E \x11mono\x11 \x0304,01red\x03 done"
        )
    );

    // IRC has no mass mentions: the words arrive as written (issue 17, item 6).
    alice.say("#a", "@here @channel look").await;
    let got = bob.expect("#b", "look", WAIT).await;
    assert_eq!(got.text, format!("<a{ZWJ}lice@east> @here @channel look"));

    let delivered = metric(
        bridge.http,
        "switchboard_events_delivered_total{network=\"west\",route=\"ab\"}",
    )
    .await;
    assert_eq!(delivered, Some(4.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_line_burst_arrives_complete_and_in_order_under_flood_throttling() {
    let east = server("east");
    let west = Ngircd::start(NgircdOptions {
        name: "west.test".into(),
        flood_throttling: true,
    });
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a"]).await;
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    let (ep, wp) = (east.port(), west.port());
    let bridge = BridgeProcess::start(|http, state| {
        irc_config(http, state, &[("east", ep), ("west", wp)], TWO_WAY)
    });
    bridge.wait_healthy().await;
    for i in 0..100 {
        alice.say("#a", &format!("burst line {i}")).await;
    }
    let got = bob.collect("#b", 100, Duration::from_secs(300)).await;
    let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
    let expected: Vec<String> = (0..100)
        .map(|i| format!("<a{ZWJ}lice@east> burst line {i}"))
        .collect();
    assert_eq!(texts, expected);
    assert!(
        bridge.log().matches("Excess Flood").count() == 0,
        "the bridge was kicked for flooding"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1500_byte_multibyte_message_arrives_split_and_whole() {
    let west = server("west");
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeAdapter::new(Default::default());
    let irc = IrcAdapter::new(
        serde_json::from_value(serde_json::json!({"server": format!("127.0.0.1:{}", west.port()), "tls": false, "nick": "switchboard"}))
            .unwrap(),
    );
    let daemon = start(
        dir.path(),
        vec![route("long", &[("wide", "#wide"), ("west", "#b")])],
        vec![("wide", fake.clone() as Arc<dyn Adapter>), ("west", irc)],
    )
    .await;
    eventually("the IRC side is connected", || async {
        daemon.health().all_connected()
    })
    .await;
    let text = "Zażółć gęślą jaźń — 東京 😀 ".repeat(45);
    assert!(text.len() >= 1500, "{}", text.len());
    fake.receive("#wide", "alice", "long-1", &text)
        .await
        .unwrap();
    // Breaks fall before spaces (the words are short), so each continuation starts
    // with its space (servers strip trailing ones): joined, the lines give back
    // exactly the text.
    let mut bodies: Vec<String> = Vec::new();
    while bodies.concat().len() < text.trim_end().len() {
        let got = bob
            .next_message(WAIT)
            .await
            .unwrap_or_else(|| panic!("more lines of the long message; have {bodies:?}"));
        let body = got
            .text
            .strip_prefix(&format!("<a{ZWJ}lice> "))
            .expect("every line keeps the sender");
        bodies.push(body.to_owned());
    }
    assert!(bodies.len() >= 4, "split into {} lines", bodies.len());
    assert_eq!(bodies.concat(), text.trim_end(), "nothing lost or garbled");

    // An edit from a network with edits is a correction line on IRC; a delete is
    // recorded but sends nothing (IRC has no deletes).
    let sender = switchboard_sdk::Sender::user("alice", "alice");
    let mut edit = switchboard_sdk::Inbound::message(
        switchboard_sdk::RoomKey::new("wide", "#wide"),
        sender.clone(),
        Some(switchboard_sdk::NativeMsgId::new("long-1-edit")),
        switchboard_sdk::RichText::plain("short now"),
    );
    edit.kind = switchboard_sdk::EventKind::Edit {
        target: switchboard_sdk::NativeMsgId::new("long-1"),
    };
    fake.submit(edit).await.unwrap();
    let got = bob.next_message(WAIT).await.expect("the correction line");
    assert_eq!(got.text, format!("<a{ZWJ}lice> (correction) short now"));
    let mut delete = switchboard_sdk::Inbound::message(
        switchboard_sdk::RoomKey::new("wide", "#wide"),
        sender,
        Some(switchboard_sdk::NativeMsgId::new("long-1-delete")),
        switchboard_sdk::RichText::default(),
    );
    delete.kind = switchboard_sdk::EventKind::Delete {
        target: switchboard_sdk::NativeMsgId::new("long-1"),
    };
    assert_eq!(
        fake.submit(delete).await.unwrap(),
        switchboard_sdk::SubmitOutcome::Accepted { destinations: 1 },
        "the delete is recorded"
    );
    let addr = daemon.http_addr().unwrap();
    eventually("the delete is skipped for IRC and counted", || async {
        metric(
            addr,
            "switchboard_events_skipped_total{network=\"west\",route=\"long\",reason=\"deletes_unsupported\"}",
        )
        .await
            == Some(1.0)
    })
    .await;
    assert!(
        bob.drain("#b", Duration::from_millis(300)).await.is_empty(),
        "nothing is sent for a delete"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_while_the_destination_server_is_down_arrive_after_it_returns() {
    let east = server("east");
    let mut west = server("west");
    let gate = Gate::new(west.port()).await;
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a"]).await;
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    let irc = |port: u16| -> Arc<dyn Adapter> {
        IrcAdapter::new(
            serde_json::from_value(serde_json::json!({
                "server": format!("127.0.0.1:{port}"), "tls": false, "nick": "switchboard",
                "flood": {"burst": 10, "interval_ms": 50}
            }))
            .unwrap(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(
        dir.path(),
        vec![route("ab", &[("east", "#a"), ("west", "#b")])],
        vec![("east", irc(east.port())), ("west", irc(gate.port))],
    )
    .await;
    eventually("both networks connected", || async {
        daemon.health().all_connected()
    })
    .await;
    for i in 0..5 {
        alice.say("#a", &format!("before {i}")).await;
    }
    let before = bob.collect("#b", 5, WAIT).await;
    assert!(before[4].text.ends_with("before 4"));

    west.stop();
    gate.set_open(false);
    let west_id = switchboard_sdk::NetworkId::new("west");
    eventually("the daemon sees west is down", || async {
        daemon.health().state_of(&west_id) != Some(switchboard_sdk::ConnectionState::Connected)
    })
    .await;
    for i in 0..20 {
        alice.say("#a", &format!("queued {i}")).await;
    }
    let addr = daemon.http_addr().unwrap();
    eventually("20 rows wait for west", || async {
        metric(
            addr,
            "switchboard_queue_depth{network=\"west\",room=\"#b\"}",
        )
        .await
            == Some(20.0)
    })
    .await;

    west.restart();
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    gate.set_open(true);
    let after = bob.collect("#b", 20, Duration::from_secs(60)).await;
    let texts: Vec<String> = after.iter().map(|m| m.text.clone()).collect();
    let expected: Vec<String> = (0..20)
        .map(|i| format!("<a{ZWJ}lice> queued {i}"))
        .collect();
    assert_eq!(texts, expected);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_messages_survive_sigkill_and_are_delivered_after_restart() {
    let east = server("east");
    let mut west = server("west");
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a"]).await;
    let (ep, wp) = (east.port(), west.port());
    let mut bridge = BridgeProcess::start(|http, state| {
        irc_config(http, state, &[("east", ep), ("west", wp)], TWO_WAY)
    });
    bridge.wait_healthy().await;
    west.stop();
    eventually("west is reported down", || async {
        let (status, _) = http_get(bridge.http, "/healthz").await;
        status == 503
    })
    .await;
    for i in 0..10 {
        alice.say("#a", &format!("pending {i}")).await;
    }
    eventually("10 rows are committed and pending", || async {
        bridge
            .metric("switchboard_queue_depth{network=\"west\",room=\"#b\"}")
            .await
            == Some(10.0)
    })
    .await;
    bridge.kill();

    west.restart();
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    bridge.spawn();
    let got = bob.collect("#b", 10, Duration::from_secs(60)).await;
    let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
    let expected: Vec<String> = (0..10)
        .map(|i| format!("<a{ZWJ}lice@east> pending {i}"))
        .collect();
    assert_eq!(texts, expected, "log:\n{}", bridge.log());
    let extra = bob.drain("#b", Duration::from_secs(1)).await;
    assert!(extra.is_empty(), "duplicates after restart: {extra:?}");
    assert!(
        bridge.terminate().success(),
        "SIGTERM exits cleanly; log:\n{}",
        bridge.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_way_route_has_no_echo_and_no_duplicates() {
    let (east, west) = (server("east"), server("west"));
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a"]).await;
    let mut carol = IrcPeer::connect(east.port(), "carol", &["#c"]).await;
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    let (ep, wp) = (east.port(), west.port());
    let routes = "  - name: abc\n    rooms:\n      - east: \"#a\"\n      - west: \"#b\"\n      - east: \"#c\"\n";
    let bridge = BridgeProcess::start(|http, state| {
        irc_config(http, state, &[("east", ep), ("west", wp)], routes)
    });
    bridge.wait_healthy().await;
    alice.say("#a", "from a").await;
    bob.say("#b", "from b").await;
    carol.say("#c", "from c").await;
    for (peer, channel, expected) in [
        (&mut alice, "#a", ["from b", "from c"]),
        (&mut bob, "#b", ["from a", "from c"]),
        (&mut carol, "#c", ["from a", "from b"]),
    ] {
        let mut got: Vec<String> = peer
            .collect(channel, 2, WAIT)
            .await
            .into_iter()
            .map(|m| m.text)
            .collect();
        got.sort();
        assert!(
            got[0].ends_with(expected[0]) && got[1].ends_with(expected[1]),
            "{channel}: {got:?}"
        );
        let extra = peer.drain(channel, Duration::from_millis(500)).await;
        assert!(
            extra.is_empty(),
            "{channel} got echoes or duplicates: {extra:?}"
        );
    }
    let delivered = metric(
        bridge.http,
        "switchboard_events_ignored_total{network=\"east\",reason=\"own_message\"}",
    )
    .await;
    assert!(
        delivered.unwrap_or(0.0) >= 1.0,
        "the bridge's own lines were seen and ignored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_topics_are_relayed_only_where_the_route_says_so() {
    let (east, west) = (server("east"), server("west"));
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b", "#d"]).await;
    let (ep, wp) = (east.port(), west.port());
    let routes = "  - name: chatty\n    relay_membership: true\n    rooms:\n      - east: \"#a\"\n      - west: \"#b\"\n  - name: quiet\n    rooms:\n      - east: \"#c\"\n      - west: \"#d\"\n";
    let bridge = BridgeProcess::start(|http, state| {
        irc_config(http, state, &[("east", ep), ("west", wp)], routes)
    });
    bridge.wait_healthy().await;
    let mut dave = IrcPeer::connect(east.port(), "dave", &["#c"]).await;
    let mut carol = IrcPeer::connect(east.port(), "carol", &["#a"]).await;
    let got = bob.expect("#b", "joined", WAIT).await;
    assert!(got.notice, "membership lines are notices: {got:?}");
    assert_eq!(got.text, format!("*** c{ZWJ}arol joined #a on east"));
    carol.raw("TOPIC #a :release on friday").await;
    let got = bob.expect("#b", "topic", WAIT).await;
    assert_eq!(
        got.text,
        format!("*** c{ZWJ}arol set the topic of #a on east: release on friday")
    );
    // The quiet route relays dave's words but not his join.
    dave.say("#c", "hello quietly").await;
    let got = bob.collect("#d", 1, WAIT).await;
    assert_eq!(
        got[0].text,
        format!("<d{ZWJ}ave> hello quietly"),
        "the first line in #d is dave's words, not his join"
    );
    let before = bob.drain("#d", Duration::from_millis(300)).await;
    assert!(
        before.is_empty(),
        "no membership lines in the quiet route: {before:?}"
    );
}

/// Issue 17, item 7: idle HTTP clients, more than the process may open files, cannot
/// take the descriptors an IRC reconnect needs (the HTTP server's connection cap is
/// sized from the open-file limit with a reserve for everything else).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http_clients_cannot_starve_an_irc_reconnect_of_file_descriptors() {
    let (mut east, west) = (server("east"), server("west"));
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    let (ep, wp) = (east.port(), west.port());
    let mut bridge = BridgeProcess::prepare(|http, state| {
        irc_config(http, state, &[("east", ep), ("west", wp)], TWO_WAY)
    });
    bridge.spawn_with_open_file_limit(200);
    bridge.wait_healthy().await;

    // 300 clients that connect and send nothing: more than the daemon may open files.
    let mut idle = Vec::new();
    for _ in 0..300 {
        match tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(bridge.http),
        )
        .await
        {
            Ok(Ok(stream)) => idle.push(stream),
            _ => break,
        }
    }
    // Meanwhile the east server restarts: the bridge needs new descriptors for it.
    east.restart();
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a"]).await;
    bob.say("#b", "still bridged").await;
    let got = alice.expect("#a", "still bridged", WAIT).await;
    assert_eq!(got.text, format!("<b{ZWJ}ob@west> still bridged"));
    assert!(
        !bridge.log().contains("Too many open files"),
        "{}",
        bridge.log()
    );
    drop(idle);
}
