//! Native IRC messages -> normalised `Inbound` events, with the channel membership
//! needed to turn one QUIT into a quit event per bridged channel.

use crate::format;
use irc_proto::{Command, Message, Prefix, Response};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use switchboard_sdk::{
    EventKind, Inbound, NativeMsgId, NetworkId, RichText, RoomId, RoomKey, Sender,
};

/// The canonical form of a channel name (RFC 1459 case mapping).
pub fn canonical_channel(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            other => other,
        })
        .collect()
}

fn is_channel(target: &str) -> bool {
    target.starts_with(['#', '&', '!', '+'])
}

/// Ids for messages the network gave none: unique across restarts.
pub struct IdMinter {
    boot: String,
    counter: AtomicU64,
}

impl IdMinter {
    pub fn new() -> Self {
        Self {
            boot: format!(
                "{:x}{:08x}",
                switchboard_sdk::event::now_ms(),
                rand::random::<u32>()
            ),
            counter: AtomicU64::new(0),
        }
    }

    pub fn mint(&self) -> NativeMsgId {
        NativeMsgId::new(format!(
            "irc-{}-{}",
            self.boot,
            self.counter.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Default for IdMinter {
    fn default() -> Self {
        Self::new()
    }
}

/// What the translator needs to know about the connection.
pub struct Translator<'a> {
    pub network: &'a NetworkId,
    pub our_nick: &'a str,
    pub rooms: &'a HashSet<String>,
    pub ids: &'a IdMinter,
}

/// Who is in which bridged channel (lower-cased nicks).
#[derive(Default)]
pub struct Membership {
    channels: HashMap<String, HashSet<String>>,
}

impl Membership {
    pub fn clear(&mut self) {
        self.channels.clear();
    }

    /// A channel the bridge left: its members no longer matter.
    pub fn forget(&mut self, channel: &str) {
        self.channels.remove(channel);
    }

    fn joined(&mut self, channel: &str, nick: &str) {
        let channel = canonical_channel(channel);
        self.channels
            .entry(channel)
            .or_default()
            .insert(nick.to_lowercase());
    }

    fn left(&mut self, channel: &str, nick: &str) {
        if let Some(set) = self.channels.get_mut(&canonical_channel(channel)) {
            set.remove(&nick.to_lowercase());
        }
    }

    /// Forgets `nick` everywhere; returns the channels it was in, sorted.
    fn quit(&mut self, nick: &str) -> Vec<String> {
        let who = nick.to_lowercase();
        let mut channels: Vec<String> = self
            .channels
            .iter_mut()
            .filter_map(|(channel, set)| set.remove(&who).then(|| channel.clone()))
            .collect();
        channels.sort();
        channels
    }

    fn renamed(&mut self, old: &str, new: &str) {
        let (old, new) = (old.to_lowercase(), new.to_lowercase());
        for set in self.channels.values_mut() {
            if set.remove(&old) {
                set.insert(new.clone());
            }
        }
    }

    /// A NAMES reply: nicks with their status prefixes (`@op`, `+voice`).
    fn listed(&mut self, channel: String, names: &str) {
        let set = self.channels.entry(channel).or_default();
        for name in names.split_whitespace() {
            set.insert(
                name.trim_start_matches(['~', '&', '@', '%', '+'])
                    .to_lowercase(),
            );
        }
    }
}

/// The kind and body of a PRIVMSG or NOTICE; `None` for CTCP other than ACTION
/// (VERSION, PING... and CTCP replies are not conversation).
fn conversation(text: &str, notice: bool) -> Option<(EventKind, String)> {
    match text.strip_prefix('\x01') {
        Some(ctcp) => match ctcp.trim_end_matches('\x01').strip_prefix("ACTION") {
            Some(action) if !notice => Some((EventKind::Action, action.trim_start().to_owned())),
            _ => None,
        },
        None if notice => Some((EventKind::Notice, text.to_owned())),
        None => Some((EventKind::Message, text.to_owned())),
    }
}

impl Translator<'_> {
    /// The events one message means (none for most server chatter).
    pub fn events(&self, message: &Message, members: &mut Membership) -> Vec<Inbound> {
        let nick = match &message.prefix {
            Some(Prefix::Nickname(nick, _, _)) => nick.as_str(),
            _ => "",
        };
        let event = |channel: &str, kind: EventKind, content: RichText| {
            self.event(message, nick, channel, kind, content)
        };
        let membership = |channel: &str, kind: EventKind| event(channel, kind, RichText::default());
        match &message.command {
            Command::PRIVMSG(target, text) | Command::NOTICE(target, text)
                if self.bridged(target) =>
            {
                let notice = matches!(message.command, Command::NOTICE(..));
                conversation(text, notice)
                    .map(|(kind, body)| event(target, kind, format::parse(&body)))
                    .into_iter()
                    .collect()
            }
            Command::JOIN(channels, _, _) => self
                .bridged_of(channels)
                .map(|channel| {
                    members.joined(channel, nick);
                    membership(channel, EventKind::Join)
                })
                .collect(),
            Command::PART(channels, reason) => self
                .bridged_of(channels)
                .map(|channel| {
                    members.left(channel, nick);
                    let reason = reason.clone();
                    membership(channel, EventKind::Part { reason })
                })
                .collect(),
            Command::KICK(channel, user, reason) if self.bridged(channel) => {
                members.left(channel, user);
                let (user, reason) = (user.clone(), reason.clone());
                vec![membership(channel, EventKind::Kick { user, reason })]
            }
            Command::TOPIC(channel, Some(topic)) if self.bridged(channel) => {
                vec![event(channel, EventKind::Topic, format::parse(topic))]
            }
            Command::QUIT(reason) => members
                .quit(nick)
                .iter()
                .map(|channel| {
                    let reason = reason.clone();
                    membership(channel, EventKind::Quit { reason })
                })
                .collect(),
            Command::NICK(new) => {
                members.renamed(nick, new);
                Vec::new()
            }
            Command::Response(Response::RPL_NAMREPLY, params) if params.len() >= 4 => {
                let channel = canonical_channel(&params[2]);
                if self.rooms.contains(&channel) {
                    members.listed(channel, &params[3]);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The bridged channels of a comma-separated list.
    fn bridged_of<'m>(&self, channels: &'m str) -> impl Iterator<Item = &'m str> {
        channels.split(',').filter(|channel| self.bridged(channel))
    }

    fn bridged(&self, target: &str) -> bool {
        is_channel(target) && self.rooms.contains(&canonical_channel(target))
    }

    fn event(
        &self,
        message: &Message,
        nick: &str,
        channel: &str,
        kind: EventKind,
        content: RichText,
    ) -> Inbound {
        let tag = |name: &str| {
            message
                .tags
                .as_ref()
                .and_then(|tags| tags.iter().find(|tag| tag.0 == name))
                .and_then(|tag| tag.1.clone())
        };
        let native_id = tag("msgid")
            .map(NativeMsgId::new)
            .unwrap_or_else(|| self.ids.mint());
        let timestamp_ms = tag("time")
            .and_then(|time| parse_server_time(&time))
            .unwrap_or_else(switchboard_sdk::event::now_ms);
        Inbound {
            room: RoomKey {
                network: self.network.clone(),
                room: RoomId::new(canonical_channel(channel)),
            },
            sender: Sender {
                id: nick.to_owned(),
                display_name: nick.to_owned(),
                is_self: nick.eq_ignore_ascii_case(self.our_nick),
                avatar_url: None,
            },
            native_id: Some(native_id),
            timestamp_ms,
            kind,
            content,
            reply_to: None,
            thread: None,
            attachments: Vec::new(),
        }
    }
}

/// `2024-05-01T12:34:56.789Z` (IRCv3 server-time) -> ms since the Unix epoch.
pub fn parse_server_time(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-').map(|p| p.parse::<i64>());
    let (year, month, day) = (
        date_parts.next()?.ok()?,
        date_parts.next()?.ok()?,
        date_parts.next()?.ok()?,
    );
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut time_parts = hms.splitn(3, ':').map(|p| p.parse::<i64>());
    let (hour, minute, second) = (
        time_parts.next()?.ok()?,
        time_parts.next()?.ok()?,
        time_parts.next()?.ok()?,
    );
    let millis: i64 = format!("{:0<3}", &fraction[..fraction.len().min(3)])
        .parse()
        .ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(lines: &[&str], rooms: &[&str]) -> Vec<Inbound> {
        let network = NetworkId::new("libera");
        let rooms: HashSet<String> = rooms.iter().map(|r| canonical_channel(r)).collect();
        let ids = IdMinter::new();
        let translator = Translator {
            network: &network,
            our_nick: "bridge",
            rooms: &rooms,
            ids: &ids,
        };
        let mut members = Membership::default();
        lines
            .iter()
            .flat_map(|line| translator.events(&line.parse::<Message>().unwrap(), &mut members))
            .collect()
    }

    #[test]
    fn privmsg_action_notice_and_tags() {
        let events = translate(
            &[
                "@msgid=abc;time=2024-05-01T12:34:56.789Z :alice!a@h PRIVMSG #Rust :hi \x02there\x02",
                ":alice!a@h PRIVMSG #rust :\x01ACTION waves\x01",
                ":alice!a@h NOTICE #rust :heads up",
                ":alice!a@h PRIVMSG #rust :\x01VERSION\x01",
                ":alice!a@h PRIVMSG bridge :private",
                ":alice!a@h PRIVMSG #other :not bridged",
                ":bridge!b@h PRIVMSG #rust :our echo",
            ],
            &["#rust"],
        );
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].room, RoomKey::new("libera", "#rust"));
        assert_eq!(events[0].native_id, Some(NativeMsgId::new("abc")));
        assert_eq!(events[0].timestamp_ms, 1_714_566_896_789);
        assert_eq!(events[0].content.to_plain(), "hi there");
        assert_eq!(events[1].kind, EventKind::Action);
        assert_eq!(events[1].content.to_plain(), "waves");
        assert_eq!(events[2].kind, EventKind::Notice);
        assert!(events[3].sender.is_self);
        assert!(!events[0].sender.is_self);
        assert_ne!(
            events[1].native_id, events[2].native_id,
            "minted ids are unique"
        );
    }

    #[test]
    fn membership_events_and_quit_per_channel() {
        let events = translate(
            &[
                ":server 353 bridge = #a :@bob +carol bridge",
                ":server 353 bridge = #b :bob",
                ":dave!d@h JOIN #a",
                ":bob!b@h QUIT :bye",
                ":carol!c@h PART #a :later",
                ":op!o@h KICK #a dave :spam",
                ":op!o@h TOPIC #a :new topic",
            ],
            &["#a", "#b"],
        );
        let kinds: Vec<(String, EventKind)> = events
            .iter()
            .map(|e| (e.room.room.to_string(), e.kind.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("#a".into(), EventKind::Join),
                (
                    "#a".into(),
                    EventKind::Quit {
                        reason: Some("bye".into())
                    }
                ),
                (
                    "#b".into(),
                    EventKind::Quit {
                        reason: Some("bye".into())
                    }
                ),
                (
                    "#a".into(),
                    EventKind::Part {
                        reason: Some("later".into())
                    }
                ),
                (
                    "#a".into(),
                    EventKind::Kick {
                        user: "dave".into(),
                        reason: Some("spam".into())
                    }
                ),
                ("#a".into(), EventKind::Topic),
            ]
        );
        assert_eq!(events[5].content.to_plain(), "new topic");
    }

    #[test]
    fn canonical_channels() {
        assert_eq!(canonical_channel("#Rust[Dev]"), "#rust{dev}");
    }
}
