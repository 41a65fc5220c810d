//! Runs each network's adapter in isolation: an error or a panic restarts that adapter
//! with capped exponential backoff and jitter, and never touches the other networks.

use crate::backoff;
use crate::health::HealthRegistry;
use crate::metrics as m;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_sdk::{Adapter, AdapterContext, AdapterError, ConnectionState};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// A run that lasted this long counts as healthy: the backoff starts over.
    pub healthy_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// Keeps `adapter` running until `cancel` fires.
pub async fn supervise(
    adapter: Arc<dyn Adapter>,
    ctx: AdapterContext,
    health: Arc<HealthRegistry>,
    policy: RestartPolicy,
    cancel: CancellationToken,
) {
    let network = ctx.network.clone();
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        let run = {
            let adapter = adapter.clone();
            let ctx = ctx.clone();
            let cancel = cancel.child_token();
            // A task of its own so that a panic ends only this run.
            tokio::spawn(async move { adapter.run(ctx, cancel).await })
        };
        let result = run.await;
        if cancel.is_cancelled() {
            health.set(&network, ConnectionState::Stopped);
            m::connected(&network, false);
            return;
        }
        let (error, auth_failed) = match result {
            Ok(Ok(())) => ("the adapter stopped by itself".to_owned(), false),
            Ok(Err(error)) => {
                let auth = matches!(error, AdapterError::Auth(_));
                (error.to_string(), auth)
            }
            Err(join_error) => (panic_message(join_error), false),
        };
        if started.elapsed() >= policy.healthy_after {
            attempt = 0;
        }
        let state = if auth_failed {
            ConnectionState::Failed {
                last_error: error.clone(),
            }
        } else {
            ConnectionState::Reconnecting {
                last_error: error.clone(),
            }
        };
        health.set(&network, state);
        m::connected(&network, false);
        m::reconnect(&network);
        // Bad credentials will not fix themselves quickly: wait the longest.
        let wait = if auth_failed {
            policy.max
        } else {
            backoff::delay(attempt, policy.initial, policy.max)
        };
        tracing::warn!(%network, %error, ?wait, "network adapter stopped; restarting");
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => {
                health.set(&network, ConnectionState::Stopped);
                return;
            }
        }
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return "the adapter task was cancelled".to_owned();
    }
    let payload = error.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("the adapter panicked: {text}")
}
