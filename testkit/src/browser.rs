//! `Browser`: headless Chromium driven over WebDriver (chromedriver + `fantoccini`),
//! for tests of the admin page as a person would use it.
//!
//! chromedriver runs as a child process on a free loopback port, in its own process
//! group, with a fresh temporary Chromium profile; `close` ends the session (which
//! quits Chromium), and dropping the `Browser` kills the group in any case, so a failed
//! test leaves no browser behind. The WebDriver client speaks plain HTTP to chromedriver
//! on loopback: no TLS stack at all (so no OpenSSL, and no second rustls provider).
//!
//! Every wait is bounded and fails with what it waited for, the page's URL and the
//! start of its text.

use crate::{free_port, install};
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The client crate, for tests that need more than the helpers here.
pub use fantoccini;
pub use fantoccini::elements::Element;

/// How long chromedriver may take to listen, and a session to open.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The default bound of every wait on the page.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// The desktop size every session starts with.
pub const DESKTOP: (u32, u32) = (1280, 900);
/// A phone's viewport (a common 390 x 844 phone), for a screenshot of the narrow layout.
pub const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    client: Option<Client>,
    driver: Child,
    screenshots: PathBuf,
    // The Chromium profile and chromedriver's log; removed on drop, after the kill.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session at the desktop size.
    /// Screenshots go to `screenshots` (created if missing). Installs the Debian
    /// packages `chromium` and `chromium-driver` when missing.
    pub async fn start(screenshots: &Path) -> Self {
        let chromium = install::ensure("chromium", "chromium");
        let chromedriver = install::ensure("chromedriver", "chromium-driver");
        std::fs::create_dir_all(screenshots)
            .unwrap_or_else(|e| panic!("create {}: {e}", screenshots.display()));
        let dir = tempfile::tempdir().expect("temp dir for the browser");
        let port = free_port();
        let log = dir.path().join("chromedriver.log");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: Chromium's processes are its children, and `Drop` kills
            // them all by the group's id even if the session never closed.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
        let mut browser = Self {
            client: None,
            driver,
            screenshots: screenshots.to_owned(),
            dir,
        };
        browser.wait_for_driver(port).await;
        let profile = browser.dir.path().join("profile");
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Tests run as root in containers, where the sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    // A small /dev/shm in containers crashes tabs otherwise.
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--no-default-browser-check",
                    // Nothing but the page under test may reach the network.
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            START_TIMEOUT,
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no WebDriver session within {START_TIMEOUT:?}; chromedriver log:\n{}",
                browser.driver_log()
            )
        })
        .unwrap_or_else(|e| {
            panic!(
                "WebDriver session refused: {e}; chromedriver log:\n{}",
                browser.driver_log()
            )
        });
        browser.client = Some(client);
        browser.set_size(DESKTOP).await;
        browser
    }

    async fn wait_for_driver(&mut self, port: u16) {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!(
                    "chromedriver exited ({status}); log:\n{}",
                    self.driver_log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}; log:\n{}",
                self.driver_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn driver_log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        // The end says why; the whole log can be megabytes.
        let start = log.len().saturating_sub(8000);
        log[log.ceil_char_boundary(start)..].to_owned()
    }

    /// The WebDriver client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn url(&self) -> String {
        self.client()
            .current_url()
            .await
            .map(|url| url.to_string())
            .unwrap_or_else(|e| format!("(no URL: {e})"))
    }

    /// The URL and the start of the visible text: what a failed wait reports.
    pub async fn describe_page(&self) -> String {
        let text = match self.client().find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(e) => format!("(no body: {e})"),
        };
        let text: String = text.chars().take(3000).collect();
        format!("URL {}\npage text:\n{text}", self.url().await)
    }

    pub async fn set_size(&self, (width, height): (u32, u32)) {
        self.client()
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("set the window to {width}x{height}: {e}"));
    }

    /// Waits (at most `PAGE_WAIT`) for an element matching `css` to be in the page.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client()
            .wait()
            .at_most(PAGE_WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no element {css:?} within {PAGE_WAIT:?} ({e}); {}",
                self.describe_page().await
            ),
        }
    }

    /// Waits for an element matching `css` that is displayed and whose text contains
    /// `needle` ("" for any); returns it.
    pub async fn wait_text(&self, css: &str, needle: &str) -> Element {
        let mut last = Vec::new();
        let found = self
            .poll(async || {
                last.clear();
                for element in self.all(css).await {
                    if !element.is_displayed().await.unwrap_or(false) {
                        continue;
                    }
                    let text = element.text().await.unwrap_or_default();
                    if text.contains(needle) {
                        return Some(element);
                    }
                    last.push(text);
                }
                None
            })
            .await;
        match found {
            Some(element) => element,
            None => panic!(
                "no displayed {css:?} containing {needle:?} within {PAGE_WAIT:?}; such elements had: {last:#?}\n{}",
                self.describe_page().await
            ),
        }
    }

    /// Waits until no element matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        if self
            .poll(async || self.all(css).await.is_empty().then_some(()))
            .await
            .is_none()
        {
            panic!(
                "{css:?} still in the page after {PAGE_WAIT:?}; {}",
                self.describe_page().await
            );
        }
    }

    /// How many elements match `css` now (no wait).
    pub async fn count(&self, css: &str) -> usize {
        self.all(css).await.len()
    }

    /// Clicks the first displayed element matching `css`, waiting for one; retried while
    /// the page re-renders it under us (a stale or not yet interactable element).
    pub async fn click(&self, css: &str) {
        let mut problem = String::from("none found");
        let clicked = self
            .poll(async || {
                for element in self.all(css).await {
                    if !element.is_displayed().await.unwrap_or(false) {
                        continue;
                    }
                    match element.click().await {
                        Ok(()) => return Some(()),
                        Err(e) if retryable(&e) => problem = e.to_string(),
                        Err(e) => panic!("click {css:?}: {e}"),
                    }
                }
                None
            })
            .await;
        if clicked.is_none() {
            panic!(
                "could not click {css:?} within {PAGE_WAIT:?} (last problem: {problem}); {}",
                self.describe_page().await
            );
        }
    }

    /// Replaces the value of the input matching `css` with `text`, typed as a user would.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.wait_text(css, "").await;
        input
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css:?}: {e}"));
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css:?}: {e}"));
    }

    /// Picks the option with `value` in the select matching `css`, waiting for it.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(&format!("{css} option[value=\"{value}\"]")).await;
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value:?} in {css:?}: {e}"));
    }

    /// Scrolls the page to its top (clicks scroll the element they hit into view).
    pub async fn scroll_to_top(&self) {
        self.client()
            .execute("window.scrollTo(0, 0)", Vec::new())
            .await
            .unwrap_or_else(|e| panic!("scroll to the top: {e}"));
    }

    /// Saves a PNG of the viewport as `<screenshots>/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client()
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Ends the session (Chromium quits) and chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
        // Drop kills chromedriver's group.
    }

    async fn all(&self, css: &str) -> Vec<Element> {
        self.client()
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
    }

    /// Polls `check` every `POLL` until it gives `Some`, for at most `PAGE_WAIT`.
    async fn poll<T>(&self, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            if let Some(found) = check().await {
                return Some(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Errors that mean "the page changed under us; look again".
fn retryable(error: &CmdError) -> bool {
    matches!(
        error,
        CmdError::Standard(w) if matches!(
            w.error,
            ErrorStatus::StaleElementReference
                | ErrorStatus::ElementNotInteractable
                | ErrorStatus::ElementClickIntercepted
                | ErrorStatus::NoSuchElement
        )
    )
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page whose button, once clicked, shows what was typed: the harness's own check.
    async fn page() -> (String, tokio::task::JoinHandle<()>) {
        const HTML: &str = "<!doctype html><title>t</title>\
            <input id=name><button id=go>go</button><p id=out hidden></p>\
            <script src=/page.js></script>";
        const JS: &str = "document.getElementById('go').addEventListener('click', () => {\
            const out = document.getElementById('out');\
            setTimeout(() => { out.textContent = 'hello ' + document.getElementById('name').value;\
            out.hidden = false; }, 300); });";
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|| async { axum::response::Html(HTML) }),
            )
            .route(
                "/page.js",
                axum::routing::get(|| async { ([("content-type", "text/javascript")], JS) }),
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, server)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_a_page_and_takes_a_screenshot() {
        let (url, _server) = page().await;
        let shots = tempfile::tempdir().unwrap();
        let browser = Browser::start(shots.path()).await;
        browser.goto(&url).await;
        browser.fill("#name", "<b>world</b>").await;
        browser.click("#go").await;
        // Shown only after a delay: the wait must poll for it.
        let out = browser.wait_text("#out", "hello <b>world</b>").await;
        assert_eq!(out.text().await.unwrap(), "hello <b>world</b>");
        browser.wait_gone("#nothing-like-this").await;
        let png = std::fs::read(browser.screenshot("page").await).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        browser.close().await;
    }
}
