//! The Switchboard daemon as a library: config, routing, durable delivery, the store,
//! supervision of network adapters, and the HTTP surface. `main.rs` is a thin CLI.

pub mod admin;
pub mod backoff;
pub mod config;
pub mod daemon;
pub mod health;
pub mod http;
pub mod logging;
#[cfg(feature = "matrix")]
pub mod matrix_registration;
pub mod metrics;
pub mod networks;
pub mod protocols;
pub mod reload;
pub mod router;
pub mod store;
pub mod supervisor;

pub use daemon::{Daemon, DaemonError, DaemonOptions};

/// jemalloc, for everything the daemon allocates (SQLite keeps the system's malloc):
/// glibc's malloc spends much of its time consolidating fastbins and in frees across
/// threads, which is most of what the relay does (docs/benchmarks.md has the figures).
/// Declared in the library so that tests and benchmarks run the allocator the daemon
/// ships with.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
