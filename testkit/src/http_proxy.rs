//! `HttpProxy`: a small HTTP/1.1 reverse proxy on a free loopback port, put between a
//! client under test and a plain-http server (e.g. the bridge and Synapse), for fault
//! tests that need to act at an exact point of one exchange.
//!
//! Every request is forwarded to the upstream as it came (method, path and query,
//! headers but the hop-by-hop ones, body) and the upstream's answer is passed back;
//! bodies are buffered, not streamed, which suits JSON APIs and long polls alike.
//! Each request is recorded in arrival order, with the upstream's status once known.
//!
//! `hold_next` arms a one-shot hold: the next matching request is still forwarded and
//! answered by the upstream, so the server has acted on it, but the answer is kept from
//! the client until the `Hold` is released or dropped. A test can then kill the client
//! exactly between "the server did it" and "the client learned it did".
//!
//! The upstream exchange runs in its own task, so a client that disconnects midway
//! does not cancel a request the server is already handling (as on a real network).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Headers that describe one connection, not the message: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// The upstream's answer to a held request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub method: String,
    /// Path with query, as the client sent it.
    pub path: String,
    pub status: u16,
    pub body: String,
}

/// One request that went through the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub method: String,
    /// Path with query, as the client sent it.
    pub path: String,
    /// The upstream's status; `None` while it has not answered (or could not).
    pub status: Option<u16>,
}

/// A proxy on 127.0.0.1; stops accepting when dropped.
pub struct HttpProxy {
    port: u16,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    /// Every request, in arrival order.
    requests: Mutex<Vec<Exchange>>,
    hold: Mutex<Option<Armed>>,
}

/// A hold waiting for its request.
struct Armed {
    method: String,
    path_part: String,
    answered: oneshot::Sender<Answer>,
    release: oneshot::Receiver<()>,
}

/// A held exchange: `answered` says when the upstream has answered; the client gets
/// the answer only after `release` (or when this is dropped).
pub struct Hold {
    answered: oneshot::Receiver<Answer>,
    release: Option<oneshot::Sender<()>>,
}

impl HttpProxy {
    /// Starts forwarding to `upstream` (`http://host:port`, no trailing path).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("http proxy: bind a loopback port");
        let port = listener
            .local_addr()
            .expect("http proxy: local address")
            .port();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http proxy: client"),
            requests: Mutex::new(Vec::new()),
            hold: Mutex::new(None),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            port,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`: give this to the client instead of the upstream's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Arms a one-shot hold on the next request with this method whose path contains
    /// `path_part`. Panics if a hold is already armed.
    pub fn hold_next(&self, method: &str, path_part: &str) -> Hold {
        let (answered_tx, answered) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        let mut hold = self.shared.hold.lock().unwrap();
        assert!(hold.is_none(), "http proxy: a hold is already armed");
        *hold = Some(Armed {
            method: method.to_owned(),
            path_part: path_part.to_owned(),
            answered: answered_tx,
            release: release_rx,
        });
        Hold {
            answered,
            release: Some(release),
        }
    }

    /// Every request so far, in arrival order (a held one shows the upstream's status
    /// even though its client has not seen it).
    pub fn requests(&self) -> Vec<Exchange> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Hold {
    /// Waits until the upstream has answered the held request; panics after `timeout`
    /// with the requests the proxy saw.
    pub async fn answered(&mut self, proxy: &HttpProxy, timeout: Duration) -> Answer {
        match tokio::time::timeout(timeout, &mut self.answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => panic!("http proxy: the held exchange ended without an answer"),
            Err(_) => panic!(
                "http proxy: no matching request answered within {timeout:?}; requests seen: {:#?}",
                proxy.requests()
            ),
        }
    }

    /// Lets the held answer go to the client (if it is still there).
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let index = {
        let mut requests = shared.requests.lock().unwrap();
        requests.push(Exchange {
            method: method.to_string(),
            path: path.clone(),
            status: None,
        });
        requests.len() - 1
    };
    let held = {
        let mut hold = shared.hold.lock().unwrap();
        let matches = hold.as_ref().is_some_and(|armed| {
            armed.method == method.as_str() && path.contains(&armed.path_part)
        });
        if matches { hold.take() } else { None }
    };
    let headers = forwarded(request.headers());
    let body = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(body) => body,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("http proxy: body: {e}")),
    };
    let url = format!("{}{path}", shared.upstream);
    let http = shared.http.clone();
    let upstream_method = method.clone();
    // Its own task: the exchange completes even if the client goes away meanwhile.
    let exchange = tokio::spawn(async move {
        let response = http
            .request(upstream_method, &url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("http proxy: {url}: {e}"))?;
        let status = response.status();
        let headers = forwarded(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("http proxy: reading {url}: {e}"))?;
        Ok::<_, String>((status, headers, body))
    });
    let (status, headers, body) = match exchange.await {
        Ok(Ok(answer)) => answer,
        Ok(Err(problem)) => return plain(StatusCode::BAD_GATEWAY, problem),
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("http proxy: {e}")),
    };
    shared.requests.lock().unwrap()[index].status = Some(status.as_u16());
    if let Some(armed) = held {
        let _ = armed.answered.send(Answer {
            method: method.to_string(),
            path,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        // Released, or the `Hold` was dropped: either way the answer may go now.
        let _ = armed.release.await;
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The end-to-end headers of `headers`.
fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn plain(status: StatusCode, text: String) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes the method, path, a header and the body.
    async fn echo() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(|request: Request| async move {
            let line = format!(
                "{} {} {}",
                request.method(),
                request.uri(),
                request
                    .headers()
                    .get("x-test")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
            );
            let body = axum::body::to_bytes(request.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                StatusCode::CREATED,
                format!("{line} {}", String::from_utf8_lossy(&body)),
            )
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, server)
    }

    #[tokio::test]
    async fn forwards_and_holds_an_answer_until_released() {
        let (upstream, _server) = echo().await;
        let proxy = HttpProxy::start(&upstream).await;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();

        let reply = http
            .put(format!("{}/a/b?c=d", proxy.url()))
            .header("x-test", "yes")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 201);
        assert_eq!(reply.text().await.unwrap(), "PUT /a/b?c=d yes hello");

        let mut hold = proxy.hold_next("POST", "/held/");
        let request = http
            .post(format!("{}/held/1", proxy.url()))
            .body("x")
            .send();
        let client = tokio::spawn(request);
        let answer = hold.answered(&proxy, Duration::from_secs(10)).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (201, "POST /held/1 - x")
        );
        assert!(!client.is_finished(), "the held answer reached the client");
        hold.release();
        let reply = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .expect("released answer in time")
            .unwrap()
            .unwrap();
        assert_eq!(reply.status().as_u16(), 201);

        let seen: Vec<(String, String, Option<u16>)> = proxy
            .requests()
            .into_iter()
            .map(|r| (r.method, r.path, r.status))
            .collect();
        assert_eq!(
            seen,
            [
                ("PUT".into(), "/a/b?c=d".into(), Some(201)),
                ("POST".into(), "/held/1".into(), Some(201)),
            ]
        );
    }
}
