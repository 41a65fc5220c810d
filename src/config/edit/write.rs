//! New text: the lines of a route or a room in the file's indentation, and values
//! written so that they read back as exactly the same string.

use super::layout::Style;
use super::{RoomSpec, RouteSpec};
use crate::config::tree::{Node, Value};
use crate::config::types::Direction;
use std::fmt::Write as _;

pub(super) fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Both => "both",
        Direction::Source => "source",
        Direction::Sink => "sink",
    }
}

/// A route's lines: `- name:` at column `dash`, then the options the spec sets, `rest`
/// (lines of keys the spec does not describe), then the rooms.
pub(super) fn route_lines(
    spec: &RouteSpec,
    dash: usize,
    style: Style,
    rest: Vec<String>,
) -> Vec<String> {
    let pad = " ".repeat(dash + style.key);
    let mut lines = vec![format!(
        "{}-{}name: {}",
        " ".repeat(dash),
        " ".repeat(style.key - 1),
        quote(&spec.name)
    )];
    if let Some(template) = &spec.nick_template {
        lines.push(format!("{pad}nick_template: {}", quote(template)));
    }
    if let Some(relay) = spec.relay_membership {
        lines.push(format!("{pad}relay_membership: {relay}"));
    }
    if let Some(max_age) = &spec.max_age {
        lines.push(format!("{pad}max_age: {}", duration_text(max_age)));
    }
    lines.extend(rest);
    if spec.rooms.is_empty() {
        lines.push(format!("{pad}rooms: []"));
    } else {
        lines.push(format!("{pad}rooms:"));
        for room in &spec.rooms {
            lines.extend(room_lines(
                room,
                dash + style.key + style.rooms,
                style.room_key,
            ));
        }
    }
    lines
}

/// A room's lines: `- network: room` at column `dash`, its options `key` columns in.
pub(super) fn room_lines(room: &RoomSpec, dash: usize, key: usize) -> Vec<String> {
    let pad = " ".repeat(dash + key);
    let mut lines = vec![format!(
        "{}-{}{}: {}",
        " ".repeat(dash),
        " ".repeat(key - 1),
        quote(&room.network),
        quote(&room.room)
    )];
    if let Some(direction) = room.direction {
        lines.push(format!("{pad}direction: {}", direction_name(direction)));
    }
    if let Some(template) = &room.nick_template {
        lines.push(format!("{pad}nick_template: {}", quote(template)));
    }
    lines
}

/// Plain YAML words that are not strings (YAML 1.1 and 1.2 booleans and null).
pub(super) const RESERVED: &[&str] = &["true", "false", "yes", "no", "on", "off", "y", "n", "null"];

/// `text` as a YAML scalar that reads back as exactly this string: plain when it is a
/// simple word (a letter, then letters, digits, `_`, `-`, `.`; not a boolean or null),
/// otherwise double-quoted with every character YAML could misread escaped.
pub(super) fn quote(text: &str) -> String {
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !RESERVED.contains(&text.to_ascii_lowercase().as_str());
    if plain {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Control characters, and what some readers take for line breaks or a BOM.
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A duration as written (`1h30m`) plain when it is one; anything else quoted.
pub(super) fn duration_text(text: &str) -> String {
    let mut rest = text;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let after = &rest[digits..];
        let Some(unit) = ["ms", "s", "m", "h", "d"]
            .into_iter()
            .find(|unit| after.starts_with(unit))
        else {
            return quote(text);
        };
        if digits == 0 {
            return quote(text);
        }
        rest = &after[unit.len()..];
        parts += 1;
    }
    if parts == 0 {
        quote(text)
    } else {
        text.to_owned()
    }
}

/// A value in flow style on one line (for a key the spec does not describe, when its
/// own lines cannot be copied).
pub(super) fn flow(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => quote(s),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) if f.is_nan() => ".nan".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { ".inf" } else { "-.inf" }.into(),
        Value::Float(f) => format!("{f:?}"),
        Value::Seq(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}: {}", flow(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
