//! Exact expectations for every parse and render rule, round trips, splitting, the
//! mention-safety proof on final parts, and generated cases.

use super::*;
use std::collections::HashMap;
use switchboard_sdk::final_text::final_parts;
use switchboard_sdk::{Capabilities, MessageStyle, Span, Style, TextFormat, TextRules};

const ZWSP: char = '\u{200B}';

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

fn mention(name: &str, id: &str) -> Span {
    Span::Mention {
        name: name.into(),
        user_id: Some(id.into()),
    }
}

fn code_block(code: &str) -> Span {
    Span::CodeBlock {
        language: None,
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

/// The names a workspace might have.
#[derive(Default)]
struct Directory {
    users: HashMap<&'static str, &'static str>,
    channels: HashMap<&'static str, &'static str>,
    groups: HashMap<&'static str, &'static str>,
}

impl Directory {
    fn workspace() -> Self {
        Self {
            users: HashMap::from([("U1", "Alice"), ("W2", "Walter")]),
            channels: HashMap::from([("C1", "general")]),
            groups: HashMap::from([("S1", "devs")]),
        }
    }
}

impl Names for Directory {
    fn user(&self, id: &str) -> Option<String> {
        self.users.get(id).map(|name| name.to_string())
    }
    fn channel(&self, id: &str) -> Option<String> {
        self.channels.get(id).map(|name| name.to_string())
    }
    fn usergroup(&self, id: &str) -> Option<String> {
        self.groups.get(id).map(|name| name.to_string())
    }
}

fn read(mrkdwn: &str) -> RichText {
    parse(mrkdwn, &Directory::default())
}

fn render_spans(spans: Vec<Span>) -> String {
    render(&rich(spans))
}

/// What a reader sees: the plain text without the zero-width spaces.
fn visible(rich: &RichText) -> String {
    rich.to_plain().replace(ZWSP, "")
}

/// Visible characters (no whitespace, no U+200B) with bold, italic, strike, code.
fn styled_chars(rich: &RichText) -> Vec<(char, bool, bool, bool, bool)> {
    let mut out = Vec::new();
    for span in &rich.spans {
        let (text, style) = match span {
            Span::Text { text, style } => (text.as_str(), *style),
            Span::Link { text, url, style } => {
                (if text.is_empty() { url } else { text }.as_str(), *style)
            }
            Span::Mention { name, .. } => (name.as_str(), Style::default()),
            Span::CodeBlock { code, .. } => (code.as_str(), Style::default()),
        };
        out.extend(
            text.chars()
                .filter(|&c| !c.is_whitespace() && c != ZWSP)
                .map(|c| {
                    (
                        c,
                        style.bold,
                        style.italic,
                        style.strikethrough,
                        style.monospace,
                    )
                }),
        );
    }
    out
}

// --- parse -----------------------------------------------------------------

#[test]
fn parses_each_style() {
    assert_eq!(
        read("*b* _i_ ~s~ `c`").spans,
        rich(vec![
            text("b", "b"),
            text(" ", ""),
            text("i", "i"),
            text(" ", ""),
            text("s", "s"),
            text(" ", ""),
            text("c", "m"),
        ])
        .spans
    );
}

#[test]
fn parses_nested_styles() {
    for (mrkdwn, spans) in [
        ("*_both_*", vec![text("both", "bi")]),
        ("_*both*_", vec![text("both", "bi")]),
        ("~*_all_*~", vec![text("all", "bis")]),
        (
            "*bold `code` bold*",
            vec![text("bold ", "b"), text("code", "bm"), text(" bold", "b")],
        ),
        (
            "*a _b_ c*",
            vec![text("a ", "b"), text("b", "bi"), text(" c", "b")],
        ),
        ("_`x`_", vec![text("x", "im")]),
        // A style already on does not open again inside itself.
        ("*a *b* c*", vec![text("a *b", "b"), text(" c*", "")]),
    ] {
        assert_eq!(read(mrkdwn).spans, rich(spans).spans, "{mrkdwn:?}");
    }
}

#[test]
fn markers_work_only_at_word_boundaries_with_text_inside() {
    for mrkdwn in [
        "a*b*c",
        "a_b_c",
        "a~b~c",
        "a`b`c",
        "snake_case_name",
        "x*b*",
        "*b*x",
        "* not bold*",
        "*not bold *",
        "2 * 3 * 4",
        "*\u{200B}a*",
        "*a\u{200B}*",
    ] {
        assert_eq!(read(mrkdwn).spans, vec![text(mrkdwn, "")], "{mrkdwn:?}");
    }
    for (mrkdwn, spans) in [
        ("(*b*)", vec![text("(", ""), text("b", "b"), text(")", "")]),
        ("*b*.", vec![text("b", "b"), text(".", "")]),
        (
            "\"_i_\"",
            vec![text("\"", ""), text("i", "i"), text("\"", "")],
        ),
        ("-~s~-", vec![text("-", ""), text("s", "s"), text("-", "")]),
        ("*a*b*", vec![text("a*b", "b")]),
        ("*2*3*", vec![text("2*3", "b")]),
        ("_snake_case_", vec![text("snake_case", "i")]),
        ("*`a*", vec![text("`a", "b")]),
        ("_a`_", vec![text("a`", "i")]),
    ] {
        assert_eq!(read(mrkdwn).spans, rich(spans).spans, "{mrkdwn:?}");
    }
}

#[test]
fn unmatched_markers_are_text() {
    for mrkdwn in [
        "*", "**", "_", "~~", "`", "``", "*a", "a*", "_a b", "a b_", "```",
    ] {
        assert_eq!(read(mrkdwn).spans, vec![text(mrkdwn, "")], "{mrkdwn:?}");
    }
    for (mrkdwn, spans) in [
        ("*a _b* c_", vec![text("a _b", "b"), text(" c_", "")]),
        (
            "*open and _closed_",
            vec![text("*open and ", ""), text("closed", "i")],
        ),
        ("`code *not bold*`", vec![text("code *not bold*", "m")]),
    ] {
        assert_eq!(read(mrkdwn).spans, rich(spans).spans, "{mrkdwn:?}");
    }
}

#[test]
fn styles_do_not_span_lines() {
    assert_eq!(read("*a\nb*").spans, vec![text("*a\nb*", "")]);
    assert_eq!(
        read("*a*\n_b_").spans,
        vec![text("a", "b"), text("\n", ""), text("b", "i")]
    );
}

#[test]
fn parses_code_blocks() {
    for (mrkdwn, spans) in [
        (
            "look:\n```\nfn main() {}\n```\nafter",
            vec![
                text("look:", ""),
                code_block("fn main() {}"),
                text("after", ""),
            ],
        ),
        ("```x```", vec![code_block("x")]),
        (
            "a ```b``` c",
            vec![text("a ", ""), code_block("b"), text(" c", "")],
        ),
        (
            "```\n*not bold* &lt;tag&gt; &amp; <https://x.test|docs> <@U1>\n```",
            vec![code_block("*not bold* <tag> & docs @Alice")],
        ),
        ("```\n```", vec![code_block("")]),
        ("```\n\nx\n\n```", vec![code_block("\nx\n")]),
        ("```unclosed", vec![text("```unclosed", "")]),
    ] {
        let parsed = parse(mrkdwn, &Directory::workspace());
        assert_eq!(parsed.spans, rich(spans).spans, "{mrkdwn:?}");
    }
    assert_eq!(
        read("look:\n```\nfn main() {}\n```\nafter").to_plain(),
        "look:\nfn main() {}\nafter"
    );
}

#[test]
fn quoted_lines_keep_their_marker() {
    assert_eq!(
        read("&gt; quoted *bold*\n&gt; more\nafter").spans,
        vec![
            text("> quoted ", ""),
            text("bold", "b"),
            text("\n> more\nafter", ""),
        ]
    );
    assert_eq!(read("&gt;&gt;&gt; all of it").to_plain(), ">>> all of it");
}

#[test]
fn decodes_slacks_entities_only() {
    assert_eq!(
        read("a &amp; b &lt;tag&gt; &amp;lt; &quot; &#64; &").to_plain(),
        "a & b <tag> &lt; &quot; &#64; &"
    );
}

#[test]
fn parses_links() {
    let url = "https://x.test/a";
    for (mrkdwn, spans) in [
        ("<https://x.test/a>", vec![link(url, url, "")]),
        (
            "<https://x.test/a|the docs>",
            vec![link("the docs", url, "")],
        ),
        ("<https://x.test/a|>", vec![link(url, url, "")]),
        ("<https://x.test/a|a|b>", vec![link("a|b", url, "")]),
        (
            "<https://x.test/?a=1&amp;b=2|a &amp; b &gt; c>",
            vec![link("a & b > c", "https://x.test/?a=1&b=2", "")],
        ),
        (
            "*<https://x.test/a|bold>* and _<https://x.test/a>_",
            vec![
                link("bold", url, "b"),
                text(" and ", ""),
                link(url, url, "i"),
            ],
        ),
        (
            "<mailto:a@x.test|write to me>",
            vec![link("write to me", "mailto:a@x.test", "")],
        ),
        // What Slack's server made of an address or domain as typed.
        ("<mailto:a@x.test|a@x.test>", vec![text("a@x.test", "")]),
        (
            "<http://example.com|example.com>",
            vec![text("example.com", "")],
        ),
        ("<https://x.test/|x.test>", vec![text("x.test", "")]),
    ] {
        assert_eq!(read(mrkdwn).spans, rich(spans).spans, "{mrkdwn:?}");
    }
}

#[test]
fn names_users_channels_groups_and_special_mentions() {
    let names = Directory::workspace();
    for (mrkdwn, spans) in [
        ("<@U1>", vec![mention("Alice", "U1")]),
        // The name the workspace has now beats the one the message was sent with.
        ("<@U1|old_name>", vec![mention("Alice", "U1")]),
        ("<@U9|bob>", vec![mention("bob", "U9")]),
        ("<@U9>", vec![mention("U9", "U9")]),
        ("<@W2> hi", vec![mention("Walter", "W2"), text(" hi", "")]),
        ("*hi <@U1>*", vec![text("hi ", "b"), mention("Alice", "U1")]),
        ("<#C1>", vec![text("#general", "")]),
        ("<#C1|random>", vec![text("#random", "")]),
        ("<#C9>", vec![text("#C9", "")]),
        ("<!subteam^S1|@devs-team>", vec![text("@devs-team", "")]),
        ("<!subteam^S1>", vec![text("@devs", "")]),
        ("<!subteam^S9>", vec![text("@S9", "")]),
        (
            "<!here> <!here|here> <!channel> <!everyone>",
            vec![text("@here @here @channel @everyone", "")],
        ),
        (
            "<!date^1392734382^{date_pretty} at {time}|Feb 18, 2014 at 6:39 AM>",
            vec![text("Feb 18, 2014 at 6:39 AM", "")],
        ),
        (
            "<!date^1392734382^{date}^https://x.test|Feb 18th &amp; on>",
            vec![text("Feb 18th & on", "")],
        ),
        // Not well formed: shown as written.
        ("<@>", vec![text("<@>", "")]),
        ("<#a b>", vec![text("<#a b>", "")]),
        ("<@U1", vec![text("<@U1", "")]),
        (
            "a <b <@U1>",
            vec![text("a <b ", ""), mention("Alice", "U1")],
        ),
    ] {
        assert_eq!(parse(mrkdwn, &names).spans, rich(spans).spans, "{mrkdwn:?}");
    }
}

#[test]
fn typical_chat_text_survives_parsing() {
    for message in [
        "2 * 3 = 6",
        "snake_case_name and a_b_c",
        "~/.bashrc and ~ alone",
        "[x] #hashtag :smile: 50% off!",
        "😀 ünïcödé 日本語 عربى",
        "@alice: ping @here",
        "C:\\Users\\me",
        "it's \"quoted\" -- ok...",
        "a - b + c = d",
        "@\u{200B}channel \u{200D}",
    ] {
        let parsed = read(message);
        assert_eq!(parsed.to_plain(), message, "{message:?}");
        assert!(
            parsed
                .spans
                .iter()
                .all(|span| matches!(span, Span::Text { style, .. } if style.is_plain())),
            "{message:?}"
        );
    }
}

#[test]
fn references_are_each_id_once_in_order() {
    assert_eq!(
        references(
            "<@U1> hi <@U1|alice> <#C1|general> <!subteam^S1|@devs> <!here> \
             <https://x.test|x> <@W2>\n```<#C2>```<!subteam^S1> <@> <#C1>"
        ),
        vec![
            Reference::User("U1".into()),
            Reference::Channel("C1".into()),
            Reference::Usergroup("S1".into()),
            Reference::User("W2".into()),
            Reference::Channel("C2".into()),
        ]
    );
    assert_eq!(references("no references &lt;@U1&gt; <@U1"), vec![]);
}

// --- render ----------------------------------------------------------------

#[test]
fn plain_chat_text_renders_unchanged() {
    for message in [
        "hello world",
        "2 * 3 = 6",
        "snake_case_name a_b_c 2*3",
        "a ~ b _ c",
        "*",
        "@alice: ping",
        "#hashtag :smile: x -> y",
        "😀 ünïcödé 日本語",
        "C:\\Users\\me",
        "it's \"quoted\" -- ok...",
        "@\u{200B}channel",
    ] {
        assert_eq!(
            render(&RichText::plain(message)),
            message.replace("->", "-&gt;")
        );
    }
}

#[test]
fn escapes_control_characters() {
    for (message, mrkdwn) in [
        ("AT&T", "AT&amp;T"),
        ("a < b > c", "a &lt; b &gt; c"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U1> <#C1|x>", "&lt;@U1&gt; &lt;#C1|x&gt;"),
        ("<https://x.test|y>", "&lt;https://x.test|y&gt;"),
        ("&amp; &lt;", "&amp;amp; &amp;lt;"),
    ] {
        assert_eq!(render(&RichText::plain(message)), mrkdwn, "{message:?}");
        assert_eq!(read(mrkdwn).to_plain(), message, "{mrkdwn:?}");
    }
}

#[test]
fn keeps_literal_markers_literal_with_zero_width_spaces() {
    for (message, mrkdwn) in [
        ("*a*", "\u{200B}*\u{200B}a\u{200B}*\u{200B}"),
        ("_init_", "\u{200B}_\u{200B}init\u{200B}_\u{200B}"),
        ("~/.bashrc", "\u{200B}~\u{200B}/.bashrc"),
        ("`x`", "\u{200B}`\u{200B}x\u{200B}`\u{200B}"),
        ("a*", "a\u{200B}*\u{200B}"),
        ("**", "\u{200B}*\u{200B}\u{200B}*\u{200B}"),
        // Between letters or between spaces a marker cannot pair: left alone.
        ("x_y 2*3 2 * 3", "x_y 2*3 2 * 3"),
    ] {
        assert_eq!(render(&RichText::plain(message)), mrkdwn, "{message:?}");
        let back = read(mrkdwn);
        assert_eq!(visible(&back), message, "{mrkdwn:?}");
        assert_eq!(back.spans.len(), 1, "{mrkdwn:?} gained a style: {back:?}");
    }
}

#[test]
fn a_line_never_starts_a_quote() {
    for (message, mrkdwn) in [
        ("> quote", "\u{200B}&gt; quote"),
        ("a\n  > b", "a\n  \u{200B}&gt; b"),
        ("a > b", "a &gt; b"),
    ] {
        assert_eq!(render(&RichText::plain(message)), mrkdwn, "{message:?}");
    }
}

#[test]
fn renders_each_style() {
    for (flags, mrkdwn) in [
        ("b", "*x y*"),
        ("i", "_x y_"),
        ("s", "~x y~"),
        ("m", "`x y`"),
        ("bi", "*_x y_*"),
        ("bs", "~*x y*~"),
        ("bm", "*`x y`*"),
        ("bism", "~*_`x y`_*~"),
        ("u", "x y"),
    ] {
        assert_eq!(render_spans(vec![text("x y", flags)]), mrkdwn, "{flags}");
        let shown = flags.replace('u', "");
        assert_eq!(read(mrkdwn).spans, vec![text("x y", &shown)], "{mrkdwn}");
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
fn markers_hug_the_text_and_nest() {
    for (spans, mrkdwn) in [
        (vec![text("bold ", "b"), text("x", "")], "*bold* x"),
        (
            vec![text("a", ""), text(" b ", "i"), text("c", "")],
            "a _b_ c",
        ),
        (
            vec![text("a ", "b"), text("b", "bi"), text(" c", "b")],
            "*a _b_ c*",
        ),
        (
            vec![text("a ", "i"), text("b", "bi"), text(" c", "b")],
            "_a *b*_ *c*",
        ),
        (
            vec![text("a ", "b"), text("code", "bm"), text(" c", "b")],
            "*a `code` c*",
        ),
        (vec![text("(", ""), text("b", "b"), text(")", "")], "(*b*)"),
    ] {
        let rich = rich(spans);
        assert_eq!(render(&rich), mrkdwn, "{rich:?}");
        assert_eq!(styled_chars(&read(mrkdwn)), styled_chars(&rich), "{mrkdwn}");
    }
}

#[test]
fn styles_mrkdwn_cannot_show_are_dropped_not_shown_as_markers() {
    for (spans, mrkdwn) in [
        (vec![text("a", ""), text("b", "b"), text("c", "")], "abc"),
        (vec![text("C", ""), text("++", "b")], "C++"),
        (vec![text("x", ""), text("code", "m")], "xcode"),
        (vec![text("bold", "b"), text("s", "")], "bolds"),
        // A styled literal marker: its zero-width spaces would keep the markers apart.
        (vec![text("*", "b")], "*"),
        (
            vec![text("*a*", "b")],
            "\u{200B}*\u{200B}a\u{200B}*\u{200B}",
        ),
        // Only the style that fails goes; the others stay.
        (
            vec![
                text("x ", "i"),
                text("a", "i"),
                text("mid", "bi"),
                text(" y", "i"),
            ],
            "_x amid y_",
        ),
    ] {
        let rich = rich(spans);
        assert_eq!(render(&rich), mrkdwn, "{rich:?}");
        assert_eq!(visible(&read(mrkdwn)), visible(&rich));
    }
}

#[test]
fn backticks_cannot_be_code() {
    let mrkdwn = render_spans(vec![text("a`b", "m")]);
    assert_eq!(mrkdwn, "`a`\u{200B}`\u{200B}`b`");
    assert_eq!(
        read(&mrkdwn).spans,
        vec![
            text("a", "m"),
            text("\u{200B}`\u{200B}", ""),
            text("b", "m")
        ]
    );
}

#[test]
fn renders_links() {
    let url = "https://x.test/a";
    for (span, mrkdwn) in [
        (link(url, url, ""), "<https://x.test/a>"),
        (link("", url, ""), "<https://x.test/a>"),
        (link("docs", url, ""), "<https://x.test/a|docs>"),
        (link("docs", url, "b"), "*<https://x.test/a|docs>*"),
        (link("docs", url, "m"), "<https://x.test/a|docs>"),
        (
            link("a|b > c < d & e", url, ""),
            "<https://x.test/a|a|b &gt; c &lt; d &amp; e>",
        ),
        (
            link("q", "https://x.test/?a=1&b=2", ""),
            "<https://x.test/?a=1&amp;b=2|q>",
        ),
        (
            link("s", "https://x.test/a b|<c>`", ""),
            "<https://x.test/a%20b%7C%3Cc%3E%60|s>",
        ),
        (
            link("social", "https://x.test/@here", ""),
            "<https://x.test/@here|social>",
        ),
        (link("a ```b", url, ""), "<https://x.test/a|a ``\u{200B}`b>"),
        (
            link("mail", "mailto:a@x.test", ""),
            "<mailto:a@x.test|mail>",
        ),
        // No scheme: no link (`<!`, `<@`, `<#` must never be written), the text.
        (link("www.x.test", "www.x.test", ""), "www.x.test"),
        (link("docs", "www.x.test", ""), "docs (www.x.test)"),
        (link("x", "!channel", ""), "x (!channel)"),
        (link("x", "@U1", ""), "x (@U1)"),
    ] {
        assert_eq!(render_spans(vec![span.clone()]), mrkdwn, "{span:?}");
    }
}

#[test]
fn links_come_back_as_they_were() {
    let url = "https://x.test/a";
    for span in [
        link(url, url, ""),
        link("docs", url, "b"),
        link("a|b > c < d & e", url, "i"),
        link("q", "https://x.test/?a=1&b=2", "s"),
        link("write", "mailto:a@x.test", ""),
        link("😀 ünï", url, "bi"),
    ] {
        let mrkdwn = render_spans(vec![span.clone()]);
        assert_eq!(read(&mrkdwn).spans, vec![span], "{mrkdwn:?}");
    }
}

#[test]
fn mentions_from_other_networks_are_plain_text() {
    let id_less = Span::Mention {
        name: "Carol *".into(),
        user_id: None,
    };
    for (spans, mrkdwn) in [
        (vec![text("hi ", ""), mention("alice", "u1")], "hi @alice"),
        (vec![mention("@bob_x", "u2")], "@bob_x"),
        (vec![id_less], "Carol *"),
        (vec![mention("here", "u3")], "@\u{200B}here"),
        (vec![mention("U123>", "U123")], "@U123&gt;"),
    ] {
        assert_eq!(render_spans(spans), mrkdwn);
    }
}

#[test]
fn renders_code_blocks_on_their_own_lines() {
    for (spans, mrkdwn) in [
        (
            vec![
                text("look:", ""),
                code_block("fn main() {}\n"),
                text("after", ""),
            ],
            "look:\n```\nfn main() {}\n```\nafter",
        ),
        (
            vec![text("look:\n", ""), code_block("x")],
            "look:\n```\nx\n```",
        ),
        (
            vec![code_block("a ``` b < c & d\n````")],
            "```\na ``\u{200B}` b &lt; c &amp; d\n``\u{200B}``\n```",
        ),
        (vec![code_block("")], "```\n```"),
        (
            vec![code_block("<!here> @here")],
            "```\n&lt;!here&gt; @\u{200B}here\n```",
        ),
        (
            vec![Span::CodeBlock {
                language: Some("rust".into()),
                code: "x".into(),
            }],
            "```\nx\n```",
        ),
    ] {
        assert_eq!(render_spans(spans), mrkdwn);
    }
}

fn render_with(content: &RichText, style: MessageStyle, label: &str) -> Vec<String> {
    SLACK_TEXT
        .render(content, style, label, None)
        .into_iter()
        .map(|part| part.body)
        .collect()
}

#[test]
fn labels_go_before_the_text() {
    let hi = RichText::plain("hi");
    for (label, style, mrkdwn) in [
        ("<alice> ", MessageStyle::Normal, "alice: hi"),
        ("<alice> ", MessageStyle::Notice, "alice: hi"),
        ("<alice> ", MessageStyle::Action, "_alice hi_"),
        ("[irc] bob: ", MessageStyle::Normal, "[irc] bob: hi"),
        (
            "*bob* ",
            MessageStyle::Normal,
            "\u{200B}*\u{200B}bob\u{200B}*\u{200B} hi",
        ),
        ("<a<b> ", MessageStyle::Normal, "&lt;a&lt;b&gt; hi"),
        ("<here> ", MessageStyle::Normal, "here: hi"),
        ("@here: ", MessageStyle::Normal, "@\u{200B}here: hi"),
        ("", MessageStyle::Normal, "hi"),
    ] {
        assert_eq!(render_with(&hi, style, label), vec![mrkdwn], "{label:?}");
    }
}

#[test]
fn actions_are_in_italics() {
    let content = rich(vec![
        text("waves at ", ""),
        mention("bob", "u1"),
        text(" and ", ""),
        link("docs", "https://x.test/", "b"),
    ]);
    assert_eq!(
        render_with(&content, MessageStyle::Action, "<alice> "),
        vec!["_alice waves at @bob and *<https://x.test/|docs>*_"]
    );
}

#[test]
fn relayed_names_hide_a_zero_width_joiner() {
    assert_eq!(SLACK_TEXT.name_without_ping("alice"), "a\u{200D}lice");
    assert_eq!(SLACK_TEXT.name_without_ping("a"), "a");
}

// --- both ways -------------------------------------------------------------

#[test]
fn rich_text_round_trips_through_mrkdwn() {
    let url = "https://x.test/a";
    let cases = vec![
        vec![text("plain", "")],
        vec![
            text("b", "b"),
            text(" i", "i"),
            text(" s", "s"),
            text(" m", "m"),
        ],
        vec![text("u", "u"), text(" bi", "bi"), text(" all", "bism")],
        vec![
            text("bold ", "b"),
            text("x", ""),
            text(" ital ", "i"),
            text("y", ""),
        ],
        vec![text(
            "2 * 3 = 6, snake_case, a_b_c, *, ~, [x], \\, `, *a*, _b_, ~c~, `d`, **e**, __f__ g*",
            "",
        )],
        vec![text("a*b", "b"), text(" and ", ""), text("x_y", "i")],
        vec![text("&amp; &lt; &gt; & < > AT&T x<y>z", "")],
        vec![text("<!channel> <@U1> <#C1|x> <https://x.test|y>", "")],
        vec![
            text("see ", ""),
            link("a|b > c < d & e", url, "b"),
            text(" or ", ""),
            link(url, url, ""),
            text(" ", ""),
            link("q", "https://x.test/?a=1&b=2", "i"),
        ],
        vec![
            text("😀 ünïcödé 日本語 ", ""),
            text("太字", "b"),
            text(" 👍🏽 ", ""),
            text("emoji 🎉", "i"),
        ],
        vec![text("line one\nline two", "b"), text("\n\nthree", "")],
        vec![
            text("look:", ""),
            code_block("let a = `b`;\n```\n<tag> & *x* @here"),
            text("after", ""),
        ],
        vec![text("> not a quote\n>> nor this", "")],
        vec![text("@\u{200B}channel and @\u{200B}here", "")],
        vec![text("a *b* _c_ <d>", "m")],
        vec![text("code ", "b"), text("in bold", "bm")],
        vec![text("x", ""), text(" (b) ", "b"), text("c", "")],
    ];
    for spans in cases {
        let rich = rich(spans);
        let mrkdwn = render(&rich);
        let back = read(&mrkdwn);
        assert_eq!(visible(&back), visible(&rich), "{mrkdwn:?}");
        assert_eq!(styled_chars(&back), styled_chars(&rich), "{mrkdwn:?}");
        assert!(!notifies(&mrkdwn), "{mrkdwn:?}");
    }
}

#[test]
fn typical_slack_messages_are_stable() {
    for mrkdwn in [
        "*bold* _italic_ ~gone~ `code`",
        "*_both_* and *`bold code`*",
        "see <https://x.test/docs|the docs> or <https://x.test/>",
        "look:\n```\nfn main() {}\n```\nafter",
        "first line\nsecond line",
        "a &amp; b &lt; c",
        "snake_case 2 * 3 😀",
    ] {
        assert_eq!(render(&read(mrkdwn)), mrkdwn);
    }
}

// --- splitting ---------------------------------------------------------------

fn split(content: &RichText, budget: usize) -> Vec<String> {
    SLACK_TEXT
        .render(content, MessageStyle::Normal, "", Some(budget))
        .into_iter()
        .map(|part| part.body)
        .collect()
}

#[test]
fn splits_at_spaces_and_closes_styles_in_each_part() {
    assert_eq!(
        split(&RichText::plain("aaaa bbbb cccc"), 10),
        vec!["aaaa bbbb", " cccc"]
    );
    assert_eq!(
        split(&rich(vec![text("aaaa bbbb cccc", "b")]), 12),
        vec!["*aaaa bbbb*", " *cccc*"]
    );
    assert_eq!(
        split(&RichText::plain("a & b & c"), 9),
        vec!["a &amp; b", " &amp; c"]
    );
    // Lines go together while they fit.
    assert_eq!(
        split(&RichText::plain("one\ntwo\nthree\nfour"), 10),
        vec!["one\ntwo", "three\nfour"]
    );
}

#[test]
fn long_code_blocks_are_cut_between_lines_each_part_fenced() {
    let code = (0..12)
        .map(|i| format!("line {i} < x"))
        .collect::<Vec<_>>()
        .join("\n");
    let parts = split(&rich(vec![code_block(&code)]), 48);
    assert!(parts.len() > 2, "{parts:?}");
    let mut lines = Vec::new();
    for part in &parts {
        assert!(part.len() <= 48, "{part:?}");
        match read(part).spans.as_slice() {
            [Span::CodeBlock { code, .. }] => lines.push(code.clone()),
            other => panic!("{part:?} -> {other:?}"),
        }
    }
    assert_eq!(lines.join("\n"), code);
}

#[test]
fn split_parts_keep_their_text_markup_and_budget() {
    let content = rich(vec![
        text("Some ", ""),
        text("bold words", "b"),
        text(" and ", ""),
        text("italic ones", "i"),
        text(" with AT&T <tags> and 2 * 3, ", ""),
        link("a link", "https://x.test/a?b=1&c=2", "b"),
        text(" then ", ""),
        text("code span", "m"),
        text(" 😀 done *literal* ~tilde~ ", ""),
        text("struck", "s"),
        text("\nsecond line ", ""),
        code_block("fn main() {\n    println!(\"<hi> & @here\");\n}"),
        text("after", ""),
    ]);
    let without_blanks = |text: &str| text.replace(|c: char| c.is_whitespace(), "");
    for budget in [6, 9, 12, 16, 24, 40, 64, 100, 1000] {
        let parts = split(&content, budget);
        let mut seen = String::new();
        let mut styled = Vec::new();
        for part in &parts {
            assert!(part.len() <= budget, "{budget}: {part:?}");
            assert!(!part.trim().is_empty(), "{budget}: {parts:?}");
            let back = read(part);
            seen.push_str(&visible(&back));
            styled.extend(styled_chars(&back));
        }
        assert_eq!(
            without_blanks(&seen),
            without_blanks(&visible(&content)),
            "{budget}: {parts:?}"
        );
        if budget >= 40 {
            // Wide enough for every styled run and the link with its markup.
            let wanted: Vec<_> = styled_chars(&content)
                .into_iter()
                .filter(|&(c, ..)| c != '@')
                .collect();
            styled.retain(|&(c, ..)| c != '@');
            let plain_code = |chars: Vec<(char, bool, bool, bool, bool)>| {
                chars
                    .into_iter()
                    .map(|(c, b, i, s, _)| (c, b, i, s))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                plain_code(styled),
                plain_code(wanted),
                "{budget}: {parts:?}"
            );
        }
    }
}

#[test]
fn a_budget_smaller_than_the_markup_still_sends_everything() {
    let content = rich(vec![
        text("&&", "b"),
        link("x", "https://x.test/long/path", ""),
        code_block("<<"),
    ]);
    for budget in [1, 2, 3, 4, 5] {
        let parts = split(&content, budget);
        // `&amp;` is the widest thing that cannot be cut.
        assert!(
            parts.iter().all(|part| part.len() <= budget.max(5)),
            "{parts:?}"
        );
        assert!(parts.iter().all(|part| !part.contains('<')), "{parts:?}");
    }
}

// --- mention safety on the final parts ---------------------------------------

/// Everything someone might relay to make Slack notify people.
const HOSTILE: &[&str] = &[
    "<!channel>",
    "<!here>",
    "<!here|here>",
    "<!everyone>",
    "<!channel|@channel>",
    "&lt;!channel&gt;",
    "&lt;!here>",
    "<<!channel>>",
    "<@U123>",
    "<@W123|bob>",
    "<#C123>",
    "<#C123|general>",
    "<!subteam^S1|@team>",
    "<!subteam^S1>",
    "<!date^1^{date}|x>",
    "<!foo>",
    "@here",
    "@channel",
    "@everyone",
    "@HERE",
    "@Channel!",
    "@everyone's",
    "*@*here",
    "_@here_",
    "@<b>here",
    "@\u{200B}here",
    "@\u{200D}here",
    "@\u{2060}channel",
    "@\u{FEFF}everyone",
    "＜!channel＞",
    "＠here",
    "&#64;here",
    "&#x40;channel",
    "&commat;everyone",
    "<https://x.test|<!channel>>",
    "<https://x.test|@here>",
    "<!channel|x><https://x.test>",
    "a|<!here>|b",
    "x|y><!here",
    "<!chan\nnel>",
    "<\u{200B}!channel>",
    "x <!here> y @everyone z",
    "<!channel",
    "!channel>",
    "<@",
    "<",
    "@",
    "`<!here>` ```<!channel>```",
];

/// `hostile` as relayed content in many shapes, with the label to send it with.
fn forms(hostile: &str) -> Vec<(RichText, String)> {
    let styles = ["b", "", "i", "m", "s", "bi", "u", "bm"];
    let mut forms: Vec<RichText> = vec![
        RichText::plain(hostile),
        RichText::plain(format!("xxxxxxxxxx{hostile}yyyy {hostile}")),
        rich(vec![link(hostile, "https://x.test/a", "")]),
        rich(vec![link("x", &format!("https://x.test/{hostile}"), "b")]),
        rich(vec![link(hostile, hostile, "")]),
        rich(vec![link("t", &format!("mailto:{hostile}"), "")]),
        rich(vec![mention(hostile, "u1")]),
        rich(vec![Span::Mention {
            name: hostile.into(),
            user_id: None,
        }]),
        rich(vec![code_block(hostile)]),
        rich(vec![text(hostile, "m")]),
        rich(
            hostile
                .chars()
                .enumerate()
                .map(|(k, c)| text(&c.to_string(), styles[k % styles.len()]))
                .collect(),
        ),
    ];
    // Split across two styles at every character boundary.
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

/// `text` with the address of each `<scheme:...|label>` link cut out.
fn without_link_addresses(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let is_link = after.split_once(':').is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        });
        if is_link && let Some(end) = after.find(['|', '>']) {
            out.push('<');
            rest = &after[end..];
        } else {
            out.push('<');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Asserts Slack would notify no one for this final part.
fn assert_safe(part: &str, context: &dyn std::fmt::Debug) {
    for command in ["<!", "<@", "<#"] {
        assert!(
            !part.contains(command),
            "{command} in {part:?} from {context:?}"
        );
    }
    // Slack reads no mentions in a link's address (`<https://x/@here|label>`).
    let lower = without_link_addresses(part).to_lowercase();
    for word in ["@here", "@channel", "@everyone"] {
        assert!(!lower.contains(word), "{word} in {part:?} from {context:?}");
    }
    assert!(!notifies(part), "{part:?} from {context:?}");
    assert_eq!(guard(part), part, "guard changes {part:?} from {context:?}");
}

#[test]
fn no_final_part_notifies_anyone() {
    assert!(HOSTILE.len() >= 30);
    let mut checked = 0;
    for hostile in HOSTILE {
        for (content, label) in forms(hostile) {
            for budget in [None, Some(5), Some(7), Some(12), Some(20), Some(64)] {
                let capabilities = Capabilities {
                    text: TextFormat::new(SLACK_TEXT),
                    max_message_bytes: budget,
                    ..Capabilities::default()
                };
                for style in [MessageStyle::Normal, MessageStyle::Action] {
                    let context = (hostile, &content, &label, budget, style);
                    let parts = final_parts(&capabilities, &content, style, &label, true)
                        .unwrap_or_else(|err| panic!("{err} for {context:?}"));
                    for part in &parts {
                        assert_safe(&part.body, &context);
                        if let Some(budget) = budget {
                            assert!(part.body.len() <= budget, "over budget: {context:?}");
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn guard_and_notifies_on_raw_text() {
    for hostile in HOSTILE {
        let guarded = guard(hostile);
        assert_safe(&guarded, hostile);
        assert_eq!(guard(&guarded), guarded);
    }
    assert!(notifies("<!here>"));
    assert!(notifies("hey @Everyone"));
    // A link's address is not read for mentions, and stays as written.
    assert!(!notifies("<https://x.test/@here> is a link"));
    assert_eq!(
        guard("<https://x.test/@here|@here>"),
        "<https://x.test/@here|@\u{200B}here>"
    );
}

// --- generated ---------------------------------------------------------------

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

/// Lines without blank ones and U+200B: what rendering may normalise.
fn normalise(text: &str) -> String {
    text.replace(ZWSP, "")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn generated_rich_text_keeps_its_text_never_gains_style_and_never_notifies() {
    const TOKENS: &[&str] = &[
        "a",
        "word",
        " ",
        "  ",
        "\n",
        "*",
        "**",
        "_",
        "__",
        "~",
        "`",
        "```",
        "<",
        ">",
        "&",
        "&amp;",
        "&lt;",
        "|",
        "@",
        "@here",
        "@\u{200B}channel",
        "<!channel>",
        "<@U1>",
        "😀",
        "ü",
        "x_y",
        "2*3",
        ".",
        "(",
        ")",
        "> ",
        "\t",
        "https://x.test/a",
        ":smile:",
        "\u{200B}",
        "#",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let mut rich = RichText::default();
        for _ in 0..1 + rng.below(6) {
            match rng.below(12) {
                0 => rich.push(Span::Link {
                    text: rng
                        .pick(&["docs", "a b", "", "*x*", "a|b>", "@here"])
                        .into(),
                    url: rng
                        .pick(&[
                            "https://x.test/a",
                            "https://x.test/a_(b)",
                            "mailto:a@x.test",
                        ])
                        .into(),
                    style: rng.style(),
                }),
                1 => rich.push(code_block("let a = `b`;\n```\n<x> & @here")),
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
        let mrkdwn = render(&rich);
        let back = read(&mrkdwn);
        assert!(!notifies(&mrkdwn), "{rich:?} -> {mrkdwn:?}");
        assert_eq!(
            normalise(&back.to_plain()),
            normalise(&rich.to_plain()),
            "{rich:?} -> {mrkdwn:?}"
        );
        let wanted = styled_chars(&rich);
        let got = styled_chars(&back);
        assert_eq!(wanted.len(), got.len(), "{mrkdwn:?}");
        for (want, got) in wanted.iter().zip(&got) {
            let gained = (got.1 && !want.1)
                || (got.2 && !want.2)
                || (got.3 && !want.3)
                || (got.4 && !want.4);
            assert!(!gained, "{:?} gained style in {mrkdwn:?}", want.0);
        }
        let settled = render(&back);
        assert_eq!(render(&read(&settled)), settled, "{mrkdwn:?}");
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
        "[x]",
        "2*3",
        "a&b",
        "<b>",
    ];
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..3000 {
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
        let mrkdwn = render(&rich);
        let back = read(&mrkdwn);
        assert_eq!(visible(&back), rich.to_plain(), "{mrkdwn:?}");
        assert_eq!(
            styled_chars(&back),
            styled_chars(&rich),
            "{rich:?} -> {mrkdwn:?}"
        );
    }
}

#[test]
fn long_messages_split_into_full_parts_that_keep_everything() {
    let line = "lorem *ipsum* dolor_sit <amet> & @here ".repeat(8_000);
    let mut styled = RichText::default();
    for i in 0..12_000 {
        styled.push_text("word ", st(["b", "", "i", "m"][i % 4]));
    }
    for content in [RichText::plain(line.as_str()), styled] {
        let parts = split(&content, MAX_MESSAGE_BYTES);
        assert!(parts.len() > 1);
        let mut seen = String::new();
        for (i, part) in parts.iter().enumerate() {
            assert!(part.len() <= MAX_MESSAGE_BYTES);
            if i + 1 < parts.len() {
                assert!(
                    part.len() > MAX_MESSAGE_BYTES / 2,
                    "part {i} is {}",
                    part.len()
                );
            }
            seen.push_str(&visible(&read(part)));
        }
        assert_eq!(seen.trim_end(), visible(&content).trim_end());
    }
    // A line of markers that never close reads in one pass.
    let unmatched = "*a _b ~c `d ".repeat(50_000);
    assert_eq!(read(&unmatched).spans, vec![text(&unmatched, "")]);
}
