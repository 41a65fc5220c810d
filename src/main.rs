//! The `switchboard` command line: `run` the daemon, `check` a config file.

fn main() {}
