//! Rich text as the renderer sees it: lines of pieces (characters and links) with
//! the styles markdown markers can show, and code blocks. Mentions are plain
//! `@name` text by now (see `prepare` in `mod.rs`); addresses in text become links,
//! as Discord links them; only http(s) links stay links.

use std::mem;

use super::mentions::mass_word_follows;
use super::scan::{is_http, url_len};
use switchboard_sdk::{RichText, Span, Style};

/// What a message renders to: text lines, and code blocks on lines of their own.
pub(super) enum Block<'a> {
    Line(Vec<Piece>),
    Code {
        language: Option<&'a str>,
        code: &'a str,
    },
}

/// One visible unit of a line with its styles.
#[derive(Clone, Debug)]
pub(super) struct Piece {
    pub atom: Atom,
    pub marks: Marks,
    /// Inline code (never a link).
    pub code: bool,
}

#[derive(Clone, Debug)]
pub(super) enum Atom {
    Char(char),
    /// An http(s) address, already encoded; no label is a bare link.
    Link {
        url: String,
        label: Option<String>,
    },
}

impl Piece {
    pub fn is_blank(&self) -> bool {
        matches!(self.atom, Atom::Char(c) if c.is_whitespace())
    }

    /// The bytes of the text it shows (its markup only adds to them).
    pub fn text_len(&self) -> usize {
        match &self.atom {
            Atom::Char(c) => c.len_utf8(),
            Atom::Link { url, label } => label.as_ref().unwrap_or(url).len(),
        }
    }

    /// What a piece too wide for a part becomes: a link its text and address as
    /// text, a styled character the character alone; `None` for a plain one.
    pub fn degraded(&self) -> Option<Vec<Piece>> {
        let text = match &self.atom {
            Atom::Char(_) if self.marks.is_empty() && !self.code => return None,
            Atom::Char(c) => c.to_string(),
            Atom::Link { url, label: None } => url.clone(),
            Atom::Link {
                url,
                label: Some(label),
            } => format!("{label} ({url})"),
        };
        Some(text.chars().map(|c| plain(c, Marks::default())).collect())
    }
}

fn plain(c: char, marks: Marks) -> Piece {
    Piece {
        atom: Atom::Char(c),
        marks,
        code: false,
    }
}

/// The styles markdown markers express (inline code is not one: see [`Piece`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mark {
    Strike,
    Underline,
    Bold,
    Italic,
}

impl Mark {
    /// On a tie the first is outermost.
    pub(super) const ALL: [Mark; 4] = [Mark::Strike, Mark::Underline, Mark::Bold, Mark::Italic];

    pub(super) fn bit(self) -> u8 {
        1 << self as u8
    }

    pub(super) fn marker(self) -> &'static str {
        match self {
            Mark::Strike => "~~",
            Mark::Underline => "__",
            Mark::Bold => "**",
            Mark::Italic => "*",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Marks(pub(super) u8);

impl Marks {
    pub(super) fn of(style: &Style) -> Self {
        let on = [
            (style.strikethrough, Mark::Strike),
            (style.underline, Mark::Underline),
            (style.bold, Mark::Bold),
            (style.italic, Mark::Italic),
        ];
        Marks(
            on.iter()
                .filter(|(on, _)| *on)
                .fold(0, |bits, (_, mark)| bits | mark.bit()),
        )
    }

    pub(super) fn from_marks(marks: &[Mark]) -> Self {
        Marks(marks.iter().fold(0, |bits, mark| bits | mark.bit()))
    }

    pub(super) fn has(self, mark: Mark) -> bool {
        self.0 & mark.bit() != 0
    }

    pub(super) fn contains(self, other: Marks) -> bool {
        self.0 & other.0 == other.0
    }

    pub(super) fn remove(&mut self, mark: Mark) {
        self.0 &= !mark.bit();
    }

    pub(super) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The message as lines of pieces and code blocks; blank lines at either end are
/// dropped (Discord trims them).
pub(super) fn blocks(rich: &RichText) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut line = Vec::new();
    for span in &rich.spans {
        match span {
            Span::Text { text, style } => {
                for (i, part) in text.split('\n').enumerate() {
                    if i > 0 {
                        blocks.push(Block::Line(mem::take(&mut line)));
                    }
                    push_text(&mut line, part, style);
                }
            }
            Span::Link { text, url, style } => push_link(&mut line, text, url, style),
            Span::Mention { name, .. } => push_text(&mut line, name, &Style::default()),
            Span::CodeBlock { language, code } => {
                if !line.is_empty() {
                    blocks.push(Block::Line(mem::take(&mut line)));
                }
                if !code.trim_end_matches(['\n', '\r']).is_empty() {
                    // The parser takes one line break before a block as the
                    // block's own: a blank line before it needs one more.
                    if matches!(blocks.last(), Some(Block::Line(pieces)) if pieces.is_empty()) {
                        blocks.push(Block::Line(Vec::new()));
                    }
                    let language = language.as_deref();
                    blocks.push(Block::Code { language, code });
                }
            }
        }
    }
    blocks.push(Block::Line(line));
    let is_blank = |block: &Block<'_>| matches!(block, Block::Line(pieces) if pieces.is_empty());
    while blocks.last().is_some_and(is_blank) {
        blocks.pop();
    }
    let leading = blocks.iter().take_while(|block| is_blank(block)).count();
    blocks.drain(..leading);
    blocks
}

/// A line of code as inline code pieces.
pub(super) fn code_pieces(line: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let code = Style {
        monospace: true,
        ..Style::default()
    };
    push_text(&mut pieces, line, &code);
    pieces
}

/// Text as pieces; outside code, each address Discord would link becomes a link.
fn push_text(line: &mut Vec<Piece>, text: &str, style: &Style) {
    let marks = Marks::of(style);
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        // An address with a `>` in it could go neither bare (markers may follow)
        // nor between `<` and `>`: it stays text (escaped so it links nothing).
        if !style.monospace
            && c == 'h'
            && let Some(len) = url_len(&text[at..]).filter(|&len| !text[at..at + len].contains('>'))
        {
            let url = encode_url(&text[at..at + len], false);
            line.push(Piece {
                atom: Atom::Link { url, label: None },
                marks,
                code: false,
            });
            at += len;
            continue;
        }
        if c != '\r' {
            line.push(Piece {
                atom: Atom::Char(c),
                marks,
                code: style.monospace,
            });
        }
        at += c.len_utf8();
    }
}

fn push_link(line: &mut Vec<Piece>, text: &str, url: &str, style: &Style) {
    let marks = Marks::of(style);
    let text = text.replace(['\n', '\r'], " ");
    let bare = text.trim().is_empty() || text == url;
    if !is_http(url) {
        // Discord links nothing else: the text a reader would see.
        let shown = if bare {
            url.to_owned()
        } else {
            format!("{text} ({url})")
        };
        let style = Style {
            monospace: false,
            ..*style
        };
        return push_text(line, &shown.replace(['\n', '\r'], " "), &style);
    }
    line.push(Piece {
        atom: Atom::Link {
            url: encode_url(url, !bare),
            label: (!bare).then_some(text),
        },
        marks,
        code: false,
    });
}

/// `url` as it can be written: blanks, controls and `<` (and for a masked link
/// parentheses and `>`) percent-encoded, and the `@` of a mass mention too. A
/// `>` is encoded only where the address goes between `<` and `>`.
fn encode_url(url: &str, masked: bool) -> String {
    let mut out = String::with_capacity(url.len());
    for (at, c) in url.char_indices() {
        let encode = c.is_whitespace()
            || c.is_control()
            || c == '<'
            || (masked && matches!(c, '(' | ')' | '>'))
            || (matches!(c, '@' | '＠' | '﹫') && mass_word_follows(&url[at + c.len_utf8()..]));
        if encode {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}
