//! Discord markdown -> rich text.
//!
//! Discord's client reads markdown with rules descended from simple-markdown; this
//! parser follows those rules' regular expressions as closely as a hand-written
//! reader can, because the renderer checks what it writes by reading it back here:
//! * `**x**` bold, `__x__` underline: the first closing marker (not followed by
//!   another `*` / `_`) after at least one character, skipping escaped characters;
//!   no rule about blanks.
//! * `*x*` italic: no blank right after the opening `*`, none right before the
//!   closing one, and no lone `*` inside (`**` pairs may be). `_x_` italic: no lone
//!   `_` inside and no letter, digit or `_` right after the closing one (so
//!   `snake_case` stays as it is). Where bold, italic and underline could all start,
//!   the longest match wins, italic on a tie (simple-markdown's match quality).
//! * `~~x~~` strike and `||x||` spoiler: the first closing pair, escapes or not.
//! * `` `x` ``: a run of backticks closed by a run of the same length; one space of
//!   padding next to a backtick is dropped. ```` ```lang\ncode``` ````: a block,
//!   anywhere in a line.
//! * `\` before any character that is not an ASCII letter, digit or blank shows
//!   that character literally.
//! * At the start of a line: `> ` and `>>> ` quotes, `#`..`###` headings, `-# `
//!   subtext and `- ` / `* ` list items (see the module docs for what each becomes).
//! * Links: `http(s)://` up to a blank or `<`, less trailing `.,:;"')]`; `<url>`;
//!   `[text](http(s) url)`.
//!
//! Line breaks are never styled. Styles nest without limit in Discord; past
//! [`MAX_DEPTH`] levels the rest is read as text.

use super::refs::{Angle, Names, UNKNOWN_CHANNEL, UNKNOWN_ROLE, UNKNOWN_USER, angle_at, time_text};
use super::scan::{Inner, em, pair, pair_lazy};
use super::scan::{is_http, url_len};
use switchboard_sdk::rich::LinkText;
use switchboard_sdk::{RichText, Span, Style};

/// How deep styles nest before the rest is read as text.
const MAX_DEPTH: usize = 32;

/// Parses a Discord message `content`, naming references through `names`.
pub(super) fn parse(content: &str, names: &dyn Names) -> RichText {
    let src = content.replace('\r', "");
    let mut parser = Parser {
        src: &src,
        names,
        out: RichText::default(),
        quote_all: false,
        prefixed: None,
        in_label: false,
        depth: 0,
    };
    parser.range(0, src.len(), Style::default());
    parser.out
}

struct Parser<'a> {
    src: &'a str,
    names: &'a dyn Names,
    out: RichText,
    /// Inside a `>>> ` quote: every line after it is quoted.
    quote_all: bool,
    /// The line start whose prefix was read last.
    prefixed: Option<usize>,
    /// Reading a link's text: line breaks become spaces.
    in_label: bool,
    depth: usize,
}

impl Parser<'_> {
    fn range(&mut self, start: usize, end: usize, style: Style) {
        let mut i = start;
        while i < end {
            if (i == 0 || self.src.as_bytes()[i - 1] == b'\n') && self.prefixed != Some(i) {
                self.prefixed = Some(i);
                i = self.line_prefix(i, end, style);
                continue;
            }
            let c = self.src[i..].chars().next().expect("in bounds");
            if let Some(len) = self.construct(i, end, c, style) {
                i += len;
                continue;
            }
            if c == '\n' {
                self.newline();
            } else {
                self.text(&self.src[i..i + c.len_utf8()], style);
            }
            i += c.len_utf8();
        }
    }

    fn text(&mut self, text: &str, style: Style) {
        self.out.push_text(text, style);
    }

    fn newline(&mut self) {
        if self.in_label {
            self.text(" ", Style::default());
            return;
        }
        self.text("\n", Style::default());
        if self.quote_all {
            self.text("> ", Style::default());
        }
    }

    /// Reads the block markers at the start of a line; returns where its text
    /// starts (or, for a heading, where the line ends).
    fn line_prefix(&mut self, mut i: usize, end: usize, style: Style) -> usize {
        let line = &self.src[i..end];
        let line = &line[..line.find('\n').unwrap_or(line.len())];
        let spaces = line.len() - line.trim_start_matches(' ').len();
        let after_spaces = &line[spaces..];
        if !self.quote_all && !self.in_label {
            if after_spaces.starts_with(">>> ") {
                self.quote_all = true;
                self.text("> ", Style::default());
                return i + spaces + 4;
            }
            if after_spaces.starts_with("> ") {
                self.text("> ", Style::default());
                i += spaces + 2;
            }
        }
        let line_end = i + self.src[i..end].find('\n').unwrap_or(end - i);
        let rest = &self.src[i..line_end];
        let hashes = rest.bytes().take_while(|&b| b == b'#').count();
        let blanks = rest[hashes..].len() - rest[hashes..].trim_start_matches(' ').len();
        if (1..=3).contains(&hashes) && blanks > 0 && hashes + blanks < rest.len() {
            let bold = Style {
                bold: true,
                ..style
            };
            self.nested(i + hashes + blanks, line_end, bold);
            return line_end;
        }
        if let Some(subtext) = rest.strip_prefix("-# ") {
            return line_end - subtext.trim_start_matches(' ').len();
        }
        for marker in ["- ", "* "] {
            if let Some(item) = rest.strip_prefix(marker)
                && !item.trim_start_matches(' ').is_empty()
            {
                self.text("- ", Style::default());
                return line_end - item.trim_start_matches(' ').len();
            }
        }
        i
    }

    fn nested(&mut self, start: usize, end: usize, style: Style) {
        if self.depth >= MAX_DEPTH {
            let text = &self.src[start..end];
            self.text(text, style);
            return;
        }
        self.depth += 1;
        self.range(start, end, style);
        self.depth -= 1;
    }

    /// Reads the construct starting at `i`, if any; returns its length.
    fn construct(&mut self, i: usize, end: usize, c: char, style: Style) -> Option<usize> {
        let rest = &self.src[i..end];
        match c {
            '\\' => {
                let next = rest[1..].chars().next()?;
                if next.is_ascii_alphanumeric() || next.is_whitespace() {
                    return None;
                }
                let len = 1 + next.len_utf8();
                self.text(&rest[1..len], style);
                Some(len)
            }
            '`' => self
                .code_block(i, end)
                .or_else(|| self.code_span(i, end, style)),
            '<' => self.angle(rest, style),
            'h' => {
                let len = url_len(rest)?;
                self.link(&rest[..len], &rest[..len], style);
                Some(len)
            }
            '[' => self.masked_link(i, end, style),
            '*' | '_' => {
                let candidates = [
                    (
                        em(self.src, i, end),
                        2,
                        Style {
                            italic: true,
                            ..style
                        },
                    ),
                    (
                        pair(self.src, i, end, "**", '*'),
                        1,
                        Style {
                            bold: true,
                            ..style
                        },
                    ),
                    (
                        pair(self.src, i, end, "__", '_'),
                        0,
                        Style {
                            underline: true,
                            ..style
                        },
                    ),
                ];
                let mut best: Option<(usize, Inner, Style)> = None;
                for (found, bonus, styled) in candidates {
                    if let Some(inner) = found {
                        let quality = inner.2 * 10 + bonus;
                        if best.is_none_or(|(q, _, _)| quality > q) {
                            best = Some((quality, inner, styled));
                        }
                    }
                }
                let (_, (start, stop, len), styled) = best?;
                self.nested(start, stop, styled);
                Some(len)
            }
            '~' => {
                let (start, stop, len) = pair_lazy(self.src, i, end, "~~", Some('_'))?;
                self.nested(
                    start,
                    stop,
                    Style {
                        strikethrough: true,
                        ..style
                    },
                );
                Some(len)
            }
            '|' => {
                // The model has no spoiler: the bars stay, around the content.
                let (start, stop, len) = pair_lazy(self.src, i, end, "||", None)?;
                self.text("||", style);
                self.nested(start, stop, style);
                self.text("||", style);
                Some(len)
            }
            _ => None,
        }
    }

    fn angle(&mut self, rest: &str, style: Style) -> Option<usize> {
        let (angle, len) = angle_at(rest)?;
        let shown = match angle {
            Angle::User(id) => {
                let name = self.names.user(id).unwrap_or_else(|| UNKNOWN_USER.into());
                if self.in_label {
                    format!("@{name}")
                } else {
                    self.out.push(Span::Mention {
                        name,
                        user_id: Some(id.to_owned()),
                    });
                    return Some(len);
                }
            }
            Angle::Role(id) => {
                let name = self.names.role(id).unwrap_or_else(|| UNKNOWN_ROLE.into());
                format!("@{name}")
            }
            Angle::Channel(id) => {
                let name = self.names.channel(id);
                format!("#{}", name.as_deref().unwrap_or(UNKNOWN_CHANNEL))
            }
            Angle::Command(name) => format!("/{name}"),
            Angle::Emoji(name) => format!(":{name}:"),
            Angle::Time(unix, time_style) => {
                time_text(unix, time_style).unwrap_or_else(|| rest[..len].to_owned())
            }
            Angle::Url(url) => {
                self.link(url, url, style);
                return Some(len);
            }
        };
        self.text(&shown, style);
        Some(len)
    }

    fn link(&mut self, text: &str, url: &str, style: Style) {
        if self.in_label {
            self.text(text, style);
        } else {
            self.out.push(Span::Link {
                text: text.to_owned(),
                url: url.to_owned(),
                style,
            });
        }
    }

    /// `[text](url)` with an http(s) address.
    fn masked_link(&mut self, i: usize, end: usize, style: Style) -> Option<usize> {
        if self.in_label {
            return None;
        }
        let src = self.src;
        let bytes = src.as_bytes();
        let mut j = i + 1;
        let mut depth = 0usize;
        loop {
            match *bytes.get(j).filter(|_| j < end)? {
                b'\\' => j += 1,
                b'[' => depth += 1,
                b']' if depth == 0 => break,
                b']' => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        if !src[j..end].starts_with("](") {
            return None;
        }
        let mut k = j + 2;
        while k < end && bytes[k] == b' ' {
            k += 1;
        }
        let pointy = k < end && bytes[k] == b'<';
        k += usize::from(pointy);
        let url_start = k;
        let mut parens = 0usize;
        while k < end {
            match bytes[k] {
                b'\\' => k += 1,
                b'(' => parens += 1,
                b')' if parens == 0 => break,
                b')' => parens -= 1,
                b'>' if pointy => break,
                b if b.is_ascii_whitespace() => break,
                _ => {}
            }
            k += 1;
        }
        let url = src.get(url_start..k.min(end))?;
        if pointy {
            (k < end && bytes[k] == b'>').then_some(())?;
            k += 1;
        }
        while k < end && bytes[k] == b' ' {
            k += 1;
        }
        if k >= end || bytes[k] != b')' || !is_http(url) {
            return None;
        }
        let outer = std::mem::take(&mut self.out);
        self.in_label = true;
        self.nested(i + 1, j, style);
        self.in_label = false;
        let label = std::mem::replace(&mut self.out, outer);
        let mut text = LinkText::new(style);
        for span in &label.spans {
            match span {
                Span::Text { text: part, style }
                | Span::Link {
                    text: part, style, ..
                } => text.push(part, *style),
                Span::Mention { name, .. } => text.push(name, style),
                Span::CodeBlock { code, .. } => text.push(code, style),
            }
        }
        let shown = if text.text.is_empty() {
            url
        } else {
            &text.text
        };
        let shown = shown.to_owned();
        self.link(&shown, url, text.style());
        Some(k + 1 - i)
    }

    /// ```` ```lang\ncode``` ````: the line break before it and the one after it
    /// belong to the block.
    fn code_block(&mut self, i: usize, end: usize) -> Option<usize> {
        let src = self.src;
        if !src[i..end].starts_with("```") {
            return None;
        }
        let k = i + 3;
        let rest = &src[k..end];
        let lang_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || b"_+-.#".contains(b))
            .count();
        for with_language in [true, false] {
            let (language, mut start) = if with_language {
                if lang_len == 0 || !rest[lang_len..].starts_with('\n') {
                    continue;
                }
                (Some(&rest[..lang_len]), k + lang_len + 1)
            } else {
                (None, k)
            };
            while start < end && src.as_bytes()[start] == b'\n' {
                start += 1;
            }
            let Some(first) = src[start..end].chars().next() else {
                continue;
            };
            let from = start + first.len_utf8();
            let Some(close) = src[from..end].find("```").map(|at| from + at) else {
                continue;
            };
            if let Some(Span::Text { text, .. }) = self.out.spans.last_mut()
                && text.ends_with('\n')
            {
                text.pop();
                if text.is_empty() {
                    self.out.spans.pop();
                }
            }
            self.out.push(Span::CodeBlock {
                language: language.map(str::to_owned),
                code: src[start..close].trim_end_matches('\n').to_owned(),
            });
            let mut after = close + 3;
            if src[after..end].starts_with('\n') {
                after += 1;
                self.prefixed = None;
            }
            return Some(after - i);
        }
        None
    }

    fn code_span(&mut self, i: usize, end: usize, style: Style) -> Option<usize> {
        let src = self.src;
        let bytes = src.as_bytes();
        let run = src[i..end].bytes().take_while(|&b| b == b'`').count();
        for open in (1..=run).rev() {
            let mut j = i + run;
            while j < end {
                if bytes[j] != b'`' {
                    j += 1;
                    continue;
                }
                let len = src[j..end].bytes().take_while(|&b| b == b'`').count();
                if len == open && j > i + open {
                    let mut code = &src[i + open..j];
                    if code.starts_with(' ') && code.trim_start_matches(' ').starts_with('`') {
                        code = &code[1..];
                    }
                    if code.ends_with(' ') && code.trim_end_matches(' ').ends_with('`') {
                        code = &code[..code.len() - 1];
                    }
                    self.text(
                        code,
                        Style {
                            monospace: true,
                            ..style
                        },
                    );
                    return Some(j + len - i);
                }
                j += len;
            }
        }
        None
    }
}
