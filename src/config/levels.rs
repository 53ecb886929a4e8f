//! `--rollups`: the levels of aggregation a run maintains.
//!
//! Level 0 is the first (`--window`, `--slide`, `--measurement`). Roll-ups follow, shortest
//! first, each a tumbling window written to its own measurement. With hopping first-level
//! windows and roll-ups there is one more level between them, never written: tumbling panes
//! of one slide, the finest unit that roll-ups can be rebuilt from (hopping windows
//! overlap, so their statistics cannot be added up). The *base* level is the finest
//! tumbling one (the first, or the panes): every level above it is a roll-up of it.

use std::time::Duration;

use super::{invalid, millis, ConfigError};
use crate::line_protocol::escape_measurement;
use crate::pipeline::window::Windows;

/// One level of aggregation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    /// Its windows.
    pub windows: Windows,
    /// The measurement its points are written to, escaped; `None` for the panes, which are
    /// kept only to rebuild roll-ups from.
    pub measurement: Option<String>,
}

/// The levels of a run, by index (the `level` of a [`crate::key::WindowKey`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Levels {
    /// Every level: the first, the panes if any, the roll-ups by length.
    pub all: Vec<Level>,
    /// The finest tumbling level.
    pub base: usize,
}

impl Levels {
    /// The levels for first-level `windows` written to `measurement` (as given, unescaped),
    /// and the roll-up lengths of `--rollups`.
    pub fn new(
        windows: Windows,
        measurement: &str,
        rollups: &[Duration],
    ) -> Result<Levels, ConfigError> {
        let escaped = |name: &str| {
            let mut out = String::new();
            escape_measurement(name, &mut out).map(|()| out).map_err(|_| {
                ConfigError(format!(
                    "--measurement {name:?} must be non-empty, without control characters or a trailing backslash"
                ))
            })
        };
        let mut all = vec![Level {
            windows,
            measurement: Some(escaped(measurement)?),
        }];
        let hopping = windows.slide_ms != windows.window_ms;
        if hopping && !rollups.is_empty() {
            all.push(Level {
                windows: Windows {
                    window_ms: windows.slide_ms,
                    slide_ms: windows.slide_ms,
                },
                measurement: None,
            });
        }
        let base = all.len() - 1;
        let mut previous = windows.window_ms;
        let mut lengths = rollups
            .iter()
            .map(|d| millis("--rollups", *d))
            .collect::<Result<Vec<_>, _>>()?;
        lengths.sort_unstable();
        for length in lengths {
            let fix = "e.g. --window 1m --rollups 1h,1d";
            if length <= previous || length % previous != 0 || length % windows.slide_ms != 0 {
                return invalid(format!(
                    "--rollups {}: each roll-up must be a multiple of --window ({}), of --slide, and of the shorter roll-ups, and longer than them; {fix}",
                    length_name(length),
                    length_name(windows.window_ms),
                ));
            }
            let name = rollup_measurement(measurement, windows.window_ms, length);
            all.push(Level {
                windows: Windows {
                    window_ms: length,
                    slide_ms: length,
                },
                measurement: Some(escaped(&name)?),
            });
            previous = length;
        }
        if all.len() > usize::from(u8::MAX) {
            return invalid("--rollups: at most 250 roll-ups");
        }
        Ok(Levels { all, base })
    }

    /// Whether there are roll-ups.
    pub fn rollups(&self) -> bool {
        self.all.len() > self.base + 1
    }

    /// Whether the windows of `level` are recorded in the roll-up changelog once evicted:
    /// those of the base level and of every roll-up but the longest, from which the longer
    /// ones are rebuilt.
    pub fn recorded(&self, level: usize) -> bool {
        self.rollups() && level >= self.base && level + 1 < self.all.len()
    }

    /// The level whose windows nest in those of `level` (`None` at or below the base).
    pub fn finer(&self, level: usize) -> Option<usize> {
        (level > self.base).then(|| level - 1)
    }
}

/// A window length as roll-up names give it: `1d`, `6h`, `1m`, `10s`, `500ms`.
pub fn length_name(ms: i64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The measurement of the roll-up of `length_ms`: the first level's name with its length
/// suffix replaced (`telemetry_1m` → `telemetry_1h`), or with one added (`launch` →
/// `launch_1h`).
pub fn rollup_measurement(first: &str, window_ms: i64, length_ms: i64) -> String {
    let suffix = format!("_{}", length_name(window_ms));
    let stem = first.strip_suffix(&suffix).unwrap_or(first);
    format!("{stem}_{}", length_name(length_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Windows = Windows {
        window_ms: 60_000,
        slide_ms: 60_000,
    };

    fn hours(h: u64) -> Duration {
        Duration::from_secs(3600 * h)
    }

    #[test]
    fn rollups_are_named_after_their_length() {
        let levels = Levels::new(MINUTE, "telemetry_1m", &[hours(24), hours(1)]).unwrap();
        let names: Vec<_> = levels.all.iter().map(|l| l.measurement.clone()).collect();
        assert_eq!(
            names,
            [
                Some("telemetry_1m".into()),
                Some("telemetry_1h".into()),
                Some("telemetry_1d".into())
            ]
        );
        assert_eq!(levels.base, 0);
        assert!(levels.recorded(0) && levels.recorded(1) && !levels.recorded(2));
        assert_eq!(rollup_measurement("launch", 60_000, 3_600_000), "launch_1h");
        assert_eq!(length_name(90_000), "90s");
    }

    #[test]
    fn hopping_windows_get_panes_of_one_slide() {
        let hopping = Windows {
            window_ms: 60_000,
            slide_ms: 20_000,
        };
        let levels = Levels::new(hopping, "telemetry_1m", &[hours(1)]).unwrap();
        assert_eq!(levels.base, 1);
        assert_eq!(levels.all[1].measurement, None);
        assert_eq!(levels.all[1].windows.window_ms, 20_000);
        assert_eq!(levels.finer(2), Some(1));
        assert!(!Levels::new(hopping, "t", &[]).unwrap().rollups());
    }

    #[test]
    fn a_rollup_that_does_not_nest_names_the_flag() {
        for rollups in [
            vec![Duration::from_secs(90)],
            vec![hours(1), Duration::from_secs(5400)],
        ] {
            let error = Levels::new(MINUTE, "telemetry_1m", &rollups).unwrap_err();
            assert!(error.to_string().starts_with("--rollups"), "{error}");
        }
        let error = Levels::new(MINUTE, "telemetry_1m", &[Duration::from_secs(60)]).unwrap_err();
        assert!(error.to_string().contains("longer"), "{error}");
    }
}
