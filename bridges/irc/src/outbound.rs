//! IRC's text rules and `Outbound` deliveries -> IRC lines.
//!
//! The rules ([`IrcText`]) render for the core's delivery policy: lines that each
//! fit in 512 bytes as other clients receive them (`:nick!user@host PRIVMSG #chan
//! :text\r\n`, given the budget the adapter reports per room), never cut inside a
//! UTF-8 character, preferring word boundaries (the space starts the next line,
//! since servers strip trailing spaces), with the sender label on every line and
//! formatting re-opened on continuation lines. IRC has no room-wide mentions, so
//! nothing is guarded. [`lines`] only frames the parts the core decided.

use crate::format::{self, Runs};
use switchboard_sdk::text::first_piece_len;
use switchboard_sdk::{
    FinalText, MessageStyle, Outbound, OutboundKind, RichText, SendError, Style, TextRules,
};

/// The longest line a server relays, CRLF included.
pub const MAX_LINE: usize = 512;
/// A continuation shorter than this is not started at the end of a line: the run
/// moves to the next line instead, so words are not chopped needlessly.
const MIN_PIECE: usize = 16;
/// The longest command a relayed line starts with; budgets are counted for it.
const LONGEST_COMMAND: &str = "PRIVMSG";

/// How IRC writes relayed text.
#[derive(Debug, Default)]
pub struct IrcText {
    /// Put after a relayed name's first character so it does not ping the local
    /// user of that nick (`None`: names go as they are).
    pub name_guard: Option<char>,
}

impl TextRules for IrcText {
    fn name(&self) -> &'static str {
        "irc"
    }

    /// `budget` is what [`text_budget`] leaves after `PRIVMSG #chan :`.
    fn render(
        &self,
        content: &RichText,
        style: MessageStyle,
        label: &str,
        budget: Option<usize>,
    ) -> Vec<FinalText> {
        let label = sanitize(label);
        let (command, open, close) = framing(style);
        let body_budget = match budget {
            Some(budget) => (budget + LONGEST_COMMAND.len() - command.len())
                .saturating_sub(open.len() + label.len() + close.len())
                .max(MIN_PIECE),
            None => usize::MAX,
        };
        let mut out = Vec::new();
        for runs in format::to_lines(content) {
            for body in wrap(&runs, body_budget) {
                out.push(FinalText::plain(format!("{open}{label}{body}{close}")));
            }
        }
        out
    }

    fn name_without_ping(&self, name: &str) -> String {
        match self.name_guard {
            Some(invisible) => switchboard_sdk::text::name_without_ping(name, invisible),
            None => name.to_owned(),
        }
    }
}

/// What the text of one line to `channel` may take, after `PRIVMSG #chan :`, when
/// the server prefixes our `nick!user@host` of `source_len` bytes.
pub fn text_budget(channel: &str, source_len: usize) -> usize {
    // ":" + source + " " + "PRIVMSG " + channel + " :" ... + "\r\n"
    let overhead = 1 + source_len + 1 + LONGEST_COMMAND.len() + 1 + channel.len() + 2 + 2;
    MAX_LINE.saturating_sub(overhead)
}

/// The command and the text around the label and body for one style.
fn framing(style: MessageStyle) -> (&'static str, &'static str, &'static str) {
    match style {
        MessageStyle::Normal => ("PRIVMSG", "", ""),
        MessageStyle::Action => ("PRIVMSG", "\x01ACTION ", "\x01"),
        MessageStyle::Notice => ("NOTICE", "", ""),
    }
}

/// Every wire line (without CRLF) for one delivery: each part the core decided,
/// framed as the command its style takes.
pub fn lines(message: &Outbound) -> Result<Vec<String>, SendError> {
    let OutboundKind::Message { style, .. } = &message.kind else {
        return Err(SendError::Permanent(
            "IRC has no edits, deletes or reactions; the core sends corrections as messages".into(),
        ));
    };
    let channel = message.room.as_str();
    let (command, _, _) = framing(*style);
    Ok(message
        .parts
        .iter()
        .map(|part| format!("{command} {channel} :{}", sanitize(&part.body)))
        .collect())
}

fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
        .collect()
}

/// Splits one line of runs into bodies of at most `budget` bytes each, re-opening
/// the active style at the start of every continuation. Linear in the text: each
/// piece looks only at what it takes.
pub fn wrap(runs: &Runs, budget: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    let mut current = Style::default();
    for (style, text) in runs {
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let codes = format::transition(&current, style);
            let closing = format::transition(style, &Style::default()).len();
            let room = budget.saturating_sub(line.len() + codes.len() + closing);
            if rest.len() > room && room < MIN_PIECE && !line.is_empty() {
                finish(&mut out, &mut line, &mut current);
                continue;
            }
            let cut = first_piece_len(rest, room.max(4));
            line.push_str(&codes);
            line.push_str(&rest[..cut]);
            current = *style;
            rest = &rest[cut..];
            if !rest.is_empty() {
                finish(&mut out, &mut line, &mut current);
            }
        }
    }
    if !line.is_empty() {
        finish(&mut out, &mut line, &mut current);
    }
    out
}

/// Ends `line` and starts the next. Plain whitespace at its end (where one run ended
/// and the next did not fit) moves to the start of the next line, where the server
/// keeps it; at the end a server would strip it and glue two words together.
fn finish(out: &mut Vec<String>, line: &mut String, current: &mut Style) {
    let mut carried = String::new();
    if *current == Style::default() {
        let kept = line.trim_end().len();
        if kept > 0 {
            carried = line.split_off(kept);
        }
    }
    line.push_str(&format::transition(current, &Style::default()));
    *current = Style::default();
    let body = std::mem::replace(line, carried);
    if !body.trim().is_empty() {
        out.push(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::{Capabilities, RoomId, TextFormat};

    /// The lines for `message` as the core's policy plans them for a channel where
    /// our source is `source_len` bytes and one message may become `max_lines`.
    fn lines(
        message: &Outbound,
        source_len: usize,
        max_lines: usize,
    ) -> Result<Vec<String>, SendError> {
        let capabilities = Capabilities {
            max_message_bytes: Some(text_budget(message.room.as_str(), source_len)),
            max_parts: Some(max_lines),
            text: TextFormat::new(IrcText {
                name_guard: Some('\u{200D}'),
            }),
            ..Capabilities::default()
        };
        let planned = switchboard_sdk::testing::planned_with(&capabilities, message.clone());
        super::lines(&planned)
    }

    fn outbound(text: &str, style: MessageStyle) -> Outbound {
        Outbound {
            room: RoomId::new("#chan"),
            delivery_id: 1,
            delivery_key: "d1".into(),
            sender_name: "alice".into(),
            sender_avatar: None,
            sender_label: "<a\u{200D}lice> ".into(),
            per_message_sender: false,
            parts: Vec::new(),
            origin: Default::default(),
            kind: OutboundKind::Message {
                style,
                content: RichText::plain(text),
                reply_to: None,
                thread: None,
                attachments: Vec::new(),
            },
        }
    }

    const SOURCE: &str = "switchboard!~switchboard@some.very.long.hostname.example.org";

    #[test]
    fn a_long_multibyte_message_fits_in_512_bytes_per_line_and_loses_nothing() {
        let text = "Zażółć gęślą jaźń 😀 ".repeat(60);
        assert!(text.len() >= 1500);
        let lines = lines(
            &outbound(&text, MessageStyle::Normal),
            SOURCE.len(),
            usize::MAX,
        )
        .unwrap();
        assert!(lines.len() >= 4, "{} lines", lines.len());
        let mut rebuilt = String::new();
        for line in &lines {
            let wire = format!(":{SOURCE} {line}\r\n");
            assert!(wire.len() <= MAX_LINE, "{} bytes: {wire:?}", wire.len());
            let body = line
                .strip_prefix("PRIVMSG #chan :<a\u{200D}lice> ")
                .expect("every line keeps the label");
            // As the server relays it: ngircd strips trailing spaces.
            rebuilt.push_str(body.trim_end_matches(' '));
        }
        assert_eq!(
            rebuilt,
            text.trim_end(),
            "nothing lost, nothing added, no words glued together"
        );
    }

    #[test]
    fn a_space_where_a_run_ends_moves_to_the_next_line() {
        let bold = Style {
            bold: true,
            ..Style::default()
        };
        let runs = vec![
            (Style::default(), "aaaa bbbb ".to_owned()),
            (bold, "c".repeat(30)),
        ];
        let bodies = wrap(&runs, 24);
        // As the server relays them (trailing spaces stripped), without the codes.
        let rebuilt: String = bodies
            .iter()
            .map(|body| body.trim_end_matches(' ').replace('\x02', ""))
            .collect();
        assert_eq!(
            rebuilt,
            format!("aaaa bbbb {}", "c".repeat(30)),
            "{bodies:?}"
        );
    }

    #[test]
    fn a_huge_message_is_capped_with_a_marker() {
        let text = "x".repeat(1 << 20);
        let lines = lines(&outbound(&text, MessageStyle::Normal), SOURCE.len(), 10).unwrap();
        assert_eq!(lines.len(), 10);
        let per_line = lines[0].len() - "PRIVMSG #chan :<a\u{200D}lice> ".len();
        let total = text.len().div_ceil(per_line);
        assert_eq!(
            lines[9],
            format!(
                "PRIVMSG #chan :<a\u{200D}lice> ... (message truncated, {} more lines)",
                total - 9
            )
        );
        for line in &lines[..9] {
            assert!(line.ends_with(&"x".repeat(per_line)), "{line}");
        }
        // At the cap exactly, nothing is cut.
        let ten = (0..10)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let lines = tests::lines(&outbound(&ten, MessageStyle::Normal), SOURCE.len(), 10).unwrap();
        assert_eq!(lines.len(), 10);
        assert!(lines[9].ends_with("line 9"));
    }

    #[test]
    fn prefers_word_boundaries() {
        let text = "word ".repeat(200);
        for line in lines(
            &outbound(&text, MessageStyle::Normal),
            SOURCE.len(),
            usize::MAX,
        )
        .unwrap()
        {
            let body = line
                .strip_prefix("PRIVMSG #chan :<a\u{200D}lice> ")
                .unwrap();
            assert!(
                body.trim_end().ends_with("word"),
                "cut inside a word: {body:?}"
            );
        }
    }

    #[test]
    fn actions_notices_and_multiline() {
        let action = lines(&outbound("waves", MessageStyle::Action), 10, 10).unwrap();
        assert_eq!(
            action,
            vec!["PRIVMSG #chan :\x01ACTION <a\u{200D}lice> waves\x01"]
        );
        let notice = lines(&outbound("one\n\ntwo", MessageStyle::Notice), 10, 10).unwrap();
        assert_eq!(
            notice,
            vec![
                "NOTICE #chan :<a\u{200D}lice> one",
                "NOTICE #chan :<a\u{200D}lice> two"
            ]
        );
    }

    #[test]
    fn formatting_is_reopened_on_continuations() {
        let bold = Style {
            bold: true,
            ..Style::default()
        };
        let runs = vec![(bold, "x".repeat(50))];
        let bodies = wrap(&runs, 30);
        assert!(bodies.len() >= 2);
        for body in &bodies {
            assert!(
                body.starts_with('\x02') && body.ends_with('\x02'),
                "{body:?}"
            );
            assert!(body.len() <= 30);
        }
    }

    #[test]
    fn edits_are_refused_permanently() {
        let mut message = outbound("x", MessageStyle::Normal);
        message.kind = OutboundKind::Delete { targets: vec![] };
        assert!(matches!(
            lines(&message, 10, 10),
            Err(SendError::Permanent(_))
        ));
    }
}
