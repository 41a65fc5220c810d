//! Reloading the running binary over real ngircd servers: SIGHUP (which used to
//! terminate the daemon) applies a new room on the running IRC connections, with no
//! QUIT and no second registration; a broken file is refused with its position and
//! changes nothing; `switchboard reload` asks the daemon over its admin API and
//! prints what came of it; a network whose section changed is the only one to
//! reconnect.

mod common;

use common::bridge::{BridgeProcess, irc_config};
use common::{WAIT, bridge_does, eventually, http_get};
use std::process::Command;
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const TOKEN: &str = "reload-test-token-0123456789";

fn server(name: &str) -> Ngircd {
    Ngircd::start(NgircdOptions {
        name: format!("{name}.test"),
        flood_throttling: false,
    })
}

/// The config with the admin API on; `routes` is the YAML list body.
fn config(
    http: std::net::SocketAddr,
    state: &std::path::Path,
    ports: (u16, u16),
    routes: &str,
) -> String {
    let base = irc_config(http, state, &[("east", ports.0), ("west", ports.1)], routes);
    format!("admin:\n  enabled: true\n  token: \"{TOKEN}\"\n{base}")
}

const AB: &str = "  - name: ab\n    rooms:\n      - east: \"#a\"\n      - west: \"#b\"\n";

/// Runs `switchboard reload -c path` and returns its output.
async fn switchboard_reload(path: &std::path::Path) -> std::process::Output {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["reload", "-c"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn sighup(bridge: &BridgeProcess) {
    let status = Command::new("kill")
        .args(["-HUP", &bridge.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn health(bridge: &BridgeProcess) -> serde_json::Value {
    let (_, body) = http_get(bridge.http, "/healthz").await;
    serde_json::from_str(&body).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_switchboard_reload_apply_changes_without_reconnecting() {
    let (east, west) = (server("east"), server("west"));
    let ports = (east.port(), west.port());
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a", "#c"]).await;
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b", "#d"]).await;
    let mut bridge = BridgeProcess::start(|http, state| config(http, state, ports, AB));
    bridge.wait_healthy().await;
    alice
        .expect_line("the bridge's JOIN #a", WAIT, bridge_does("JOIN", "#a"))
        .await;
    alice.say("#a", "before").await;
    bob.expect("#b", "before", WAIT).await;

    // SIGHUP with a second route: #c and #d joined on the running connections.
    let path = bridge.config_path();
    let with_cd =
        format!("{AB}  - name: cd\n    rooms:\n      - east: \"#c\"\n      - west: \"#d\"\n");
    std::fs::write(
        &path,
        config(
            bridge.http,
            &bridge.dir.path().join("state"),
            ports,
            &with_cd,
        ),
    )
    .unwrap();
    sighup(&bridge);
    let (_, seen) = alice
        .expect_line("the bridge's JOIN #c", WAIT, bridge_does("JOIN", "#c"))
        .await;
    assert!(
        !seen
            .iter()
            .any(|l| bridge_does("QUIT", "")(l) || bridge_does("JOIN", "#a")(l)),
        "the bridge reconnected: {seen:#?}"
    );
    alice.say("#c", "into the new room").await;
    bob.expect("#d", "into the new room", WAIT).await;
    let status = health(&bridge).await;
    assert_eq!(status["config"]["generation"], 2, "{status}");
    assert_eq!(
        status["config"]["last_reload"]["outcome"], "applied",
        "{status}"
    );

    // A broken file: refused with its position, nothing changes, the daemon runs on.
    std::fs::write(
        &path,
        format!(
            "{}  - name: broken\n    rooms: nope\n",
            std::fs::read_to_string(&path).unwrap()
        ),
    )
    .unwrap();
    sighup(&bridge);
    eventually("the rejected reload in /healthz", || async {
        health(&bridge).await["config"]["last_reload"]["outcome"] == "rejected"
    })
    .await;
    let log = bridge.log();
    let rejected = log
        .lines()
        .find(|line| line.contains("config reload rejected"))
        .expect("a log line for the rejected reload");
    assert!(
        rejected.contains("WARN") && rejected.contains("switchboard.yaml:"),
        "{rejected}"
    );
    alice.say("#a", "still relayed").await;
    bob.expect("#b", "still relayed", WAIT).await;

    // `switchboard reload` on the fixed file (the second route dropped): applied,
    // and #c / #d are parted.
    std::fs::write(
        &path,
        config(bridge.http, &bridge.dir.path().join("state"), ports, AB),
    )
    .unwrap();
    let output = switchboard_reload(&path).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("applied: generation 3"), "{stdout}");
    assert!(
        stdout.contains("\"cd\""),
        "the diff names the removed route: {stdout}"
    );
    alice
        .expect_line("the bridge's PART #c", WAIT, bridge_does("PART", "#c"))
        .await;

    // One connection per network from start to end.
    let (_, metrics) = http_get(bridge.http, "/metrics").await;
    for outcome in ["applied", "rejected"] {
        assert!(
            metrics.contains(&format!(
                "switchboard_config_reloads_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome}: {metrics}"
        );
    }
    let connected_lines = bridge.log().matches("network connected").count();
    assert_eq!(
        connected_lines,
        2,
        "each network connected once:\n{}",
        bridge.log()
    );
    assert!(bridge.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard_reload_prints_a_rejection_with_file_line_and_column() {
    let (east, west) = (server("east"), server("west"));
    let ports = (east.port(), west.port());
    let mut bridge = BridgeProcess::start(|http, state| config(http, state, ports, AB));
    bridge.wait_healthy().await;
    let path = bridge.config_path();
    // Valid for `check`, but changing what only a restart can change.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("retry_max: 1s", "retry_max: 2s");
    std::fs::write(&path, text).unwrap();
    let output = switchboard_reload(&path).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rejected: nothing changed"), "{stderr}");
    assert!(stderr.contains("delivery changed"), "{stderr}");
    assert!(bridge.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_added_changed_and_removed_by_a_reload_and_a_dead_one_rolled_back() {
    let (east, west, north) = (server("east"), server("west"), server("north"));
    let ports = (east.port(), west.port());
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a"]).await;
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    let mut carol = IrcPeer::connect(north.port(), "carol", &["#n"]).await;
    let mut bridge = BridgeProcess::start(|http, state| config(http, state, ports, AB));
    bridge.wait_healthy().await;
    let path = bridge.config_path();
    let base = std::fs::read_to_string(&path).unwrap();
    let with_north = |north_port: u16, west_nick: &str| {
        base.replace(
            "routes:\n",
            &format!("  north:\n    irc:\n      server: 127.0.0.1:{north_port}\n      tls: false\n      nick: switchboard\nroutes:\n"),
        )
        .replace(AB, &format!("{AB}      - north: \"#n\"\n"))
        .replace(
            &format!("server: 127.0.0.1:{}\n      tls: false\n      nick: switchboard", ports.1),
            &format!("server: 127.0.0.1:{}\n      tls: false\n      nick: {west_nick}", ports.1),
        )
        .replace("delivery:\n", "reload:\n  join_deadline: 3s\ndelivery:\n")
    };

    // A network with no rooms whose server is not there: it never connects, so the
    // reload is rolled back at the deadline.
    let closed = switchboard_testkit::free_port();
    let roomless = base.replace(
        "routes:\n",
        &format!("  nowhere:\n    irc:\n      server: 127.0.0.1:{closed}\n      tls: false\n      nick: switchboard\nroutes:\n"),
    ).replace("delivery:\n", "reload:\n  join_deadline: 2s\ndelivery:\n");
    std::fs::write(&path, roomless).unwrap();
    sighup(&bridge);
    eventually("the roomless network rolled back", || async {
        health(&bridge).await["config"]["last_reload"]["outcome"] == "rolled_back"
    })
    .await;
    let status = health(&bridge).await;
    let detail = status["config"]["last_reload"]["detail"].as_str().unwrap();
    assert!(detail.contains("nowhere did not connect"), "{detail}");
    assert!(status["networks"].get("nowhere").is_none(), "{status}");

    // A network whose server is not there: its room is never joined, so the reload
    // is rolled back at the deadline and the network removed again.
    std::fs::write(&path, with_north(closed, "switchboard")).unwrap();
    sighup(&bridge);
    eventually("north's reload rolled back", || async {
        let last = &health(&bridge).await["config"]["last_reload"];
        last["outcome"] == "rolled_back"
            && last["detail"].as_str().is_some_and(|d| d.contains("north"))
    })
    .await;
    let status = health(&bridge).await;
    assert!(
        status["config"]["last_reload"]["detail"]
            .as_str()
            .unwrap()
            .contains("north"),
        "{status}"
    );
    assert!(status["networks"].get("north").is_none(), "{status}");
    assert_eq!(status["config"]["generation"], 1);

    // Now with north up, and west's nick changed: north joins, west alone reconnects.
    std::fs::write(&path, with_north(north.port(), "switchboard2")).unwrap();
    sighup(&bridge);
    carol
        .expect_line("the bridge's JOIN #n", WAIT, bridge_does("JOIN", "#n"))
        .await;
    bob.expect_line("the new west connection's JOIN #b", WAIT, |line: &str| {
        line.starts_with(":switchboard2!") && line.contains(" JOIN ")
    })
    .await;
    eventually("the applied reload in /healthz", || async {
        health(&bridge).await["config"]["generation"] == 2
    })
    .await;
    carol.say("#n", "from the north").await;
    alice.expect("#a", "from the north", WAIT).await;
    bob.expect("#b", "from the north", WAIT).await;
    let east_lines = alice
        .drain("#a", std::time::Duration::from_millis(200))
        .await;
    assert!(east_lines.is_empty(), "{east_lines:?}");

    // Removed again: the bridge quits north; east never reconnected.
    std::fs::write(&path, base.clone()).unwrap();
    sighup(&bridge);
    carol
        .expect_line("the bridge's QUIT", WAIT, bridge_does("QUIT", ""))
        .await;
    let east_connections = bridge
        .log()
        .lines()
        .filter(|l| l.contains("network connected") && l.contains("east"))
        .count();
    assert_eq!(east_connections, 1, "{}", bridge.log());
    assert!(bridge.terminate().success());
}
