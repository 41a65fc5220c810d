//! Long text split within the budget, without losing anything, every part safe.

use super::safety_tests::{assert_safe, shown};
use super::tests::{code_block, link, rich, text, visible};
use super::*;
use switchboard_sdk::{MessageStyle, Span, TextRules};

fn split(content: &RichText, budget: usize) -> Vec<String> {
    DISCORD_TEXT
        .render(content, MessageStyle::Normal, "", Some(budget))
        .into_iter()
        .map(|part| part.body)
        .collect()
}

#[test]
fn lines_go_together_and_long_lines_split_at_spaces_with_styles_closed() {
    let content = rich(vec![text("one\ntwo\n", ""), text("bold words here", "b")]);
    assert_eq!(
        split(&content, 16),
        vec!["one\ntwo", "**bold words**", " **here**"]
    );
}

#[test]
fn long_text_splits_into_full_parts_that_keep_everything() {
    for unit in ["word ", "é", "😀 ", "*", "<@1> ", "@everyone "] {
        let long = unit.repeat(5000 / unit.len() + 7);
        let content = RichText::plain(long.trim_end());
        let parts = split(&content, MAX_MESSAGE_BYTES);
        assert!(parts.len() >= 2, "{unit:?}");
        let mut seen = String::new();
        for (k, part) in parts.iter().enumerate() {
            assert!(part.len() <= MAX_MESSAGE_BYTES, "{unit:?}");
            let full = k + 1 == parts.len() || part.len() > MAX_MESSAGE_BYTES * 9 / 10;
            assert!(full, "{unit:?}: {}", part.len());
            assert_safe(part, &unit);
            seen.push_str(&visible(&parse(part, &NoNames)));
        }
        let want: String = long.split_whitespace().collect();
        let got: String = seen.split_whitespace().collect();
        assert_eq!(got, want, "{unit:?}");
    }
}

#[test]
fn a_long_styled_line_with_markup_is_split_in_linear_time() {
    let unit = [
        text("bold ", "b"),
        text("< a * b _ c [d] ", ""),
        text("code` ", "m"),
        link("https://x.test/a_b", "https://x.test/a_b", "i"),
        text(" @everyone <@1> ", "s"),
    ];
    let content = rich(unit.iter().cycle().take(5 * 2000).cloned().collect());
    let started = std::time::Instant::now();
    let parts = split(&content, MAX_MESSAGE_BYTES);
    let whole = render(&content);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(parts.len() > 50);
    for part in &parts {
        assert!(part.len() <= MAX_MESSAGE_BYTES);
        assert_safe(part, &"long");
    }
    assert_safe(&whole, &"long");
    assert_eq!(shown(&parse(&whole, &NoNames)), shown(&content));
}

#[test]
fn long_code_blocks_are_refenced_in_each_part() {
    let code = (0..400)
        .map(|n| format!("line {n} ``` <@{n}>"))
        .collect::<Vec<_>>()
        .join("\n");
    let parts = split(
        &rich(vec![code_block(Some("rust"), &code)]),
        MAX_MESSAGE_BYTES,
    );
    assert!(parts.len() >= 4);
    let mut lines = Vec::new();
    for part in &parts {
        assert!(part.len() <= MAX_MESSAGE_BYTES);
        assert!(
            part.starts_with("```rust\n") && part.ends_with("\n```"),
            "{part:?}"
        );
        assert_safe(part, &"code");
        match parse(part, &NoNames).spans.as_slice() {
            [Span::CodeBlock { code, .. }] => lines.push(code.replace('\u{200B}', "")),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(lines.join("\n"), code);
}

#[test]
fn tiny_budgets_still_send_everything_within_the_budget() {
    let content = rich(vec![
        text("**", "b"),
        code_block(Some("rust"), "let x = `<@1>`;\n@here"),
        link("label", "https://x.test/a", "bi"),
    ]);
    for budget in [1, 16, 17, 23] {
        let parts = split(&content, budget);
        let mut seen = String::new();
        for part in &parts {
            assert!(part.len() <= budget.max(split::MIN_BUDGET), "{part:?}");
            assert_safe(part, &budget);
            seen.push_str(&shown(&parse(part, &NoNames)));
        }
        let seen: String = seen.split_whitespace().collect();
        for word in ["**", "let", "x", "=", "`<@1>`;", "@here", "label"] {
            assert!(seen.contains(word), "{word} in {seen:?} ({budget})");
        }
    }
}

#[test]
fn a_line_longer_than_a_part_of_code_is_cut_between_characters() {
    let code = "ß".repeat(3000);
    let parts = split(&rich(vec![code_block(None, &code)]), MAX_MESSAGE_BYTES);
    assert!(parts.iter().all(|part| part.len() <= MAX_MESSAGE_BYTES));
    let joined: String = parts
        .iter()
        .map(|part| part.trim_start_matches("```\n").trim_end_matches("\n```"))
        .collect();
    assert_eq!(joined, code);
}
