//! Which windows are written when, and when their state goes: one operator per level (the
//! first, the roll-ups), each over its own arrangement.
//!
//! The emit operator sees every change of the keys its worker owns (from differential) and
//! every partition's progress (broadcast). Once both inputs have passed an epoch, every
//! epoch with progress whether or not the worker's own keys changed in it, it:
//!
//! 1. with `--emit updates` writes every key changed in the epoch; with `--emit final`
//!    every key whose window the pipeline watermark has now passed;
//! 2. evicts every key whose window ends at or before the eviction horizon by feeding its
//!    retraction back into differential, one epoch later.
//!
//! It keeps no copy of the keys: those due and those to evict are read from differential's
//! arrangement, which holds every live key once, accumulated to the epoch decided on. What
//! the operator keeps is two bounds: windows ending at or before them are written (final)
//! or evicted.
//!
//! A key that reappears below the eviction horizon (a partition idle for longer than
//! `--max-state-age` woke up) is counted as late-expired, retracted again, never written,
//! so a final window is never overwritten with a partial one.
//!
//! When the sources have finished (`--until-end`) every remaining window is final.

#[cfg(test)]
mod tests;
mod windowing;

use differential_dataflow::trace::TraceReader;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, OkErr};
use timely::dataflow::StreamVec;
use timely::progress::Antichain;

use crate::config::EmitMode;
use crate::key::WindowKey;
use crate::pipeline::aggregate::{Aggregates, Trace, Updates};
use crate::pipeline::epochs::ByEpoch;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::progress::{PartitionProgress, PartitionTable, ProgressStash};
use crate::pipeline::window::Windows;
use crate::stats::Stats;
use windowing::{Decision, Step, Windowing};

pub use windowing::Role;

/// A window's statistic to write.
pub type Writes<'scope> = StreamVec<'scope, u64, (WindowKey, Stats)>;

/// Evicted windows' final statistics, for the roll-up changelog.
pub type Sealed<'scope> = StreamVec<'scope, u64, (WindowKey, Stats)>;

/// The emit operator's settings.
#[derive(Clone, Debug)]
pub struct EmitConfig {
    /// Window shape.
    pub windows: Windows,
    /// What the level's windows are for.
    pub role: Role,
    /// Emission mode.
    pub emit: EmitMode,
    /// Number of partitions of the topic.
    pub partitions: usize,
    /// `--max-state-age`, ms.
    pub max_state_age_ms: i64,
    /// Windows ending at or before this were evicted by a previous run.
    pub evicted_below: Option<i64>,
}

/// Builds the emit operator of one level: returns the writes for the sink, the evictions
/// to feed back, and the evicted windows for the roll-up changelog. `finish` says, when the
/// sources end, whether every window is final (`--until-end`) or the run is only stopping
/// (so only what was already due is written).
pub fn emit<'scope>(
    aggregates: Aggregates<'scope>,
    mut trace: Trace,
    progress: StreamVec<'scope, u64, PartitionProgress>,
    config: EmitConfig,
    finish: Rc<Cell<bool>>,
    metrics: Arc<Metrics>,
) -> (Writes<'scope>, Updates<'scope>, Sealed<'scope>) {
    let counters = metrics.worker(aggregates.scope().index());
    let decisions = aggregates
        .binary_frontier::<_, CapacityContainerBuilder<Vec<Decision>>, _, _, _, _>(
            progress,
            Pipeline,
            Pipeline,
            "Emit",
            move |cap, _info| {
                let mut held: Option<Capability<u64>> = Some(cap);
                // The latest epoch any source reported: no reading is in a later one.
                let mut last_reported: Option<u64> = None;
                let mut stash: ByEpoch<((WindowKey, Stats), isize)> = BTreeMap::new();
                let mut progress_stash = ProgressStash::default();
                let mut table = PartitionTable::new(config.partitions, config.max_state_age_ms);
                let mut windowing = Windowing::new(
                    config.emit,
                    config.windows,
                    config.role,
                    config.evicted_below,
                );
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
                    // Every epoch with progress is decided, whether or not this worker's
                    // keys changed in it: the watermark alone makes windows due, and the
                    // commit follows the progress of every epoch.
                    reports.for_each(|cap, data| {
                        let Some(retained) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        let time = *retained.time();
                        last_reported = Some(last_reported.map_or(time, |t| t.max(time)));
                        progress_stash.push(time, data.drain(..));
                        stash.entry(time).or_insert_with(|| (retained, Vec::new()));
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
                        let watermark = table.pipeline_watermark();
                        if config.role.first {
                            metrics.live.watermark(watermark);
                        }
                        let step = Step {
                            time,
                            // While a restart replays what was written before, windows are
                            // partial rebuilds: neither written nor evicted until it caught up.
                            hold: table.replaying(),
                            due: watermark,
                            horizon: table.eviction_horizon(),
                        };
                        let changes = changes
                            .into_iter()
                            .filter(|(_, diff)| *diff > 0)
                            .map(|(change, _)| change);
                        windowing.decide(&mut trace, changes, step, &mut decisions, &counters);
                        output.session(&cap).give_iterator(decisions.drain(..));
                    }
                    progress_stash
                        .apply_before(reports_upper.unwrap_or(u64::MAX).min(upper), &mut table);
                    // Every epoch to decide from now on is at or after `upper`.
                    let decided = Antichain::from_elem(upper);
                    trace.set_logical_compaction(decided.borrow());
                    trace.set_physical_compaction(decided.borrow());
                    let Some(h) = held.as_mut() else {
                        return;
                    };
                    if let Some(time) = reports_upper {
                        h.downgrade(&time);
                        return;
                    }
                    // The sources are done. With `--until-end` every window is final: written
                    // once every epoch with readings is decided (so none is written again),
                    // while `held` keeps the loop open for these writes and their echoes.
                    if finish.get() {
                        if let Some(last) = last_reported {
                            h.downgrade(&last.max(*h.time()));
                            if changes_upper.is_some_and(|c| c <= last) {
                                return;
                            }
                        }
                        // Nothing is decided after this: the statistics are the whole trace's.
                        let step = Step {
                            time: u64::MAX,
                            hold: false,
                            due: i64::MAX,
                            horizon: i64::MIN,
                        };
                        windowing.decide(&mut trace, [], step, &mut decisions, &counters);
                        output.session(&*h).give_iterator(decisions.drain(..));
                    }
                    held = None;
                }
            },
        );
    let (evictions, points): (Updates, StreamVec<u64, (bool, WindowKey, Stats)>) = decisions
        .ok_err(|decision| match decision {
            Decision::Evict(update) => Ok(update),
            Decision::Write(key, stats) => Err((true, key, stats)),
            Decision::Sealed(key, stats) => Err((false, key, stats)),
        });
    let (writes, sealed) = points.ok_err(|(write, key, stats)| match write {
        true => Ok((key, stats)),
        false => Err((key, stats)),
    });
    (writes, evictions, sealed)
}
