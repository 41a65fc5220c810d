//! What cannot be edited safely is refused with a reason; unknown and conflicting
//! names are errors; odd layouts never panic.

use super::*;

#[test]
fn unsafe_edits_are_refused_with_a_reason() {
    let not_editable = |text: &str, edit: RouteEdit, why: &str| match apply(text, &edit) {
        Err(EditError::NotEditable(message)) => {
            assert!(message.contains(why), "{edit:?}: {message}")
        }
        other => panic!("{edit:?}: {other:?}"),
    };
    let two = |name: &str| route(name, vec![room("libera", "#n"), room("oftc", "#n")]);

    let flow_list =
        format!("{NETWORKS}routes: [{{name: a, rooms: [{{libera: \"#a\"}}, {{oftc: \"#a\"}}]}}]\n");
    not_editable(
        &flow_list,
        RouteEdit::AddRoute(two("b")),
        "flow style ([...])",
    );
    not_editable(
        &flow_list,
        RouteEdit::RemoveRoute { name: "a".into() },
        "flow style",
    );

    not_editable(
        BASE,
        RouteEdit::AddRoom {
            route: "compact".into(),
            room: room("libera", "#d"),
        },
        "flow style ({...})",
    );
    let flow_rooms = format!(
        "{NETWORKS}routes:\n  - name: f\n    rooms: [{{libera: \"#f\"}}, {{oftc: \"#f\"}}]\n"
    );
    not_editable(
        &flow_rooms,
        RouteEdit::AddRoom {
            route: "f".into(),
            room: room("libera", "#g"),
        },
        "rooms of route \"f\" (line 8) are written in flow style",
    );
    not_editable(
        &flow_rooms,
        RouteEdit::RemoveRoom {
            route: "f".into(),
            network: "libera".into(),
            room: "#f".into(),
        },
        "flow style",
    );
    // Replacing the whole route is allowed: it is rewritten in block style.
    assert_eq!(
        apply(
            &flow_rooms,
            &RouteEdit::ReplaceRoute {
                name: "f".into(),
                spec: two("f")
            }
        ),
        Ok(format!(
            "{NETWORKS}routes:\n  - name: f\n    rooms:\n      - libera: \"#n\"\n      - oftc: \"#n\"\n"
        ))
    );

    let anchored = format!(
        "{NETWORKS}routes:
  - name: first
    rooms: &shared
      - libera: \"#s\"
      - oftc: \"#s\"
  - name: second
    rooms: *shared
"
    );
    not_editable(
        &anchored,
        RouteEdit::RemoveRoute {
            name: "first".into(),
        },
        "line 12 is an alias (*name) of the value on line 9 (anchored with &name)",
    );
    not_editable(
        &anchored,
        RouteEdit::AddRoom {
            route: "second".into(),
            room: room("libera", "#t"),
        },
        "alias",
    );
    not_editable(
        &anchored,
        RouteEdit::ReplaceRoute {
            name: "second".into(),
            spec: two("second"),
        },
        "alias",
    );
    // Adding to the anchored list would change the other route too.
    not_editable(
        &anchored,
        RouteEdit::AddRoom {
            route: "first".into(),
            room: room("libera", "#t"),
        },
        "too unusual",
    );
    assert_eq!(
        apply(
            &anchored,
            &RouteEdit::RemoveRoute {
                name: "second".into()
            }
        ),
        Ok(swap(
            &anchored,
            "  - name: second\n    rooms: *shared\n",
            ""
        ))
    );

    let from_env = format!(
        "{NETWORKS}routes:
  - name: ${{ROUTE_NAME}}
    rooms:
      - libera: \"#e\"
      - oftc: \"#e\"
  - name: secret
    rooms:
      - libera: ${{SECRET_ROOM}}
      - oftc: \"#e\"
"
    );
    not_editable(
        &from_env,
        RouteEdit::RemoveRoute { name: "ops".into() },
        "route name on line 7 comes from an environment variable",
    );
    not_editable(
        &from_env,
        RouteEdit::ReplaceRoute {
            name: "secret".into(),
            spec: two("secret"),
        },
        "takes its rooms from an environment variable",
    );
    not_editable(
        &from_env,
        RouteEdit::RemoveRoom {
            route: "secret".into(),
            network: "libera".into(),
            room: "#hidden".into(),
        },
        "room on line 13 comes from an environment variable",
    );
    assert!(
        apply(
            &from_env,
            &RouteEdit::RemoveRoute {
                name: "secret".into()
            }
        )
        .is_ok()
    );
    not_editable(
        BASE,
        RouteEdit::AddRoom {
            route: "rust".into(),
            room: room("libera", "${HOME}"),
        },
        "reads as an environment variable",
    );
}

#[test]
fn missing_and_conflicting_names_are_errors() {
    let two = |name: &str| route(name, vec![room("libera", "#n"), room("oftc", "#n")]);
    assert_eq!(
        apply(
            BASE,
            &RouteEdit::RemoveRoute {
                name: "nope".into()
            }
        ),
        Err(EditError::NoSuchRoute("nope".into()))
    );
    assert_eq!(
        apply(
            BASE,
            &RouteEdit::RemoveRoom {
                route: "rust".into(),
                network: "libera".into(),
                room: "#nope".into()
            }
        ),
        Err(EditError::NoSuchRoom {
            route: "rust".into(),
            network: "libera".into(),
            room: "#nope".into()
        })
    );
    assert_eq!(
        apply(BASE, &RouteEdit::AddRoute(two("rust"))),
        Err(EditError::RouteExists("rust".into()))
    );
    assert_eq!(
        apply(
            BASE,
            &RouteEdit::ReplaceRoute {
                name: "announcements".into(),
                spec: two("rust")
            }
        ),
        Err(EditError::RouteExists("rust".into()))
    );
    assert_eq!(
        apply(
            &format!("{NETWORKS}routes: []\n"),
            &RouteEdit::RemoveRoute { name: "x".into() }
        ),
        Err(EditError::NoSuchRoute("x".into()))
    );
    for broken in ["routes: [\n", "a: 1\na: 2\n", "a: b: c\n"] {
        assert!(
            matches!(
                apply(broken, &RouteEdit::AddRoute(two("x"))),
                Err(EditError::Unparsable(_))
            ),
            "{broken:?}"
        );
    }
}

/// Mutated layouts (each line deleted, doubled, or indented further) give a
/// result or an error, never a panic; a result is checked by `apply` itself.
#[test]
fn odd_layouts_never_panic() {
    let edits = [
        RouteEdit::AddRoute(route("n", vec![room("libera", "#n"), room("oftc", "#n")])),
        RouteEdit::ReplaceRoute {
            name: "rust".into(),
            spec: route("rust", vec![room("oftc", "#rust"), room("libera", "#x")]),
        },
        RouteEdit::ReplaceRoute {
            name: "announcements".into(),
            spec: route("compact", vec![room("oftc", "#c")]),
        },
        RouteEdit::RemoveRoute {
            name: "announcements".into(),
        },
        RouteEdit::AddRoom {
            route: "announcements".into(),
            room: room("libera", "#y"),
        },
        RouteEdit::RemoveRoom {
            route: "rust".into(),
            network: "oftc".into(),
            room: "#rust".into(),
        },
    ];
    let lines: Vec<&str> = BASE.lines().collect();
    let mut variants = Vec::new();
    for index in 0..lines.len() {
        let mut deleted = lines.clone();
        deleted.remove(index);
        let mut doubled = lines.clone();
        doubled.insert(index, lines[index]);
        let indented: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                if i == index {
                    format!("  {line}")
                } else {
                    (*line).to_owned()
                }
            })
            .collect();
        variants.push(deleted.join("\n"));
        variants.push(doubled.join("\n"));
        variants.push(indented.join("\n"));
    }
    let mut applied = 0;
    for text in &variants {
        for edit in &edits {
            applied += usize::from(apply(text, edit).is_ok());
        }
    }
    assert!(applied > variants.len(), "most edits apply: {applied}");
}
