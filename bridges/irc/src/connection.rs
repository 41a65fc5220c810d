//! The transport: TCP or TLS (rustls, verified unless explicitly told otherwise),
//! line framing with a length limit, the writer task that paces lines with a token
//! bucket, and how a connection ends (after which nothing more is written).

use crate::config::{FloodConfig, IrcConfig, parse_server_address};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use switchboard_sdk::AdapterError;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, FramedRead};
use tokio_util::sync::CancellationToken;

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest line we accept from a server (IRCv3 tags may add 8 KiB to the 512).
pub const MAX_INBOUND_LINE: usize = 16 * 1024;

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

/// What the server sent, one line at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum InboundLine {
    /// One line without its CRLF. Invalid UTF-8 (old clients in latin-1) is replaced
    /// rather than refused.
    Line(String),
    /// A line longer than `MAX_INBOUND_LINE` began; it is skipped up to its end
    /// without being kept in memory.
    TooLong,
}

/// Splits the byte stream into lines for `FramedRead`, which keeps partial lines
/// between reads (so reading is cancel-safe in `select!`) and holds at most
/// `max_len` bytes of one line: past that the line is discarded as it arrives.
#[derive(Debug)]
pub struct LineCodec {
    max_len: usize,
    /// Bytes of the buffer already searched for a newline.
    searched: usize,
    /// Inside an over-long line: dropping bytes until its newline.
    discarding: bool,
}

impl LineCodec {
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            searched: 0,
            discarding: false,
        }
    }
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new(MAX_INBOUND_LINE)
    }
}

impl Decoder for LineCodec {
    type Item = InboundLine;
    type Error = std::io::Error;

    fn decode(&mut self, buffer: &mut BytesMut) -> std::io::Result<Option<InboundLine>> {
        let newline = buffer[self.searched..]
            .iter()
            .position(|byte| *byte == b'\n')
            .map(|offset| self.searched + offset);
        match newline {
            Some(end) if self.discarding => {
                buffer.advance(end + 1);
                self.searched = 0;
                self.discarding = false;
                // The over-long line was reported when it began; go on with the next.
                self.decode(buffer)
            }
            None if self.discarding => {
                buffer.clear();
                self.searched = 0;
                Ok(None)
            }
            Some(end) if end - usize::from(end > 0 && buffer[end - 1] == b'\r') > self.max_len => {
                buffer.advance(end + 1);
                self.searched = 0;
                Ok(Some(InboundLine::TooLong))
            }
            Some(end) => {
                let line = buffer.split_to(end + 1);
                self.searched = 0;
                Ok(Some(InboundLine::Line(to_text(&line))))
            }
            // `max_len` bytes and a CR may still be a line of the right length.
            None if buffer.len() > self.max_len + 1 => {
                buffer.clear();
                self.searched = 0;
                self.discarding = true;
                Ok(Some(InboundLine::TooLong))
            }
            None => {
                self.searched = buffer.len();
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buffer: &mut BytesMut) -> std::io::Result<Option<InboundLine>> {
        if let Some(line) = self.decode(buffer)? {
            return Ok(Some(line));
        }
        self.searched = 0;
        if self.discarding || buffer.is_empty() {
            buffer.clear();
            self.discarding = false;
            return Ok(None);
        }
        // A last line without its newline.
        let line = buffer.split();
        Ok(Some(InboundLine::Line(to_text(&line))))
    }
}

fn to_text(line: &[u8]) -> String {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    String::from_utf8_lossy(&line[..end]).into_owned()
}

/// The reading half, framed into lines.
pub type Lines = FramedRead<Reader, LineCodec>;

pub fn lines(reader: Reader) -> Lines {
    FramedRead::new(reader, LineCodec::default())
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

    fn refuse(self, reason: &str) {
        if let Some(written) = self.written {
            let _ = written.send(Err(reason.to_owned()));
        }
    }
}

/// How one connection ends, shared by its reader, its writer and `send`. Once it is
/// `dead` (the server said ERROR, closed, stopped answering, or a write failed)
/// nothing more is written to the socket, not even QUIT; when we `quit` by choice
/// only the QUIT line is still written. Either way every line not yet written is
/// answered with an error, so the message stays queued for the next connection.
#[derive(Clone, Default)]
pub struct Ending {
    dead: CancellationToken,
    quitting: CancellationToken,
    state: Arc<Mutex<EndingState>>,
}

#[derive(Default)]
struct EndingState {
    reason: Option<String>,
    quit_line: Option<String>,
}

impl Ending {
    fn lock(&self) -> std::sync::MutexGuard<'_, EndingState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection cannot be used any more; the first reason given is kept.
    pub fn declare_dead(&self, reason: impl Into<String>) {
        self.lock().reason.get_or_insert_with(|| reason.into());
        self.dead.cancel();
    }

    /// We leave: `quit_line` is the last line written.
    pub fn quit(&self, quit_line: impl Into<String>) {
        {
            let mut state = self.lock();
            state
                .reason
                .get_or_insert_with(|| "the bridge is stopping".into());
            state.quit_line = Some(quit_line.into());
        }
        self.quitting.cancel();
    }

    pub fn has_ended(&self) -> bool {
        self.dead.is_cancelled() || self.quitting.is_cancelled()
    }

    pub fn is_dead(&self) -> bool {
        self.dead.is_cancelled()
    }

    /// Why the connection ended (a fixed text while it has not).
    pub fn reason(&self) -> String {
        self.lock()
            .reason
            .clone()
            .unwrap_or_else(|| "the IRC connection closed".into())
    }

    /// Resolves once the connection is dead.
    pub async fn died(&self) {
        self.dead.cancelled().await
    }

    async fn ended(&self) {
        tokio::select! {
            _ = self.dead.cancelled() => {}
            _ = self.quitting.cancelled() => {}
        }
    }
}

/// Writes lines in order until the connection ends. `paced` lines wait for a token
/// (flood control); `urgent` lines (PONG, registration) go first and are not paced.
/// When `ending` says the connection is over, a line waiting for its token is not
/// written, and every line still queued (or queued later) is answered with the
/// reason; a write failure ends the connection for the reader too.
pub async fn write_loop(
    mut writer: Writer,
    mut urgent: mpsc::UnboundedReceiver<Outgoing>,
    mut paced: mpsc::UnboundedReceiver<Outgoing>,
    flood: FloodConfig,
    ending: Ending,
) {
    let mut bucket = TokenBucket::new(&flood);
    // Every branch below is cancel-safe: `recv` loses nothing when another branch
    // wins, and an abandoned write only happens on a connection already dead.
    loop {
        let (item, needs_token) = tokio::select! {
            biased;
            _ = ending.ended() => break,
            item = urgent.recv() => match item { Some(item) => (item, false), None => break },
            item = paced.recv() => match item { Some(item) => (item, true), None => break },
        };
        if needs_token {
            // Wait for a token, still answering urgent lines meanwhile.
            let mut ended = false;
            loop {
                let ready_at = bucket.ready_at();
                if ready_at <= Instant::now() {
                    break;
                }
                tokio::select! {
                    biased;
                    _ = ending.ended() => {
                        ended = true;
                        break;
                    }
                    Some(urgent_item) = urgent.recv() => {
                        write_one(&mut writer, urgent_item, &ending).await;
                    }
                    _ = tokio::time::sleep_until(ready_at) => {}
                }
            }
            if ended {
                item.refuse(&ending.reason());
                break;
            }
            bucket.take();
        }
        write_one(&mut writer, item, &ending).await;
    }
    if !ending.is_dead() {
        let quit_line = ending.lock().quit_line.take();
        if let Some(line) = quit_line {
            write_one(&mut writer, Outgoing::fire_and_forget(line), &ending).await;
        }
    }
    // Nothing more is written: close the queues and answer what is left in them.
    urgent.close();
    paced.close();
    let reason = ending.reason();
    while let Some(item) = urgent.recv().await {
        item.refuse(&reason);
    }
    while let Some(item) = paced.recv().await {
        item.refuse(&reason);
    }
    if !ending.is_dead() {
        let _ = writer.shutdown().await;
    }
}

/// Writes one line unless the connection is dead (checked again right before, since
/// the reader may have learnt it meanwhile), and tells the line's sender.
async fn write_one(writer: &mut Writer, item: Outgoing, ending: &Ending) {
    if ending.is_dead() {
        item.refuse(&ending.reason());
        return;
    }
    let mut bytes = item.line.into_bytes();
    bytes.extend_from_slice(b"\r\n");
    let write = async {
        writer.write_all(&bytes).await?;
        writer.flush().await
    };
    let result = tokio::select! {
        biased;
        // A write stuck on a dead peer is abandoned: nothing more goes to it anyway.
        _ = ending.died() => Err(ending.reason()),
        outcome = write => outcome.map_err(|error| {
            let reason = format!("write failed: {error}");
            ending.declare_dead(reason.clone());
            reason
        }),
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
    use futures::StreamExt;

    #[tokio::test]
    async fn a_huge_line_is_skipped_without_being_kept_and_the_next_line_arrives() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let sending = tokio::spawn(async move {
            server.write_all(b"PING :before\r\n").await.unwrap();
            let chunk = vec![b'x'; 1024 * 1024];
            for _ in 0..24 {
                server.write_all(&chunk).await.unwrap();
            }
            server
                .write_all(b"\r\n:p!u@h PRIVMSG #x :after\r\nlast without newline")
                .await
                .unwrap();
        });
        let mut lines = FramedRead::new(client, LineCodec::default());
        let mut got = Vec::new();
        let mut largest_buffer = 0;
        while let Some(line) = lines.next().await {
            largest_buffer = largest_buffer.max(lines.read_buffer().capacity());
            got.push(line.unwrap());
        }
        sending.await.unwrap();
        assert_eq!(
            got,
            vec![
                InboundLine::Line("PING :before".into()),
                InboundLine::TooLong,
                InboundLine::Line(":p!u@h PRIVMSG #x :after".into()),
                InboundLine::Line("last without newline".into()),
            ]
        );
        assert!(
            largest_buffer <= 4 * MAX_INBOUND_LINE,
            "the 24 MiB line made the read buffer {largest_buffer} bytes"
        );
    }

    #[test]
    fn lines_up_to_the_limit_pass_and_latin1_is_replaced() {
        let mut codec = LineCodec::new(8);
        let mut buffer = BytesMut::from(&b"12345678\r\n123456789\nab\xe9c\n"[..]);
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            Some(InboundLine::Line("12345678".into()))
        );
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            Some(InboundLine::TooLong)
        );
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            Some(InboundLine::Line("ab\u{FFFD}c".into()))
        );
        assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_waiting_for_its_token_is_not_written_once_the_connection_died() {
        let (client, mut server) = tokio::io::duplex(4096);
        let (urgent_tx, urgent_rx) = mpsc::unbounded_channel();
        let (paced_tx, paced_rx) = mpsc::unbounded_channel();
        let ending = Ending::default();
        let writer = tokio::spawn(write_loop(
            Box::new(client),
            urgent_rx,
            paced_rx,
            FloodConfig {
                burst: 1,
                interval_ms: 10_000,
            },
            ending.clone(),
        ));
        let mut receipts = Vec::new();
        for text in ["PRIVMSG #a :one", "PRIVMSG #a :two"] {
            let (written, receipt) = oneshot::channel();
            paced_tx
                .send(Outgoing {
                    line: text.into(),
                    written: Some(written),
                })
                .unwrap();
            receipts.push(receipt);
        }
        let second = receipts.pop().unwrap();
        assert_eq!(receipts.pop().unwrap().await.unwrap(), Ok(()));
        // The second waits for its token when the reader learns the server is gone.
        ending.declare_dead("server error: Server going down");
        assert_eq!(
            second.await.unwrap(),
            Err("server error: Server going down".to_owned())
        );
        // Lines queued afterwards (urgent ones too, QUIT included) are refused.
        let (written, late) = oneshot::channel();
        let _ = urgent_tx.send(Outgoing {
            line: "QUIT :bye".into(),
            written: Some(written),
        });
        assert!(late.await.map_or(true, |result| result.is_err()));
        writer.await.unwrap();
        drop((urgent_tx, paced_tx));
        let mut wire = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut server, &mut wire)
            .await
            .unwrap();
        assert_eq!(wire, "PRIVMSG #a :one\r\n");
    }

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
