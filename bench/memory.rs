//! Memory: RSS against the number of live (level, window, sensor) keys, without and with
//! roll-ups, and RSS over time on an endless stream. Both read from the in-process broker,
//! so the child's RSS is maxq's alone, with librdkafka's prefetch queue capped
//! ([`QUEUE_KIB`]) so that it does not count as key state.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::child::{spawn, Usage};
use super::embedded::Embedded;
use super::pipeline::{rollups_flag, run_args};
use super::preload;
use super::stream::{self, Live};
use maxq::commands::generate::write_json_line;
use maxq::commands::publish::Publisher;

/// `queued.max.messages.kbytes` of the memory runs' consumers.
pub const QUEUE_KIB: u64 = 1024;

/// Sensors of the baseline run the others are compared with.
pub const BASELINE_KEYS: usize = 1000;

/// One run with a given number of sensors, each with one live key per level.
#[derive(Clone, Copy, Debug)]
pub struct KeysRun {
    /// The distinct sensors published, all in one window.
    pub sensors: u64,
    /// Levels maintained: the first, and one per roll-up.
    pub levels: u64,
    /// RSS once every reading was read and aggregated, all keys live.
    pub live_rss_bytes: u64,
    /// The child's figures (its peak includes the start-up and reading phases).
    pub usage: Usage,
}

impl KeysRun {
    /// Live (level, window, sensor) keys: one per sensor and level.
    pub fn live_keys(&self) -> u64 {
        self.sensors * self.levels
    }
}

/// A topic of the in-process broker holding one reading per sensor, all in one window.
pub struct KeysTopic {
    /// Its name.
    pub name: String,
    /// Readings published.
    pub readings: u64,
    /// Distinct sensors among them.
    pub sensors: u64,
}

fn queue_flag() -> [String; 2] {
    [
        "-X".to_owned(),
        format!("queued.max.messages.kbytes={QUEUE_KIB}"),
    ]
}

/// How long the memory run may take to read its readings.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Publishes one 10 Hz tick of `sensors` sensors (and the start of the next, for the
/// generator's dropouts) to a new topic: every reading falls in the generated launch's
/// first minute.
pub fn publish_keys(
    embedded: &Embedded,
    sensors: usize,
    partitions: usize,
) -> anyhow::Result<KeysTopic> {
    let name = format!("keys-{sensors}");
    embedded.create_topic(&name, partitions)?;
    let publisher = Publisher::open(&embedded.publish_args(&name))?;
    let mut distinct = HashSet::new();
    let mut line = Vec::with_capacity(128);
    let readings = preload::generate(sensors, sensors as u64, |reading| {
        distinct.insert(reading.sensor.to_owned());
        line.clear();
        write_json_line(&mut line, reading);
        publisher.send(reading.sensor, &line)
    })?;
    publisher.finish()?;
    Ok(KeysTopic {
        name,
        readings,
        sensors: distinct.len() as u64,
    })
}

/// `topic` read by a streaming `maxq run -w 1 --emit final`, with `--rollups` when
/// `rollups` has any: the readings' first-level window never becomes final (the watermark
/// stays inside it), nor do the longer windows holding it, so every key of every level
/// stays live and nothing is written. Once the child has counted every reading (its
/// progress line) and a trim of free heap memory has passed, its RSS is taken; then it is
/// stopped.
pub fn keys_run(
    dir: &Path,
    embedded: &Embedded,
    topic: &KeysTopic,
    rollups: &[Duration],
) -> anyhow::Result<KeysRun> {
    let name = if rollups.is_empty() {
        topic.name.clone()
    } else {
        format!("{}-rollups", topic.name)
    };
    let mut args: Vec<String> = [
        "run",
        "--brokers",
        &embedded.brokers,
        "--topic",
        &topic.name,
        "--group",
        &format!("maxq-bench-{name}"),
        "-w",
        "1",
        "--emit",
        "final",
        "--output-dir",
        &dir.join(&name).to_string_lossy(),
        "--progress-interval",
        "200ms",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(queue_flag());
    if !rollups.is_empty() {
        args.extend(["--rollups".to_owned(), rollups_flag(rollups)]);
    }
    let child = spawn(dir, &name, &args)?;
    let log = dir.join(format!("{name}.log"));
    let counted = format!(" readings={} ", topic.readings);
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while !std::fs::read_to_string(&log)?.contains(&counted) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{name}: not every reading read within {} s (log {})",
            READ_TIMEOUT.as_secs(),
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A few epochs, so that differential has absorbed the last ones, and a trim of the
    // memory their merges freed: the trimmer's looks that find nothing read since the one
    // before, the first of them at most two of its periods after the last reading.
    std::thread::sleep(2 * maxq::run::TRIM_EVERY + Duration::from_secs(1));
    let live_rss_bytes = child.rss_now().unwrap_or(0);
    let finished = child.stop()?;
    Ok(KeysRun {
        sensors: topic.sensors,
        levels: 1 + rollups.len() as u64,
        live_rss_bytes,
        usage: finished.usage,
    })
}

/// Bytes per live key of `run` over `baseline`, a run with as many levels: the RSS
/// difference over the difference in sensors times the levels.
pub fn bytes_per_key(run: &KeysRun, baseline: &KeysRun) -> f64 {
    (run.live_rss_bytes as f64 - baseline.live_rss_bytes as f64)
        / ((run.sensors as f64 - baseline.sensors as f64) * run.levels as f64).max(1.0)
}

/// RSS over an endless stream.
#[derive(Clone, Debug)]
pub struct EndlessRun {
    /// Length of the stream.
    pub duration: Duration,
    /// Readings per second asked for, and sent per second.
    pub rate: (u64, f64),
    /// Sensors.
    pub sensors: usize,
    /// Workers.
    pub workers: usize,
    /// `(seconds since start, RSS bytes)`, one a second.
    pub samples: Vec<(f64, u64)>,
}

impl EndlessRun {
    /// The highest RSS sampled in the `[from, to)` fraction of the run.
    pub fn max_between(&self, from: f64, to: f64) -> Option<u64> {
        let end = self.samples.last()?.0;
        self.samples
            .iter()
            .filter(|(t, _)| *t >= from * end && *t <= to * end)
            .map(|(_, rss)| *rss)
            .max()
    }
}

/// Streams `rate` readings per second for `duration` into `maxq run` (streaming) reading
/// `topic`, already created on `live.brokers`, sampling its RSS every second.
pub fn endless(
    live: &Live<'_>,
    topic: &str,
    rate: u64,
    duration: Duration,
) -> anyhow::Result<EndlessRun> {
    let publisher = stream::publisher(live.brokers, topic)?;
    let db = format!("maxq_bench_{}_endless", std::process::id());
    live.influx.create_db(&db)?;
    let mut args = run_args(
        live.brokers,
        topic,
        "maxq-bench-endless",
        live.influx.url(),
        &db,
    );
    args.extend(["-w".to_owned(), live.workers.to_string()]);
    args.extend(queue_flag());
    let mut child = spawn(live.dir, "endless", &args)?;
    child.sample_rss(Duration::from_secs(1));
    let sent = stream::send(&publisher, live.sensors, rate, duration, None)?;
    publisher.finish()?;
    let finished = child.stop()?;
    live.influx.drop_db(&db)?;
    Ok(EndlessRun {
        duration,
        rate: (rate, sent.readings as f64 / sent.elapsed.as_secs_f64()),
        sensors: live.sensors,
        workers: live.workers,
        samples: finished.rss_samples,
    })
}
