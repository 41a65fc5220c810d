//! `IrcPeer`: a user on a real IRC server, as a test sees it.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc};

const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A PRIVMSG or NOTICE the peer received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub from: String,
    pub target: String,
    /// The text with formatting codes, CTCP framing included.
    pub text: String,
    pub notice: bool,
}

impl Received {
    /// The text of a CTCP ACTION, if it is one.
    pub fn action(&self) -> Option<&str> {
        self.text.strip_prefix("\x01ACTION ")?.strip_suffix('\x01')
    }
}

pub struct IrcPeer {
    pub nick: String,
    /// Shared with the reader task, which answers PINGs itself.
    writer: Arc<Mutex<OwnedWriteHalf>>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl IrcPeer {
    /// Connects, registers and joins `channels`, waiting for each join.
    pub async fn connect(port: u16, nick: &str, channels: &[&str]) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("peer {nick}: cannot connect to port {port}: {e}"));
        let (read, writer) = stream.into_split();
        let writer = Arc::new(Mutex::new(writer));
        let (tx, lines) = mpsc::unbounded_channel();
        let ponger = writer.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(read);
            let mut buffer = Vec::new();
            loop {
                buffer.clear();
                match reader.read_until(b'\n', &mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&buffer)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                if let Some(token) = line.strip_prefix("PING ") {
                    let _ = ponger
                        .lock()
                        .await
                        .write_all(format!("PONG {token}\r\n").as_bytes())
                        .await;
                    continue;
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Self {
            nick: nick.to_owned(),
            writer,
            lines,
        };
        peer.raw(&format!("NICK {nick}")).await;
        peer.raw(&format!("USER {nick} 0 * :{nick}")).await;
        let deadline = tokio::time::Instant::now() + REGISTER_TIMEOUT;
        peer.wait_line(
            deadline,
            |line| line.split_whitespace().nth(1) == Some("001"),
            "welcome (001)",
        )
        .await;
        for channel in channels {
            peer.raw(&format!("JOIN {channel}")).await;
            let joined = format!(":{nick}!");
            let channel_lower = channel.to_lowercase();
            peer.wait_line(
                deadline,
                |line| {
                    line.starts_with(&joined)
                        && line.split_whitespace().nth(1) == Some("JOIN")
                        && line.to_lowercase().trim_end().ends_with(&channel_lower)
                },
                "its JOIN",
            )
            .await;
        }
        peer
    }

    async fn wait_line(
        &mut self,
        deadline: tokio::time::Instant,
        mut done: impl FnMut(&str) -> bool,
        what: &str,
    ) {
        let mut seen = Vec::new();
        loop {
            let next = tokio::select! {
                line = self.lines.recv() => line,
                _ = tokio::time::sleep_until(deadline) => panic!("peer {}: no {what} before the deadline; saw {seen:#?}", self.nick),
            };
            let Some(line) = next else {
                panic!(
                    "peer {}: connection closed waiting for {what}; saw {seen:#?}",
                    self.nick
                );
            };
            if done(&line) {
                return;
            }
            seen.push(line);
        }
    }

    /// Waits for a raw line (any command) that `done` accepts; returns it with the
    /// lines that came before it (messages included: they are consumed).
    pub async fn expect_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&str) -> bool,
    ) -> (String, Vec<String>) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let next = tokio::time::timeout_at(deadline, self.lines.recv()).await;
            match next {
                Ok(Some(line)) if done(&line) => return (line, before),
                Ok(Some(line)) => before.push(line),
                Ok(None) => panic!(
                    "peer {}: connection closed waiting for {what}; saw {before:#?}",
                    self.nick
                ),
                Err(_) => panic!(
                    "peer {}: no {what} within {timeout:?}; saw {before:#?}",
                    self.nick
                ),
            }
        }
    }

    pub async fn raw(&mut self, line: &str) {
        self.writer
            .lock()
            .await
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("peer {}: write failed: {e}", self.nick));
    }

    pub async fn say(&mut self, channel: &str, text: &str) {
        self.raw(&format!("PRIVMSG {channel} :{text}")).await;
    }

    pub async fn action(&mut self, channel: &str, text: &str) {
        self.raw(&format!("PRIVMSG {channel} :\x01ACTION {text}\x01"))
            .await;
    }

    /// The next PRIVMSG/NOTICE, or `None` after `timeout`. Other lines are skipped.
    pub async fn next_message(&mut self, timeout: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .ok()??;
            if let Some(message) = parse_message(&line) {
                return Some(message);
            }
        }
    }

    /// Waits for a message in `channel` whose text contains `needle`.
    pub async fn expect(&mut self, channel: &str, needle: &str, timeout: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await {
                Some(message)
                    if message.target.eq_ignore_ascii_case(channel)
                        && message.text.contains(needle) =>
                {
                    return message;
                }
                Some(message) => seen.push(message),
                None => panic!(
                    "peer {}: no message containing {needle:?} in {channel} within {timeout:?}; got {seen:#?}",
                    self.nick
                ),
            }
        }
    }

    /// Collects the next `count` messages in `channel`, in order.
    pub async fn collect(
        &mut self,
        channel: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < count {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await {
                Some(message) if message.target.eq_ignore_ascii_case(channel) => got.push(message),
                Some(_) => {}
                None => panic!(
                    "peer {}: {} of {count} messages in {channel} within {timeout:?}; last: {:#?}",
                    self.nick,
                    got.len(),
                    got.iter().rev().take(3).collect::<Vec<_>>()
                ),
            }
        }
        got
    }

    /// Everything that arrives in `channel` within `window` (to prove nothing more does).
    pub async fn drain(&mut self, channel: &str, window: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + window;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await {
                Some(message) if message.target.eq_ignore_ascii_case(channel) => got.push(message),
                Some(_) => {}
                None => return got,
            }
        }
    }
}

fn parse_message(line: &str) -> Option<Received> {
    let line = match line.strip_prefix('@') {
        Some(tagged) => tagged.split_once(' ')?.1,
        None => line,
    };
    let rest = line.strip_prefix(':')?;
    let (source, rest) = rest.split_once(' ')?;
    let (command, rest) = rest.split_once(' ')?;
    let notice = match command {
        "PRIVMSG" => false,
        "NOTICE" => true,
        _ => return None,
    };
    let (target, text) = rest.split_once(' ')?;
    Some(Received {
        from: source.split('!').next().unwrap_or(source).to_owned(),
        target: target.to_owned(),
        text: text.strip_prefix(':').unwrap_or(text).to_owned(),
        notice,
    })
}
