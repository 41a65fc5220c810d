//! Matrix message content <-> the core's rich text.
//!
//! Owns both directions for `m.room.message`: reading `formatted_body` (the
//! `org.matrix.custom.html` subset, parsed by ruma-html, i.e. html5ever) or else the
//! plain `body`, and writing a `body` plus, when there is something to format, a
//! `formatted_body`. The reply fallback is dropped on the way in: `<mx-reply>` in HTML
//! always (clients never show it), the leading `> ` lines of a plain body only when
//! the event is a reply. HTML that shows nothing falls back to the body.
//!
//! Parsing maps `<b>`/`<strong>`, `<i>`/`<em>`, `<u>`, `<del>`/`<s>`/`<strike>` and
//! `<code>` onto the model's styles, `<pre>` onto a code block (with the language of
//! `class="language-x"`), `<a href>` onto a link, and bare http(s) URLs in text onto
//! links. A user pill becomes a mention whose name is the pill's text, so other
//! networks show a name and never ping; a room pill is just its text, an event
//! permalink stays a link, and a link no one could open (`javascript:`, relative) is
//! its text. Structure the model has no room for stays readable as text: `<br>` and
//! block boundaries are one `\n`, list items get `- ` / `1. `, quoted lines `> `,
//! headings turn bold, table cells are joined by ` | `, `<hr>` is `---`, an image is
//! its alt text. Colours, spoilers and unknown tags keep just their text. Whitespace
//! collapses as a browser shows it, and a non-breaking space reads as a space (the
//! other half of how rendering keeps spaces).
//!
//! Rendering escapes everything, so text from other networks shows literally: a
//! mention is its name as text, never a pill (relayed names must not notify), and
//! every `@room` in the final `body` and `formatted_body` gets U+200B after its `@`
//! (see `mentions.rs`; URLs and code stay intact). It degrades
//! as follows: colours are dropped; link text is one line; spaces HTML would collapse
//! (runs, and those at the ends of a line) are written as `&nbsp;`, while tabs
//! outside code blocks show as a space. A message with no styles, links or code
//! blocks gets no `formatted_body` at all, so simple messages stay simple.

mod mentions;
mod parse;
mod render;
#[cfg(test)]
mod tests;

use switchboard_sdk::{FinalText, MessageStyle, RichText, TextRules};

/// How Matrix writes relayed text, for the core's delivery policy: a `body` and,
/// when there is formatting, a `formatted_body`, the label before the text, never
/// split, and no `@room` a legacy push rule would act on in either.
#[derive(Debug, Default)]
pub struct MatrixText;

impl TextRules for MatrixText {
    fn name(&self) -> &'static str {
        "matrix"
    }

    fn render(
        &self,
        content: &RichText,
        _style: MessageStyle,
        label: &str,
        _budget: Option<usize>,
    ) -> Vec<FinalText> {
        let mut content = content.clone();
        content.prepend_plain(label);
        let (body, html) = render::render(&content);
        vec![FinalText { body, html }]
    }

    fn guard_mentions(&self, part: FinalText) -> FinalText {
        FinalText {
            body: mentions::guard_body(&part.body),
            html: part.html.map(|html| mentions::guard_html(&html)),
        }
    }

    fn notifies_room(&self, part: &FinalText) -> bool {
        mentions::body_notifies_room(&part.body)
            || part
                .html
                .as_ref()
                .is_some_and(|html| mentions::guard_html(html) != *html)
    }

    fn name_without_ping(&self, name: &str) -> String {
        // Element highlights a message containing a user's display name.
        switchboard_sdk::text::name_without_ping(name, '\u{200D}')
    }
}

/// An inbound m.room.message's text as rich text: `formatted_body` (format
/// org.matrix.custom.html) when present, else `body`. The reply fallback is removed
/// from both (`<mx-reply>...</mx-reply>` in HTML; leading lines starting with "> "
/// followed by one empty line in the plain body, only when the event is a reply -
/// pass `is_reply`).
pub fn parse(body: &str, formatted_html: Option<&str>, is_reply: bool) -> RichText {
    parse::parse(body, formatted_html, is_reply)
}

/// What to send: the plain `body` and, when the text has any formatting/links/code,
/// the HTML `formatted_body`.
/// Both are guarded: no `@room` in them can notify the room.
pub fn render(rich: &RichText) -> (String, Option<String>) {
    let (body, html) = render::render(rich);
    (
        mentions::guard_body(&body),
        html.map(|html| mentions::guard_html(&html)),
    )
}

/// Whether a legacy push rule (`@room` as a word in `body`) would notify the room.
pub fn body_notifies_room(body: &str) -> bool {
    mentions::body_notifies_room(body)
}
