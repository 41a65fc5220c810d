//! IRC formatting codes <-> the core's rich text.
//!
//! Parsed: bold (^B), italic (^]), underline (^_), strikethrough (^^), monospace
//! (^Q), colours (^C fg[,bg]), hex colours (^D, dropped), reverse (^V, ignored),
//! reset (^O). Bare http(s) URLs become links. Rendering writes the same codes back,
//! so IRC -> IRC keeps its formatting, colours included.
//!
//! IRC has no room-wide mentions, so text is sent as written: `@channel`, `@all` and
//! URLs containing them are not touched here (the Mattermost and Matrix renderers
//! guard their own final text; see `tests/mention_safety.rs`).

use switchboard_sdk::{Color, RichText, Span, Style};

const BOLD: char = '\x02';
const COLOR: char = '\x03';
const HEX_COLOR: char = '\x04';
const RESET: char = '\x0F';
const MONOSPACE: char = '\x11';
const REVERSE: char = '\x16';
const ITALIC: char = '\x1D';
const STRIKE: char = '\x1E';
const UNDERLINE: char = '\x1F';

/// Parses one IRC message body.
pub fn parse(text: &str) -> RichText {
    let mut rich = RichText::default();
    let mut style = Style::default();
    let mut buffer = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let before = style;
        match c {
            BOLD => style.bold = !style.bold,
            ITALIC => style.italic = !style.italic,
            UNDERLINE => style.underline = !style.underline,
            STRIKE => style.strikethrough = !style.strikethrough,
            MONOSPACE => style.monospace = !style.monospace,
            REVERSE => {}
            RESET => style = Style::default(),
            COLOR => {
                let fg = take_digits(&mut chars, 2);
                style.color = match fg {
                    None => None,
                    Some(fg) => {
                        let mut bg = None;
                        if chars.peek() == Some(&',') {
                            let mut lookahead = chars.clone();
                            lookahead.next();
                            if lookahead.peek().is_some_and(char::is_ascii_digit) {
                                chars.next();
                                bg = take_digits(&mut chars, 2);
                            }
                        }
                        Some(Color {
                            fg,
                            bg: bg.or(style.color.and_then(|c| c.bg)),
                        })
                    }
                };
            }
            HEX_COLOR => {
                take_hex(&mut chars);
                if chars.peek() == Some(&',') {
                    chars.next();
                    take_hex(&mut chars);
                }
            }
            '\x01' | '\r' | '\n' | '\0' => {}
            _ => {
                buffer.push(c);
                continue;
            }
        }
        if style != before && !buffer.is_empty() {
            push_with_links(&mut rich, &std::mem::take(&mut buffer), before);
        }
    }
    push_with_links(&mut rich, &buffer, style);
    rich
}

fn take_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, max: usize) -> Option<u8> {
    let mut value: Option<u8> = None;
    for _ in 0..max {
        match chars.peek() {
            Some(d) if d.is_ascii_digit() => {
                let digit = *d as u8 - b'0';
                value = Some(value.unwrap_or(0) * 10 + digit);
                chars.next();
            }
            _ => break,
        }
    }
    value
}

fn take_hex(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for _ in 0..6 {
        match chars.peek() {
            Some(h) if h.is_ascii_hexdigit() => {
                chars.next();
            }
            _ => break,
        }
    }
}

/// Splits bare http(s) URLs out of `text` as link spans.
fn push_with_links(rich: &mut RichText, text: &str, style: Style) {
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        rich.push_text(&rest[..start], style);
        let tail = &rest[start..];
        let mut end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        while end > 0 && tail[..end].ends_with(['.', ',', ';', ':', '!', '?', ')', '\'', '"']) {
            end -= 1;
        }
        let url = &tail[..end];
        rich.push(Span::Link {
            text: url.to_owned(),
            url: url.to_owned(),
            style,
        });
        rest = &tail[end..];
    }
    rich.push_text(rest, style);
}

fn find_url(text: &str) -> Option<usize> {
    let start = [text.find("https://"), text.find("http://")]
        .into_iter()
        .flatten()
        .min()?;
    let boundary = start == 0 || !text[..start].ends_with(|c: char| c.is_alphanumeric());
    boundary.then_some(start)
}

/// A line of styled runs, as IRC will show it.
pub type Runs = Vec<(Style, String)>;

/// Renders rich text as lines of styled runs: `\n` and code blocks start new lines.
pub fn to_lines(rich: &RichText) -> Vec<Runs> {
    let mut lines: Vec<Runs> = vec![Vec::new()];
    let push = |lines: &mut Vec<Runs>, style: Style, text: &str| {
        for (i, part) in text.split('\n').enumerate() {
            if i > 0 {
                lines.push(Vec::new());
            }
            let clean: String = part.chars().filter(|c| !matches!(c, '\r' | '\0')).collect();
            if !clean.is_empty() {
                lines.last_mut().expect("never empty").push((style, clean));
            }
        }
    };
    for span in &rich.spans {
        match span {
            Span::Text { text, style } => push(&mut lines, *style, text),
            Span::Link { text, url, style } => {
                if text == url || text.is_empty() {
                    push(&mut lines, *style, url);
                } else {
                    push(&mut lines, *style, &format!("{text} ({url})"));
                }
            }
            Span::Mention { name, .. } => push(&mut lines, Style::default(), name),
            Span::CodeBlock { code, .. } => {
                if !lines.last().is_some_and(Vec::is_empty) {
                    lines.push(Vec::new());
                }
                let code_style = Style {
                    monospace: true,
                    ..Style::default()
                };
                push(&mut lines, code_style, code.trim_end_matches('\n'));
                lines.push(Vec::new());
            }
        }
    }
    lines.retain(|runs| runs.iter().any(|(_, text)| !text.trim().is_empty()));
    lines
}

/// The codes that turn style `from` into style `to`.
pub fn transition(from: &Style, to: &Style) -> String {
    if from == to {
        return String::new();
    }
    let mut codes = String::new();
    let toggles = [
        (from.bold, to.bold, BOLD),
        (from.italic, to.italic, ITALIC),
        (from.underline, to.underline, UNDERLINE),
        (from.strikethrough, to.strikethrough, STRIKE),
        (from.monospace, to.monospace, MONOSPACE),
    ];
    for (was, is, code) in toggles {
        if was != is {
            codes.push(code);
        }
    }
    if from.color != to.color {
        match to.color {
            // Two digits always, so a following digit is not read as part of the colour.
            Some(Color { fg, bg: Some(bg) }) => codes.push_str(&format!("{COLOR}{fg:02},{bg:02}")),
            Some(Color { fg, bg: None }) => codes.push_str(&format!("{COLOR}{fg:02}")),
            None => codes.push(COLOR),
        }
    }
    codes
}

/// Renders one line of runs to IRC text (used where no splitting is needed).
pub fn render_runs(runs: &Runs) -> String {
    let mut out = String::new();
    let mut current = Style::default();
    for (style, text) in runs {
        out.push_str(&transition(&current, style));
        out.push_str(text);
        current = *style;
    }
    out.push_str(&transition(&current, &Style::default()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(irc: &str) -> String {
        to_lines(&parse(irc))
            .iter()
            .map(render_runs)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn each_code_round_trips() {
        for text in [
            "\x02bold\x02 plain",
            "\x1Ditalic\x1D plain",
            "\x1Funder\x1F plain",
            "\x1Estrike\x1E plain",
            "\x11mono\x11 plain",
            "\x0304red\x03 plain",
            "\x0304,12red on blue\x03 plain",
            "\x02\x1Dbold italic\x02\x1D",
        ] {
            assert_eq!(round_trip(text), text, "{text:?}");
        }
    }

    #[test]
    fn reset_and_single_digit_colours_are_normalised() {
        assert_eq!(round_trip("\x02a\x0Fb"), "\x02a\x02b");
        assert_eq!(round_trip("\x034red\x03 x"), "\x0304red\x03 x");
        assert_eq!(round_trip("\x02open to the end"), "\x02open to the end\x02");
    }

    #[test]
    fn styles_are_parsed_into_spans() {
        let rich = parse("a \x02b\x1Dc\x0F d");
        let bold = Style {
            bold: true,
            ..Style::default()
        };
        let bold_italic = Style {
            italic: true,
            ..bold
        };
        assert_eq!(
            rich.spans,
            vec![
                Span::Text {
                    text: "a ".into(),
                    style: Style::default()
                },
                Span::Text {
                    text: "b".into(),
                    style: bold
                },
                Span::Text {
                    text: "c".into(),
                    style: bold_italic
                },
                Span::Text {
                    text: " d".into(),
                    style: Style::default()
                },
            ]
        );
        assert_eq!(rich.to_plain(), "a bc d");
    }

    #[test]
    fn colours_and_hex_colours_leave_plain_text() {
        assert_eq!(
            parse("\x0304,01red\x03 \x04ff0000hex\x04 x").to_plain(),
            "red hex x"
        );
        assert_eq!(parse("\x03,5 comma").to_plain(), ",5 comma");
    }

    #[test]
    fn urls_become_links() {
        let rich = parse("see https://example.org/x?y=1. ok");
        assert_eq!(
            rich.spans[1],
            Span::Link {
                text: "https://example.org/x?y=1".into(),
                url: "https://example.org/x?y=1".into(),
                style: Style::default()
            }
        );
        assert_eq!(rich.to_plain(), "see https://example.org/x?y=1. ok");
    }

    #[test]
    fn code_blocks_and_newlines_become_lines() {
        let mut rich = RichText::plain("look:\nthis");
        rich.push(Span::CodeBlock {
            language: None,
            code: "fn main() {}\nlet x = 1;\n".into(),
        });
        rich.push_text("after", Style::default());
        let lines: Vec<String> = to_lines(&rich).iter().map(render_runs).collect();
        assert_eq!(
            lines,
            vec![
                "look:",
                "this",
                "\x11fn main() {}\x11",
                "\x11let x = 1;\x11",
                "after"
            ]
        );
    }
}
