//! The emit decision against a model of the trace, and the operator on two timely workers.

use super::windowing::{first_key_after, Decision, Live, Step, Windowing};
use super::*;
use crate::pipeline::metrics::WorkerMetrics;

/// The only level of a run without roll-ups.
const ALONE: Role = Role {
    level: 0,
    written: true,
    first: true,
    seals: false,
};

fn key(start_ms: i64) -> WindowKey {
    WindowKey {
        level: 0,
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
        level: u8,
        windows: &Windows,
        after: i64,
        until: i64,
        at: u64,
        f: &mut dyn FnMut(&WindowKey, Stats),
    ) {
        for (key, updates) in self.0.range(first_key_after(level, windows, after)..) {
            if key.level != level || windows.end(key.start_ms) > until {
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
    metrics: WorkerMetrics,
    out: Vec<Decision>,
}

impl Run {
    fn new(emit: EmitMode) -> Run {
        Run {
            windowing: Windowing::new(emit, MINUTE, ALONE, None),
            live: Model::default(),
            metrics: Metrics::default().worker(0),
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
            Decision::Evict(_) | Decision::Sealed(..) => None,
        })
        .collect()
}

/// Runs two workers over one partition: epoch 0 reads one reading into window 0 for
/// each of 8 series, epoch 1 one more into window 1 of one series and moves the
/// watermark (and the eviction horizon) past window 0, epochs 2 and 3 only report
/// progress. Returns what was written: `(epoch, window start, series)`.
fn two_workers_write(emit_mode: EmitMode) -> Vec<(u64, i64, String)> {
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
                role: ALONE,
                emit: emit_mode,
                partitions: 1,
                max_state_age_ms: 3_600_000,
                evicted_below: None,
            };
            let finish = Rc::new(Cell::new(false));
            let (writes, evictions, _) = emit(
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
                            level: 0,
                            start_ms: 0,
                            series,
                        };
                        readings.send((key, epoch, Stats::of(s as f64)));
                    }
                }
                if epoch == 1 {
                    let key = WindowKey {
                        level: 0,
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
    for emit_mode in [EmitMode::Final, EmitMode::Updates] {
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
    let mut run = Run::new(EmitMode::Final);
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
    let mut run = Run::new(EmitMode::Updates);
    let out = run.epoch(step(0, 0, 60_000), &[(0, 1.0), (60_000, 1.0)]);
    assert_eq!(written(out), [(0, 1), (60_000, 1)]);
    assert!(matches!(&out[2..], [Decision::Evict((k, 1, s))] if k.start_ms == 0 && s.count == -1));
    let out = run.epoch(step(3, 0, 60_000), &[(0, 5.0)]);
    assert!(matches!(out, [Decision::Evict((_, 4, s))] if s.count == -1));
    assert_eq!(run.metrics.late_expired.get(), 1);
}

#[test]
fn updates_held_back_by_a_replay_are_all_written_once_after_it() {
    let mut run = Run::new(EmitMode::Updates);
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
    let mut run = Run::new(EmitMode::Final);
    run.epoch(step(0, 59_999, i64::MIN), &[(0, 1.0), (60_000, 2.0)]);
    let out = run.epoch(step(1, 60_000, i64::MIN), &[(60_000, 3.0)]);
    assert_eq!(written(out), [(0, 1)]);
    let flush = step(u64::MAX, i64::MAX, i64::MIN);
    let out = run.epoch(flush, &[]);
    assert_eq!(written(out), [(60_000, 2)]);
}
