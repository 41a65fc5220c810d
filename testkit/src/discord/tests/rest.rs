//! REST and webhooks through twilight-http, and the raw answers where twilight
//! hides them (429s, 401 bodies).

use serde_json::{Value, json};
use twilight_http::error::ErrorType;
use twilight_model::channel::message::AllowedMentions;
use twilight_model::id::Id;

use super::{TOKEN, api_code, http, id, world};

#[tokio::test]
async fn rest_setup_reads_deserialize_in_twilight() {
    let w = world().await;
    let client = http(&w.discord, TOKEN);
    let me = client.current_user().await.unwrap().model().await.unwrap();
    assert_eq!(
        (me.id.to_string(), me.name.as_str(), me.bot),
        (w.bot.clone(), "switchboard", true)
    );
    let app = client
        .current_user_application()
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert!(
        app.flags.unwrap().bits() & (1 << 18) != 0,
        "message content flag on by default"
    );
    let gateway = client
        .gateway()
        .authed()
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert_eq!(gateway.url, w.discord.gateway_url());
    let guilds = client
        .current_user_guilds()
        .await
        .unwrap()
        .models()
        .await
        .unwrap();
    assert_eq!(guilds[0].name, "My Server");
    let guild = client
        .guild(id(&w.guild))
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert_eq!(guild.name, "My Server");
    assert!(guild.roles.iter().any(|r| r.name == "@everyone"));
    let channels = client
        .guild_channels(id(&w.guild))
        .await
        .unwrap()
        .models()
        .await
        .unwrap();
    let names: Vec<_> = channels.iter().filter_map(|c| c.name.clone()).collect();
    assert_eq!(names, ["Text Channels", "general", "random"]);
    let roles = client
        .roles(id(&w.guild))
        .await
        .unwrap()
        .models()
        .await
        .unwrap();
    assert_eq!(roles.len(), 2, "@everyone and the bot's managed role");
    let member = client
        .guild_member(id(&w.guild), id(&w.alice))
        .await
        .unwrap();
    let member = member.model().await.unwrap();
    assert_eq!(
        (member.nick.as_deref(), member.user.global_name.as_deref()),
        (Some("ali"), Some("Alice A."))
    );
    let channel = client
        .channel(id(&w.general))
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert_eq!(channel.name.as_deref(), Some("general"));
}

#[tokio::test]
async fn messages_are_created_paged_after_an_id_and_replied_to() {
    let w = world().await;
    let client = http(&w.discord, TOKEN);
    let none = AllowedMentions::default();
    let first = w.discord.post(&w.general, &w.alice, "first <:blob:123>");
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        let message = client
            .create_message(id(&w.general))
            .content(text)
            .allowed_mentions(Some(&none))
            .await
            .unwrap()
            .model()
            .await
            .unwrap();
        assert_eq!(message.author.id.to_string(), w.bot);
        sent.push(message.id.to_string());
    }
    let reply = client
        .create_message(id(&w.general))
        .content("a reply")
        .reply(id(&first))
        .allowed_mentions(Some(&none))
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert_eq!(
        reply
            .reference
            .as_ref()
            .and_then(|r| r.message_id)
            .map(|i| i.to_string()),
        Some(first.clone())
    );
    assert!(reply.referenced_message.is_some());
    let page = client
        .channel_messages(id(&w.general))
        .limit(2)
        .after(id(&first))
        .await
        .unwrap()
        .models()
        .await
        .unwrap();
    let ids: Vec<String> = page.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(
        ids,
        [sent[1].clone(), sent[0].clone()],
        "the 2 oldest after, newest first"
    );
    let stored = w.discord.messages("general");
    assert!(
        stored
            .iter()
            .skip(1)
            .all(|m| m.allowed_mentions == Some(json!({ "parse": [] })))
    );
    assert_eq!(stored[4].reply_to.as_deref(), Some(first.as_str()));
    // Errors as Discord sends them.
    let long = "x".repeat(2001);
    let error = client.create_message(id(&w.general)).content(&long).await;
    assert!(error.is_err(), "twilight validates the length itself");
    let error = client
        .create_message(Id::new(42))
        .content("x")
        .await
        .unwrap_err();
    assert_eq!(api_code(&error), (404, 10003));
    let error = client
        .update_message(id(&w.general), id(&first))
        .content(Some("mine"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&error), (403, 50005));
    client
        .update_message(id(&w.general), id(&sent[0]))
        .content(Some("one!"))
        .await
        .unwrap();
    client
        .delete_message(id(&w.general), id(&sent[1]))
        .await
        .unwrap();
    let stored = w.discord.messages("general");
    assert!(stored[1].edited && stored[1].content == "one!" && stored[2].deleted);
}

#[tokio::test]
async fn webhooks_are_created_executed_edited_and_deleted() {
    let w = world().await;
    let client = http(&w.discord, TOKEN);
    let hook = client
        .create_webhook(id(&w.general), "Switchboard")
        .await
        .unwrap();
    let hook = hook.model().await.unwrap();
    let token = hook.token.clone().expect("a token");
    let listed = client
        .channel_webhooks(id(&w.general))
        .await
        .unwrap()
        .models()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let none = AllowedMentions::default();
    let message = client
        .execute_webhook(hook.id, &token)
        .content("hello from irc")
        .username("bob (irc)")
        .avatar_url("https://example.org/bob.png")
        .allowed_mentions(Some(&none))
        .wait()
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert_eq!(message.webhook_id, Some(hook.id));
    assert_eq!(
        (
            message.author.id.cast(),
            message.author.name.as_str(),
            message.author.bot
        ),
        (hook.id, "bob (irc)", true)
    );
    client
        .update_webhook_message(hook.id, &token, message.id)
        .content(Some("hello again"))
        .allowed_mentions(Some(&none))
        .await
        .unwrap();
    let stored = w.discord.messages(&w.general);
    assert_eq!(
        (stored[0].content.as_str(), stored[0].username.as_deref()),
        ("hello again", Some("bob (irc)"))
    );
    assert_eq!(stored[0].requests.len(), 2);
    assert!(
        stored[0]
            .requests
            .iter()
            .all(|r| r["allowed_mentions"] == json!({ "parse": [] }))
    );
    client
        .delete_webhook_message(hook.id, &token, message.id)
        .await
        .unwrap();
    assert!(w.discord.messages(&w.general)[0].deleted);
    let error = client
        .execute_webhook(hook.id, "wrong")
        .content("x")
        .await
        .unwrap_err();
    assert_eq!(api_code(&error), (401, 50027));
    // Without MANAGE_WEBHOOKS.
    w.discord.set_manage_webhooks(false);
    let error = client
        .create_webhook(id(&w.general), "Switchboard")
        .await
        .unwrap_err();
    assert_eq!(api_code(&error), (403, 50013));
    // A pre-existing webhook made by a human.
    let (hook_id, _) = w.discord.add_webhook("random", "Captain Hook");
    w.discord.set_manage_webhooks(true);
    let listed = client
        .channel_webhooks(id(&w.discord.channel_id("random")))
        .await
        .unwrap();
    let listed = listed.models().await.unwrap();
    assert_eq!(
        (listed[0].id.to_string(), listed[0].application_id),
        (hook_id, None)
    );
}

#[tokio::test]
async fn faults_answer_like_discord() {
    let w = world().await;
    let client = http(&w.discord, TOKEN);
    w.discord.remove_bot_from_channel(&w.general);
    let error = client
        .create_message(id(&w.general))
        .content("x")
        .await
        .unwrap_err();
    assert_eq!(api_code(&error), (403, 50001));
    w.discord.restore_bot_in_channel(&w.general);
    w.discord.fail_rest(Some(500));
    let error = client.channel(id(&w.general)).await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorType::Response { status, .. } if status.get() == 500),
        "{error:?}"
    );
    w.discord.fail_rest(None);
    // A refused token: 401 with Discord's body.
    w.discord.refuse_token(TOKEN);
    let raw = crate::http_client()
        .get(format!("{}/api/v10/users/@me", w.discord.url()))
        .header("Authorization", format!("Bot {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    assert!(raw.headers().contains_key("x-ratelimit-bucket"));
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body, json!({ "message": "401: Unauthorized", "code": 0 }));
    let error = client.current_user().await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorType::Response { status, .. } if status.get() == 401),
        "{error:?}"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_and_twilight_retries_after_them() {
    let w = world().await;
    w.discord.rate_limit(&w.general, 3);
    let raw = crate::http_client()
        .post(format!(
            "{}/api/v10/channels/{}/messages",
            w.discord.url(),
            w.general
        ))
        .header("Authorization", format!("Bot {TOKEN}"))
        .json(&json!({ "content": "x", "allowed_mentions": { "parse": [] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 429);
    let header = |name: &str| {
        raw.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("x-ratelimit-scope").as_deref(), Some("user"));
    assert_eq!(header("retry-after").as_deref(), Some("1"));
    assert_eq!(header("x-ratelimit-remaining").as_deref(), Some("0"));
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["retry_after"], json!(0.05));
    assert_eq!(body["global"], json!(false));
    // Another channel is not limited.
    let client = http(&w.discord, TOKEN);
    let random = w.discord.channel_id("random");
    client
        .create_message(id(&random))
        .content("fine")
        .await
        .unwrap();
    assert_eq!(w.discord.rate_limited_count(), 1);
    // twilight waits `reset-after` and retries 429s itself: two more, then success.
    client
        .create_message(id(&w.general))
        .content("eventually")
        .await
        .unwrap();
    assert_eq!(w.discord.rate_limited_count(), 3);
    assert_eq!(w.discord.messages(&w.general).len(), 1);
}
