//! Round trips through a real Synapse between two `MatrixPeer`s.

use super::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(500);

fn body(event: &Value) -> &str {
    event["content"]["body"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_edits_redactions_files_and_topics_round_trip() {
    let started = Instant::now();
    let synapse = Synapse::start(SynapseOptions::default());
    eprintln!("synapse: started in {:?}", started.elapsed());
    let registered = Instant::now();
    assert_eq!(synapse.register("alice", "alice-pw"), "@alice:localhost");
    assert_eq!(synapse.register("bob", "bob-pw"), "@bob:localhost");
    eprintln!(
        "synapse: two users registered in {:?}",
        registered.elapsed()
    );
    let mut alice = MatrixPeer::login(&synapse.url(), "alice", "alice-pw").await;
    let mut bob = MatrixPeer::login(&synapse.url(), "bob", "bob-pw").await;
    assert_eq!(alice.user_id(), "@alice:localhost");

    let room = alice.create_room(Some("general"), false).await;
    assert!(room.starts_with('!'), "room id {room}");
    assert_eq!(bob.join("#general:localhost").await, room);
    assert_eq!(
        alice.joined_members(&room).await,
        ["@alice:localhost", "@bob:localhost"]
    );
    let join = alice.drain(&room, QUIET).await;
    assert!(
        join.iter().any(|event| event["type"] == "m.room.member"
            && event["state_key"] == "@bob:localhost"
            && event["content"]["membership"] == "join"),
        "alice saw no join of bob: {join:#?}"
    );
    assert_eq!(
        alice.state(&room, "m.room.join_rules", "").await.unwrap()["content"]["join_rule"],
        "public"
    );

    let text = alice.send_text(&room, "hello bob").await;
    let got = bob
        .expect_message(&room, WAIT, |e| body(e) == "hello bob")
        .await;
    assert_eq!(got["event_id"], text.as_str());
    assert_eq!(got["sender"], "@alice:localhost");
    assert_eq!(got["content"]["msgtype"], "m.text");
    assert!(got["unsigned"].is_object(), "no unsigned in {got}");

    alice
        .send_html(&room, "bold move", "<b>bold</b> move")
        .await;
    let got = bob.expect_message(&room, WAIT, |_| true).await;
    assert_eq!(got["content"]["format"], "org.matrix.custom.html");
    assert_eq!(got["content"]["formatted_body"], "<b>bold</b> move");

    alice.send_emote(&room, "waves").await;
    alice.send_notice(&room, "a notice").await;
    let got = bob.collect_messages(&room, 2, WAIT).await;
    assert_eq!(got[0]["content"]["msgtype"], "m.emote");
    assert_eq!(body(&got[0]), "waves");
    assert_eq!(got[1]["content"]["msgtype"], "m.notice");

    let reply = bob.send_reply(&room, &text, "hi alice").await;
    let got = alice.expect_message(&room, WAIT, |_| true).await;
    assert_eq!(got["event_id"], reply.as_str());
    assert_eq!(
        got["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        text.as_str()
    );
    assert_eq!(body(&got), "> <@alice:localhost> hello bob\n\nhi alice");
    let html = got["content"]["formatted_body"].as_str().unwrap();
    assert!(
        html.starts_with("<mx-reply><blockquote>") && html.ends_with("</mx-reply>hi alice"),
        "{html}"
    );

    // A reply to a reply quotes only the reply's own text.
    alice.send_reply(&room, &reply, "and again").await;
    let got = bob.expect_message(&room, WAIT, |_| true).await;
    assert_eq!(body(&got), "> <@bob:localhost> hi alice\n\nand again");
    assert_eq!(
        got["content"]["formatted_body"]
            .as_str()
            .unwrap()
            .matches("<mx-reply>")
            .count(),
        1
    );

    let edit = alice.send_edit(&room, &text, "hello there bob").await;
    let got = bob.expect_message(&room, WAIT, |_| true).await;
    assert_eq!(got["event_id"], edit.as_str());
    assert_eq!(body(&got), "* hello there bob");
    assert_eq!(got["content"]["m.new_content"]["body"], "hello there bob");
    assert_eq!(got["content"]["m.relates_to"]["rel_type"], "m.replace");
    let original = bob.event(&room, &text).await;
    assert_eq!(
        original["unsigned"]["m.relations"]["m.replace"]["event_id"],
        edit.as_str(),
        "the edit is not bundled with the original: {original:#}"
    );

    let redaction = alice.redact(&room, &text).await;
    let seen = bob.drain(&room, QUIET).await;
    assert!(
        seen.iter()
            .any(|event| event["event_id"] == redaction.as_str()
                && event["type"] == "m.room.redaction"
                && (event["redacts"] == text.as_str()
                    || event["content"]["redacts"] == text.as_str())),
        "bob saw no redaction of {text}: {seen:#?}"
    );
    let redacted = bob.event(&room, &text).await;
    assert_eq!(redacted["content"], serde_json::json!({}), "{redacted:#}");
    assert!(redacted["unsigned"]["redacted_because"].is_object());

    let bytes = b"file contents\n".repeat(100);
    alice
        .upload_and_send_file(&room, "notes.txt", "text/plain", &bytes)
        .await;
    let got = bob.expect_message(&room, WAIT, |_| true).await;
    assert_eq!(got["content"]["msgtype"], "m.file");
    assert_eq!(body(&got), "notes.txt");
    assert_eq!(got["content"]["info"]["size"], bytes.len());
    let url = got["content"]["url"].as_str().unwrap();
    assert!(url.starts_with("mxc://localhost/"), "{url}");
    assert_eq!(bob.download(url).await, bytes);
    alice
        .upload_and_send_file(
            &room,
            "dot.png",
            "image/png",
            b"\x89PNG\r\n\x1a\nnot really",
        )
        .await;
    let got = bob.expect_message(&room, WAIT, |_| true).await;
    assert_eq!(got["content"]["msgtype"], "m.image");

    alice.set_topic(&room, "bridged things").await;
    let seen = bob.drain(&room, QUIET).await;
    assert!(
        seen.iter().any(|event| event["type"] == "m.room.topic"
            && event["content"]["topic"] == "bridged things"),
        "bob saw no topic change: {seen:#?}"
    );
    assert_eq!(
        bob.state(&room, "m.room.topic", "").await.unwrap()["content"]["topic"],
        "bridged things"
    );
    assert_eq!(bob.state(&room, "m.room.name", "").await, None);

    // A peer never gets its own events back, and nothing else is pending.
    assert_eq!(alice.drain(&room, QUIET).await, Vec::<Value>::new());
    assert_eq!(bob.drain(&room, QUIET).await, Vec::<Value>::new());

    // Invite into an encrypted room; the invitee's view starts at its join.
    let secret = alice.create_room(None, true).await;
    alice.send_text(&secret, "before bob").await;
    alice.invite(&secret, "@bob:localhost").await;
    assert_eq!(bob.join(&secret).await, secret);
    assert_eq!(
        bob.state(&secret, "m.room.encryption", "").await.unwrap()["content"]["algorithm"],
        "m.megolm.v1.aes-sha2"
    );
    alice.send_text(&secret, "after bob").await;
    let got = bob.collect_messages(&secret, 1, WAIT).await;
    assert_eq!(
        body(&got[0]),
        "after bob",
        "history from before the join leaked"
    );
    eprintln!("synapse: round trip test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_users_rooms_and_tokens() {
    let mut synapse = Synapse::start(SynapseOptions::default());
    synapse.register("carol", "carol-pw");
    synapse.register("dave", "dave-pw");
    let mut carol = MatrixPeer::login(&synapse.url(), "carol", "carol-pw").await;
    let mut dave = MatrixPeer::login(&synapse.url(), "dave", "dave-pw").await;
    let room = carol.create_room(Some("kept"), false).await;
    dave.join(&room).await;
    let before = carol.send_text(&room, "before restart").await;
    dave.expect_message(&room, WAIT, |e| body(e) == "before restart")
        .await;

    let url = synapse.url();
    let started = Instant::now();
    synapse.restart();
    eprintln!("synapse: restarted in {:?}", started.elapsed());
    assert_eq!(synapse.url(), url);

    // Old sessions still work, new logins too, and the history is there.
    assert_eq!(body(&dave.event(&room, &before).await), "before restart");
    carol.send_text(&room, "after restart").await;
    dave.expect_message(&room, WAIT, |e| body(e) == "after restart")
        .await;
    let mut again = MatrixPeer::login(&synapse.url(), "dave", "dave-pw").await;
    assert_eq!(again.join("#kept:localhost").await, room);
    assert!(
        synapse.log().contains("STARTING SERVER"),
        "{}",
        synapse.log()
    );

    synapse.stop();
    synapse.restart();
    carol.send_text(&room, "after stop").await;
    again
        .expect_message(&room, WAIT, |e| body(e) == "after stop")
        .await;
}

#[test]
fn two_servers_at_once_are_independent() {
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| Synapse::start(SynapseOptions::default()));
        let second = scope.spawn(|| Synapse::start(SynapseOptions::default()));
        (first.join().unwrap(), second.join().unwrap())
    });
    assert_ne!(first.url(), second.url());
    assert_eq!(first.register("erin", "one"), "@erin:localhost");
    assert_eq!(second.register("erin", "two"), "@erin:localhost");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut on_first = MatrixPeer::login(&first.url(), "erin", "one").await;
            let on_second = MatrixPeer::login(&second.url(), "erin", "two").await;
            let room = on_first.create_room(Some("only-here"), false).await;
            assert_eq!(on_first.joined_members(&room).await, ["@erin:localhost"]);
            assert_ne!(on_first.access_token(), on_second.access_token());
        });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appservice_registration_is_loaded_and_gaps_are_backfilled() {
    let registration = "id: switchboard\n\
        url: \"http://127.0.0.1:9\"\n\
        as_token: \"as-token-test\"\n\
        hs_token: \"hs-token-test\"\n\
        sender_localpart: \"bridgebot\"\n\
        rate_limited: false\n\
        namespaces:\n  users:\n    - exclusive: true\n      regex: \"@irc_.*:localhost\"\n\
        \x20 aliases:\n    - exclusive: true\n      regex: \"#irc_.*:localhost\"\n  rooms: []\n";
    let synapse = Synapse::start(SynapseOptions {
        appservice_yaml: Some(registration.into()),
        database_on_shm: true,
        ..SynapseOptions::default()
    });
    assert!(synapse.dir().starts_with("/dev/shm"));
    let whoami: Value = reqwest::Client::new()
        .get(format!(
            "{}/_matrix/client/v3/account/whoami",
            synapse.url()
        ))
        .bearer_auth("as-token-test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["user_id"], "@bridgebot:localhost", "{whoami}");

    // More messages arrive between two syncs than one sync's timeline holds.
    synapse.register("frank", "frank-pw");
    synapse.register("grace", "grace-pw");
    let mut frank = MatrixPeer::login(&synapse.url(), "frank", "frank-pw").await;
    let mut grace = MatrixPeer::login(&synapse.url(), "grace", "grace-pw").await;
    grace.set_timeline_limit(3);
    let room = frank.create_room(None, false).await;
    grace.join(&room).await;
    // First while grace's sync has not seen her join yet, then in a room it knows.
    for round in ["joining", "joined"] {
        for n in 0..12 {
            frank.send_text(&room, &format!("{round} {n}")).await;
        }
        let got = grace.collect_messages(&room, 12, WAIT).await;
        let bodies: Vec<&str> = got.iter().map(body).collect();
        let expected: Vec<String> = (0..12).map(|n| format!("{round} {n}")).collect();
        assert_eq!(bodies, expected);
    }
    assert_eq!(grace.drain(&room, QUIET).await, Vec::<Value>::new());
}

#[test]
#[should_panic(expected = "Synapse exited")]
fn a_broken_config_fails_fast_with_the_log() {
    Synapse::start(SynapseOptions {
        extra_yaml: "listeners: not-a-list\n".into(),
        ..SynapseOptions::default()
    });
}
