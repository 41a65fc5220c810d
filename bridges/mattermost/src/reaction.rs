//! Reactions on Mattermost: how their native ids are written, and the event a
//! reaction change becomes.
//!
//! Mattermost knows a reaction by (post, user, emoji) and has no id of its own for
//! it, so the native id is made of those three. A reaction the bridge itself makes
//! gets the delivery id after them: the bridge's user reacts once per emoji however
//! many remote users react the same way, and each remote reaction needs a copy id of
//! its own in the id map.

use crate::api::Reaction;
use switchboard_sdk::NativeMsgId;

const MARK: &str = "/reaction/";

/// The parts of a reaction's native id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionId {
    pub post_id: String,
    pub user_id: String,
    pub emoji_name: String,
}

impl ReactionId {
    pub fn of(reaction: &Reaction) -> Self {
        Self {
            post_id: reaction.post_id.clone(),
            user_id: reaction.user_id.clone(),
            emoji_name: reaction.emoji_name.clone(),
        }
    }

    /// The id of a Mattermost user's reaction.
    pub fn native(&self) -> NativeMsgId {
        NativeMsgId::new(format!(
            "{}{MARK}{}/{}",
            self.post_id, self.user_id, self.emoji_name
        ))
    }

    /// The id of the bridge's reaction made for delivery `delivery_id`.
    pub fn copy(&self, delivery_id: i64) -> NativeMsgId {
        NativeMsgId::new(format!("{}/{delivery_id}", self.native().as_str()))
    }

    /// The reaction an id names; `None` for a post's id.
    pub fn parse(id: &NativeMsgId) -> Option<Self> {
        let (post_id, rest) = id.as_str().split_once(MARK)?;
        let mut parts = rest.split('/');
        let (user_id, emoji_name) = (parts.next()?, parts.next()?);
        if post_id.is_empty() || user_id.is_empty() || emoji_name.is_empty() {
            return None;
        }
        Some(Self {
            post_id: post_id.to_owned(),
            user_id: user_id.to_owned(),
            emoji_name: emoji_name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_reactions_and_their_copies_read_back() {
        let id = ReactionId {
            post_id: "p1".into(),
            user_id: "u1".into(),
            emoji_name: "+1".into(),
        };
        assert_eq!(id.native().as_str(), "p1/reaction/u1/+1");
        assert_eq!(ReactionId::parse(&id.native()), Some(id.clone()));
        assert_eq!(ReactionId::parse(&id.copy(42)), Some(id));
        assert_eq!(ReactionId::parse(&NativeMsgId::new("p1")), None);
        assert_eq!(ReactionId::parse(&NativeMsgId::new("p1/reaction/u1")), None);
    }
}
