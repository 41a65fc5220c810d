//! The admin surface under `/admin`: the JSON API (`api`), the page's login and its
//! static files, and who may use them (`auth`). See docs/admin-api.md.
//!
//! It exists only when `admin.enabled` is set: until the daemon hands over its
//! reloader, and whenever no token is configured, every `/admin` path answers 404
//! as if it did not exist.

mod api;
pub mod auth;

use crate::reload::Reloader;
use auth::Sessions;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use std::sync::{Arc, Mutex};

/// Request bodies larger than this are refused (413): a route is a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// The admin surface's place in the HTTP server, filled once the daemon runs (the
/// reloader needs the daemon, whose HTTP server is started first) and emptied at
/// shutdown (so that the two do not keep each other alive).
#[derive(Clone, Default)]
pub struct AdminSlot(Arc<Mutex<Option<Arc<Admin>>>>);

impl AdminSlot {
    pub fn set(&self, reloader: Arc<Reloader>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Admin {
            reloader,
            sessions: Sessions::default(),
        }));
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The admin surface and its current token, if it is on.
    fn get(&self) -> Option<(Arc<Admin>, Arc<String>)> {
        let admin = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        let token = admin.reloader.admin_token().load_full()?;
        Some((admin, token))
    }
}

pub struct Admin {
    reloader: Arc<Reloader>,
    sessions: Sessions,
}

const INDEX_HTML: &str = include_str!("page/index.html");
const LOGIN_HTML: &str = include_str!("page/login.html");
const ADMIN_JS: &str = include_str!("page/admin.js");
const ADMIN_CSS: &str = include_str!("page/admin.css");
const LOGIN_ERROR_SLOT: &str = "<!--LOGIN_ERROR-->";

/// The `/admin` routes (merged into the HTTP server's).
pub fn router(slot: AdminSlot) -> Router {
    Router::new()
        .route(
            "/admin",
            get(|State(slot): State<AdminSlot>| async move {
                match slot.get() {
                    Some(_) => harden(Redirect::to("/admin/").into_response()),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route("/admin/", get(index))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route(
            "/admin/admin.js",
            get(|State(slot): State<AdminSlot>| async move {
                asset(&slot, "text/javascript; charset=utf-8", ADMIN_JS)
            }),
        )
        .route(
            "/admin/admin.css",
            get(|State(slot): State<AdminSlot>| async move {
                asset(&slot, "text/css; charset=utf-8", ADMIN_CSS)
            }),
        )
        .route("/admin/api/session", get(api::session))
        .route("/admin/api/state", get(api::state))
        .route("/admin/api/reload", post(api::reload))
        .route("/admin/api/routes", post(api::add_route))
        .route(
            "/admin/api/routes/{name}",
            axum::routing::put(api::replace_route).delete(api::remove_route),
        )
        .route("/admin/api/routes/{name}/rooms", post(api::add_room))
        .route(
            "/admin/api/routes/{name}/rooms/{network}/{room}",
            delete(api::remove_room),
        )
        .route("/admin/api/dead-letters/requeue", post(api::requeue_room))
        .route(
            "/admin/api/dead-letters/{outbox_id}/requeue",
            post(api::requeue_one),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(slot)
}

async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// Headers every admin answer carries: nothing from elsewhere runs in the page, it
/// is never framed, and nothing is cached.
fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: with it Chromium sends `Origin: null` on the login form's
        // POST, which the origin check must refuse.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn asset(slot: &AdminSlot, content_type: &'static str, body: &'static str) -> Response {
    if slot.get().is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    harden(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn html(status: StatusCode, body: String) -> Response {
    harden(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

async fn index(State(slot): State<AdminSlot>, headers: HeaderMap) -> Response {
    let Some((admin, token)) = slot.get() else {
        return not_found().await;
    };
    match auth::authenticate(&headers, &axum::http::Method::GET, &token, &admin.sessions) {
        Ok(_) => html(StatusCode::OK, INDEX_HTML.to_owned()),
        Err(_) => harden(Redirect::to("/admin/login").into_response()),
    }
}

async fn login_page(State(slot): State<AdminSlot>) -> Response {
    if slot.get().is_none() {
        return not_found().await;
    }
    html(StatusCode::OK, LOGIN_HTML.to_owned())
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(slot): State<AdminSlot>,
    headers: HeaderMap,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some((admin, token)) = slot.get() else {
        return not_found().await;
    };
    // Another site must not log a visitor in with a token of its choosing.
    if !auth::same_origin(&headers) {
        return harden(StatusCode::FORBIDDEN.into_response());
    }
    let given = form.map(|form| form.0.token).unwrap_or_default();
    if !auth::token_matches(&given, &token) {
        tracing::info!("admin page: a login with a wrong token was refused");
        let page = LOGIN_HTML.replacen(LOGIN_ERROR_SLOT, "That token is not right.", 1);
        return html(StatusCode::UNAUTHORIZED, page);
    }
    let id = admin.sessions.open(&token);
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/admin; Max-Age={}",
        auth::COOKIE,
        auth::SESSION_LIFETIME.as_secs()
    );
    let mut response = Redirect::to("/admin/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    harden(response)
}

async fn logout(State(slot): State<AdminSlot>, headers: HeaderMap) -> Response {
    let Some((admin, token)) = slot.get() else {
        return not_found().await;
    };
    if auth::authenticate(&headers, &axum::http::Method::POST, &token, &admin.sessions).is_ok()
        && let Some(id) = auth::session_cookie(&headers)
    {
        admin.sessions.close(id);
    }
    let mut response = Redirect::to("/admin/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sb_admin=; HttpOnly; SameSite=Strict; Path=/admin; Max-Age=0"),
    );
    harden(response)
}
