//! Every flag, with its documentation. `--help` and the README's reference come from here.
//!
//! timely's own cluster flags are taken exactly as timely programs take them: `-w` workers
//! per process, `-n` processes, `-p` this process's index, `-h` hostfile. `-h` is therefore
//! not help; `--help` is.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// maxq: rocket-launch telemetry from Kafka to per-sensor window aggregates in InfluxDB.
#[derive(Debug, Parser)]
#[command(name = "maxq", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without a subcommand, `demo`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The demo's flags, when no subcommand is given.
    #[command(flatten)]
    pub demo: DemoArgs,
}

/// The subcommands.
// Parsed once per process: the size of the `run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read readings from Kafka, maintain window aggregates, write them to InfluxDB.
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Publish readings from JSON lines, a JSON array or a SpaceX webcast capture to Kafka.
    Produce(ProduceArgs),
    /// Generate synthetic launch telemetry as JSON lines, or publish it to Kafka.
    Generate(GenerateArgs),
    /// Run the pipeline on an in-process broker with real and generated launches (default).
    Demo(DemoArgs),
}

/// Where `produce` and `generate` publish.
#[derive(Debug, Args)]
#[command(next_help_heading = "Kafka")]
pub struct BrokerArgs {
    /// Bootstrap brokers, comma-separated `host:port`.
    #[arg(
        env = "MAXQ_BROKERS",
        long,
        value_name = "LIST",
        default_value = "localhost:9092"
    )]
    pub brokers: String,

    /// Partitions of the topic when it has to be created.
    #[arg(env = "MAXQ_PARTITIONS", long, value_name = "N", default_value_t = 8)]
    pub partitions: usize,

    /// Any librdkafka setting, e.g. `-X security.protocol=SASL_SSL`; repeatable, applied last.
    #[arg(env = "MAXQ_LIBRDKAFKA", hide_env_values = true, short = 'X', value_name = "KEY=VALUE", value_parser = key_value)]
    pub librdkafka: Vec<(String, String)>,
}

/// A topic to publish to, with its broker settings.
#[derive(Clone, Debug)]
pub struct PublishArgs {
    /// Bootstrap brokers.
    pub brokers: String,
    /// Topic.
    pub topic: String,
    /// Partitions when created.
    pub partitions: usize,
    /// Raw librdkafka settings.
    pub librdkafka: Vec<(String, String)>,
}

impl BrokerArgs {
    /// The publication target for `topic`.
    pub fn target(&self, topic: &str) -> PublishArgs {
        PublishArgs {
            brokers: self.brokers.clone(),
            topic: topic.to_owned(),
            partitions: self.partitions,
            librdkafka: self.librdkafka.clone(),
        }
    }
}

/// Input file formats of `produce`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// One reading object per line.
    Jsonl,
    /// One JSON array of reading objects.
    Json,
    /// SpaceX webcast capture: `{"time": s, "velocity": .., "altitude": ..}` per line.
    Spacex,
}

/// Flags of `maxq produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Input files; standard input when none.
    pub files: Vec<PathBuf>,

    /// Input format (detected when obvious).
    #[arg(env = "MAXQ_FORMAT", long, value_enum)]
    pub format: Option<InputFormat>,

    /// Topic to publish to (created with --partitions if absent).
    #[arg(
        env = "MAXQ_TOPIC",
        long,
        value_name = "NAME",
        default_value = "telemetry"
    )]
    pub topic: String,

    /// Broker settings.
    #[command(flatten)]
    pub broker: BrokerArgs,

    /// SpaceX format: the launch's T+0, RFC 3339 (CRS-11: 2017-06-03T21:07:38Z).
    #[arg(
        env = "MAXQ_LAUNCH_TIME",
        long,
        value_name = "TIME",
        default_value = "2017-06-03T21:07:38Z"
    )]
    pub launch_time: String,

    /// SpaceX format: sensor name prefix, e.g. `stage1` gives `stage1.velocity`.
    #[arg(
        env = "MAXQ_STAGE",
        long,
        value_name = "PREFIX",
        default_value = "stage1"
    )]
    pub stage: String,

    /// Readings per second (default: as fast as possible).
    #[arg(env = "MAXQ_RATE", long, value_name = "R", conflicts_with = "realtime")]
    pub rate: Option<f64>,

    /// At the recorded pace, --speed times faster: a reading recorded t after the first is
    /// sent t / speed after the start.
    #[arg(env = "MAXQ_REALTIME", long)]
    pub realtime: bool,

    /// With --realtime: how many times faster than recorded. With --rebase-now too, event
    /// time is compressed as much: a reading recorded t after the first is stamped start +
    /// t / speed, the moment it is sent, so no stamp runs ahead of the wall clock.
    #[arg(env = "MAXQ_SPEED", long, value_name = "X", default_value_t = 1.0)]
    pub speed: f64,

    /// Replay forever, each round shifted in time past the previous one.
    #[arg(env = "MAXQ_LOOP", long = "loop")]
    pub r#loop: bool,

    /// Stamp the first reading with the current time and the others at their recorded
    /// spacing after it (divided by --speed with --realtime). Without --realtime, readings
    /// go out at --rate or at once, so later stamps may lie ahead of the wall clock.
    #[arg(env = "MAXQ_REBASE_NOW", long)]
    pub rebase_now: bool,

    /// Count and skip malformed input lines instead of failing on the first.
    #[arg(env = "MAXQ_SKIP_BAD", long)]
    pub skip_bad: bool,
}

/// Flags of `maxq generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of sensors.
    #[arg(env = "MAXQ_SENSORS", long, value_name = "N", default_value_t = 100)]
    pub sensors: usize,

    /// Samples per second per sensor.
    #[arg(env = "MAXQ_HZ", long, value_name = "HZ", default_value_t = 10.0)]
    pub hz: f64,

    /// Flight time covered.
    #[arg(env = "MAXQ_DURATION", long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    pub duration: Duration,

    /// Seed: the same seed gives the same bytes.
    #[arg(env = "MAXQ_SEED", long, default_value_t = 1)]
    pub seed: u64,

    /// T+0, RFC 3339.
    #[arg(
        env = "MAXQ_LAUNCH_TIME",
        long,
        value_name = "TIME",
        default_value = "2026-11-25T12:00:00Z"
    )]
    pub launch_time: String,

    /// Write JSON lines here instead of standard output.
    #[arg(
        env = "MAXQ_OUTPUT",
        long,
        value_name = "FILE",
        conflicts_with = "topic"
    )]
    pub output: Option<PathBuf>,

    /// Publish to this Kafka topic instead of writing JSON lines.
    #[arg(env = "MAXQ_TOPIC", long, value_name = "NAME")]
    pub topic: Option<String>,

    /// With --topic: readings per second (default: as fast as possible).
    #[arg(env = "MAXQ_RATE", long, value_name = "R", requires = "topic")]
    pub rate: Option<f64>,

    /// Broker settings (with --topic).
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// Flags of `maxq demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Worker threads.
    #[arg(
        env = "MAXQ_WORKERS",
        short = 'w',
        long = "workers",
        value_name = "N",
        default_value_t = 2
    )]
    pub workers: usize,

    /// Output.
    #[command(flatten)]
    pub sink: SinkArgs,
}

/// Flags of `maxq run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,

    /// timely's cluster flags.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Kafka input.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Windows and lateness.
    #[command(flatten)]
    pub windows: WindowArgs,

    /// Output.
    #[command(flatten)]
    pub sink: SinkArgs,

    /// How often each worker logs progress (readings/s, late, malformed, watermark lag).
    #[arg(env = "MAXQ_PROGRESS_INTERVAL", long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub progress_interval: Duration,

    /// Serve the pipeline's own figures (lag, watermark delay, throughput, sink latency,
    /// commit age) for Prometheus on `http://HOST:PORT/metrics`, and `/healthz` for liveness
    /// and readiness probes. Off unless given, e.g. `0.0.0.0:9464`.
    #[arg(env = "MAXQ_METRICS_ADDR", long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,

    /// Also write the same figures to the InfluxDB the points go to this often, as
    /// measurement `maxq_pipeline` (tags process, worker, partition), so Grafana needs no
    /// Prometheus; and once more at the end. `0s`: never.
    #[arg(env = "MAXQ_METRICS_INTERVAL", long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub metrics_interval: Duration,

    /// After SIGINT/SIGTERM, exit non-zero if flushing has not finished this soon: what was
    /// not written is not committed, and a restart replays it. A second signal exits at once.
    #[arg(env = "MAXQ_SHUTDOWN_TIMEOUT", long, value_name = "DURATION", default_value = "4s", value_parser = duration)]
    pub shutdown_timeout: Duration,
}

/// timely's cluster flags.
#[derive(Debug, Args)]
#[command(next_help_heading = "Cluster (timely)")]
pub struct ClusterArgs {
    /// Worker threads per process.
    #[arg(
        env = "MAXQ_WORKERS",
        short = 'w',
        long = "workers",
        value_name = "N",
        default_value_t = 1
    )]
    pub workers: usize,

    /// Number of processes.
    #[arg(
        env = "MAXQ_PROCESSES",
        short = 'n',
        long = "processes",
        value_name = "N",
        default_value_t = 1
    )]
    pub processes: usize,

    /// Index of this process, in `0..processes` (default 0; with `--peers dns:…`, found).
    #[arg(
        env = "MAXQ_PROCESS",
        short = 'p',
        long = "process",
        value_name = "INDEX"
    )]
    pub process: Option<usize>,

    /// File with one `host:port` per line, process 0 first; default `localhost:2101+index`.
    #[arg(
        env = "MAXQ_HOSTFILE",
        short = 'h',
        long = "hostfile",
        value_name = "FILE"
    )]
    pub hostfile: Option<PathBuf>,

    /// The processes' addresses without a hostfile. `dns:NAME:PORT` (compose's `--scale`,
    /// a headless Service): resolve NAME until it answers with -n addresses, sort them, and
    /// take this process's index from the one that is its own. `HOST{}:PORT` (a
    /// StatefulSet, e.g. `pipeline-{}.pipeline:2101`): `{}` is each index, `-p` is this one.
    #[arg(
        env = "MAXQ_PEERS",
        long,
        value_name = "SPEC",
        conflicts_with = "hostfile"
    )]
    pub peers: Option<String>,

    /// With several processes: give up when the others are not all connected (or, with
    /// `--peers dns:…`, not all found) this soon.
    #[arg(env = "MAXQ_CONNECT_TIMEOUT", long, value_name = "DURATION", default_value = "15s", value_parser = duration)]
    pub connect_timeout: Duration,
}

/// Where the start offset comes from when the group has none committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StartFrom {
    /// The oldest message still in the partition.
    Earliest,
    /// Only messages produced after the start.
    Latest,
}

/// Kafka flags.
#[derive(Debug, Args)]
#[command(next_help_heading = "Kafka")]
pub struct KafkaArgs {
    /// Bootstrap brokers, comma-separated `host:port`.
    #[arg(
        env = "MAXQ_BROKERS",
        long,
        value_name = "LIST",
        default_value = "localhost:9092"
    )]
    pub brokers: String,

    /// Topic to read.
    #[arg(
        env = "MAXQ_TOPIC",
        long,
        value_name = "NAME",
        default_value = "telemetry"
    )]
    pub topic: String,

    /// Consumer group: offsets are committed under it (for restarts and lag tooling).
    #[arg(env = "MAXQ_GROUP", long, value_name = "NAME", default_value = "maxq")]
    pub group: String,

    /// Where to start when the group has no committed offset.
    #[arg(
        env = "MAXQ_START",
        long,
        value_name = "WHERE",
        value_enum,
        default_value = "earliest"
    )]
    pub start: StartFrom,

    /// Read every partition up to the end offset it had at start, finish every window,
    /// flush, commit and exit: batch and backfill mode.
    #[arg(env = "MAXQ_UNTIL_END", long)]
    pub until_end: bool,

    /// Forward malformed messages here, with their partition, offset and reason as headers.
    #[arg(env = "MAXQ_DEAD_LETTER_TOPIC", long, value_name = "TOPIC")]
    pub dead_letter_topic: Option<String>,

    /// Topic where maxq records, per partition, where a restart resumes (created if absent);
    /// beside it, `TOPIC.lease` holds the lease that keeps one instance per group and topic.
    #[arg(
        env = "MAXQ_RESUME_TOPIC",
        long,
        value_name = "TOPIC",
        default_value = "maxq.resume"
    )]
    pub resume_topic: String,

    /// Commit offsets this often (only what every worker's sink has durably written).
    #[arg(env = "MAXQ_COMMIT_INTERVAL", long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub commit_interval: Duration,

    /// Any librdkafka setting, e.g. `-X security.protocol=SASL_SSL`; repeatable, applied last.
    /// `-X sasl.password=env:KAFKA_PASSWORD` reads the value from that environment variable,
    /// keeping secrets off the command line.
    #[arg(env = "MAXQ_LIBRDKAFKA", hide_env_values = true, short = 'X', value_name = "KEY=VALUE", value_parser = key_value)]
    pub librdkafka: Vec<(String, String)>,
}

/// Which windows are written when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// After every epoch, every window whose aggregate changed (Grafana sees it fill in).
    Updates,
    /// Each window once, when the watermark passes its end (again only if an idle
    /// partition wakes and changes it).
    Final,
}

/// Window and lateness flags.
#[derive(Debug, Args)]
#[command(next_help_heading = "Windows")]
pub struct WindowArgs {
    /// Window length; windows are aligned to the Unix epoch.
    #[arg(env = "MAXQ_WINDOW", long, value_name = "DURATION", default_value = "1m", value_parser = event_duration)]
    pub window: Duration,

    /// Distance between window starts (default: the window, i.e. tumbling windows).
    #[arg(env = "MAXQ_SLIDE", long, value_name = "DURATION", value_parser = event_duration)]
    pub slide: Option<Duration>,

    /// Longer tumbling windows maintained from the same readings, each written to its own
    /// measurement named after its length (`telemetry_1h`, `telemetry_1d`); each a multiple
    /// of --window and of the shorter ones.
    #[arg(env = "MAXQ_ROLLUPS", long, value_name = "DURATIONS", value_delimiter = ',', value_parser = event_duration)]
    pub rollups: Vec<Duration>,

    /// A reading more than this older than the newest before it in its partition is late
    /// and dropped.
    #[arg(env = "MAXQ_LATENESS", long, value_name = "DURATION", default_value = "5s", value_parser = event_duration)]
    pub lateness: Duration,

    /// A partition caught up to its end with no data for this long stops holding the
    /// watermark back.
    #[arg(env = "MAXQ_IDLE_TIMEOUT", long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub idle_timeout: Duration,

    /// Event-time age after which a window's state is evicted even if an idle partition
    /// could still change it; such readings are then counted as late-expired.
    #[arg(env = "MAXQ_MAX_STATE_AGE", long, value_name = "DURATION", default_value = "1h", value_parser = event_duration)]
    pub max_state_age: Duration,

    /// A reading whose `ts` is more than this ahead of its Kafka record's timestamp is
    /// malformed (`future_ts`), so one bad clock cannot move event time for everyone; must
    /// be shorter than `--max-state-age`.
    #[arg(env = "MAXQ_MAX_FUTURE", long, value_name = "DURATION", default_value = "10m", value_parser = event_duration)]
    pub max_future: Duration,

    /// Which windows are written when.
    #[arg(
        env = "MAXQ_EMIT",
        long,
        value_name = "WHEN",
        value_enum,
        default_value = "updates"
    )]
    pub emit: Emit,

    /// Length of one epoch: readings of an epoch are aggregated and written together.
    #[arg(env = "MAXQ_EPOCH", long, value_name = "DURATION", default_value = "250ms", value_parser = duration)]
    pub epoch: Duration,
}

/// InfluxDB API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InfluxApi {
    /// InfluxDB 1.x `/write`: `--influx-db`, `--influx-rp`, `INFLUX_USERNAME`/`INFLUX_PASSWORD`.
    V1,
    /// InfluxDB 2.x `/api/v2/write`: `--influx-org`, `--influx-bucket`, `INFLUX_TOKEN`.
    V2,
}

/// Output flags.
#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub struct SinkArgs {
    /// InfluxDB base URL, e.g. `http://localhost:8086`; without it line protocol goes to
    /// files under `--output-dir`, one per worker.
    #[arg(env = "MAXQ_INFLUX_URL", long, value_name = "URL")]
    pub influx_url: Option<String>,

    /// InfluxDB write API.
    #[arg(
        env = "MAXQ_INFLUX_API",
        long,
        value_name = "VERSION",
        value_enum,
        default_value = "v2"
    )]
    pub influx_api: InfluxApi,

    /// v2 organization.
    #[arg(env = "MAXQ_INFLUX_ORG", long, value_name = "ORG")]
    pub influx_org: Option<String>,

    /// v2 bucket.
    #[arg(env = "MAXQ_INFLUX_BUCKET", long, value_name = "BUCKET")]
    pub influx_bucket: Option<String>,

    /// v1 database.
    #[arg(env = "MAXQ_INFLUX_DB", long, value_name = "DB")]
    pub influx_db: Option<String>,

    /// v1 retention policy (default: the database's default).
    #[arg(env = "MAXQ_INFLUX_RP", long, value_name = "RP")]
    pub influx_rp: Option<String>,

    /// Measurement the aggregates are written to.
    #[arg(
        env = "MAXQ_MEASUREMENT",
        long,
        value_name = "NAME",
        default_value = "telemetry_1m"
    )]
    pub measurement: String,

    /// Most points in one write request.
    #[arg(
        env = "MAXQ_BATCH_SIZE",
        long,
        value_name = "N",
        default_value_t = 5000
    )]
    pub batch_size: usize,

    /// Points waiting to be written (per process) above which reading Kafka pauses, so an
    /// InfluxDB outage costs bounded memory.
    #[arg(
        env = "MAXQ_SINK_BUFFER",
        long,
        value_name = "POINTS",
        default_value_t = 2_000_000
    )]
    pub sink_buffer: i64,

    /// Timeout of one write request (timeouts are retried with backoff).
    #[arg(env = "MAXQ_INFLUX_TIMEOUT", long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub influx_timeout: Duration,

    /// Directory of the line-protocol files written when there is no `--influx-url`.
    #[arg(
        env = "MAXQ_OUTPUT_DIR",
        long,
        value_name = "DIR",
        default_value = "maxq-out"
    )]
    pub output_dir: PathBuf,
}

/// Parses `500ms`, `5s`, `1m`, `1h`.
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. 500ms, 5s, 1m)"))
}

/// Parses a duration of event time: whole milliseconds (the unit of `ts`, so `1500us` is
/// refused rather than truncated), and no months or years, whose `M` is too easily meant
/// as minutes and whose length varies.
pub fn event_duration(text: &str) -> Result<Duration, String> {
    let parsed = duration(text)?;
    let units = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|unit| !unit.is_empty());
    if let Some(unit) = units
        .into_iter()
        .find(|u| matches!(*u, "M" | "month" | "months" | "y" | "year" | "years"))
    {
        return Err(format!(
            "`{unit}` means months or years; write minutes as `m` and long spans in days (e.g. 1m, 30d)"
        ));
    }
    if parsed.subsec_nanos() % 1_000_000 != 0 {
        return Err("not a whole number of milliseconds (the unit of reading times)".into());
    }
    Ok(parsed)
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!(
            "`{text}` is not KEY=VALUE (e.g. -X fetch.max.bytes=1048576)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_durations_are_whole_milliseconds_without_months() {
        assert_eq!(event_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(event_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(event_duration("2000us"), Ok(Duration::from_millis(2)));
        for (text, says) in [
            ("1500us", "whole number of milliseconds"),
            ("1M", "`M` means months"),
            ("1month", "`month` means months"),
            ("1y", "`y` means months or years"),
            ("soon", "write e.g."),
        ] {
            let error = event_duration(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
