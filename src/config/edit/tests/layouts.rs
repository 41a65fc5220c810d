//! Edits change only their lines, follow the file's indentation, and keep the
//! example config's comments.

use super::*;

#[test]
fn edits_change_only_their_lines() {
    let dev = route(
        "dev",
        vec![
            room("libera", "#dev"),
            with_direction(room("oftc", "#dev"), Direction::Sink),
        ],
    );
    check(
        "add a route after the last one, in the routes' indentation",
        BASE,
        &RouteEdit::AddRoute(dev.clone()),
        &swap(
            BASE,
            "{oftc: \"#c\"}]}\n",
            "{oftc: \"#c\"}]}
  - name: dev
    rooms:
      - libera: \"#dev\"
      - oftc: \"#dev\"
        direction: sink
",
        ),
        Loads::Route(dev),
    );

    let changed = RouteSpec {
        nick_template: Some("{nick}: ".into()),
        relay_membership: None,
        max_age: None,
        rooms: vec![
            room("libera", "#rust"),
            with_direction(room("oftc", "#rust"), Direction::Sink),
            room("libera", "#rust-offtopic"),
        ],
        ..rust()
    };
    check(
        "replace a route: values in place, defaults deleted, rooms matched",
        BASE,
        &RouteEdit::ReplaceRoute {
            name: "rust".into(),
            spec: changed.clone(),
        },
        &swap(
            &swap(
                BASE,
                "    nick_template: \"<{nick}> \"
    relay_membership: false
    max_age: 1h
",
                "    nick_template: \"{nick}: \"
    relay_membership: false
",
            ),
            "      - oftc: \"#rust\"
        nick_template: \"[{network}] {nick}: \"
      - libera: '#rust-es'
",
            "      - oftc: \"#rust\"
        direction: sink
      - libera: \"#rust-offtopic\"
",
        ),
        Loads::Route(changed),
    );

    check(
        "replace a route with itself: nothing changes",
        BASE,
        &RouteEdit::ReplaceRoute {
            name: "rust".into(),
            spec: rust(),
        },
        BASE,
        Loads::Route(rust()),
    );

    let news = route(
        "news",
        vec![
            with_direction(room("libera", "#project-announce"), Direction::Source),
            with_direction(room("oftc", "#project-announce"), Direction::Sink),
        ],
    );
    check(
        "rename a route: its comments stay",
        BASE,
        &RouteEdit::ReplaceRoute {
            name: "announcements".into(),
            spec: news.clone(),
        },
        &swap(
            BASE,
            "  - name: announcements   # one way",
            "  - name: news   # one way",
        ),
        Loads::Route(news),
    );

    let compact = route(
        "compact",
        vec![
            room("libera", "#c"),
            with_direction(room("oftc", "#c"), Direction::Sink),
        ],
    );
    check(
        "replace a flow-style route: rewritten in block style",
        BASE,
        &RouteEdit::ReplaceRoute {
            name: "compact".into(),
            spec: compact.clone(),
        },
        &swap(
            BASE,
            "  - {name: compact, rooms: [{libera: \"#c\"}, {oftc: \"#c\"}]}\n",
            "  - name: compact
    rooms:
      - libera: \"#c\"
      - oftc: \"#c\"
        direction: sink
",
        ),
        Loads::Route(compact),
    );

    check(
        "remove a route: the comments around it stay",
        BASE,
        &RouteEdit::RemoveRoute {
            name: "announcements".into(),
        },
        &swap(
            BASE,
            "  - name: announcements   # one way
    rooms:
      - libera: \"#project-announce\"
        # Out only.
        direction: source
      - oftc: \"#project-announce\"
        direction: sink
",
            "",
        ),
        Loads::NoRoute("announcements"),
    );

    check(
        "remove a flow-style route",
        BASE,
        &RouteEdit::RemoveRoute {
            name: "compact".into(),
        },
        &swap(
            BASE,
            "  - {name: compact, rooms: [{libera: \"#c\"}, {oftc: \"#c\"}]}\n",
            "",
        ),
        Loads::NoRoute("compact"),
    );

    let mut with_room = rust();
    with_room
        .rooms
        .push(with_direction(room("libera", "#rust-2"), Direction::Source));
    check(
        "add a room after the route's last room",
        BASE,
        &RouteEdit::AddRoom {
            route: "rust".into(),
            room: with_direction(room("libera", "#rust-2"), Direction::Source),
        },
        &swap(
            BASE,
            "      - libera: '#rust-es'\n",
            "      - libera: '#rust-es'
      - libera: \"#rust-2\"
        direction: source
",
        ),
        Loads::Route(with_room),
    );

    let mut without_room = rust();
    without_room.rooms.remove(1);
    check(
        "remove a room with its option lines; the comment before it stays",
        BASE,
        &RouteEdit::RemoveRoom {
            route: "rust".into(),
            network: "oftc".into(),
            room: "#rust".into(),
        },
        &swap(
            BASE,
            "      - oftc: \"#rust\"
        nick_template: \"[{network}] {nick}: \"
",
            "",
        ),
        Loads::Route(without_room),
    );

    check(
        "remove a room with a comment among its options; the loader reports the rest",
        BASE,
        &RouteEdit::RemoveRoom {
            route: "announcements".into(),
            network: "libera".into(),
            room: "#project-announce".into(),
        },
        &swap(
            BASE,
            "      - libera: \"#project-announce\"
        # Out only.
        direction: source
",
            "",
        ),
        Loads::Error("has 1 room(s)"),
    );
}

#[test]
fn new_text_follows_the_file_indentation() {
    let one = route("one", vec![room("libera", "#one"), room("oftc", "#one")]);
    let z = zero();
    check(
        "zero-indent lists, at the end of the file",
        &z,
        &RouteEdit::AddRoute(one.clone()),
        &format!(
            "{z}- name: one
  rooms:
  - libera: \"#one\"
  - oftc: \"#one\"
"
        ),
        Loads::Route(one.clone()),
    );
    let mut zero_more = route(
        "zero",
        vec![
            room("libera", "#zero"),
            room("oftc", "#zero"),
            with_direction(room("oftc", "#zero2"), Direction::Sink),
        ],
    );
    check(
        "zero-indent rooms",
        &z,
        &RouteEdit::AddRoom {
            route: "zero".into(),
            room: with_direction(room("oftc", "#zero2"), Direction::Sink),
        },
        &format!("{z}  - oftc: \"#zero2\"\n    direction: sink\n"),
        Loads::Route(zero_more.clone()),
    );
    zero_more.rooms.truncate(1);
    check(
        "the last room of the file removed",
        &z,
        &RouteEdit::RemoveRoom {
            route: "zero".into(),
            network: "oftc".into(),
            room: "#zero".into(),
        },
        &swap(&z, "  - oftc: \"#zero\"\n", ""),
        Loads::Error("has 1 room(s)"),
    );
    check(
        "the only route removed leaves an empty list",
        &z,
        &RouteEdit::RemoveRoute {
            name: "zero".into(),
        },
        &format!("{NETWORKS}routes: []\n"),
        Loads::NoRoute("zero"),
    );

    let f = four();
    let five = route(
        "five",
        vec![
            room("libera", "#five"),
            RoomSpec {
                nick_template: Some("{nick}| ".into()),
                ..room("oftc", "#five")
            },
        ],
    );
    check(
        "four-space lists",
        &f,
        &RouteEdit::AddRoute(five.clone()),
        &format!(
            "{f}    - name: five
      rooms:
          - libera: \"#five\"
          - oftc: \"#five\"
            nick_template: \"{{nick}}| \"
"
        ),
        Loads::Route(five),
    );
    let four_spec = route(
        "four",
        vec![
            room("libera", "#four"),
            with_direction(room("oftc", "#four"), Direction::Source),
        ],
    );
    check(
        "four-space room option inserted",
        &f,
        &RouteEdit::ReplaceRoute {
            name: "four".into(),
            spec: four_spec.clone(),
        },
        &format!("{f}            direction: source\n"),
        Loads::Route(four_spec),
    );

    let x = route("x", vec![room("libera", "#x"), room("oftc", "#x")]);
    let x_lines = "  - name: x
    rooms:
      - libera: \"#x\"
      - oftc: \"#x\"
";
    for (case, routes, expected) in [
        (
            "routes: []",
            "routes: []  # none yet\n",
            "routes:  # none yet\n",
        ),
        ("routes: with nothing", "routes:\n", "routes:\n"),
        ("routes: ~", "routes: ~\n", "routes:\n"),
        ("no routes: key", "", "routes:\n"),
    ] {
        check(
            case,
            &format!("{NETWORKS}{routes}"),
            &RouteEdit::AddRoute(x.clone()),
            &format!("{NETWORKS}{expected}{x_lines}"),
            Loads::Route(x.clone()),
        );
    }

    let lonely = format!("{NETWORKS}routes:\n  - name: lonely\n    rooms: []\n");
    let mut lonely_spec = route("lonely", vec![room("libera", "#l")]);
    check(
        "a room added to rooms: []",
        &lonely,
        &RouteEdit::AddRoom {
            route: "lonely".into(),
            room: room("libera", "#l"),
        },
        &format!("{NETWORKS}routes:\n  - name: lonely\n    rooms:\n      - libera: \"#l\"\n"),
        Loads::Error("has 1 room(s)"),
    );
    lonely_spec.rooms.push(room("oftc", "#l"));
    check(
        "a route with rooms: [] replaced",
        &lonely,
        &RouteEdit::ReplaceRoute {
            name: "lonely".into(),
            spec: lonely_spec.clone(),
        },
        &format!(
            "{NETWORKS}routes:\n  - name: lonely\n    rooms:\n      - libera: \"#l\"\n      - oftc: \"#l\"\n"
        ),
        Loads::Route(lonely_spec),
    );
}

/// Edits on the shipped example (its comments, `${...}` secrets in networks,
/// inline comments after values): each change stays on its own lines.
#[test]
fn the_example_config_is_edited_in_place() {
    let example = include_str!("../../../../config.example.yaml");
    assert_eq!(
        apply(
            example,
            &RouteEdit::AddRoom {
                route: "project-chat".into(),
                room: room("matrix", "#new:example.org"),
            }
        ),
        Ok(swap(
            example,
            "      - matrix: \"#project:example.org\"\n",
            "      - matrix: \"#project:example.org\"\n      - matrix: \"#new:example.org\"\n"
        ))
    );
    let mut chat = route(
        "project-chat",
        vec![
            room("libera", "#project"),
            room("slack", "#project"),
            room("discord", "#project"),
            room("matrix", "#project:example.org"),
        ],
    );
    chat.relay_membership = Some(true);
    assert_eq!(
        apply(
            example,
            &RouteEdit::ReplaceRoute {
                name: "project-chat".into(),
                spec: chat
            }
        ),
        Ok(swap(
            example,
            "  - name: project-chat               # IRC <-> Mattermost
    rooms:
      - libera: \"#project\"
      - mattermost: town-square
",
            "  - name: project-chat               # IRC <-> Mattermost
    relay_membership: true
    rooms:
      - libera: \"#project\"
"
        ))
    );
    let mut rust = route("rust", vec![room("libera", "#rust"), room("oftc", "#rust")]);
    rust.max_age = Some("2h".into());
    assert_eq!(
        apply(
            example,
            &RouteEdit::ReplaceRoute {
                name: "rust".into(),
                spec: rust
            }
        ),
        Ok(swap(
            // `nick_template: "<{nick}> "` stays: it is the default the spec means.
            &swap(example, "    max_age: 1h\n", "    max_age: 2h\n"),
            "      - oftc: \"#rust\"\n        nick_template: \"[{network}] {nick}: \"\n",
            "      - oftc: \"#rust\"\n"
        ))
    );
}
