//! The core's side of `InboundSink`: filter, route, and durably accept inbound events.

use super::SharedRoutes;
use super::delivery::RoomScheduler;
use crate::metrics as m;
use crate::store::{AcceptOutcome, SharedStore};
use async_trait::async_trait;
use std::sync::Arc;
use switchboard_sdk::adapter::InboundHandler;
use switchboard_sdk::{Inbound, NetworkId, SubmitError, SubmitOutcome};
use tokio_util::sync::CancellationToken;

pub struct Ingest {
    routes: SharedRoutes,
    store: SharedStore,
    /// Holds answers while a destination room's backlog is over its bound.
    queues: Arc<RoomScheduler>,
    /// Once cancelled (shutdown), new events are refused so the adapter does not
    /// acknowledge them.
    stopping: CancellationToken,
}

impl Ingest {
    pub fn new(
        routes: SharedRoutes,
        store: SharedStore,
        queues: Arc<RoomScheduler>,
        stopping: CancellationToken,
    ) -> Self {
        Self {
            routes,
            store,
            queues,
            stopping,
        }
    }
}

#[async_trait]
impl InboundHandler for Ingest {
    async fn submit(&self, event: Inbound) -> Result<SubmitOutcome, SubmitError> {
        self.ingest(event, Acknowledged::Yes).await
    }

    async fn submit_unacknowledged(&self, event: Inbound) -> Result<SubmitOutcome, SubmitError> {
        self.ingest(event, Acknowledged::No).await
    }
}

/// Whether the adapter acknowledges the event's source on the answer (which must
/// then wait until the event is on disk).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Acknowledged {
    Yes,
    No,
}

impl Ingest {
    async fn ingest(
        &self,
        event: Inbound,
        acknowledged: Acknowledged,
    ) -> Result<SubmitOutcome, SubmitError> {
        if self.stopping.is_cancelled() {
            return Err(SubmitError::ShuttingDown);
        }
        let network = event.room.network.clone();
        m::received(&network);
        if event.sender.is_self {
            m::ignored(&network, "own_message");
            return Ok(SubmitOutcome::Ignored);
        }
        let destinations = self.routes.load().destinations(&event);
        if destinations.is_empty() {
            m::ignored(&network, "no_destination");
            return Ok(SubmitOutcome::Ignored);
        }
        // The store makes one outbox row per destination: counted once committed.
        let queued: Vec<(NetworkId, Arc<str>)> = destinations
            .iter()
            .map(|d| (d.room.network.clone(), d.route.clone()))
            .collect();
        let accepted = match acknowledged {
            Acknowledged::Yes => self.store.accept(event, destinations).await,
            Acknowledged::No => self.store.accept_unacknowledged(event, destinations).await,
        };
        match accepted {
            Ok(AcceptOutcome::Accepted { outbox, .. }) => {
                m::accepted(&network);
                for (destination, route) in &queued {
                    m::delivery_queued(destination, route);
                }
                // The source waits for this answer: a flood slows it down here
                // rather than growing the rooms' queues (see `backlog`).
                if acknowledged == Acknowledged::Yes {
                    self.queues
                        .hold_answer(outbox.iter().map(|(room, _)| room))
                        .await;
                }
                Ok(SubmitOutcome::Accepted {
                    destinations: outbox.len(),
                })
            }
            Ok(AcceptOutcome::Duplicate) => {
                m::ignored(&network, "duplicate");
                Ok(SubmitOutcome::Duplicate)
            }
            Ok(AcceptOutcome::UnknownTarget) => {
                m::ignored(&network, "unknown_target");
                Ok(SubmitOutcome::Ignored)
            }
            Err(error) => {
                tracing::error!(%network, %error, "could not accept an inbound event");
                Err(SubmitError::Storage(error.to_string()))
            }
        }
    }
}
