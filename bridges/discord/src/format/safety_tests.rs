//! Nothing relayed can ping: hostile text in many shapes, checked on the final
//! parts Discord would receive by a reader independent of the guard; and long
//! text split within the budget without losing anything.

use super::tests::{code_block, link, mention, rich, text, visible};
use super::*;
use switchboard_sdk::final_text::final_parts;
use switchboard_sdk::text::with_label_in_text;
use switchboard_sdk::{Capabilities, MessageStyle, Span, TextFormat};

/// Everything someone might relay to make Discord ping people.
const HOSTILE: &[&str] = &[
    "@everyone",
    "@here",
    "@Everyone",
    "@HERE",
    "@everyone's",
    "hi@here",
    "＠everyone",
    "﹫here",
    "@\u{200D}everyone",
    "@\u{2060}here",
    "@\u{FEFF}everyone",
    "@ev\u{200C}eryone",
    "@e\u{AD}veryone",
    "@*everyone*",
    "@**here**",
    "@_everyone_",
    "@~~here~~",
    "@||everyone||",
    "@`everyone`",
    "\\@everyone",
    "@\\everyone",
    "<@123>",
    "<@!123>",
    "<@&123>",
    "<#123>",
    "</cmd:123>",
    "</cmd sub:123>",
    "<\\@123>",
    "\\<@123>",
    "<<@123>>",
    "<@\u{2060}123>",
    "<\u{2060}@123>",
    "<@123",
    "<",
    "@",
    "`<@123>` and ``@everyone``",
    "```\n<@&1> @here\n```",
    "[@everyone](https://x.test)",
    "[x](https://x.test/@everyone)",
    "https://x.test/@here",
    "<https://x.test/@everyone>",
    "**<@123>** __@here__",
    "> @everyone\n# <@&1>",
    "@everyone @here <@1> <@&2> <#3> </x:4>",
    "\\\\<@123>",
    "<@1><@2><@3>",
    "@@everyone",
    "@\u{200B}@everyone",
];

/// Whether Discord, reading `text` on its own terms, would ping anyone: an
/// `@everyone` or `@here` (in any case, however escaped or wrapped in markers,
/// with `＠` too), or a `<@id>`, `<@!id>`, `<@&id>`, `<#id>` or `</name:id>`
/// reference. Independent of the guard: it reads the text as written, without
/// backslashes, and without markers, and looks for the patterns themselves.
fn discord_would_ping(text: &str) -> bool {
    let folded = text.replace(['＠', '﹫'], "@").to_lowercase();
    let unescaped = folded.replace('\\', "");
    let unmarked: String = unescaped
        .chars()
        .filter(|c| !matches!(c, '*' | '_' | '~' | '|' | '`'))
        .collect();
    for reading in [&folded, &unescaped, &unmarked] {
        if reading.contains("@everyone") || reading.contains("@here") {
            return true;
        }
        for (at, _) in reading.match_indices('<') {
            if reference_at(&reading[at + 1..]) {
                return true;
            }
        }
    }
    false
}

/// Whether a reference follows a `<`: `@` (with `!` or `&`), `#` or `/name:`,
/// digits, `>`.
fn reference_at(rest: &str) -> bool {
    let digits = if let Some(user) = rest.strip_prefix('@') {
        user.strip_prefix(['!', '&']).unwrap_or(user)
    } else if let Some(channel) = rest.strip_prefix('#') {
        channel
    } else if let Some(command) = rest.strip_prefix('/') {
        match command.split_once(':') {
            Some((name, id)) if !name.contains('>') => id,
            _ => return false,
        }
    } else {
        return false;
    };
    let len = digits.bytes().take_while(u8::is_ascii_digit).count();
    len > 0 && digits[len..].starts_with('>')
}

#[test]
fn the_independent_reader_sees_pings() {
    for pinging in [
        "@everyone",
        "x @HERE",
        "\\@everyone",
        "@**here**",
        "<@1>",
        "<@!1>",
    ] {
        assert!(discord_would_ping(pinging), "{pinging:?}");
    }
    for pinging in ["<@&1>", "<#1>", "</a b:1>", "\\<@1>", "＠here"] {
        assert!(discord_would_ping(pinging), "{pinging:?}");
    }
    for safe in [
        "@\u{200B}everyone",
        "<\u{200B}@1>",
        "<@x>",
        "@every one",
        "<@1",
    ] {
        assert!(!discord_would_ping(safe), "{safe:?}");
    }
}

/// `hostile` as relayed content in many shapes, with the label to send it with.
fn forms(hostile: &str) -> Vec<(RichText, String)> {
    let styles = ["b", "", "i", "m", "s", "bi", "u", "bm"];
    let mut forms: Vec<RichText> = vec![
        RichText::plain(hostile),
        RichText::plain(format!("xxxxxxxxxx{hostile}yyyy {hostile}")),
        rich(vec![link(hostile, "https://x.test/a", "")]),
        rich(vec![link("x", &format!("https://x.test/{hostile}"), "b")]),
        rich(vec![link(hostile, hostile, "")]),
        rich(vec![mention(hostile, "u1")]),
        rich(vec![Span::Mention {
            name: hostile.into(),
            user_id: None,
        }]),
        rich(vec![code_block(None, hostile)]),
        rich(vec![code_block(Some("rust"), &format!("```{hostile}```"))]),
        rich(vec![text(hostile, "m")]),
        rich(
            hostile
                .chars()
                .enumerate()
                .map(|(k, c)| text(&c.to_string(), styles[k % styles.len()]))
                .collect(),
        ),
        // Across the 2000-byte boundary, in one byte and in multi-byte text.
        RichText::plain(format!("{}{hostile} tail", "x".repeat(1995))),
        RichText::plain(format!("{}{hostile}", "€".repeat(666))),
        rich(vec![code_block(
            None,
            &format!("{}{hostile}", "y".repeat(1990)),
        )]),
    ];
    for (k, (at, _)) in hostile.char_indices().enumerate().skip(1) {
        let (a, b) = (styles[k % styles.len()], styles[(k + 3) % styles.len()]);
        forms.push(rich(vec![text(&hostile[..at], a), text(&hostile[at..], b)]));
    }
    let mut forms: Vec<(RichText, String)> = forms
        .into_iter()
        .map(|form| (form, String::new()))
        .collect();
    forms.push((RichText::plain("hi"), format!("<{hostile}> ")));
    forms.push((RichText::plain("hi"), hostile.to_owned()));
    forms
}

pub(super) fn assert_safe(part: &str, context: &dyn std::fmt::Debug) {
    assert!(!notifies(part), "{part:?} from {context:?}");
    assert!(!discord_would_ping(part), "{part:?} from {context:?}");
    assert_eq!(guard(part), part, "guard changes {part:?} from {context:?}");
}

#[test]
fn no_final_part_can_ping_anyone() {
    assert!(HOSTILE.len() >= 40);
    let mut checked = 0;
    for hostile in HOSTILE {
        for (content, label) in forms(hostile) {
            for budget in [None, Some(MAX_MESSAGE_BYTES), Some(40)] {
                let long = content.to_plain().len() > 1000;
                if long && budget == Some(40) {
                    continue;
                }
                let capabilities = Capabilities {
                    text: TextFormat::new(DISCORD_TEXT),
                    max_message_bytes: budget,
                    ..Capabilities::default()
                };
                for style in [MessageStyle::Normal, MessageStyle::Action] {
                    let context = (hostile, &content, &label, budget, style);
                    let parts = final_parts(&capabilities, &content, style, &label, true)
                        .unwrap_or_else(|err| panic!("{err} for {context:?}"));
                    for part in &parts {
                        assert_safe(&part.body, &context);
                        let limit = budget.unwrap_or(usize::MAX);
                        assert!(part.body.len() <= limit, "over budget: {context:?}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 5_000, "{checked}");
}

#[test]
fn guard_and_notifies_on_raw_text() {
    for hostile in HOSTILE {
        let guarded = guard(hostile);
        assert_safe(&guarded, hostile);
        assert_eq!(
            visible(&RichText::plain(&guarded)),
            visible(&RichText::plain(*hostile))
        );
    }
}

#[test]
fn hostile_text_still_reads_the_same() {
    for hostile in HOSTILE {
        for content in [
            RichText::plain(*hostile),
            rich(vec![
                text(hostile, "b"),
                text(" and ", ""),
                text(hostile, "m"),
            ]),
            rich(vec![text("x ", "i"), text(hostile, "us")]),
        ] {
            let rendered = render(&content);
            // An address keeps its mass mention's `@` percent-encoded.
            let back = visible(&parse(&rendered, &NoNames)).replace("%40", "@");
            assert_eq!(back, visible(&content), "{rendered:?}");
        }
    }
}

// --- generated ---------------------------------------------------------------

/// A small deterministic generator (a linear congruential one).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "\\é",
    "](",
    "(<",
    ">)",
    "<#1>",
    "<@&2>",
    "```rust\n",
    "# ",
    ">>> ",
    "-# ",
    "\\\n",
    "a",
    "word",
    " ",
    " ",
    "*",
    "**",
    "_",
    "__",
    "~",
    "~~",
    "|",
    "||",
    "`",
    "```",
    "\\",
    ">",
    "> ",
    "# ",
    "- ",
    "1. ",
    "<",
    "<@",
    "123",
    ">",
    "@",
    "everyone",
    "here",
    "＠",
    "[",
    "]",
    "(",
    ")",
    "https://x.test/a_b",
    ":",
    "é",
    "😀",
    "\n",
    "\u{200D}",
    "x_y",
    "<t:1:R>",
];

/// What a reader sees, a link as its text alone.
pub(super) fn shown(rich: &RichText) -> String {
    let mut plain = RichText::default();
    for span in &rich.spans {
        match span {
            Span::Link { text, url, style } => {
                let label = if text.trim().is_empty() { url } else { text };
                plain.push_text(label.replace('\n', " "), *style);
            }
            other => plain.push(other.clone()),
        }
    }
    visible(&plain)
        .replace("%40", "@")
        .replace("%EF%BC%A0", "＠")
        .replace("%EF%B9%AB", "﹫")
}

#[test]
fn generated_rich_text_reads_the_same_and_never_pings() {
    let flags = ["", "", "b", "i", "u", "s", "m", "bi", "us", "bm", "biusm"];
    let mut dice = Dice(7);
    for round in 0..3000 {
        let mut spans = Vec::new();
        for _ in 0..1 + dice.below(8) {
            let words: String = (0..1 + dice.below(6)).map(|_| dice.pick(TOKENS)).collect();
            match dice.below(12) {
                0 => spans.push(link(&words, "https://x.test/@here(1)", dice.pick(&flags))),
                1 => {
                    let code = words.trim_start_matches('\n');
                    if !code.trim_end_matches('\n').is_empty() {
                        spans.push(code_block(None, code));
                    }
                }
                2 => spans.push(mention(&words, "u")),
                _ => spans.push(text(&words, dice.pick(&flags))),
            }
        }
        let content = rich(spans);
        // Any text at all parses (as Discord content), without a panic.
        let raw: String = (0..dice.below(30)).map(|_| dice.pick(TOKENS)).collect();
        let _ = (parse(&raw, &NoNames), references(&raw));
        let rendered = render(&content);
        let back = shown(&parse(&rendered, &NoNames));
        let want = shown(&with_label_in_text(&content, MessageStyle::Normal, ""));
        assert_eq!(
            back.trim(),
            want.trim(),
            "round {round}: {content:?} -> {rendered:?}"
        );
        let capabilities = Capabilities {
            text: TextFormat::new(DISCORD_TEXT),
            max_message_bytes: Some(40),
            ..Capabilities::default()
        };
        let parts = final_parts(&capabilities, &content, MessageStyle::Normal, "", true)
            .unwrap_or_else(|err| panic!("{err}"));
        for part in parts
            .iter()
            .map(|part| part.body.as_str())
            .chain([rendered.as_str()])
        {
            assert!(part.len() <= 40 || part == rendered, "{part:?}");
            assert_safe(part, &(round, &content));
        }
    }
}
