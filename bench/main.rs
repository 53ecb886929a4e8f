//! `maxq-bench`: the figures of issue 6, reproducible by anyone with the services. It is a
//! binary of its own beside `maxq`, so the product's `--help` lists the user's commands only.
//!
//! Every measured program is a child process: `maxq run` (the `maxq` binary beside this
//! one), or this binary's hidden `consume` ceiling, measured by the kernel (`wait4`): CPU per reading, wall
//! throughput and peak RSS, against a plain consumer of the same partitions in the same
//! run. Each pipeline run's points are checked against the input: in every level written,
//! the sum of `count` over the points InfluxDB holds equals the readings loaded.
//!
//! Sections, each optional (`--sections`): the ceiling and the pipeline over the external
//! broker; the same over an in-process broker; update latency in streaming mode; memory per
//! live key; RSS over an endless stream. The pipeline and memory runs are made twice, without
//! and with roll-ups (`--rollups`), so that their cost is measured against the same run's
//! figures.

mod ceiling;
mod child;
mod cli;
mod embedded;
mod influx;
mod latency;
mod machine;
mod memory;
mod pipeline;
mod preload;
mod proxy;
mod report;
mod stream;

use clap::Parser;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tracing::info;
use tracing_subscriber::EnvFilter;

use ceiling::consume;
use cli::{BenchArgs, BenchSection, Cli, Command};
use embedded::Broker;
use embedded::Embedded;
use influx::Influx;
use report::{Results, Row, RunKind};
use stream::Live;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Some(Command::Consume(args)) => consume(&args).map(|count| println!("{count}")),
        None => bench(&cli.bench).and_then(|report| {
            print!("{}", report.markdown);
            report.check()
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maxq-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A finished benchmark: its Markdown, and the correctness checks that failed.
#[derive(Debug)]
pub struct BenchReport {
    /// The run's section of the report file.
    pub markdown: String,
    /// Checks that failed, each saying what was compared.
    pub failed_checks: Vec<String>,
}

impl BenchReport {
    /// An error listing the failed checks, if any.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.failed_checks.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("wrong results: {}", self.failed_checks.join("; "))
        }
    }
}

/// Runs the sections asked for, adds the results to `--report` and returns them.
pub fn bench(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(
        args.readings > 0 && args.sensors > 0 && args.partitions > 0,
        "--readings, --sensors and --partitions must be at least 1"
    );
    anyhow::ensure!(
        !args.workers.is_empty() && args.workers.iter().all(|&w| w > 0),
        "--workers takes worker counts of at least 1, e.g. --workers 1,2"
    );
    anyhow::ensure!(
        !args.rollups.is_empty(),
        "--rollups takes the roll-up lengths of the runs with roll-ups, e.g. --rollups 1h,1d"
    );
    let dir = work_dir(args)?;
    info!(dir = %dir.display(), "logs of every run go here");
    let influx = Influx::new(&args.influx_url)?;
    let mut results = Results {
        setup: machine::describe(&influx.version(), &args.brokers),
        rollups: args.rollups.clone(),
        ..Results::default()
    };
    let wants = |s| args.sections.contains(&s);
    // A section that fails is reported with the figures of the others, not instead of them.
    let mut failed = Vec::new();
    let mut record = |section: &str, result: anyhow::Result<()>| {
        if let Err(e) = result {
            tracing::error!(section, "{e:#}");
            failed.push(format!("{section}: {e:#}"));
        }
    };
    if wants(BenchSection::Ceiling) || wants(BenchSection::Pipeline) {
        record(
            "ceiling and pipeline",
            external(args, &dir, &influx, &mut results),
        );
    }
    if wants(BenchSection::Embedded) {
        record("embedded", in_process(args, &dir, &influx, &mut results));
    }
    let workers = args.workers.iter().copied().max().unwrap_or(1);
    if wants(BenchSection::Latency) {
        record(
            "latency",
            latency_runs(args, &dir, &influx, workers, &mut results),
        );
    }
    if wants(BenchSection::Memory) {
        record("memory", memory_runs(args, &dir, &mut results));
    }
    if wants(BenchSection::Endless) {
        record(
            "endless",
            endless_run(args, &dir, &influx, workers, &mut results),
        );
    }
    results.failed = failed.clone();
    let title = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let markdown = results.markdown(&title);
    report::write(&args.report, &markdown)?;
    let mut failed_checks: Vec<String> = results
        .rows
        .iter()
        .filter(|r| !r.check.1)
        .map(|r| r.check.0.clone())
        .chain(failed)
        .collect();
    for l in &results.latency {
        if l.sent_and_counted.0 != l.sent_and_counted.1 {
            failed_checks.push(format!(
                "latency run ({} broker): {} readings sent, the points count {}",
                l.broker.label(),
                l.sent_and_counted.0,
                l.sent_and_counted.1
            ));
        }
    }
    Ok(BenchReport {
        markdown,
        failed_checks,
    })
}

/// Memory per live key: the baseline, then every `--keys` count, each read without and then
/// with roll-ups.
fn memory_runs(args: &BenchArgs, dir: &Path, results: &mut Results) -> anyhow::Result<()> {
    let embedded = Embedded::start()?;
    for keys in std::iter::once(memory::BASELINE_KEYS).chain(args.keys.iter().copied()) {
        let topic = memory::publish_keys(&embedded, keys, args.partitions)?;
        info!(keys, "memory run");
        results
            .keys
            .push(memory::keys_run(dir, &embedded, &topic, &[])?);
        info!(
            keys,
            rollups = pipeline::rollups_flag(&args.rollups),
            "memory run with roll-ups"
        );
        results
            .rollup_keys
            .push(memory::keys_run(dir, &embedded, &topic, &args.rollups)?);
    }
    Ok(())
}

/// RSS over an endless stream through the in-process broker.
fn endless_run(
    args: &BenchArgs,
    dir: &Path,
    influx: &Influx,
    workers: usize,
    results: &mut Results,
) -> anyhow::Result<()> {
    let embedded = Embedded::start()?;
    let topic = "endless";
    embedded.create_topic(topic, args.partitions)?;
    let live = Live {
        dir,
        brokers: &embedded.brokers,
        influx,
        sensors: args.sensors,
        workers,
    };
    info!(duration = %humantime::format_duration(args.endless_duration), "endless run");
    results.endless = Some(memory::endless(
        &live,
        topic,
        args.endless_rate,
        args.endless_duration,
    )?);
    Ok(())
}

/// The latency run over the in-process broker, then over the external one.
fn latency_runs(
    args: &BenchArgs,
    dir: &Path,
    influx: &Influx,
    workers: usize,
    results: &mut Results,
) -> anyhow::Result<()> {
    let topic = format!("maxq-bench-latency-{}", std::process::id());
    maxq::commands::publish::ensure_topic(&preload::publish_args(
        &args.brokers,
        &topic,
        args.partitions,
    ))?;
    let embedded = Embedded::start()?;
    embedded.create_topic(&topic, args.partitions)?;
    // The in-process run first: the external broker may still be working off a backlog
    // after its run, and would take CPU from the other.
    for (broker, brokers) in [
        (Broker::InProcess, embedded.brokers.as_str()),
        (Broker::External, args.brokers.as_str()),
    ] {
        let live = Live {
            dir,
            brokers,
            influx,
            sensors: args.sensors,
            workers,
        };
        info!(broker = broker.label(), "latency run");
        results.latency.push(latency::measure(
            &live,
            broker,
            &topic,
            args.latency_rate,
            args.latency_duration,
        )?);
    }
    Ok(())
}

fn work_dir(args: &BenchArgs) -> anyhow::Result<PathBuf> {
    let dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("maxq-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("--work-dir {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The check of a run that should account for `expected` readings.
fn check(what: &str, expected: u64, actual: u64) -> (String, bool) {
    if expected == actual {
        (format!("{what} {actual}"), true)
    } else {
        (format!("{what} {actual}, expected {expected}"), false)
    }
}

/// The check of a pipeline run whose every measurement, `(name, sum of count)`, should
/// account for `expected` readings.
fn count_check(expected: u64, counted: &[(String, u64)]) -> (String, bool) {
    match counted {
        [(_, actual)] => check("sum of count in InfluxDB", expected, *actual),
        _ => {
            let each: Vec<String> = counted.iter().map(|(m, n)| format!("{m} {n}")).collect();
            let held = counted.iter().all(|(_, n)| *n == expected);
            let text = format!("sum of count in InfluxDB: {}", each.join(", "));
            if held {
                (text, true)
            } else {
                (format!("{text}; expected {expected} in each"), false)
            }
        }
    }
}

/// The ceiling and the pipeline over the external broker's preloaded topic.
fn external(
    args: &BenchArgs,
    dir: &Path,
    influx: &Influx,
    results: &mut Results,
) -> anyhow::Result<()> {
    let topic = args.topic.clone().unwrap_or_else(|| {
        format!(
            "maxq-bench-{}p-{}s-{}",
            args.partitions, args.sensors, args.readings
        )
    });
    let loaded = preload::ensure(
        &args.brokers,
        &topic,
        args.partitions,
        args.sensors,
        args.readings,
    )?;
    results.setup.push(format!(
        "input: topic `{topic}`, {} generated readings (seed 1, {} sensors at {} Hz), {} partitions; {}",
        loaded.readings,
        args.sensors,
        preload::HZ,
        args.partitions,
        match loaded.loaded_in {
            Some(t) => format!("loaded in this run in {:.1} s", t.as_secs_f64()),
            None => "loaded by an earlier run".to_owned(),
        }
    ));
    let target = pipeline::Target {
        dir,
        brokers: &args.brokers,
        topic: &topic,
        influx,
        embedded: None,
    };
    if args.sections.contains(&BenchSection::Ceiling) {
        results
            .rows
            .extend(ceilings(&target, Broker::External, loaded.readings, false)?);
    }
    if args.sections.contains(&BenchSection::Pipeline) {
        results
            .rows
            .extend(maxq_runs(&target, Broker::External, loaded.readings, args)?);
    }
    Ok(())
}

/// The same over the in-process broker, with its CPU accounted apart.
fn in_process(
    args: &BenchArgs,
    dir: &Path,
    influx: &Influx,
    results: &mut Results,
) -> anyhow::Result<()> {
    let embedded = Embedded::start()?;
    let topic = "telemetry";
    embedded.create_topic(topic, args.partitions)?;
    let sent = preload::publish(
        &embedded.publish_args(topic),
        args.sensors,
        args.readings,
        None,
    )?;
    info!("in-process broker: {sent}");
    let held: u64 = preload::partition_offsets(&embedded.brokers, topic)?
        .unwrap_or_default()
        .iter()
        .map(|(_, low, high)| (high - low) as u64)
        .sum();
    results.setup.push(format!(
        "in-process input: the same generator, {held} of {} readings held (librdkafka's mock broker keeps about 5 MB of batches per partition and drops the oldest)",
        sent.sent
    ));
    let target = pipeline::Target {
        dir,
        brokers: &embedded.brokers,
        topic,
        influx,
        embedded: Some(&embedded),
    };
    results
        .rows
        .extend(ceilings(&target, Broker::InProcess, held, true)?);
    results
        .rows
        .extend(maxq_runs(&target, Broker::InProcess, held, args)?);
    results.rows.push(quiet_run(&embedded, dir, influx, args)?);
    Ok(())
}

/// The same readings in a topic with one partition more, left idle, read by the most
/// `--workers`: with every busy partition's queue full, librdkafka's next fetch holds only
/// the idle one, and the broker may hold it for `fetch.wait.max.ms` before answering.
fn quiet_run(
    embedded: &Embedded,
    dir: &Path,
    influx: &Influx,
    args: &BenchArgs,
) -> anyhow::Result<Row> {
    let topic = "telemetry-quiet";
    embedded.create_topic(topic, args.partitions + 1)?;
    preload::publish(
        &embedded.publish_args(topic),
        args.sensors,
        args.readings,
        Some(args.partitions),
    )?;
    let held: u64 = preload::partition_offsets(&embedded.brokers, topic)?
        .unwrap_or_default()
        .iter()
        .map(|(_, low, high)| (high - low) as u64)
        .sum();
    let target = pipeline::Target {
        dir,
        brokers: &embedded.brokers,
        topic,
        influx,
        embedded: Some(embedded),
    };
    let workers = args.workers.iter().copied().max().unwrap_or(1);
    maxq(
        &target,
        Broker::InProcess,
        held,
        RunKind::MaxqQuiet(workers),
        &[],
    )
}

fn ceilings(
    target: &pipeline::Target<'_>,
    broker: Broker,
    readings: u64,
    in_process: bool,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for kind in [RunKind::Read, RunKind::ReadParse, RunKind::ReadParseBatch] {
        let parse = kind != RunKind::Read;
        let name = format!(
            "{}-ceiling-{}",
            broker.label(),
            match kind {
                RunKind::Read => "read",
                RunKind::ReadParse => "parse",
                _ => "batch-parse",
            }
        );
        info!(run = name, "plain consumer");
        let cpu_before = child::own_cpu();
        let batch = kind == RunKind::ReadParseBatch;
        let (consumed, usage) = ceiling::measure(
            target.dir,
            &name,
            target.brokers,
            target.topic,
            parse,
            batch,
        )?;
        let mut check = check("messages read", readings, consumed.messages);
        if parse && consumed.parsed != consumed.messages {
            check = (
                format!("{}; only {} parsed", check.0, consumed.parsed),
                false,
            );
        }
        rows.push(Row {
            broker,
            kind,
            readings: consumed.messages,
            usage,
            broker_cpu: in_process.then(|| child::own_cpu() - cpu_before),
            check,
        });
    }
    Ok(rows)
}

/// For every `--workers` count, the pipeline run without roll-ups, then the one with: one
/// after the other, so that the two compared share the machine's conditions as far as can be.
fn maxq_runs(
    target: &pipeline::Target<'_>,
    broker: Broker,
    readings: u64,
    args: &BenchArgs,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &w in &args.workers {
        rows.push(maxq(target, broker, readings, RunKind::Maxq(w), &[])?);
        rows.push(maxq(
            target,
            broker,
            readings,
            RunKind::MaxqRollups(w),
            &args.rollups,
        )?);
    }
    Ok(rows)
}

/// One pipeline run of `kind`, with roll-ups of `rollups` when it is `MaxqRollups`.
fn maxq(
    target: &pipeline::Target<'_>,
    broker: Broker,
    readings: u64,
    kind: RunKind,
    rollups: &[Duration],
) -> anyhow::Result<Row> {
    let (workers, suffix, rollups) = match kind {
        RunKind::MaxqRollups(w) => (w, "-rollups", rollups),
        RunKind::MaxqQuiet(w) => (w, "-quiet", &[][..]),
        RunKind::Maxq(w) => (w, "", &[][..]),
        _ => anyhow::bail!("{kind:?} is not a pipeline run"),
    };
    let name = format!("{}-maxq-w{workers}{suffix}", broker.label());
    info!(run = name, "pipeline");
    let cpu_before = child::own_cpu();
    let run = pipeline::measure(target, &name, workers, rollups)?;
    Ok(Row {
        broker,
        kind,
        readings,
        usage: run.usage,
        broker_cpu: (broker == Broker::InProcess).then(|| child::own_cpu() - cpu_before),
        check: count_check(readings, &run.counted),
    })
}
