//! The demo's live view: twice a second, throughput and counts, and the newest window of
//! each watched sensor; redrawn in place on a terminal, one line per update elsewhere.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ms, t_plus, Watch, WATCHED};
use crate::pipeline::metrics::Metrics;
use crate::terminal::LiveLines;

/// Draws the view until `done`.
pub(super) fn spawn(
    metrics: Arc<Metrics>,
    watch: Arc<Watch>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let m = &metrics;
        let mut live = LiveLines::stderr();
        let mut last = (Instant::now(), 0u64);
        while !done.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            let readings = m.readings_total();
            let rate = (readings - last.1) as f64 / last.0.elapsed().as_secs_f64();
            last = (Instant::now(), readings);
            let mut lines = vec![format!(
                "{readings:>9} readings {rate:>9.0}/s | windows written {:>6} | late {:>5} | malformed {:>3}",
                m.points_written_total(),
                m.late_total(),
                m.malformed_total(),
            )];
            lines.extend(newest_windows(&watch));
            live.draw(&lines);
        }
    })
}

/// One line per watched sensor that has a window: its newest window's start, mean and
/// range.
fn newest_windows(watch: &Watch) -> Vec<String> {
    let Ok(windows) = watch.windows.lock() else {
        return Vec::new();
    };
    WATCHED
        .iter()
        .filter_map(|(series, launch)| {
            let ((_, start), s) = windows.iter().rfind(|((k, _), _)| k == series)?;
            let name = series
                .trim_start_matches("sensor=")
                .split(',')
                .next()
                .unwrap_or(series);
            let unit = series.split("unit=").nth(1).unwrap_or("");
            Some(format!(
                "{name:<16} window {:>7}  mean {:>9.0} {unit:<4} range {:.0}..{:.0}",
                t_plus((start - ms(launch)).div_euclid(1000)),
                s.mean,
                s.min,
                s.max
            ))
        })
        .collect()
}
