//! The Switchboard daemon as a library: config, routing, durable delivery, the store,
//! supervision of network adapters, and the HTTP surface. `main.rs` is a thin CLI.

pub mod backoff;
pub mod config;
pub mod daemon;
pub mod health;
pub mod http;
#[cfg(feature = "matrix")]
pub mod matrix_registration;
pub mod metrics;
pub mod networks;
pub mod router;
pub mod store;
pub mod supervisor;

pub use daemon::{Daemon, DaemonError, DaemonOptions};
