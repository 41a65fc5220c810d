//! What people do on the fake Discord, for tests playing them: post (replies,
//! attachments, stickers, in threads), start threads from messages, edit and
//! delete. Each is stored and dispatched like Discord would.

use super::state::{self, PUBLIC_THREAD};
use super::{FakeDiscord, PostOptions, gateway};

impl FakeDiscord {
    /// A human starts a public thread (type 11) from a message of `channel`: the
    /// thread's id is the starter message's id, as on Discord. THREAD_CREATE goes
    /// to sessions with GUILDS. Returns the thread id.
    pub fn add_thread(&self, channel: &str, starter: &str, name: &str) -> String {
        self.change(|st| {
            let parent = st.channel_or_panic(channel);
            let (parent_id, guild_id) = (parent.id.clone(), parent.guild_id.clone());
            let index = st
                .find(&parent_id, starter)
                .unwrap_or_else(|| panic!("fake Discord: no message {starter} in {channel}"));
            let owner = st.messages[index].author_user.clone();
            st.channels.push(state::Channel {
                id: starter.to_owned(),
                guild_id,
                name: name.to_owned(),
                kind: PUBLIC_THREAD,
                parent_id: Some(parent_id),
                position: 0,
                hidden_from_bots: false,
                owner_id: owner,
            });
            gateway::dispatch_thread_create(st, starter);
            starter.to_owned()
        })
    }

    /// A human posts in the channel or thread; the message is dispatched. Returns its id.
    pub fn post(&self, channel: &str, user: &str, content: &str) -> String {
        self.post_with(channel, user, content, PostOptions::default())
    }

    /// Like `post`, but only stored: no session gets it, as for a message the
    /// gateway never delivered (only `GET /channels/{id}/messages` shows it).
    pub fn post_quietly(&self, channel: &str, user: &str, content: &str) -> String {
        self.human_post(channel, user, content, PostOptions::default(), false)
    }

    /// A human posts with a reply, attachments or stickers; returns the id.
    pub fn post_with(
        &self,
        channel: &str,
        user: &str,
        content: &str,
        options: PostOptions,
    ) -> String {
        self.human_post(channel, user, content, options, true)
    }

    fn human_post(
        &self,
        channel: &str,
        user: &str,
        content: &str,
        options: PostOptions,
        dispatch: bool,
    ) -> String {
        self.change(|st| {
            let channel_id = st.channel_or_panic(channel).id.clone();
            let author = st.user_or_panic(user);
            let (user_id, name) = (author.id.clone(), author.username.clone());
            let mut stored = st.new_message(&channel_id, content);
            st.ensure_member(&stored.guild_id, &user_id);
            if let Some(parent) = &options.reply_to {
                assert!(
                    st.find(&channel_id, parent).is_some(),
                    "fake Discord: reply to unknown message {parent}"
                );
            }
            stored.author_user = Some(user_id.clone());
            stored.msg.author_id = user_id;
            stored.msg.author_name = name;
            stored.msg.reply_to = options.reply_to;
            stored.msg.attachments = options.attachments;
            stored.msg.stickers = options.stickers;
            let id = stored.msg.id.clone();
            let index = st.insert(stored);
            if dispatch {
                gateway::dispatch_message(st, "MESSAGE_CREATE", index);
            }
            id
        })
    }

    /// The author edits the message: MESSAGE_UPDATE with `edited_timestamp`.
    pub fn edit(&self, channel: &str, message: &str, content: &str) {
        self.change(|st| {
            let channel_id = st.channel_or_panic(channel).id.clone();
            let index = st
                .find(&channel_id, message)
                .unwrap_or_else(|| panic!("fake Discord: edit of unknown message {message}"));
            st.apply_edit(index, Some(content), None);
            gateway::dispatch_message(st, "MESSAGE_UPDATE", index);
        });
    }

    /// The message is deleted: MESSAGE_DELETE.
    pub fn delete(&self, channel: &str, message: &str) {
        self.change(|st| {
            let channel_id = st.channel_or_panic(channel).id.clone();
            let index = st
                .find(&channel_id, message)
                .unwrap_or_else(|| panic!("fake Discord: delete of unknown message {message}"));
            st.messages[index].msg.deleted = true;
            gateway::dispatch_message(st, "MESSAGE_DELETE", index);
        });
    }
}
