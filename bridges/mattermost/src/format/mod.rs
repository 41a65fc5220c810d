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
//! leaves `@` (mentions of a person must notify) and zero-width characters alone;
//! then the final markdown goes through [`guard_mass_mentions`], so nothing relayed
//! notifies a whole channel (see `mentions.rs` for the server's rule). It degrades
//! as follows: underline and colours have no markdown and are dropped; a mention
//! becomes `@name`; spaces at the start and end of a line are dropped (four of them
//! would start a code block) and those at the ends of inline code move outside it;
//! blank lines come back as a single line break when parsed; and where CommonMark's
//! flanking rules cannot express a style (`a**(b)**c` is not bold) that run is sent
//! without the style rather than with stray markers.

mod mentions;
mod parse;
mod render;
#[cfg(test)]
mod tests;

use switchboard_sdk::text::{italicise, label_in_text, split_to_byte_budget};
use switchboard_sdk::{FinalText, MessageStyle, RichText, TextRules};

/// How Mattermost writes relayed text, for the core's delivery policy: markdown,
/// the label before the text in a form that needs no escaping, `/me` posts in
/// emphasis, split where the budget says, and no `@channel`/`@all`/`@here` the
/// server would act on.
#[derive(Debug, Default)]
pub struct MattermostText;

impl TextRules for MattermostText {
    fn name(&self) -> &'static str {
        "mattermost"
    }

    fn render(
        &self,
        content: &RichText,
        style: MessageStyle,
        label: &str,
        budget: Option<usize>,
    ) -> Vec<FinalText> {
        let mut content = content.clone();
        if !label.is_empty() {
            content.prepend_plain(&label_in_text(label, style));
        }
        if style == MessageStyle::Action {
            // A `/me` post's text is stored in emphasis, as Mattermost's `/me` does.
            italicise(&mut content);
        }
        let markdown = render::render(&content);
        match budget {
            None => vec![FinalText::plain(markdown)],
            Some(budget) => split_to_byte_budget(&markdown, budget)
                .into_iter()
                .map(FinalText::plain)
                .collect(),
        }
    }

    fn guard_mentions(&self, part: FinalText) -> FinalText {
        FinalText::plain(guard_mass_mentions(&part.body))
    }

    fn notifies_room(&self, part: &FinalText) -> bool {
        notifies_channel(&part.body)
    }

    fn name_without_ping(&self, name: &str) -> String {
        switchboard_sdk::text::name_without_ping(name, '\u{200D}')
    }
}

/// Parses a Mattermost post message (Mattermost-flavoured markdown) into rich text.
pub fn parse(markdown: &str) -> RichText {
    parse::parse(markdown)
}

/// Renders rich text as Mattermost markdown that shows exactly the same text, with
/// every `@channel`, `@all` and `@here` the server would act on broken by U+200B.
pub fn render(rich: &RichText) -> String {
    guard_mass_mentions(&render::render(rich))
}

/// Final markdown with U+200B after the `@` of every mention the Mattermost server
/// would turn into a notification of the whole channel (`@channel`, `@all`,
/// `@here`, however escaped or wrapped in markdown). Run it on exactly what is
/// sent: a part of a split post reads differently from the whole.
pub fn guard_mass_mentions(markdown: &str) -> String {
    mentions::guard(markdown)
}

/// Whether the Mattermost server would notify the whole channel for this markdown.
pub fn notifies_channel(markdown: &str) -> bool {
    mentions::has_mass_mention(markdown)
}
