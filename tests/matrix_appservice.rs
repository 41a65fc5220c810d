//! Matrix application-service (puppet) mode through the real daemon binary, a real
//! Synapse and ngircd: `switchboard matrix-registration` makes the registration
//! Synapse loads; IRC users appear in the Matrix room as ghosts of their own (two
//! users, two ghosts, named with the ` (IRC)` suffix); Matrix users reach IRC under
//! their display name; nothing loops; the transactions endpoint checks the hs_token,
//! refuses malformed bodies and ignores a transaction id it has handled. Mattermost
//! (fake) posts, edits and deletes become the ghost's own message, `m.replace` and
//! redaction, also after the daemon restarted in between.

mod common;

use common::WAIT;
use common::bridge::BridgeProcess;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;
use switchboard_testkit::mattermost::FakeMattermost;
use switchboard_testkit::synapse::{MatrixPeer, Synapse, SynapseOptions};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const ZWJ: &str = "\u{200D}";
const ROUTE: &str =
    "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mx: \"#bridge:localhost\"\n";

fn config(http: SocketAddr, state: &std::path::Path, irc_port: u16, homeserver: &str) -> String {
    config_with(http, state, irc_port, homeserver, "", ROUTE)
}

/// `networks`: more network sections (YAML, indented as under `networks:`).
fn config_with(
    http: SocketAddr,
    state: &std::path::Path,
    irc_port: u16,
    homeserver: &str,
    networks: &str,
    routes: &str,
) -> String {
    format!(
        "state_dir: {state}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 500ms\n  shutdown_deadline: 5s\n\
         networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{irc_port}\n      tls: false\n      nick: switchboard\n\
         \x20 mx:\n    matrix:\n      homeserver: {homeserver}\n      user_id: \"@switchboard:localhost\"\n      appservice:\n        ghost_prefix: _sb_\n{networks}\
         routes:\n{routes}",
        state = state.display(),
    )
}

/// Synapse with the daemon's registration, bob's public room `#bridge:localhost`,
/// and the daemon prepared (not started) with `config(http, state, homeserver)`.
struct World {
    /// Runs until the test ends.
    _synapse: Synapse,
    bob: MatrixPeer,
    room: String,
    bridge: BridgeProcess,
    hs_token: String,
}

async fn world(config: impl Fn(SocketAddr, &std::path::Path, &str) -> String) -> World {
    // Synapse must know the registration at start, and the registration must know
    // where the daemon listens: prepare the daemon's config first (the homeserver's
    // address is filled in once Synapse runs), start the daemon last.
    let bridge = BridgeProcess::prepare(|http, state| config(http, state, "http://unset"));
    let (code, yaml, stderr) = registration(&bridge.config_path());
    assert_eq!(code, 0, "matrix-registration failed: {stderr}");
    let (again, yaml_again, _) = registration(&bridge.config_path());
    assert_eq!(
        (again, &yaml_again),
        (0, &yaml),
        "the registration must be stable"
    );
    assert_eq!(
        yaml_value(&yaml, "url"),
        format!("http://{}/webhooks/mx", bridge.http)
    );
    let hs_token = yaml_value(&yaml, "hs_token");
    let synapse = Synapse::start(SynapseOptions {
        appservice_yaml: Some(yaml),
        ..SynapseOptions::default()
    });
    let state = bridge.dir.path().join("state");
    std::fs::write(
        bridge.config_path(),
        config(bridge.http, &state, &synapse.url()),
    )
    .unwrap();
    synapse.register("bob", "bob-password");
    let mut bob = MatrixPeer::login(&synapse.url(), "bob", "bob-password").await;
    let room = bob.create_room(Some("bridge"), false).await;
    World {
        _synapse: synapse,
        bob,
        room,
        bridge,
        hs_token,
    }
}

impl World {
    async fn start_bridge(&mut self) {
        self.bridge.spawn();
        self.bridge.wait_healthy().await;
        common::bridge_bot_joined(&self.bob, &self.room).await;
    }
}

/// Runs `switchboard matrix-registration -c FILE`; (exit code, stdout, stderr).
fn registration(config: &std::path::Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["matrix-registration", "-c"])
        .arg(config)
        .output()
        .expect("run switchboard matrix-registration");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The value of `key: "..."` in the registration.
fn yaml_value(yaml: &str, key: &str) -> String {
    let line = yaml
        .lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{yaml}"));
    serde_json::from_str(line).unwrap_or_else(|_| line.to_owned())
}

fn body(event: &Value) -> &str {
    event["content"]["body"].as_str().unwrap_or_default()
}

async fn put_transaction(
    http: SocketAddr,
    txn: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let auth = token.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    common::http_request(
        http,
        "PUT",
        &format!("/webhooks/mx/_matrix/app/v1/transactions/{txn}"),
        &format!("{auth}Content-Type: application/json\r\n"),
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_users_appear_as_ghosts_matrix_users_by_name_and_nothing_loops() {
    let irc = Ngircd::start(NgircdOptions::default());
    let mut w = world(|http, state, homeserver| config(http, state, irc.port(), homeserver)).await;
    let mut alice = IrcPeer::connect(irc.port(), "alice", &["#a"]).await;
    let mut carol = IrcPeer::connect(irc.port(), "Carol", &["#a"]).await;
    w.start_bridge().await;
    let (bob, room, bridge, hs_token) = (
        &mut w.bob,
        w.room.clone(),
        &mut w.bridge,
        w.hs_token.clone(),
    );

    // IRC -> Matrix: each IRC user is a ghost of their own, without a label.
    alice.say("#a", "hello from alice").await;
    let got = bob
        .expect_message(&room, WAIT, |e| body(e).contains("hello from alice"))
        .await;
    let alice_ghost = "@_sb_irc_alice:localhost";
    assert_eq!(got["sender"], alice_ghost, "{got}");
    assert_eq!(body(&got), "hello from alice");
    assert_eq!(got["content"]["m.mentions"], json!({}));
    let member = bob
        .state(&room, "m.room.member", alice_ghost)
        .await
        .expect("alice's ghost is a member");
    assert_eq!(member["content"]["displayname"], "alice (IRC)");

    carol.say("#a", "hi from carol").await;
    let got = bob
        .expect_message(&room, WAIT, |e| body(e).contains("hi from carol"))
        .await;
    let carol_ghost = "@_sb_irc__carol:localhost";
    assert_eq!(got["sender"], carol_ghost, "{got}");
    let member = bob
        .state(&room, "m.room.member", carol_ghost)
        .await
        .unwrap();
    assert_eq!(member["content"]["displayname"], "Carol (IRC)");

    alice.say("#a", "alice again").await;
    let got = bob
        .expect_message(&room, WAIT, |e| body(e).contains("alice again"))
        .await;
    assert_eq!(
        got["sender"], alice_ghost,
        "the same user is the same ghost"
    );

    // Matrix -> IRC under the display name.
    bob.send_text(&room, "hello irc").await;
    let got = alice.expect("#a", "hello irc", WAIT).await;
    assert_eq!(got.text, format!("<b{ZWJ}ob> hello irc"));

    // Nothing loops: the ghosts' messages never come back to IRC, and the bridge
    // says nothing more in Matrix than what IRC said.
    let echoes = alice.drain("#a", Duration::from_millis(500)).await;
    assert!(
        echoes
            .iter()
            .all(|m| m.from != "switchboard" || m.text.contains("hello irc")),
        "relayed back to IRC: {echoes:?}"
    );
    let extra = bob.drain(&room, Duration::from_millis(500)).await;
    assert!(
        extra.iter().all(|e| e["type"] != "m.room.message"),
        "unexpected messages in Matrix: {extra:?}"
    );

    // The transactions endpoint: token checks, malformed bodies, repeated ids.
    let event = |id: &str, text: &str| {
        json!({ "events": [{
            "type": "m.room.message", "room_id": room, "sender": "@bob:localhost",
            "event_id": id, "origin_server_ts": switchboard_sdk::event::now_ms(),
            "content": { "msgtype": "m.text", "body": text },
        }]})
        .to_string()
    };
    let (status, _) = put_transaction(bridge.http, "t1", None, &event("$x1", "no token")).await;
    assert_eq!(status, 401);
    let (status, _) =
        put_transaction(bridge.http, "t1", Some("wrong"), &event("$x1", "bad token")).await;
    assert_eq!(status, 403);
    let (status, answer) = put_transaction(bridge.http, "t1", Some(&hs_token), "{not json").await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = put_transaction(
        bridge.http,
        "t1",
        Some(&hs_token),
        &event("$x1", "pushed once"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = put_transaction(
        bridge.http,
        "t1",
        Some(&hs_token),
        &event("$x2", "pushed twice"),
    )
    .await;
    assert_eq!(status, 200, "a repeated transaction is acknowledged");
    let (status, _) = put_transaction(
        bridge.http,
        "t2",
        Some(&hs_token),
        &event("$x3", "then the next"),
    )
    .await;
    assert_eq!(status, 200);
    let got = alice.expect("#a", "then the next", WAIT).await;
    assert!(got.text.ends_with("then the next"), "{got:?}");
    let seen = alice.drain("#a", Duration::from_millis(300)).await;
    let all: Vec<&str> = echoes
        .iter()
        .chain(&seen)
        .map(|m| m.text.as_str())
        .collect();
    assert!(
        !all.iter()
            .any(|t| t.contains("token") || t.contains("pushed twice")),
        "refused or repeated transactions were relayed: {all:?}"
    );
    let log = bridge.log();
    assert!(!log.contains(&hs_token), "the hs_token was logged");
    bridge.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_edits_and_deletes_are_the_ghosts_own_also_after_a_restart() {
    let irc = Ngircd::start(NgircdOptions::default());
    let mm = FakeMattermost::start().await;
    mm.set_allow_name_override(true);
    let team = mm.add_team("core");
    let town = mm.add_channel(&team, "town-square");
    let (_bot, bot_token) = mm.add_user("bridge", true);
    let (dana, _) = mm.add_user("dana", false);
    let networks = format!(
        "  mm:\n    mattermost:\n      server: {}\n      team: core\n      token: {bot_token}\n",
        mm.url()
    );
    let routes =
        "  - name: main\n    rooms:\n      - mm: town-square\n      - mx: \"#bridge:localhost\"\n";
    let mut w = world(|http, state, homeserver| {
        config_with(http, state, irc.port(), homeserver, &networks, routes)
    })
    .await;
    w.start_bridge().await;
    let room = w.room.clone();

    let first = mm.post_as(&dana, &town, "first **post**", None);
    let got = w
        .bob
        .expect_message(&room, WAIT, |e| body(e).contains("first"))
        .await;
    let ghost = got["sender"].as_str().unwrap().to_owned();
    assert!(ghost.starts_with("@_sb_mm_"), "{got}");
    let member = w.bob.state(&room, "m.room.member", &ghost).await.unwrap();
    assert_eq!(member["content"]["displayname"], "dana (Mattermost)");
    assert!(
        got["content"]["formatted_body"]
            .as_str()
            .is_some_and(|html| html.contains("<strong>post</strong>")),
        "{got}"
    );
    let first_copy = got["event_id"].as_str().unwrap().to_owned();

    mm.edit_as(&first.id, "first post, edited");
    let edit = w
        .bob
        .expect_message(&room, WAIT, |e| body(e).contains("edited"))
        .await;
    assert_eq!(edit["sender"], ghost.as_str(), "edited by the same ghost");
    assert_eq!(edit["content"]["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(
        edit["content"]["m.relates_to"]["event_id"],
        first_copy.as_str()
    );
    assert_eq!(
        edit["content"]["m.new_content"]["body"],
        "first post, edited"
    );

    // Matrix -> Mattermost under bob's display name.
    w.bob.send_text(&room, "hello mattermost").await;
    mm.wait_until("bob's message on Mattermost", WAIT, |mm| {
        mm.posts(&town)
            .iter()
            .any(|p| p.message.contains("hello mattermost"))
    })
    .await;
    let posts = mm.posts(&town);
    let relayed = posts
        .iter()
        .find(|p| p.message.contains("hello mattermost"))
        .unwrap();
    assert_eq!(
        relayed.prop("override_username"),
        Some("bob"),
        "{relayed:?}"
    );

    // A message relayed before a restart is still edited and deleted as the ghost.
    let second = mm.post_as(&dana, &town, "second post", None);
    let got = w
        .bob
        .expect_message(&room, WAIT, |e| body(e).contains("second post"))
        .await;
    let second_copy = got["event_id"].as_str().unwrap().to_owned();
    w.bridge.terminate();
    w.start_bridge().await;
    mm.edit_as(&second.id, "second post, edited after the restart");
    let edit = w
        .bob
        .expect_message(&room, WAIT, |e| body(e).contains("after the restart"))
        .await;
    assert_eq!(edit["sender"], ghost.as_str());
    assert_eq!(
        edit["content"]["m.relates_to"]["event_id"],
        second_copy.as_str()
    );
    mm.delete_post(&second.id);
    common::eventually("the copy of the deleted post is redacted", || async {
        let event = w.bob.event(&room, &second_copy).await;
        event["unsigned"]["redacted_because"]["sender"] == ghost.as_str()
    })
    .await;

    // Nothing loops back to Mattermost: only bob's message was posted by the bridge.
    let bridged: Vec<String> = mm
        .posts(&town)
        .iter()
        .filter(|p| p.user_id != dana && !p.is_system())
        .map(|p| p.message.clone())
        .collect();
    assert_eq!(bridged.len(), 1, "{bridged:?}");
    w.bridge.terminate();
}

#[test]
fn the_registration_needs_the_http_server_and_an_appservice_network() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.yaml");
    let state = dir.path().join("state");
    let without_http = config(
        "127.0.0.1:1".parse().unwrap(),
        &state,
        6667,
        "http://127.0.0.1:8008",
    )
    .replace("http:\n  listen: 127.0.0.1:1\n", "http:\n  listen: false\n");
    std::fs::write(&path, &without_http).unwrap();
    let (code, _, stderr) = registration(&path);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("HTTP server is off"), "{stderr}");

    let relay_bot = config(
        "127.0.0.1:1".parse().unwrap(),
        &state,
        6667,
        "http://127.0.0.1:8008",
    )
    .replace(
        "      appservice:\n        ghost_prefix: _sb_\n",
        "      password: x\n",
    );
    std::fs::write(&path, &relay_bot).unwrap();
    let (code, _, stderr) = registration(&path);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no Matrix network has an `appservice` section"),
        "{stderr}"
    );
}
