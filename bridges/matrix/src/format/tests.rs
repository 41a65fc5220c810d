//! Exact expectations for every parse and render rule, reply fallbacks, and round
//! trips.

use super::*;
use switchboard_sdk::{Span, Style};

/// A style from flags: b(old), i(talic), u(nderline), s(trike), m(onospace).
fn st(flags: &str) -> Style {
    Style {
        bold: flags.contains('b'),
        italic: flags.contains('i'),
        underline: flags.contains('u'),
        strikethrough: flags.contains('s'),
        monospace: flags.contains('m'),
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

fn mention(name: &str, user_id: &str) -> Span {
    Span::Mention {
        name: name.into(),
        user_id: Some(user_id.into()),
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

fn html(formatted: &str) -> Vec<Span> {
    parse("", Some(formatted), false).spans
}

fn render_html(spans: Vec<Span>) -> Option<String> {
    render(&rich(spans)).1
}

// --- parse: HTML -----------------------------------------------------------

#[test]
fn parses_every_style_tag() {
    assert_eq!(
        html(
            "<b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> \
             <del>d</del> <s>s</s> <strike>k</strike> <code>c</code>"
        ),
        rich(vec![
            text("b", "b"),
            text(" ", ""),
            text("s", "b"),
            text(" ", ""),
            text("i", "i"),
            text(" ", ""),
            text("e", "i"),
            text(" ", ""),
            text("u", "u"),
            text(" ", ""),
            text("d", "s"),
            text(" ", ""),
            text("s", "s"),
            text(" ", ""),
            text("k", "s"),
            text(" ", ""),
            text("c", "m"),
        ])
        .spans
    );
    assert_eq!(
        html("<strong><em>both</em> bold</strong> plain"),
        vec![text("both", "bi"), text(" bold", "b"), text(" plain", "")]
    );
}

#[test]
fn parses_code_blocks_with_their_language() {
    assert_eq!(
        html("<pre><code class=\"language-rust\">fn main() {\n    x &lt; 1\n}\n</code></pre>\n"),
        vec![code_block(Some("rust"), "fn main() {\n    x < 1\n}\n")]
    );
    // No <code>, the language on <pre>, highlighting markup, <br> inside.
    assert_eq!(
        html("<pre>a  b\n\tc</pre>"),
        vec![code_block(None, "a  b\n\tc")]
    );
    assert_eq!(
        html("<pre class=\"language-sh\"><span class=\"kw\">echo</span> hi<br>ls</pre>"),
        vec![code_block(Some("sh"), "echo hi\nls")]
    );
    assert_eq!(
        html("<pre><code class=\"hljs language-py other\">x</code></pre>"),
        vec![code_block(Some("py"), "x")]
    );
}

#[test]
fn code_blocks_sit_on_lines_of_their_own() {
    let parsed = parse(
        "",
        Some("<p>look:</p>\n<pre><code>x = 1\n</code></pre>\n<p>after</p>\n"),
        false,
    );
    assert_eq!(
        parsed.spans,
        vec![
            text("look:", ""),
            code_block(None, "x = 1\n"),
            text("after", "")
        ]
    );
    assert_eq!(parsed.to_plain(), "look:\nx = 1\nafter");
    // In a list item, the marker goes on the line before the code.
    assert_eq!(
        parse(
            "",
            Some("<ol><li><pre><code>x</code></pre></li><li>y</li></ol>"),
            false
        )
        .to_plain(),
        "1. \nx\n2. y"
    );
}

#[test]
fn parses_links_with_their_style() {
    assert_eq!(
        html("see <a href=\"https://example.org/x?a=1&amp;b=2\">the docs</a>."),
        vec![
            text("see ", ""),
            link("the docs", "https://example.org/x?a=1&b=2", ""),
            text(".", "")
        ]
    );
    assert_eq!(
        html("<a href=\"https://x.test/\"><b>bold</b></a>"),
        vec![link("bold", "https://x.test/", "b")]
    );
    assert_eq!(
        html("<em><a href=\"https://x.test/\">it</a> too</em>"),
        vec![link("it", "https://x.test/", "i"), text(" too", "i")]
    );
    // The model gives a link one style: the one all of its text has.
    assert_eq!(
        html("<a href=\"https://x.test/\"><b>a</b>b</a>"),
        vec![link("ab", "https://x.test/", "")]
    );
    // Whitespace at the ends of the link text shows outside it; lines are joined.
    assert_eq!(
        html("a<a href=\"mailto:x@y.test\"> mail<br>me </a>b"),
        vec![
            text("a ", ""),
            link("mail me", "mailto:x@y.test", ""),
            text(" b", "")
        ]
    );
}

#[test]
fn links_no_one_could_open_are_their_text() {
    assert_eq!(
        html(
            "<a href=\"javascript:alert(1)\">click</a> <a href=\"/relative\">rel</a> <a>anchor</a>"
        ),
        vec![text("click rel anchor", "")]
    );
}

#[test]
fn user_pills_become_mentions_that_do_not_ping() {
    assert_eq!(
        html("hi <a href=\"https://matrix.to/#/@alice:localhost\">Alice</a>!"),
        vec![
            text("hi ", ""),
            mention("Alice", "@alice:localhost"),
            text("!", "")
        ]
    );
    // Percent-encoded, matrix: URIs, and a pill without text.
    assert_eq!(
        html("<a href=\"https://matrix.to/#/%40bob%3Aexample.org\">Bob</a>"),
        vec![mention("Bob", "@bob:example.org")]
    );
    assert_eq!(
        html("<a href=\"matrix:u/carol:example.org?action=chat\">Carol</a>"),
        vec![mention("Carol", "@carol:example.org")]
    );
    assert_eq!(
        html("<a href=\"https://matrix.to/#/@dave:localhost\"></a>"),
        vec![mention("@dave:localhost", "@dave:localhost")]
    );
    let parsed = parse(
        "Alice: hi",
        Some("<a href=\"https://matrix.to/#/@alice:localhost\">Alice</a>: hi"),
        false,
    );
    assert_eq!(parsed.to_plain(), "Alice: hi");
}

#[test]
fn room_pills_are_text_and_event_links_stay_links() {
    assert_eq!(
        html(
            "join <a href=\"https://matrix.to/#/#room:localhost\">#room:localhost</a> or \
             <a href=\"https://matrix.to/#/!abc:localhost?via=localhost\">the <b>room</b></a>"
        ),
        vec![text("join #room:localhost or the ", ""), text("room", "b")]
    );
    assert_eq!(
        html("<a href=\"matrix:r/room:localhost\">#room:localhost</a>"),
        vec![text("#room:localhost", "")]
    );
    let permalink = "https://matrix.to/#/!abc:localhost/$event?via=localhost";
    assert_eq!(
        html(&format!("<a href=\"{permalink}\">this</a>")),
        vec![link("this", permalink, "")]
    );
}

#[test]
fn line_breaks_and_blocks_are_one_newline() {
    assert_eq!(
        parse("", Some("<p>one</p>\n<p>two</p>\n"), false).to_plain(),
        "one\ntwo"
    );
    assert_eq!(
        parse("", Some("a<br>b<br />\nc"), false).to_plain(),
        "a\nb\nc"
    );
    assert_eq!(parse("", Some("a<br><br>b"), false).to_plain(), "a\n\nb");
    // A <br> ending a block adds no empty line; nothing trails.
    assert_eq!(
        parse("", Some("<p>a<br></p><p>b</p><br><div></div>"), false).to_plain(),
        "a\nb"
    );
    assert_eq!(
        parse("", Some("<div>a</div><div>b</div>c"), false).to_plain(),
        "a\nb\nc"
    );
    assert_eq!(
        html("<h1>Title</h1>\n<p>text</p>"),
        vec![text("Title", "b"), text("\ntext", "")]
    );
    assert_eq!(parse("", Some("a<hr>b"), false).to_plain(), "a\n---\nb");
}

#[test]
fn list_items_get_markers() {
    let plain = |formatted: &str| parse("", Some(formatted), false).to_plain();
    assert_eq!(
        plain("<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"),
        "- one\n- two"
    );
    assert_eq!(
        plain("<p>Items:</p><ol start=\"3\"><li>a</li><li>b</li></ol>after"),
        "Items:\n3. a\n4. b\nafter"
    );
    assert_eq!(
        plain("<ul><li>a<ul><li>b<br>more</li></ul></li><li>c</li></ul>"),
        "- a\n  - b\n    more\n- c"
    );
    // Loose lists wrap items in paragraphs.
    assert_eq!(
        plain("<ol>\n<li>\n<p>a</p>\n</li>\n<li>\n<p>b</p>\n</li>\n</ol>"),
        "1. a\n2. b"
    );
}

#[test]
fn quoted_lines_get_prefixes() {
    let plain = |formatted: &str| parse("", Some(formatted), false).to_plain();
    assert_eq!(
        plain("<blockquote>\n<p>quoted</p>\n</blockquote>\n<p>reply</p>\n"),
        "> quoted\nreply"
    );
    assert_eq!(plain("<blockquote>a<br>b</blockquote>c"), "> a\n> b\nc");
    assert_eq!(
        plain("<blockquote><blockquote>x</blockquote>y</blockquote>"),
        "> > x\n> y"
    );
}

#[test]
fn colours_images_entities_and_unknown_tags_keep_their_text() {
    assert_eq!(
        html(
            "<font data-mx-color=\"#ff0000\">red</font> and \
             <span data-mx-color=\"#00ff00\" data-mx-bg-color=\"#000000\">green</span>"
        ),
        vec![text("red and green", "")]
    );
    assert_eq!(
        html(
            "look <img src=\"mxc://x/y\" alt=\":cat:\" data-mx-emoticon> <img src=\"mxc://x/z\">here"
        ),
        vec![text("look :cat: here", "")]
    );
    assert_eq!(
        html("&lt;tag&gt; &amp; &quot;q&quot; &#39;s &#x1F600; caf&eacute;"),
        vec![text("<tag> & \"q\" 's 😀 café", "")]
    );
    assert_eq!(
        html(
            "<marquee>hi <blink>there</blink></marquee> x<sup>2</sup> <span data-mx-spoiler>boo</span>"
        ),
        vec![text("hi there x2 boo", "")]
    );
    assert_eq!(
        parse(
            "",
            Some("<details><summary>More</summary>inside</details>"),
            false
        )
        .to_plain(),
        "More\ninside"
    );
    assert_eq!(
        html("a<script>alert(1)</script><style>p {}</style>b"),
        vec![text("ab", "")]
    );
}

#[test]
fn tables_are_cells_joined_by_bars() {
    assert_eq!(
        parse(
            "",
            Some("<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td> 2 </td></tr></table>"),
            false
        )
        .to_plain(),
        "a | b\n1 | 2"
    );
}

#[test]
fn whitespace_collapses_as_a_browser_shows_it() {
    assert_eq!(html("  <p>  a \n  b  </p>  "), vec![text("a b", "")]);
    assert_eq!(html("a <b> b</b>"), vec![text("a ", ""), text("b", "b")]);
    // Non-breaking spaces show, as spaces.
    assert_eq!(html("&nbsp;a &nbsp;b&nbsp;"), vec![text(" a  b ", "")]);
}

#[test]
fn bare_urls_in_html_text_become_links_but_not_in_code() {
    assert_eq!(
        html("<p>see https://example.org/x.</p><code>https://x.test/</code>"),
        vec![
            text("see ", ""),
            link("https://example.org/x", "https://example.org/x", ""),
            text(".\n", ""),
            text("https://x.test/", "m")
        ]
    );
}

#[test]
fn deeply_nested_html_does_not_exhaust_the_stack() {
    // A Matrix event is at most 64 KiB: as deep as that nests, run on a stack the
    // size of a tokio worker's.
    let nested = [
        format!("{}deep", "<b>".repeat(21_000)),
        format!(
            "{}deep{}",
            "<span>".repeat(10_000),
            "</span>".repeat(10_000)
        ),
    ];
    for formatted in nested {
        let parsed = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || parse("", Some(&formatted), false))
            .expect("spawn")
            .join()
            .expect("no overflow");
        assert_eq!(parsed.to_plain(), "deep");
    }
}

// --- parse: plain body and reply fallbacks ---------------------------------

#[test]
fn plain_bodies_are_text_with_bare_urls_linked() {
    assert_eq!(
        parse("plain *not markdown* <b>x</b> &amp;", None, false).spans,
        vec![text("plain *not markdown* <b>x</b> &amp;", "")]
    );
    assert_eq!(
        parse(
            "see https://example.org/a_(b) and http://x.test/?q=1, not nohttps://y.test\n\n",
            None,
            false
        )
        .spans,
        vec![
            text("see ", ""),
            link("https://example.org/a_(b)", "https://example.org/a_(b)", ""),
            text(" and ", ""),
            link("http://x.test/?q=1", "http://x.test/?q=1", ""),
            text(", not nohttps://y.test", "")
        ]
    );
    assert_eq!(
        parse("  two  spaces\n\nkept \u{a0}", None, false).to_plain(),
        "  two  spaces\n\nkept \u{a0}"
    );
}

#[test]
fn strips_an_element_style_plain_reply_fallback() {
    assert_eq!(
        parse("> <@alice:localhost> original\n\nthe reply", None, true).spans,
        vec![text("the reply", "")]
    );
    assert_eq!(
        parse(
            "> <@alice:localhost> line one\n>\n> line three\n\nmy\nreply",
            None,
            true
        )
        .to_plain(),
        "my\nreply"
    );
}

#[test]
fn keeps_quotes_that_are_not_a_reply_fallback() {
    let quoted = "> <@alice:localhost> original\n\nthe reply";
    // Not a reply: the quote is what the sender typed.
    assert_eq!(parse(quoted, None, false).to_plain(), quoted);
    // No empty line after the quote: not a fallback.
    assert_eq!(
        parse("> quoted\nreply", None, true).to_plain(),
        "> quoted\nreply"
    );
    assert_eq!(
        parse("> only a quote", None, true).to_plain(),
        "> only a quote"
    );
    assert_eq!(parse("no quote", None, true).to_plain(), "no quote");
}

#[test]
fn strips_an_element_style_html_reply_fallback() {
    let body = "> <@alice:localhost> original\n\nthe reply";
    let formatted = "<mx-reply><blockquote><a href=\"https://matrix.to/#/!room/$ev\">In reply to</a> \
                     <a href=\"https://matrix.to/#/@alice:localhost\">@alice:localhost</a><br>original\
                     </blockquote></mx-reply>the reply";
    assert_eq!(
        parse(body, Some(formatted), true).spans,
        vec![text("the reply", "")]
    );
    // <mx-reply> is never shown, whatever the relation says.
    assert_eq!(
        parse(body, Some(formatted), false).spans,
        vec![text("the reply", "")]
    );
    let styled = "<mx-reply><blockquote>original</blockquote></mx-reply><p><b>the</b> reply</p>";
    assert_eq!(
        parse(body, Some(styled), true).spans,
        vec![text("the", "b"), text(" reply", "")]
    );
}

#[test]
fn html_showing_nothing_falls_back_to_the_body() {
    let body = "> <@alice:localhost> original\n\nthe reply";
    let formatted = "<mx-reply><blockquote>original</blockquote></mx-reply>";
    assert_eq!(
        parse(body, Some(formatted), true).spans,
        vec![text("the reply", "")]
    );
    assert_eq!(
        parse("image.png", Some("<img src=\"mxc://x/y\">"), false).to_plain(),
        "image.png"
    );
}

// --- render ----------------------------------------------------------------

#[test]
fn plain_text_gets_no_formatted_body() {
    assert_eq!(
        render(&RichText::plain("hello <world> & \"friends\"\nline two")),
        ("hello <world> & \"friends\"\nline two".to_owned(), None)
    );
    // A mention is a plain name; a colour alone is not rendered.
    let coloured = Style {
        color: Some(switchboard_sdk::Color { fg: 4, bg: None }),
        ..Style::default()
    };
    assert_eq!(
        render(&rich(vec![
            text("hi ", ""),
            mention("Alice", "@alice:x"),
            Span::Text {
                text: " red".into(),
                style: coloured
            }
        ])),
        ("hi Alice red".to_owned(), None)
    );
}

#[test]
fn renders_every_style() {
    for (flags, expected) in [
        ("b", "<strong>x</strong>"),
        ("i", "<em>x</em>"),
        ("u", "<u>x</u>"),
        ("s", "<del>x</del>"),
        ("m", "<code>x</code>"),
        (
            "biusm",
            "<strong><em><u><del><code>x</code></del></u></em></strong>",
        ),
    ] {
        assert_eq!(
            render(&rich(vec![text("x", flags)])),
            ("x".to_owned(), Some(expected.to_owned())),
            "{flags}"
        );
    }
    assert_eq!(
        render_html(vec![text("a", "b"), text(" b ", "bi"), text("c", "")]),
        Some("<strong>a</strong><strong><em> b </em></strong>c".to_owned())
    );
}

#[test]
fn renders_escaped_text() {
    assert_eq!(
        render(&rich(vec![text("<b>&\"x\" 'y'", "b")])),
        (
            "<b>&\"x\" 'y'".to_owned(),
            Some("<strong>&lt;b&gt;&amp;\"x\" 'y'</strong>".to_owned())
        )
    );
}

#[test]
fn renders_links() {
    assert_eq!(
        render(&rich(vec![
            text("see ", ""),
            link("the <docs>", "https://x.test/?a=1&b=\"2\"", ""),
        ])),
        (
            "see the <docs> (https://x.test/?a=1&b=\"2\")".to_owned(),
            Some(
                "see <a href=\"https://x.test/?a=1&amp;b=&quot;2&quot;\">the &lt;docs&gt;</a>"
                    .to_owned()
            )
        )
    );
    // A bare link is an <a> too, so simple messages with a URL still link.
    assert_eq!(
        render_html(vec![link("https://x.test/", "https://x.test/", "")]),
        Some("<a href=\"https://x.test/\">https://x.test/</a>".to_owned())
    );
    assert_eq!(
        render_html(vec![link("", "https://x.test/", "")]),
        Some("<a href=\"https://x.test/\">https://x.test/</a>".to_owned())
    );
    assert_eq!(
        render_html(vec![link("bold\nlink", "https://x.test/", "b")]),
        Some("<a href=\"https://x.test/\"><strong>bold link</strong></a>".to_owned())
    );
    // Without an address a link is its text.
    assert_eq!(render(&rich(vec![link("text", "", "")])).1, None);
}

#[test]
fn renders_mentions_as_plain_names_never_pills() {
    let (body, formatted) = render(&rich(vec![
        text("hi", "b"),
        text(" ", ""),
        mention("Alice <3", "@alice:localhost"),
    ]));
    assert_eq!(body, "hi Alice <3");
    assert_eq!(
        formatted.as_deref(),
        Some("<strong>hi</strong> Alice &lt;3")
    );
}

#[test]
fn renders_code_blocks() {
    assert_eq!(
        render(&rich(vec![
            text("look:", ""),
            code_block(Some("rust"), "if a < b && c {}\n"),
            text("after", ""),
        ])),
        (
            "look:\nif a < b && c {}\nafter".to_owned(),
            Some(
                "look:<pre><code class=\"language-rust\">if a &lt; b &amp;&amp; c {}\n\
                 </code></pre>after"
                    .to_owned()
            )
        )
    );
    assert_eq!(
        render_html(vec![code_block(None, "x\n\n")]),
        Some("<pre><code>x\n</code></pre>".to_owned())
    );
    // A language that would not be one class is left out.
    assert_eq!(
        render_html(vec![code_block(Some("c++ \"x\""), "")]),
        Some("<pre><code></code></pre>".to_owned())
    );
    assert_eq!(
        render_html(vec![code_block(Some("a\"b"), "y")]),
        Some("<pre><code class=\"language-a&quot;b\">y\n</code></pre>".to_owned())
    );
}

#[test]
fn renders_newlines_as_br_and_keeps_spaces_html_would_collapse() {
    assert_eq!(
        render_html(vec![text("a\nb", "b"), text("\nc", "")]),
        Some("<strong>a<br>b</strong><br>c".to_owned())
    );
    assert_eq!(
        render_html(vec![text("  two  spaces ", "b"), text("\n x ", "")]),
        Some("<strong>&nbsp;&nbsp;two &nbsp;spaces&nbsp;</strong><br>&nbsp;x&nbsp;".to_owned())
    );
    // A space before a link or mention is an ordinary one; before a code block not.
    assert_eq!(
        render_html(vec![
            text("a ", "b"),
            link("l", "https://x.test/", ""),
            text(" ", ""),
            code_block(None, "c"),
        ]),
        Some(
            "<strong>a </strong><a href=\"https://x.test/\">l</a>&nbsp;<pre><code>c\n</code></pre>"
                .to_owned()
        )
    );
}

#[test]
fn room_notifications_stay_text() {
    let room = "@\u{200B}room: look";
    assert_eq!(render(&RichText::plain(room)), (room.to_owned(), None));
    assert_eq!(
        render_html(vec![text(room, "b")]),
        Some("<strong>@\u{200B}room: look</strong>".to_owned())
    );
}

// --- round trips -----------------------------------------------------------

fn samples() -> Vec<RichText> {
    vec![
        RichText::plain("plain text"),
        RichText::plain("line one\nline two\n\nafter a blank line"),
        RichText::plain("<b>not bold</b> & \"quoted\" 'single' a<b>c"),
        RichText::plain("@\u{200B}room wake up"),
        RichText::plain("  indented  and   spaced  "),
        RichText::plain("naïve café 日本語 🎉 emoji"),
        rich(vec![text("bold", "b"), text(" plain", "")]),
        rich(vec![text("italic", "i"), text(" ", ""), text("under", "u")]),
        rich(vec![
            text("struck", "s"),
            text(" and ", ""),
            text("mono", "m"),
        ]),
        rich(vec![text("all of them", "biusm")]),
        rich(vec![text("a ", "b"), text(" b  ", "bi"), text("\nc", "i")]),
        rich(vec![text("<&>\"", "b"), text(" @\u{200B}room", "m")]),
        rich(vec![
            text("see ", ""),
            link("the docs", "https://example.org/x?a=1&b=\"2\"", ""),
            text(".", ""),
        ]),
        rich(vec![link(
            "https://example.org/bare",
            "https://example.org/bare",
            "",
        )]),
        rich(vec![link("bold link", "https://x.test/", "b")]),
        rich(vec![
            text("hi ", ""),
            mention("Alice", "@alice:localhost"),
            text(", how are you?", ""),
        ]),
        rich(vec![code_block(
            Some("rust"),
            "fn main() {\n    let x = a < b;\n}\n",
        )]),
        rich(vec![
            text("look:", ""),
            code_block(None, "  indented\n\ttab <>&\n"),
            text("after", "b"),
        ]),
        rich(vec![
            text("before\n", ""),
            code_block(Some("sh"), "echo \"hi\""),
            text("\nafter", ""),
        ]),
        rich(vec![
            text("日本語", "b"),
            text(" ünïcödé ", "i"),
            text("🎉", "s"),
        ]),
        rich(vec![text("trailing space ", "b"), text("\nnext", "")]),
    ]
}

#[test]
fn rendered_text_parses_back_to_the_same_plain_text() {
    for sample in samples() {
        let (body, formatted) = render(&sample);
        let parsed = parse(&body, formatted.as_deref(), false);
        assert_eq!(
            parsed.to_plain(),
            sample.to_plain(),
            "{sample:?} rendered as {formatted:?}"
        );
    }
}

#[test]
fn rendered_styles_and_links_parse_back_exactly() {
    // Without code blocks (whose code comes back with a final line break) or
    // mentions (which come back as text), the spans themselves survive.
    for sample in samples() {
        let exact = sample
            .spans
            .iter()
            .all(|span| matches!(span, Span::Text { .. } | Span::Link { .. }));
        if !exact {
            continue;
        }
        let (body, formatted) = render(&sample);
        let parsed = parse(&body, formatted.as_deref(), false);
        assert_eq!(parsed, sample, "rendered as {formatted:?}");
    }
}
