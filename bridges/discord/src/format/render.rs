//! Rich text -> Discord markdown, one line at a time: escapes, style markers,
//! links, inline code, and code blocks.
//!
//! Escaping: Discord shows any character that is not an ASCII letter, digit or
//! blank literally after a backslash, so literal markup is escaped rather than
//! broken up. Each line is first written lightly, escaping only what could pair
//! or start something: `*` unless between blanks; every `_` (it may open italics
//! that close lines later); `~` and `|` next to their twin or a marker; every
//! backtick and `[`; `\` before punctuation; `<` before a non-blank; and at the
//! start of a line `>`, `#` and a `- ` item. The line is read back with
//! `parse.rs`; when it does not show exactly the text and styles meant, it is
//! written again with every markup character escaped; when even that fails, the
//! style that went wrong is dropped and the line written again. So a style
//! markdown cannot express is dropped, and never shown as stray markers. Nothing
//! written lightly can open a style that a later line would close.
//!
//! Styles: `**bold**`, `*italic*`, `__underline__`, `~~strike~~` around each run
//! (blanks at the edges of a run move outside it; U+200B between markers that
//! close and markers that open), inline code as a code span (runs of backticks
//! inside broken by U+200B, so its fence is never three); colours are dropped. Links:
//! a bare address as written when a blank or the end of the line follows it, else
//! `<url>`; a link whose text differs as `[text](url)`. In an address, blanks and
//! `<` (in `<url>` also `>`, in a masked link parentheses) are percent-encoded, and so is the
//! `@` of an `@everyone` or `@here` in it (the guard would otherwise break the
//! address with U+200B). Only http(s) addresses are links in Discord; others are
//! written as text.

use std::cmp::Reverse;

use super::mentions::ZWSP;
use super::parse::parse;
use super::pieces::{Atom, Mark, Marks, Piece};
use super::refs::NoNames;
use super::scan::url_len;
use switchboard_sdk::{RichText, Span, Style};

/// Gives up on styles after this many repairs of one line and writes it plain.
const MAX_REPAIRS: usize = 16;

/// Writes one line (unguarded) that shows its pieces, each style that cannot be
/// shown dropped.
pub(super) fn write_line(pieces: &[Piece]) -> String {
    let mut pieces = pieces.to_vec();
    for _ in 0..MAX_REPAIRS {
        hug_text(&mut pieces);
        let light = write(&pieces, false);
        let Some(wrong) = first_unfaithful(&pieces, &light) else {
            return light;
        };
        let full = write(&pieces, true);
        if first_unfaithful(&pieces, &full).is_none() {
            return full;
        }
        if !drop_style_near(&mut pieces, wrong) {
            return full;
        }
    }
    for piece in &mut pieces {
        piece.marks = Marks::default();
        piece.code = false;
    }
    write(&pieces, true)
}

/// Moves blanks out of each styled stretch.
fn hug_text(pieces: &mut [Piece]) {
    for mark in Mark::ALL {
        let mut start = 0;
        while start < pieces.len() {
            let len = pieces[start..]
                .iter()
                .take_while(|piece| piece.marks.has(mark))
                .count();
            if len == 0 {
                start += 1;
                continue;
            }
            let stretch = &mut pieces[start..start + len];
            for piece in stretch.iter_mut().take_while(|piece| piece.is_blank()) {
                piece.marks.remove(mark);
            }
            for piece in stretch
                .iter_mut()
                .rev()
                .take_while(|piece| piece.is_blank())
            {
                piece.marks.remove(mark);
            }
            start += len;
        }
    }
}

fn write(pieces: &[Piece], full: bool) -> String {
    let mut out = String::new();
    let mut open: Vec<Mark> = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        let closed = close_marks(&mut out, &mut open, pieces[i].marks);
        if !pieces[i].is_blank() {
            open_marks(&mut out, &mut open, &pieces[i..], closed);
        }
        let current = Marks::from_marks(&open);
        let code = pieces[i].code;
        match &pieces[i].atom {
            Atom::Char(_) => {
                let chars: Vec<char> = pieces[i..]
                    .iter()
                    .map_while(|piece| match piece.atom {
                        Atom::Char(c) if piece.code == code && fits(piece, current) => Some(c),
                        _ => None,
                    })
                    .collect();
                i += chars.len();
                if code {
                    write_code_span(&mut out, &chars.iter().collect::<String>());
                } else {
                    let line_start = out.is_empty();
                    write_text(&mut out, &chars, line_start, full);
                }
            }
            Atom::Link { url, label } => {
                match label {
                    None if url_len(&read_on(url, &pieces[i + 1..], current))
                        == Some(url.len()) =>
                    {
                        out.push_str(url)
                    }
                    None => {
                        out.push('<');
                        out.push_str(&url.replace('>', "%3E"));
                        out.push('>');
                    }
                    Some(label) => {
                        out.push('[');
                        write_text(&mut out, &label.chars().collect::<Vec<_>>(), false, true);
                        out.push_str("](");
                        out.push_str(url);
                        out.push(')');
                    }
                }
                i += 1;
            }
        }
    }
    close_marks(&mut out, &mut open, Marks::default());
    out
}

/// A bare `url` and what the line goes on with after it, as far as Discord's
/// reading of an address could take it (to the next blank): characters that may
/// be escaped with their backslash, and a stand-in for markers and links.
fn read_on(url: &str, after: &[Piece], marks: Marks) -> String {
    let mut text = url.to_owned();
    for piece in after {
        match piece.atom {
            Atom::Char(c) if c.is_whitespace() && fits(piece, marks) => return text,
            Atom::Char(c) if !piece.code && fits(piece, marks) => {
                if "\\*_~|`<[]:".contains(c) {
                    text.push('\\');
                }
                text.push(c);
            }
            _ => {
                text.push('x');
                return text;
            }
        }
    }
    if !marks.is_empty() {
        text.push('*');
    }
    text
}

/// Whether `piece` can follow with the marks in `open` as they are.
fn fits(piece: &Piece, open: Marks) -> bool {
    if piece.is_blank() {
        piece.marks.contains(open)
    } else {
        piece.marks == open
    }
}

/// Closes down to the first open mark `marks` lacks (markers nest); returns
/// whether it closed any.
fn close_marks(out: &mut String, open: &mut Vec<Mark>, marks: Marks) -> bool {
    let Some(depth) = open.iter().position(|mark| !marks.has(*mark)) else {
        return false;
    };
    for mark in open.drain(depth..).rev() {
        out.push_str(mark.marker());
    }
    true
}

/// Opens the marks `pieces[0]` has that are not open, the longest-lasting
/// outermost so it need not close and reopen. Right after closing markers
/// (`closed`) a U+200B goes first, so the two runs of markers cannot merge
/// (`**a**` + `*b*` is not `**a***b*`).
fn open_marks(out: &mut String, open: &mut Vec<Mark>, pieces: &[Piece], closed: bool) {
    let mut opening: Vec<Mark> = Mark::ALL
        .into_iter()
        .filter(|mark| pieces[0].marks.has(*mark) && !open.contains(mark))
        .collect();
    if closed && !opening.is_empty() {
        out.push(ZWSP);
    }
    let extent = |mark: Mark| pieces.iter().take_while(|p| p.marks.has(mark)).count();
    opening.sort_by_key(|mark| Reverse(extent(*mark)));
    for mark in opening {
        out.push_str(mark.marker());
        open.push(mark);
    }
}

/// Writes text outside code, escaped (see the module docs); `full` escapes every
/// markup character.
fn write_text(out: &mut String, chars: &[char], line_start: bool, full: bool) {
    let first = chars.iter().position(|&c| c != ' ');
    let block_escape = match first.filter(|_| line_start) {
        Some(at) => match chars[at] {
            '>' | '#' => Some(at),
            '-' => (full || matches!(chars.get(at + 1), Some(' ' | '#'))).then_some(at),
            _ => None,
        },
        None => None,
    };
    let blank = |c: Option<&char>| c.is_some_and(|c| c.is_whitespace());
    for (k, &c) in chars.iter().enumerate() {
        let prev = k.checked_sub(1).and_then(|j| chars.get(j));
        let next = chars.get(k + 1);
        let escape = block_escape == Some(k)
            || match c {
                '\\' => {
                    full || next.is_none_or(|n| !(n.is_ascii_alphanumeric() || n.is_whitespace()))
                }
                '*' => full || !(blank(prev) && blank(next)),
                // Even inside a word: `_` may open italics that close lines later.
                '_' => true,
                '~' | '|' => full || prev.is_none_or(|p| *p == c) || next.is_none_or(|n| *n == c),
                '`' => true,
                '<' => full || next.is_none_or(|n| !n.is_whitespace()),
                // A link's text may span lines: `[` always, `]` when all is.
                '[' => true,
                ']' => full,
                // `https:` would start a link.
                ':' => full,
                _ => false,
            };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A code span, each run of backticks inside broken by U+200B and the fence one
/// longer than the longest left (one), padded with a space (which Discord drops)
/// where the code starts or ends with a backtick (after spaces).
fn write_code_span(out: &mut String, code: &str) {
    // No run of backticks inside, so the fence is at most two: three would be
    // read as a code block's fence where a later line has three more.
    let mut broken = String::with_capacity(code.len());
    for c in code.chars() {
        if c == '`' && broken.ends_with('`') {
            broken.push(ZWSP);
        }
        broken.push(c);
    }
    let code = broken.as_str();
    let fence = "`".repeat(longest_run(code, '`') + 1);
    // Discord drops one space between the fence and a backtick (past spaces).
    let front = if code.trim_start_matches(' ').starts_with('`') {
        " "
    } else {
        ""
    };
    let back = if code.trim_end_matches(' ').ends_with('`') {
        " "
    } else {
        ""
    };
    out.push_str(&format!("{fence}{front}{code}{back}{fence}"));
}

fn longest_run(text: &str, wanted: char) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == wanted { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// A code block's lines as written inside fences: no run of three backticks (it
/// would end the block).
pub(super) fn code_lines(code: &str) -> Vec<String> {
    code.trim_end_matches(['\n', '\r'])
        .split('\n')
        .map(|line| break_fences(&line.replace('\r', "")))
        .collect()
}

/// The fences around `content` (lines already written by [`code_lines`]).
pub(super) fn fenced(language: Option<&str>, content: &str) -> String {
    let language = language
        .filter(|language| {
            language
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+-.#".contains(&b))
        })
        .unwrap_or("");
    format!("```{language}\n{content}\n```")
}

/// Breaks every run of three backticks with U+200B.
fn break_fences(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            if run == 2 {
                out.push(ZWSP);
                run = 0;
            }
            run += 1;
        } else {
            run = 0;
        }
        out.push(c);
    }
    out
}

/// A visible character, its marks, whether it is code, whether a link.
type Seen = (char, Marks, bool, bool);

/// The piece where the line read back first differs from what was meant.
fn first_unfaithful(pieces: &[Piece], written: &str) -> Option<usize> {
    let shown = visible(&parse(written, &NoNames));
    let mut wanted: Vec<(usize, Seen)> = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.iter().enumerate() {
        match &piece.atom {
            Atom::Char(c) => wanted.push((index, (*c, piece.marks, piece.code, false))),
            Atom::Link { url, label } => wanted.extend(
                label
                    .as_ref()
                    .unwrap_or(url)
                    .chars()
                    .map(|c| (index, (c, piece.marks, false, true))),
            ),
        }
    }
    wanted.retain(|(_, (c, ..))| *c != ZWSP);
    let same = |(c, marks, code, link): Seen, (got, got_marks, got_code, got_link): Seen| {
        c == got
            && code == got_code
            && link == got_link
            && (c.is_whitespace() || marks == got_marks)
    };
    for (k, &(index, want)) in wanted.iter().enumerate() {
        if !shown.get(k).is_some_and(|&got| same(want, got)) {
            return Some(index);
        }
    }
    (shown.len() > wanted.len()).then(|| pieces.len().saturating_sub(1))
}

fn visible(rich: &RichText) -> Vec<Seen> {
    let mut seen = Vec::new();
    for span in &rich.spans {
        let (text, style, link) = match span {
            Span::Text { text, style } => (text.as_str(), *style, false),
            Span::Link { text, style, .. } => (text.as_str(), *style, true),
            Span::Mention { name, .. } => (name.as_str(), Style::default(), false),
            // Never meant in a line: a mismatch.
            Span::CodeBlock { .. } => ("\u{0}", Style::default(), false),
        };
        let marks = Marks::of(&style);
        seen.extend(
            text.chars()
                .filter(|&c| c != ZWSP)
                .map(|c| (c, marks, style.monospace, link)),
        );
    }
    seen
}

/// Drops the styles of the styled run nearest to `index`: those that start or end
/// there (all of them if none do). Returns false when nothing is styled.
fn drop_style_near(pieces: &mut [Piece], index: usize) -> bool {
    let styled = |&i: &usize| !pieces[i].marks.is_empty() || pieces[i].code;
    let Some(at) = (0..=index.min(pieces.len().saturating_sub(1)))
        .rev()
        .find(styled)
        .or_else(|| (index + 1..pieces.len()).find(styled))
    else {
        return false;
    };
    let key = |piece: &Piece| (piece.marks, piece.code);
    let run = key(&pieces[at]);
    let start = (0..at)
        .rev()
        .find(|&i| key(&pieces[i]) != run)
        .map_or(0, |i| i + 1);
    let end = (at..pieces.len())
        .find(|&i| key(&pieces[i]) != run)
        .unwrap_or(pieces.len());
    let before = start.checked_sub(1).map(|i| pieces[i].marks);
    let after = pieces.get(end).map(|piece| piece.marks);
    let continues =
        |mark: Mark| before.is_some_and(|m| m.has(mark)) && after.is_some_and(|m| m.has(mark));
    let mut dropped: Vec<Mark> = Mark::ALL
        .into_iter()
        .filter(|&mark| run.0.has(mark) && !continues(mark))
        .collect();
    if dropped.is_empty() && !run.1 {
        dropped = Mark::ALL.to_vec();
    }
    for piece in &mut pieces[start..end] {
        piece.code = false;
        for &mark in &dropped {
            piece.marks.remove(mark);
        }
    }
    true
}
