//! Builds one adapter per configured network, each by its protocol's connector.

use crate::config::Config;
use crate::daemon::DaemonOptions;
use crate::supervisor::RestartPolicy;
use std::sync::Arc;
use switchboard_sdk::{Adapter, AdapterError, NetworkId};

impl DaemonOptions {
    /// The options a config file describes, with its networks' adapters built.
    pub fn from_config(config: Config) -> Result<Self, AdapterError> {
        // The one protocol with a command of its own (the registration file) checks
        // here, before anything starts, that its homeserver will be able to reach it.
        #[cfg(feature = "matrix")]
        crate::matrix_registration::check_registration_urls(&config)?;
        Ok(Self {
            adapters: build_adapters(&config)?,
            state_dir: config.state_dir,
            http_listen: config.http.listen,
            delivery: config.delivery,
            store: config.store,
            routes: config.routes,
            restart: RestartPolicy::default(),
        })
    }
}

/// Each configured network's name with its adapter.
pub type NamedAdapters = Vec<(NetworkId, Arc<dyn Adapter>)>;

pub fn build_adapters(config: &Config) -> Result<NamedAdapters, AdapterError> {
    config
        .networks
        .iter()
        .map(|(name, network)| Ok((NetworkId::new(name.clone()), network.build()?)))
        .collect()
}
