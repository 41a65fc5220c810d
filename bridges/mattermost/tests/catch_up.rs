//! Catch-up against the fake server: after a restart every missed post arrives, in
//! the order things happened, each once, however many pages it takes; a wrong team
//! or channel is a failure that names what to check (and the channel is reported
//! refused).

mod common;

use common::{Bridge, config, server};
use switchboard_sdk::{AdapterError, EventKind, NativeMsgId, RoomId, RoomReport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_hundred_posts_missed_while_stopped_arrive_once_each_in_order() {
    let s = server().await;
    let mut bridge = Bridge::new(config(&s.mm.url(), &s.bot_token), &["town-square"]);
    bridge.start().await;
    let before = s.mm.post_as(&s.bob, &s.town, "before", None);
    assert_eq!(
        bridge.distinct(1, "the first post").await[0]
            .content
            .to_plain(),
        "before"
    );
    bridge.stop().await;

    // More than the 1,000 a `since` query answers, and than 7 pages of 200.
    let missed: Vec<String> = (0..1500)
        .map(|i| {
            s.mm.post_as(&s.bob, &s.town, &format!("missed {i}"), None)
                .id
        })
        .collect();
    bridge.start().await;
    let got = bridge.distinct(1500, "the missed posts").await;
    let ids: Vec<Option<NativeMsgId>> = got.iter().map(|event| event.native_id.clone()).collect();
    let expected: Vec<Option<NativeMsgId>> = missed
        .iter()
        .map(|id| Some(NativeMsgId::new(id.clone())))
        .collect();
    assert!(ids == expected, "not all missed posts, or not in order");
    assert_eq!(got[1499].content.to_plain(), "missed 1499");

    // Nothing twice, but the post at the cursor, which the core drops by its id.
    s.mm.post_as(&s.bob, &s.town, "after", None);
    assert_eq!(
        bridge.distinct(1, "the next post").await[0]
            .content
            .to_plain(),
        "after"
    );
    let before_id = Some(NativeMsgId::new(before.id));
    assert!(
        bridge.again.iter().all(|id| *id == before_id),
        "relayed twice: {:?}",
        bridge.again
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_changes_are_relayed_in_the_order_they_happened() {
    let s = server().await;
    let mut bridge = Bridge::new(config(&s.mm.url(), &s.bot_token), &["town-square"]);
    bridge.start().await;
    let edited = s.mm.post_as(&s.bob, &s.town, "old, to be edited", None);
    let deleted = s.mm.post_as(&s.bob, &s.town, "old, to be deleted", None);
    bridge.distinct(2, "the old posts").await;
    bridge.stop().await;

    // While the daemon is down: five new posts, then an edit and a delete of old ones.
    for i in 0..5 {
        s.mm.post_as(&s.bob, &s.town, &format!("new {i}"), None);
    }
    s.mm.edit_as(&edited.id, "old, edited");
    s.mm.delete_post(&deleted.id);
    bridge.start().await;

    let got = bridge.distinct(7, "the changes").await;
    let seen: Vec<String> = got
        .iter()
        .map(|event| match &event.kind {
            EventKind::Edit { target } => {
                format!("edit {}: {}", target.as_str(), event.content.to_plain())
            }
            EventKind::Delete { target } => format!("delete {}", target.as_str()),
            _ => event.content.to_plain(),
        })
        .collect();
    let mut expected: Vec<String> = (0..5).map(|i| format!("new {i}")).collect();
    expected.push(format!("edit {}: old, edited", edited.id));
    expected.push(format!("delete {}", deleted.id));
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_channel_or_team_fails_the_network_with_what_to_check() {
    let s = server().await;
    let refused = |result: Result<(), AdapterError>| match result {
        // A setup problem: the supervisor reports the network failed and retries slowly.
        Err(AdapterError::Config(message)) => message,
        other => panic!("expected a failure that is not retried soon, got {other:?}"),
    };

    let mut misspelt = Bridge::new(
        config(&s.mm.url(), &s.bot_token),
        &["town-square", "town-squar"],
    );
    let message = refused(misspelt.run_to_end().await);
    assert!(
        message
            .starts_with("channel town-squar not found in team core (or the bot is not a member)"),
        "{message}"
    );
    assert!(!message.contains("channel_id"), "{message}");
    // The missing channel (resolved first: the rooms come in order) is reported
    // refused with the same words.
    let mut reports = Vec::new();
    while let Ok(report) = misspelt.rooms.try_recv() {
        reports.push(report);
    }
    let refusal = RoomReport::JoinFailed { error: message };
    assert_eq!(reports, vec![(RoomId::new("town-squar"), refusal)]);

    // Shaped like an id, so looked up as one too: still the same advice.
    let unknown_id = "q".repeat(26);
    let mut by_id = Bridge::new(config(&s.mm.url(), &s.bot_token), &[unknown_id.as_str()]);
    let message = refused(by_id.run_to_end().await);
    assert!(
        message.starts_with(&format!("channel {unknown_id} not found in team core")),
        "{message}"
    );

    let mut wrong_team = Bridge::new(
        switchboard_mattermost::config::MattermostConfig {
            team: "cor".into(),
            ..config(&s.mm.url(), &s.bot_token)
        },
        &["town-square"],
    );
    let message = refused(wrong_team.run_to_end().await);
    assert!(message.starts_with("team \"cor\" not found"), "{message}");
}
