//! The Mattermost adapter against the fake server: reactions both ways (added,
//! taken back, custom emoji, the bridge's own echoes), a room set that changes
//! while the adapter runs (a channel starts and stops being relayed on the same
//! connection), and each channel reported joined, refused or left, again on every run.

use std::time::Duration;
use switchboard_mattermost::MattermostAdapter;
use switchboard_sdk::testing::{
    message_from_alice, next_inbound, next_room_report, planned, spawn_adapter, spawn_adapter_in,
    until_sendable, wait_connected,
};
use switchboard_sdk::{
    Adapter, EventKind, Inbound, NativeMsgId, NetworkId, Outbound, OutboundKind, RoomId,
    RoomReport, RoomSet, SendError,
};
use tokio::sync::mpsc::UnboundedReceiver;

mod common;

use common::{Bridge, config, next_event, server};

const WAIT: Duration = Duration::from_secs(20);

/// The next message from someone other than the bridge (its probes echo back).
async fn next_from_others(inbound: &mut UnboundedReceiver<Inbound>, what: &str) -> Inbound {
    next_inbound(inbound, what, WAIT, |event| {
        !event.kind.is_membership() && !event.sender.is_self
    })
    .await
}

/// What the core sends for a reaction with `key` to the post `target`.
fn reaction(adapter: &dyn Adapter, target: &str, key: &str, delivery_id: i64) -> Outbound {
    let mut outbound = planned(adapter, message_from_alice("town-square", "unused"));
    outbound.delivery_id = delivery_id;
    outbound.parts.clear();
    outbound.kind = OutboundKind::Reaction {
        target: NativeMsgId::new(target),
        key: key.to_owned(),
    };
    outbound
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_are_relayed_both_ways_and_taken_back() {
    let server = server().await;
    let adapter = MattermostAdapter::new(config(&server.mm.url(), &server.bot_token)).unwrap();
    assert!(adapter.capabilities().reactions);
    let mut run = spawn_adapter(
        adapter.clone(),
        NetworkId::new("mm"),
        vec![RoomId::new("town-square")],
    );
    wait_connected(&mut run.health, WAIT).await;
    let inbound = &mut run.inbound;
    let (mm, bob) = (&server.mm, server.bob.as_str());

    let post = mm.post_as(bob, &server.town, "react to me", None);
    next_event(inbound, "the post").await;

    // In: a named emoji becomes the emoji itself; taking it back deletes it.
    mm.react_as(bob, &post.id, "thumbsup");
    let added = next_event(inbound, "bob's reaction").await;
    assert_eq!(
        added.kind,
        EventKind::Reaction {
            target: NativeMsgId::new(post.id.clone()),
            key: "👍".into()
        }
    );
    assert!(!added.sender.is_self);
    assert_eq!(added.sender.display_name, "bob");
    let reaction_id = added.native_id.clone().expect("a native id");
    mm.unreact_as(bob, &post.id, "thumbsup");
    let removed = next_event(inbound, "bob taking his reaction back").await;
    assert_eq!(
        removed.kind,
        EventKind::Delete {
            target: reaction_id.clone()
        }
    );
    assert_ne!(removed.native_id, Some(reaction_id.clone()));
    // Reacting the same way again names the same reaction: the core releases the
    // id when it is taken back (see `store::releases_origin_id`).
    mm.react_as(bob, &post.id, "thumbsup");
    let again = next_event(inbound, "bob reacting again").await;
    assert_eq!(again.native_id, Some(reaction_id));
    // A server's own emoji travels by name.
    mm.react_as(bob, &post.id, "party_parrot");
    let custom = next_event(inbound, "a custom emoji").await;
    assert!(
        matches!(&custom.kind, EventKind::Reaction { key, .. } if key == ":party_parrot:"),
        "{custom:?}"
    );

    // Out: the bridge's user reacts under the emoji's name, and its echo is its own.
    let receipt = adapter
        .send(&reaction(&*adapter, &post.id, "🎉", 7))
        .await
        .expect("the reaction is made");
    let copy = receipt.native_ids.first().cloned().expect("one copy id");
    let on_server = mm
        .wait_for_reactions(&post.id, WAIT, |now| {
            now.iter()
                .any(|(user, emoji)| *user == server.bot && emoji == "tada")
        })
        .await;
    assert_eq!(on_server.len(), 3, "{on_server:?}");
    let echo = next_event(inbound, "the echo of the bridge's reaction").await;
    assert!(echo.sender.is_self, "{echo:?}");

    // Taking the copy back removes the bridge's reaction only.
    let mut delete = reaction(&*adapter, &post.id, "🎉", 8);
    delete.kind = OutboundKind::Delete {
        targets: vec![copy],
    };
    adapter
        .send(&delete)
        .await
        .expect("the reaction is removed");
    mm.wait_for_reactions(&post.id, WAIT, |now| {
        now.len() == 2 && now.iter().all(|(user, _)| user == bob)
    })
    .await;
    let echo = next_event(inbound, "the echo of the removal").await;
    assert!(echo.sender.is_self && matches!(echo.kind, EventKind::Delete { .. }));

    // A key that names no emoji cannot be made; retrying would not help.
    let refused = adapter
        .send(&reaction(&*adapter, &post.id, "not an emoji", 9))
        .await
        .unwrap_err();
    assert!(matches!(refused, SendError::Permanent(_)), "{refused:?}");
    run.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_start_and_stop_being_relayed_without_reconnecting() {
    let server = server().await;
    let mm = &server.mm;
    let dev = mm.add_channel(&server.team, "dev");
    let adapter = MattermostAdapter::new(config(&mm.url(), &server.bot_token)).unwrap();
    let (rooms, room_set) = RoomSet::watched([RoomId::new("town-square")]);
    let mut run = spawn_adapter_in(adapter.clone(), NetworkId::new("mm"), room_set);
    wait_connected(&mut run.health, WAIT).await;
    let sessions = mm.websocket_connections();
    let joined = next_room_report(&mut run.rooms, "town-square", WAIT).await;
    assert_eq!(joined, RoomReport::Joined);

    mm.post_as(&server.bob, &dev, "dev before it is routed", None);
    mm.post_as(&server.bob, &server.town, "town 1", None);
    let first = next_from_others(&mut run.inbound, "town 1").await;
    assert_eq!(first.content.to_plain(), "town 1", "dev is not relayed yet");

    rooms.set([RoomId::new("town-square"), RoomId::new("dev")]);
    let joined = next_room_report(&mut run.rooms, "dev", WAIT).await;
    assert_eq!(joined, RoomReport::Joined);
    until_sendable(&*adapter, "dev", true, WAIT).await;
    mm.post_as(&server.bob, &dev, "dev 1", None);
    let event = next_from_others(&mut run.inbound, "dev 1").await;
    assert_eq!(
        (event.room.room.as_str(), event.content.to_plain().as_str()),
        ("dev", "dev 1")
    );

    // A channel the team does not have is refused; the others are not disturbed.
    let routed = ["town-square", "dev", "nowhere"];
    rooms.set(routed.into_iter().map(RoomId::new));
    match next_room_report(&mut run.rooms, "nowhere", WAIT).await {
        RoomReport::JoinFailed { error } => assert!(
            error.starts_with("channel nowhere not found in team core"),
            "{error}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }

    rooms.set([RoomId::new("dev")]);
    // Left in room order, the refused channel too.
    for room in ["nowhere", "town-square"] {
        let (reported, report) = tokio::time::timeout(WAIT, run.rooms.recv())
            .await
            .expect("a report")
            .expect("running");
        assert_eq!((reported.as_str(), report), (room, RoomReport::Left));
    }
    until_sendable(&*adapter, "town-square", false, WAIT).await;
    mm.post_as(
        &server.bob,
        &server.town,
        "town after it left the routes",
        None,
    );
    mm.post_as(&server.bob, &dev, "dev 2", None);
    let event = next_from_others(&mut run.inbound, "dev 2").await;
    assert_eq!(
        event.content.to_plain(),
        "dev 2",
        "town-square is not relayed any more"
    );
    assert_eq!(
        mm.websocket_connections(),
        sessions,
        "the adapter did not reconnect"
    );
    run.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_reports_its_channels_joined_again() {
    let s = server().await;
    let dev = s.mm.add_channel(&s.team, "dev");
    let mut bridge = Bridge::new(config(&s.mm.url(), &s.bot_token), &["dev", "town-square"]);
    for run in ["first run", "run after the websocket dropped"] {
        bridge.start().await;
        for room in ["dev", "town-square"] {
            let (reported, report) = tokio::time::timeout(WAIT, bridge.rooms.recv())
                .await
                .unwrap_or_else(|_| panic!("{run}: no report about {room}"))
                .expect("the bridge holds the reporter");
            assert_eq!(
                (reported.as_str(), report),
                (room, RoomReport::Joined),
                "{run}"
            );
        }
        if bridge.rooms.try_recv().is_ok() {
            panic!("{run}: one report per room");
        }
        s.mm.drop_websockets();
        assert!(bridge.ended().await.is_err());
    }
    // Joined means a member: the fake server takes posts from members only.
    let adapter = bridge.adapter.clone();
    bridge.start().await;
    adapter
        .send(&planned(&*adapter, message_from_alice("dev", "in dev")))
        .await
        .expect("the bot posts in dev");
    let posts = s.mm.posts(&dev);
    assert!(
        posts.iter().any(|post| post.message.contains("in dev")),
        "{posts:?}"
    );
    bridge.stop().await;
}
