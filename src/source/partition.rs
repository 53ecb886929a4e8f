//! One partition as its source sees it: the lateness rule, idleness, the until-end stop,
//! and the offsets a restart must replay from.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::watermark::PartitionProgress;

/// State of one owned partition.
#[derive(Debug)]
pub struct PartitionState {
    /// Kafka partition.
    pub partition: i32,
    /// Newest reading time read so far, Unix ms.
    pub newest_ms: Option<i64>,
    /// Offset of the next message to read.
    pub next_offset: i64,
    /// With `--until-end`: the end offset at start; reading stops there.
    pub end_offset: Option<i64>,
    at_eof: bool,
    last_data: Instant,
    /// First offset of the readings whose last window ends at the key: while that window
    /// is alive, a restart must replay from there.
    first_offset_by_end: BTreeMap<i64, i64>,
}

impl PartitionState {
    /// A partition about to be read from `next_offset`.
    pub fn new(partition: i32, next_offset: i64, end_offset: Option<i64>) -> Self {
        PartitionState {
            partition,
            newest_ms: None,
            next_offset,
            end_offset,
            at_eof: false,
            last_data: Instant::now(),
            first_offset_by_end: BTreeMap::new(),
        }
    }

    /// The lateness rule: a reading is late iff its `ts` is more than `lateness_ms` older
    /// than the newest `ts` read before it from this partition. Accepted readings advance
    /// the newest `ts`.
    pub fn accept(&mut self, ts_ms: i64, lateness_ms: i64) -> bool {
        match self.newest_ms {
            Some(newest) if ts_ms < newest.saturating_sub(lateness_ms) => false,
            Some(newest) if ts_ms <= newest => true,
            _ => {
                self.newest_ms = Some(ts_ms);
                true
            }
        }
    }

    /// Notes that the message at `offset` was read.
    pub fn read(&mut self, offset: i64, now: Instant) {
        self.next_offset = offset + 1;
        self.at_eof = false;
        self.last_data = now;
    }

    /// Notes that the consumer reached the partition's end.
    pub fn reached_eof(&mut self) {
        self.at_eof = true;
    }

    /// Whether an accepted reading at `offset` whose last window ends at `last_end_ms`
    /// must be replayed after a restart (the first such offset per window end is kept).
    pub fn record_for_replay(&mut self, offset: i64, last_end_ms: i64) {
        self.first_offset_by_end
            .entry(last_end_ms)
            .or_insert(offset);
    }

    /// With `--until-end`: every message up to the end offset at start has been read.
    pub fn finished(&self) -> bool {
        self.end_offset.is_some_and(|end| self.next_offset >= end)
    }

    /// Caught up with no data for `idle_timeout`, or finished.
    pub fn idle(&self, now: Instant, idle_timeout: Duration) -> bool {
        self.finished() || (self.at_eof && now.duration_since(self.last_data) >= idle_timeout)
    }

    /// This partition's report for the epoch that ends now.
    pub fn progress(
        &self,
        lateness_ms: i64,
        now: Instant,
        idle_timeout: Duration,
    ) -> PartitionProgress {
        PartitionProgress {
            partition: self.partition,
            watermark_ms: self.newest_ms.map(|n| n.saturating_sub(lateness_ms)),
            idle: self.idle(now, idle_timeout),
            next_offset: self.next_offset,
        }
    }

    /// The offset a restart must replay from, given that every window ending at or before
    /// `horizon_ms` is evicted and `next_offset` had been read when the epoch was durable.
    /// Forgets the windows the horizon has passed.
    pub fn resume_offset(&mut self, horizon_ms: i64, next_offset: i64) -> i64 {
        self.first_offset_by_end = self
            .first_offset_by_end
            .split_off(&horizon_ms.saturating_add(1));
        self.first_offset_by_end
            .values()
            .copied()
            .min()
            .map_or(next_offset, |first| first.min(next_offset))
    }
}

/// The partitions one worker owns: partition `p` is read by global worker `p % workers`.
#[derive(Debug, Default)]
pub struct OwnedPartitions {
    /// Owned partitions, in partition order.
    pub states: Vec<PartitionState>,
}

impl OwnedPartitions {
    /// The partitions of `partitions` owned by worker `index` of `peers`.
    pub fn ids(index: usize, peers: usize, partitions: usize) -> Vec<i32> {
        (0..partitions)
            .filter(|p| p % peers == index)
            .map(|p| p as i32)
            .collect()
    }

    /// The state of `partition`, if owned.
    pub fn get_mut(&mut self, partition: i32) -> Option<&mut PartitionState> {
        self.states.iter_mut().find(|s| s.partition == partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_means_more_than_lateness_older_than_the_newest_before() {
        let mut p = PartitionState::new(0, 0, None);
        assert!(p.accept(10_000, 5_000));
        assert!(p.accept(5_000, 5_000), "exactly lateness older is on time");
        assert!(!p.accept(4_999, 5_000));
        assert!(p.accept(20_000, 5_000));
        assert!(
            !p.accept(10_000, 5_000),
            "judged against the newest, not the last"
        );
        assert_eq!(p.newest_ms, Some(20_000));
    }

    #[test]
    fn ownership_is_disjoint_and_complete() {
        for peers in 1..9 {
            let mut all: Vec<i32> = (0..peers)
                .flat_map(|i| OwnedPartitions::ids(i, peers, 5))
                .collect();
            all.sort();
            assert_eq!(all, vec![0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn resume_offset_is_the_first_offset_of_a_live_window() {
        let mut p = PartitionState::new(0, 0, None);
        p.record_for_replay(3, 60_000);
        p.record_for_replay(4, 120_000);
        p.record_for_replay(7, 60_000);
        assert_eq!(p.resume_offset(0, 9), 3);
        assert_eq!(p.resume_offset(60_000, 9), 4);
        assert_eq!(p.resume_offset(120_000, 9), 9);
        p.record_for_replay(12, 180_000);
        assert_eq!(
            p.resume_offset(120_000, 10),
            10,
            "never past what was durable"
        );
    }

    #[test]
    fn until_end_finishes_and_counts_as_idle() {
        let mut p = PartitionState::new(0, 0, Some(2));
        assert!(!p.finished());
        p.read(1, Instant::now());
        assert!(p.finished());
        assert!(p.idle(Instant::now(), Duration::from_secs(3600)));
    }
}
