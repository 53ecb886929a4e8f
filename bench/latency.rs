//! Update latency in streaming mode: a live stream at a fixed rate with probe readings,
//! `maxq run --emit updates` writing through the [`WriteProxy`]; a probe's latency runs
//! from its send to the first acknowledged write of its window holding it (count ≥ its
//! position in the window). A plain consumer of the same topic records when each probe
//! reaches it: the broker's share of that latency.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::child::{spawn, Usage};
use super::embedded::Broker;
use super::pipeline::{run_args, MEASUREMENT};
use super::preload::{connection, partition_offsets};
use super::proxy::{Ack, WriteProxy};
use super::stream::{self, Live, Probe, PROBE_SENSOR, UNIT};
use maxq::kafka::{consumer_config, LogContext};
use maxq::pipeline::parse::Reading;

/// Epoch of the latency run.
pub const EPOCH: &str = "100ms";

/// `fetch.wait.max.ms` of every consumer reading from the in-process broker: librdkafka's
/// mock broker holds a fetch that finds no data for the whole wait instead of answering when
/// data arrives, as Kafka does (rdkafka_mock_handlers.c), which would add up to the default
/// 500 ms to every reading's latency.
pub const MOCK_FETCH_WAIT_MS: &str = "10";

/// Window of the latency run, ms (maxq's default `--window 1m`).
const WINDOW_MS: i64 = 60_000;

/// How long the stream runs before probes start, so start-up is not measured.
const WARM_UP: Duration = Duration::from_secs(3);

/// How long after the stream ends the last probes may take to be acknowledged.
const DRAIN: Duration = Duration::from_secs(15);

/// The latency figures of one run.
#[derive(Clone, Debug)]
pub struct LatencyRun {
    /// The broker streamed through.
    pub broker: Broker,
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
    /// For the same probes, the time to the arrival of that write request, sorted.
    pub request_latencies: Vec<Duration>,
    /// Latencies from send to a plain consumer's receipt, sorted.
    pub consumer_latencies: Vec<Duration>,
    /// The pipeline child's figures.
    pub usage: Usage,
    /// Why the producer could not deliver every reading, if it could not.
    pub producer_error: Option<String>,
    /// Readings sent, and the sum of `count` in InfluxDB after the run.
    pub sent_and_counted: (u64, u64),
}

/// The `q`-quantile (0..=1) of sorted latencies, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let n = sorted.len();
    (n > 0).then(|| sorted[((n as f64 * q).ceil() as usize).clamp(1, n) - 1])
}

/// Runs the stream through `topic` (created, empty) for `duration` at `rate` and measures
/// every probe.
pub fn measure(
    setup: &Live<'_>,
    broker: Broker,
    topic: &str,
    rate: u64,
    duration: Duration,
) -> anyhow::Result<LatencyRun> {
    let pid = std::process::id();
    let db = format!("maxq_bench_{pid}_latency");
    setup.influx.create_db(&db)?;
    let publisher = stream::publisher(setup.brokers, topic)?;
    let fetch_wait = match broker {
        Broker::External => Vec::new(),
        Broker::InProcess => vec![("fetch.wait.max.ms", MOCK_FETCH_WAIT_MS)],
    };
    let receiver = ProbeReceiver::start(setup.brokers, topic, &fetch_wait)?;
    let proxy = WriteProxy::start(
        setup.influx.url(),
        format!("{MEASUREMENT},sensor={PROBE_SENSOR},unit={UNIT} "),
    )?;
    let mut args = run_args(
        setup.brokers,
        topic,
        &format!("maxq-bench-{pid}-latency"),
        &proxy.url,
        &db,
    );
    for (key, value) in &fetch_wait {
        args.extend(["-X".to_owned(), format!("{key}={value}")]);
    }
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
    let child = spawn(setup.dir, &format!("{}-latency", broker.label()), &args)?;
    let warm = stream::send(&publisher, setup.sensors, rate, WARM_UP, None)?;
    let sent = stream::send(&publisher, setup.sensors, rate, duration, Some(WINDOW_MS))?;
    // A broker that cannot keep up fails the flush: reported, and the probes still count.
    let producer_error = publisher.finish().err().map(|e| format!("{e:#}"));
    let total = warm.readings + sent.readings;
    // Stop only once every probe is acknowledged and every reading counted (or after the
    // drain time): a stop cannot cut the run's last readings off the check.
    let deadline = Instant::now() + DRAIN;
    let ((latencies, request_latencies), counted) = loop {
        let latencies = latencies_of(&sent.probes, &proxy.acks());
        let counted = setup.influx.sum_count(&db, MEASUREMENT)?;
        let done = latencies.0.len() == sent.probes.len() && counted == total;
        if done || Instant::now() >= deadline {
            break (latencies, counted);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let finished = child.stop()?;
    let received = receiver.finish()?;
    let mut consumer_latencies: Vec<Duration> = received
        .iter()
        .filter_map(|&(seq, at)| sent.probes.get(seq as usize).map(|p| at - p.sent))
        .collect();
    consumer_latencies.sort();
    setup.influx.drop_db(&db)?;
    Ok(LatencyRun {
        broker,
        rate,
        achieved_rate: sent.readings as f64 / sent.elapsed.as_secs_f64(),
        workers: setup.workers,
        probes: sent.probes.len(),
        latencies,
        request_latencies,
        consumer_latencies,
        usage: finished.usage,
        producer_error,
        sent_and_counted: (total, counted),
    })
}

/// For each probe acknowledged, the time from its send to the first acknowledgement of a
/// write of its window holding it, and to that write's request; each sorted.
fn latencies_of(probes: &[Probe], acks: &[Ack]) -> (Vec<Duration>, Vec<Duration>) {
    let (mut acked, mut requested): (Vec<Duration>, Vec<Duration>) = probes
        .iter()
        .filter_map(|p| {
            acks.iter()
                .filter(|a| a.start_ms == p.start_ms && a.count >= p.nth && a.requested >= p.sent)
                .min_by_key(|a| a.at)
                .map(|a| (a.at - p.sent, a.requested - p.sent))
        })
        .unzip();
    acked.sort();
    requested.sort();
    (acked, requested)
}

/// A plain consumer of the live topic, with maxq's consumer settings, that records when
/// each probe reaches it.
struct ProbeReceiver {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u64, Instant)>>,
}

impl ProbeReceiver {
    fn start(
        brokers: &str,
        topic: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<ProbeReceiver> {
        let mut config = consumer_config(&connection(brokers), "maxq-bench-probes");
        config.set("enable.partition.eof", "false");
        for (key, value) in settings {
            config.set(*key, *value);
        }
        let consumer: BaseConsumer<LogContext> = config.create_with_context(LogContext)?;
        let mut assignment = TopicPartitionList::new();
        for (p, low, _) in partition_offsets(brokers, topic)?.unwrap_or_default() {
            assignment.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
        consumer.assign(&assignment)?;
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            let mut received = Vec::new();
            while !stop.load(Relaxed) {
                let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                if message.key() != Some(PROBE_SENSOR.as_bytes()) {
                    continue;
                }
                let at = Instant::now();
                if let Ok(reading) = Reading::parse(message.payload().unwrap_or_default()) {
                    received.push((reading.value as u64, at));
                }
            }
            received
        });
        Ok(ProbeReceiver { done, thread })
    }

    /// Every probe received: `(sequence number, when)`.
    fn finish(self) -> anyhow::Result<Vec<(u64, Instant)>> {
        self.done.store(true, Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the probe receiver panicked"))
    }
}
