//! Exact expectations for every parse and render rule, round trips, and generated
//! cases.

use super::*;
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag};
use switchboard_sdk::{Span, Style};

/// A style from flags: b(old), i(talic), s(trike), m(onospace), u(nderline).
fn st(flags: &str) -> Style {
    Style {
        bold: flags.contains('b'),
        italic: flags.contains('i'),
        strikethrough: flags.contains('s'),
        monospace: flags.contains('m'),
        underline: flags.contains('u'),
        color: None,
    }
}

fn text(text: &str, flags: &str) -> Span {
    Span::Text {
        text: text.into(),
        style: st(flags),
    }
}

fn link(text: &str, url: &str, flags: &str) -> Span {
    Span::Link {
        text: text.into(),
        url: url.into(),
        style: st(flags),
    }
}

fn code_block(language: Option<&str>, code: &str) -> Span {
    Span::CodeBlock {
        language: language.map(str::to_owned),
        code: code.into(),
    }
}

fn rich(spans: Vec<Span>) -> RichText {
    let mut rich = RichText::default();
    for span in spans {
        rich.push(span);
    }
    rich
}

fn render_spans(spans: Vec<Span>) -> String {
    render(&rich(spans))
}

// --- parse -----------------------------------------------------------------

#[test]
fn parses_emphasis_strikethrough_and_inline_code() {
    assert_eq!(
        parse("**b** __b__ *i* _i_ ~~s~~ `c`").spans,
        rich(vec![
            text("b", "b"),
            text(" ", ""),
            text("b", "b"),
            text(" ", ""),
            text("i", "i"),
            text(" ", ""),
            text("i", "i"),
            text(" ", ""),
            text("s", "s"),
            text(" ", ""),
            text("c", "m"),
        ])
        .spans
    );
    assert_eq!(
        parse("***both*** **bold `code`**").spans,
        rich(vec![
            text("both", "bi"),
            text(" ", ""),
            text("bold ", "b"),
            text("code", "bm"),
        ])
        .spans
    );
}

#[test]
fn parses_code_blocks() {
    assert_eq!(
        parse("look:\n```rust\nfn main() {}\n```\nafter").spans,
        vec![
            text("look:", ""),
            code_block(Some("rust"), "fn main() {}\n"),
            text("after", ""),
        ]
    );
    assert_eq!(
        parse("```\nplain\n```").spans,
        vec![code_block(None, "plain\n")]
    );
    assert_eq!(
        parse("~~~python extra\nx = 1\n~~~").spans,
        vec![code_block(Some("python"), "x = 1\n")]
    );
    assert_eq!(
        parse("text\n\n    indented\n    more").spans,
        vec![text("text", ""), code_block(None, "indented\nmore")]
    );
    assert_eq!(
        parse("look:\n```rust\nfn main() {}\n```\nafter").to_plain(),
        "look:\nfn main() {}\nafter"
    );
}

#[test]
fn parses_links_autolinks_and_bare_urls() {
    assert_eq!(
        parse("[docs](https://x.test/d) and <https://x.test/a>").spans,
        vec![
            link("docs", "https://x.test/d", ""),
            text(" and ", ""),
            link("https://x.test/a", "https://x.test/a", ""),
        ]
    );
    let url = |u: &str| link(u, u, "");
    assert_eq!(
        parse("see https://x.test/a?b=1, (http://x.test/c) https://x.test/w_(x).").spans,
        vec![
            text("see ", ""),
            url("https://x.test/a?b=1"),
            text(", (", ""),
            url("http://x.test/c"),
            text(") ", ""),
            url("https://x.test/w_(x)"),
            text(".", ""),
        ]
    );
    // Glued to a word or inside code: not a link.
    assert_eq!(
        parse("xhttps://x.test `https://x.test`").spans,
        vec![text("xhttps://x.test ", ""), text("https://x.test", "m")]
    );
    assert_eq!(
        parse("**https://x.test**").spans,
        vec![link("https://x.test", "https://x.test", "b")]
    );
    assert_eq!(
        parse("<someone@x.test>").spans,
        vec![link("someone@x.test", "someone@x.test", "")]
    );
}

#[test]
fn link_text_keeps_the_style_all_of_it_has() {
    assert_eq!(
        parse("[**a** b](https://x.test) [`c`](https://x.test) **[d](https://x.test)**").spans,
        vec![
            link("a b", "https://x.test", ""),
            text(" ", ""),
            link("c", "https://x.test", "m"),
            text(" ", ""),
            link("d", "https://x.test", "b"),
        ]
    );
}

#[test]
fn parses_images_as_links() {
    assert_eq!(
        parse("![a cat](https://x.test/cat.png) ![](https://x.test/dog.png)").spans,
        vec![
            link("a cat", "https://x.test/cat.png", ""),
            text(" ", ""),
            link("https://x.test/dog.png", "https://x.test/dog.png", ""),
        ]
    );
    assert_eq!(
        parse("[![logo](https://x.test/l.png)](https://x.test)").spans,
        vec![link("logo", "https://x.test", "")]
    );
}

#[test]
fn paragraphs_and_line_breaks_become_one_newline() {
    assert_eq!(parse("a\n\nb\nc  \nd\\\ne").to_plain(), "a\nb\nc\nd\ne");
    assert_eq!(parse("a\n\n\n\nb").to_plain(), "a\nb");
    assert_eq!(
        parse("**a\nb**").spans,
        vec![text("a", "b"), text("\n", ""), text("b", "b")]
    );
}

#[test]
fn parses_lists_quotes_headings_and_rules() {
    assert_eq!(
        parse("- a\n- b\n  - c\n\n1. x\n2. y").to_plain(),
        "- a\n- b\n  - c\n1. x\n2. y"
    );
    assert_eq!(parse("3. x\n4. y").to_plain(), "3. x\n4. y");
    assert_eq!(parse("* a\n\n  more\n* b").to_plain(), "- a\n  more\n- b");
    assert_eq!(parse("-\n- b").to_plain(), "-\n- b");
    assert_eq!(
        parse("> one\n> two\n>\n> three\n> > deeper").to_plain(),
        "> one\n> two\n> three\n> > deeper"
    );
    assert_eq!(parse("> - a\n> - b").to_plain(), "> - a\n> - b");
    assert_eq!(
        parse("# Title\nbody\n\nSub\n---").spans,
        vec![text("Title", "b"), text("\nbody\n", ""), text("Sub", "b"),]
    );
    assert_eq!(
        parse("above\n\n***\n\nbelow").to_plain(),
        "above\n***\nbelow"
    );
}

#[test]
fn parses_tables_and_html_as_readable_text() {
    assert_eq!(
        parse("| a | b |\n|---|:-:|\n| 1 | **2** |\n|  | 4 |").spans,
        vec![text("a | b\n1 | ", ""), text("2", "b"), text("\n | 4", ""),]
    );
    assert_eq!(
        parse("<b>hi</b> there\n\n<div>\nblock\n</div>").to_plain(),
        "<b>hi</b> there\n<div>\nblock\n</div>"
    );
    assert_eq!(parse("a <!-- c --> b").to_plain(), "a <!-- c --> b");
}

#[test]
fn typical_chat_text_survives_parsing() {
    for message in [
        "2 * 3 = 6",
        "snake_case_name and a_b_c",
        "*",
        "-",
        "+",
        "1.",
        "~",
        "~/.bashrc",
        "[x]",
        "[ ] todo",
        "😀 ünïcödé 日本語 عربى",
        "@alice: ping @here",
        "#hashtag :smile: 50% off!",
        "x < y > z && a & b",
        "C:\\Users\\me",
        "it's \"quoted\" -- ok...",
        "a - b + c = d",
        "email someone@x.test",
        "@\u{200B}channel \u{200D}",
    ] {
        assert_eq!(parse(message).to_plain(), message, "{message:?}");
        let unstyled = |span: &Span| match span {
            Span::Text { style, .. } => style.is_plain(),
            _ => false,
        };
        assert!(parse(message).spans.iter().all(unstyled), "{message:?}");
    }
    assert_eq!(parse("&amp; &copy; &#35;").to_plain(), "& © #");
    assert_eq!(parse("\\*not italic\\*").to_plain(), "*not italic*");
}

#[test]
fn mentions_stay_text() {
    assert_eq!(parse("@alice hi").spans, vec![text("@alice hi", "")]);
}

#[test]
fn parse_never_ends_with_a_newline() {
    for markdown in [
        "a\n\n",
        "- a\n-",
        "> a\n>",
        "a  \n",
        "<div>\n</div>\n\n",
        "a\n\n---",
    ] {
        let plain = parse(markdown).to_plain();
        assert!(!plain.ends_with('\n'), "{markdown:?} -> {plain:?}");
        let spans = parse(markdown).spans;
        if let Some(Span::Text { text, .. }) = spans.last() {
            assert!(!text.ends_with('\n'), "{markdown:?} -> {spans:?}");
        }
    }
    assert_eq!(parse("").spans, vec![]);
}

// --- render ----------------------------------------------------------------

#[test]
fn plain_chat_text_renders_unchanged() {
    for message in [
        "hello world",
        "2 * 3 = 6",
        "snake_case_name a_b_c",
        "@alice: ping",
        "@\u{200B}channel look \u{200D}here",
        "#hashtag x -> y 3.14 -5 degrees",
        "😀 ünïcödé 日本語",
        "C:\\Users\\me",
        "AT&T & friends",
        "yes!",
        "a ~ b _ c",
    ] {
        assert_eq!(render(&RichText::plain(message)), message, "{message:?}");
    }
}

#[test]
fn escapes_inline_specials() {
    for (message, markdown) in [
        ("*a*", "\\*a\\*"),
        ("**a**", "\\*\\*a\\*\\*"),
        ("_a_", "\\_a\\_"),
        ("__init__", "\\_\\_init\\_\\_"),
        ("~~a~~", "\\~\\~a\\~\\~"),
        ("~/.bashrc", "\\~/.bashrc"),
        ("`a`", "\\`a\\`"),
        ("[a](b)", "\\[a\\](b)"),
        ("![a](b)", "!\\[a\\](b)"),
        ("<b>x</b>", "\\<b>x\\</b>"),
        ("a\\*", "a\\\\\\*"),
        ("ends with \\", "ends with \\\\"),
        ("&amp; &#35;", "\\&amp; \\&#35;"),
        ("2*3", "2\\*3"),
    ] {
        assert_eq!(render(&RichText::plain(message)), markdown, "{message:?}");
        assert_eq!(parse(markdown).to_plain(), message, "{markdown:?}");
    }
}

#[test]
fn escapes_what_would_start_a_block() {
    for (message, markdown) in [
        ("# title", "\\# title"),
        ("###### six", "\\###### six"),
        ("#", "\\#"),
        ("> quote", "\\> quote"),
        ("- item", "\\- item"),
        ("+ item", "\\+ item"),
        ("-", "\\-"),
        ("1. first", "1\\. first"),
        ("2) second", "2\\) second"),
        ("| a | b |", "\\| a | b |"),
        ("---", "\\---"),
        ("- - -", "\\- - -"),
        ("* * *", "\\* * \\*"),
        ("___", "\\_\\_\\_"),
        ("a | b\n--|:-:", "a | b\n\\--|:-:"),
        ("title\n===", "title\n\\==="),
        ("```rust", "\\`\\`\\`rust"),
        ("- a\n- b", "\\- a\n\\- b"),
        ("    four spaces", "four spaces"),
        ("x\n    y", "x\ny"),
        ("[ref]: https://x.test", "\\[ref\\]: https://x.test"),
    ] {
        assert_eq!(render(&RichText::plain(message)), markdown, "{message:?}");
    }
}

#[test]
fn renders_each_style() {
    for (flags, markdown) in [
        ("b", "**x y**"),
        ("i", "*x y*"),
        ("s", "~~x y~~"),
        ("m", "`x y`"),
        ("bi", "***x y***"),
        ("bs", "~~**x y**~~"),
        ("bm", "**`x y`**"),
        ("bism", "~~***`x y`***~~"),
        ("u", "x y"),
    ] {
        assert_eq!(render_spans(vec![text("x y", flags)]), markdown, "{flags}");
        let shown = flags.replace('u', "");
        assert_eq!(
            parse(markdown).spans,
            vec![text("x y", &shown)],
            "{markdown}"
        );
    }
    let red = Style {
        color: Some(switchboard_sdk::Color { fg: 4, bg: None }),
        ..Style::default()
    };
    assert_eq!(
        render_spans(vec![Span::Text {
            text: "red".into(),
            style: red
        }]),
        "red"
    );
}

#[test]
fn markers_hug_the_text() {
    assert_eq!(
        render_spans(vec![text("bold ", "b"), text("x", "")]),
        "**bold** x"
    );
    assert_eq!(
        render_spans(vec![text("a", ""), text(" b ", "i"), text("c", "")]),
        "a *b* c"
    );
    assert_eq!(
        render_spans(vec![text("a", ""), text("b", "b"), text("c", "")]),
        "a**b**c"
    );
}

#[test]
fn nested_styles_nest() {
    assert_eq!(
        render_spans(vec![text("a ", "b"), text("b", "bi"), text(" c", "b")]),
        "**a *b* c**"
    );
    assert_eq!(
        render_spans(vec![text("a ", "i"), text("b", "bi"), text(" c", "b")]),
        "*a **b*** **c**"
    );
    assert_eq!(
        render_spans(vec![text("a ", "b"), text("code", "bm"), text(" c", "b")]),
        "**a `code` c**"
    );
}

#[test]
fn markers_close_before_a_newline() {
    assert_eq!(render_spans(vec![text("a\nb", "b")]), "**a**\n**b**");
    assert_eq!(render_spans(vec![text("a\nb", "m")]), "`a`\n`b`");
}

#[test]
fn emphasis_that_cannot_render_is_dropped() {
    // `**` between a letter and punctuation neither opens nor closes.
    assert_eq!(
        render_spans(vec![text("a", ""), text("(b)", "b"), text("c", "")]),
        "a(b)c"
    );
    assert_eq!(render_spans(vec![text("C", ""), text("++", "b")]), "C++");
}

#[test]
fn code_spans_fence_backticks() {
    assert_eq!(render_spans(vec![text("a`b", "m")]), "``a`b``");
    assert_eq!(render_spans(vec![text("`x`", "m")]), "`` `x` ``");
    assert_eq!(render_spans(vec![text("a``b", "m")]), "```a``b```");
    assert_eq!(
        render_spans(vec![text("x", ""), text(" y ", "m"), text("z", "")]),
        "x `y` z"
    );
    assert_eq!(render_spans(vec![text("a", "m"), text("b", "mu")]), "`ab`");
    assert_eq!(parse("`` `x` ``").spans, vec![text("`x`", "m")]);
}

#[test]
fn renders_links() {
    let url = "https://x.test/a";
    for (span, markdown) in [
        (link(url, url, ""), "https://x.test/a"),
        (link("", url, ""), "https://x.test/a"),
        (link("docs", url, ""), "[docs](https://x.test/a)"),
        (link("[docs]", url, ""), "[\\[docs\\]](https://x.test/a)"),
        (link("docs", url, "b"), "**[docs](https://x.test/a)**"),
        (link("docs", url, "m"), "[`docs`](https://x.test/a)"),
        (
            link(url, url, "m"),
            "[`https://x.test/a`](https://x.test/a)",
        ),
        (
            link("w", "https://x.test/w_(x)", ""),
            "[w](https://x.test/w_\\(x\\))",
        ),
        (
            link("s", "https://x.test/a b", ""),
            "[s](<https://x.test/a b>)",
        ),
        (
            link("https://x.test/w_(x)", "https://x.test/w_(x)", ""),
            "<https://x.test/w_(x)>",
        ),
        (
            link("https://x.test/*a*", "https://x.test/*a*", ""),
            "<https://x.test/*a*>",
        ),
        (
            link("mailto:a@x.test", "mailto:a@x.test", ""),
            "<mailto:a@x.test>",
        ),
        (link("a@x.test", "a@x.test", ""), "<a@x.test>"),
    ] {
        assert_eq!(render_spans(vec![span.clone()]), markdown, "{span:?}");
        // A link without text comes back with the URL as its text.
        let parsed = match span {
            Span::Link { text, url, style } if text.is_empty() => Span::Link {
                text: url.clone(),
                url,
                style,
            },
            other => other,
        };
        assert_eq!(parse(markdown).spans, vec![parsed], "{markdown}");
    }
}

#[test]
fn bare_urls_stay_bare_only_where_they_end_cleanly() {
    let url = "https://x.test/a";
    assert_eq!(
        render_spans(vec![text("see ", ""), link(url, url, ""), text(". ok", "")]),
        "see https://x.test/a. ok"
    );
    assert_eq!(
        render_spans(vec![text("(", ""), link(url, url, ""), text(")", "")]),
        "(https://x.test/a)"
    );
    assert_eq!(
        render_spans(vec![link(url, url, ""), text("/more", "")]),
        "<https://x.test/a>/more"
    );
    assert_eq!(
        render_spans(vec![text("x", ""), link(url, url, "")]),
        "x<https://x.test/a>"
    );
    assert_eq!(
        render_spans(vec![link(url, url, ""), text("_", "")]),
        "<https://x.test/a>\\_"
    );
    // URLs inside text are not escaped into broken addresses.
    assert_eq!(
        render(&RichText::plain(
            "see https://x.test/a_b_c and https://x.test/_x_"
        )),
        "see https://x.test/a_b_c and <https://x.test/_x>\\_"
    );
}

#[test]
fn renders_mentions() {
    let mention = |name: &str, id: Option<&str>| Span::Mention {
        name: name.into(),
        user_id: id.map(str::to_owned),
    };
    assert_eq!(
        render_spans(vec![text("hi ", ""), mention("alice", Some("u1"))]),
        "hi @alice"
    );
    assert_eq!(render_spans(vec![mention("@bob_x", Some("u2"))]), "@bob_x");
    assert_eq!(render_spans(vec![mention("Carol *", None)]), "Carol \\*");
}

#[test]
fn renders_code_blocks_on_their_own_lines() {
    assert_eq!(
        render_spans(vec![
            text("look:", ""),
            code_block(Some("rust"), "fn main() {}\n"),
            text("after", ""),
        ]),
        "look:\n```rust\nfn main() {}\n```\nafter"
    );
    assert_eq!(
        render_spans(vec![text("look:\n", ""), code_block(None, "x")]),
        "look:\n```\nx\n```"
    );
    assert_eq!(
        render_spans(vec![code_block(None, "a\n```\nb\n")]),
        "````\na\n```\nb\n````"
    );
    assert_eq!(render_spans(vec![code_block(Some("sh"), "")]), "```sh\n```");
    assert_eq!(
        render_spans(vec![code_block(Some("bad lang"), "x")]),
        "```\nx\n```"
    );
}

// --- both ways -------------------------------------------------------------

#[test]
fn rich_text_round_trips_through_markdown() {
    let url = "https://x.test/a";
    let cases = vec![
        vec![text("plain", "")],
        vec![
            text("b", "b"),
            text(" i", "i"),
            text(" s", "s"),
            text(" m", "m"),
        ],
        vec![text("u", "u"), text("bi", "bi"), text("all", "bism")],
        vec![
            text("bold ", "b"),
            text("x", ""),
            text(" ital ", "i"),
            text("y", ""),
        ],
        vec![
            text("see ", ""),
            link("docs", url, "b"),
            text(" or ", ""),
            link(url, url, ""),
        ],
        vec![link("", url, ""), link("a b", "https://x.test/a b", "")],
        vec![
            text("look:", ""),
            code_block(Some("rust"), "let a = `b`;\n```\n"),
            text("after", ""),
        ],
        vec![text(
            "2 * 3 = 6, snake_case, a_b_c, *, ~, [x], <b>, &amp;, \\, `",
            "",
        )],
        vec![text("😀 ünïcödé 日本語 ", ""), text("太字", "b")],
        vec![text("@\u{200B}channel and @\u{200B}here", "")],
        vec![
            Span::Mention {
                name: "@alice".into(),
                user_id: Some("u1".into()),
            },
            text(": hi", ""),
        ],
        vec![text(
            "# not a title\n> not a quote\n- not a list\n1. nor this\n| no | table |\n---",
            "",
        )],
        vec![text("``", "m"), text(" and ", ""), text("a`b", "bm")],
        vec![text("line one\nline two", "b")],
        vec![text("a", ""), text("(b)", "b"), text("c", "")],
    ];
    for spans in cases {
        let rich = rich(spans);
        let markdown = render(&rich);
        assert_eq!(parse(&markdown).to_plain(), rich.to_plain(), "{markdown:?}");
    }
}

#[test]
fn typical_mattermost_messages_are_stable() {
    for markdown in [
        "**bold** *italic* ~~gone~~ `code`",
        "***both*** and **`bold code`**",
        "see [the docs](https://x.test/docs) or https://x.test/",
        "look:\n```rust\nfn main() {}\n```\nafter",
        "first line\nsecond line",
        "@alice can you check https://x.test/a_b?",
        "snake_case 2 * 3 😀",
    ] {
        assert_eq!(render(&parse(markdown)), markdown);
    }
    // Other spellings settle on one form.
    for (markdown, settled) in [
        ("__bold__ _italic_", "**bold** *italic*"),
        ("# Title", "**Title**"),
        ("- item", "\\- item"),
        ("> quote", "\\> quote"),
        ("<https://x.test>", "https://x.test"),
    ] {
        assert_eq!(render(&parse(markdown)), settled, "{markdown:?}");
        assert_eq!(render(&parse(settled)), settled, "{settled:?}");
    }
}

/// Deterministic xorshift, so the generated cases are the same every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn style(&mut self) -> Style {
        Style {
            bold: self.below(3) == 0,
            italic: self.below(3) == 0,
            strikethrough: self.below(5) == 0,
            monospace: self.below(6) == 0,
            underline: self.below(6) == 0,
            color: None,
        }
    }
}

/// Non-whitespace characters with their visible style.
fn styled_chars(rich: &RichText) -> Vec<(char, bool, bool, bool, bool)> {
    let mut out = Vec::new();
    for span in &rich.spans {
        let (text, style) = match span {
            Span::Text { text, style } => (text.as_str(), style),
            Span::Link { text, url, style } => {
                (if text.is_empty() { url } else { text }.as_str(), style)
            }
            _ => continue,
        };
        out.extend(text.chars().filter(|c| !c.is_whitespace()).map(|c| {
            (
                c,
                style.bold,
                style.italic,
                style.strikethrough,
                style.monospace,
            )
        }));
    }
    out
}

/// Line ends and blank lines are what markdown normalises.
fn normalise(text: &str) -> String {
    text.lines()
        .map(|line| line.trim_matches([' ', '\t']))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn generated_rich_text_keeps_its_text_and_never_gains_style() {
    const TOKENS: &[&str] = &[
        "a",
        "word",
        " ",
        " ",
        "  ",
        "\n",
        "*",
        "**",
        "_",
        "__",
        "~",
        "~~",
        "`",
        "```",
        "[",
        "]",
        "(",
        ")",
        "<",
        ">",
        "#",
        "# ",
        "- ",
        "+ ",
        "1. ",
        "1)",
        "|",
        "\\",
        "!",
        "&",
        "&amp;",
        "=",
        "===",
        "---",
        ":",
        "😀",
        "ü",
        "@",
        "@\u{200B}channel",
        "x_y",
        ".",
        "    ",
        "\t",
        "https://x.test/a",
        "'",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4000 {
        let mut rich = RichText::default();
        for _ in 0..1 + rng.below(6) {
            match rng.below(12) {
                0 => rich.push(Span::Link {
                    text: rng.pick(&["docs", "a b", "", "*x*"]).into(),
                    url: rng
                        .pick(&[
                            "https://x.test/a",
                            "https://x.test/a_(b)",
                            "https://x.test/a b",
                        ])
                        .into(),
                    style: rng.style(),
                }),
                1 => rich.push(code_block(Some("rust"), "let a = `b`;\n```\n")),
                _ => {
                    let mut text = String::new();
                    for _ in 0..1 + rng.below(5) {
                        text.push_str(rng.pick(TOKENS));
                    }
                    let style = rng.style();
                    rich.push_text(text, style);
                }
            }
        }
        let markdown = render(&rich);
        let back = parse(&markdown);
        assert_eq!(
            normalise(&back.to_plain()),
            normalise(&rich.to_plain()),
            "{rich:?} -> {markdown:?}"
        );
        // Only paragraphs and our code blocks: no list, quote, heading or table.
        for event in Parser::new_ext(
            &markdown,
            Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES,
        ) {
            if let Event::Start(tag) = event {
                assert!(
                    matches!(
                        tag,
                        Tag::Paragraph
                            | Tag::CodeBlock(CodeBlockKind::Fenced(_))
                            | Tag::Emphasis
                            | Tag::Strong
                            | Tag::Strikethrough
                            | Tag::Link { .. }
                    ),
                    "{tag:?} in {markdown:?}"
                );
            }
        }
        let wanted = styled_chars(&rich);
        let got = styled_chars(&back);
        assert_eq!(wanted.len(), got.len(), "{markdown:?}");
        for (want, got) in wanted.iter().zip(&got) {
            let gained = (got.1 && !want.1)
                || (got.2 && !want.2)
                || (got.3 && !want.3)
                || (got.4 && !want.4);
            assert!(!gained, "{:?} gained style in {markdown:?}", want.0);
        }
        let settled = render(&back);
        assert_eq!(render(&parse(&settled)), settled, "{markdown:?}");
    }
}

#[test]
fn generated_chat_keeps_styles_on_whole_words() {
    const WORDS: &[&str] = &[
        "hello",
        "don't",
        "(see",
        "this)",
        "\"quoted\"",
        "ok,",
        "done.",
        "why?",
        "yes!",
        "note:",
        "😀",
        "ünï",
        "x_y",
        "v1.2",
        "a/b",
        "@bob",
        "#tag",
        "-",
        "foo(bar)",
        "50%",
        "C++",
        "e.g.",
        "--flag",
        "*",
        "-",
        "+",
        "1.",
        "~",
        "[x]",
    ];
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..4000 {
        let mut rich = RichText::default();
        let words = 1 + rng.below(6);
        for i in 0..words {
            let style = if rng.below(3) == 0 {
                rng.style()
            } else {
                Style::default()
            };
            rich.push_text(rng.pick(WORDS), style);
            if i + 1 < words {
                // The space sometimes carries the style on, as IRC formatting does.
                let space = if rng.below(4) == 0 {
                    style
                } else {
                    Style::default()
                };
                rich.push_text(" ", space);
            }
        }
        let markdown = render(&rich);
        let back = parse(&markdown);
        assert_eq!(back.to_plain(), rich.to_plain(), "{markdown:?}");
        assert_eq!(
            styled_chars(&back),
            styled_chars(&rich),
            "{rich:?} -> {markdown:?}"
        );
    }
}
