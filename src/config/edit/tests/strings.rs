//! Any text survives the round trip: hostile names and values, and quoting.

use super::*;

#[test]
fn hostile_strings_survive_the_round_trip() {
    let hostile = RouteSpec {
        nick_template: Some("<{nick}> \\ \n".into()),
        relay_membership: Some(true),
        max_age: Some("1h30m".into()),
        ..route(
            "a: #b",
            vec![
                RoomSpec {
                    nick_template: Some("«{nick}» ☃\t'\u{2028}".into()),
                    ..room("libera", "#a\"b")
                },
                with_direction(room("oftc", "#x"), Direction::Both),
            ],
        )
    };
    check(
        "hostile strings added",
        BASE,
        &RouteEdit::AddRoute(hostile.clone()),
        &swap(
            BASE,
            "{oftc: \"#c\"}]}\n",
            "{oftc: \"#c\"}]}
  - name: \"a: #b\"
    nick_template: \"<{nick}> \\\\ \\n\"
    relay_membership: true
    max_age: 1h30m
    rooms:
      - libera: \"#a\\\"b\"
        nick_template: \"«{nick}» ☃\\t'\\u2028\"
      - oftc: \"#x\"
        direction: both
",
        ),
        Loads::Route(hostile),
    );

    let renamed = RouteSpec {
        name: "x: #y".into(),
        nick_template: Some("\"{nick}\" ${ not".replace("${", "$ {")),
        max_age: Some("90".into()),
        ..rust()
    };
    check(
        "hostile strings replaced in place, comments after them kept",
        BASE,
        &RouteEdit::ReplaceRoute {
            name: "rust".into(),
            spec: renamed.clone(),
        },
        &swap(
            &swap(
                &swap(BASE, "  - name: rust   ", "  - name: \"x: #y\"   "),
                "    nick_template: \"<{nick}> \"\n",
                "    nick_template: \"\\\"{nick}\\\" $ { not\"\n",
            ),
            "    max_age: 1h\n",
            "    max_age: \"90\"\n",
        ),
        Loads::Error("max_age: \"90\""),
    );
}

#[test]
fn quoting_reads_back_as_written() {
    for text in [
        "rust",
        "town-square",
        "example.org",
        "yes",
        "No",
        "null",
        "~",
        "",
        "1h",
        "123",
        "0x1f",
        "-x",
        " lead",
        "trail ",
        "a: b",
        "a #b",
        "#x",
        "@x",
        "`x",
        "%x",
        "!x",
        "&x",
        "*x",
        "|",
        ">",
        "[x]",
        "{x}",
        "a,b",
        "'s",
        "\\",
        "\"",
        "é",
        "😀",
        "\0",
        "\u{7f}",
        "\u{85}",
        "\u{2028}",
        "\u{2029}",
        "\u{feff}x",
        "tab\there",
        "cr\r\nlf",
        ".inf",
        "-.nan",
        "2001-01-01",
    ] {
        let written = quote(text);
        let node = yaml::parse(&format!("k: {written}\n")).unwrap();
        assert_eq!(
            node.get("k").and_then(|(_, v)| v.as_str()),
            Some(text),
            "{text:?} written as {written}"
        );
    }
    assert_eq!(quote("rust"), "rust");
    assert_eq!(quote("#rust"), "\"#rust\"");
    for (age, written) in [
        ("1h", "1h"),
        ("1h30m", "1h30m"),
        ("500ms", "500ms"),
        ("1e3", "\"1e3\""),
        ("90", "\"90\""),
        ("h", "h"),
    ] {
        assert_eq!(duration_text(age), written);
    }
}
