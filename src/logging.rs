//! The daemon's log output: what is logged by default, when it is coloured, and the
//! escaping that keeps every logged value on its own line.
//!
//! Much of what is logged came from outside (channel names, URL paths, server error
//! text, nicknames), so every field value and every message is escaped here, once,
//! in the field formatter: a newline, a carriage return, ESC or any other control
//! character is written as an escape sequence and can neither forge a log line nor
//! drive the reader's terminal.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// What is logged when `RUST_LOG` is unset: INFO, except matrix-sdk and ruma, which
/// log every sync (with its whole filter) at INFO: about 4 MB a day for an idle
/// bridge. Targets match by prefix, so `matrix_sdk` covers `matrix_sdk_base`,
/// `matrix_sdk_crypto`, `matrix_sdk_sqlite` and the rest.
pub const DEFAULT_FILTER: &str = "info,matrix_sdk=warn,ruma=warn";

/// `RUST_LOG` if set (and valid), else `DEFAULT_FILTER`.
pub fn filter_from_env() -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => match EnvFilter::try_new(&directives) {
            Ok(filter) => filter,
            Err(error) => {
                eprintln!(
                    "switchboard: RUST_LOG is not a valid filter ({error}); using {DEFAULT_FILTER:?}"
                );
                EnvFilter::new(DEFAULT_FILTER)
            }
        },
        _ => EnvFilter::new(DEFAULT_FILTER),
    }
}

/// Colour only for a person at a terminal: never into journald or a file, and never
/// when `NO_COLOR` is set to anything (<https://no-color.org>).
pub fn colour_wanted(stream_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stream_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// The subscriber the daemon logs through, writing to `writer`.
pub fn subscriber<W>(filter: EnvFilter, colour: bool, writer: W) -> impl tracing::Subscriber
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .fmt_fields(EscapingFields)
        .with_writer(writer)
        .finish()
}

/// Installs the daemon's subscriber: stderr, `filter_from_env`, colour as
/// `colour_wanted` says.
pub fn init() {
    let colour = colour_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let subscriber = subscriber(filter_from_env(), colour, std::io::stderr);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("switchboard: a log subscriber was already installed");
    }
}

/// Writes `text` with every character that could break a line or control a terminal
/// escaped: C0 and C1 controls and DEL, the Unicode line and paragraph separators,
/// and the bidirectional overrides that can make a line read differently.
pub fn write_escaped(out: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') =>
            {
                write!(out, "\\u{{{:x}}}", c as u32)?
            }
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// `text` as `write_escaped` writes it.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = write_escaped(&mut out, text);
    out
}

/// A value that is displayed escaped.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0)
    }
}

/// The field formatter: tracing-subscriber's default layout (`name=value`), with
/// every value escaped first.
pub struct EscapingFields;

impl<'a> MakeVisitor<Writer<'a>> for EscapingFields {
    type Visitor = EscapingVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        EscapingVisitor {
            inner: DefaultVisitor::new(target, true),
            scratch: String::new(),
        }
    }
}

pub struct EscapingVisitor<'a> {
    inner: DefaultVisitor<'a>,
    scratch: String,
}

impl EscapingVisitor<'_> {
    /// Hands `inner` the escaped rendering of `value` (as `{:?}` would render it).
    fn record_rendered(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.scratch.clear();
        let _ = self.scratch.write_fmt(value);
        let rendered = std::mem::take(&mut self.scratch);
        self.inner
            .record_debug(field, &format_args!("{}", Escaped(&rendered)));
        self.scratch = rendered;
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_rendered(field, format_args!("{value}"));
        } else {
            // Quoted, with Rust's escapes for quotes and backslashes, so that a value
            // cannot pass itself off as further fields.
            self.record_rendered(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(error) = source {
            let _ = write!(text, ": {error}");
            source = error.source();
        }
        self.record_rendered(field, format_args!("{text}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_rendered(field, format_args!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.inner.record_i64(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.inner.record_u64(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.inner.record_bool(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.inner.record_f64(field, value);
    }
}

impl VisitOutput<fmt::Result> for EscapingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.inner.finish()
    }
}

impl VisitFmt for EscapingVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        self.inner.writer()
    }
}

/// A writer that keeps what is logged, for tests of what the log says.
#[derive(Clone, Default)]
pub struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for CapturedLog {
    type Writer = CapturedLog;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

/// Runs `f` with the daemon's subscriber (no colour, `filter`) writing into a
/// `CapturedLog`, and returns what was logged.
pub fn capture(filter: &str, f: impl FnOnce()) -> String {
    let log = CapturedLog::default();
    let subscriber = subscriber(EnvFilter::new(filter), false, log.clone());
    tracing::subscriber::with_default(subscriber, f);
    log.text()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything in a log line that must not be there raw.
    fn raw_controls(text: &str) -> Vec<char> {
        // Each event ends with one newline; nothing else may break the line.
        text.trim_end_matches('\n')
            .chars()
            .filter(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202E}'))
            .collect()
    }

    #[test]
    fn values_from_outside_cannot_forge_lines_or_drive_the_terminal() {
        let channel_name = "town\nINFO switchboard: forged line\u{1b}[2J\r\u{85}\u{2028}\u{202E}";
        let path = "/webhooks/x\n\u{1b}]0;title\u{7}";
        let error = std::io::Error::other("bad\nthing\u{1b}[31m");
        let log = capture("info", || {
            tracing::info!(
                channel = %channel_name,
                path,
                debugged = ?channel_name,
                error = &error as &(dyn std::error::Error + 'static),
                "webhook for {channel_name}"
            );
        });
        assert_eq!(log.matches('\n').count(), 1, "one line: {log:?}");
        assert_eq!(raw_controls(&log), Vec::<char>::new(), "{log:?}");
        assert!(
            log.contains("town\\nINFO switchboard: forged line\\u{1b}[2J\\r"),
            "{log:?}"
        );
        assert!(
            log.contains("/webhooks/x\\n\\u{1b}]0;title\\u{7}"),
            "{log:?}"
        );
    }

    #[test]
    fn span_fields_are_escaped_too() {
        let log = capture("info", || {
            let span = tracing::info_span!("room", name = %"a\nb");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(log.matches('\n').count(), 1, "{log:?}");
        assert!(log.contains("a\\nb"), "{log:?}");
    }

    #[test]
    fn no_colour_unless_a_terminal_without_no_color() {
        assert!(!colour_wanted(false, None));
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some("".as_ref())));
        assert!(!colour_wanted(true, Some("1".as_ref())));
        // And the subscriber built without colour writes none.
        let log = capture("info", || tracing::warn!(network = "irc", "plain"));
        assert!(!log.contains('\u{1b}'), "{log:?}");
    }

    #[test]
    fn matrix_sdk_chatter_is_off_by_default() {
        let log = capture(DEFAULT_FILTER, || {
            tracing::info!(target: "matrix_sdk::sliding_sync", "sync filter: {{...}}");
            tracing::info!(target: "matrix_sdk_base::client", "base info");
            tracing::info!(target: "matrix_sdk_crypto::machine", "crypto info");
            tracing::info!(target: "ruma_common::api", "ruma info");
            tracing::warn!(target: "matrix_sdk::http_client", "sdk warning");
            tracing::info!(target: "switchboard::daemon", "our info");
        });
        assert!(!log.contains("sync filter"), "{log}");
        assert!(!log.contains("base info"), "{log}");
        assert!(!log.contains("crypto info"), "{log}");
        assert!(!log.contains("ruma info"), "{log}");
        assert!(log.contains("sdk warning"), "{log}");
        assert!(log.contains("our info"), "{log}");
    }
}
