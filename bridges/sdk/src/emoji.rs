//! Reaction keys between networks that name their emoji (Mattermost, Slack:
//! `thumbsup`) and networks that send the emoji itself (Matrix, Discord: `👍`).
//!
//! The event model's key is the emoji itself wherever one exists, so that every
//! network reads the same key; a name without an emoji (a server's custom emoji)
//! travels as `:name:`, which reads well where it cannot be shown as a picture.
//! Names are GitHub's (gemoji), which Mattermost and Slack also use for the common
//! emoji.

/// The key for an emoji a network names `name` (`+1`, `thumbsup`, `party_parrot`).
pub fn key_from_name(name: &str) -> String {
    match emojis::get_by_shortcode(name) {
        Some(emoji) => emoji.as_str().to_owned(),
        None => format!(":{name}:"),
    }
}

/// The name under which a naming network knows the reaction `key`; `None` when the
/// key is neither a known emoji nor a `:name:`.
pub fn name_from_key(key: &str) -> Option<String> {
    if let Some(name) = key
        .strip_prefix(':')
        .and_then(|rest| rest.strip_suffix(':'))
        .filter(|name| is_plain_name(name))
    {
        return Some(name.to_owned());
    }
    // Keys often carry the emoji presentation selector (U+FE0F) the table lacks.
    let emoji = emojis::get(key).or_else(|| emojis::get(&key.replace('\u{fe0f}', "")))?;
    emoji.shortcode().map(str::to_owned)
}

/// Names that networks accept for emoji: letters, digits, `-`, `+` and `_`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_emoji_map_both_ways() {
        assert_eq!(key_from_name("thumbsup"), "👍");
        assert_eq!(key_from_name("+1"), "👍");
        assert_eq!(key_from_name("tada"), "🎉");
        assert_eq!(name_from_key("🎉").as_deref(), Some("tada"));
        assert_eq!(
            name_from_key(&key_from_name("thumbsup"))
                .map(|name| key_from_name(&name))
                .as_deref(),
            Some("👍")
        );
        // With and without the emoji presentation selector.
        assert_eq!(name_from_key("❤️").as_deref(), Some("heart"));
        assert_eq!(name_from_key("❤").as_deref(), Some("heart"));
    }

    #[test]
    fn custom_emoji_travel_by_name() {
        assert_eq!(key_from_name("party_parrot"), ":party_parrot:");
        assert_eq!(
            name_from_key(":party_parrot:").as_deref(),
            Some("party_parrot")
        );
        assert_eq!(name_from_key("not an emoji"), None);
        assert_eq!(name_from_key(":has space:"), None);
        assert_eq!(name_from_key("::"), None);
    }
}
