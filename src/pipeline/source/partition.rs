//! One partition as its source sees it: the lateness rule, idleness, the until-end stop,
//! and the offsets a restart must replay from.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::pipeline::lateness;
use crate::pipeline::progress::{PartitionProgress, ResumePoint};

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
    /// The newest end offset seen (at start, then in the consumer's fetches): the lag is
    /// the distance to it.
    pub end_seen: i64,
    /// While `next_offset` is below this, the source replays what a previous run wrote.
    replay_until: i64,
    /// What a previous run had evicted: a restart that crashes again must not forget it.
    evicted_below: Option<i64>,
    at_eof: bool,
    last_data: Instant,
    /// First offset (and the newest time before it) of the readings whose last window ends
    /// at the key: while that window is alive, a restart must replay from there.
    first_offset_by_end: BTreeMap<i64, (i64, Option<i64>)>,
    /// The newest resume point computed: where this run started, then each commit's.
    recorded: ResumePoint,
}

impl PartitionState {
    /// A partition about to be read from `next_offset`.
    pub fn new(partition: i32, next_offset: i64, end_offset: Option<i64>) -> Self {
        PartitionState {
            partition,
            newest_ms: None,
            next_offset,
            end_offset,
            end_seen: next_offset,
            replay_until: next_offset,
            evicted_below: None,
            at_eof: false,
            last_data: Instant::now(),
            first_offset_by_end: BTreeMap::new(),
            recorded: ResumePoint {
                offset: next_offset,
                newest_ms: None,
                replay_until: next_offset,
                evicted_below: None,
            },
        }
    }

    /// The same partition, resuming where a previous run recorded `point`, with `high` its
    /// end offset now. `replay_until` was declared ahead of reading; nothing beyond the end
    /// can have been read.
    pub fn resuming(mut self, point: &ResumePoint, high: i64) -> Self {
        self.newest_ms = point.newest_ms;
        self.replay_until = point.replay_until.min(high);
        self.evicted_below = point.evicted_below;
        self.recorded = ResumePoint {
            offset: self.next_offset,
            replay_until: self.replay_until,
            ..*point
        };
        self
    }

    /// The newest resume point computed.
    pub fn recorded(&self) -> ResumePoint {
        self.recorded
    }

    /// Epochs that read up to `position` may be written once this is recorded.
    pub fn intended(&mut self, position: i64) {
        self.recorded.replay_until = self.recorded.replay_until.max(position);
    }

    /// The lateness rule: a reading is late iff its `ts` is more than `lateness_ms` older
    /// than the newest `ts` read before it from this partition. Accepted readings advance
    /// the newest `ts`.
    pub fn accept(&mut self, ts_ms: i64, lateness_ms: i64) -> bool {
        lateness::accept(&mut self.newest_ms, ts_ms, lateness_ms)
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

    /// Notes an accepted reading at `offset` whose last window ends at `last_end_ms`, read
    /// when the newest time was `newest_before`: a restart must replay it while that window
    /// is alive (the first such offset per window end is kept).
    pub fn record_for_replay(&mut self, offset: i64, last_end_ms: i64, newest_before: Option<i64>) {
        self.first_offset_by_end
            .entry(last_end_ms)
            .or_insert((offset, newest_before));
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
            replaying: self.next_offset < self.replay_until,
        }
    }

    /// Where a restart must resume, given that every window ending at or before
    /// `horizon_ms` is evicted and `durable` is this partition's report of the last durably
    /// written epoch. Forgets the windows the horizon has passed.
    pub fn resume_point(
        &mut self,
        horizon_ms: i64,
        durable: &PartitionProgress,
        lateness_ms: i64,
    ) -> ResumePoint {
        self.first_offset_by_end = self
            .first_offset_by_end
            .split_off(&horizon_ms.saturating_add(1));
        let first_live = self
            .first_offset_by_end
            .values()
            .min_by_key(|(offset, _)| *offset);
        let (offset, newest_ms) = match first_live {
            Some(&(offset, newest)) if offset < durable.next_offset => (offset, newest),
            _ => (
                durable.next_offset,
                durable.watermark_ms.map(|w| w + lateness_ms),
            ),
        };
        // A restart that is still replaying records what the run before it had reached, and
        // what was recorded as possibly written stays recorded.
        self.recorded = ResumePoint {
            offset,
            newest_ms,
            replay_until: durable
                .next_offset
                .max(self.replay_until)
                .max(self.recorded.replay_until),
            evicted_below: self
                .evicted_below
                .max((horizon_ms > i64::MIN).then_some(horizon_ms)),
        };
        self.recorded
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
    fn ownership_is_disjoint_and_complete() {
        for peers in 1..9 {
            let mut all: Vec<i32> = (0..peers)
                .flat_map(|i| OwnedPartitions::ids(i, peers, 5))
                .collect();
            all.sort();
            assert_eq!(all, vec![0, 1, 2, 3, 4]);
        }
    }

    fn durable(next_offset: i64, newest: i64) -> PartitionProgress {
        PartitionProgress {
            partition: 0,
            watermark_ms: Some(newest - 5),
            idle: false,
            next_offset,
            replaying: false,
        }
    }

    #[test]
    fn resume_point_is_the_first_reading_of_a_live_window() {
        let mut p = PartitionState::new(0, 0, None);
        p.record_for_replay(3, 60_000, Some(30));
        p.record_for_replay(4, 120_000, Some(40));
        p.record_for_replay(7, 60_000, Some(70));
        let at = |p: &mut PartitionState, horizon| {
            let r = p.resume_point(horizon, &durable(9, 90), 5);
            (r.offset, r.newest_ms, r.replay_until)
        };
        assert_eq!(at(&mut p, 0), (3, Some(30), 9));
        assert_eq!(at(&mut p, 60_000), (4, Some(40), 9));
        assert_eq!(
            at(&mut p, 120_000),
            (9, Some(90), 9),
            "nothing alive: resume after the durable epoch"
        );
        p.record_for_replay(12, 180_000, Some(120));
        assert_eq!(
            at(&mut p, 120_000),
            (9, Some(90), 9),
            "never past what was durable"
        );
    }

    #[test]
    fn a_resumed_partition_replays_up_to_what_was_written() {
        let point = ResumePoint {
            offset: 3,
            newest_ms: Some(10_000),
            replay_until: 5,
            evicted_below: None,
        };
        let mut p = PartitionState::new(0, 3, None).resuming(&point, i64::MAX);
        assert!(
            !p.accept(4_000, 5_000),
            "judged against the newest before the resume offset"
        );
        let replaying = |p: &PartitionState| {
            p.progress(0, Instant::now(), Duration::from_secs(1))
                .replaying
        };
        assert!(replaying(&p));
        p.read(4, Instant::now());
        assert!(!replaying(&p));
    }

    #[test]
    fn a_restart_that_crashes_again_remembers_what_the_first_run_reached() {
        let point = ResumePoint {
            offset: 3,
            newest_ms: Some(10_000),
            replay_until: 50,
            evicted_below: Some(60_000),
        };
        let mut p = PartitionState::new(0, 3, None).resuming(&point, i64::MAX);
        let again = p.resume_point(i64::MIN, &durable(7, 10_000), 5);
        assert_eq!(
            (again.replay_until, again.evicted_below),
            (50, Some(60_000))
        );
    }

    #[test]
    fn an_intent_is_recorded_ahead_and_a_restart_replays_no_further_than_the_end() {
        let mut p = PartitionState::new(0, 3, None);
        p.record_for_replay(3, 60_000, Some(30));
        let committed = p.resume_point(i64::MIN, &durable(5, 40), 5);
        p.read(8, Instant::now());
        p.intended(50);
        assert_eq!(
            p.recorded(),
            ResumePoint {
                replay_until: 50,
                ..committed
            }
        );
        assert_eq!(
            p.resume_point(i64::MIN, &durable(6, 50), 5).replay_until,
            50,
            "a later commit keeps the intent"
        );
        assert!(
            !p.progress(5, Instant::now(), Duration::from_secs(1))
                .replaying,
            "a run is not replaying what it declared itself"
        );
        let restarted = PartitionState::new(0, 3, None).resuming(&p.recorded(), 20);
        assert_eq!(restarted.recorded().replay_until, 20);
        assert!(
            restarted
                .progress(5, Instant::now(), Duration::from_secs(1))
                .replaying
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
