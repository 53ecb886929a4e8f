//! The readings of one epoch (or of as many series as the source lets it hold) folded per
//! key before they enter differential: a sensor read a thousand times in an epoch is one
//! update per window and level, not a thousand. Each key's statistic is the same either
//! way; only the order of the merges differs, as it does with differential's own batching.

use std::collections::HashMap;
use std::sync::Arc;

use crate::key::WindowKey;
use crate::stats::Stats;

/// One series' windows touched in an epoch: most series touch one per level.
struct Windows {
    first: (u8, i64, Stats),
    more: Vec<(u8, i64, Stats)>,
}

impl Windows {
    fn add(&mut self, level: u8, start_ms: i64, stats: Stats) {
        let same = |(l, s, _): &&mut (u8, i64, Stats)| *l == level && *s == start_ms;
        match std::iter::once(&mut self.first)
            .chain(self.more.iter_mut())
            .find(|e| same(e))
        {
            Some((_, _, acc)) => acc.merge(&stats),
            None => self.more.push((level, start_ms, stats)),
        }
    }
}

/// The statistics of an epoch's readings, by key. Hashed with foldhash, seeded per process:
/// SipHash, std's default, took 1.5 % of the CPU of a backfill over tansu (perf).
#[derive(Default)]
pub struct Combiner {
    by_series: HashMap<Arc<str>, Windows, foldhash::fast::RandomState>,
}

impl Combiner {
    /// Folds `stats` into each of `series`'s `windows` (level, start ms): one look-up of the
    /// series for all of a reading's windows and levels.
    pub fn add(
        &mut self,
        series: &str,
        stats: Stats,
        windows: impl IntoIterator<Item = (u8, i64)>,
    ) {
        if let Some(folded) = self.by_series.get_mut(series) {
            for (level, start_ms) in windows {
                folded.add(level, start_ms, stats);
            }
            return;
        }
        let mut windows = windows.into_iter();
        let Some((level, start_ms)) = windows.next() else {
            return;
        };
        let mut folded = Windows {
            first: (level, start_ms, stats),
            more: Vec::new(),
        };
        for (level, start_ms) in windows {
            folded.add(level, start_ms, stats);
        }
        self.by_series.insert(series.into(), folded);
    }

    /// How many series have readings folded.
    pub fn series(&self) -> usize {
        self.by_series.len()
    }

    /// Hands every key folded to `give`, and starts afresh.
    pub fn drain(&mut self, mut give: impl FnMut(WindowKey, Stats)) {
        for (series, windows) in self.by_series.drain() {
            for (level, start_ms, stats) in std::iter::once(windows.first).chain(windows.more) {
                let series = series.clone();
                give(
                    WindowKey {
                        level,
                        start_ms,
                        series,
                    },
                    stats,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn folds_per_series_window_and_level() {
        let mut combiner = Combiner::default();
        for (series, level, start, value) in [
            ("a", 0, 0, 1.0),
            ("a", 0, 0, 3.0),
            ("a", 1, 0, 5.0),
            ("b", 0, 0, 7.0),
            ("a", 0, 60, 9.0),
        ] {
            combiner.add(series, Stats::of(value), [(level, start)]);
        }
        combiner.add("c", Stats::of(11.0), [(0, 0), (0, 60), (1, 0)]);
        combiner.add("c", Stats::of(13.0), [(0, 60), (1, 0)]);
        let mut out = BTreeMap::new();
        combiner.drain(|key, stats| {
            out.insert(
                (key.series.to_string(), key.level, key.start_ms),
                (stats.count, stats.mean),
            );
        });
        let expected: BTreeMap<_, _> = [
            (("a".into(), 0, 0), (2, 2.0)),
            (("a".into(), 0, 60), (1, 9.0)),
            (("a".into(), 1, 0), (1, 5.0)),
            (("b".into(), 0, 0), (1, 7.0)),
            (("c".into(), 0, 0), (1, 11.0)),
            (("c".into(), 0, 60), (2, 12.0)),
            (("c".into(), 1, 0), (2, 12.0)),
        ]
        .into();
        assert_eq!(out, expected);
        let mut again = 0;
        combiner.drain(|_, _| again += 1);
        assert_eq!(again, 0, "drained");
    }
}
