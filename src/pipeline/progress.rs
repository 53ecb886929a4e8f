//! Partition progress and the watermarks derived from it.
//!
//! Every source reports, per epoch, the state of the partitions it owns; the reports are
//! broadcast, so every worker derives the same two watermarks from the same epochs:
//!
//! - the **pipeline watermark**, the minimum of `newest ts − lateness` over partitions that
//!   are not idle (when all are idle, the maximum over all): a window is *final* once it
//!   passes the window's end;
//! - the **eviction horizon**, the minimum over *all* partitions, idle or not, of their own
//!   watermark, raised to `pipeline watermark − max_state_age`: no partition can still
//!   contribute to a window that ends before it, unless it stayed idle longer than
//!   `max_state_age`, so the window's state may go.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One partition's state at the end of an epoch, as its source saw it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// Kafka partition.
    pub partition: i32,
    /// `newest ts − lateness`; `None` until the partition produced a reading.
    pub watermark_ms: Option<i64>,
    /// Caught up to its end offset with no data for `--idle-timeout`.
    pub idle: bool,
    /// Offset of the next message the source will read.
    pub next_offset: i64,
    /// Still replaying what a previous run had written.
    pub replaying: bool,
}

/// Where a restarted pipeline resumes a partition; recorded with every commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// First offset to read: the first reading of a window still alive.
    pub offset: i64,
    /// The newest reading time before `offset`, so the lateness rule judges the replayed
    /// readings exactly as the first time.
    pub newest_ms: Option<i64>,
    /// How far the previous runs had read when they may have written (see `crate::intent`):
    /// up to here the source replays, and windows are not written (a rebuild that has not
    /// read as far must not overwrite a more complete value).
    pub replay_until: i64,
    /// Every window ending at or before this was final, written and evicted.
    pub evicted_below: Option<i64>,
}

/// The latest progress of every partition of the topic.
#[derive(Debug)]
pub struct PartitionTable {
    partitions: usize,
    latest: BTreeMap<i32, PartitionProgress>,
    max_state_age_ms: i64,
}

impl PartitionTable {
    /// A table for a topic with `partitions` partitions.
    pub fn new(partitions: usize, max_state_age_ms: i64) -> Self {
        PartitionTable {
            partitions,
            latest: BTreeMap::new(),
            max_state_age_ms,
        }
    }

    /// Records a report.
    pub fn apply(&mut self, progress: PartitionProgress) {
        self.latest.insert(progress.partition, progress);
    }

    /// The latest report of `partition`.
    pub fn get(&self, partition: i32) -> Option<&PartitionProgress> {
        self.latest.get(&partition)
    }

    fn complete(&self) -> bool {
        self.latest.len() == self.partitions
    }

    /// Whether any partition is still replaying what a previous run wrote.
    pub fn replaying(&self) -> bool {
        self.latest.values().any(|p| p.replaying)
    }

    /// The pipeline watermark; `i64::MIN` until every partition has reported.
    pub fn pipeline_watermark(&self) -> i64 {
        if !self.complete() {
            return i64::MIN;
        }
        let own = |p: &PartitionProgress| p.watermark_ms.unwrap_or(i64::MIN);
        let active = self.latest.values().filter(|p| !p.idle).map(own).min();
        active.unwrap_or_else(|| self.latest.values().map(own).max().unwrap_or(i64::MIN))
    }

    /// The eviction horizon; `i64::MIN` until every partition has reported.
    pub fn eviction_horizon(&self) -> i64 {
        if !self.complete() {
            return i64::MIN;
        }
        let all = self
            .latest
            .values()
            .map(|p| p.watermark_ms.unwrap_or(i64::MIN))
            .min()
            .unwrap_or(i64::MIN);
        all.max(
            self.pipeline_watermark()
                .saturating_sub(self.max_state_age_ms),
        )
    }
}

/// Progress reports waiting for their epoch to complete, applied in epoch order.
#[derive(Debug, Default)]
pub struct ProgressStash {
    pending: BTreeMap<u64, Vec<PartitionProgress>>,
}

impl ProgressStash {
    /// Holds `reports` made at epoch `time`.
    pub fn push(&mut self, time: u64, reports: impl IntoIterator<Item = PartitionProgress>) {
        self.pending.entry(time).or_default().extend(reports);
    }

    /// Applies to `table` every report of an epoch before `upper`.
    pub fn apply_before(&mut self, upper: u64, table: &mut PartitionTable) {
        let later = self.pending.split_off(&upper);
        for report in std::mem::replace(&mut self.pending, later)
            .into_values()
            .flatten()
        {
            table.apply(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(partition: i32, watermark_ms: Option<i64>, idle: bool) -> PartitionProgress {
        PartitionProgress {
            partition,
            watermark_ms,
            idle,
            next_offset: 0,
            replaying: false,
        }
    }

    #[test]
    fn idle_partitions_do_not_hold_the_pipeline_back_but_do_hold_eviction() {
        let mut table = PartitionTable::new(3, 3_600_000);
        table.apply(report(0, Some(100_000), false));
        table.apply(report(1, Some(200_000), false));
        assert_eq!(
            table.pipeline_watermark(),
            i64::MIN,
            "partition 2 never reported"
        );
        table.apply(report(2, Some(10_000), true));
        assert_eq!(table.pipeline_watermark(), 100_000);
        assert_eq!(table.eviction_horizon(), 10_000);
        table.apply(report(0, Some(300_000), true));
        table.apply(report(1, Some(250_000), true));
        assert_eq!(table.pipeline_watermark(), 300_000, "all idle: the newest");
    }

    #[test]
    fn max_state_age_bounds_what_an_idle_partition_holds() {
        let mut table = PartitionTable::new(2, 60_000);
        table.apply(report(0, Some(1_000_000), false));
        table.apply(report(1, None, true));
        assert_eq!(table.eviction_horizon(), 940_000);
    }

    #[test]
    fn stash_applies_complete_epochs_in_order() {
        let mut table = PartitionTable::new(1, 0);
        let mut stash = ProgressStash::default();
        stash.push(2, [report(0, Some(20), false)]);
        stash.push(1, [report(0, Some(10), false)]);
        stash.apply_before(2, &mut table);
        assert_eq!(table.pipeline_watermark(), 10);
        stash.apply_before(3, &mut table);
        assert_eq!(table.pipeline_watermark(), 20);
    }
}
