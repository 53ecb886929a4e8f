//! The `maxq` binary: parse flags, run, map errors to exit codes.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

use maxq::cli::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => maxq::run::run(&args).map(|summary| {
            tracing::info!(
                readings = summary.readings,
                late = summary.late,
                malformed = summary.malformed,
                points_written = summary.points_written,
                seconds = summary.elapsed.as_secs_f64(),
                "done"
            );
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maxq: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
