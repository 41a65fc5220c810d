//! The gateway through a twilight shard: identify, events, resume, refusals.

use twilight_gateway::{Event, Intents};
use twilight_model::gateway::payload::incoming::GuildCreate;

use super::{Gateway, TOKEN, WAIT, connect, content_intents, http, id, world};
use crate::discord::{Attachment, PostOptions};

#[tokio::test]
async fn gateway_sends_ready_guild_and_message_events() {
    let w = world().await;
    let starter = w.discord.post(&w.general, &w.alice, "let's thread");
    let thread = w.discord.add_thread(&w.general, &starter, "a thread");
    let mut gateway = connect(&w.discord, TOKEN, content_intents());
    let (event, _) = gateway.next("HELLO").await;
    assert!(
        matches!(event, Event::GatewayHello(_)),
        "expected HELLO, got {event:?}"
    );
    let (event, seq) = gateway.next("READY").await;
    let Event::Ready(ready) = event else {
        panic!("expected READY, got {event:?}")
    };
    assert_eq!(seq, Some(1));
    assert_eq!(ready.resume_gateway_url, w.discord.gateway_url());
    assert_eq!(ready.user.id.to_string(), w.bot);
    assert_eq!(
        ready.application.id.to_string(),
        w.discord.application_id(&w.bot)
    );
    assert_eq!(ready.guilds[0].id.to_string(), w.guild);
    let (event, seq) = gateway.next("GUILD_CREATE").await;
    let Event::GuildCreate(guild) = event else {
        panic!("expected GUILD_CREATE, got {event:?}")
    };
    let GuildCreate::Available(guild) = *guild else {
        panic!("an unavailable guild")
    };
    assert_eq!(seq, Some(2));
    assert_eq!(guild.channels.len(), 3);
    assert_eq!(guild.threads[0].id.to_string(), thread);
    assert_eq!(
        guild.threads[0].parent_id.map(|p| p.to_string()),
        Some(w.general.clone())
    );
    assert!(
        guild
            .members
            .iter()
            .any(|m| m.nick.as_deref() == Some("ali"))
    );
    assert_eq!(guild.member_count, Some(2));

    let options = PostOptions {
        reply_to: Some(starter.clone()),
        attachments: vec![Attachment {
            filename: "cat.png".into(),
            url: "https://cdn.example/cat.png".into(),
            size: 1234,
        }],
        stickers: vec!["wave".into()],
    };
    let posted = w
        .discord
        .post_with(&thread, &w.alice, "in the thread", PostOptions::default());
    let (event, seq) = gateway.next("MESSAGE_CREATE in the thread").await;
    let Event::MessageCreate(message) = event else {
        panic!("got {event:?}")
    };
    assert_eq!(
        (message.id.to_string(), message.channel_id.to_string(), seq),
        (posted, thread.clone(), Some(3))
    );
    assert_eq!(
        message.member.as_ref().and_then(|m| m.nick.as_deref()),
        Some("ali")
    );
    let text = format!("look <@{}>", w.bot);
    let rich = w.discord.post_with(&w.general, &w.alice, &text, options);
    let (event, seq) = gateway.next("MESSAGE_CREATE with extras").await;
    let Event::MessageCreate(message) = event else {
        panic!("got {event:?}")
    };
    assert_eq!((message.id.to_string(), seq), (rich.clone(), Some(4)));
    assert_eq!(message.attachments[0].filename, "cat.png");
    assert_eq!(message.sticker_items[0].name, "wave");
    assert_eq!(
        message
            .reference
            .as_ref()
            .and_then(|r| r.message_id)
            .map(|i| i.to_string()),
        Some(starter)
    );
    w.discord.edit(&w.general, &rich, "edited");
    let (event, _) = gateway.next("MESSAGE_UPDATE").await;
    let Event::MessageUpdate(update) = event else {
        panic!("got {event:?}")
    };
    assert_eq!(update.content, "edited");
    assert!(update.edited_timestamp.is_some());
    w.discord.delete(&w.general, &rich);
    let (event, seq) = gateway.next("MESSAGE_DELETE").await;
    let Event::MessageDelete(delete) = event else {
        panic!("got {event:?}")
    };
    assert_eq!((delete.id.to_string(), seq), (rich, Some(6)));
    // The bot's own REST messages come back too.
    let client = http(&w.discord, TOKEN);
    client
        .create_message(id(&w.general))
        .content("mine")
        .await
        .unwrap();
    let (event, _) = gateway.next("own MESSAGE_CREATE").await;
    let Event::MessageCreate(own) = event else {
        panic!("got {event:?}")
    };
    assert_eq!(own.author.id.to_string(), w.bot);
    assert_eq!(w.discord.identifies(), 1);
}

#[tokio::test]
async fn without_the_content_intent_others_messages_come_blank() {
    let w = world().await;
    let mut gateway = connect(&w.discord, TOKEN, Intents::GUILDS | Intents::GUILD_MESSAGES);
    gateway.ready().await;
    let plain = w.discord.post(&w.general, &w.alice, "secret");
    let mention = format!("hey <@{}>", w.bot);
    w.discord.post(&w.general, &w.alice, &mention);
    let client = http(&w.discord, TOKEN);
    client
        .create_message(id(&w.general))
        .content("own words")
        .await
        .unwrap();
    let mut contents = Vec::new();
    while contents.len() < 3 {
        if let (Event::MessageCreate(m), _) = gateway.next("3 MESSAGE_CREATE").await {
            contents.push((m.id.to_string(), m.content.clone()));
        }
    }
    assert_eq!(contents[0], (plain, String::new()));
    assert_eq!(contents[1].1, mention);
    assert_eq!(contents[2].1, "own words");
}

/// Collects MESSAGE_CREATE ids until `done` holds; also says whether RESUMED came.
async fn collect(
    gateway: &mut Gateway,
    what: &str,
    done: impl Fn(&[String], bool) -> bool,
) -> (Vec<String>, bool) {
    let (mut ids, mut resumed) = (Vec::new(), false);
    while !done(&ids, resumed) {
        match gateway.next(what).await.0 {
            Event::MessageCreate(m) => ids.push(m.id.to_string()),
            Event::Resumed => resumed = true,
            Event::Ready(_) => panic!("re-identified while waiting for {what}"),
            _ => {}
        }
    }
    (ids, resumed)
}

#[tokio::test]
async fn dropped_and_closed_sockets_resume_without_losing_or_repeating() {
    let w = world().await;
    let mut gateway = connect(&w.discord, TOKEN, content_intents());
    gateway.ready().await;
    let first = w.discord.post(&w.general, &w.alice, "before");
    let (ids, _) = collect(&mut gateway, "the first message", |ids, _| !ids.is_empty()).await;
    assert_eq!(ids, [first]);
    for round in 0..3 {
        match round {
            0 => w.discord.drop_sockets(),
            1 => w.discord.close_sockets(4000),
            _ => w.discord.request_reconnect(),
        }
        let missed: Vec<String> = (0..2)
            .map(|i| {
                w.discord
                    .post(&w.general, &w.alice, &format!("during {round} {i}"))
            })
            .collect();
        let (ids, _) = collect(
            &mut gateway,
            "RESUMED and the missed messages",
            |ids, resumed| resumed && missed.iter().all(|m| ids.contains(m)),
        )
        .await;
        assert_eq!(
            ids, missed,
            "round {round}: each missed message once, in order"
        );
        let after = w.discord.post(&w.general, &w.alice, "after");
        let (ids, _) = collect(&mut gateway, "the next message", |ids, _| !ids.is_empty()).await;
        assert_eq!(ids, [after], "round {round}");
        assert_eq!(
            (w.discord.identifies(), w.discord.resumes()),
            (1, round + 1)
        );
    }
}

#[tokio::test]
async fn a_refused_resume_leads_to_a_new_identify() {
    let w = world().await;
    let mut gateway = connect(&w.discord, TOKEN, content_intents());
    let first_session = gateway.ready().await;
    w.discord.refuse_next_resume();
    w.discord.drop_sockets();
    gateway
        .until("INVALID_SESSION false", |e| {
            matches!(e, Event::GatewayInvalidateSession(false)).then_some(())
        })
        .await;
    let second_session = gateway.ready().await;
    assert_ne!(first_session, second_session);
    assert_eq!(
        (
            w.discord.identifies(),
            w.discord.resumes(),
            w.discord.refused_resumes()
        ),
        (2, 0, 1)
    );
    let posted = w.discord.post(&w.general, &w.alice, "still here");
    let (ids, _) = collect(&mut gateway, "a message", |ids, _| !ids.is_empty()).await;
    assert_eq!(ids, [posted]);
}

#[tokio::test]
async fn heartbeats_are_acknowledged() {
    let w = world().await;
    w.discord.set_heartbeat_interval(50);
    let mut gateway = connect(&w.discord, TOKEN, content_intents());
    gateway.ready().await;
    gateway
        .until("a heartbeat ack", |e| {
            matches!(e, Event::GatewayHeartbeatAck).then_some(())
        })
        .await;
    w.discord
        .wait_until("3 heartbeats", WAIT, |d| d.heartbeats() >= 3)
        .await;
    assert_eq!(
        w.discord.identifies(),
        1,
        "acked heartbeats keep the connection"
    );
}

#[tokio::test]
async fn identify_is_refused_for_a_bad_token_and_for_disallowed_intents() {
    let w = world().await;
    let mut gateway = connect(&w.discord, "not-the-token", content_intents());
    let code = gateway
        .until("a close", |e| match e {
            Event::GatewayClose(frame) => Some(frame.as_ref().map(|f| f.code)),
            _ => None,
        })
        .await;
    assert_eq!(code, Some(4004));
    assert!(gateway.ended().await, "4004 is fatal for twilight");

    w.discord.set_message_content_intent(false);
    let mut gateway = connect(&w.discord, TOKEN, content_intents());
    let code = gateway
        .until("a close", |e| match e {
            Event::GatewayClose(frame) => Some(frame.as_ref().map(|f| f.code)),
            _ => None,
        })
        .await;
    assert_eq!(code, Some(4014));
    assert!(gateway.ended().await, "4014 is fatal for twilight");
    // Without asking for the content, the same app identifies fine.
    let mut gateway = connect(&w.discord, TOKEN, Intents::GUILDS | Intents::GUILD_MESSAGES);
    gateway.ready().await;
    assert_eq!(w.discord.identifies(), 1);
}

#[tokio::test]
async fn webhook_messages_are_dispatched_with_their_webhook_id() {
    let w = world().await;
    let mut gateway = connect(&w.discord, TOKEN, content_intents());
    gateway.ready().await;
    let (hook, token) = w.discord.add_webhook(&w.general, "Switchboard");
    let client = http(&w.discord, TOKEN);
    client
        .execute_webhook(id(&hook), &token)
        .content("via hook")
        .username("carol")
        .await
        .unwrap();
    let (event, _) = gateway.next("the webhook's MESSAGE_CREATE").await;
    let Event::MessageCreate(message) = event else {
        panic!("got {event:?}")
    };
    assert_eq!(
        message.webhook_id.map(|i| i.to_string()),
        Some(hook.clone())
    );
    assert_eq!(
        (message.author.id.to_string(), message.author.name.as_str()),
        (hook, "carol")
    );
    let stored = w
        .discord
        .wait_for_message(&w.general, WAIT, |m| m.content == "via hook")
        .await;
    assert_eq!(stored.author_name, "carol");
}

#[tokio::test]
async fn hidden_channels_and_quiet_posts_send_no_events() {
    let w = world().await;
    let mut gateway = connect(&w.discord, TOKEN, content_intents());
    gateway.ready().await;
    w.discord.remove_bot_from_channel("random");
    w.discord.post("random", &w.alice, "not for bots");
    let quiet = w
        .discord
        .post_quietly(&w.general, &w.alice, "never delivered");
    let seen = w.discord.post(&w.general, &w.alice, "delivered");
    let (ids, _) = collect(&mut gateway, "a message", |ids, _| !ids.is_empty()).await;
    assert_eq!(ids, std::slice::from_ref(&seen));
    // The quiet one is there for catch-up through REST.
    let client = http(&w.discord, TOKEN);
    let page = client.channel_messages(id(&w.general)).await.unwrap();
    let page: Vec<String> = page
        .models()
        .await
        .unwrap()
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    assert_eq!(page, [seen, quiet]);
    let threads = client
        .active_threads(id(&w.guild))
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert!(threads.threads.is_empty());
}

#[tokio::test]
async fn invalidated_sessions_make_the_shard_identify_again() {
    let w = world().await;
    let mut gateway = connect(&w.discord, TOKEN, content_intents());
    gateway.ready().await;
    w.discord.invalidate_sessions(false);
    gateway.ready().await;
    assert_eq!((w.discord.identifies(), w.discord.resumes()), (2, 0));
    w.discord
        .wait_until("one live session", WAIT, |d| d.live_sessions() == 1)
        .await;
    assert!(
        w.discord.client_close_codes().contains(&Some(1000)),
        "{:?}",
        w.discord.client_close_codes()
    );
}
