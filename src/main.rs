//! The `switchboard` command line: `run` the daemon, `check` a config file, print a
//! Matrix application-service registration.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
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
    /// Run the bridge until SIGTERM or SIGINT.
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
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => ExitCode::from(config::check_command(&config) as u8),
        Command::Run { config } => run(&config),
        #[cfg(feature = "matrix")]
        Command::MatrixRegistration { config, network } => ExitCode::from(
            switchboard::matrix_registration::command(&config, network.as_deref()) as u8,
        ),
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{errors}");
            eprintln!("switchboard: not started: the config has errors");
            return ExitCode::from(1);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match daemon::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("switchboard: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let daemon = Daemon::start(DaemonOptions::from_config(config)?).await?;
        tracing::info!("switchboard running");
        daemon::shutdown_signal().await;
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
