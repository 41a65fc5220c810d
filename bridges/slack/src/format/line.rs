//! A line as the renderer sees it: pieces (characters and links) with the styles
//! mrkdwn markers can show, built from rich text. Code blocks stay whole; mentions
//! become plain `@name` text; links get an address that can only be a link.

use std::mem;

use super::mentions::MASS_WORDS;
use super::parse::is_blank;
use switchboard_sdk::{RichText, Span, Style};

/// What a message renders to: text lines, and code blocks on lines of their own.
pub(super) enum Block<'a> {
    Line(Vec<Piece>),
    Code(&'a str),
}

/// One visible unit of a line with its styles.
#[derive(Clone, Debug)]
pub(super) struct Piece {
    pub atom: Atom,
    pub marks: Marks,
}

#[derive(Clone, Debug)]
pub(super) enum Atom {
    Char(char),
    /// `url` is percent-encoded (see [`slack_url`]) but not yet escaped; no label
    /// is a bare link.
    Link {
        url: String,
        label: Option<String>,
    },
}

impl Piece {
    pub fn is_blank(&self) -> bool {
        matches!(self.atom, Atom::Char(c) if is_blank(c))
    }

    /// The bytes of the text it shows (its markup only adds to them).
    pub fn text_len(&self) -> usize {
        match &self.atom {
            Atom::Char(c) => c.len_utf8(),
            Atom::Link { url, label } => label.as_ref().unwrap_or(url).len(),
        }
    }

    /// Whether a part may be cut before this piece (not at a no-break space).
    pub fn is_break(&self) -> bool {
        matches!(self.atom, Atom::Char(c)
            if c.is_whitespace() && !matches!(c, '\u{A0}' | '\u{2007}' | '\u{202F}'))
    }

    /// What a piece too wide for a part's budget with its markup becomes: a link
    /// the text it shows and its address, a styled character the character alone.
    /// `None` for a plain character.
    pub fn degraded(&self) -> Option<Vec<Piece>> {
        let text = match &self.atom {
            Atom::Char(_) if self.is_plain() => return None,
            Atom::Char(c) => c.to_string(),
            Atom::Link { url, label: None } => url.clone(),
            Atom::Link {
                url,
                label: Some(label),
            } => format!("{label} ({url})"),
        };
        Some(plain_pieces(&text))
    }

    pub fn is_plain(&self) -> bool {
        self.marks == Marks::default()
    }
}

/// The styles mrkdwn markers express.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mark {
    Strike,
    Bold,
    Italic,
    /// Inline code: always innermost, since nothing formats inside it.
    Code,
}

impl Mark {
    pub const ALL: [Mark; 4] = [Mark::Strike, Mark::Bold, Mark::Italic, Mark::Code];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    pub fn marker(self) -> char {
        match self {
            Mark::Strike => '~',
            Mark::Bold => '*',
            Mark::Italic => '_',
            Mark::Code => '`',
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Marks(pub u8);

impl Marks {
    pub fn of(style: &Style) -> Self {
        let mut marks = Marks::default();
        for (on, mark) in [
            (style.strikethrough, Mark::Strike),
            (style.bold, Mark::Bold),
            (style.italic, Mark::Italic),
            (style.monospace, Mark::Code),
        ] {
            if on {
                marks.0 |= mark.bit();
            }
        }
        marks
    }

    pub fn from_marks(marks: &[Mark]) -> Self {
        Marks(marks.iter().fold(0, |bits, mark| bits | mark.bit()))
    }

    pub fn has(self, mark: Mark) -> bool {
        self.0 & mark.bit() != 0
    }

    pub fn contains(self, other: Marks) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn remove(&mut self, mark: Mark) {
        self.0 &= !mark.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The message as lines of pieces and code blocks; blank lines at either end are
/// dropped (Slack trims them).
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
                    push_text(&mut line, part, Marks::of(style));
                }
            }
            Span::Link { text, url, style } => push_link(&mut line, text, url, style),
            Span::Mention { name, user_id } => {
                push_text(
                    &mut line,
                    &switchboard_sdk::text::mention_text(name, user_id.as_deref()),
                    Marks::default(),
                );
            }
            Span::CodeBlock { code, .. } => {
                if !line.is_empty() {
                    blocks.push(Block::Line(mem::take(&mut line)));
                }
                blocks.push(Block::Code(code));
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

/// `text` as unstyled pieces.
pub(super) fn plain_pieces(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    push_text(&mut pieces, text, Marks::default());
    pieces
}

fn push_text(line: &mut Vec<Piece>, text: &str, marks: Marks) {
    line.extend(text.chars().filter(|&c| c != '\r').map(|c| {
        let mut marks = marks;
        if c == '`' {
            marks.remove(Mark::Code);
        }
        Piece {
            atom: Atom::Char(c),
            marks,
        }
    }));
}

fn push_link(line: &mut Vec<Piece>, text: &str, url: &str, style: &Style) {
    let mut marks = Marks::of(style);
    // Code cannot hold a link.
    marks.remove(Mark::Code);
    let bare = text.is_empty() || text == url;
    match slack_url(url) {
        Some(written) => line.push(Piece {
            atom: Atom::Link {
                url: written,
                label: (!bare).then(|| text.replace(['\n', '\r'], " ")),
            },
            marks,
        }),
        // No scheme (`www.x.test`, `!channel`): no link, the text a reader would see.
        None if bare => push_text(line, url, marks),
        None => push_text(line, &format!("{} ({url})", text.replace('\n', " ")), marks),
    }
}

/// `url` as it can go between `<` and `|` once escaped: it must start with a
/// scheme, so that the sequence can be nothing but a link (`<!`, `<@` and `<#` are
/// commands); `<`, `>`, `|`, backticks, whitespace and control characters are
/// percent-encoded. An `@` stays (`https://social.example/@here` is another
/// address than `%40here` to some servers): Slack reads no mentions in an address.
fn slack_url(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once(':')?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
    if !valid {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            c if c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '|' | '`') => {
                let mut bytes = [0; 4];
                for byte in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

pub(super) fn starts_mass_word(text: &str) -> bool {
    MASS_WORDS.iter().any(|word| {
        text.get(..word.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(word))
    })
}
