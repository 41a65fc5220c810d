//! The IRC adapter against real servers: the sdk conformance suite on ngircd and
//! InspIRCd, flood control against ngircd's default penalties, nick fallback,
//! reconnecting after a server restart, long messages split so that what a client
//! receives joins back to the original text, and each channel reported joined,
//! refused (invite only, wrong key) or left.

use std::sync::Arc;
use std::time::Duration;
use switchboard_irc::{IrcAdapter, IrcConfig};
use switchboard_sdk::testing::{
    ConformanceHarness, RunningAdapter, message_from_alice, next_room_report, planned,
    run_conformance, spawn_adapter, spawn_adapter_in, wait_connected,
};
use switchboard_sdk::{
    Adapter, MessageStyle, NetworkId, Outbound, OutboundKind, RoomId, RoomReport, RoomSet,
};
use switchboard_testkit::{Inspircd, IrcPeer, Ngircd, NgircdOptions};

const WAIT: Duration = Duration::from_secs(30);

fn config(port: u16, nick: &str) -> IrcConfig {
    let yaml = format!(
        "{{\"server\": \"127.0.0.1:{port}\", \"tls\": false, \"nick\": \"{nick}\", \"flood\": {{\"burst\": 4, \"interval_ms\": 100}}}}"
    );
    serde_json_like(&yaml)
}

/// IrcConfig has only serde defaults; build it from JSON text.
fn serde_json_like(json: &str) -> IrcConfig {
    serde_json::from_str(json).expect("valid IrcConfig JSON")
}

struct Harness {
    adapter: Arc<IrcAdapter>,
    peer: IrcPeer,
}

#[async_trait::async_trait]
impl ConformanceHarness for Harness {
    type Adapter = IrcAdapter;
    fn adapter(&self) -> Arc<IrcAdapter> {
        self.adapter.clone()
    }
    fn network(&self) -> NetworkId {
        NetworkId::new("test")
    }
    fn room(&self) -> RoomId {
        RoomId::new("#conformance")
    }
    async fn peer_say(&mut self, text: &str) {
        self.peer.say("#conformance", text).await;
    }
    async fn peer_saw(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.peer.next_message(left).await {
                Some(message) if message.text.contains(needle) => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_ngircd() {
    let server = Ngircd::start(NgircdOptions::default());
    let peer = IrcPeer::connect(server.port(), "peer", &["#conformance"]).await;
    let mut harness = Harness {
        adapter: IrcAdapter::new(config(server.port(), "bridge")),
        peer,
    };
    run_conformance(&mut harness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_inspircd_with_ircv3_caps() {
    let server = Inspircd::start();
    let peer = IrcPeer::connect(server.port(), "peer", &["#conformance"]).await;
    let mut harness = Harness {
        adapter: IrcAdapter::new(config(server.port(), "bridge")),
        peer,
    };
    run_conformance(&mut harness).await;
}

fn start(adapter: &Arc<IrcAdapter>, rooms: &[&str]) -> RunningAdapter {
    spawn_adapter(
        adapter.clone(),
        NetworkId::new("test"),
        rooms.iter().map(|room| RoomId::new(*room)).collect(),
    )
}

/// Alice's `text` for `room`, with the parts the core would plan for it.
fn message(adapter: &IrcAdapter, room: &str, text: &str) -> Outbound {
    planned(adapter, message_from_alice(room, text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_lines_arrives_in_order_under_ngircd_flood_penalties() {
    let server = Ngircd::start(NgircdOptions {
        flood_throttling: true,
        ..NgircdOptions::default()
    });
    let mut peer = IrcPeer::connect(server.port(), "reader", &["#flood"]).await;
    // The default flood settings, as an operator gets them.
    let adapter = IrcAdapter::new(serde_json_like(&format!(
        "{{\"server\": \"127.0.0.1:{}\", \"tls\": false, \"nick\": \"bridge\"}}",
        server.port()
    )));
    let RunningAdapter {
        mut health,
        cancel,
        task,
        ..
    } = start(&adapter, &["#flood"]);
    wait_connected(&mut health, WAIT).await;
    // Sent one after another as the core does per room, as fast as they are accepted.
    let sender = {
        let adapter = adapter.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                adapter
                    .send(&message(&adapter, "#flood", &format!("line {i}")))
                    .await
                    .expect("send succeeds");
            }
        })
    };
    let got = peer.collect("#flood", 100, Duration::from_secs(240)).await;
    let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("<alice> line {i}")).collect();
    assert_eq!(texts, expected);
    sender.await.unwrap();
    cancel.cancel();
    assert!(
        task.await.unwrap().is_ok(),
        "the bridge was not disconnected for flooding"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_lines_join_back_to_the_original_on_ngircd() {
    let server = Ngircd::start(NgircdOptions::default());
    let mut peer = IrcPeer::connect(server.port(), "reader", &["#split"]).await;
    let adapter = IrcAdapter::new(config(server.port(), "bridge"));
    let RunningAdapter {
        mut health,
        cancel,
        task,
        ..
    } = start(&adapter, &["#split"]);
    wait_connected(&mut health, WAIT).await;
    // Words of every length, so the splits land at many word boundaries.
    let text: String = (0..300)
        .map(|i| ["é", "crème", "brûlée", "à", "la", "mode"][i % 6])
        .collect::<Vec<_>>()
        .join(" ");
    adapter
        .send(&message(&adapter, "#split", &text))
        .await
        .unwrap();
    adapter
        .send(&message(&adapter, "#split", "end of split"))
        .await
        .unwrap();
    let mut rebuilt = String::new();
    let mut lines = 0;
    loop {
        let got = peer
            .next_message(WAIT)
            .await
            .expect("every line and the end marker arrive");
        if got.text == "<alice> end of split" {
            break;
        }
        let body = got
            .text
            .strip_prefix("<alice> ")
            .unwrap_or_else(|| panic!("every line carries the label: {:?}", got.text));
        rebuilt.push_str(body);
        lines += 1;
    }
    assert!(lines >= 3, "the text was split ({lines} lines)");
    assert_eq!(rebuilt, text, "the pieces join back to the original");
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nick_in_use_falls_back_and_formatting_arrives_intact() {
    let server = Ngircd::start(NgircdOptions::default());
    let mut holder = IrcPeer::connect(server.port(), "bridge", &["#fmt"]).await;
    let adapter = IrcAdapter::new(config(server.port(), "bridge"));
    let RunningAdapter {
        mut inbound,
        mut health,
        cancel,
        task,
        ..
    } = start(&adapter, &["#fmt"]);
    wait_connected(&mut health, WAIT).await;
    let formatted =
        switchboard_irc::format::parse("\x02bold\x02 \x1Ditalic\x1D \x0304red\x03 plain");
    let mut outbound = message(&adapter, "#fmt", "");
    outbound.kind = OutboundKind::Message {
        style: MessageStyle::Normal,
        content: formatted,
        reply_to: None,
        thread: None,
        attachments: Vec::new(),
    };
    let outbound = planned(&*adapter, outbound);
    adapter.send(&outbound).await.unwrap();
    let got = holder.expect("#fmt", "bold", WAIT).await;
    assert_eq!(got.from, "bridge_", "the taken nick fell back to bridge_");
    assert_eq!(
        got.text,
        "<alice> \x02bold\x02 \x1Ditalic\x1D \x0304red\x03 plain"
    );
    holder.say("#fmt", "\x02hi\x02 there").await;
    let event = tokio::time::timeout(WAIT, async {
        loop {
            let event = inbound.recv().await.expect("inbound open");
            if event.kind == switchboard_sdk::EventKind::Message {
                return event;
            }
        }
    })
    .await
    .expect("the peer's message arrives");
    assert_eq!(event.content.to_plain(), "hi there");
    assert_eq!(event.sender.display_name, "bridge");
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_run_again_rejoins_and_sends() {
    let mut server = Ngircd::start(NgircdOptions::default());
    let adapter = IrcAdapter::new(config(server.port(), "bridge"));
    let RunningAdapter {
        mut health,
        mut rooms,
        task,
        ..
    } = start(&adapter, &["#back"]);
    wait_connected(&mut health, WAIT).await;
    let joined = next_room_report(&mut rooms, "#back", WAIT).await;
    assert_eq!(joined, RoomReport::Joined);
    server.stop();
    let ended = tokio::time::timeout(WAIT, task)
        .await
        .expect("run returns when the server dies");
    assert!(
        ended.unwrap().is_err(),
        "losing the server is an error for the supervisor"
    );
    assert!(
        adapter
            .send(&message(&adapter, "#back", "x"))
            .await
            .unwrap_err()
            .is_retryable()
    );
    server.restart();
    let mut peer = IrcPeer::connect(server.port(), "peer", &["#back"]).await;
    let RunningAdapter {
        mut health,
        mut rooms,
        cancel,
        task,
        ..
    } = start(&adapter, &["#back"]);
    wait_connected(&mut health, WAIT).await;
    // The new connection reports its channel again (the core forgot it when the
    // connection was lost).
    let joined = next_room_report(&mut rooms, "#back", WAIT).await;
    assert_eq!(joined, RoomReport::Joined);
    adapter
        .send(&message(&adapter, "#back", "i am back"))
        .await
        .unwrap();
    peer.expect("#back", "i am back", WAIT).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_line_is_lost_when_ngircd_is_killed_and_restarted_with_traffic_flowing() {
    const TOTAL: usize = 60;
    let mut server = Ngircd::start(NgircdOptions::default());
    let port = server.port();
    let mut peer = IrcPeer::connect(port, "reader", &["#restart"]).await;
    let adapter = IrcAdapter::new(config(port, "bridge"));
    // Runs the adapter again each time a run ends, as the daemon's supervisor does,
    // once the test allows that run (after the server and the reader are back).
    let (allow_runs, mut allowed_runs) = tokio::sync::watch::channel(1usize);
    let stop = tokio_util::sync::CancellationToken::new();
    let supervisor = tokio::spawn({
        let adapter = adapter.clone();
        let stop = stop.clone();
        async move {
            let mut runs = 0;
            loop {
                tokio::select! {
                    allowed = allowed_runs.wait_for(|allowed| *allowed > runs) => {
                        allowed.expect("the test holds the sender");
                    }
                    () = stop.cancelled() => return runs,
                }
                let mut running = start(&adapter, &["#restart"]);
                runs += 1;
                tokio::select! {
                    _ = &mut running.task => {}
                    () = stop.cancelled() => {
                        running.cancel.cancel();
                        let _ = running.task.await;
                        return runs;
                    }
                }
            }
        }
    });
    // Sends one message after another, retrying what failed transiently, as the
    // core's delivery loop does for one room.
    let sender = tokio::spawn({
        let adapter = adapter.clone();
        async move {
            for i in 0..TOTAL {
                let message = message(&adapter, "#restart", &format!("line {i}"));
                loop {
                    match adapter.send(&message).await {
                        Ok(_) => break,
                        Err(error) if error.is_retryable() => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(error) => panic!("line {i}: {error:?}"),
                    }
                }
            }
        }
    });
    let mut seen = peer.collect("#restart", 10, WAIT).await;
    // Killed with lines still flowing (one usually waits for its flood token).
    server.stop();
    seen.extend(peer.drain("#restart", WAIT).await);
    server.restart();
    let mut peer = IrcPeer::connect(port, "reader", &["#restart"]).await;
    allow_runs.send_replace(2);
    let last = format!("<alice> line {}", TOTAL - 1);
    while !seen.iter().any(|m| m.text == last) {
        seen.push(
            peer.next_message(WAIT)
                .await
                .unwrap_or_else(|| panic!("not every line arrived; saw {seen:#?}")),
        );
    }
    tokio::time::timeout(WAIT, sender)
        .await
        .expect("every send completes")
        .unwrap();
    let missing: Vec<usize> = (0..TOTAL)
        .filter(|i| !seen.iter().any(|m| m.text == format!("<alice> line {i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "lines lost across the restart: {missing:?}"
    );
    stop.cancel();
    let runs = supervisor.await.unwrap();
    assert_eq!(runs, 2, "one run before the restart, one after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspircd_echoes_are_our_own_and_carry_msgid() {
    let server = Inspircd::start();
    let mut peer = IrcPeer::connect(server.port(), "peer", &["#v3"]).await;
    let adapter = IrcAdapter::new(config(server.port(), "bridge"));
    let RunningAdapter {
        mut inbound,
        mut health,
        cancel,
        task,
        ..
    } = start(&adapter, &["#v3"]);
    wait_connected(&mut health, WAIT).await;
    adapter
        .send(&message(&adapter, "#v3", "echo check"))
        .await
        .unwrap();
    peer.expect("#v3", "echo check", WAIT).await;
    peer.say("#v3", "from the peer").await;
    let (mut echo, mut theirs) = (None, None);
    tokio::time::timeout(WAIT, async {
        while echo.is_none() || theirs.is_none() {
            let event = inbound.recv().await.expect("inbound open");
            let text = event.content.to_plain();
            if text.contains("echo check") {
                echo = Some(event);
            } else if text.contains("from the peer") {
                theirs = Some(event);
            }
        }
    })
    .await
    .expect("the echo (echo-message) and the peer's line arrive");
    let (echo, theirs) = (echo.unwrap(), theirs.unwrap());
    assert!(
        echo.sender.is_self,
        "echo-message was negotiated and the echo is recognised as ours"
    );
    assert!(!theirs.sender.is_self);
    let id = theirs.native_id.unwrap();
    assert!(
        !id.as_str().starts_with("irc-"),
        "the server's msgid is the native id, not a minted one: {id}"
    );
    let age = switchboard_sdk::event::now_ms() - theirs.timestamp_ms;
    assert!(
        (0..60_000).contains(&age),
        "server-time gives a sane timestamp: {age} ms old"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// `peer` (first in `channel`, so its operator) sets `mode` there and waits for the
/// server's echo.
async fn set_mode(peer: &mut IrcPeer, channel: &str, mode: &str) {
    peer.raw(&format!("MODE {channel} {mode}")).await;
    peer.expect_line(&format!("MODE {channel} {mode}"), WAIT, |line| {
        line.split_whitespace().nth(1) == Some("MODE")
            && line.split_whitespace().nth(2) == Some(channel)
    })
    .await;
}

fn refusal(report: RoomReport) -> String {
    match report {
        RoomReport::JoinFailed { error } => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_reported_joined_refused_with_the_servers_words_and_left() {
    let server = Ngircd::start(NgircdOptions::default());
    let mut peer = IrcPeer::connect(server.port(), "op", &["#open", "#locked", "#keyed"]).await;
    set_mode(&mut peer, "#locked", "+i").await;
    set_mode(&mut peer, "#keyed", "+k secret").await;
    let adapter = IrcAdapter::new(config(server.port(), "bridge"));
    let (room_set, watched) =
        RoomSet::watched(["#open", "#locked", "#keyed"].into_iter().map(RoomId::new));
    let mut run = spawn_adapter_in(adapter.clone(), NetworkId::new("test"), watched);
    // Connected once every join was answered, refusals included: all three
    // reports are in by then (in the order the joins were sent, which is no order).
    wait_connected(&mut run.health, WAIT).await;
    let mut reports = std::collections::BTreeMap::new();
    while let Ok((room, report)) = run.rooms.try_recv() {
        assert!(
            reports.insert(room.clone(), report).is_none(),
            "{room} twice"
        );
    }
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert_eq!(reports[&RoomId::new("#open")], RoomReport::Joined);
    let locked = refusal(reports[&RoomId::new("#locked")].clone());
    assert!(
        locked.starts_with("473: ") && locked.contains("+i"),
        "{locked}"
    );
    let keyed = refusal(reports[&RoomId::new("#keyed")].clone());
    assert!(
        keyed.starts_with("475: ") && keyed.contains("+k"),
        "{keyed}"
    );
    // A refused channel's messages wait; the joined one's go out.
    let refused = adapter.send(&message(&adapter, "#locked", "x")).await;
    assert!(refused.unwrap_err().is_retryable());
    adapter
        .send(&message(&adapter, "#open", "hello open"))
        .await
        .expect("sent to the joined channel");
    peer.expect("#open", "hello open", WAIT).await;

    // Kicked: left, then joined again by the rejoin.
    peer.raw("KICK #open bridge :out").await;
    assert_eq!(
        next_room_report(&mut run.rooms, "#open", WAIT).await,
        RoomReport::Left
    );
    assert_eq!(
        next_room_report(&mut run.rooms, "#open", WAIT).await,
        RoomReport::Joined
    );

    // The routes drop a refused channel and add a new one, on the same connection.
    room_set.set(["#open", "#keyed", "#new"].into_iter().map(RoomId::new));
    assert_eq!(
        next_room_report(&mut run.rooms, "#locked", WAIT).await,
        RoomReport::Left
    );
    assert_eq!(
        next_room_report(&mut run.rooms, "#new", WAIT).await,
        RoomReport::Joined
    );
    room_set.set(["#keyed", "#new"].into_iter().map(RoomId::new));
    assert_eq!(
        next_room_report(&mut run.rooms, "#open", WAIT).await,
        RoomReport::Left
    );
    run.cancel.cancel();
    run.task.await.unwrap().unwrap();
}
