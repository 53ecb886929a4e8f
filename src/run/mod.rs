//! `maxq run`: start the workers, run the dataflow to the end, report.

mod background;
mod cluster;
mod lease;
mod metrics;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing::info;

use crate::cli::RunArgs;
use crate::config::{timely_config, RunConfig};
use crate::pipeline::metrics::Metrics;
use crate::pipeline::parse::Malformed;
use crate::pipeline::sink::{Backlog, Refusal};
use crate::pipeline::{
    rollups, Clients, Context, KafkaClients, Placement, ProcessClients, Restart, Tap,
};
use crate::targets;

/// Longest a worker sleeps with nothing scheduled. A stop or a fatal error wakes it at once
/// ([`crate::pipeline::control::Control::wake_on_change`]); this only bounds a missed wake.
const PARK_AT_MOST: Duration = Duration::from_secs(1);

/// How often the trimmer looks whether messages are still coming; each look that finds none
/// since the one before hands free heap memory back to the system (glibc's `malloc_trim`,
/// [`background::start_trimmer`]). Much of what is free while messages are read is needed
/// again at once (fetch buffers, batches): trimming it every second cost a backfill over
/// tansu 161 000 page faults instead of 36 000, 0.2 s of CPU per 1.5 M readings, as the
/// pages were faulted in again; every 10 s, 120 000 to 140 000.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// How often free heap memory is handed back while messages keep coming.
pub const TRIM_BUSY_EVERY: Duration = Duration::from_secs(300);

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
    let process = match &timely.communication {
        timely::CommunicationConfig::Cluster { process, .. } => *process,
        _ => 0,
    };
    // A wrong --brokers fails now, in a second or so, not after every retry of the lease.
    crate::kafka::check_reachable(&config.kafka.connection)?;
    let clients = KafkaClients::connect(&config, placement(&timely.communication))?;
    // Process 0 stands for its cluster: one instance per group and topic.
    if process == 0 {
        lease::acquire(&config.kafka, args.cluster.processes, &clients.producer)?;
    }
    let connected = Arc::new(AtomicBool::new(false));
    if args.cluster.processes > 1 {
        cluster::connect_watchdog(&args.cluster, connected.clone());
        cluster::exit_when_a_peer_is_lost();
    }
    let metrics = Arc::new(Metrics::new(process));
    let summary = execute_connected(config, timely, metrics, None, connected, clients);
    lease::release(Duration::from_secs(10));
    summary
}

/// Runs the pipeline with a checked configuration on the given timely cluster.
pub fn execute(
    config: RunConfig,
    timely: timely::Config,
    metrics: Arc<Metrics>,
    tap: Option<Tap>,
) -> anyhow::Result<RunSummary> {
    let clients = KafkaClients::connect(&config, placement(&timely.communication))?;
    execute_connected(config, timely, metrics, tap, Arc::default(), clients)
}

/// Where this process's workers are in the timely cluster.
fn placement(communication: &timely::CommunicationConfig) -> Placement {
    match communication {
        timely::CommunicationConfig::Cluster {
            threads,
            process,
            addresses,
            ..
        } => Placement {
            process: *process,
            workers: *threads,
            peers: threads * addresses.len(),
        },
        timely::CommunicationConfig::Process(workers) => Placement {
            process: 0,
            workers: *workers,
            peers: *workers,
        },
        _ => Placement {
            process: 0,
            workers: 1,
            peers: 1,
        },
    }
}

/// [`execute`] with the process's `clients`, setting `connected` once timely has connected
/// the cluster.
fn execute_connected(
    config: RunConfig,
    timely: timely::Config,
    metrics: Arc<Metrics>,
    tap: Option<Tap>,
    connected: Arc<AtomicBool>,
    clients: KafkaClients,
) -> anyhow::Result<RunSummary> {
    let KafkaClients {
        placement,
        partitions,
        ..
    } = clients;
    let context = Context {
        metrics,
        control: Arc::default(),
        backlog: Arc::new(Backlog::new(config.sink.buffer_points)),
        tap,
        committed_horizon: Arc::new(AtomicI64::new(i64::MIN)),
    };
    context.metrics.live.watch_backlog(context.backlog.clone());
    crate::pipeline::sink::check_server(&config.sink)?;
    let resume = Arc::new(crate::pipeline::commit::resume_log::load(&config.kafka)?);
    let evicted_below = resume.values().filter_map(|p| p.evicted_below).max();
    if !resume.is_empty() {
        info!(target: targets::RUN, partitions = resume.len(), "resuming from the resume log");
    }
    // Read (and created) even on a first run, so the writer finds it compacted.
    let rollups = if config.levels.rollups() {
        let sealed_below = evicted_below.unwrap_or(i64::MIN);
        let reading = Instant::now();
        let loaded = rollups::load(
            &config.kafka,
            &config.levels,
            sealed_below,
            &clients.producer,
        )?;
        if !loaded.seeds.is_empty() {
            info!(target: targets::RUN, windows = loaded.seeds.len(), records = loaded.held.len(), seconds = reading.elapsed().as_secs_f64(), "roll-ups seeded from their changelog");
        }
        loaded
    } else {
        rollups::fresh()
    };
    let restart = Restart {
        evicted_below,
        rollups: Arc::new(rollups),
    };
    // Registered before connecting, which can take a while with many partitions.
    let _signals = background::handle_stop_signals(context.control.clone())?;
    let process = Arc::new(ProcessClients::connect(&config, &resume, &clients)?);
    info!(target: targets::RUN, topic = %config.kafka.topic, partitions, "starting");
    let started = Instant::now();
    // `--until-end` on a terminal shows a bar to the end offsets; the demo draws its own view.
    let bar = (config.kafka.until_end && context.tap.is_none() && crate::terminal::is_terminal())
        .then(|| Arc::new(OnceLock::new()));
    let reporter = background::start_reporter(
        context.metrics.clone(),
        config.progress_interval,
        bar.clone(),
    );
    let endpoint = config
        .metrics_addr
        .map(|addr| metrics::serve(addr, context.metrics.clone(), context.control.clone()))
        .transpose()?;
    let export = match config.metrics_interval {
        Some(interval) => metrics::export(&config.sink, interval, context.metrics.clone())?,
        None => None,
    };
    let deadline = background::start_shutdown_deadline(
        context.control.clone(),
        context.backlog.clone(),
        config.shutdown_timeout,
    );
    let trimmer = background::start_trimmer(context.metrics.clone());
    let in_cluster = matches!(
        timely.communication,
        timely::CommunicationConfig::Cluster { .. }
    );
    let config = Arc::new(config);
    let worker_context = context.clone();
    let guards = timely::execute(timely, move |worker| -> Result<(), String> {
        let context = worker_context.clone();
        let control = context.control.clone();
        connected.store(true, Relaxed);
        let config = Rc::new(RunConfig::clone(&config));
        let local = worker.index() - placement.process * placement.workers;
        let input = Clients::take(&process, local);
        let finish = Rc::new(Cell::new(config.kafka.until_end));
        crate::pipeline::build(
            worker,
            config,
            partitions,
            &input,
            finish.clone(),
            &restart,
            &context,
        );
        control.wake_on_change(std::thread::current());
        while worker.step_or_park(Some(PARK_AT_MOST)) {
            if let Some(fatal) = control.fatal() {
                if in_cluster {
                    cluster::exit_on_fatal(&fatal);
                }
                // timely steps a worker until its dataflows complete; this one never will.
                for dataflow in worker.installed_dataflows() {
                    worker.drop_dataflow(dataflow);
                }
                return Err(fatal);
            }
            if control.stopping() {
                finish.set(false);
            }
        }
        control.fatal().map_or(Ok(()), Err)
    })
    .map_err(|e| anyhow::anyhow!("starting the timely cluster (-w/-n/-p/-h): {e}"))?;
    let results = guards.join();
    reporter.finish();
    // Left drawn at its end, above the summary.
    if let Some(bar) = bar.as_deref().and_then(OnceLock::get) {
        bar.finish();
    }
    if let Some(export) = export {
        export.finish();
    }
    if let Some(endpoint) = endpoint {
        endpoint.finish();
    }
    deadline.finish();
    if let Some(trimmer) = trimmer {
        trimmer.finish();
    }
    for result in results {
        result
            .map_err(|e| anyhow::anyhow!(e))?
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    if let Some(fatal) = context.control.fatal() {
        anyhow::bail!(fatal);
    }
    let m = &context.metrics;
    Ok(RunSummary {
        readings: m.readings_total(),
        late: m.late_total(),
        malformed: m.malformed_counts(),
        points_written: m.points_written_total(),
        refused: m.refused_counts(),
        elapsed: started.elapsed(),
    })
}
