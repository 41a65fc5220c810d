//! The workspace model behind the fake: channels, users, user groups, stored
//! messages with their edits and deletions, ids and `ts` stamps; and the human
//! side of the public handle (`post`, `reply`, `edit`...), which stores a message
//! and hands its event to every subscriber.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::Value;

use super::events::EventRetries;
use super::socket::{Envelope, Socket};
use super::web_api::{FailRule, RateRule};
use super::webhooks::{IncomingHook, OutgoingHook};
use super::{Delivery, FakeSlack, Message, SharedFile, SlackOptions};

pub(super) struct Channel {
    pub id: String,
    pub name: String,
    pub created: i64,
    /// User ids, the bot user's included while it is a member.
    pub members: BTreeSet<String>,
    pub archived: bool,
}

pub(super) struct User {
    pub id: String,
    pub name: String,
    pub real_name: String,
    pub display_name: String,
    pub is_bot: bool,
    pub updated: i64,
}

pub(super) struct Usergroup {
    pub id: String,
    pub handle: String,
    pub created: i64,
}

/// A message and what the JSON needs beyond `Message`.
pub(super) struct Stored {
    pub msg: Message,
    /// Slack clients stamp human messages with a UUID.
    pub client_msg_id: Option<String>,
    /// Set on what the app posted.
    pub app_id: Option<String>,
    /// `edited.user` and `edited.ts` of the last edit.
    pub edited_by: Option<(String, String)>,
}

/// The last event pushed to the request URL, for `retry_last_event`.
pub(super) struct LastEvent {
    pub body: String,
    pub event_id: String,
    pub event_type: String,
    pub retry_num: u32,
}

pub(super) struct State {
    pub options: SlackOptions,
    pub base_url: String,
    pub team_id: String,
    pub team_name: String,
    pub team_domain: String,
    pub app_id: String,
    pub bot_id: String,
    pub bot_user_id: String,
    pub verification_token: String,
    pub channels: Vec<Channel>,
    pub users: Vec<User>,
    pub usergroups: Vec<Usergroup>,
    /// All channels, in `ts` order.
    pub messages: Vec<Stored>,
    last_ts_micros: u64,
    // Events API.
    pub events_url: Option<String>,
    pub retries: EventRetries,
    pub events_timeout: Duration,
    pub deliveries: Vec<Delivery>,
    pub last_event: Option<LastEvent>,
    pub last_challenge: Option<String>,
    // Socket Mode.
    pub socket_mode: bool,
    pub tickets: BTreeSet<String>,
    pub sockets: BTreeMap<u64, Socket>,
    pub next_socket: u64,
    pub sockets_opened: usize,
    /// Unacknowledged envelopes, oldest first.
    pub pending: VecDeque<Envelope>,
    pub acked: Vec<String>,
    pub pongs: usize,
    pub disconnect_grace: Duration,
    // Web API bookkeeping and faults.
    pub calls: BTreeMap<String, usize>,
    pub api_log: Vec<(String, Value)>,
    pub rate_rules: Vec<RateRule>,
    pub fail_rules: Vec<FailRule>,
    // Webhooks.
    pub incoming_hooks: Vec<IncomingHook>,
    pub outgoing_hook: Option<OutgoingHook>,
    pub outgoing_results: Vec<u16>,
}

impl State {
    pub(super) fn new(options: SlackOptions, base_url: String) -> Self {
        let bot_user_id = new_id('U');
        let now = now_secs();
        let mut st = State {
            team_id: new_id('T'),
            team_name: "Switchboard Test".to_owned(),
            team_domain: "switchboard-test".to_owned(),
            app_id: new_id('A'),
            bot_id: new_id('B'),
            bot_user_id: bot_user_id.clone(),
            verification_token: random_string(24, ALNUM),
            channels: Vec::new(),
            users: vec![User {
                id: bot_user_id,
                name: options.bot_name.clone(),
                real_name: options.bot_name.clone(),
                display_name: String::new(),
                is_bot: true,
                updated: now,
            }],
            usergroups: Vec::new(),
            messages: Vec::new(),
            last_ts_micros: 0,
            events_url: None,
            retries: EventRetries::Immediate,
            events_timeout: Duration::from_secs(3),
            deliveries: Vec::new(),
            last_event: None,
            last_challenge: None,
            socket_mode: false,
            tickets: BTreeSet::new(),
            sockets: BTreeMap::new(),
            next_socket: 0,
            sockets_opened: 0,
            pending: VecDeque::new(),
            acked: Vec::new(),
            pongs: 0,
            disconnect_grace: Duration::from_secs(1),
            calls: BTreeMap::new(),
            api_log: Vec::new(),
            rate_rules: Vec::new(),
            fail_rules: Vec::new(),
            incoming_hooks: Vec::new(),
            outgoing_hook: None,
            outgoing_results: Vec::new(),
            options,
            base_url,
        };
        for name in st.options.channels.clone() {
            st.add_channel(&name);
        }
        st
    }

    pub(super) fn add_channel(&mut self, name: &str) -> String {
        let name = name.trim_start_matches('#').to_owned();
        assert!(
            self.channel(&name).is_none(),
            "fake Slack: channel {name} exists"
        );
        let id = new_id('C');
        self.channels.push(Channel {
            id: id.clone(),
            name,
            created: now_secs(),
            members: BTreeSet::from([self.bot_user_id.clone()]),
            archived: false,
        });
        id
    }

    pub(super) fn add_user(&mut self, id_hint: &str, name: &str) -> String {
        let mut base: String = id_hint
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if base.is_empty() {
            base = new_id('U');
        } else if !base.starts_with(['U', 'W']) {
            base.insert(0, 'U');
        }
        let mut id = base.clone();
        let mut counter = 2;
        while self.users.iter().any(|u| u.id == id) {
            id = format!("{base}{counter}");
            counter += 1;
        }
        let mut real_name: Vec<char> = name.chars().collect();
        if let Some(first) = real_name.first_mut() {
            *first = first.to_ascii_uppercase();
        }
        self.users.push(User {
            id: id.clone(),
            name: name.to_owned(),
            real_name: real_name.into_iter().collect(),
            display_name: name.to_owned(),
            is_bot: false,
            updated: now_secs(),
        });
        id
    }

    pub(super) fn add_usergroup(&mut self, handle: &str) -> String {
        let id = new_id('S');
        self.usergroups.push(Usergroup {
            id: id.clone(),
            handle: handle.trim_start_matches('@').to_owned(),
            created: now_secs(),
        });
        id
    }

    /// A channel by id or by name (with or without `#`).
    pub(super) fn channel(&self, key: &str) -> Option<&Channel> {
        let key = key.trim_start_matches('#');
        self.channels.iter().find(|c| c.id == key || c.name == key)
    }

    pub(super) fn channel_mut(&mut self, key: &str) -> Option<&mut Channel> {
        let key = key.trim_start_matches('#');
        self.channels
            .iter_mut()
            .find(|c| c.id == key || c.name == key)
    }

    pub(super) fn channel_or_panic(&self, key: &str) -> &Channel {
        self.channel(key)
            .unwrap_or_else(|| panic!("fake Slack: no channel {key}"))
    }

    pub(super) fn channel_mut_or_panic(&mut self, key: &str) -> &mut Channel {
        self.channel_mut(key)
            .unwrap_or_else(|| panic!("fake Slack: no channel {key}"))
    }

    /// A user by id or by name.
    pub(super) fn user(&self, key: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == key || u.name == key)
    }

    pub(super) fn user_or_panic(&self, key: &str) -> &User {
        self.user(key)
            .unwrap_or_else(|| panic!("fake Slack: no user {key}"))
    }

    pub(super) fn user_mut_or_panic(&mut self, key: &str) -> &mut User {
        self.users
            .iter_mut()
            .find(|u| u.id == key || u.name == key)
            .unwrap_or_else(|| panic!("fake Slack: no user {key}"))
    }

    pub(super) fn is_member(&self, channel_id: &str) -> bool {
        self.channel(channel_id)
            .is_some_and(|c| c.members.contains(&self.bot_user_id))
    }

    /// A fresh `ts`: the clock in microseconds, bumped past the last one so
    /// stamps stay unique and increasing.
    pub(super) fn next_ts(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        self.last_ts_micros = now.max(self.last_ts_micros + 1);
        format_ts(self.last_ts_micros)
    }

    /// The index of a live (not deleted) message.
    pub(super) fn find(&self, channel_id: &str, ts: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.msg.channel == channel_id && m.msg.ts == ts && !m.msg.deleted)
    }

    /// Replies to a reply join the reply's thread, as in Slack.
    pub(super) fn thread_root(&self, channel_id: &str, thread_ts: &str) -> String {
        self.find(channel_id, thread_ts)
            .and_then(|i| self.messages[i].msg.thread_ts.clone())
            .unwrap_or_else(|| thread_ts.to_owned())
    }

    /// The live replies of a thread, oldest first.
    pub(super) fn replies(&self, channel_id: &str, parent_ts: &str) -> Vec<&Stored> {
        self.messages
            .iter()
            .filter(|m| {
                m.msg.channel == channel_id
                    && !m.msg.deleted
                    && m.msg.thread_ts.as_deref() == Some(parent_ts)
            })
            .collect()
    }

    pub(super) fn insert(&mut self, stored: Stored) -> usize {
        self.messages.push(stored);
        self.messages.len() - 1
    }

    /// Changes a message's text as `editor`; returns the `message_changed` event.
    pub(super) fn apply_edit(&mut self, index: usize, text: &str, editor: &str) -> Value {
        let previous = self.message_json(&self.messages[index]);
        let edit_ts = self.next_ts();
        let stored = &mut self.messages[index];
        stored.msg.text = text.to_owned();
        stored.msg.edited = true;
        stored.edited_by = Some((editor.to_owned(), edit_ts.clone()));
        let channel = stored.msg.channel.clone();
        let message = self.message_json(&self.messages[index]);
        shapes_changed(&channel, message, previous, &edit_ts)
    }

    /// Deletes a message; returns the event: `message_deleted`, or for a thread
    /// parent with live replies the `message_changed` to a tombstone.
    pub(super) fn apply_delete(&mut self, index: usize) -> Value {
        let previous = self.message_json(&self.messages[index]);
        let event_ts = self.next_ts();
        self.messages[index].msg.deleted = true;
        let (channel, ts) = {
            let m = &self.messages[index].msg;
            (m.channel.clone(), m.ts.clone())
        };
        if !self.replies(&channel, &ts).is_empty() {
            let tombstone = self.history_json(&self.messages[index]);
            return shapes_changed(&channel, tombstone, previous, &event_ts);
        }
        serde_json::json!({
            "type": "message",
            "subtype": "message_deleted",
            "hidden": true,
            "channel": channel,
            "ts": event_ts,
            "event_ts": event_ts,
            "deleted_ts": ts,
            "previous_message": previous,
            "channel_type": "channel",
        })
    }
}

fn shapes_changed(channel: &str, message: Value, previous: Value, event_ts: &str) -> Value {
    serde_json::json!({
        "type": "message",
        "subtype": "message_changed",
        "hidden": true,
        "channel": channel,
        "ts": event_ts,
        "event_ts": event_ts,
        "message": message,
        "previous_message": previous,
        "channel_type": "channel",
    })
}

/// What a human does: the kinds of message `FakeSlack::human` stores.
enum Human {
    Plain,
    Reply(String),
    Me,
    File(SharedFile),
}

impl FakeSlack {
    /// A human posts in the channel (name or id): the message is stored, its
    /// `message` event goes to every subscriber and the outgoing webhook fires.
    /// `user` is an id or name; `text` is Slack markup (`<@U123>`). Returns the ts.
    pub async fn post(&self, user: &str, channel: &str, text: &str) -> String {
        self.human(user, channel, text, Human::Plain, true)
    }

    /// A human replies in the thread of `thread_ts` (a reply's ts means its thread).
    pub async fn reply(&self, user: &str, channel: &str, thread_ts: &str, text: &str) -> String {
        self.human(
            user,
            channel,
            text,
            Human::Reply(thread_ts.to_owned()),
            true,
        )
    }

    /// A human sends `/me text`: subtype `me_message`.
    pub async fn me_message(&self, user: &str, channel: &str, text: &str) -> String {
        self.human(user, channel, text, Human::Me, true)
    }

    /// A human shares a file (subtype `file_share`) with a comment `text`.
    pub async fn share_file(
        &self,
        user: &str,
        channel: &str,
        title: &str,
        url: &str,
        text: &str,
    ) -> String {
        let name = url.rsplit('/').next().unwrap_or(url).to_owned();
        let file = SharedFile {
            id: new_id('F'),
            title: title.to_owned(),
            mimetype: mimetype(&name).to_owned(),
            name,
            url: url.to_owned(),
        };
        self.human(user, channel, text, Human::File(file), true)
    }

    /// Like `post`, but only stored: no event, no webhook, as when a message was
    /// posted while the bridge was down. Returns the ts.
    pub fn post_silently(&self, user: &str, channel: &str, text: &str) -> String {
        self.human(user, channel, text, Human::Plain, false)
    }

    /// Like `reply`, but only stored (a thread reply posted while the bridge was down).
    pub fn reply_silently(&self, user: &str, channel: &str, thread_ts: &str, text: &str) -> String {
        self.human(
            user,
            channel,
            text,
            Human::Reply(thread_ts.to_owned()),
            false,
        )
    }

    /// The author edits the message: `message_changed` goes to every subscriber.
    pub async fn edit(&self, channel: &str, ts: &str, text: &str) {
        let event = {
            let mut st = self.inner.lock();
            let channel_id = st.channel_or_panic(channel).id.clone();
            let index = st
                .find(&channel_id, ts)
                .unwrap_or_else(|| panic!("fake Slack: edit of unknown message {ts}"));
            let editor = st.messages[index].msg.user.clone().unwrap_or_default();
            st.apply_edit(index, text, &editor)
        };
        self.inner.bump();
        self.inner.emit(event);
    }

    /// The author deletes the message: `message_deleted` (or a tombstone's
    /// `message_changed` for a parent with replies) goes to every subscriber.
    pub async fn delete(&self, channel: &str, ts: &str) {
        let event = {
            let mut st = self.inner.lock();
            let channel_id = st.channel_or_panic(channel).id.clone();
            let index = st
                .find(&channel_id, ts)
                .unwrap_or_else(|| panic!("fake Slack: delete of unknown message {ts}"));
            st.apply_delete(index)
        };
        self.inner.bump();
        self.inner.emit(event);
    }

    fn human(&self, user: &str, channel: &str, text: &str, kind: Human, emit: bool) -> String {
        let (ts, event, outgoing) = {
            let mut st = self.inner.lock();
            let user_id = st.user_or_panic(user).id.clone();
            let channel_id = st.channel_or_panic(channel).id.clone();
            let ts = st.next_ts();
            let mut msg = Message {
                channel: channel_id.clone(),
                ts: ts.clone(),
                user: Some(user_id.clone()),
                bot_id: None,
                username: None,
                icon_url: None,
                icon_emoji: None,
                text: text.to_owned(),
                thread_ts: None,
                subtype: None,
                files: Vec::new(),
                edited: false,
                deleted: false,
            };
            let mut client_msg_id = Some(uuid());
            match kind {
                Human::Plain => {}
                Human::Reply(thread_ts) => {
                    msg.thread_ts = Some(st.thread_root(&channel_id, &thread_ts))
                }
                Human::Me => {
                    msg.subtype = Some("me_message".to_owned());
                    client_msg_id = None;
                }
                Human::File(file) => {
                    msg.subtype = Some("file_share".to_owned());
                    msg.files.push(file);
                }
            }
            st.channel_mut_or_panic(&channel_id).members.insert(user_id);
            let index = st.insert(Stored {
                msg,
                client_msg_id,
                app_id: None,
                edited_by: None,
            });
            let event = st.message_event(index);
            let outgoing = st.outgoing_call(index);
            (ts, event, outgoing)
        };
        self.inner.bump();
        if emit {
            self.inner.emit(event);
            if let Some(call) = outgoing {
                super::webhooks::fire(self.inner.clone(), call);
            }
        }
        ts
    }
}

pub(super) const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

pub(super) fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// An id like Slack's: the kind's letter, `0`, then 9 characters (`C0A1B2C3D4E`).
pub(super) fn new_id(kind: char) -> String {
    format!("{kind}0{}", random_string(9, ALNUM))
}

/// A random UUID (version 4), as envelope ids and `client_msg_id`s are.
pub(super) fn uuid() -> String {
    let hex = random_string(32, b"0123456789abcdef");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..]
    )
}

pub(super) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn format_ts(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// A `ts` (or a plain number of seconds) in microseconds, for comparisons.
pub(super) fn ts_micros(ts: &str) -> Option<u64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut frac = frac.to_owned();
    frac.truncate(6);
    while frac.len() < 6 {
        frac.push('0');
    }
    Some(secs.parse::<u64>().ok()? * 1_000_000 + frac.parse::<u64>().ok()?)
}

pub(super) fn mimetype(name: &str) -> &'static str {
    match name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("txt" | "log") => "text/plain",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}
