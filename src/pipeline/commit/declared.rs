//! What the intent operator decides, apart from timely and Kafka: which epochs may be
//! written, given how far each of them read and what is durably declared, and what to
//! declare next.
//!
//! The invariant the sinks rely on: an epoch is released only once it is complete and every
//! position it reached, in every partition the worker owns, is at or below what a durable
//! record declares.

use std::collections::BTreeMap;

/// How far ahead of what it has read a partition declares it may have written, in
/// messages: a new record is needed only every half of this, so the broker sees few
/// writes, and a restart replays at most this much more than was read.
pub const LOOKAHEAD: i64 = 50_000;

/// One worker's positions per epoch and its durable declarations.
#[derive(Debug)]
pub struct Declared {
    /// Per epoch not yet released, how far each owned partition had read by its end.
    reached: BTreeMap<u64, BTreeMap<i32, i64>>,
    /// The newest position of each owned partition.
    latest: BTreeMap<i32, i64>,
    /// What is durably declared, per owned partition.
    declared: BTreeMap<i32, i64>,
}

impl Declared {
    /// The owned partitions, each with what earlier runs durably declared.
    pub fn new(declared: BTreeMap<i32, i64>) -> Declared {
        Declared {
            reached: BTreeMap::new(),
            latest: BTreeMap::new(),
            declared,
        }
    }

    /// Partition `partition` had read up to `next_offset` by the end of epoch `time`;
    /// reports of partitions the worker does not own are no concern of its.
    pub fn report(&mut self, time: u64, partition: i32, next_offset: i64) {
        if !self.declared.contains_key(&partition) {
            return;
        }
        let position = self
            .reached
            .entry(time)
            .or_default()
            .entry(partition)
            .or_default();
        *position = next_offset.max(*position);
        let newest = self.latest.entry(partition).or_default();
        *newest = next_offset.max(*newest);
    }

    /// Releases the epochs before `upper` (no more reports come for them) that what is
    /// declared covers; every epoch before the returned one may be written.
    pub fn release(&mut self, upper: u64) -> u64 {
        while let Some((&time, positions)) = self.reached.first_key_value() {
            let covered = positions.iter().all(|(p, o)| *o <= self.declared[p]);
            if time >= upper || !covered {
                break;
            }
            self.reached.pop_first();
        }
        self.reached
            .keys()
            .next()
            .copied()
            .unwrap_or(upper)
            .min(upper)
    }

    /// The declarations to record now: each partition whose reading has come within half
    /// the lookahead of what is declared gets a target a lookahead beyond its position.
    pub fn ahead(&self) -> BTreeMap<i32, i64> {
        self.latest
            .iter()
            .filter(|(p, position)| *position + LOOKAHEAD / 2 > self.declared[p])
            .map(|(p, position)| (*p, position + LOOKAHEAD))
            .collect()
    }

    /// `declaring` is durably recorded.
    pub fn recorded(&mut self, declaring: BTreeMap<i32, i64>) {
        for (partition, target) in declaring {
            let declared = self.declared.entry(partition).or_default();
            *declared = target.max(*declared);
        }
    }

    /// Whether every epoch reported was released.
    pub fn drained(&self) -> bool {
        self.reached.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One step of a run: a source reports, the frontier moves, or a save finishes.
    #[derive(Clone, Debug)]
    enum Event {
        Read { partition: i32, messages: i64 },
        Advance,
        Saved { ok: bool },
    }

    fn events() -> impl Strategy<Value = Vec<Event>> {
        let event = prop_oneof![
            (0..3i32, 0..40_000i64).prop_map(|(partition, messages)| Event::Read {
                partition,
                messages
            }),
            Just(Event::Advance),
            proptest::bool::weighted(0.8).prop_map(|ok| Event::Saved { ok }),
        ];
        proptest::collection::vec(event, 1..200)
    }

    proptest! {
        /// Against a model of the durable record (what was saved, not what is under way):
        /// every released epoch's positions are declared, and with saves that succeed,
        /// everything is released in the end.
        #[test]
        fn an_epoch_is_released_only_once_what_it_read_is_durably_declared(events in events()) {
            let owned: BTreeMap<i32, i64> = [(0, 0), (1, 0)].into();
            let mut declared = Declared::new(owned.clone());
            let mut durable = owned;
            let mut reached: BTreeMap<u64, BTreeMap<i32, i64>> = BTreeMap::new();
            let mut position: BTreeMap<i32, i64> = BTreeMap::new();
            let (mut epoch, mut released) = (0u64, 0u64);
            let mut in_flight: Option<BTreeMap<i32, i64>> = None;
            for event in events.iter().chain(std::iter::repeat_n(&Event::Saved { ok: true }, 3)) {
                match event {
                    Event::Read { partition, messages } => {
                        let at = position.entry(*partition).or_default();
                        *at += messages;
                        declared.report(epoch, *partition, *at);
                        if durable.contains_key(partition) {
                            reached.entry(epoch).or_default().insert(*partition, *at);
                        }
                    }
                    Event::Advance => epoch += 1,
                    Event::Saved { ok } => {
                        if let Some(declaring) = in_flight.take() {
                            if *ok {
                                for (p, target) in &declaring {
                                    durable.insert(*p, *target);
                                }
                                declared.recorded(declaring);
                            }
                        }
                    }
                }
                let next = declared.release(epoch);
                prop_assert!(next >= released, "released epochs stay released");
                for (time, positions) in reached.range(..next) {
                    for (p, o) in positions {
                        prop_assert!(*o <= durable[p], "epoch {time} released with partition {p} at {o}, declared {}", durable[p]);
                    }
                }
                released = next;
                if in_flight.is_none() {
                    let ahead = declared.ahead();
                    if !ahead.is_empty() {
                        in_flight = Some(ahead);
                    }
                }
            }
            prop_assert_eq!(declared.release(u64::MAX), u64::MAX);
            prop_assert!(declared.drained());
        }
    }

    #[test]
    fn declares_a_lookahead_ahead_once_reading_is_within_half_of_it() {
        let mut declared = Declared::new([(0, LOOKAHEAD)].into());
        declared.report(0, 0, LOOKAHEAD / 2);
        assert!(declared.ahead().is_empty(), "half a lookahead left");
        declared.report(1, 0, LOOKAHEAD / 2 + 1);
        assert_eq!(
            declared.ahead(),
            [(0, LOOKAHEAD / 2 + 1 + LOOKAHEAD)].into()
        );
        declared.report(2, 7, 1);
        assert_eq!(declared.ahead().len(), 1, "partition 7 is not owned");
    }
}
