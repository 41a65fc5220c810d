//! Live config reloads through the reloader (what SIGHUP, `switchboard reload`, the
//! admin API and the page all use), over fake networks: only the difference is
//! applied, a broken file or a room that cannot be joined changes nothing, rows of
//! a room left without routes are dead-lettered as `route_removed` while a renamed
//! route keeps its rows, and messages flowing through twenty reloads (some rolled
//! back) all arrive, once and in order.
//!
//! The config file names its networks as IRC sections, but the daemon runs fake
//! adapters under those names: route changes never build a network, so the file
//! only has to be valid.

mod common;

use common::reloading::{NETWORKS, Reloading, start_reloading};
use common::*;
use std::time::Duration;
use switchboard::config::edit::{RoomSpec, RouteEdit};
use switchboard::reload::Outcome;
use switchboard_sdk::testing::FakeJoin;
use switchboard_sdk::{NetworkId, RoomId};

fn text(routes: &str) -> String {
    format!("{NETWORKS}routes:\n{routes}")
}

const AB: &str = "  - name: r
    rooms:
      - a: \"#x\"
      - b: \"#x\"
";

async fn start(routes: &str) -> Reloading {
    start_reloading(&text(routes)).await
}

trait Reload {
    async fn reload(&self, routes: &str) -> Outcome;
    fn runs(&self) -> Vec<usize>;
}

impl Reload for Reloading {
    async fn reload(&self, routes: &str) -> Outcome {
        std::fs::write(&self.path, text(routes)).unwrap();
        self.reloader.reload_file().await
    }

    fn runs(&self) -> Vec<usize> {
        self.fakes.iter().map(|fake| fake.runs()).collect()
    }
}

fn rooms(names: &[&str]) -> std::collections::BTreeSet<RoomId> {
    names.iter().map(|name| RoomId::new(*name)).collect()
}

#[tokio::test]
async fn a_room_added_is_joined_and_relayed_without_restarting_any_network() {
    let bridge = start(AB).await;
    let runs = bridge.runs();
    let outcome = bridge.reload(&format!("{AB}      - c: \"#x\"\n")).await;
    let Outcome::Applied { generation, diff } = outcome else {
        panic!("expected applied, got {outcome:?}");
    };
    assert_eq!(generation, 2);
    assert_eq!(diff.routes_changed, ["r"]);
    assert_eq!(diff.rooms_added.len(), 1);
    assert!(diff.networks_added.is_empty() && diff.networks_changed.is_empty());
    assert_eq!(
        bridge.daemon.rooms_of(&NetworkId::new("c")).await,
        Some(rooms(&["#x"]))
    );
    bridge.fakes[0]
        .receive("#x", "alice", "m1", "hello")
        .await
        .unwrap();
    assert_eq!(
        texts(&bridge.fakes[2].wait_for_sent(1, WAIT).await),
        ["hello"]
    );
    assert_eq!(
        texts(&bridge.fakes[1].wait_for_sent(1, WAIT).await),
        ["hello"]
    );
    assert_eq!(bridge.runs(), runs, "no network was restarted");
    let status = bridge.daemon.config_status().load();
    assert_eq!(status.generation, 2);
    assert_eq!(status.last_reload.as_ref().unwrap().outcome, "applied");
    bridge.daemon.shutdown().await;
}

#[tokio::test]
async fn a_broken_file_changes_nothing_and_says_where() {
    let bridge = start(AB).await;
    let outcome = bridge
        .reload("  - name: r\n    rooms:\n      - a: \"#x\"\n      - nowhere: \"#x\"\n")
        .await;
    let Outcome::Rejected { errors } = outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("unknown network \"nowhere\"")
                && e.pos.is_some_and(|pos| pos.line == 12)),
        "{errors:?}"
    );
    assert_eq!(bridge.reloader.current().0, 1);
    let status = bridge.daemon.config_status().load();
    assert_eq!(status.generation, 1);
    assert_eq!(status.last_reload.as_ref().unwrap().outcome, "rejected");
    // Still routed as before.
    bridge.fakes[0]
        .receive("#x", "alice", "m1", "still here")
        .await
        .unwrap();
    assert_eq!(
        texts(&bridge.fakes[1].wait_for_sent(1, WAIT).await),
        ["still here"]
    );
    bridge.daemon.shutdown().await;
}

#[tokio::test]
async fn settings_only_a_restart_can_change_are_refused() {
    let bridge = start(AB).await;
    std::fs::write(
        &bridge.path,
        format!("delivery:\n  retry_max: 1m\n{}", text(AB)),
    )
    .unwrap();
    let outcome = bridge.reloader.reload_file().await;
    let Outcome::Rejected { errors } = outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert!(errors[0].message.contains("delivery changed"), "{errors:?}");
    bridge.daemon.shutdown().await;
}

#[tokio::test]
async fn a_room_that_cannot_be_joined_rolls_the_reload_back() {
    let bridge = start(AB).await;
    bridge.fakes[2].set_join("#y", FakeJoin::Refuse("banned from #y".into()));
    let outcome = bridge.reload(&format!("{AB}      - c: \"#y\"\n")).await;
    let Outcome::RolledBack { cause } = outcome else {
        panic!("expected rolled back, got {outcome:?}");
    };
    assert!(cause.contains("#y") && cause.contains("banned"), "{cause}");
    assert_eq!(bridge.reloader.current().0, 1);
    assert_eq!(
        bridge.daemon.rooms_of(&NetworkId::new("c")).await,
        Some(rooms(&[])),
        "the room is left again"
    );
    // The routes are the old ones: a message reaches b only.
    bridge.fakes[0]
        .receive("#x", "alice", "m1", "hi")
        .await
        .unwrap();
    bridge.fakes[1].wait_for_sent(1, WAIT).await;
    assert!(bridge.fakes[2].sent().is_empty());
    bridge.daemon.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_room_that_never_answers_rolls_back_at_the_deadline() {
    let bridge = start(AB).await;
    bridge.fakes[2].set_join("#y", FakeJoin::NeverAnswer);
    let outcome = bridge
        .reload(&format!(
            "{AB}      - c: \"#y\"\nreload:\n  join_deadline: 5s\n"
        ))
        .await;
    let Outcome::RolledBack { cause } = outcome else {
        panic!("expected rolled back, got {outcome:?}");
    };
    assert!(cause.contains("#y"), "{cause}");
    bridge.daemon.shutdown().await;
}

#[tokio::test]
async fn rows_of_a_room_left_without_routes_are_dead_lettered_but_a_renamed_route_keeps_them() {
    let bridge = start(&format!("{AB}      - c: \"#x\"\n")).await;
    // b and c are down: rows queue for both.
    bridge.fakes[1].set_down(true);
    bridge.fakes[2].set_down(true);
    for i in 0..3 {
        bridge.fakes[0]
            .receive("#x", "alice", &format!("m{i}"), &format!("queued {i}"))
            .await
            .unwrap();
    }
    // Renamed (r -> s) and c dropped: b's rows stay, c's are dead letters.
    let outcome = bridge
        .reload("  - name: s\n    rooms:\n      - a: \"#x\"\n      - b: \"#x\"\n")
        .await;
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    let store = bridge.daemon.store().clone();
    eventually("c's three rows are dead letters", || {
        let store = store.clone();
        async move { store.dead_letters().await.unwrap().len() == 3 }
    })
    .await;
    let letters = store.dead_letters().await.unwrap();
    assert!(
        letters
            .iter()
            .all(|l| l.room.network.as_str() == "c" && l.reason == "route_removed"),
        "{letters:?}"
    );
    bridge.fakes[1].set_down(false);
    assert_eq!(
        texts(&bridge.fakes[1].wait_for_sent(3, WAIT).await),
        ["queued 0", "queued 1", "queued 2"]
    );
    bridge.daemon.shutdown().await;
}

#[tokio::test]
async fn a_thousand_messages_through_twenty_reloads_arrive_once_in_order() {
    let bridge = start(AB).await;
    let sender = bridge.fakes[0].clone();
    let flow = tokio::spawn(async move {
        for i in 0..1000 {
            sender
                .receive("#x", "alice", &format!("m{i}"), &format!("n{i}"))
                .await
                .unwrap();
        }
    });
    // Twenty reloads, each adding or removing rooms beside the flowing route; every
    // fifth adds a room its server refuses, and is rolled back.
    bridge.fakes[2].set_join("#refused", FakeJoin::Refuse("banned".into()));
    for round in 0..20 {
        let routes = if round % 5 == 4 {
            format!("{AB}      - c: \"#refused\"\n")
        } else if round % 2 == 0 {
            format!(
                "{AB}  - name: side\n    rooms:\n      - a: \"#y{round}\"\n      - c: \"#y{round}\"\n"
            )
        } else {
            format!("{AB}      - c: \"#z{round}\"\n")
        };
        let outcome = bridge.reload(&routes).await;
        if round % 5 == 4 {
            assert!(
                matches!(outcome, Outcome::RolledBack { .. }),
                "round {round}: {outcome:?}"
            );
        } else {
            assert!(
                matches!(outcome, Outcome::Applied { .. }),
                "round {round}: {outcome:?}"
            );
        }
    }
    flow.await.unwrap();
    let sent = texts(
        &bridge.fakes[1]
            .wait_for_sent(1000, Duration::from_secs(60))
            .await,
    );
    let expected: Vec<String> = (0..1000).map(|i| format!("n{i}")).collect();
    assert_eq!(sent, expected, "every message once, in order");
    assert_eq!(bridge.reloader.current().0, 17, "16 applied, 4 rolled back");
    bridge.daemon.shutdown().await;
}

#[tokio::test]
async fn an_edit_is_written_back_keeping_comments_and_refused_when_stale() {
    let routes = "  # the main route\n  - name: r\n    rooms:\n      - a: \"#x\"   # keep me\n      - b: \"#x\"\n";
    let bridge = start(routes).await;
    let edit = RouteEdit::AddRoom {
        route: "r".into(),
        room: RoomSpec {
            network: "c".into(),
            room: "#x".into(),
            direction: None,
            nick_template: None,
        },
    };
    let preview = bridge.reloader.edit(&edit, 1, true).await.unwrap();
    assert!(matches!(preview, Outcome::Preview { .. }), "{preview:?}");
    assert_eq!(
        std::fs::read_to_string(&bridge.path).unwrap(),
        text(routes),
        "a dry run writes nothing"
    );
    let applied = bridge.reloader.edit(&edit, 1, false).await.unwrap();
    assert!(
        matches!(applied, Outcome::Applied { generation: 2, .. }),
        "{applied:?}"
    );
    let written = std::fs::read_to_string(&bridge.path).unwrap();
    assert_eq!(written, text(&format!("{routes}      - c: \"#x\"\n")));
    assert!(written.contains("# the main route") && written.contains("# keep me"));
    // Someone still on generation 1 is refused.
    let stale = bridge.reloader.edit(&edit, 1, false).await.unwrap();
    assert!(
        matches!(stale, Outcome::Conflict { generation: 2, .. }),
        "{stale:?}"
    );
    // So is an edit while the file holds changes nobody applied.
    std::fs::write(&bridge.path, format!("{written}# edited by hand\n")).unwrap();
    let remove = RouteEdit::RemoveRoom {
        route: "r".into(),
        network: "c".into(),
        room: "#x".into(),
    };
    let conflict = bridge.reloader.edit(&remove, 2, false).await.unwrap();
    assert!(matches!(conflict, Outcome::Conflict { .. }), "{conflict:?}");
    bridge.daemon.shutdown().await;
}

#[tokio::test]
async fn a_watched_file_is_reloaded_when_it_changes() {
    let bridge = start(AB).await;
    let watcher = tokio::spawn(switchboard::reload::watch::run(bridge.reloader.clone()));
    std::fs::write(&bridge.path, text(&format!("{AB}      - c: \"#x\"\n"))).unwrap();
    let reloader = bridge.reloader.clone();
    eventually("the changed file applied", || {
        let reloader = reloader.clone();
        async move { reloader.current().0 == 2 }
    })
    .await;
    assert_eq!(
        bridge.daemon.rooms_of(&NetworkId::new("c")).await,
        Some(rooms(&["#x"]))
    );
    watcher.abort();
    bridge.daemon.shutdown().await;
}
