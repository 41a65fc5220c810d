//! The Switchboard daemon as a library: config, router, store, HTTP and supervisor.

pub mod config;
