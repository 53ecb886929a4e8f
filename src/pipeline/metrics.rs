//! Process-wide counters, shared by every worker and read by the progress reporter.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::pipeline::parse::Malformed;
use crate::pipeline::sink::Refusal;

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
        }
    }
}

impl Metrics {
    /// Counts one malformed message.
    pub fn malformed(&self, reason: Malformed) {
        self.malformed[reason as usize].fetch_add(1, Relaxed);
    }

    /// Malformed counts per reason, leaving out reasons never seen.
    pub fn malformed_counts(&self) -> Vec<(Malformed, u64)> {
        Malformed::ALL
            .iter()
            .map(|r| (*r, self.malformed[*r as usize].load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Counts one point InfluxDB refused.
    pub fn refused(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Relaxed);
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
