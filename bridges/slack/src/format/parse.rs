//! Slack mrkdwn -> rich text: code blocks, then per line control sequences and
//! entities, inline code, and `*bold*`, `_italic_`, `~strike~` by Slack's flanking
//! rules.
//!
//! The flanking rules, as this module reads them (and as `render.rs` writes for):
//! a marker opens a style when what precedes it is not a letter or digit (or is the
//! start of the line) and what follows it is not blank; it closes one when what
//! precedes it is not blank and what follows is not a letter or digit (or is the
//! end of the line); a backtick also needs something other than a backtick right
//! inside. The first marker that can close does, on the same line: styles never
//! span lines, and inline code is read before the other styles. Blank is
//! whitespace and U+200B ZERO WIDTH SPACE, which is how the renderer keeps a
//! literal marker from opening or closing anything. Control sequences, entities
//! and code spans count as punctuation for their neighbours.

use super::controls::{Control, Names, classify, control_at, decode, entity_at};
use switchboard_sdk::{RichText, Span, Style};

/// The character Slack users (and the renderer) put next to a marker to keep it
/// literal.
pub(super) const ZWSP: char = '\u{200B}';

const FENCE: &str = "```";

/// Parses a Slack message `text` into rich text, naming users, channels and user
/// groups through `names`.
pub(super) fn parse(text: &str, names: &dyn Names) -> RichText {
    let mut out = Out::default();
    let mut rest = text;
    while let Some((open, close)) = find_code_block(rest) {
        // The block sits on lines of its own; the line breaks around it are its own.
        let before = &rest[..open];
        parse_text(before.strip_suffix('\n').unwrap_or(before), names, &mut out);
        let code = &rest[open + FENCE.len()..close];
        let code = code.strip_prefix('\n').unwrap_or(code);
        let code = code.strip_suffix('\n').unwrap_or(code);
        out.push(Span::CodeBlock {
            language: None,
            code: flatten(code, names),
        });
        rest = &rest[close + FENCE.len()..];
        rest = rest.strip_prefix('\n').unwrap_or(rest);
    }
    parse_text(rest, names, &mut out);
    out.finish()
}

/// The first ```` ``` ```` with a later one to close it: where each starts.
fn find_code_block(text: &str) -> Option<(usize, usize)> {
    let open = text.find(FENCE)?;
    let from = open + FENCE.len();
    let close = from + text[from..].find(FENCE)?;
    Some((open, close))
}

fn parse_text(text: &str, names: &dyn Names, out: &mut Out) {
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.text("\n", Style::default());
        }
        parse_line(line, names, out);
    }
}

/// One unit of a line once control sequences, entities and code spans are read.
#[derive(Clone, Debug)]
enum Atom {
    Char(char),
    /// Text a control sequence shows (`#general`, `@here`, a date's fallback).
    Text(String),
    Mention {
        name: String,
        id: String,
    },
    Link {
        text: String,
        url: String,
    },
    /// An inline code span's text.
    Code(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Blank,
    Word,
    Punctuation,
}

impl Atom {
    fn class(&self) -> Class {
        match self {
            Atom::Char(c) if is_blank(*c) => Class::Blank,
            Atom::Char(c) if c.is_alphanumeric() => Class::Word,
            _ => Class::Punctuation,
        }
    }

    fn is_char(&self, wanted: char) -> bool {
        matches!(self, Atom::Char(c) if *c == wanted)
    }
}

/// Whitespace, or the zero-width space that keeps a marker literal.
pub(super) fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == ZWSP
}

/// Whether the marker at `at` can open. A backtick must not be followed by another:
/// ```` ``` ```` is not code holding a backtick.
fn can_open(atoms: &[Atom], at: usize) -> bool {
    let before = at.checked_sub(1).map(|i| atoms[i].class());
    let inside = atoms.get(at + 1);
    before != Some(Class::Word)
        && inside.is_some_and(|atom| atom.class() != Class::Blank && !same_tick(atoms, at, atom))
}

fn can_close(atoms: &[Atom], at: usize) -> bool {
    let inside = at.checked_sub(1).map(|i| &atoms[i]);
    let after = atoms.get(at + 1).map(Atom::class);
    inside.is_some_and(|atom| atom.class() != Class::Blank && !same_tick(atoms, at, atom))
        && after != Some(Class::Word)
}

/// Whether the marker at `at` and its neighbour `inside` are both backticks.
fn same_tick(atoms: &[Atom], at: usize, inside: &Atom) -> bool {
    atoms[at].is_char('`') && inside.is_char('`')
}

/// Where each marker could close, so finding a closer is a binary search: a long
/// line of unmatched markers stays fast.
fn closers(atoms: &[Atom], marker: char) -> Vec<usize> {
    (0..atoms.len())
        .filter(|&i| atoms[i].is_char(marker) && can_close(atoms, i))
        .collect()
}

/// The first closer after `open` (not right after it: a style needs content)
/// and before `end`.
fn closer(closers: &[usize], open: usize, end: usize) -> Option<usize> {
    let first = closers.partition_point(|&i| i <= open + 1);
    closers.get(first).copied().filter(|&i| i < end)
}

fn parse_line(line: &str, names: &dyn Names, out: &mut Out) {
    let atoms = code_spans(read_atoms(line, names));
    let markers = ['*', '_', '~'].map(|marker| closers(&atoms, marker));
    emphasis(&atoms, &markers, 0, atoms.len(), Style::default(), out);
}

/// The line's characters with entities decoded and control sequences read.
fn read_atoms(line: &str, names: &dyn Names) -> Vec<Atom> {
    let mut atoms = Vec::with_capacity(line.len());
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some((inner, len)) = control_at(rest)
        {
            atoms.push(control_atom(inner, names));
            rest = &rest[len..];
        } else if c == '&'
            && let Some((decoded, len)) = entity_at(rest)
        {
            atoms.push(Atom::Char(decoded));
            rest = &rest[len..];
        } else {
            atoms.push(Atom::Char(c));
            rest = &rest[c.len_utf8()..];
        }
    }
    atoms
}

/// What a control sequence shows.
fn control_atom(inner: &str, names: &dyn Names) -> Atom {
    let label = |label: Option<&str>| {
        label
            .map(|label| decode(label).into_owned())
            .filter(|label| !label.is_empty())
    };
    match classify(inner) {
        Some(Control::User { id, label: written }) => Atom::Mention {
            name: names
                .user(id)
                .or_else(|| label(written))
                .unwrap_or_else(|| id.to_owned()),
            id: id.to_owned(),
        },
        Some(Control::Channel { id, label: written }) => {
            let name = label(written)
                .or_else(|| names.channel(id))
                .unwrap_or_else(|| id.to_owned());
            Atom::Text(format!("#{}", name.trim_start_matches('#')))
        }
        Some(Control::Usergroup { id, label: written }) => {
            let name = label(written)
                .or_else(|| names.usergroup(id))
                .unwrap_or_else(|| id.to_owned());
            Atom::Text(format!("@{}", name.trim_start_matches('@')))
        }
        Some(Control::Special {
            name,
            label: written,
        }) => match name {
            // What a Slack reader sees; other networks' guards defuse these.
            "here" | "channel" | "everyone" => Atom::Text(format!("@{name}")),
            _ => Atom::Text(label(written).unwrap_or_else(|| format!("@{name}"))),
        },
        Some(Control::Date { fallback }) => {
            Atom::Text(label(fallback).unwrap_or_else(|| decode(inner).into_owned()))
        }
        Some(Control::Link {
            url,
            label: written,
        }) => link_atom(&decode(url), label(written)),
        None => Atom::Text(format!("<{}>", decode(inner))),
    }
}

/// Slack's server turns `example.com` and `a@example.com` as typed into
/// `<http://example.com|example.com>` and `<mailto:a@example.com|a@example.com>`:
/// such a link is read back as the text that was typed, which every network's
/// reader links again where it can.
fn link_atom(url: &str, label: Option<String>) -> Atom {
    let Some(text) = label.filter(|label| label != url) else {
        return Atom::Link {
            text: url.to_owned(),
            url: url.to_owned(),
        };
    };
    let typed = ["http://", "https://", "mailto:"]
        .iter()
        .filter_map(|scheme| url.strip_prefix(scheme))
        .any(|rest| rest == text || rest.strip_suffix('/') == Some(text.as_str()));
    if typed {
        Atom::Text(text)
    } else {
        Atom::Link {
            text,
            url: url.to_owned(),
        }
    }
}

/// Replaces each inline code span (a backtick that can open up to the first that
/// can close) by its text, in which nothing is a marker.
fn code_spans(atoms: Vec<Atom>) -> Vec<Atom> {
    let ends = closers(&atoms, '`');
    let mut out = Vec::with_capacity(atoms.len());
    let mut i = 0;
    while i < atoms.len() {
        if atoms[i].is_char('`')
            && can_open(&atoms, i)
            && let Some(end) = closer(&ends, i, atoms.len())
        {
            out.push(Atom::Code(atoms[i + 1..end].iter().map(shown).collect()));
            i = end + 1;
            continue;
        }
        out.push(atoms[i].clone());
        i += 1;
    }
    out
}

/// The text an atom shows where it can only be text (in code).
fn shown(atom: &Atom) -> String {
    match atom {
        Atom::Char(c) => c.to_string(),
        Atom::Text(text) | Atom::Code(text) | Atom::Link { text, .. } => text.clone(),
        Atom::Mention { name, .. } => format!("@{name}"),
    }
}

/// Code block text: entities decoded, control sequences as the text they show.
fn flatten(code: &str, names: &dyn Names) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(['<', '&']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let read = if rest.starts_with('<') {
            control_at(rest).map(|(inner, len)| (shown(&control_atom(inner, names)), len))
        } else {
            entity_at(rest).map(|(c, len)| (c.to_string(), len))
        };
        match read {
            Some((text, len)) => {
                out.push_str(&text);
                rest = &rest[len..];
            }
            None => {
                out.push_str(&rest[..1]);
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads `atoms[start..end]` with `style`: a marker that can open and has a closer
/// within the range styles what is between them; any other marker is text. A style
/// already on is not opened again, which bounds the nesting at three.
fn emphasis(
    atoms: &[Atom],
    closers: &[Vec<usize>; 3],
    start: usize,
    end: usize,
    style: Style,
    out: &mut Out,
) {
    let mut i = start;
    while i < end {
        let opened = match &atoms[i] {
            Atom::Char(marker @ ('*' | '_' | '~')) if can_open(atoms, i) => {
                let (kind, on) = match marker {
                    '*' => (0, style.bold),
                    '_' => (1, style.italic),
                    _ => (2, style.strikethrough),
                };
                (!on)
                    .then(|| closer(&closers[kind], i, end))
                    .flatten()
                    .map(|close| (close, with_marker(style, *marker)))
            }
            _ => None,
        };
        if let Some((close, inner)) = opened {
            emphasis(atoms, closers, i + 1, close, inner, out);
            i = close + 1;
            continue;
        }
        match &atoms[i] {
            Atom::Char(c) => out.char(*c, style),
            Atom::Text(text) => out.text(text, style),
            Atom::Code(code) => out.text(
                code,
                Style {
                    monospace: true,
                    ..style
                },
            ),
            Atom::Mention { name, id } => out.push(Span::Mention {
                name: name.clone(),
                user_id: Some(id.clone()),
            }),
            Atom::Link { text, url } => out.push(Span::Link {
                text: text.clone(),
                url: url.clone(),
                style,
            }),
        }
        i += 1;
    }
}

fn with_marker(style: Style, marker: char) -> Style {
    match marker {
        '*' => Style {
            bold: true,
            ..style
        },
        '_' => Style {
            italic: true,
            ..style
        },
        _ => Style {
            strikethrough: true,
            ..style
        },
    }
}

/// Rich text being built, with the current run of text kept in one buffer (lines
/// are read a character at a time).
#[derive(Default)]
struct Out {
    rich: RichText,
    run: String,
    style: Style,
}

impl Out {
    fn char(&mut self, c: char, style: Style) {
        if style != self.style {
            self.flush();
            self.style = style;
        }
        self.run.push(c);
    }

    fn text(&mut self, text: &str, style: Style) {
        if style != self.style {
            self.flush();
            self.style = style;
        }
        self.run.push_str(text);
    }

    fn push(&mut self, span: Span) {
        self.flush();
        self.rich.push(span);
    }

    fn flush(&mut self) {
        let run = std::mem::take(&mut self.run);
        self.rich.push_text(run, self.style);
    }

    fn finish(mut self) -> RichText {
        self.flush();
        self.rich
    }
}
