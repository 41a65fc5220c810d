//! `MatrixPeer`: a Matrix user as a test sees it, over the client-server API (v3)
//! directly, so it shares no code with the bridge's Matrix side.
//!
//! Incoming events come from `/sync` long-polls started at login: history from before
//! login (or before the peer joined a room) is never returned. Events sent by the peer
//! itself are dropped; the others are buffered per room until a wait takes them.

use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest single `/sync` long-poll; waits loop over several.
const LONG_POLL: Duration = Duration::from_secs(20);
/// Timeline events per room per sync; a room with more gets the gap fetched with
/// `/messages`, so no event is skipped.
const TIMELINE_LIMIT: usize = 1000;

pub struct MatrixPeer {
    http: reqwest::Client,
    base: String,
    token: String,
    user_id: String,
    /// The sync token: everything before it has been taken into `pending`.
    since: String,
    timeline_limit: usize,
    /// Timeline events from others not taken by a wait yet, per room, in order.
    pending: HashMap<String, VecDeque<Value>>,
    /// Rooms the peer is joined to as of `since`.
    joined: HashSet<String>,
}

impl MatrixPeer {
    /// Logs in with a password (a new device each time) and syncs once to start
    /// listening from now.
    pub async fn login(synapse_url: &str, localpart: &str, password: &str) -> Self {
        let http = reqwest::Client::new();
        let base = synapse_url.trim_end_matches('/').to_owned();
        let url = format!("{base}/_matrix/client/v3/login");
        let response = http
            .post(&url)
            .timeout(REQUEST_TIMEOUT)
            .json(&json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
                "initial_device_display_name": "switchboard test peer",
            }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("peer {localpart}: POST {url} failed: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "peer {localpart}: login answered {status}: {body}"
        );
        let body: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("peer {localpart}: login reply is not JSON ({e}): {body}"));
        let field = |name: &str| {
            body[name]
                .as_str()
                .unwrap_or_else(|| panic!("peer {localpart}: no {name} in the login reply {body}"))
                .to_owned()
        };
        let mut peer = Self {
            http,
            base,
            token: field("access_token"),
            user_id: field("user_id"),
            since: String::new(),
            timeline_limit: TIMELINE_LIMIT,
            pending: HashMap::new(),
            joined: HashSet::new(),
        };
        let filter = json!({
            "room": {"timeline": {"limit": 0}, "state": {"not_types": ["*"]},
                     "ephemeral": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]}},
            "presence": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        });
        let initial = peer
            .call(
                "GET",
                &format!(
                    "/_matrix/client/v3/sync?timeout=0&filter={}",
                    enc(&filter.to_string())
                ),
                None,
            )
            .await;
        peer.since = initial["next_batch"]
            .as_str()
            .unwrap_or_else(|| panic!("peer {localpart}: no next_batch in {initial}"))
            .to_owned();
        // Rooms joined before login: their new events count, their history does not.
        let rooms = peer
            .call("GET", "/_matrix/client/v3/joined_rooms", None)
            .await;
        let rooms = rooms["joined_rooms"]
            .as_array()
            .unwrap_or_else(|| panic!("peer {localpart}: joined_rooms gave {rooms}"));
        peer.joined
            .extend(rooms.iter().filter_map(Value::as_str).map(str::to_owned));
        peer
    }

    /// `@localpart:localhost`
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn access_token(&self) -> &str {
        &self.token
    }

    /// Creates a public room (join rule public, in the room directory), with the alias
    /// `#alias_localpart:server` if given and `m.room.encryption` state if `encrypted`.
    /// Returns the room id.
    pub async fn create_room(&mut self, alias_localpart: Option<&str>, encrypted: bool) -> String {
        let mut request = json!({"preset": "public_chat", "visibility": "public"});
        if let Some(alias) = alias_localpart {
            request["room_alias_name"] = json!(alias);
        }
        if encrypted {
            request["initial_state"] = json!([{
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }]);
        }
        let reply = self
            .call("POST", "/_matrix/client/v3/createRoom", Some(&request))
            .await;
        self.string_field(&reply, "room_id", "createRoom")
    }

    /// Joins by room id or alias; returns the room id.
    pub async fn join(&mut self, room_id_or_alias: &str) -> String {
        let path = format!("/_matrix/client/v3/join/{}", enc(room_id_or_alias));
        let reply = self.call("POST", &path, Some(&json!({}))).await;
        self.string_field(&reply, "room_id", "join")
    }

    pub async fn invite(&mut self, room_id: &str, user_id: &str) {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", enc(room_id));
        self.call("POST", &path, Some(&json!({"user_id": user_id})))
            .await;
    }

    pub async fn leave(&mut self, room_id: &str) {
        let path = format!("/_matrix/client/v3/rooms/{}/leave", enc(room_id));
        self.call("POST", &path, Some(&json!({}))).await;
    }

    /// Sends any room event (with a transaction id unique to this call); returns its id.
    pub async fn send_event(&mut self, room_id: &str, event_type: &str, content: Value) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/{}",
            enc(room_id),
            enc(event_type),
            transaction_id()
        );
        let reply = self.call("PUT", &path, Some(&content)).await;
        self.string_field(&reply, "event_id", "send")
    }

    /// Sets a state event; returns its id.
    pub async fn send_state(
        &mut self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        content: Value,
    ) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room_id),
            enc(event_type),
            enc(state_key)
        );
        let reply = self.call("PUT", &path, Some(&content)).await;
        self.string_field(&reply, "event_id", "state")
    }

    pub async fn send_text(&mut self, room_id: &str, body: &str) -> String {
        self.send_message(room_id, json!({"msgtype": "m.text", "body": body}))
            .await
    }

    /// An `m.text` with an `org.matrix.custom.html` formatted body.
    pub async fn send_html(&mut self, room_id: &str, body: &str, html: &str) -> String {
        let content = json!({
            "msgtype": "m.text",
            "body": body,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        });
        self.send_message(room_id, content).await
    }

    pub async fn send_emote(&mut self, room_id: &str, body: &str) -> String {
        self.send_message(room_id, json!({"msgtype": "m.emote", "body": body}))
            .await
    }

    pub async fn send_notice(&mut self, room_id: &str, body: &str) -> String {
        self.send_message(room_id, json!({"msgtype": "m.notice", "body": body}))
            .await
    }

    /// A reply as clients send it: `m.relates_to.m.in_reply_to`, plus the fallback
    /// quoting the original in `body` (`> <@alice:localhost> original\n\nreply`) and in
    /// `formatted_body` (`<mx-reply>`).
    pub async fn send_reply(&mut self, room_id: &str, in_reply_to: &str, body: &str) -> String {
        let original = self.event(room_id, in_reply_to).await;
        let sender = original["sender"].as_str().unwrap_or_default();
        let content = &original["content"];
        let original_body = strip_plain_fallback(content["body"].as_str().unwrap_or_default());
        let emote = if content["msgtype"] == "m.emote" {
            "* "
        } else {
            ""
        };
        let mut quoted = format!("> {emote}<{sender}> ");
        for (i, line) in original_body.lines().enumerate() {
            if i > 0 {
                quoted.push_str("\n> ");
            }
            quoted.push_str(line);
        }
        let original_html = match content["formatted_body"].as_str() {
            Some(html) if content["format"] == "org.matrix.custom.html" => {
                strip_html_fallback(html).to_owned()
            }
            _ => escape_html(original_body).replace('\n', "<br/>"),
        };
        let formatted = format!(
            "<mx-reply><blockquote><a href=\"https://matrix.to/#/{room_id}/{in_reply_to}\">In reply to</a> \
             <a href=\"https://matrix.to/#/{sender}\">{sender}</a><br/>{original_html}</blockquote></mx-reply>{}",
            escape_html(body).replace('\n', "<br/>")
        );
        let content = json!({
            "msgtype": "m.text",
            "body": format!("{quoted}\n\n{body}"),
            "format": "org.matrix.custom.html",
            "formatted_body": formatted,
            "m.relates_to": {"m.in_reply_to": {"event_id": in_reply_to}},
        });
        self.send_message(room_id, content).await
    }

    /// An edit: `m.replace` relation, `m.new_content`, and `* new` as the fallback body.
    pub async fn send_edit(&mut self, room_id: &str, original: &str, new_body: &str) -> String {
        let content = json!({
            "msgtype": "m.text",
            "body": format!("* {new_body}"),
            "m.new_content": {"msgtype": "m.text", "body": new_body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        });
        self.send_message(room_id, content).await
    }

    /// Redacts an event; returns the redaction's event id.
    pub async fn redact(&mut self, room_id: &str, event_id: &str) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{}",
            enc(room_id),
            enc(event_id),
            transaction_id()
        );
        let reply = self.call("PUT", &path, Some(&json!({}))).await;
        self.string_field(&reply, "event_id", "redact")
    }

    /// Uploads `bytes` to the media repository, then sends them as `m.image` (for
    /// `image/*`) or `m.file`; returns the event id.
    pub async fn upload_and_send_file(
        &mut self,
        room_id: &str,
        name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> String {
        let url = format!(
            "{}/_matrix/media/v3/upload?filename={}",
            self.base,
            enc(name)
        );
        let response = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .header("Content-Type", mime)
            .body(bytes.to_vec())
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("peer {}: upload of {name} failed: {e}", self.user_id));
        let (status, reply) = read_reply(response).await;
        assert!(
            status.is_success(),
            "peer {}: upload of {name} answered {status}: {reply}",
            self.user_id
        );
        let uri = self.string_field(&reply, "content_uri", "upload");
        let msgtype = if mime.starts_with("image/") {
            "m.image"
        } else {
            "m.file"
        };
        let content = json!({
            "msgtype": msgtype,
            "body": name,
            "filename": name,
            "url": uri,
            "info": {"mimetype": mime, "size": bytes.len()},
        });
        self.send_message(room_id, content).await
    }

    /// Downloads an `mxc://server/id` URI (authenticated media API).
    pub async fn download(&self, mxc: &str) -> Vec<u8> {
        let rest = mxc
            .strip_prefix("mxc://")
            .unwrap_or_else(|| panic!("peer {}: not an mxc URI: {mxc}", self.user_id));
        let url = format!("{}/_matrix/client/v1/media/download/{rest}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("peer {}: GET {url} failed: {e}", self.user_id));
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("peer {}: reading {url} failed: {e}", self.user_id));
        assert!(
            status.is_success(),
            "peer {}: GET {url} answered {status}: {}",
            self.user_id,
            String::from_utf8_lossy(&bytes)
        );
        bytes.to_vec()
    }

    /// Sets the room topic; returns the state event's id.
    pub async fn set_topic(&mut self, room_id: &str, topic: &str) -> String {
        self.send_state(room_id, "m.room.topic", "", json!({"topic": topic}))
            .await
    }

    /// Waits for the next `m.room.message` in `room_id` from someone else that satisfies
    /// `matches`, and returns it as Synapse sent it. Events before it in that room are
    /// consumed. Panics after `timeout` with the events seen.
    pub async fn expect_message(
        &mut self,
        room_id: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        self.expect_event(room_id, timeout, |event| {
            is_message(event) && matches(event)
        })
        .await
    }

    /// As [`Self::expect_message`], for an event of any type.
    pub async fn expect_event(
        &mut self,
        room_id: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            while let Some(event) = self.take(room_id) {
                if matches(&event) {
                    return event;
                }
                seen.push(event);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "peer {}: no matching event in {room_id} within {timeout:?}; saw {}",
                    self.user_id,
                    summaries(&seen)
                );
            }
            self.sync(left).await;
        }
    }

    /// The next `count` `m.room.message` events in `room_id` from others, in order
    /// (other event types in that room are consumed and skipped).
    pub async fn collect_messages(
        &mut self,
        room_id: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < count {
            while got.len() < count {
                let Some(event) = self.take(room_id) else {
                    break;
                };
                if is_message(&event) {
                    got.push(event);
                }
            }
            if got.len() == count {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "peer {}: {} of {count} messages in {room_id} within {timeout:?}; last: {}",
                    self.user_id,
                    got.len(),
                    summaries(&got[got.len().saturating_sub(3)..])
                );
            }
            self.sync(left).await;
        }
        got
    }

    /// Every event (any type) from others that arrives in `room_id` within `window`,
    /// plus any not taken yet: to prove nothing (more) does.
    pub async fn drain(&mut self, room_id: &str, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        loop {
            got.extend(
                self.pending
                    .get_mut(room_id)
                    .into_iter()
                    .flat_map(|queue| queue.drain(..)),
            );
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            self.sync(left).await;
        }
    }

    /// The room's current state event of that type and key, or `None` if it has none.
    pub async fn state(&self, room_id: &str, event_type: &str, state_key: &str) -> Option<Value> {
        let path = format!("/_matrix/client/v3/rooms/{}/state", enc(room_id));
        let state = self.call("GET", &path, None).await;
        let events = state
            .as_array()
            .unwrap_or_else(|| panic!("peer {}: GET {path} gave no array: {state}", self.user_id));
        events
            .iter()
            .find(|event| event["type"] == event_type && event["state_key"] == state_key)
            .cloned()
    }

    /// One event by id, as the server has it now (redacted, with bundled edits in
    /// `unsigned.m.relations`).
    pub async fn event(&self, room_id: &str, event_id: &str) -> Value {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(room_id),
            enc(event_id)
        );
        self.call("GET", &path, None).await
    }

    /// The user ids joined to the room, sorted.
    pub async fn joined_members(&self, room_id: &str) -> Vec<String> {
        let path = format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room_id));
        let reply = self.call("GET", &path, None).await;
        let mut members: Vec<String> = reply["joined"]
            .as_object()
            .unwrap_or_else(|| panic!("peer {}: GET {path} gave {reply}", self.user_id))
            .keys()
            .cloned()
            .collect();
        members.sort();
        members
    }

    async fn send_message(&mut self, room_id: &str, content: Value) -> String {
        self.send_event(room_id, "m.room.message", content).await
    }

    fn take(&mut self, room_id: &str) -> Option<Value> {
        self.pending.get_mut(room_id)?.pop_front()
    }

    /// One `/sync` long-poll of at most `wait`; buffers what it brings.
    async fn sync(&mut self, wait: Duration) {
        let wait = wait.min(LONG_POLL);
        let filter = json!({
            "room": {"timeline": {"limit": self.timeline_limit}, "state": {"not_types": ["*"]},
                     "ephemeral": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]}},
            "presence": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        });
        let path = format!(
            "/_matrix/client/v3/sync?since={}&timeout={}&filter={}",
            enc(&self.since),
            wait.as_millis(),
            enc(&filter.to_string())
        );
        let reply = self.call("GET", &path, None).await;
        let next = self.string_field(&reply, "next_batch", "sync");
        let previous = std::mem::replace(&mut self.since, next);
        for (section, joined) in [("join", true), ("leave", false)] {
            let Some(rooms) = reply["rooms"][section].as_object() else {
                continue;
            };
            for (room_id, room) in rooms {
                self.take_timeline(room_id, &room["timeline"], &previous, joined)
                    .await;
            }
        }
    }

    async fn take_timeline(
        &mut self,
        room_id: &str,
        timeline: &Value,
        previous: &str,
        joined: bool,
    ) {
        let mut events = timeline["events"].as_array().cloned().unwrap_or_default();
        if timeline["limited"] == true
            && let Some(prev_batch) = timeline["prev_batch"].as_str()
        {
            let mut gap = self.backfill(room_id, prev_batch, previous).await;
            let have: HashSet<&str> = events
                .iter()
                .filter_map(|e| e["event_id"].as_str())
                .collect();
            gap.retain(|e| !have.contains(e["event_id"].as_str().unwrap_or_default()));
            gap.append(&mut events);
            events = gap;
        }
        if !self.joined.contains(room_id) {
            // Newly joined: only what follows the peer's own join is new to it.
            let own_join = events.iter().rposition(|event| {
                event["type"] == "m.room.member"
                    && event["state_key"] == self.user_id.as_str()
                    && event["content"]["membership"] == "join"
            });
            if let Some(index) = own_join {
                events.drain(..=index);
            }
        }
        if joined {
            self.joined.insert(room_id.to_owned());
        } else {
            self.joined.remove(room_id);
        }
        let user_id = self.user_id.as_str();
        let queue = self.pending.entry(room_id.to_owned()).or_default();
        queue.extend(
            events
                .into_iter()
                .filter(|event| event["sender"] != user_id),
        );
    }

    /// The events between the sync token `to` and a limited timeline's `prev_batch`,
    /// oldest first.
    async fn backfill(&self, room_id: &str, prev_batch: &str, to: &str) -> Vec<Value> {
        let mut gap = Vec::new();
        let mut from = prev_batch.to_owned();
        loop {
            let path = format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000&from={}&to={}",
                enc(room_id),
                enc(&from),
                enc(to)
            );
            let page = self.call("GET", &path, None).await;
            let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
            if chunk.is_empty() {
                break;
            }
            gap.extend(chunk);
            match page["end"].as_str() {
                Some(end) if end != from => from = end.to_owned(),
                _ => break,
            }
        }
        gap.reverse();
        gap
    }

    /// A client-server API call with the access token; panics unless it succeeds.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        // A /sync long-poll may take its `timeout` before answering.
        let timeout = if path.contains("/sync?") {
            LONG_POLL + REQUEST_TIMEOUT
        } else {
            REQUEST_TIMEOUT
        };
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("peer {}: {method} {url} failed: {e}", self.user_id));
        let (status, reply) = read_reply(response).await;
        assert!(
            status.is_success(),
            "peer {}: {method} {url} answered {status}: {reply}",
            self.user_id
        );
        reply
    }

    fn string_field(&self, reply: &Value, name: &str, what: &str) -> String {
        reply[name]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "peer {}: no {name} in the {what} reply {reply}",
                    self.user_id
                )
            })
            .to_owned()
    }

    #[cfg(test)]
    pub(super) fn set_timeline_limit(&mut self, limit: usize) {
        self.timeline_limit = limit;
    }
}

/// The status and JSON body (or the text as a JSON string when it is not JSON).
async fn read_reply(response: reqwest::Response) -> (reqwest::StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn is_message(event: &Value) -> bool {
    event["type"] == "m.room.message"
}

/// One line per event: type, sender, content.
fn summaries(events: &[Value]) -> String {
    if events.is_empty() {
        return "nothing".into();
    }
    events.iter().fold(String::new(), |mut out, event| {
        let _ = write!(
            out,
            "\n  {} from {}: {}",
            event["type"].as_str().unwrap_or("?"),
            event["sender"].as_str().unwrap_or("?"),
            event["content"]
        );
        out
    })
}

/// Unique per call (and per process): transaction ids are scoped to the device.
fn transaction_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "sb{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// Percent-encodes a path segment or query value.
fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A body without the reply fallback it may start with (`> ` lines, then a blank line).
fn strip_plain_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    let mut rest = body;
    while let Some(line_end) = rest.find('\n').filter(|_| rest.starts_with("> ")) {
        rest = &rest[line_end + 1..];
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

/// An HTML body without its `<mx-reply>` fallback.
fn strip_html_fallback(html: &str) -> &str {
    match html.find("</mx-reply>") {
        Some(end) if html.starts_with("<mx-reply>") => &html[end + "</mx-reply>".len()..],
        _ => html,
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
