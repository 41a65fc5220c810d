//! The gateway websocket at `/?v=10&encoding=json`: Hello, Identify (token and
//! intents checked), READY and GUILD_CREATE, heartbeats and their acks, Resume
//! with replay of what the session missed, Invalid Session, Reconnect, and the
//! dispatches of every message created, edited or deleted.
//!
//! A session outlives its connection: dispatches are numbered and kept per
//! session, so a client resuming with its last `seq` gets exactly what followed.
//! A client closing with 1000 or 1001 ends its session, as on Discord.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxumState};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::shapes;
use super::state::{State, random_token};
use super::{FakeDiscord, Inner};

/// `GUILDS`: guild, channel and thread events.
pub const INTENT_GUILDS: u64 = 1;
/// `GUILD_MESSAGES`: message events in guild channels.
pub const INTENT_GUILD_MESSAGES: u64 = 1 << 9;
/// `MESSAGE_CONTENT`: privileged; needs the application flag (else close 4014).
pub const INTENT_MESSAGE_CONTENT: u64 = 1 << 15;

/// What a connection's task is told to do.
pub(super) enum Outbound {
    Frame(String),
    /// Send a close frame with this code, then hang up.
    Close(u16),
    /// Hang up without a close frame, like a crash or a network cut.
    Drop,
}

pub(super) struct Connection {
    pub tx: mpsc::UnboundedSender<Outbound>,
    /// The session it identified or resumed.
    pub session: Option<String>,
}

pub(super) struct Session {
    pub id: String,
    pub bot_user: String,
    pub token: String,
    pub intents: u64,
    /// The last `s` handed out.
    pub seq: u64,
    /// Every dispatch with its `s`, for resumes.
    pub sent: Vec<(u64, String)>,
    /// The connection it is attached to, if any.
    pub connection: Option<u64>,
}

pub(super) async fn upgrade(
    AxumState(inner): AxumState<Arc<Inner>>,
    Query(_query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| run(inner, socket)),
        Err(rejection) => rejection.into_response(),
    }
}

fn op(op: u8, d: Value) -> String {
    json!({ "op": op, "d": d, "s": null, "t": null }).to_string()
}

async fn run(inner: Arc<Inner>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let key = {
        let mut st = inner.lock();
        st.next_connection += 1;
        let key = st.next_connection;
        let hello = op(
            10,
            json!({ "heartbeat_interval": st.heartbeat_interval_ms }),
        );
        let _ = tx.send(Outbound::Frame(hello));
        st.connections.insert(key, Connection { tx, session: None });
        st.connections_opened += 1;
        key
    };
    inner.bump();
    let client_close = serve(&inner, key, &mut socket, &mut rx).await;
    {
        let mut st = inner.lock();
        let session = st.connections.remove(&key).and_then(|c| c.session);
        if let Some(id) = session {
            // 1000 and 1001 from the client end the session; anything else keeps
            // it resumable.
            if matches!(client_close, Some(Some(1000 | 1001))) {
                st.sessions.remove(&id);
            } else if let Some(s) = st.sessions.get_mut(&id)
                && s.connection == Some(key)
            {
                s.connection = None;
            }
        }
        if let Some(code) = client_close {
            st.client_closes.push(code);
        }
    }
    inner.bump();
}

/// Runs one connection; returns the client's close code when it sent a close frame.
async fn serve(
    inner: &Inner,
    key: u64,
    socket: &mut WebSocket,
    rx: &mut mpsc::UnboundedReceiver<Outbound>,
) -> Option<Option<u16>> {
    loop {
        tokio::select! {
            outbound = rx.recv() => match outbound {
                Some(Outbound::Frame(text)) => {
                    if socket.send(WsMessage::Text(text.into())).await.is_err() {
                        return None;
                    }
                }
                Some(Outbound::Close(code)) => {
                    let frame = CloseFrame { code, reason: close_reason(code).into() };
                    let _ = socket.send(WsMessage::Close(Some(frame))).await;
                    return None;
                }
                Some(Outbound::Drop) | None => return None,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Text(text))) => inner.on_payload(key, text.as_str()),
                Some(Ok(WsMessage::Close(frame))) => return Some(frame.map(|f| f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            },
        }
    }
}

fn close_reason(code: u16) -> &'static str {
    match code {
        4000 => "Unknown error.",
        4004 => "Authentication failed.",
        4009 => "Session timed out.",
        4014 => "Disallowed intent(s).",
        _ => "",
    }
}

impl Inner {
    fn on_payload(&self, key: u64, text: &str) {
        let Ok(payload) = serde_json::from_str::<Value>(text) else {
            self.send_to(key, Outbound::Close(4002));
            return;
        };
        {
            let mut st = self.lock();
            match payload["op"].as_u64() {
                Some(1) => {
                    st.heartbeats += 1;
                    send(&st, key, Outbound::Frame(op(11, Value::Null)));
                }
                Some(2) => identify(&mut st, key, &payload["d"]),
                Some(6) => resume(&mut st, key, &payload["d"]),
                // Presence, voice, member requests...: accepted and ignored.
                Some(_) => {}
                None => send(&st, key, Outbound::Close(4001)),
            }
        }
        self.bump();
    }

    fn send_to(&self, key: u64, outbound: Outbound) {
        send(&self.lock(), key, outbound);
    }
}

fn send(st: &State, key: u64, outbound: Outbound) {
    if let Some(connection) = st.connections.get(&key) {
        let _ = connection.tx.send(outbound);
    }
}

fn identify(st: &mut State, key: u64, d: &Value) {
    let token = d["token"].as_str().unwrap_or("");
    let token = token.strip_prefix("Bot ").unwrap_or(token);
    let Some(bot) = st.bot_by_token(token) else {
        send(st, key, Outbound::Close(4004));
        return;
    };
    let (bot_user, app_id) = (bot.user_id.clone(), bot.application_id.clone());
    let intents = d["intents"].as_u64().unwrap_or(0);
    if intents & INTENT_MESSAGE_CONTENT != 0 && !st.message_content_flag {
        send(st, key, Outbound::Close(4014));
        return;
    }
    st.identifies += 1;
    st.identified_at.push(std::time::Instant::now());
    let session_id = random_token(32)
        .to_ascii_lowercase()
        .replace(['-', '_'], "0");
    st.sessions.insert(
        session_id.clone(),
        Session {
            id: session_id.clone(),
            bot_user: bot_user.clone(),
            token: token.to_owned(),
            intents,
            seq: 0,
            sent: Vec::new(),
            connection: Some(key),
        },
    );
    if let Some(connection) = st.connections.get_mut(&key) {
        connection.session = Some(session_id.clone());
    }
    let user = st.user(&bot_user).map(shapes::current_user);
    let guilds: Vec<Value> = st
        .guilds
        .iter()
        .map(|g| json!({ "id": g.id, "unavailable": true }))
        .collect();
    let shard = d.get("shard").cloned().unwrap_or(json!([0, 1]));
    let ready = json!({
        "v": 10,
        "user": user,
        "guilds": guilds,
        "session_id": session_id,
        "resume_gateway_url": st.gateway_url,
        "shard": shard,
        "application": { "id": app_id, "flags": shapes::app_flags(st) },
    });
    dispatch_to(st, &session_id, "READY", ready);
    let guilds: Vec<Value> = st
        .guilds
        .iter()
        .map(|g| shapes::gateway_guild(st, g, &bot_user))
        .collect();
    for guild in guilds {
        dispatch_to(st, &session_id, "GUILD_CREATE", guild);
    }
}

fn resume(st: &mut State, key: u64, d: &Value) {
    let session_id = d["session_id"].as_str().unwrap_or("");
    let token = d["token"].as_str().unwrap_or("");
    let token = token.strip_prefix("Bot ").unwrap_or(token);
    let after = d["seq"].as_u64().unwrap_or(0);
    let valid = st
        .sessions
        .get(session_id)
        .is_some_and(|s| s.token == token && st.bot_by_token(token).is_some());
    if !valid || std::mem::take(&mut st.refuse_next_resume) {
        st.refused_resumes += 1;
        st.sessions.remove(session_id);
        send(st, key, Outbound::Frame(op(9, json!(false))));
        return;
    }
    st.resumes += 1;
    // A session lives on one connection: an older one still attached loses it.
    let previous = st.sessions[session_id].connection;
    if let Some(old) = previous.filter(|old| *old != key)
        && let Some(c) = st.connections.get_mut(&old)
    {
        c.session = None;
    }
    if let Some(connection) = st.connections.get_mut(&key) {
        connection.session = Some(session_id.to_owned());
    }
    let session = st.sessions.get_mut(session_id).expect("checked above");
    session.connection = Some(key);
    let replay: Vec<String> = session
        .sent
        .iter()
        .filter(|(s, _)| *s > after)
        .map(|(_, frame)| frame.clone())
        .collect();
    for frame in replay {
        send(st, key, Outbound::Frame(frame));
    }
    let session_id = session_id.to_owned();
    dispatch_to(st, &session_id, "RESUMED", json!({}));
}

/// Numbers a dispatch for one session, keeps it for resumes and sends it if the
/// session has a connection.
pub(super) fn dispatch_to(st: &mut State, session_id: &str, event: &str, d: Value) {
    let Some(session) = st.sessions.get_mut(session_id) else {
        return;
    };
    session.seq += 1;
    let frame = json!({ "op": 0, "t": event, "s": session.seq, "d": d }).to_string();
    session.sent.push((session.seq, frame.clone()));
    if let Some(key) = session.connection {
        send(st, key, Outbound::Frame(frame));
    }
}

/// What each session gets for a message event: MESSAGE_CREATE / MESSAGE_UPDATE
/// carry the whole message (content blanked for sessions without the content
/// intent unless the bot wrote it or is mentioned); MESSAGE_DELETE the ids. Only
/// sessions with `GUILD_MESSAGES`, and none for channels hidden from the bots.
pub(super) fn dispatch_message(st: &mut State, event: &str, index: usize) {
    let (channel_id, hidden) = {
        let m = &st.messages[index].msg;
        let hidden = st.channel(&m.channel_id).is_some_and(|c| {
            c.hidden_from_bots
                || c.parent_id
                    .as_deref()
                    .and_then(|p| st.channel(p))
                    .is_some_and(|p| p.hidden_from_bots)
        });
        (m.channel_id.clone(), hidden)
    };
    if hidden {
        return;
    }
    let stored = &st.messages[index];
    let mentioned = shapes::mentioned(st, stored);
    let mut frames = Vec::new();
    for session in st.sessions.values() {
        if session.intents & INTENT_GUILD_MESSAGES == 0 {
            continue;
        }
        let d = if event == "MESSAGE_DELETE" {
            json!({ "id": stored.msg.id, "channel_id": channel_id, "guild_id": stored.guild_id })
        } else {
            let own = stored.author_user.as_deref() == Some(session.bot_user.as_str());
            let strip = session.intents & INTENT_MESSAGE_CONTENT == 0
                && !own
                && !mentioned.contains(&session.bot_user);
            shapes::message(st, stored, strip)
        };
        frames.push((session.id.clone(), d));
    }
    for (session, d) in frames {
        dispatch_to(st, &session, event, d);
    }
}

/// THREAD_CREATE for sessions with `GUILDS`.
pub(super) fn dispatch_thread_create(st: &mut State, thread_id: &str) {
    let Some(thread) = st.channel(thread_id) else {
        return;
    };
    let mut d = shapes::channel(st, thread);
    d["newly_created"] = json!(true);
    let sessions: Vec<String> = st
        .sessions
        .values()
        .filter(|s| s.intents & INTENT_GUILDS != 0)
        .map(|s| s.id.clone())
        .collect();
    for session in sessions {
        dispatch_to(st, &session, "THREAD_CREATE", d.clone());
    }
}

impl FakeDiscord {
    /// Ends every gateway connection at the TCP level, without a close frame.
    /// Sessions stay resumable.
    pub fn drop_sockets(&self) {
        self.to_all_connections(|| Outbound::Drop);
    }

    /// Sends a close frame with `code` on every connection (4000: resumable,
    /// 4004/4014...: fatal for the client), then hangs up.
    pub fn close_sockets(&self, code: u16) {
        self.to_all_connections(|| Outbound::Close(code));
    }

    /// Sends op 7 Reconnect on every connection: the client should reconnect and resume.
    pub fn request_reconnect(&self) {
        self.to_all_connections(|| Outbound::Frame(op(7, Value::Null)));
    }

    /// Sends op 9 Invalid Session with `d: resumable` on every connection; when
    /// not resumable, the sessions end.
    pub fn invalidate_sessions(&self, resumable: bool) {
        if !resumable {
            self.inner.lock().sessions.clear();
        }
        self.to_all_connections(|| Outbound::Frame(op(9, json!(resumable))));
    }

    /// The next Resume is answered op 9 `d: false` and its session ends.
    pub fn refuse_next_resume(&self) {
        self.inner.lock().refuse_next_resume = true;
    }

    /// The `heartbeat_interval` of later Hellos, in milliseconds (default 41250).
    pub fn set_heartbeat_interval(&self, ms: u64) {
        self.inner.lock().heartbeat_interval_ms = ms;
    }

    fn to_all_connections(&self, outbound: impl Fn() -> Outbound) {
        {
            let st = self.inner.lock();
            for connection in st.connections.values() {
                let _ = connection.tx.send(outbound());
            }
        }
        self.inner.bump();
    }

    /// Successful Identifies so far.
    pub fn identifies(&self) -> usize {
        self.inner.lock().identifies
    }

    /// When each successful Identify arrived, in order.
    pub fn identify_times(&self) -> Vec<std::time::Instant> {
        self.inner.lock().identified_at.clone()
    }

    /// Successful Resumes so far.
    pub fn resumes(&self) -> usize {
        self.inner.lock().resumes
    }

    /// Resumes answered with op 9 so far.
    pub fn refused_resumes(&self) -> usize {
        self.inner.lock().refused_resumes
    }

    /// Heartbeats (op 1) received so far.
    pub fn heartbeats(&self) -> usize {
        self.inner.lock().heartbeats
    }

    /// Gateway connections open now.
    pub fn gateway_connections(&self) -> usize {
        self.inner.lock().connections.len()
    }

    /// Gateway connections opened since the start.
    pub fn gateway_connections_opened(&self) -> usize {
        self.inner.lock().connections_opened
    }

    /// Connections attached to a session (identified or resumed) now.
    pub fn live_sessions(&self) -> usize {
        let st = self.inner.lock();
        st.sessions
            .values()
            .filter(|s| s.connection.is_some())
            .count()
    }

    /// The intents of the sessions attached to a connection now.
    pub fn session_intents(&self) -> Vec<u64> {
        let st = self.inner.lock();
        st.sessions
            .values()
            .filter(|s| s.connection.is_some())
            .map(|s| s.intents)
            .collect()
    }

    /// The close codes clients sent, in order (`None`: a close frame without a code).
    pub fn client_close_codes(&self) -> Vec<Option<u16>> {
        self.inner.lock().client_closes.clone()
    }
}
