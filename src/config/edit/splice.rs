//! The text edits: lines deleted or inserted, a value replaced on its line, an empty
//! list (`routes: []`) filled or written, and the edits applied to the text with the
//! file's line ends.

use super::EditError;
use super::layout::{Doc, Region, odd_layout};
use crate::config::tree::{Node, Value};

/// One change to the text. `lines` are inserted as whole lines at `start` (a line's
/// start, or the end of the text) with the file's line end; otherwise `start..end` is
/// replaced by `text`.
#[derive(Debug)]
pub(super) struct Edit {
    start: usize,
    end: usize,
    text: String,
    lines: Vec<String>,
}

impl Edit {
    pub(super) fn splice(start: usize, end: usize, text: impl Into<String>) -> Self {
        Self {
            start,
            end,
            text: text.into(),
            lines: Vec::new(),
        }
    }
    pub(super) fn insert(at: usize, lines: Vec<String>) -> Self {
        Self {
            start: at,
            end: at,
            text: String::new(),
            lines,
        }
    }
}

impl Doc<'_> {
    pub(super) fn delete(&self, region: Region) -> Edit {
        Edit::splice(
            self.lines[region.first].start,
            self.lines[region.last].next,
            "",
        )
    }

    /// Lines inserted after `region`.
    pub(super) fn insert_after(&self, region: Region, lines: Vec<String>) -> Edit {
        Edit::insert(self.lines[region.last].next, lines)
    }

    /// The `:` after `key` on its line.
    pub(super) fn colon(&self, key: &Node) -> Option<usize> {
        let from = key.span.end;
        let line_end = self.lines[self.line_of(key.span.start)].end;
        let at = from + self.text[from..line_end].find(':')?;
        self.text[from..at]
            .trim_matches([' ', '\t'])
            .is_empty()
            .then_some(at)
    }

    /// `key: value` with `value` replaced by `text`: only a scalar on the key's line
    /// (or continued below it), after nothing but the colon (no anchor, tag, `|`).
    pub(super) fn replace_value(&self, key: &Node, value: &Node, text: String) -> Option<Edit> {
        if value.is_alias()
            || value.span.is_empty()
            || matches!(value.value, Value::Seq(_) | Value::Map(_))
        {
            return None;
        }
        let colon = self.colon(key)?;
        if value.span.start <= colon {
            return None;
        }
        self.text[colon + 1..value.span.start]
            .trim_matches([' ', '\t'])
            .is_empty()
            .then(|| Edit::splice(value.span.start, value.span.end, text))
    }

    /// Refuses to remove lines holding an anchor (`&name`) that an alias outside them uses.
    pub(super) fn anchors_kept(&self, region: Region) -> Result<(), EditError> {
        let bytes = self.lines[region.first].start..self.lines[region.last].next;
        let lines = region.first + 1..=region.last + 1;
        match self
            .aliases
            .iter()
            .find(|(at, _, defined)| !bytes.contains(at) && lines.contains(defined))
        {
            Some((_, line, defined)) => Err(EditError::NotEditable(format!(
                "line {} is an alias (*name) of the value on line {defined} (anchored with &name), which this change would remove; write the value out there first",
                line + 1
            ))),
            None => Ok(()),
        }
    }

    /// `key: value` on the key's line emptied (`routes: []  # none` becomes
    /// `routes:  # none`) and `lines` written below it.
    pub(super) fn fill_empty(
        &self,
        key: &Node,
        value: &Node,
        lines: Vec<String>,
    ) -> Result<Vec<Edit>, EditError> {
        let key_line = self.line_of(key.span.start);
        let odd = || odd_layout(key_line + 1);
        let colon = self.colon(key).ok_or_else(odd)?;
        let end = match &value.value {
            Value::Null if value.span.is_empty() => colon + 1,
            Value::Null => value.span.end,
            _ if self.byte(value.span.start) == Some(b'[') => {
                let close = self.text[value.span.start + 1..]
                    .find(']')
                    .ok_or_else(odd)?;
                value.span.start + 1 + close + 1
            }
            _ => return Err(odd()),
        };
        if value.is_alias() || end < colon + 1 || end > self.lines[key_line].end {
            return Err(odd());
        }
        Ok(vec![
            Edit::splice(colon + 1, end, ""),
            Edit::insert(self.lines[key_line].next, lines),
        ])
    }

    /// `routes: []` / `rooms: []` after `key` when its last item is removed.
    pub(super) fn empty_list(&self, key: &Node) -> Option<Edit> {
        let colon = self.colon(key)?;
        Some(Edit::splice(colon + 1, colon + 1, " []"))
    }

    /// The edits applied; `None` if two of them overlap.
    pub(super) fn splice(&self, mut edits: Vec<Edit>) -> Option<String> {
        edits.sort_by_key(|edit| (edit.start, edit.end));
        let mut out = String::with_capacity(self.text.len() + 256);
        let mut at = 0;
        for edit in edits {
            if edit.start < at {
                return None;
            }
            out.push_str(&self.text[at..edit.start]);
            if edit.lines.is_empty() {
                out.push_str(&edit.text);
            } else {
                // At the end of a file without a final newline.
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push_str(self.eol);
                }
                for line in &edit.lines {
                    out.push_str(line);
                    out.push_str(self.eol);
                }
            }
            at = edit.end;
        }
        out.push_str(&self.text[at..]);
        // A file without a final newline stays without one.
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            while out.ends_with('\n') {
                out.pop();
                if out.ends_with('\r') {
                    out.pop();
                }
            }
        }
        Some(out)
    }
}
