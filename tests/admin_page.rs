//! The admin page in a real browser (headless Chromium over WebDriver) against the real
//! `switchboard` binary and three real ngircd networks, as an admin would use it: log
//! in (a wrong token first), see the networks, link a room into a route through the
//! form (preview, then apply) and see a message relayed into it on IRC, remove it,
//! get a validation error inline and then create and remove a route, and turn a queued
//! message into a dead letter (its network down, its room removed) and requeue it once
//! the room and the network are back, seeing it arrive on IRC.
//!
//! Screenshots of each step go to target/screenshots/. With
//! `SWITCHBOARD_DOCS_SCREENSHOT=1` the final one is also copied to docs/admin-page.png
//! (the README's picture); without it a test run leaves the source tree alone.

mod common;

use common::bridge::{BridgeProcess, irc_config};
use common::{WAIT, bridge_does};
use std::path::PathBuf;
use switchboard_testkit::browser::{Browser, PHONE};
use switchboard_testkit::{IrcPeer, Ngircd, NgircdOptions};

const TOKEN: &str = "admin-page-test-token-0123456789";

fn server(name: &str) -> Ngircd {
    Ngircd::start(NgircdOptions {
        name: format!("{name}.test"),
        flood_throttling: false,
    })
}

fn screenshots_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("screenshots")
}

/// Sends the dry run of the form `form` and applies its preview, which must list `diff`.
async fn preview_and_apply(browser: &Browser, form: &str, diff_kind: &str, diff: &str, shot: &str) {
    browser.click(&format!("#{form}-submit")).await;
    browser
        .wait_text(
            &format!("#preview-diff li[data-diff=\"{diff_kind}\"]"),
            diff,
        )
        .await;
    browser.screenshot(shot).await;
    browser.click("#apply").await;
    browser
        .wait_text("#banner[data-kind=\"ok\"]", "Applied")
        .await;
}

/// Removes a room through its inline confirm step.
async fn remove_room(browser: &Browser, key: &str, shot: Option<&str>) {
    let room = format!("[data-room=\"{key}\"]");
    browser
        .click(&format!("{room} button[data-action=\"remove-room\"]"))
        .await;
    browser
        .wait_text(
            &format!("{room} button[data-action=\"confirm-remove-room\"]"),
            "",
        )
        .await;
    if let Some(shot) = shot {
        browser.screenshot(shot).await;
    }
    browser
        .click(&format!(
            "{room} button[data-action=\"confirm-remove-room\"]"
        ))
        .await;
    browser.wait_gone(&room).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_routes_and_dead_letters_in_a_browser() {
    let (east, west, mut south) = (server("east"), server("west"), server("south"));
    let mut alice = IrcPeer::connect(east.port(), "alice", &["#a", "#dl"]).await;
    let mut bob = IrcPeer::connect(west.port(), "bob", &["#b", "#new", "#dl"]).await;
    let networks = [
        ("east", east.port()),
        ("west", west.port()),
        ("south", south.port()),
    ];
    let mut bridge = BridgeProcess::start(|http, state| {
        let routes = "  - name: ab\n    rooms:\n      - east: \"#a\"\n      - west: \"#b\"\n\
                      \x20 - name: dl\n    rooms:\n      - east: \"#dl\"\n      - west: \"#dl\"\n      - south: \"#dl\"\n";
        format!(
            "{}admin:\n  enabled: true\n  token: {TOKEN}\nreload:\n  join_deadline: 10s\n",
            irc_config(http, state, &networks, routes)
        )
    });
    bridge.wait_healthy().await;
    let base = format!("http://{}", bridge.http);

    let browser = Browser::start(&screenshots_dir()).await;

    // Not logged in: the page sends us to the login form. A wrong token is refused there.
    browser.goto(&format!("{base}/admin/")).await;
    browser.fill("#token", "not-the-token-at-all").await;
    browser.click("#login").await;
    browser.wait_text("#login-error", "").await;
    assert!(
        browser.url().await.contains("/admin/login"),
        "a wrong token must stay on the login page: {}",
        browser.describe_page().await
    );
    browser.screenshot("01-login-wrong-token").await;

    browser.fill("#token", TOKEN).await;
    browser.click("#login").await;
    for network in ["east", "west", "south"] {
        browser
            .wait_text(
                &format!("[data-network=\"{network}\"][data-state=\"connected\"]"),
                network,
            )
            .await;
    }
    browser
        .wait_text("[data-route=\"ab\"] [data-room=\"east/#a\"]", "#a")
        .await;
    browser.screenshot("02-networks-and-routes").await;

    // Link west/#new into route ab: preview, apply, and the bridge joins and relays.
    browser.select("#add-room-route", "ab").await;
    browser.select("#add-room-network", "west").await;
    browser.fill("#add-room-room", "#new").await;
    browser.select("#add-room-direction", "both").await;
    preview_and_apply(
        &browser,
        "add-room",
        "rooms_added",
        "west/#new",
        "03-add-room-preview",
    )
    .await;
    browser
        .wait_text("[data-route=\"ab\"] [data-room=\"west/#new\"]", "#new")
        .await;
    bob.expect_line("the bridge's JOIN #new", WAIT, bridge_does("JOIN", "#new"))
        .await;
    alice.say("#a", "hello into the new room").await;
    bob.expect("#new", "hello into the new room", WAIT).await;
    browser.screenshot("04-room-added").await;

    // Remove it again, with the inline confirm step.
    remove_room(&browser, "west/#new", Some("05-confirm-remove")).await;
    bob.expect_line("the bridge's PART #new", WAIT, bridge_does("PART", "#new"))
        .await;

    // A route with one room is refused by the server's checks, shown next to the form;
    // with a second room it is created; then removed.
    browser.fill("#create-route-name", "solo").await;
    browser
        .select(
            "#create-route-rooms .room-row:nth-child(1) select.room-network",
            "east",
        )
        .await;
    browser
        .fill(
            "#create-route-rooms .room-row:nth-child(1) input.room-name",
            "#solo",
        )
        .await;
    browser.click("#create-route-submit").await;
    let error = browser.wait_text("#create-route-errors li.error", "").await;
    let position = error.attr("data-line").await.unwrap();
    assert!(
        position.is_some(),
        "a 422 error shows its line and column: {}",
        browser.describe_page().await
    );
    browser.screenshot("06-validation-error").await;
    browser.click("#create-route-add-room").await;
    browser
        .select(
            "#create-route-rooms .room-row:nth-child(2) select.room-network",
            "west",
        )
        .await;
    browser
        .fill(
            "#create-route-rooms .room-row:nth-child(2) input.room-name",
            "#solo",
        )
        .await;
    preview_and_apply(
        &browser,
        "create-route",
        "routes_added",
        "solo",
        "07-create-route-preview",
    )
    .await;
    browser.wait_gone("#create-route-errors li.error").await;
    browser
        .wait_text("[data-route=\"solo\"] [data-room=\"west/#solo\"]", "#solo")
        .await;
    browser
        .click("[data-route=\"solo\"] button[data-action=\"remove-route\"]")
        .await;
    browser
        .click("[data-route=\"solo\"] button[data-action=\"confirm-remove-route\"]")
        .await;
    browser.wait_gone("[data-route=\"solo\"]").await;

    // A dead letter: south goes down, a message queues for south/#dl, and removing
    // that room dead-letters it (route_removed). Its text is hostile HTML: the page
    // must show it as text.
    south.stop();
    browser
        .wait_text(
            "[data-network=\"south\"]:not([data-state=\"connected\"])",
            "south",
        )
        .await;
    let queued = "<b>queued</b> while south was down";
    alice.say("#dl", queued).await;
    bob.expect("#dl", queued, WAIT).await;
    browser
        .wait_text(
            "[data-room=\"south/#dl\"]:not([data-queued=\"0\"])",
            "queued",
        )
        .await;
    browser.screenshot("08-south-down-queued").await;
    remove_room(&browser, "south/#dl", None).await;
    let letter = "[data-dead-room=\"south/#dl\"] [data-dead-letter]";
    browser.wait_text(letter, queued).await;
    // The reason is the code docs/admin-api.md and the issue name, not a sentence.
    browser
        .wait_text(&format!("{letter} .reason"), "route_removed")
        .await;
    assert_eq!(
        browser.count("#dead-letter-list b").await,
        0,
        "a dead letter's text was rendered as HTML"
    );
    browser.screenshot("09-dead-letter").await;

    // South back, its room linked again, then the dead letter requeued: it arrives.
    south.restart();
    browser
        .wait_text(
            "[data-network=\"south\"][data-state=\"connected\"]",
            "south",
        )
        .await;
    let mut carol = IrcPeer::connect(south.port(), "carol", &["#dl"]).await;
    browser.select("#add-room-route", "dl").await;
    browser.select("#add-room-network", "south").await;
    browser.fill("#add-room-room", "#dl").await;
    preview_and_apply(
        &browser,
        "add-room",
        "rooms_added",
        "south/#dl",
        "10-add-back-preview",
    )
    .await;
    carol
        .expect_line("the bridge's JOIN #dl", WAIT, bridge_does("JOIN", "#dl"))
        .await;
    browser
        .click(&format!("{letter} button[data-action=\"requeue\"]"))
        .await;
    browser
        .wait_text("#banner[data-kind=\"ok\"]", "Requeued")
        .await;
    let got = carol.expect("#dl", "while south was down", WAIT).await;
    assert!(got.text.contains(queued), "relayed as sent: {got:?}");
    browser.wait_gone(letter).await;

    // The final page, at desktop and phone sizes.
    browser.click("#refresh").await;
    browser
        .wait_text("[data-route=\"dl\"] [data-room=\"south/#dl\"]", "#dl")
        .await;
    browser.scroll_to_top().await;
    let final_shot = browser.screenshot("11-final").await;
    if std::env::var_os("SWITCHBOARD_DOCS_SCREENSHOT").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/admin-page.png");
        std::fs::copy(&final_shot, &docs).expect("copy the screenshot into docs/");
    }
    browser.set_size(PHONE).await;
    browser.scroll_to_top().await;
    browser.screenshot("12-final-phone").await;

    browser.close().await;
    let status = bridge.terminate();
    assert!(
        status.success(),
        "the bridge exited with {status}; log:\n{}",
        bridge.log()
    );
}
