//! Rich text -> body and formatted_body (HTML).

use switchboard_sdk::{RichText, Span, Style};

/// See [`super::render`].
pub(super) fn render(rich: &RichText) -> (String, Option<String>) {
    let body = rich.to_plain();
    let html = needs_html(rich).then(|| render_html(rich));
    (body, html)
}

/// Whether the text needs HTML: styles the body cannot carry, links, code blocks.
/// Colours alone do not (they are not rendered), nor mentions (plain names).
fn needs_html(rich: &RichText) -> bool {
    rich.spans.iter().any(|span| match span {
        Span::Text { text, style } => !text.is_empty() && has_markup(style),
        Span::Link { url, .. } => !url.is_empty(),
        Span::Mention { .. } => false,
        Span::CodeBlock { .. } => true,
    })
}

fn has_markup(style: &Style) -> bool {
    style.bold || style.italic || style.underline || style.strikethrough || style.monospace
}

fn render_html(rich: &RichText) -> String {
    let mut writer = Writer {
        out: String::new(),
        line_start: true,
        after_space: false,
    };
    for (i, span) in rich.spans.iter().enumerate() {
        let line_end = line_ends_after(&rich.spans[i + 1..]);
        match span {
            Span::Text { text, style } => writer.styled(text, style, line_end),
            // A link with no address is its text.
            Span::Link { text, url, style } if url.is_empty() => {
                writer.styled(text, style, line_end);
            }
            Span::Link { text, url, style } => {
                let label = if text.is_empty() { url } else { text };
                writer.out.push_str("<a href=\"");
                escape_into(&mut writer.out, url, true);
                writer.out.push_str("\">");
                writer.styled(&label.replace('\n', " "), style, line_end);
                writer.out.push_str("</a>");
            }
            // Never a pill: a relayed name must not notify anyone.
            Span::Mention { name, .. } => writer.text(name, line_end),
            Span::CodeBlock { language, code } => writer.code_block(language.as_deref(), code),
        }
    }
    writer.out
}

struct Writer {
    out: String,
    /// Nothing written on the current line yet.
    line_start: bool,
    /// The last character written on the line is a space.
    after_space: bool,
}

/// The tags a style is written with, outermost first.
fn tags(style: &Style) -> Vec<&'static str> {
    [
        (style.bold, "strong"),
        (style.italic, "em"),
        (style.underline, "u"),
        (style.strikethrough, "del"),
        (style.monospace, "code"),
    ]
    .into_iter()
    .filter_map(|(on, tag)| on.then_some(tag))
    .collect()
}

impl Writer {
    fn styled(&mut self, text: &str, style: &Style, line_end: bool) {
        if text.is_empty() {
            return;
        }
        let tags = tags(style);
        for tag in &tags {
            self.out.push_str(&format!("<{tag}>"));
        }
        self.text(text, line_end);
        for tag in tags.iter().rev() {
            self.out.push_str(&format!("</{tag}>"));
        }
    }

    /// Escaped text with `<br>` for `\n`. A space HTML would collapse (one after
    /// another space, or at either end of a line) is written `&nbsp;` so it shows;
    /// `line_end` says whether the line ends right after this text.
    fn text(&mut self, text: &str, line_end: bool) {
        let mut chars = text.chars().filter(|&c| c != '\r').peekable();
        while let Some(c) = chars.next() {
            match c {
                '\n' => {
                    self.out.push_str("<br>");
                    self.line_start = true;
                    self.after_space = false;
                    continue;
                }
                ' ' => {
                    let ends_line = match chars.peek() {
                        Some(next) => *next == '\n',
                        None => line_end,
                    };
                    if self.line_start || self.after_space || ends_line {
                        self.out.push_str("&nbsp;");
                    } else {
                        self.out.push(' ');
                    }
                }
                c => escape_char(&mut self.out, c, false),
            }
            self.line_start = false;
            self.after_space = c == ' ';
        }
    }

    fn code_block(&mut self, language: Option<&str>, code: &str) {
        self.out.push_str("<pre><code");
        let language = language.filter(|language| {
            !language.is_empty() && !language.contains(|c: char| c.is_whitespace())
        });
        if let Some(language) = language {
            self.out.push_str(" class=\"language-");
            escape_into(&mut self.out, language, true);
            self.out.push('"');
        }
        self.out.push('>');
        let code = code.trim_end_matches(['\n', '\r']);
        escape_into(&mut self.out, code, false);
        // As Element writes it; the final line break does not show.
        if !code.is_empty() {
            self.out.push('\n');
        }
        self.out.push_str("</code></pre>");
        self.line_start = true;
        self.after_space = false;
    }
}

/// Whether a line ends after the span before `rest`: a `\n` or a code block comes
/// next, or nothing visible does.
fn line_ends_after(rest: &[Span]) -> bool {
    for span in rest {
        match span {
            Span::Text { text, .. } => match text.chars().find(|&c| c != '\r') {
                Some(c) => return c == '\n',
                None => continue,
            },
            Span::Link { text, url, .. } if text.is_empty() && url.is_empty() => continue,
            Span::Mention { name, .. } if name.is_empty() => continue,
            Span::Link { .. } | Span::Mention { .. } => return false,
            Span::CodeBlock { .. } => return true,
        }
    }
    true
}

fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        escape_char(out, c, attribute);
    }
}

fn escape_char(out: &mut String, c: char, attribute: bool) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' if attribute => out.push_str("&quot;"),
        c => out.push(c),
    }
}
