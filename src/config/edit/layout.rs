//! The file's layout: its lines, where the routes are, the line regions of list items
//! and mapping entries, and the indentation the file uses for routes and rooms. All of
//! it is read from the config parser's tree (`Node::span`) and the text around it.

use super::EditError;
use crate::config::tree::{Node, Value};

/// What the edit reads from the parser's nodes beyond `tree`'s own accessors.
pub(super) trait NodeExt {
    /// A scalar as the loader reads a string (numbers as written).
    fn text(&self) -> Option<String>;
    /// A string scalar equal to `key`.
    fn is(&self, key: &str) -> bool;
    /// A mapping's entry for `key`, with its index.
    fn entry(&self, key: &str) -> Option<(usize, &Node, &Node)>;
    /// Some string inside has `${`: the loader substitutes it.
    fn uses_variables(&self) -> bool;
    /// Something inside is an alias or came from a merge key.
    fn uses_alias(&self) -> bool;
}

impl NodeExt for Node {
    fn text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::UInt(u) => Some(u.to_string()),
            _ => None,
        }
    }

    fn is(&self, key: &str) -> bool {
        self.as_str() == Some(key)
    }

    fn entry(&self, key: &str) -> Option<(usize, &Node, &Node)> {
        self.entries()?
            .iter()
            .enumerate()
            .find(|(_, (k, _))| k.is(key))
            .map(|(index, (k, v))| (index, k, v))
    }

    fn uses_variables(&self) -> bool {
        any(self, &|n| n.as_str().is_some_and(|s| s.contains("${")))
    }

    fn uses_alias(&self) -> bool {
        any(self, &|n| n.is_alias())
    }
}

fn any(node: &Node, found: &impl Fn(&Node) -> bool) -> bool {
    found(node)
        || match &node.value {
            Value::Seq(items) => items.iter().any(|item| any(item, found)),
            Value::Map(entries) => entries.iter().any(|(k, v)| any(k, found) || any(v, found)),
            _ => false,
        }
}

fn visit(node: &Node, each: &mut impl FnMut(&Node)) {
    each(node);
    match &node.value {
        Value::Seq(items) => items.iter().for_each(|item| visit(item, each)),
        Value::Map(entries) => entries.iter().for_each(|(k, v)| {
            visit(k, each);
            visit(v, each);
        }),
        _ => {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Blank,
    Comment,
    Content,
}

#[derive(Debug)]
pub(super) struct Line {
    pub(super) start: usize,
    /// Where the line's text ends (before `\r\n` or `\n`).
    pub(super) end: usize,
    /// Where the next line starts (the text's length for the last line).
    pub(super) next: usize,
    /// Leading spaces.
    pub(super) indent: usize,
    pub(super) kind: Kind,
}

/// Lines `first..=last` (0-based): a list item or a mapping entry, from its first line
/// to its last line with content (comments after it are not part of it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Region {
    pub(super) first: usize,
    pub(super) last: usize,
}

/// How the file lays out routes, counted in columns: `-` to the route's keys, the
/// route's keys to the rooms' `-`, a room's `-` to its keys.
#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    pub(super) key: usize,
    pub(super) rooms: usize,
    pub(super) room_key: usize,
}

pub(super) const DEFAULT_STYLE: Style = Style {
    key: 2,
    rooms: 2,
    room_key: 2,
};

/// The route keys a `RouteSpec` describes; any other key is kept as written.
pub(super) const MODELED: &[&str] = &[
    "name",
    "nick_template",
    "relay_membership",
    "max_age",
    "rooms",
];

/// The text to edit, its lines, and the config parser's tree of it.
pub(super) struct Doc<'t> {
    pub(super) text: &'t str,
    pub(super) lines: Vec<Line>,
    pub(super) eol: &'static str,
    root: &'t Node,
    /// (where the alias is, its line, the line of the anchored value it refers to)
    pub(super) aliases: Vec<(usize, usize, usize)>,
}

/// Where the routes are.
pub(super) enum Routes<'d> {
    /// No `routes:` key.
    Missing,
    /// `routes:`, `routes: ~` or `routes: []`.
    Empty { key: &'d Node, value: &'d Node },
    /// A block list.
    Block(RouteList<'d>),
}

/// The routes written as a block list, the only layout whose routes can be edited.
pub(super) struct RouteList<'d> {
    pub key: &'d Node,
    pub seq: &'d Node,
    pub items: &'d [Node],
    /// Each item's lines.
    pub regions: Vec<Region>,
}

impl Routes<'_> {
    /// The list a route found by [`Routes::find`] is in.
    pub(super) fn found(&self) -> &RouteList<'_> {
        match self {
            Routes::Block(list) => list,
            _ => unreachable!("a route was found, so the routes are a block list"),
        }
    }

    pub(super) fn items(&self) -> &[Node] {
        match self {
            Routes::Block(list) => list.items,
            _ => &[],
        }
    }

    /// The index of the route named `name`.
    pub(super) fn find(&self, doc: &Doc, name: &str) -> Result<usize, EditError> {
        let items = self.items();
        if let Some(index) = items.iter().position(|item| {
            item.entry("name").and_then(|(_, _, v)| v.text()).as_deref() == Some(name)
        }) {
            return Ok(index);
        }
        let from_env = items.iter().find_map(|item| {
            item.entry("name")
                .filter(|(_, _, v)| v.uses_variables())
                .map(|(_, _, v)| doc.line_of(v.span.start) + 1)
        });
        match from_env {
            Some(line) => Err(EditError::NotEditable(format!(
                "no route is named {name:?} as written, and the route name on line {line} comes from an environment variable; change that route in the file by hand"
            ))),
            None => Err(EditError::NoSuchRoute(name.to_owned())),
        }
    }
}

impl<'t> Doc<'t> {
    /// `root` is `yaml::parse(text)`: the one parse of the file.
    pub(super) fn new(text: &'t str, root: &'t Node) -> Result<Self, EditError> {
        let mut lines = Vec::new();
        let mut start = 0;
        for piece in text.split_inclusive('\n') {
            let next = start + piece.len();
            let body = piece.strip_suffix('\n').unwrap_or(piece);
            let body = body.strip_suffix('\r').unwrap_or(body);
            let indent = body.len() - body.trim_start_matches(' ').len();
            let rest = body.trim_start_matches([' ', '\t']);
            let kind = if rest.is_empty() {
                Kind::Blank
            } else if rest.starts_with('#') {
                Kind::Comment
            } else {
                Kind::Content
            };
            lines.push(Line {
                start,
                end: start + body.len(),
                next,
                indent,
                kind,
            });
            start = next;
        }
        let eol = match text.find('\n') {
            Some(i) if text[..i].ends_with('\r') => "\r\n",
            _ => "\n",
        };
        let mut doc = Doc {
            text,
            lines,
            eol,
            root,
            aliases: Vec::new(),
        };
        let mut valid = true;
        let mut aliases = Vec::new();
        visit(root, &mut |node| {
            valid &= node.span.start <= node.span.end && node.span.end <= text.len();
            if valid && node.is_alias() {
                aliases.push((
                    node.span.start,
                    doc.line_of(node.span.start),
                    usize::try_from(node.defined.line).unwrap_or(usize::MAX),
                ));
            }
        });
        if !valid {
            return Err(EditError::Unparsable(
                "the parser gave no byte positions".into(),
            ));
        }
        doc.aliases = aliases;
        Ok(doc)
    }

    pub(super) fn line_of(&self, byte: usize) -> usize {
        self.lines
            .partition_point(|line| line.start <= byte)
            .saturating_sub(1)
    }

    /// The byte's column in its line, 0-based.
    pub(super) fn col(&self, byte: usize) -> usize {
        byte - self.lines[self.line_of(byte)].start
    }

    pub(super) fn line_text(&self, index: usize) -> &'t str {
        &self.text[self.lines[index].start..self.lines[index].end]
    }

    pub(super) fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    /// Where a block list's first `-` is: the list's own position, except for a list
    /// at its key's column (`rooms:` then `- a: b` below it), which the parser places
    /// at the first item, after the `- `. The `-` must be the first thing on its line.
    pub(super) fn dash(&self, node: &Node) -> Option<usize> {
        let before = &self.text[..node.span.start];
        let at = if self.byte(node.span.start) == Some(b'-') {
            node.span.start
        } else {
            let trimmed = before.trim_end_matches([' ', '\t']);
            (trimmed.len() < before.len() && trimmed.ends_with('-')).then(|| trimmed.len() - 1)?
        };
        (self.lines[self.line_of(at)].indent == self.col(at)).then_some(at)
    }

    /// A block list with items (not `[...]`, not an alias).
    pub(super) fn is_block_seq(&self, node: &Node) -> bool {
        matches!(&node.value, Value::Seq(items) if !items.is_empty())
            && !node.is_alias()
            && self.dash(node).is_some()
    }

    /// The column of a block list's `-`.
    pub(super) fn dash_col(&self, seq: &Node) -> usize {
        self.col(self.dash(seq).unwrap_or(seq.span.start))
    }

    /// The entries of a block mapping (not `{...}`, not an alias).
    pub(super) fn block_map<'n>(&self, node: &'n Node) -> Option<&'n [(Node, Node)]> {
        let entries = node.entries().filter(|e| !e.is_empty())?;
        (!node.is_alias() && self.byte(node.span.start) != Some(b'{')).then_some(entries)
    }

    /// The key is the first thing on its line (not on the `-` line of its item).
    pub(super) fn own_line(&self, key: &Node) -> bool {
        self.col(key.span.start) == self.lines[self.line_of(key.span.start)].indent
    }

    /// The line regions of a block list's items; `limit` is the first line past the
    /// list's enclosing item (or the line count).
    pub(super) fn seq_regions(
        &self,
        seq: &Node,
        items: &[Node],
        limit: usize,
    ) -> Option<Vec<Region>> {
        let dash = self.dash_col(seq);
        let is_dash = |index: usize| {
            let line = &self.lines[index];
            line.kind == Kind::Content
                && line.indent == dash
                && self.byte(line.start + dash) == Some(b'-')
                && matches!(
                    self.byte(line.start + dash + 1),
                    None | Some(b' ' | b'\t' | b'\r' | b'\n')
                )
        };
        let mut firsts = Vec::with_capacity(items.len());
        let mut floor = self.line_of(self.dash(seq)?);
        for (n, item) in items.iter().enumerate() {
            let first = if n == 0 {
                floor
            } else {
                (floor + 1..=self.line_of(item.span.start))
                    .rev()
                    .find(|&i| is_dash(i))?
            };
            firsts.push(first);
            floor = first;
        }
        let end = (floor + 1..limit)
            .find(|&i| self.lines[i].kind == Kind::Content && self.lines[i].indent <= dash)
            .unwrap_or(limit);
        Some(
            (0..firsts.len())
                .map(|n| {
                    let first = firsts[n];
                    let bound = firsts.get(n + 1).copied().unwrap_or(end);
                    Region {
                        first,
                        last: self.last_content(first, bound),
                    }
                })
                .collect(),
        )
    }

    /// The last line with content in `first..bound` (`first` if none).
    pub(super) fn last_content(&self, first: usize, bound: usize) -> usize {
        (first..bound.min(self.lines.len()))
            .rev()
            .find(|&i| self.lines[i].kind == Kind::Content)
            .unwrap_or(first)
    }

    /// The line regions of a block mapping's entries inside its item's `region`.
    pub(super) fn entry_regions(&self, entries: &[(Node, Node)], region: Region) -> Vec<Region> {
        let firsts: Vec<usize> = entries
            .iter()
            .map(|(k, _)| self.line_of(k.span.start))
            .collect();
        (0..firsts.len())
            .map(|n| {
                let bound = firsts.get(n + 1).copied().unwrap_or(region.last + 1);
                Region {
                    first: firsts[n],
                    last: self.last_content(firsts[n], bound),
                }
            })
            .collect()
    }

    pub(super) fn routes(&self) -> Result<Routes<'_>, EditError> {
        let Some(entries) = self.root.entries() else {
            return Err(EditError::NotEditable(
                "the file is not a mapping of keys (networks:, routes:, ...)".into(),
            ));
        };
        let Some((key, value)) = entries.iter().find(|(k, _)| k.is("routes")) else {
            return Ok(Routes::Missing);
        };
        let line = self.line_of(key.span.start) + 1;
        if value.is_alias() {
            return Err(EditError::NotEditable(format!(
                "routes: on line {line} is an alias (*name); write the routes out to edit them"
            )));
        }
        match &value.value {
            Value::Null => Ok(Routes::Empty { key, value }),
            Value::Seq(items) if items.is_empty() => Ok(Routes::Empty { key, value }),
            Value::Seq(items) if self.is_block_seq(value) => Ok(Routes::Block(RouteList {
                key,
                seq: value,
                items,
                regions: self
                    .seq_regions(value, items, self.lines.len())
                    .ok_or_else(|| odd_layout(line))?,
            })),
            Value::Seq(_) => Err(EditError::NotEditable(format!(
                "routes: on line {line} is written in flow style ([...]); write it as a block list (`- name: ...`, one route after another) to edit it"
            ))),
            _ => Err(EditError::NotEditable(format!(
                "routes: on line {line} is not a list"
            ))),
        }
    }

    /// The routes' layout, from the route `prefer` if it has one, else from the others.
    pub(super) fn style(&self, items: &[Node], dash: usize, prefer: Option<usize>) -> Style {
        let (mut key, mut rooms, mut room_key) = (None, None, None);
        for index in prefer.into_iter().chain((0..items.len()).rev()) {
            let item = &items[index];
            if self.block_map(item).is_none() {
                continue;
            }
            let key_col = self.col(item.span.start);
            key = key.or(key_col.checked_sub(dash));
            let Some((_, _, seq)) = item.entry("rooms").filter(|(_, _, v)| self.is_block_seq(v))
            else {
                continue;
            };
            rooms = rooms.or(self.dash_col(seq).checked_sub(key_col));
            if let Value::Seq(list) = &seq.value
                && let Some(room) = list.iter().find(|room| self.block_map(room).is_some())
            {
                room_key = room_key.or(self.col(room.span.start).checked_sub(self.dash_col(seq)));
            }
        }
        Style {
            key: key.unwrap_or(DEFAULT_STYLE.key).max(2),
            rooms: rooms.unwrap_or(DEFAULT_STYLE.rooms),
            room_key: room_key.unwrap_or(DEFAULT_STYLE.room_key).max(2),
        }
    }
}

pub(super) fn odd_layout(line: usize) -> EditError {
    EditError::NotEditable(format!(
        "the layout of the list on line {line} is too unusual to edit line by line; make the change in the file by hand"
    ))
}
