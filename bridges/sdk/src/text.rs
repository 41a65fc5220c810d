//! Text helpers shared by adapters: splitting within a byte budget, name guards, and
//! finding bare URLs.

use crate::rich::{RichText, Span};
use std::ops::Range;

/// Splits `text` into pieces of at most `budget` bytes each, never inside a UTF-8
/// character, preferring to break before whitespace (see [`first_piece_len`]), so
/// the pieces join back to `text`. Newlines are not special here: split lines first.
/// A budget of 0 is treated as 1 character per piece. Linear in `text`'s length.
pub fn split_to_byte_budget(text: &str, budget: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > budget {
        let cut = first_piece_len(rest, budget);
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// The length of the first piece when `text` is split to `budget` bytes: all of it
/// when it fits; else never inside a UTF-8 character (one character wider than the
/// budget goes alone) and, where a word boundary keeps the piece over half full,
/// just before the whitespace, which then starts the next piece. Servers strip
/// trailing spaces from a line (ngircd does) but keep leading ones, so a space at
/// the end of a piece would be lost and the words either side of it glued together.
/// Looks at no more than `budget` bytes (plus a whitespace run it ends inside), so
/// splitting a whole text this way is linear.
pub fn first_piece_len(text: &str, budget: usize) -> usize {
    if text.len() <= budget {
        return text.len();
    }
    let cut = floor_char_boundary(text, budget);
    if cut == 0 {
        return text.chars().next().map_or(text.len(), char::len_utf8);
    }
    let half = floor_char_boundary(text, cut / 2);
    let space = if text[cut..].starts_with(is_break) {
        Some(cut)
    } else {
        text[half..cut]
            .rfind(is_break)
            .map(|offset| half + offset)
            .filter(|position| *position > half)
    };
    let Some(mut start) = space else {
        return cut;
    };
    // Back to the start of the whitespace run, so no piece ends with whitespace.
    while let Some(before) = text[..start].chars().next_back().filter(|c| is_break(*c)) {
        start -= before.len_utf8();
    }
    if start == 0 { cut } else { start }
}

/// Whitespace a line may be broken at (not the no-break spaces).
fn is_break(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{A0}' | '\u{2007}' | '\u{202F}')
}

/// The route's label as networks with markup show it in the text. The IRC-style
/// `<alice> ` (the default nick template) becomes `alice: `, and `alice ` in a `/me`
/// message ("alice waves"): in markup `<` needs escaping, and notifications and
/// previews show a message's raw text, escapes included. A colon needs no escape
/// anywhere in a line, unlike `[alice]` (link brackets) or `**alice**`. Other
/// templates are the operator's choice and go in as written.
pub fn label_in_text(template_label: &str, style: crate::MessageStyle) -> String {
    let name = template_label
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix("> "))
        .filter(|name| !name.is_empty() && !name.contains(['<', '>']));
    match (name, style) {
        (Some(name), crate::MessageStyle::Action) => format!("{name} "),
        (Some(name), _) => format!("{name}: "),
        (None, _) => template_label.to_owned(),
    }
}

/// Puts all text and links of `rich` in italics: how networks with markup show a
/// `/me` message (as their own `/me` does).
pub fn italicise(rich: &mut RichText) {
    for span in &mut rich.spans {
        if let Span::Text { style, .. } | Span::Link { style, .. } = span {
            style.italic = true;
        }
    }
}

/// A mention from another network as plain text: `@name` for a person with an id
/// there (a native mention would name someone else here), a name without one as it
/// is.
pub fn mention_text(name: &str, user_id: Option<&str>) -> String {
    match user_id {
        Some(_) if !name.starts_with('@') => format!("@{name}"),
        _ => name.to_owned(),
    }
}

/// A message as networks that write markup into one text show it: the route's
/// label first ([`label_in_text`]), mentions from other networks as plain text
/// ([`mention_text`]), and a `/me` message all in italics ([`italicise`]).
pub fn with_label_in_text(content: &RichText, style: crate::MessageStyle, label: &str) -> RichText {
    let mut rich = RichText::default();
    if !label.is_empty() {
        rich.push_text(label_in_text(label, style), crate::Style::default());
    }
    for span in &content.spans {
        match span {
            Span::Mention { name, user_id } => {
                rich.push_text(
                    mention_text(name, user_id.as_deref()),
                    crate::Style::default(),
                );
            }
            other => rich.push(other.clone()),
        }
    }
    if style == crate::MessageStyle::Action {
        italicise(&mut rich);
    }
    rich
}

/// Whether a secret given by a caller (a webhook token) equals the expected one,
/// compared in constant time; an empty expected secret matches nothing. The length
/// is not secret.
pub fn secret_matches(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Inserts `invisible` (a zero-width character) after the first character of
/// `name`, so a relayed name reads the same but does not notify the local user who
/// has it.
pub fn name_without_ping(name: &str, invisible: char) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if !chars.as_str().is_empty() => {
            format!("{first}{invisible}{}", chars.as_str())
        }
        _ => name.to_owned(),
    }
}

/// The first bare http(s) URL in `text`, as chat autolinkers see it: not glued to a
/// preceding word, ending at whitespace or `<>`, without trailing punctuation or an
/// unbalanced `)`.
pub fn find_url(text: &str) -> Option<Range<usize>> {
    let mut from = 0;
    while let Some(found) = text[from..].find("http") {
        let start = from + found;
        from = start + 4;
        let rest = &text[start..];
        let scheme = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            continue;
        };
        if text[..start].ends_with(char::is_alphanumeric) {
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '<' || c == '>')
            .unwrap_or(rest.len());
        let len = trim_url_end(&rest[..end]);
        if len > scheme {
            return Some(start..start + len);
        }
    }
    None
}

fn trim_url_end(mut url: &str) -> usize {
    loop {
        let trailing = match url.chars().last() {
            Some('.' | ',' | ';' | ':' | '!' | '?' | '*' | '_' | '~' | '\'' | '"') => true,
            Some(')') => url.matches(')').count() > url.matches('(').count(),
            _ => false,
        };
        if !trailing {
            return url.len();
        }
        url = &url[..url.len() - 1];
    }
}

/// Turns every bare URL in the plain-text spans of `rich` into a link, as chat
/// clients do when they show a message. Code (monospace) is left alone.
pub fn link_bare_urls(rich: RichText) -> RichText {
    let mut out = RichText::default();
    for span in rich.spans {
        match span {
            Span::Text { text, style } if !style.monospace => {
                let mut rest = text.as_str();
                while let Some(found) = find_url(rest) {
                    out.push_text(&rest[..found.start], style);
                    let url = &rest[found.clone()];
                    out.push(Span::Link {
                        text: url.to_owned(),
                        url: url.to_owned(),
                        style,
                    });
                    rest = &rest[found.end..];
                }
                out.push_text(rest, style);
            }
            other => out.push(other),
        }
    }
    out
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly_and_empty_matches_nothing() {
        assert!(secret_matches("abc", "abc"));
        assert!(!secret_matches("abd", "abc"));
        assert!(!secret_matches("ab", "abc"));
        assert!(!secret_matches("", ""));
    }

    #[test]
    fn irc_style_labels_become_names_with_a_colon() {
        use crate::MessageStyle::{Action, Normal};
        assert_eq!(label_in_text("<alice> ", Normal), "alice: ");
        assert_eq!(label_in_text("<alice> ", Action), "alice ");
        assert_eq!(label_in_text("[irc] alice: ", Normal), "[irc] alice: ");
        assert_eq!(label_in_text("<<x>> ", Normal), "<<x>> ");
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_to_byte_budget("hello", 10), vec!["hello"]);
        assert_eq!(split_to_byte_budget("", 10), vec![""]);
    }

    #[test]
    fn prefers_word_boundaries_and_keeps_each_space_at_the_start_of_a_piece() {
        let pieces = split_to_byte_budget("aaaa bbbb cccc", 10);
        assert_eq!(pieces, vec!["aaaa bbbb", " cccc"]);
        // A boundary right after the budget is used too.
        assert_eq!(
            split_to_byte_budget("aaaa bbbb cc", 9),
            vec!["aaaa bbbb", " cc"]
        );
        // A run of spaces moves whole, so no piece ends with one (servers strip them).
        assert_eq!(
            split_to_byte_budget("aaaa bb   cccc", 10),
            vec!["aaaa bb", "   cccc"]
        );
        let text = "é crème brûlée ".repeat(50);
        for budget in 8..40 {
            let pieces = split_to_byte_budget(&text, budget);
            assert_eq!(pieces.concat(), text, "budget {budget}");
            for piece in &pieces[..pieces.len() - 1] {
                assert!(
                    !piece.ends_with(' '),
                    "budget {budget}: {piece:?} ends with a space"
                );
            }
        }
    }

    #[test]
    fn no_break_spaces_are_not_break_points() {
        assert_eq!(
            split_to_byte_budget("aaaa\u{A0}bbbbbb", 8),
            vec!["aaaa\u{A0}bb", "bbbb"]
        );
    }

    #[test]
    fn a_megabyte_without_spaces_is_cut_into_full_pieces() {
        let text = "x".repeat(1 << 20);
        let pieces = split_to_byte_budget(&text, 400);
        assert_eq!(pieces.concat(), text);
        assert_eq!(pieces.len(), (1usize << 20).div_ceil(400));
    }

    #[test]
    fn never_splits_inside_a_character_and_loses_nothing() {
        let text = "żółć€😀".repeat(40);
        for budget in 1..20 {
            let pieces = split_to_byte_budget(&text, budget);
            assert_eq!(pieces.concat(), text, "budget {budget}");
            for piece in &pieces {
                assert!(
                    piece.len() <= budget.max(4),
                    "piece {piece:?} over budget {budget}"
                );
            }
        }
    }

    #[test]
    fn long_word_is_hard_split() {
        let text = "x".repeat(25);
        let pieces = split_to_byte_budget(&text, 10);
        assert_eq!(pieces, vec!["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
    }
}
