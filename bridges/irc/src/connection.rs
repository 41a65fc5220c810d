//! The transport: TCP or TLS (rustls, verified unless explicitly told otherwise),
//! line reading, and the writer task that paces lines with a token bucket.

use crate::config::{FloodConfig, IrcConfig, parse_server_address};
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::AdapterError;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest line we accept from a server (IRCv3 tags may add 8 KiB to the 512).
const MAX_INBOUND_LINE: usize = 16 * 1024;

pub async fn connect(config: &IrcConfig) -> Result<(Reader, Writer), AdapterError> {
    let (host, port) = parse_server_address(&config.server).map_err(AdapterError::Config)?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| AdapterError::Connection(format!("connecting to {host}:{port} timed out")))?
        .map_err(|error| {
            AdapterError::Connection(format!("cannot connect to {host}:{port}: {error}"))
        })?;
    let _ = tcp.set_nodelay(true);
    if !config.tls {
        let (read, write) = tokio::io::split(tcp);
        return Ok((Box::new(read), Box::new(write)));
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(
        switchboard_sdk::tls::client_config("IRC", config.accept_invalid_certs)
            .map_err(AdapterError::Config)?,
    ));
    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|error| {
        AdapterError::Config(format!("invalid TLS server name {host:?}: {error}"))
    })?;
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| {
            AdapterError::Connection(format!("TLS handshake with {host}:{port} timed out"))
        })?
        .map_err(|error| {
            AdapterError::Connection(format!("TLS handshake with {host}:{port} failed: {error}"))
        })?;
    let (read, write) = tokio::io::split(tls);
    Ok((Box::new(read), Box::new(write)))
}

/// Reads one line (without CRLF); `None` at end of stream. Invalid UTF-8 (old
/// clients in latin-1) is replaced rather than refused.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    buffer.clear();
    loop {
        let read = reader.read_until(b'\n', buffer).await?;
        if read == 0 {
            return Ok(None);
        }
        if buffer.ends_with(b"\n") || buffer.len() > MAX_INBOUND_LINE {
            break;
        }
    }
    while buffer.ends_with(b"\n") || buffer.ends_with(b"\r") {
        buffer.pop();
    }
    Ok(Some(String::from_utf8_lossy(buffer).into_owned()))
}

/// One line to write; `written` (if any) is told when it reached the socket.
pub struct Outgoing {
    pub line: String,
    pub written: Option<oneshot::Sender<Result<(), String>>>,
}

impl Outgoing {
    pub fn fire_and_forget(line: impl Into<String>) -> Self {
        Self {
            line: line.into(),
            written: None,
        }
    }
}

/// Writes lines in order. `paced` lines wait for a token (flood control); `urgent`
/// lines (PONG, QUIT, registration) go first and are not paced. Ends when both
/// queues close or the socket fails; later lines are told the error.
pub async fn write_loop(
    mut writer: Writer,
    mut urgent: mpsc::UnboundedReceiver<Outgoing>,
    mut paced: mpsc::UnboundedReceiver<Outgoing>,
    flood: FloodConfig,
) {
    let mut bucket = TokenBucket::new(&flood);
    let mut failure: Option<String> = None;
    loop {
        let (item, needs_token) = tokio::select! {
            biased;
            item = urgent.recv() => match item { Some(item) => (item, false), None => break },
            item = paced.recv() => match item { Some(item) => (item, true), None => break },
        };
        if needs_token && failure.is_none() {
            // Wait for a token, still answering urgent lines meanwhile.
            loop {
                let ready_at = bucket.ready_at();
                if ready_at <= Instant::now() {
                    break;
                }
                tokio::select! {
                    biased;
                    Some(urgent_item) = urgent.recv() => {
                        write_one(&mut writer, urgent_item, &mut failure).await;
                    }
                    _ = tokio::time::sleep_until(ready_at) => {}
                }
            }
            bucket.take();
        }
        write_one(&mut writer, item, &mut failure).await;
    }
    let _ = writer.shutdown().await;
}

async fn write_one(writer: &mut Writer, item: Outgoing, failure: &mut Option<String>) {
    let result = match failure {
        Some(error) => Err(error.clone()),
        None => {
            let mut bytes = item.line.into_bytes();
            bytes.extend_from_slice(b"\r\n");
            let outcome = async {
                writer.write_all(&bytes).await?;
                writer.flush().await
            }
            .await;
            outcome.map_err(|error| {
                let message = format!("write failed: {error}");
                *failure = Some(message.clone());
                message
            })
        }
    };
    if let Some(written) = item.written {
        let _ = written.send(result);
    }
}

/// `burst` lines at once, then one every `interval`.
struct TokenBucket {
    capacity: f64,
    tokens: f64,
    interval: Duration,
    updated: Instant,
}

impl TokenBucket {
    fn new(flood: &FloodConfig) -> Self {
        Self {
            capacity: f64::from(flood.burst.max(1)),
            tokens: f64::from(flood.burst.max(1)),
            interval: Duration::from_millis(flood.interval_ms),
            updated: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        if self.interval.is_zero() {
            self.tokens = self.capacity;
        } else {
            let gained =
                now.duration_since(self.updated).as_secs_f64() / self.interval.as_secs_f64();
            self.tokens = (self.tokens + gained).min(self.capacity);
        }
        self.updated = now;
    }

    fn ready_at(&mut self) -> Instant {
        self.refill();
        if self.tokens >= 1.0 {
            Instant::now()
        } else {
            Instant::now() + self.interval.mul_f64(1.0 - self.tokens)
        }
    }

    fn take(&mut self) {
        self.refill();
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_paces() {
        let mut bucket = TokenBucket::new(&FloodConfig {
            burst: 3,
            interval_ms: 1000,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(bucket.ready_at() <= Instant::now());
            bucket.take();
        }
        let next = bucket.ready_at();
        assert!(
            next >= start + Duration::from_millis(999),
            "{:?}",
            next - start
        );
        tokio::time::sleep_until(next).await;
        assert!(bucket.ready_at() <= Instant::now());
    }
}
