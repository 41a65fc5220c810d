//! IRC (real ngircd) <-> Mattermost (the faithful fake from testkit) through the real
//! daemon binary: both ways with names, `/me`, formatting, a thread reply and files;
//! mention injection; edits and deletes (also after a restart); a 100-post burst
//! under IRC flood control; websocket drops and daemon restarts caught up exactly
//! once; a failing and a slow Mattermost; and webhook mode both ways.

mod common;

use common::WAIT;
use common::bridge::BridgeProcess;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_testkit::mattermost::{FakeMattermost, Post};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const ZWJ: &str = "\u{200D}";
const ZWSP: &str = "\u{200B}";

/// A Mattermost team with two channels, a bot and a user, and an IRC server.
struct World {
    mm: FakeMattermost,
    town: String,
    offtopic: String,
    bot: String,
    bot_token: String,
    bob: String,
    bob_token: String,
    irc: Ngircd,
}

async fn world(flood_throttling: bool) -> World {
    let mm = FakeMattermost::start().await;
    mm.set_allow_name_override(true);
    let team = mm.add_team("core");
    let town = mm.add_channel(&team, "town-square");
    let offtopic = mm.add_channel(&team, "off-topic");
    let (bot, bot_token) = mm.add_user("bridge", true);
    let (bob, bob_token) = mm.add_user("bob", false);
    let irc = Ngircd::start(NgircdOptions {
        name: "irc.test".into(),
        flood_throttling,
    });
    World {
        mm,
        town,
        offtopic,
        bot,
        bot_token,
        bob,
        bob_token,
        irc,
    }
}

impl World {
    /// Config with the IRC network `irc` and the bot-API network `mm`; `extra` is
    /// appended to the `mm` section, `routes` is the YAML list body.
    fn config(
        &self,
        http: SocketAddr,
        state: &std::path::Path,
        extra: &str,
        routes: &str,
    ) -> String {
        format!(
            "state_dir: {state}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 500ms\n  shutdown_deadline: 5s\n\
             networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n\
             \x20 mm:\n    mattermost:\n      server: {url}\n      team: core\n      token: {token}\n{extra}\
             routes:\n{routes}",
            state = state.display(),
            port = self.irc.port(),
            url = self.mm.url(),
            token = self.bot_token,
        )
    }

    fn bridge(&self, extra: &str, routes: &str) -> BridgeProcess {
        BridgeProcess::start(|http, state| self.config(http, state, extra, routes))
    }

    /// Posts the bridge made in `channel`, in order.
    fn bridged(&self, channel: &str) -> Vec<Post> {
        self.mm
            .posts(channel)
            .into_iter()
            .filter(|post| post.user_id == self.bot && !post.is_system())
            .collect()
    }

    /// Waits until the bridge has made `count` posts in `channel`.
    async fn wait_bridged(&self, channel: &str, count: usize) -> Vec<Post> {
        let what = format!("{count} bridged posts in {channel}");
        self.mm
            .wait_until(&what, WAIT, |mm| {
                mm.posts(channel)
                    .iter()
                    .filter(|post| post.user_id == self.bot && !post.is_system())
                    .count()
                    >= count
            })
            .await;
        self.bridged(channel)
    }
}

const IRC_MM: &str = "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mm: town-square\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ways_with_names_action_formatting_thread_reply_files_and_no_mass_mentions() {
    let w = world(false).await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge("", IRC_MM);
    bridge.wait_healthy().await;

    // IRC -> Mattermost: the post carries alice's name, not a label in the text.
    alice.say("#a", "hello from irc").await;
    let posts = w.wait_bridged(&w.town, 1).await;
    assert_eq!(posts[0].message, "hello from irc");
    assert_eq!(posts[0].props["override_username"], "alice");
    let hello_id = posts[0].id.clone();

    alice.action("#a", "waves").await;
    alice
        .say(
            "#a",
            "\x02bold\x02 \x1Ditalic\x1D \x1Estrike\x1E \x11mono\x11 https://example.org/x done",
        )
        .await;
    alice.say("#a", "@channel @all @here wake up").await;
    alice
        .say("#a", "bob: a plain line that starts with a name")
        .await;
    let posts = w.wait_bridged(&w.town, 5).await;
    assert_eq!(posts[1].message, "*waves*");
    assert_eq!(posts[1].r#type, "me", "an IRC action is a `/me` post");
    assert_eq!(
        posts[2].message,
        "**bold** *italic* ~~strike~~ `mono` https://example.org/x done"
    );
    assert_eq!(
        posts[3].message,
        format!("@{ZWSP}channel @{ZWSP}all @{ZWSP}here wake up")
    );
    assert_eq!(
        posts[4].message,
        "bob: a plain line that starts with a name"
    );

    // Mattermost -> IRC: the nick template names bob (guarded), markdown becomes codes.
    w.mm.post_as(
        &w.bob,
        &w.town,
        "hi **there** *you* ~~old~~ `code` [docs](https://example.org/d)",
        None,
    );
    let got = alice.expect("#a", "there", WAIT).await;
    assert_eq!(
        got.text,
        format!(
            "<b{ZWJ}ob> hi \x02there\x02 \x1Dyou\x1D \x1Eold\x1E \x11code\x11 docs (https://example.org/d)"
        )
    );

    // A `/me` post (its own post type) is an action on IRC.
    let body = serde_json::json!({ "channel_id": w.town, "message": "waves back", "type": "me" });
    assert_eq!(post_as_bob(&w, &body).await, 201);
    let got = alice.expect("#a", "waves back", WAIT).await;
    assert_eq!(
        got.action(),
        Some(format!("<b{ZWJ}ob> waves back").as_str()),
        "{got:?}"
    );

    // A long post is split into IRC lines; nothing is cut.
    let long: String = (0..150).map(|i| format!("w{i:03} ")).collect::<String>() + "END";
    w.mm.post_as(&w.bob, &w.town, &long, None);
    let mut lines = Vec::new();
    while !lines.iter().any(|line: &String| line.contains("END")) {
        let line = alice
            .next_message(WAIT)
            .await
            .expect("the long post's lines")
            .text;
        lines.push(line);
    }
    assert!(lines.len() >= 2, "{lines:?}");
    let joined: String = lines
        .iter()
        .map(|line| line.trim_start_matches(&format!("<b{ZWJ}ob> ")))
        .collect::<Vec<_>>()
        .join(" ");
    let words = |text: &str| {
        text.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(words(&joined), words(&long));

    // A thread reply shows what it answers.
    w.mm.post_as(&w.bob, &w.town, "agreed", Some(&hello_id));
    let got = alice.expect("#a", "agreed", WAIT).await;
    assert!(
        got.text.contains("(re a")
            && got.text.contains("hello from irc")
            && got.text.ends_with("agreed"),
        "{got:?}"
    );

    // A multi-line code block becomes several IRC lines.
    w.mm.post_as(
        &w.bob,
        &w.town,
        "look:\n```\nfn main() {}\nlet x = 1;\n```",
        None,
    );
    alice.expect("#a", "look:", WAIT).await;
    alice.expect("#a", "fn main() {}", WAIT).await;
    alice.expect("#a", "let x = 1;", WAIT).await;

    // A file arrives as its text and a link.
    w.mm.post_with_files(
        &w.bob,
        &w.town,
        "the log",
        &[("build.log", b"ok\n".as_slice())],
    );
    let got = alice.expect("#a", "the log", WAIT).await;
    let link = alice.expect("#a", "http", WAIT).await;
    assert!(
        link.text.contains("/files/") || got.text.contains("/files/"),
        "{got:?} {link:?}"
    );

    // Nothing the bridge posted came back to IRC.
    let echoes = alice.drain("#a", Duration::from_millis(300)).await;
    assert!(
        echoes.iter().all(|m| !m.text.contains("hello from irc")),
        "{echoes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_name_override_the_label_needs_no_escape_and_actions_stay_actions() {
    let w = world(false).await;
    w.mm.set_allow_name_override(false);
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge("", IRC_MM);
    bridge.wait_healthy().await;

    // The raw text is what notifications and previews show: no backslash in it.
    alice.say("#a", "labelled").await;
    let posts = w.wait_bridged(&w.town, 1).await;
    assert_eq!(posts[0].message, format!("a{ZWJ}lice: labelled"));
    assert!(!posts[0].props.contains_key("override_username"));

    // IRC `/me` is a Mattermost `/me` post, named in its text.
    alice.action("#a", "waves").await;
    let posts = w.wait_bridged(&w.town, 2).await;
    assert_eq!(posts[1].message, format!("*a{ZWJ}lice waves*"));
    assert_eq!(posts[1].r#type, "me");

    // Mattermost `/me` (stored in emphasis, as the server's `/me` does) is an IRC
    // ACTION from the label: no "ACTION" or "/me" in the text, no stray markers.
    w.mm.join_channel(&w.bob, &w.town);
    let body = serde_json::json!({ "channel_id": w.town, "message": "*waves back*", "type": "me" });
    assert_eq!(post_as_bob(&w, &body).await, 201);
    let got = alice.expect("#a", "waves back", WAIT).await;
    assert_eq!(got.text, format!("\x01ACTION <b{ZWJ}ob> waves back\x01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_channel_fails_the_network_and_says_what_to_check() {
    let w = world(false).await;
    let bridge = w.bridge(
        "",
        "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mm: town-squar\n",
    );
    // The daemon is up once it has asked for the channel.
    w.mm.wait_until("the channel lookup", WAIT, |mm| {
        mm.request_log()
            .iter()
            .any(|(_, path, _)| path.ends_with("/channels/name/town-squar"))
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, health) = common::http_get(bridge.http, "/healthz").await;
        if health.contains("\"failed\"") {
            assert!(
                health.contains(
                    "channel town-squar not found in team core (or the bot is not a member)"
                ),
                "{health}"
            );
            assert!(!health.contains("channel_id"), "{health}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the network never failed: {health}\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const THREE_WAY: &str = "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mm: town-square\n      - mm: off-topic\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_follow_also_after_a_restart() {
    let w = world(false).await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let mut bridge = w.bridge("", THREE_WAY);
    bridge.wait_healthy().await;

    let first = w.mm.post_as(&w.bob, &w.town, "first version", None);
    alice.expect("#a", "first version", WAIT).await;
    let copy = w.wait_bridged(&w.offtopic, 1).await.remove(0);
    assert_eq!(copy.message, "first version");

    // Mattermost has edits: the copy is edited; IRC gets a correction line.
    w.mm.edit_as(&first.id, "second version");
    let got = alice.expect("#a", "second version", WAIT).await;
    assert!(got.text.contains("(correction)"), "{got:?}");
    wait_message(&w, &w.offtopic, &copy.id, "second version").await;

    // Restart the daemon: the id map survives it.
    assert!(bridge.terminate().success());
    bridge.spawn();
    bridge.wait_healthy().await;
    w.mm.edit_as(&first.id, "third version");
    alice.expect("#a", "third version", WAIT).await;
    wait_message(&w, &w.offtopic, &copy.id, "third version").await;

    w.mm.delete_post(&first.id);
    wait_deleted(&w, &w.offtopic, &copy.id).await;
    // IRC has no deletes: nothing is said there.
    let after = alice.drain("#a", Duration::from_millis(300)).await;
    assert!(after.is_empty(), "{after:?}");
}

async fn wait_message(w: &World, channel: &str, post_id: &str, message: &str) {
    wait_post(
        w,
        channel,
        post_id,
        &format!("message {message:?}"),
        |post| post.message == message,
    )
    .await;
}

async fn wait_deleted(w: &World, channel: &str, post_id: &str) {
    wait_post(w, channel, post_id, "deleted", |post| post.delete_at > 0).await;
}

async fn wait_post(
    w: &World,
    channel: &str,
    post_id: &str,
    what: &str,
    check: impl Fn(&Post) -> bool,
) {
    let what = format!("post {post_id} in {channel} {what}");
    w.mm.wait_until(&what, WAIT, |mm| {
        mm.posts(channel)
            .iter()
            .any(|post| post.id == post_id && check(post))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_post_burst_arrives_on_irc_complete_and_in_order_under_flood_control() {
    let w = world(true).await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge("", IRC_MM);
    bridge.wait_healthy().await;
    for i in 0..100 {
        w.mm.post_as(&w.bob, &w.town, &format!("burst {i}"), None);
    }
    let got = alice.collect("#a", 100, Duration::from_secs(300)).await;
    let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("<b{ZWJ}ob> burst {i}")).collect();
    assert_eq!(texts, expected);
    assert!(
        !bridge.log().contains("Excess Flood"),
        "kicked for flooding"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_made_while_the_websocket_is_down_or_the_daemon_is_dead_are_relayed_once_in_order() {
    let w = world(false).await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let mut bridge = w.bridge("", IRC_MM);
    bridge.wait_healthy().await;
    w.mm.post_as(&w.bob, &w.town, "before the drop", None);
    alice.expect("#a", "before the drop", WAIT).await;

    // The websocket drops and stays refused while posts are made.
    let sessions = w.mm.websocket_connections();
    w.mm.refuse_websockets(true);
    w.mm.drop_websockets();
    for i in 0..5 {
        w.mm.post_as(&w.bob, &w.town, &format!("missed {i}"), None);
    }
    w.mm.refuse_websockets(false);
    let got = alice.collect("#a", 5, WAIT).await;
    let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
    let expected: Vec<String> = (0..5).map(|i| format!("<b{ZWJ}ob> missed {i}")).collect();
    assert_eq!(texts, expected);
    assert!(
        w.mm.websocket_connections() > sessions,
        "no reconnect happened"
    );

    // The daemon is stopped; posts made meanwhile arrive after it is back. (After
    // SIGKILL, a line IRC already took may be sent again: IRC has no acks.)
    assert!(bridge.terminate().success());
    for i in 0..5 {
        w.mm.post_as(&w.bob, &w.town, &format!("while dead {i}"), None);
    }
    bridge.spawn();
    bridge.wait_healthy().await;
    w.mm.post_as(&w.bob, &w.town, "after restart", None);
    let got = alice.collect("#a", 6, WAIT).await;
    let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
    let mut expected: Vec<String> = (0..5)
        .map(|i| format!("<b{ZWJ}ob> while dead {i}"))
        .collect();
    expected.push(format!("<b{ZWJ}ob> after restart"));
    assert_eq!(texts, expected);
    let more = alice.drain("#a", Duration::from_millis(500)).await;
    assert!(more.is_empty(), "relayed twice: {more:?}");
}

const TWO_ROUTES: &str = "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mm: town-square\n  - name: irc-only\n    rooms:\n      - irc: \"#c\"\n      - irc: \"#d\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_slow_mattermost_queues_its_messages_and_delays_no_other_route() {
    let w = world(false).await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a", "#c"]).await;
    let mut carol = IrcPeer::connect(w.irc.port(), "carol", &["#d"]).await;
    let bridge = w.bridge("", TWO_ROUTES);
    bridge.wait_healthy().await;

    w.mm.fail_rest(Some(500));
    for i in 0..5 {
        alice.say("#a", &format!("queued {i}")).await;
    }
    // Meanwhile another route flows.
    alice.say("#c", "other route while failing").await;
    carol.expect("#d", "other route while failing", WAIT).await;
    assert!(w.bridged(&w.town).is_empty());

    // Slow instead of failing: still no delay for the other route.
    w.mm.fail_rest(None);
    w.mm.set_delay(Some(Duration::from_secs(10)));
    alice.say("#c", "other route while slow").await;
    // Well under the delay: the other route did not wait for Mattermost.
    carol
        .expect("#d", "other route while slow", Duration::from_secs(5))
        .await;
    w.mm.set_delay(None);

    let posts = w.wait_bridged(&w.town, 5).await;
    let texts: Vec<&str> = posts.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        texts,
        (0..5).map(|i| format!("queued {i}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_relays_both_ways_and_refuses_bad_requests() {
    let w = world(false).await;
    let incoming = w.mm.add_incoming_webhook(&w.town);
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let token = "outgoing-secret-token";
    let bridge = BridgeProcess::start(|http, state| {
        format!(
            "state_dir: {state}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 500ms\n\
             networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n\
             \x20 mm:\n    mattermost:\n      server: {url}\n      team: core\n      webhooks:\n        incoming_url: {incoming}\n        outgoing_token: {token}\n        username: integrations-admin\n\
             routes:\n{IRC_MM}",
            state = state.display(),
            port = w.irc.port(),
            url = w.mm.url(),
        )
    });
    bridge.wait_healthy().await;
    let endpoint = format!("http://{}/webhooks/mm", bridge.http);
    w.mm.add_outgoing_webhook(&w.town, &endpoint, token, false);

    // Mattermost -> IRC through the outgoing webhook.
    w.mm.post_as(&w.bob, &w.town, "through the **webhook**", None);
    let got = alice.expect("#a", "webhook", WAIT).await;
    assert_eq!(got.text, format!("<b{ZWJ}ob> through the \x02webhook\x02"));

    // `webhooks.username` set to the hook's creator, whose name the incoming
    // webhook's posts carry: that person's own posts still come through.
    let creator = w.mm.hook_owner();
    w.mm.post_as(&creator, &w.town, "the hook's creator speaks", None);
    let got = alice.expect("#a", "creator speaks", WAIT).await;
    assert!(got.text.ends_with("the hook's creator speaks"), "{got:?}");

    // IRC -> Mattermost through the incoming webhook, named by override.
    alice.say("#a", "back through the hook").await;
    let is_back = |post: &Post| post.message == "back through the hook";
    w.mm.wait_until("the relayed post", WAIT, |mm| {
        mm.posts(&w.town).iter().any(is_back)
    })
    .await;
    let post = w.mm.posts(&w.town).into_iter().find(is_back).unwrap();
    assert_eq!(post.props["override_username"], "alice");

    // Bad requests: nothing relayed.
    let form = |token: &str, text: &str| {
        format!(
            "token={token}&channel_id={}&channel_name=town-square&user_id={}&user_name=bob&post_id=forged{text}&text={text}",
            w.town, w.bob
        )
    };
    let (status, _) = post_raw(
        bridge.http,
        "/webhooks/mm",
        "application/x-www-form-urlencoded",
        &form("wrong", "forged1"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post_raw(
        bridge.http,
        "/webhooks/mm",
        "application/x-www-form-urlencoded",
        &form("", "forged2"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post_raw(bridge.http, "/webhooks/mm", "application/json", "{not json").await;
    assert_eq!(status, 400);
    let huge = "x".repeat(300 * 1024);
    let (status, _) = post_raw(
        bridge.http,
        "/webhooks/mm",
        "application/x-www-form-urlencoded",
        &form(token, &huge),
    )
    .await;
    assert_eq!(status, 413);
    // A good raw request goes through (JSON this time).
    let body = serde_json::json!({
        "token": token, "channel_id": w.town, "channel_name": "town-square",
        "user_id": w.bob, "user_name": "bob", "post_id": "rawjson1", "text": "raw json ok",
        "timestamp": 1_700_000_000_000i64,
    });
    let (status, _) = post_raw(
        bridge.http,
        "/webhooks/mm",
        "application/json",
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    alice.expect("#a", "raw json ok", WAIT).await;
    let stray = alice.drain("#a", Duration::from_millis(300)).await;
    assert!(
        stray.iter().all(|m| !m.text.contains("forged")),
        "{stray:?}"
    );
    // The webhook's own calls were answered 200.
    assert!(
        w.mm.outgoing_webhook_results()
            .iter()
            .all(|status| *status == 200)
    );
}

/// A POST with a content type and extra header lines; returns (status, body).
/// Creates a post as bob through the fake's REST API (as his client would, with a
/// body the test shapes, e.g. a `me` post); returns the HTTP status.
async fn post_as_bob(w: &World, body: &serde_json::Value) -> u16 {
    let auth = format!("Authorization: Bearer {}\r\n", w.bob_token);
    let mm_addr: SocketAddr = w.mm.url().trim_start_matches("http://").parse().unwrap();
    let (status, _) = post_with_headers(
        mm_addr,
        "/api/v4/posts",
        "application/json",
        &auth,
        &body.to_string(),
    )
    .await;
    status
}

async fn post_with_headers(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let headers = format!("Content-Type: {content_type}\r\n{headers}");
    common::http_request(addr, "POST", path, &headers, body).await
}

async fn post_raw(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> (u16, String) {
    post_with_headers(addr, path, content_type, "", body).await
}
