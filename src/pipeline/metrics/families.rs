//! The Prometheus families every worker's counters belong to, registered once per process.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The labels of a per-worker series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct WorkerLabels {
    pub(super) worker: u64,
}

/// The labels of a per-worker, per-reason series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabels {
    pub(super) worker: u64,
    pub(super) reason: &'static str,
}

/// The families every worker's counters belong to.
#[derive(Clone, Debug)]
pub(super) struct Families {
    pub(super) readings: Family<WorkerLabels, Counter>,
    pub(super) late: Family<WorkerLabels, Counter>,
    pub(super) late_expired: Family<WorkerLabels, Counter>,
    pub(super) malformed: Family<ReasonLabels, Counter>,
    pub(super) dead_lettered: Family<WorkerLabels, Counter>,
    pub(super) points_written: Family<WorkerLabels, Counter>,
    pub(super) write_retries: Family<WorkerLabels, Counter>,
    pub(super) refused: Family<ReasonLabels, Counter>,
    pub(super) write_duration: Family<WorkerLabels, Histogram, fn() -> Histogram>,
}

/// Write latencies from 1 ms to about 16 s.
fn write_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Families {
    pub(super) fn new() -> Families {
        Families {
            readings: Family::default(),
            late: Family::default(),
            late_expired: Family::default(),
            malformed: Family::default(),
            dead_lettered: Family::default(),
            points_written: Family::default(),
            write_retries: Family::default(),
            refused: Family::default(),
            write_duration: Family::new_with_constructor(write_histogram),
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        let worker = [
            ("readings", "Readings accepted into windows", &self.readings),
            ("late", "Readings dropped by the lateness rule", &self.late),
            (
                "late_expired",
                "Readings for windows evicted past --max-state-age",
                &self.late_expired,
            ),
            (
                "dead_lettered",
                "Malformed messages sent to --dead-letter-topic",
                &self.dead_lettered,
            ),
            (
                "points_written",
                "Points InfluxDB acknowledged",
                &self.points_written,
            ),
            (
                "write_retries",
                "Write requests that failed and were retried",
                &self.write_retries,
            ),
        ];
        for (name, help, family) in worker {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "malformed",
            "Malformed messages, by reason",
            self.malformed.clone(),
        );
        registry.register(
            "points_refused",
            "Points InfluxDB refused, by reason",
            self.refused.clone(),
        );
        registry.register(
            "write_duration_seconds",
            "Duration of write requests InfluxDB acknowledged",
            self.write_duration.clone(),
        );
    }
}
