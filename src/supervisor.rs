//! Runs each network's adapter in isolation: an error or a panic restarts that adapter
//! after a wait, and never touches the other networks.
//!
//! How long to wait depends on whether the network had been up. After losing a
//! connection that was up, the server is probably restarting and will be back soon,
//! so the waits stay short (see `RestartPolicy::reconnect_cap`) and the bridge is
//! back within seconds of the server. A network that has not been up since the
//! daemon started (refused connections, failing handshakes) backs off exponentially
//! to `max`, as do bad credentials at once.

use crate::backoff;
use crate::health::HealthRegistry;
use crate::metrics as m;
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::{Adapter, AdapterContext, AdapterError, ConnectionState};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// The first wait; doubled after each further failed run.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// After losing a connection that was up, no wait is longer than this or a tenth
    /// of the outage so far, whichever is larger: a 30 s outage is noticed within
    /// ~3 s of its end, a 10-minute one within a minute.
    pub reconnect_cap: Duration,
    /// A run must have been connected and lasted this long for its end to count as
    /// losing a working connection; a server that drops us right after connecting
    /// does not get the short waits over and over.
    pub stable_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            reconnect_cap: Duration::from_secs(2),
            stable_after: Duration::from_secs(10),
        }
    }
}

/// The outage is this many times longer than the longest wait in it (see
/// `reconnect_cap`).
const OUTAGE_PER_WAIT: u32 = 10;

impl RestartPolicy {
    /// The wait before the next run, the `attempt`th (0-based) since the network was
    /// last up; `outage` is how long ago that was, `None` if it has not been up.
    pub fn wait(&self, attempt: u32, outage: Option<Duration>, auth_failed: bool) -> Duration {
        // Bad credentials will not fix themselves quickly: wait the longest.
        if auth_failed {
            return self.max;
        }
        let ceiling = match outage {
            Some(outage) => (outage / OUTAGE_PER_WAIT)
                .max(self.reconnect_cap)
                .min(self.max),
            None => self.max,
        };
        backoff::delay(attempt, self.initial, ceiling)
    }
}

/// One network running under its own supervision, with its own cancel token and
/// task: stopping or restarting it touches no other network.
pub struct NetworkHandle {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl NetworkHandle {
    /// Starts supervising `adapter` in a task of its own.
    pub fn spawn(
        adapter: Arc<dyn Adapter>,
        ctx: AdapterContext,
        health: Arc<HealthRegistry>,
        policy: RestartPolicy,
    ) -> Self {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(supervise(adapter, ctx, health, policy, cancel.clone()));
        Self { cancel, task }
    }

    /// Cancels the network and waits up to `deadline` for its adapter to stop; past
    /// it, the run is abandoned (aborted). Returns whether it stopped in time.
    pub async fn stop(mut self, deadline: Duration) -> bool {
        self.cancel.cancel();
        if tokio::time::timeout(deadline, &mut self.task).await.is_ok() {
            return true;
        }
        // Dropping the supervisor aborts its run too (`AbortOnDropHandle`).
        self.task.abort();
        let _ = self.task.await;
        false
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
    // When the last working connection was lost.
    let mut outage_since: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let connections_before = health.connections(&network);
        let mut run = {
            let adapter = adapter.clone();
            let ctx = ctx.clone();
            let cancel = cancel.child_token();
            // A task of its own so that a panic ends only this run; aborted when
            // dropped, so a run outlives neither its supervisor nor an aborted stop.
            AbortOnDropHandle::new(tokio::spawn(async move { adapter.run(ctx, cancel).await }))
        };
        let result = (&mut run).await;
        if cancel.is_cancelled() {
            health.set(&network, ConnectionState::Stopped);
            m::connected(&network, false);
            return;
        }
        let connected = health.connections(&network) > connections_before;
        if connected && started.elapsed() >= policy.stable_after {
            attempt = 0;
            outage_since = Some(Instant::now());
        }
        let (error, auth_failed, panicked) = match result {
            Ok(Ok(())) => ("the adapter stopped by itself".to_owned(), false, false),
            Ok(Err(error)) => {
                // Refused credentials and a setup the server rejects (an unknown channel, a
                // room that cannot be joined) need a human, not a quick retry.
                let auth = matches!(error, AdapterError::Auth(_) | AdapterError::Config(_));
                (error.to_string(), auth, false)
            }
            Err(join_error) => (panic_message(join_error), false, true),
        };
        let wait = policy.wait(
            attempt,
            outage_since.map(|since| since.elapsed()),
            auth_failed,
        );
        if panicked {
            // A bug, not the network: someone should look.
            tracing::warn!(%network, %error, "network adapter panicked; restarting it");
        }
        tracing::debug!(%network, %error, ?wait, attempt, "adapter run ended; running it again after the wait");
        let state = if auth_failed {
            ConnectionState::Failed {
                last_error: error.clone(),
            }
        } else {
            ConnectionState::Reconnecting {
                last_error: error.clone(),
            }
        };
        health.set_retrying(&network, state, wait);
        m::connected(&network, false);
        m::reconnect(&network);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use switchboard_sdk::testing::{MemoryState, RecordingSink};
    use switchboard_sdk::{
        Capabilities, HealthReporter, NetworkId, Outbound, SendError, SendReceipt,
    };

    /// What one run of `Scripted` does.
    #[derive(Clone, Copy)]
    enum Run {
        /// Connects, stays up this long, then loses the connection.
        UpFor(Duration),
        /// Fails without connecting (the server refuses or the handshake fails).
        Refused,
        /// The server rejects the setup (an unknown channel): a human must fix it.
        SetupRejected,
    }

    /// An adapter that plays `script`, one entry per run (the last one repeats), and
    /// notes when each run started.
    struct Scripted {
        script: Vec<Run>,
        starts: Mutex<Vec<Instant>>,
    }

    #[async_trait::async_trait]
    impl Adapter for Scripted {
        fn protocol(&self) -> &'static str {
            "scripted"
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }

        async fn run(
            &self,
            ctx: AdapterContext,
            _cancel: CancellationToken,
        ) -> Result<(), AdapterError> {
            let run = {
                let mut starts = self.starts.lock().unwrap();
                starts.push(Instant::now());
                self.script[(starts.len() - 1).min(self.script.len() - 1)]
            };
            match run {
                Run::UpFor(up) => {
                    ctx.health.report(ConnectionState::Connected);
                    tokio::time::sleep(up).await;
                    Err(AdapterError::Connection(
                        "server closed the connection".into(),
                    ))
                }
                Run::Refused => Err(AdapterError::Connection("connection refused".into())),
                Run::SetupRejected => {
                    Err(AdapterError::Config("channel x not found in team y".into()))
                }
            }
        }

        async fn send(&self, _message: &Outbound) -> Result<SendReceipt, SendError> {
            Err(SendError::Transient("not connected".into()))
        }
    }

    /// Supervises `script` under the default policy until `runs` runs have started;
    /// returns the waits between the end of each run and the start of the next.
    async fn waits(script: Vec<Run>, runs: usize) -> Vec<Duration> {
        let adapter = Arc::new(Scripted {
            script: script.clone(),
            starts: Mutex::new(Vec::new()),
        });
        let health = Arc::new(HealthRegistry::default());
        let network = NetworkId::new("net");
        let ctx = AdapterContext {
            network: network.clone(),
            rooms: switchboard_sdk::RoomSet::fixed([]),
            inbound: RecordingSink::new().0,
            health: {
                let health = health.clone();
                let network = network.clone();
                HealthReporter::new(move |state| health.set(&network, state))
            },
            state: MemoryState::new(),
            data_dir: std::env::temp_dir(),
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(supervise(
            adapter.clone(),
            ctx,
            health,
            RestartPolicy::default(),
            cancel.clone(),
        ));
        while adapter.starts.lock().unwrap().len() < runs {
            // Paused time: sleeping lets the supervisor's timers run, instantly.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        task.await.unwrap();
        let starts = adapter.starts.lock().unwrap().clone();
        starts
            .windows(2)
            .enumerate()
            .map(|(i, pair)| {
                let up = match script[i.min(script.len() - 1)] {
                    Run::UpFor(up) => up,
                    Run::Refused | Run::SetupRejected => Duration::ZERO,
                };
                pair[1] - pair[0] - up
            })
            .collect()
    }

    fn context_for(network: &str, health: &Arc<HealthRegistry>) -> AdapterContext {
        let network = NetworkId::new(network);
        AdapterContext {
            network: network.clone(),
            rooms: switchboard_sdk::RoomSet::fixed([switchboard_sdk::RoomId::new("#r")]),
            inbound: RecordingSink::new().0,
            health: {
                let health = health.clone();
                HealthReporter::new(move |state| health.set(&network, state))
            },
            state: MemoryState::new(),
            data_dir: std::env::temp_dir(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_one_network_leaves_the_other_running() {
        use switchboard_sdk::testing::FakeAdapter;
        let health = Arc::new(HealthRegistry::default());
        let (one, two) = (
            FakeAdapter::new(Capabilities::default()),
            FakeAdapter::new(Capabilities::default()),
        );
        let first = NetworkHandle::spawn(
            one.clone(),
            context_for("one", &health),
            health.clone(),
            RestartPolicy::default(),
        );
        let _second = NetworkHandle::spawn(
            two.clone(),
            context_for("two", &health),
            health.clone(),
            RestartPolicy::default(),
        );
        one.wait_running(Duration::from_secs(5)).await;
        two.wait_running(Duration::from_secs(5)).await;
        assert!(first.stop(Duration::from_secs(5)).await, "stopped in time");
        assert!(one.rooms().is_none(), "the stopped network still runs");
        assert_eq!(
            health.state_of(&NetworkId::new("one")),
            Some(ConnectionState::Stopped)
        );
        assert!(two.rooms().is_some(), "the other network was stopped too");
        assert_eq!(two.runs(), 1, "the other network was restarted");
        assert_eq!(
            health.state_of(&NetworkId::new("two")),
            Some(ConnectionState::Connected)
        );
    }

    /// Ignores its cancel token; notes when its run is dropped.
    struct Stubborn {
        dropped: Arc<std::sync::atomic::AtomicBool>,
    }

    struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[async_trait::async_trait]
    impl Adapter for Stubborn {
        fn protocol(&self) -> &'static str {
            "stubborn"
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }

        async fn run(
            &self,
            ctx: AdapterContext,
            _cancel: CancellationToken,
        ) -> Result<(), AdapterError> {
            let _guard = SetOnDrop(self.dropped.clone());
            ctx.health.report(ConnectionState::Connected);
            std::future::pending::<()>().await;
            Ok(())
        }

        async fn send(&self, _message: &Outbound) -> Result<SendReceipt, SendError> {
            Err(SendError::Transient("stubborn".into()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_adapter_that_ignores_cancel_is_abandoned_at_the_deadline() {
        let health = Arc::new(HealthRegistry::default());
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handle = NetworkHandle::spawn(
            Arc::new(Stubborn {
                dropped: dropped.clone(),
            }),
            context_for("stubborn", &health),
            health.clone(),
            RestartPolicy::default(),
        );
        while health.state_of(&NetworkId::new("stubborn")) != Some(ConnectionState::Connected) {
            tokio::task::yield_now().await;
        }
        let asked = Instant::now();
        assert!(!handle.stop(Duration::from_secs(3)).await);
        assert_eq!(
            asked.elapsed(),
            Duration::from_secs(3),
            "waited the deadline"
        );
        // The run is aborted, not left behind.
        while !dropped.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_clean_close_shortly_after_an_outage_is_followed_by_a_prompt_reconnect() {
        // Up for 5 minutes; an outage of five refused connections; up again for 20 s,
        // then a clean close: the bridge is back at once, the outage's attempts
        // forgotten (the old policy counted on from them: 16-32 s).
        let mut script = vec![Run::UpFor(Duration::from_secs(300))];
        script.extend([Run::Refused; 5]);
        script.extend([
            Run::UpFor(Duration::from_secs(20)),
            Run::UpFor(Duration::from_secs(300)),
        ]);
        let waits = waits(script, 8).await;
        assert!(
            waits[6] <= Duration::from_secs(2),
            "after the close: {waits:?}"
        );
        assert!(
            waits.iter().all(|wait| *wait <= Duration::from_secs(3)),
            "{waits:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_outage_is_noticed_within_seconds_of_its_end() {
        // Up for 5 minutes, then the server is down: refused connections for a while.
        let mut script = vec![Run::UpFor(Duration::from_secs(300))];
        script.extend([Run::Refused; 30]);
        let adapter_waits = waits(script, 30).await;
        // Through the first 30 s of the outage no wait is over 3 s (a tenth of it);
        // the old policy was at 16-32 s by then.
        let mut outage = Duration::ZERO;
        for wait in adapter_waits {
            if outage >= Duration::from_secs(30) {
                break;
            }
            assert!(
                wait <= Duration::from_secs(3),
                "waited {wait:?} at {outage:?} into the outage"
            );
            outage += wait;
        }
        assert!(
            outage >= Duration::from_secs(30),
            "the outage went on for {outage:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_network_that_never_connected_backs_off_to_the_maximum() {
        let waits = waits(vec![Run::Refused], 12).await;
        let policy = RestartPolicy::default();
        assert!(waits[0] <= policy.initial, "{waits:?}");
        assert!(
            waits[9] >= policy.max / 2,
            "the 10th wait is long: {waits:?}"
        );
        assert!(waits.iter().all(|wait| *wait <= policy.max), "{waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_drops_us_right_after_connecting_is_not_hammered() {
        // Never stable: connected for a moment each time.
        let waits = waits(vec![Run::UpFor(Duration::from_millis(100))], 12).await;
        assert!(
            waits[9] >= RestartPolicy::default().max / 2,
            "backs off like a failing handshake: {waits:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_setup_the_server_rejects_is_retried_slowly() {
        let waits = waits(vec![Run::SetupRejected], 3).await;
        let policy = RestartPolicy::default();
        assert!(
            waits.iter().all(|wait| *wait >= policy.max),
            "a misspelt channel is retried at the longest wait: {waits:?}"
        );
    }
}
