//! A live stream at a fixed rate: readings of `sensors` sensors stamped with the current
//! time, and optionally a probe reading of a sensor of its own every [`PROBE_PERIOD`],
//! whose send instants the latency measurement starts from.

use std::path::Path;
use std::time::{Duration, Instant};

use super::influx::Influx;

use super::preload::publish_args;
use maxq::commands::generate::{write_json_line, GeneratedReading};
use maxq::commands::publish::Publisher;

/// The probe sensor.
pub const PROBE_SENSOR: &str = "latency.probe";

/// Unit of every streamed reading; it is part of the series (`sensor=..,unit=m`).
pub const UNIT: &str = "m";

/// How often a probe is sent.
pub const PROBE_PERIOD: Duration = Duration::from_millis(50);

/// Where a live stream runs: its broker, the pipeline's InfluxDB and sizes.
pub struct Live<'a> {
    /// Work directory.
    pub dir: &'a Path,
    /// Bootstrap brokers.
    pub brokers: &'a str,
    /// InfluxDB.
    pub influx: &'a Influx,
    /// Sensors streamed.
    pub sensors: usize,
    /// Pipeline workers.
    pub workers: usize,
}

/// A probe as sent: the window it falls in, its position in that window, when it was sent.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// Start of its window, ms.
    pub start_ms: i64,
    /// 1 for the window's first probe, 2 for the second, ..: the window's count once this
    /// probe is in it.
    pub nth: u64,
    /// When it was handed to the producer.
    pub sent: Instant,
}

/// What a stream sent.
#[derive(Debug, Default)]
pub struct Sent {
    /// Readings, probes included.
    pub readings: u64,
    /// The probes.
    pub probes: Vec<Probe>,
    /// Wall time of the sending.
    pub elapsed: Duration,
}

/// A producer to an existing topic with a small linger, so that it adds little delay.
pub fn publisher(brokers: &str, topic: &str) -> anyhow::Result<Publisher> {
    let mut args = publish_args(brokers, topic, 0);
    args.librdkafka
        .push(("linger.ms".to_owned(), "5".to_owned()));
    Publisher::open(&args)
}

/// Sends `rate` readings per second for `duration`; with `window_ms`, also probes.
pub fn send(
    publisher: &Publisher,
    sensors: usize,
    rate: u64,
    duration: Duration,
    window_ms: Option<i64>,
) -> anyhow::Result<Sent> {
    let names: Vec<String> = (0..sensors.max(1)).map(|i| format!("stream.{i}")).collect();
    let mut sent = Sent::default();
    let mut line = Vec::with_capacity(128);
    let mut send_one = |sensor: &str, value: f64| -> anyhow::Result<i64> {
        let ts_ms = chrono::Utc::now().timestamp_millis();
        line.clear();
        write_json_line(
            &mut line,
            &GeneratedReading {
                sensor,
                ts_ms,
                value,
                unit: UNIT,
            },
        );
        publisher.send(sensor, &line)?;
        Ok(ts_ms)
    };
    let started = Instant::now();
    let mut next_probe = started;
    let mut background = 0u64;
    while started.elapsed() < duration {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while background < due {
            send_one(&names[background as usize % names.len()], background as f64)?;
            background += 1;
        }
        if let Some(window_ms) = window_ms.filter(|_| Instant::now() >= next_probe) {
            next_probe += PROBE_PERIOD;
            let now = Instant::now();
            let ts_ms = send_one(PROBE_SENSOR, sent.probes.len() as f64)?;
            let start_ms = ts_ms.div_euclid(window_ms) * window_ms;
            let nth = match sent.probes.last() {
                Some(last) if last.start_ms == start_ms => last.nth + 1,
                _ => 1,
            };
            sent.probes.push(Probe {
                start_ms,
                nth,
                sent: now,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    sent.readings = background + sent.probes.len() as u64;
    sent.elapsed = started.elapsed();
    Ok(sent)
}
