//! The embedded demo, `maxq` with no arguments: an in-process Kafka-protocol broker
//! (librdkafka's mock cluster) with 4 partitions, the real CRS-11 first-stage telemetry and
//! a generated launch published to it, and the same `run` dataflow on 2 workers over it.
//! Without `--influx-url` the points go to line-protocol files.

use anyhow::Context;
use clap::Parser;
use rdkafka::mocking::MockCluster;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::{Cli, Command, DemoArgs, PublishArgs};
use crate::commands::generate::{write_json_line, GenerateConfig, Generator};
use crate::commands::produce::spacex_sample;
use crate::commands::publish::Publisher;
use crate::config::{timely_config, RunConfig, SinkConfig, SinkTarget};
use crate::key::WindowKey;
use crate::pipeline::metrics::Metrics;
use crate::run::execute;
use crate::stats::Stats;

/// The CRS-11 first-stage capture (SpaceX webcast telemetry, via shahar603/Telemetry-Data).
pub const CRS11_STAGE1: &str = include_str!("../../datasets/crs-11/stage1_raw.jsonl");

/// CRS-11's lift-off, T+0.
pub const CRS11_LAUNCH: &str = "2017-06-03T21:07:38Z";

/// T+0 of the demo's generated launch.
const GENERATED_LAUNCH: &str = "2026-11-25T12:00:00Z";

const TOPIC: &str = "telemetry";
const PARTITIONS: i32 = 4;

/// The sensors the live view and the summary show.
const WATCHED: [&str; 4] = [
    "sensor=stage1.velocity,unit=m/s",
    "sensor=stage1.altitude,unit=km",
    "sensor=velocity.0,unit=m/s",
    "sensor=altitude.0,unit=m",
];

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("a valid constant")
        .timestamp_millis()
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
        if WATCHED.contains(&&*key.series) {
            if let Ok(mut windows) = self.windows.lock() {
                windows.insert((key.series.to_string(), key.start_ms), *stats);
            }
        }
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
    let timely = timely_config(&run_args.cluster)?;
    let watch = Arc::new(Watch::default());
    let metrics = Arc::new(Metrics::default());
    let done = Arc::new(AtomicBool::new(false));
    let view = live_view(metrics.clone(), watch.clone(), done.clone());
    let tap = watch.clone();
    let tap = Arc::new(move |key: &WindowKey, stats: &Stats| tap.record(key, stats));
    let summary = execute(config.clone(), timely, metrics, Some(tap));
    done.store(true, Relaxed);
    let _ = view.join();
    let summary = summary?;
    print_summary(&watch);
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
    Ok(())
}

fn publish(brokers: &str) -> anyhow::Result<u64> {
    let publisher = Publisher::open(&PublishArgs {
        brokers: brokers.to_owned(),
        topic: TOPIC.to_owned(),
        partitions: PARTITIONS as usize,
        librdkafka: Vec::new(),
    })?;
    let launch = ms(CRS11_LAUNCH);
    for line in CRS11_STAGE1.lines() {
        for reading in spacex_sample(line, "stage1", launch).map_err(anyhow::Error::msg)? {
            publisher.send(&reading.sensor, &reading.payload(0))?;
        }
    }
    let mut generator = Generator::new(GenerateConfig {
        sensors: 64,
        hz: 10.0,
        duration_ms: 600_000,
        seed: 1,
        launch_ms: ms(GENERATED_LAUNCH),
    });
    let mut line = Vec::with_capacity(128);
    generator.run(|reading| {
        line.clear();
        write_json_line(&mut line, reading);
        publisher.send(reading.sensor, &line)
    })?;
    Ok(publisher.finish()?.sent)
}

/// One line a second: throughput, counts, and the newest minute of the watched sensors.
fn live_view(
    metrics: Arc<Metrics>,
    watch: Arc<Watch>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let m = &metrics;
        let mut last = (Instant::now(), 0u64);
        while !done.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            let readings = m.readings_total();
            let rate = (readings - last.1) as f64 / last.0.elapsed().as_secs_f64();
            last = (Instant::now(), readings);
            let mut line = format!(
                "{readings:>9} readings {rate:>9.0}/s | windows written {:>6} | late {:>5} | malformed {:>3}",
                m.points_written_total(),
                m.late_total(),
                m.malformed_total(),
            );
            if let Ok(windows) = watch.windows.lock() {
                for series in WATCHED {
                    if let Some((_, s)) = windows.iter().rfind(|((k, _), _)| k == series) {
                        let name = series
                            .trim_start_matches("sensor=")
                            .split(',')
                            .next()
                            .unwrap_or(series);
                        line.push_str(&format!(
                            " | {name} {:.0} [{:.0}..{:.0}]",
                            s.mean, s.min, s.max
                        ));
                    }
                }
            }
            eprintln!("{line}");
        }
    })
}

/// The per-minute table of the CRS-11 stage-1 sensors.
fn print_summary(watch: &Watch) {
    let Ok(windows) = watch.windows.lock() else {
        return;
    };
    let launch = ms(CRS11_LAUNCH);
    let mut out = std::io::stdout().lock();
    for series in &WATCHED[..2] {
        let _ = writeln!(
            out,
            "\n{series}  (CRS-11, one-minute windows; T+ is the window start)"
        );
        let _ = writeln!(
            out,
            "{:>8} {:>6} {:>12} {:>12} {:>12} {:>10}",
            "T+", "count", "mean", "min", "max", "stddev"
        );
        for ((_, start), s) in windows.iter().filter(|((k, _), _)| k == series) {
            print_row(&mut out, (start - launch) / 1000, s);
        }
    }
}

fn print_row(out: &mut impl Write, t_plus_s: i64, s: &Stats) {
    let _ = writeln!(
        out,
        "{:>7}s {:>6} {:>12.3} {:>12.3} {:>12.3} {:>10.3}",
        t_plus_s,
        s.count,
        s.mean,
        s.min,
        s.max,
        s.stddev()
    );
}
