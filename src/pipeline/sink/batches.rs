//! What the sink operator holds between the dataflow and its writer thread, apart from
//! timely: the epochs received and not yet handed over, and the jobs under way, each with
//! the capabilities that hold its epochs back until the job is written.
//!
//! The protocol: an epoch is handed over only once no more writes and no intents can come
//! for it (it is below `upper`); epochs go in order, at most [`MAX_JOBS_IN_FLIGHT`] jobs at
//! once, and the epochs waiting meanwhile are coalesced into the next job; an epoch's
//! capability is released only when its job is acknowledged, so the sinks' frontier means
//! "durably written up to".

use std::collections::{BTreeMap, VecDeque};

use crate::key::WindowKey;
use crate::stats::Stats;

/// Jobs handed to the writer thread at once: one being written, one waiting.
pub const MAX_JOBS_IN_FLIGHT: usize = 2;

/// The windows of one epoch.
pub type Epoch = Vec<(WindowKey, Stats)>;

/// Epochs waiting and jobs under way; `C` holds an epoch back (a timely capability).
#[derive(Debug)]
pub struct Batches<C> {
    pending: BTreeMap<u64, (C, Epoch)>,
    /// Per job, the capabilities of its epochs and the points they brought.
    in_flight: VecDeque<(Vec<C>, u64)>,
}

impl<C> Default for Batches<C> {
    fn default() -> Self {
        Batches {
            pending: BTreeMap::new(),
            in_flight: VecDeque::new(),
        }
    }
}

impl<C> Batches<C> {
    /// Takes `data` of epoch `time`; `hold` gives the capability for an epoch not seen yet.
    pub fn add(&mut self, time: u64, hold: impl FnOnce() -> C, data: &mut Epoch) {
        let entry = self
            .pending
            .entry(time)
            .or_insert_with(|| (hold(), Vec::new()));
        entry.1.append(data);
    }

    /// The epochs before `upper`, in order, as the next job, if a job may start and any
    /// epoch is there; its capabilities are held until [`Batches::written`].
    pub fn seal(&mut self, upper: u64) -> Option<Vec<Epoch>> {
        if self.in_flight.len() >= MAX_JOBS_IN_FLIGHT {
            return None;
        }
        let later = self.pending.split_off(&upper);
        let sealed = std::mem::replace(&mut self.pending, later);
        if sealed.is_empty() {
            return None;
        }
        let (holds, epochs): (Vec<C>, Vec<Epoch>) = sealed.into_values().unzip();
        let points = epochs.iter().map(Vec::len).sum::<usize>() as u64;
        self.in_flight.push_back((holds, points));
        Some(epochs)
    }

    /// The oldest job was written: its epochs are released; returns the points it took
    /// out of the backlog.
    pub fn written(&mut self) -> Option<u64> {
        self.in_flight.pop_front().map(|(_, points)| points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start_ms: i64) -> Epoch {
        vec![(
            WindowKey {
                level: 0,
                start_ms,
                series: "sensor=a".into(),
            },
            Stats::of(1.0),
        )]
    }

    fn held(batches: &Batches<u64>) -> Vec<u64> {
        batches
            .in_flight
            .iter()
            .flat_map(|(holds, _)| holds.clone())
            .chain(batches.pending.keys().copied())
            .collect()
    }

    #[test]
    fn an_epoch_is_handed_over_only_below_upper_and_held_until_written() {
        let mut batches = Batches::default();
        for time in [3, 1, 2] {
            batches.add(time, || time, &mut window(time as i64));
        }
        let job = batches.seal(3).unwrap();
        assert_eq!(job.len(), 2, "epochs 1 and 2, not 3");
        assert_eq!(job[0][0].0.start_ms, 1, "in order");
        assert_eq!(
            held(&batches),
            [1, 2, 3],
            "written epochs stay held until acknowledged"
        );
        assert_eq!(batches.written(), Some(2));
        assert_eq!(held(&batches), [3]);
    }

    #[test]
    fn at_most_two_jobs_and_the_epochs_waiting_meanwhile_go_together() {
        let mut batches = Batches::default();
        for time in 0..2 {
            batches.add(time, || time, &mut window(0));
            assert!(batches.seal(time + 1).is_some());
        }
        batches.add(2, || 2, &mut window(0));
        batches.add(3, || 3, &mut window(0));
        assert_eq!(batches.seal(4), None, "two jobs under way");
        assert_eq!(batches.written(), Some(1));
        assert_eq!(batches.seal(4).map(|job| job.len()), Some(2));
        assert_eq!(batches.seal(5), None, "nothing left");
    }
}
