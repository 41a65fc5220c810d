//! A server that misbehaves: events whose post cannot be read (not JSON, nulls where
//! a post has values, no post at all) and a clock that ran ahead. Nothing it sends is
//! lost unseen: each unreadable event is counted, logged and fetched over REST, and a
//! post dated years ahead does not stop later catch-ups.
//!
//! This binary installs a process-wide metrics recorder and log subscriber, which is
//! why these tests live apart from the others.

mod common;

use common::{Bridge, config, server};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use switchboard_testkit::mattermost::Post;

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The metrics and the log of this process (installed once).
fn observe() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .init();
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("no other recorder in this test binary")
    })
}

fn log() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// The value of the unreadable-posts counter of a network for this source (0 when
/// never counted).
fn unreadable(network: &str, source: &str) -> u64 {
    let needle = format!(
        "switchboard_mattermost_unreadable_posts_total{{network=\"{network}\",source=\"{source}\"}} "
    );
    observe()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&needle)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The `posted` event the server would send for `post`, as a JSON string changed by
/// `mangle`.
fn posted_with(post: &Post, mangle: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let Value::Object(mut fields) = serde_json::to_value(post).unwrap() else {
        unreachable!("a post is an object")
    };
    mangle(&mut fields);
    json!({ "channel_name": "town-square", "post": Value::Object(fields).to_string(), "sender_name": "@bob" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_posted_events_are_counted_logged_and_fetched_over_rest() {
    observe();
    let s = server().await;
    const NETWORK: &str = "mm-posted";
    let mut bridge =
        Bridge::on_network(NETWORK, config(&s.mm.url(), &s.bot_token), &["town-square"]);
    bridge.start().await;
    let counted_before = unreadable(NETWORK, "websocket");

    type Mangle = Box<dyn FnOnce(&Post) -> Value>;
    let null = |field: &'static str| -> Mangle {
        Box::new(move |post| {
            posted_with(post, |fields| {
                drop(fields.insert(field.into(), Value::Null))
            })
        })
    };
    let cases: Vec<(&str, Mangle, bool)> = vec![
        ("message null", null("message"), true),
        ("user_id null", null("user_id"), true),
        ("create_at null", null("create_at"), true),
        (
            "id and channel_id null",
            Box::new(|post| {
                posted_with(post, |fields| {
                    fields.insert("id".into(), Value::Null);
                    fields.insert("channel_id".into(), Value::Null);
                })
            }),
            true,
        ),
        (
            "not json",
            Box::new(|_| json!({ "post": "{not json" })),
            true,
        ),
        (
            "post an object of the wrong shape",
            Box::new(|_| json!({ "post": [1, 2] })),
            true,
        ),
        (
            "no post at all",
            Box::new(|_| json!({ "channel_name": "town-square" })),
            true,
        ),
        (
            "props, root_id and type null",
            Box::new(|post| {
                posted_with(post, |fields| {
                    for field in ["props", "root_id", "type"] {
                        fields.insert(field.into(), Value::Null);
                    }
                })
            }),
            false,
        ),
    ];
    let mut expected_unreadable = 0;
    for (text, mangle, is_unreadable) in cases {
        let post = s.mm.post_quietly(&s.bob, &s.town, text);
        s.mm.send_raw_event(&s.town, "posted", mangle(&post));
        let got = bridge.distinct(1, text).await;
        assert_eq!(got[0].content.to_plain(), text);
        assert_eq!(
            got[0].native_id.as_ref().map(|id| id.as_str()),
            Some(post.id.as_str())
        );
        expected_unreadable += u64::from(is_unreadable);
    }
    assert_eq!(
        unreadable(NETWORK, "websocket") - counted_before,
        expected_unreadable
    );
    let log = log();
    assert!(log.contains("cannot be read"), "{log}");
    assert!(log.contains("fetching the post over REST"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_edit_and_delete_events_are_recovered_too() {
    observe();
    let s = server().await;
    const NETWORK: &str = "mm-edits";
    let mut bridge =
        Bridge::on_network(NETWORK, config(&s.mm.url(), &s.bot_token), &["town-square"]);
    bridge.start().await;
    let edited = s.mm.post_as(&s.bob, &s.town, "to be edited", None);
    let deleted = s.mm.post_as(&s.bob, &s.town, "to be deleted", None);
    bridge.distinct(2, "the posts").await;
    let counted_before = unreadable(NETWORK, "websocket");

    // An edit whose post has no message: fetched by id.
    let after_edit = s.mm.edit_quietly(&edited.id, "edited");
    let event = posted_with(&after_edit, |fields| {
        drop(fields.insert("message".into(), Value::Null))
    });
    s.mm.send_raw_event(&s.town, "post_edited", event);
    let got = bridge.distinct(1, "the edit").await;
    assert!(
        matches!(&got[0].kind, switchboard_sdk::EventKind::Edit { target } if target.as_str() == edited.id),
        "{got:?}"
    );
    assert_eq!(got[0].content.to_plain(), "edited");

    // A deletion whose post is not JSON: a deleted post is not served by id, so a
    // catch-up finds it.
    s.mm.delete_quietly(&deleted.id);
    s.mm.send_raw_event(&s.town, "post_deleted", json!({ "post": "{not json" }));
    let got = bridge.distinct(1, "the delete").await;
    assert!(
        matches!(&got[0].kind, switchboard_sdk::EventKind::Delete { target } if target.as_str() == deleted.id),
        "{got:?}"
    );
    assert_eq!(unreadable(NETWORK, "websocket") - counted_before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_dated_ten_years_ahead_does_not_stop_later_catch_ups() {
    observe();
    let s = server().await;
    let mut bridge = Bridge::new(config(&s.mm.url(), &s.bot_token), &["town-square"]);
    bridge.start().await;

    // The server's clock runs ten years ahead for one post, then is corrected.
    s.mm.set_clock_skew(10 * 365 * 24 * 3600 * 1000);
    s.mm.post_as(&s.bob, &s.town, "from the future", None);
    assert_eq!(
        bridge.distinct(1, "the future post").await[0]
            .content
            .to_plain(),
        "from the future"
    );
    s.mm.set_clock_skew(0);
    s.mm.post_as(&s.bob, &s.town, "back to the present", None);
    bridge.distinct(1, "the present post").await;

    // The websocket drops; posts made meanwhile come by catch-up.
    s.mm.drop_websockets();
    assert!(bridge.ended().await.is_err());
    for i in 0..3 {
        s.mm.post_as(&s.bob, &s.town, &format!("missed {i}"), None);
    }
    bridge.start().await;
    let texts: Vec<String> = bridge
        .distinct(3, "the posts made during the drop")
        .await
        .iter()
        .map(|event| event.content.to_plain())
        .collect();
    assert_eq!(texts, ["missed 0", "missed 1", "missed 2"]);
    let log = log();
    assert!(log.contains("dated ahead of this machine's clock"), "{log}");
    // Catch-up lines name the channel, not only its id.
    assert!(
        log.lines()
            .any(|line| line.contains("Mattermost: catching up")
                && line.contains("channel=\"Town Square (town-square)\"")),
        "{log}"
    );
}
