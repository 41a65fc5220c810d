//! The admin API's handlers (docs/admin-api.md): the state of networks, routes,
//! queues and dead letters; route changes through the reloader; requeueing.

use super::auth::{self, Caller};
use super::{Admin, AdminSlot, harden};
use crate::config::edit::{RoomSpec, RouteEdit, RouteSpec};
use crate::config::{Config, Direction};
use crate::reload::Outcome;
use crate::store::Requeue;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_sdk::{NetworkId, RoomId, RoomKey};

/// Dead letters the state shows: the most recent.
const DEAD_LETTERS_SHOWN: usize = 100;

/// A refusal: the answer to send instead (boxed: a `Response` is large, and most
/// calls succeed).
type Refused = Box<Response>;

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    harden((status, axum::Json(body)).into_response())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, json!({ "error": message.into() }))
}

/// The admin surface for a request that may use it, or the answer refusing it.
fn admit(
    slot: &AdminSlot,
    headers: &HeaderMap,
    method: &Method,
) -> Result<(Arc<Admin>, Caller), Refused> {
    let Some((admin, token)) = slot.get() else {
        return Err(Box::new(StatusCode::NOT_FOUND.into_response()));
    };
    match auth::authenticate(headers, method, &token, &admin.sessions) {
        Ok(caller) => Ok((admin, caller)),
        Err(refusal) => {
            let mut response = error(
                refusal.status(),
                match refusal {
                    auth::Refusal::Unauthenticated => "missing or wrong admin token",
                    auth::Refusal::CrossSite => {
                        "a change from the page needs its X-CSRF-Token and its own origin"
                    }
                },
            );
            if refusal == auth::Refusal::Unauthenticated {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Err(Box::new(response))
        }
    }
}

pub async fn session(State(slot): State<AdminSlot>, headers: HeaderMap) -> Response {
    match admit(&slot, &headers, &Method::GET) {
        Ok((_, Caller::Session { csrf })) => answer(StatusCode::OK, json!({ "csrf": csrf })),
        Ok((_, Caller::Bearer)) => answer(StatusCode::OK, json!({ "csrf": null })),
        Err(response) => *response,
    }
}

#[derive(Serialize)]
struct RoomView {
    network: String,
    room: String,
    direction: &'static str,
    nick_template: Option<String>,
    queued: i64,
    oldest_queued_ms: Option<i64>,
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Both => "both",
        Direction::Source => "source",
        Direction::Sink => "sink",
    }
}

/// A configured room's key as delivery and health know it.
fn room_key(config: &Config, network: &str, room: &str) -> RoomKey {
    RoomKey {
        network: NetworkId::new(network),
        room: config.canonical_room(network, room),
    }
}

pub async fn state(State(slot): State<AdminSlot>, headers: HeaderMap) -> Response {
    let (admin, _) = match admit(&slot, &headers, &Method::GET) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let daemon = admin.reloader.daemon();
    let current = admin.reloader.current();
    let (generation, config) = (&current.0, &current.1);
    let queues: HashMap<RoomKey, (i64, Option<i64>)> = daemon
        .queues()
        .into_iter()
        .map(|(key, depth, oldest)| (key, (depth, oldest)))
        .collect();
    let health = daemon.health();
    let snapshot = health.snapshot();
    let networks: Vec<serde_json::Value> = config
        .networks
        .iter()
        .map(|(name, section)| {
            let id = NetworkId::new(name.clone());
            let shown = snapshot.get(&id);
            let rooms_health = health.rooms(&id);
            let mut rooms: Vec<RoomId> = config
                .routes
                .iter()
                .flat_map(|route| &route.rooms)
                .filter(|room| &room.network == name)
                .map(|room| room_key(config, name, &room.room).room)
                .collect();
            rooms.sort();
            rooms.dedup();
            let rooms: Vec<_> = rooms
                .iter()
                .map(|room| {
                    json!({
                        "room": room.as_str(),
                        "joined": rooms_health.joined.contains(room),
                        "error": rooms_health.failed.get(room).map(|failure| &failure.error),
                    })
                })
                .collect();
            json!({
                "name": name,
                "protocol": section.protocol(),
                "state": shown.map_or("stopped", |h| crate::health::state_name(&h.state)),
                "since_ms": shown.map(|h| h.since_ms),
                "last_error": shown.and_then(|h| h.last_error.clone()),
                "rooms": rooms,
            })
        })
        .collect();
    let routes: Vec<serde_json::Value> = config
        .routes
        .iter()
        .map(|route| {
            let rooms: Vec<RoomView> = route
                .rooms
                .iter()
                .map(|room| {
                    let key = room_key(config, &room.network, &room.room);
                    let (queued, oldest_queued_ms) = queues.get(&key).copied().unwrap_or((0, None));
                    RoomView {
                        network: room.network.clone(),
                        room: room.room.clone(),
                        direction: direction_name(room.direction),
                        nick_template: room.nick_template.clone(),
                        queued,
                        oldest_queued_ms,
                    }
                })
                .collect();
            json!({
                "name": route.name,
                "nick_template": route.nick_template,
                "relay_membership": route.relay_membership,
                "max_age": route.max_age.map(crate::config::format_duration),
                "rooms": rooms,
            })
        })
        .collect();
    let dead_letters = match daemon.store().recent_dead_letters(DEAD_LETTERS_SHOWN).await {
        Ok(letters) => letters,
        Err(store) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("state store: {store}"),
            );
        }
    };
    let dead_letters: Vec<_> = dead_letters
        .into_iter()
        .map(|letter| {
            let (sender, text) = letter.summary.unzip();
            json!({
                "outbox_id": letter.outbox_id,
                "route": letter.route,
                "network": letter.room.network.as_str(),
                "room": letter.room.room.as_str(),
                "reason": letter.reason,
                "attempts": letter.attempts,
                "created_ms": letter.created_ms,
                "dead_ms": letter.dead_ms,
                "sender": sender,
                "text": text,
            })
        })
        .collect();
    let status = daemon.config_status().load();
    let mut response = answer(
        StatusCode::OK,
        json!({
            "generation": generation,
            "applied_at_ms": status.applied_at_ms,
            "last_reload": status.last_reload,
            "networks": networks,
            "routes": routes,
            "dead_letters": dead_letters,
        }),
    );
    set_etag(&mut response, *generation);
    response
}

fn set_etag(response: &mut Response, generation: u64) {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{generation}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

/// The generation in `If-Match` (`"3"`, `W/"3"` or `3`), or the answer refusing a
/// write without one.
fn if_match(headers: &HeaderMap) -> Result<u64, Refused> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(Box::new(error(
            StatusCode::PRECONDITION_REQUIRED,
            "send If-Match with the generation you last read (the ETag of GET /admin/api/state)",
        )));
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "If-Match must be a generation, e.g. \"3\"",
            ))
        })
}

#[derive(Deserialize, Default)]
pub struct WriteQuery {
    #[serde(default)]
    dry_run: bool,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Refused> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("malformed body: {e}"),
        ))
    })
}

/// What a reload or change came to, as an HTTP answer.
fn outcome_response(outcome: Outcome) -> Response {
    let label = outcome.label();
    let (status, body, generation) = match outcome {
        Outcome::Applied { generation, diff } => (
            StatusCode::OK,
            json!({ "outcome": label, "generation": generation, "diff": diff }),
            Some(generation),
        ),
        Outcome::Unchanged { generation } => (
            StatusCode::OK,
            json!({ "outcome": label, "generation": generation }),
            Some(generation),
        ),
        Outcome::Preview { diff } => (
            StatusCode::OK,
            json!({ "outcome": label, "diff": diff }),
            None,
        ),
        Outcome::Rejected { errors } => {
            let errors: Vec<_> = errors
                .iter()
                .map(|e| {
                    json!({
                        "line": e.pos.map(|p| p.line),
                        "column": e.pos.map(|p| p.column),
                        "message": e.message,
                        "hint": e.hint,
                    })
                })
                .collect();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "outcome": label, "errors": errors }),
                None,
            )
        }
        Outcome::RolledBack { cause } => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "outcome": label, "cause": cause }),
            None,
        ),
        Outcome::Conflict { generation, reason } => (
            StatusCode::CONFLICT,
            json!({ "outcome": label, "generation": generation, "error": reason }),
            Some(generation),
        ),
    };
    let mut response = answer(status, body);
    if let Some(generation) = generation {
        set_etag(&mut response, generation);
    }
    response
}

/// Runs one route change for an admitted caller.
async fn change(
    slot: AdminSlot,
    headers: HeaderMap,
    method: Method,
    query: WriteQuery,
    edit: impl FnOnce() -> Result<RouteEdit, Refused>,
) -> Response {
    let (admin, _) = match admit(&slot, &headers, &method) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let generation = match if_match(&headers) {
        Ok(generation) => generation,
        Err(response) => return *response,
    };
    let edit = match edit() {
        Ok(edit) => edit,
        Err(response) => return *response,
    };
    if !query.dry_run {
        tracing::info!(?edit, "admin API: route change requested");
    }
    match admin.reloader.edit(&edit, generation, query.dry_run).await {
        Ok(outcome) => outcome_response(outcome),
        Err(edit_error) => {
            use crate::config::edit::EditError;
            let status = match edit_error {
                EditError::NoSuchRoute(_) | EditError::NoSuchRoom { .. } => StatusCode::NOT_FOUND,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            answer(
                status,
                json!({ "outcome": "rejected", "errors": [{ "line": null, "column": null, "message": edit_error.to_string(), "hint": null }] }),
            )
        }
    }
}

pub async fn add_route(
    State(slot): State<AdminSlot>,
    headers: HeaderMap,
    Query(query): Query<WriteQuery>,
    body: Bytes,
) -> Response {
    change(slot, headers, Method::POST, query, || {
        Ok(RouteEdit::AddRoute(parse::<RouteSpec>(&body)?))
    })
    .await
}

pub async fn replace_route(
    State(slot): State<AdminSlot>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(query): Query<WriteQuery>,
    body: Bytes,
) -> Response {
    change(slot, headers, Method::PUT, query, || {
        Ok(RouteEdit::ReplaceRoute {
            name,
            spec: parse::<RouteSpec>(&body)?,
        })
    })
    .await
}

pub async fn remove_route(
    State(slot): State<AdminSlot>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(query): Query<WriteQuery>,
) -> Response {
    change(slot, headers, Method::DELETE, query, || {
        Ok(RouteEdit::RemoveRoute { name })
    })
    .await
}

pub async fn add_room(
    State(slot): State<AdminSlot>,
    Path(route): Path<String>,
    headers: HeaderMap,
    Query(query): Query<WriteQuery>,
    body: Bytes,
) -> Response {
    change(slot, headers, Method::POST, query, || {
        Ok(RouteEdit::AddRoom {
            route,
            room: parse::<RoomSpec>(&body)?,
        })
    })
    .await
}

pub async fn remove_room(
    State(slot): State<AdminSlot>,
    Path((route, network, room)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(query): Query<WriteQuery>,
) -> Response {
    change(slot, headers, Method::DELETE, query, || {
        Ok(RouteEdit::RemoveRoom {
            route,
            network,
            room,
        })
    })
    .await
}

pub async fn reload(State(slot): State<AdminSlot>, headers: HeaderMap) -> Response {
    let (admin, _) = match admit(&slot, &headers, &Method::POST) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    tracing::info!("admin API: reload from the config file requested");
    outcome_response(admin.reloader.reload_file().await)
}

async fn requeue(
    slot: AdminSlot,
    headers: HeaderMap,
    which: impl FnOnce(&Config) -> Result<Requeue, Refused>,
) -> Response {
    let (admin, _) = match admit(&slot, &headers, &Method::POST) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let which = match which(&admin.reloader.current().1) {
        Ok(which) => which,
        Err(response) => return *response,
    };
    match admin.reloader.daemon().store().requeue(which.clone()).await {
        Ok(0) => error(StatusCode::NOT_FOUND, "no such dead letter"),
        Ok(count) => {
            tracing::info!(?which, count, "admin API: dead letters requeued");
            answer(StatusCode::OK, json!({ "requeued": count }))
        }
        Err(store) => error(StatusCode::INTERNAL_SERVER_ERROR, store.to_string()),
    }
}

pub async fn requeue_one(
    State(slot): State<AdminSlot>,
    Path(outbox_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    requeue(slot, headers, |_| {
        outbox_id
            .parse()
            .map(|outbox_id| Requeue::One { outbox_id })
            .map_err(|_| Box::new(error(StatusCode::NOT_FOUND, "no such dead letter")))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomBody {
    network: String,
    room: String,
}

pub async fn requeue_room(
    State(slot): State<AdminSlot>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    requeue(slot, headers, |config| {
        let room: RoomBody = parse(&body)?;
        Ok(Requeue::Room(room_key(config, &room.network, &room.room)))
    })
    .await
}
