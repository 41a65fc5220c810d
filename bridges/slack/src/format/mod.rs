//! Slack mrkdwn <-> the core's rich text, written from Slack's "Formatting text for
//! app surfaces" (mrkdwn, escaping, `<...>` control sequences).
//!
//! Parsing ([`parse`]) reads a message's `text`: `*bold*`, `_italic_`, `~strike~`,
//! `` `code` `` and ```` ```code blocks``` ```` by Slack's flanking rules (see
//! `parse.rs`); quoted lines keep their `> ` as text; `&amp;`, `&lt;` and `&gt;`
//! are decoded; `<url|text>` becomes a link; `<@U...>` a mention named through
//! [`Names`] (look the ids up first with [`references`]); channels, user groups,
//! `<!here>`-style mentions and dates become the text a Slack reader sees.
//!
//! Rendering ([`SLACK_TEXT`], [`render`]) writes mrkdwn for `chat.postMessage` and
//! incoming webhooks that shows the same text: `&`, `<` and `>` escaped, so nothing
//! relayed forms a control sequence; literal markers kept literal with U+200B ZERO
//! WIDTH SPACE (Slack has no backslash escape; see `render.rs`); styles written
//! where mrkdwn can show them and dropped where it cannot (mid-word); mentions from
//! other networks as plain `@name` (never `<@...>`). Long text is cut into parts
//! of the byte budget (`split.rs`): between lines where it can, never inside an
//! entity or a link, each part with its styles closed. Then the guard
//! (`mentions.rs`) makes sure nothing in the final text notifies anyone.
//!
//! Slack does not publish its flanking rules. `parse.rs` states the reading used
//! here (markers at word boundaries, text right inside them), and the renderer
//! writes for that reading with a margin: see `render.rs` on literal markers.
//!
//! Zero-width characters, and where: U+200B around a literal `*`, `_`, `~` or
//! `` ` `` that could pair, before a `>` that would start a quote, inside runs of
//! three backticks, and after the `@` of `@here`, `@channel` and `@everyone`;
//! U+200D inside a relayed name ([`TextRules::name_without_ping`]). Parsing keeps
//! them (they are invisible), so tests compare visible text without them.

mod controls;
mod line;
mod mentions;
mod parse;
mod render;
mod split;
#[cfg(test)]
mod tests;

pub use controls::{Names, Reference, references};
pub use render::NoNames;

use switchboard_sdk::{MarkupInText, RichText};

/// The longest `text` the adapter sends in one message, in bytes. Slack truncates
/// a message's text past 40,000 characters; however Slack counts them (code points
/// or UTF-16 units, before or after decoding entities), none takes less than one
/// byte of UTF-8, so 40,000 bytes can never be cut short.
pub const MAX_MESSAGE_BYTES: usize = 40_000;

/// How Slack writes relayed text, for the core's delivery policy: mrkdwn, the label
/// before the text, `/me` messages in italics, split where the budget says, and no
/// command or mass mention Slack would act on.
pub const SLACK_TEXT: MarkupInText = MarkupInText {
    name: "slack",
    parts: split::parts,
    guard,
    notifies,
};

/// Parses a Slack message `text` into rich text; `names` names the users, channels
/// and user groups it refers to (see [`references`]).
pub fn parse(text: &str, names: &dyn Names) -> RichText {
    parse::parse(text, names)
}

/// Renders rich text as one mrkdwn text that shows the same, guarded.
pub fn render(rich: &RichText) -> String {
    SLACK_TEXT.render_whole(rich)
}

/// Final mrkdwn with every command Slack would act on escaped (`<!channel>`,
/// `<!here>`, `<!everyone>`, `<!subteam^...>`, `<@U...>`, `<#C...>`: any `<` that
/// does not open a link) and U+200B after the `@` of every bare `@channel`,
/// `@here` and `@everyone`. Run it on exactly what is sent.
pub fn guard(text: &str) -> String {
    mentions::guard(text)
}

/// Whether Slack could notify anyone for this text (what [`guard`] would change).
pub fn notifies(text: &str) -> bool {
    mentions::notifies(text)
}
