//! The HTTP server's connections: its own accept loop (axum's `serve` has no read
//! timeouts) with a cap on concurrent connections, the header-read and idle
//! timeouts of each connection, the open-file limit the cap is sized from, and
//! graceful shutdown. Requests go to the axum router `super` builds; the body-read
//! timeout is applied where bodies are read (the webhook handler).

use crate::metrics as m;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Default for [`HttpLimits::header_read`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`HttpLimits::body_read`].
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`HttpLimits::idle`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most connections served at once when the open-file limit allows it.
pub const MAX_CONNECTIONS: usize = 256;
/// File descriptors kept out of the HTTP server's reach whatever the limit: the
/// store (database, WAL, shared memory, a reader per blocking thread), the runtime
/// (epoll, eventfds, signals), stdio, and the networks' own connections (IRC, the
/// Matrix client and its store, Mattermost's websocket and REST pool).
pub const FD_RESERVE: u64 = 128;
/// The largest request head (request line and headers) buffered; hyper's own
/// default is ~400 KiB, which a few hundred slow clients would multiply.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// What one client may take of the server. The defaults are the constants above;
/// tests shorten them.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// A connection must send a complete request head within this long of being
    /// accepted, or of sending the first byte of its next request: slow or silent
    /// clients (slow-loris) are closed after it, however often they send a byte.
    pub header_read: Duration,
    /// A request body must have arrived whole this long after the server started
    /// reading it; else the answer is 408 and the connection is closed.
    pub body_read: Duration,
    /// A keep-alive connection with no request under way is closed after this long.
    pub idle: Duration,
    /// Connections served at once; a connection beyond it is answered 503 and closed
    /// at once (counted in `switchboard_http_connections_refused_total`).
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read: HEADER_READ_TIMEOUT,
            body_read: BODY_READ_TIMEOUT,
            idle: IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

impl HttpLimits {
    /// The defaults, with the connection cap sized from this process's open-file
    /// limit (raised first to the hard limit; see [`raise_fd_limit`]).
    pub fn for_this_process() -> Self {
        let fd_limit = raise_fd_limit();
        let max_connections = connection_cap(fd_limit);
        tracing::info!(
            max_connections,
            fd_limit,
            "HTTP server: connection limit sized from the open-file limit"
        );
        Self {
            max_connections,
            ..Self::default()
        }
    }
}

/// Raises the soft open-file limit to the hard limit and returns the soft limit then
/// in force. The soft limit is often 1024 (systemd's default, kept low only for
/// programs that use `select()`, which nothing in this process does) while the hard
/// limit is far higher; every socket and file the daemon opens counts against it.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if limit.maximum.is_some_and(|hard| hard <= soft) || limit.maximum == limit.current {
        return soft;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum.unwrap_or(u64::MAX),
        Err(error) => {
            tracing::info!(%error, soft, "could not raise the open-file limit; keeping it");
            soft
        }
    }
}

/// The connection cap for a soft open-file limit of `fd_limit`: half of what is
/// left after [`FD_RESERVE`], at most [`MAX_CONNECTIONS`] and at least 4. With a
/// limit of 256 that is 64 connections, leaving 192 descriptors to the rest of the
/// daemon however many clients connect; from a limit of 640 up, the full 256.
pub fn connection_cap(fd_limit: u64) -> usize {
    let share = fd_limit.saturating_sub(FD_RESERVE) / 2;
    usize::try_from(share)
        .unwrap_or(usize::MAX)
        .clamp(4, MAX_CONNECTIONS)
}

/// Sent to a connection refused at the cap, if the socket takes it at once.
const AT_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 34\r\n\r\ntoo many connections; retry later\n";

/// How long the accept loop rests after an error that is not one connection's
/// (e.g. out of file descriptors), so that it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// Accepts and serves connections until `cancel` fires; then stops accepting,
/// closes the connections with no request under way, lets the others finish their
/// request, and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    m::http_connection_limit(limits.max_connections);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let refusals = super::Throttle::default();
    let accept_errors = super::Throttle::default();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) if is_per_connection(&error) => continue,
                Err(error) => {
                    if let Some(suppressed) = accept_errors.allow() {
                        tracing::warn!(%error, suppressed, "HTTP server: cannot accept connections");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                        () = cancel.cancelled() => break,
                    }
                }
            },
            () = cancel.cancelled() => break,
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                connections.spawn(connection(
                    stream,
                    router.clone(),
                    limits.clone(),
                    cancel.clone(),
                    slot,
                ));
            }
            Err(_) => {
                m::http_refused();
                if let Some(suppressed) = refusals.allow() {
                    tracing::warn!(
                        limit = limits.max_connections,
                        suppressed,
                        "HTTP server: connection refused, the connection limit is reached"
                    );
                }
                // Best effort and never waiting: the socket is closed right after.
                let _ = stream.try_write(AT_CAPACITY);
            }
        }
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Errors of one connection that `accept` reports (it was reset before we took it).
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    )
}

/// Serves one connection until it closes, a timeout closes it, or shutdown.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    cancel: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let _open = OpenConnection::new();
    let clock = Arc::new(Clock::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        clock: clock.clone(),
    });
    let inner = TowerToHyperService::new(router);
    let service = {
        let clock = clock.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            clock.set(Phase::Busy);
            let answer = hyper::service::Service::call(&inner, request);
            let clock = clock.clone();
            async move {
                let response = answer.await;
                clock.set(Phase::Idle {
                    since: Instant::now(),
                });
                response
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        // Our own header timer (`Clock`): hyper's would also close a keep-alive
        // connection after the header timeout, not after the idle one.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
                return;
            }
            phase = clock.expired(&limits) => {
                m::http_timed_out(phase);
                tracing::debug!(phase, "HTTP connection closed by a timeout");
                return;
            }
            () = cancel.cancelled(), if !draining => {
                if !clock.busy() {
                    return;
                }
                // Let the request under way be answered, then close.
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// Counts an open connection for as long as it lives.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        m::http_connection(true);
        Self
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        m::http_connection(false);
    }
}

/// Where a connection is in its request cycle, for its timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head, since the connection was accepted
    /// or the first byte of the head arrived.
    Head { since: Instant },
    /// A request is being read or answered; its body has a timeout of its own.
    Busy,
    /// Between requests, nothing received since `since`.
    Idle { since: Instant },
}

/// A connection's phase, shared by its socket (bytes arriving), its service
/// (requests starting and ending) and its watchdog (`expired`).
struct Clock {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Clock {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.phase() = phase;
        // A stored permit if the watchdog is not waiting: no change is missed.
        self.changed.notify_one();
    }

    fn busy(&self) -> bool {
        *self.phase() == Phase::Busy
    }

    /// Bytes arrived: an idle connection has begun its next request head.
    fn received(&self) {
        let mut phase = self.phase();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head {
                since: Instant::now(),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// Resolves when the current phase outlived its timeout: `header` or `idle`.
    /// Cancel-safe: the phase lives in the clock, not in this future.
    async fn expired(&self, limits: &HttpLimits) -> &'static str {
        loop {
            let phase = *self.phase();
            let (deadline, name) = match phase {
                Phase::Head { since } => (since + limits.header_read, "header"),
                Phase::Idle { since } => (since + limits.idle, "idle"),
                Phase::Busy => {
                    self.changed.notified().await;
                    continue;
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    if *self.phase() == phase {
                        return name;
                    }
                }
                () = self.changed.notified() => {}
            }
        }
    }
}

/// The connection's socket, telling its clock when bytes arrive.
struct Watched {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.received();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
