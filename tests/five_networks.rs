//! One route across five networks, through the daemon binary: IRC (a real ngircd),
//! Matrix (a real Synapse), and Mattermost, Slack and Discord (the testkit's
//! fakes). A message from each network reaches every other exactly once, under its
//! sender's name and with its bold; edits, deletes and replies follow between the
//! networks that have them; and a message written to ping a whole room, sent from each
//! network, pings nobody on any other: checked on what each server stored, by that
//! server's own rule (`common::pings`).

mod common;

use common::WAIT;
use common::bridge::BridgeProcess;
use common::pings::{
    discord_pings, html_text_outside_code, matrix_notifies_room, mattermost_notifies_channel,
    slack_pings,
};
use serde_json::{Value, json};
use switchboard_testkit::discord::{FakeDiscord, PostOptions};
use switchboard_testkit::mattermost::FakeMattermost;
use switchboard_testkit::slack::{FakeSlack, SlackOptions};
use switchboard_testkit::synapse::MatrixPeer;
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions, Received};

const PASSWORD: &str = "bridge-password";
const DISCORD_TOKEN: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.five-networks-test-token";
const ROUTE: &str = "  - name: main\n    rooms:\n      - irc: \"#a\"\n      - mx: \"#bridge:localhost\"\n      - mm: town-square\n      - sl: general\n      - dc: general\n";

/// The five networks, their users (alice on IRC, bob on Matrix, carol on
/// Mattermost, dana on Slack, erin on Discord), an IRC observer who hears only
/// what the bridge says, and the daemon between them.
struct World {
    bridge: BridgeProcess,
    _irc: Ngircd,
    alice: IrcPeer,
    oscar: IrcPeer,
    _synapse: switchboard_testkit::synapse::Synapse,
    bob: MatrixPeer,
    room: String,
    mm: FakeMattermost,
    town: String,
    mm_bot: String,
    carol: String,
    slack: FakeSlack,
    dana: String,
    dc: FakeDiscord,
    dc_general: String,
    dc_bot: String,
    erin: String,
    moderators: String,
    irc_corrections: Vec<String>,
}

async fn world() -> World {
    let (synapse, bob, room) = common::synapse_with_bob(PASSWORD).await;
    let irc = Ngircd::start(NgircdOptions::default());
    let mm = FakeMattermost::start().await;
    let team = mm.add_team("core");
    let town = mm.add_channel(&team, "town-square");
    let (mm_bot, mm_token) = mm.add_user("bridge", true);
    let (carol, _) = mm.add_user("carol", false);
    let slack = FakeSlack::start(SlackOptions::default()).await;
    let dana = slack.add_user("dana", "dana");
    let dc = FakeDiscord::start().await;
    let guild = dc.add_guild("Project");
    let dc_general = dc.add_channel(&guild, "general", None);
    let dc_bot = dc.add_bot("switchboard", DISCORD_TOKEN);
    let erin = dc.add_user("erin", Some("Erin"), None);
    dc.add_member(&guild, &erin, None);
    let moderators = dc.add_role(&guild, "moderators");
    let alice = IrcPeer::connect(irc.port(), "alice", &["#a"]).await;
    let homeserver = synapse.url();
    let bridge = BridgeProcess::start(|http, state| {
        format!(
            "state_dir: {state}\nhttp:\n  listen: {http}\ndelivery:\n  retry_initial: 50ms\n  retry_max: 500ms\n  shutdown_deadline: 5s\n\
             networks:\n  irc:\n    irc:\n      server: 127.0.0.1:{port}\n      tls: false\n      nick: switchboard\n\
             \x20 mx:\n    matrix:\n      homeserver: {homeserver}\n      user_id: \"@switchboard:localhost\"\n      password: {PASSWORD}\n\
             \x20 mm:\n    mattermost:\n      server: {mm_url}\n      team: core\n      token: {mm_token}\n\
             \x20 sl:\n    slack:\n      api_url: {sl_url}\n      bot_token: {sl_bot}\n      app_token: {sl_app}\n\
             \x20 dc:\n    discord:\n      token: {DISCORD_TOKEN}\n      guild: Project\n      api_url: {dc_url}\n      gateway_url: {dc_gateway}\n\
             routes:\n{ROUTE}",
            state = state.display(),
            port = irc.port(),
            mm_url = mm.url(),
            sl_url = slack.api_url(),
            sl_bot = slack.bot_token(),
            sl_app = slack.app_token(),
            dc_url = dc.url(),
            dc_gateway = dc.gateway_url(),
        )
    });
    bridge.wait_healthy().await;
    common::bridge_bot_joined(&bob, &room).await;
    // Oscar joins once the bridge is there: what he hears from it is only what it
    // relays.
    let oscar = IrcPeer::connect(irc.port(), "oscar", &["#a"]).await;
    World {
        bridge,
        _irc: irc,
        alice,
        oscar,
        _synapse: synapse,
        bob,
        room,
        mm,
        town,
        mm_bot,
        carol,
        slack,
        dana,
        dc,
        dc_general,
        dc_bot,
        erin,
        moderators,
        irc_corrections: Vec::new(),
    }
}

/// Text as a reader sees it: IRC formatting codes and the invisible characters
/// the bridge puts into names and mass mentions left out, lower-cased.
fn visible(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x03' => {
                // A colour code: up to two digits, optionally `,` and two more.
                for _ in 0..2 {
                    chars.next_if(char::is_ascii_digit);
                }
                if chars.peek() == Some(&',') {
                    chars.next();
                    for _ in 0..2 {
                        chars.next_if(char::is_ascii_digit);
                    }
                }
            }
            '\x02' | '\x0F' | '\x16' | '\x1D' | '\x1E' | '\x1F' => {}
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' => {}
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The five sources with their senders' names and the tag their messages carry.
const SOURCES: [(&str, &str); 5] = [
    ("irc", "alice"),
    ("matrix", "bob"),
    ("mattermost", "carol"),
    ("slack", "dana"),
    ("discord", "erin"),
];

/// What each destination holds from the bridge, as `(shown name and text, raw
/// text)`: the raw text is what the server stored, in its own markup.
impl World {
    fn mattermost_copies(&self) -> Vec<(String, String)> {
        self.mm
            .posts(&self.town)
            .into_iter()
            .filter(|post| post.user_id == self.mm_bot && !post.is_system())
            .map(|post| {
                let name = post.prop("override_username").unwrap_or_default();
                (format!("{name} {}", post.message), post.message.clone())
            })
            .collect()
    }

    fn slack_copies(&self) -> Vec<(String, String)> {
        let bot = self.slack.bot_id();
        self.slack
            .messages("general")
            .into_iter()
            .filter(|m| m.bot_id.as_deref() == Some(bot.as_str()))
            .map(|m| {
                let name = m.username.clone().unwrap_or_default();
                (format!("{name} {}", m.text), m.text)
            })
            .collect()
    }

    fn discord_copies(&self) -> Vec<switchboard_testkit::discord::Message> {
        self.dc
            .messages(&self.dc_general)
            .into_iter()
            .filter(|m| m.webhook_id.is_some() || m.author_id == self.dc_bot)
            .collect()
    }

    /// Waits until each fake holds `count` copies from the bridge.
    async fn wait_copies(&self, count: usize) {
        let what = format!("{count} relayed posts on Mattermost");
        self.mm
            .wait_until(&what, WAIT, |_| self.mattermost_copies().len() >= count)
            .await;
        let what = format!("{count} relayed messages on Slack");
        self.slack
            .wait_until(&what, WAIT, |_| self.slack_copies().len() >= count)
            .await;
        let what = format!("{count} relayed messages on Discord");
        self.dc
            .wait_until(&what, WAIT, |_| self.discord_copies().len() >= count)
            .await;
    }

    /// The next `count` messages the bridge says on IRC, as oscar hears them;
    /// corrections (IRC's form of an edit) are kept aside in `irc_corrections`.
    async fn irc_copies(&mut self, count: usize) -> Vec<Received> {
        let mut lines = Vec::new();
        while lines.len() < count {
            for line in self.oscar.collect("#a", 1, WAIT).await {
                if line.from != "switchboard" {
                    continue;
                }
                if line.text.contains("(correction)") {
                    self.irc_corrections.push(line.text);
                } else {
                    lines.push(line);
                }
            }
        }
        lines
    }
}

/// Asserts that `copies` (shown text of each) hold exactly one message tagged
/// `{phrase} {network}` from every source but `to`, shown with its sender's name.
fn assert_one_from_each(to: &str, phrase: &str, copies: &[String]) {
    for (network, name) in SOURCES {
        if network == to {
            continue;
        }
        let tag = format!("{phrase} {network}");
        let found: Vec<&String> = copies
            .iter()
            .filter(|copy| visible(copy).contains(&tag))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{to} holds {} copies of {tag:?}: {copies:#?}",
            found.len()
        );
        assert!(
            visible(found[0]).contains(name),
            "{to}: {tag:?} without its sender's name {name}: {:?}",
            found[0]
        );
    }
}

/// The copy on `to` whose text has `tag`, for a raw-text check.
fn raw_of<'a>(copies: &'a [(String, String)], tag: &str) -> &'a str {
    copies
        .iter()
        .find(|(shown, _)| visible(shown).contains(tag))
        .map(|(_, raw)| raw.as_str())
        .unwrap_or_else(|| panic!("no copy of {tag:?} in {copies:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_networks_in_one_route() {
    let mut w = world().await;

    // --- a bold message from each network, each to the four others ----------------
    w.alice.say("#a", "\x02bold\x02 hello from irc").await;
    let bob_event = w
        .bob
        .send_html(
            &w.room,
            "bold hello from matrix",
            "<b>bold</b> hello from matrix",
        )
        .await;
    let carol_post =
        w.mm.post_as(&w.carol, &w.town, "**bold** hello from mattermost", None);
    let dana_ts = w
        .slack
        .post(&w.dana, "general", "*bold* hello from slack")
        .await;
    let erin_message =
        w.dc.post(&w.dc_general, &w.erin, "**bold** hello from discord");

    w.wait_copies(4).await;
    let mm_copies = w.mattermost_copies();
    let shown: Vec<String> = mm_copies.iter().map(|(shown, _)| shown.clone()).collect();
    assert_one_from_each("mattermost", "hello from", &shown);
    for network in ["irc", "matrix", "slack", "discord"] {
        let raw = raw_of(&mm_copies, &format!("hello from {network}"));
        assert!(
            raw.contains("**bold** hello"),
            "Mattermost lost the bold: {raw:?}"
        );
    }
    let sl_copies = w.slack_copies();
    let shown: Vec<String> = sl_copies.iter().map(|(shown, _)| shown.clone()).collect();
    assert_one_from_each("slack", "hello from", &shown);
    for network in ["irc", "matrix", "mattermost", "discord"] {
        let raw = raw_of(&sl_copies, &format!("hello from {network}"));
        assert!(raw.contains("*bold* hello"), "Slack lost the bold: {raw:?}");
    }
    let dc_copies = w.discord_copies();
    let shown: Vec<String> = dc_copies
        .iter()
        .map(|m| format!("{} {}", m.username.clone().unwrap_or_default(), m.content))
        .collect();
    assert_one_from_each("discord", "hello from", &shown);
    for copy in &dc_copies {
        assert!(
            copy.content.contains("**bold** hello"),
            "Discord lost the bold: {copy:?}"
        );
        assert!(
            copy.webhook_id.is_some(),
            "Discord copies go through the channel webhook, under each sender's name: {copy:?}"
        );
    }
    let events = w.bob.collect_messages(&w.room, 4, WAIT).await;
    let shown: Vec<String> = events
        .iter()
        .map(|event| {
            event["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_one_from_each("matrix", "hello from", &shown);
    for event in &events {
        let html = event["content"]["formatted_body"]
            .as_str()
            .unwrap_or_default();
        assert!(
            html.contains("<strong>bold</strong> hello") || html.contains("<b>bold</b> hello"),
            "Matrix lost the bold: {event}"
        );
    }
    let lines = w.irc_copies(4).await;
    let shown: Vec<String> = lines.iter().map(|line| line.text.clone()).collect();
    assert_one_from_each("irc", "hello from", &shown);
    for line in &lines {
        assert!(
            line.text.contains("\x02bold\x02 hello"),
            "IRC lost the bold: {:?}",
            line.text
        );
    }

    // --- edits and deletes follow ---------------------------------------------------
    // Erin edits on Discord: the copies on Mattermost, Slack and Matrix change.
    w.dc.edit(
        &w.dc_general,
        &erin_message,
        "**bold** hello from discord, edited",
    );
    let edited = |copies: Vec<(String, String)>| {
        copies
            .iter()
            .any(|(shown, _)| visible(shown).contains("from discord, edited"))
    };
    w.mm.wait_until("the Discord edit on Mattermost", WAIT, |_| {
        edited(w.mattermost_copies())
    })
    .await;
    w.slack
        .wait_until("the Discord edit on Slack", WAIT, |_| {
            edited(w.slack_copies())
        })
        .await;
    let replace = w
        .bob
        .expect_message(&w.room, WAIT, |event| {
            event["content"]["m.relates_to"]["rel_type"] == "m.replace"
        })
        .await;
    assert!(
        visible(
            replace["content"]["m.new_content"]["body"]
                .as_str()
                .unwrap_or_default()
        )
        .contains("from discord, edited"),
        "{replace}"
    );

    // Carol edits on Mattermost: the Discord copy changes (through its webhook).
    w.mm.edit_as(&carol_post.id, "**bold** hello from mattermost, edited");
    w.dc.wait_until("the Mattermost edit on Discord", WAIT, |_| {
        w.discord_copies()
            .iter()
            .any(|m| m.edited && visible(&m.content).contains("from mattermost, edited"))
    })
    .await;

    // Dana deletes on Slack: the copies on Discord and Mattermost go, Matrix redacts.
    w.slack.delete("general", &dana_ts).await;
    w.dc.wait_until("the Slack delete on Discord", WAIT, |_| {
        w.discord_copies()
            .iter()
            .any(|m| m.deleted && visible(&m.content).contains("from slack"))
    })
    .await;
    w.mm.wait_until("the Slack delete on Mattermost", WAIT, |mm| {
        mm.posts(&w.town).iter().any(|post| {
            post.user_id == w.mm_bot
                && post.delete_at > 0
                && visible(&post.message).contains("from slack")
        })
    })
    .await;
    w.bob
        .expect_event(&w.room, WAIT, |event| event["type"] == "m.room.redaction")
        .await;

    // Bob redacts on Matrix: the Discord and Slack copies go.
    w.bob.redact(&w.room, &bob_event).await;
    w.dc.wait_until("the Matrix redaction on Discord", WAIT, |_| {
        w.discord_copies()
            .iter()
            .any(|m| m.deleted && visible(&m.content).contains("from matrix"))
    })
    .await;
    w.slack
        .wait_until("the Matrix redaction on Slack", WAIT, |slack| {
            !slack
                .messages("general")
                .iter()
                .any(|m| !m.deleted && visible(&m.text).contains("hello from matrix"))
        })
        .await;

    // --- mass mentions from every network ping nobody anywhere ----------------------
    w.alice
        .say("#a", "@everyone @here @channel @room @all pings from irc")
        .await;
    w.bob
        .send_text(&w.room, "@room @everyone @here @channel pings from matrix")
        .await;
    w.mm.post_as(
        &w.carol,
        &w.town,
        "@channel @all @here @everyone pings from mattermost",
        None,
    );
    w.slack
        .post(
            &w.dana,
            "general",
            "<!channel> <!here> <!everyone> @everyone pings from slack",
        )
        .await;
    let role = format!("<@&{}>", w.moderators);
    w.dc.post(
        &w.dc_general,
        &w.erin,
        &format!("@everyone @here {role} @channel @room pings from discord"),
    );
    w.wait_copies(8).await;

    let mm_copies = w.mattermost_copies();
    let shown: Vec<String> = mm_copies.iter().map(|(shown, _)| shown.clone()).collect();
    assert_one_from_each("mattermost", "pings from", &shown);
    let sl_copies = w.slack_copies();
    let shown: Vec<String> = sl_copies.iter().map(|(shown, _)| shown.clone()).collect();
    assert_one_from_each("slack", "pings from", &shown);
    let dc_copies = w.discord_copies();
    let shown: Vec<String> = dc_copies
        .iter()
        .map(|m| format!("{} {}", m.username.clone().unwrap_or_default(), m.content))
        .collect();
    assert_one_from_each("discord", "pings from", &shown);
    let events = w.bob.collect_messages(&w.room, 4, WAIT).await;
    let shown: Vec<String> = events
        .iter()
        .map(|event| {
            event["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_one_from_each("matrix", "pings from", &shown);
    let lines = w.irc_copies(4).await;
    let shown: Vec<String> = lines.iter().map(|line| line.text.clone()).collect();
    assert_one_from_each("irc", "pings from", &shown);
    assert!(
        shown
            .iter()
            .any(|line| line.contains("@everyone @here @moderators")),
        "IRC has no mass mentions, so Discord's arrive as written, the role by name: {shown:#?}"
    );

    // IRC has no edits: the two edits arrived as corrections.
    for edit in ["from discord, edited", "from mattermost, edited"] {
        assert!(
            w.irc_corrections
                .iter()
                .any(|line| visible(line).contains(edit)),
            "no correction {edit:?} on IRC: {:#?}",
            w.irc_corrections
        );
    }

    let mut failures = Vec::new();
    for (_, raw) in &mm_copies {
        if mattermost_notifies_channel(raw) {
            failures.push(format!("Mattermost post notifies: {raw:?}"));
        }
    }
    for (_, raw) in &sl_copies {
        if slack_pings(raw) {
            failures.push(format!("Slack message pings: {raw:?}"));
        }
    }
    for copy in &dc_copies {
        if discord_pings(&copy.content) {
            failures.push(format!("Discord message pings: {:?}", copy.content));
        }
        for request in &copy.requests {
            if request.get("content").is_some()
                && request["allowed_mentions"] != json!({ "parse": [] })
            {
                failures.push(format!(
                    "Discord request without allowed_mentions {{parse: []}}: {request}"
                ));
            }
        }
    }
    for event in &events {
        let content: &Value = &event["content"];
        let body = content["body"].as_str().unwrap_or_default();
        if matrix_notifies_room(body) {
            failures.push(format!("Matrix body notifies: {body:?}"));
        }
        if let Some(html) = content["formatted_body"].as_str()
            && matrix_notifies_room(&html_text_outside_code(html))
        {
            failures.push(format!("Matrix formatted_body notifies: {html:?}"));
        }
        if content["m.mentions"] != json!({}) {
            failures.push(format!("Matrix m.mentions is {}", content["m.mentions"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // --- replies follow between Discord and Mattermost, both ways --------------------
    let carol_copy = w
        .discord_copies()
        .into_iter()
        .find(|m| visible(&m.content).contains("hello from mattermost"))
        .expect("carol's message on Discord");
    w.dc.post_with(
        &w.dc_general,
        &w.erin,
        "a reply from discord",
        PostOptions {
            reply_to: Some(carol_copy.id),
            ..PostOptions::default()
        },
    );
    w.mm.wait_until("erin's reply in carol's thread", WAIT, |mm| {
        mm.posts(&w.town).iter().any(|post| {
            post.root_id == carol_post.id && post.message.contains("a reply from discord")
        })
    })
    .await;
    let erin_copy =
        w.mm.posts(&w.town)
            .into_iter()
            .find(|post| {
                post.user_id == w.mm_bot && visible(&post.message).contains("hello from discord")
            })
            .expect("erin's message on Mattermost");
    w.mm.post_as(
        &w.carol,
        &w.town,
        "a reply from mattermost",
        Some(&erin_copy.id),
    );
    w.dc.wait_until("carol's reply to erin's message", WAIT, |_| {
        w.discord_copies().iter().any(|m| {
            m.reply_to.as_deref() == Some(erin_message.as_str())
                && m.content.contains("a reply from mattermost")
        })
    })
    .await;

    // Nothing more arrived anywhere: after the two replies, a last message from
    // Discord is the next thing each of the others gets, and the fakes hold no
    // second copy of anything.
    w.dc.post(&w.dc_general, &w.erin, "the end from discord");
    w.mm.wait_until("the last message on Mattermost", WAIT, |_| {
        w.mattermost_copies().len() == 10
    })
    .await;
    w.slack
        .wait_until("the last message on Slack", WAIT, |_| {
            w.slack_copies().len() == 11
        })
        .await;
    let last = w.bob.collect_messages(&w.room, 3, WAIT).await;
    let bodies: Vec<String> = last
        .iter()
        .map(|event| visible(event["content"]["body"].as_str().unwrap_or_default()))
        .collect();
    assert!(
        bodies[0].contains("a reply from discord")
            && bodies[1].contains("a reply from mattermost")
            && bodies[2].contains("the end from discord"),
        "Matrix got something else: {bodies:#?}"
    );
    let last = w.irc_copies(3).await;
    let lines: Vec<String> = last.iter().map(|line| visible(&line.text)).collect();
    assert!(
        lines[0].contains("a reply from discord")
            && lines[1].contains("a reply from mattermost")
            && lines[2].contains("the end from discord"),
        "IRC got something else: {lines:#?}"
    );
    assert_eq!(w.discord_copies().len(), 9, "{:#?}", w.discord_copies());
    let log = w.bridge.log();
    assert!(
        !log.contains(DISCORD_TOKEN),
        "the Discord token is in the log"
    );
}
