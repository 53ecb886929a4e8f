//! The benchmark's input: generated telemetry (seed 1, 10 Hz per sensor) published once to
//! a topic named after its sizes, and reused by every later run that finds it complete.

use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::Duration;
use tracing::info;

use maxq::cli::PublishArgs;
use maxq::commands::generate::{write_json_line, GenerateConfig, GeneratedReading, Generator};
use maxq::commands::publish::{ensure_topic, PublishReport, Publisher};
use maxq::config::Connection;
use maxq::kafka::{consumer_config, topic_partitions, LogContext, METADATA_TIMEOUT};

/// Samples per second per sensor of the generated telemetry.
pub const HZ: f64 = 10.0;

/// T+0 of the generated launch.
const LAUNCH: &str = "2026-11-25T12:00:00Z";

/// A topic holding the benchmark's input.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// Readings it holds.
    pub readings: u64,
    /// How long loading it took now, or `None` when it was reused.
    pub loaded_in: Option<Duration>,
}

/// The connection of a plain client of `brokers`.
pub fn connection(brokers: &str) -> Connection {
    Connection {
        brokers: brokers.to_owned(),
        librdkafka: Vec::new(),
    }
}

/// Per partition, the offsets `[low, high)` it holds now; `None` when the topic is missing.
pub fn partition_offsets(
    brokers: &str,
    topic: &str,
) -> anyhow::Result<Option<Vec<(i32, i64, i64)>>> {
    let connection = connection(brokers);
    let Some(partitions) = topic_partitions(&connection, topic)? else {
        return Ok(None);
    };
    let consumer: BaseConsumer<LogContext> =
        consumer_config(&connection, "maxq-bench").create_with_context(LogContext)?;
    let mut offsets = Vec::with_capacity(partitions);
    for p in 0..partitions as i32 {
        let (low, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT)?;
        offsets.push((p, low, high));
    }
    Ok(Some(offsets))
}

/// Calls `emit` for the first `readings` readings of `sensors` generated sensors at 10 Hz
/// (seed 1): always the same readings for the same sizes.
pub fn generate(
    sensors: usize,
    readings: u64,
    mut emit: impl FnMut(&GeneratedReading<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let per_second = sensors as f64 * HZ;
    // Enough flight time for `readings` despite the generator's 0.5 % dropouts.
    let duration_ms = (readings as f64 / per_second * 1000.0 * 1.02) as i64 + 1000;
    let launch_ms = chrono::DateTime::parse_from_rfc3339(LAUNCH)?.timestamp_millis();
    let mut generator = Generator::new(GenerateConfig {
        sensors,
        hz: HZ,
        duration_ms,
        seed: 1,
        launch_ms,
    });
    let mut sent = 0u64;
    let result = generator.run(|reading| {
        if sent == readings {
            // Stops the generator: every reading wanted was emitted.
            return Err(None);
        }
        emit(reading).map_err(Some)?;
        sent += 1;
        Ok(())
    });
    match result {
        Ok(_) | Err(None) => Ok(sent),
        Err(Some(e)) => Err(e),
    }
}

/// Publishes generated readings to an existing topic: each to its sensor's partition, or
/// with `only` to one of the first `only` partitions by the sensor's hash, the others left
/// idle.
pub fn publish(
    target: &PublishArgs,
    sensors: usize,
    readings: u64,
    only: Option<usize>,
) -> anyhow::Result<PublishReport> {
    let publisher = Publisher::open(target)?;
    let mut line = Vec::with_capacity(128);
    generate(sensors, readings, |reading| {
        line.clear();
        write_json_line(&mut line, reading);
        let partition = only.map(|n| {
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(reading.sensor, &mut hasher);
            (std::hash::Hasher::finish(&hasher) % n as u64) as i32
        });
        publisher.send_to(partition, reading.sensor, &line)
    })?;
    publisher.finish()
}

/// Where a topic of `partitions` partitions is published to.
pub fn publish_args(brokers: &str, topic: &str, partitions: usize) -> PublishArgs {
    PublishArgs {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        partitions,
        librdkafka: Vec::new(),
    }
}

/// Makes sure `topic` holds exactly the generated input: reuses it when it does, loads it
/// when it does not exist, and refuses a topic holding something else.
pub fn ensure(
    brokers: &str,
    topic: &str,
    partitions: usize,
    sensors: usize,
    readings: u64,
) -> anyhow::Result<Loaded> {
    if let Some(offsets) = partition_offsets(brokers, topic)? {
        let held: i64 = offsets.iter().map(|(_, low, high)| high - low).sum();
        if held == readings as i64 && offsets.len() == partitions {
            info!(topic, readings, "reusing the preloaded topic");
            return Ok(Loaded {
                readings,
                loaded_in: None,
            });
        }
        anyhow::bail!(
            "topic {topic:?} on {brokers} holds {held} messages in {} partitions, not --readings {readings} in --partitions {partitions} (an interrupted load?): delete it or pass another --topic",
            offsets.len()
        );
    }
    info!(
        topic,
        readings, partitions, sensors, "loading the topic (once)"
    );
    ensure_topic(&publish_args(brokers, topic, partitions))?;
    let report = publish(
        &publish_args(brokers, topic, partitions),
        sensors,
        readings,
        None,
    )?;
    info!(topic, "loaded: {report}");
    Ok(Loaded {
        readings: report.sent,
        loaded_in: Some(report.elapsed),
    })
}
