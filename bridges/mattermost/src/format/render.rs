//! Rich text -> Mattermost markdown: escaping, emphasis placement, links and code.

use std::cmp::Reverse;
use std::mem;

use super::parse::parse;
use switchboard_sdk::text::find_url;
use switchboard_sdk::{RichText, Span, Style};

/// Renders rich text as Mattermost markdown that shows exactly the same text.
pub(super) fn render(rich: &RichText) -> String {
    blocks(rich)
        .into_iter()
        .map(|block| match block {
            Block::Line(pieces) => render_line(pieces),
            Block::Code { language, code } => render_code_block(language, code),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a message renders to: text lines, and code blocks on lines of their own.
enum Block<'a> {
    Line(Vec<Piece>),
    Code {
        language: Option<&'a str>,
        code: &'a str,
    },
}

/// One visible unit of a line. Text is kept per character so emphasis can be
/// trimmed off whitespace and escapes can look at their neighbours.
#[derive(Clone, Debug)]
struct Piece {
    atom: Atom,
    emphasis: Emphasis,
}

#[derive(Clone, Debug)]
enum Atom {
    Char(char),
    /// Monospace text, shown as a code span.
    Code(String),
    Link {
        text: String,
        url: String,
        monospace: bool,
    },
}

impl Piece {
    fn is_space(&self) -> bool {
        matches!(self.atom, Atom::Char(c) if c.is_whitespace())
    }

    /// The characters a reader sees, with the emphasis and whether they are code.
    fn visible(&self) -> Vec<Seen> {
        let (text, monospace) = match &self.atom {
            Atom::Char(c) => return vec![(*c, self.emphasis, false)],
            Atom::Code(code) => (code.as_str(), true),
            Atom::Link {
                text,
                url,
                monospace,
            } => (
                if text.is_empty() { url } else { text.as_str() },
                *monospace,
            ),
        };
        text.chars()
            .map(|c| (c, self.emphasis, monospace))
            .collect()
    }
}

/// The styles markdown markers express.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Bold,
    Italic,
    Strike,
}

impl Mark {
    /// On a tie the first is outermost: `~~` may touch a letter where `**` may
    /// not (`a~~**b**~~` is struck and bold in pulldown-cmark, `a**~~b~~**` is not).
    const ALL: [Mark; 3] = [Mark::Strike, Mark::Bold, Mark::Italic];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn marker(self) -> &'static str {
        match self {
            Mark::Bold => "**",
            Mark::Italic => "*",
            Mark::Strike => "~~",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Emphasis(u8);

impl Emphasis {
    fn of(style: &Style) -> Self {
        let marks = [
            (style.bold, Mark::Bold),
            (style.italic, Mark::Italic),
            (style.strikethrough, Mark::Strike),
        ];
        let on: Vec<Mark> = marks
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, mark)| *mark)
            .collect();
        Emphasis::from_marks(&on)
    }

    fn from_marks(marks: &[Mark]) -> Self {
        Emphasis(marks.iter().fold(0, |bits, mark| bits | mark.bit()))
    }

    fn contains(self, other: Emphasis) -> bool {
        self.0 & other.0 == other.0
    }

    fn has(self, mark: Mark) -> bool {
        self.0 & mark.bit() != 0
    }

    fn remove(&mut self, mark: Mark) {
        self.0 &= !mark.bit();
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

fn blocks(rich: &RichText) -> Vec<Block<'_>> {
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
            Span::Link { text, url, style } if !(text.is_empty() && url.is_empty()) => {
                line.push(Piece {
                    atom: Atom::Link {
                        text: text.replace('\n', " "),
                        url: url.clone(),
                        monospace: style.monospace,
                    },
                    emphasis: Emphasis::of(style),
                });
            }
            Span::Link { .. } => {}
            Span::Mention { name, user_id } => {
                let shown = match user_id {
                    Some(_) if !name.starts_with('@') => format!("@{name}"),
                    _ => name.clone(),
                };
                push_text(&mut line, &shown, &Style::default());
            }
            Span::CodeBlock { language, code } => {
                if !line.is_empty() {
                    blocks.push(Block::Line(mem::take(&mut line)));
                }
                blocks.push(Block::Code {
                    language: language.as_deref(),
                    code,
                });
            }
        }
    }
    blocks.push(Block::Line(line));
    for block in &mut blocks {
        if let Block::Line(pieces) = block {
            trim_line(pieces);
        }
    }
    let is_blank = |block: &Block<'_>| matches!(block, Block::Line(pieces) if pieces.is_empty());
    while blocks.last().is_some_and(is_blank) {
        blocks.pop();
    }
    let leading = blocks.iter().take_while(|block| is_blank(block)).count();
    blocks.drain(..leading);
    blocks
}

fn push_text(line: &mut Vec<Piece>, text: &str, style: &Style) {
    let emphasis = Emphasis::of(style);
    if style.monospace {
        // Spaces at the ends of a code span go outside it, where they let the
        // markers around it touch text ("**`x `**y" is not bold).
        let code = text.trim();
        if code.is_empty() {
            return push_chars(line, text, emphasis);
        }
        let start = text.len() - text.trim_start().len();
        push_chars(line, &text[..start], emphasis);
        line.push(Piece {
            atom: Atom::Code(code.replace('\r', "")),
            emphasis,
        });
        push_chars(line, &text[start + code.len()..], emphasis);
    } else {
        // A URL in text is written as a link: escapes inside it would end up in
        // the address Mattermost's autolinker picks up.
        let mut rest = text;
        while let Some(found) = find_url(rest) {
            push_chars(line, &rest[..found.start], emphasis);
            line.push(Piece {
                atom: Atom::Link {
                    text: rest[found.clone()].to_owned(),
                    url: rest[found.clone()].to_owned(),
                    monospace: false,
                },
                emphasis,
            });
            rest = &rest[found.end..];
        }
        push_chars(line, rest, emphasis);
    }
}

fn push_chars(line: &mut Vec<Piece>, text: &str, emphasis: Emphasis) {
    line.extend(text.chars().filter(|&c| c != '\r').map(|c| Piece {
        atom: Atom::Char(c),
        emphasis,
    }));
}

/// Drops spaces and tabs at both ends: markdown ignores them, except that four
/// leading ones would make the line a code block.
fn trim_line(pieces: &mut Vec<Piece>) {
    let blank = |piece: &Piece| matches!(piece.atom, Atom::Char(' ' | '\t'));
    while pieces.last().is_some_and(blank) {
        pieces.pop();
    }
    let leading = pieces.iter().take_while(|piece| blank(piece)).count();
    pieces.drain(..leading);
}

/// Gives up on emphasis after this many repairs of one line and sends it plain.
const MAX_REPAIRS: usize = 16;

/// Renders one line. CommonMark decides whether `**` opens or closes from the
/// characters around it (the flanking rules and the rule of three), so instead of
/// second-guessing them the line is parsed back; a run whose emphasis does not come
/// out as intended loses it, and the line is written again.
fn render_line(mut pieces: Vec<Piece>) -> String {
    if pieces.iter().all(|piece| piece.emphasis.is_empty()) {
        return write_line(&pieces);
    }
    for _ in 0..MAX_REPAIRS {
        hug_text(&mut pieces);
        let markdown = write_line(&pieces);
        let Some(wrong) = first_unfaithful(&pieces, &markdown) else {
            return markdown;
        };
        if !drop_emphasis_near(&mut pieces, wrong) {
            return markdown;
        }
    }
    for piece in &mut pieces {
        piece.emphasis = Emphasis::default();
    }
    write_line(&pieces)
}

/// Moves whitespace out of each styled stretch: `**bold **x` is not bold, because
/// a marker next to whitespace on its inner side neither opens nor closes.
fn hug_text(pieces: &mut [Piece]) {
    for mark in Mark::ALL {
        let mut start = 0;
        while start < pieces.len() {
            let len = pieces[start..]
                .iter()
                .take_while(|piece| piece.emphasis.has(mark))
                .count();
            if len == 0 {
                start += 1;
                continue;
            }
            let stretch = &mut pieces[start..start + len];
            for piece in stretch.iter_mut().take_while(|piece| piece.is_space()) {
                piece.emphasis.remove(mark);
            }
            for piece in stretch
                .iter_mut()
                .rev()
                .take_while(|piece| piece.is_space())
            {
                piece.emphasis.remove(mark);
            }
            start += len;
        }
    }
}

fn write_line(pieces: &[Piece]) -> String {
    let rule_like = looks_like_rule(pieces);
    let mut out = String::new();
    let mut open: Vec<Mark> = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        close_marks(&mut out, &mut open, pieces[i].emphasis);
        // Nothing opens before whitespace (it would not open): a mark that had to
        // close only to keep the nesting reopens at the next visible character.
        if !pieces[i].is_space() {
            open_marks(&mut out, &mut open, &pieces[i..]);
        }
        let current = Emphasis::from_marks(&open);
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
                    Edge::LineStart
                } else {
                    Edge::Other
                };
                i += chars.len();
                let after = match pieces.get(i) {
                    None if open.is_empty() => Edge::LineEnd,
                    Some(next) if matches!(next.atom, Atom::Link { .. }) && fits(next, current) => {
                        Edge::Link
                    }
                    _ => Edge::Other,
                };
                write_text(&mut out, &chars, before, after, rule_like);
            }
            Atom::Code(_) => {
                // Adjacent code spans would merge their fences; write them as one.
                let parts: Vec<&str> = pieces[i..]
                    .iter()
                    .map_while(|piece| match &piece.atom {
                        Atom::Code(code) if fits(piece, current) => Some(code.as_str()),
                        _ => None,
                    })
                    .collect();
                i += parts.len();
                write_code_span(&mut out, &parts.concat());
            }
            Atom::Link {
                text,
                url,
                monospace,
            } => {
                write_link(&mut out, text, url, *monospace, &pieces[i + 1..]);
                i += 1;
            }
        }
    }
    close_marks(&mut out, &mut open, Emphasis::default());
    out
}

/// Whether `piece` can follow with the marks in `open` as they are.
fn fits(piece: &Piece, open: Emphasis) -> bool {
    if piece.is_space() {
        piece.emphasis.contains(open)
    } else {
        piece.emphasis == open
    }
}

/// Closes down to the first open mark `emphasis` lacks (markers nest).
fn close_marks(out: &mut String, open: &mut Vec<Mark>, emphasis: Emphasis) {
    if let Some(depth) = open.iter().position(|mark| !emphasis.has(*mark)) {
        for mark in open.drain(depth..).rev() {
            out.push_str(mark.marker());
        }
    }
}

/// Opens the marks `pieces[0]` has that are not open, the longest-lasting
/// outermost so it need not close and reopen.
fn open_marks(out: &mut String, open: &mut Vec<Mark>, pieces: &[Piece]) {
    let mut opening: Vec<Mark> = Mark::ALL
        .into_iter()
        .filter(|mark| pieces[0].emphasis.has(*mark) && !open.contains(mark))
        .collect();
    opening.sort_by_key(|mark| Reverse(extent(pieces, *mark)));
    for mark in opening {
        out.push_str(mark.marker());
        open.push(mark);
    }
}

/// How many pieces from the start keep `mark`.
fn extent(pieces: &[Piece], mark: Mark) -> usize {
    pieces
        .iter()
        .take_while(|piece| piece.emphasis.has(mark))
        .count()
}

/// A line of only `-`, `=`, `|`, `:` and spaces could be a thematic break, a
/// setext underline or a table's delimiter row.
fn looks_like_rule(pieces: &[Piece]) -> bool {
    let mut marks = false;
    for piece in pieces {
        match piece.atom {
            Atom::Char('-' | '=') => marks = true,
            Atom::Char('|' | ':' | ' ' | '\t') => {}
            _ => return false,
        }
    }
    marks
}

/// What is next to a run of text in the output line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    LineStart,
    LineEnd,
    /// A link, with no marker in between.
    Link,
    /// A marker or a code span.
    Other,
}

fn write_text(out: &mut String, chars: &[char], before: Edge, after: Edge, rule_like: bool) {
    let block_escape = match before {
        Edge::LineStart => line_start_escape(chars, after, rule_like),
        _ => None,
    };
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        if block_escape == Some(i) || needs_escape(c, prev, next, &chars[i + 1..], after) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Escapes what would change inline formatting. `prev`/`next` are `None` at the
/// edge of the run, where anything (a marker, a link) may follow.
fn needs_escape(
    c: char,
    prev: Option<char>,
    next: Option<char>,
    rest: &[char],
    after: Edge,
) -> bool {
    let both = |test: fn(char) -> bool| prev.is_some_and(test) && next.is_some_and(test);
    match c {
        // A backslash escapes only punctuation (and a line end: a hard break).
        '\\' => next.is_none_or(|next| next.is_ascii_punctuation()),
        '`' | '[' | ']' | '<' => true,
        // Between spaces these cannot open or close anything ("2 * 3").
        '*' | '~' => !both(char::is_whitespace),
        // Inside a word `_` is never emphasis ("snake_case").
        '_' => !(both(char::is_whitespace) || both(char::is_alphanumeric)),
        '&' => looks_like_entity(rest.iter().copied()),
        // `![` would start an image if a link follows.
        '!' => next.is_none() && after == Edge::Link,
        _ => false,
    }
}

/// `&amp;`, `&#35;`: a character reference markdown would decode.
fn looks_like_entity(rest: impl Iterator<Item = char>) -> bool {
    let mut name = 0;
    for c in rest {
        match c {
            ';' => return name > 0,
            c if c.is_ascii_alphanumeric() || c == '#' => name += 1,
            _ => return false,
        }
    }
    false
}

/// Which character, if any, to escape so the line does not start a block: a
/// heading, quote, list item, table row, rule or setext underline.
fn line_start_escape(chars: &[char], after: Edge, rule_like: bool) -> Option<usize> {
    let ends_marker = |at: usize| match chars.get(at) {
        Some(c) => c.is_whitespace(),
        None => after == Edge::LineEnd,
    };
    match *chars.first()? {
        '>' | '|' => Some(0),
        '-' | '=' | ':' if rule_like => Some(0),
        '-' | '+' => ends_marker(1).then_some(0),
        '#' => {
            let hashes = chars.iter().take_while(|&&c| c == '#').count();
            (hashes <= 6 && ends_marker(hashes)).then_some(0)
        }
        '0'..='9' => {
            let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
            let delimiter = matches!(chars.get(digits), Some('.' | ')'));
            (digits <= 9 && delimiter && ends_marker(digits + 1)).then_some(digits)
        }
        _ => None,
    }
}

/// A code span with a fence longer than any backtick run inside, padded where
/// CommonMark would otherwise eat a space or merge a backtick into the fence.
fn write_code_span(out: &mut String, code: &str) {
    let fence = "`".repeat(longest_run(code, '`') + 1);
    let pad = code.starts_with('`')
        || code.ends_with('`')
        || (code.starts_with(' ') && code.ends_with(' ') && code.contains(|c| c != ' '));
    let pad = if pad { " " } else { "" };
    out.push_str(&format!("{fence}{pad}{code}{pad}{fence}"));
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

fn write_link(out: &mut String, text: &str, url: &str, monospace: bool, after: &[Piece]) {
    if (text.is_empty() || text == url) && !monospace {
        if bare_url_survives(url, out.chars().last(), after) {
            out.push_str(url);
            return;
        }
        if is_autolink(url) {
            out.push_str(&format!("<{url}>"));
            return;
        }
    }
    let label: Vec<char> = if text.is_empty() { url } else { text }.chars().collect();
    out.push('[');
    if monospace {
        write_code_span(out, &label.iter().collect::<String>());
    } else {
        write_text(out, &label, Edge::Other, Edge::Other, false);
    }
    out.push_str("](");
    write_destination(out, url);
    out.push(')');
}

/// Whether `url` written as is comes back as exactly this link: no character in
/// it means markdown, and an autolinker reading on into the text after it stops
/// where it ends.
fn bare_url_survives(url: &str, before: Option<char>, after: &[Piece]) -> bool {
    let chars: Vec<char> = url.chars().collect();
    let inert = chars.iter().enumerate().all(|(i, &c)| match c {
        '*' | '~' | '`' | '\\' | '[' | ']' => false,
        '_' => {
            let around = [
                i.checked_sub(1).map(|j| chars[j]),
                chars.get(i + 1).copied(),
            ];
            around.iter().all(|c| c.is_some_and(char::is_alphanumeric))
        }
        // The text after the URL might complete a reference (`&amp` + `;`).
        '&' => !looks_like_entity(chars[i + 1..].iter().copied().chain([';'])),
        _ => true,
    });
    let mut read_on = url.to_owned();
    for piece in after {
        match piece.atom {
            Atom::Char(c) if c.is_whitespace() => break,
            Atom::Char(c) => {
                // What follows may be escaped, and a backslash would read as URL.
                if "\\*_~`[]<>&!".contains(c) {
                    read_on.push('\\');
                }
                read_on.push(c);
            }
            // A code span or link: brackets and backticks, which a URL may contain.
            _ => {
                read_on.push('x');
                break;
            }
        }
    }
    inert && before.is_none_or(|c| !c.is_alphanumeric()) && find_url(&read_on) == Some(0..url.len())
}

/// Whether `<url>` is an autolink (escapes do not work inside, so the URL must
/// not need any): a URI with a valid scheme, or an email address.
fn is_autolink(url: &str) -> bool {
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return false;
    }
    let uri = url.split_once(':').is_some_and(|(scheme, _)| {
        (2..=32).contains(&scheme.len())
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
    });
    let email = url.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c))
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    });
    uri || email
}

/// A link destination: `<...>` when it has spaces, else with parentheses escaped.
fn write_destination(out: &mut String, url: &str) {
    // A destination cannot span lines.
    let url: Vec<char> = url.chars().filter(|c| !c.is_control()).collect();
    let pointy = url
        .iter()
        .any(|&c| c.is_whitespace() || c == '<' || c == '>');
    if pointy {
        out.push('<');
    }
    for (i, &c) in url.iter().enumerate() {
        let escape = match c {
            '\\' => url.get(i + 1).is_none_or(char::is_ascii_punctuation),
            '(' | ')' => !pointy,
            '<' | '>' => true,
            '&' => looks_like_entity(url[i + 1..].iter().copied()),
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    if pointy {
        out.push('>');
    }
}

fn render_code_block(language: Option<&str>, code: &str) -> String {
    let code = code.trim_end_matches(['\n', '\r']);
    let fence = "`".repeat(3.max(longest_run(code, '`') + 1));
    let language = language
        .filter(|language| !language.contains(|c: char| c.is_whitespace() || c == '`'))
        .unwrap_or("");
    if code.is_empty() {
        format!("{fence}{language}\n{fence}")
    } else {
        format!("{fence}{language}\n{code}\n{fence}")
    }
}

/// The piece where the parsed-back line first differs from what was meant.
fn first_unfaithful(pieces: &[Piece], markdown: &str) -> Option<usize> {
    let shown = visible_chars(&parse(markdown));
    let wanted: Vec<(usize, Seen)> = pieces
        .iter()
        .enumerate()
        .flat_map(|(index, piece)| piece.visible().into_iter().map(move |seen| (index, seen)))
        .collect();
    // The emphasis of whitespace is invisible (and hugging moves it).
    let same = |(c, emphasis, code): Seen, (got, got_emphasis, got_code): Seen| {
        c == got && code == got_code && (c.is_whitespace() || emphasis == got_emphasis)
    };
    for (k, &(index, want)) in wanted.iter().enumerate() {
        if !shown.get(k).is_some_and(|&got| same(want, got)) {
            return Some(index);
        }
    }
    (shown.len() > wanted.len()).then(|| pieces.len().saturating_sub(1))
}

/// A visible character, its emphasis and whether it is code.
type Seen = (char, Emphasis, bool);

fn visible_chars(rich: &RichText) -> Vec<Seen> {
    let mut seen = Vec::new();
    for span in &rich.spans {
        let (text, style) = match span {
            Span::Text { text, style } => (text.as_str(), *style),
            Span::Link { text, url, style } if text.is_empty() => (url.as_str(), *style),
            Span::Link { text, style, .. } => (text.as_str(), *style),
            Span::Mention { name, .. } => (name.as_str(), Style::default()),
            Span::CodeBlock { .. } => continue,
        };
        let emphasis = Emphasis::of(&style);
        seen.extend(text.chars().map(|c| (c, emphasis, style.monospace)));
    }
    seen
}

/// Drops the marks that start or end at the styled run nearest to `index` (all of
/// its marks if none do). Returns false when there is no emphasis left to drop.
fn drop_emphasis_near(pieces: &mut [Piece], index: usize) -> bool {
    let styled = |&i: &usize| !pieces[i].emphasis.is_empty();
    let Some(at) = (0..=index.min(pieces.len().saturating_sub(1)))
        .rev()
        .find(styled)
        .or_else(|| (index + 1..pieces.len()).find(styled))
    else {
        return false;
    };
    let emphasis = pieces[at].emphasis;
    let start = (0..at)
        .rev()
        .find(|&i| pieces[i].emphasis != emphasis)
        .map_or(0, |i| i + 1);
    let end = (at..pieces.len())
        .find(|&i| pieces[i].emphasis != emphasis)
        .unwrap_or(pieces.len());
    let before = start.checked_sub(1).map(|i| pieces[i].emphasis);
    let after = pieces.get(end).map(|piece| piece.emphasis);
    let continues =
        |mark: Mark| before.is_some_and(|e| e.has(mark)) && after.is_some_and(|e| e.has(mark));
    let mut marks: Vec<Mark> = Mark::ALL
        .into_iter()
        .filter(|&mark| emphasis.has(mark) && !continues(mark))
        .collect();
    if marks.is_empty() {
        marks = Mark::ALL.to_vec();
    }
    for piece in &mut pieces[start..end] {
        for &mark in &marks {
            piece.emphasis.remove(mark);
        }
    }
    true
}
