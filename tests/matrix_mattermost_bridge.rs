//! Matrix (real Synapse, relay-bot mode) with IRC (real ngircd) and Mattermost (the
//! faithful fake) through the real daemon binary: a Matrix edit becomes a correction
//! line on IRC and a real edit of the Mattermost post, a redaction deletes the post and
//! says nothing on IRC, also for a message relayed before a daemon restart; and a crash
//! between Synapse accepting a send and the daemon recording it does not duplicate the
//! message in Matrix (the retry reuses the transaction id). Reactions travel between
//! Matrix and Mattermost, and are counted as skipped on IRC.

mod common;

use common::bridge::BridgeProcess;
use common::{WAIT, enc, get_json};
use serde_json::{Value, json};
use std::net::SocketAddr;
use switchboard_testkit::http_proxy::HttpProxy;
use switchboard_testkit::mattermost::{FakeMattermost, Post};
use switchboard_testkit::synapse::{MatrixPeer, Synapse};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const ZWJ: &str = "\u{200D}";
const PASSWORD: &str = "bridge-password";
const BOT: &str = "@switchboard:localhost";
/// What a Matrix message send's path contains (`.../send/m.room.message/{txnId}`).
const SEND_PATH: &str = "/send/m.room.message/";

/// Synapse with bob and his room `#bridge:localhost`, ngircd, and a fake Mattermost
/// team with `town-square`, a bot and name overrides allowed.
struct World {
    synapse: Synapse,
    irc: Ngircd,
    bob: MatrixPeer,
    room: String,
    mm: FakeMattermost,
    town: String,
    mm_bot: String,
    mm_token: String,
}

async fn world() -> World {
    let (synapse, bob, room) = common::synapse_with_bob(PASSWORD).await;
    let irc = Ngircd::start(NgircdOptions::default());
    let mm = FakeMattermost::start().await;
    mm.set_allow_name_override(true);
    let team = mm.add_team("core");
    let town = mm.add_channel(&team, "town-square");
    let (mm_bot, mm_token) = mm.add_user("bridge", true);
    World {
        synapse,
        irc,
        bob,
        room,
        mm,
        town,
        mm_bot,
        mm_token,
    }
}

impl World {
    /// IRC `irc`, Matrix `mx` at `homeserver` and, when `mattermost`, bot-API `mm`.
    fn config(
        &self,
        http: SocketAddr,
        state: &std::path::Path,
        homeserver: &str,
        mattermost: bool,
        routes: &str,
    ) -> String {
        let mm = if mattermost {
            format!(
                "\x20 mm:\n    mattermost:\n      server: {}\n      team: core\n      token: {}\n",
                self.mm.url(),
                self.mm_token
            )
        } else {
            String::new()
        };
        format!(
            "state_dir: {state}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 500ms\n  shutdown_deadline: 5s\n\
             networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n\
             \x20 mx:\n    matrix:\n      homeserver: {homeserver}\n      user_id: \"{BOT}\"\n      password: {PASSWORD}\n\
             {mm}routes:\n{routes}",
            state = state.display(),
            port = self.irc.port(),
        )
    }

    /// Waits until the bot has joined the room (it joins when it starts).
    async fn bot_joined(&self) {
        common::bridge_bot_joined(&self.bob, &self.room).await;
    }

    /// The posts the bridge made in town-square, in order (deleted ones included).
    fn bridged(&self) -> Vec<Post> {
        self.mm
            .posts(&self.town)
            .into_iter()
            .filter(|post| post.user_id == self.mm_bot && !post.is_system())
            .collect()
    }

    /// Waits until the bridge has made `count` posts in town-square; returns them all.
    async fn wait_bridged(&self, count: usize) -> Vec<Post> {
        let what = format!("{count} bridged posts in town-square");
        self.mm
            .wait_until(&what, WAIT, |_| self.bridged().len() >= count)
            .await;
        self.bridged()
    }

    /// Waits until the post `post_id` satisfies `check`.
    async fn wait_post(&self, post_id: &str, what: &str, check: impl Fn(&Post) -> bool) {
        let what = format!("post {post_id} in town-square: {what}");
        self.mm
            .wait_until(&what, WAIT, |mm| {
                mm.post(post_id).is_some_and(|p| check(&p))
            })
            .await;
    }

    /// Every `m.room.message` in the room as Synapse stores it now (from `/messages`,
    /// asked directly, not through any proxy), oldest first.
    async fn room_messages(&self) -> Vec<Value> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000",
            enc(&self.room)
        );
        let page = get_json(self.synapse.port(), &path, self.bob.access_token()).await;
        let chunk = page["chunk"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no chunk in {page}"));
        assert!(
            chunk.iter().any(|event| event["type"] == "m.room.create"),
            "GET {path}: one page does not reach back to the room's creation: {page}"
        );
        let mut messages: Vec<Value> = chunk
            .iter()
            .filter(|event| event["type"] == "m.room.message")
            .cloned()
            .collect();
        messages.reverse();
        messages
    }
}

fn body(event: &Value) -> &str {
    event["content"]["body"].as_str().unwrap_or_default()
}

/// The next message alice sees in `#a`, whatever it is: asserting on it proves that
/// nothing else was said before it.
async fn next_in_a(alice: &mut IrcPeer) -> String {
    alice.collect("#a", 1, WAIT).await.remove(0).text
}

const THREE_WAY: &str = "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mx: \"#bridge:localhost\"\n      - mm: town-square\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_edits_and_redactions_reach_mattermost_as_real_edits_and_deletes() {
    let mut w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let homeserver = w.synapse.url();
    let mut bridge =
        BridgeProcess::start(|http, state| w.config(http, state, &homeserver, true, THREE_WAY));
    bridge.wait_healthy().await;
    w.bot_joined().await;
    let room = w.room.clone();
    let label = format!("<b{ZWJ}ob>");

    // A message: on IRC with bob's name, on Mattermost as a post named bob.
    let original = w.bob.send_text(&room, "first version").await;
    assert_eq!(
        next_in_a(&mut alice).await,
        format!("{label} first version")
    );
    let post = w.wait_bridged(1).await.remove(0);
    assert_eq!(post.message, "first version");
    assert_eq!(post.prop("override_username"), Some("bob"), "{post:?}");

    // The edit: a correction line on IRC, the same post patched on Mattermost.
    w.bob.send_edit(&room, &original, "second version").await;
    let correction = next_in_a(&mut alice).await;
    assert!(
        correction.starts_with(&label)
            && correction.contains("(correction)")
            && correction.ends_with("second version"),
        "{correction:?}"
    );
    w.wait_post(&post.id, "edited to \"second version\"", |p| {
        p.message == "second version"
    })
    .await;
    let posts = w.bridged();
    assert_eq!(posts.len(), 1, "the edit made a new post: {posts:#?}");
    assert!(posts[0].edit_at > 0, "not marked edited: {:?}", posts[0]);
    assert_eq!(posts[0].delete_at, 0);

    // The redaction: the post is deleted; IRC, which has no deletes, hears nothing, so
    // the next thing said there is the next message (delivery per room is in order).
    w.bob.redact(&room, &original).await;
    w.wait_post(&post.id, "deleted", |p| p.delete_at > 0).await;
    w.bob.send_text(&room, "after the redaction").await;
    assert_eq!(
        next_in_a(&mut alice).await,
        format!("{label} after the redaction")
    );
    let posts = w.wait_bridged(2).await;
    assert_eq!(posts[1].message, "after the redaction");

    // The same for a message relayed before a restart: the id map survives it.
    let before = w.bob.send_text(&room, "said before the restart").await;
    assert_eq!(
        next_in_a(&mut alice).await,
        format!("{label} said before the restart")
    );
    let kept = w.wait_bridged(3).await.remove(2);
    assert_eq!(kept.message, "said before the restart");
    assert!(
        bridge.terminate().success(),
        "SIGTERM exits cleanly; log:\n{}",
        bridge.log()
    );
    bridge.spawn();
    bridge.wait_healthy().await;

    w.bob
        .send_edit(&room, &before, "edited after the restart")
        .await;
    let correction = next_in_a(&mut alice).await;
    assert!(
        correction.contains("(correction)") && correction.ends_with("edited after the restart"),
        "{correction:?}"
    );
    w.wait_post(&kept.id, "edited after the restart", |p| {
        p.message == "edited after the restart"
    })
    .await;
    assert_eq!(w.bridged().len(), 3, "the edit made a new post");

    w.bob.redact(&room, &before).await;
    w.wait_post(&kept.id, "deleted", |p| p.delete_at > 0).await;
    w.bob.send_text(&room, "the end").await;
    assert_eq!(next_in_a(&mut alice).await, format!("{label} the end"));

    let posts = w.wait_bridged(4).await;
    let summary: Vec<(&str, bool)> = posts
        .iter()
        .map(|p| (p.message.as_str(), p.delete_at > 0))
        .collect();
    assert_eq!(
        summary,
        [
            ("second version", true),
            ("after the redaction", false),
            ("edited after the restart", true),
            ("the end", false),
        ],
        "{posts:#?}"
    );
    assert!(
        bridge
            .metric("switchboard_events_dead_lettered_total")
            .await
            .is_none(),
        "something was dead-lettered; log:\n{}",
        bridge.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_travel_between_matrix_and_mattermost_and_irc_counts_them_skipped() {
    let mut w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let (carol, _) = w.mm.add_user("carol", false);
    let homeserver = w.synapse.url();
    let bridge =
        BridgeProcess::start(|http, state| w.config(http, state, &homeserver, true, THREE_WAY));
    bridge.wait_healthy().await;
    w.bot_joined().await;
    let room = w.room.clone();
    let label = format!("<b{ZWJ}ob>");
    let original = w.bob.send_text(&room, "react to this").await;
    assert_eq!(
        next_in_a(&mut alice).await,
        format!("{label} react to this")
    );
    let post = w.wait_bridged(1).await.remove(0);

    // Matrix -> Mattermost: bob's 👍 becomes the bridge user's reaction by name.
    let relates = json!({"rel_type": "m.annotation", "event_id": original, "key": "👍"});
    let thumbs = w
        .bob
        .send_event(&room, "m.reaction", json!({ "m.relates_to": relates }))
        .await;
    let bot = w.mm_bot.clone();
    w.mm.wait_for_reactions(&post.id, WAIT, |now| {
        now.iter()
            .any(|(user, emoji)| *user == bot && (emoji == "+1" || emoji == "thumbsup"))
    })
    .await;

    // Mattermost -> Matrix: carol's `tada` on the copy is a 🎉 on bob's message.
    w.mm.react_as(&carol, &post.id, "tada");
    let reaction = w
        .bob
        .expect_event(&room, WAIT, |event| event["type"] == "m.reaction")
        .await;
    let relation = &reaction["content"]["m.relates_to"];
    assert_eq!(relation["key"], "🎉", "{reaction}");
    assert_eq!(relation["event_id"], original.as_str(), "{reaction}");
    assert_eq!(reaction["sender"], BOT);

    // Taken back on either side, taken back on the other.
    w.mm.unreact_as(&carol, &post.id, "tada");
    let redaction = w
        .bob
        .expect_event(&room, WAIT, |event| event["type"] == "m.room.redaction")
        .await;
    let redacts = redaction["content"]["redacts"]
        .as_str()
        .or(redaction["redacts"].as_str());
    assert_eq!(redacts, reaction["event_id"].as_str(), "{redaction}");
    w.bob.redact(&room, &thumbs).await;
    w.mm.wait_for_reactions(&post.id, WAIT, |now| now.is_empty())
        .await;

    // IRC has neither reactions nor deletes: it heard nothing of them (the next line
    // there is the next message) and each was counted as skipped, not lost.
    w.bob.send_text(&room, "after the reactions").await;
    assert_eq!(
        next_in_a(&mut alice).await,
        format!("{label} after the reactions")
    );
    let skipped = |reason: &str| {
        format!(
            "switchboard_events_skipped_total{{network=\"irc\",route=\"main\",reason=\"{reason}\"}}"
        )
    };
    assert_eq!(
        bridge.metric(&skipped("reactions_unsupported")).await,
        Some(2.0),
        "bob's and carol's reactions"
    );
    assert!(
        bridge
            .metric("switchboard_events_dead_lettered_total")
            .await
            .is_none(),
        "something was dead-lettered; log:\n{}",
        bridge.log()
    );
}

const IRC_MATRIX: &str =
    "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mx: \"#bridge:localhost\"\n";

/// The transaction id of a message send's path.
fn txn_id(path: &str) -> &str {
    let rest = &path[path.find(SEND_PATH).expect("a send path") + SEND_PATH.len()..];
    rest.split(['?', '/']).next().unwrap_or(rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_send_and_commit_does_not_duplicate_in_matrix() {
    let mut w = world().await;
    let proxy = HttpProxy::start(&w.synapse.url()).await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let homeserver = proxy.url();
    let mut bridge =
        BridgeProcess::start(|http, state| w.config(http, state, &homeserver, false, IRC_MATRIX));
    bridge.wait_healthy().await;
    w.bot_joined().await;
    let room = w.room.clone();
    let sends = || -> Vec<_> {
        proxy
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.contains(SEND_PATH))
            .collect()
    };

    // Synapse takes the send; its answer never reaches the daemon, which dies.
    let mut hold = proxy.hold_next("PUT", SEND_PATH);
    alice.say("#a", "said just before the crash").await;
    let answer = hold.answered(&proxy, WAIT).await;
    assert_eq!(answer.status, 200, "Synapse refused the send: {answer:?}");
    bridge.kill();
    hold.release();
    let event_id = serde_json::from_str::<Value>(&answer.body).unwrap()["event_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no event id in {answer:?}"))
        .to_owned();
    let got = w
        .bob
        .expect_message(&room, WAIT, |e| body(e).contains("just before the crash"))
        .await;
    assert_eq!(got["event_id"], event_id.as_str());
    assert_eq!(
        body(&got),
        format!("<a{ZWJ}lice> said just before the crash")
    );

    // Back up on the same state dir: the pending row is sent again, same txn id.
    bridge.spawn();
    bridge.wait_healthy().await;
    common::eventually("the daemon retries the send after the restart", || async {
        sends().len() >= 2
    })
    .await;
    alice.say("#a", "said after the restart").await;
    let next = w.bob.collect_messages(&room, 1, WAIT).await.remove(0);
    assert_eq!(
        body(&next),
        format!("<a{ZWJ}lice> said after the restart"),
        "something came between; proxy saw {:#?}",
        sends()
    );

    let sends = sends();
    assert_eq!(sends.len(), 3, "one send, its retry, the next: {sends:#?}");
    assert_eq!(
        txn_id(&sends[0].path),
        txn_id(&sends[1].path),
        "the retry used another transaction id: {sends:#?}"
    );
    assert_ne!(txn_id(&sends[1].path), txn_id(&sends[2].path));
    assert!(sends.iter().all(|s| s.status == Some(200)), "{sends:#?}");

    let bodies: Vec<String> = w
        .room_messages()
        .await
        .iter()
        .map(|e| body(e).to_owned())
        .collect();
    assert_eq!(
        bodies,
        [
            format!("<a{ZWJ}lice> said just before the crash"),
            format!("<a{ZWJ}lice> said after the restart"),
        ],
        "the room's messages, as Synapse has them"
    );
    assert!(
        bridge
            .metric("switchboard_events_dead_lettered_total")
            .await
            .is_none(),
        "the retry was dead-lettered; log:\n{}",
        bridge.log()
    );
}
