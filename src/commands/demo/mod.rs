//! The embedded demo, `maxq` with no arguments: an in-process Kafka-protocol broker
//! (librdkafka's mock cluster) with 4 partitions, the real CRS-11 first-stage telemetry and
//! a generated launch published to it, and the same `run` dataflow on 2 workers over it.
//! Without `--influx-url` the points go to line-protocol files, written afresh each run.
//! It ends with a per-minute table of the CRS-11 windows and a picture of them.

use anyhow::Context;
use clap::Parser;
use rdkafka::mocking::MockCluster;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::cli::{Cli, Command, DemoArgs, PublishArgs};
use crate::commands::generate::{write_json_line, GenerateConfig, Generator};
use crate::commands::produce::{spacex_sample, Outgoing};
use crate::commands::publish::Publisher;
use crate::config::{timely_config, RunConfig, SinkConfig, SinkTarget};
use crate::key::WindowKey;
use crate::pipeline::metrics::Metrics;
use crate::run::execute;
use crate::stats::Stats;
use crate::terminal;

mod picture;
mod table;
mod view;

/// The CRS-11 first-stage capture (SpaceX webcast telemetry, via shahar603/Telemetry-Data).
pub const CRS11_STAGE1: &str = include_str!("../../../datasets/crs-11/stage1_raw.jsonl");

/// CRS-11's flight events, seconds after T+0, from the same source.
pub const CRS11_EVENTS: &str = include_str!("../../../datasets/crs-11/events.jsonl");

/// CRS-11's lift-off, T+0.
pub const CRS11_LAUNCH: &str = "2017-06-03T21:07:38Z";

/// T+0 of the demo's generated launch.
const GENERATED_LAUNCH: &str = "2026-11-25T12:00:00Z";

const TOPIC: &str = "telemetry";
const PARTITIONS: i32 = 4;

/// The CRS-11 series the table and the picture show.
const CRS11_SERIES: [&str; 2] = [
    "sensor=stage1.velocity,unit=m/s",
    "sensor=stage1.altitude,unit=km",
];

/// The sensors the live view shows, with the T+0 of their launch.
const WATCHED: [(&str, &str); 4] = [
    (CRS11_SERIES[0], CRS11_LAUNCH),
    (CRS11_SERIES[1], CRS11_LAUNCH),
    ("sensor=velocity.0,unit=m/s", GENERATED_LAUNCH),
    ("sensor=altitude.0,unit=m", GENERATED_LAUNCH),
];

/// The picture's file name in `--output-dir`.
const PICTURE: &str = "crs11-stage1.svg";

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("a valid constant")
        .timestamp_millis()
}

/// A flight time as a countdown clock reads it: `T-0:38`, `T+0:00`, `T+2:25`.
fn t_plus(seconds: i64) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    format!("T{sign}{}:{:02}", abs / 60, abs % 60)
}

/// The windows written for the [`WATCHED`] sensors, kept for display.
#[derive(Debug, Default)]
struct Watch {
    /// (series, window start ms) → statistic.
    windows: Mutex<BTreeMap<(String, i64), Stats>>,
}

impl Watch {
    /// Records a window written if its series is watched.
    fn record(&self, key: &WindowKey, stats: &Stats) {
        if WATCHED.iter().any(|(series, _)| *series == &*key.series) {
            if let Ok(mut windows) = self.windows.lock() {
                windows.insert((key.series.to_string(), key.start_ms), *stats);
            }
        }
    }

    /// The windows of `series`: start ms → statistic.
    fn of(&self, series: &str) -> BTreeMap<i64, Stats> {
        let Ok(windows) = self.windows.lock() else {
            return BTreeMap::new();
        };
        windows
            .iter()
            .filter(|((s, _), _)| s == series)
            .map(|((_, start), stats)| (*start, *stats))
            .collect()
    }
}

/// Runs the demo.
pub fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("starting the in-process broker")?;
    cluster.create_topic(TOPIC, PARTITIONS, 1)?;
    cluster.create_topic("maxq.resume", 1, 1)?;
    let brokers = cluster.bootstrap_servers();
    let published = publish(&brokers)?;
    eprintln!("maxq demo: published {published} readings (CRS-11 stage 1, real; one generated launch) to an in-process broker, {PARTITIONS} partitions");

    let cli = Cli::try_parse_from([
        "maxq",
        "run",
        "--brokers",
        &brokers,
        "--topic",
        TOPIC,
        "--group",
        "maxq-demo",
        "--until-end",
        "--progress-interval",
        "1h",
        "-w",
        &args.workers.to_string(),
    ])?;
    let Some(Command::Run(run_args)) = cli.command else {
        unreachable!("a run command")
    };
    let mut config = RunConfig::from_args(&run_args)?;
    config.sink = SinkConfig::from_args(&args.sink)?;
    if let SinkTarget::Files(dir) = &config.sink.target {
        remove_worker_files(dir)?;
    }
    let timely = timely_config(&run_args.cluster)?;
    let watch = Arc::new(Watch::default());
    let metrics = Arc::new(Metrics::default());
    let done = Arc::new(AtomicBool::new(false));
    let view = view::spawn(metrics.clone(), watch.clone(), done.clone());
    let tap = watch.clone();
    let tap = Arc::new(move |key: &WindowKey, stats: &Stats| tap.record(key, stats));
    let summary = execute(config.clone(), timely, metrics, Some(tap));
    done.store(true, Relaxed);
    let _ = view.join();
    let summary = summary?;

    let launch_ms = ms(CRS11_LAUNCH);
    let minutes = CRS11_SERIES.map(|series| watch.of(series));
    table::print(&CRS11_SERIES, &minutes, launch_ms);
    let picture = args.sink.output_dir.join(PICTURE);
    picture::draw(&picture, &crs11_readings()?, &minutes, launch_ms)?;
    println!(
        "{} readings in {:.1} s ({:.0}/s), {} late, {} malformed, {} window points written to {}",
        summary.readings,
        summary.elapsed.as_secs_f64(),
        summary.readings as f64 / summary.elapsed.as_secs_f64(),
        summary.late,
        summary.malformed.iter().map(|(_, n)| n).sum::<u64>(),
        summary.points_written,
        match &config.sink.target {
            SinkTarget::Files(dir) => format!("{}/worker-*.lp", dir.display()),
            SinkTarget::V1 { url, .. } | SinkTarget::V2 { url, .. } => url.clone(),
        }
    );
    println!("picture of the CRS-11 windows: {}", picture.display());
    Ok(())
}

/// Removes the `worker-*.lp` files an earlier demo left in `dir`: the file sink appends,
/// and a second run would otherwise add its points to the first run's.
fn remove_worker_files(dir: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading --output-dir {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("worker-") && name.ends_with(".lp") {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the earlier {}", path.display()))?;
        }
    }
    Ok(())
}

/// The CRS-11 capture as readings, one per quantity and sample.
fn crs11_readings() -> anyhow::Result<Vec<Outgoing>> {
    let launch = ms(CRS11_LAUNCH);
    let mut readings = Vec::new();
    for line in CRS11_STAGE1.lines() {
        readings.extend(spacex_sample(line, "stage1", launch).map_err(anyhow::Error::msg)?);
    }
    Ok(readings)
}

fn publish(brokers: &str) -> anyhow::Result<u64> {
    let crs11 = crs11_readings()?;
    let mut generator = Generator::new(GenerateConfig {
        sensors: 64,
        hz: 10.0,
        duration_ms: 600_000,
        seed: 1,
        launch_ms: ms(GENERATED_LAUNCH),
    });
    let total = crs11.len() as u64 + generator.samples();
    let publisher = Publisher::open_with_progress(
        &PublishArgs {
            brokers: brokers.to_owned(),
            topic: TOPIC.to_owned(),
            partitions: PARTITIONS as usize,
            librdkafka: Vec::new(),
        },
        terminal::progress_bar("publishing", "readings", Some(total)),
    )?;
    for reading in &crs11 {
        publisher.send(&reading.sensor, &reading.payload(0))?;
    }
    let mut line = Vec::with_capacity(128);
    generator.run(|reading| {
        line.clear();
        write_json_line(&mut line, reading);
        publisher.send(reading.sensor, &line)
    })?;
    Ok(publisher.finish()?.sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flight_times_read_like_a_countdown_clock() {
        let cases = [
            (-38, "T-0:38"),
            (-65, "T-1:05"),
            (-1, "T-0:01"),
            (0, "T+0:00"),
            (22, "T+0:22"),
            (145, "T+2:25"),
            (3_600, "T+60:00"),
        ];
        for (seconds, text) in cases {
            assert_eq!(t_plus(seconds), text);
        }
    }

    #[test]
    fn only_the_worker_files_of_an_earlier_run_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["worker-0.lp", "worker-7.lp", "crs11-stage1.svg", "notes.lp"] {
            std::fs::write(dir.path().join(name), "earlier\n").unwrap();
        }
        remove_worker_files(dir.path()).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["crs11-stage1.svg", "notes.lp"]);
        remove_worker_files(&dir.path().join("absent")).unwrap();
    }
}
