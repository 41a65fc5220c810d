//! The last check on a message's final mrkdwn: nothing in it that Slack would turn
//! into a notification, of a whole channel or of anyone.
//!
//! Slack notifies through control sequences: `<!channel>`, `<!here>`,
//! `<!everyone>`, `<!subteam^S...>` (a user group), `<@U...>` / `<@W...>` (a
//! person), and it links channels with `<#C...>`. The renderer escapes every `<` it
//! does not put in itself, so these can only reach the guard through text written
//! elsewhere; the guard escapes any `<` that does not open a link with a URL
//! scheme (`<https:`, `<mailto:`), which is all the renderer ever writes. A link's
//! address is left as it is: Slack reads no mentions there.
//!
//! Bare words notify too where Slack resolves them (`link_names`, and clients that
//! highlight `@here` as typed): `@channel`, `@here` and `@everyone`, in any case.
//! The guard puts U+200B ZERO WIDTH SPACE right after the `@`, whatever follows
//! the word: `@heredoc` is guarded too, which costs nothing visible and leaves no
//! question of where Slack ends a word. It reads generously: the `@` may also be
//! written `＠`, `﹫` or as an HTML reference (`&#64;`, `&commat;`), and invisible
//! format characters and style markers between the `@` and the word are looked
//! through; a U+200B already there counts as guarded. So guarding twice changes
//! nothing.

use super::parse::ZWSP;

/// The words after `@` that notify a whole Slack channel.
pub(super) const MASS_WORDS: [&str; 3] = ["here", "channel", "everyone"];

enum Edit {
    /// A `<` at this byte that must be written `&lt;`.
    Escape(usize),
    /// U+200B goes in at this byte.
    Break(usize),
}

/// `text` with every `<` that would start a command escaped and U+200B after the
/// `@` of every `@channel`, `@here` and `@everyone`.
pub(super) fn guard(text: &str) -> String {
    let edits = edits(text);
    if edits.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + edits.len() * 3);
    let mut copied = 0;
    for edit in edits {
        match edit {
            Edit::Escape(at) => {
                out.push_str(&text[copied..at]);
                out.push_str("&lt;");
                copied = at + 1;
            }
            Edit::Break(at) => {
                out.push_str(&text[copied..at]);
                out.push(ZWSP);
                copied = at;
            }
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether Slack could notify anyone for this text: something [`guard`] would change.
pub(super) fn notifies(text: &str) -> bool {
    !edits(text).is_empty()
}

/// The edits the guard makes, in ascending byte order.
fn edits(text: &str) -> Vec<Edit> {
    if !text.contains(['<', '@', '&', '＠', '﹫']) {
        return Vec::new();
    }
    let mut edits = Vec::new();
    // The address of a link (`<https://x/@here|label>`) is never read for mentions,
    // and must reach Slack as written to stay the same address.
    let mut address_end = 0;
    for (at, c) in text.char_indices() {
        if at < address_end {
            continue;
        }
        let after = at + c.len_utf8();
        match c {
            '<' if opens_link(&text[after..]) => {
                address_end = text[after..]
                    .find(['|', '>'])
                    .map_or(text.len(), |end| after + end);
            }
            '<' => edits.push(Edit::Escape(at)),
            '@' | '＠' | '﹫' if mass_word_follows(&text[after..]) => {
                edits.push(Edit::Break(after))
            }
            '&' => {
                if let Some(len) = at_sign_reference(&text[at..])
                    && mass_word_follows(&text[at + len..])
                {
                    edits.push(Edit::Break(at + len));
                }
            }
            _ => {}
        }
    }
    edits
}

/// Whether text after a `<` is a URL scheme and its colon.
fn opens_link(rest: &str) -> bool {
    let bytes = rest.as_bytes();
    let scheme = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
        .count();
    bytes.first().is_some_and(u8::is_ascii_alphabetic) && bytes.get(scheme) == Some(&b':')
}

/// The length of an HTML character reference for an at sign at the start of `text`.
fn at_sign_reference(text: &str) -> Option<usize> {
    let end = text.bytes().take(12).position(|b| b == b';')?;
    let name = &text[1..end];
    let value = if let Some(number) = name.strip_prefix('#') {
        match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        }
    } else if name == "commat" {
        u32::from('@')
    } else {
        return None;
    };
    matches!(char::from_u32(value)?, '@' | '＠' | '﹫').then_some(end + 1)
}

/// Whether a mass-mention word starts `rest`, past invisible characters and style
/// markers. A U+200B on the way means the word is guarded already.
fn mass_word_follows(rest: &str) -> bool {
    let mut start = 0;
    for c in rest.chars() {
        if c == ZWSP {
            return false;
        }
        if !(is_invisible(c) || matches!(c, '*' | '_' | '~' | '`')) {
            break;
        }
        start += c.len_utf8();
    }
    let rest = &rest[start..];
    MASS_WORDS.iter().any(|word| {
        rest.get(..word.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(word))
    })
}

/// Characters that show nothing (format characters and fillers), which a reader
/// of the text might skip.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200C}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{E0000}'..='\u{E0FFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_commands_and_mass_words() {
        for (text, guarded) in [
            ("<!channel>", "&lt;!channel>"),
            ("<@U1|a> <#C1>", "&lt;@U1|a> &lt;#C1>"),
            ("<<!here>>", "&lt;&lt;!here>>"),
            ("<https://x.test|@here>", "<https://x.test|@\u{200B}here>"),
            (
                "@HERE, @channel's @everyone",
                "@\u{200B}HERE, @\u{200B}channel's @\u{200B}everyone",
            ),
            ("@*here*", "@\u{200B}*here*"),
            ("@\u{2060}here", "@\u{200B}\u{2060}here"),
            (
                "&#64;here &#x40;channel &commat;everyone",
                "&#64;\u{200B}here &#x40;\u{200B}channel &commat;\u{200B}everyone",
            ),
            ("＠here", "＠\u{200B}here"),
            ("@hereafter", "@\u{200B}hereafter"),
            ("<", "&lt;"),
        ] {
            assert_eq!(guard(text), guarded, "{text:?}");
            assert!(notifies(text), "{text:?}");
            assert_eq!(guard(guarded), guarded, "{guarded:?}");
            assert!(!notifies(guarded), "{guarded:?}");
        }
    }

    #[test]
    fn leaves_alone_what_notifies_nobody() {
        for text in [
            "@her @chan @every1 @alice",
            "@\u{200B}here &lt;!channel&gt; <https://x.test/a> <mailto:a@x.test|a>",
            "a &amp; b &#65;here",
        ] {
            assert_eq!(guard(text), text);
            assert!(!notifies(text), "{text:?}");
        }
    }
}
