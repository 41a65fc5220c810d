//! The edited text parsed again and compared with what the edit means: everything but
//! the routes as before, and the routes as the edit says. A layout that line-based
//! editing got wrong fails here, and `apply` refuses instead of writing it.

use super::layout::{MODELED, NodeExt};
use super::write::direction_name;
use super::{RoomSpec, RouteSpec};
use crate::config::tree::{Node, Value};
use crate::config::types::DEFAULT_NICK_TEMPLATE;
use crate::config::yaml;

/// What the routes list must be after the edit (everything else: unchanged).
pub(super) enum Expect<'a> {
    Added(&'a RouteSpec),
    Removed(usize),
    Replaced(usize, &'a RouteSpec),
    RoomAdded(usize, &'a RoomSpec),
    RoomRemoved(usize, usize),
}

/// The edited text parses, everything but the routes is as before, and the routes are
/// what `expect` says.
pub(super) fn verify(before: &Node, text: &str, expect: &Expect) -> bool {
    let Ok(after) = yaml::parse(text) else {
        return false;
    };
    let (Some(old_top), Some(new_top)) = (before.entries(), after.entries()) else {
        return false;
    };
    let others = |entries: &'_ [(Node, Node)]| -> Vec<(Node, Node)> {
        entries
            .iter()
            .filter(|(k, _)| k.as_str() != Some("routes"))
            .cloned()
            .collect()
    };
    if !same_entries(&others(old_top), &others(new_top)) {
        return false;
    }
    let list = |root: &Node| -> Option<Vec<Node>> {
        match root.get("routes").map(|(_, v)| &v.value) {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Seq(items)) => Some(items.clone()),
            _ => None,
        }
    };
    let (Some(old), Some(new)) = (list(before), list(&after)) else {
        return false;
    };
    let same_except = |skip: Option<usize>, extra: usize| -> bool {
        let kept: Vec<&Node> = old
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, n)| n)
            .collect();
        kept.len() + extra == new.len() && kept.iter().zip(&new).all(|(a, b)| same(a, b))
    };
    match *expect {
        Expect::Removed(index) => same_except(Some(index), 0),
        Expect::Added(spec) => {
            old.len() + 1 == new.len()
                && old.iter().zip(&new).all(|(a, b)| same(a, b))
                && route_is(&new[old.len()], spec, &[])
        }
        Expect::Replaced(index, spec) => {
            old.len() == new.len()
                && (0..old.len()).all(|i| i == index || same(&old[i], &new[i]))
                && route_is(&new[index], spec, &unmodeled(&old[index]))
        }
        Expect::RoomAdded(index, room) => {
            rooms_changed(&old, &new, index, |old_rooms, new_rooms| {
                old_rooms.len() + 1 == new_rooms.len()
                    && old_rooms.iter().zip(new_rooms).all(|(a, b)| same(a, b))
                    && room_is(&new_rooms[old_rooms.len()], room)
            })
        }
        Expect::RoomRemoved(index, position) => {
            rooms_changed(&old, &new, index, |old_rooms, new_rooms| {
                let kept: Vec<&Node> = old_rooms
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != position)
                    .map(|(_, n)| n)
                    .collect();
                kept.len() == new_rooms.len() && kept.iter().zip(new_rooms).all(|(a, b)| same(a, b))
            })
        }
    }
}

/// Only route `index`'s rooms changed, as `check` says.
fn rooms_changed(
    old: &[Node],
    new: &[Node],
    index: usize,
    check: impl Fn(&[Node], &[Node]) -> bool,
) -> bool {
    let rooms = |route: &Node| -> Option<Vec<Node>> {
        match &route.get("rooms")?.1.value {
            Value::Seq(items) => Some(items.clone()),
            Value::Null => Some(Vec::new()),
            _ => None,
        }
    };
    let not_rooms = |route: &Node| -> Vec<(Node, Node)> {
        route
            .entries()
            .unwrap_or_default()
            .iter()
            .filter(|(k, _)| k.as_str() != Some("rooms"))
            .cloned()
            .collect()
    };
    old.len() == new.len()
        && (0..old.len()).all(|i| i == index || same(&old[i], &new[i]))
        && same_entries(&not_rooms(&old[index]), &not_rooms(&new[index]))
        && match (rooms(&old[index]), rooms(&new[index])) {
            (Some(a), Some(b)) => check(&a, &b),
            _ => false,
        }
}

/// The entries of a route that a `RouteSpec` does not describe.
fn unmodeled(route: &Node) -> Vec<(Node, Node)> {
    route
        .entries()
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| !k.as_str().is_some_and(|k| MODELED.contains(&k)))
        .cloned()
        .collect()
}

/// The route as the loader reads it equals the spec (defaults applied), and its other
/// keys are `rest`.
fn route_is(route: &Node, spec: &RouteSpec, rest: &[(Node, Node)]) -> bool {
    let check = || -> Option<bool> {
        let mut name = None;
        let mut template = None;
        let mut relay = None;
        let mut max_age = None;
        let mut rooms = None;
        for (key, value) in route.entries()? {
            match key.as_str() {
                Some("name") => name = Some(value.text()?),
                Some("nick_template") => template = Some(value.text()?),
                Some("relay_membership") => match value.value {
                    Value::Bool(b) => relay = Some(b),
                    _ => return None,
                },
                Some("max_age") => max_age = Some(value.text()?),
                Some("rooms") => rooms = Some(value),
                _ => {}
            }
        }
        let rooms_ok = match &rooms?.value {
            Value::Seq(items) => {
                items.len() == spec.rooms.len()
                    && items.iter().zip(&spec.rooms).all(|(n, s)| room_is(n, s))
            }
            _ => false,
        };
        Some(
            name.as_deref() == Some(spec.name.as_str())
                && template.as_deref().unwrap_or(DEFAULT_NICK_TEMPLATE)
                    == spec
                        .nick_template
                        .as_deref()
                        .unwrap_or(DEFAULT_NICK_TEMPLATE)
                && relay.unwrap_or(false) == spec.relay_membership.unwrap_or(false)
                && max_age == spec.max_age
                && rooms_ok
                && same_entries(&unmodeled(route), rest),
        )
    };
    check().unwrap_or(false)
}

fn room_is(room: &Node, spec: &RoomSpec) -> bool {
    let check = || -> Option<bool> {
        let mut direction = None;
        let mut template = None;
        let mut target = None;
        for (key, value) in room.entries()? {
            match key.as_str()? {
                "direction" => direction = Some(value.text()?),
                "nick_template" => template = Some(value.text()?),
                network if target.is_none() => target = Some((network, value.text()?)),
                _ => return None,
            }
        }
        let (network, name) = target?;
        Some(
            network == spec.network
                && name == spec.room
                && direction.as_deref().unwrap_or("both")
                    == direction_name(spec.direction.unwrap_or_default())
                && template == spec.nick_template,
        )
    };
    check().unwrap_or(false)
}

fn same_entries(a: &[(Node, Node)], b: &[(Node, Node)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| same(&x.0, &y.0) && same(&x.1, &y.1))
}

/// Equal values, wherever they are.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Map(x), Value::Map(y)) => same_entries(x, y),
        (x, y) => x == y,
    }
}
