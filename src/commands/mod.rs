//! The subcommands besides `run`: publishing readings, generating telemetry, the demo.

pub mod demo;
pub mod generate;
pub mod produce;
pub mod publish;
