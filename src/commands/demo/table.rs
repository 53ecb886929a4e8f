//! The demo's summary: one table per CRS-11 series, a row per one-minute window.

use std::collections::BTreeMap;
use std::io::Write;

use super::{t_plus, CRS11_LAUNCH};
use crate::stats::Stats;

/// Prints the windows of each series (start ms → statistic) to standard output, the
/// window start as flight time from `launch_ms`.
pub(super) fn print(series: &[&str], windows: &[BTreeMap<i64, Stats>], launch_ms: i64) {
    let mut out = std::io::stdout().lock();
    for (name, windows) in series.iter().zip(windows) {
        let _ = writeln!(
            out,
            "\n{name}  (CRS-11, one-minute windows starting at T; T+0:00 is lift-off, {CRS11_LAUNCH})"
        );
        let _ = writeln!(
            out,
            "{:>7} {:>6} {:>12} {:>12} {:>12} {:>10}",
            "T", "count", "mean", "min", "max", "stddev"
        );
        for (start_ms, s) in windows {
            let _ = writeln!(
                out,
                "{:>7} {:>6} {:>12.3} {:>12.3} {:>12.3} {:>10.3}",
                t_plus((start_ms - launch_ms).div_euclid(1000)),
                s.count,
                s.mean,
                s.min,
                s.max,
                s.stddev()
            );
        }
    }
}
