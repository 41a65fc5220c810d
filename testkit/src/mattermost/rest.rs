//! The REST side of the fake: routes under `/api/v4`, public file links, and the
//! middleware every HTTP request goes through (request log, rate limiting,
//! forced failures, delay, AppError bodies with their request id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::{
    AppError, Inner, MAX_BODY_BYTES, MAX_FILE_BYTES, NewPost, Post, PostPatch, is_valid_id, new_id,
    server_version, webhooks, websocket,
};

pub(super) fn router(inner: Arc<Inner>) -> Router {
    let channel_by_name = "/api/v4/teams/name/{team_name}/channels/name/{channel_name}";
    Router::new()
        .route("/api/v4/system/ping", get(ping))
        .route("/api/v4/users/login", post(login))
        .route("/api/v4/users/logout", post(logout))
        .route("/api/v4/users/ids", post(users_by_ids))
        .route("/api/v4/users/username/{username}", get(user_by_name))
        .route("/api/v4/users/{user_id}", get(get_user))
        .route("/api/v4/users/{user_id}/image", get(user_image))
        .route("/api/v4/config/client", get(client_config))
        .route("/api/v4/teams/name/{team_name}", get(team_by_name))
        .route("/api/v4/teams/{team_id}", get(team_by_id))
        .route(channel_by_name, get(get_channel_by_name))
        .route("/api/v4/channels/{channel_id}", get(get_channel))
        .route("/api/v4/channels/{channel_id}/members", post(add_member))
        .route(
            "/api/v4/channels/{channel_id}/members/{user_id}",
            get(get_member),
        )
        .route("/api/v4/channels/{channel_id}/posts", get(channel_posts))
        .route("/api/v4/posts", post(create_post))
        .route("/api/v4/posts/{post_id}", get(get_post).delete(delete_post))
        .route("/api/v4/posts/{post_id}/patch", put(patch_post))
        .route("/api/v4/files", post(upload_files))
        .route("/api/v4/files/{file_id}", get(get_file))
        .route("/api/v4/files/{file_id}/info", get(file_info))
        .route("/api/v4/files/{file_id}/link", get(file_link))
        .route("/files/{file_id}/public", get(public_file))
        .route("/hooks/{hook_id}", post(webhooks::incoming))
        .route("/api/v4/websocket", get(websocket::upgrade))
        .merge(super::reactions::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(inner.clone(), around))
        .layer(DefaultBodyLimit::max(MAX_FILE_BYTES))
        .with_state(inner)
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        // The body needs the request id, which only the middleware knows.
        response.extensions_mut().insert(self);
        response
    }
}

async fn around(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let is_rest = request.uri().path() != "/api/v4/websocket";
    let request_id = new_id();
    let (refused, rate_headers) = if is_rest {
        gate(&inner)
    } else {
        (None, Vec::new())
    };
    let mut response = match refused {
        Some(response) => response,
        None => next.run(request).await,
    };
    let delay = inner.lock().delay;
    if let (true, Some(delay)) = (is_rest, delay) {
        tokio::time::sleep(delay).await;
    }
    if let Some(error) = response.extensions_mut().remove::<AppError>() {
        *response.body_mut() = Body::from(error.to_json(&request_id).to_string());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let headers = response.headers_mut();
    set_header(headers, "x-request-id", &request_id);
    set_header(headers, "x-version-id", &server_version());
    for (name, value) in rate_headers {
        set_header(headers, name, &value);
    }
    inner
        .lock()
        .request_log
        .push((method, path, response.status().as_u16()));
    inner.bump();
    response
}

/// Applies rate limiting and forced failures; returns the refusal, if any,
/// and the rate-limit headers to put on the answer.
fn gate(inner: &Inner) -> (Option<Response>, Vec<(&'static str, String)>) {
    let mut st = inner.lock();
    let mut headers = Vec::new();
    if let Some(limit) = st.rate_limit {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        let (start, count) = match st.rate_window {
            Some((start, count)) if now.duration_since(start) < second => (start, count + 1),
            _ => (now, 1),
        };
        st.rate_window = Some((start, count));
        let reset = (second - now.duration_since(start))
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64;
        headers.push(("x-ratelimit-limit", limit.to_string()));
        headers.push((
            "x-ratelimit-remaining",
            limit.saturating_sub(count).to_string(),
        ));
        headers.push(("x-ratelimit-reset", reset.to_string()));
        if count > limit {
            headers.push(("retry-after", reset.to_string()));
            // Mattermost's limiter answers with Go's http.Error: plain text.
            let refusal = (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    (CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (HeaderName::from_static("x-content-type-options"), "nosniff"),
                ],
                "limit exceeded\n",
            );
            return (Some(refusal.into_response()), headers);
        }
    }
    if let Some(status) = st.fail_rest {
        let error = AppError::new(
            status,
            "fake.fail_rest.app_error",
            "The fake server was told to fail this request.",
        );
        return (Some(error.into_response()), headers);
    }
    (None, headers)
}

fn set_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// The session token of a request: `Authorization: Bearer|Token X` or the
/// `MMAUTHTOKEN` cookie.
pub(super) fn token_from(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        for scheme in ["bearer ", "token "] {
            if value.len() > scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme) {
                return Some(value[scheme.len()..].trim().to_owned());
            }
        }
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("MMAUTHTOKEN=").map(str::to_owned))
}

pub(super) fn session(inner: &Inner, headers: &HeaderMap) -> Result<String, AppError> {
    token_from(headers)
        .and_then(|token| inner.session_user(&token))
        .ok_or_else(AppError::session_expired)
}

pub(super) fn require_id(value: &str, name: &str) -> Result<(), AppError> {
    if is_valid_id(value) {
        Ok(())
    } else {
        Err(AppError::invalid_param(name))
    }
}

/// Reads a request body up to `MAX_BODY_BYTES`. An oversized body is still
/// drained (up to a bound) so the client reads the 413 instead of a reset.
pub(super) async fn read_body(body: Body) -> Result<Bytes, AppError> {
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    let mut drained = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        if collected.len() + chunk.len() <= MAX_BODY_BYTES {
            collected.extend_from_slice(&chunk);
        } else {
            drained += chunk.len();
            if drained > 16 * MAX_BODY_BYTES {
                break;
            }
        }
    }
    if drained > 0 {
        return Err(AppError::new(
            413,
            "api.context.request_body_too_large.app_error",
            "The request body is too large.",
        ));
    }
    Ok(collected.into())
}

pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, AppError> {
    serde_json::from_slice(bytes).map_err(|_| AppError::invalid_body(what))
}

async fn not_found() -> AppError {
    AppError::new(
        404,
        "api.context.404.app_error",
        "Sorry, we could not find the page.",
    )
}

async fn ping() -> Json<Value> {
    Json(json!({
        "ActiveSearchBackend": "database",
        "AndroidLatestVersion": "",
        "AndroidMinVersion": "",
        "IosLatestVersion": "",
        "IosMinVersion": "",
        "status": "OK",
    }))
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(default)]
    login_id: String,
    #[serde(default)]
    password: String,
}

async fn login(State(inner): State<Arc<Inner>>, body: Body) -> Result<Response, AppError> {
    let body: LoginBody = parse_json(&read_body(body).await?, "login_id")?;
    let mut st = inner.lock();
    let user = st.users.iter().find(|u| {
        let email = format!("{}@switchboard.test", u.username);
        (u.username == body.login_id || email == body.login_id)
            && u.password.as_deref() == Some(body.password.as_str())
    });
    let Some(user) = user else {
        return Err(AppError::new(
            401,
            "api.user.login.invalid_credentials_email_username",
            "Enter a valid email or username and/or password.",
        ));
    };
    let (user_id, user_json) = (user.id.clone(), st.user_json(user, true));
    let token = new_id();
    st.tokens.insert(token.clone(), user_id.clone());
    let mut response = Json(user_json).into_response();
    let headers = response.headers_mut();
    set_header(headers, "token", &token);
    for cookie in [
        format!("MMAUTHTOKEN={token}; Path=/; Max-Age=2592000; HttpOnly"),
        format!("MMUSERID={user_id}; Path=/; Max-Age=2592000"),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

async fn logout(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Json<Value> {
    if let Some(token) = token_from(&headers) {
        inner.lock().tokens.remove(&token);
    }
    Json(json!({ "status": "OK" }))
}

async fn get_user(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let me = session(&inner, &headers)?;
    let user_id = if user_id == "me" {
        me.clone()
    } else {
        require_id(&user_id, "user_id")?;
        user_id
    };
    let st = inner.lock();
    let user = st.user(&user_id).ok_or_else(AppError::user_not_found)?;
    Ok(Json(st.user_json(user, user_id == me)))
}

async fn user_by_name(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<Json<Value>, AppError> {
    let me = session(&inner, &headers)?;
    let st = inner.lock();
    let user = st
        .user_by_name(&username)
        .ok_or_else(AppError::user_not_found)?;
    Ok(Json(st.user_json(user, user.id == me)))
}

async fn users_by_ids(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    let me = session(&inner, &headers)?;
    let ids: Vec<String> = parse_json(&read_body(body).await?, "user_ids")?;
    let st = inner.lock();
    let users: Vec<Value> = ids
        .iter()
        .filter_map(|id| st.user(id))
        .map(|u| st.user_json(u, u.id == me))
        .collect();
    Ok(Json(Value::Array(users)))
}

/// A 1x1 PNG standing in for every profile picture.
pub(super) const AVATAR_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xd0, 0xcd, 0x59, 0xf0,
    0x1f, 0x00, 0x04, 0x3c, 0x02, 0x39, 0x07, 0xcd, 0xb6, 0xb2, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn user_image(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
) -> Result<Response, AppError> {
    session(&inner, &headers)?;
    require_id(&user_id, "user_id")?;
    if inner.lock().user(&user_id).is_none() {
        return Err(AppError::user_not_found());
    }
    Ok(([(CONTENT_TYPE, "image/png")], AVATAR_PNG).into_response())
}

async fn client_config(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    if query.get("format").map(String::as_str) != Some("old") {
        return Err(AppError::new(
            501,
            "api.config.client.old_format.app_error",
            "New format for the client configuration is not supported yet. Please specify format=old in the query string.",
        ));
    }
    let logged_in = session(&inner, &headers).is_ok();
    Ok(Json(inner.lock().client_config(logged_in)))
}

fn team_not_found() -> AppError {
    AppError::new(
        404,
        "app.team.get_by_name.missing.app_error",
        "Unable to find the existing team.",
    )
}

async fn team_by_name(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(team_name): Path<String>,
) -> Result<Json<Value>, AppError> {
    session(&inner, &headers)?;
    let st = inner.lock();
    let team = st
        .teams
        .iter()
        .find(|t| t.name == team_name)
        .ok_or_else(team_not_found)?;
    Ok(Json(st.team_json(team)))
}

async fn team_by_id(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(team_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    session(&inner, &headers)?;
    require_id(&team_id, "team_id")?;
    let st = inner.lock();
    let team = st.team(&team_id).ok_or_else(|| {
        AppError::new(
            404,
            "app.team.get.find.app_error",
            "Unable to find the existing team.",
        )
    })?;
    Ok(Json(st.team_json(team)))
}

async fn get_channel_by_name(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((team_name, channel_name)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    session(&inner, &headers)?;
    let st = inner.lock();
    let team = st
        .teams
        .iter()
        .find(|t| t.name == team_name)
        .ok_or_else(team_not_found)?;
    let channel = st
        .channels
        .iter()
        .find(|c| c.team_id == team.id && c.name == channel_name)
        .ok_or_else(|| {
            AppError::new(
                404,
                "app.channel.get_by_name.missing.app_error",
                "Channel does not exist.",
            )
        })?;
    Ok(Json(st.channel_json(channel)))
}

async fn get_channel(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(channel_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    session(&inner, &headers)?;
    require_id(&channel_id, "channel_id")?;
    let st = inner.lock();
    let channel = st
        .channel(&channel_id)
        .ok_or_else(AppError::channel_not_found)?;
    Ok(Json(st.channel_json(channel)))
}

#[derive(Deserialize)]
struct MemberBody {
    #[serde(default)]
    user_id: String,
}

async fn add_member(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(channel_id): Path<String>,
    body: Body,
) -> Result<Response, AppError> {
    let me = session(&inner, &headers)?;
    require_id(&channel_id, "channel_id")?;
    let body: MemberBody = parse_json(&read_body(body).await?, "user_id")?;
    if !is_valid_id(&body.user_id) {
        return Err(AppError::invalid_body("user_id"));
    }
    {
        let st = inner.lock();
        if st.channel(&channel_id).is_none() {
            return Err(AppError::channel_not_found());
        }
        if st.user(&body.user_id).is_none() {
            return Err(AppError::user_not_found());
        }
        // Adding someone else takes being in the channel oneself.
        if body.user_id != me && !st.is_member(&channel_id, &me) {
            return Err(AppError::forbidden());
        }
    }
    inner.add_member(&channel_id, &body.user_id, &me)?;
    let member = inner.lock().member_json(&channel_id, &body.user_id);
    Ok((StatusCode::CREATED, Json(member)).into_response())
}

async fn get_member(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((channel_id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let me = session(&inner, &headers)?;
    require_id(&channel_id, "channel_id")?;
    let user_id = if user_id == "me" { me } else { user_id };
    require_id(&user_id, "user_id")?;
    let st = inner.lock();
    if st.channel(&channel_id).is_none() {
        return Err(AppError::channel_not_found());
    }
    if !st.is_member(&channel_id, &user_id) {
        return Err(AppError::new(
            404,
            "app.channel.get_member.missing.app_error",
            "No channel member found for that user ID and channel ID.",
        ));
    }
    Ok(Json(st.member_json(&channel_id, &user_id)))
}

fn post_list(posts: &[Post], next_post_id: &str, prev_post_id: &str) -> Value {
    let order: Vec<&str> = posts.iter().map(|p| p.id.as_str()).collect();
    let map: Map<String, Value> = posts
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                serde_json::to_value(p).expect("a post always serialises"),
            )
        })
        .collect();
    json!({
        "order": order,
        "posts": map,
        "next_post_id": next_post_id,
        "prev_post_id": prev_post_id,
        "has_next": !next_post_id.is_empty(),
        "first_inaccessible_post_time": 0,
    })
}

fn query_number(
    query: &HashMap<String, String>,
    name: &str,
    default: i64,
) -> Result<i64, AppError> {
    match query.get(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| AppError::invalid_param(name)),
    }
}

/// `since`: posts changed after that instant (strictly), deleted ones included
/// with their message blanked, at most 1,000 of them; the API reference says the
/// answer is not paged and "there is no guarantee that the returned posts will be
/// consecutive" (the server's query limits before it orders), and this fake keeps
/// the 1,000 newest by creation. Otherwise a page of live posts, newest first,
/// `per_page` (default 60) cut to 200, optionally before or after a post: the
/// anchor is found by its creation time, so a deleted anchor still works.
async fn channel_posts(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(channel_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    session(&inner, &headers)?;
    require_id(&channel_id, "channel_id")?;
    let st = inner.lock();
    if st.channel(&channel_id).is_none() {
        return Err(AppError::channel_not_found());
    }
    let mut posts = st.channel_posts(&channel_id);
    // Newest first; posts sharing a millisecond keep their order of creation.
    posts.reverse();
    posts.sort_by_key(|p| std::cmp::Reverse(p.create_at));
    if query.contains_key("since") {
        let since = query_number(&query, "since", 0)?;
        let changed: Vec<Post> = posts
            .into_iter()
            .filter(|p| p.update_at > since)
            .map(|mut p| {
                if p.delete_at != 0 {
                    p.message.clear();
                }
                p
            })
            .take(SINCE_LIMIT)
            .collect();
        return Ok(Json(post_list(&changed, "", "")));
    }
    let anchor_time = |name: &str| {
        query
            .get(name)
            .filter(|id| !id.is_empty())
            .map(|id| posts.iter().find(|p| &p.id == id).map(|p| p.create_at))
    };
    let (before, after) = (anchor_time("before"), anchor_time("after"));
    let live: Vec<Post> = posts.iter().filter(|p| p.delete_at == 0).cloned().collect();
    let page = query_number(&query, "page", 0)?.max(0) as usize;
    let per_page = query_number(&query, "per_page", 60)?.clamp(1, MAX_PER_PAGE) as usize;
    // Indices into `live` (newest first) of the page to return.
    let range = match (before, after) {
        (Some(None), _) | (_, Some(None)) => 0..0,
        (Some(Some(at)), _) => {
            let first_older = live
                .iter()
                .position(|p| p.create_at < at)
                .unwrap_or(live.len());
            let start = (first_older + page * per_page).min(live.len());
            start..(start + per_page).min(live.len())
        }
        (_, Some(Some(at))) => {
            let newer = live.iter().take_while(|p| p.create_at > at).count();
            let end = newer.saturating_sub(page * per_page);
            end.saturating_sub(per_page)..end
        }
        _ => {
            let start = (page * per_page).min(live.len());
            start..(start + per_page).min(live.len())
        }
    };
    let next = match range.start {
        0 => String::new(),
        i if !range.is_empty() => live[i - 1].id.clone(),
        _ => String::new(),
    };
    let prev = if !range.is_empty() && range.end < live.len() {
        live[range.end].id.clone()
    } else {
        String::new()
    };
    Ok(Json(post_list(&live[range], &next, &prev)))
}

/// The most posts one `since` answer holds.
const SINCE_LIMIT: usize = 1000;
/// `per_page` above this is cut to it.
const MAX_PER_PAGE: i64 = 200;

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreatePostBody {
    channel_id: String,
    message: String,
    root_id: String,
    props: Option<Map<String, Value>>,
    file_ids: Option<Vec<String>>,
    pending_post_id: String,
    r#type: String,
}

async fn create_post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let me = session(&inner, &headers)?;
    let body: CreatePostBody = parse_json(&read_body(body).await?, "post")?;
    if !is_valid_id(&body.channel_id) {
        return Err(AppError::invalid_body("channel_id"));
    }
    if body.r#type.starts_with("system_") {
        return Err(AppError::new(
            400,
            "api.context.invalid_param.app_error",
            "Invalid post.type parameter.",
        ));
    }
    // Posting takes channel membership; the server answers 403 for an
    // unknown channel too, as its permission check comes first.
    if !inner.lock().is_member(&body.channel_id, &me) {
        return Err(AppError::forbidden());
    }
    let mut new = NewPost::by_user(&me, &body.channel_id, &body.message, &body.root_id);
    new.r#type = body.r#type;
    new.props = body.props.unwrap_or_default();
    new.file_ids = body.file_ids.unwrap_or_default();
    new.pending_post_id = body.pending_post_id;
    let post = inner.publish(new, true)?;
    Ok((StatusCode::CREATED, Json(post)).into_response())
}

/// The live post, for a caller that must be its author unless `any_author`.
fn live_post(inner: &Inner, post_id: &str, me: &str, any_author: bool) -> Result<Post, AppError> {
    require_id(post_id, "post_id")?;
    let st = inner.lock();
    let post = st
        .post_index(post_id)
        .map(|i| &st.posts[i])
        .filter(|p| p.delete_at == 0)
        .ok_or_else(AppError::post_not_found)?;
    let admin = st.user(me).is_some_and(|u| u.is_admin());
    if !any_author && post.user_id != me && !admin {
        return Err(AppError::forbidden());
    }
    Ok(post.clone())
}

async fn get_post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(post_id): Path<String>,
) -> Result<Json<Post>, AppError> {
    let me = session(&inner, &headers)?;
    Ok(Json(live_post(&inner, &post_id, &me, true)?))
}

async fn delete_post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(post_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let me = session(&inner, &headers)?;
    live_post(&inner, &post_id, &me, false)?;
    inner.delete(&post_id, &me)?;
    Ok(Json(json!({ "status": "OK" })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PatchBody {
    message: Option<String>,
    props: Option<Map<String, Value>>,
    file_ids: Option<Vec<String>>,
    is_pinned: Option<bool>,
}

async fn patch_post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(post_id): Path<String>,
    body: Body,
) -> Result<Json<Post>, AppError> {
    let me = session(&inner, &headers)?;
    let body: PatchBody = parse_json(&read_body(body).await?, "patch")?;
    live_post(&inner, &post_id, &me, false)?;
    let patch = PostPatch {
        message: body.message,
        props: body.props,
        file_ids: body.file_ids,
        is_pinned: body.is_pinned,
    };
    Ok(Json(inner.patch(&post_id, patch)?))
}

fn upload_error() -> AppError {
    AppError::bad_request(
        "api.file.upload_file.read_request.app_error",
        "Unable to upload file(s). Error reading or parsing request data.",
    )
}

/// Multipart (`channel_id` and `files` parts, optional `client_ids`) or a raw
/// body with `?channel_id=&filename=`, as the server accepts both.
async fn upload_files(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, AppError> {
    let me = session(&inner, request.headers())?;
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut channel_id = query.get("channel_id").cloned().unwrap_or_default();
    let mut files: Vec<(String, Bytes)> = Vec::new();
    let mut client_ids: Vec<String> = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|_| upload_error())?;
        while let Some(field) = multipart.next_field().await.map_err(|_| upload_error())? {
            match field.name().unwrap_or_default() {
                "channel_id" => channel_id = field.text().await.map_err(|_| upload_error())?,
                "client_ids" => client_ids.push(field.text().await.map_err(|_| upload_error())?),
                "files" => {
                    let name = field.file_name().unwrap_or("file").to_owned();
                    files.push((name, field.bytes().await.map_err(|_| upload_error())?));
                }
                _ => {}
            }
        }
    } else {
        let name = query.get("filename").cloned().ok_or_else(upload_error)?;
        let bytes = axum::body::to_bytes(request.into_body(), MAX_FILE_BYTES)
            .await
            .map_err(|_| upload_error())?;
        files.push((name, bytes));
    }
    require_id(&channel_id, "channel_id")?;
    if files.is_empty() {
        return Err(upload_error());
    }
    let mut st = inner.lock();
    if !st.is_member(&channel_id, &me) {
        return Err(AppError::forbidden());
    }
    let infos: Vec<Value> = files
        .into_iter()
        .map(|(name, bytes)| {
            let id = st.store_file(&me, &channel_id, &name, bytes.to_vec());
            serde_json::to_value(&st.files[&id].info).expect("file info serialises")
        })
        .collect();
    let answer = json!({ "file_infos": infos, "client_ids": client_ids });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

fn file_not_found() -> AppError {
    AppError::new(
        404,
        "app.file_info.get.app_error",
        "Unable to get the file info.",
    )
}

/// The file's info and bytes, for a caller who may read it: its uploader or a
/// member of its channel.
fn readable_file(
    inner: &Inner,
    headers: &HeaderMap,
    file_id: &str,
) -> Result<(super::FileInfo, Bytes, String), AppError> {
    let me = session(inner, headers)?;
    require_id(file_id, "file_id")?;
    let st = inner.lock();
    let file = st
        .files
        .get(file_id)
        .filter(|f| f.info.delete_at == 0)
        .ok_or_else(file_not_found)?;
    if file.info.user_id != me && !st.is_member(&file.info.channel_id, &me) {
        return Err(AppError::forbidden());
    }
    Ok((
        file.info.clone(),
        Bytes::from(file.bytes.clone()),
        file.public_hash.clone(),
    ))
}

fn file_response(info: &super::FileInfo, bytes: Bytes) -> Response {
    let disposition = format!("attachment;filename=\"{}\"", info.name.replace('"', ""));
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&info.mime_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    response
}

async fn get_file(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(file_id): Path<String>,
) -> Result<Response, AppError> {
    let (info, bytes, _) = readable_file(&inner, &headers, &file_id)?;
    Ok(file_response(&info, bytes))
}

async fn file_info(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(file_id): Path<String>,
) -> Result<Response, AppError> {
    let (info, _, _) = readable_file(&inner, &headers, &file_id)?;
    Ok(Json(info).into_response())
}

async fn file_link(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(file_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let (info, _, hash) = readable_file(&inner, &headers, &file_id)?;
    if info.post_id.is_empty() {
        return Err(AppError::bad_request(
            "api.file.get_public_link.no_post.app_error",
            "Unable to get public link for file. File must be attached to a post that can be read by the current user.",
        ));
    }
    let site = inner.lock().site_url.clone();
    Ok(Json(
        json!({ "link": format!("{site}/files/{file_id}/public?h={hash}") }),
    ))
}

async fn public_file(
    State(inner): State<Arc<Inner>>,
    Path(file_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let st = inner.lock();
    let file = st.files.get(&file_id).filter(|f| {
        f.info.delete_at == 0
            && Some(&f.public_hash) == query.get("h")
            && !f.info.post_id.is_empty()
    });
    match file {
        Some(file) => file_response(&file.info, Bytes::from(file.bytes.clone())),
        None => (StatusCode::BAD_REQUEST, "invalid or expired public link").into_response(),
    }
}
