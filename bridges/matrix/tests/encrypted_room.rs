//! The `e2e` build in an end-to-end encrypted room on a real Synapse: a message a user
//! sends encrypted arrives at the core decrypted, and what the bridge sends there is
//! encrypted and readable by the user's own (matrix-sdk) client.
#![cfg(feature = "e2e")]

use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use std::time::Duration;
use switchboard_matrix::{MatrixAdapter, MatrixConfig};
use switchboard_sdk::testing::{message_from_alice, spawn_adapter, wait_connected};
use switchboard_sdk::{Adapter, NetworkId, RoomId};
use switchboard_testkit::synapse::{MatrixPeer, Synapse, SynapseOptions};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_room_is_joined_and_relayed_both_ways() {
    let synapse = Synapse::start(SynapseOptions::default());
    synapse.register("switchboard", "bot-password");
    synapse.register("bob", "bob-password");
    let mut setup = MatrixPeer::login(&synapse.url(), "bob", "bob-password").await;
    let room_id = setup.create_room(Some("secret"), true).await;

    let adapter = MatrixAdapter::new(MatrixConfig {
        homeserver: synapse.url(),
        user_id: "@switchboard:localhost".into(),
        password: Some("bot-password".into()),
        access_token: None,
        device_name: "Switchboard e2e test".into(),
        catch_up_max_age_secs: 3600,
        accept_invalid_certs: false,
        appservice: None,
    });
    let mut run = spawn_adapter(
        adapter.clone(),
        NetworkId::new("mx"),
        vec![RoomId::new("#secret:localhost")],
    );
    wait_connected(&mut run.health, WAIT).await;

    // Bob's own encrypting client (a second device of his).
    let bob = matrix_sdk::Client::builder()
        .homeserver_url(synapse.url())
        .build()
        .await
        .unwrap();
    bob.matrix_auth()
        .login_username("bob", "bob-password")
        .send()
        .await
        .unwrap();
    let room_ref = <&matrix_sdk::ruma::RoomId>::try_from(room_id.as_str()).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    // Wait until bob's client knows the room and the bot is a member of it.
    let room = loop {
        bob.sync_once(SyncSettings::default().timeout(Duration::from_millis(500)))
            .await
            .unwrap();
        if let Some(room) = bob.get_room(room_ref)
            && room
                .get_member_no_sync(
                    <&matrix_sdk::ruma::UserId>::try_from("@switchboard:localhost").unwrap(),
                )
                .await
                .ok()
                .flatten()
                .is_some()
        {
            break room;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never saw the bot in the room"
        );
    };
    assert!(room.latest_encryption_state().await.unwrap().is_encrypted());

    room.send(RoomMessageEventContent::text_plain("secret hello"))
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, async {
        loop {
            let event = run.inbound.recv().await.expect("inbound open");
            if event.content.to_plain().contains("secret hello") {
                return event;
            }
        }
    })
    .await
    .expect("the encrypted message never reached the core decrypted");
    assert_eq!(event.sender.id, "@bob:localhost");

    let reply = message_from_alice("#secret:localhost", "reply from the bridge");

    adapter
        .send(&reply)
        .await
        .expect("send into the encrypted room");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = bob
            .sync_once(SyncSettings::default().timeout(Duration::from_millis(500)))
            .await
            .unwrap();
        let seen = response
            .rooms
            .joined
            .get(room_ref)
            .into_iter()
            .flat_map(|update| update.timeline.events.iter())
            .any(|event| {
                let json = event.raw().json().get();
                json.contains("reply from the bridge") && json.contains("\"m.room.message\"")
            });
        if seen {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never read the bridge's encrypted message"
        );
    }
    run.cancel.cancel();
}
