//! The sink: line-protocol encoding, the InfluxDB v1 and v2 writers and the file writer,
//! and the per-worker operator that batches, writes in order and acknowledges epochs.

mod backlog;
mod batches;
mod check;
mod operator;
mod retry;
mod writer;

pub use backlog::Backlog;
pub use check::check_server;
pub use operator::sink;
pub use writer::{Refusal, WriteError, Writer};
