//! IRC (real ngircd) <-> Discord (the testkit's fake) through the daemon binary:
//! both ways under each sender's name (through the channel webhook), with
//! markdown and mentions; a gateway drop resumed without loss or repeat; a restart
//! with messages posted meanwhile, each relayed once and in order; a token Discord
//! refuses, which fails the network with the reason and never shows the token.
//! (Edits, deletes, replies and mention injection from every other network are in
//! `tests/five_networks.rs`.)

mod common;

use common::WAIT;
use common::bridge::BridgeProcess;
use common::pings::discord_pings;
use serde_json::json;
use switchboard_testkit::discord::FakeDiscord;
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const TOKEN: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.discord-bridge-test-token";

struct World {
    dc: FakeDiscord,
    general: String,
    erin: String,
    irc: Ngircd,
}

async fn world() -> World {
    let dc = FakeDiscord::start().await;
    let guild = dc.add_guild("Project");
    let general = dc.add_channel(&guild, "general", None);
    dc.add_bot("switchboard", TOKEN);
    let erin = dc.add_user("erin", Some("Erin"), None);
    dc.add_member(&guild, &erin, Some("erin-the-nick"));
    let irc = Ngircd::start(NgircdOptions {
        name: "irc.test".into(),
        flood_throttling: false,
    });
    World {
        dc,
        general,
        erin,
        irc,
    }
}

impl World {
    fn bridge(&self, token: &str) -> BridgeProcess {
        self.bridge_with(token, "")
    }

    /// The daemon, with `extra` lines in the Discord network's section.
    fn bridge_with(&self, token: &str, extra: &str) -> BridgeProcess {
        BridgeProcess::start(|http, state| {
            format!(
                "state_dir: {state}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 500ms\n  shutdown_deadline: 5s\n\
                 networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n\
                 \x20 dc:\n    discord:\n      token: {token}\n      guild: Project\n      api_url: {api}\n      gateway_url: {gateway}\n{extra}\
                 routes:\n  - name: main\n    rooms:\n      - irc: \"#a\"\n      - dc: \"#general\"\n",
                state = state.display(),
                port = self.irc.port(),
                api = self.dc.url(),
                gateway = self.dc.gateway_url(),
            )
        })
    }

    /// Waits for the relayed message whose content contains `text`.
    async fn relayed(&self, text: &str) -> switchboard_testkit::discord::Message {
        self.dc
            .wait_for_message(&self.general, WAIT, |m| {
                m.webhook_id.is_some() && m.content.contains(text)
            })
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ways_under_each_senders_name_without_pings() {
    let w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge(TOKEN);
    bridge.wait_healthy().await;

    // IRC -> Discord: through the webhook under alice's name; IRC's literal
    // asterisks stay literal, and nothing pings.
    alice.say("#a", "hi *there* @everyone").await;
    let copy = w.relayed("there").await;
    assert_eq!(copy.username.as_deref(), Some("alice"), "{copy:?}");
    assert!(copy.content.contains("\\*there\\*"), "{:?}", copy.content);
    assert!(!discord_pings(&copy.content), "{:?}", copy.content);
    assert_eq!(copy.allowed_mentions, Some(json!({ "parse": [] })));
    alice.action("#a", "waves").await;
    let action = w.relayed("waves").await;
    assert!(action.content.contains("*waves*"), "{:?}", action.content);

    // Discord -> IRC: under the member's nick, markdown as IRC formatting, custom
    // emoji and a role mention as text.
    let guild = "Project";
    let role = w.dc.add_role(guild, "moderators");
    w.dc.post(
        &w.general,
        &w.erin,
        &format!("**bold** <:party:123456789012345678> for <@&{role}>"),
    );
    let line = alice.expect("#a", "for @moderators", WAIT).await;
    // The nick carries a zero-width joiner, so it does not highlight erin on IRC.
    let shown = line.text.replace('\u{200D}', "");
    assert!(
        shown.contains("<erin-the-nick> \x02bold\x02 :party:"),
        "{:?}",
        line.text
    );
    // The bridge's own messages are not relayed back.
    let echoes = alice
        .drain("#a", std::time::Duration::from_millis(300))
        .await;
    assert!(echoes.is_empty(), "echoed: {echoes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_drop_is_resumed_and_a_restart_catches_up_exactly_once() {
    let w = world().await;
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let mut bridge = w.bridge(TOKEN);
    bridge.wait_healthy().await;
    w.dc.post(&w.general, &w.erin, "first");
    alice.expect("#a", "first", WAIT).await;

    // The socket drops without a close frame: the session is resumed, not
    // identified again, and the messages sent meanwhile come once.
    w.dc.drop_sockets();
    w.dc.post(&w.general, &w.erin, "during the drop");
    w.dc.wait_until("the session resumed", WAIT, |dc| dc.resumes() >= 1)
        .await;
    alice.expect("#a", "during the drop", WAIT).await;
    w.dc.post(&w.general, &w.erin, "after the drop");
    alice.expect("#a", "after the drop", WAIT).await;
    assert_eq!(w.dc.identifies(), 1, "resumed, not identified again");

    // Down: what is posted meanwhile comes once each, in order, after the restart.
    bridge.terminate();
    for text in ["while down 1", "while down 2", "while down 3"] {
        w.dc.post(&w.general, &w.erin, text);
    }
    bridge.spawn();
    bridge.wait_healthy().await;
    let got = alice.collect("#a", 3, WAIT).await;
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    for (i, text) in texts.iter().enumerate() {
        assert!(
            text.ends_with(&format!("while down {}", i + 1)),
            "{texts:?}"
        );
    }
    w.dc.post(&w.general, &w.erin, "live again");
    let next = alice.collect("#a", 1, WAIT).await;
    assert!(
        next[0].text.ends_with("live again"),
        "something came twice: {next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_the_network_and_stays_out_of_the_log() {
    let w = world().await;
    let refused = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.a-token-discord-refuses";
    w.dc.refuse_token(refused);
    let bridge = w.bridge(refused);
    common::eventually("the network is failed in /healthz", || async {
        if tokio::net::TcpStream::connect(bridge.http).await.is_err() {
            return false; // not listening yet
        }
        let (_, body) = common::http_get(bridge.http, "/healthz").await;
        let health: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        health["networks"]["dc"]["state"] == "failed"
    })
    .await;
    let (_, body) = common::http_get(bridge.http, "/healthz").await;
    assert!(
        body.contains("401") || body.to_lowercase().contains("token"),
        "{body}"
    );
    assert!(!bridge.log().contains(refused), "the token is in the log");
    assert!(!body.contains(refused), "the token is in /healthz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_message_content_intent_healthz_and_the_log_say_so() {
    let w = world().await;
    w.dc.set_message_content_intent(false);
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge(TOKEN);
    bridge.wait_healthy().await;
    let (status, body) = common::http_get(bridge.http, "/healthz").await;
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "the network is connected: {body}");
    let problem = health["networks"]["dc"]["problem"]
        .as_str()
        .unwrap_or_default();
    assert!(problem.contains("Message Content intent"), "{body}");
    let log = bridge.log();
    assert!(
        log.lines()
            .any(|line| line.contains("WARN") && line.contains("Message Content intent")),
        "{log}"
    );
    // Sending into Discord is not affected.
    alice.say("#a", "still relayed").await;
    w.relayed("still relayed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_given_in_the_config_names_senders_without_manage_webhooks() {
    let w = world().await;
    w.dc.set_manage_webhooks(false);
    let (id, token) = w.dc.add_webhook(&w.general, "Made by an admin");
    let url = format!("{}/api/webhooks/{id}/{token}", w.dc.url());
    let mut alice = IrcPeer::connect(w.irc.port(), "alice", &["#a"]).await;
    let bridge = w.bridge_with(
        TOKEN,
        &format!("      channel_webhooks:\n        \"#general\": {url}\n"),
    );
    bridge.wait_healthy().await;
    alice.say("#a", "through the admin's webhook").await;
    let copy = w.relayed("through the admin's webhook").await;
    assert_eq!(copy.webhook_id.as_deref(), Some(id.as_str()));
    assert_eq!(copy.username.as_deref(), Some("alice"));
    // Its messages are the bridge's own: nothing comes back to IRC.
    w.dc.post(&w.general, &w.erin, "after");
    let next = alice.collect("#a", 1, WAIT).await;
    assert!(next[0].text.ends_with("after"), "{next:?}");
    assert!(
        !bridge.log().contains(&token),
        "the webhook's token is in the log"
    );
}
