//! The model behind the fake Discord: guilds with their channels, threads, roles and
//! members, users and bots, channel webhooks, stored messages, snowflake ids and
//! the fault knobs. Everything here runs under the fake's one lock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::Value;

use super::gateway::{Connection, Session};
use super::{Attachment, Message, RestRequest};

/// Discord's epoch (2015-01-01T00:00:00Z) in Unix milliseconds: snowflakes count from it.
pub(super) const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Channel types as Discord numbers them.
pub(super) const GUILD_TEXT: u8 = 0;
pub(super) const GUILD_CATEGORY: u8 = 4;
pub(super) const PUBLIC_THREAD: u8 = 11;

/// Permission bits the fake hands out (Discord's numbering).
pub(super) mod perm {
    pub const ADD_REACTIONS: u64 = 1 << 6;
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    pub const SEND_MESSAGES: u64 = 1 << 11;
    pub const MANAGE_MESSAGES: u64 = 1 << 13;
    pub const EMBED_LINKS: u64 = 1 << 14;
    pub const ATTACH_FILES: u64 = 1 << 15;
    pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
    pub const USE_EXTERNAL_EMOJIS: u64 = 1 << 18;
    pub const MANAGE_WEBHOOKS: u64 = 1 << 29;
    pub const SEND_MESSAGES_IN_THREADS: u64 = 1 << 38;
    /// What `@everyone` may do in the fake's guilds.
    pub const EVERYONE: u64 = ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | SEND_MESSAGES_IN_THREADS;
}

pub(super) struct Guild {
    pub id: String,
    pub name: String,
    /// Nobody the fake models: an id only.
    pub owner_id: String,
    /// `@everyone` first (its id is the guild's), then in creation order.
    pub roles: Vec<Role>,
    pub members: Vec<Member>,
}

pub(super) struct Role {
    pub id: String,
    pub name: String,
    pub permissions: u64,
    pub position: i64,
    pub managed: bool,
}

pub(super) struct Member {
    pub user_id: String,
    pub nick: Option<String>,
    pub roles: Vec<String>,
    pub joined_at: String,
}

pub(super) struct Channel {
    pub id: String,
    pub guild_id: String,
    pub name: String,
    /// `GUILD_TEXT`, `GUILD_CATEGORY` or `PUBLIC_THREAD`.
    pub kind: u8,
    /// The category of a channel, the channel of a thread.
    pub parent_id: Option<String>,
    pub position: i32,
    /// The bots were removed from it: a permission overwrite denies them
    /// `VIEW_CHANNEL`, REST answers 50001 and no events come from it.
    pub hidden_from_bots: bool,
    /// For threads: who started it.
    pub owner_id: Option<String>,
}

pub(super) struct User {
    pub id: String,
    pub username: String,
    pub global_name: Option<String>,
    pub avatar: Option<String>,
    pub bot: bool,
}

pub(super) struct Bot {
    pub user_id: String,
    pub token: String,
    pub application_id: String,
    /// `refuse_token`: the token was reset and no longer works.
    pub refused: bool,
}

pub(super) struct Webhook {
    pub id: String,
    pub token: String,
    pub channel_id: String,
    pub guild_id: String,
    pub name: String,
    /// The user who created it, and the application when a bot did.
    pub creator: Option<String>,
    pub application_id: Option<String>,
}

/// A stored message: the public view plus what the JSON needs.
pub(super) struct Stored {
    pub msg: Message,
    pub guild_id: String,
    /// `None` for webhook messages.
    pub author_user: Option<String>,
    pub edited_timestamp: Option<String>,
}

pub(super) struct State {
    pub gateway_url: String,
    pub guilds: Vec<Guild>,
    /// Categories, text channels and threads of every guild.
    pub channels: Vec<Channel>,
    pub users: Vec<User>,
    pub bots: Vec<Bot>,
    pub webhooks: Vec<Webhook>,
    /// In id order (creation order).
    pub messages: Vec<Stored>,
    last_snowflake: u64,
    // Application knobs.
    pub message_content_flag: bool,
    pub manage_webhooks: bool,
    // Gateway.
    pub heartbeat_interval_ms: u64,
    pub connections: BTreeMap<u64, Connection>,
    pub next_connection: u64,
    pub sessions: BTreeMap<String, Session>,
    pub refuse_next_resume: bool,
    pub identifies: usize,
    /// When each successful Identify arrived.
    pub identified_at: Vec<std::time::Instant>,
    pub resumes: usize,
    pub refused_resumes: usize,
    pub heartbeats: usize,
    pub connections_opened: usize,
    /// Close codes the clients sent (`None`: a close frame without a code).
    pub client_closes: Vec<Option<u16>>,
    // REST bookkeeping and faults.
    pub requests: Vec<RestRequest>,
    pub fail_status: Option<u16>,
    /// Channel id -> how many more requests on its routes get 429.
    pub rate_limits: BTreeMap<String, usize>,
    pub retry_after: f64,
    pub rate_limited: usize,
}

impl State {
    pub(super) fn new(gateway_url: String) -> Self {
        State {
            gateway_url,
            guilds: Vec::new(),
            channels: Vec::new(),
            users: Vec::new(),
            bots: Vec::new(),
            webhooks: Vec::new(),
            messages: Vec::new(),
            last_snowflake: 0,
            message_content_flag: true,
            manage_webhooks: true,
            heartbeat_interval_ms: 41_250,
            connections: BTreeMap::new(),
            next_connection: 0,
            sessions: BTreeMap::new(),
            refuse_next_resume: false,
            identifies: 0,
            identified_at: Vec::new(),
            resumes: 0,
            refused_resumes: 0,
            heartbeats: 0,
            connections_opened: 0,
            client_closes: Vec::new(),
            requests: Vec::new(),
            fail_status: None,
            rate_limits: BTreeMap::new(),
            retry_after: 0.05,
            rate_limited: 0,
        }
    }

    /// A fresh snowflake: milliseconds since the Discord epoch shifted left 22 bits,
    /// bumped past the last one so ids stay unique and increasing.
    pub(super) fn snowflake(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(DISCORD_EPOCH_MS);
        let stamped = now.saturating_sub(DISCORD_EPOCH_MS) << 22;
        self.last_snowflake = stamped.max(self.last_snowflake + 1);
        self.last_snowflake.to_string()
    }

    pub(super) fn add_guild(&mut self, name: &str) -> String {
        let id = self.snowflake();
        let owner_id = self.snowflake();
        let everyone = Role {
            id: id.clone(),
            name: "@everyone".to_owned(),
            permissions: perm::EVERYONE,
            position: 0,
            managed: false,
        };
        self.guilds.push(Guild {
            id: id.clone(),
            name: name.to_owned(),
            owner_id,
            roles: vec![everyone],
            members: Vec::new(),
        });
        let bots: Vec<String> = self.bots.iter().map(|b| b.user_id.clone()).collect();
        for bot in bots {
            self.join_bot(&id, &bot);
        }
        id
    }

    /// A bot joins a guild with its managed role, as an invited bot does.
    fn join_bot(&mut self, guild_id: &str, bot_user: &str) {
        let role_id = self.snowflake();
        let name = self.user(bot_user).map(|u| u.username.clone());
        let joined_at = iso_now();
        let guild = self.guild_mut(guild_id).expect("the guild exists");
        let position = guild.roles.len() as i64;
        guild.roles.push(Role {
            id: role_id.clone(),
            name: name.unwrap_or_default(),
            permissions: 0,
            position,
            managed: true,
        });
        guild.members.push(Member {
            user_id: bot_user.to_owned(),
            nick: None,
            roles: vec![role_id],
            joined_at,
        });
    }

    pub(super) fn add_bot(&mut self, name: &str, token: &str) -> String {
        let user_id = self.snowflake();
        let application_id = self.snowflake();
        self.users.push(User {
            id: user_id.clone(),
            username: name.to_owned(),
            global_name: None,
            avatar: None,
            bot: true,
        });
        self.bots.push(Bot {
            user_id: user_id.clone(),
            token: token.to_owned(),
            application_id,
            refused: false,
        });
        let guilds: Vec<String> = self.guilds.iter().map(|g| g.id.clone()).collect();
        for guild in guilds {
            self.join_bot(&guild, &user_id);
        }
        user_id
    }

    pub(super) fn add_channel(
        &mut self,
        guild: &str,
        name: &str,
        kind: u8,
        parent: Option<&str>,
    ) -> String {
        let guild_id = self.guild_or_panic(guild).id.clone();
        let parent_id = parent.map(|p| self.channel_or_panic(p).id.clone());
        let id = self.snowflake();
        let position = self
            .channels
            .iter()
            .filter(|c| c.guild_id == guild_id && c.kind != PUBLIC_THREAD)
            .count() as i32;
        self.channels.push(Channel {
            id: id.clone(),
            guild_id,
            name: name.trim_start_matches('#').to_owned(),
            kind,
            parent_id,
            position,
            hidden_from_bots: false,
            owner_id: None,
        });
        id
    }

    pub(super) fn guild(&self, key: &str) -> Option<&Guild> {
        self.guilds.iter().find(|g| g.id == key || g.name == key)
    }

    pub(super) fn guild_mut(&mut self, key: &str) -> Option<&mut Guild> {
        self.guilds
            .iter_mut()
            .find(|g| g.id == key || g.name == key)
    }

    pub(super) fn guild_or_panic(&self, key: &str) -> &Guild {
        self.guild(key)
            .unwrap_or_else(|| panic!("fake Discord: no guild {key}"))
    }

    /// A channel or thread by id, or by name (with or without `#`).
    pub(super) fn channel(&self, key: &str) -> Option<&Channel> {
        let name = key.trim_start_matches('#');
        self.channels
            .iter()
            .find(|c| c.id == key)
            .or_else(|| self.channels.iter().find(|c| c.name == name))
    }

    pub(super) fn channel_or_panic(&self, key: &str) -> &Channel {
        self.channel(key)
            .unwrap_or_else(|| panic!("fake Discord: no channel {key}"))
    }

    pub(super) fn channel_mut_or_panic(&mut self, key: &str) -> &mut Channel {
        let id = self.channel_or_panic(key).id.clone();
        self.channels
            .iter_mut()
            .find(|c| c.id == id)
            .expect("just found")
    }

    /// A user by id or username.
    pub(super) fn user(&self, key: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.id == key)
            .or_else(|| self.users.iter().find(|u| u.username == key))
    }

    pub(super) fn user_or_panic(&self, key: &str) -> &User {
        self.user(key)
            .unwrap_or_else(|| panic!("fake Discord: no user {key}"))
    }

    pub(super) fn bot_by_token(&self, token: &str) -> Option<&Bot> {
        self.bots.iter().find(|b| b.token == token && !b.refused)
    }

    pub(super) fn member(&self, guild_id: &str, user_id: &str) -> Option<&Member> {
        self.guild(guild_id)?
            .members
            .iter()
            .find(|m| m.user_id == user_id)
    }

    /// Makes the user a member of the guild (no nick) unless it is one.
    pub(super) fn ensure_member(&mut self, guild_id: &str, user_id: &str) {
        if self.member(guild_id, user_id).is_none() {
            let joined_at = iso_now();
            if let Some(guild) = self.guild_mut(guild_id) {
                guild.members.push(Member {
                    user_id: user_id.to_owned(),
                    nick: None,
                    roles: Vec::new(),
                    joined_at,
                });
            }
        }
    }

    /// The permissions a bot has in the guild (`@everyone` plus its roles), with
    /// `MANAGE_WEBHOOKS` as the knob says.
    pub(super) fn bot_role_permissions(&self) -> u64 {
        let mut perms = perm::EVERYONE | perm::MANAGE_MESSAGES;
        if self.manage_webhooks {
            perms |= perm::MANAGE_WEBHOOKS;
        }
        perms
    }

    /// The live (not deleted) message with this id in this channel.
    pub(super) fn find(&self, channel_id: &str, message_id: &str) -> Option<usize> {
        self.messages.iter().position(|m| {
            m.msg.id == message_id && m.msg.channel_id == channel_id && !m.msg.deleted
        })
    }

    pub(super) fn webhook(&self, id: &str) -> Option<&Webhook> {
        self.webhooks.iter().find(|w| w.id == id)
    }

    /// Stores a new message; returns its index.
    pub(super) fn insert(&mut self, stored: Stored) -> usize {
        self.messages.push(stored);
        self.messages.len() - 1
    }

    /// A new message with the common fields filled; the caller sets the author.
    pub(super) fn new_message(&mut self, channel_id: &str, content: &str) -> Stored {
        let id = self.snowflake();
        let guild_id = self.channel_or_panic(channel_id).guild_id.clone();
        Stored {
            msg: Message {
                id,
                channel_id: channel_id.to_owned(),
                author_id: String::new(),
                author_name: String::new(),
                webhook_id: None,
                username: None,
                avatar_url: None,
                content: content.to_owned(),
                reply_to: None,
                attachments: Vec::<Attachment>::new(),
                stickers: Vec::new(),
                edited: false,
                deleted: false,
                requests: Vec::new(),
                allowed_mentions: None,
            },
            guild_id,
            author_user: None,
            edited_timestamp: None,
        }
    }

    /// Applies an edit (content and the raw request, if any); the message's
    /// `edited_timestamp` becomes now.
    pub(super) fn apply_edit(
        &mut self,
        index: usize,
        content: Option<&str>,
        request: Option<Value>,
    ) {
        let stamp = iso_now();
        let stored = &mut self.messages[index];
        if let Some(content) = content {
            stored.msg.content = content.to_owned();
        }
        if let Some(request) = request {
            if let Some(mentions) = request.get("allowed_mentions") {
                stored.msg.allowed_mentions = Some(mentions.clone());
            }
            stored.msg.requests.push(request);
        }
        stored.msg.edited = true;
        stored.edited_timestamp = Some(stamp);
    }

    /// User ids mentioned by `<@id>` / `<@!id>` in the text, deduplicated, in order.
    pub(super) fn mentioned_users(&self, content: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut seen = BTreeSet::new();
        let mut rest = content;
        while let Some(start) = rest.find("<@") {
            rest = &rest[start + 2..];
            let body = rest.strip_prefix('!').unwrap_or(rest);
            let digits: String = body.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty()
                && body[digits.len()..].starts_with('>')
                && self.users.iter().any(|u| u.id == digits)
                && seen.insert(digits.clone())
            {
                found.push(digits);
            }
        }
        found
    }
}

pub(super) fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Now as Discord writes timestamps: `2026-12-07T20:40:00.123000+00:00`.
pub(super) fn iso_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    iso_from_millis(ms)
}

/// The creation time of a snowflake, in the same format.
pub(super) fn snowflake_time(id: &str) -> String {
    let ms = id.parse::<u64>().map(|n| (n >> 22) + DISCORD_EPOCH_MS);
    iso_from_millis(ms.unwrap_or(DISCORD_EPOCH_MS))
}

pub(super) fn iso_from_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        (ms % 1000) * 1000
    )
}
