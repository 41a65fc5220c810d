//! Test support shared by the adapter and daemon tests: real IRC servers (ngircd,
//! InspIRCd) started on free loopback ports in temporary directories, installed with
//! apt when missing, and `IrcPeer`, a minimal IRC client standing in for a user.
//!
//! Every wait is bounded and fails with a message saying what was seen.

pub mod http_proxy;
mod install;
pub mod mattermost;
mod peer;
mod servers;
pub mod synapse;

pub use peer::{IrcPeer, Received};
pub use servers::{Inspircd, Ngircd, NgircdOptions};

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free loopback port")
}
