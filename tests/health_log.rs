//! The log lines of network state changes, in a test binary of their own: capturing
//! log output depends on tracing's process-wide call-site registry, which other
//! tests' threads of the library's test binary also use at the same time (a
//! capture there lost lines now and then).

use std::time::Duration;
use switchboard::health::HealthRegistry;
use switchboard_sdk::{ConnectionState, NetworkId};

fn reconnecting(error: &str) -> ConnectionState {
    ConnectionState::Reconnecting {
        last_error: error.to_owned(),
    }
}

#[test]
fn each_state_change_is_one_line_and_only_failure_warns() {
    let log = switchboard::logging::capture("info", || {
        let registry = HealthRegistry::default();
        let network = NetworkId::new("irc");
        registry.set(&network, ConnectionState::Starting);
        registry.set(&network, ConnectionState::Connected);
        registry.set_retrying(&network, reconnecting("refused"), Duration::from_secs(2));
        // Each failed attempt of the outage: not a change of state.
        registry.set_retrying(&network, reconnecting("refused"), Duration::from_secs(1));
        registry.set_retrying(&network, reconnecting("timed out"), Duration::from_secs(2));
        registry.set(&network, ConnectionState::Connected);
        registry.set_retrying(
            &network,
            ConnectionState::Failed {
                last_error: "bad password".into(),
            },
            Duration::from_secs(60),
        );
    });
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 5, "{log}");
    assert!(
        lines[0].contains("INFO") && lines[0].contains("network starting"),
        "{log}"
    );
    assert!(
        lines[1].contains("INFO") && lines[1].contains("network connected"),
        "{log}"
    );
    assert!(
        lines[2].contains("INFO")
            && lines[2].contains("connection lost; reconnecting")
            && lines[2].contains("refused")
            && lines[2].contains("retry_in=\"2.0s\""),
        "{log}"
    );
    assert!(
        lines[3].contains("INFO") && lines[3].contains("network connected"),
        "{log}"
    );
    assert!(
        lines[4].contains("WARN") && lines[4].contains("bad password"),
        "{log}"
    );
}
