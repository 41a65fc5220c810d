//! A line of pieces -> mrkdwn: escaping, literal markers, style markers placed
//! where the flanking rules let them work, and links.
//!
//! Literal markers: Slack has no backslash escape, so a `*`, `_`, `~` or `` ` ``
//! that could open or close a style gets U+200B ZERO WIDTH SPACE on both sides.
//! Inside, the space means the marker neither opens (it needs something other than
//! a blank after it) nor closes (it needs one before it); and should Slack count the
//! character as part of a word instead, the same two spaces still stop it, from the
//! outside. A marker between two letters or digits (`snake_case`, `2*3`) or between
//! two blanks (`2 * 3`) is inert and written as it is. A line that would start a
//! quote (`>`, written `&gt;`, which Slack reads as a quote all the same) starts
//! with U+200B too.
//!
//! Styles are written as markers around each run and the line is then read back
//! with `parse.rs`; a run whose style does not come back as meant (a marker next to
//! a letter, `a*b*c`) loses that style and the line is written again, so a style
//! mrkdwn cannot express is dropped, never shown as stray markers. Monospace is the
//! innermost style (nothing formats inside code) and a backtick cannot be in code,
//! so it loses monospace. Underline and colours have no mrkdwn and are dropped.

use std::cmp::Reverse;

use super::controls::{Names, escape, push_escaped};
use super::line::{Atom, Mark, Marks, Piece, starts_mass_word};
use super::parse::{ZWSP, is_blank, parse};
use switchboard_sdk::{RichText, Span, Style};

/// About how many bytes each piece writes in a line of its own: exact for a line
/// without styles that starts at `pieces[0]`, and without the style markers (and
/// the zero-width spaces a style edge adds) otherwise.
pub(super) fn written_lens(pieces: &[Piece]) -> Vec<usize> {
    let side = |at: Option<&Piece>| match at.map(|piece| &piece.atom) {
        None => Side::Edge,
        Some(Atom::Char(c)) => Side::Char(*c),
        Some(Atom::Link { .. }) => Side::Unknown,
    };
    let quote_at = pieces
        .iter()
        .position(|piece| !matches!(piece.atom, Atom::Char(c) if c.is_whitespace()))
        .filter(|&at| matches!(pieces[at].atom, Atom::Char('>')));
    (0..pieces.len())
        .map(|i| {
            let c = match &pieces[i].atom {
                Atom::Link { url, label } => {
                    let label = label.as_ref().map_or(0, |label| escape(label).len() + 1);
                    return escape(url).len() + label + 2;
                }
                Atom::Char(c) => *c,
            };
            let zero_width = ZWSP.len_utf8();
            let mut len = match c {
                '&' => 5,
                '<' | '>' => 4,
                c => c.len_utf8(),
            };
            if is_marker(c)
                && !is_inert(
                    side(i.checked_sub(1).map(|j| &pieces[j])),
                    side(pieces.get(i + 1)),
                )
            {
                len += 2 * zero_width;
            }
            if quote_at == Some(i) {
                len += zero_width;
            }
            if matches!(c, '@' | '＠' | '﹫') && starts_mass_word_in(&pieces[i + 1..]) {
                len += zero_width;
            }
            len
        })
        .collect()
}

/// Whether the pieces start with a word the mention guard breaks.
fn starts_mass_word_in(pieces: &[Piece]) -> bool {
    let text: String = pieces
        .iter()
        .take(8)
        .map_while(|piece| match piece.atom {
            Atom::Char(c) => Some(c),
            Atom::Link { .. } => None,
        })
        .collect();
    starts_mass_word(&text)
}

/// Gives up on styles after this many repairs of one line and writes it plain.
const MAX_REPAIRS: usize = 16;

/// Writes one line (unguarded), each style that cannot be shown dropped.
pub(super) fn write_line(pieces: &[Piece]) -> String {
    if pieces.iter().all(Piece::is_plain) {
        return write(pieces);
    }
    let mut pieces = pieces.to_vec();
    for _ in 0..MAX_REPAIRS {
        hug_text(&mut pieces);
        let mrkdwn = write(&pieces);
        let Some(wrong) = first_unfaithful(&pieces, &mrkdwn) else {
            return mrkdwn;
        };
        if !repair(&mut pieces, wrong) {
            return mrkdwn;
        }
    }
    for piece in &mut pieces {
        piece.marks = Marks::default();
    }
    write(&pieces)
}

/// Moves blanks out of each styled stretch: a marker with a blank on its inner
/// side neither opens nor closes. Code is innermost, so a code stretch ends
/// wherever another style changes, and each of its spans hugs its own text.
fn hug_text(pieces: &mut [Piece]) {
    for mark in Mark::ALL {
        let mut start = 0;
        while start < pieces.len() {
            let first = pieces[start].marks;
            let len = pieces[start..]
                .iter()
                .take_while(|piece| match mark {
                    Mark::Code => piece.marks == first && first.has(mark),
                    _ => piece.marks.has(mark),
                })
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

/// What is next to a literal marker in the written line.
#[derive(Clone, Copy)]
enum Side {
    /// The start or end of the line.
    Edge,
    Char(char),
    /// A style marker or a link: treated as able to pair.
    Unknown,
}

fn write(pieces: &[Piece]) -> String {
    let mut out = String::new();
    let mut open: Vec<Mark> = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        close_marks(&mut out, &mut open, pieces[i].marks);
        // Nothing opens before a blank (it would not open): a mark that closed only
        // to keep the nesting reopens at the next visible character.
        if !pieces[i].is_blank() {
            open_marks(&mut out, &mut open, &pieces[i..]);
        }
        let current = Marks::from_marks(&open);
        match &pieces[i].atom {
            Atom::Char(_) => {
                let chars: Vec<char> = pieces[i..]
                    .iter()
                    .map_while(|piece| match piece.atom {
                        Atom::Char(c) if fits(piece, current) => Some(c),
                        _ => None,
                    })
                    .collect();
                let before = if out.is_empty() {
                    Side::Edge
                } else {
                    Side::Unknown
                };
                i += chars.len();
                let after = if i == pieces.len() && open.is_empty() {
                    Side::Edge
                } else {
                    Side::Unknown
                };
                if current.has(Mark::Code) {
                    chars.iter().for_each(|&c| push_escaped(&mut out, c));
                } else {
                    write_text(&mut out, &chars, before, after);
                }
            }
            Atom::Link { url, label } => {
                out.push('<');
                out.push_str(&escape(url));
                if let Some(label) = label {
                    out.push('|');
                    out.push_str(&break_fences(&escape(label)));
                }
                out.push('>');
                i += 1;
            }
        }
    }
    close_marks(&mut out, &mut open, Marks::default());
    out
}

/// Whether `piece` can follow with the marks in `open` as they are.
fn fits(piece: &Piece, open: Marks) -> bool {
    if piece.is_blank() {
        piece.marks.contains(open)
    } else {
        piece.marks == open
    }
}

/// Closes down to the first open mark `marks` lacks (markers nest).
fn close_marks(out: &mut String, open: &mut Vec<Mark>, marks: Marks) {
    if let Some(depth) = open.iter().position(|mark| !marks.has(*mark)) {
        for mark in open.drain(depth..).rev() {
            out.push(mark.marker());
        }
    }
}

/// Opens the marks `pieces[0]` has that are not open, the longest-lasting
/// outermost so it need not close and reopen, code always innermost.
fn open_marks(out: &mut String, open: &mut Vec<Mark>, pieces: &[Piece]) {
    let wanted = |open: &[Mark]| -> Vec<Mark> {
        Mark::ALL
            .into_iter()
            .filter(|mark| pieces[0].marks.has(*mark) && !open.contains(mark))
            .collect()
    };
    let mut opening = wanted(open);
    // Code holds no markers: it closes for another style to open, and reopens inside.
    if opening.iter().any(|mark| *mark != Mark::Code) && open.last() == Some(&Mark::Code) {
        open.pop();
        out.push(Mark::Code.marker());
        opening = wanted(open);
    }
    opening.sort_by_key(|mark| (*mark == Mark::Code, Reverse(extent(pieces, *mark))));
    for mark in opening {
        out.push(mark.marker());
        open.push(mark);
    }
}

/// How many pieces from the start keep `mark`.
fn extent(pieces: &[Piece], mark: Mark) -> usize {
    pieces
        .iter()
        .take_while(|piece| piece.marks.has(mark))
        .count()
}

fn is_marker(c: char) -> bool {
    matches!(c, '*' | '_' | '~' | '`')
}

/// Writes text outside code: escaped, literal markers kept literal, and no quote.
fn write_text(out: &mut String, chars: &[char], before: Side, after: Side) {
    let quote_at = match before {
        Side::Edge => chars
            .iter()
            .position(|c| !c.is_whitespace())
            .filter(|&at| chars[at] == '>'),
        _ => None,
    };
    for (i, &c) in chars.iter().enumerate() {
        if quote_at == Some(i) {
            out.push(ZWSP);
        }
        if !is_marker(c) {
            push_escaped(out, c);
            continue;
        }
        let prev = i.checked_sub(1).map_or(before, |j| Side::Char(chars[j]));
        let next = chars.get(i + 1).map_or(after, |&c| Side::Char(c));
        if is_inert(prev, next) {
            out.push(c);
        } else {
            out.push(ZWSP);
            out.push(c);
            out.push(ZWSP);
        }
    }
}

/// A marker that can neither open (it needs no letter or digit before it and no
/// blank after it) nor close (the reverse), whatever else is on the line.
fn is_inert(prev: Side, next: Side) -> bool {
    let word = |side: Side| matches!(side, Side::Char(c) if c.is_alphanumeric());
    let blank = |side: Side| match side {
        Side::Edge => true,
        Side::Char(c) => is_blank(c),
        Side::Unknown => false,
    };
    (word(prev) && word(next)) || (blank(prev) && blank(next))
}

/// Breaks every run of three backticks with U+200B, so that text cannot open or
/// close a code block.
pub(super) fn break_fences(text: &str) -> String {
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

/// Names nothing: ids stay ids (and labels Slack wrote are used). For text whose
/// references cannot be looked up (webhooks mode has no Web API) and for reading
/// back what the renderer wrote, which has no references.
pub struct NoNames;

impl Names for NoNames {
    fn user(&self, _: &str) -> Option<String> {
        None
    }
    fn channel(&self, _: &str) -> Option<String> {
        None
    }
    fn usergroup(&self, _: &str) -> Option<String> {
        None
    }
}

/// A visible character and its marks; U+200B is left out (the renderer adds it).
type Seen = (char, Marks);

/// Where the line read back first differs from what was meant: the piece, what
/// it should show, and what shows instead (`None`: nothing, the line ended).
type Wrong = (usize, Seen, Option<Seen>);

fn first_unfaithful(pieces: &[Piece], mrkdwn: &str) -> Option<Wrong> {
    let shown = visible(&parse(mrkdwn, &NoNames));
    let mut wanted: Vec<(usize, Seen)> = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.iter().enumerate() {
        match &piece.atom {
            Atom::Char(c) => wanted.push((index, (*c, piece.marks))),
            Atom::Link { url, label } => wanted.extend(
                label
                    .as_ref()
                    .unwrap_or(url)
                    .chars()
                    .map(|c| (index, (c, piece.marks))),
            ),
        }
    }
    wanted.retain(|(_, (c, _))| *c != ZWSP);
    // The style of a blank is invisible (and hugging moves it).
    let same = |(c, marks): Seen, (got, got_marks): Seen| {
        c == got && (c.is_whitespace() || marks == got_marks)
    };
    for (k, &(index, want)) in wanted.iter().enumerate() {
        let got = shown.get(k).copied();
        if !got.is_some_and(|got| same(want, got)) {
            return Some((index, want, got));
        }
    }
    (shown.len() > wanted.len()).then(|| {
        let last = wanted
            .last()
            .map_or((0, (' ', Marks::default())), |&last| last);
        (last.0, last.1, shown.get(wanted.len()).copied())
    })
}

/// Drops the style that went wrong: the one whose marker shows as text (an
/// opener before a letter, a closer after one), or the one a character lacks when
/// read back, from its whole stretch; failing that, the styles near the piece.
/// Returns false when there is no style left to drop.
fn repair(pieces: &mut [Piece], (index, (want, want_marks), got): Wrong) -> bool {
    match got {
        Some((got, got_marks)) if got == want => {
            let missing = Marks(want_marks.0 & !got_marks.0);
            if !missing.is_empty() {
                for mark in Mark::ALL.into_iter().filter(|&mark| missing.has(mark)) {
                    drop_stretch(pieces, index, mark);
                }
                return true;
            }
        }
        Some((got, _)) => {
            let stray = Mark::ALL.into_iter().find(|mark| mark.marker() == got);
            let owner = stray.and_then(|mark| {
                [Some(index), index.checked_sub(1)]
                    .into_iter()
                    .flatten()
                    .find(|&at| pieces.get(at).is_some_and(|piece| piece.marks.has(mark)))
                    .map(|at| (at, mark))
            });
            if let Some((at, mark)) = owner {
                drop_stretch(pieces, at, mark);
                return true;
            }
        }
        None => {}
    }
    drop_marks_near(pieces, index)
}

/// Removes `mark` from the stretch of pieces around `at` that have it.
fn drop_stretch(pieces: &mut [Piece], at: usize, mark: Mark) {
    let start = (0..at)
        .rev()
        .find(|&i| !pieces[i].marks.has(mark))
        .map_or(0, |i| i + 1);
    let end = (at..pieces.len())
        .find(|&i| !pieces[i].marks.has(mark))
        .unwrap_or(pieces.len());
    for piece in &mut pieces[start..end] {
        piece.marks.remove(mark);
    }
}

fn visible(rich: &RichText) -> Vec<Seen> {
    let mut seen = Vec::new();
    for span in &rich.spans {
        let (text, style) = match span {
            Span::Text { text, style } | Span::Link { text, style, .. } => (text.as_str(), *style),
            Span::Mention { name, .. } => (name.as_str(), Style::default()),
            Span::CodeBlock { code, .. } => (code.as_str(), Style::default()),
        };
        let marks = Marks::of(&style);
        seen.extend(text.chars().filter(|&c| c != ZWSP).map(|c| (c, marks)));
    }
    seen
}

/// Drops the marks that start or end at the styled run nearest to `index` (all of
/// its marks if none do). Returns false when there is no style left to drop.
fn drop_marks_near(pieces: &mut [Piece], index: usize) -> bool {
    let styled = |&i: &usize| !pieces[i].marks.is_empty();
    let Some(at) = (0..=index.min(pieces.len().saturating_sub(1)))
        .rev()
        .find(styled)
        .or_else(|| (index + 1..pieces.len()).find(styled))
    else {
        return false;
    };
    let marks = pieces[at].marks;
    let start = (0..at)
        .rev()
        .find(|&i| pieces[i].marks != marks)
        .map_or(0, |i| i + 1);
    let end = (at..pieces.len())
        .find(|&i| pieces[i].marks != marks)
        .unwrap_or(pieces.len());
    let before = start.checked_sub(1).map(|i| pieces[i].marks);
    let after = pieces.get(end).map(|piece| piece.marks);
    let continues =
        |mark: Mark| before.is_some_and(|m| m.has(mark)) && after.is_some_and(|m| m.has(mark));
    let mut dropped: Vec<Mark> = Mark::ALL
        .into_iter()
        .filter(|&mark| marks.has(mark) && !continues(mark))
        .collect();
    if dropped.is_empty() {
        dropped = Mark::ALL.to_vec();
    }
    for piece in &mut pieces[start..end] {
        for &mark in &dropped {
            piece.marks.remove(mark);
        }
    }
    true
}
