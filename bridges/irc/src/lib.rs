//! The IRC adapter (being written).

pub mod config;
pub use config::IrcConfig;
