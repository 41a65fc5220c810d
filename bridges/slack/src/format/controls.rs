//! Slack's control characters as a message's `text` carries them: `<...>` control
//! sequences (user, channel and user-group references, special mentions, dates and
//! links) and the three entities `&amp;`, `&lt;` and `&gt;`.
//!
//! Slack writes a literal `&`, `<` or `>` typed by a person as an entity, so a raw
//! `<` in a message always opens a control sequence, which ends at the next `>`.
//! Sequences never span lines; a `<` without its `>` on the same line is kept as
//! text.

use std::borrow::Cow;

/// A name Slack keeps by id, which the adapter looks up (over the Web API) before
/// it parses a message: see [`references`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A user id (`U...`, or `W...` on Enterprise Grid).
    User(String),
    /// A conversation id (`C...`, `G...`).
    Channel(String),
    /// A user group id (`S...`).
    Usergroup(String),
}

/// The names behind ids, as the adapter resolved them; `None` for an id it could
/// not resolve (the parser then falls back to the sequence's own label, or the id).
pub trait Names {
    fn user(&self, id: &str) -> Option<String>;
    fn channel(&self, id: &str) -> Option<String>;
    fn usergroup(&self, id: &str) -> Option<String>;
}

/// What one control sequence is, by the character it starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Control<'a> {
    User {
        id: &'a str,
        label: Option<&'a str>,
    },
    Channel {
        id: &'a str,
        label: Option<&'a str>,
    },
    Usergroup {
        id: &'a str,
        label: Option<&'a str>,
    },
    /// `<!here>`, `<!channel>`, `<!everyone>` and any other `<!word>`.
    Special {
        name: &'a str,
        label: Option<&'a str>,
    },
    /// `<!date^...|fallback>`: the fallback is what clients that cannot format the
    /// date show, and the only reading that needs no time zone.
    Date {
        fallback: Option<&'a str>,
    },
    Link {
        url: &'a str,
        label: Option<&'a str>,
    },
}

/// The control sequence at the start of `text` (which starts with `<`): its inner
/// text and its length with both brackets. `None` when no `>` ends it on this line
/// before another `<` starts.
pub(super) fn control_at(text: &str) -> Option<(&str, usize)> {
    let inner = &text[1..];
    let end = inner.find(['>', '<', '\n'])?;
    (inner.as_bytes()[end] == b'>').then(|| (&inner[..end], end + 2))
}

/// Classifies a sequence's inner text; `None` for one that is not well formed
/// (`<@>`, `<#a b>`), which is then shown as written.
pub(super) fn classify(inner: &str) -> Option<Control<'_>> {
    let (target, label) = match inner.split_once('|') {
        Some((target, label)) => (target, Some(label)),
        None => (inner, None),
    };
    if let Some(id) = target.strip_prefix('@') {
        return is_id(id).then_some(Control::User { id, label });
    }
    if let Some(id) = target.strip_prefix('#') {
        return is_id(id).then_some(Control::Channel { id, label });
    }
    if let Some(command) = target.strip_prefix('!') {
        if let Some(id) = command.strip_prefix("subteam^") {
            return is_id(id).then_some(Control::Usergroup { id, label });
        }
        if command.starts_with("date^") {
            return Some(Control::Date { fallback: label });
        }
        // `<!here|here>` and the older `<!channel^...>` forms carry extra parts.
        let name = command.split('^').next().unwrap_or_default();
        return (!name.is_empty()).then_some(Control::Special { name, label });
    }
    (!target.is_empty()).then_some(Control::Link { url: target, label })
}

fn is_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The user, channel and user-group references in a Slack message `text`, each id
/// once, in the order they first appear, so the adapter can look their names up
/// before [`super::parse`]. Code blocks count too: clients show names there as well.
pub fn references(text: &str) -> Vec<Reference> {
    let mut found: Vec<Reference> = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find('<') {
        let at = from + offset;
        from = at + 1;
        let Some((inner, len)) = control_at(&text[at..]) else {
            continue;
        };
        from = at + len;
        let reference = match classify(inner) {
            Some(Control::User { id, .. }) => Reference::User(id.to_owned()),
            Some(Control::Channel { id, .. }) => Reference::Channel(id.to_owned()),
            Some(Control::Usergroup { id, .. }) => Reference::Usergroup(id.to_owned()),
            _ => continue,
        };
        if !found.contains(&reference) {
            found.push(reference);
        }
    }
    found
}

/// The entity at the start of `text` (which starts with `&`) that Slack writes for
/// a literal character: the character and the entity's length.
pub(super) fn entity_at(text: &str) -> Option<(char, usize)> {
    [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>')]
        .into_iter()
        .find(|(entity, _)| text.starts_with(entity))
        .map(|(entity, c)| (c, entity.len()))
}

/// `text` with Slack's three entities decoded (others are not Slack's: kept).
pub(super) fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match entity_at(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Writes `c` as Slack needs it written to show literally.
pub(super) fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

/// `text` with `&`, `<` and `>` escaped.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}
