//! The last check on a message's final text: nothing in it that Discord could turn
//! into a ping, of a whole channel or of anyone.
//!
//! Discord pings through `@everyone` and `@here` written as words, and through the
//! references `<@id>` / `<@!id>` (a person), `<@&id>` (a role); `<#id>` (a channel)
//! and `</name:id>` (a command) ping nobody but are references all the same. The
//! adapter also sends `allowed_mentions: {"parse": []}`; the text is made safe on
//! its own regardless.
//!
//! The guard reads generously and edits by inserting U+200B ZERO WIDTH SPACE, which
//! readers do not see:
//! * after every `@`, `＠` or `﹫` that is followed by `everyone` or `here` in any
//!   case, looking through invisible format characters (zero-width ones included)
//!   and markdown markers (`* _ ~ | \` and backticks) before and between the
//!   letters. A U+200B right after the `@` means it is guarded already. `@hereby`
//!   is guarded too: it costs nothing visible and leaves no question of where
//!   Discord ends a word.
//! * after every `<` that is followed (past invisible characters, backslashes and
//!   markers) by `@`, `#` or `/`: a U+200B right after the `<` means guarded
//!   already.
//!
//! Code spans and code blocks are guarded as well (the invisible character shows
//! nowhere), so the guard needs no markdown reading of its own. Guarding twice
//! changes nothing.

/// The character the guard inserts.
pub(super) const ZWSP: char = '\u{200B}';

/// The words after `@` that ping a whole Discord channel.
const MASS_WORDS: [&str; 2] = ["everyone", "here"];

/// `text` with U+200B inserted at every point [`break_points`] finds.
pub(super) fn guard(text: &str) -> String {
    let points = break_points(text);
    if points.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + points.len() * ZWSP.len_utf8());
    let mut copied = 0;
    for point in points {
        out.push_str(&text[copied..point]);
        out.push(ZWSP);
        copied = point;
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether Discord could ping anyone for this text: something [`guard`] would
/// change.
pub(super) fn notifies(text: &str) -> bool {
    !break_points(text).is_empty()
}

/// Byte offsets (ascending) where U+200B goes: right after an `@` that starts a
/// mass mention, or a `<` that starts a reference.
fn break_points(text: &str) -> Vec<usize> {
    if !text.contains(['<', '@', '＠', '﹫']) {
        return Vec::new();
    }
    let mut points = Vec::new();
    for (at, c) in text.char_indices() {
        let after = at + c.len_utf8();
        let rest = &text[after..];
        let unsafe_here = match c {
            '@' | '＠' | '﹫' => mass_word_follows(rest),
            '<' => reference_follows(rest),
            _ => false,
        };
        if unsafe_here {
            points.push(after);
        }
    }
    points
}

/// Whether `everyone` or `here` follows an `@` in `rest` (disguised or not) and
/// no U+200B comes right after the `@`.
pub(super) fn mass_word_follows(rest: &str) -> bool {
    if rest.starts_with(ZWSP) {
        return false;
    }
    let mut letters = rest
        .chars()
        .filter(|&c| !(is_invisible(c) || matches!(c, '*' | '_' | '~' | '|' | '\\' | '`')));
    let head: String = letters.by_ref().take(8).collect();
    MASS_WORDS.iter().any(|word| {
        head.get(..word.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(word))
    })
}

/// Whether a reference (`@`, `#` or `/` after the `<`) follows in `rest` and no
/// U+200B comes right after the `<`.
fn reference_follows(rest: &str) -> bool {
    if rest.starts_with(ZWSP) {
        return false;
    }
    rest.chars()
        .find(|&c| !(is_invisible(c) || matches!(c, '*' | '_' | '~' | '|' | '\\' | '`')))
        .is_some_and(|c| matches!(c, '@' | '#' | '/' | '＠' | '﹫'))
}

/// Characters that show nothing (format characters and fillers, U+200B too),
/// which a reader of the text might skip.
pub(super) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{E0000}'..='\u{E0FFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_mass_words_and_references() {
        for (text, guarded) in [
            ("@everyone", "@\u{200B}everyone"),
            ("hi @HERE!", "hi @\u{200B}HERE!"),
            ("＠everyone", "＠\u{200B}everyone"),
            (
                "@ev\u{200D}ery\u{2060}one",
                "@\u{200B}ev\u{200D}ery\u{2060}one",
            ),
            ("@\u{2060}here", "@\u{200B}\u{2060}here"),
            ("@**everyone**", "@\u{200B}**everyone**"),
            ("\\@everyone", "\\@\u{200B}everyone"),
            ("<@123>", "<\u{200B}@123>"),
            (
                "<@!123> <@&9> <#7> </x:1>",
                "<\u{200B}@!123> <\u{200B}@&9> <\u{200B}#7> <\u{200B}/x:1>",
            ),
            ("\\<@123>", "\\<\u{200B}@123>"),
            ("<\\@123>", "<\u{200B}\\@123>"),
            ("<@\u{200B}everyone>", "<\u{200B}@\u{200B}everyone>"),
        ] {
            assert_eq!(guard(text), guarded, "{text:?}");
            assert!(notifies(text), "{text:?}");
            assert_eq!(guard(guarded), guarded, "{guarded:?}");
            assert!(!notifies(guarded), "{guarded:?}");
        }
    }

    #[test]
    fn leaves_alone_what_pings_nobody() {
        for text in [
            "@every @her @alice a < b <:smile:1> <t:1:f> <https://x.test/>",
            "@\u{200B}everyone <\u{200B}@1>",
            "",
        ] {
            assert_eq!(guard(text), text);
            assert!(!notifies(text), "{text:?}");
        }
    }
}
