//! Unit tests of the routing table and the renderer.

use super::render::{Rendered, Resolved, Target, render, render_template};
use super::*;
use crate::config::RouteRoom;
use regex::Regex;
use switchboard_sdk::{
    Capabilities, FinalText, MessageStyle, NativeMsgId, OutboundKind, PlainText, RichText, Sender,
    TextFormat, TextRules,
};

fn room(network: &str, room: &str, direction: Direction) -> RouteRoom {
    RouteRoom {
        network: network.into(),
        room: room.into(),
        direction,
        nick_template: None,
    }
}

fn route(name: &str, rooms: Vec<RouteRoom>) -> RouteConfig {
    RouteConfig {
        rooms,
        ..RouteConfig::linking(name, Vec::<(String, String)>::new())
    }
}

fn table(routes: &[RouteConfig]) -> RoutingTable {
    RoutingTable::build(routes, |_, room| RoomId::new(room.to_lowercase()))
}

fn said(network: &str, room: &str, nick: &str, text: &str) -> Inbound {
    Inbound::message(
        RoomKey::new(network, room),
        Sender::user(nick, nick),
        Some(NativeMsgId::new("n1")),
        RichText::plain(text),
    )
}

fn rooms_of(destinations: Vec<Destination>) -> Vec<String> {
    destinations
        .into_iter()
        .map(|d| d.room.to_string())
        .collect()
}

#[test]
fn n_way_route_reaches_every_other_room_once() {
    let t = table(&[route(
        "r",
        vec![
            room("a", "#A", Direction::Both),
            room("b", "#b", Direction::Both),
            room("c", "#c", Direction::Both),
        ],
    )]);
    assert_eq!(
        rooms_of(t.destinations(&said("a", "#a", "x", "hi"))),
        vec!["b/#b", "c/#c"]
    );
    assert_eq!(
        rooms_of(t.destinations(&said("c", "#c", "x", "hi"))),
        vec!["a/#a", "b/#b"]
    );
}

#[test]
fn directions_are_respected() {
    let t = table(&[route(
        "r",
        vec![
            room("a", "#a", Direction::Source),
            room("b", "#b", Direction::Sink),
            room("c", "#c", Direction::Both),
        ],
    )]);
    assert_eq!(
        rooms_of(t.destinations(&said("a", "#a", "x", "hi"))),
        vec!["b/#b", "c/#c"]
    );
    assert!(
        t.destinations(&said("b", "#b", "x", "hi")).is_empty(),
        "a sink's messages are not relayed"
    );
    assert_eq!(
        rooms_of(t.destinations(&said("c", "#c", "x", "hi"))),
        vec!["b/#b"],
        "nothing goes into a source"
    );
}

#[test]
fn a_room_in_two_routes_gets_each_destination_once() {
    let t = table(&[
        route(
            "one",
            vec![
                room("a", "#a", Direction::Both),
                room("b", "#b", Direction::Both),
            ],
        ),
        route(
            "two",
            vec![
                room("a", "#a", Direction::Both),
                room("b", "#b", Direction::Both),
                room("c", "#c", Direction::Both),
            ],
        ),
    ]);
    let destinations = t.destinations(&said("a", "#a", "x", "hi"));
    assert_eq!(rooms_of(destinations.clone()), vec!["b/#b", "c/#c"]);
    assert_eq!(&*destinations[0].route, "one");
    assert_eq!(&*destinations[1].route, "two");
}

#[test]
fn ignore_rules_and_membership() {
    let mut r = route(
        "r",
        vec![
            room("a", "#a", Direction::Both),
            room("b", "#b", Direction::Both),
        ],
    );
    r.ignore.nicks = vec![Regex::new("^bot").unwrap()];
    r.ignore.text = vec![Regex::new("^!").unwrap()];
    let t = table(&[r.clone()]);
    assert!(t.destinations(&said("a", "#a", "botty", "hi")).is_empty());
    assert!(t.destinations(&said("a", "#a", "alice", "!cmd")).is_empty());
    assert_eq!(t.destinations(&said("a", "#a", "alice", "hi")).len(), 1);
    let mut join = said("a", "#a", "alice", "");
    join.kind = EventKind::Join;
    assert!(
        t.destinations(&join).is_empty(),
        "membership is off by default"
    );
    r.relay_membership = true;
    assert_eq!(table(&[r]).destinations(&join).len(), 1);
}

#[test]
fn template_placeholders() {
    let event = said("libera", "#rust", "alice", "hi");
    assert_eq!(
        render_template(
            "[{network}/{protocol}/{room}] {nick}: {unknown}",
            &event,
            "al\u{200D}ice",
            "irc"
        ),
        "[libera/irc/#rust] al\u{200D}ice: {unknown}"
    );
}

fn target_fixture(caps: Capabilities) -> (Route, Capabilities) {
    let t = table(&[route(
        "r",
        vec![
            room("a", "#a", Direction::Both),
            room("b", "#b", Direction::Both),
        ],
    )]);
    (t.route("r").unwrap().clone(), caps)
}

/// Plain text where a relayed name is kept from pinging by a trailing `~`.
struct TildeNames;

impl TextRules for TildeNames {
    fn name(&self) -> &'static str {
        "tilde"
    }

    fn render(
        &self,
        content: &RichText,
        style: MessageStyle,
        label: &str,
        budget: Option<usize>,
    ) -> Vec<FinalText> {
        PlainText.render(content, style, label, budget)
    }

    fn name_without_ping(&self, name: &str) -> String {
        format!("{name}~")
    }
}

fn render_for(event: &Inbound, resolved: &Resolved, caps: Capabilities) -> Rendered {
    let (route, caps) = target_fixture(caps);
    let caps = Capabilities {
        text: TextFormat::new(TildeNames),
        ..caps
    };
    let member = route.members[1].clone();
    render(
        event,
        7,
        resolved,
        &Target {
            route: &route,
            member: &member,
            capabilities: &caps,
            origin_protocol: "irc",
        },
    )
}

#[test]
fn message_render_uses_template_and_guard_and_leaves_mentions_to_the_adapter() {
    let Rendered::Send(out) = render_for(
        &said("a", "#a", "alice", "hey @channel"),
        &Resolved::default(),
        Capabilities::default(),
    ) else {
        panic!("expected a send");
    };
    assert_eq!(out.sender_label, "<alice~> ");
    assert_eq!(out.delivery_id, 7);
    match out.kind {
        OutboundKind::Message { style, content, .. } => {
            assert_eq!(style, MessageStyle::Normal);
            // Only the destination's renderer knows whether `@channel` notifies there.
            assert_eq!(content.to_plain(), "hey @channel");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn edits_become_corrections_without_edit_support() {
    let mut edit = said("a", "#a", "alice", "fixed text");
    edit.kind = EventKind::Edit {
        target: NativeMsgId::new("n0"),
    };
    let resolved = Resolved {
        target_copies: vec![NativeMsgId::new("copy-1")],
        ..Resolved::default()
    };
    let Rendered::Send(out) = render_for(&edit, &resolved, Capabilities::default()) else {
        panic!()
    };
    match out.kind {
        OutboundKind::Message { content, .. } => {
            assert_eq!(content.to_plain(), "(correction) fixed text")
        }
        other => panic!("unexpected {other:?}"),
    }
    let caps = Capabilities {
        edits: true,
        ..Capabilities::default()
    };
    let Rendered::Send(out) = render_for(&edit, &resolved, caps) else {
        panic!()
    };
    assert_eq!(
        out.kind,
        OutboundKind::Edit {
            targets: vec![NativeMsgId::new("copy-1")],
            content: RichText::plain("fixed text")
        }
    );
}

#[test]
fn deletes_are_skipped_without_delete_support() {
    let mut delete = said("a", "#a", "alice", "");
    delete.kind = EventKind::Delete {
        target: NativeMsgId::new("n0"),
    };
    let resolved = Resolved {
        target_copies: vec![NativeMsgId::new("copy-1")],
        ..Resolved::default()
    };
    assert!(matches!(
        render_for(&delete, &resolved, Capabilities::default()),
        Rendered::Skip(_)
    ));
    let caps = Capabilities {
        deletes: true,
        ..Capabilities::default()
    };
    let Rendered::Send(out) = render_for(&delete, &resolved, caps) else {
        panic!()
    };
    assert_eq!(
        out.kind,
        OutboundKind::Delete {
            targets: vec![NativeMsgId::new("copy-1")]
        }
    );
}

#[test]
fn replies_are_quoted_where_the_target_cannot_reply() {
    let reply = said("a", "#a", "bob", "yes!");
    let resolved = Resolved {
        reply_target: Some(NativeMsgId::new("copy-9")),
        reply_quote: Some((
            "alice".into(),
            "shall we ship it today? it has been a long week of testing".into(),
        )),
        ..Resolved::default()
    };
    let Rendered::Send(out) = render_for(&reply, &resolved, Capabilities::default()) else {
        panic!()
    };
    let OutboundKind::Message {
        content, reply_to, ..
    } = out.kind
    else {
        panic!()
    };
    assert_eq!(reply_to, None);
    assert_eq!(
        content.to_plain(),
        "(re alice~: \"shall we ship it today? it has been a long week of…\") yes!"
    );
    let caps = Capabilities {
        replies: true,
        ..Capabilities::default()
    };
    let Rendered::Send(out) = render_for(&reply, &resolved, caps) else {
        panic!()
    };
    let OutboundKind::Message {
        content, reply_to, ..
    } = out.kind
    else {
        panic!()
    };
    assert_eq!(reply_to, Some(NativeMsgId::new("copy-9")));
    assert_eq!(content.to_plain(), "yes!");
}

#[test]
fn attachments_become_links_where_files_cannot_be_attached() {
    let mut event = said("a", "#a", "alice", "look");
    event.attachments.push(switchboard_sdk::Attachment {
        name: "cat.png".into(),
        mime_type: Some("image/png".into()),
        size: Some(10),
        url: "https://files.test/cat.png".into(),
    });
    let Rendered::Send(out) = render_for(&event, &Resolved::default(), Capabilities::default())
    else {
        panic!()
    };
    let OutboundKind::Message {
        content,
        attachments,
        ..
    } = out.kind
    else {
        panic!()
    };
    assert!(attachments.is_empty());
    assert_eq!(
        content.to_plain(),
        "look\ncat.png (https://files.test/cat.png)"
    );
}

#[test]
fn membership_lines_are_spoken_by_the_bridge() {
    let mut kick = said("a", "#a", "op", "");
    kick.kind = EventKind::Kick {
        user: "troll".into(),
        reason: Some("spam @here".into()),
    };
    let Rendered::Send(out) = render_for(&kick, &Resolved::default(), Capabilities::default())
    else {
        panic!()
    };
    assert_eq!(out.sender_label, "");
    let OutboundKind::Message { content, style, .. } = out.kind else {
        panic!()
    };
    assert_eq!(style, MessageStyle::Notice);
    assert_eq!(
        content.to_plain(),
        "*** troll was kicked from #a on a by op~ (spam @here)"
    );
}

#[test]
fn the_label_is_in_the_text_unless_the_room_names_senders_per_message() {
    let hello = said("a", "#a", "alice", "hello");
    let Rendered::Send(labelled) =
        render_for(&hello, &Resolved::default(), Capabilities::default())
    else {
        panic!("expected a send");
    };
    assert!(!labelled.per_message_sender);
    assert_eq!(labelled.parts, vec![FinalText::plain("<alice~> hello")]);
    let caps = Capabilities {
        per_message_sender: true,
        ..Capabilities::default()
    };
    let Rendered::Send(named) = render_for(&hello, &Resolved::default(), caps) else {
        panic!("expected a send");
    };
    assert!(named.per_message_sender);
    assert_eq!(named.sender_name, "alice");
    assert_eq!(named.parts, vec![FinalText::plain("hello")]);
}

#[test]
fn reactions_go_to_the_first_copy_where_shown_and_are_skipped_elsewhere() {
    let mut reaction = said("a", "#a", "alice", "");
    reaction.kind = EventKind::Reaction {
        target: NativeMsgId::new("n0"),
        key: "👍".into(),
    };
    let resolved = Resolved {
        target_copies: vec![NativeMsgId::new("copy-1"), NativeMsgId::new("copy-2")],
        ..Resolved::default()
    };
    let Rendered::Skip(skip) = render_for(&reaction, &resolved, Capabilities::default()) else {
        panic!("a reaction where none are shown must be skipped");
    };
    assert_eq!(skip.class, "reactions_unsupported");
    let caps = Capabilities {
        reactions: true,
        ..Capabilities::default()
    };
    let Rendered::Send(out) = render_for(&reaction, &resolved, caps.clone()) else {
        panic!("expected a send");
    };
    assert_eq!(
        out.kind,
        OutboundKind::Reaction {
            target: NativeMsgId::new("copy-1"),
            key: "👍".into()
        }
    );
    assert!(out.parts.is_empty());
    let Rendered::Skip(skip) = render_for(&reaction, &Resolved::default(), caps) else {
        panic!("a reaction to a message never copied here must be skipped");
    };
    assert_eq!(skip.class, "no_copy");
}

#[test]
fn a_delivery_key_names_the_origin_event_and_the_destination_room() {
    // Rendered as outbox row 7 to the fixture's destination room.
    let key =
        |event: &Inbound| match render_for(event, &Resolved::default(), Capabilities::default()) {
            Rendered::Send(out) => out.delivery_key,
            other => panic!("expected a send, got {other:?}"),
        };
    let event = said("a", "#a", "alice", "hello");
    // The same origin event, sent again by its source (e.g. after a power cut lost
    // our record of it), gets the same key.
    let again = event.clone();
    assert_eq!(key(&event), key(&again));
    assert!(key(&event).starts_with('e'));
    // Another event under the same native id (a reaction removed and added again)
    // differs by its time.
    let later = Inbound {
        timestamp_ms: event.timestamp_ms + 1,
        ..event.clone()
    };
    assert_ne!(key(&event), key(&later));
    let elsewhere = Inbound {
        room: RoomKey::new("a", "#other"),
        ..event.clone()
    };
    assert_ne!(key(&event), key(&elsewhere));
    // No native id: the outbox id, which no run hands out twice.
    let anonymous = Inbound {
        native_id: None,
        ..event
    };
    assert_eq!(key(&anonymous), "o7");
}
