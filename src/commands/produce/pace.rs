//! When `maxq produce` sends each reading and which time it stamps it with: `--rate`,
//! `--realtime --speed`, `--loop` and `--rebase-now`.
//!
//! With `--realtime --speed X --rebase-now`, event time is compressed as much as the
//! sending: a reading recorded `t` after the first is sent `t / X` after the start and
//! stamped start + `t / X`, the moment it is due. A stamp therefore never lies ahead of the
//! wall clock, and a pipeline reading the topic live never sees a reading from its future
//! (whose windows it could not finish, and whose lateness rule would drop the readings
//! recorded before it but sent after).

use anyhow::bail;
use std::time::{Duration, Instant};

use super::Outgoing;
use crate::cli::ProduceArgs;

/// The flags' numbers make sense: an error naming the flag otherwise.
pub(super) fn check(args: &ProduceArgs) -> anyhow::Result<()> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if args.realtime && !positive(args.speed) {
        bail!(
            "--speed {} must be a positive number, e.g. --speed 10",
            args.speed
        );
    }
    if let Some(rate) = args.rate.filter(|r| !positive(*r)) {
        bail!("--rate {rate} must be a positive number of readings per second");
    }
    Ok(())
}

/// Sends `readings`, round after round with `--loop`, each when it is due, with its time
/// shifted by the `shift_ms` passed to `send`.
pub(super) fn pace(
    readings: &[Outgoing],
    args: &ProduceArgs,
    mut send: impl FnMut(&Outgoing, i64) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Some(schedule) = Schedule::new(readings, args) else {
        return Ok(());
    };
    let started = Instant::now();
    let mut sent: u64 = 0;
    for round in 0i64.. {
        for r in readings {
            if let Some(due) = schedule.due(sent, round, r.ts_ms) {
                sleep_until(started + due);
            }
            send(r, schedule.stamp_ms(round, r.ts_ms) - r.ts_ms)?;
            sent += 1;
        }
        if !args.r#loop {
            break;
        }
    }
    Ok(())
}

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        std::thread::sleep(when - now);
    }
}

/// What the flags make of the readings' times.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Schedule {
    /// Event time of the earliest reading, ms.
    first_ms: i64,
    /// Event time one round covers, ms: each `--loop` round is shifted by it.
    span_ms: i64,
    /// `--rate`: readings per second.
    rate: Option<f64>,
    /// `--speed`, with `--realtime`.
    speed: Option<f64>,
    /// With `--rebase-now`: the wall-clock time, ms, the first reading is stamped with.
    rebased_ms: Option<i64>,
}

impl Schedule {
    /// `None` when there is nothing to send.
    fn new(readings: &[Outgoing], args: &ProduceArgs) -> Option<Schedule> {
        let first_ms = readings.iter().map(|r| r.ts_ms).min()?;
        let last_ms = readings.iter().map(|r| r.ts_ms).max()?;
        Some(Schedule {
            first_ms,
            span_ms: last_ms - first_ms + 1,
            rate: args.rate,
            speed: args.realtime.then_some(args.speed),
            rebased_ms: args
                .rebase_now
                .then(|| chrono::Utc::now().timestamp_millis()),
        })
    }

    /// Recorded time from the first reading of the first round to `ts_ms` in `round`, ms.
    fn recorded_ms(&self, round: i64, ts_ms: i64) -> i64 {
        round * self.span_ms + ts_ms - self.first_ms
    }

    /// When the `sent`-th message, recorded at `ts_ms` in `round`, is due after the start;
    /// `None`: at once.
    fn due(&self, sent: u64, round: i64, ts_ms: i64) -> Option<Duration> {
        if let Some(rate) = self.rate {
            return Some(Duration::from_secs_f64(sent as f64 / rate));
        }
        let speed = self.speed?;
        let seconds = self.recorded_ms(round, ts_ms) as f64 / 1000.0 / speed;
        Some(Duration::from_secs_f64(seconds))
    }

    /// The time a reading recorded at `ts_ms` in `round` is stamped with, ms.
    fn stamp_ms(&self, round: i64, ts_ms: i64) -> i64 {
        let recorded = self.recorded_ms(round, ts_ms);
        match (self.rebased_ms, self.speed) {
            (None, _) => self.first_ms + recorded,
            (Some(now), None) => now + recorded,
            (Some(now), Some(speed)) => now + (recorded as f64 / speed).round() as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn schedule(speed: Option<f64>, rebased_ms: Option<i64>) -> Schedule {
        Schedule {
            first_ms: 10_000,
            span_ms: 3_001,
            rate: None,
            speed,
            rebased_ms,
        }
    }

    #[test]
    fn realtime_rebased_stamps_each_reading_with_the_moment_it_is_due() {
        let s = schedule(Some(4.0), Some(1_000_000));
        for (round, ts_ms) in [
            (0, 10_000),
            (0, 11_000),
            (0, 13_000),
            (1, 10_000),
            (2, 12_345),
        ] {
            let due_ms = s.due(0, round, ts_ms).unwrap().as_secs_f64() * 1000.0;
            assert_eq!(s.stamp_ms(round, ts_ms), 1_000_000 + due_ms.round() as i64);
        }
        assert_eq!(s.stamp_ms(0, 11_000) - s.stamp_ms(0, 10_000), 250);
        assert_eq!(s.stamp_ms(1, 10_000) - s.stamp_ms(0, 10_000), 750);
    }

    #[test]
    fn realtime_without_rebase_keeps_the_recorded_times() {
        let s = schedule(Some(4.0), None);
        assert_eq!(s.stamp_ms(0, 11_000), 11_000);
        assert_eq!(s.due(0, 0, 11_000), Some(Duration::from_millis(250)));
        assert_eq!(
            s.stamp_ms(1, 11_000),
            11_000 + 3_001,
            "a loop shifts by the span"
        );
    }

    #[test]
    fn rebase_alone_keeps_the_recorded_spacing_and_sends_at_once() {
        let s = schedule(None, Some(1_000_000));
        assert_eq!(s.stamp_ms(0, 10_000), 1_000_000);
        assert_eq!(s.stamp_ms(0, 12_500), 1_002_500);
        assert_eq!(s.due(7, 0, 12_500), None);
    }

    #[test]
    fn a_speed_or_rate_that_is_not_positive_names_its_flag() {
        let check_flags = |flags: &[&str]| {
            let cli =
                crate::cli::Cli::try_parse_from(["maxq", "produce"].iter().chain(flags).copied())
                    .unwrap();
            let Some(crate::cli::Command::Produce(args)) = cli.command else {
                unreachable!("a produce command")
            };
            check(&args).map_err(|e| e.to_string())
        };
        assert!(check_flags(&["--realtime", "--speed", "0"])
            .unwrap_err()
            .contains("--speed 0"));
        assert!(check_flags(&["--rate=-5"])
            .unwrap_err()
            .contains("--rate -5"));
        assert!(check_flags(&["--realtime", "--speed", "0.5"]).is_ok());
    }

    #[test]
    fn rate_paces_by_count() {
        let s = Schedule {
            rate: Some(4.0),
            ..schedule(None, None)
        };
        assert_eq!(s.due(6, 0, 10_000), Some(Duration::from_millis(1_500)));
    }
}
