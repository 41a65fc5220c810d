//! The `switchboard` command line: `run` the daemon, `check` a config file, ask a
//! running daemon to `reload` its config, probe its `/healthz`, print a Matrix
//! application-service registration.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use switchboard::reload::Reloader;
use switchboard::{Daemon, DaemonOptions, config, daemon};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "A chat bridge daemon: mirrors rooms across networks, durably and in order"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge until SIGTERM or SIGINT; SIGHUP reloads the config file.
    Run {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a config file without touching any network; report every problem.
    Check {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask the running daemon (through its admin API) to reload its config file, and
    /// print what came of it: applied, rejected with the problems, or rolled back.
    Reload {
        /// The config file the daemon runs from (for the admin API's address and token).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask a running daemon's /healthz; exit 0 when it answers 200 (every network
    /// connected), 1 otherwise. For container health checks: the image has no curl.
    Healthcheck {
        /// The /healthz URL (plain http).
        #[arg(
            long,
            value_name = "URL",
            default_value = "http://127.0.0.1:9477/healthz"
        )]
        url: String,
        /// Also exit 0 when the daemon answers 503 (a network is down but the
        /// daemon runs): a liveness check rather than a readiness check.
        #[arg(long)]
        degraded_ok: bool,
    },
    /// Print the Matrix application-service registration (YAML) for the homeserver
    /// admin; its tokens are generated once and kept in the state database.
    #[cfg(feature = "matrix")]
    MatrixRegistration {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The Matrix network (needed when several are application services).
        #[arg(long, value_name = "NAME")]
        network: Option<String>,
    },
}

fn main() -> ExitCode {
    // The state holds access tokens; so may whatever the adapters' libraries keep
    // (matrix-sdk's store). Whatever this process creates is for its user alone,
    // including files made by code that takes no mode.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => ExitCode::from(config::check_command(&config) as u8),
        Command::Run { config } => run(&config),
        Command::Reload { config } => {
            ExitCode::from(switchboard::reload::command::run(&config) as u8)
        }
        Command::Healthcheck { url, degraded_ok } => healthcheck(&url, degraded_ok),
        #[cfg(feature = "matrix")]
        Command::MatrixRegistration { config, network } => ExitCode::from(
            switchboard::matrix_registration::command(&config, network.as_deref()) as u8,
        ),
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let (config, text) = match switchboard::reload::command::load_with_text(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            eprintln!("switchboard: not started: the config has errors");
            return ExitCode::from(1);
        }
    };
    switchboard::logging::init();
    let runtime = match daemon::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("switchboard: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let daemon = Daemon::start(DaemonOptions::from_config(config.clone())?).await?;
        let daemon = std::sync::Arc::new(daemon);
        let watch = config.reload.watch;
        let reloader =
            std::sync::Arc::new(Reloader::new(daemon.clone(), path.to_owned(), config, text));
        daemon.serve_admin(reloader.clone());
        if watch {
            tokio::spawn(switchboard::reload::watch::run(reloader.clone()));
        }
        tracing::info!("switchboard running");
        daemon::run_until_shutdown(&reloader).await;
        daemon.shutdown().await;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchboard: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn healthcheck(url: &str, degraded_ok: bool) -> ExitCode {
    match switchboard::health::probe(url, std::time::Duration::from_secs(5)) {
        Ok((200, _)) => ExitCode::SUCCESS,
        Ok((503, body)) if degraded_ok => {
            println!("degraded: {body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            println!("HTTP {status}: {body}");
            ExitCode::from(1)
        }
        Err(error) => {
            println!("switchboard healthcheck: {error}");
            ExitCode::from(1)
        }
    }
}
