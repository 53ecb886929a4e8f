//! One worker's counters: handles into the process's families, bumped by that worker only.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

use super::families::{Families, ReasonLabels, WorkerLabels};
use crate::pipeline::parse::Malformed;
use crate::pipeline::sink::Refusal;
use crate::targets;

/// One worker's counters. Cloning shares them.
#[derive(Clone, Debug)]
pub struct WorkerMetrics {
    /// Readings accepted into windows.
    pub readings: Counter,
    /// Readings dropped by the lateness rule.
    pub late: Counter,
    /// Readings for windows already evicted past `--max-state-age`.
    pub late_expired: Counter,
    /// Malformed messages forwarded to the dead-letter topic.
    pub dead_lettered: Counter,
    /// Points acknowledged by InfluxDB.
    pub points_written: Counter,
    /// Failed write requests that were retried.
    pub write_retries: Counter,
    malformed: Vec<Counter>,
    refused: Vec<Counter>,
    write_duration: Histogram,
    /// Write requests acknowledged, and the seconds they took: the histogram's count and
    /// sum, kept where the InfluxDB export can read them.
    writes: Counter,
    write_micros: Counter,
    index: usize,
    last_warning_s: Arc<AtomicU64>,
}

impl WorkerMetrics {
    pub(super) fn new(
        families: &Families,
        index: usize,
        last_warning_s: Arc<AtomicU64>,
    ) -> WorkerMetrics {
        let worker = WorkerLabels {
            worker: index as u64,
        };
        let reason = |reason| ReasonLabels {
            worker: index as u64,
            reason,
        };
        WorkerMetrics {
            readings: families.readings.get_or_create_owned(&worker),
            late: families.late.get_or_create_owned(&worker),
            late_expired: families.late_expired.get_or_create_owned(&worker),
            dead_lettered: families.dead_lettered.get_or_create_owned(&worker),
            points_written: families.points_written.get_or_create_owned(&worker),
            write_retries: families.write_retries.get_or_create_owned(&worker),
            malformed: Malformed::ALL
                .iter()
                .map(|r| families.malformed.get_or_create_owned(&reason(r.as_str())))
                .collect(),
            refused: Refusal::ALL
                .iter()
                .map(|r| families.refused.get_or_create_owned(&reason(r.as_str())))
                .collect(),
            write_duration: families.write_duration.get_or_create_owned(&worker),
            writes: Counter::default(),
            write_micros: Counter::default(),
            index,
            last_warning_s,
        }
    }

    /// Counts and logs one malformed message.
    pub fn malformed(&self, partition: i32, offset: i64, reason: Malformed) {
        self.malformed[reason as usize].inc();
        if may_warn(&self.last_warning_s) {
            warn!(target: targets::SOURCE, partition, offset, %reason, "malformed message (counted, and dead-lettered if configured; further ones this second not logged)");
        }
    }

    /// Malformed messages of `reason` so far.
    pub fn malformed_count(&self, reason: Malformed) -> u64 {
        self.malformed[reason as usize].get()
    }

    /// Counts and logs one point InfluxDB refused, with its answer.
    pub fn refused(&self, reason: Refusal, answer: &str) {
        self.refused[reason as usize].inc();
        if may_warn(&self.last_warning_s) {
            warn!(target: targets::SINK, worker = self.index, %reason, "InfluxDB refused a point (counted, and dead-lettered if configured; further ones this second not logged): {answer}");
        }
    }

    /// Refused points of `reason` so far.
    pub fn refused_count(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize].get()
    }

    /// Logs a Kafka client error (librdkafka retries on its own).
    pub fn kafka_error(&self, error: &rdkafka::error::KafkaError) {
        if may_warn(&self.last_warning_s) {
            warn!(target: targets::KAFKA, "Kafka: {error}");
        }
    }

    /// Records a write request InfluxDB acknowledged after `took`.
    pub fn written(&self, took: Duration) {
        self.write_duration.observe(took.as_secs_f64());
        self.writes.inc();
        self.write_micros.inc_by(took.as_micros() as u64);
    }

    /// Write requests acknowledged, and the seconds they took in all.
    pub fn write_totals(&self) -> (u64, f64) {
        (self.writes.get(), self.write_micros.get() as f64 / 1e6)
    }
}

/// At most one warning a second per process, so bad input cannot flood the log.
pub(super) fn may_warn(last_warning_s: &AtomicU64) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    last_warning_s.swap(now, Relaxed) != now
}
