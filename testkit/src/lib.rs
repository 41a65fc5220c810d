//! Test support shared by the adapter and daemon tests: real IRC servers (ngircd,
//! InspIRCd) started on free loopback ports in temporary directories, installed with
//! apt when missing, and `IrcPeer`, a minimal IRC client standing in for a user;
//! `browser::Browser`, headless Chromium over WebDriver, for the admin page; and the
//! stand-ins for servers nobody can install: `mattermost::FakeMattermost`,
//! `slack::FakeSlack`, `discord::FakeDiscord`, and Slack's third-party emulator
//! (`slack_emulate`).
//!
//! Every wait is bounded and fails with a message saying what was seen.

pub mod browser;
pub mod discord;
pub mod http_proxy;
mod install;
#[cfg(test)]
mod json_shape;
#[cfg(test)]
mod json_socket;
pub mod mattermost;
mod peer;
mod servers;
pub mod slack;
pub mod slack_emulate;
pub mod synapse;
pub mod watched;

pub use peer::{IrcPeer, Received};
pub use servers::{Inspircd, Ngircd, NgircdOptions};

/// A client for the plain-HTTP servers tests talk to. A test binary that also links
/// an adapter building reqwest with `rustls-no-provider` gets that feature here too,
/// and then reqwest wants a process-wide crypto provider even for `http://`: ring,
/// which the adapters use, is installed once.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .expect("a plain HTTP client")
}

/// A TCP port free on 127.0.0.1 right now, and never handed out before in this
/// process: the kernel may give a just-released port to the next `bind(0)`, so two
/// servers started at once (tests run in parallel threads) could otherwise get the same
/// port, and the one that loses the race would go unnoticed behind the other.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Holding every candidate until one is new keeps the kernel from offering it again.
    let mut held = Vec::new();
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("no free loopback port");
        let port = listener.local_addr().expect("a bound port").port();
        if handed_out.insert(port) {
            return port;
        }
        held.push(listener);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..50).map(|_| super::free_port()).collect::<Vec<_>>()))
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().unwrap())
                .collect()
        });
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
    }
}
