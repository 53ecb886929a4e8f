//! The `maxq` binary: parse flags, run, map errors to exit codes.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

use maxq::cli::{Cli, Command};
use maxq::exit;

/// Counts per reason as `reason:n,reason:n`, or `0` when there are none.
fn per_reason(counts: &[(impl std::fmt::Display, u64)]) -> String {
    if counts.is_empty() {
        return "0".to_owned();
    }
    counts
        .iter()
        .map(|(reason, n)| format!("{reason}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo draws its own live view; elsewhere the progress lines are the view.
    let default_level = match cli.command {
        None | Some(Command::Demo(_)) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Some(Command::Run(args)) => maxq::run::run(&args).map(|summary| {
            tracing::info!(target: maxq::targets::RUN,
                readings = summary.readings,
                late = summary.late,
                malformed = %per_reason(&summary.malformed),
                points_written = summary.points_written,
                points_refused = %per_reason(&summary.refused),
                seconds = summary.elapsed.as_secs_f64(),
                "done"
            );
        }),
        Some(Command::Produce(args)) => {
            maxq::commands::produce::produce(&args).map(|report| println!("{report}"))
        }
        Some(Command::Generate(args)) => maxq::commands::generate::generate(&args).map(|report| {
            if !report.is_empty() {
                eprintln!("{report}");
            }
        }),
        Some(Command::Demo(args)) => maxq::commands::demo::demo(&args),
        None => maxq::commands::demo::demo(&cli.demo),
    };
    match result {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(e) => {
            eprintln!("maxq: error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
