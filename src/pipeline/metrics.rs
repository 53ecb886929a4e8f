//! Process-wide counters, shared by every worker and read by the progress reporter. An
//! event that is counted and logged (a malformed message, a refused point) is one call, so
//! the log line and its counter cannot drift; its log lines are rate-limited.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use tracing::warn;

use crate::pipeline::parse::Malformed;
use crate::pipeline::sink::Refusal;
use crate::targets;

/// Counters of one process. Cheap to bump from any worker thread.
#[derive(Debug)]
pub struct Metrics {
    /// Readings accepted into windows.
    pub readings: AtomicU64,
    /// Readings dropped by the lateness rule.
    pub late: AtomicU64,
    /// Readings for windows already evicted past `--max-state-age`.
    pub late_expired: AtomicU64,
    /// Malformed messages, per reason (indexed like [`Malformed::ALL`]).
    malformed: [AtomicU64; Malformed::ALL.len()],
    /// Malformed messages forwarded to the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Window aggregates (points) acknowledged by the sink.
    pub points_written: AtomicU64,
    /// Failed write attempts that were retried.
    pub write_retries: AtomicU64,
    /// Points InfluxDB refused, per reason (indexed like [`Refusal::ALL`]).
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Lowest pipeline watermark seen by this process's workers, Unix ms (`i64::MIN`: none).
    pub watermark_ms: AtomicI64,
    /// The second of the last warning logged, Unix s.
    last_warning_s: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            readings: AtomicU64::new(0),
            late: AtomicU64::new(0),
            late_expired: AtomicU64::new(0),
            malformed: Default::default(),
            dead_lettered: AtomicU64::new(0),
            points_written: AtomicU64::new(0),
            write_retries: AtomicU64::new(0),
            refused: Default::default(),
            watermark_ms: AtomicI64::new(i64::MIN),
            last_warning_s: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts and logs one malformed message.
    pub fn malformed(&self, partition: i32, offset: i64, reason: Malformed) {
        self.malformed[reason as usize].fetch_add(1, Relaxed);
        if self.may_warn() {
            warn!(target: targets::SOURCE, partition, offset, %reason, "malformed message (counted, and dead-lettered if configured; further ones this second not logged)");
        }
    }

    /// Logs a Kafka client error (librdkafka retries on its own).
    pub fn kafka_error(&self, error: &rdkafka::error::KafkaError) {
        if self.may_warn() {
            warn!(target: targets::KAFKA, "Kafka: {error}");
        }
    }

    /// At most one warning a second per process, so bad input cannot flood the log.
    fn may_warn(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.last_warning_s.swap(now, Relaxed) != now
    }

    /// Malformed counts per reason, leaving out reasons never seen.
    pub fn malformed_counts(&self) -> Vec<(Malformed, u64)> {
        Malformed::ALL
            .iter()
            .map(|r| (*r, self.malformed[*r as usize].load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Counts and logs one point InfluxDB refused, with its answer.
    pub fn refused(&self, worker: usize, reason: Refusal, answer: &str) {
        self.refused[reason as usize].fetch_add(1, Relaxed);
        if self.may_warn() {
            warn!(target: targets::SINK, worker, %reason, "InfluxDB refused a point (counted, and dead-lettered if configured; further ones this second not logged): {answer}");
        }
    }

    /// Refused points per reason, leaving out reasons never seen.
    pub fn refused_counts(&self) -> Vec<(Refusal, u64)> {
        Refusal::ALL
            .iter()
            .map(|r| (*r, self.refused[*r as usize].load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Total malformed messages.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().map(|c| c.load(Relaxed)).sum()
    }
}
