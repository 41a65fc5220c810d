//! Webhook mode behind a forward proxy: when the environment names a proxy for the
//! incoming webhook's URL, posts go through it (the lean client does not speak to
//! proxies, so the adapter falls back to reqwest). A test binary of its own: it sets
//! `HTTP_PROXY` for the whole process.

use std::time::Duration;
use switchboard_mattermost::MattermostAdapter;
use switchboard_mattermost::config::{MattermostConfig, WebhookConfig};
use switchboard_sdk::Adapter;
use switchboard_sdk::testing::{message_from_alice, planned};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_go_through_the_proxy_the_environment_names() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    // SAFETY: this test binary has this one test; nothing else reads the environment
    // concurrently.
    unsafe {
        std::env::set_var("HTTP_PROXY", &proxy_url);
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    // Proxies forward absolute-form requests: the proxy answers for the server.
    let forwarded = tokio::spawn(async move {
        let (mut stream, _) = proxy.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(&request).contains("\"text\"") {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the proxy's client hung up");
            request.extend_from_slice(&buffer[..read]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let config = MattermostConfig {
        server: "http://mattermost.invalid".into(),
        team: "core".into(),
        token: None,
        login: None,
        webhooks: Some(WebhookConfig {
            incoming_url: "http://mattermost.invalid/hooks/secretkey".into(),
            outgoing_token: "outgoing".into(),
            username: "switchboard".into(),
        }),
        override_names: true,
        catch_up_max_age_secs: 3600,
        accept_invalid_certs: false,
        max_upload_bytes: 1024,
    };
    let adapter = MattermostAdapter::new(config).unwrap();
    let message = planned(
        &*adapter,
        message_from_alice("town-square", "via the proxy"),
    );

    let sent = tokio::time::timeout(Duration::from_secs(20), adapter.send(&message))
        .await
        .expect("the send finished");
    sent.expect("the proxy answered 200");
    let request = tokio::time::timeout(Duration::from_secs(20), forwarded)
        .await
        .expect("the proxy got the request")
        .unwrap();
    assert!(
        request.starts_with("POST http://mattermost.invalid/hooks/secretkey HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains("via the proxy"), "{request}");
}
