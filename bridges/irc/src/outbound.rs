//! `Outbound` deliveries -> IRC lines that each fit in 512 bytes as other clients
//! receive them (`:nick!user@host PRIVMSG #chan :text\r\n`), never cut inside a UTF-8
//! character, preferring word boundaries (the space starts the next line, since
//! servers strip trailing spaces), with the sender label on every line, formatting
//! re-opened on continuation lines, and at most `max_lines_per_message` lines per
//! message (the last one then says how many more were cut).

use crate::format::{self, Runs};
use switchboard_sdk::text::first_piece_len;
use switchboard_sdk::{MessageStyle, Outbound, OutboundKind, SendError, Style};

/// The longest line a server relays, CRLF included.
pub const MAX_LINE: usize = 512;
/// A continuation shorter than this is not started at the end of a line: the run
/// moves to the next line instead, so words are not chopped needlessly.
const MIN_PIECE: usize = 16;

/// Every wire line (without CRLF) for one delivery. `source_len` is the length of
/// our `nick!user@host` as the server will prefix it. Past `max_lines`, the first
/// `max_lines - 1` lines are kept and the last says how many more there were.
pub fn lines(
    message: &Outbound,
    source_len: usize,
    max_lines: usize,
) -> Result<Vec<String>, SendError> {
    let OutboundKind::Message { style, content, .. } = &message.kind else {
        return Err(SendError::Permanent(
            "IRC has no edits or deletes; the core sends corrections as messages".into(),
        ));
    };
    let channel = message.room.as_str();
    let label = sanitize(&message.sender_label);
    let (command, open, close) = match style {
        MessageStyle::Normal => ("PRIVMSG", "", ""),
        MessageStyle::Action => ("PRIVMSG", "\x01ACTION ", "\x01"),
        MessageStyle::Notice => ("NOTICE", "", ""),
    };
    let head = format!("{command} {channel} :{open}{label}");
    // ":" + source + " " + head ... close + "\r\n"
    let overhead = 1 + source_len + 1 + head.len() + close.len() + 2;
    let budget = MAX_LINE.saturating_sub(overhead).max(MIN_PIECE);
    let mut out = Vec::new();
    for runs in format::to_lines(content) {
        for body in wrap(&runs, budget) {
            out.push(format!("{head}{body}{close}"));
        }
    }
    let max_lines = max_lines.max(1);
    if out.len() > max_lines {
        let kept = max_lines - 1;
        let cut = out.len() - kept;
        out.truncate(kept);
        out.push(format!("{head}{}{close}", truncation_marker(cut)));
    }
    Ok(out)
}

/// The last line of a message cut to `max_lines_per_message`.
pub fn truncation_marker(more_lines: usize) -> String {
    format!("... (message truncated, {more_lines} more lines)")
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
    use switchboard_sdk::{RichText, RoomId};

    fn outbound(text: &str, style: MessageStyle) -> Outbound {
        Outbound {
            room: RoomId::new("#chan"),
            delivery_id: 1,
            sender_name: "alice".into(),
            sender_avatar: None,
            sender_label: "<a\u{200D}lice> ".into(),
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
        let lines = super::lines(&outbound(&ten, MessageStyle::Normal), SOURCE.len(), 10).unwrap();
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
