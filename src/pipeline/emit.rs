//! Which windows are written when, and when their state goes.
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

use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::TraceReader;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, OkErr};
use timely::dataflow::StreamVec;
use timely::progress::Antichain;

use crate::cli::Emit;
use crate::key::WindowKey;
use crate::pipeline::aggregate::Updates;
use crate::pipeline::aggregate::{Aggregates, Trace};
use crate::pipeline::epochs::ByEpoch;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::progress::{PartitionProgress, PartitionTable, ProgressStash};
use crate::pipeline::window::Windows;
use crate::stats::Stats;

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

/// The live keys and their statistics.
trait Live {
    /// Calls `f` with every key whose window ends after `after` and at or before `until`,
    /// in key order, with its statistic accumulated through epoch `at`; keys that
    /// accumulate to nothing are skipped.
    fn scan(
        &mut self,
        windows: &Windows,
        after: i64,
        until: i64,
        at: u64,
        f: &mut dyn FnMut(&WindowKey, Stats),
    );
}

/// The key order starts at the window start, so the keys of windows ending after `after`
/// start at this one.
fn first_key_after(windows: &Windows, after: i64) -> WindowKey {
    WindowKey {
        start_ms: after.saturating_sub(windows.window_ms).saturating_add(1),
        series: "".into(),
    }
}

impl Live for Trace {
    fn scan(
        &mut self,
        windows: &Windows,
        after: i64,
        until: i64,
        at: u64,
        f: &mut dyn FnMut(&WindowKey, Stats),
    ) {
        let Some(batches) = self.batches_through(Antichain::new().borrow()) else {
            return;
        };
        let (mut cursor, storage) = cursor_list(batches);
        cursor.seek_key(&storage, &first_key_after(windows, after));
        while let Some(key) = cursor.get_key(&storage) {
            if windows.end(key.start_ms) > until {
                break;
            }
            let mut stats = Stats::zero();
            cursor.map_times(&storage, |time, diff| {
                if *time <= at {
                    stats.merge(diff);
                }
            });
            if stats.count != 0 {
                f(key, stats);
            }
            cursor.step_key(&storage);
        }
    }
}

/// What one epoch's decision depends on besides its changes.
#[derive(Clone, Copy, Debug)]
struct Step {
    /// The epoch: statistics are accumulated through it, evictions happen in the next.
    time: u64,
    /// A restart is replaying what was written before: nothing is written or evicted.
    hold: bool,
    /// Windows ending at or before this are final (`i64::MAX` in the final flush).
    due: i64,
    /// Windows ending at or before this are evicted.
    horizon: i64,
}

/// What has been written and evicted, by window end.
struct Windowing {
    emit: Emit,
    windows: Windows,
    /// Windows ending at or before this were evicted.
    evicted_below: i64,
    /// `--emit final`: windows ending at or before this were written when they became final.
    written_below: i64,
    /// `--emit updates`: changes were held back while a restart replayed, so every live key
    /// is to be written.
    held_back: bool,
}

impl Windowing {
    fn new(emit: Emit, windows: Windows, evicted_below: Option<i64>) -> Windowing {
        Windowing {
            emit,
            windows,
            evicted_below: evicted_below.unwrap_or(i64::MIN),
            written_below: i64::MIN,
            held_back: false,
        }
    }

    /// Decides epoch `step.time` from the keys that changed in it.
    fn decide(
        &mut self,
        live: &mut impl Live,
        changes: impl IntoIterator<Item = (WindowKey, Stats)>,
        step: Step,
        out: &mut Vec<Decision>,
        metrics: &Metrics,
    ) {
        let rewrite_all = !step.hold && self.held_back;
        for (key, stats) in changes {
            let end = self.windows.end(key.start_ms);
            if end <= self.evicted_below {
                metrics
                    .late_expired
                    .fetch_add(stats.count.max(0) as u64, Relaxed);
                out.push(Decision::Evict((
                    key,
                    step.time.saturating_add(1),
                    Stats::retraction(stats.count),
                )));
                continue;
            }
            match self.emit {
                Emit::Updates if step.hold => self.held_back = true,
                Emit::Updates if !rewrite_all => out.push(Decision::Write(key, stats)),
                Emit::Updates => {}
                // Written again after the replay, from the windows evicted up.
                Emit::Final if step.hold => self.written_below = i64::MIN,
                // A window already final changed: an idle partition woke.
                Emit::Final if end <= self.written_below => out.push(Decision::Write(key, stats)),
                Emit::Final => {}
            }
        }
        if step.hold {
            return;
        }
        let after = self.evicted_below.max(self.written_below);
        let until = match self.emit {
            Emit::Updates if rewrite_all => i64::MAX,
            Emit::Updates => after,
            Emit::Final => step.due,
        };
        if until > after {
            live.scan(&self.windows, after, until, step.time, &mut |key, stats| {
                out.push(Decision::Write(key.clone(), stats));
            });
        }
        self.held_back = false;
        if self.emit == Emit::Final {
            self.written_below = self.written_below.max(step.due);
        }
        if step.horizon > self.evicted_below {
            let (after, time) = (self.evicted_below, step.time);
            live.scan(
                &self.windows,
                after,
                step.horizon,
                time,
                &mut |key, stats| {
                    out.push(Decision::Evict((
                        key.clone(),
                        time.saturating_add(1),
                        Stats::retraction(stats.count),
                    )));
                },
            );
            self.evicted_below = step.horizon;
        }
    }
}

/// Builds the emit operator: returns the writes for the sink and the evictions to feed
/// back. `finish` says, when the sources end, whether every window is final (`--until-end`)
/// or the run is only stopping (so only what was already due is written).
pub fn emit<'scope>(
    aggregates: Aggregates<'scope>,
    mut trace: Trace,
    progress: StreamVec<'scope, u64, PartitionProgress>,
    config: EmitConfig,
    finish: Rc<Cell<bool>>,
    metrics: Arc<Metrics>,
) -> (Writes<'scope>, Updates<'scope>) {
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
                let mut windowing =
                    Windowing::new(config.emit, config.windows, config.evicted_below);
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
                        metrics.watermark_ms.store(watermark, Relaxed);
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
                        windowing.decide(&mut trace, changes, step, &mut decisions, &metrics);
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
                        windowing.decide(&mut trace, [], step, &mut decisions, &metrics);
                        output.session(&*h).give_iterator(decisions.drain(..));
                    }
                    held = None;
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

    /// The trace's contents as a map: every update of every key.
    #[derive(Default)]
    struct Model(BTreeMap<WindowKey, Vec<(u64, Stats)>>);

    impl Model {
        /// Records the readings' statistics at `time` and returns them as changes.
        fn read(&mut self, time: u64, keys: &[(i64, f64)]) -> Vec<(WindowKey, Stats)> {
            let mut changes = Vec::new();
            for &(start_ms, value) in keys {
                let updates = self.0.entry(key(start_ms)).or_default();
                updates.push((time, Stats::of(value)));
                let mut stats = Stats::zero();
                updates.iter().for_each(|(_, s)| stats.merge(s));
                changes.push((key(start_ms), stats));
            }
            changes
        }

        /// Feeds the evictions back, as the loop does.
        fn feed_back(&mut self, out: &[Decision]) {
            for decision in out {
                if let Decision::Evict((key, time, stats)) = decision {
                    self.0.entry(key.clone()).or_default().push((*time, *stats));
                }
            }
        }
    }

    impl Live for Model {
        fn scan(
            &mut self,
            windows: &Windows,
            after: i64,
            until: i64,
            at: u64,
            f: &mut dyn FnMut(&WindowKey, Stats),
        ) {
            for (key, updates) in self.0.range(first_key_after(windows, after)..) {
                if windows.end(key.start_ms) > until {
                    break;
                }
                let mut stats = Stats::zero();
                for (time, update) in updates {
                    if *time <= at {
                        stats.merge(update);
                    }
                }
                if stats.count != 0 {
                    f(key, stats);
                }
            }
        }
    }

    fn step(time: u64, due: i64, horizon: i64) -> Step {
        Step {
            time,
            hold: false,
            due,
            horizon,
        }
    }

    /// One worker's emit decisions over a model of its trace.
    struct Run {
        windowing: Windowing,
        live: Model,
        metrics: Metrics,
        out: Vec<Decision>,
    }

    impl Run {
        fn new(emit: Emit) -> Run {
            Run {
                windowing: Windowing::new(emit, MINUTE, None),
                live: Model::default(),
                metrics: Metrics::default(),
                out: Vec::new(),
            }
        }

        /// Reads one reading per `(window start, value)` in epoch `step.time`, decides
        /// the epoch and feeds its evictions back; returns its decisions.
        fn epoch(&mut self, step: Step, readings: &[(i64, f64)]) -> &[Decision] {
            self.out.clear();
            let changes = self.live.read(step.time, readings);
            self.windowing
                .decide(&mut self.live, changes, step, &mut self.out, &self.metrics);
            self.live.feed_back(&self.out);
            &self.out
        }
    }

    fn written(out: &[Decision]) -> Vec<(i64, i64)> {
        out.iter()
            .filter_map(|d| match d {
                Decision::Write(k, s) => Some((k.start_ms, s.count)),
                Decision::Evict(_) => None,
            })
            .collect()
    }

    /// Runs two workers over one partition: epoch 0 reads one reading into window 0 for
    /// each of 8 series, epoch 1 one more into window 1 of one series and moves the
    /// watermark (and the eviction horizon) past window 0, epochs 2 and 3 only report
    /// progress. Returns what was written: `(epoch, window start, series)`.
    fn two_workers_write(emit_mode: Emit) -> Vec<(u64, i64, String)> {
        use std::sync::Mutex;
        use timely::dataflow::operators::vec::{Broadcast, Input};
        use timely::dataflow::operators::{ConnectLoop, Feedback, Inspect, Probe};

        let written = Arc::new(Mutex::new(Vec::new()));
        let seen = written.clone();
        timely::execute(timely::Config::process(2), move |worker| {
            let seen = seen.clone();
            let (mut readings, mut reports, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (readings, updates) = scope.new_input::<(WindowKey, u64, Stats)>();
                let (reports, progress) = scope.new_input::<PartitionProgress>();
                let (eviction_loop, evictions) = scope.feedback(1);
                let (aggregates, trace) = crate::pipeline::aggregate::aggregate(updates, evictions);
                let config = EmitConfig {
                    windows: MINUTE,
                    emit: emit_mode,
                    partitions: 1,
                    max_state_age_ms: 3_600_000,
                    evicted_below: None,
                };
                let finish = Rc::new(Cell::new(false));
                let (writes, evictions) = emit(
                    aggregates,
                    trace,
                    progress.broadcast(),
                    config,
                    finish,
                    Arc::default(),
                );
                evictions.connect_loop(eviction_loop);
                let (probe, _) = writes
                    .inspect_core(move |event| {
                        if let Ok((stamp, data)) = event {
                            let time = *stamp.iter().min().expect("a stamp has a time");
                            let mut seen = seen.lock().unwrap();
                            for (key, _) in data {
                                seen.push((time, key.start_ms, key.series.to_string()));
                            }
                        }
                    })
                    .probe();
                (readings, reports, probe)
            });
            let report = |watermark_ms| PartitionProgress {
                partition: 0,
                watermark_ms: Some(watermark_ms),
                idle: false,
                next_offset: 0,
                replaying: false,
            };
            for epoch in 0..4u64 {
                if worker.index() == 0 {
                    if epoch == 0 {
                        for s in 0..8 {
                            let series = format!("sensor={s}").into();
                            let key = WindowKey {
                                start_ms: 0,
                                series,
                            };
                            readings.send((key, epoch, Stats::of(s as f64)));
                        }
                    }
                    if epoch == 1 {
                        let key = WindowKey {
                            start_ms: 60_000,
                            series: "sensor=0".into(),
                        };
                        readings.send((key, epoch, Stats::of(1.0)));
                    }
                    reports.send(report(if epoch == 0 { 50_000 } else { 70_000 }));
                }
                readings.advance_to(epoch + 1);
                reports.advance_to(epoch + 1);
                while probe.less_than(readings.time()) {
                    worker.step();
                }
            }
        })
        .unwrap();
        let mut written = written.lock().unwrap().clone();
        written.sort();
        written
    }

    #[test]
    fn every_window_the_resume_point_passes_is_written_by_its_owner_by_then() {
        // At epoch 1 the eviction horizon, from which the commit computes the resume point,
        // passes window 0: each of its 8 keys must be written, on whichever worker owns it,
        // in an epoch up to 1, although only one key changed in epoch 1.
        for emit_mode in [Emit::Final, Emit::Updates] {
            let written = two_workers_write(emit_mode);
            let window_0: Vec<_> = written
                .iter()
                .filter(|(time, start, _)| *start == 0 && *time <= 1)
                .map(|(_, _, series)| series.clone())
                .collect();
            let expected: Vec<String> = (0..8).map(|s| format!("sensor={s}")).collect();
            assert_eq!(window_0, expected, "{emit_mode:?}: {written:?}");
        }
    }

    #[test]
    fn final_writes_each_window_once_when_the_watermark_passes_it() {
        let mut run = Run::new(Emit::Final);
        let out = run.epoch(step(0, 59_999, i64::MIN), &[(0, 1.0), (60_000, 2.0)]);
        assert!(out.is_empty(), "no window is final yet");
        let out = run.epoch(step(1, 60_000, i64::MIN), &[(0, 3.0)]);
        assert_eq!(written(out), [(0, 2)]);
        let out = run.epoch(step(2, 60_000, i64::MIN), &[]);
        assert!(out.is_empty(), "written once");
        // An idle partition woke and changed a final window: written again at once.
        let out = run.epoch(step(3, 60_000, i64::MIN), &[(0, 4.0)]);
        assert_eq!(written(out), [(0, 3)]);
    }

    #[test]
    fn evicted_windows_are_never_rewritten() {
        let mut run = Run::new(Emit::Updates);
        let out = run.epoch(step(0, 0, 60_000), &[(0, 1.0), (60_000, 1.0)]);
        assert_eq!(written(out), [(0, 1), (60_000, 1)]);
        assert!(
            matches!(&out[2..], [Decision::Evict((k, 1, s))] if k.start_ms == 0 && s.count == -1)
        );
        let out = run.epoch(step(3, 0, 60_000), &[(0, 5.0)]);
        assert!(matches!(out, [Decision::Evict((_, 4, s))] if s.count == -1));
        assert_eq!(run.metrics.late_expired.load(Relaxed), 1);
    }

    #[test]
    fn updates_held_back_by_a_replay_are_all_written_once_after_it() {
        let mut run = Run::new(Emit::Updates);
        let held = Step {
            hold: true,
            ..step(0, 0, 0)
        };
        let out = run.epoch(held, &[(0, 1.0), (60_000, 2.0)]);
        assert!(out.is_empty(), "nothing written or evicted while replaying");
        let out = run.epoch(step(1, 0, i64::MIN), &[(0, 3.0)]);
        assert_eq!(written(out), [(0, 2), (60_000, 1)]);
        let out = run.epoch(step(2, 0, i64::MIN), &[(60_000, 3.0)]);
        assert_eq!(written(out), [(60_000, 2)]);
    }

    #[test]
    fn the_final_flush_writes_every_window_not_yet_written_once() {
        let mut run = Run::new(Emit::Final);
        run.epoch(step(0, 59_999, i64::MIN), &[(0, 1.0), (60_000, 2.0)]);
        let out = run.epoch(step(1, 60_000, i64::MIN), &[(60_000, 3.0)]);
        assert_eq!(written(out), [(0, 1)]);
        let flush = step(u64::MAX, i64::MAX, i64::MIN);
        let out = run.epoch(flush, &[]);
        assert_eq!(written(out), [(60_000, 2)]);
    }
}
