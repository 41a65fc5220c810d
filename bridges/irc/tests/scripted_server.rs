//! The adapter against a scripted server, for what the packaged servers cannot show:
//! SASL PLAIN (success and refusal, and a stray SASL numeric when SASL is not in
//! use), NickServ IDENTIFY, channel keys, the ping timeout, nothing written after
//! the server's ERROR, TLS (a self-signed certificate is refused unless explicitly
//! allowed), and join refusals ngircd does not send (470 forwarding, 477).

use base64::Engine;
use std::sync::Arc;
use std::time::Duration;
use switchboard_irc::{IrcAdapter, IrcConfig};
use switchboard_sdk::testing::{
    RunningAdapter, message_from_alice, planned, spawn_adapter, wait_connected,
};
use switchboard_sdk::{Adapter, AdapterError, ConnectionState, NetworkId, RoomId, RoomReport};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(20);

/// The server side of one connection, driven line by line by the test.
struct Script<S> {
    reader: BufReader<tokio::io::ReadHalf<S>>,
    writer: tokio::io::WriteHalf<S>,
}

impl<S: AsyncRead + AsyncWrite> Script<S> {
    fn new(stream: S) -> Self {
        let (read, writer) = tokio::io::split(stream);
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// The next line from the client that starts with `command` (others are skipped).
    async fn expect(&mut self, command: &str) -> String {
        let mut seen = Vec::new();
        tokio::time::timeout(WAIT, async {
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).await.unwrap() == 0 {
                    panic!("client closed before sending {command}; saw {seen:?}");
                }
                let line = line.trim_end().to_owned();
                if line.starts_with(command) {
                    return line;
                }
                seen.push(line);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {command} from the client within {WAIT:?}"))
    }

    /// Everything the client sends until it closes the connection.
    async fn rest_until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        tokio::time::timeout(WAIT, async {
            loop {
                let mut line = String::new();
                match self.reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => lines.push(line.trim_end().to_owned()),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the client kept the connection open; sent {lines:?}"));
        lines
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    async fn welcome(&mut self, nick: &str) {
        self.send(&format!(":srv 001 {nick} :Welcome")).await;
    }
}

fn config(port: u16, extra: serde_json::Value) -> IrcConfig {
    let mut value =
        serde_json::json!({"server": format!("localhost:{port}"), "tls": false, "nick": "bridge"});
    value
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(value).unwrap()
}

fn run(adapter: &Arc<IrcAdapter>, rooms: &[&str]) -> RunningAdapter {
    spawn_adapter(
        adapter.clone(),
        NetworkId::new("scripted"),
        rooms.iter().map(|r| RoomId::new(*r)).collect(),
    )
}

async fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Runs `adapter` for `#a`, takes its connection on `listener` and plays a server that
/// registers it and confirms its JOIN; returns once the adapter reports Connected.
async fn connected_in_a(
    adapter: &Arc<IrcAdapter>,
    listener: &TcpListener,
) -> (RunningAdapter, Script<tokio::net::TcpStream>) {
    let mut running = run(adapter, &["#a"]);
    let (stream, _) = listener.accept().await.unwrap();
    let mut s = Script::new(stream);
    s.expect("USER").await;
    s.welcome("bridge").await;
    s.expect("JOIN").await;
    s.send(":bridge!b@h JOIN #a").await;
    wait_connected(&mut running.health, WAIT).await;
    (running, s)
}

/// Sends alice's `text` to `#a` on a task of its own, so the test can play the server
/// meanwhile.
fn send_in_background(
    adapter: &Arc<IrcAdapter>,
    text: &str,
) -> tokio::task::JoinHandle<Result<switchboard_sdk::SendReceipt, switchboard_sdk::SendError>> {
    let adapter = adapter.clone();
    let message = planned(&*adapter, message_from_alice("#a", text));
    tokio::spawn(async move { adapter.send(&message).await })
}

#[tokio::test]
async fn sasl_plain_nickserv_and_channel_keys() {
    let (listener, port) = listener().await;
    let adapter = IrcAdapter::new(config(
        port,
        serde_json::json!({
            "password": "server-pass",
            "sasl": {"username": "bridgeacct", "password": "s3cret"},
            "nickserv_password": "ns-pass",
            "channel_keys": {"#Locked": "door"}
        }),
    ));
    let mut running = run(&adapter, &["#locked", "#open"]);
    let (stream, _) = listener.accept().await.unwrap();
    let mut s = Script::new(stream);
    assert_eq!(s.expect("PASS").await, "PASS server-pass");
    s.expect("CAP LS").await;
    s.send(":srv CAP * LS :multi-prefix sasl server-time").await;
    let request = s.expect("CAP REQ").await;
    assert!(
        request.contains("sasl")
            && request.contains("server-time")
            && request.contains("multi-prefix"),
        "{request}"
    );
    s.send(":srv CAP * ACK :multi-prefix sasl server-time")
        .await;
    assert_eq!(s.expect("AUTHENTICATE").await, "AUTHENTICATE PLAIN");
    s.send("AUTHENTICATE +").await;
    let auth = s.expect("AUTHENTICATE").await;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim_start_matches("AUTHENTICATE "))
        .unwrap();
    assert_eq!(decoded, b"bridgeacct\0bridgeacct\0s3cret");
    s.send(":srv 903 bridge :SASL authentication successful")
        .await;
    s.expect("CAP END").await;
    s.welcome("bridge").await;
    assert_eq!(
        s.expect("PRIVMSG NickServ").await,
        "PRIVMSG NickServ :IDENTIFY ns-pass"
    );
    let mut joins = vec![s.expect("JOIN").await, s.expect("JOIN").await];
    joins.sort();
    assert_eq!(joins, vec!["JOIN #locked door", "JOIN #open"]);
    s.send(":bridge!b@host JOIN #locked").await;
    s.send(":bridge!b@host JOIN #open").await;
    wait_connected(&mut running.health, WAIT).await;
    running.cancel.cancel();
    assert!(s.expect("QUIT").await.starts_with("QUIT"));
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn refused_sasl_is_an_authentication_failure() {
    let (listener, port) = listener().await;
    let adapter = IrcAdapter::new(config(
        port,
        serde_json::json!({"sasl": {"username": "u", "password": "wrong"}}),
    ));
    let running = run(&adapter, &["#a"]);
    let (stream, _) = listener.accept().await.unwrap();
    let mut s = Script::new(stream);
    s.expect("CAP LS").await;
    s.send(":srv CAP * LS :sasl").await;
    s.expect("CAP REQ").await;
    s.send(":srv CAP * ACK :sasl").await;
    s.expect("AUTHENTICATE").await;
    s.send("AUTHENTICATE +").await;
    s.expect("AUTHENTICATE").await;
    s.send(":srv 904 bridge :SASL authentication failed").await;
    let result = tokio::time::timeout(WAIT, running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(AdapterError::Auth(_))), "{result:?}");
}

#[tokio::test]
async fn a_stray_sasl_numeric_without_sasl_does_not_fail_the_network() {
    let (listener, port) = listener().await;
    let adapter = IrcAdapter::new(config(port, serde_json::json!({})));
    let mut running = run(&adapter, &["#a"]);
    let (stream, _) = listener.accept().await.unwrap();
    let mut s = Script::new(stream);
    s.expect("USER").await;
    s.welcome("bridge").await;
    // Some servers send this to every client, asked or not.
    s.send(":srv 904 bridge :SASL authentication failed").await;
    s.send(":srv 902 bridge :You must use a nick assigned to you")
        .await;
    s.expect("JOIN").await;
    s.send(":bridge!b@h JOIN #a").await;
    wait_connected(&mut running.health, WAIT).await;
    let sending = send_in_background(&adapter, "still here");
    assert_eq!(s.expect("PRIVMSG").await, "PRIVMSG #a :<alice> still here");
    sending.await.unwrap().expect("sent");
    running.cancel.cancel();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn nothing_is_written_after_the_servers_error_and_the_unwritten_line_fails() {
    let (listener, port) = listener().await;
    // One token, then one every 10 s: the second line of a message waits for it.
    let adapter = IrcAdapter::new(config(
        port,
        serde_json::json!({"flood": {"burst": 1, "interval_ms": 10_000}}),
    ));
    let (mut running, mut s) = connected_in_a(&adapter, &listener).await;
    let sending = send_in_background(&adapter, "first line\nsecond line");
    assert_eq!(s.expect("PRIVMSG").await, "PRIVMSG #a :<alice> first line");
    // The second line is queued, waiting for its token, when the server says goodbye
    // (and keeps the socket open, as a server going down may for a moment).
    s.send("ERROR :Server going down").await;
    let health = tokio::time::timeout(WAIT, running.health.recv())
        .await
        .expect("health reported")
        .expect("health open");
    assert!(
        matches!(health, ConnectionState::Reconnecting { .. }),
        "health says reconnecting as soon as the ERROR is read: {health:?}"
    );
    let error = tokio::time::timeout(WAIT, sending)
        .await
        .expect("send returns")
        .unwrap()
        .expect_err("the second line was never written, so the message was not sent");
    assert!(error.is_retryable(), "{error:?}");
    let after = s.rest_until_closed().await;
    assert!(
        after.is_empty(),
        "nothing may be written after the server's ERROR, got {after:?}"
    );
    let result = tokio::time::timeout(WAIT, running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&result, Err(AdapterError::Connection(m)) if m.contains("Server going down")),
        "{result:?}"
    );

    // The next connection sends the whole message again.
    let (running, mut s) = connected_in_a(&adapter, &listener).await;
    let sending = send_in_background(&adapter, "first line\nsecond line");
    assert_eq!(s.expect("PRIVMSG").await, "PRIVMSG #a :<alice> first line");
    assert_eq!(s.expect("PRIVMSG").await, "PRIVMSG #a :<alice> second line");
    tokio::time::timeout(WAIT, sending)
        .await
        .expect("send returns")
        .unwrap()
        .expect("sent on the new connection");
    running.cancel.cancel();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_silent_server_is_pinged_then_dropped() {
    let (listener, port) = listener().await;
    let adapter = IrcAdapter::new(config(port, serde_json::json!({"ping_timeout_secs": 1})));
    let (running, mut s) = connected_in_a(&adapter, &listener).await;
    // Then the server goes quiet: the adapter PINGs, and gives up when nothing comes.
    assert!(s.expect("PING").await.starts_with("PING"));
    let result = tokio::time::timeout(WAIT, running.task)
        .await
        .unwrap()
        .unwrap();
    match result {
        Err(AdapterError::Connection(message)) => {
            assert!(message.contains("ping timeout"), "{message}")
        }
        other => panic!("expected a ping timeout, got {other:?}"),
    }
}

fn self_signed() -> (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    (certified.cert.der().clone(), key)
}

async fn tls_listener() -> (TcpListener, u16, tokio_rustls::TlsAcceptor) {
    let (cert, key) = self_signed();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let (listener, port) = listener().await;
    (
        listener,
        port,
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    )
}

#[tokio::test]
async fn tls_verifies_certificates_unless_told_otherwise() {
    // Verified by default: a self-signed certificate is refused.
    let (listener, port, acceptor) = tls_listener().await;
    let strict = IrcAdapter::new(config(port, serde_json::json!({"tls": true})));
    let running = run(&strict, &["#a"]);
    let (stream, _) = listener.accept().await.unwrap();
    let _ = acceptor.accept(stream).await;
    let result = tokio::time::timeout(WAIT, running.task)
        .await
        .unwrap()
        .unwrap();
    match result {
        Err(AdapterError::Connection(message)) => assert!(message.contains("TLS"), "{message}"),
        other => panic!("a self-signed certificate must be refused, got {other:?}"),
    }

    // accept_invalid_certs: true connects and registers over TLS.
    let lenient = IrcAdapter::new(config(
        port,
        serde_json::json!({"tls": true, "accept_invalid_certs": true}),
    ));
    let mut running = run(&lenient, &["#a"]);
    let (stream, _) = listener.accept().await.unwrap();
    let tls = acceptor.accept(stream).await.expect("TLS handshake");
    let mut s = Script::new(tls);
    s.expect("USER").await;
    s.welcome("bridge").await;
    s.expect("JOIN").await;
    s.send(":bridge!b@h JOIN #a").await;
    wait_connected(&mut running.health, WAIT).await;
    running.cancel.cancel();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn forwarding_and_registered_only_channels_are_refusals_and_a_stray_numeric_is_not() {
    let (listener, port) = listener().await;
    let adapter = IrcAdapter::new(config(port, serde_json::json!({})));
    let mut running = run(&adapter, &["#fwd", "#reg", "#ok"]);
    let (stream, _) = listener.accept().await.unwrap();
    let mut s = Script::new(stream);
    s.expect("USER").await;
    s.welcome("bridge").await;
    for _ in 0..3 {
        s.expect("JOIN").await;
    }
    // A numeric about a channel we are not joining answers something else.
    s.send(":srv 403 bridge #elsewhere :No such channel").await;
    s.send(":srv 470 bridge #fwd ##overflow :Forwarding to another channel")
        .await;
    // Forwarded: the server puts us in a channel the routes do not name.
    s.send(":bridge!b@h JOIN ##overflow").await;
    s.send(":srv 477 bridge #reg :Cannot join channel (+r) - you need to be identified")
        .await;
    s.send(":bridge!b@h JOIN #ok").await;
    // Connected comes after the last answer, so every report is in by then.
    wait_connected(&mut running.health, WAIT).await;
    let mut reports = Vec::new();
    while let Ok(report) = running.rooms.try_recv() {
        reports.push(report);
    }
    let failed = |error: &str| RoomReport::JoinFailed {
        error: error.into(),
    };
    assert_eq!(
        reports,
        vec![
            (
                RoomId::new("#fwd"),
                failed("470: ##overflow Forwarding to another channel")
            ),
            (
                RoomId::new("#reg"),
                failed("477: Cannot join channel (+r) - you need to be identified")
            ),
            (RoomId::new("#ok"), RoomReport::Joined),
        ]
    );
    running.cancel.cancel();
    running.task.await.unwrap().unwrap();
}
