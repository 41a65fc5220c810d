//! Delivery policy: how one rendered delivery is shown in its destination room,
//! decided once here from the room's capabilities, never again in an adapter.
//!
//! - Who wrote it: where the room shows a name per message (a username override, a
//!   ghost user) the author goes there and the text carries no label; elsewhere the
//!   route's label goes into the text, placed by the network's text rules (IRC puts
//!   it on every line).
//! - The final text: rendered with the destination's text rules, split to its size
//!   limit, capped at its most parts, and mention-guarded part by part on exactly
//!   the bytes that will be sent, then checked once more: a part the guard could not
//!   make safe stops the delivery (it is dead-lettered, never sent).
//!
//! The adapter gets `Outbound::parts` and `Outbound::per_message_sender` and sends
//! them as they are.
//!
//! The decision itself is `switchboard_sdk::final_text::present`, so that adapter
//! tests (`testing::planned`) plan parts exactly as delivery does; this module is
//! where the core takes it.

pub use switchboard_sdk::final_text::present;

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::{
        Capabilities, FinalText, MessageStyle, Outbound, OutboundKind, RichText, RoomId,
        TextFormat, TextRules, final_text::truncation_marker,
    };

    /// Text rules where `!all` notifies, the guard breaks it unless it is shouted
    /// (`!ALL`, which it misses), and the label goes on every part.
    struct Bangs;

    impl TextRules for Bangs {
        fn name(&self) -> &'static str {
            "bangs"
        }

        fn render(
            &self,
            content: &RichText,
            _style: MessageStyle,
            label: &str,
            budget: Option<usize>,
        ) -> Vec<FinalText> {
            let text = content.to_plain();
            let budget = budget.map_or(usize::MAX, |b| b - label.len());
            text.as_bytes()
                .chunks(budget)
                .map(|chunk| FinalText::plain(format!("{label}{}", String::from_utf8_lossy(chunk))))
                .collect()
        }

        fn guard_mentions(&self, part: FinalText) -> FinalText {
            FinalText::plain(part.body.replace("!all", "!\u{200B}all"))
        }

        fn notifies_room(&self, part: &FinalText) -> bool {
            part.body.to_lowercase().contains("!all")
        }
    }

    fn capabilities(per_message_sender: bool) -> Capabilities {
        Capabilities {
            per_message_sender,
            max_message_bytes: Some(10),
            max_parts: Some(3),
            text: TextFormat::new(Bangs),
            ..Capabilities::default()
        }
    }

    fn message(text: &str) -> Outbound {
        Outbound {
            room: RoomId::new("#d"),
            delivery_id: 1,
            delivery_key: "d1".into(),
            sender_name: "al".into(),
            sender_avatar: None,
            sender_label: "<al> ".into(),
            per_message_sender: false,
            origin: Default::default(),
            kind: OutboundKind::Message {
                style: MessageStyle::Normal,
                content: RichText::plain(text),
                reply_to: None,
                thread: None,
                attachments: Vec::new(),
            },
            parts: Vec::new(),
        }
    }

    fn bodies(outbound: &Outbound) -> Vec<&str> {
        outbound.parts.iter().map(|p| p.body.as_str()).collect()
    }

    #[test]
    fn the_label_goes_into_the_text_only_where_no_name_is_shown_per_message() {
        let labelled = present(message("hi"), &capabilities(false)).unwrap();
        assert!(!labelled.per_message_sender);
        assert_eq!(bodies(&labelled), ["<al> hi"]);
        let named = present(message("hi"), &capabilities(true)).unwrap();
        assert!(named.per_message_sender);
        assert_eq!(bodies(&named), ["hi"]);
    }

    #[test]
    fn long_text_is_split_to_the_limit_and_capped_with_a_marker() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        let named = present(message(text), &capabilities(true)).unwrap();
        let marker = truncation_marker(2);
        assert_eq!(bodies(&named), ["abcdefghij", "klmnopqrst", &marker[..10]]);
    }

    #[test]
    fn every_part_is_guarded_and_a_part_the_guard_misses_is_refused() {
        let guarded = present(message("ping !all"), &capabilities(true)).unwrap();
        assert_eq!(bodies(&guarded), ["ping !\u{200B}all"]);
        // Split between the parts: each part is checked as it is sent.
        let refused = present(message("hey !ALL"), &capabilities(true));
        assert!(refused.unwrap_err().contains("bangs"));
    }

    #[test]
    fn edits_are_one_part_and_deletes_have_none() {
        let mut edit = message("");
        edit.kind = OutboundKind::Edit {
            targets: Vec::new(),
            content: RichText::plain("abcdefghijklmnopqrstuvwxyz"),
        };
        let edit = present(edit, &capabilities(true)).unwrap();
        assert_eq!(bodies(&edit), ["abcdefghijklmnopqrstuvwxyz"]);
        let mut delete = message("");
        delete.kind = OutboundKind::Delete {
            targets: Vec::new(),
        };
        assert!(
            present(delete, &capabilities(true))
                .unwrap()
                .parts
                .is_empty()
        );
    }
}
