//! The `Adapter` trait and what the core hands an adapter when it runs it.

use crate::context::RoomSet;
use crate::error::{AdapterError, SendError, SubmitError};
use crate::event::{Inbound, Outbound, SendReceipt};
use crate::final_text::TextFormat;
use crate::ids::{NetworkId, RoomId};
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a network (or one room of it) can do; the core's delivery policy renders
/// every delivery to fit: label or per-message sender name, splitting, mention safety.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub edits: bool,
    pub deletes: bool,
    pub replies: bool,
    pub threads: bool,
    /// The network shows a different author name per message (e.g. a webhook
    /// username override), so the sender label need not go into the text.
    pub per_message_sender: bool,
    pub rich_text: bool,
    /// Files can be attached natively; otherwise the core adds them as links.
    pub attachments: bool,
    /// Longest text in bytes one native message may carry (`None`: no limit); the
    /// core splits longer text into parts with [`Capabilities::text`].
    pub max_message_bytes: Option<usize>,
    /// Most parts one relayed message may become; past it the core sends the first
    /// ones and a last part saying how many more were cut (`None`: no cap).
    pub max_parts: Option<usize>,
    /// Reactions to messages can be shown (see `OutboundKind::Reaction`).
    pub reactions: bool,
    /// How this network writes text and what in it notifies a whole room.
    pub text: TextFormat,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            edits: false,
            deletes: false,
            replies: false,
            threads: false,
            per_message_sender: false,
            rich_text: true,
            attachments: false,
            max_message_bytes: None,
            max_parts: None,
            reactions: false,
            text: TextFormat::default(),
        }
    }
}

/// What an adapter's current run has set up (a session, resolved rooms), shared
/// with `send`, which may run at any time: `None` while no run is connected.
pub struct CurrentRun<T>(std::sync::Mutex<Option<Arc<T>>>);

impl<T> Default for CurrentRun<T> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(None))
    }
}

impl<T> CurrentRun<T> {
    pub fn get(&self) -> Option<Arc<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, value: Option<Arc<T>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = value;
    }
}

/// Connection health, reported by adapters and shown on `/healthz` and in metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    Starting,
    Connected,
    Reconnecting { last_error: String },
    Failed { last_error: String },
    Stopped,
}

/// How the core took an inbound event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Durably committed with one outbox row per destination room.
    Accepted { destinations: usize },
    /// Seen before (same network, room and native id), or a copy the bridge made.
    Duplicate,
    /// Not relayed by rule (own message, ignore rule, membership not relayed, no route).
    Ignored,
}

/// Where adapters put inbound events. `submit` returns once the event and its
/// fan-out are committed to disk, so an adapter may acknowledge its source only then.
#[async_trait]
pub trait InboundHandler: Send + Sync + 'static {
    async fn submit(&self, event: Inbound) -> Result<SubmitOutcome, SubmitError>;

    /// For an event nobody is told was accepted (IRC has no acks), or whose
    /// acknowledgement is a position the adapter saves later with `AdapterState::save`
    /// (which returns only once it and everything submitted before it are on disk):
    /// returns once the event is queued in order, safe from a crash of the daemon but
    /// not yet on disk, so that a slow disk does not hold the next event back.
    async fn submit_unacknowledged(&self, event: Inbound) -> Result<SubmitOutcome, SubmitError> {
        self.submit(event).await
    }
}

pub type InboundSink = Arc<dyn InboundHandler>;

/// What became of one room of `AdapterContext::rooms`, as the adapter reports it
/// through [`HealthReporter::joined`], [`HealthReporter::join_failed`] and
/// [`HealthReporter::left`]. The core shows it per network (`/healthz`, the admin
/// API) and waits on it (a reload that adds a room rolls back if it is not joined).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomReport {
    /// The bridge is in the room now (the server confirmed it) and relays it.
    Joined,
    /// The server refused the join (invite only, banned, no such channel, forbidden):
    /// `error` says why in the server's own words, for the operator.
    JoinFailed { error: String },
    /// The bridge no longer serves the room (removed from the set, or kicked and
    /// about to rejoin): neither joined nor failed.
    Left,
}

type StateReport = Arc<dyn Fn(ConnectionState) + Send + Sync>;
type RoomReports = Arc<dyn Fn(&RoomId, RoomReport) + Send + Sync>;
type ProblemReports = Arc<dyn Fn(Option<String>) + Send + Sync>;

/// Reports connection state, and each room's membership, for one network.
///
/// Rooms: an adapter reports each room joined or refused once its server answered
/// the join, and left when the room leaves its set. Any state other than `Connected`
/// (reported by the adapter, or by the core when a run ends) makes the core count
/// every room of the network as not joined, without a `left` per room: each run (or
/// reconnection within one) reports its rooms again as it joins them, before or after
/// it reports `Connected`.
#[derive(Clone)]
pub struct HealthReporter {
    state: StateReport,
    rooms: RoomReports,
    problems: ProblemReports,
}

impl HealthReporter {
    /// A reporter of connection state that ignores room reports (see
    /// [`HealthReporter::with_rooms`]).
    pub fn new(report: impl Fn(ConnectionState) + Send + Sync + 'static) -> Self {
        Self {
            state: Arc::new(report),
            rooms: Arc::new(|_, _| {}),
            problems: Arc::new(|_| {}),
        }
    }

    /// The same reporter, with room reports going to `report`.
    pub fn with_rooms(self, report: impl Fn(&RoomId, RoomReport) + Send + Sync + 'static) -> Self {
        Self {
            rooms: Arc::new(report),
            ..self
        }
    }

    /// The same reporter, with standing problems going to `report`.
    pub fn with_problems(self, report: impl Fn(Option<String>) + Send + Sync + 'static) -> Self {
        Self {
            problems: Arc::new(report),
            ..self
        }
    }

    /// A reporter that forgets everything (for tests and tools).
    pub fn discard() -> Self {
        Self::new(|_| {})
    }

    pub fn report(&self, state: ConnectionState) {
        (self.state)(state)
    }

    /// Reports what became of `room`.
    pub fn room(&self, room: &RoomId, report: RoomReport) {
        (self.rooms)(room, report)
    }

    /// The server confirmed the bridge is in `room`.
    pub fn joined(&self, room: &RoomId) {
        self.room(room, RoomReport::Joined)
    }

    /// The server refused to let the bridge into `room`, saying `error`.
    pub fn join_failed(&self, room: &RoomId, error: impl Into<String>) {
        self.room(
            room,
            RoomReport::JoinFailed {
                error: error.into(),
            },
        )
    }

    /// The bridge no longer serves `room`.
    pub fn left(&self, room: &RoomId) {
        self.room(room, RoomReport::Left)
    }

    /// A standing problem that does not stop the network but needs a human (a
    /// permission or setting missing on the server's side), shown with the network
    /// until cleared with `None` or the network starts again. The adapter logs it
    /// itself.
    pub fn problem(&self, problem: Option<String>) {
        (self.problems)(problem)
    }
}

/// Small durable state one network keeps across restarts (catch-up cursors, sync
/// tokens), stored by the core beside the messages. Keys are the adapter's own.
#[async_trait]
pub trait AdapterState: Send + Sync + 'static {
    async fn load(&self, key: &str) -> Result<Option<String>, SubmitError>;
    /// Returns once the value is durable.
    async fn save(&self, key: &str, value: &str) -> Result<(), SubmitError>;
}

pub type StateHandle = Arc<dyn AdapterState>;

/// Everything one run of an adapter gets from the core.
#[derive(Clone)]
pub struct AdapterContext {
    pub network: NetworkId,
    /// The rooms of this network that appear in routes, in canonical form. The set
    /// may change while the adapter runs: it joins rooms added and leaves (or stops
    /// relaying) rooms removed, without reconnecting.
    pub rooms: RoomSet,
    pub inbound: InboundSink,
    /// Connection state and each room's membership.
    pub health: HealthReporter,
    /// This network's durable state.
    pub state: StateHandle,
    /// A directory of this network's own under the daemon's state dir, for adapters
    /// whose libraries keep files (e.g. a Matrix client's store). Created on demand
    /// by the adapter.
    pub data_dir: std::path::PathBuf,
}

/// The largest webhook body the daemon's server reads for an adapter that does not
/// say otherwise ([`Adapter::webhook_body_limit`]); a larger one gets 413 unread.
pub const DEFAULT_WEBHOOK_BODY_LIMIT: usize = 64 * 1024;

/// One HTTP request the daemon's server received for an adapter's webhook endpoint
/// (`POST /webhooks/NETWORK`, or any method under `/webhooks/NETWORK/...` for APIs
/// with several endpoints). The body is already bounded in size by the server.
#[derive(Clone, Debug, Default)]
pub struct WebhookRequest {
    /// `POST`, `PUT`, `GET`...; empty means `POST`.
    pub method: String,
    /// What follows `/webhooks/NETWORK`, still percent-encoded: empty or `/...`.
    pub path: String,
    /// The query string without `?` (empty when there is none).
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// The request's method; `POST` when the server left it empty.
    pub fn method(&self) -> &str {
        if self.method.is_empty() {
            "POST"
        } else {
            &self.method
        }
    }

    /// One query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The answer to a webhook request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl WebhookResponse {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }

    /// A refusal with a short reason, as JSON (`{"error": "..."}`).
    pub fn error(status: u16, reason: &str) -> Self {
        Self::json(status, serde_json::json!({ "error": reason }).to_string())
    }
}

/// One protocol adapter instance (one configured network).
///
/// The core keeps one long-lived instance per network: `run` is called again by the
/// supervisor after it returns an error or panics, while `send` may be called at any
/// time from the delivery workers (return `SendError::Transient` while disconnected).
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// Short protocol name, e.g. `irc`; used by nick templates and metrics.
    fn protocol(&self) -> &'static str;

    /// The connector of this adapter's protocol, through which the daemon writes the
    /// rooms of routes the way the adapter's events do. `None` (fakes of tests and
    /// benchmarks) keeps rooms as written. Asking the adapter, rather than the list
    /// of every protocol, keeps a program that runs the core with some adapters from
    /// linking all the others.
    fn connector(&self) -> Option<&'static dyn crate::NetworkConnector> {
        None
    }

    fn capabilities(&self) -> Capabilities;

    /// What one room of this network can do, where rooms differ (a channel where
    /// the server does not honour name overrides, an encrypted room); by default
    /// what the network can. Asked by delivery for every delivery, so it may reflect
    /// what the running connection learned.
    fn room_capabilities(&self, _room: &RoomId) -> Capabilities {
        self.capabilities()
    }

    /// Connects, joins `ctx.rooms` (and follows its changes without reconnecting),
    /// reports each room joined, refused or left through `ctx.health`, and forwards
    /// inbound events until `cancel` fires (returns `Ok`) or the connection fails
    /// (returns the error; the supervisor restarts).
    async fn run(&self, ctx: AdapterContext, cancel: CancellationToken)
    -> Result<(), AdapterError>;

    /// Sends one rendered delivery and returns the native ids it created.
    async fn send(&self, message: &Outbound) -> Result<SendReceipt, SendError>;

    /// Looks at a webhook request before its body is read (`request.body` is empty):
    /// an adapter refuses here whatever the method, path, query and headers already
    /// decide (an endpoint it does not serve, a missing or wrong token sent in a
    /// header), so that nobody unauthenticated makes the daemon read a body. `None`
    /// lets the server read the body (up to [`Adapter::webhook_body_limit`]) and call
    /// `handle_webhook`, which must still check everything itself.
    async fn check_webhook_request(
        &self,
        _ctx: &AdapterContext,
        _request: &WebhookRequest,
    ) -> Option<WebhookResponse> {
        None
    }

    /// The largest body the server reads for a webhook request to `path` (what
    /// follows `/webhooks/NETWORK`); a larger one is answered 413 without being read.
    /// Keep it as small as the protocol allows: until the body is read, whoever sent
    /// it may not be authenticated.
    fn webhook_body_limit(&self, _path: &str) -> usize {
        DEFAULT_WEBHOOK_BODY_LIMIT
    }

    /// Takes a request to this network's webhook endpoint. An adapter that receives
    /// webhooks verifies it, submits what it carries to `ctx.inbound`, and answers
    /// only after the submit returned; the default refuses with 404.
    async fn handle_webhook(
        &self,
        _ctx: &AdapterContext,
        _request: WebhookRequest,
    ) -> WebhookResponse {
        WebhookResponse::error(404, "this network takes no webhooks")
    }
}
