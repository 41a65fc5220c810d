//! Route changes written back into the config file's text (the admin API's writes).
//!
//! The file is edited as text, not serialised again: the parser's byte positions find
//! the lines of the route or room concerned, only those change, and every other byte
//! (comments, key order, blank lines, quoting, CRLF line ends, a missing final newline)
//! stays as it was.
//!
//! - `AddRoute` appends after the last route, `AddRoom` after the route's last room, in
//!   the indentation the file already uses for them (`- name:` vs `  - name:`, ...).
//! - `RemoveRoute` and `RemoveRoom` delete the item's lines, from its `-` to its last
//!   value line (a comment between those goes with it); comments before and after stay.
//!   Removing the last route or room leaves `routes: []` / `rooms: []` (an empty key
//!   would read as "not a list").
//! - `ReplaceRoute` changes what differs, in place: a changed value is replaced on its
//!   line (a comment after it stays), an option set back to its default is deleted, a
//!   new one is inserted, and rooms are matched by network and room so that only rooms
//!   added, removed or changed are touched. Keys a `RouteSpec` does not describe
//!   (`ignore:`) are kept as written. Where the route's layout does not allow that (a
//!   flow-style route `{...}`, block scalars, an option on the `-` line), the whole
//!   route is rewritten in block style, and comments inside it are lost.
//! - Every result is parsed again and compared with what the edit means (the rest of
//!   the file unchanged, the route as the spec says); a layout that line-based editing
//!   gets wrong gives `NotEditable`, never a wrong file.
//!
//! Written strings are plain when they are simple words (`rust`, `town-square`) and
//! double-quoted with escapes otherwise, so any text survives the round trip.
//! The result is not validated as a config: the caller runs `config::load_str` on it,
//! so that a bad change is reported like a bad file, with positions.
//!
//! The file is parsed once, by the config parser (`yaml::parse`): its nodes carry
//! their bytes (`Node::span`) and where an alias's value is written (`Node::defined`),
//! which is all the editing needs; block or flow style is read from the text there. This file holds the public API and `apply`; the rest, by concern:
//!
//! - `layout`: the file's lines, where the routes are, the regions of list items and
//!   mapping entries, and the indentation style the file uses;
//! - `splice`: the text edits themselves (delete lines, insert lines, replace a value)
//!   and applying them;
//! - `change`: adding and removing routes and rooms as text edits;
//! - `replace`: `ReplaceRoute`, in place (only what differs) or the whole route;
//! - `write`: new lines for routes and rooms, and quoting;
//! - `verify`: the result parsed again and compared with what the edit means.

mod change;
mod layout;
mod replace;
mod splice;
#[cfg(test)]
mod tests;
mod verify;
mod write;

use super::types::Direction;
use super::yaml;
use layout::Doc;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use verify::{Expect, verify};

/// A room as the admin API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSpec {
    pub network: String,
    pub room: String,
    /// `"both"`, `"source"` or `"sink"`; `None`: not written (both).
    #[serde(default, deserialize_with = "direction")]
    pub direction: Option<Direction>,
    /// `None`: the route's template.
    #[serde(default)]
    pub nick_template: Option<String>,
}

/// A route as the admin API describes it; `None` options are not written (defaults).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub name: String,
    pub rooms: Vec<RoomSpec>,
    #[serde(default)]
    pub nick_template: Option<String>,
    #[serde(default)]
    pub relay_membership: Option<bool>,
    /// As written in the file, e.g. `"1h"`.
    #[serde(default)]
    pub max_age: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteEdit {
    AddRoute(RouteSpec),
    /// Replaces the route named `name` (may rename it: `spec.name` differs).
    ReplaceRoute {
        name: String,
        spec: RouteSpec,
    },
    RemoveRoute {
        name: String,
    },
    AddRoom {
        route: String,
        room: RoomSpec,
    },
    RemoveRoom {
        route: String,
        network: String,
        room: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("no route named {0:?}")]
    NoSuchRoute(String),
    #[error("route {route:?} has no room {network}: {room:?}")]
    NoSuchRoom {
        route: String,
        network: String,
        room: String,
    },
    #[error("a route named {0:?} already exists")]
    RouteExists(String),
    /// The text is not YAML; the caller shows `config::load_str`'s errors instead.
    #[error("the config file does not parse: {0}")]
    Unparsable(String),
    /// The change cannot be written without rewriting what the admin wrote: a flow-style
    /// (`[...]`) routes list, flow-style rooms of the route, an alias (`*name`) or merge
    /// key where the change lands or an anchor (`&name`) the change would remove while
    /// it is used elsewhere, `${VAR}` values the change would have to compare or
    /// overwrite, a value containing `${` (it would be read as a variable), or a layout
    /// that the result check shows was edited wrongly. The message says which and where.
    #[error("the config file cannot be edited automatically: {0}")]
    NotEditable(String),
}

/// `edit` applied to the config text `text`; see the module comment for what is kept.
pub fn apply(text: &str, edit: &RouteEdit) -> Result<String, EditError> {
    refuse_variables(edit)?;
    let before = yaml::parse(text).map_err(|errors| {
        let first = errors.first();
        EditError::Unparsable(first.map_or_else(String::new, |error| match error.pos {
            Some(pos) => format!(
                "line {}, column {}: {}",
                pos.line, pos.column, error.message
            ),
            None => error.message.clone(),
        }))
    })?;
    let doc = Doc::new(text, &before)?;
    let routes = doc.routes()?;
    let (candidates, expect) = match edit {
        RouteEdit::AddRoute(spec) => {
            if routes.find(&doc, &spec.name).is_ok() {
                return Err(EditError::RouteExists(spec.name.clone()));
            }
            (vec![doc.add_route(&routes, spec)?], Expect::Added(spec))
        }
        RouteEdit::RemoveRoute { name } => {
            let index = routes.find(&doc, name)?;
            (
                vec![doc.remove_route(&routes, index)?],
                Expect::Removed(index),
            )
        }
        RouteEdit::ReplaceRoute { name, spec } => {
            let index = routes.find(&doc, name)?;
            if spec.name != *name && routes.find(&doc, &spec.name).is_ok() {
                return Err(EditError::RouteExists(spec.name.clone()));
            }
            (
                doc.replace_route(&routes, index, spec)?,
                Expect::Replaced(index, spec),
            )
        }
        RouteEdit::AddRoom { route, room } => {
            let index = routes.find(&doc, route)?;
            (
                vec![doc.add_room(&routes, index, room)?],
                Expect::RoomAdded(index, room),
            )
        }
        RouteEdit::RemoveRoom {
            route,
            network,
            room,
        } => {
            let index = routes.find(&doc, route)?;
            let (edits, position) = doc.remove_room(&routes, index, route, network, room)?;
            (vec![edits], Expect::RoomRemoved(index, position))
        }
    };
    // The in-place edit first; a replaced route also has the whole-route rewrite.
    for edits in candidates {
        if let Some(result) = doc.splice(edits)
            && verify(&before, &result, &expect)
        {
            return Ok(result);
        }
    }
    Err(EditError::NotEditable(
        "the file's layout around this route is too unusual to edit line by line; make the change in the file by hand".into(),
    ))
}

fn direction<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Direction>, D::Error> {
    match Option::<String>::deserialize(deserializer)?.as_deref() {
        None => Ok(None),
        Some("both") => Ok(Some(Direction::Both)),
        Some("source") => Ok(Some(Direction::Source)),
        Some("sink") => Ok(Some(Direction::Sink)),
        Some(other) => Err(de::Error::unknown_variant(
            other,
            &["both", "source", "sink"],
        )),
    }
}

/// The loader replaces `${NAME}` in every value and has no escape for it: such a value
/// cannot be written literally, and substituted it could print a secret into a room.
fn refuse_variables(edit: &RouteEdit) -> Result<(), EditError> {
    fn room<'a>(room: &'a RoomSpec, values: &mut Vec<(&'static str, &'a str)>) {
        values.push(("network", &room.network));
        values.push(("room", &room.room));
        if let Some(template) = &room.nick_template {
            values.push(("nick_template", template));
        }
    }
    fn route<'a>(spec: &'a RouteSpec, values: &mut Vec<(&'static str, &'a str)>) {
        values.push(("name", &spec.name));
        if let Some(template) = &spec.nick_template {
            values.push(("nick_template", template));
        }
        if let Some(max_age) = &spec.max_age {
            values.push(("max_age", max_age));
        }
        spec.rooms.iter().for_each(|r| room(r, values));
    }
    let mut values = Vec::new();
    match edit {
        RouteEdit::AddRoute(spec) | RouteEdit::ReplaceRoute { spec, .. } => {
            route(spec, &mut values)
        }
        RouteEdit::AddRoom { room: spec, .. } => room(spec, &mut values),
        RouteEdit::RemoveRoute { .. } | RouteEdit::RemoveRoom { .. } => {}
    }
    match values.iter().find(|(_, value)| value.contains("${")) {
        Some((what, value)) => Err(EditError::NotEditable(format!(
            "the {what} {value:?} contains \"${{\", which the config file reads as an environment variable; such a value cannot be written"
        ))),
        None => Ok(()),
    }
}
