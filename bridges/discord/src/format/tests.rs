//! Exact expectations for parsing, names and rendering, and round trips.

use std::collections::HashMap;

use super::*;
use switchboard_sdk::{MessageStyle, Span, Style, TextRules};

const ZWSP: char = '\u{200B}';

/// A style from flags: b(old), i(talic), u(nderline), s(trike), m(onospace).
pub(super) fn st(flags: &str) -> Style {
    Style {
        bold: flags.contains('b'),
        italic: flags.contains('i'),
        underline: flags.contains('u'),
        strikethrough: flags.contains('s'),
        monospace: flags.contains('m'),
        color: None,
    }
}

pub(super) fn text(text: &str, flags: &str) -> Span {
    Span::Text {
        text: text.into(),
        style: st(flags),
    }
}

pub(super) fn link(text: &str, url: &str, flags: &str) -> Span {
    Span::Link {
        text: text.into(),
        url: url.into(),
        style: st(flags),
    }
}

pub(super) fn mention(name: &str, id: &str) -> Span {
    Span::Mention {
        name: name.into(),
        user_id: Some(id.into()),
    }
}

pub(super) fn code_block(language: Option<&str>, code: &str) -> Span {
    Span::CodeBlock {
        language: language.map(str::to_owned),
        code: code.into(),
    }
}

pub(super) fn rich(spans: Vec<Span>) -> RichText {
    let mut rich = RichText::default();
    for span in spans {
        rich.push(span);
    }
    rich
}

/// The names a guild might have.
struct Guild {
    users: HashMap<&'static str, &'static str>,
    roles: HashMap<&'static str, &'static str>,
    channels: HashMap<&'static str, &'static str>,
}

impl Guild {
    fn new() -> Self {
        Self {
            users: HashMap::from([("111", "Alice"), ("222", "everyone")]),
            roles: HashMap::from([("333", "mods")]),
            channels: HashMap::from([("444", "general")]),
        }
    }
}

impl Names for Guild {
    fn user(&self, id: &str) -> Option<String> {
        self.users.get(id).map(|name| name.to_string())
    }
    fn role(&self, id: &str) -> Option<String> {
        self.roles.get(id).map(|name| name.to_string())
    }
    fn channel(&self, id: &str) -> Option<String> {
        self.channels.get(id).map(|name| name.to_string())
    }
}

fn read(content: &str) -> Vec<Span> {
    parse(content, &NoNames).spans
}

/// What a reader sees: the plain text without the zero-width spaces.
pub(super) fn visible(rich: &RichText) -> String {
    rich.to_plain().replace(ZWSP, "")
}

/// The rich text with the zero-width spaces the renderer adds taken out.
pub(super) fn without_zwsp(rich: &RichText) -> RichText {
    let mut out = RichText::default();
    for span in &rich.spans {
        match span {
            Span::Text { text, style } => out.push_text(text.replace(ZWSP, ""), *style),
            other => out.push(other.clone()),
        }
    }
    out
}

// --- parse -----------------------------------------------------------------

#[test]
fn parses_each_style() {
    assert_eq!(
        read("**b** *i* _i_ __u__ ~~s~~ `c`"),
        rich(vec![
            text("b", "b"),
            text(" ", ""),
            text("i", "i"),
            text(" ", ""),
            text("i", "i"),
            text(" ", ""),
            text("u", "u"),
            text(" ", ""),
            text("s", "s"),
            text(" ", ""),
            text("c", "m"),
        ])
        .spans
    );
    assert_eq!(
        read("***bi*** __**ub**__ ~~*si*~~"),
        rich(vec![
            text("bi", "bi"),
            text(" ", ""),
            text("ub", "ub"),
            text(" ", ""),
            text("si", "si"),
        ])
        .spans
    );
}

#[test]
fn markers_that_do_not_pair_are_text() {
    for content in [
        "snake_case_name",
        "2 * 3 * 4",
        "a ** b",
        "~~",
        "||",
        "`",
        "x * not italic*",
        "*not italic *",
        "under_score_s and_more",
    ] {
        assert_eq!(read(content), vec![text(content, "")], "{content:?}");
    }
}

#[test]
fn backslash_escapes_show_the_character() {
    assert_eq!(
        read(r"\*a\* \_b\_ \~\~c\~\~ \`d\` \<@1> \\ \a"),
        vec![text(r"*a* _b_ ~~c~~ `d` <@1> \ \a", "")]
    );
}

#[test]
fn spoilers_keep_their_bars() {
    assert_eq!(
        read("a ||**secret**|| b"),
        vec![text("a ||", ""), text("secret", "b"), text("|| b", ""),]
    );
}

#[test]
fn parses_code_spans_and_blocks() {
    assert_eq!(read("``a`b``"), vec![text("a`b", "m")]);
    assert_eq!(read("`` `x` ``"), vec![text("`x`", "m")]);
    assert_eq!(read("`**not bold**`"), vec![text("**not bold**", "m")]);
    assert_eq!(
        read("look:\n```rust\nfn main() {}\n```\nafter"),
        vec![
            text("look:", ""),
            code_block(Some("rust"), "fn main() {}"),
            text("after", ""),
        ]
    );
    assert_eq!(
        read("```\n<@1> **x**\n```"),
        vec![code_block(None, "<@1> **x**")]
    );
    assert_eq!(read("```one line```"), vec![code_block(None, "one line")]);
}

#[test]
fn block_markers_become_text() {
    let plain = |content: &str| parse(content, &NoNames).to_plain();
    assert_eq!(plain("> quoted\nnot"), "> quoted\nnot");
    assert_eq!(plain(">>> all\nof this"), "> all\n> of this");
    assert_eq!(plain(">not a quote"), ">not a quote");
    assert_eq!(plain("- a\n* b\n1. c"), "- a\n- b\n1. c");
    assert_eq!(plain("-# small print"), "small print");
    assert_eq!(
        read("# Title\nbody"),
        vec![text("Title", "b"), text("\nbody", "")]
    );
    assert_eq!(read("#hashtag"), vec![text("#hashtag", "")]);
    assert_eq!(read("#### four"), vec![text("#### four", "")]);
}

#[test]
fn parses_links() {
    let url = |u: &str| link(u, u, "");
    assert_eq!(
        read("see https://x.test/a?b=1, <https://x.test/c> [docs](https://x.test/d)."),
        vec![
            text("see ", ""),
            url("https://x.test/a?b=1"),
            text(", ", ""),
            url("https://x.test/c"),
            text(" ", ""),
            link("docs", "https://x.test/d", ""),
            text(".", ""),
        ]
    );
    assert_eq!(
        read("**[a *b*](https://x.test)** [x](ftp://x.test)"),
        vec![
            link("a b", "https://x.test", "b"),
            text(" [x](ftp://x.test)", ""),
        ]
    );
    assert_eq!(
        read("(https://x.test/w_(x))"),
        vec![text("(", ""), url("https://x.test/w_(x"), text("))", "")]
    );
}

#[test]
fn names_references() {
    let guild = Guild::new();
    assert_eq!(
        parse("hi <@111> and <@!111>, <@999>", &guild).spans,
        vec![
            text("hi ", ""),
            mention("Alice", "111"),
            text(" and ", ""),
            mention("Alice", "111"),
            text(", ", ""),
            mention("unknown-user", "999"),
        ]
    );
    assert_eq!(
        parse(
            "<@&333> <@&1> <#444> <#2> </deploy now:5> <:blob:6> <a:party:7>",
            &guild
        )
        .to_plain(),
        "@mods @unknown-role #general #unknown-channel /deploy now :blob: :party:"
    );
    assert_eq!(
        parse("@everyone @here", &guild).to_plain(),
        "@everyone @here"
    );
    // Not references: shown as written.
    assert_eq!(
        parse("<@abc> <#> <:x:> <t:x> <@ 1>", &guild).to_plain(),
        "<@abc> <#> <:x:> <t:x> <@ 1>"
    );
}

#[test]
fn timestamps_become_utc_text() {
    let plain = |content: &str| parse(content, &NoNames).to_plain();
    assert_eq!(plain("<t:1700000000>"), "14 November 2023 22:13 UTC");
    assert_eq!(plain("<t:1700000000:f>"), "14 November 2023 22:13 UTC");
    assert_eq!(
        plain("<t:1700000000:F>"),
        "Tuesday, 14 November 2023 22:13 UTC"
    );
    assert_eq!(plain("<t:1700000000:t>"), "22:13 UTC");
    assert_eq!(plain("<t:1700000000:T>"), "22:13:20 UTC");
    assert_eq!(plain("<t:1700000000:d>"), "14 November 2023");
    assert_eq!(plain("<t:0:R>"), "1 January 1970 00:00 UTC");
    assert_eq!(plain("<t:-86400:D>"), "31 December 1969");
    assert_eq!(plain("<t:951782400:d>"), "29 February 2000");
    assert_eq!(plain("<t:99999999999999999>"), "<t:99999999999999999>");
    assert_eq!(plain("<t:1:X>"), "<t:1:X>");
}

#[test]
fn references_are_each_id_once_in_order() {
    assert_eq!(
        references("<#444> <@111> <@!111> <@&333> <@222> `<@555>` <@x> <:e:1>"),
        vec![
            Reference::Channel("444".into()),
            Reference::User("111".into()),
            Reference::Role("333".into()),
            Reference::User("222".into()),
            Reference::User("555".into()),
        ]
    );
    assert!(references("no references here @everyone").is_empty());
}

// --- render ----------------------------------------------------------------

#[test]
fn plain_chat_text_renders_unchanged() {
    for chat in [
        "hello, world!",
        "a * b and 3 > 2 and a - b",
        "100% sure: it's 2:30 (or so); see https://x.test/a_b.",
        "émoji 😀 and ünïcödé",
        "a|b a~b",
    ] {
        assert_eq!(render(&RichText::plain(chat)), chat, "{chat:?}");
    }
}

#[test]
fn escapes_markup_that_would_change_meaning() {
    for (plain, written) in [
        ("*not bold*", r"\*not bold\*"),
        ("snake_case", r"snake\_case"),
        ("__init__", r"\_\_init\_\_"),
        ("~~x~~ ||y||", r"\~\~x\~\~ \|\|y\|\|"),
        ("`code`", r"\`code\`"),
        ("> not a quote", r"\> not a quote"),
        ("# not a heading", r"\# not a heading"),
        ("- not a list", r"\- not a list"),
        ("<@123> <#1>", "\\<\u{200B}@123> \\<\u{200B}#1>"),
        (r"C:\path\*", r"C:\path\\\*"),
        ("[a](https://x.test)", r"\[a](https://x.test)"),
    ] {
        let rendered = render(&RichText::plain(plain));
        assert_eq!(rendered, written, "{plain:?}");
        assert_eq!(visible(&parse(&rendered, &NoNames)), plain, "{plain:?}");
    }
}

#[test]
fn renders_each_style() {
    assert_eq!(
        render(&rich(vec![
            text("b", "b"),
            text(" ", ""),
            text("i", "i"),
            text(" ", ""),
            text("u", "u"),
            text(" ", ""),
            text("s", "s"),
            text(" ", ""),
            text("c", "m"),
            text(" ", ""),
            text("all", "biusm"),
        ])),
        "**b** *i* __u__ ~~s~~ `c` ~~__***`all`***__~~"
    );
    assert_eq!(
        render(&rich(vec![text(" bold ", "b"), text("x", "")])),
        " **bold** x"
    );
    assert_eq!(render(&rich(vec![text("a`b", "m")])), "``a`b``");
    assert_eq!(render(&rich(vec![text("`a`", "m")])), "`` `a` ``");
    assert_eq!(render(&rich(vec![text("a` ", "m")])), "``a`  ``");
    assert_eq!(
        render(&rich(vec![text("a```b", "m")])),
        "``a`\u{200B}`\u{200B}`b``"
    );
}

#[test]
fn renders_links() {
    let url = "https://x.test/a";
    assert_eq!(render(&rich(vec![link(url, url, "")])), url);
    assert_eq!(
        render(&rich(vec![link("docs", url, "b")])),
        "**[docs](https://x.test/a)**"
    );
    assert_eq!(
        render(&rich(vec![link(url, url, "b"), text("x", "")])),
        "**<https://x.test/a>**x"
    );
    assert_eq!(
        render(&rich(vec![link("*x*", "https://x.test/(a b)", "")])),
        r"[\*x\*](https://x.test/%28a%20b%29)"
    );
    assert_eq!(
        render(&rich(vec![link("mail", "mailto:a@x.test", "")])),
        "mail (mailto:a@x.test)"
    );
    assert_eq!(
        render(&rich(vec![link("x", "https://x.test/@everyone", "")])),
        "[x](https://x.test/%40everyone)"
    );
}

#[test]
fn renders_code_blocks_safely() {
    assert_eq!(
        render(&rich(vec![
            text("look:", ""),
            code_block(Some("rust"), "let a = \"```\";\n"),
            text("after", ""),
        ])),
        "look:\n```rust\nlet a = \"``\u{200B}`\";\n```\nafter"
    );
    assert_eq!(
        render(&rich(vec![code_block(Some("not a lang"), "x")])),
        "```\nx\n```"
    );
}

#[test]
fn mentions_labels_and_actions() {
    let content = rich(vec![
        text("hi ", ""),
        mention("bob", "U1"),
        text(" ", ""),
        mention("<@123>", "U2"),
    ]);
    let parts = DISCORD_TEXT.render(&content, MessageStyle::Normal, "<alice> ", None);
    assert_eq!(parts[0].body, "alice: hi @bob @\\<\u{200B}@123>");
    let parts = DISCORD_TEXT.render(
        &RichText::plain("waves"),
        MessageStyle::Action,
        "<alice> ",
        None,
    );
    assert_eq!(parts[0].body, "*alice waves*");
    assert_eq!(
        DISCORD_TEXT.name_without_ping("everyone"),
        "e\u{200D}veryone"
    );
    assert_eq!(DISCORD_TEXT.name_without_ping("x"), "x");
}

/// Rich texts with styles that Discord markdown can show exactly.
fn samples() -> Vec<RichText> {
    vec![
        rich(vec![text("plain *stars* and _unders_ and `ticks`", "")]),
        rich(vec![
            text("bold", "b"),
            text(" and ", ""),
            text("italic", "i"),
        ]),
        rich(vec![text("under", "u"), text("line", "us"), text(" x", "")]),
        rich(vec![text("code with ` tick", "m"), text(" after", "")]),
        rich(vec![
            text("a", "b"),
            text("b", "i"),
            text("c", "u"),
            text("d", "s"),
        ]),
        rich(vec![
            text("see ", ""),
            link("docs", "https://x.test/d", "i"),
            text(" or https://x.test/e_f", ""),
        ]),
        rich(vec![
            text("> quote\n# head\n- item\n1. one", ""),
            code_block(Some("py"), "print('```')\n@everyone"),
            text("tail **", "b"),
        ]),
        rich(vec![text("||spoiler|| ~~x~~ a\\*b", "")]),
        rich(vec![text("multi\nline", "b"), text("\nnext", "i")]),
        rich(vec![text("snake_case_ x _y_ *z*", "bi")]),
        rich(vec![text("<@1> <#2> <t:3> <:e:4>", "")]),
        rich(vec![text("żółć 😀", "b"), text(" ", ""), text("€", "m")]),
    ]
}

#[test]
fn rich_text_round_trips_through_markdown() {
    for sample in samples() {
        let rendered = render(&sample);
        let back = parse(&rendered, &NoNames);
        assert_eq!(visible(&back), visible(&sample), "{rendered:?}");
    }
    // Styles come back exactly where markdown can carry them.
    for sample in &samples()[1..5] {
        let back = without_zwsp(&parse(&render(sample), &NoNames));
        assert_eq!(back, *sample, "{:?}", render(sample));
    }
}
