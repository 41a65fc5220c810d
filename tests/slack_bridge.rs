//! IRC (real ngircd) <-> Slack (the faithful fake from testkit) through the real
//! daemon binary, in each of the three modes: Socket Mode both ways with names,
//! `/me`, files, threads, edits and deletes (to a second Slack channel of the same
//! route), mention injection; reconnects on `disconnect` and drops, and a restart
//! with messages posted meanwhile, each relayed exactly once; the Events API with
//! signed requests, retries and refused forgeries and replays; webhooks mode both
//! ways; and a channel the bot was removed from.

mod common;

use common::WAIT;
use common::bridge::BridgeProcess;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_testkit::slack::{FakeSlack, Message, SlackOptions};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const ZWSP: char = '\u{200B}';

struct World {
    slack: FakeSlack,
    bob: String,
    irc: Ngircd,
}

async fn world() -> World {
    world_with(SlackOptions::default()).await
}

/// A workspace with the channels `general` and `random` and the person bob.
async fn world_with(options: SlackOptions) -> World {
    let slack = FakeSlack::start(SlackOptions {
        channels: vec!["general".into(), "random".into()],
        ..options
    })
    .await;
    let bob = slack.add_user("bob", "bob");
    let irc = Ngircd::start(NgircdOptions {
        name: "irc.test".into(),
        flood_throttling: false,
    });
    World { slack, bob, irc }
}

/// Which way the Slack network connects.
#[derive(Clone, Copy)]
enum Mode {
    Socket,
    Events,
    Webhooks,
}

const IRC_GENERAL: &str =
    "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - slack: \"#general\"\n";
const IRC_GENERAL_RANDOM: &str = "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - slack: \"#general\"\n      - slack: random\n";

impl World {
    fn config(
        &self,
        mode: Mode,
        http: SocketAddr,
        state: &std::path::Path,
        routes: &str,
    ) -> String {
        let slack = match mode {
            Mode::Socket => format!(
                "      api_url: {}\n      bot_token: {}\n      app_token: {}\n",
                self.slack.api_url(),
                self.slack.bot_token(),
                self.slack.app_token()
            ),
            Mode::Events => format!(
                "      api_url: {}\n      bot_token: {}\n      signing_secret: {}\n",
                self.slack.api_url(),
                self.slack.bot_token(),
                self.slack.signing_secret()
            ),
            Mode::Webhooks => format!(
                "      webhooks:\n        incoming_url: {}\n        outgoing_token: outgoing-secret\n",
                self.slack.incoming_webhook_url("general")
            ),
        };
        format!(
            "state_dir: {state}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 500ms\n  shutdown_deadline: 5s\n\
             networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n\
             \x20 slack:\n    slack:\n{slack}routes:\n{routes}",
            state = state.display(),
            port = self.irc.port(),
        )
    }

    fn bridge(&self, mode: Mode, routes: &str) -> BridgeProcess {
        BridgeProcess::start(|http, state| self.config(mode, http, state, routes))
    }

    /// Messages the bridge posted in `channel`, oldest first.
    fn bridged(&self, channel: &str) -> Vec<Message> {
        let bot = self.slack.bot_id();
        self.slack
            .messages(channel)
            .into_iter()
            .filter(|message| message.bot_id.as_deref() == Some(bot.as_str()) && !message.deleted)
            .collect()
    }

    async fn wait_bridged(&self, channel: &str, count: usize) -> Vec<Message> {
        let what = format!("{count} messages by the bridge in {channel}");
        self.slack
            .wait_until(&what, WAIT, |_| self.bridged(channel).len() >= count)
            .await;
        self.bridged(channel)
    }
}

/// Every way relayed text could ping a whole channel or a person in Slack.
fn assert_no_ping(text: &str) {
    for control in ["<!", "<@", "<#"] {
        assert!(
            !text.contains(control),
            "{control} reached Slack in {text:?}"
        );
    }
    let lower = text.to_lowercase();
    for word in ["@here", "@channel", "@everyone"] {
        assert!(
            !lower.contains(word),
            "a bare {word} reached Slack in {text:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_both_ways_with_threads_edits_deletes_files_and_no_pings() {
    let w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge(Mode::Socket, IRC_GENERAL_RANDOM);
    bridge.wait_healthy().await;
    w.slack.wait_socket_connections(1, WAIT).await;

    // IRC -> Slack: alice's name on the message, formatting as mrkdwn.
    alice.say("#a", "hello from irc").await;
    alice.action("#a", "waves").await;
    alice
        .say("#a", "\x02bold\x02 and \x1Ditalic\x1D a<b & c>d")
        .await;
    alice
        .say("#a", "<!channel> <!here|here> @here @channel @everyone <@U0BOB> <!subteam^S1|@team> &lt;!channel&gt;")
        .await;
    let posted = w.wait_bridged("general", 4).await;
    assert_eq!(posted[0].text, "hello from irc");
    assert_eq!(posted[0].username.as_deref(), Some("alice"));
    assert_eq!(posted[1].text, "_waves_");
    assert_eq!(posted[2].text, "*bold* and _italic_ a&lt;b &amp; c&gt;d");
    assert_no_ping(&posted[3].text);
    assert!(
        posted[3].text.contains(&format!("@{ZWSP}here")),
        "{}",
        posted[3].text
    );

    // Slack -> IRC and -> the route's other Slack channel.
    let hello = w
        .slack
        .post(&w.bob, "general", "hi *there* from <#C0NOPE|dev>")
        .await;
    let line = alice.expect("#a", "from #dev", WAIT).await;
    let shown = line.text.replace('\u{200D}', "");
    assert_eq!(shown, "<bob> hi \x02there\x02 from #dev");
    let copies = w.wait_bridged("random", 5).await;
    let copy = copies.last().unwrap().clone();
    assert_eq!(copy.username.as_deref(), Some("bob"));

    // A thread reply lands in the copy's thread; edits and deletes follow the copy.
    w.slack
        .reply(&w.bob, "general", &hello, "in the thread")
        .await;
    alice.expect("#a", "in the thread", WAIT).await;
    let reply = w
        .slack
        .wait_for_message("random", |m| m.text.contains("in the thread"), WAIT)
        .await;
    assert_eq!(reply.thread_ts.as_deref(), Some(copy.ts.as_str()));
    w.slack
        .edit("general", &hello, "hi *everyone*, edited")
        .await;
    alice.expect("#a", "edited", WAIT).await;
    w.slack
        .wait_for_message(
            "random",
            |m| m.ts == copy.ts && m.text.contains("edited"),
            WAIT,
        )
        .await;
    w.slack.delete("general", &hello).await;
    w.slack
        .wait_for_message("random", |m| m.ts == copy.ts && m.deleted, WAIT)
        .await;

    // `/me` and files.
    w.slack.me_message(&w.bob, "general", "dances").await;
    let action = alice.expect("#a", "dances", WAIT).await;
    assert!(
        action.action().is_some_and(|text| text.contains("dances")),
        "{action:?}"
    );
    w.slack
        .share_file(
            &w.bob,
            "general",
            "Plan",
            "https://files.example/plan.pdf",
            "the plan",
        )
        .await;
    alice.expect("#a", "Plan", WAIT).await;

    // Nothing the bridge posted came back to IRC.
    let echoes = alice.drain("#a", Duration::from_millis(300)).await;
    assert!(
        echoes.iter().all(|m| !m.text.contains("hello from irc")),
        "{echoes:#?}"
    );
    assert_eq!(w.slack.unacked_envelopes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_reconnects_and_catches_up_after_a_restart_exactly_once() {
    let w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let mut bridge = w.bridge(Mode::Socket, IRC_GENERAL);
    bridge.wait_healthy().await;
    w.slack.wait_socket_connections(1, WAIT).await;
    w.slack.post(&w.bob, "general", "first").await;
    alice.expect("#a", "first", WAIT).await;

    // Slack refreshes the connection: a new one is opened, nothing is lost.
    w.slack.send_disconnect("refresh_requested").await;
    w.slack.post(&w.bob, "general", "after refresh").await;
    alice.expect("#a", "after refresh", WAIT).await;
    // A drop without a close frame: the same.
    w.slack.drop_sockets();
    w.slack.post(&w.bob, "general", "after drop").await;
    alice.expect("#a", "after drop", WAIT).await;

    // Down: messages posted meanwhile come once each, in order, after the restart.
    bridge.terminate();
    let mut parent = String::new();
    for text in ["while down 1", "while down 2", "while down 3"] {
        parent = w.slack.post_silently(&w.bob, "general", text);
    }
    // A reply in a thread whose parent was posted while the bridge was down too.
    w.slack
        .reply_silently(&w.bob, "general", &parent, "while down, in the thread");
    bridge.spawn();
    bridge.wait_healthy().await;
    let got = alice.collect("#a", 4, WAIT).await;
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert!(
        texts[0].ends_with("while down 1") && texts[2].ends_with("while down 3"),
        "{texts:?}"
    );
    assert!(texts[3].ends_with("while down, in the thread"), "{texts:?}");
    let more = alice.drain("#a", Duration::from_millis(500)).await;
    assert!(more.is_empty(), "relayed twice: {more:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_api_takes_signed_events_once_and_refuses_forgeries_and_replays() {
    let w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge(Mode::Events, IRC_GENERAL);
    bridge.wait_healthy().await;
    w.slack
        .set_events_url(&format!("http://{}/webhooks/slack", bridge.http));
    let (status, answer) = w.slack.url_verification().await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("challenge"), "{answer}");

    w.slack.post(&w.bob, "general", "signed hello").await;
    alice.expect("#a", "signed hello", WAIT).await;
    // Slack sends the same event again (it did not see the answer): relayed once.
    w.slack.wait_deliveries(1, WAIT).await;
    let retried = w.slack.retry_last_event("http_timeout").await;
    assert_eq!(retried.status, 200, "{retried:?}");
    let deliveries = w.slack.event_deliveries();
    assert!(
        deliveries.iter().all(|d| d.status == 200),
        "{deliveries:#?}"
    );
    assert!(
        deliveries.iter().any(|d| d.retry_num == Some(1)),
        "{deliveries:#?}"
    );

    // IRC -> Slack with the bot token.
    alice.say("#a", "to slack over the web api").await;
    w.wait_bridged("general", 1).await;

    // A wrong signature and a stale timestamp are refused and counted.
    let body = r#"{"type":"event_callback","event_id":"EvForged","event":{"type":"message","channel":"C0","user":"U0","text":"forged","ts":"1.0"}}"#;
    let mut forged = w.slack.signed_headers(body, now_secs());
    for (name, value) in &mut forged {
        if name.eq_ignore_ascii_case("x-slack-signature") {
            *value = format!("v0={}", "0".repeat(64));
        }
    }
    assert_eq!(w.slack.push_raw(body, forged).await.0, 401);
    let stale = w.slack.signed_headers(body, now_secs() - 600);
    assert_eq!(w.slack.push_raw(body, stale).await.0, 401);
    let refused = bridge
        .metric(
            "switchboard_slack_requests_refused_total{network=\"slack\",reason=\"bad_signature\"}",
        )
        .await;
    assert_eq!(refused, Some(1.0));
    let stale_count = bridge
        .metric("switchboard_slack_requests_refused_total{network=\"slack\",reason=\"stale_timestamp\"}")
        .await;
    assert_eq!(stale_count, Some(1.0));
    let after = alice.drain("#a", Duration::from_millis(300)).await;
    assert!(
        after
            .iter()
            .all(|m| !m.text.contains("signed hello") && !m.text.contains("forged")),
        "{after:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_mode_both_ways() {
    let w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge(Mode::Webhooks, IRC_GENERAL);
    bridge.wait_healthy().await;
    w.slack.set_outgoing_webhook(
        &format!("http://{}/webhooks/slack", bridge.http),
        "outgoing-secret",
    );

    alice.say("#a", "through the incoming webhook @here").await;
    let posted = w
        .slack
        .wait_for_message("general", |m| m.text.contains("incoming webhook"), WAIT)
        .await;
    assert_eq!(posted.username.as_deref(), Some("alice"));
    assert_no_ping(&posted.text);

    w.slack
        .post(&w.bob, "general", "through the outgoing webhook")
        .await;
    alice.expect("#a", "outgoing webhook", WAIT).await;

    w.slack.set_outgoing_webhook(
        &format!("http://{}/webhooks/slack", bridge.http),
        "wrong-token",
    );
    w.slack.post(&w.bob, "general", "with a wrong token").await;
    let after = alice.drain("#a", Duration::from_millis(500)).await;
    assert!(
        after.iter().all(|m| !m.text.contains("wrong token")),
        "{after:#?}"
    );
    let refused = bridge
        .metric("switchboard_slack_requests_refused_total{network=\"slack\",reason=\"bad_token\"}")
        .await;
    assert_eq!(refused, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_the_bot_left_dead_letters_and_a_rate_limit_delays_only_its_channel() {
    let w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a", "#b"]).await;
    let routes = "  - name: one\n    rooms:\n      - irc: \"#a\"\n      - slack: general\n  - name: two\n    rooms:\n      - irc: \"#b\"\n      - slack: random\n";
    let bridge = w.bridge(Mode::Socket, routes);
    bridge.wait_healthy().await;
    w.slack.wait_socket_connections(1, WAIT).await;

    // general is rate limited for a while; random is not held back by it.
    w.slack
        .rate_limit("chat.postMessage", Some("general"), 1, 2);
    alice.say("#a", "limited").await;
    alice.say("#b", "free").await;
    w.slack
        .wait_for_message("random", |m| m.text == "free", WAIT)
        .await;
    w.slack
        .wait_for_message("general", |m| m.text == "limited", WAIT)
        .await;

    // The bot was removed from random: a permanent error, dead-lettered with Slack's reason.
    w.slack.kick_bot("random");
    alice.say("#b", "nobody will see this").await;
    common::eventually("a not_in_channel dead letter", || async {
        bridge
            .metric("switchboard_events_dead_lettered_total{")
            .await
            .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    let (_, health) = common::http_get(bridge.http, "/healthz").await;
    assert!(
        health.contains("not_in_channel"),
        "/healthz does not say why: {health}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_customize_scope_the_name_goes_into_the_text() {
    let w = world_with(SlackOptions {
        bot_can_customize: false,
        ..SlackOptions::default()
    })
    .await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge(Mode::Socket, IRC_GENERAL);
    bridge.wait_healthy().await;
    alice.say("#a", "named in the text").await;
    alice.action("#a", "waves").await;
    let posted = w.wait_bridged("general", 2).await;
    let shown = |text: &str| text.replace('\u{200D}', "");
    assert_eq!(shown(&posted[0].text), "alice: named in the text");
    assert_eq!(shown(&posted[1].text), "_alice waves_");
    assert!(
        bridge.log().contains("chat:write.customize"),
        "no word in the log about the missing scope"
    );
    let (_, health) = common::http_get(bridge.http, "/healthz").await;
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    let problem = health["networks"]["slack"]["problem"]
        .as_str()
        .unwrap_or_default();
    assert!(problem.contains("chat:write.customize"), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_the_network_and_healthz_says_why() {
    let w = world().await;
    let bridge = BridgeProcess::start(|http, state| {
        w.config(Mode::Socket, http, state, IRC_GENERAL).replace(
            &format!("bot_token: {}", w.slack.bot_token()),
            "bot_token: xoxb-revoked",
        )
    });
    common::eventually("/healthz naming invalid_auth", || async {
        if tokio::net::TcpStream::connect(bridge.http).await.is_err() {
            return false; // not listening yet
        }
        let (_, health) = common::http_get(bridge.http, "/healthz").await;
        health.contains("invalid_auth") && health.contains("\"failed\"")
    })
    .await;
    assert!(
        !bridge.log().contains("xoxb-revoked"),
        "the token was logged"
    );
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
