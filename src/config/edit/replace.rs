//! `ReplaceRoute`: refused where the route uses aliases or variables; otherwise two
//! candidates, tried in order by `apply`: the in-place edit, which changes only what
//! differs (a value on its line, an option deleted or inserted, rooms matched by
//! network and room), and the whole route rewritten in block style.

use super::change::spec_name;
use super::layout::{Doc, MODELED, NodeExt, Region, RouteList, Routes, Style};
use super::splice::Edit;
use super::write::{direction_name, duration_text, flow, quote, room_lines, route_lines};
use super::{EditError, RoomSpec, RouteSpec};
use crate::config::tree::{Node, Value};
use crate::config::types::DEFAULT_NICK_TEMPLATE;

impl Doc<'_> {
    /// The in-place edit (when the layout allows it), then the whole-route rewrite.
    pub(super) fn replace_route(
        &self,
        routes: &Routes,
        index: usize,
        spec: &RouteSpec,
    ) -> Result<Vec<Vec<Edit>>, EditError> {
        let RouteList {
            seq,
            items,
            regions,
            ..
        } = routes.found();
        let (item, region) = (&items[index], regions[index]);
        let line = region.first + 1;
        for (key, value) in item.entries().unwrap_or_default() {
            if !MODELED.iter().any(|name| key.is(name)) {
                continue;
            }
            if value.uses_alias() || key.is_alias() {
                return Err(EditError::NotEditable(format!(
                    "route {:?} (line {line}) uses an alias (*name) or a merge key (<<) in its {}; write it out to edit the route",
                    spec_name(item),
                    key.text().unwrap_or_default()
                )));
            }
            if value.uses_variables() {
                return Err(EditError::NotEditable(format!(
                    "route {:?} (line {line}) takes its {} from an environment variable (${{...}}); the new values would replace the variable with its value, so change this route in the file by hand",
                    spec_name(item),
                    key.text().unwrap_or_default()
                )));
            }
        }
        self.anchors_kept(region)?;
        let dash = self.dash_col(seq);
        let style = self.style(items, dash, Some(index));
        let mut candidates = Vec::new();
        if let Some(edits) = self.replace_in_place(item, region, spec) {
            candidates.push(edits);
        }
        candidates.push(self.replace_whole(item, region, dash, style, spec));
        Ok(candidates)
    }

    /// The route rewritten: its lines deleted and the spec's written in their place,
    /// with the keys the spec does not describe copied (their own lines as written,
    /// otherwise in flow style).
    fn replace_whole(
        &self,
        item: &Node,
        region: Region,
        dash: usize,
        style: Style,
        spec: &RouteSpec,
    ) -> Vec<Edit> {
        let pad = " ".repeat(dash + style.key);
        let mut rest = Vec::new();
        if let Some(entries) = item.entries() {
            let block = self.block_map(item).is_some();
            let entry_regions = self.entry_regions(entries, region);
            for (n, (key, value)) in entries.iter().enumerate() {
                if MODELED.iter().any(|name| key.is(name)) {
                    continue;
                }
                if block && self.own_line(key) {
                    let r = entry_regions[n];
                    rest.extend((r.first..=r.last).map(|i| self.line_text(i).to_owned()));
                } else {
                    rest.push(format!("{pad}{}: {}", flow(key), flow(value)));
                }
            }
        }
        vec![
            self.delete(region),
            Edit::insert(
                self.lines[region.first].start,
                route_lines(spec, dash, style, rest),
            ),
        ]
    }

    /// Only what differs, changed where it is; `None` where the layout does not allow it.
    fn replace_in_place(&self, item: &Node, region: Region, spec: &RouteSpec) -> Option<Vec<Edit>> {
        let entries = self.block_map(item)?;
        let regions = self.entry_regions(entries, region);
        let target = Target {
            doc: self,
            entries,
            regions: &regions,
            pad: " ".repeat(self.col(item.span.start)),
        };
        let mut edits = Vec::new();
        let (mut anchor, key, value) = item.entry("name")?;
        if value.text().as_deref() != Some(spec.name.as_str()) {
            edits.push(self.replace_value(key, value, quote(&spec.name))?);
        }
        let text_of = |name: &str| item.entry(name).map(|(_, _, v)| v.text());
        let options = [
            (
                "nick_template",
                text_of("nick_template").unwrap_or(Some(DEFAULT_NICK_TEMPLATE.to_owned()))
                    == Some(
                        spec.nick_template
                            .clone()
                            .unwrap_or_else(|| DEFAULT_NICK_TEMPLATE.to_owned()),
                    ),
                spec.nick_template.as_deref().map(quote),
            ),
            (
                "relay_membership",
                item.entry("relay_membership")
                    .map_or(Some(false), |(_, _, v)| match v.value {
                        Value::Bool(b) => Some(b),
                        _ => None,
                    })
                    == Some(spec.relay_membership.unwrap_or(false)),
                spec.relay_membership.map(|b| b.to_string()),
            ),
            (
                "max_age",
                text_of("max_age").map_or(spec.max_age.is_none(), |written| {
                    written.is_some() && written == spec.max_age
                }),
                spec.max_age.as_deref().map(duration_text),
            ),
        ];
        for (name, same, desired) in options {
            let present = item.entry(name).map(|(index, _, _)| index);
            target.set(present, same, desired, name, regions[anchor], &mut edits)?;
            anchor = present.unwrap_or(anchor);
        }
        // The rooms, matched by (network, room).
        let (_, _, rooms) = item.entry("rooms")?;
        let Value::Seq(items) = &rooms.value else {
            return None;
        };
        if spec.rooms.is_empty() || !self.is_block_seq(rooms) {
            return None;
        }
        let room_regions = self.seq_regions(rooms, items, region.last + 1)?;
        let old: Vec<OldRoom> = items
            .iter()
            .zip(&room_regions)
            .map(|(room, r)| OldRoom::read(self, room, *r))
            .collect::<Option<_>>()?;
        let dash = self.dash_col(rooms);
        let key_off = self.col(items[0].span.start).saturating_sub(dash);
        let pairs = lcs(
            &old.iter()
                .map(|o| (o.network.as_str(), o.room.as_str()))
                .collect::<Vec<_>>(),
            &spec
                .rooms
                .iter()
                .map(|r| (r.network.as_str(), r.room.as_str()))
                .collect::<Vec<_>>(),
        );
        let mut cursor = self.lines[room_regions[0].first].start;
        for (j, room) in spec.rooms.iter().enumerate() {
            match pairs.iter().find(|(_, new)| *new == j) {
                Some(&(i, _)) => {
                    old[i].set_options(self, room, &mut edits)?;
                    cursor = self.lines[old[i].region.last].next;
                }
                None => edits.push(Edit::insert(cursor, room_lines(room, dash, key_off.max(2)))),
            }
        }
        for (i, room) in old.iter().enumerate() {
            if !pairs.iter().any(|(kept, _)| *kept == i) {
                edits.push(self.delete(room.region));
            }
        }
        Some(edits)
    }
}

/// A block mapping's options edited in place.
struct Target<'a, 't> {
    doc: &'a Doc<'t>,
    entries: &'a [(Node, Node)],
    regions: &'a [Region],
    /// The indentation of the mapping's keys.
    pad: String,
}

impl Target<'_, '_> {
    /// One option: kept when `same`, else replaced, deleted (`desired` is `None`: the
    /// default) or inserted after `after`.
    fn set(
        &self,
        present: Option<usize>,
        same: bool,
        desired: Option<String>,
        name: &str,
        after: Region,
        edits: &mut Vec<Edit>,
    ) -> Option<()> {
        if same {
            return Some(());
        }
        match (present, desired) {
            (Some(index), Some(text)) => {
                let (key, value) = &self.entries[index];
                edits.push(self.doc.replace_value(key, value, text)?);
            }
            (Some(index), None) => {
                // An option on the item's `-` line cannot go alone.
                if !self.doc.own_line(&self.entries[index].0) {
                    return None;
                }
                edits.push(self.doc.delete(self.regions[index]));
            }
            (None, Some(text)) => edits.push(
                self.doc
                    .insert_after(after, vec![format!("{}{name}: {text}", self.pad)]),
            ),
            (None, None) => {}
        }
        Some(())
    }
}

/// A room of the route being replaced, as written.
struct OldRoom<'a> {
    network: String,
    room: String,
    entries: &'a [(Node, Node)],
    regions: Vec<Region>,
    region: Region,
}

impl<'a> OldRoom<'a> {
    fn read(doc: &Doc, node: &'a Node, region: Region) -> Option<Self> {
        let entries = doc.block_map(node)?;
        let mut target = None;
        for (key, value) in entries {
            if key.is("direction") || key.is("nick_template") {
                continue;
            }
            if target.is_some() || value.is_alias() {
                return None;
            }
            target = Some((key.text()?, value.text()?));
        }
        let (network, room) = target?;
        Some(Self {
            network,
            room,
            entries,
            regions: doc.entry_regions(entries, region),
            region,
        })
    }

    fn set_options(&self, doc: &Doc, spec: &RoomSpec, edits: &mut Vec<Edit>) -> Option<()> {
        let target = Target {
            doc,
            entries: self.entries,
            regions: &self.regions,
            pad: " ".repeat(doc.col(self.entries[0].0.span.start)),
        };
        let find = |name: &str| self.entries.iter().position(|(k, _)| k.is(name));
        let text = |index: Option<usize>| index.map(|i| self.entries[i].1.text());
        let direction = find("direction");
        let wanted = direction_name(spec.direction.unwrap_or_default());
        target.set(
            direction,
            text(direction).unwrap_or(Some("both".into())).as_deref() == Some(wanted),
            spec.direction.map(|d| direction_name(d).to_owned()),
            "direction",
            self.region,
            edits,
        )?;
        let template = find("nick_template");
        target.set(
            template,
            text(template).unwrap_or(None) == spec.nick_template
                && (template.is_none() || spec.nick_template.is_some()),
            spec.nick_template.as_deref().map(quote),
            "nick_template",
            self.region,
            edits,
        )
    }
}

/// The index pairs of a longest common subsequence of `a` and `b`.
fn lcs<T: PartialEq>(a: &[T], b: &[T]) -> Vec<(usize, usize)> {
    let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            table[i][j] = if a[i] == b[j] {
                table[i + 1][j + 1] + 1
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut pairs) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if table[i + 1][j] >= table[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}
