//! Rooms and networks changed on a running daemon (the in-process `Daemon` API):
//! over real ngircd servers, a room added to the routes is JOINed on the running
//! connection and a removed one PARTed; a whole network is added (it connects and
//! relays) and removed (it QUITs) while the others relay on, never reconnecting.
//! With fake networks: room sets follow the routes, and a removed network's rows
//! wait in the store until it is back.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use switchboard::config::RouteConfig;
use switchboard_irc::IrcAdapter;
use switchboard_sdk::testing::FakeAdapter;
use switchboard_sdk::{Adapter, ConnectionState, NetworkId, RoomId};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const ZWJ: &str = "\u{200D}";

fn server(name: &str) -> Ngircd {
    Ngircd::start(NgircdOptions {
        name: format!("{name}.test"),
        flood_throttling: false,
    })
}

fn irc(port: u16) -> Arc<dyn Adapter> {
    IrcAdapter::new(
        serde_json::from_value(serde_json::json!({
            "server": format!("127.0.0.1:{port}"),
            "tls": false,
            "nick": "switchboard",
        }))
        .unwrap(),
    )
}

/// Fails if the bridge quit or registered again among `lines` (seen by a peer who
/// shares a channel with it).
fn assert_no_reconnect(lines: &[String]) {
    let quit = bridge_does("QUIT", "");
    let rejoined_a = bridge_does("JOIN", "#a");
    assert!(
        !lines.iter().any(|line| quit(line) || rejoined_a(line)),
        "the bridge reconnected: {lines:#?}"
    );
}

fn ab() -> RouteConfig {
    route("ab", &[("east", "#a"), ("west", "#b")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_added_to_the_routes_is_joined_and_a_removed_one_parted_on_the_same_connection() {
    let (east, west) = (server("east"), server("west"));
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a", "#c"]).await;
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b", "#d"]).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(
        dir.path(),
        vec![ab()],
        vec![("east", irc(east.port())), ("west", irc(west.port()))],
    )
    .await;
    let (east_id, west_id) = (NetworkId::new("east"), NetworkId::new("west"));
    eventually("both networks connected", || async {
        daemon.health().all_connected()
    })
    .await;
    alice
        .expect_line(
            "the bridge's first JOIN #a",
            WAIT,
            bridge_does("JOIN", "#a"),
        )
        .await;
    alice.say("#a", "before the change").await;
    bob.expect("#b", "before the change", WAIT).await;

    // Add a route: the bridge JOINs #c and #d without reconnecting.
    daemon
        .set_routes(&[ab(), route("cd", &[("east", "#c"), ("west", "#d")])])
        .await;
    let (_, before) = alice
        .expect_line("the bridge's JOIN #c", WAIT, bridge_does("JOIN", "#c"))
        .await;
    assert_no_reconnect(&before);
    bob.expect_line("the bridge's JOIN #d", WAIT, bridge_does("JOIN", "#d"))
        .await;
    assert_eq!(
        daemon.rooms_of(&east_id).await,
        Some([RoomId::new("#a"), RoomId::new("#c")].into())
    );

    alice.say("#c", "into the new room").await;
    let got = bob.expect("#d", "into the new room", WAIT).await;
    assert_eq!(got.text, format!("<a{ZWJ}lice> into the new room"));
    bob.say("#d", "and back").await;
    let got = alice.expect("#c", "and back", WAIT).await;
    assert_eq!(got.text, format!("<b{ZWJ}ob> and back"));

    // Remove it: the bridge PARTs, and nothing more is relayed from #c.
    daemon.set_routes(&[ab()]).await;
    let (_, before) = alice
        .expect_line("the bridge's PART #c", WAIT, bridge_does("PART", "#c"))
        .await;
    assert_no_reconnect(&before);
    bob.expect_line("the bridge's PART #d", WAIT, bridge_does("PART", "#d"))
        .await;
    alice.say("#c", "not relayed any more").await;
    alice.say("#a", "still relayed").await;
    bob.expect("#b", "still relayed", WAIT).await;
    let leaked = bob.drain("#d", Duration::from_secs(1)).await;
    assert!(leaked.is_empty(), "relayed from a removed room: {leaked:?}");

    // One connection each from start to end.
    assert_eq!(daemon.health().connections(&east_id), 1);
    assert_eq!(daemon.health().connections(&west_id), 1);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_added_and_removed_at_run_time_leaves_the_others_alone() {
    let (east, west, north) = (server("east"), server("west"), server("north"));
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a"]).await;
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b"]).await;
    let mut carol = IrcPeer::connect(north.port(), "carol", &["#n"]).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(
        dir.path(),
        vec![ab()],
        vec![("east", irc(east.port())), ("west", irc(west.port()))],
    )
    .await;
    let (east_id, west_id, north_id) = (
        NetworkId::new("east"),
        NetworkId::new("west"),
        NetworkId::new("north"),
    );
    eventually("both networks connected", || async {
        daemon.health().all_connected()
    })
    .await;

    daemon
        .add_network(north_id.clone(), irc(north.port()))
        .await
        .unwrap();
    daemon
        .set_routes(&[route(
            "ab",
            &[("east", "#a"), ("west", "#b"), ("north", "#n")],
        )])
        .await;
    carol
        .expect_line("the bridge's JOIN #n", WAIT, bridge_does("JOIN", "#n"))
        .await;
    eventually("the new network connected", || async {
        daemon.health().state_of(&north_id) == Some(ConnectionState::Connected)
    })
    .await;

    alice.say("#a", "to everyone").await;
    bob.expect("#b", "to everyone", WAIT).await;
    let got = carol.expect("#n", "to everyone", WAIT).await;
    assert_eq!(got.text, format!("<a{ZWJ}lice> to everyone"));
    carol.say("#n", "hello from north").await;
    alice.expect("#a", "hello from north", WAIT).await;
    bob.expect("#b", "hello from north", WAIT).await;

    // Removed: it QUITs; the others relay on, on their first connection.
    daemon.remove_network(&north_id).await.unwrap();
    carol
        .expect_line("the bridge's QUIT", WAIT, bridge_does("QUIT", ""))
        .await;
    alice.say("#a", "after north left").await;
    bob.expect("#b", "after north left", WAIT).await;
    bob.say("#b", "west still here").await;
    alice.expect("#a", "west still here", WAIT).await;
    assert_eq!(daemon.health().state_of(&north_id), None);
    assert_eq!(daemon.rooms_of(&north_id).await, None);
    assert_eq!(daemon.health().connections(&east_id), 1);
    assert_eq!(daemon.health().connections(&west_id), 1);
    assert!(
        daemon.remove_network(&north_id).await.is_err(),
        "a removed network cannot be removed twice"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_sets_follow_the_routes_and_a_removed_network_s_rows_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut fakes = fakes(3, false).into_iter();
    let mut next = || -> Arc<FakeAdapter> { fakes.next().unwrap() };
    let (one, two, three) = (next(), next(), next());
    let daemon = start(
        dir.path(),
        vec![route("r", &[("one", "#x"), ("two", "#y")])],
        vec![
            ("one", one.clone() as Arc<dyn Adapter>),
            ("two", two.clone() as Arc<dyn Adapter>),
        ],
    )
    .await;
    one.wait_for_rooms(&["#x"], WAIT).await;
    two.wait_for_rooms(&["#y"], WAIT).await;

    // A network added at run time gets its rooms and relays.
    daemon
        .add_network(NetworkId::new("three"), three.clone())
        .await
        .unwrap();
    daemon
        .set_routes(&[
            route("r", &[("one", "#x"), ("two", "#y")]),
            route("s", &[("one", "#x2"), ("three", "#z")]),
        ])
        .await;
    one.wait_for_rooms(&["#x", "#x2"], WAIT).await;
    three.wait_for_rooms(&["#z"], WAIT).await;
    two.wait_for_rooms(&["#y"], WAIT).await;
    assert_eq!(one.runs(), 1, "a room change restarted the adapter");
    one.receive("#x2", "ann", "m1", "to three").await.unwrap();
    three.wait_for_sent(1, WAIT).await;

    // Removed: its rows stay queued; added back, they are delivered.
    daemon
        .remove_network(&NetworkId::new("three"))
        .await
        .unwrap();
    assert!(three.rooms().is_none(), "the removed network still runs");
    one.receive("#x2", "ann", "m2", "while three is away")
        .await
        .unwrap();
    one.receive("#x", "ann", "m3", "to two meanwhile")
        .await
        .unwrap();
    let sent = two.wait_for_sent(1, WAIT).await;
    assert_eq!(texts(&sent), vec!["to two meanwhile"]);
    assert_eq!(texts(&three.sent()), vec!["to three"]);
    daemon
        .add_network(NetworkId::new("three"), three.clone())
        .await
        .unwrap();
    let sent = three.wait_for_sent(2, WAIT).await;
    assert_eq!(texts(&sent), vec!["to three", "while three is away"]);
    assert_eq!(three.runs(), 2);

    // Restarting one network runs its adapter again; the others keep their run.
    daemon
        .restart_network(&NetworkId::new("two"))
        .await
        .unwrap();
    eventually("two runs again", || async { two.runs() == 2 }).await;
    two.wait_for_rooms(&["#y"], WAIT).await;
    assert_eq!(one.runs(), 1);
    assert_eq!(three.runs(), 2);
    one.receive("#x", "ann", "m4", "after the restart")
        .await
        .unwrap();
    let sent = two.wait_for_sent(2, WAIT).await;
    assert_eq!(texts(&sent)[1], "after the restart");
    daemon.shutdown().await;
}
