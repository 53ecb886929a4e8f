//! `maxq run`: start the workers, run the dataflow to the end, report.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

use crate::cli::{ClusterArgs, RunArgs};
use crate::config::{timely_config, RunConfig};
use crate::kafka::partition_count;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::parse::Malformed;
use crate::pipeline::sink::Refusal;
use crate::pipeline::source::KafkaInput;
use crate::stats::Stats;
use crate::targets;

/// State shared by all workers of a process.
#[derive(Clone, Default)]
pub struct Shared {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Set by SIGINT/SIGTERM: sources stop, what is due is flushed and committed.
    pub stop: Arc<AtomicBool>,
    /// The first fatal error; every worker stops when it is set.
    fatal: Arc<Mutex<Option<String>>>,
    /// Set once timely has connected this process's workers to the cluster.
    pub connected: Arc<AtomicBool>,
    /// Points handed to the sinks and not yet acknowledged.
    pub backlog: Arc<AtomicI64>,
    /// `--sink-buffer`: the backlog above which sources pause.
    max_backlog: i64,
    last_warning_s: Arc<AtomicU64>,
    /// Sensors whose written windows are kept for a live view (the demo's).
    pub watch: Option<Arc<Watch>>,
}

/// The windows written for a few sensors, kept for display.
#[derive(Debug, Default)]
pub struct Watch {
    /// Escaped series of the sensors watched.
    series: Vec<String>,
    /// Every window written for them: (series, window start ms) → statistic.
    pub windows: Mutex<BTreeMap<(String, i64), Stats>>,
}

impl Watch {
    /// Watches the given escaped series.
    pub fn new(series: Vec<String>) -> Watch {
        Watch {
            series,
            windows: Mutex::default(),
        }
    }

    /// Records a written window if its series is watched.
    pub fn record(&self, series: &str, start_ms: i64, stats: &Stats) {
        if self.series.iter().any(|s| s == series) {
            if let Ok(mut windows) = self.windows.lock() {
                windows.insert((series.to_owned(), start_ms), *stats);
            }
        }
    }
}

impl Shared {
    /// Shared state whose sinks also record the windows of the watched sensors.
    pub fn watching(watch: Arc<Watch>) -> Shared {
        Shared {
            watch: Some(watch),
            ..Shared::default()
        }
    }

    /// Records a fatal error (the first one wins) and stops every worker.
    pub fn fail(&self, message: impl Into<String>) {
        if let Ok(mut fatal) = self.fatal.lock() {
            fatal.get_or_insert_with(|| message.into());
        }
    }

    /// The fatal error, if any.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }

    /// Whether the sinks are so far behind that sources should stop reading for a while.
    pub fn backlogged(&self) -> bool {
        self.backlog.load(Relaxed) > self.max_backlog
    }

    /// At most one warning a second per process, so bad input cannot flood the log.
    fn may_warn(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.last_warning_s.swap(now, Relaxed) != now
    }

    /// Logs a malformed message, rate-limited.
    pub fn log_malformed(&self, partition: i32, offset: i64, reason: Malformed) {
        if self.may_warn() {
            warn!(target: targets::SOURCE, partition, offset, %reason, "malformed message (counted, and dead-lettered if configured; further ones this second not logged)");
        }
    }

    /// Logs a point InfluxDB refused, rate-limited.
    pub fn log_refused(&self, worker: usize, reason: Refusal, answer: &str) {
        if self.may_warn() {
            warn!(target: targets::SINK, worker, %reason, "InfluxDB refused a point (counted, and dead-lettered if configured; further ones this second not logged): {answer}");
        }
    }

    /// Logs a Kafka client error, rate-limited (librdkafka retries on its own).
    pub fn log_kafka_error(&self, error: &rdkafka::error::KafkaError) {
        if self.may_warn() {
            warn!(target: targets::KAFKA, "Kafka: {error}");
        }
    }
}

/// What a run did, for the caller's summary.
#[derive(Debug)]
pub struct RunSummary {
    /// Readings accepted.
    pub readings: u64,
    /// Late readings dropped.
    pub late: u64,
    /// Malformed messages, per reason.
    pub malformed: Vec<(Malformed, u64)>,
    /// Points written.
    pub points_written: u64,
    /// Points InfluxDB refused, per reason.
    pub refused: Vec<(Refusal, u64)>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `maxq run` until the end (`--until-end`), a signal, or a fatal error.
pub fn run(args: &RunArgs) -> anyhow::Result<RunSummary> {
    let config = RunConfig::from_args(args)?;
    let timely = timely_config(&args.cluster)?;
    let shared = Shared::default();
    if args.cluster.processes > 1 {
        connect_watchdog(&args.cluster, shared.clone());
        exit_when_a_peer_is_lost();
    }
    execute(config, timely, shared)
}

/// Exit code of a process whose cluster lost another process (killed, or cut off).
pub const EXIT_PEER_LOST: i32 = 4;

/// timely cannot replace a lost process: its network threads panic ("timely communication
/// error"), and then every worker ("MergeQueue poisoned"). Exiting is right, as the cluster
/// is restarted whole and resumes from the resume log; the panics are not a message. The
/// first such panic prints one line naming the peer and exits [`EXIT_PEER_LOST`]; any other
/// panic is reported as usual.
fn exit_when_a_peer_is_lost() {
    static EXITING: Mutex<()> = Mutex::new(());
    let usual = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        let thread = std::thread::current();
        let peer = thread.name().and_then(|name| {
            name.strip_prefix("timely:recv-")
                .or_else(|| name.strip_prefix("timely:send-"))
        });
        let lost = peer.is_some()
            || message.contains("timely communication error")
            || message.contains("MergeQueue poisoned");
        if !lost {
            return usual(info);
        }
        // The first thread prints and exits; the others wait for the exit.
        let _first = EXITING.lock();
        let who = peer.map_or("another process of the cluster".to_owned(), |p| {
            format!("cluster process {p}")
        });
        eprintln!(
            "maxq: error: lost the connection to {who} ({message}); exiting with code {EXIT_PEER_LOST}: restart every process of the cluster, it resumes from the resume log and writes the points a fault-free run writes"
        );
        std::process::exit(EXIT_PEER_LOST);
    }));
}

/// timely waits for every process of the cluster without a deadline: fail clearly instead
/// when they are not all there in time.
fn connect_watchdog(cluster: &ClusterArgs, shared: Shared) {
    let timeout = cluster.connect_timeout;
    let processes = cluster.processes;
    let hosts = cluster.hostfile.as_ref().map_or_else(
        || "localhost:2101+index".to_owned(),
        |h| format!("-h {}", h.display()),
    );
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        if !shared.connected.load(Relaxed) {
            eprintln!(
                "maxq: error: the -n {processes} processes at {hosts} did not all connect within --connect-timeout {}: start every process with the same -n and -h, each with its own -p, and check that the addresses are reachable",
                humantime::format_duration(timeout)
            );
            std::process::exit(2);
        }
    });
}

/// Runs the pipeline with a checked configuration on the given timely cluster.
pub fn execute(
    config: RunConfig,
    timely: timely::Config,
    mut shared: Shared,
) -> anyhow::Result<RunSummary> {
    shared.max_backlog = config.sink.buffer_points;
    crate::pipeline::sink::check_server(&config.sink)?;
    let partitions = partition_count(&config.kafka)?;
    let resume = Arc::new(crate::pipeline::commit::resume_log::load(&config.kafka)?);
    let evicted_below = resume.values().filter_map(|p| p.evicted_below).max();
    if !resume.is_empty() {
        info!(target: targets::RUN, partitions = resume.len(), "resuming from the resume log");
    }
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal stops the sources; a second one exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, shared.stop.clone())?;
        signal_hook::flag::register(signal, shared.stop.clone())?;
    }
    info!(target: targets::RUN, topic = %config.kafka.topic, partitions, "starting");
    let started = Instant::now();
    let reporter = start_reporter(shared.clone(), config.progress_interval);
    let deadline = start_shutdown_deadline(shared.clone(), config.shutdown_timeout);
    let trimmer = start_trimmer();
    let config = Arc::new(config);
    let worker_shared = shared.clone();
    let guards = timely::execute(timely, move |worker| -> Result<(), String> {
        let shared = worker_shared.clone();
        shared.connected.store(true, Relaxed);
        let config = Rc::new(RunConfig::clone(&config));
        let input =
            match KafkaInput::connect(&config, worker.index(), worker.peers(), partitions, &resume)
            {
                Ok(input) => input,
                Err(e) => {
                    // The other workers would wait for this one's dataflow forever.
                    shared.fail(e.to_string());
                    return Err(e.to_string());
                }
            };
        let finish = Rc::new(Cell::new(config.kafka.until_end));
        crate::pipeline::build(
            worker,
            config,
            partitions,
            &input,
            finish.clone(),
            evicted_below,
            shared.clone(),
        );
        while worker.step_or_park(Some(Duration::from_millis(100))) {
            if let Some(fatal) = shared.fatal() {
                // timely steps a worker until its dataflows complete; this one never will.
                for dataflow in worker.installed_dataflows() {
                    worker.drop_dataflow(dataflow);
                }
                return Err(fatal);
            }
            if shared.stop.load(Relaxed) {
                finish.set(false);
            }
        }
        shared.fatal().map_or(Ok(()), Err)
    })
    .map_err(|e| anyhow::anyhow!("starting the timely cluster (-w/-n/-p/-h): {e}"))?;
    let results = guards.join();
    reporter.finish();
    deadline.finish();
    if let Some(trimmer) = trimmer {
        trimmer.finish();
    }
    for result in results {
        result
            .map_err(|e| anyhow::anyhow!(e))?
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    if let Some(fatal) = shared.fatal() {
        anyhow::bail!(fatal);
    }
    let m = &shared.metrics;
    Ok(RunSummary {
        readings: m.readings.load(Relaxed),
        late: m.late.load(Relaxed),
        malformed: m.malformed_counts(),
        points_written: m.points_written.load(Relaxed),
        refused: m.refused_counts(),
        elapsed: started.elapsed(),
    })
}

/// A helper thread that runs until the workers are done.
struct Background {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Background {
    /// Runs `tick` every `interval` (and once more when finished).
    fn every(interval: Duration, mut tick: impl FnMut() + Send + 'static) -> Background {
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

    fn finish(self) {
        self.done.store(true, Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

/// How often freed heap memory is handed back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Hands glibc's free heap pages back to the system every [`TRIM_EVERY`]. Differential's
/// merges free large batches among small allocations that stay live (the series strings),
/// and glibc keeps such freed memory in its arenas: about 100 bytes per live key of RSS at
/// 1 M keys were free memory (`maxq bench --sections memory`: 232 bytes per key without
/// this, 147 with it). `malloc_trim` returns whole free pages anywhere in the heap. Other
/// allocators than glibc's have no such call, and need none.
fn start_trimmer() -> Option<Background> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        Some(Background::every(TRIM_EVERY, || {
            // SAFETY: malloc_trim only releases memory malloc holds free; thread-safe.
            unsafe { libc::malloc_trim(0) };
        }))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// The per-process progress line.
fn start_reporter(shared: Shared, interval: Duration) -> Background {
    let mut last = (Instant::now(), 0u64);
    Background::every(interval, move || {
        let m = &shared.metrics;
        let readings = m.readings.load(Relaxed);
        let rate = (readings - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
        last = (Instant::now(), readings);
        let watermark = m.watermark_ms.load(Relaxed);
        let lag_s = if watermark == i64::MIN {
            None
        } else {
            Some((chrono::Utc::now().timestamp_millis() - watermark) as f64 / 1000.0)
        };
        info!(target: targets::RUN,
            readings,
            readings_per_s = rate.round() as u64,
            late = m.late.load(Relaxed),
            late_expired = m.late_expired.load(Relaxed),
            malformed = m.malformed_total(),
            watermark_lag_s = ?lag_s,
            points_written = m.points_written.load(Relaxed),
            write_retries = m.write_retries.load(Relaxed),
            points_refused = m.refused_counts().iter().map(|(_, n)| n).sum::<u64>(),
            "progress"
        );
    })
}

/// After a stop signal, exits non-zero once `timeout` has passed without the workers
/// finishing: a sink that cannot write (InfluxDB down) must not hold a shutdown forever.
/// Nothing unwritten has been committed, so a restart replays it.
fn start_shutdown_deadline(shared: Shared, timeout: Duration) -> Background {
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let thread = std::thread::spawn(move || {
        while !shared.stop.load(Relaxed) {
            if finished.load(Relaxed) {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if finished.load(Relaxed) {
                return;
            }
            std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        if !finished.load(Relaxed) {
            let unwritten = shared.backlog.load(Relaxed);
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
            std::process::exit(3);
        }
    });
    Background { done, thread }
}
