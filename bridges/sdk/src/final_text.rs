//! The text a destination finally receives, and the rules by which a network writes
//! it: each adapter declares its [`TextRules`] in its capabilities, and the core's
//! delivery policy renders, splits, labels and mention-guards every delivery with
//! them, then checks the result once more before anything is sent. Adapters send
//! the parts they are handed as they are.

use crate::adapter::Capabilities;
use crate::event::{MessageStyle, Outbound, OutboundKind};
use crate::rich::RichText;
use crate::text::{split_to_byte_budget, with_label_in_text};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One part of a delivery as the destination receives it: its native text (IRC
/// line payload, Mattermost markdown, Matrix `body`) and, where the network has a
/// second rendering, its HTML (Matrix `formatted_body`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalText {
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

impl FinalText {
    pub fn plain(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            html: None,
        }
    }
}

/// How one network writes relayed text, and what in that text notifies a whole room.
pub trait TextRules: Send + Sync + 'static {
    /// A short name for logs and `Debug`.
    fn name(&self) -> &'static str;

    /// `content` as this network's native text, with `label` (the relayed author's
    /// label, or empty) placed where this network puts it, cut into parts of at most
    /// `budget` bytes each (`None`: one part). Unguarded: the core guards the result.
    fn render(
        &self,
        content: &RichText,
        style: MessageStyle,
        label: &str,
        budget: Option<usize>,
    ) -> Vec<FinalText>;

    /// The part with every room-wide mention this network's server would act on
    /// defused (e.g. a zero-width space after the `@`), by the server's own reading
    /// of exactly this text. The default: nothing here notifies a whole room.
    fn guard_mentions(&self, part: FinalText) -> FinalText {
        part
    }

    /// Whether the server would notify a whole room for this part.
    fn notifies_room(&self, _part: &FinalText) -> bool {
        false
    }

    /// A relayed name as shown here, altered (invisibly) so that it does not notify
    /// the local user who has the same name. The default leaves it as it is.
    fn name_without_ping(&self, name: &str) -> String {
        name.to_owned()
    }
}

/// Plain text: no markup, no mentions, the label before the text, split anywhere
/// a word boundary allows. What the fake network and tools use.
#[derive(Debug, Default)]
pub struct PlainText;

impl TextRules for PlainText {
    fn name(&self) -> &'static str {
        "plain"
    }

    fn render(
        &self,
        content: &RichText,
        _style: MessageStyle,
        label: &str,
        budget: Option<usize>,
    ) -> Vec<FinalText> {
        let text = format!("{label}{}", content.to_plain());
        match budget {
            None => vec![FinalText::plain(text)],
            Some(budget) => split_to_byte_budget(&text, budget)
                .into_iter()
                .map(FinalText::plain)
                .collect(),
        }
    }
}

/// The text rules of a network whose message is one markup text with the label
/// written into it, where only the text can ping (Slack's mrkdwn, Discord's
/// markdown): each protocol gives its writer, its guard and its own reading of what
/// pings, and the rest is the same.
#[derive(Debug, Clone, Copy)]
pub struct MarkupInText {
    pub name: &'static str,
    /// The content written out whole (`None`) or in parts of at most the budget.
    pub parts: fn(&RichText, Option<usize>) -> Vec<String>,
    /// The text with everything that could ping defused.
    pub guard: fn(&str) -> String,
    /// Whether the server could ping anyone for this text (what `guard` would change).
    pub notifies: fn(&str) -> bool,
}

impl MarkupInText {
    /// The content written out as one guarded text, without a label.
    pub fn render_whole(&self, content: &RichText) -> String {
        (self.parts)(&with_label_in_text(content, MessageStyle::Normal, ""), None)
            .pop()
            .unwrap_or_default()
    }
}

impl TextRules for MarkupInText {
    fn name(&self) -> &'static str {
        self.name
    }

    fn render(
        &self,
        content: &RichText,
        style: MessageStyle,
        label: &str,
        budget: Option<usize>,
    ) -> Vec<FinalText> {
        (self.parts)(&with_label_in_text(content, style, label), budget)
            .into_iter()
            .map(FinalText::plain)
            .collect()
    }

    fn guard_mentions(&self, part: FinalText) -> FinalText {
        FinalText {
            body: (self.guard)(&part.body),
            html: part.html,
        }
    }

    fn notifies_room(&self, part: &FinalText) -> bool {
        (self.notifies)(&part.body)
    }

    fn name_without_ping(&self, name: &str) -> String {
        // Such networks ping a person only through their own id syntax, which the
        // guard never lets through, but a name like `everyone` would still read
        // `@everyone` after an `@`.
        crate::text::name_without_ping(name, '\u{200D}')
    }
}

/// A network's text rules as its capabilities carry them: shared, compared by
/// identity.
#[derive(Clone)]
pub struct TextFormat(Arc<dyn TextRules>);

impl TextFormat {
    pub fn new(rules: impl TextRules) -> Self {
        Self(Arc::new(rules))
    }
}

impl Default for TextFormat {
    /// Plain text (one shared instance, so defaults compare equal).
    fn default() -> Self {
        static PLAIN: std::sync::LazyLock<TextFormat> =
            std::sync::LazyLock::new(|| TextFormat::new(PlainText));
        PLAIN.clone()
    }
}

impl std::ops::Deref for TextFormat {
    type Target = dyn TextRules;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for TextFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextFormat({})", self.0.name())
    }
}

impl PartialEq for TextFormat {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TextFormat {}

/// The last part of a message cut to `Capabilities::max_parts`.
pub fn truncation_marker(more_parts: usize) -> String {
    format!("... (message truncated, {more_parts} more lines)")
}

/// The final parts of one text for a destination with `capabilities`: rendered by
/// its text rules with `label` (empty when the network names the author itself),
/// split to its size limit when `split` (an edit replaces one message, so it is not
/// split), capped at its most parts (the last then says how many were cut), every
/// part mention-guarded and then checked again, on exactly the bytes that will be
/// sent. `Err` says why the text must not be sent at all: the guard left something
/// that would notify a whole room.
pub fn final_parts(
    capabilities: &Capabilities,
    content: &RichText,
    style: MessageStyle,
    label: &str,
    split: bool,
) -> Result<Vec<FinalText>, String> {
    let rules = &capabilities.text;
    let budget = capabilities.max_message_bytes.filter(|_| split);
    let mut parts = rules.render(content, style, label, budget);
    if let Some(max_parts) = capabilities.max_parts.filter(|_| split)
        && parts.len() > max_parts.max(1)
    {
        let kept = max_parts.max(1) - 1;
        let marker = truncation_marker(parts.len() - kept);
        parts.truncate(kept);
        parts.extend(
            rules
                .render(&RichText::plain(marker), style, label, budget)
                .into_iter()
                .take(1),
        );
    }
    parts
        .into_iter()
        .map(|part| {
            let guarded = rules.guard_mentions(part);
            if rules.notifies_room(&guarded) {
                Err(format!(
                    "the {} mention guard left a room-wide mention in {:?}",
                    rules.name(),
                    guarded.body
                ))
            } else {
                Ok(guarded)
            }
        })
        .collect()
}

/// `outbound` as it is shown in a room with `capabilities`: where the room shows a
/// name per message the author goes there and the text carries no label, elsewhere
/// the label goes into the text; `parts` are the final text ([`final_parts`]). The
/// core's delivery policy; `Err` is why the delivery must not be sent.
pub fn present(mut outbound: Outbound, capabilities: &Capabilities) -> Result<Outbound, String> {
    outbound.per_message_sender = capabilities.per_message_sender;
    let label = if outbound.per_message_sender {
        ""
    } else {
        outbound.sender_label.as_str()
    };
    outbound.parts = match &outbound.kind {
        OutboundKind::Message { style, content, .. } => {
            final_parts(capabilities, content, *style, label, true)?
        }
        // An edit replaces one message: one part, not split.
        OutboundKind::Edit { content, .. } => {
            final_parts(capabilities, content, MessageStyle::Normal, label, false)?
        }
        OutboundKind::Delete { .. } | OutboundKind::Reaction { .. } => Vec::new(),
    };
    Ok(outbound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_puts_the_label_first_and_splits_to_the_budget() {
        let parts = PlainText.render(
            &RichText::plain("aaaa bbbb"),
            MessageStyle::Normal,
            "<x> ",
            Some(8),
        );
        assert_eq!(
            parts,
            vec![FinalText::plain("<x> aaaa"), FinalText::plain(" bbbb")]
        );
    }
}
