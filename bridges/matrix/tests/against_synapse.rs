//! The Matrix adapter against a real Synapse: the sdk conformance suite, and a send
//! retried with the same outbox row (as after a crash between send and commit) that
//! the homeserver takes as the same event, so nothing is posted twice; and rooms
//! added to and removed from the room set while the adapter runs, on one session,
//! each reported joined, refused (a room the bot is not invited to) or left.

use std::sync::Arc;
use std::time::Duration;
use switchboard_matrix::{MatrixAdapter, MatrixConfig};
use switchboard_sdk::testing::{
    ConformanceHarness, message_from_alice, next_inbound, next_room_report, run_conformance,
    spawn_adapter, spawn_adapter_in, until_sendable, wait_connected,
};
use switchboard_sdk::{Adapter, Inbound, NetworkId, Outbound, RoomId, RoomReport, RoomSet};
use switchboard_testkit::synapse::{MatrixPeer, Synapse, SynapseOptions};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(30);

fn config(synapse: &Synapse) -> MatrixConfig {
    MatrixConfig {
        homeserver: synapse.url(),
        user_id: "@switchboard:localhost".into(),
        password: Some("bot-password".into()),
        access_token: None,
        device_name: "Switchboard test".into(),
        catch_up_max_age_secs: 3600,
        accept_invalid_certs: false,
        appservice: None,
    }
}

async fn setup() -> (Synapse, MatrixPeer, String) {
    let synapse = Synapse::start(SynapseOptions::default());
    synapse.register("switchboard", "bot-password");
    synapse.register("peer", "peer-password");
    let mut peer = MatrixPeer::login(&synapse.url(), "peer", "peer-password").await;
    peer.create_room(Some("conformance"), false).await;
    (synapse, peer, "#conformance:localhost".to_owned())
}

struct Harness {
    adapter: Arc<MatrixAdapter>,
    peer: MatrixPeer,
    room_id: String,
    _synapse: Synapse,
}

#[async_trait::async_trait]
impl ConformanceHarness for Harness {
    type Adapter = MatrixAdapter;
    fn adapter(&self) -> Arc<MatrixAdapter> {
        self.adapter.clone()
    }
    fn network(&self) -> NetworkId {
        NetworkId::new("mx")
    }
    fn room(&self) -> RoomId {
        RoomId::new("#conformance:localhost")
    }
    async fn peer_say(&mut self, text: &str) {
        let room = self.room_id.clone();
        self.peer.send_text(&room, text).await;
    }
    async fn peer_saw(&mut self, needle: &str, timeout: Duration) -> bool {
        let room = self.room_id.clone();
        let seen = self
            .peer
            .drain(&room, timeout.min(Duration::from_secs(3)))
            .await;
        seen.iter().any(|event| {
            event["content"]["body"]
                .as_str()
                .is_some_and(|body| body.contains(needle))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_synapse() {
    let (synapse, mut peer, alias) = setup().await;
    let room_id = peer.join(&alias).await;
    let adapter = MatrixAdapter::new(config(&synapse));
    let mut harness = Harness {
        adapter,
        peer,
        room_id,
        _synapse: synapse,
    };
    run_conformance(&mut harness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_delivery_is_the_same_event() {
    let (synapse, mut peer, alias) = setup().await;
    let room_id = peer.join(&alias).await;
    let adapter = MatrixAdapter::new(config(&synapse));
    let mut run = spawn_adapter(
        adapter.clone(),
        NetworkId::new("mx"),
        vec![RoomId::new(alias.clone())],
    );
    wait_connected(&mut run.health, WAIT).await;
    let message = Outbound {
        delivery_id: 42,
        delivery_key: "d42".into(),
        ..message_from_alice(&alias, "only once")
    };

    let first = adapter.send(&message).await.expect("first send");
    let again = adapter.send(&message).await.expect("retried send");
    assert_eq!(
        first.native_ids, again.native_ids,
        "the retry made a second event"
    );
    let seen = peer.drain(&room_id, Duration::from_secs(2)).await;
    let copies = seen
        .iter()
        .filter(|event| {
            event["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains("only once"))
        })
        .count();
    assert_eq!(copies, 1, "{seen:?}");
    run.cancel.cancel();
}

/// The next message from someone other than the bridge (its probes echo back).
async fn next_from_others(inbound: &mut UnboundedReceiver<Inbound>, what: &str) -> Inbound {
    next_inbound(inbound, what, WAIT, |event| {
        !event.kind.is_membership() && !event.sender.is_self
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_joined_and_dropped_while_the_adapter_runs() {
    let (synapse, mut peer, first) = setup().await;
    let first_id = peer.join(&first).await;
    let second_id = peer.create_room(Some("second"), false).await;
    let second = "#second:localhost";
    let adapter = MatrixAdapter::new(config(&synapse));
    let closed_id = peer.create_room(Some("closed"), false).await;
    let closed = "#closed:localhost";
    peer.send_state(
        &closed_id,
        "m.room.join_rules",
        "",
        serde_json::json!({"join_rule": "invite"}),
    )
    .await;
    let (rooms, room_set) = RoomSet::watched([RoomId::new(first.clone())]);
    let mut run = spawn_adapter_in(adapter.clone(), NetworkId::new("mx"), room_set);
    wait_connected(&mut run.health, WAIT).await;
    let joined = next_room_report(&mut run.rooms, &first, WAIT).await;
    assert_eq!(joined, RoomReport::Joined);

    peer.send_text(&second_id, "second, before it is routed")
        .await;
    peer.send_text(&first_id, "first 1").await;
    let event = next_from_others(&mut run.inbound, "first 1").await;
    assert_eq!(
        event.content.to_plain(),
        "first 1",
        "second is not relayed yet"
    );

    // The room the bot is not invited to is refused; the other one is joined.
    rooms.set([first.as_str(), second, closed].map(RoomId::new));
    let mut reports = std::collections::BTreeMap::new();
    while reports.len() < 2 {
        let (room, report) = tokio::time::timeout(WAIT, run.rooms.recv())
            .await
            .expect("reports for the rooms added")
            .expect("running");
        reports.insert(room.as_str().to_owned(), report);
    }
    assert_eq!(reports[second], RoomReport::Joined);
    match &reports[closed] {
        RoomReport::JoinFailed { error } => assert!(error.contains("M_FORBIDDEN"), "{error}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    until_sendable(&*adapter, second, true, WAIT).await;
    assert!(
        peer.joined_members(&second_id)
            .await
            .iter()
            .any(|member| member == "@switchboard:localhost"),
        "the bridge joined the room added"
    );
    peer.send_text(&second_id, "second 1").await;
    let event = next_from_others(&mut run.inbound, "second 1").await;
    assert_eq!(
        (event.room.room.as_str(), event.content.to_plain().as_str()),
        (second, "second 1")
    );

    rooms.set([RoomId::new(second)]);
    // Both dropped rooms are left, the refused one too (in room order).
    for room in [closed, first.as_str()] {
        let (reported, report) = tokio::time::timeout(WAIT, run.rooms.recv())
            .await
            .expect("a report")
            .expect("running");
        assert_eq!((reported.as_str(), report), (room, RoomReport::Left));
    }
    until_sendable(&*adapter, &first, false, WAIT).await;
    peer.send_text(&first_id, "first, after it left the routes")
        .await;
    peer.send_text(&second_id, "second 2").await;
    let event = next_from_others(&mut run.inbound, "second 2").await;
    assert_eq!(
        event.content.to_plain(),
        "second 2",
        "the room removed is not relayed any more"
    );
    run.cancel.cancel();
    run.task.await.unwrap().unwrap();

    // Refused at the start: reported, and the run ends for the supervisor to retry.
    let fresh = MatrixAdapter::new(config(&synapse));
    let mut refused = spawn_adapter(fresh, NetworkId::new("mx"), vec![RoomId::new(closed)]);
    match next_room_report(&mut refused.rooms, closed, WAIT).await {
        RoomReport::JoinFailed { error } => assert!(error.contains("M_FORBIDDEN"), "{error}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let ended = tokio::time::timeout(WAIT, refused.task).await;
    assert!(ended.expect("the run ends").unwrap().is_err());
}
