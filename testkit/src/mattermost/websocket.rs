//! The websocket event stream at `/api/v4/websocket`: authentication (header on
//! the upgrade, or the `authentication_challenge` action), the "hello", events
//! numbered per connection, and the few client actions the server answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    AppError, Inner, Outbound, SERVER_VERSION, Socket, broadcast, new_id, now_ms, rest,
    server_version,
};

/// How long an unauthenticated connection may stay open, as on the server.
const AUTH_WINDOW: Duration = Duration::from_secs(5);

pub(super) async fn upgrade(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if inner.lock().refuse_websockets {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // A bad token on the upgrade is ignored: the client may still answer
    // the challenge, as with the server.
    let user = rest::token_from(&headers)
        .or_else(|| query.get("access_token").cloned())
        .and_then(|token| inner.session_user(&token));
    upgrade.on_upgrade(move |socket| run(inner, socket, user))
}

/// A client request: `{"seq": N, "action": "...", "data": {...}}`.
struct Action {
    seq: i64,
    name: String,
    data: Value,
}

fn parse_action(text: &str) -> Option<Action> {
    let value: Value = serde_json::from_str(text).ok()?;
    Some(Action {
        seq: value.get("seq").and_then(Value::as_i64).unwrap_or(0),
        name: value
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        data: value.get("data").cloned().unwrap_or(Value::Null),
    })
}

fn failure(seq: i64, error: AppError) -> Value {
    let mut error = error.to_json("");
    if let Some(error) = error.as_object_mut() {
        error.remove("request_id");
    }
    json!({ "status": "FAIL", "seq_reply": seq, "error": error })
}

/// The error for a malformed request, checked before anything else as the
/// server's router does.
fn malformed(action: &Action) -> Option<Value> {
    if action.name.is_empty() {
        let error = AppError::bad_request(
            "api.web_socket_router.no_action.app_error",
            "No websocket action.",
        );
        return Some(failure(action.seq, error));
    }
    if action.seq <= 0 {
        let error = AppError::bad_request(
            "api.web_socket_router.bad_seq.app_error",
            "Invalid sequence for WebSocket message.",
        );
        return Some(failure(action.seq, error));
    }
    None
}

async fn send(socket: &mut WebSocket, value: &Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn run(inner: Arc<Inner>, mut socket: WebSocket, mut user: Option<String>) {
    let deadline = tokio::time::Instant::now() + AUTH_WINDOW;
    while user.is_none() {
        let message = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Ok(Some(Ok(message))) => message,
            _ => return,
        };
        let text = match message {
            Message::Text(text) => text,
            // Binary frames before authentication, or a close: the server hangs up.
            Message::Binary(_) | Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let Some(action) = parse_action(text.as_str()) else {
            continue;
        };
        let reply = if let Some(error) = malformed(&action) {
            error
        } else if action.name == "authentication_challenge" {
            let token = action.data.get("token").and_then(Value::as_str);
            match token.and_then(|token| inner.session_user(token)) {
                Some(user_id) => {
                    user = Some(user_id);
                    json!({ "status": "OK", "seq_reply": action.seq })
                }
                // The server closes without a reply on a bad token.
                None => return,
            }
        } else {
            let error = AppError::new(
                401,
                "api.web_socket_router.not_authenticated.app_error",
                "WebSocket not authenticated.",
            );
            failure(action.seq, error)
        };
        if !send(&mut socket, &reply).await {
            return;
        }
    }
    let user_id = user.expect("the loop ends only once authenticated");
    let hello = json!({
        "event": "hello",
        "data": {
            "connection_id": new_id(),
            "server_version": server_version(),
            "server_hostname": "fake-mattermost",
        },
        "broadcast": broadcast(&user_id, ""),
        "seq": 0,
    });
    if !send(&mut socket, &hello).await {
        return;
    }
    let mut seq: i64 = 1;
    // Registered only after the hello, so events come after it, and so a
    // test that saw the client counted knows its hello went out.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let key = {
        let mut st = inner.lock();
        st.next_socket += 1;
        let key = st.next_socket;
        st.sockets.insert(key, Socket { user_id, tx });
        st.sessions_ever += 1;
        key
    };
    inner.bump();
    loop {
        tokio::select! {
            outbound = rx.recv() => match outbound {
                Some(Outbound::Event(mut event)) => {
                    event["seq"] = json!(seq);
                    seq += 1;
                    let lost = {
                        let mut st = inner.lock();
                        let lost = st.lose_events > 0;
                        st.lose_events = st.lose_events.saturating_sub(1);
                        lost
                    };
                    if lost {
                        continue;
                    }
                    if !send(&mut socket, &event).await {
                        break;
                    }
                }
                // Dropping the socket without a close frame, like a crash.
                Some(Outbound::Close) | None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = parse_action(text.as_str()).map(|a| answer(&a))
                        && !send(&mut socket, &reply).await
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    inner.lock().sockets.remove(&key);
    inner.bump();
}

/// The reply to an action from an authenticated client.
fn answer(action: &Action) -> Value {
    if let Some(error) = malformed(action) {
        return error;
    }
    match action.name.as_str() {
        "ping" => json!({
            "status": "OK",
            "seq_reply": action.seq,
            "data": {
                "text": "pong",
                "version": SERVER_VERSION,
                "server_time": now_ms(),
                "node_id": "",
            },
        }),
        "user_typing" | "presence" | "posted_ack" | "get_statuses" | "get_statuses_by_ids" => {
            json!({ "status": "OK", "seq_reply": action.seq })
        }
        _ => failure(
            action.seq,
            AppError::new(
                500,
                "api.web_socket_router.bad_action.app_error",
                "Unknown WebSocket action.",
            ),
        ),
    }
}
