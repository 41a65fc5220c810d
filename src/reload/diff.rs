//! What a new config changes against the running one: routes, rooms and networks
//! added, removed or changed, and the settings that only a restart can change.

use crate::config::Config;
use serde::Serialize;
use std::collections::BTreeSet;

/// One room as the diff names it: its network and its name as networks of its
/// protocol write it in events (so `#Rust` and `#rust` on IRC are one room).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RoomRef {
    pub network: String,
    pub room: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    pub routes_added: Vec<String>,
    pub routes_removed: Vec<String>,
    /// Same name, different rooms or settings.
    pub routes_changed: Vec<String>,
    /// Rooms that no route had and some route has now.
    pub rooms_added: Vec<RoomRef>,
    /// Rooms that some route had and none has now.
    pub rooms_removed: Vec<RoomRef>,
    pub networks_added: Vec<String>,
    pub networks_removed: Vec<String>,
    /// Same name, different section: restarted with the new one.
    pub networks_changed: Vec<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
    }
}

/// The difference between the running config and `new`.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut out = ConfigDiff::default();
    for route in &new.routes {
        match old.routes.iter().find(|r| r.name == route.name) {
            None => out.routes_added.push(route.name.clone()),
            Some(before) if !before.same_as(route) => out.routes_changed.push(route.name.clone()),
            Some(_) => {}
        }
    }
    out.routes_removed = old
        .routes
        .iter()
        .filter(|route| !new.routes.iter().any(|r| r.name == route.name))
        .map(|route| route.name.clone())
        .collect();
    let (before, after) = (rooms(old), rooms(new));
    out.rooms_added = after.difference(&before).cloned().collect();
    out.rooms_removed = before.difference(&after).cloned().collect();
    for (name, network) in &new.networks {
        match old.networks.get(name) {
            None => out.networks_added.push(name.clone()),
            Some(running) if !running.same_as(network) => out.networks_changed.push(name.clone()),
            Some(_) => {}
        }
    }
    out.networks_removed = old
        .networks
        .keys()
        .filter(|name| !new.networks.contains_key(*name))
        .cloned()
        .collect();
    out
}

/// Every room the routes of `config` link, by canonical name.
pub fn rooms(config: &Config) -> BTreeSet<RoomRef> {
    config
        .routes
        .iter()
        .flat_map(|route| &route.rooms)
        .map(|room| RoomRef {
            network: room.network.clone(),
            room: config
                .canonical_room(&room.network, &room.room)
                .as_str()
                .to_owned(),
        })
        .collect()
}

/// The top-level settings that differ and that the running daemon cannot change:
/// the store, the HTTP listener and the delivery settings are built once at start.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.state_dir != new.state_dir {
        changed.push("state_dir");
    }
    if old.http != new.http {
        changed.push("http");
    }
    if old.delivery != new.delivery {
        changed.push("delivery");
    }
    if old.store != new.store {
        changed.push("store");
    }
    if old.admin.token.is_some() != new.admin.token.is_some() {
        changed.push("admin.enabled");
    }
    // The watcher is started (or not) with the daemon.
    if old.reload.watch != new.reload.watch {
        changed.push("reload.watch");
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn config(networks: &str, routes: &str) -> Config {
        let text = format!("networks:\n{networks}routes:\n{routes}");
        load_str(&text).unwrap_or_else(|errors| panic!("{errors:?}\n{text}"))
    }

    const TWO: &str = "  a:\n    irc:\n      server: irc.example.org:6697\n      nick: bridge\n  b:\n    irc:\n      server: irc.example.net:6697\n      nick: bridge\n";

    #[test]
    fn nothing_changed_is_empty() {
        let routes = "  - name: r\n    rooms:\n      - a: \"#x\"\n      - b: \"#x\"\n";
        assert!(diff(&config(TWO, routes), &config(TWO, routes)).is_empty());
    }

    #[test]
    fn a_room_added_to_a_route_changes_the_route_and_adds_the_room() {
        let old = config(
            TWO,
            "  - name: r\n    rooms:\n      - a: \"#x\"\n      - b: \"#x\"\n",
        );
        let new = config(
            TWO,
            "  - name: r\n    rooms:\n      - a: \"#x\"\n      - b: \"#x\"\n      - b: \"#Y\"\n",
        );
        let d = diff(&old, &new);
        assert_eq!(d.routes_changed, ["r"]);
        // IRC channel names are case-insensitive: the canonical form is compared.
        assert_eq!(
            d.rooms_added,
            [RoomRef {
                network: "b".into(),
                room: "#y".into()
            }]
        );
        assert!(d.rooms_removed.is_empty() && d.routes_added.is_empty());
    }

    #[test]
    fn a_renamed_route_with_the_same_rooms_adds_and_removes_no_room() {
        let old = config(
            TWO,
            "  - name: r\n    rooms:\n      - a: \"#x\"\n      - b: \"#x\"\n",
        );
        let new = config(
            TWO,
            "  - name: s\n    rooms:\n      - a: \"#X\"\n      - b: \"#x\"\n",
        );
        let d = diff(&old, &new);
        assert_eq!(
            (d.routes_added, d.routes_removed),
            (vec!["s".into()], vec!["r".into()])
        );
        assert!(d.rooms_added.is_empty() && d.rooms_removed.is_empty());
    }

    #[test]
    fn networks_added_removed_and_changed() {
        let old = config(
            TWO,
            "  - name: r\n    rooms:\n      - a: \"#x\"\n      - b: \"#x\"\n",
        );
        let three = "  a:\n    irc:\n      server: irc.example.org:6697\n      nick: other\n  c:\n    irc:\n      server: irc.example.com:6697\n      nick: bridge\n";
        let new = config(
            three,
            "  - name: r\n    rooms:\n      - a: \"#x\"\n      - c: \"#x\"\n",
        );
        let d = diff(&old, &new);
        assert_eq!(d.networks_added, ["c"]);
        assert_eq!(d.networks_removed, ["b"]);
        assert_eq!(d.networks_changed, ["a"]);
        assert_eq!(d.rooms_removed.len(), 1);
        assert_eq!(d.rooms_added.len(), 1);
    }

    #[test]
    fn settings_built_at_start_need_a_restart() {
        let routes = "  - name: r\n    rooms:\n      - a: \"#x\"\n      - b: \"#x\"\n";
        let old = config(TWO, routes);
        let new = load_str(&format!(
            "delivery:\n  retry_max: 1m\nnetworks:\n{TWO}routes:\n{routes}"
        ))
        .unwrap();
        assert_eq!(needs_restart(&old, &new), ["delivery"]);
        assert!(needs_restart(&old, &old).is_empty());
        let watching = load_str(&format!(
            "reload:\n  watch: true\n  join_deadline: 5s\nnetworks:\n{TWO}routes:\n{routes}"
        ))
        .unwrap();
        assert_eq!(
            needs_restart(&old, &watching),
            ["reload.watch"],
            "the deadline may change"
        );
    }
}
