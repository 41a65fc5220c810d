//! One connection's life: registration (CAP, SASL, nick fallback), joins, the read
//! loop with PING/PONG and ping timeout, and sending paced lines.
//!
//! Each routed channel is reported to the core (`ctx.health`) as joined when the
//! server echoes our JOIN, as refused on a join error numeric (with the server's
//! text), and as left when the routes drop it or we are kicked (we then rejoin). Every
//! connection joins, and so reports, all its channels again.

use crate::config::IrcConfig;
use crate::connection::{self, Ending, InboundLine, Outgoing};
use crate::inbound::{Membership, Translator, canonical_channel};
use crate::{IrcAdapter, outbound};
use base64::Engine;
use futures::StreamExt;
use irc_proto::{CapSubCommand, Command, Message, Prefix, Response};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchboard_sdk::{
    AdapterContext, AdapterError, ConnectionState, Inbound, Outbound, RoomId, SendError,
    SendReceipt,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const WANTED_CAPS: &[&str] = &[
    "server-time",
    "message-tags",
    "echo-message",
    "multi-prefix",
    "batch",
];
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// The nick length every server accepts (RFC 1459).
const RFC_NICK_LEN: usize = 9;
const MAX_NICK_ATTEMPTS: usize = 20;
/// Until the server tells us our host, assume the longest it may be.
const UNKNOWN_SOURCE_EXTRA: usize = 1 + 10 + 1 + 63;

/// The live connection as `send` sees it.
pub struct Session {
    urgent: mpsc::UnboundedSender<Outgoing>,
    paced: mpsc::UnboundedSender<Outgoing>,
    /// Once ended, `send` queues nothing more.
    ending: Ending,
    nick: Mutex<String>,
    /// Length of `nick!user@host` once known from our own JOIN echo.
    source_len: AtomicUsize,
    joined: Mutex<HashSet<String>>,
}

/// Our source's length before the server told us our host.
pub fn assumed_source_len(nick: &str) -> usize {
    nick.len() + UNKNOWN_SOURCE_EXTRA
}

impl Session {
    fn nick(&self) -> String {
        self.nick.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The length of `nick!user@host` as the server prefixes our lines (assumed
    /// long until it is known), which bounds what one line may carry.
    pub fn source_len(&self) -> usize {
        match self.source_len.load(Ordering::Relaxed) {
            0 => assumed_source_len(&self.nick()),
            known => known,
        }
    }

    fn urgent(&self, line: impl Into<String>) {
        let _ = self.urgent.send(Outgoing::fire_and_forget(line));
    }

    pub async fn send(
        &self,
        message: &Outbound,
        ids: &crate::inbound::IdMinter,
    ) -> Result<SendReceipt, SendError> {
        let channel = canonical_channel(message.room.as_str());
        if !self
            .joined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&channel)
        {
            return Err(SendError::Transient(format!("not in {channel} yet")));
        }
        if self.ending.has_ended() {
            return Err(SendError::Transient(self.ending.reason()));
        }
        let lines = outbound::lines(message)?;
        // A message of several lines counts as sent only when all were written. If the
        // connection ends after some were, the whole message is sent again on the next
        // connection: those first lines then appear twice (at most `max_lines_per_message` each
        // time), which beats losing the rest.
        let mut receipts = Vec::with_capacity(lines.len());
        for line in lines {
            let (written, rx) = oneshot::channel();
            self.paced
                .send(Outgoing {
                    line,
                    written: Some(written),
                })
                .map_err(|_| SendError::Transient(self.ending.reason()))?;
            receipts.push(rx);
        }
        let mut native_ids = Vec::with_capacity(receipts.len());
        for rx in receipts {
            match rx.await {
                Ok(Ok(())) => native_ids.push(ids.mint()),
                Ok(Err(error)) => return Err(SendError::Transient(error)),
                Err(_) => return Err(SendError::Transient("the IRC connection closed".into())),
            }
        }
        Ok(SendReceipt { native_ids })
    }
}

/// Registration progress.
struct Registration {
    nick_attempt: usize,
    /// Set once the server refused a long nick as erroneous.
    max_nick_len: Option<usize>,
    registered: bool,
    /// Our SASL exchange has started and not finished: only then are SASL numerics
    /// about us (a server may send a stray 904 to a client that never asked).
    sasl_in_progress: bool,
    /// Channels asked for and not yet confirmed; `Connected` is reported when empty.
    pending_joins: HashSet<String>,
    connected_reported: bool,
    /// Channels whose JOIN awaits the server's answer: a join error numeric about one
    /// of them is its refusal (the same numerics may answer other commands).
    joining: HashSet<String>,
}

pub async fn run(
    adapter: &IrcAdapter,
    ctx: &AdapterContext,
    cancel: &CancellationToken,
) -> Result<(), AdapterError> {
    // Safe to race: a connect abandoned on cancel has read nothing yet.
    let (reader, writer) = tokio::select! {
        connected = connection::connect(&adapter.config) => connected?,
        _ = cancel.cancelled() => return Ok(()),
    };
    run_connected(adapter, ctx, cancel, reader, writer).await
}

/// One registered-or-registering connection, from the first line to the last.
async fn run_connected(
    adapter: &IrcAdapter,
    ctx: &AdapterContext,
    cancel: &CancellationToken,
    reader: connection::Reader,
    writer: connection::Writer,
) -> Result<(), AdapterError> {
    let config = &adapter.config;
    let (urgent_tx, urgent_rx) = mpsc::unbounded_channel();
    let (paced_tx, paced_rx) = mpsc::unbounded_channel();
    let ending = Ending::default();
    let writer_task = tokio::spawn(connection::write_loop(
        writer,
        urgent_rx,
        paced_rx,
        config.flood.clone(),
        ending.clone(),
    ));
    let session = std::sync::Arc::new(Session {
        urgent: urgent_tx,
        paced: paced_tx,
        ending: ending.clone(),
        nick: Mutex::new(config.nick.clone()),
        source_len: AtomicUsize::new(0),
        joined: Mutex::new(HashSet::new()),
    });
    adapter.session.set(Some(session.clone()));

    // Inbound events are submitted in order by their own task, so a slow commit never
    // delays answering a PING.
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Inbound>();
    let sink = ctx.inbound.clone();
    let network = ctx.network.clone();
    tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            if let Err(error) = sink.submit_unacknowledged(event).await {
                tracing::warn!(%network, %error, "IRC: an inbound message was not accepted");
            }
        }
    });

    let result = read_loop(adapter, ctx, cancel, &session, reader, events_tx).await;
    match &result {
        Ok(()) => ending.quit("QUIT :Switchboard stopping"),
        Err(error) => {
            // From now on nothing is written and every unwritten line fails, so its
            // message stays queued for the next connection; health says so at once.
            ending.declare_dead(error.to_string());
            if matches!(error, AdapterError::Connection(_)) {
                ctx.health.report(ConnectionState::Reconnecting {
                    last_error: error.to_string(),
                });
            }
        }
    }
    adapter.session.set(None);
    drop(session);
    let abort = writer_task.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), writer_task)
        .await
        .is_err()
    {
        // Stuck writing QUIT to a peer that does not read: drop the socket.
        tracing::debug!("IRC: writer did not finish in time");
        abort.abort();
    }
    result
}

async fn read_loop(
    adapter: &IrcAdapter,
    ctx: &AdapterContext,
    cancel: &CancellationToken,
    session: &Session,
    reader: connection::Reader,
    events: mpsc::UnboundedSender<Inbound>,
) -> Result<(), AdapterError> {
    let config = &adapter.config;
    let mut room_set = ctx.rooms.clone();
    let mut rooms = channels_of(&room_set.current());
    let mut lines = connection::lines(reader);
    let mut members = Membership::default();
    let mut registration = Registration {
        nick_attempt: 0,
        max_nick_len: None,
        registered: false,
        sasl_in_progress: false,
        pending_joins: HashSet::new(),
        connected_reported: false,
        joining: HashSet::new(),
    };
    introduce(session, config);
    let mut liveness = Liveness::new(config);
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(liveness.ping_timeout / 4));
    let mut skipped_lines = 0u64;
    loop {
        // Every branch is cancel-safe: a partial line stays in `lines` when the tick
        // (or anything else) wins.
        let line = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = session.ending.died() => {
                return Err(AdapterError::Connection(session.ending.reason()));
            }
            current = room_set.changed() => {
                follow_rooms(ctx, config, session, &mut registration, &mut rooms, &mut members, &current);
                continue;
            }
            _ = tick.tick() => {
                liveness.check(session, registration.registered)?;
                continue;
            }
            line = lines.next() => line,
        };
        liveness.heard();
        let line = match line {
            Some(Ok(InboundLine::Line(line))) => line,
            Some(Ok(InboundLine::TooLong)) => {
                skipped_lines += 1;
                report_skipped_line(ctx, skipped_lines);
                continue;
            }
            None => {
                return Err(AdapterError::Connection(
                    "the server closed the connection".into(),
                ));
            }
            Some(Err(error)) => {
                return Err(AdapterError::Connection(format!("read failed: {error}")));
            }
        };
        let message: Message = match line.parse() {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%error, line, "IRC: unparsable line ignored");
                continue;
            }
        };
        handle(adapter, ctx, session, &rooms, &mut registration, &message)?;
        let our_nick = session.nick();
        let translator = Translator {
            network: &ctx.network,
            our_nick: &our_nick,
            rooms: &rooms,
            ids: &adapter.ids,
        };
        for event in translator.events(&message, &mut members) {
            let _ = events.send(event);
        }
    }
}

/// Opens registration: password, capability negotiation, nick and user.
fn introduce(session: &Session, config: &IrcConfig) {
    if let Some(password) = &config.password {
        session.urgent(format!("PASS {password}"));
    }
    session.urgent("CAP LS 302");
    session.urgent(format!("NICK {}", config.nick));
    let username = config
        .username
        .clone()
        .unwrap_or_else(|| config.nick.clone());
    let realname = config
        .realname
        .clone()
        .unwrap_or_else(|| "Switchboard bridge".into());
    session.urgent(format!("USER {username} 0 * :{realname}"));
}

/// Decides when a quiet connection is dead: registration must finish in time, and
/// after `ping_timeout` of silence a PING must be answered within as long again.
struct Liveness {
    ping_timeout: Duration,
    started: Instant,
    last_traffic: Instant,
    pinged: bool,
}

impl Liveness {
    fn new(config: &IrcConfig) -> Self {
        Self {
            ping_timeout: Duration::from_secs(config.ping_timeout_secs.max(5)),
            started: Instant::now(),
            last_traffic: Instant::now(),
            pinged: false,
        }
    }

    fn heard(&mut self) {
        self.last_traffic = Instant::now();
        self.pinged = false;
    }

    fn check(&mut self, session: &Session, registered: bool) -> Result<(), AdapterError> {
        let silent = self.last_traffic.elapsed();
        if !registered && self.started.elapsed() > REGISTRATION_TIMEOUT {
            return Err(AdapterError::Connection("registration timed out".into()));
        }
        if silent > self.ping_timeout * 2 {
            return Err(AdapterError::Connection(format!(
                "ping timeout: no traffic for {}s",
                silent.as_secs()
            )));
        }
        if silent > self.ping_timeout && !self.pinged {
            session.urgent("PING :switchboard");
            self.pinged = true;
        }
        Ok(())
    }
}

/// Logged, but not once per line of a server that keeps sending them.
fn report_skipped_line(ctx: &AdapterContext, skipped_lines: u64) {
    if skipped_lines.is_power_of_two() {
        tracing::warn!(
            network = %ctx.network,
            limit = connection::MAX_INBOUND_LINE,
            skipped_lines,
            "IRC: the server sent a line longer than the limit; it was skipped"
        );
    }
}

/// The channels of a room set, in canonical form.
fn channels_of(rooms: &std::collections::BTreeSet<switchboard_sdk::RoomId>) -> HashSet<String> {
    rooms
        .iter()
        .map(|room| canonical_channel(room.as_str()))
        .collect()
}

/// The routes changed this network's rooms: JOIN the channels added and PART those
/// removed (reported left at once), on the same connection. Before registration only
/// the set changes: the welcome joins whatever it holds then.
fn follow_rooms(
    ctx: &AdapterContext,
    config: &IrcConfig,
    session: &Session,
    registration: &mut Registration,
    rooms: &mut HashSet<String>,
    members: &mut Membership,
    current: &std::collections::BTreeSet<switchboard_sdk::RoomId>,
) {
    let wanted = channels_of(current);
    let mut added: Vec<&String> = wanted.difference(rooms).collect();
    let mut removed: Vec<&String> = rooms.difference(&wanted).collect();
    added.sort();
    removed.sort();
    for channel in &removed {
        registration.joining.remove(*channel);
        ctx.health.left(&RoomId::new(*channel));
    }
    if registration.registered {
        for channel in &removed {
            tracing::info!(network = %ctx.network, %channel, "IRC: channel no longer routed; parting");
            members.forget(channel);
            // Nothing more is sent there, even before the server confirms the PART.
            session
                .joined
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(*channel);
            session.urgent(format!("PART {channel} :no longer bridged"));
        }
        for channel in &added {
            tracing::info!(network = %ctx.network, %channel, "IRC: channel newly routed; joining");
            session.urgent(join_line(config, channel));
            registration.joining.insert((*channel).clone());
        }
    }
    *rooms = wanted;
}

/// Protocol bookkeeping for one message: PING and errors here; capability and SASL
/// negotiation, numerics, and our own membership each in a function of their own.
fn handle(
    adapter: &IrcAdapter,
    ctx: &AdapterContext,
    session: &Session,
    rooms: &HashSet<String>,
    registration: &mut Registration,
    message: &Message,
) -> Result<(), AdapterError> {
    match &message.command {
        Command::PING(server, _) => session.urgent(format!("PONG :{server}")),
        Command::ERROR(text) => {
            return Err(AdapterError::Connection(format!("server error: {text}")));
        }
        Command::CAP(..) | Command::AUTHENTICATE(_) => {
            return negotiate(&adapter.config, session, registration, &message.command);
        }
        // Numerics irc-proto does not know come as `Raw`.
        Command::Response(..) | Command::Raw(..) => {
            return numeric(adapter, ctx, session, rooms, registration, &message.command);
        }
        _ => own_membership(&adapter.config, ctx, session, rooms, registration, message),
    }
    Ok(())
}

/// Capability negotiation (CAP LS/ACK/NAK) and the SASL PLAIN exchange.
fn negotiate(
    config: &IrcConfig,
    session: &Session,
    registration: &mut Registration,
    command: &Command,
) -> Result<(), AdapterError> {
    match command {
        Command::CAP(_, CapSubCommand::LS, first, second) => {
            let offered = [second.as_deref(), first.as_deref()]
                .into_iter()
                .flatten()
                .find(|list| *list != "*")
                .unwrap_or_default();
            let multiline = second.is_some() && first.as_deref() == Some("*");
            let names: HashSet<&str> = offered
                .split_whitespace()
                .map(|cap| cap.split('=').next().unwrap_or(cap))
                .collect();
            let mut wanted: Vec<&str> = WANTED_CAPS
                .iter()
                .copied()
                .filter(|cap| names.contains(cap))
                .collect();
            if config.sasl.is_some() {
                if names.contains("sasl") {
                    wanted.push("sasl");
                } else {
                    return Err(AdapterError::Auth(
                        "SASL is configured but the server does not offer it".into(),
                    ));
                }
            }
            if !multiline {
                if wanted.is_empty() {
                    session.urgent("CAP END");
                } else {
                    session.urgent(format!("CAP REQ :{}", wanted.join(" ")));
                }
            }
        }
        Command::CAP(_, CapSubCommand::ACK, first, second) => {
            let acked = second.as_deref().or(first.as_deref()).unwrap_or_default();
            if config.sasl.is_some() && acked.split_whitespace().any(|cap| cap == "sasl") {
                registration.sasl_in_progress = true;
                session.urgent("AUTHENTICATE PLAIN");
            } else if !registration.registered {
                session.urgent("CAP END");
            }
        }
        Command::CAP(_, CapSubCommand::NAK, _, _) => {
            if config.sasl.is_some() {
                return Err(AdapterError::Auth(
                    "the server refused the SASL capability".into(),
                ));
            }
            session.urgent("CAP END");
        }
        Command::AUTHENTICATE(challenge) if challenge == "+" && registration.sasl_in_progress => {
            if let Some(sasl) = &config.sasl {
                let token = format!("{}\0{}\0{}", sasl.username, sasl.username, sasl.password);
                let encoded = base64::engine::general_purpose::STANDARD.encode(token);
                // Never logged: the writer does not log lines.
                session.urgent(format!("AUTHENTICATE {encoded}"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Numeric replies: SASL results, a refused nick while registering, the welcome
/// (which starts the joins), and channels that refuse us.
fn numeric(
    adapter: &IrcAdapter,
    ctx: &AdapterContext,
    session: &Session,
    rooms: &HashSet<String>,
    registration: &mut Registration,
    command: &Command,
) -> Result<(), AdapterError> {
    let config = &adapter.config;
    match command {
        Command::Response(Response::RPL_SASLSUCCESS, _) if registration.sasl_in_progress => {
            registration.sasl_in_progress = false;
            session.urgent("CAP END");
        }
        Command::Response(
            response @ (Response::ERR_SASLFAIL
            | Response::ERR_SASLTOOLONG
            | Response::ERR_SASLABORT
            | Response::ERR_NICKLOCKED),
            params,
        ) => {
            let text = params.last().cloned().unwrap_or_default();
            if registration.sasl_in_progress {
                return Err(AdapterError::Auth(format!(
                    "SASL authentication failed: {text}"
                )));
            }
            tracing::debug!(network = %ctx.network, ?response, %text, "IRC: SASL numeric outside our SASL exchange ignored");
        }
        Command::Response(
            response @ (Response::ERR_NICKNAMEINUSE
            | Response::ERR_ERRONEOUSNICKNAME
            | Response::ERR_NICKCOLLISION),
            _,
        ) if !registration.registered => {
            let refused = session.nick();
            if *response == Response::ERR_ERRONEOUSNICKNAME
                && refused.chars().count() > RFC_NICK_LEN
            {
                // Probably too long for this server: stay within what every server takes.
                registration.max_nick_len = Some(RFC_NICK_LEN);
            }
            registration.nick_attempt += 1;
            if registration.nick_attempt > MAX_NICK_ATTEMPTS {
                return Err(AdapterError::Config(format!(
                    "the server accepted none of {MAX_NICK_ATTEMPTS} nicks tried (last: {refused}); set nick/alt_nicks"
                )));
            }
            let next =
                alternative_nick(config, registration.nick_attempt, registration.max_nick_len);
            tracing::info!(network = %ctx.network, refused = %refused, nick = %next, "IRC: nick refused, trying another");
            *session.nick.lock().unwrap_or_else(|p| p.into_inner()) = next.clone();
            session.urgent(format!("NICK {next}"));
        }
        Command::Response(Response::RPL_WELCOME, params) => {
            registration.registered = true;
            if let Some(nick) = params.first() {
                *session.nick.lock().unwrap_or_else(|p| p.into_inner()) = nick.clone();
            }
            if let Some(password) = &config.nickserv_password {
                session.urgent(format!("PRIVMSG NickServ :IDENTIFY {password}"));
            }
            for room in rooms {
                session.urgent(join_line(config, room));
                registration.pending_joins.insert(room.clone());
                registration.joining.insert(room.clone());
            }
            report_when_joined(ctx, registration);
        }
        Command::Response(
            response @ (Response::ERR_CHANNELISFULL
            | Response::ERR_INVITEONLYCHAN
            | Response::ERR_BANNEDFROMCHAN
            | Response::ERR_BADCHANNELKEY
            | Response::ERR_NOSUCHCHANNEL
            | Response::ERR_TOOMANYCHANNELS
            | Response::ERR_BADCHANMASK
            // 477 is "you need a registered nick" on today's servers.
            | Response::ERR_NOCHANMODES
            | Response::ERR_UNAVAILRESOURCE),
            params,
        ) => join_refused(ctx, registration, &format!("{:03}", *response as u16), params),
        // Numerics irc-proto does not know: 470 forwarded to another channel
        // (the original is not joined), 479 an illegal channel name.
        Command::Raw(code, params) if code == "470" || code == "479" => {
            join_refused(ctx, registration, code, params)
        }
        _ => {}
    }
    Ok(())
}

/// A join error numeric (`:server CODE our_nick #channel :text`): if it answers a
/// JOIN of ours, the channel is reported refused with the server's words; its
/// messages stay queued, and the next connection tries again.
fn join_refused(
    ctx: &AdapterContext,
    registration: &mut Registration,
    code: &str,
    params: &[String],
) {
    let Some(channel) = params.get(1).map(|channel| canonical_channel(channel)) else {
        return;
    };
    if !registration.joining.remove(&channel) {
        return;
    }
    let text = params
        .get(2..)
        .map(|rest| rest.join(" "))
        .unwrap_or_default();
    tracing::debug!(network = %ctx.network, %channel, code, %text, "IRC: cannot join; messages for it stay queued");
    ctx.health
        .join_failed(&RoomId::new(channel.as_str()), format!("{code}: {text}"));
    registration.pending_joins.remove(&channel);
    report_when_joined(ctx, registration);
}

/// What our own JOINs, PARTs, KICKs and NICK changes tell us.
fn own_membership(
    config: &IrcConfig,
    ctx: &AdapterContext,
    session: &Session,
    rooms: &HashSet<String>,
    registration: &mut Registration,
    message: &Message,
) {
    let source_nick = match &message.prefix {
        Some(Prefix::Nickname(nick, _, _)) => Some(nick.as_str()),
        _ => None,
    };
    let from_us = source_nick.is_some_and(|nick| nick.eq_ignore_ascii_case(&session.nick()));
    match &message.command {
        Command::JOIN(channels, _, _) if from_us => {
            if let Some(Prefix::Nickname(nick, user, host)) = &message.prefix {
                session.source_len.store(
                    nick.len() + 1 + user.len() + 1 + host.len(),
                    Ordering::Relaxed,
                );
            }
            for channel in channels.split(',') {
                let channel = canonical_channel(channel);
                registration.pending_joins.remove(&channel);
                registration.joining.remove(&channel);
                // A channel the routes do not name (a server forwarded or forced us
                // into it) is no room of ours.
                if rooms.contains(&channel) {
                    ctx.health.joined(&RoomId::new(channel.as_str()));
                }
                session
                    .joined
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(channel);
            }
            report_when_joined(ctx, registration);
        }
        Command::PART(channels, _) if from_us => {
            for channel in channels.split(',') {
                session
                    .joined
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&canonical_channel(channel));
            }
        }
        Command::KICK(channel, user, reason) if user.eq_ignore_ascii_case(&session.nick()) => {
            let channel = canonical_channel(channel);
            session
                .joined
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&channel);
            // A channel the routes no longer name stays left (and was reported so).
            if rooms.contains(&channel) {
                tracing::warn!(network = %ctx.network, %channel, ?reason, "IRC: kicked; rejoining");
                ctx.health.left(&RoomId::new(channel.as_str()));
                session.urgent(join_line(config, &channel));
                registration.joining.insert(channel);
            }
        }
        Command::NICK(new) if from_us => {
            *session.nick.lock().unwrap_or_else(|p| p.into_inner()) = new.clone();
        }
        _ => {}
    }
}

/// `JOIN #channel [key]`, with the channel's key if the config has one.
fn join_line(config: &IrcConfig, channel: &str) -> String {
    match config
        .channel_keys
        .iter()
        .find(|(c, _)| canonical_channel(c) == channel)
    {
        Some((_, key)) => format!("JOIN {channel} {key}"),
        None => format!("JOIN {channel}"),
    }
}

fn report_when_joined(ctx: &AdapterContext, registration: &mut Registration) {
    if registration.registered
        && registration.pending_joins.is_empty()
        && !registration.connected_reported
    {
        registration.connected_reported = true;
        ctx.health.report(ConnectionState::Connected);
    }
}

/// The nick to try after `attempt` refusals: the configured alternatives, then the
/// nick with one or two underscores, then the nick with two random digits; all cut
/// to `max_len` when the server showed it takes no longer nicks.
fn alternative_nick(config: &IrcConfig, attempt: usize, max_len: Option<usize>) -> String {
    let fit = |nick: &str, reserve: usize| -> String {
        match max_len {
            Some(max) => nick.chars().take(max.saturating_sub(reserve)).collect(),
            None => nick.to_owned(),
        }
    };
    let extra = attempt.saturating_sub(config.alt_nicks.len());
    match config.alt_nicks.get(attempt - 1) {
        Some(nick) => fit(nick, 0),
        None if extra <= 2 => format!("{}{}", fit(&config.nick, extra), "_".repeat(extra)),
        None => format!("{}{:02}", fit(&config.nick, 2), rand::random::<u8>() % 100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(alt: &[&str]) -> IrcConfig {
        let mut config: IrcConfig =
            serde_json::from_str(r#"{"server": "h:1", "nick": "switchboard"}"#).unwrap();
        config.alt_nicks = alt.iter().map(|n| (*n).to_owned()).collect();
        config
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_split_around_a_tick_is_relayed_intact() {
        use switchboard_sdk::testing::{MemoryState, RecordingSink};
        use switchboard_sdk::{EventKind, HealthReporter, NetworkId, RoomId};
        use tokio::io::AsyncWriteExt;

        let adapter = IrcAdapter::new(config(&[]));
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (read, write) = tokio::io::split(client);
        let (sink, mut inbound) = RecordingSink::new();
        let ctx = AdapterContext {
            network: NetworkId::new("test"),
            rooms: switchboard_sdk::RoomSet::fixed([RoomId::new("#x")]),
            inbound: sink,
            health: HealthReporter::discard(),
            state: MemoryState::new(),
            data_dir: std::env::temp_dir(),
        };
        let cancel = CancellationToken::new();
        let running = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                run_connected(&adapter, &ctx, &cancel, Box::new(read), Box::new(write)).await
            })
        };
        let (_server_read, mut server) = tokio::io::split(server);
        server
            .write_all(
                b":srv 001 switchboard :Welcome\r\n:switchboard!u@h JOIN #x\r\n\
                  :peer!p@h NOTICE #other :elsewhere\r\n:peer!p@h PRIVMSG #x :hel",
            )
            .await
            .unwrap();
        // Longer than the read loop's 1 s tick between the two halves (paused time:
        // the clock jumps once the adapter has read everything sent so far).
        tokio::time::sleep(Duration::from_secs(3)).await;
        server
            .write_all(b"lo world\r\n:peer!p@h PRIVMSG #x :next\r\n")
            .await
            .unwrap();
        let mut said = Vec::new();
        while said.len() < 2 {
            let event = tokio::time::timeout(Duration::from_secs(60), inbound.recv())
                .await
                .unwrap_or_else(|_| panic!("only {said:?} arrived"))
                .expect("the adapter is running");
            if event.kind == EventKind::Message {
                said.push(event.content.to_plain());
            }
        }
        assert_eq!(said, vec!["hello world", "next"]);
        cancel.cancel();
        running.await.unwrap().unwrap();
    }

    #[test]
    fn alternatives_then_underscores_then_digits() {
        let c = config(&["sb"]);
        assert_eq!(alternative_nick(&c, 1, None), "sb");
        assert_eq!(alternative_nick(&c, 2, None), "switchboard_");
        assert_eq!(alternative_nick(&c, 3, None), "switchboard__");
        let digits = alternative_nick(&c, 4, None);
        assert!(
            digits.starts_with("switchboard") && digits.len() == 13,
            "{digits}"
        );
    }

    #[test]
    fn a_length_limit_is_respected() {
        let c = config(&[]);
        assert_eq!(alternative_nick(&c, 1, Some(9)), "switchbo_");
        assert_eq!(alternative_nick(&c, 2, Some(9)), "switchb__");
        assert_eq!(alternative_nick(&c, 5, Some(9)).chars().count(), 9);
    }
}
