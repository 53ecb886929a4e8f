//! `maxq run --until-end` over a loaded topic as a measured child, and the check that its
//! points account for every reading loaded, in every level it writes.

use std::path::Path;
use std::time::Duration;

use super::child::{spawn, Usage};
use super::embedded::Embedded;
use super::influx::Influx;
use maxq::config::length_name;

/// Measurement the benchmark's runs write their first level (`maxq run`'s default
/// one-minute windows) to.
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
    /// The in-process broker, when it is the one read: maxq's own topics are created on it
    /// beforehand, as it does not create topics on request.
    pub embedded: Option<&'a Embedded>,
}

/// One `--until-end` run: what the kernel measured and what InfluxDB holds afterwards.
#[derive(Clone, Debug)]
pub struct PipelineRun {
    /// The child's figures.
    pub usage: Usage,
    /// Sum of `count` over the points written, per measurement: the first level's, then
    /// each roll-up's.
    pub counted: Vec<(String, u64)>,
}

/// `maxq run --rollups`'s value for roll-ups of `lengths`: `1h,1d`.
pub fn rollups_flag(lengths: &[Duration]) -> String {
    lengths
        .iter()
        .map(|d| length_name(d.as_millis() as i64))
        .collect::<Vec<_>>()
        .join(",")
}

/// The measurements a run with roll-ups of `lengths` writes, as the README names them: the
/// first level's, then for each roll-up the first level's name with its length suffix
/// replaced (`telemetry_1m` → `telemetry_1h`).
pub fn measurements(lengths: &[Duration]) -> Vec<String> {
    let stem = MEASUREMENT.strip_suffix("_1m").unwrap_or(MEASUREMENT);
    std::iter::once(MEASUREMENT.to_owned())
        .chain(
            lengths
                .iter()
                .map(|d| format!("{stem}_{}", length_name(d.as_millis() as i64))),
        )
        .collect()
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

/// Runs `maxq run --until-end -w <workers>`, with `--rollups` when `rollups` has any, into a
/// fresh database, then reads back the sum of `count` of every level and drops the
/// database.
pub fn measure(
    target: &Target<'_>,
    name: &str,
    workers: usize,
    rollups: &[Duration],
) -> anyhow::Result<PipelineRun> {
    let db = format!("maxq_bench_{}_{name}", std::process::id()).replace('-', "_");
    target.influx.create_db(&db)?;
    let group = format!("maxq-bench-{}-{name}", std::process::id());
    // A run reads its whole resume log and roll-up changelog at start, every group's
    // records: topics of its own keep earlier runs' records out of its figures.
    let resume_topic = format!("maxq-bench-{}-{name}.resume", std::process::id());
    if let Some(embedded) = target.embedded {
        embedded.create_own_topics(&resume_topic)?;
    }
    let mut args = run_args(
        target.brokers,
        target.topic,
        &group,
        target.influx.url(),
        &db,
    );
    args.extend(
        [
            "--until-end",
            "-w",
            &workers.to_string(),
            "--resume-topic",
            &resume_topic,
        ]
        .map(str::to_owned),
    );
    if !rollups.is_empty() {
        args.extend(["--rollups".to_owned(), rollups_flag(rollups)]);
    }
    let finished = spawn(target.dir, name, &args)?.wait()?;
    let counted = measurements(rollups)
        .into_iter()
        .map(|m| Ok((m.clone(), target.influx.sum_count(&db, &m)?)))
        .collect::<anyhow::Result<_>>()?;
    target.influx.drop_db(&db)?;
    Ok(PipelineRun {
        usage: finished.usage,
        counted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollups_are_named_after_their_length() {
        let lengths = [Duration::from_secs(3600), Duration::from_secs(86_400)];
        assert_eq!(rollups_flag(&lengths), "1h,1d");
        assert_eq!(
            measurements(&lengths),
            ["telemetry_1m", "telemetry_1h", "telemetry_1d"]
        );
        assert_eq!(measurements(&[]), ["telemetry_1m"]);
    }
}
