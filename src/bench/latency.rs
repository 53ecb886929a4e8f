//! Update latency in streaming mode: a live stream at a fixed rate with probe readings,
//! `maxq run --emit updates` writing through the [`WriteProxy`]; a probe's latency runs
//! from its send to the first acknowledged write of its window holding it (count ≥ its
//! position in the window).

use std::time::{Duration, Instant};

use super::child::{spawn, Usage};
use super::pipeline::{run_args, MEASUREMENT};
use super::preload::publish_args;
use super::proxy::{Ack, WriteProxy};
use super::stream::{self, Live, Probe, PROBE_SENSOR, UNIT};

/// Epoch of the latency run.
pub const EPOCH: &str = "100ms";

/// Window of the latency run, ms (maxq's default `--window 1m`).
const WINDOW_MS: i64 = 60_000;

/// How long the stream runs before probes start, so start-up is not measured.
const WARM_UP: Duration = Duration::from_secs(3);

/// How long after the stream ends the last probes may take to be acknowledged.
const DRAIN: Duration = Duration::from_secs(15);

/// The latency figures of one run.
#[derive(Clone, Debug)]
pub struct LatencyRun {
    /// Readings per second asked for.
    pub rate: u64,
    /// Readings sent per second of sending.
    pub achieved_rate: f64,
    /// Workers of the pipeline.
    pub workers: usize,
    /// Probes sent.
    pub probes: usize,
    /// Latencies of the probes acknowledged, sorted.
    pub latencies: Vec<Duration>,
    /// The pipeline child's figures.
    pub usage: Usage,
    /// Readings sent, and the sum of `count` in InfluxDB after the run.
    pub sent_and_counted: (u64, u64),
}

impl LatencyRun {
    /// The `q`-quantile (0..=1) of the acknowledged latencies, nearest rank.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.latencies.len();
        (n > 0).then(|| self.latencies[((n as f64 * q).ceil() as usize).clamp(1, n) - 1])
    }
}

/// Runs the stream for `duration` at `rate` and measures every probe.
pub fn measure(setup: &Live<'_>, rate: u64, duration: Duration) -> anyhow::Result<LatencyRun> {
    let pid = std::process::id();
    let topic = format!("maxq-bench-latency-{pid}");
    let db = format!("maxq_bench_{pid}_latency");
    setup.influx.create_db(&db)?;
    crate::publish::ensure_topic(&publish_args(setup.brokers, &topic, setup.partitions))?;
    let publisher = stream::publisher(setup.brokers, &topic)?;
    let proxy = WriteProxy::start(
        setup.influx.url(),
        format!("{MEASUREMENT},sensor={PROBE_SENSOR},unit={UNIT} "),
    )?;
    let mut args = run_args(
        setup.brokers,
        &topic,
        &format!("maxq-bench-{pid}-latency"),
        &proxy.url,
        &db,
    );
    args.extend(
        [
            "--emit",
            "updates",
            "--epoch",
            EPOCH,
            "-w",
            &setup.workers.to_string(),
        ]
        .map(str::to_owned),
    );
    let child = spawn(setup.dir, "latency", &args)?;
    let warm = stream::send(&publisher, setup.sensors, rate, WARM_UP, None)?;
    let sent = stream::send(&publisher, setup.sensors, rate, duration, Some(WINDOW_MS))?;
    publisher.finish()?;
    let total = warm.readings + sent.readings;
    // Stop only once every probe is acknowledged and every reading counted (or after the
    // drain time): a stop cannot cut the run's last readings off the check.
    let deadline = Instant::now() + DRAIN;
    let (latencies, counted) = loop {
        let latencies = latencies_of(&sent.probes, &proxy.acks());
        let counted = setup.influx.sum_count(&db, MEASUREMENT)?;
        let done = latencies.len() == sent.probes.len() && counted == total;
        if done || Instant::now() >= deadline {
            break (latencies, counted);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let finished = child.stop()?;
    setup.influx.drop_db(&db)?;
    Ok(LatencyRun {
        rate,
        achieved_rate: sent.readings as f64 / sent.elapsed.as_secs_f64(),
        workers: setup.workers,
        probes: sent.probes.len(),
        latencies,
        usage: finished.usage,
        sent_and_counted: (total, counted),
    })
}

/// For each probe acknowledged, the time from its send to the first acknowledgement of a
/// write of its window holding it; sorted.
fn latencies_of(probes: &[Probe], acks: &[Ack]) -> Vec<Duration> {
    let mut out: Vec<Duration> = probes
        .iter()
        .filter_map(|p| {
            acks.iter()
                .filter(|a| a.start_ms == p.start_ms && a.count >= p.nth && a.at >= p.sent)
                .map(|a| a.at - p.sent)
                .min()
        })
        .collect();
    out.sort();
    out
}
