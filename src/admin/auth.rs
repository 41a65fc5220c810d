//! Who may use the admin API: a bearer token (API clients) or a session cookie
//! from the login form (the page), and for the page, proof that a state-changing
//! request comes from the page itself (CSRF token and Origin).

use axum::http::{HeaderMap, Method, StatusCode, header};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "sb_admin";
/// How long a page session lasts without logging in again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes first (a flood of logins cannot grow memory).
const MAX_SESSIONS: usize = 64;

/// How a request proved it may use the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Bearer,
    /// The page, with its session's CSRF token.
    Session {
        csrf: String,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no or wrong credentials.
    Unauthenticated,
    /// 403: a cookie request that changes state without the page's CSRF token or
    /// from another origin.
    CrossSite,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::CrossSite => StatusCode::FORBIDDEN,
        }
    }
}

struct Session {
    csrf: String,
    expires: Instant,
    /// The token it logged in with (hashed): a reload that changes the token ends it.
    token: [u8; 32],
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Compared as digests: equal lengths, so the comparison takes the same time
/// whatever the guess, and its length tells nothing either.
pub fn token_matches(given: &str, token: &str) -> bool {
    digest(given).ct_eq(&digest(token)).into()
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Starts a session for a caller that gave the right token; returns its id.
    pub fn open(&self, token: &str) -> String {
        let mut sessions = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, session| session.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        let id = random_hex();
        sessions.insert(
            id.clone(),
            Session {
                csrf: random_hex(),
                expires: now + SESSION_LIFETIME,
                token: digest(token),
            },
        );
        id
    }

    pub fn close(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// The CSRF token of a live session opened with the current `token`.
    fn csrf_of(&self, id: &str, token: &str) -> Option<String> {
        let sessions = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let session = sessions.get(id)?;
        let current: bool = session.token.ct_eq(&digest(token)).into();
        (current && session.expires > Instant::now()).then(|| session.csrf.clone())
    }
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether the request's `Origin` (when the browser sent one) is this server.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin == format!("http://{host}"),
        _ => false,
    }
}

/// Checks the request's credentials against `token`.
pub fn authenticate(
    headers: &HeaderMap,
    method: &Method,
    token: &str,
    sessions: &Sessions,
) -> Result<Caller, Refusal> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let given = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Refusal::Unauthenticated)?;
        return if token_matches(given.trim(), token) {
            Ok(Caller::Bearer)
        } else {
            Err(Refusal::Unauthenticated)
        };
    }
    let id = session_cookie(headers).ok_or(Refusal::Unauthenticated)?;
    let csrf = sessions
        .csrf_of(id, token)
        .ok_or(Refusal::Unauthenticated)?;
    let safe = matches!(*method, Method::GET | Method::HEAD);
    if !safe {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let matches: bool = digest(sent).ct_eq(&digest(&csrf)).into();
        if !matches || !same_origin(headers) {
            return Err(Refusal::CrossSite);
        }
    }
    Ok(Caller::Session { csrf })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TOKEN: &str = "correct horse battery staple";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens_right_wrong_and_malformed() {
        let sessions = Sessions::default();
        let check = |value: &str| {
            authenticate(
                &headers(&[("authorization", value)]),
                &Method::POST,
                TOKEN,
                &sessions,
            )
        };
        assert_eq!(check(&format!("Bearer {TOKEN}")), Ok(Caller::Bearer));
        for wrong in [
            "Bearer correct horse battery stapl",
            "Bearer ",
            "Basic Y29ycmVjdA==",
            TOKEN,
        ] {
            assert_eq!(check(wrong), Err(Refusal::Unauthenticated), "{wrong}");
        }
        assert_eq!(
            authenticate(&HeaderMap::new(), &Method::GET, TOKEN, &sessions),
            Err(Refusal::Unauthenticated)
        );
    }

    #[test]
    fn a_session_reads_freely_but_changes_only_with_its_csrf_token_and_origin() {
        let sessions = Sessions::default();
        let id = sessions.open(TOKEN);
        let cookie = format!("theme=dark; {COOKIE}={id}");
        let Ok(Caller::Session { csrf }) = authenticate(
            &headers(&[("cookie", &cookie)]),
            &Method::GET,
            TOKEN,
            &sessions,
        ) else {
            panic!("a GET with the session cookie is allowed");
        };
        let post = |extra: &[(&'static str, &str)]| {
            let mut pairs = vec![("cookie", cookie.as_str()), ("host", "127.0.0.1:9477")];
            pairs.extend_from_slice(extra);
            authenticate(&headers(&pairs), &Method::POST, TOKEN, &sessions)
        };
        assert_eq!(post(&[]), Err(Refusal::CrossSite));
        assert_eq!(post(&[("x-csrf-token", "nope")]), Err(Refusal::CrossSite));
        assert_eq!(
            post(&[("x-csrf-token", &csrf), ("origin", "http://evil.example")]),
            Err(Refusal::CrossSite)
        );
        assert!(post(&[("x-csrf-token", &csrf), ("origin", "http://127.0.0.1:9477")]).is_ok());
        assert!(post(&[("x-csrf-token", &csrf)]).is_ok());
        // A new token (a reload changed it) ends the session.
        assert_eq!(
            authenticate(
                &headers(&[("cookie", &cookie)]),
                &Method::GET,
                "another token, sixteen+",
                &sessions
            ),
            Err(Refusal::Unauthenticated)
        );
        sessions.close(&id);
        assert_eq!(
            authenticate(
                &headers(&[("cookie", &cookie)]),
                &Method::GET,
                TOKEN,
                &sessions
            ),
            Err(Refusal::Unauthenticated)
        );
    }
}
