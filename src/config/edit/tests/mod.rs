//! The edit module's tests: the fixtures and helpers here, the cases by theme below.

mod layouts;
mod refusals;
mod strings;

use super::write::{duration_text, quote};
use super::*;
use crate::config::types::DEFAULT_NICK_TEMPLATE;
use crate::config::{Config, RouteConfig, duration, load_str};
use std::time::Duration;

const NETWORKS: &str = "networks:
  libera:
    irc: {server: irc.libera.chat:6697, nick: switchboard}
  oftc:
    irc: {server: irc.oftc.net:6697, nick: switchboard}
";

/// In the style of config.example.yaml: comments between keys and rooms, room
/// options, a flow-style route, a tab in a comment, trailing comments.
const BASE: &str = "# Switchboard test config.
networks:
  libera:
    irc:
      server: irc.libera.chat:6697
      nick: switchboard
  oftc:
    irc:
      server: irc.oftc.net:6697
      nick: switchboard

# Routes: which rooms form one conversation.
routes:
  - name: rust                      # Required, unique.
    # How a relayed sender is shown.
    nick_template: \"<{nick}> \"
    relay_membership: false
    max_age: 1h
    ignore:
      nicks: [\"^ChanServ$\", \"bot$\"]   # matched against the sender's name
    rooms:
      - libera: \"#rust\"
      # The OFTC side shows the network.
      - oftc: \"#rust\"
        nick_template: \"[{network}] {nick}: \"
      - libera: '#rust-es'
  - name: announcements   # one way
    rooms:
      - libera: \"#project-announce\"
        # Out only.
        direction: source
      - oftc: \"#project-announce\"
        direction: sink
  - {name: compact, rooms: [{libera: \"#c\"}, {oftc: \"#c\"}]}
  #\tRoutes end here (a tab after the hash).
";

/// Lists at the key's own column (`- name:` under `routes:`), routes last in the file.
fn zero() -> String {
    format!(
        "{NETWORKS}routes:
- name: zero
  rooms:
  - libera: \"#zero\"
  - oftc: \"#zero\"
"
    )
}

/// Four-space lists.
fn four() -> String {
    format!(
        "{NETWORKS}routes:
    - name: four
      rooms:
          - libera: \"#four\"
            direction: both
          - oftc: \"#four\"
"
    )
}

fn room(network: &str, name: &str) -> RoomSpec {
    RoomSpec {
        network: network.into(),
        room: name.into(),
        direction: None,
        nick_template: None,
    }
}

fn with_direction(mut room: RoomSpec, direction: Direction) -> RoomSpec {
    room.direction = Some(direction);
    room
}

fn route(name: &str, rooms: Vec<RoomSpec>) -> RouteSpec {
    RouteSpec {
        name: name.into(),
        rooms,
        nick_template: None,
        relay_membership: None,
        max_age: None,
    }
}

/// `text` with `old` (which must occur once) replaced by `new`.
fn swap(text: &str, old: &str, new: &str) -> String {
    assert_eq!(text.matches(old).count(), 1, "{old:?} must occur once");
    text.replacen(old, new, 1)
}

/// What the loaded config must show after the edit.
enum Loads {
    Route(RouteSpec),
    NoRoute(&'static str),
    Error(&'static str),
}

/// Applies `edit` to `input` in four forms (LF and CRLF line ends, with and
/// without a final newline): each result must be `expected` in the same form.
/// Then the LF result is loaded and checked against `loads`.
fn check(case: &str, input: &str, edit: &RouteEdit, expected: &str, loads: Loads) {
    for crlf in [false, true] {
        for final_newline in [true, false] {
            let form = |text: &str| {
                let mut text = text.to_owned();
                if !final_newline {
                    assert_eq!(
                        text.pop(),
                        Some('\n'),
                        "{case}: fixtures end with a newline"
                    );
                }
                if crlf {
                    text = text.replace('\n', "\r\n");
                }
                text
            };
            let result = apply(&form(input), edit).unwrap_or_else(|error| {
                panic!("{case} (crlf {crlf}, final newline {final_newline}): {error}")
            });
            assert_eq!(
                result,
                form(expected),
                "{case} (crlf {crlf}, final newline {final_newline})"
            );
        }
    }
    match (load_str(expected), loads) {
        (Ok(config), Loads::Route(spec)) => assert_route(&config, &spec),
        (Ok(config), Loads::NoRoute(name)) => {
            assert!(
                config.routes.iter().all(|r| r.name != name),
                "{case}: {name} still there"
            )
        }
        (Err(errors), Loads::Error(message)) => assert!(
            errors.iter().any(|e| e.message.contains(message)),
            "{case}: {errors:?}"
        ),
        (Ok(_), Loads::Error(message)) => panic!("{case}: loads, expected {message:?}"),
        (Err(errors), _) => panic!("{case}: does not load: {errors:?}\n{expected}"),
    }
}

fn find<'c>(config: &'c Config, name: &str) -> &'c RouteConfig {
    config
        .routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route {name:?}"))
}

/// The loaded route is what the spec says.
fn assert_route(config: &Config, spec: &RouteSpec) {
    let route = find(config, &spec.name);
    assert_eq!(
        route.nick_template,
        spec.nick_template
            .as_deref()
            .unwrap_or(DEFAULT_NICK_TEMPLATE)
    );
    assert_eq!(
        route.relay_membership,
        spec.relay_membership.unwrap_or(false)
    );
    assert_eq!(
        route.max_age,
        spec.max_age
            .as_deref()
            .map(|age| duration::parse(age, Duration::MAX).unwrap())
    );
    let rooms: Vec<_> = route
        .rooms
        .iter()
        .map(|r| {
            (
                r.network.as_str(),
                r.room.as_str(),
                r.direction,
                r.nick_template.as_deref(),
            )
        })
        .collect();
    let wanted: Vec<_> = spec
        .rooms
        .iter()
        .map(|r| {
            (
                r.network.as_str(),
                r.room.as_str(),
                r.direction.unwrap_or_default(),
                r.nick_template.as_deref(),
            )
        })
        .collect();
    assert_eq!(rooms, wanted, "rooms of {}", spec.name);
}

/// The rust route of BASE as a spec.
fn rust() -> RouteSpec {
    RouteSpec {
        nick_template: Some("<{nick}> ".into()),
        relay_membership: Some(false),
        max_age: Some("1h".into()),
        ..route(
            "rust",
            vec![
                room("libera", "#rust"),
                RoomSpec {
                    nick_template: Some("[{network}] {nick}: ".into()),
                    ..room("oftc", "#rust")
                },
                room("libera", "#rust-es"),
            ],
        )
    }
}

#[test]
fn the_fixtures_load() {
    assert_route(&load_str(BASE).unwrap(), &rust());
    load_str(&zero()).unwrap();
    load_str(&four()).unwrap();
}

#[test]
fn specs_read_from_json() {
    let spec: RouteSpec = serde_json::from_value(serde_json::json!({
        "name": "rust",
        "rooms": [
            {"network": "libera", "room": "#rust", "direction": "sink", "nick_template": null},
            {"network": "oftc", "room": "#rust"}
        ],
        "max_age": "1h"
    }))
    .unwrap();
    assert_eq!(
        spec,
        RouteSpec {
            max_age: Some("1h".into()),
            ..route(
                "rust",
                vec![
                    with_direction(room("libera", "#rust"), Direction::Sink),
                    room("oftc", "#rust")
                ]
            )
        }
    );
    for bad in [
        serde_json::json!({"name": "r", "rooms": [], "colour": "red"}),
        serde_json::json!({"name": "r", "rooms": [{"network": "a", "room": "b", "direction": "up"}]}),
        serde_json::json!({"name": "r", "rooms": [{"network": "a", "room": "b", "queued": 0}]}),
        serde_json::json!({"rooms": []}),
    ] {
        assert!(
            serde_json::from_value::<RouteSpec>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}
