//! IRC (real ngircd) <-> Matrix (real Synapse, relay-bot mode) through the real daemon
//! binary: both ways with names, formatting, `/me` and a reply; `@room` defused; edits
//! and redactions from Matrix (correction line on IRC, real edit/redaction of the copy
//! in another Matrix room), also after a restart; messages sent while the daemon was
//! down relayed once each, in order; a retried send never duplicates (transaction id).

mod common;

use common::WAIT;
use common::bridge::BridgeProcess;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_testkit::synapse::{MatrixPeer, Synapse};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const ZWJ: &str = "\u{200D}";
const ZWSP: &str = "\u{200B}";
const PASSWORD: &str = "bridge-password";

struct World {
    synapse: Synapse,
    irc: Ngircd,
    bob: MatrixPeer,
    /// `#bridge:localhost` and `#other:localhost`, created by bob.
    room: String,
    other: String,
}

async fn world() -> World {
    let (synapse, mut bob, room) = common::synapse_with_bob(PASSWORD).await;
    let other = bob.create_room(Some("other"), false).await;
    let irc = Ngircd::start(NgircdOptions::default());
    World {
        synapse,
        irc,
        bob,
        room,
        other,
    }
}

impl World {
    fn config(&self, http: SocketAddr, state: &std::path::Path, routes: &str) -> String {
        format!(
            "state_dir: {state}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 500ms\n  shutdown_deadline: 5s\n\
             networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n\
             \x20 mx:\n    matrix:\n      homeserver: {url}\n      user_id: \"@switchboard:localhost\"\n      password: {PASSWORD}\n\
             routes:\n{routes}",
            state = state.display(),
            port = self.irc.port(),
            url = self.synapse.url(),
        )
    }

    fn bridge(&self, routes: &str) -> BridgeProcess {
        BridgeProcess::start(|http, state| self.config(http, state, routes))
    }

    /// Waits until the bot has joined `room` (it joins when it starts).
    async fn bot_joined(&self, room: &str) {
        common::bridge_bot_joined(&self.bob, room).await;
    }
}

fn body(event: &Value) -> &str {
    event["content"]["body"].as_str().unwrap_or_default()
}

const IRC_MATRIX: &str =
    "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mx: \"#bridge:localhost\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ways_with_names_formatting_emotes_replies_and_no_room_pings() {
    let mut w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge(IRC_MATRIX);
    bridge.wait_healthy().await;
    w.bot_joined(&w.room).await;
    let room = w.room.clone();

    alice.say("#a", "hello from irc").await;
    let got = w
        .bob
        .expect_message(&room, WAIT, |e| body(e).contains("hello from irc"))
        .await;
    assert_eq!(body(&got), format!("<a{ZWJ}lice> hello from irc"));
    assert_eq!(got["sender"], "@switchboard:localhost");
    assert_eq!(got["content"]["msgtype"], "m.text");
    let hello_id = got["event_id"].as_str().unwrap().to_owned();

    alice
        .say(
            "#a",
            "\x02bold\x02 and \x1Ditalic\x1D and \x11code\x11 https://example.org/x",
        )
        .await;
    let got = w
        .bob
        .expect_message(&room, WAIT, |e| body(e).contains("bold"))
        .await;
    let html = got["content"]["formatted_body"]
        .as_str()
        .unwrap_or_default();
    assert!(
        html.contains("<strong>bold</strong>")
            && html.contains("<em>italic</em>")
            && html.contains("<code>code</code>"),
        "{got}"
    );
    assert!(html.contains("href=\"https://example.org/x\""), "{got}");

    alice.action("#a", "waves").await;
    let got = w
        .bob
        .expect_message(&room, WAIT, |e| body(e).contains("waves"))
        .await;
    assert_eq!(got["content"]["msgtype"], "m.emote");

    alice.say("#a", "@room look").await;
    let got = w
        .bob
        .expect_message(&room, WAIT, |e| body(e).contains("look"))
        .await;
    assert!(body(&got).contains(&format!("@{ZWSP}room")), "{got}");
    assert_eq!(got["content"]["m.mentions"], serde_json::json!({}));

    // Matrix -> IRC: display name, formatting, emote, a reply with context.
    w.bob
        .send_html(&room, "hi there", "hi <strong>there</strong>")
        .await;
    let got = alice.expect("#a", "there", WAIT).await;
    assert_eq!(got.text, format!("<b{ZWJ}ob> hi \x02there\x02"));

    w.bob.send_emote(&room, "nods").await;
    let got = alice.expect("#a", "nods", WAIT).await;
    assert_eq!(
        got.action(),
        Some(format!("<b{ZWJ}ob> nods").as_str()),
        "{got:?}"
    );

    w.bob.send_reply(&room, &hello_id, "welcome").await;
    let got = alice.expect("#a", "welcome", WAIT).await;
    assert!(
        got.text.contains("(re a")
            && got.text.contains("hello from irc")
            && got.text.ends_with("welcome"),
        "{got:?}"
    );
    assert!(
        !got.text.contains("> <@"),
        "the reply fallback leaked: {got:?}"
    );

    // Nothing the bridge sent came back.
    let echoes = alice.drain("#a", Duration::from_millis(300)).await;
    assert!(
        echoes.iter().all(|m| !m.text.contains("hello from irc")),
        "{echoes:?}"
    );
}

const THREE_WAY: &str = "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mx: \"#bridge:localhost\"\n      - mx: \"#other:localhost\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_redactions_follow_also_after_a_restart() {
    let mut w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let mut bridge = w.bridge(THREE_WAY);
    bridge.wait_healthy().await;
    w.bot_joined(&w.room).await;
    w.bot_joined(&w.other).await;
    let (room, other) = (w.room.clone(), w.other.clone());

    let original = w.bob.send_text(&room, "first version").await;
    alice.expect("#a", "first version", WAIT).await;
    let copy = w
        .bob
        .expect_message(&other, WAIT, |e| body(e).contains("first version"))
        .await;
    let copy_id = copy["event_id"].as_str().unwrap().to_owned();

    w.bob.send_edit(&room, &original, "second version").await;
    let got = alice.expect("#a", "second version", WAIT).await;
    assert!(got.text.contains("(correction)"), "{got:?}");
    let edit = w
        .bob
        .expect_message(&other, WAIT, |e| body(e).contains("second version"))
        .await;
    assert_eq!(edit["content"]["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(
        edit["content"]["m.relates_to"]["event_id"],
        copy_id.as_str()
    );

    assert!(bridge.terminate().success());
    bridge.spawn();
    bridge.wait_healthy().await;

    w.bob.send_edit(&room, &original, "third version").await;
    alice.expect("#a", "third version", WAIT).await;
    let edit = w
        .bob
        .expect_message(&other, WAIT, |e| body(e).contains("third version"))
        .await;
    assert_eq!(
        edit["content"]["m.relates_to"]["event_id"],
        copy_id.as_str()
    );

    w.bob.redact(&room, &original).await;
    common::eventually("the copy is redacted", || {
        let (bob, other, copy_id) = (&w.bob, &other, &copy_id);
        async move {
            let event = bob.event(other, copy_id).await;
            event["unsigned"]["redacted_because"].is_object()
                || event["content"].as_object().is_some_and(|c| c.is_empty())
        }
    })
    .await;
    let after = alice.drain("#a", Duration::from_millis(300)).await;
    assert!(
        after.is_empty(),
        "IRC has no deletes, nothing is said: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_the_daemon_was_down_arrive_once_in_order() {
    let mut w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let mut bridge = w.bridge(IRC_MATRIX);
    bridge.wait_healthy().await;
    w.bot_joined(&w.room).await;
    let room = w.room.clone();
    w.bob.send_text(&room, "before").await;
    alice.expect("#a", "before", WAIT).await;

    assert!(bridge.terminate().success());
    for i in 0..5 {
        w.bob.send_text(&room, &format!("while down {i}")).await;
    }
    bridge.spawn();
    bridge.wait_healthy().await;
    let got = alice.collect("#a", 5, WAIT).await;
    let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
    let expected: Vec<String> = (0..5)
        .map(|i| format!("<b{ZWJ}ob> while down {i}"))
        .collect();
    assert_eq!(texts, expected);
    let more = alice.drain("#a", Duration::from_millis(500)).await;
    assert!(more.is_empty(), "relayed twice: {more:?}");
}
