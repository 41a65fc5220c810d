//! Matrix for tests: a real Synapse homeserver (from PyPI, in a cached venv) started on a
//! free loopback port in a temporary directory, and `MatrixPeer`, a minimal Matrix user
//! speaking the client-server API directly, independent of the bridge's own Matrix code.
//!
//! This module owns the Synapse venv (install and its lock), the homeserver config the
//! tests run with (loopback only, rate limits lifted, cheap password hashing), the
//! server's lifecycle, and the peer. Every wait is bounded and fails with what was seen.

mod peer;
mod server;
mod venv;

#[cfg(test)]
mod tests;

pub use peer::MatrixPeer;
pub use server::{Synapse, SynapseOptions};
pub use venv::ensure_synapse;

/// Runs `future` to completion on a private runtime in a scoped thread, so the blocking
/// parts of the harness (`Synapse::start`, `register`) work from plain tests and from
/// inside a tokio runtime alike.
fn block_on<F>(future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the Synapse harness")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
