//! Config loading and validation: YAML -> every problem with FILE:LINE:COL -> typed config.
//!
//! The file is parsed into a tree whose nodes know their position; each section is
//! then checked on its own so that one mistake does not hide the next, and problems
//! found after parsing (an unknown network in a route, conflicting rooms) still point
//! at the right line and column.

mod duration;
pub mod edit;
mod env;
mod errors;
mod load;
mod tree;
mod types;
mod yaml;

pub use duration::format as format_duration;
pub use errors::{ConfigError, ConfigErrors};
pub use load::{DEFAULT_HTTP_LISTEN, load, load_bytes, load_str};

/// The text of a config file's bytes (UTF-8, no BOM trouble), or why not.
pub fn text_of(bytes: &[u8]) -> Result<&str, ConfigError> {
    yaml::text(bytes)
}
pub use types::*;

/// `switchboard check`: prints a summary or every problem; returns the exit code.
pub fn check_command(path: &std::path::Path) -> i32 {
    match load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} networks, {} routes)",
                path.display(),
                config.networks.len(),
                config.routes.len()
            );
            0
        }
        Err(errors) => {
            eprint!("{errors}");
            1
        }
    }
}
