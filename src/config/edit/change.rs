//! Adding and removing routes and rooms as text edits: new items go after the last
//! one in the file's indentation, removed ones take their lines with them, and a list
//! left empty is written `[]`.

use super::layout::{DEFAULT_STYLE, Doc, NodeExt, Region, RouteList, Routes, odd_layout};
use super::splice::Edit;
use super::write::{room_lines, route_lines};
use super::{EditError, RoomSpec, RouteSpec};
use crate::config::tree::{Node, Value};

impl Doc<'_> {
    pub(super) fn add_route(
        &self,
        routes: &Routes,
        spec: &RouteSpec,
    ) -> Result<Vec<Edit>, EditError> {
        match routes {
            Routes::Missing => {
                let mut lines = vec!["routes:".to_owned()];
                lines.extend(route_lines(spec, 2, DEFAULT_STYLE, Vec::new()));
                Ok(vec![Edit::insert(self.text.len(), lines)])
            }
            Routes::Empty { key, value } => {
                let dash = self.col(key.span.start) + 2;
                let lines = route_lines(spec, dash, DEFAULT_STYLE, Vec::new());
                self.fill_empty(key, value, lines)
            }
            Routes::Block(RouteList {
                seq,
                items,
                regions,
                ..
            }) => {
                let dash = self.dash_col(seq);
                let style = self.style(items, dash, None);
                let last = *regions.last().expect("a block list has items");
                Ok(vec![self.insert_after(
                    last,
                    route_lines(spec, dash, style, Vec::new()),
                )])
            }
        }
    }

    pub(super) fn remove_route(
        &self,
        routes: &Routes,
        index: usize,
    ) -> Result<Vec<Edit>, EditError> {
        let RouteList {
            key,
            items,
            regions,
            ..
        } = routes.found();
        let region = regions[index];
        self.anchors_kept(region)?;
        let mut edits = vec![self.delete(region)];
        if items.len() == 1 {
            edits.extend(self.empty_list(key));
        }
        Ok(edits)
    }

    pub(super) fn add_room(
        &self,
        routes: &Routes,
        index: usize,
        room: &RoomSpec,
    ) -> Result<Vec<Edit>, EditError> {
        let RouteList {
            seq,
            items,
            regions,
            ..
        } = routes.found();
        let (item, region) = (&items[index], regions[index]);
        let (key, rooms) = self.rooms_of(item, region)?;
        if rooms.is_alias() || rooms.uses_alias() {
            return Err(EditError::NotEditable(format!(
                "the rooms of route {:?} (line {}) use an alias (*name); write them out to edit them",
                spec_name(item),
                region.first + 1
            )));
        }
        let style = self.style(items, self.dash_col(seq), Some(index));
        match &rooms.value {
            Value::Seq(list) if self.is_block_seq(rooms) => {
                let room_regions = self
                    .seq_regions(rooms, list, region.last + 1)
                    .ok_or_else(|| odd_layout(region.first + 1))?;
                let dash = self.dash_col(rooms);
                let key_off = list
                    .iter()
                    .rev()
                    .find(|room| self.block_map(room).is_some())
                    .map_or(style.room_key, |room| {
                        self.col(room.span.start).saturating_sub(dash)
                    });
                let last = *room_regions.last().expect("a block list has items");
                Ok(vec![self.insert_after(
                    last,
                    room_lines(room, dash, key_off.max(2)),
                )])
            }
            Value::Seq(list) if list.is_empty() => self.fill_empty(
                key,
                rooms,
                room_lines(room, self.col(key.span.start) + style.rooms, style.room_key),
            ),
            Value::Null => self.fill_empty(
                key,
                rooms,
                room_lines(room, self.col(key.span.start) + style.rooms, style.room_key),
            ),
            _ => Err(flow_rooms(item, rooms, self)),
        }
    }

    /// Returns the edits and the room's position in the route's list.
    pub(super) fn remove_room(
        &self,
        routes: &Routes,
        index: usize,
        route: &str,
        network: &str,
        room: &str,
    ) -> Result<(Vec<Edit>, usize), EditError> {
        let RouteList { items, regions, .. } = routes.found();
        let (item, region) = (&items[index], regions[index]);
        let no_such_room = || EditError::NoSuchRoom {
            route: route.to_owned(),
            network: network.to_owned(),
            room: room.to_owned(),
        };
        let (key, rooms) = self.rooms_of(item, region)?;
        let list = match &rooms.value {
            Value::Seq(list) if self.is_block_seq(rooms) => list,
            Value::Seq(list) if list.is_empty() => return Err(no_such_room()),
            Value::Null => return Err(no_such_room()),
            _ => return Err(flow_rooms(item, rooms, self)),
        };
        let target =
            |entry: &(Node, Node)| !entry.0.is("direction") && !entry.0.is("nick_template");
        let Some(position) = list.iter().position(|candidate| {
            candidate.entries().is_some_and(|entries| {
                entries.iter().any(|entry| {
                    target(entry) && entry.0.is(network) && entry.1.text().as_deref() == Some(room)
                })
            })
        }) else {
            if let Some(line) = list
                .iter()
                .filter_map(|candidate| candidate.entries())
                .flatten()
                .find(|entry| target(entry) && entry.1.uses_variables())
                .map(|entry| self.line_of(entry.1.span.start) + 1)
            {
                return Err(EditError::NotEditable(format!(
                    "route {route:?} has no room {network}: {room:?} as written, and the room on line {line} comes from an environment variable; remove it in the file by hand"
                )));
            }
            return Err(no_such_room());
        };
        let room_regions = self
            .seq_regions(rooms, list, region.last + 1)
            .ok_or_else(|| odd_layout(region.first + 1))?;
        self.anchors_kept(room_regions[position])?;
        let mut edits = vec![self.delete(room_regions[position])];
        if list.len() == 1 {
            edits.extend(self.empty_list(key));
        }
        Ok((edits, position))
    }

    /// The `rooms:` key and value of a block-style route.
    fn rooms_of<'n>(
        &self,
        item: &'n Node,
        region: Region,
    ) -> Result<(&'n Node, &'n Node), EditError> {
        let line = region.first + 1;
        if self.block_map(item).is_none() {
            return Err(EditError::NotEditable(format!(
                "route {:?} (line {line}) is written in flow style ({{...}}); write it as a block (`- name: ...` with `rooms:` below) to edit its rooms",
                spec_name(item)
            )));
        }
        let (_, key, rooms) = item.entry("rooms").ok_or_else(|| {
            EditError::NotEditable(format!(
                "route {:?} (line {line}) has no rooms: list",
                spec_name(item)
            ))
        })?;
        Ok((key, rooms))
    }
}

fn flow_rooms(item: &Node, rooms: &Node, doc: &Doc) -> EditError {
    let line = doc.line_of(rooms.span.start) + 1;
    if rooms.is_alias() {
        return EditError::NotEditable(format!(
            "the rooms of route {:?} (line {line}) are an alias (*name); write them out to edit them",
            spec_name(item)
        ));
    }
    EditError::NotEditable(format!(
        "the rooms of route {:?} (line {line}) are written in flow style ([...]); write them as a block list (`- network: room`, one per line) to edit them",
        spec_name(item)
    ))
}

pub(super) fn spec_name(item: &Node) -> String {
    item.entry("name")
        .and_then(|(_, _, v)| v.text())
        .unwrap_or_default()
}
