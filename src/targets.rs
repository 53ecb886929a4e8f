//! The log targets: stable names to filter on (`RUST_LOG=warn,maxq::commit=debug`), the same
//! wherever the code that logs lives.

/// Reading Kafka: malformed messages.
pub const SOURCE: &str = "maxq::source";
/// Writing InfluxDB: batches written (debug), retries, refused points.
pub const SINK: &str = "maxq::sink";
/// Intents, resume points and group offsets: each commit (debug), failed commits.
pub const COMMIT: &str = "maxq::commit";
/// The run: start, the progress line, the summary.
pub const RUN: &str = "maxq::run";
/// librdkafka's own errors (it retries on its own).
pub const KAFKA: &str = "maxq::kafka";
/// `maxq produce` and `maxq generate` publishing.
pub const PRODUCE: &str = "maxq::produce";
