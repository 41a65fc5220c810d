//! Mattermost markdown <-> the core's rich text.
//!
//! Parsing goes through pulldown-cmark (CommonMark with strikethrough and tables,
//! which is what Mattermost renders). Bold, italic, strikethrough, inline code,
//! links, images (as a link to the image) and code blocks map onto the model, and
//! bare http(s) URLs become links because Mattermost autolinks them. Structure the
//! model has no room for stays readable as text: paragraphs and line breaks become
//! one `\n`, list items get `- ` / `1. `, quoted lines `> `, headings turn bold,
//! table rows become their cells joined by ` | `, and HTML is kept as written.
//!
//! Rendering escapes text so that what other networks send shows literally, but
//! leaves `@` (mentions must notify) and zero-width characters alone. It degrades
//! as follows: underline and colours have no markdown and are dropped; a mention
//! becomes `@name`; spaces at the start and end of a line are dropped (four of them
//! would start a code block) and those at the ends of inline code move outside it;
//! blank lines come back as a single line break when parsed; and where CommonMark's
//! flanking rules cannot express a style (`a**(b)**c` is not bold) that run is sent
//! without the style rather than with stray markers.

use std::cmp::Reverse;
use std::mem;
use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use switchboard_sdk::{RichText, Span, Style};

/// Parses a Mattermost post message (Mattermost-flavoured markdown) into rich text.
pub fn parse(markdown: &str) -> RichText {
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    let mut reader = Reader::default();
    for (event, range) in Parser::new_ext(markdown, options).into_offset_iter() {
        reader.event(event, &markdown[range]);
    }
    reader.finish()
}

/// Renders rich text as Mattermost markdown that shows exactly the same text.
pub fn render(rich: &RichText) -> String {
    blocks(rich)
        .into_iter()
        .map(|block| match block {
            Block::Line(pieces) => render_line(pieces),
            Block::Code { language, code } => render_code_block(language, code),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// Parsing

/// Turns pulldown-cmark events into spans, tracking the blocks the model lacks.
#[derive(Default)]
struct Reader {
    rich: RichText,
    bold: usize,
    italic: usize,
    strike: usize,
    /// A block began: the next inline content starts a new line (with its prefix).
    new_line: bool,
    containers: Vec<Container>,
    /// Open links and images; an image may sit inside a link.
    links: Vec<LinkText>,
    code: Option<CodeBlock>,
    html: Option<String>,
    /// Cells seen so far in the current table row.
    cells: usize,
}

enum Container {
    Quote,
    List {
        next: Option<u64>,
    },
    Item {
        /// `- ` or `N. `, as the item's first line starts.
        marker: String,
        /// The marker as typed (`*`, `+`, `1)`).
        written: String,
        shown: bool,
    },
}

struct LinkText {
    url: String,
    image: bool,
    text: String,
    outer: Style,
    /// The style all of the link's text shares, once it has text.
    common: Option<Style>,
}

struct CodeBlock {
    language: Option<String>,
    code: String,
}

impl Reader {
    fn event(&mut self, event: Event<'_>, source: &str) {
        match event {
            Event::Start(tag) => self.start(tag, source),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => self.text(&text, self.style()),
            Event::Code(code) => {
                let style = Style {
                    monospace: true,
                    ..self.style()
                };
                self.text(&code, style);
            }
            Event::Html(html) => match &mut self.html {
                Some(block) => block.push_str(&html),
                None => self.text(&html, self.style()),
            },
            // Mattermost shows HTML as typed.
            Event::InlineHtml(html) => self.text(&html, self.style()),
            Event::SoftBreak | Event::HardBreak => self.line_break(),
            Event::Rule => {
                self.new_line = true;
                self.text(source.trim(), Style::default());
                self.new_line = true;
            }
            // Extensions we do not enable (footnotes, math, task lists): keep the source.
            _ => self.text(source, self.style()),
        }
    }

    fn start(&mut self, tag: Tag<'_>, source: &str) {
        match tag {
            Tag::Paragraph => self.new_line = true,
            Tag::Heading { .. } => {
                self.new_line = true;
                self.bold += 1;
            }
            Tag::BlockQuote(_) => {
                self.new_line = true;
                self.containers.push(Container::Quote);
            }
            Tag::CodeBlock(kind) => {
                self.show_pending_item();
                self.code = Some(CodeBlock {
                    language: language(&kind),
                    code: String::new(),
                });
            }
            Tag::HtmlBlock => {
                self.new_line = true;
                self.html = Some(String::new());
            }
            Tag::List(first) => self.containers.push(Container::List { next: first }),
            Tag::Item => {
                self.new_line = true;
                let marker = self.next_marker();
                let written = source.split_whitespace().next().unwrap_or("-").to_owned();
                self.containers.push(Container::Item {
                    marker,
                    written,
                    shown: false,
                });
            }
            Tag::TableHead | Tag::TableRow => {
                self.new_line = true;
                self.cells = 0;
            }
            Tag::TableCell => {
                if self.cells > 0 {
                    self.text(" | ", Style::default());
                }
                self.cells += 1;
            }
            Tag::Emphasis => self.italic += 1,
            Tag::Strong => self.bold += 1,
            Tag::Strikethrough => self.strike += 1,
            Tag::Link { dest_url, .. } => self.open_link(dest_url.into_string(), false),
            Tag::Image { dest_url, .. } => self.open_link(dest_url.into_string(), true),
            Tag::Table(_) | Tag::Superscript | Tag::Subscript => {}
            // Footnote definitions, definition lists, metadata: not enabled; own lines.
            _ => self.new_line = true,
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) | TagEnd::Strong => self.bold = self.bold.saturating_sub(1),
            TagEnd::Emphasis => self.italic = self.italic.saturating_sub(1),
            TagEnd::Strikethrough => self.strike = self.strike.saturating_sub(1),
            TagEnd::BlockQuote(_) | TagEnd::List(_) => {
                self.containers.pop();
            }
            TagEnd::Item => {
                // An empty item is most likely a lone `*` or `-`, not a list: keep it.
                if let Some(Container::Item {
                    marker,
                    written,
                    shown: false,
                }) = self.containers.last_mut()
                {
                    *marker = mem::take(written);
                }
                self.show_pending_item();
                self.containers.pop();
            }
            TagEnd::CodeBlock => {
                if let Some(block) = self.code.take() {
                    self.rich.push(Span::CodeBlock {
                        language: block.language,
                        code: block.code,
                    });
                    self.new_line = true;
                }
            }
            TagEnd::HtmlBlock => {
                let html = self.html.take().unwrap_or_default();
                for (i, line) in html.lines().enumerate() {
                    if i > 0 {
                        self.line_break();
                    }
                    self.text(line, self.style());
                }
            }
            TagEnd::Link | TagEnd::Image => self.close_link(),
            _ => {}
        }
    }

    fn style(&self) -> Style {
        Style {
            bold: self.bold > 0,
            italic: self.italic > 0,
            strikethrough: self.strike > 0,
            ..Style::default()
        }
    }

    fn text(&mut self, text: &str, style: Style) {
        if let Some(block) = &mut self.code {
            block.code.push_str(text);
        } else if let Some(link) = self.links.last_mut() {
            link.push(text, style);
        } else {
            self.open_line();
            self.rich.push_text(text, style);
        }
    }

    fn line_break(&mut self) {
        if let Some(link) = self.links.last_mut() {
            // The model's link text is one line.
            let style = link.outer;
            link.push(" ", style);
            return;
        }
        self.rich.push_text("\n", Style::default());
        let prefix = self.prefix();
        self.rich.push_text(prefix, Style::default());
    }

    /// Starts the line a new block needs: one `\n` (none after a code block, which
    /// is on lines of its own anyway) and the quote and list prefixes.
    fn open_line(&mut self) {
        if !mem::take(&mut self.new_line) {
            return;
        }
        let after_code = matches!(self.rich.spans.last(), Some(Span::CodeBlock { .. }));
        if !self.rich.is_empty() && !after_code {
            self.rich.push_text("\n", Style::default());
        }
        let prefix = self.prefix();
        self.rich.push_text(prefix, Style::default());
    }

    /// `> ` per quote, and per list item its marker on its first line, then an
    /// indent as wide as the marker.
    fn prefix(&mut self) -> String {
        let mut prefix = String::new();
        for container in &mut self.containers {
            match container {
                Container::Quote => prefix.push_str("> "),
                Container::List { .. } => {}
                Container::Item { marker, shown, .. } if *shown => {
                    prefix.extend(std::iter::repeat_n(' ', marker.len()));
                }
                Container::Item { marker, shown, .. } => {
                    *shown = true;
                    prefix.push_str(marker);
                }
            }
        }
        prefix
    }

    fn show_pending_item(&mut self) {
        let pending = self
            .containers
            .iter()
            .any(|container| matches!(container, Container::Item { shown: false, .. }));
        if pending {
            self.open_line();
        }
    }

    fn next_marker(&mut self) -> String {
        for container in self.containers.iter_mut().rev() {
            if let Container::List { next } = container {
                return match next {
                    Some(number) => {
                        *number += 1;
                        format!("{}. ", *number - 1)
                    }
                    None => "- ".to_owned(),
                };
            }
        }
        "- ".to_owned()
    }

    fn open_link(&mut self, url: String, image: bool) {
        self.links.push(LinkText {
            url,
            image,
            text: String::new(),
            outer: self.style(),
            common: None,
        });
    }

    fn close_link(&mut self) {
        let Some(link) = self.links.pop() else {
            return;
        };
        let style = link.common.unwrap_or(link.outer);
        let text = if link.image && link.text.is_empty() {
            link.url.clone()
        } else {
            link.text
        };
        if let Some(outer) = self.links.last_mut() {
            outer.push(&text, style);
            return;
        }
        self.open_line();
        self.rich.push(Span::Link {
            text,
            url: link.url,
            style,
        });
    }

    fn finish(self) -> RichText {
        let mut rich = link_bare_urls(self.rich);
        while let Some(Span::Text { text, .. }) = rich.spans.last_mut() {
            let kept = text.trim_end_matches('\n').len();
            if kept > 0 {
                text.truncate(kept);
                break;
            }
            rich.spans.pop();
        }
        rich
    }
}

impl LinkText {
    /// Adds text; the link keeps only the styles all of its text has, since the
    /// model gives a link one style.
    fn push(&mut self, text: &str, style: Style) {
        self.text.push_str(text);
        self.common = Some(match self.common {
            None => style,
            Some(common) => Style {
                bold: common.bold && style.bold,
                italic: common.italic && style.italic,
                underline: common.underline && style.underline,
                strikethrough: common.strikethrough && style.strikethrough,
                monospace: common.monospace && style.monospace,
                color: common.color.filter(|_| common.color == style.color),
            },
        });
    }
}

fn language(kind: &CodeBlockKind<'_>) -> Option<String> {
    match kind {
        CodeBlockKind::Fenced(info) => info.split_whitespace().next().map(str::to_owned),
        CodeBlockKind::Indented => None,
    }
}

/// Mattermost links bare URLs in text; pulldown-cmark does not, so it happens here.
/// Code is left alone, as Mattermost does.
fn link_bare_urls(rich: RichText) -> RichText {
    let mut out = RichText::default();
    for span in rich.spans {
        match span {
            Span::Text { text, style } if !style.monospace => {
                let mut rest = text.as_str();
                while let Some(found) = find_url(rest) {
                    out.push_text(&rest[..found.start], style);
                    let url = &rest[found.clone()];
                    out.push(Span::Link {
                        text: url.to_owned(),
                        url: url.to_owned(),
                        style,
                    });
                    rest = &rest[found.end..];
                }
                out.push_text(rest, style);
            }
            other => out.push(other),
        }
    }
    out
}

/// The first bare http(s) URL in `text`, as autolinkers see it: not glued to a
/// preceding word, ending at whitespace, without trailing punctuation or an
/// unbalanced `)`.
fn find_url(text: &str) -> Option<Range<usize>> {
    let mut from = 0;
    while let Some(found) = text[from..].find("http") {
        let start = from + found;
        from = start + 4;
        let rest = &text[start..];
        let scheme = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            continue;
        };
        if text[..start].ends_with(char::is_alphanumeric) {
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '<' || c == '>')
            .unwrap_or(rest.len());
        let len = trim_url_end(&rest[..end]);
        if len > scheme {
            return Some(start..start + len);
        }
    }
    None
}

fn trim_url_end(mut url: &str) -> usize {
    loop {
        let trailing = match url.chars().last() {
            Some('.' | ',' | ';' | ':' | '!' | '?' | '*' | '_' | '~' | '\'' | '"') => true,
            Some(')') => url.matches(')').count() > url.matches('(').count(),
            _ => false,
        };
        if !trailing {
            return url.len();
        }
        url = &url[..url.len() - 1];
    }
}

// ---------------------------------------------------------------------------
// Rendering

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A style from flags: b(old), i(talic), s(trike), m(onospace), u(nderline).
    fn st(flags: &str) -> Style {
        Style {
            bold: flags.contains('b'),
            italic: flags.contains('i'),
            strikethrough: flags.contains('s'),
            monospace: flags.contains('m'),
            underline: flags.contains('u'),
            color: None,
        }
    }

    fn text(text: &str, flags: &str) -> Span {
        Span::Text {
            text: text.into(),
            style: st(flags),
        }
    }

    fn link(text: &str, url: &str, flags: &str) -> Span {
        Span::Link {
            text: text.into(),
            url: url.into(),
            style: st(flags),
        }
    }

    fn code_block(language: Option<&str>, code: &str) -> Span {
        Span::CodeBlock {
            language: language.map(str::to_owned),
            code: code.into(),
        }
    }

    fn rich(spans: Vec<Span>) -> RichText {
        let mut rich = RichText::default();
        for span in spans {
            rich.push(span);
        }
        rich
    }

    fn render_spans(spans: Vec<Span>) -> String {
        render(&rich(spans))
    }

    // --- parse -----------------------------------------------------------------

    #[test]
    fn parses_emphasis_strikethrough_and_inline_code() {
        assert_eq!(
            parse("**b** __b__ *i* _i_ ~~s~~ `c`").spans,
            rich(vec![
                text("b", "b"),
                text(" ", ""),
                text("b", "b"),
                text(" ", ""),
                text("i", "i"),
                text(" ", ""),
                text("i", "i"),
                text(" ", ""),
                text("s", "s"),
                text(" ", ""),
                text("c", "m"),
            ])
            .spans
        );
        assert_eq!(
            parse("***both*** **bold `code`**").spans,
            rich(vec![
                text("both", "bi"),
                text(" ", ""),
                text("bold ", "b"),
                text("code", "bm"),
            ])
            .spans
        );
    }

    #[test]
    fn parses_code_blocks() {
        assert_eq!(
            parse("look:\n```rust\nfn main() {}\n```\nafter").spans,
            vec![
                text("look:", ""),
                code_block(Some("rust"), "fn main() {}\n"),
                text("after", ""),
            ]
        );
        assert_eq!(
            parse("```\nplain\n```").spans,
            vec![code_block(None, "plain\n")]
        );
        assert_eq!(
            parse("~~~python extra\nx = 1\n~~~").spans,
            vec![code_block(Some("python"), "x = 1\n")]
        );
        assert_eq!(
            parse("text\n\n    indented\n    more").spans,
            vec![text("text", ""), code_block(None, "indented\nmore")]
        );
        assert_eq!(
            parse("look:\n```rust\nfn main() {}\n```\nafter").to_plain(),
            "look:\nfn main() {}\nafter"
        );
    }

    #[test]
    fn parses_links_autolinks_and_bare_urls() {
        assert_eq!(
            parse("[docs](https://x.test/d) and <https://x.test/a>").spans,
            vec![
                link("docs", "https://x.test/d", ""),
                text(" and ", ""),
                link("https://x.test/a", "https://x.test/a", ""),
            ]
        );
        let url = |u: &str| link(u, u, "");
        assert_eq!(
            parse("see https://x.test/a?b=1, (http://x.test/c) https://x.test/w_(x).").spans,
            vec![
                text("see ", ""),
                url("https://x.test/a?b=1"),
                text(", (", ""),
                url("http://x.test/c"),
                text(") ", ""),
                url("https://x.test/w_(x)"),
                text(".", ""),
            ]
        );
        // Glued to a word or inside code: not a link.
        assert_eq!(
            parse("xhttps://x.test `https://x.test`").spans,
            vec![text("xhttps://x.test ", ""), text("https://x.test", "m")]
        );
        assert_eq!(
            parse("**https://x.test**").spans,
            vec![link("https://x.test", "https://x.test", "b")]
        );
        assert_eq!(
            parse("<someone@x.test>").spans,
            vec![link("someone@x.test", "someone@x.test", "")]
        );
    }

    #[test]
    fn link_text_keeps_the_style_all_of_it_has() {
        assert_eq!(
            parse("[**a** b](https://x.test) [`c`](https://x.test) **[d](https://x.test)**").spans,
            vec![
                link("a b", "https://x.test", ""),
                text(" ", ""),
                link("c", "https://x.test", "m"),
                text(" ", ""),
                link("d", "https://x.test", "b"),
            ]
        );
    }

    #[test]
    fn parses_images_as_links() {
        assert_eq!(
            parse("![a cat](https://x.test/cat.png) ![](https://x.test/dog.png)").spans,
            vec![
                link("a cat", "https://x.test/cat.png", ""),
                text(" ", ""),
                link("https://x.test/dog.png", "https://x.test/dog.png", ""),
            ]
        );
        assert_eq!(
            parse("[![logo](https://x.test/l.png)](https://x.test)").spans,
            vec![link("logo", "https://x.test", "")]
        );
    }

    #[test]
    fn paragraphs_and_line_breaks_become_one_newline() {
        assert_eq!(parse("a\n\nb\nc  \nd\\\ne").to_plain(), "a\nb\nc\nd\ne");
        assert_eq!(parse("a\n\n\n\nb").to_plain(), "a\nb");
        assert_eq!(
            parse("**a\nb**").spans,
            vec![text("a", "b"), text("\n", ""), text("b", "b")]
        );
    }

    #[test]
    fn parses_lists_quotes_headings_and_rules() {
        assert_eq!(
            parse("- a\n- b\n  - c\n\n1. x\n2. y").to_plain(),
            "- a\n- b\n  - c\n1. x\n2. y"
        );
        assert_eq!(parse("3. x\n4. y").to_plain(), "3. x\n4. y");
        assert_eq!(parse("* a\n\n  more\n* b").to_plain(), "- a\n  more\n- b");
        assert_eq!(parse("-\n- b").to_plain(), "-\n- b");
        assert_eq!(
            parse("> one\n> two\n>\n> three\n> > deeper").to_plain(),
            "> one\n> two\n> three\n> > deeper"
        );
        assert_eq!(parse("> - a\n> - b").to_plain(), "> - a\n> - b");
        assert_eq!(
            parse("# Title\nbody\n\nSub\n---").spans,
            vec![text("Title", "b"), text("\nbody\n", ""), text("Sub", "b"),]
        );
        assert_eq!(
            parse("above\n\n***\n\nbelow").to_plain(),
            "above\n***\nbelow"
        );
    }

    #[test]
    fn parses_tables_and_html_as_readable_text() {
        assert_eq!(
            parse("| a | b |\n|---|:-:|\n| 1 | **2** |\n|  | 4 |").spans,
            vec![text("a | b\n1 | ", ""), text("2", "b"), text("\n | 4", ""),]
        );
        assert_eq!(
            parse("<b>hi</b> there\n\n<div>\nblock\n</div>").to_plain(),
            "<b>hi</b> there\n<div>\nblock\n</div>"
        );
        assert_eq!(parse("a <!-- c --> b").to_plain(), "a <!-- c --> b");
    }

    #[test]
    fn typical_chat_text_survives_parsing() {
        for message in [
            "2 * 3 = 6",
            "snake_case_name and a_b_c",
            "*",
            "-",
            "+",
            "1.",
            "~",
            "~/.bashrc",
            "[x]",
            "[ ] todo",
            "😀 ünïcödé 日本語 عربى",
            "@alice: ping @here",
            "#hashtag :smile: 50% off!",
            "x < y > z && a & b",
            "C:\\Users\\me",
            "it's \"quoted\" -- ok...",
            "a - b + c = d",
            "email someone@x.test",
            "@\u{200B}channel \u{200D}",
        ] {
            assert_eq!(parse(message).to_plain(), message, "{message:?}");
            let unstyled = |span: &Span| match span {
                Span::Text { style, .. } => style.is_plain(),
                _ => false,
            };
            assert!(parse(message).spans.iter().all(unstyled), "{message:?}");
        }
        assert_eq!(parse("&amp; &copy; &#35;").to_plain(), "& © #");
        assert_eq!(parse("\\*not italic\\*").to_plain(), "*not italic*");
    }

    #[test]
    fn mentions_stay_text() {
        assert_eq!(parse("@alice hi").spans, vec![text("@alice hi", "")]);
    }

    #[test]
    fn parse_never_ends_with_a_newline() {
        for markdown in [
            "a\n\n",
            "- a\n-",
            "> a\n>",
            "a  \n",
            "<div>\n</div>\n\n",
            "a\n\n---",
        ] {
            let plain = parse(markdown).to_plain();
            assert!(!plain.ends_with('\n'), "{markdown:?} -> {plain:?}");
            let spans = parse(markdown).spans;
            if let Some(Span::Text { text, .. }) = spans.last() {
                assert!(!text.ends_with('\n'), "{markdown:?} -> {spans:?}");
            }
        }
        assert_eq!(parse("").spans, vec![]);
    }

    // --- render ----------------------------------------------------------------

    #[test]
    fn plain_chat_text_renders_unchanged() {
        for message in [
            "hello world",
            "2 * 3 = 6",
            "snake_case_name a_b_c",
            "@alice: ping",
            "@\u{200B}channel look \u{200D}here",
            "#hashtag x -> y 3.14 -5 degrees",
            "😀 ünïcödé 日本語",
            "C:\\Users\\me",
            "AT&T & friends",
            "yes!",
            "a ~ b _ c",
        ] {
            assert_eq!(render(&RichText::plain(message)), message, "{message:?}");
        }
    }

    #[test]
    fn escapes_inline_specials() {
        for (message, markdown) in [
            ("*a*", "\\*a\\*"),
            ("**a**", "\\*\\*a\\*\\*"),
            ("_a_", "\\_a\\_"),
            ("__init__", "\\_\\_init\\_\\_"),
            ("~~a~~", "\\~\\~a\\~\\~"),
            ("~/.bashrc", "\\~/.bashrc"),
            ("`a`", "\\`a\\`"),
            ("[a](b)", "\\[a\\](b)"),
            ("![a](b)", "!\\[a\\](b)"),
            ("<b>x</b>", "\\<b>x\\</b>"),
            ("a\\*", "a\\\\\\*"),
            ("ends with \\", "ends with \\\\"),
            ("&amp; &#35;", "\\&amp; \\&#35;"),
            ("2*3", "2\\*3"),
        ] {
            assert_eq!(render(&RichText::plain(message)), markdown, "{message:?}");
            assert_eq!(parse(markdown).to_plain(), message, "{markdown:?}");
        }
    }

    #[test]
    fn escapes_what_would_start_a_block() {
        for (message, markdown) in [
            ("# title", "\\# title"),
            ("###### six", "\\###### six"),
            ("#", "\\#"),
            ("> quote", "\\> quote"),
            ("- item", "\\- item"),
            ("+ item", "\\+ item"),
            ("-", "\\-"),
            ("1. first", "1\\. first"),
            ("2) second", "2\\) second"),
            ("| a | b |", "\\| a | b |"),
            ("---", "\\---"),
            ("- - -", "\\- - -"),
            ("* * *", "\\* * \\*"),
            ("___", "\\_\\_\\_"),
            ("a | b\n--|:-:", "a | b\n\\--|:-:"),
            ("title\n===", "title\n\\==="),
            ("```rust", "\\`\\`\\`rust"),
            ("- a\n- b", "\\- a\n\\- b"),
            ("    four spaces", "four spaces"),
            ("x\n    y", "x\ny"),
            ("[ref]: https://x.test", "\\[ref\\]: https://x.test"),
        ] {
            assert_eq!(render(&RichText::plain(message)), markdown, "{message:?}");
        }
    }

    #[test]
    fn renders_each_style() {
        for (flags, markdown) in [
            ("b", "**x y**"),
            ("i", "*x y*"),
            ("s", "~~x y~~"),
            ("m", "`x y`"),
            ("bi", "***x y***"),
            ("bs", "~~**x y**~~"),
            ("bm", "**`x y`**"),
            ("bism", "~~***`x y`***~~"),
            ("u", "x y"),
        ] {
            assert_eq!(render_spans(vec![text("x y", flags)]), markdown, "{flags}");
            let shown = flags.replace('u', "");
            assert_eq!(
                parse(markdown).spans,
                vec![text("x y", &shown)],
                "{markdown}"
            );
        }
        let red = Style {
            color: Some(switchboard_sdk::Color { fg: 4, bg: None }),
            ..Style::default()
        };
        assert_eq!(
            render_spans(vec![Span::Text {
                text: "red".into(),
                style: red
            }]),
            "red"
        );
    }

    #[test]
    fn markers_hug_the_text() {
        assert_eq!(
            render_spans(vec![text("bold ", "b"), text("x", "")]),
            "**bold** x"
        );
        assert_eq!(
            render_spans(vec![text("a", ""), text(" b ", "i"), text("c", "")]),
            "a *b* c"
        );
        assert_eq!(
            render_spans(vec![text("a", ""), text("b", "b"), text("c", "")]),
            "a**b**c"
        );
    }

    #[test]
    fn nested_styles_nest() {
        assert_eq!(
            render_spans(vec![text("a ", "b"), text("b", "bi"), text(" c", "b")]),
            "**a *b* c**"
        );
        assert_eq!(
            render_spans(vec![text("a ", "i"), text("b", "bi"), text(" c", "b")]),
            "*a **b*** **c**"
        );
        assert_eq!(
            render_spans(vec![text("a ", "b"), text("code", "bm"), text(" c", "b")]),
            "**a `code` c**"
        );
    }

    #[test]
    fn markers_close_before_a_newline() {
        assert_eq!(render_spans(vec![text("a\nb", "b")]), "**a**\n**b**");
        assert_eq!(render_spans(vec![text("a\nb", "m")]), "`a`\n`b`");
    }

    #[test]
    fn emphasis_that_cannot_render_is_dropped() {
        // `**` between a letter and punctuation neither opens nor closes.
        assert_eq!(
            render_spans(vec![text("a", ""), text("(b)", "b"), text("c", "")]),
            "a(b)c"
        );
        assert_eq!(render_spans(vec![text("C", ""), text("++", "b")]), "C++");
    }

    #[test]
    fn code_spans_fence_backticks() {
        assert_eq!(render_spans(vec![text("a`b", "m")]), "``a`b``");
        assert_eq!(render_spans(vec![text("`x`", "m")]), "`` `x` ``");
        assert_eq!(render_spans(vec![text("a``b", "m")]), "```a``b```");
        assert_eq!(
            render_spans(vec![text("x", ""), text(" y ", "m"), text("z", "")]),
            "x `y` z"
        );
        assert_eq!(render_spans(vec![text("a", "m"), text("b", "mu")]), "`ab`");
        assert_eq!(parse("`` `x` ``").spans, vec![text("`x`", "m")]);
    }

    #[test]
    fn renders_links() {
        let url = "https://x.test/a";
        for (span, markdown) in [
            (link(url, url, ""), "https://x.test/a"),
            (link("", url, ""), "https://x.test/a"),
            (link("docs", url, ""), "[docs](https://x.test/a)"),
            (link("[docs]", url, ""), "[\\[docs\\]](https://x.test/a)"),
            (link("docs", url, "b"), "**[docs](https://x.test/a)**"),
            (link("docs", url, "m"), "[`docs`](https://x.test/a)"),
            (
                link(url, url, "m"),
                "[`https://x.test/a`](https://x.test/a)",
            ),
            (
                link("w", "https://x.test/w_(x)", ""),
                "[w](https://x.test/w_\\(x\\))",
            ),
            (
                link("s", "https://x.test/a b", ""),
                "[s](<https://x.test/a b>)",
            ),
            (
                link("https://x.test/w_(x)", "https://x.test/w_(x)", ""),
                "<https://x.test/w_(x)>",
            ),
            (
                link("https://x.test/*a*", "https://x.test/*a*", ""),
                "<https://x.test/*a*>",
            ),
            (
                link("mailto:a@x.test", "mailto:a@x.test", ""),
                "<mailto:a@x.test>",
            ),
            (link("a@x.test", "a@x.test", ""), "<a@x.test>"),
        ] {
            assert_eq!(render_spans(vec![span.clone()]), markdown, "{span:?}");
            // A link without text comes back with the URL as its text.
            let parsed = match span {
                Span::Link { text, url, style } if text.is_empty() => Span::Link {
                    text: url.clone(),
                    url,
                    style,
                },
                other => other,
            };
            assert_eq!(parse(markdown).spans, vec![parsed], "{markdown}");
        }
    }

    #[test]
    fn bare_urls_stay_bare_only_where_they_end_cleanly() {
        let url = "https://x.test/a";
        assert_eq!(
            render_spans(vec![text("see ", ""), link(url, url, ""), text(". ok", "")]),
            "see https://x.test/a. ok"
        );
        assert_eq!(
            render_spans(vec![text("(", ""), link(url, url, ""), text(")", "")]),
            "(https://x.test/a)"
        );
        assert_eq!(
            render_spans(vec![link(url, url, ""), text("/more", "")]),
            "<https://x.test/a>/more"
        );
        assert_eq!(
            render_spans(vec![text("x", ""), link(url, url, "")]),
            "x<https://x.test/a>"
        );
        assert_eq!(
            render_spans(vec![link(url, url, ""), text("_", "")]),
            "<https://x.test/a>\\_"
        );
        // URLs inside text are not escaped into broken addresses.
        assert_eq!(
            render(&RichText::plain(
                "see https://x.test/a_b_c and https://x.test/_x_"
            )),
            "see https://x.test/a_b_c and <https://x.test/_x>\\_"
        );
    }

    #[test]
    fn renders_mentions() {
        let mention = |name: &str, id: Option<&str>| Span::Mention {
            name: name.into(),
            user_id: id.map(str::to_owned),
        };
        assert_eq!(
            render_spans(vec![text("hi ", ""), mention("alice", Some("u1"))]),
            "hi @alice"
        );
        assert_eq!(render_spans(vec![mention("@bob_x", Some("u2"))]), "@bob_x");
        assert_eq!(render_spans(vec![mention("Carol *", None)]), "Carol \\*");
    }

    #[test]
    fn renders_code_blocks_on_their_own_lines() {
        assert_eq!(
            render_spans(vec![
                text("look:", ""),
                code_block(Some("rust"), "fn main() {}\n"),
                text("after", ""),
            ]),
            "look:\n```rust\nfn main() {}\n```\nafter"
        );
        assert_eq!(
            render_spans(vec![text("look:\n", ""), code_block(None, "x")]),
            "look:\n```\nx\n```"
        );
        assert_eq!(
            render_spans(vec![code_block(None, "a\n```\nb\n")]),
            "````\na\n```\nb\n````"
        );
        assert_eq!(render_spans(vec![code_block(Some("sh"), "")]), "```sh\n```");
        assert_eq!(
            render_spans(vec![code_block(Some("bad lang"), "x")]),
            "```\nx\n```"
        );
    }

    // --- both ways -------------------------------------------------------------

    #[test]
    fn rich_text_round_trips_through_markdown() {
        let url = "https://x.test/a";
        let cases = vec![
            vec![text("plain", "")],
            vec![
                text("b", "b"),
                text(" i", "i"),
                text(" s", "s"),
                text(" m", "m"),
            ],
            vec![text("u", "u"), text("bi", "bi"), text("all", "bism")],
            vec![
                text("bold ", "b"),
                text("x", ""),
                text(" ital ", "i"),
                text("y", ""),
            ],
            vec![
                text("see ", ""),
                link("docs", url, "b"),
                text(" or ", ""),
                link(url, url, ""),
            ],
            vec![link("", url, ""), link("a b", "https://x.test/a b", "")],
            vec![
                text("look:", ""),
                code_block(Some("rust"), "let a = `b`;\n```\n"),
                text("after", ""),
            ],
            vec![text(
                "2 * 3 = 6, snake_case, a_b_c, *, ~, [x], <b>, &amp;, \\, `",
                "",
            )],
            vec![text("😀 ünïcödé 日本語 ", ""), text("太字", "b")],
            vec![text("@\u{200B}channel and @\u{200B}here", "")],
            vec![
                Span::Mention {
                    name: "@alice".into(),
                    user_id: Some("u1".into()),
                },
                text(": hi", ""),
            ],
            vec![text(
                "# not a title\n> not a quote\n- not a list\n1. nor this\n| no | table |\n---",
                "",
            )],
            vec![text("``", "m"), text(" and ", ""), text("a`b", "bm")],
            vec![text("line one\nline two", "b")],
            vec![text("a", ""), text("(b)", "b"), text("c", "")],
        ];
        for spans in cases {
            let rich = rich(spans);
            let markdown = render(&rich);
            assert_eq!(parse(&markdown).to_plain(), rich.to_plain(), "{markdown:?}");
        }
    }

    #[test]
    fn typical_mattermost_messages_are_stable() {
        for markdown in [
            "**bold** *italic* ~~gone~~ `code`",
            "***both*** and **`bold code`**",
            "see [the docs](https://x.test/docs) or https://x.test/",
            "look:\n```rust\nfn main() {}\n```\nafter",
            "first line\nsecond line",
            "@alice can you check https://x.test/a_b?",
            "snake_case 2 * 3 😀",
        ] {
            assert_eq!(render(&parse(markdown)), markdown);
        }
        // Other spellings settle on one form.
        for (markdown, settled) in [
            ("__bold__ _italic_", "**bold** *italic*"),
            ("# Title", "**Title**"),
            ("- item", "\\- item"),
            ("> quote", "\\> quote"),
            ("<https://x.test>", "https://x.test"),
        ] {
            assert_eq!(render(&parse(markdown)), settled, "{markdown:?}");
            assert_eq!(render(&parse(settled)), settled, "{settled:?}");
        }
    }

    /// Deterministic xorshift, so the generated cases are the same every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        fn style(&mut self) -> Style {
            Style {
                bold: self.below(3) == 0,
                italic: self.below(3) == 0,
                strikethrough: self.below(5) == 0,
                monospace: self.below(6) == 0,
                underline: self.below(6) == 0,
                color: None,
            }
        }
    }

    /// Non-whitespace characters with their visible style.
    fn styled_chars(rich: &RichText) -> Vec<(char, bool, bool, bool, bool)> {
        let mut out = Vec::new();
        for span in &rich.spans {
            let (text, style) = match span {
                Span::Text { text, style } => (text.as_str(), style),
                Span::Link { text, url, style } => {
                    (if text.is_empty() { url } else { text }.as_str(), style)
                }
                _ => continue,
            };
            out.extend(text.chars().filter(|c| !c.is_whitespace()).map(|c| {
                (
                    c,
                    style.bold,
                    style.italic,
                    style.strikethrough,
                    style.monospace,
                )
            }));
        }
        out
    }

    /// Line ends and blank lines are what markdown normalises.
    fn normalise(text: &str) -> String {
        text.lines()
            .map(|line| line.trim_matches([' ', '\t']))
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn generated_rich_text_keeps_its_text_and_never_gains_style() {
        const TOKENS: &[&str] = &[
            "a",
            "word",
            " ",
            " ",
            "  ",
            "\n",
            "*",
            "**",
            "_",
            "__",
            "~",
            "~~",
            "`",
            "```",
            "[",
            "]",
            "(",
            ")",
            "<",
            ">",
            "#",
            "# ",
            "- ",
            "+ ",
            "1. ",
            "1)",
            "|",
            "\\",
            "!",
            "&",
            "&amp;",
            "=",
            "===",
            "---",
            ":",
            "😀",
            "ü",
            "@",
            "@\u{200B}channel",
            "x_y",
            ".",
            "    ",
            "\t",
            "https://x.test/a",
            "'",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..4000 {
            let mut rich = RichText::default();
            for _ in 0..1 + rng.below(6) {
                match rng.below(12) {
                    0 => rich.push(Span::Link {
                        text: rng.pick(&["docs", "a b", "", "*x*"]).into(),
                        url: rng
                            .pick(&[
                                "https://x.test/a",
                                "https://x.test/a_(b)",
                                "https://x.test/a b",
                            ])
                            .into(),
                        style: rng.style(),
                    }),
                    1 => rich.push(code_block(Some("rust"), "let a = `b`;\n```\n")),
                    _ => {
                        let mut text = String::new();
                        for _ in 0..1 + rng.below(5) {
                            text.push_str(rng.pick(TOKENS));
                        }
                        let style = rng.style();
                        rich.push_text(text, style);
                    }
                }
            }
            let markdown = render(&rich);
            let back = parse(&markdown);
            assert_eq!(
                normalise(&back.to_plain()),
                normalise(&rich.to_plain()),
                "{rich:?} -> {markdown:?}"
            );
            // Only paragraphs and our code blocks: no list, quote, heading or table.
            for event in Parser::new_ext(
                &markdown,
                Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES,
            ) {
                if let Event::Start(tag) = event {
                    assert!(
                        matches!(
                            tag,
                            Tag::Paragraph
                                | Tag::CodeBlock(CodeBlockKind::Fenced(_))
                                | Tag::Emphasis
                                | Tag::Strong
                                | Tag::Strikethrough
                                | Tag::Link { .. }
                        ),
                        "{tag:?} in {markdown:?}"
                    );
                }
            }
            let wanted = styled_chars(&rich);
            let got = styled_chars(&back);
            assert_eq!(wanted.len(), got.len(), "{markdown:?}");
            for (want, got) in wanted.iter().zip(&got) {
                let gained = (got.1 && !want.1)
                    || (got.2 && !want.2)
                    || (got.3 && !want.3)
                    || (got.4 && !want.4);
                assert!(!gained, "{:?} gained style in {markdown:?}", want.0);
            }
            let settled = render(&back);
            assert_eq!(render(&parse(&settled)), settled, "{markdown:?}");
        }
    }

    #[test]
    fn generated_chat_keeps_styles_on_whole_words() {
        const WORDS: &[&str] = &[
            "hello",
            "don't",
            "(see",
            "this)",
            "\"quoted\"",
            "ok,",
            "done.",
            "why?",
            "yes!",
            "note:",
            "😀",
            "ünï",
            "x_y",
            "v1.2",
            "a/b",
            "@bob",
            "#tag",
            "-",
            "foo(bar)",
            "50%",
            "C++",
            "e.g.",
            "--flag",
            "*",
            "-",
            "+",
            "1.",
            "~",
            "[x]",
        ];
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for _ in 0..4000 {
            let mut rich = RichText::default();
            let words = 1 + rng.below(6);
            for i in 0..words {
                let style = if rng.below(3) == 0 {
                    rng.style()
                } else {
                    Style::default()
                };
                rich.push_text(rng.pick(WORDS), style);
                if i + 1 < words {
                    // The space sometimes carries the style on, as IRC formatting does.
                    let space = if rng.below(4) == 0 {
                        style
                    } else {
                        Style::default()
                    };
                    rich.push_text(" ", space);
                }
            }
            let markdown = render(&rich);
            let back = parse(&markdown);
            assert_eq!(back.to_plain(), rich.to_plain(), "{markdown:?}");
            assert_eq!(
                styled_chars(&back),
                styled_chars(&rich),
                "{rich:?} -> {markdown:?}"
            );
        }
    }
}
