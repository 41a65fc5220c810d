//! formatted_body (HTML, through ruma-html) or body -> rich text.

use std::mem;

use matrix_sdk::ruma::matrix_uri::MatrixId;
use matrix_sdk::ruma::{MatrixToUri, MatrixUri};
use ruma_html::{ElementData, Html, NodeData, NodeRef};
use switchboard_sdk::rich::LinkText;
use switchboard_sdk::text::link_bare_urls;
use switchboard_sdk::{RichText, Span, Style};

/// See [`super::parse`].
pub(super) fn parse(body: &str, formatted_html: Option<&str>, is_reply: bool) -> RichText {
    if let Some(html) = formatted_html {
        let rich = read_html(html);
        // HTML that shows nothing (only a reply fallback, an image without alt text)
        // says less than the body does.
        if !rich.is_empty() {
            return rich;
        }
    }
    let body = if is_reply {
        strip_reply_fallback(body)
    } else {
        body
    };
    finish(RichText::plain(body))
}

/// Drops a plain-text reply fallback: leading `> ` lines and the empty line after
/// them. Without that empty line it is a quote someone typed, and stays.
fn strip_reply_fallback(body: &str) -> &str {
    let mut rest = body;
    let mut quoted = false;
    while let Some((line, after)) = rest.split_once('\n') {
        if line == ">" || line.starts_with("> ") {
            quoted = true;
            rest = after;
        } else if quoted && line.trim_end_matches('\r').is_empty() {
            return after;
        } else {
            break;
        }
    }
    body
}

/// Links bare URLs and drops line breaks at the end: both paths end here.
fn finish(rich: RichText) -> RichText {
    let mut rich = link_bare_urls(rich);
    while let Some(Span::Text { text, .. }) = rich.spans.last_mut() {
        let kept = text.trim_end_matches(['\n', '\r']).len();
        if kept > 0 {
            text.truncate(kept);
            break;
        }
        rich.spans.pop();
    }
    rich
}

/// Above this many tags, HTML may nest deeply enough for ruma-html's tree, which
/// frees itself recursively, to overflow a 2 MiB worker stack (debug builds manage
/// some thousands of levels; a 64 KiB event can nest 20 000 deep).
const DEEP_TAGS: usize = 256;

/// Enough stack for the deepest nesting a 64 KiB event can hold.
const DEEP_STACK: usize = 64 << 20;

fn read_html(html: &str) -> RichText {
    if html.matches('<').count() <= DEEP_TAGS {
        return Reader::read(&Html::parse(html));
    }
    // Rare (long, heavily marked-up messages), so a thread of its own is affordable.
    // Should it fail, the result is empty and the plain body is used instead.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("matrix-html".into())
            .stack_size(DEEP_STACK)
            .spawn_scoped(scope, || Reader::read(&Html::parse(html)))
            .ok()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default()
    })
}

/// Elements whose content is never shown as text of the message.
fn is_hidden(name: &str) -> bool {
    matches!(
        name,
        "mx-reply" | "script" | "style" | "template" | "head" | "title"
    )
}

/// Elements that start and end a line of their own (besides those with more to
/// them: headings, quotes, lists, table rows, `<pre>`, `<hr>`).
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "table"
            | "thead"
            | "tbody"
            | "tfoot"
            | "caption"
            | "details"
            | "summary"
            | "dl"
            | "dt"
            | "dd"
            | "figure"
            | "figcaption"
            | "section"
            | "article"
            | "aside"
            | "header"
            | "footer"
            | "nav"
            | "main"
            | "address"
            | "center"
    )
}

/// The `href` schemes the Matrix spec allows on `<a>`; others (`javascript:`,
/// relative paths) are no address another network could open.
const LINK_SCHEMES: [&str; 5] = ["https", "http", "ftp", "mailto", "magnet"];

/// Walks the HTML tree into spans, tracking what the model lacks: pending line
/// breaks and whitespace, quote and list prefixes, the link being read.
struct Reader {
    rich: RichText,
    /// Collapsible whitespace seen since the last visible text, with its style. HTML
    /// shows a run of it as one space, and none at the start or end of a line.
    gap: Option<Style>,
    /// `<br>`s not yet written, with their style: a line break shows only if
    /// something follows it.
    breaks: Vec<Style>,
    /// A block began or ended: the next visible text starts a new line.
    new_line: bool,
    /// Nothing visible since the current line began (leading whitespace is dropped).
    line_start: bool,
    containers: Vec<Container>,
    link: Option<OpenLink>,
    /// Cells seen so far in the current table row.
    cells: usize,
}

enum Container {
    Quote,
    List {
        next: Option<i64>,
    },
    Item {
        /// `- ` or `N. `, shown on the item's first line, then as wide an indent.
        marker: String,
        shown: bool,
    },
}

/// A link being read; its text is collected because the model gives a link (or a
/// mention) one piece of text.
struct OpenLink {
    target: Target,
    label: LinkText,
}

enum Target {
    Url(String),
    /// A user pill: `@user:server`.
    User(String),
}

/// Steps of the tree walk, kept on a heap stack rather than the call stack: a
/// remote user chooses how deep the HTML nests.
enum Step {
    Enter(NodeRef, Style),
    Exit(Exit),
}

/// What to undo when an element ends.
enum Exit {
    Inline,
    Block,
    Container,
    Link,
}

impl Reader {
    fn read(html: &Html) -> RichText {
        let mut reader = Reader {
            rich: RichText::default(),
            gap: None,
            breaks: Vec::new(),
            new_line: false,
            line_start: true,
            containers: Vec::new(),
            link: None,
            cells: 0,
        };
        let mut steps: Vec<Step> = children(html.children(), Style::default());
        while let Some(step) = steps.pop() {
            match step {
                Step::Exit(exit) => reader.exit(exit),
                Step::Enter(node, style) => match node.data() {
                    NodeData::Text(text) => reader.text(&text.borrow(), style),
                    NodeData::Element(element) => {
                        if let Some((exit, inner)) = reader.enter(&node, element, style) {
                            steps.push(Step::Exit(exit));
                            steps.extend(children(node.children(), inner));
                        }
                    }
                    NodeData::Document | NodeData::Other => {}
                },
            }
        }
        finish(reader.rich)
    }

    /// Starts an element: returns how it ends and the style of its content, or
    /// `None` when its content is already dealt with (or hidden).
    fn enter(
        &mut self,
        node: &NodeRef,
        element: &ElementData,
        style: Style,
    ) -> Option<(Exit, Style)> {
        let name: &str = &element.name.local;
        let styled = |change: fn(&mut Style)| {
            let mut inner = style;
            change(&mut inner);
            Some((Exit::Inline, inner))
        };
        match name {
            _ if is_hidden(name) => None,
            "br" => {
                self.line_break(style);
                None
            }
            "hr" => {
                self.new_line = true;
                self.visible("---", Style::default());
                self.new_line = true;
                None
            }
            "img" => {
                // Custom emoji carry their shortcode as alt text.
                if let Some(alt) = attr(element, "alt").or_else(|| attr(element, "title")) {
                    self.text(&alt, style);
                }
                None
            }
            "pre" if self.link.is_none() => {
                self.code_block(node, element);
                None
            }
            "pre" => styled(|s| s.monospace = true),
            "a" => Some(self.open_link(element, style)),
            "b" | "strong" => styled(|s| s.bold = true),
            "i" | "em" => styled(|s| s.italic = true),
            "u" | "ins" => styled(|s| s.underline = true),
            "del" | "s" | "strike" => styled(|s| s.strikethrough = true),
            "code" | "tt" | "kbd" | "samp" => styled(|s| s.monospace = true),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.new_line = true;
                Some((
                    Exit::Block,
                    Style {
                        bold: true,
                        ..style
                    },
                ))
            }
            "blockquote" => {
                self.new_line = true;
                self.containers.push(Container::Quote);
                Some((Exit::Container, style))
            }
            "ul" | "ol" => {
                self.new_line = true;
                let next = (name == "ol").then(|| {
                    attr(element, "start")
                        .and_then(|start| start.trim().parse().ok())
                        .unwrap_or(1)
                });
                self.containers.push(Container::List { next });
                Some((Exit::Container, style))
            }
            "li" => {
                self.new_line = true;
                let marker = self.next_marker();
                self.containers.push(Container::Item {
                    marker,
                    shown: false,
                });
                Some((Exit::Container, style))
            }
            "tr" => {
                self.new_line = true;
                self.cells = 0;
                Some((Exit::Block, style))
            }
            "td" | "th" => {
                if self.cells > 0 {
                    self.gap = None;
                    self.visible(" |", Style::default());
                    // Collapses with whitespace at the start of the cell.
                    self.gap = Some(Style::default());
                }
                self.cells += 1;
                Some((Exit::Inline, style))
            }
            _ if is_block(name) => {
                self.new_line = true;
                Some((Exit::Block, style))
            }
            // <span>, <font> (colours, spoilers, maths fallback), <sup>, unknown tags.
            _ => Some((Exit::Inline, style)),
        }
    }

    fn exit(&mut self, exit: Exit) {
        match exit {
            Exit::Inline => {}
            Exit::Block => self.new_line = true,
            Exit::Container => {
                self.containers.pop();
                self.new_line = true;
            }
            Exit::Link => self.close_link(),
        }
    }

    /// Text outside `<pre>`: whitespace collapses, everything else shows.
    fn text(&mut self, text: &str, style: Style) {
        for (i, word) in text.split(is_html_space).enumerate() {
            if i > 0 && self.gap.is_none() {
                self.gap = Some(style);
            }
            if !word.is_empty() {
                // A non-breaking space is how `render` keeps a space HTML would
                // collapse; elsewhere it only stops a line wrap no other network does.
                self.visible(&word.replace('\u{a0}', " "), style);
            }
        }
    }

    /// Writes visible text, after the line breaks and whitespace pending before it.
    fn visible(&mut self, text: &str, style: Style) {
        if self.link.is_some() {
            if let Some(gap) = self.gap.take() {
                let empty = self
                    .link
                    .as_ref()
                    .is_some_and(|link| link.label.text.is_empty());
                if empty {
                    // Whitespace at the start of the link shows before it.
                    self.space_before_link(gap);
                } else if let Some(link) = &mut self.link {
                    link.label.push(" ", gap);
                }
            }
            if let Some(link) = &mut self.link {
                link.label.push(text, style);
            }
            return;
        }
        self.open_line();
        if let Some(gap) = self.gap.take()
            && !self.line_start
        {
            self.rich.push_text(" ", gap);
        }
        self.rich.push_text(text, style);
        self.line_start = false;
    }

    fn line_break(&mut self, style: Style) {
        if self.link.is_some() {
            // The model's link text is one line.
            self.gap.get_or_insert(style);
            return;
        }
        // Whitespace before a line break does not show.
        self.gap = None;
        self.breaks.push(style);
    }

    fn at_line_start(&self) -> bool {
        self.line_start || !self.breaks.is_empty() || self.new_line
    }

    /// Writes the pending line breaks, or the one a block boundary makes (none at the
    /// start or after a code block, which is on lines of its own anyway), each line
    /// with its quote and list prefixes.
    fn open_line(&mut self) {
        let mut breaks = mem::take(&mut self.breaks);
        let block = mem::take(&mut self.new_line);
        if breaks.is_empty() && !block {
            return;
        }
        let after_code = matches!(self.rich.spans.last(), Some(Span::CodeBlock { .. }));
        if breaks.is_empty() && !self.rich.is_empty() && !after_code {
            breaks.push(Style::default());
        }
        for style in &breaks {
            self.rich.push_text("\n", *style);
            let prefix = self.prefix();
            self.rich.push_text(prefix, Style::default());
        }
        if breaks.is_empty() {
            let prefix = self.prefix();
            self.rich.push_text(prefix, Style::default());
        }
        self.gap = None;
        self.line_start = true;
    }

    /// `> ` per quote, and per list item its marker on its first line, then an
    /// indent as wide as the marker.
    fn prefix(&mut self) -> String {
        let mut prefix = String::new();
        for container in &mut self.containers {
            match container {
                Container::Quote => prefix.push_str("> "),
                Container::List { .. } => {}
                Container::Item { marker, shown } if *shown => {
                    prefix.extend(std::iter::repeat_n(' ', marker.chars().count()));
                }
                Container::Item { marker, shown } => {
                    *shown = true;
                    prefix.push_str(marker);
                }
            }
        }
        prefix
    }

    fn next_marker(&mut self) -> String {
        for container in self.containers.iter_mut().rev() {
            if let Container::List { next } = container {
                return match next {
                    Some(number) => {
                        let current = *number;
                        *number = current.saturating_add(1);
                        format!("{current}. ")
                    }
                    None => "- ".to_owned(),
                };
            }
        }
        "- ".to_owned()
    }

    /// A `<pre>`: its text as written, on lines of its own.
    fn code_block(&mut self, node: &NodeRef, element: &ElementData) {
        let pending_item = self
            .containers
            .iter()
            .any(|container| matches!(container, Container::Item { shown: false, .. }));
        if pending_item {
            // The item's marker goes on the line before the code.
            self.open_line();
        } else {
            for style in mem::take(&mut self.breaks) {
                self.rich.push_text("\n", style);
            }
        }
        let language = language(element).or_else(|| {
            node.children().find_map(|child| {
                child
                    .as_element()
                    .filter(|child| &*child.name.local == "code")
                    .and_then(language)
            })
        });
        self.rich.push(Span::CodeBlock {
            language,
            code: preformatted_text(node),
        });
        self.gap = None;
        self.new_line = true;
        self.line_start = true;
    }

    fn open_link(&mut self, element: &ElementData, style: Style) -> (Exit, Style) {
        let target = match (&self.link, attr(element, "href")) {
            (None, Some(href)) => link_target(href.trim()),
            // A link inside a link (or one without an address) is its text.
            _ => None,
        };
        let Some(target) = target else {
            return (Exit::Inline, style);
        };
        // Whitespace before the link shows before it, not as part of its text.
        if let Some(gap) = self.gap.take() {
            self.space_before_link(gap);
        }
        self.link = Some(OpenLink {
            target,
            label: LinkText::new(style),
        });
        (Exit::Link, style)
    }

    fn space_before_link(&mut self, gap: Style) {
        if !self.at_line_start() {
            self.rich.push_text(" ", gap);
        }
    }

    fn close_link(&mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        let style = link.label.style();
        let span = match link.target {
            Target::User(user_id) => Span::Mention {
                name: if link.label.text.is_empty() {
                    user_id.clone()
                } else {
                    link.label.text
                },
                user_id: Some(user_id),
            },
            Target::Url(url) => Span::Link {
                text: link.label.text,
                url,
                style,
            },
        };
        // Whitespace at the end of the link shows after it.
        let gap = self.gap.take();
        self.open_line();
        self.rich.push(span);
        self.line_start = false;
        self.gap = gap;
    }
}

fn children(nodes: impl Iterator<Item = NodeRef>, style: Style) -> Vec<Step> {
    let mut steps: Vec<Step> = nodes.map(|node| Step::Enter(node, style)).collect();
    // Popped from the end: the first child must be last.
    steps.reverse();
    steps
}

/// The whitespace HTML collapses (not U+00A0, which it shows).
fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C')
}

fn attr(element: &ElementData, name: &str) -> Option<String> {
    element
        .attrs
        .borrow()
        .iter()
        .find(|attr| &*attr.name.local == name)
        .map(|attr| attr.value.to_string())
}

/// The `x` of a `class="language-x"`.
fn language(element: &ElementData) -> Option<String> {
    attr(element, "class")?
        .split_ascii_whitespace()
        .find_map(|class| class.strip_prefix("language-"))
        .filter(|language| !language.is_empty())
        .map(str::to_owned)
}

/// The text of a `<pre>` as written: whitespace kept, `<br>` a line break, tags
/// (syntax highlighting) dropped.
fn preformatted_text(pre: &NodeRef) -> String {
    let mut code = String::new();
    let mut stack: Vec<NodeRef> = pre.children().collect();
    stack.reverse();
    while let Some(node) = stack.pop() {
        match node.data() {
            NodeData::Text(text) => code.push_str(&text.borrow()),
            NodeData::Element(element) => {
                let name: &str = &element.name.local;
                match name {
                    _ if is_hidden(name) => {}
                    "br" => code.push('\n'),
                    "img" => {
                        if let Some(alt) = attr(element, "alt") {
                            code.push_str(&alt);
                        }
                    }
                    _ => {
                        let mut inner: Vec<NodeRef> = node.children().collect();
                        inner.reverse();
                        stack.extend(inner);
                    }
                }
            }
            NodeData::Document | NodeData::Other => {}
        }
    }
    code
}

/// What an `href` points at: `None` when the link is to be shown as its text (room
/// pills, which mean nothing elsewhere, and addresses no one could open).
fn link_target(href: &str) -> Option<Target> {
    let id = MatrixToUri::parse(href)
        .map(|uri| uri.id().clone())
        .or_else(|_| MatrixUri::parse(href).map(|uri| uri.id().clone()));
    match id {
        Ok(MatrixId::User(user_id)) => return Some(Target::User(user_id.to_string())),
        Ok(MatrixId::Room(_) | MatrixId::RoomAlias(_)) => return None,
        // An event permalink is a link worth keeping.
        Ok(_) => return Some(Target::Url(href.to_owned())),
        Err(_) => {}
    }
    let (scheme, _) = href.split_once(':')?;
    LINK_SCHEMES
        .iter()
        .any(|allowed| scheme.eq_ignore_ascii_case(allowed))
        .then(|| Target::Url(href.to_owned()))
}
