//! The Discord adapter against testkit's fake Discord (REST v10, gateway, webhooks):
//! connecting, receiving, sending through the channel webhook and as the bot, edits,
//! deletes, replies, threads, a dropped gateway resumed, catch-up after a restart,
//! a rate-limited channel, and the failures an operator must be told about.

use std::sync::Arc;
use std::time::Duration;
use switchboard_discord::{DiscordAdapter, DiscordConfig, NO_CONTENT_INTENT};
use switchboard_sdk::testing::{
    MemoryState, RecordingSink, message_from_alice, next_inbound, next_room_report, planned,
};
use switchboard_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterState, ConnectionState, EventKind, FinalText,
    HealthReporter, Inbound, NativeMsgId, NetworkId, Outbound, OutboundKind, RoomId, RoomReport,
    RoomSet, SendError,
};
use switchboard_testkit::discord::FakeDiscord;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "bridge.bot.token";
const AVATAR: &str = "0123456789abcdef0123456789abcdef";

struct World {
    fake: FakeDiscord,
    guild: String,
    bot: String,
    bob: String,
}

async fn world() -> World {
    let fake = FakeDiscord::start().await;
    let guild = fake.add_guild("Test Server");
    fake.add_channel(&guild, "general", None);
    fake.add_channel(&guild, "random", None);
    let bot = fake.add_bot("bridge", TOKEN);
    let bob = fake.add_user("bob", Some("Bob B"), Some(AVATAR));
    fake.add_member(&guild, &bob, None);
    World {
        fake,
        guild,
        bot,
        bob,
    }
}

fn config(fake: &FakeDiscord, extra: serde_json::Value) -> DiscordConfig {
    let mut json = serde_json::json!({
        "token": TOKEN,
        "guild": "Test Server",
        "api_url": fake.url(),
        "gateway_url": fake.gateway_url(),
    });
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        json[key] = value;
    }
    serde_json::from_value(json).unwrap()
}

/// One run of the adapter, with state the test may hand to the next run.
struct Run {
    inbound: mpsc::UnboundedReceiver<Inbound>,
    health: mpsc::UnboundedReceiver<ConnectionState>,
    rooms: mpsc::UnboundedReceiver<(RoomId, switchboard_sdk::RoomReport)>,
    problems: mpsc::UnboundedReceiver<Option<String>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), AdapterError>>,
}

fn start(adapter: &Arc<DiscordAdapter>, rooms: &[&str], state: Arc<MemoryState>) -> Run {
    let (sink, inbound) = RecordingSink::new();
    let (health_tx, health) = mpsc::unbounded_channel();
    let (rooms_tx, room_reports) = mpsc::unbounded_channel();
    let (problems_tx, problems) = mpsc::unbounded_channel();
    let ctx = AdapterContext {
        network: NetworkId::new("discord"),
        rooms: RoomSet::fixed(rooms.iter().map(|room| RoomId::new(*room))),
        inbound: sink,
        health: HealthReporter::new(move |state| {
            let _ = health_tx.send(state);
        })
        .with_rooms(move |room, report| {
            let _ = rooms_tx.send((room.clone(), report));
        })
        .with_problems(move |problem| {
            let _ = problems_tx.send(problem);
        }),
        state,
        data_dir: std::env::temp_dir(),
    };
    let cancel = CancellationToken::new();
    let task = {
        let (adapter, cancel) = (adapter.clone(), cancel.clone());
        tokio::spawn(async move { adapter.run(ctx, cancel).await })
    };
    Run {
        inbound,
        health,
        rooms: room_reports,
        problems,
        cancel,
        task,
    }
}

/// The states reported until `Connected` (panics after `WAIT`).
async fn connected(run: &mut Run) -> Vec<ConnectionState> {
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(WAIT, async {
        while let Some(state) = run.health.recv().await {
            seen.push(state.clone());
            if state == ConnectionState::Connected {
                return;
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "not connected within {WAIT:?}; reported {seen:?}"
    );
    seen
}

async fn stop(run: Run) {
    run.cancel.cancel();
    let ended = tokio::time::timeout(WAIT, run.task)
        .await
        .expect("run() did not return after cancel")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
}

fn text_of(event: &Inbound) -> String {
    event.content.to_plain()
}

async fn said(run: &mut Run, text: &str) -> Inbound {
    let what = format!("message {text:?}");
    next_inbound(&mut run.inbound, &what, WAIT, |event| {
        event.kind == EventKind::Message && text_of(event) == text
    })
    .await
}

fn edit_of(room: &str, target: &NativeMsgId, text: &str, per_message_sender: bool) -> Outbound {
    let mut message = message_from_alice(room, text);
    message.kind = OutboundKind::Edit {
        targets: vec![target.clone()],
        content: switchboard_sdk::RichText::plain(text),
    };
    message.per_message_sender = per_message_sender;
    message.parts = vec![FinalText::plain(text)];
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_both_ways_through_the_channel_webhook() {
    let w = world().await;
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    // Rooms as the core hands them: canonical (the connector's form), in order.
    let mut run = start(&adapter, &["general", "nosuch"], MemoryState::new());
    connected(&mut run).await;
    assert_eq!(
        next_room_report(&mut run.rooms, "general", WAIT).await,
        RoomReport::Joined
    );
    let missing = next_room_report(&mut run.rooms, "nosuch", WAIT).await;
    assert!(
        matches!(&missing, RoomReport::JoinFailed { error } if error.contains("unknown channel")),
        "{missing:?}"
    );

    // Inbound: the member's shown name and picture.
    let hello = w.fake.post("general", &w.bob, "hello **there**");
    let event = said(&mut run, "hello there").await;
    assert_eq!(event.native_id.as_ref().unwrap().as_str(), hello);
    assert_eq!(event.sender.display_name, "Bob B");
    assert_eq!(event.sender.id, w.bob);
    assert_eq!(
        event.sender.avatar_url.as_deref(),
        Some(format!("https://cdn.discordapp.com/avatars/{}/{AVATAR}.png", w.bob).as_str())
    );

    // Outbound through the webhook: the sender's name, nothing allowed to ping.
    assert!(
        adapter
            .room_capabilities(&RoomId::new("general"))
            .per_message_sender
    );
    let mut hi = message_from_alice("general", "hi @everyone from discord");
    hi.sender_avatar = Some("https://example.org/alice.png".into());
    let receipt = adapter.send(&planned(&*adapter, hi)).await.unwrap();
    assert_eq!(receipt.native_ids.len(), 1);
    let sent_id = receipt.native_ids[0].as_str().to_owned();
    let sent = w
        .fake
        .wait_for_message("general", WAIT, |m| m.id == sent_id)
        .await;
    assert!(
        sent.webhook_id.is_some(),
        "not sent through a webhook: {sent:?}"
    );
    assert_eq!(sent.username.as_deref(), Some("alice"));
    assert_eq!(
        sent.avatar_url.as_deref(),
        Some("https://example.org/alice.png")
    );
    assert_eq!(
        sent.allowed_mentions,
        Some(serde_json::json!({"parse": []})),
        "{sent:?}"
    );
    assert!(
        sent.content.contains("hi @\u{200B}everyone"),
        "{:?}",
        sent.content
    );
    let hooks = w.fake.webhooks("general");
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].2, "Switchboard");

    // Edit and delete go through the same webhook.
    adapter
        .send(&edit_of(
            "general",
            &receipt.native_ids[0],
            "edited text",
            true,
        ))
        .await
        .unwrap();
    w.fake
        .wait_for_message("general", WAIT, |m| m.id == sent_id && m.edited)
        .await;
    let edited = w
        .fake
        .messages("general")
        .into_iter()
        .find(|m| m.id == sent_id)
        .unwrap();
    assert_eq!(edited.content, "edited text");
    assert_eq!(
        edited.allowed_mentions,
        Some(serde_json::json!({"parse": []}))
    );
    let edit_paths: Vec<String> = w
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.path)
        .collect();
    assert!(
        edit_paths.iter().all(|path| path.contains("/webhooks/")),
        "{edit_paths:?}"
    );

    // A reply: as the bot (webhooks cannot reply), the name in the text.
    let mut reply = message_from_alice("general", "a reply");
    if let OutboundKind::Message { reply_to, .. } = &mut reply.kind {
        *reply_to = Some(NativeMsgId::new(hello.clone()));
    }
    let reply = adapter.send(&planned(&*adapter, reply)).await.unwrap();
    let reply_id = reply.native_ids[0].as_str().to_owned();
    let replied = w
        .fake
        .wait_for_message("general", WAIT, |m| m.id == reply_id)
        .await;
    assert_eq!(replied.reply_to.as_deref(), Some(hello.as_str()));
    assert_eq!(replied.author_id, w.bot);
    assert_eq!(replied.content, "alice: a reply");
    assert_eq!(
        replied.allowed_mentions,
        Some(serde_json::json!({"parse": []}))
    );

    let delete = Outbound {
        kind: OutboundKind::Delete {
            targets: receipt.native_ids.clone(),
        },
        parts: Vec::new(),
        ..message_from_alice("general", "")
    };
    adapter.send(&delete).await.unwrap();
    w.fake
        .wait_for_message("general", WAIT, |m| m.id == sent_id && m.deleted)
        .await;

    // Nothing of the bridge's own came back; a Discord reply names its target.
    let answer = w.fake.post_with(
        "general",
        &w.bob,
        "answer",
        switchboard_testkit::discord::PostOptions {
            reply_to: Some(reply_id.clone()),
            ..Default::default()
        },
    );
    let event = next_inbound(&mut run.inbound, "bob's answer", WAIT, |_| true).await;
    assert_eq!(
        text_of(&event),
        "answer",
        "the bridge's own came back: {event:?}"
    );
    assert_eq!(event.native_id.unwrap().as_str(), answer);
    assert_eq!(event.reply_to.unwrap().as_str(), reply_id);

    // Edits and deletes of Discord users.
    w.fake.edit("general", &answer, "answer, edited");
    let edit = next_inbound(&mut run.inbound, "bob's edit", WAIT, |_| true).await;
    assert_eq!(
        edit.kind,
        EventKind::Edit {
            target: NativeMsgId::new(answer.clone())
        }
    );
    assert_eq!(text_of(&edit), "answer, edited");
    w.fake.delete("general", &answer);
    let deleted = next_inbound(&mut run.inbound, "bob's delete", WAIT, |_| true).await;
    assert_eq!(
        deleted.kind,
        EventKind::Delete {
            target: NativeMsgId::new(answer.clone())
        }
    );
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_attachments_and_stickers_arrive_as_discord_shows_them() {
    let w = world().await;
    w.fake.add_member(&w.guild, &w.bob, Some("bobby"));
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let mut run = start(&adapter, &["general"], MemoryState::new());
    connected(&mut run).await;
    let root = w.fake.post("general", &w.bob, "a topic");
    let event = said(&mut run, "a topic").await;
    assert_eq!(event.sender.display_name, "bobby");
    let thread = w.fake.add_thread("general", &root, "topic thread");
    w.fake.post(&thread, &w.bob, "in the thread");
    let event = said(&mut run, "in the thread").await;
    assert_eq!(event.room.room.as_str(), "general");
    assert_eq!(event.thread.as_ref().unwrap().as_str(), root);
    assert_eq!(event.reply_to.as_ref().unwrap().as_str(), root);

    // A relayed reply in that thread goes into it.
    let mut answer = message_from_alice("general", "thread answer");
    if let OutboundKind::Message { thread, .. } = &mut answer.kind {
        *thread = Some(NativeMsgId::new(root.clone()));
    }
    let receipt = adapter.send(&planned(&*adapter, answer)).await.unwrap();
    let id = receipt.native_ids[0].as_str().to_owned();
    let posted = w.fake.wait_for_message(&thread, WAIT, |m| m.id == id).await;
    assert_eq!(posted.username.as_deref(), Some("alice"));

    w.fake.post_with(
        "general",
        &w.bob,
        "files",
        switchboard_testkit::discord::PostOptions {
            attachments: vec![switchboard_testkit::discord::Attachment {
                filename: "plan.pdf".into(),
                url: "https://cdn.discordapp.com/attachments/1/2/plan.pdf".into(),
                size: 42,
            }],
            stickers: vec!["wave".into()],
            ..Default::default()
        },
    );
    let event = said(&mut run, "files :wave:").await;
    assert_eq!(event.attachments.len(), 1);
    assert_eq!(event.attachments[0].name, "plan.pdf");
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_gateway_resumes_without_loss_or_repeat() {
    let w = world().await;
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let mut run = start(&adapter, &["general"], MemoryState::new());
    connected(&mut run).await;
    w.fake.post("general", &w.bob, "before");
    said(&mut run, "before").await;
    w.fake.drop_sockets();
    w.fake.post("general", &w.bob, "during");
    w.fake
        .wait_until("the adapter resumed", WAIT, |fake| fake.resumes() >= 1)
        .await;
    w.fake.post("general", &w.bob, "after");
    let mut texts = Vec::new();
    for _ in 0..2 {
        let event = next_inbound(
            &mut run.inbound,
            "the messages around the drop",
            WAIT,
            |_| true,
        )
        .await;
        texts.push(text_of(&event));
    }
    assert_eq!(texts, ["during", "after"]);
    assert_eq!(w.fake.identifies(), 1, "resumed, not identified again");
    // Connected again, with the room joined again. (A resume this quick shows no
    // Reconnecting: twilight reconnects inside one poll of the shard.)
    connected(&mut run).await;
    assert_eq!(
        next_room_report(&mut run.rooms, "general", WAIT).await,
        RoomReport::Joined
    );

    // A refused resume: a new session, caught up over REST, still nothing lost.
    w.fake.refuse_next_resume();
    w.fake.drop_sockets();
    w.fake.post("general", &w.bob, "while refused");
    w.fake
        .wait_until("identified again", WAIT, |fake| fake.identifies() >= 2)
        .await;
    w.fake.post("general", &w.bob, "last");
    let mut texts = Vec::new();
    for _ in 0..2 {
        let event = next_inbound(
            &mut run.inbound,
            "the messages around the refused resume",
            WAIT,
            |_| true,
        )
        .await;
        texts.push(text_of(&event));
    }
    assert_eq!(texts, ["while refused", "last"]);
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_up_after_a_restart_in_order_and_once() {
    let w = world().await;
    let state = MemoryState::new();
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let mut run = start(&adapter, &["general"], state.clone());
    connected(&mut run).await;
    w.fake.post("general", &w.bob, "one");
    said(&mut run, "one").await;
    stop(run).await;
    let general = w.fake.channel_id("general");
    let cursor = state.load(&format!("cursor:{general}")).await.unwrap();
    assert!(cursor.is_some(), "no cursor saved at stop");

    // 150 messages while the bridge is down: more than one page.
    let mut missed = Vec::new();
    for n in 0..150 {
        missed.push(w.fake.post("general", &w.bob, &format!("missed {n}")));
    }
    let mut run = start(&adapter, &["general"], state.clone());
    connected(&mut run).await;
    w.fake.post("general", &w.bob, "live");
    let mut got = Vec::new();
    loop {
        let event = next_inbound(&mut run.inbound, "caught-up messages", WAIT, |_| true).await;
        let text = text_of(&event);
        if text == "live" {
            break;
        }
        got.push(event.native_id.unwrap().as_str().to_owned());
    }
    assert_eq!(got, missed, "caught up out of order, twice or not at all");
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_up_threads_too() {
    let w = world().await;
    let state = MemoryState::new();
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let mut run = start(&adapter, &["general"], state.clone());
    connected(&mut run).await;
    let root = w.fake.post("general", &w.bob, "root");
    said(&mut run, "root").await;
    let thread = w.fake.add_thread("general", &root, "a thread");
    w.fake.post(&thread, &w.bob, "first in thread");
    said(&mut run, "first in thread").await;
    stop(run).await;

    w.fake.post(&thread, &w.bob, "missed in thread");
    w.fake.post("general", &w.bob, "missed in channel");
    let mut run = start(&adapter, &["general"], state);
    connected(&mut run).await;
    let event = said(&mut run, "missed in thread").await;
    assert_eq!(event.thread.as_ref().unwrap().as_str(), root);
    said(&mut run, "missed in channel").await;
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_channel_holds_back_only_itself() {
    let w = world().await;
    let adapter =
        DiscordAdapter::new(config(&w.fake, serde_json::json!({"webhooks": "off"}))).unwrap();
    let mut run = start(&adapter, &["general", "random"], MemoryState::new());
    connected(&mut run).await;
    w.fake.set_retry_after(1.0);
    w.fake.rate_limit("general", 3);
    let slow = {
        let adapter = adapter.clone();
        tokio::spawn(async move {
            adapter
                .send(&planned(&*adapter, message_from_alice("general", "slow")))
                .await
        })
    };
    w.fake
        .wait_until("general rate limited", WAIT, |fake| {
            fake.rate_limited_count() >= 1
        })
        .await;
    let quick = adapter
        .send(&planned(&*adapter, message_from_alice("random", "quick")))
        .await
        .expect("random is not rate limited");
    assert_eq!(quick.native_ids.len(), 1);
    assert!(
        !slow.is_finished(),
        "general should still be waiting out its limit"
    );
    let slow = tokio::time::timeout(WAIT, slow)
        .await
        .expect("general never got through")
        .unwrap();
    match slow {
        Ok(receipt) => assert_eq!(receipt.native_ids.len(), 1),
        Err(SendError::RateLimited { .. }) => {}
        Err(other) => panic!("a rate limit is not {other:?}"),
    }
    let sent = w.fake.messages("general");
    assert!(sent.iter().all(|m| m.content == "alice: slow"), "{sent:?}");
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_manage_webhooks_it_sends_as_the_bot_with_the_label() {
    let w = world().await;
    w.fake.set_manage_webhooks(false);
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let mut run = start(&adapter, &["general"], MemoryState::new());
    connected(&mut run).await;
    assert!(
        !adapter
            .room_capabilities(&RoomId::new("general"))
            .per_message_sender
    );
    let receipt = adapter
        .send(&planned(
            &*adapter,
            message_from_alice("general", "as the bot"),
        ))
        .await
        .unwrap();
    let id = receipt.native_ids[0].as_str().to_owned();
    let sent = w
        .fake
        .wait_for_message("general", WAIT, |m| m.id == id)
        .await;
    assert_eq!(sent.author_id, w.bot);
    assert_eq!(sent.content, "alice: as the bot");
    assert_eq!(
        sent.allowed_mentions,
        Some(serde_json::json!({"parse": []}))
    );
    adapter
        .send(&edit_of(
            "general",
            &receipt.native_ids[0],
            "alice: fixed",
            false,
        ))
        .await
        .unwrap();
    w.fake
        .wait_for_message("general", WAIT, |m| {
            m.id == id && m.content == "alice: fixed"
        })
        .await;
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_message_content_intent_it_connects_and_says_why_messages_are_empty() {
    let w = world().await;
    w.fake.set_message_content_intent(false);
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let mut run = start(&adapter, &["general"], MemoryState::new());
    connected(&mut run).await;
    assert_eq!(
        run.problems.try_recv().ok(),
        Some(Some(NO_CONTENT_INTENT.to_owned())),
        "the missing intent is reported as the network's problem"
    );
    let intents = w.fake.session_intents();
    assert_eq!(intents.len(), 1);
    assert_eq!(
        intents[0] & switchboard_testkit::discord::INTENT_MESSAGE_CONTENT,
        0
    );
    // Messages arrive empty: not relayed, and sending still works.
    w.fake.post("general", &w.bob, "unseen");
    let receipt = adapter
        .send(&planned(
            &*adapter,
            message_from_alice("general", "still sent"),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.native_ids.len(), 1);
    assert!(run.inbound.try_recv().is_err());
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_the_bot_cannot_see_is_reported_refused() {
    let w = world().await;
    w.fake.add_channel(&w.guild, "secret", None);
    w.fake.remove_bot_from_channel("secret");
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let mut run = start(&adapter, &["general", "secret"], MemoryState::new());
    let report = next_room_report(&mut run.rooms, "secret", WAIT).await;
    assert!(
        matches!(&report, RoomReport::JoinFailed { error } if error.contains("Missing Access")),
        "{report:?}"
    );
    connected(&mut run).await;
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_the_network_with_a_clear_reason() {
    let w = world().await;
    w.fake.refuse_token(TOKEN);
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let mut run = start(&adapter, &["general"], MemoryState::new());
    let ended = tokio::time::timeout(WAIT, &mut run.task)
        .await
        .expect("run() kept going with a refused token")
        .unwrap();
    assert!(matches!(ended, Err(AdapterError::Auth(_))), "{ended:?}");
    let state = run.health.recv().await.unwrap();
    assert!(
        matches!(&state, ConnectionState::Failed { last_error } if last_error.contains("token")),
        "{state:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_by_the_gateway_is_a_permanent_failure() {
    let w = world().await;
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let mut run = start(&adapter, &["general"], MemoryState::new());
    connected(&mut run).await;
    w.fake.close_sockets(4004);
    let ended = tokio::time::timeout(WAIT, &mut run.task)
        .await
        .expect("run() kept retrying after close code 4004")
        .unwrap();
    assert!(matches!(ended, Err(AdapterError::Auth(_))), "{ended:?}");
    let mut last = None;
    while let Ok(state) = run.health.try_recv() {
        last = Some(state);
    }
    assert!(
        matches!(&last, Some(ConnectionState::Failed { last_error }) if last_error.contains("4004")),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifies_are_paced_across_runs_of_one_adapter() {
    let w = world().await;
    let adapter = DiscordAdapter::new(config(&w.fake, serde_json::json!({}))).unwrap();
    let state = MemoryState::new();
    let mut run = start(&adapter, &["general"], state.clone());
    connected(&mut run).await;
    stop(run).await;
    // The supervisor runs the adapter again at once: the new run's Identify waits
    // for Discord's limit (one per 5 s) through the adapter's queue.
    let mut run = start(&adapter, &["general"], state);
    connected(&mut run).await;
    let times = w.fake.identify_times();
    assert_eq!(times.len(), 2);
    let gap = times[1] - times[0];
    assert!(
        gap >= Duration::from_millis(4_900),
        "two identifies {gap:?} apart; Discord allows one per 5 s"
    );
    stop(run).await;
}
