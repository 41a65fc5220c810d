//! The admin API over HTTP against an in-process daemon with fake networks (the
//! file's networks are IRC sections the daemon runs fakes under, as in
//! tests/reload.rs): off by default, the token and the page's session with its CSRF
//! token, every kind of bad request refused with nothing changed, changes previewed,
//! applied and written back, concurrent changes serialised (the second gets 409),
//! dead letters shown and requeued, and the outcome in /healthz and /metrics.

mod common;

use common::reloading::{NETWORKS, Reloading, start_reloading};
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use switchboard::Daemon;
use switchboard_sdk::SendError;
use switchboard_sdk::testing::FakeAdapter;

const TOKEN: &str = "a-test-token-of-some-length";

fn text(admin: bool) -> String {
    let admin = if admin {
        format!("admin:\n  enabled: true\n  token: \"{TOKEN}\"\n")
    } else {
        String::new()
    };
    format!(
        "{admin}{NETWORKS}routes:
  # linked since the start
  - name: r
    rooms:
      - a: \"#x\"
      - b: \"#x\"
"
    )
}

struct Admin {
    daemon: Arc<Daemon>,
    fakes: Vec<Arc<FakeAdapter>>,
    path: PathBuf,
    addr: SocketAddr,
    _running: Reloading,
}

async fn start_admin(admin: bool) -> Admin {
    let running = start_reloading(&text(admin)).await;
    running.daemon.serve_admin(running.reloader.clone());
    Admin {
        daemon: running.daemon.clone(),
        fakes: running.fakes.clone(),
        path: running.path.clone(),
        addr: running.daemon.http_addr().unwrap(),
        _running: running,
    }
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}\r\n")
}

impl Admin {
    async fn call(&self, method: &str, path: &str, headers: &str, body: &str) -> (u16, Value) {
        let (status, body) = http_request(self.addr, method, path, headers, body).await;
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    async fn state(&self) -> Value {
        let (status, state) = self.call("GET", "/admin/api/state", &bearer(), "").await;
        assert_eq!(status, 200, "{state}");
        state
    }

    /// A write as an API client makes it, on generation `generation`.
    async fn write(&self, method: &str, path: &str, generation: u64, body: &Value) -> (u16, Value) {
        let headers = format!(
            "{}If-Match: \"{generation}\"\r\nContent-Type: application/json\r\n",
            bearer()
        );
        self.call(method, path, &headers, &body.to_string()).await
    }

    fn file(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }
}

#[tokio::test]
async fn off_by_default_every_admin_path_is_404() {
    let admin = start_admin(false).await;
    for path in [
        "/admin/",
        "/admin/login",
        "/admin/admin.js",
        "/admin/api/state",
    ] {
        let (status, _) = admin.call("GET", path, &bearer(), "").await;
        assert_eq!(status, 404, "{path}");
    }
    admin.daemon.shutdown().await;
}

#[tokio::test]
async fn without_the_right_token_nothing_is_read_or_changed() {
    let admin = start_admin(true).await;
    let before = admin.file();
    for headers in [
        String::new(),
        "Authorization: Bearer wrong-token-of-some-length\r\n".to_owned(),
        format!("Authorization: Basic {TOKEN}\r\n"),
    ] {
        let (status, _) = admin.call("GET", "/admin/api/state", &headers, "").await;
        assert_eq!(status, 401, "{headers:?}");
        let (status, _) = admin
            .call(
                "DELETE",
                "/admin/api/routes/r",
                &format!("{headers}If-Match: \"1\"\r\n"),
                "",
            )
            .await;
        assert_eq!(status, 401, "{headers:?}");
    }
    assert_eq!(admin.file(), before);
    assert_eq!(admin.state().await["generation"], 1);
    admin.daemon.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let admin = start_admin(true).await;
    let before = admin.file();
    let room = json!({"network": "c", "room": "#x"});
    // No If-Match, a stale one, a malformed body, an unknown field, a huge body.
    let (status, _) = admin
        .call(
            "POST",
            "/admin/api/routes/r/rooms",
            &bearer(),
            &room.to_string(),
        )
        .await;
    assert_eq!(status, 428);
    let (status, body) = admin
        .write("POST", "/admin/api/routes/r/rooms", 7, &room)
        .await;
    assert_eq!(
        (status, &body["outcome"]),
        (409, &json!("conflict")),
        "{body}"
    );
    let headers = format!("{}If-Match: \"1\"\r\n", bearer());
    let (status, body) = admin
        .call(
            "POST",
            "/admin/api/routes/r/rooms",
            &headers,
            "{\"network\": ",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = admin
        .write(
            "POST",
            "/admin/api/routes/r/rooms",
            1,
            &json!({"network": "c", "room": "#x", "colour": "red"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("colour"), "{body}");
    let huge = json!({"network": "c", "room": "x".repeat(70_000)});
    let (status, _) = admin
        .write("POST", "/admin/api/routes/r/rooms", 1, &huge)
        .await;
    assert_eq!(status, 413);
    // Invalid as a config: the same message as `switchboard check`, with a position.
    let (status, body) = admin
        .write(
            "POST",
            "/admin/api/routes/r/rooms",
            1,
            &json!({"network": "nowhere", "room": "#x"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["message"], "unknown network \"nowhere\"", "{body}");
    assert!(
        error["line"].as_u64().is_some() && error["column"].as_u64().is_some(),
        "{body}"
    );
    let (status, body) = admin
        .write(
            "POST",
            "/admin/api/routes/r/rooms",
            1,
            &json!({"network": "b", "room": "#X"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("appears twice"),
        "{body}"
    );
    let (status, _) = admin
        .write("DELETE", "/admin/api/routes/nope", 1, &Value::Null)
        .await;
    assert_eq!(status, 404);
    let (status, _) = admin
        .write(
            "POST",
            "/admin/api/routes",
            1,
            &json!({"name": "lonely", "rooms": [{"network": "a", "room": "#l"}]}),
        )
        .await;
    assert_eq!(status, 422, "a route links at least two rooms");
    assert_eq!(admin.file(), before, "nothing was written");
    assert_eq!(admin.state().await["generation"], 1);
    admin.daemon.shutdown().await;
}

#[tokio::test]
async fn a_room_is_previewed_added_written_back_relayed_and_removed() {
    let admin = start_admin(true).await;
    let room = json!({"network": "c", "room": "#x", "direction": "sink"});
    let (status, preview) = admin
        .write("POST", "/admin/api/routes/r/rooms?dry_run=true", 1, &room)
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["outcome"], "preview");
    assert_eq!(
        preview["diff"]["rooms_added"],
        json!([{"network": "c", "room": "#x"}])
    );
    assert!(!admin.file().contains("- c:"), "a dry run writes nothing");

    let (status, applied) = admin
        .write("POST", "/admin/api/routes/r/rooms", 1, &room)
        .await;
    assert_eq!(
        (status, &applied["outcome"]),
        (200, &json!("applied")),
        "{applied}"
    );
    assert_eq!(applied["generation"], 2);
    let file = admin.file();
    assert!(
        file.contains("  # linked since the start\n"),
        "comments kept:\n{file}"
    );
    assert!(
        file.contains("- c: \"#x\"\n        direction: sink\n"),
        "{file}"
    );
    let state = admin.state().await;
    let rooms = &state["routes"][0]["rooms"];
    assert_eq!(rooms[2]["network"], "c");
    assert_eq!(rooms[2]["direction"], "sink");
    admin.fakes[0]
        .receive("#x", "alice", "m1", "to all")
        .await
        .unwrap();
    assert_eq!(
        texts(&admin.fakes[2].wait_for_sent(1, WAIT).await),
        ["to all"]
    );

    let (status, removed) = admin
        .write(
            "DELETE",
            "/admin/api/routes/r/rooms/c/%23x",
            2,
            &Value::Null,
        )
        .await;
    assert_eq!(
        (status, &removed["outcome"]),
        (200, &json!("applied")),
        "{removed}"
    );
    assert_eq!(
        removed["diff"]["rooms_removed"],
        json!([{"network": "c", "room": "#x"}])
    );
    assert!(!admin.file().contains("- c:"));

    let (_, health) = http_get(admin.addr, "/healthz").await;
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["config"]["generation"], 3, "{health}");
    let (_, metrics) = http_get(admin.addr, "/metrics").await;
    assert!(
        metrics.contains("switchboard_config_reloads_total{outcome=\"applied\"}"),
        "{metrics}"
    );
    admin.daemon.shutdown().await;
}

#[tokio::test]
async fn two_changes_at_once_one_applies_and_the_other_gets_409() {
    let admin = Arc::new(start_admin(true).await);
    let one = json!({"name": "one", "rooms": [{"network": "a", "room": "#1"}, {"network": "c", "room": "#1"}]});
    let two = json!({"name": "two", "rooms": [{"network": "a", "room": "#2"}, {"network": "c", "room": "#2"}]});
    let (first, second) = tokio::join!(
        admin.write("POST", "/admin/api/routes", 1, &one),
        admin.write("POST", "/admin/api/routes", 1, &two),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let state = admin.state().await;
    assert_eq!(state["generation"], 2);
    assert_eq!(state["routes"].as_array().unwrap().len(), 2);
    admin.daemon.shutdown().await;
}

#[tokio::test]
async fn a_dead_letter_is_shown_and_requeued() {
    let admin = start_admin(true).await;
    admin.fakes[1].fail_next([SendError::Permanent("no such channel".into())]);
    admin.fakes[0]
        .receive("#x", "alice", "m1", "lost for now")
        .await
        .unwrap();
    let store = admin.daemon.store().clone();
    eventually("the dead letter", || {
        let store = store.clone();
        async move { store.dead_letters().await.unwrap().len() == 1 }
    })
    .await;
    let state = admin.state().await;
    let letter = &state["dead_letters"][0];
    assert_eq!(letter["network"], "b");
    assert_eq!(letter["text"], "lost for now");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("no such channel"),
        "{letter}"
    );
    let (status, _) = admin
        .call(
            "POST",
            "/admin/api/dead-letters/12345/requeue",
            &bearer(),
            "",
        )
        .await;
    assert_eq!(status, 404);
    let id = letter["outbox_id"].as_i64().unwrap();
    let (status, body) = admin
        .call(
            "POST",
            &format!("/admin/api/dead-letters/{id}/requeue"),
            &bearer(),
            "",
        )
        .await;
    assert_eq!((status, &body["requeued"]), (200, &json!(1)), "{body}");
    assert_eq!(
        texts(&admin.fakes[1].wait_for_sent(1, WAIT).await),
        ["lost for now"]
    );
    assert!(
        admin.state().await["dead_letters"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    admin.daemon.shutdown().await;
}

/// The page's way in: a login form, an HttpOnly cookie, and a CSRF token on writes.
#[tokio::test]
async fn the_page_session_needs_its_csrf_token_and_its_own_origin_to_change_anything() {
    let admin = start_admin(true).await;
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let (status, page) =
        http_request(admin.addr, "POST", "/admin/login", form, "token=wrong").await;
    assert_eq!(status, 401);
    assert!(page.contains("That token is not right."));
    let raw = raw_request(admin.addr, &format!("POST /admin/login HTTP/1.1\r\nHost: localhost\r\n{form}Content-Length: {}\r\nConnection: close\r\n\r\ntoken={TOKEN}", TOKEN.len() + 6)).await;
    assert!(raw.starts_with("HTTP/1.1 303"), "{raw}");
    let cookie_line = raw
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_cookie = format!("Cookie: {cookie}\r\n");
    let (status, session) = admin
        .call("GET", "/admin/api/session", &with_cookie, "")
        .await;
    assert_eq!(status, 200);
    let csrf = session["csrf"].as_str().unwrap().to_owned();
    let (status, _) = http_request(admin.addr, "GET", "/admin/", &with_cookie, "").await;
    assert_eq!(status, 200);
    let write = |extra: String| {
        let headers = format!("{with_cookie}If-Match: \"1\"\r\n{extra}");
        let admin = &admin;
        async move {
            let room = json!({"network": "c", "room": "#x"}).to_string();
            admin
                .call(
                    "POST",
                    "/admin/api/routes/r/rooms?dry_run=true",
                    &headers,
                    &room,
                )
                .await
                .0
        }
    };
    assert_eq!(write(String::new()).await, 403, "no CSRF token");
    assert_eq!(write("X-CSRF-Token: forged\r\n".into()).await, 403);
    assert_eq!(
        write(format!(
            "X-CSRF-Token: {csrf}\r\nOrigin: http://evil.example\r\n"
        ))
        .await,
        403
    );
    assert_eq!(
        write(format!(
            "X-CSRF-Token: {csrf}\r\nOrigin: http://localhost\r\n"
        ))
        .await,
        200
    );
    admin.daemon.shutdown().await;
}

async fn raw_request(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}
