//! The pipeline's own figures: one set per process, read by the progress line, the
//! Prometheus endpoint (`--metrics-addr`) and the InfluxDB export (`--metrics-interval`), so
//! the three cannot disagree.
//!
//! - Per worker, counters ([`WorkerMetrics`]): each worker bumps its own handles, so the hot
//!   path touches no lock and no cache line another worker writes.
//! - Per partition and per process, gauges ([`Live`]): what the sources saw at their last
//!   epoch, what the commits recorded, the sinks' backlog; delays behind the wall clock are
//!   computed when they are read.
//!
//! An event that is counted and logged (a malformed message, a refused point) is one call,
//! so the log line and its counter cannot drift; its log lines are rate-limited.

mod families;
mod influx;
mod live;
mod worker;

use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crate::pipeline::parse::Malformed;
use crate::pipeline::sink::Refusal;

use families::Families;
pub use live::{Live, PartitionFigures};
pub use worker::WorkerMetrics;

/// The figures of one process.
#[derive(Debug)]
pub struct Metrics {
    process: usize,
    registry: Registry,
    families: Families,
    workers: Mutex<BTreeMap<usize, WorkerMetrics>>,
    /// Per partition and per process gauges.
    pub live: Arc<Live>,
    /// The second of the last warning logged, Unix s.
    last_warning_s: Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(0)
    }
}

impl Metrics {
    /// The figures of cluster process `process`, which labels them.
    pub fn new(process: usize) -> Metrics {
        let families = Families::new();
        let live = Arc::new(Live::default());
        let mut registry = Registry::with_prefix_and_labels(
            "maxq",
            [("process".into(), process.to_string().into())].into_iter(),
        );
        families.register(&mut registry);
        registry.register_collector(Box::new(live.clone()));
        Metrics {
            process,
            registry,
            families,
            workers: Mutex::default(),
            live,
            last_warning_s: Arc::default(),
        }
    }

    /// Worker `index`'s counters (its global index), created on first use.
    pub fn worker(&self, index: usize) -> WorkerMetrics {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers
            .entry(index)
            .or_insert_with(|| {
                WorkerMetrics::new(&self.families, index, self.last_warning_s.clone())
            })
            .clone()
    }

    /// Every worker's counters so far, by worker index.
    pub fn workers(&self) -> Vec<(usize, WorkerMetrics)> {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.iter().map(|(i, w)| (*i, w.clone())).collect()
    }

    /// `counter` summed over every worker, read under the lock rather than from copies.
    fn total(&self, counter: impl Fn(&WorkerMetrics) -> u64) -> u64 {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.values().map(counter).sum()
    }

    /// Per reason of `reasons`, `count` over every worker, leaving out reasons never seen.
    fn per_reason<R: Copy>(
        &self,
        reasons: &[R],
        count: impl Fn(&WorkerMetrics, R) -> u64,
    ) -> Vec<(R, u64)> {
        reasons
            .iter()
            .map(|r| (*r, self.total(|w| count(w, *r))))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Readings accepted, over every worker.
    pub fn readings_total(&self) -> u64 {
        self.total(|w| w.readings.get())
    }

    /// Late readings dropped, over every worker.
    pub fn late_total(&self) -> u64 {
        self.total(|w| w.late.get())
    }

    /// Readings for evicted windows dropped, over every worker.
    pub fn late_expired_total(&self) -> u64 {
        self.total(|w| w.late_expired.get())
    }

    /// Points written, over every worker.
    pub fn points_written_total(&self) -> u64 {
        self.total(|w| w.points_written.get())
    }

    /// Write retries, over every worker.
    pub fn write_retries_total(&self) -> u64 {
        self.total(|w| w.write_retries.get())
    }

    /// Malformed messages per reason over every worker, leaving out reasons never seen.
    pub fn malformed_counts(&self) -> Vec<(Malformed, u64)> {
        self.per_reason(&Malformed::ALL, WorkerMetrics::malformed_count)
    }

    /// Refused points per reason over every worker, leaving out reasons never seen.
    pub fn refused_counts(&self) -> Vec<(Refusal, u64)> {
        self.per_reason(&Refusal::ALL, WorkerMetrics::refused_count)
    }

    /// Total malformed messages.
    pub fn malformed_total(&self) -> u64 {
        self.malformed_counts().iter().map(|(_, n)| n).sum()
    }

    /// The figures in Prometheus' (OpenMetrics) text exposition format.
    pub fn prometheus_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// The figures as line protocol for measurement `maxq_pipeline`, at `now_ms`.
    pub fn line_protocol(&self, now_ms: i64) -> String {
        influx::encode(self.process, &self.live, &self.workers(), now_ms)
    }

    /// A warning may be logged now: at most one a second per process, so bad input cannot
    /// flood the log.
    pub fn may_warn(&self) -> bool {
        worker::may_warn(&self.last_warning_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn totals_add_up_every_worker_and_the_exposition_labels_each() {
        let metrics = Metrics::new(1);
        let (a, b) = (metrics.worker(2), metrics.worker(3));
        a.readings.inc_by(5);
        b.readings.inc_by(7);
        metrics.worker(2).readings.inc();
        b.malformed(0, 9, Malformed::BadTs);
        assert_eq!(metrics.readings_total(), 13);
        assert_eq!(metrics.malformed_counts(), vec![(Malformed::BadTs, 1)]);
        let text = metrics.prometheus_text();
        assert!(
            text.contains(r#"maxq_readings_total{process="1",worker="2"} 6"#),
            "{text}"
        );
        assert!(
            text.contains(r#"maxq_malformed_total{process="1",worker="3",reason="bad_ts"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn each_kind_of_point_has_its_tags_and_fields() {
        let metrics = Metrics::new(2);
        metrics.live.partition(
            3,
            PartitionFigures {
                position: 40,
                end_offset: 50,
                idle: false,
                watermark_ms: Some(9_000),
                committed: None,
            },
        );
        metrics.live.committed(&BTreeMap::from([(3, 35)]));
        metrics.live.watermark(8_000);
        let worker = metrics.worker(5);
        worker.readings.inc_by(12);
        worker.malformed(3, 1, Malformed::InvalidJson);
        worker.written(std::time::Duration::from_millis(250));
        let text = metrics.line_protocol(10_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "maxq_pipeline,partition=3,process=2 lag=10i,position=40i,end_offset=50i,idle=0i,watermark_delay_s=1.0,committed_offset=35i 10000"
        );
        assert_eq!(
            lines[1],
            "maxq_pipeline,process=2,worker=5 readings=12i,late=0i,late_expired=0i,malformed=1i,dead_lettered=0i,points_written=0i,write_retries=0i,points_refused=0i,writes=1i,write_seconds=0.25,malformed_invalid_json=1i 10000"
        );
        assert!(
            lines[2].starts_with("maxq_pipeline,process=2 backlog=0i,commit_age_s=")
                && lines[2].ends_with(",watermark_delay_s=2.0 10000"),
            "{}",
            lines[2]
        );
        assert_eq!(lines.len(), 3);
    }
}
