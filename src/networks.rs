//! Builds one adapter per configured network: the only place that knows every
//! protocol. Each protocol is behind its own cargo feature.

use crate::config::{Config, NetworkConfig};
use crate::daemon::DaemonOptions;
use crate::supervisor::RestartPolicy;
use std::sync::Arc;
use switchboard_sdk::{Adapter, AdapterError, NetworkId};

impl DaemonOptions {
    /// The options a config file describes, with its networks' adapters built.
    pub fn from_config(config: Config) -> Result<Self, AdapterError> {
        #[cfg(feature = "matrix")]
        for (name, matrix) in crate::matrix_registration::appservice_networks(&config) {
            crate::matrix_registration::registration_url(&config, name, matrix)
                .map_err(AdapterError::Config)?;
        }
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
        .map(|(name, network)| {
            let adapter: Arc<dyn Adapter> = match network {
                #[cfg(feature = "irc")]
                NetworkConfig::Irc(irc) => switchboard_irc::IrcAdapter::new(irc.clone()),
                #[cfg(feature = "mattermost")]
                NetworkConfig::Mattermost(mattermost) => {
                    switchboard_mattermost::MattermostAdapter::new(mattermost.clone())?
                }
                #[cfg(feature = "matrix")]
                NetworkConfig::Matrix(matrix) => {
                    switchboard_matrix::MatrixAdapter::new(matrix.clone())
                }
            };
            Ok((NetworkId::new(name.clone()), adapter))
        })
        .collect()
}
