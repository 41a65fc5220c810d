//! `switchboard matrix-registration -c FILE [--network NAME]`: prints the Matrix
//! application-service registration for a network in appservice mode. The tokens
//! in it are generated on the first call and kept in the state database, so the
//! command prints the same file every time and the daemon finds the tokens there.

use crate::config::{self, Config};
use crate::store::{SharedStore, SqliteStore};
use std::path::Path;
use std::sync::Arc;
use switchboard_matrix::MatrixConfig;
use switchboard_matrix::appservice::registration;
use switchboard_sdk::{AdapterError, NetworkId};

/// The exit code; the registration goes to stdout, problems to stderr.
pub fn command(path: &Path, network: Option<&str>) -> i32 {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{errors}");
            return 1;
        }
    };
    match registration_for(&config, network) {
        Ok(yaml) => {
            print!("{yaml}");
            0
        }
        Err(problem) => {
            eprintln!("switchboard matrix-registration: {problem}");
            2
        }
    }
}

/// The appservice networks of a config: (name, section).
pub fn appservice_networks(config: &Config) -> Vec<(&str, &MatrixConfig)> {
    config
        .networks
        .iter()
        .filter_map(|(name, network)| {
            let matrix = network.section.downcast_ref::<MatrixConfig>()?;
            matrix
                .appservice
                .is_some()
                .then_some((name.as_str(), matrix))
        })
        .collect()
}

/// Refuses to start an appservice network that its homeserver could not reach.
pub fn check_registration_urls(config: &Config) -> Result<(), AdapterError> {
    for (name, matrix) in appservice_networks(config) {
        registration_url(config, name, matrix).map_err(AdapterError::Config)?;
    }
    Ok(())
}

/// Where the homeserver reaches the network's transactions endpoint.
pub fn registration_url(
    config: &Config,
    network: &str,
    matrix: &MatrixConfig,
) -> Result<String, String> {
    if let Some(url) = matrix.appservice.as_ref().and_then(|a| a.url.clone()) {
        return Ok(url);
    }
    let Some(mut listen) = config.http.listen else {
        return Err(format!(
            "network {network:?} is an application service, but the HTTP server is off; \
             set `http: listen:` (or `appservice: url:` when a proxy forwards to it)"
        ));
    };
    if listen.ip().is_unspecified() {
        // Bound to all addresses: loopback is one the homeserver on this host can use.
        listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(format!("http://{listen}/webhooks/{network}"))
}

fn registration_for(config: &Config, network: Option<&str>) -> Result<String, String> {
    let candidates = appservice_networks(config);
    let names = || {
        candidates
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (name, matrix) = match network {
        Some(wanted) => *candidates
            .iter()
            .find(|(name, _)| *name == wanted)
            .ok_or_else(|| {
                format!("{wanted:?} is not a Matrix network with an `appservice` section (those are: {})", names())
            })?,
        None => match candidates.as_slice() {
            [one] => *one,
            [] => {
                return Err(
                    "no Matrix network has an `appservice` section; add one (see config.example.yaml)"
                        .into(),
                );
            }
            _ => return Err(format!("several appservice networks ({}): pick one with --network", names())),
        },
    };
    let url = registration_url(config, name, matrix)?;
    // Only adapter state is touched: nothing delivers, so committed rows are not taken.
    let (store, _committed) = SqliteStore::open(&config.state_dir)
        .map_err(|error| format!("state database in {}: {error}", config.state_dir.display()))?;
    let state = crate::store::state_for(&(Arc::new(store) as SharedStore), &NetworkId::new(name));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|error| format!("async runtime: {error}"))?;
    let tokens = runtime
        .block_on(registration::tokens_or_new(matrix, &*state))
        .map_err(|error| format!("keeping the tokens: {error}"))?;
    registration::registration_yaml(matrix, name, &url, &tokens)
}
