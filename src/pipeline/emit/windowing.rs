//! The emit decision of one epoch, apart from timely: given the keys that changed and the
//! pipeline's progress, which windows to write and which to evict, read from the live keys
//! (differential's trace, or a model of it in the tests).

use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::TraceReader;
use timely::progress::Antichain;

use crate::config::EmitMode;
use crate::key::WindowKey;
use crate::pipeline::aggregate::Trace;
use crate::pipeline::metrics::WorkerMetrics;
use crate::pipeline::window::Windows;
use crate::stats::Stats;

/// What the emit operator decides for one key.
#[derive(Clone, Debug)]
pub(super) enum Decision {
    Write(WindowKey, Stats),
    Evict((WindowKey, u64, Stats)),
    /// An evicted window's final statistic, for the roll-up changelog.
    Sealed(WindowKey, Stats),
}

/// What a level's windows are for.
#[derive(Clone, Copy, Debug)]
pub struct Role {
    /// The level, as keys carry it.
    pub level: u8,
    /// Its windows are written (the panes of hopping windows are not).
    pub written: bool,
    /// It is the first level: readings dropped as late-expired are counted here only.
    pub first: bool,
    /// Its evicted windows are handed to the roll-up changelog.
    pub seals: bool,
}

/// The live keys and their statistics.
pub(super) trait Live {
    /// Calls `f` with every key of `level` whose window ends after `after` and at or before
    /// `until`, in key order, with its statistic accumulated through epoch `at`; keys that
    /// accumulate to nothing are skipped.
    fn scan(
        &mut self,
        level: u8,
        windows: &Windows,
        after: i64,
        until: i64,
        at: u64,
        f: &mut dyn FnMut(&WindowKey, Stats),
    );
}

/// The key order starts at the level and window start, so the keys of `level`'s windows
/// ending after `after` start at this one.
pub(super) fn first_key_after(level: u8, windows: &Windows, after: i64) -> WindowKey {
    WindowKey {
        level,
        start_ms: after.saturating_sub(windows.window_ms).saturating_add(1),
        series: "".into(),
    }
}

impl Live for Trace {
    fn scan(
        &mut self,
        level: u8,
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
        cursor.seek_key(&storage, &first_key_after(level, windows, after));
        while let Some(key) = cursor.get_key(&storage) {
            if key.level != level || windows.end(key.start_ms) > until {
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
pub(super) struct Step {
    /// The epoch: statistics are accumulated through it, evictions happen in the next.
    pub(super) time: u64,
    /// A restart is replaying what was written before: nothing is written or evicted.
    pub(super) hold: bool,
    /// Windows ending at or before this are final (`i64::MAX` in the final flush).
    pub(super) due: i64,
    /// Windows ending at or before this are evicted.
    pub(super) horizon: i64,
}

/// What has been written and evicted, by window end.
pub(super) struct Windowing {
    emit: EmitMode,
    windows: Windows,
    role: Role,
    /// Windows ending at or before this were evicted.
    evicted_below: i64,
    /// `--emit final`: windows ending at or before this were written when they became final.
    written_below: i64,
    /// `--emit updates`: changes were held back while a restart replayed, so every live key
    /// is to be written.
    held_back: bool,
}

impl Windowing {
    pub(super) fn new(
        emit: EmitMode,
        windows: Windows,
        role: Role,
        evicted_below: Option<i64>,
    ) -> Windowing {
        Windowing {
            emit,
            windows,
            role,
            evicted_below: evicted_below.unwrap_or(i64::MIN),
            written_below: i64::MIN,
            held_back: false,
        }
    }

    /// Decides epoch `step.time` from the keys that changed in it.
    pub(super) fn decide(
        &mut self,
        live: &mut impl Live,
        changes: impl IntoIterator<Item = (WindowKey, Stats)>,
        step: Step,
        out: &mut Vec<Decision>,
        metrics: &WorkerMetrics,
    ) {
        let rewrite_all = !step.hold && self.held_back;
        let role = self.role;
        let write = |out: &mut Vec<Decision>, key: WindowKey, stats| {
            if role.written {
                out.push(Decision::Write(key, stats));
            }
        };
        for (key, stats) in changes {
            let end = self.windows.end(key.start_ms);
            if end <= self.evicted_below {
                if role.first {
                    metrics.late_expired.inc_by(stats.count.max(0) as u64);
                }
                out.push(Decision::Evict((
                    key,
                    step.time.saturating_add(1),
                    Stats::retraction(stats.count),
                )));
                continue;
            }
            match self.emit {
                EmitMode::Updates if step.hold => self.held_back = true,
                EmitMode::Updates if !rewrite_all => write(out, key, stats),
                EmitMode::Updates => {}
                // Written again after the replay, from the windows evicted up.
                EmitMode::Final if step.hold => self.written_below = i64::MIN,
                // A window already final changed: an idle partition woke.
                EmitMode::Final if end <= self.written_below => write(out, key, stats),
                EmitMode::Final => {}
            }
        }
        if step.hold {
            return;
        }
        let after = self.evicted_below.max(self.written_below);
        let until = match self.emit {
            EmitMode::Updates if rewrite_all => i64::MAX,
            EmitMode::Updates => after,
            EmitMode::Final => step.due,
        };
        if until > after && role.written {
            live.scan(
                role.level,
                &self.windows,
                after,
                until,
                step.time,
                &mut |key, stats| {
                    out.push(Decision::Write(key.clone(), stats));
                },
            );
        }
        self.held_back = false;
        if self.emit == EmitMode::Final {
            self.written_below = self.written_below.max(step.due);
        }
        if step.horizon > self.evicted_below {
            let (after, time) = (self.evicted_below, step.time);
            live.scan(
                role.level,
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
                    if role.seals {
                        out.push(Decision::Sealed(key.clone(), stats));
                    }
                },
            );
            self.evicted_below = step.horizon;
        }
    }
}
