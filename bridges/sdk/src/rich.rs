//! A small rich-text model that every protocol can be translated to and from.
//!
//! Deliberately small: styled text, links, mentions and code blocks. Anything a
//! target cannot show degrades to plain text, so nothing is lost in translation.

use serde::{Deserialize, Serialize};

/// An IRC-style colour pair (0-98 palette). Kept so IRC->IRC keeps colours;
/// other targets may ignore it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Color {
    pub fg: u8,
    pub bg: Option<u8>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Style {
    #[serde(default, skip_serializing_if = "is_false")]
    pub bold: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub italic: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub underline: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub strikethrough: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub monospace: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Style {
    pub fn is_plain(&self) -> bool {
        *self == Style::default()
    }
}

/// The text of a link as a parser collects it from styled pieces, and the one style
/// the model gives a link: what all of its text shares (the style around the link
/// while it has no text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkText {
    pub text: String,
    /// The style around the link.
    pub outer: Style,
    common: Option<Style>,
}

impl LinkText {
    pub fn new(outer: Style) -> Self {
        Self {
            text: String::new(),
            outer,
            common: None,
        }
    }

    /// Adds text; the link keeps only the styles all of its text has.
    pub fn push(&mut self, text: &str, style: Style) {
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

    /// The link's one style.
    pub fn style(&self) -> Style {
        self.common.unwrap_or(self.outer)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Span {
    /// Styled text; may contain `\n` for multi-line messages.
    Text { text: String, style: Style },
    /// A hyperlink; `text` equal to `url` means a bare link.
    Link {
        text: String,
        url: String,
        style: Style,
    },
    /// A mention of a user; `name` is what a reader sees.
    Mention {
        name: String,
        user_id: Option<String>,
    },
    /// A preformatted block, shown line by line where there are no blocks.
    CodeBlock {
        language: Option<String>,
        code: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RichText {
    pub spans: Vec<Span>,
}

impl RichText {
    pub fn plain(text: impl Into<String>) -> Self {
        let mut rich = Self::default();
        rich.push_text(text, Style::default());
        rich
    }

    /// Appends text, merging with the previous span when the style is the same.
    pub fn push_text(&mut self, text: impl Into<String>, style: Style) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        if let Some(Span::Text {
            text: last,
            style: last_style,
        }) = self.spans.last_mut()
            && *last_style == style
        {
            last.push_str(&text);
            return;
        }
        self.spans.push(Span::Text { text, style });
    }

    pub fn push(&mut self, span: Span) {
        match span {
            Span::Text { text, style } => self.push_text(text, style),
            other => self.spans.push(other),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.spans.iter().all(|span| match span {
            Span::Text { text, .. } => text.is_empty(),
            _ => false,
        })
    }

    /// The text a reader would see with all styling removed.
    pub fn to_plain(&self) -> String {
        let mut out = String::new();
        for span in &self.spans {
            match span {
                Span::Text { text, .. } => out.push_str(text),
                Span::Link { text, url, .. } => {
                    if text == url || text.is_empty() {
                        out.push_str(url);
                    } else {
                        out.push_str(text);
                        out.push_str(" (");
                        out.push_str(url);
                        out.push(')');
                    }
                }
                Span::Mention { name, .. } => out.push_str(name),
                Span::CodeBlock { code, .. } => {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(code.trim_end_matches('\n'));
                    out.push('\n');
                }
            }
        }
        if out.ends_with('\n') {
            out.pop();
        }
        out
    }

    /// Applies `f` to the text of every plain-text span (not to links, mentions or code).
    pub fn map_text(&mut self, mut f: impl FnMut(&str) -> String) {
        for span in &mut self.spans {
            if let Span::Text { text, .. } = span {
                *text = f(text);
            }
        }
    }

    /// Prepends plain text (e.g. a quote of the message being answered).
    pub fn prepend_plain(&mut self, prefix: &str) {
        if prefix.is_empty() {
            return;
        }
        self.spans.insert(
            0,
            Span::Text {
                text: prefix.to_owned(),
                style: Style::default(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_text_merges_same_style() {
        let mut rich = RichText::plain("a");
        rich.push_text("b", Style::default());
        let bold = Style {
            bold: true,
            ..Style::default()
        };
        rich.push_text("c", bold);
        assert_eq!(rich.spans.len(), 2);
        assert_eq!(rich.to_plain(), "abc");
    }

    #[test]
    fn plain_rendering_of_links_and_code() {
        let rich = RichText {
            spans: vec![
                Span::Text {
                    text: "see ".into(),
                    style: Style::default(),
                },
                Span::Link {
                    text: "docs".into(),
                    url: "https://x.test/".into(),
                    style: Style::default(),
                },
                Span::CodeBlock {
                    language: None,
                    code: "a\nb\n".into(),
                },
            ],
        };
        assert_eq!(rich.to_plain(), "see docs (https://x.test/)\na\nb");
    }
}
