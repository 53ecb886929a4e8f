//! The sink: line-protocol encoding, the InfluxDB v1 and v2 writers and the file writer,
//! and the per-worker operator that batches, writes in order and acknowledges epochs.

mod backlog;
mod operator;
mod retry;
mod writer;

pub use backlog::Backlog;
pub use operator::sink;
pub use writer::{check_server, Refusal, WriteError, Writer};
