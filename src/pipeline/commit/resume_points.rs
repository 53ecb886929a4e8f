//! What the commit operator decides, apart from timely and Kafka: when a commit is due and
//! what it records, per owned partition, from the progress of the epochs every sink has
//! durably written.
//!
//! The rules: only progress of epochs before both the sinks' acknowledgements and the
//! sources' reports counts; nothing is recorded while a restart replays (what it rebuilds
//! is not written yet); a resume point that did not change is not recorded again; the
//! group offset is how far the partition had read by the durable epoch.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::pipeline::progress::{PartitionProgress, PartitionTable, ProgressStash, ResumePoint};
use crate::pipeline::source::PartitionState;

/// One commit: the resume points to record and the group offsets to commit once they are.
#[derive(Debug, PartialEq)]
pub struct Commit {
    /// Resume point per partition that changed.
    pub points: BTreeMap<i32, ResumePoint>,
    /// Group offset per partition: the next offset to read after the durable epoch.
    pub offsets: BTreeMap<i32, i64>,
}

/// A worker's view of the durable progress and what it has recorded.
#[derive(Debug)]
pub struct ResumePoints {
    stash: ProgressStash,
    table: PartitionTable,
    /// What the resume log durably holds, per owned partition.
    recorded: BTreeMap<i32, ResumePoint>,
    interval: Duration,
    lateness_ms: i64,
    last: Instant,
}

impl ResumePoints {
    /// Commits every `interval`, for a topic of `partitions`.
    pub fn new(
        partitions: usize,
        max_state_age_ms: i64,
        interval: Duration,
        lateness_ms: i64,
    ) -> Self {
        ResumePoints {
            stash: ProgressStash::default(),
            table: PartitionTable::new(partitions, max_state_age_ms),
            recorded: BTreeMap::new(),
            interval,
            lateness_ms,
            last: Instant::now(),
        }
    }

    /// Reports of epoch `time`.
    pub fn report(&mut self, time: u64, reports: impl IntoIterator<Item = PartitionProgress>) {
        self.stash.push(time, reports);
    }

    /// Takes in the progress of every epoch before `durable` (acknowledged by every sink)
    /// and `read` (reported by every source).
    pub fn advance(&mut self, durable: u64, read: u64) {
        self.stash.apply_before(durable.min(read), &mut self.table);
    }

    /// The commit due at `now`, if any: every interval, or at once when `last` (the
    /// dataflow ended; `finished`: every window was finished, so every point may pass
    /// everything read).
    pub fn due(
        &mut self,
        now: Instant,
        last: bool,
        finished: bool,
        states: &mut [PartitionState],
    ) -> Option<Commit> {
        if !last && now.duration_since(self.last) < self.interval {
            return None;
        }
        if self.table.replaying() {
            return None;
        }
        self.last = now;
        let horizon = if last && finished {
            i64::MAX
        } else {
            self.table.eviction_horizon()
        };
        let mut commit = Commit {
            points: BTreeMap::new(),
            offsets: BTreeMap::new(),
        };
        for state in states {
            let Some(report) = self.table.get(state.partition) else {
                continue;
            };
            let point = state.resume_point(horizon, report, self.lateness_ms);
            if self.recorded.get(&state.partition) != Some(&point) {
                commit.points.insert(state.partition, point);
                commit.offsets.insert(state.partition, report.next_offset);
            }
        }
        (!commit.points.is_empty()).then_some(commit)
    }

    /// `points` are durably recorded.
    pub fn recorded(&mut self, points: BTreeMap<i32, ResumePoint>) {
        self.recorded.extend(points);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(next_offset: i64, newest_ms: i64, replaying: bool) -> PartitionProgress {
        PartitionProgress {
            partition: 0,
            watermark_ms: Some(newest_ms - 5_000),
            idle: false,
            next_offset,
            replaying,
        }
    }

    /// One partition with readings at offsets 0..10, all in the window ending at 60 s.
    fn partition() -> Vec<PartitionState> {
        let mut state = PartitionState::new(0, 0, None);
        for offset in 0..10 {
            state.record_for_replay(offset, 60_000, Some(offset * 1_000));
        }
        vec![state]
    }

    fn points() -> ResumePoints {
        ResumePoints::new(1, 3_600_000, Duration::ZERO, 5_000)
    }

    #[test]
    fn only_epochs_every_sink_has_written_count() {
        let (mut points, mut states) = (points(), partition());
        points.report(0, [report(5, 50_000, false)]);
        points.report(1, [report(10, 59_000, false)]);
        points.advance(1, 2);
        let commit = points
            .due(Instant::now(), false, false, &mut states)
            .unwrap();
        assert_eq!(
            commit.offsets,
            [(0, 5)].into(),
            "epoch 1 is not acknowledged yet"
        );
        assert_eq!(
            commit.points[&0].offset, 0,
            "the open window's first reading"
        );
        assert_eq!(commit.points[&0].replay_until, 5);
    }

    #[test]
    fn nothing_is_recorded_while_a_restart_replays() {
        let (mut points, mut states) = (points(), partition());
        points.report(0, [report(5, 50_000, true)]);
        points.advance(1, 1);
        assert_eq!(points.due(Instant::now(), true, true, &mut states), None);
        points.report(1, [report(6, 51_000, false)]);
        points.advance(2, 2);
        assert!(points
            .due(Instant::now(), false, false, &mut states)
            .is_some());
    }

    #[test]
    fn a_point_recorded_is_not_recorded_again_and_the_end_passes_everything() {
        let (mut points, mut states) = (points(), partition());
        points.report(0, [report(10, 59_000, false)]);
        points.advance(1, 1);
        let commit = points
            .due(Instant::now(), false, false, &mut states)
            .unwrap();
        points.recorded(commit.points);
        assert_eq!(points.due(Instant::now(), false, false, &mut states), None);
        let last = points.due(Instant::now(), true, true, &mut states).unwrap();
        assert_eq!(
            last.points[&0].offset, 10,
            "every window finished: past all read"
        );
    }

    #[test]
    fn commits_wait_for_the_interval() {
        let mut points = ResumePoints::new(1, 3_600_000, Duration::from_secs(3600), 5_000);
        let mut states = partition();
        points.report(0, [report(5, 50_000, false)]);
        points.advance(1, 1);
        assert_eq!(points.due(Instant::now(), false, false, &mut states), None);
        assert!(points
            .due(Instant::now(), true, false, &mut states)
            .is_some());
    }
}
