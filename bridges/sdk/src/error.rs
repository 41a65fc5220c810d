//! Errors an adapter returns, each saying whether retrying can help.

use thiserror::Error;

/// Failure of one `send`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Not connected, a 5xx, a timeout: the core retries with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// The network asked us to slow down (e.g. HTTP 429 with `Retry-After`): retried
    /// with backoff, but not before `retry_after`.
    #[error("rate limited for {retry_after:?}: {reason}")]
    RateLimited {
        reason: String,
        retry_after: std::time::Duration,
    },
    /// The target refuses this message for good (no such room, too large, forbidden):
    /// the core dead-letters it with this reason.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, SendError::Permanent(_))
    }
}

/// Why an adapter's `run` ended.
#[derive(Debug, Error)]
pub enum AdapterError {
    /// Could not connect or lost the connection: restarted with backoff.
    #[error("connection: {0}")]
    Connection(String),
    /// Credentials were refused: restarted with the longest backoff, reported as failed.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why the core did not accept an inbound event.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SubmitError {
    #[error("the bridge is shutting down")]
    ShuttingDown,
    #[error("storage failed: {0}")]
    Storage(String),
}

/// One problem found while validating an adapter's own config section. `path` is
/// relative to that section (e.g. `["sasl", "password"]`); the daemon turns it into
/// `FILE:LINE:COL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: Vec<String>,
    pub message: String,
    pub hint: Option<String>,
    /// `message` says what is wrong with the value at `path` without quoting it
    /// ("is not a valid IRC nick: it contains a space"); the daemon puts the value, or
    /// where it came from when that was an environment variable, in front.
    pub about_value: bool,
}

impl ConfigProblem {
    pub fn new(path: &[&str], message: impl Into<String>) -> Self {
        Self {
            path: path.iter().map(|part| (*part).to_owned()).collect(),
            message: message.into(),
            hint: None,
            about_value: false,
        }
    }

    /// A problem with the value at `path`, told without the value itself (it may be a
    /// secret from the environment): `predicate` follows the value's description.
    pub fn value(path: &[&str], predicate: impl Into<String>) -> Self {
        Self {
            about_value: true,
            ..Self::new(path, predicate)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}
