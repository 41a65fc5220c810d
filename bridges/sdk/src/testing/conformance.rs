//! The conformance suite every adapter runs against a real (or faithfully faked)
//! server, as named steps: a failure names the step, so a red CI says "step 3: a
//! peer's message arrives as a normalised event" rather than a line number.
//!
//! Each step returns `Err(reason)` instead of panicking; `run_conformance` runs them in
//! order, because each needs the state the ones before it set up (a running adapter,
//! the ids of a sent message).

use super::{RunningAdapter, planned, spawn_adapter};
use crate::adapter::{Adapter, ConnectionState, RoomReport};
use crate::event::{EventKind, Inbound, MessageStyle, Origin, Outbound, OutboundKind, SendReceipt};
use crate::ids::{NetworkId, RoomId, RoomKey};
use crate::rich::RichText;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Connects the conformance suite to one adapter and a native peer on its server.
#[async_trait]
pub trait ConformanceHarness: Send {
    type Adapter: Adapter;
    fn adapter(&self) -> Arc<Self::Adapter>;
    fn network(&self) -> NetworkId;
    /// A room the adapter can join and the peer is in.
    fn room(&self) -> RoomId;
    /// A native user (not the bridge) says `text` in the room.
    async fn peer_say(&mut self, text: &str);
    /// Waits up to `timeout` until the peer has seen a message containing `needle`.
    async fn peer_saw(&mut self, needle: &str, timeout: Duration) -> bool;
}

const STEP_TIMEOUT: Duration = Duration::from_secs(20);

type StepResult = Result<(), String>;

/// The steps, in the order they run; the names are what a failure reports.
pub const STEPS: [&str; 7] = [
    "connects and reports Connected",
    "reports its room joined",
    "send returns native ids and the peer sees the message",
    "a peer's message arrives as a normalised event",
    "edits and deletes work as the capabilities declare",
    "run() returns promptly after cancel",
    "a send after stop fails transiently (the core keeps the row)",
];

/// Runs every step against the harness's adapter; panics naming the first step that
/// fails and why.
pub async fn run_conformance<H: ConformanceHarness>(harness: &mut H) {
    let mut suite = Suite::start(harness);
    for (index, name) in STEPS.iter().enumerate() {
        let result = match index {
            0 => suite.connects().await,
            1 => suite.reports_joined().await,
            2 => suite.send_returns_ids(harness).await,
            3 => suite.inbound_is_normalised(harness).await,
            4 => suite.edits_and_deletes().await,
            5 => suite.stops_on_cancel().await,
            _ => suite.send_after_stop_is_transient().await,
        };
        if let Err(reason) = result {
            panic!("conformance step {} ({name}) failed: {reason}", index + 1);
        }
    }
}

/// What the steps share: the running adapter and what earlier steps produced.
struct Suite<A: Adapter> {
    adapter: Arc<A>,
    network: NetworkId,
    room: RoomId,
    running: Option<RunningAdapter>,
    inbound: mpsc::UnboundedReceiver<Inbound>,
    health: mpsc::UnboundedReceiver<ConnectionState>,
    rooms: mpsc::UnboundedReceiver<(RoomId, RoomReport)>,
    outbound: Outbound,
    receipt: Option<SendReceipt>,
}

impl<A: Adapter> Suite<A> {
    fn start<H: ConformanceHarness<Adapter = A>>(harness: &H) -> Self {
        let adapter = harness.adapter();
        let (network, room) = (harness.network(), harness.room());
        let mut running = spawn_adapter(adapter.clone(), network.clone(), vec![room.clone()]);
        // The receivers move out so steps can borrow them beside the handle.
        let (_, inbound_placeholder) = mpsc::unbounded_channel();
        let (_, health_placeholder) = mpsc::unbounded_channel();
        let (_, rooms_placeholder) = mpsc::unbounded_channel();
        let inbound = std::mem::replace(&mut running.inbound, inbound_placeholder);
        let health = std::mem::replace(&mut running.health, health_placeholder);
        let rooms = std::mem::replace(&mut running.rooms, rooms_placeholder);
        Self {
            outbound: planned(&*adapter, hello(&room)),
            adapter,
            network,
            room,
            running: Some(running),
            inbound,
            health,
            rooms,
            receipt: None,
        }
    }

    async fn connects(&mut self) -> StepResult {
        let connected = tokio::time::timeout(STEP_TIMEOUT, async {
            while let Some(state) = self.health.recv().await {
                if state == ConnectionState::Connected {
                    return true;
                }
            }
            false
        })
        .await;
        match connected {
            Ok(true) => Ok(()),
            Ok(false) => Err("the adapter stopped reporting health before Connected".into()),
            Err(_) => Err(format!("no Connected within {STEP_TIMEOUT:?}")),
        }
    }

    /// Joined may come before or after `Connected`; a refusal or a `left` for the
    /// room fails the step.
    async fn reports_joined(&mut self) -> StepResult {
        let room = self.room.clone();
        let rooms = &mut self.rooms;
        let report = tokio::time::timeout(STEP_TIMEOUT, async {
            while let Some((reported, report)) = rooms.recv().await {
                if reported == room {
                    return Some(report);
                }
            }
            None
        })
        .await
        .map_err(|_| format!("no report about {room} within {STEP_TIMEOUT:?}"))?;
        match report {
            Some(RoomReport::Joined) => Ok(()),
            Some(other) => Err(format!("reported {room} as {other:?}")),
            None => Err(format!("the adapter stopped before reporting {room}")),
        }
    }

    async fn send_returns_ids<H: ConformanceHarness>(&mut self, harness: &mut H) -> StepResult {
        let receipt = send_until_joined(&*self.adapter, &self.outbound).await?;
        if receipt.native_ids.is_empty() {
            return Err("send returned no native ids".into());
        }
        self.receipt = Some(receipt);
        if !harness.peer_saw("conformance hello", STEP_TIMEOUT).await {
            return Err(format!(
                "the peer did not see the sent message within {STEP_TIMEOUT:?}"
            ));
        }
        Ok(())
    }

    async fn inbound_is_normalised<H: ConformanceHarness>(
        &mut self,
        harness: &mut H,
    ) -> StepResult {
        harness.peer_say("conformance from peer").await;
        let inbound = &mut self.inbound;
        let event = tokio::time::timeout(STEP_TIMEOUT, async {
            while let Some(event) = inbound.recv().await {
                if event.kind == EventKind::Message
                    && event.content.to_plain().contains("conformance from peer")
                {
                    return Some(event);
                }
            }
            None
        })
        .await
        .map_err(|_| format!("no inbound event within {STEP_TIMEOUT:?}"))?
        .ok_or("the inbound sink closed")?;
        let expected = RoomKey {
            network: self.network.clone(),
            room: self.room.clone(),
        };
        if event.room != expected {
            return Err(format!(
                "arrived for {:?}, expected {expected:?}",
                event.room
            ));
        }
        if event.sender.is_self {
            return Err("a peer's message was marked as the bridge's own".into());
        }
        if event.sender.display_name.is_empty() {
            return Err("the sender's display name is empty".into());
        }
        Ok(())
    }

    async fn edits_and_deletes(&mut self) -> StepResult {
        let targets = self
            .receipt
            .as_ref()
            .map(|receipt| receipt.native_ids.clone())
            .ok_or("no message was sent to edit")?;
        let capabilities = self.adapter.capabilities();
        if capabilities.edits {
            let edit = planned(
                &*self.adapter,
                Outbound {
                    kind: OutboundKind::Edit {
                        targets: targets.clone(),
                        content: RichText::plain("conformance edited"),
                    },
                    ..self.outbound.clone()
                },
            );
            self.adapter
                .send(&edit)
                .await
                .map_err(|error| format!("edit failed: {error}"))?;
        }
        if capabilities.deletes {
            let delete = Outbound {
                kind: OutboundKind::Delete { targets },
                parts: Vec::new(),
                ..self.outbound.clone()
            };
            self.adapter
                .send(&delete)
                .await
                .map_err(|error| format!("delete failed: {error}"))?;
        }
        Ok(())
    }

    async fn stops_on_cancel(&mut self) -> StepResult {
        let running = self.running.take().ok_or("the adapter is not running")?;
        running.cancel.cancel();
        let stopped = tokio::time::timeout(STEP_TIMEOUT, running.task).await;
        // Its data dir goes once it has stopped.
        drop(running.data_dir);
        match stopped {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("still running {STEP_TIMEOUT:?} after cancel")),
        }
    }

    async fn send_after_stop_is_transient(&mut self) -> StepResult {
        match self.adapter.send(&self.outbound).await {
            Err(error) if error.is_retryable() => Ok(()),
            Err(error) => Err(format!("failed permanently ({error}); must be transient")),
            Ok(_) => Err("the send succeeded after the adapter stopped".into()),
        }
    }
}

/// The message the suite sends.
fn hello(room: &RoomId) -> Outbound {
    Outbound {
        room: room.clone(),
        delivery_id: 1,
        delivery_key: "d1".into(),
        sender_name: "conformer".into(),
        sender_avatar: None,
        sender_label: "<conformer> ".into(),
        per_message_sender: false,
        parts: Vec::new(),
        origin: Origin {
            network: NetworkId::new("conformance"),
            protocol: "test".into(),
            sender_id: "conformer".into(),
        },
        kind: OutboundKind::Message {
            style: MessageStyle::Normal,
            content: RichText::plain("conformance hello"),
            reply_to: None,
            thread: None,
            attachments: Vec::new(),
        },
    }
}

/// Right after `Connected` the room join may still be in flight; retries transient
/// errors for a bounded time.
async fn send_until_joined<A: Adapter + ?Sized>(
    adapter: &A,
    outbound: &Outbound,
) -> Result<SendReceipt, String> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        match adapter.send(outbound).await {
            Ok(receipt) => return Ok(receipt),
            Err(error) if error.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(format!("send failed: {error}")),
        }
    }
}
