//! Discord markdown <-> the core's rich text.
//!
//! Parsing ([`parse`]) reads a message's `content` the way Discord's client does
//! (its markdown descends from simple-markdown; `parse.rs` states the rules used):
//! `**bold**`, `*italic*` / `_italic_`, `__underline__`, `~~strike~~`, inline code
//! and fenced code blocks, masked links `[text](url)`, bare and `<url>` links, and
//! backslash escapes. Discord's references are named: `<@id>` / `<@!id>` become a
//! [`Span::Mention`] named through [`Names`] (look the ids up first with
//! [`references`]), `<@&id>` the text `@role`, `<#id>` `#channel`, `</cmd:id>`
//! `/cmd`, custom emoji `:name:`, and `<t:unix:style>` a readable UTC time.
//! `@everyone` and `@here` stay text.
//!
//! Structure the model has no room for stays readable as text:
//! * Underline maps onto [`Style::underline`] (the model has it).
//! * Spoilers `||x||` keep their bars as text around the (styled) content: the
//!   model has no spoiler, and dropping the bars would reveal the text without any
//!   sign that it was meant to be hidden; other networks' readers know the bars.
//! * Headings (`#`, `##`, `###`) become bold lines without the hashes; subtext
//!   (`-# `) loses its marker; list items keep a `- ` (or their number); quoted
//!   lines keep `> ` (a `>>> ` quote puts `> ` before each of its lines).
//!
//! Rendering ([`DISCORD_TEXT`], [`render`]) writes markdown that shows the same
//! text: rich text becomes lines of pieces (`pieces.rs`), each line is written
//! with literal markup escaped by backslashes, read back with the parser and
//! written again more carefully (or with fewer styles) when it would not show as
//! meant (`render.rs`); bare links as written (or `<url>`), masked links where the
//! text differs; code blocks fenced, with any run of three backticks inside broken
//! by U+200B; mentions from other networks as plain `@name`; colours dropped.
//! Long text is cut into parts of the byte budget (`split.rs`): between lines
//! where it can, never inside an escape, styles closed in each part and code
//! blocks re-fenced. Then the guard (`mentions.rs`) makes sure nothing in the
//! final text can ping anyone.
//!
//! Zero-width characters, and where: U+200B after the `@` of `@everyone` /
//! `@here` and after the `<` of `<@`, `<#`, `</` (the guard), between closing and
//! opening style markers, inside runs of backticks in code; U+200D inside a
//! relayed name ([`TextRules::name_without_ping`]). Parsing keeps them (they are
//! invisible), so tests compare visible text without them.

mod mentions;
mod parse;
mod pieces;
mod refs;
mod render;
#[cfg(test)]
mod safety_tests;
mod scan;
mod split;
#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod tests;

pub use refs::{Names, NoNames, Reference, references};

use switchboard_sdk::{MarkupInText, RichText};

/// The longest `content` the adapter sends in one message, in bytes. Discord
/// allows 2000 characters; no character takes less than one byte of UTF-8, so a
/// budget of 2000 bytes can never exceed it.
pub const MAX_MESSAGE_BYTES: usize = 2000;

/// How Discord writes relayed text, for the core's delivery policy: markdown, the
/// label before the text, `/me` messages in italics, split where the budget says,
/// and nothing Discord could turn into a ping.
pub const DISCORD_TEXT: MarkupInText = MarkupInText {
    name: "discord",
    parts: split::parts,
    guard,
    notifies,
};

/// Parses a Discord message `content` into rich text; `names` names the users,
/// roles and channels it refers to (see [`references`]).
pub fn parse(content: &str, names: &dyn Names) -> RichText {
    parse::parse(content, names)
}

/// Renders rich text as one Discord markdown text that shows the same, guarded
/// (not cut to any budget).
pub fn render(rich: &RichText) -> String {
    DISCORD_TEXT.render_whole(rich)
}

/// Final text with U+200B after the `@` of every `@everyone` and `@here` (also
/// written `＠`, in any case, with invisible characters or markers inside), and
/// after the `<` of every `<@`, `<@!`, `<@&`, `<#` and `</`, so that nothing in it
/// can form a mention. Run it on exactly what is sent.
pub fn guard(text: &str) -> String {
    mentions::guard(text)
}

/// Whether Discord could ping anyone for this text (what [`guard`] would change).
pub fn notifies(text: &str) -> bool {
    mentions::notifies(text)
}
