//! Which windows are written when, and when their state goes.
//!
//! The emit operator sees every change of the keys its worker owns (from differential) and
//! every partition's progress (broadcast). Once both inputs have passed an epoch it:
//!
//! 1. records the new statistic of every changed key;
//! 2. with `--emit updates` writes every key changed since its last write; with
//!    `--emit final` only those whose window the pipeline watermark has passed;
//! 3. evicts every key whose window ends at or before the eviction horizon by feeding its
//!    retraction back into differential, one epoch later.
//!
//! A key that reappears below the eviction horizon (a partition idle for longer than
//! `--max-state-age` woke up) is counted as late-expired, retracted again, never written,
//! so a final window is never overwritten with a partial one.
//!
//! When the sources have finished (`--until-end`) every remaining window is final.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, OkErr};
use timely::dataflow::StreamVec;

use crate::aggregate::{Aggregates, Stats, WindowKey};
use crate::cli::Emit;
use crate::dataflow::ByEpoch;
use crate::run::Shared;
use crate::source::Updates;
use crate::watermark::{PartitionProgress, PartitionTable, ProgressStash};
use crate::window::Windows;

/// A window's statistic to write.
pub type Writes<'scope> = StreamVec<'scope, u64, (WindowKey, Stats)>;

/// What the emit operator decides for one key.
#[derive(Clone, Debug)]
enum Decision {
    Write(WindowKey, Stats),
    Evict((WindowKey, u64, Stats)),
}

/// The emit operator's settings.
#[derive(Clone, Debug)]
pub struct EmitConfig {
    /// Window shape.
    pub windows: Windows,
    /// Emission mode.
    pub emit: Emit,
    /// Number of partitions of the topic.
    pub partitions: usize,
    /// `--max-state-age`, ms.
    pub max_state_age_ms: i64,
    /// Windows ending at or before this were evicted by a previous run.
    pub evicted_below: Option<i64>,
}

/// Live keys and what has been written of them.
#[derive(Default)]
struct Windowing {
    live: BTreeMap<WindowKey, Stats>,
    dirty: BTreeSet<WindowKey>,
    evicted_below: Option<i64>,
}

impl Windowing {
    fn change(
        &mut self,
        key: WindowKey,
        stats: Stats,
        time: u64,
        windows: &Windows,
        out: &mut Vec<Decision>,
        shared: &Shared,
    ) {
        if self
            .evicted_below
            .is_some_and(|h| windows.end(key.start_ms) <= h)
        {
            shared
                .metrics
                .late_expired
                .fetch_add(stats.count.max(0) as u64, Relaxed);
            out.push(Decision::Evict((
                key,
                time + 1,
                Stats::retraction(stats.count),
            )));
            return;
        }
        self.dirty.insert(key.clone());
        self.live.insert(key, stats);
    }

    fn writes(&mut self, until_end_ms: Option<i64>, windows: &Windows, out: &mut Vec<Decision>) {
        while let Some(key) = self.dirty.first() {
            if until_end_ms.is_some_and(|wm| windows.end(key.start_ms) > wm) {
                break;
            }
            let key = self.dirty.pop_first().expect("first exists");
            let stats = self.live[&key];
            out.push(Decision::Write(key, stats));
        }
    }

    fn evict(&mut self, horizon_ms: i64, time: u64, windows: &Windows, out: &mut Vec<Decision>) {
        while let Some(entry) = self.live.first_entry() {
            if windows.end(entry.key().start_ms) > horizon_ms {
                break;
            }
            let (key, stats) = entry.remove_entry();
            out.push(Decision::Evict((
                key,
                time + 1,
                Stats::retraction(stats.count),
            )));
        }
        self.evicted_below = Some(self.evicted_below.map_or(horizon_ms, |h| h.max(horizon_ms)));
    }
}

/// Builds the emit operator: returns the writes for the sink and the evictions to feed
/// back. `finish` says, when the sources end, whether every window is final (`--until-end`)
/// or the run is only stopping (so only what was already due is written).
pub fn emit<'scope>(
    aggregates: Aggregates<'scope>,
    progress: StreamVec<'scope, u64, PartitionProgress>,
    config: EmitConfig,
    finish: Rc<Cell<bool>>,
    shared: Shared,
) -> (Writes<'scope>, Updates<'scope>) {
    let decisions = aggregates
        .binary_frontier::<_, CapacityContainerBuilder<Vec<Decision>>, _, _, _, _>(
            progress,
            Pipeline,
            Pipeline,
            "Emit",
            move |cap, _info| {
                let mut held: Option<Capability<u64>> = Some(cap);
                let mut stash: ByEpoch<((WindowKey, Stats), isize)> = BTreeMap::new();
                let mut progress_stash = ProgressStash::default();
                let mut table = PartitionTable::new(config.partitions, config.max_state_age_ms);
                let mut windowing = Windowing {
                    evicted_below: config.evicted_below,
                    ..Windowing::default()
                };
                let windows = config.windows;
                move |(changes, changes_frontier), (reports, reports_frontier), output| {
                    changes.for_each(|cap, data| {
                        let Some(retained) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        let entry = stash
                            .entry(*retained.time())
                            .or_insert_with(|| (retained, Vec::new()));
                        entry
                            .1
                            .extend(data.drain(..).map(|(change, _, diff)| (change, diff)));
                    });
                    reports.for_each(|cap, data| {
                        if let Some(time) = cap.least() {
                            progress_stash.push(*time, data.drain(..));
                        }
                    });

                    let reports_upper = reports_frontier.frontier().first().copied();
                    let changes_upper = changes_frontier.frontier().first().copied();
                    let upper = match (changes_upper, reports_upper) {
                        (Some(a), Some(b)) => a.min(b),
                        (a, b) => a.or(b).unwrap_or(u64::MAX),
                    };
                    let later = stash.split_off(&upper);
                    let mut decisions = Vec::new();
                    for (time, (cap, changes)) in std::mem::replace(&mut stash, later) {
                        // Decide on epoch `time` with the progress of epochs up to it only:
                        // a later epoch's progress (a replay that has caught up, a watermark
                        // that has passed a window) does not hold for this one's state.
                        progress_stash.apply_before(time.saturating_add(1), &mut table);
                        for ((key, stats), diff) in changes {
                            if diff > 0 {
                                windowing.change(
                                    key,
                                    stats,
                                    time,
                                    &windows,
                                    &mut decisions,
                                    &shared,
                                );
                            }
                        }
                        let watermark = table.pipeline_watermark();
                        shared.metrics.watermark_ms.store(watermark, Relaxed);
                        // Once the sources have finished with `--until-end`, every window
                        // is final, also those whose last change comes out of differential
                        // only now.
                        let ended = reports_upper.is_none() && finish.get();
                        let due = match config.emit {
                            Emit::Final if !ended => Some(watermark),
                            _ => None,
                        };
                        // While a restart replays what was written before, windows are
                        // partial rebuilds: neither written nor evicted until it caught up.
                        if ended || !table.replaying() {
                            windowing.writes(due, &windows, &mut decisions);
                            windowing.evict(
                                table.eviction_horizon(),
                                time,
                                &windows,
                                &mut decisions,
                            );
                        }
                        output.session(&cap).give_iterator(decisions.drain(..));
                    }
                    progress_stash
                        .apply_before(reports_upper.unwrap_or(u64::MAX).min(upper), &mut table);
                    match reports_upper {
                        Some(time) => {
                            if let Some(h) = held.as_mut() {
                                h.downgrade(&time);
                            }
                        }
                        // The sources are done. What is still stashed can only be the echo of
                        // evictions (held back by `held` itself, through the loop): no new data.
                        None => {
                            if let Some(h) = held.take() {
                                if finish.get() {
                                    windowing.writes(None, &windows, &mut decisions);
                                    output.session(&h).give_iterator(decisions.drain(..));
                                }
                            }
                        }
                    }
                }
            },
        );
    let (writes, evictions) = decisions.ok_err(|decision| match decision {
        Decision::Write(key, stats) => Ok((key, stats)),
        Decision::Evict(update) => Err(update),
    });
    (writes, evictions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(start_ms: i64) -> WindowKey {
        WindowKey {
            start_ms,
            series: "sensor=a".into(),
        }
    }

    const MINUTE: Windows = Windows {
        window_ms: 60_000,
        slide_ms: 60_000,
    };

    #[test]
    fn final_writes_only_windows_the_watermark_passed() {
        let mut w = Windowing::default();
        let shared = Shared::default();
        let mut out = Vec::new();
        w.change(key(0), Stats::of(1.0), 0, &MINUTE, &mut out, &shared);
        w.change(key(60_000), Stats::of(2.0), 0, &MINUTE, &mut out, &shared);
        w.writes(Some(60_000), &MINUTE, &mut out);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Decision::Write(k, _) if k.start_ms == 0));
        out.clear();
        w.writes(Some(60_000), &MINUTE, &mut out);
        assert!(out.is_empty(), "written once");
    }

    #[test]
    fn evicted_windows_are_never_rewritten() {
        let mut w = Windowing::default();
        let shared = Shared::default();
        let mut out = Vec::new();
        w.change(key(0), Stats::of(1.0), 0, &MINUTE, &mut out, &shared);
        w.writes(None, &MINUTE, &mut out);
        w.evict(60_000, 0, &MINUTE, &mut out);
        assert!(matches!(&out[1], Decision::Evict((k, 1, s)) if k.start_ms == 0 && s.count == -1));
        out.clear();
        w.change(key(0), Stats::of(5.0), 3, &MINUTE, &mut out, &shared);
        w.writes(None, &MINUTE, &mut out);
        assert!(matches!(&out[..], [Decision::Evict((_, 4, s))] if s.count == -1));
        assert_eq!(shared.metrics.late_expired.load(Relaxed), 1);
    }
}
