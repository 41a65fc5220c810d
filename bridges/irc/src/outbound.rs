//! `Outbound` deliveries -> IRC lines that each fit in 512 bytes as other clients
//! receive them (`:nick!user@host PRIVMSG #chan :text\r\n`), never cut inside a UTF-8
//! character, preferring word boundaries, with the sender label on every line and
//! formatting re-opened on continuation lines.

use crate::format::{self, Runs};
use switchboard_sdk::text::split_to_byte_budget;
use switchboard_sdk::{MessageStyle, Outbound, OutboundKind, SendError, Style};

/// The longest line a server relays, CRLF included.
pub const MAX_LINE: usize = 512;
/// A continuation shorter than this is not started at the end of a line: the run
/// moves to the next line instead, so words are not chopped needlessly.
const MIN_PIECE: usize = 16;

/// Every wire line (without CRLF) for one delivery. `source_len` is the length of
/// our `nick!user@host` as the server will prefix it.
pub fn lines(message: &Outbound, source_len: usize) -> Result<Vec<String>, SendError> {
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
    Ok(out)
}

fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
        .collect()
}

/// Splits one line of runs into bodies of at most `budget` bytes each, re-opening
/// the active style at the start of every continuation.
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
            let piece = if rest.len() <= room {
                rest
            } else {
                split_to_byte_budget(rest, room.max(4))[0]
            };
            line.push_str(&codes);
            line.push_str(piece);
            current = *style;
            rest = &rest[piece.len()..];
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

fn finish(out: &mut Vec<String>, line: &mut String, current: &mut Style) {
    line.push_str(&format::transition(current, &Style::default()));
    *current = Style::default();
    let body = std::mem::take(line);
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
        let lines = lines(&outbound(&text, MessageStyle::Normal), SOURCE.len()).unwrap();
        assert!(lines.len() >= 4, "{} lines", lines.len());
        let mut rebuilt = String::new();
        for line in &lines {
            let wire = format!(":{SOURCE} {line}\r\n");
            assert!(wire.len() <= MAX_LINE, "{} bytes: {wire:?}", wire.len());
            let body = line
                .strip_prefix("PRIVMSG #chan :<a\u{200D}lice> ")
                .expect("every line keeps the label");
            rebuilt.push_str(body);
        }
        assert_eq!(rebuilt, text, "nothing lost, nothing added");
    }

    #[test]
    fn prefers_word_boundaries() {
        let text = "word ".repeat(200);
        for line in lines(&outbound(&text, MessageStyle::Normal), SOURCE.len()).unwrap() {
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
        let action = lines(&outbound("waves", MessageStyle::Action), 10).unwrap();
        assert_eq!(
            action,
            vec!["PRIVMSG #chan :\x01ACTION <a\u{200D}lice> waves\x01"]
        );
        let notice = lines(&outbound("one\n\ntwo", MessageStyle::Notice), 10).unwrap();
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
        assert!(matches!(lines(&message, 10), Err(SendError::Permanent(_))));
    }
}
