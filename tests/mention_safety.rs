//! Hostile room-wide mentions, from a table: every mass-mention word of every network
//! (`@channel @here @all @everyone @room <!channel> <!here> <!everyone>`), wrapped
//! in and split by `_ * ~ \` and backticks, Discord markdown, IRC
//! bold/colour/underline codes, Matrix HTML and character references, and inside
//! URLs, sent from each network the way
//! its users write it and rendered for every network (its own included: routes may
//! join two rooms of one kind) as the daemon does (the core's render and delivery
//! policy, with each destination adapter's own text rules): the parts checked are
//! exactly what the adapter is handed to send. The final text is checked by each
//! destination's own rule:
//!
//! - Mattermost: the server's rule (its markdown package's text, words split at
//!   anything but letters, digits and `: . - _ @`, `: . - _` trimmed or split off),
//!   written here independently of the adapter's guard;
//! - Matrix: Synapse's legacy `@room` body matcher (`@room` as a word, any case), and
//!   the same on the text a reader sees of `formatted_body`, code excepted;
//! - Slack: its message parser (a `<!...>`, `<@...>` or `<#...>` control sequence
//!   in the raw text, and, since clients and `link_names` resolve them, a bare
//!   `@here`/`@channel`/`@everyone` word in any case), written here independently of
//!   the adapter's guard;
//! - Discord: `@everyone` or `@here` anywhere (Discord reads them inside words and
//!   links too), or a `<@..>`, `<@!..>`, `<@&..>` or `<#..>` mention, in the raw
//!   text; the adapter also sends `allowed_mentions: {"parse": []}` (checked end to
//!   end in `tests/five_networks.rs`), but the text must be safe on its own;
//! - IRC: has no mass mentions, so the line must arrive exactly as written.
//!
//! Where nothing can ping (IRC; `@room` on Mattermost; `@all` on Matrix; every URL)
//! the text must arrive unchanged. `the_issue_cases_end_to_end` runs a
//! representative subset through the daemon binary with real ngircd and Synapse and
//! the fake Mattermost and Slack, and asserts on what each server received.

mod common;

use common::WAIT;
use common::bridge::BridgeProcess;
use common::pings::{
    discord_pings, html_text_outside_code, matrix_notifies_room, mattermost_notifies_channel,
    slack_pings,
};
use std::sync::Arc;
use switchboard::config::{Direction, IgnoreRules};
use switchboard::router::render::{Rendered, Resolved, Target, render};
use switchboard::router::{Member, Route};
use switchboard_sdk::{Capabilities, FinalText, Inbound, RichText, RoomKey, Sender, TextFormat};
use switchboard_testkit::mattermost::{FakeMattermost, Post};
use switchboard_testkit::slack::{FakeSlack, SlackOptions};
use switchboard_testkit::synapse::{MatrixPeer, Synapse, SynapseOptions};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const ZWSP: char = '\u{200B}';

const WORDS: [&str; 12] = [
    "@channel",
    "@here",
    "@all",
    "@everyone",
    "@room",
    "@CHANNEL",
    "@All",
    "@Room",
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "@here's",
];

/// Plain IRC text around a word: `{w}` is the word.
const IRC_TEXT: &[&str] = &[
    "{w}",
    "ping {w} now",
    "{w}_",
    "_{w}",
    "_{w}_",
    "__{w}__",
    "-_{w}",
    "{w}_ now",
    "ping {w}_ now",
    "\\{w}",
    "\\_{w}\\_",
    "*{w}*",
    "**{w}**",
    "~{w}~",
    "~~{w}~~",
    "`{w}`",
    "{w}.",
    "{w}:",
    "{w}-",
    "{w}__:",
    "x.{w}",
    "x-{w}",
    "x:{w}",
    "x_{w}",
    "({w})",
    "[{w}]",
    "{w}!",
    "\"{w}\"",
    ":{w}:",
    "&{w};",
    "&amp;{w}",
    "a{w}",
    "{w}x",
    "{w}@",
    "@{w}",
    "mail bob{w}.example.org",
];

/// IRC formatting codes around and inside a word: `{a}` is its first character,
/// `{b}` the rest.
const IRC_CODES: &[&str] = &[
    "\x02{w}\x02",
    "\x02{a}\x02{b}",
    "{a}\x0304{b}",
    "{a}\x0304,01{b}\x03",
    "\x0304{a}\x03{b}",
    "{a}\x1F{b}\x1F",
    "\x1F{a}\x1F{b}",
    "{a}\x02\x02{b}",
    "{a}\x0F{b}",
    "{a}\x1D{b}\x1D",
    "\x1D{a}\x1D{b}",
    "{a}\x1E{b}\x1E",
    "{a}\x11{b}\x11",
    "\x1D_{w}_\x1D",
    "\x02_\x02{w}",
    "{a}\x16{b}",
];

/// URLs containing a word: they must arrive intact everywhere.
const URLS: &[&str] = &[
    "https://social.example/{w}",
    "see https://social.example/{w} now",
    "https://social.example/{w}/status/1",
    "(https://social.example/{w})",
    "https://social.example/x_{w}",
    "http://social.example/?to={w}",
];

/// Matrix HTML: (formatted_body, body).
const MATRIX_HTML: &[(&str, &str)] = &[
    ("<b>{a}</b>{b}", "{w}"),
    ("{a}<i>{b}</i>", "{w}"),
    ("<u>{a}</u>{b}", "{w}"),
    ("<del>{a}</del>{b} x", "{w} x"),
    ("<code>{w}</code>", "{w}"),
    ("<strong>_</strong>{w}", "_{w}"),
    ("&#64;{b} now", "{w} now"),
    ("<a href=\"https://x.example/\">{w}</a>", "{w}"),
    ("<em>ping</em> {w}_", "ping {w}_"),
    ("<pre><code>{w}\n</code></pre>", "{w}"),
];

/// Slack mrkdwn as its users (and Slack's own rendering of `<!here>`) write it.
const SLACK_TEXT: &[&str] = &[
    "{w}",
    "*{a}*{b}",
    "_{w}_",
    "~{w}~",
    "`{w}`",
    "```{w}```",
    "<https://x.example/|{w}>",
    "&lt;{b}&gt;",
];

/// Discord markdown as its users write it.
const DISCORD_TEXT: &[&str] = &[
    "{w}",
    "\\{w}",
    "**{a}**{b}",
    "*{w}*",
    "__{w}__",
    "~~{w}~~",
    "||{w}||",
    "`{w}`",
    "[{w}](https://x.example/)",
    "<@&123456789012345678> {w}",
];

/// Mattermost markdown as its users write it.
const MATTERMOST_TEXT: &[&str] = &[
    "{w}",
    "\\{w}",
    "**{a}**{b}",
    "_{w}_",
    "`{w}`",
    "[{w}](https://x.example/)",
    "```\n{w}\n```",
];

fn fill(template: &str, word: &str) -> String {
    let (a, b) = word.split_at(1);
    template
        .replace("{w}", word)
        .replace("{a}", a)
        .replace("{b}", b)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    Irc,
    Matrix,
    Mattermost,
    Slack,
    Discord,
}

/// One hostile message: where it comes from and its content there.
#[derive(Debug)]
struct Case {
    from: Net,
    written: String,
    word: &'static str,
    /// The URL in it, which must arrive intact.
    url: Option<String>,
    content: RichText,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for word in WORDS {
        let irc = |template: &str, url: bool| {
            let written = fill(template, word);
            let url = url.then(|| {
                let start = written.find("http").expect("a URL");
                let rest = &written[start..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == ')')
                    .unwrap_or(rest.len());
                rest[..end].to_owned()
            });
            Case {
                from: Net::Irc,
                content: switchboard_irc::format::parse(&written),
                written,
                word,
                url,
            }
        };
        cases.extend(IRC_TEXT.iter().map(|t| irc(t, false)));
        cases.extend(IRC_CODES.iter().map(|t| irc(t, false)));
        // `<` in a URL is escaped on the way (as it must be); `@` words are the point.
        if word.starts_with('@') {
            cases.extend(URLS.iter().map(|t| irc(t, true)));
        }
        for (html, body) in MATRIX_HTML {
            let html = fill(html, &html_escape(word));
            let body = fill(body, word);
            cases.push(Case {
                from: Net::Matrix,
                content: switchboard_matrix::format::parse(&body, Some(&html), false),
                written: html,
                word,
                url: None,
            });
        }
        for mrkdwn in SLACK_TEXT {
            let written = fill(mrkdwn, word);
            cases.push(Case {
                from: Net::Slack,
                content: switchboard_slack::format::parse(
                    &written,
                    &switchboard_slack::format::NoNames,
                ),
                written,
                word,
                url: None,
            });
        }
        for markdown in DISCORD_TEXT {
            let written = fill(markdown, word);
            cases.push(Case {
                from: Net::Discord,
                content: switchboard_discord::format::parse(
                    &written,
                    &switchboard_discord::format::NoNames,
                ),
                written,
                word,
                url: None,
            });
        }
        for markdown in MATTERMOST_TEXT {
            let written = fill(markdown, word);
            cases.push(Case {
                from: Net::Mattermost,
                content: switchboard_mattermost::format::parse(&written),
                written,
                word,
                url: None,
            });
        }
    }
    cases
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What a room on `to` can do, as its adapter declares it; `per_message_sender`:
/// the room shows the author's name per message (Mattermost name overrides, Matrix
/// ghosts), so no label goes into the text.
fn capabilities(to: Net, per_message_sender: bool) -> Capabilities {
    let (text, max_message_bytes) = match to {
        Net::Irc => (
            TextFormat::new(switchboard_irc::outbound::IrcText { name_guard: None }),
            Some(switchboard_irc::outbound::text_budget("#d", 64)),
        ),
        Net::Matrix => (
            TextFormat::new(switchboard_matrix::format::MatrixText),
            None,
        ),
        Net::Mattermost => (
            TextFormat::new(switchboard_mattermost::format::MattermostText),
            Some(switchboard_mattermost::MAX_POST_BYTES),
        ),
        Net::Slack => (
            TextFormat::new(switchboard_slack::format::SLACK_TEXT),
            Some(switchboard_slack::format::MAX_MESSAGE_BYTES),
        ),
        Net::Discord => (
            TextFormat::new(switchboard_discord::format::DISCORD_TEXT),
            Some(switchboard_discord::format::MAX_MESSAGE_BYTES),
        ),
    };
    Capabilities {
        per_message_sender,
        max_message_bytes,
        text,
        ..Capabilities::default()
    }
}

const LABEL: &str = "<mallory> ";

/// The event as the origin adapter hands it to the core, rendered by the core for a
/// room on `to`: the final parts the destination adapter sends.
fn through_core(case: &Case, to: Net, per_message_sender: bool) -> Vec<FinalText> {
    let origin = RoomKey::new("origin", "#o");
    let target = RoomKey::new(format!("{to:?}").to_lowercase(), "#d");
    let member = |room: RoomKey| Member {
        room,
        direction: Direction::Both,
        nick_template: None,
    };
    let route = Route {
        name: Arc::from("r"),
        members: vec![member(origin.clone()), member(target.clone())],
        nick_template: "<{nick}> ".into(),
        relay_membership: false,
        ignore: IgnoreRules::default(),
        max_age: None,
    };
    let event = Inbound::message(
        origin,
        Sender {
            id: "mallory".into(),
            display_name: "mallory".into(),
            is_self: false,
            avatar_url: None,
        },
        None,
        case.content.clone(),
    );
    let Rendered::Send(out) = render(
        &event,
        1,
        &Resolved::default(),
        &Target {
            route: &route,
            member: &route.members[1],
            capabilities: &capabilities(to, per_message_sender),
            origin_protocol: "irc",
        },
    ) else {
        panic!("{case:?}: not sent");
    };
    out.parts
}

/// The one part of a short message.
fn only(parts: Vec<FinalText>, case: &Case) -> FinalText {
    assert_eq!(parts.len(), 1, "{case:?}: {parts:?}");
    parts.into_iter().next().expect("one part")
}

/// The IRC lines of a case as sent, each without the label the core put first
/// (names go as they are on IRC here: no name guard configured).
fn irc_lines(case: &Case) -> Vec<String> {
    through_core(case, Net::Irc, false)
        .into_iter()
        .map(|part| {
            part.body
                .strip_prefix(LABEL)
                .unwrap_or_else(|| panic!("{case:?}: no label on IRC line {:?}", part.body))
                .to_owned()
        })
        .collect()
}

// --- the table ---------------------------------------------------------------------

/// An address as the Discord renderer writes it: the `@` of `@everyone` and
/// `@here` percent-encoded, since Discord reads them even inside links.
fn percent_encode_mass_mentions(text: &str) -> String {
    text.replace("@everyone", "%40everyone")
        .replace("@here", "%40here")
}

/// What Slack shows for a word written in Slack (`<!here>` reads `@here`).
fn as_slack_shows(word: &'static str) -> &'static str {
    match word {
        "<!channel>" => "@channel",
        "<!here>" => "@here",
        "<!everyone>" => "@everyone",
        other => other,
    }
}

fn problems(case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |what: String| problems.push(what);
    let word = if case.from == Net::Slack {
        as_slack_shows(case.word)
    } else {
        case.word
    };
    let is_mattermost_word = ["@channel", "@here", "@all"]
        .iter()
        .any(|w| word.to_lowercase().starts_with(w));
    let is_matrix_word = word.eq_ignore_ascii_case("@room");
    let shown = case.content.to_plain();

    {
        // Bot mode with names in the text, and with name overrides (also webhook mode).
        for per_message_sender in [false, true] {
            let message = only(
                through_core(case, Net::Mattermost, per_message_sender),
                case,
            )
            .body;
            if mattermost_notifies_channel(&message) {
                problem(format!(
                    "Mattermost message notifies the channel: {message:?}"
                ));
            }
            let read_back = switchboard_mattermost::format::parse(&message)
                .to_plain()
                .replace(ZWSP, "");
            if !read_back.ends_with(&shown) {
                problem(format!(
                    "Mattermost readers see {read_back:?}, not {shown:?} ({message:?})"
                ));
            }
            if !is_mattermost_word && message.contains(ZWSP) {
                problem(format!(
                    "Mattermost: changed where nothing pings: {message:?}"
                ));
            }
            if let Some(url) = &case.url
                && !message.contains(url.as_str())
            {
                problem(format!("Mattermost: URL {url} broken in {message:?}"));
            }
        }
    }

    {
        let FinalText { body, html } = only(through_core(case, Net::Matrix, false), case);
        if matrix_notifies_room(&body) {
            problem(format!("Matrix body notifies the room: {body:?}"));
        }
        if !body.replace(ZWSP, "").ends_with(&shown) {
            problem(format!("Matrix body {body:?} does not show {shown:?}"));
        }
        if let Some(html) = &html
            && matrix_notifies_room(&html_text_outside_code(html))
        {
            problem(format!(
                "Matrix formatted_body shows a room mention: {html:?}"
            ));
        }
        let changed = body.contains(ZWSP) || html.as_ref().is_some_and(|h| h.contains(ZWSP));
        if !is_matrix_word && changed {
            problem(format!(
                "Matrix: changed where nothing pings: {body:?} {html:?}"
            ));
        }
        if let Some(url) = &case.url {
            if !body.contains(url.as_str()) {
                problem(format!("Matrix: URL {url} broken in body {body:?}"));
            }
            if html
                .as_ref()
                .is_some_and(|h| !h.contains(&format!(">{url}</a>")))
            {
                problem(format!("Matrix: URL {url} broken in {html:?}"));
            }
        }
    }

    // Slack, with names in the text and per message (`username`).
    for per_message_sender in [false, true] {
        let message = only(through_core(case, Net::Slack, per_message_sender), case).body;
        if slack_pings(&message) {
            problem(format!("Slack message pings: {message:?}"));
        }
        let read_back: String =
            switchboard_slack::format::parse(&message, &switchboard_slack::format::NoNames)
                .to_plain()
                .chars()
                .filter(|c| !matches!(c, '\u{200B}' | '\u{2060}'))
                .collect();
        let shown_clean: String = shown.chars().filter(|c| *c != ZWSP).collect();
        if !read_back.ends_with(shown_clean.trim_end()) && !read_back.ends_with(&shown_clean) {
            problem(format!(
                "Slack readers see {read_back:?}, not {shown:?} ({message:?})"
            ));
        }
        if let Some(url) = &case.url
            && !message.contains(url.as_str())
        {
            problem(format!("Slack: URL {url} broken in {message:?}"));
        }
    }

    // Discord, through the channel webhook (`username`) and as the bot.
    for per_message_sender in [false, true] {
        let message = only(through_core(case, Net::Discord, per_message_sender), case).body;
        if discord_pings(&message) {
            problem(format!("Discord message pings: {message:?}"));
        }
        let read_back: String =
            switchboard_discord::format::parse(&message, &switchboard_discord::format::NoNames)
                .to_plain()
                .chars()
                .filter(|c| !matches!(c, '\u{200B}' | '\u{2060}'))
                .collect();
        let mut shown_clean: String = shown.chars().filter(|c| *c != ZWSP).collect();
        if case.url.is_some() {
            shown_clean = percent_encode_mass_mentions(&shown_clean);
        }
        if !read_back.ends_with(shown_clean.trim_end()) && !read_back.ends_with(&shown_clean) {
            problem(format!(
                "Discord readers see {read_back:?}, not {shown:?} ({message:?})"
            ));
        }
        // Discord reads `@everyone` and `@here` even inside a link, so there the `@`
        // is written `%40`: the same address to a web server.
        if let Some(url) = &case.url {
            let encoded = percent_encode_mass_mentions(url);
            if !message.contains(url.as_str()) && !message.contains(&encoded) {
                problem(format!("Discord: URL {url} broken in {message:?}"));
            }
        }
    }

    {
        let lines = irc_lines(case);
        let wire = lines.join("\n");
        if wire.contains(ZWSP) {
            problem(format!("IRC: changed where nothing pings: {wire:?}"));
        }
        let read_back: Vec<String> = lines
            .iter()
            .map(|line| switchboard_irc::format::parse(line).to_plain())
            .collect();
        if read_back.join("\n") != shown.trim_end() {
            problem(format!("IRC shows {read_back:?}, not {shown:?}"));
        }
    }
    problems
}

#[test]
fn no_relayed_text_notifies_a_whole_room_and_nothing_else_changes() {
    let cases = cases();
    assert!(cases.len() > 700, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        for problem in problems(case) {
            failures.push(format!("{:?} {:?}: {problem}", case.from, case.written));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The oracles themselves: they must see what the servers see.
#[test]
fn the_server_rules_used_here_catch_the_issue_cases() {
    for pings in [
        "@channel_",
        "_@channel see",
        "ping @here\\_ now",
        "\\_\\_@all\\_\\_",
        "-\\_@here",
        "\\@all",
        "x.@all",
        "@ALL!",
        "[@all](https://x.example/)",
    ] {
        assert!(mattermost_notifies_channel(pings), "{pings}");
    }
    for quiet in [
        "@\u{200B}all",
        "x_@all",
        "a@all",
        "`@all`",
        "https://social.example/@all",
        "[x](https://social.example/@all)",
        "@room",
        "@everyone",
        "```\n@all\n```",
    ] {
        assert!(!mattermost_notifies_channel(quiet), "{quiet}");
    }
    for pings in [
        "<!channel>",
        "<!here|here>",
        "<@U1>",
        "<!subteam^S1|@t>",
        "@HERE",
        "hi @channel.",
    ] {
        assert!(slack_pings(pings), "{pings}");
    }
    for quiet in [
        "&lt;!channel&gt;",
        "@\u{200B}here",
        "x@here",
        "@heres",
        "<https://x.example/@here>",
    ] {
        assert!(!slack_pings(quiet), "{quiet}");
    }
    for pings in [
        "@everyone",
        "x@here",
        "hi <@123456789012345678>",
        "<@!1>",
        "<@&1>",
        "<#1>",
        "https://social.example/@here",
    ] {
        assert!(discord_pings(pings), "{pings}");
    }
    for quiet in [
        "@\u{200B}everyone",
        "<\u{200B}@123>",
        "@hero",
        "https://social.example/%40here",
    ] {
        assert!(!discord_pings(quiet), "{quiet}");
    }
    for pings in ["@room", "x@room", "@ROOM: hi", "_@room", "@room."] {
        assert!(matrix_notifies_room(pings), "{pings}");
    }
    for quiet in [
        "@room_",
        "@roomy",
        "@\u{200B}room",
        "https://x.example/@room",
    ] {
        assert!(!matrix_notifies_room(quiet), "{quiet}");
    }
}

/// The exact bytes for the cases the issue lists.
#[test]
fn the_issue_cases_render_exactly() {
    let irc = |text: &str| Case {
        from: Net::Irc,
        written: text.into(),
        word: "@all",
        url: None,
        content: switchboard_irc::format::parse(text),
    };
    let mattermost = |case: &Case| only(through_core(case, Net::Mattermost, true), case).body;
    let z = ZWSP;
    for (written, sent) in [
        ("@channel_", format!("@{z}channel\\_")),
        ("_@channel see", format!("\\_@{z}channel see")),
        ("ping @here_ now", format!("ping @{z}here\\_ now")),
        ("__@all__", format!("\\_\\_@{z}all\\_\\_")),
        ("-_@here", format!("-\\_@{z}here")),
        ("@\x0304all", format!("@{z}all")),
        ("@\x1Fall\x1F", format!("@{z}all")),
        ("\x02@\x02all", format!("@{z}all")),
        (
            "https://social.example/@all",
            "https://social.example/@all".to_owned(),
        ),
    ] {
        assert_eq!(mattermost(&irc(written)), sent, "{written:?}");
    }
    // Matrix HTML `<b>@</b>all` to Mattermost, and `@room` split by tags to Matrix.
    let bold_at = Case {
        from: Net::Matrix,
        written: "<b>@</b>all".into(),
        word: "@all",
        url: None,
        content: switchboard_matrix::format::parse("@all", Some("<b>@</b>all"), false),
    };
    assert_eq!(mattermost(&bold_at), format!("@{z}all"));
    let room_now = irc("\x02@\x02room now");
    let FinalText { body, html } = only(through_core(&room_now, Net::Matrix, true), &room_now);
    assert_eq!(body, format!("@{z}room now"));
    assert_eq!(
        html.as_deref(),
        Some(format!("<strong>@{z}</strong>room now").as_str())
    );
    // IRC gets what was written, and a URL is one clickable copy, not two.
    let lines = irc_lines(&Case {
        from: Net::Mattermost,
        written: "@channel https://social.example/@all".into(),
        word: "@all",
        url: None,
        content: switchboard_mattermost::format::parse("@channel https://social.example/@all"),
    });
    assert_eq!(lines, ["@channel https://social.example/@all"]);
}

// --- end to end --------------------------------------------------------------------

const BOT: &str = "@switchboard:localhost";
const PASSWORD: &str = "bridge-password";
const FOUR_WAY: &str = "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mx: \"#bridge:localhost\"\n      - mm: town-square\n      - sl: general\n";

/// IRC lines, as written, that the daemon relays to Mattermost and Matrix.
const E2E_FROM_IRC: &[&str] = &[
    "@channel_",
    "_@channel see",
    "ping @here_ now",
    "__@all__",
    "-_@here",
    "@\x0304all",
    "\x02@\x02all",
    "@\x1Fall\x1F",
    "\\@here",
    "**@channel**",
    "@room_ @room",
    "\x02@\x02room",
    "https://social.example/@all and https://social.example/@room",
    "@everyone <!channel> <!here>",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_cases_end_to_end() {
    let synapse = Synapse::start(SynapseOptions::default());
    synapse.register("switchboard", PASSWORD);
    synapse.register("bob", "bob-password");
    let mut bob = MatrixPeer::login(&synapse.url(), "bob", "bob-password").await;
    let room = bob.create_room(Some("bridge"), false).await;
    let irc = Ngircd::start(NgircdOptions::default());
    let mm = FakeMattermost::start().await;
    let team = mm.add_team("core");
    let town = mm.add_channel(&team, "town-square");
    let (mm_bot, mm_token) = mm.add_user("bridge", true);
    let (carol, _) = mm.add_user("carol", false);
    let slack = FakeSlack::start(SlackOptions::default()).await;
    let mut alice = IrcPeer::connect(irc.port(), "alice", &["#a"]).await;
    let homeserver = synapse.url();
    let bridge = BridgeProcess::start(|http, state| {
        format!(
            "state_dir: {state}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 500ms\n  shutdown_deadline: 5s\n\
             networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n\
             \x20 mx:\n    matrix:\n      homeserver: {homeserver}\n      user_id: \"{BOT}\"\n      password: {PASSWORD}\n\
             \x20 mm:\n    mattermost:\n      server: {mm_url}\n      team: core\n      token: {mm_token}\n\
             \x20 sl:\n    slack:\n      api_url: {sl_url}\n      bot_token: {sl_bot}\n      app_token: {sl_app}\n\
             routes:\n{FOUR_WAY}",
            state = state.display(),
            port = irc.port(),
            mm_url = mm.url(),
            sl_url = slack.api_url(),
            sl_bot = slack.bot_token(),
            sl_app = slack.app_token(),
        )
    });
    bridge.wait_healthy().await;
    common::eventually("the bridge joins the Matrix room", || async {
        bob.joined_members(&room).await.iter().any(|m| m == BOT)
    })
    .await;

    // From IRC: every line to Mattermost and Matrix.
    for line in E2E_FROM_IRC {
        alice.say("#a", line).await;
    }
    let bridged = |mm: &FakeMattermost| -> Vec<Post> {
        mm.posts(&town)
            .into_iter()
            .filter(|post| post.user_id == mm_bot && !post.is_system())
            .collect()
    };
    mm.wait_until("every IRC line posted", WAIT, |mm| {
        bridged(mm).len() >= E2E_FROM_IRC.len()
    })
    .await;
    let posts = bridged(&mm);
    let events = bob.collect_messages(&room, E2E_FROM_IRC.len(), WAIT).await;
    let mut failures = Vec::new();
    for (i, line) in E2E_FROM_IRC.iter().enumerate() {
        let shown = switchboard_irc::format::parse(line).to_plain();
        let post = &posts[i];
        if mattermost_notifies_channel(&post.message) {
            failures.push(format!(
                "{line:?}: Mattermost post notifies: {:?}",
                post.message
            ));
        }
        let read_back = switchboard_mattermost::format::parse(&post.message)
            .to_plain()
            .replace(ZWSP, "");
        if !read_back.ends_with(&shown) {
            failures.push(format!("{line:?}: Mattermost shows {read_back:?}"));
        }
        let content = &events[i]["content"];
        let body = content["body"].as_str().unwrap_or_default();
        if matrix_notifies_room(body) {
            failures.push(format!("{line:?}: Matrix body notifies: {body:?}"));
        }
        if let Some(html) = content["formatted_body"].as_str()
            && matrix_notifies_room(&html_text_outside_code(html))
        {
            failures.push(format!("{line:?}: Matrix formatted_body: {html:?}"));
        }
        if content["m.mentions"] != serde_json::json!({}) {
            failures.push(format!(
                "{line:?}: Matrix m.mentions is {}",
                content["m.mentions"]
            ));
        }
        if !body.replace(ZWSP, "").ends_with(&shown) {
            failures.push(format!("{line:?}: Matrix body {body:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let url_post = &posts[E2E_FROM_IRC.len() - 2].message;
    let url_body = events[E2E_FROM_IRC.len() - 2]["content"]["body"]
        .as_str()
        .unwrap_or_default();
    for url in [
        "https://social.example/@all",
        "https://social.example/@room",
    ] {
        assert!(
            url_post.contains(url),
            "{url} broken on Mattermost: {url_post:?}"
        );
        assert!(
            url_body.contains(url),
            "{url} broken on Matrix: {url_body:?}"
        );
    }
    let untouched = events[E2E_FROM_IRC.len() - 1]["content"]["body"]
        .as_str()
        .unwrap_or_default();
    assert!(
        untouched.ends_with("@everyone <!channel> <!here>"),
        "nothing pings on Matrix, so nothing may change: {untouched:?}"
    );

    // From Matrix and Mattermost to IRC: the line as written, no zero-width spaces.
    // Dave joins now, so what he hears is only what the bridge says.
    let mut dave = IrcPeer::connect(irc.port(), "dave", &["#a"]).await;
    bob.send_html(&room, "@all @channel", "<b>@</b>all @channel")
        .await;
    mm.post_as(
        &carol,
        &town,
        "@channel \\@here https://social.example/@all",
        None,
    );
    let heard = dave.collect("#a", 2, WAIT).await;
    let texts: Vec<&str> = heard.iter().map(|r| r.text.as_str()).collect();
    let from_matrix = texts
        .iter()
        .find(|t| t.contains("all @channel"))
        .unwrap_or_else(|| panic!("bob's message not on IRC: {texts:?}"));
    let from_mattermost = texts
        .iter()
        .find(|t| t.contains("social.example"))
        .unwrap_or_else(|| panic!("carol's post not on IRC: {texts:?}"));
    assert!(
        !from_matrix.contains(ZWSP)
            && switchboard_irc::format::parse(from_matrix)
                .to_plain()
                .ends_with("@all @channel"),
        "{from_matrix:?}"
    );
    assert!(
        from_mattermost.ends_with("@channel @here https://social.example/@all"),
        "{from_mattermost:?}"
    );
    // ... and bob's `<b>@</b>all` on Mattermost.
    mm.wait_until("bob's message posted", WAIT, |mm| {
        bridged(mm).len() > E2E_FROM_IRC.len()
    })
    .await;
    let from_bob = &bridged(&mm)[E2E_FROM_IRC.len()].message;
    assert!(!mattermost_notifies_channel(from_bob), "{from_bob:?}");

    // Slack got every line from IRC, bob's from Matrix and carol's from Mattermost:
    // none of them pings, as Slack's parser reads the text it stored.
    let expected = E2E_FROM_IRC.len() + 2;
    let by_bridge = |slack: &FakeSlack| -> Vec<String> {
        let bot = slack.bot_id();
        slack
            .messages("general")
            .into_iter()
            .filter(|m| m.bot_id.as_deref() == Some(bot.as_str()))
            .map(|m| m.text)
            .collect()
    };
    slack
        .wait_until("every message relayed to Slack", WAIT, |slack| {
            by_bridge(slack).len() >= expected
        })
        .await;
    let slack_texts = by_bridge(&slack);
    let pinging: Vec<&String> = slack_texts.iter().filter(|t| slack_pings(t)).collect();
    assert!(pinging.is_empty(), "Slack messages that ping: {pinging:#?}");
    for url in [
        "https://social.example/@all",
        "https://social.example/@room",
    ] {
        assert!(
            slack_texts.iter().any(|t| t.contains(url)),
            "{url} broken on Slack: {slack_texts:#?}"
        );
    }
    assert!(
        slack_texts
            .iter()
            .any(|t| t.contains("all @\u{200B}channel")),
        "bob's message from Matrix not on Slack: {slack_texts:#?}"
    );
}
