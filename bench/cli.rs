//! `maxq-bench`'s flags.

use clap::{Args, Parser, Subcommand, ValueEnum};
use maxq::cli::{duration, event_duration};
use std::path::PathBuf;
use std::time::Duration;

/// maxq-bench: measures maxq against a plain Kafka consumer and writes the figures as
/// Markdown.
#[derive(Debug, Parser)]
#[command(name = "maxq-bench", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Without a subcommand, the benchmark.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The benchmark's flags.
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// The hidden subcommand the benchmark runs as a child.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read (and parse) partitions with a plain consumer: the benchmark's ceiling.
    #[command(hide = true)]
    Consume(BenchConsumeArgs),
}

/// The parts of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum BenchSection {
    /// Plain rdkafka consumer over the preloaded topic: read only, and read + parse.
    Ceiling,
    /// `maxq run --until-end` over the preloaded topic, for every `--workers` count, without
    /// and with `--rollups`.
    Pipeline,
    /// The same runs fed from an in-process broker, without the external broker's limit.
    Embedded,
    /// Produce-to-acknowledged-write latency of window updates at `--latency-rate`.
    Latency,
    /// RSS for each `--keys` count of sensors with one live key each, then with one live key
    /// per level of `--rollups`.
    Memory,
    /// RSS over time on an endless stream at a fixed sensor count.
    Endless,
}

/// Flags of `maxq-bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Bootstrap brokers of the Kafka-protocol broker measured.
    #[arg(long, value_name = "LIST", default_value = "localhost:9092")]
    pub brokers: String,

    /// InfluxDB 1.x base URL; every run writes to a fresh database there, dropped afterwards.
    #[arg(long, value_name = "URL", default_value = "http://localhost:8086")]
    pub influx_url: String,

    /// Readings preloaded (generated telemetry, seed 1).
    #[arg(long, value_name = "N", default_value_t = 5_000_000)]
    pub readings: u64,

    /// Partitions of the preloaded topic.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub partitions: usize,

    /// Sensors of the preloaded topic, each sampled at 10 Hz.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub sensors: usize,

    /// Preloaded topic (default: named after the sizes); loaded once, reused when it holds
    /// exactly `--readings`.
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,

    /// Worker counts of the pipeline runs, comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "1,2"
    )]
    pub workers: Vec<usize>,

    /// Roll-up lengths of the pipeline and memory runs made with `maxq run --rollups`, beside
    /// the same runs without, comma-separated.
    #[arg(
        long,
        value_name = "DURATIONS",
        value_delimiter = ',',
        value_parser = event_duration,
        default_value = "1h,1d"
    )]
    pub rollups: Vec<Duration>,

    /// Readings per second produced during the latency run.
    #[arg(long, value_name = "R", default_value_t = 20_000)]
    pub latency_rate: u64,

    /// Length of the latency run.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub latency_duration: Duration,

    /// Live (sensor, window) key counts of the memory runs, comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "10000,100000,1000000"
    )]
    pub keys: Vec<usize>,

    /// Length of the endless-stream run.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    pub endless_duration: Duration,

    /// Readings per second of the endless stream (over `--sensors` sensors).
    #[arg(long, value_name = "R", default_value_t = 20_000)]
    pub endless_rate: u64,

    /// The parts to run, comma-separated (default: all).
    #[arg(
        long,
        value_name = "LIST",
        value_enum,
        value_delimiter = ',',
        default_value = "ceiling,pipeline,embedded,latency,memory,endless"
    )]
    pub sections: Vec<BenchSection>,

    /// Markdown file the results are added to (newest run first).
    #[arg(long, value_name = "FILE", default_value = "BENCHMARKS.md")]
    pub report: PathBuf,

    /// Directory for the runs' logs and line-protocol files (default: a fresh temporary one).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

/// Flags of the hidden `maxq-bench consume`.
#[derive(Debug, Args)]
pub struct BenchConsumeArgs {
    /// Bootstrap brokers.
    #[arg(long, value_name = "LIST")]
    pub brokers: String,

    /// Topic whose every partition is read from its start to the end offset seen at start.
    #[arg(long, value_name = "NAME")]
    pub topic: String,

    /// Also parse every payload into a reading.
    #[arg(long)]
    pub parse: bool,

    /// Read with librdkafka's batch consume, as maxq does, instead of polling message by
    /// message.
    #[arg(long)]
    pub batch: bool,
}
