//! Mattermost markdown -> rich text, through pulldown-cmark events.

use std::mem;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use switchboard_sdk::rich::LinkText;
use switchboard_sdk::text::link_bare_urls;
use switchboard_sdk::{RichText, Span, Style};

/// Parses a Mattermost post message (Mattermost-flavoured markdown) into rich text.
pub(super) fn parse(markdown: &str) -> RichText {
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    let mut reader = Reader::default();
    for (event, range) in Parser::new_ext(markdown, options).into_offset_iter() {
        reader.event(event, &markdown[range]);
    }
    reader.finish()
}

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
    links: Vec<OpenLink>,
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

struct OpenLink {
    url: String,
    image: bool,
    label: LinkText,
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
            link.label.push(text, style);
        } else {
            self.open_line();
            self.rich.push_text(text, style);
        }
    }

    fn line_break(&mut self) {
        if let Some(link) = self.links.last_mut() {
            // The model's link text is one line.
            let style = link.label.outer;
            link.label.push(" ", style);
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
        self.links.push(OpenLink {
            url,
            image,
            label: LinkText::new(self.style()),
        });
    }

    fn close_link(&mut self) {
        let Some(link) = self.links.pop() else {
            return;
        };
        let style = link.label.style();
        let text = if link.image && link.label.text.is_empty() {
            link.url.clone()
        } else {
            link.label.text
        };
        if let Some(outer) = self.links.last_mut() {
            outer.label.push(&text, style);
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

fn language(kind: &CodeBlockKind<'_>) -> Option<String> {
    match kind {
        CodeBlockKind::Fenced(info) => info.split_whitespace().next().map(str::to_owned),
        CodeBlockKind::Indented => None,
    }
}
