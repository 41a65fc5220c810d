//! Socket Mode: the websocket behind the URLs `apps.connections.open` hands out.
//! A connection gets `hello`, then `events_api` envelopes, each sent to one
//! connection and kept until the app acks its `envelope_id`; when its connection
//! ends unacked, an envelope goes again (`retry_attempt` + 1) to another open
//! connection, or to the next one that opens. `disconnect`
//! frames announce a refresh; the fake closes those connections after a grace.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::state::{State, uuid};
use super::{FakeSlack, Inner};

/// Slack allows an app 10 open connections.
pub const MAX_CONNECTIONS: usize = 10;

/// What a connection's task is told to do.
pub(super) enum Outbound {
    Frame(String),
    Ping,
    /// Send a close frame, then hang up.
    Close,
    /// Hang up without a close frame, like a crash.
    Drop,
}

pub(super) struct Socket {
    pub tx: mpsc::UnboundedSender<Outbound>,
    /// Told to disconnect: gets envelopes only when no other connection is open.
    pub retiring: bool,
}

/// An event not yet acknowledged.
pub(super) struct Envelope {
    pub id: String,
    pub payload: Value,
    /// How many times it was sent: the next send's `retry_attempt`.
    pub sends: u32,
    /// The connection it was last sent to.
    pub sent_to: Option<u64>,
}

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/link", get(upgrade))
        .route("/link/", get(upgrade))
}

impl State {
    /// Keeps an event for Socket Mode and sends it to a connection if one is open.
    pub(super) fn queue_envelope(&mut self, payload: Value) {
        self.pending.push_back(Envelope {
            id: uuid(),
            payload,
            sends: 0,
            sent_to: None,
        });
        if let Some(key) = self.pick_socket() {
            self.send_envelope(self.pending.len() - 1, key);
        }
    }

    /// The newest connection not told to disconnect, else the newest one.
    fn pick_socket(&self) -> Option<u64> {
        let fresh = self
            .sockets
            .iter()
            .filter(|(_, s)| !s.retiring)
            .map(|(k, _)| *k)
            .max();
        fresh.or_else(|| self.sockets.keys().copied().max())
    }

    fn send_envelope(&mut self, index: usize, key: u64) {
        let envelope = &mut self.pending[index];
        let frame = json!({
            "envelope_id": envelope.id,
            "payload": envelope.payload,
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": envelope.sends,
            "retry_reason": if envelope.sends == 0 { "" } else { "timeout" },
        });
        envelope.sends += 1;
        envelope.sent_to = Some(key);
        if let Some(socket) = self.sockets.get(&key) {
            let _ = socket.tx.send(Outbound::Frame(frame.to_string()));
        }
    }

    /// Sends the connection the envelopes no open connection holds (`all`: every
    /// unacked one).
    fn redeliver(&mut self, key: u64, all: bool) {
        for index in 0..self.pending.len() {
            let held = self.pending[index]
                .sent_to
                .is_some_and(|k| self.sockets.contains_key(&k));
            if all || !held {
                self.send_envelope(index, key);
            }
        }
    }
}

async fn upgrade(
    AxumState(inner): AxumState<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Tickets are single-use, as Slack's are.
    let valid = query
        .get("ticket")
        .is_some_and(|ticket| inner.lock().tickets.remove(ticket));
    if !valid {
        return (StatusCode::UNAUTHORIZED, "invalid ticket").into_response();
    }
    match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| run(inner, socket)),
        Err(rejection) => rejection.into_response(),
    }
}

async fn send(socket: &mut WebSocket, value: &Value) -> bool {
    socket
        .send(WsMessage::Text(value.to_string().into()))
        .await
        .is_ok()
}

fn debug_info() -> Value {
    json!({ "host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060 })
}

async fn run(inner: Arc<Inner>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let registered = {
        let mut st = inner.lock();
        if st.sockets.len() >= MAX_CONNECTIONS {
            None
        } else {
            st.next_socket += 1;
            let key = st.next_socket;
            st.sockets.insert(
                key,
                Socket {
                    tx,
                    retiring: false,
                },
            );
            st.sockets_opened += 1;
            let hello = json!({
                "type": "hello",
                "num_connections": st.sockets.len(),
                "debug_info": debug_info(),
                "connection_info": { "app_id": st.app_id },
            });
            // Queued behind the hello, which goes out first below.
            st.redeliver(key, false);
            Some((key, hello))
        }
    };
    inner.bump();
    let Some((key, hello)) = registered else {
        let refusal = json!({ "type": "disconnect", "reason": "too_many_websockets", "debug_info": debug_info() });
        let _ = send(&mut socket, &refusal).await;
        let _ = socket.send(WsMessage::Close(None)).await;
        return;
    };
    if send(&mut socket, &hello).await {
        serve(&inner, &mut socket, &mut rx).await;
    }
    {
        let mut st = inner.lock();
        st.sockets.remove(&key);
        // What it held unacked goes to another open connection, as Slack retries
        // an envelope whose connection went away.
        if let Some(next) = st.pick_socket() {
            st.redeliver(next, false);
        }
    }
    inner.bump();
}

async fn serve(inner: &Inner, socket: &mut WebSocket, rx: &mut mpsc::UnboundedReceiver<Outbound>) {
    loop {
        tokio::select! {
            outbound = rx.recv() => match outbound {
                Some(Outbound::Frame(text)) => {
                    if socket.send(WsMessage::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Some(Outbound::Ping) => {
                    if socket.send(WsMessage::Ping(b"ping".to_vec().into())).await.is_err() {
                        return;
                    }
                }
                Some(Outbound::Close) => {
                    let frame = CloseFrame { code: 1000, reason: "".into() };
                    let _ = socket.send(WsMessage::Close(Some(frame))).await;
                    return;
                }
                Some(Outbound::Drop) | None => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Text(text))) => inner.on_text(text.as_str()),
                Some(Ok(WsMessage::Pong(_))) => {
                    inner.lock().pongs += 1;
                    inner.bump();
                }
                // Pings are answered by the websocket layer itself.
                Some(Ok(WsMessage::Ping(_) | WsMessage::Binary(_))) => {}
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => return,
            },
        }
    }
}

impl Inner {
    /// An ack (`{"envelope_id": ...}`, maybe with a `payload`) settles its envelope.
    fn on_text(&self, text: &str) {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(id) = value["envelope_id"].as_str() else {
            return;
        };
        {
            let mut st = self.lock();
            if let Some(index) = st.pending.iter().position(|e| e.id == id) {
                st.pending.remove(index);
                st.acked.push(id.to_owned());
            }
        }
        self.bump();
    }

    /// Ends every connection without a close frame.
    pub(super) fn drop_sockets(&self) {
        let sockets: Vec<Socket> = {
            let mut st = self.lock();
            std::mem::take(&mut st.sockets).into_values().collect()
        };
        for socket in sockets {
            let _ = socket.tx.send(Outbound::Drop);
        }
        self.bump();
    }
}

impl FakeSlack {
    /// Socket Mode connections open now (counted once their `hello` is queued).
    pub fn socket_connections(&self) -> usize {
        self.inner.lock().sockets.len()
    }

    /// Socket Mode connections opened since the start (grows on each reconnect).
    pub fn socket_connections_opened(&self) -> usize {
        self.inner.lock().sockets_opened
    }

    /// Waits until exactly `n` Socket Mode connections are open.
    pub async fn wait_socket_connections(&self, n: usize, timeout: Duration) {
        let what = format!("{n} open Socket Mode connections");
        self.inner
            .wait(&what, timeout, |st| (st.sockets.len() == n).then_some(()))
            .await;
    }

    /// Sends `{"type":"disconnect","reason":reason,"debug_info":{...}}` to every
    /// open connection (`refresh_requested`, `warning`, `link_disabled`...); they
    /// get no new envelopes while another connection is open, and are closed
    /// (close frame) after the grace (`set_disconnect_grace`, default 1 s).
    pub async fn send_disconnect(&self, reason: &str) {
        let frame = json!({ "type": "disconnect", "reason": reason, "debug_info": debug_info() })
            .to_string();
        let (keys, grace) = {
            let mut st = self.inner.lock();
            for socket in st.sockets.values_mut() {
                socket.retiring = true;
                let _ = socket.tx.send(Outbound::Frame(frame.clone()));
            }
            (
                st.sockets.keys().copied().collect::<Vec<_>>(),
                st.disconnect_grace,
            )
        };
        self.inner.bump();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let st = inner.lock();
            for key in keys {
                if let Some(socket) = st.sockets.get(&key) {
                    let _ = socket.tx.send(Outbound::Close);
                }
            }
        });
    }

    /// How long connections told to disconnect stay open (Slack: about 10 s
    /// after a `warning`).
    pub fn set_disconnect_grace(&self, grace: Duration) {
        self.inner.lock().disconnect_grace = grace;
    }

    /// Ends every connection at the TCP level, without a close frame.
    pub fn drop_sockets(&self) {
        self.inner.drop_sockets();
    }

    /// Sends a websocket ping on every open connection (pongs: `socket_pongs`).
    pub fn ping_sockets(&self) {
        for socket in self.inner.lock().sockets.values() {
            let _ = socket.tx.send(Outbound::Ping);
        }
    }

    /// Pongs received from clients so far.
    pub fn socket_pongs(&self) -> usize {
        self.inner.lock().pongs
    }

    /// Envelopes sent or queued but not acknowledged.
    pub fn unacked_envelopes(&self) -> usize {
        self.inner.lock().pending.len()
    }

    /// The `envelope_id`s acknowledged so far, in order.
    pub fn acked_envelopes(&self) -> Vec<String> {
        self.inner.lock().acked.clone()
    }

    /// Sends every unacked envelope again now (`retry_attempt` + 1) to the
    /// connection new envelopes go to, as Slack does when an ack is late.
    pub fn redeliver_unacked(&self) {
        let mut st = self.inner.lock();
        if let Some(key) = st.pick_socket() {
            st.redeliver(key, true);
        }
    }
}
