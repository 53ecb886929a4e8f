//! The gauges of a process: each partition as its source saw it at its last epoch and as
//! its last commit recorded it, the pipeline watermark, the sinks' backlog and the age of
//! the last commit. Delays behind the wall clock are computed when they are read, so an
//! idle pipeline's delay grows as it should.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::pipeline::sink::Backlog;

/// One partition's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PartitionFigures {
    /// Offset of the next message to read.
    pub position: i64,
    /// The end offset, as last seen by the consumer.
    pub end_offset: i64,
    /// Caught up with no data for `--idle-timeout`.
    pub idle: bool,
    /// `newest ts − lateness`, Unix ms, once the partition has a reading.
    pub watermark_ms: Option<i64>,
    /// The group offset last committed.
    pub committed: Option<i64>,
}

impl PartitionFigures {
    /// Messages between the position and the end offset.
    pub fn lag(&self) -> i64 {
        (self.end_offset - self.position).max(0)
    }
}

/// The gauges of a process.
#[derive(Debug)]
pub struct Live {
    /// Each partition's position at its first report (where this run started it), and its
    /// latest figures.
    partitions: Mutex<BTreeMap<i32, (i64, PartitionFigures)>>,
    watermark_ms: AtomicI64,
    last_commit: Mutex<Option<Instant>>,
    backlog: OnceLock<Arc<Backlog>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            partitions: Mutex::default(),
            watermark_ms: AtomicI64::new(i64::MIN),
            last_commit: Mutex::default(),
            backlog: OnceLock::new(),
        }
    }
}

/// Wall-clock time, Unix ms.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Seconds from `ms` to `now_ms`.
fn seconds_since(ms: i64, now_ms: i64) -> f64 {
    (now_ms.saturating_sub(ms)) as f64 / 1000.0
}

impl Live {
    /// Records what a source saw of `partition` at the end of an epoch; the committed
    /// offset is kept.
    pub fn partition(&self, partition: i32, mut figures: PartitionFigures) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let (_, entry) = partitions
            .entry(partition)
            .or_insert((figures.position, figures));
        figures.committed = entry.committed;
        *entry = figures;
    }

    /// Records a commit of these group offsets.
    pub fn committed(&self, offsets: &BTreeMap<i32, i64>) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        for (partition, offset) in offsets {
            if let Some((_, figures)) = partitions.get_mut(partition) {
                figures.committed = Some(*offset);
            }
        }
        *self.last_commit.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Records the pipeline watermark, Unix ms.
    pub fn watermark(&self, watermark_ms: i64) {
        self.watermark_ms.store(watermark_ms, Relaxed);
    }

    /// Reads the backlog from `backlog` from now on.
    pub fn watch_backlog(&self, backlog: Arc<Backlog>) {
        let _ = self.backlog.set(backlog);
    }

    /// Every partition's figures, by partition.
    pub fn partitions(&self) -> BTreeMap<i32, PartitionFigures> {
        let partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        partitions.iter().map(|(p, (_, f))| (*p, *f)).collect()
    }

    /// Messages read since each partition was first reported, and between there and the
    /// end offsets: a run's progress.
    pub fn read_and_total(&self) -> (u64, u64) {
        let partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        partitions
            .values()
            .fold((0, 0), |(read, total), (first, f)| {
                let from = |offset: i64| (offset - first).max(0) as u64;
                (
                    read + from(f.position),
                    total + from(f.end_offset.max(f.position)),
                )
            })
    }

    /// Seconds the pipeline watermark is behind `now_ms`, once there is one.
    pub fn watermark_delay_s(&self, now_ms: i64) -> Option<f64> {
        let watermark = self.watermark_ms.load(Relaxed);
        (watermark != i64::MIN).then(|| seconds_since(watermark, now_ms))
    }

    /// Seconds since the last commit, once there was one.
    pub fn commit_age_s(&self) -> Option<f64> {
        let last = *self.last_commit.lock().unwrap_or_else(|e| e.into_inner());
        last.map(|at| at.elapsed().as_secs_f64())
    }

    /// Points handed to the sinks and not yet written.
    pub fn backlog(&self) -> i64 {
        self.backlog.get().map_or(0, |b| b.unwritten())
    }

    /// A partition's watermark delay behind `now_ms`, once it has a reading.
    pub fn partition_delay_s(figures: &PartitionFigures, now_ms: i64) -> Option<f64> {
        figures.watermark_ms.map(|w| seconds_since(w, now_ms))
    }
}

/// A per-partition gauge: its name, help, and value (none: the series is left out).
type PartitionGauge = (
    &'static str,
    &'static str,
    fn(&PartitionFigures, i64) -> Option<f64>,
);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    partition: i64,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = now_ms();
        let partitions = self.partitions();
        let gauges: [PartitionGauge; 6] = [
            (
                "partition_lag",
                "Messages between the position and the end offset",
                |p, _| Some(p.lag() as f64),
            ),
            (
                "partition_position",
                "Offset of the next message to read",
                |p, _| Some(p.position as f64),
            ),
            (
                "partition_end_offset",
                "The end offset, as last seen by the consumer",
                |p, _| Some(p.end_offset as f64),
            ),
            (
                "partition_idle",
                "1 while caught up with no data for --idle-timeout",
                |p, _| Some(f64::from(u8::from(p.idle))),
            ),
            (
                "partition_watermark_delay_seconds",
                "Wall clock minus the partition's watermark (newest ts - lateness)",
                Live::partition_delay_s,
            ),
            (
                "partition_committed_offset",
                "The group offset last committed",
                |p, _| p.committed.map(|c| c as f64),
            ),
        ];
        for (name, help, value) in gauges {
            let mut family =
                encoder.encode_descriptor(name, help, None, ConstGauge::new(0.0).metric_type())?;
            for (partition, figures) in &partitions {
                if let Some(v) = value(figures, now) {
                    let labels = PartitionLabels {
                        partition: i64::from(*partition),
                    };
                    ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let process = [
            (
                "sink_backlog_points",
                "Points handed to the sinks and not yet written",
                Some(self.backlog() as f64),
            ),
            (
                "commit_age_seconds",
                "Seconds since the last commit of the resume log",
                self.commit_age_s(),
            ),
            (
                "watermark_delay_seconds",
                "Wall clock minus the pipeline watermark",
                self.watermark_delay_s(now),
            ),
        ];
        for (name, help, value) in process {
            if let Some(v) = value {
                let gauge = ConstGauge::new(v);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}
