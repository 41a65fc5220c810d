//! Catch-up after a websocket drop or a restart: everything that changed in a channel
//! since its cursor, read over REST and put in the order it happened; and the cursors
//! themselves, which never move past the daemon's own clock.
//!
//! New posts come from paging back through the channel (`before=` the oldest post
//! seen, `per_page` at the API's maximum) until a post older than the cursor: that
//! is complete however many there are. Edits and deletes of older posts come from
//! `since=`, which the server caps at 1,000 posts chosen before ordering, so a longer
//! outage can leave some of those out; that is logged.

use crate::api::Post;
use crate::client::{ApiError, Client, SINCE_LIMIT};
use crate::inbound::Change;
use std::collections::{HashMap, HashSet};
use switchboard_sdk::event::now_ms;
use switchboard_sdk::{AdapterContext, AdapterError};

/// Posts per page: the API's maximum (`per_page` above it is cut to it).
pub const PAGE_SIZE: usize = 200;

/// What changed in one channel after a time, oldest change first.
#[derive(Debug, Default)]
pub struct Changes {
    pub list: Vec<(Change, Post)>,
    /// The `since` answer was full: edits or deletes of older posts may be missing.
    pub edits_may_be_missing: bool,
    /// Posts the server listed without what relaying them needs: (post id, reason).
    pub unreadable: Vec<(String, &'static str)>,
}

/// When a change happened, by the server's clock: creation, edit or deletion.
pub fn change_time(change: Change, post: &Post) -> i64 {
    match change {
        Change::Created => post.create_at,
        Change::Edited if post.edit_at > 0 => post.edit_at,
        // A `post_deleted` event carries the post as it was before the deletion.
        Change::Deleted if post.delete_at > 0 => post.delete_at,
        Change::Edited | Change::Deleted => post.update_at.max(post.create_at),
    }
}

/// Every change to `channel_id` after `since_ms`, in the order it happened.
pub async fn changes_since(
    client: &Client,
    channel_id: &str,
    since_ms: i64,
) -> Result<Changes, ApiError> {
    let mut changes = Changes::default();
    let mut seen = HashSet::new();
    // Newest first, as the pages come.
    let mut created = Vec::new();
    let mut before: Option<String> = None;
    'pages: loop {
        let page = client
            .posts_page(channel_id, before.as_deref(), PAGE_SIZE)
            .await?;
        let more = !page.prev_post_id.is_empty();
        let posts = page.into_ordered();
        let Some(oldest) = posts.last().map(|post| post.id.clone()) else {
            break;
        };
        for post in posts {
            if post.create_at <= since_ms {
                break 'pages;
            }
            if seen.insert(post.id.clone()) {
                created.push(post);
            }
        }
        if !more || before.as_deref() == Some(oldest.as_str()) {
            break;
        }
        before = Some(oldest);
    }
    created.reverse();
    let mut timed: Vec<(i64, Change, Post)> = created
        .into_iter()
        .map(|post| (post.create_at, Change::Created, post))
        .collect();

    let changed = client.posts_changed_since(channel_id, since_ms).await?;
    changes.edits_may_be_missing = changed.len() >= SINCE_LIMIT;
    // Oldest first, so that changes sharing a millisecond keep the server's order.
    for post in changed.into_iter().rev() {
        let change = if post.delete_at > 0 {
            Change::Deleted
        } else if post.create_at > since_ms {
            // Created after the pages were read.
            if !seen.insert(post.id.clone()) {
                continue;
            }
            Change::Created
        } else if post.edit_at > since_ms {
            Change::Edited
        } else {
            // Only its metadata changed (a reply in its thread bumps `update_at`).
            continue;
        };
        timed.push((change_time(change, &post), change, post));
    }
    // Stable: the order above breaks ties.
    timed.sort_by_key(|(at, _, _)| *at);
    for (_, change, post) in timed {
        // A deleted post's text is blanked by the server: it needs none.
        let problem = match change {
            Change::Deleted => None,
            _ => post.unreadable(),
        };
        match problem {
            Some(reason) => changes.unreadable.push((post.id, reason)),
            None => changes.list.push((change, post)),
        }
    }
    Ok(changes)
}

/// The newest change relayed per channel, saved as adapter state so a restart knows
/// where to catch up from. A cursor never passes the daemon's clock: a post dated in
/// the future (or a server clock that ran ahead) must not make later catch-ups ask
/// for posts after a time that has not come yet.
pub struct Cursors {
    positions: HashMap<String, i64>,
    dirty: bool,
    /// Posts the last catch-up relayed: their `posted` events, still buffered on the
    /// websocket, need not be submitted again.
    pub caught_up: HashSet<String>,
}

/// A server timestamp this far past the daemon's clock is not believed (a little
/// skew between two clocks is normal and needs no one's attention).
pub const FUTURE_TOLERANCE_MS: i64 = 60_000;

impl Cursors {
    /// The saved cursors of `channels`; those never saved start at `default_ms`
    /// (history from before the bridge existed is not relayed). Returns also the
    /// channels whose saved cursor lay in the future, now moved back to the clock.
    pub async fn load<'a>(
        ctx: &AdapterContext,
        channels: impl Iterator<Item = &'a String>,
        default_ms: i64,
    ) -> Result<(Self, Vec<(String, i64)>), AdapterError> {
        let now = now_ms();
        let mut positions = HashMap::new();
        let mut dirty = false;
        let mut rewound = Vec::new();
        for channel in channels {
            let saved = ctx
                .state
                .load(&key(channel))
                .await
                .map_err(|error| AdapterError::Connection(format!("adapter state: {error}")))?
                .and_then(|value| value.parse::<i64>().ok());
            let position = match saved {
                Some(saved) if saved > now => {
                    rewound.push((channel.clone(), saved));
                    dirty = true;
                    now
                }
                Some(saved) => saved,
                None => {
                    dirty = true;
                    default_ms
                }
            };
            positions.insert(channel.clone(), position);
        }
        let cursors = Self {
            positions,
            dirty,
            caught_up: HashSet::new(),
        };
        Ok((cursors, rewound))
    }

    /// Moves the channel's cursor to `at_ms`, but not past the daemon's clock.
    /// `Err(at_ms)` when the time lay further in the future than clocks drift.
    pub fn advance(&mut self, channel: &str, at_ms: i64) -> Result<(), i64> {
        let now = now_ms();
        let bounded = at_ms.min(now);
        if let Some(position) = self.positions.get_mut(channel)
            && bounded > *position
        {
            *position = bounded;
            self.dirty = true;
        }
        if at_ms > now.saturating_add(FUTURE_TOLERANCE_MS) {
            Err(at_ms)
        } else {
            Ok(())
        }
    }

    /// A channel newly bridged: caught up from `at_ms` on, whatever was saved.
    pub fn start_at(&mut self, channel: &str, at_ms: i64) {
        self.positions.insert(channel.to_owned(), at_ms);
        self.dirty = true;
    }

    /// A channel no longer bridged: not caught up any more.
    pub fn forget(&mut self, channel: &str) {
        self.positions.remove(channel);
    }

    /// Each channel with its cursor.
    pub fn positions(&self) -> Vec<(String, i64)> {
        self.positions
            .iter()
            .map(|(channel, position)| (channel.clone(), *position))
            .collect()
    }

    pub async fn save(&mut self, ctx: &AdapterContext) {
        if !self.dirty {
            return;
        }
        for (channel, position) in &self.positions {
            if let Err(error) = ctx.state.save(&key(channel), &position.to_string()).await {
                tracing::warn!(network = %ctx.network, %error, "Mattermost: cannot save the catch-up cursor");
                return;
            }
        }
        self.dirty = false;
    }
}

fn key(channel_id: &str) -> String {
    format!("cursor/{channel_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_is_timed_by_when_it_happened() {
        let post = Post {
            create_at: 10,
            update_at: 40,
            edit_at: 30,
            delete_at: 0,
            ..Post::default()
        };
        assert_eq!(change_time(Change::Created, &post), 10);
        assert_eq!(change_time(Change::Edited, &post), 30);
        // A `post_deleted` event's copy predates the deletion.
        assert_eq!(change_time(Change::Deleted, &post), 40);
        let deleted = Post {
            delete_at: 50,
            ..post
        };
        assert_eq!(change_time(Change::Deleted, &deleted), 50);
    }
}
