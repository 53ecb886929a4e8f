//! `maxq run --until-end` over a loaded topic as a measured child, and the check that its
//! points account for every reading loaded.

use std::path::Path;

use super::child::{spawn, Usage};
use super::influx::Influx;

/// Measurement the benchmark's runs write.
pub const MEASUREMENT: &str = "telemetry_1m";

/// Where a pipeline run reads and writes.
pub struct Target<'a> {
    /// Work directory for logs.
    pub dir: &'a Path,
    /// Bootstrap brokers.
    pub brokers: &'a str,
    /// Topic read.
    pub topic: &'a str,
    /// InfluxDB written to.
    pub influx: &'a Influx,
}

/// One `--until-end` run: what the kernel measured and what InfluxDB holds afterwards.
#[derive(Clone, Copy, Debug)]
pub struct PipelineRun {
    /// The child's figures.
    pub usage: Usage,
    /// Sum of `count` over the points written.
    pub counted: u64,
}

/// The arguments of a `maxq run` reading `topic` on `brokers` into database `db`.
pub fn run_args(brokers: &str, topic: &str, group: &str, influx: &str, db: &str) -> Vec<String> {
    [
        "run",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group",
        group,
        "--influx-url",
        influx,
        "--influx-api",
        "v1",
        "--influx-db",
        db,
        "--measurement",
        MEASUREMENT,
        "--progress-interval",
        "1h",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs `maxq run --until-end -w <workers>` into a fresh database, then reads back the
/// sum of `count` and drops the database.
pub fn measure(target: &Target<'_>, name: &str, workers: usize) -> anyhow::Result<PipelineRun> {
    let db = format!("maxq_bench_{}_{name}", std::process::id()).replace('-', "_");
    target.influx.create_db(&db)?;
    let group = format!("maxq-bench-{}-{name}", std::process::id());
    let mut args = run_args(
        target.brokers,
        target.topic,
        &group,
        target.influx.url(),
        &db,
    );
    args.extend(["--until-end", "-w", &workers.to_string()].map(str::to_owned));
    let finished = spawn(target.dir, name, &args)?.wait()?;
    let counted = target.influx.sum_count(&db, MEASUREMENT)?;
    target.influx.drop_db(&db)?;
    Ok(PipelineRun {
        usage: finished.usage,
        counted,
    })
}
