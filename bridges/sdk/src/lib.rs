//! The contract between the Switchboard core and its protocol adapters.
//!
//! Adapters depend on this crate only. It owns the typed ids, the normalised event
//! model, the small rich-text model, the `Adapter` trait with its declared
//! capabilities, the `NetworkConnector` through which each protocol registers with
//! the daemon, the errors an adapter may return, text helpers every adapter needs
//! (byte-budget splitting), and `testing`: a fake adapter and a conformance suite.

pub mod adapter;
pub mod connector;
pub mod context;
pub mod emoji;
pub mod error;
pub mod event;
pub mod final_text;
pub mod ids;
pub mod rich;
pub mod testing;
pub mod text;
pub mod tls;

pub use adapter::{
    Adapter, AdapterContext, AdapterState, Capabilities, ConnectionState, CurrentRun,
    HealthReporter, InboundSink, RoomReport, StateHandle, SubmitOutcome, WebhookRequest,
    WebhookResponse,
};
pub use connector::{NetworkConnector, NetworkSection, Protocol, RoomProblem, SectionError};
pub use context::{RoomChanges, RoomSet, RoomSetUpdater, Rooms};
pub use error::{AdapterError, ConfigProblem, SendError, SubmitError};
pub use event::{
    Attachment, EventKind, Inbound, MessageStyle, Origin, Outbound, OutboundKind, SendReceipt,
    Sender,
};
pub use final_text::{FinalText, MarkupInText, PlainText, TextFormat, TextRules};
pub use ids::{NativeMsgId, NetworkId, RoomId, RoomKey};
pub use rich::{Color, RichText, Span, Style};
