//! The changelog's records, apart from Kafka and timely: their keys, and what a restart
//! makes of the records it loads.
//!
//! A record is the final statistic of one evicted window of the base level or of a roll-up
//! other than the longest: `LENGTH/START/SERIES` (after the group's and topic's prefix)
//! → the JSON of its [`Stats`]. Windows of different lengths nest, so the records of one
//! series are intervals that nest or do not meet. A restart that replays from the resume
//! points (every base window ending after `sealed_below`) seeds each open roll-up window
//! with the largest records inside it that end at or before `sealed_below`: with what the
//! replay adds, that is every reading of the window, once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::{length_name, Levels};
use crate::key::WindowKey;
use crate::stats::Stats;

/// The record key of `key`'s window (after the group's and topic's prefix).
pub fn record_key(levels: &Levels, key: &WindowKey) -> String {
    let length = levels.all[usize::from(key.level)].windows.window_ms;
    format!("{length}/{}/{}", key.start_ms, key.series)
}

/// One record read back.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    series: Arc<str>,
    start_ms: i64,
    length_ms: i64,
    stats: Stats,
}

impl Record {
    fn parse(key: &str, payload: &[u8]) -> Option<Record> {
        let mut parts = key.splitn(3, '/');
        let length_ms: i64 = parts.next()?.parse().ok()?;
        let start_ms: i64 = parts.next()?.parse().ok()?;
        let series = parts.next()?.into();
        let stats = serde_json::from_slice(payload).ok()?;
        (length_ms > 0 && start_ms.rem_euclid(length_ms) == 0).then_some(Record {
            series,
            start_ms,
            length_ms,
            stats,
        })
    }

    fn end(&self) -> i64 {
        self.start_ms.saturating_add(self.length_ms)
    }
}

/// What a restart makes of the changelog.
#[derive(Debug, Default, PartialEq)]
pub struct Loaded {
    /// The horizon the records were taken at: every base window ending at or before it
    /// is in them.
    pub sealed_below: i64,
    /// The statistic each open roll-up window starts from.
    pub seeds: Vec<(WindowKey, Stats)>,
    /// The records still needed, as keys of their level: dropped once a longer record
    /// holds them.
    pub held: Vec<WindowKey>,
    /// Keys of records no restart needs any more.
    pub obsolete: Vec<String>,
}

/// Why the records cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the roll-up changelog holds windows of {series} that overlap without nesting ({first} and {second}): it was written with other --window, --slide or --rollups; run with those, or start afresh with another --group")]
pub struct Overlap {
    series: String,
    first: String,
    second: String,
}

/// What a restart with `levels`, resuming after base windows ending at or before
/// `sealed_below`, makes of `records` (key → payload, the newest of each key).
pub fn load(
    levels: &Levels,
    records: BTreeMap<String, Vec<u8>>,
    sealed_below: i64,
) -> Result<Loaded, Overlap> {
    let mut loaded = Loaded {
        sealed_below,
        ..Loaded::default()
    };
    let mut by_series: BTreeMap<Arc<str>, Vec<(Record, String)>> = BTreeMap::new();
    for (key, payload) in records {
        match Record::parse(&key, &payload) {
            // Taken ahead of the resume points: this run seals that window again.
            Some(record) if record.end() > sealed_below => {}
            Some(record) => by_series
                .entry(record.series.clone())
                .or_default()
                .push((record, key)),
            None => loaded.obsolete.push(key),
        }
    }
    let mut seeds: BTreeMap<WindowKey, Stats> = BTreeMap::new();
    for (series, mut records) in by_series {
        // Longest first among those starting together, so a record's parents come first.
        records.sort_by_key(|(r, _)| (r.start_ms, std::cmp::Reverse(r.length_ms)));
        let mut outer: Option<&Record> = None;
        for (record, key) in &records {
            if let Some(o) = outer.filter(|o| record.start_ms < o.end()) {
                if record.end() > o.end() {
                    let name =
                        |r: &Record| format!("{} at {}", length_name(r.length_ms), r.start_ms);
                    return Err(Overlap {
                        series: series.to_string(),
                        first: name(o),
                        second: name(record),
                    });
                }
                // Inside a longer record: held there.
                loaded.obsolete.push(key.clone());
                continue;
            }
            outer = Some(record);
            let mut needed = false;
            for (level, shape) in levels.all.iter().enumerate().skip(levels.base + 1) {
                let length = shape.windows.window_ms;
                if length <= record.length_ms || length % record.length_ms != 0 {
                    continue;
                }
                let start_ms = record.start_ms.div_euclid(length) * length;
                if start_ms + length <= sealed_below {
                    continue;
                }
                needed = true;
                let key = WindowKey {
                    level: level as u8,
                    start_ms,
                    series: series.clone(),
                };
                seeds
                    .entry(key)
                    .or_insert_with(Stats::zero)
                    .merge(&record.stats);
            }
            let level = levels.all.iter().position(|l| {
                l.windows.window_ms == record.length_ms && l.windows.slide_ms == record.length_ms
            });
            match (needed, level) {
                (false, _) => loaded.obsolete.push(key.clone()),
                (true, Some(level)) => loaded.held.push(WindowKey {
                    level: level as u8,
                    start_ms: record.start_ms,
                    series: series.clone(),
                }),
                // A length these flags do not record: kept until a later restart finds it
                // obsolete.
                (true, None) => {}
            }
        }
    }
    loaded.seeds = seeds.into_iter().collect();
    Ok(loaded)
}

/// The keys of `held` of the windows one level finer than `parent`'s inside it, removed.
pub fn children(
    levels: &Levels,
    held: &mut BTreeSet<(Arc<str>, u8, i64)>,
    parent: &WindowKey,
) -> Vec<WindowKey> {
    let Some(finer) = levels.finer(usize::from(parent.level)) else {
        return Vec::new();
    };
    let finer = finer as u8;
    let end = levels.all[usize::from(parent.level)]
        .windows
        .end(parent.start_ms);
    let range =
        (parent.series.clone(), finer, parent.start_ms)..(parent.series.clone(), finer, end);
    let inside: Vec<_> = held.range(range).cloned().collect();
    inside
        .into_iter()
        .map(|entry| {
            held.remove(&entry);
            let (series, level, start_ms) = entry;
            WindowKey {
                level,
                start_ms,
                series,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::window::Windows;
    use std::time::Duration;

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 3_600_000;

    fn levels() -> Levels {
        let minute = Windows {
            window_ms: MINUTE,
            slide_ms: MINUTE,
        };
        let day = Duration::from_secs(86_400);
        Levels::new(minute, "telemetry_1m", &[Duration::from_secs(3600), day]).unwrap()
    }

    fn record(length: i64, start: i64, values: &[f64]) -> (String, Vec<u8>) {
        let mut stats = Stats::zero();
        values.iter().for_each(|v| stats.merge(&Stats::of(*v)));
        (
            format!("{length}/{start}/sensor=a"),
            serde_json::to_vec(&stats).unwrap(),
        )
    }

    fn seed(loaded: &Loaded, level: u8, start_ms: i64) -> Option<i64> {
        loaded
            .seeds
            .iter()
            .find(|(k, _)| k.level == level && k.start_ms == start_ms)
            .map(|(_, s)| s.count)
    }

    #[test]
    fn open_rollups_start_from_the_largest_records_before_the_horizon() {
        let records = [
            record(HOUR, 0, &[1.0, 2.0, 3.0]),
            record(MINUTE, 0, &[1.0]),
            record(MINUTE, HOUR, &[4.0, 5.0]),
            record(MINUTE, HOUR + MINUTE, &[6.0]),
            record(MINUTE, HOUR + 5 * MINUTE, &[7.0]),
        ];
        let loaded = load(&levels(), records.into_iter().collect(), HOUR + 2 * MINUTE).unwrap();
        assert_eq!(
            seed(&loaded, 1, HOUR),
            Some(3),
            "the open hour: two minutes"
        );
        assert_eq!(
            seed(&loaded, 2, 0),
            Some(6),
            "the open day: an hour and two minutes"
        );
        assert_eq!(seed(&loaded, 1, 0), None, "the first hour is evicted");
        assert_eq!(loaded.obsolete, vec![format!("{MINUTE}/0/sensor=a")]);
        assert_eq!(loaded.held.len(), 3, "the hour and the open hour's minutes");
    }

    #[test]
    fn overlapping_records_name_the_flags() {
        let records = [record(5_400_000, 0, &[1.0]), record(HOUR, HOUR, &[2.0])];
        let error = load(&levels(), records.into_iter().collect(), 10 * HOUR).unwrap_err();
        assert!(error.to_string().contains("--rollups"), "{error}");
    }

    #[test]
    fn children_are_the_held_windows_one_level_finer_inside() {
        let levels = levels();
        let series: Arc<str> = "sensor=a".into();
        let mut held: BTreeSet<_> = [
            (series.clone(), 0u8, 0i64),
            (series.clone(), 0, HOUR - MINUTE),
            (series.clone(), 0, HOUR),
            (series.clone(), 1, 0),
        ]
        .into();
        let hour = WindowKey {
            level: 1,
            start_ms: 0,
            series: series.clone(),
        };
        let inside: Vec<i64> = children(&levels, &mut held, &hour)
            .iter()
            .map(|k| k.start_ms)
            .collect();
        assert_eq!(inside, vec![0, HOUR - MINUTE]);
        assert_eq!(held.len(), 2);
        let minute = WindowKey { level: 0, ..hour };
        assert!(children(&levels, &mut held, &minute).is_empty());
    }
}
