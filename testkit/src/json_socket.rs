//! A JSON-over-websocket client for the fakes' own tests: every wait bounded, pings
//! skipped, and every frame seen kept for the failure message.

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(10);

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct JsonSocket {
    ws: Stream,
    /// Every frame received, in order (text frames that are not JSON as strings).
    pub seen: Vec<Value>,
}

impl JsonSocket {
    pub async fn connect(request: impl IntoClientRequest + Unpin) -> Self {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("websocket connect timed out")
            .expect("websocket connect failed");
        Self {
            ws,
            seen: Vec::new(),
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.ws
            .send(WsMessage::Text(value.to_string().into()))
            .await
            .expect("websocket send failed");
    }

    /// The next JSON frame; panics if none comes within the wait or the socket ends.
    pub async fn next(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("no websocket frame within {WAIT:?}; seen {:#?}", self.seen)
                });
            match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("frame is JSON");
                    self.seen.push(value.clone());
                    return value;
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                other => panic!("websocket ended ({other:?}); seen {:#?}", self.seen),
            }
        }
    }

    /// Waits for the connection to end; frames still queued are recorded.
    pub async fn expect_end(&mut self) {
        let ended = tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(WsMessage::Text(text))) => {
                        self.seen.push(
                            serde_json::from_str(text.as_str()).unwrap_or(json!(text.as_str())),
                        );
                    }
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "the websocket did not end within {WAIT:?}; seen {:#?}",
            self.seen
        );
    }
}
