//! The threads beside the workers: the progress line, handing freed memory back, and the
//! deadline of a shutdown.

use indicatif::ProgressBar;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing::info;

use crate::exit;
use crate::pipeline::control::Control;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::sink::Backlog;
use crate::targets;
use crate::terminal;

/// A helper thread that runs until the workers are done.
pub struct Background {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Background {
    /// Runs `tick` every `interval` (and once more when finished).
    pub(super) fn every(interval: Duration, mut tick: impl FnMut() + Send + 'static) -> Background {
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                std::thread::park_timeout(interval);
                tick();
            }
        });
        Background { done, thread }
    }

    /// Stops the thread and waits for it.
    pub fn finish(self) {
        self.done.store(true, Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

/// What SIGINT and SIGTERM do: the first one sets the stop flag (in the handler) and wakes
/// the threads that sleep until a stop ([`Control::wake_on_change`]), which the handler
/// itself cannot do; a second one exits at once. The waking ends when this is dropped.
pub struct StopSignals(signal_hook::iterator::Handle);

impl Drop for StopSignals {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Registers the [`StopSignals`] of `control`.
pub fn handle_stop_signals(control: Arc<Control>) -> std::io::Result<StopSignals> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(
            signal,
            exit::SECOND_SIGNAL,
            control.stop.clone(),
        )?;
        signal_hook::flag::register(signal, control.stop.clone())?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("maxq:signals".into())
        .spawn(move || signals.forever().for_each(|_| control.wake()))?;
    Ok(StopSignals(handle))
}

/// Hands glibc's free heap pages back to the system while messages are not coming: at every
/// look, every [`TRIM_EVERY`](super::TRIM_EVERY), that finds nothing read since the one
/// before, and every [`TRIM_BUSY_EVERY`](super::TRIM_BUSY_EVERY) while they keep coming.
/// Differential's merges free large batches among small allocations that stay live (the
/// series strings), and glibc keeps such freed memory in its arenas, a large share of the
/// RSS per live key (`maxq-bench --sections memory` shows it with and without); the merges
/// go on for a while after the last reading, hence a trim at every quiet look, not only the
/// first. While messages are read most of what is free is needed again at once (fetch
/// buffers, batches), and a trim only has those pages faulted in again. `malloc_trim`
/// returns whole free pages anywhere in the heap. Other allocators than glibc's have no such
/// call, and need none.
pub fn start_trimmer(metrics: Arc<Metrics>) -> Option<Background> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let handled =
            move || metrics.readings_total() + metrics.late_total() + metrics.malformed_total();
        let mut seen = handled();
        let mut last_trim = Instant::now();
        Some(Background::every(super::TRIM_EVERY, move || {
            let read = handled();
            let quiet = read == seen;
            seen = read;
            if quiet || last_trim.elapsed() >= super::TRIM_BUSY_EVERY {
                // SAFETY: malloc_trim only releases memory malloc holds free; thread-safe.
                unsafe { libc::malloc_trim(0) };
                last_trim = Instant::now();
            }
        }))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = metrics;
        None
    }
}

/// How often a progress bar is moved.
const BAR_EVERY: Duration = Duration::from_millis(200);

/// The per-process progress: with `bar`, a bar of the messages read out of those up to the
/// end offsets, drawn once they are known; else a log line every `interval`.
pub fn start_reporter(
    metrics: Arc<Metrics>,
    interval: Duration,
    bar: Option<Arc<OnceLock<ProgressBar>>>,
) -> Background {
    let mut last = (Instant::now(), 0u64);
    let tick = if bar.is_some() { BAR_EVERY } else { interval };
    Background::every(tick, move || {
        let m = &metrics;
        if let Some(bar) = &bar {
            let (_, total) = m.live.read_and_total();
            if total > 0 {
                let bar =
                    bar.get_or_init(|| terminal::progress_bar("reading", "messages", Some(total)));
                bar.set_length(total);
                bar.set_position(m.readings_total() + m.late_total() + m.malformed_total());
            }
            return;
        }
        let readings = m.readings_total();
        let rate = (readings - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
        last = (Instant::now(), readings);
        let now = chrono::Utc::now().timestamp_millis();
        let watermark_delay = m
            .live
            .watermark_delay_s(now)
            .map_or_else(|| "none".to_owned(), |s| format!("{s:.1}s"));
        info!(target: targets::RUN,
            readings,
            readings_per_s = rate.round() as u64,
            late = m.late_total(),
            late_expired = m.late_expired_total(),
            malformed = m.malformed_total(),
            watermark_delay = %watermark_delay,
            lag = m.live.partitions().values().map(|p| p.lag()).sum::<i64>(),
            points_written = m.points_written_total(),
            write_retries = m.write_retries_total(),
            points_refused = m.refused_counts().iter().map(|(_, n)| n).sum::<u64>(),
            "progress"
        );
    })
}

/// After a stop signal, exits non-zero once `timeout` has passed without the workers
/// finishing: a sink that cannot write (InfluxDB down) must not hold a shutdown forever.
/// Nothing unwritten has been committed, so a restart replays it.
pub fn start_shutdown_deadline(
    control: Arc<Control>,
    backlog: Arc<Backlog>,
    timeout: Duration,
) -> Background {
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let watched = control.clone();
    let thread = std::thread::spawn(move || {
        // Asleep until the stop (or `finish`) unparks it.
        while !control.stopping() {
            if finished.load(Relaxed) {
                return;
            }
            std::thread::park();
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if finished.load(Relaxed) {
                return;
            }
            std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        if !finished.load(Relaxed) {
            let unwritten = backlog.unwritten();
            let waiting = if unwritten > 0 {
                format!("{unwritten} points were still unwritten (is the InfluxDB at --influx-url reachable?)")
            } else {
                "the last commit to the resume log had not finished (are --brokers reachable?)"
                    .to_owned()
            };
            eprintln!(
                "maxq: error: stopping: after --shutdown-timeout {} {waiting}; exiting without committing what is not written, a restart replays it",
                humantime::format_duration(timeout)
            );
            super::lease::release(super::lease::LAST_WORDS);
            std::process::exit(exit::SHUTDOWN_TIMEOUT);
        }
    });
    watched.wake_on_change(thread.thread().clone());
    Background { done, thread }
}
