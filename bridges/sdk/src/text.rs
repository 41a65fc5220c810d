//! Text helpers shared by adapters: splitting within a byte budget, name guards, and
//! finding bare URLs.

use crate::rich::{RichText, Span};
use std::ops::Range;

/// Splits `text` into pieces of at most `budget` bytes each, never inside a UTF-8
/// character, preferring to break after whitespace. Newlines are not special here:
/// split lines first. A budget of 0 is treated as 1 character per piece.
pub fn split_to_byte_budget(text: &str, budget: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > budget {
        let mut cut = floor_char_boundary(rest, budget);
        if cut == 0 {
            // One character wider than the budget: send it alone rather than loop.
            cut = rest
                .chars()
                .next()
                .map(char::len_utf8)
                .unwrap_or(rest.len());
        } else if let Some(space) = rest[..cut].rfind(char::is_whitespace)
            && space > cut / 2
        {
            // Break after the space, but only when that keeps the piece reasonably full.
            cut = space
                + rest[space..]
                    .chars()
                    .next()
                    .map(char::len_utf8)
                    .unwrap_or(1);
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// Inserts `guard` (an invisible character) after the first character of `name`, so
/// a relayed name reads the same but does not notify the local user who has it.
pub fn guard_name(name: &str, guard: char) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if !chars.as_str().is_empty() => format!("{first}{guard}{}", chars.as_str()),
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
    fn short_text_is_one_piece() {
        assert_eq!(split_to_byte_budget("hello", 10), vec!["hello"]);
        assert_eq!(split_to_byte_budget("", 10), vec![""]);
    }

    #[test]
    fn prefers_word_boundaries() {
        let pieces = split_to_byte_budget("aaaa bbbb cccc", 10);
        assert_eq!(pieces, vec!["aaaa bbbb ", "cccc"]);
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
