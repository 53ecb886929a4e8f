//! `maxq run`'s validated configuration: the flags checked together, secrets read from the
//! environment, durations in the units the dataflow uses.

mod cluster;
mod levels;

pub use cluster::timely_config;
pub use levels::{length_name, Level, Levels};

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{self, InfluxApi, RunArgs, SinkArgs};
use crate::line_protocol::escape_measurement;
use crate::pipeline::window::Windows;

/// A flag combination that cannot run; the message names the flag and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn invalid<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(message.into()))
}

/// A secret read from the environment; never printed.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    fn from_env(name: &str) -> Option<Secret> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret)
    }

    /// The secret's text, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Which windows are written when (`--emit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitMode {
    /// Every window whose aggregate changed, after every epoch.
    Updates,
    /// Each window once, when final.
    Final,
}

/// Where a partition with neither a resume point nor a committed offset starts (`--start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest message still in the partition.
    Earliest,
    /// Only messages produced after the start.
    Latest,
}

/// Where results go.
#[derive(Clone, Debug)]
pub enum SinkTarget {
    /// Line-protocol files, one per worker, in this directory.
    Files(PathBuf),
    /// InfluxDB 1.x `/write`.
    V1 {
        /// Base URL.
        url: String,
        /// Database.
        db: String,
        /// Retention policy.
        rp: Option<String>,
        /// `INFLUX_USERNAME` and `INFLUX_PASSWORD`.
        credentials: Option<(String, Secret)>,
    },
    /// InfluxDB 2.x `/api/v2/write` through the influxdb2 client.
    V2 {
        /// Base URL.
        url: String,
        /// Organization.
        org: String,
        /// Bucket.
        bucket: String,
        /// `INFLUX_TOKEN`.
        token: Secret,
    },
}

/// Sink settings.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    /// Destination.
    pub target: SinkTarget,
    /// Measurement of each level (by [`crate::key::WindowKey::level`]), already escaped for
    /// line protocol; empty for a level never written.
    pub measurements: Vec<String>,
    /// Most points per request.
    pub batch_size: usize,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Points waiting to be written above which the sources pause.
    pub buffer_points: i64,
}

/// Where Kafka is and how to talk to it: what every client needs.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Bootstrap brokers.
    pub brokers: String,
    /// Raw librdkafka settings, applied last.
    pub librdkafka: Vec<(String, String)>,
}

/// `maxq run`'s Kafka settings.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// The brokers and client settings.
    pub connection: Connection,
    /// Input topic.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// Start without committed offsets.
    pub start: StartAt,
    /// Stop at the end offsets seen at start.
    pub until_end: bool,
    /// Dead-letter topic.
    pub dead_letter_topic: Option<String>,
    /// Resume-log topic.
    pub resume_topic: String,
    /// Commit period.
    pub commit_interval: Duration,
}

/// Everything `maxq run` needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Kafka input.
    pub kafka: KafkaConfig,
    /// Window shape of the first level.
    pub windows: Windows,
    /// The first level and the roll-ups.
    pub levels: Levels,
    /// Lateness bound, ms.
    pub lateness_ms: i64,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// State age bound, ms of event time.
    pub max_state_age_ms: i64,
    /// How far a reading's `ts` may be ahead of its record's timestamp, ms.
    pub max_future_ms: i64,
    /// Emission mode.
    pub emit: EmitMode,
    /// Epoch length.
    pub epoch: Duration,
    /// Output.
    pub sink: SinkConfig,
    /// Progress log period.
    pub progress_interval: Duration,
    /// Where the Prometheus endpoint listens.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How often the figures are written to InfluxDB; `None`: never.
    pub metrics_interval: Option<Duration>,
    /// Bound on flushing after a stop signal.
    pub shutdown_timeout: Duration,
}

/// `--metrics-addr`: a `HOST:PORT` that resolves.
fn metrics_addr(spec: &str) -> Result<std::net::SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    match spec.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => Ok(addr),
        _ => invalid(format!(
            "--metrics-addr {spec:?} is not a HOST:PORT this machine can listen on; e.g. --metrics-addr 0.0.0.0:9464"
        )),
    }
}

fn millis(flag: &str, d: Duration) -> Result<i64, ConfigError> {
    match i64::try_from(d.as_millis()) {
        Ok(ms) => Ok(ms),
        Err(_) => invalid(format!("{flag} is too long")),
    }
}

impl RunConfig {
    /// Checks the flags and reads the secrets.
    pub fn from_args(args: &RunArgs) -> Result<RunConfig, ConfigError> {
        let w = &args.windows;
        let window_ms = millis("--window", w.window)?;
        let slide_ms = match w.slide {
            Some(slide) => millis("--slide", slide)?,
            None => window_ms,
        };
        if window_ms <= 0 || slide_ms <= 0 {
            return invalid("--window and --slide must be at least 1ms (e.g. --window 1m)");
        }
        if slide_ms > window_ms {
            return invalid(format!(
                "--slide ({slide_ms}ms) is longer than --window ({window_ms}ms): readings between windows would be lost; use --slide <= --window"
            ));
        }
        if w.epoch.is_zero() {
            return invalid("--epoch must be positive (e.g. --epoch 250ms)");
        }
        let k = &args.kafka;
        if k.topic.is_empty() {
            return invalid("--topic is empty: name the topic to read");
        }
        if k.dead_letter_topic.as_deref() == Some(k.topic.as_str()) {
            return invalid("--dead-letter-topic must differ from --topic");
        }
        if k.resume_topic == k.topic {
            return invalid(format!(
                "--resume-topic must differ from --topic: resume records in {:?} would come back as malformed readings; keep the default (maxq.resume) or name a topic of maxq's own",
                k.topic
            ));
        }
        if k.dead_letter_topic.as_deref() == Some(k.resume_topic.as_str()) {
            return invalid("--dead-letter-topic must differ from --resume-topic");
        }
        let max_state_age_ms = millis("--max-state-age", w.max_state_age)?;
        let max_future_ms = millis("--max-future", w.max_future)?;
        if max_future_ms >= max_state_age_ms {
            return invalid(format!(
                "--max-future ({}) must be shorter than --max-state-age ({}): a reading that far ahead could evict the open windows of every quiet partition",
                humantime::format_duration(w.max_future),
                humantime::format_duration(w.max_state_age)
            ));
        }
        let windows = Windows {
            window_ms,
            slide_ms,
        };
        let levels = Levels::new(windows, &args.sink.measurement, &w.rollups)?;
        let mut sink = SinkConfig::from_args(&args.sink)?;
        sink.measurements = levels
            .all
            .iter()
            .map(|l| l.measurement.clone().unwrap_or_default())
            .collect();
        Ok(RunConfig {
            kafka: KafkaConfig {
                connection: Connection {
                    brokers: k.brokers.clone(),
                    librdkafka: resolve_env_values(&k.librdkafka)?,
                },
                topic: k.topic.clone(),
                group: k.group.clone(),
                start: match k.start {
                    cli::StartFrom::Earliest => StartAt::Earliest,
                    cli::StartFrom::Latest => StartAt::Latest,
                },
                until_end: k.until_end,
                dead_letter_topic: k.dead_letter_topic.clone(),
                resume_topic: k.resume_topic.clone(),
                commit_interval: k.commit_interval,
            },
            windows,
            levels,
            lateness_ms: millis("--lateness", w.lateness)?,
            idle_timeout: w.idle_timeout,
            max_state_age_ms,
            max_future_ms,
            emit: match w.emit {
                cli::Emit::Updates => EmitMode::Updates,
                cli::Emit::Final => EmitMode::Final,
            },
            epoch: w.epoch,
            sink,
            progress_interval: args.progress_interval,
            metrics_addr: args.metrics_addr.as_deref().map(metrics_addr).transpose()?,
            metrics_interval: (!args.metrics_interval.is_zero()).then_some(args.metrics_interval),
            shutdown_timeout: args.shutdown_timeout,
        })
    }
}

impl SinkConfig {
    /// Checks the output flags and reads the secrets.
    pub fn from_args(s: &SinkArgs) -> Result<SinkConfig, ConfigError> {
        let mut measurement = String::new();
        if s.measurement.is_empty() || escape_measurement(&s.measurement, &mut measurement).is_err()
        {
            return invalid("--measurement must be non-empty, without control characters or a trailing backslash");
        }
        if s.batch_size == 0 {
            return invalid("--batch-size must be at least 1");
        }
        if s.sink_buffer < 1 {
            return invalid("--sink-buffer must be at least 1 (points)");
        }
        let target = match (&s.influx_url, s.influx_api) {
            (None, _) => SinkTarget::Files(s.output_dir.clone()),
            (Some(url), api) => {
                match reqwest::Url::parse(url) {
                    Err(e) => {
                        return invalid(format!(
                            "--influx-url {url:?} is not a URL ({e}); write e.g. http://localhost:8086"
                        ))
                    }
                    Ok(parsed)
                        if !matches!(parsed.scheme(), "http" | "https")
                            || parsed.host_str().is_none() =>
                    {
                        return invalid(format!(
                            "--influx-url {url:?} does not start with http:// or https://; write e.g. http://{}",
                            url.trim_start_matches('/')
                        ))
                    }
                    Ok(_) => {}
                }
                let url = url.trim_end_matches('/').to_owned();
                match api {
                    InfluxApi::V1 => SinkTarget::V1 {
                        url,
                        db: match &s.influx_db {
                            Some(db) if !db.is_empty() => db.clone(),
                            _ => {
                                return invalid(
                                    "--influx-api v1 needs --influx-db (the database to write to)",
                                )
                            }
                        },
                        rp: s.influx_rp.clone(),
                        credentials: std::env::var("INFLUX_USERNAME")
                            .ok()
                            .filter(|u| !u.is_empty())
                            .map(|u| (u, Secret::from_env("INFLUX_PASSWORD").unwrap_or_default())),
                    },
                    InfluxApi::V2 => SinkTarget::V2 {
                        url,
                        org: s.influx_org.clone().ok_or_else(|| {
                            ConfigError("--influx-api v2 needs --influx-org".into())
                        })?,
                        bucket: s.influx_bucket.clone().ok_or_else(|| {
                            ConfigError("--influx-api v2 needs --influx-bucket".into())
                        })?,
                        token: Secret::from_env("INFLUX_TOKEN").unwrap_or_default(),
                    },
                }
            }
        };
        Ok(SinkConfig {
            target,
            measurements: vec![measurement],
            batch_size: s.batch_size,
            timeout: s.influx_timeout,
            buffer_points: s.sink_buffer,
        })
    }
}

/// `-X key=env:NAME` takes the value from the environment variable `NAME`, so that secrets
/// (`sasl.password`, `ssl.key.password`) stay out of the command line.
fn resolve_env_values(pairs: &[(String, String)]) -> Result<Vec<(String, String)>, ConfigError> {
    pairs
        .iter()
        .map(|(key, value)| match value.strip_prefix("env:") {
            Some(name) => match std::env::var(name) {
                Ok(secret) => Ok((key.clone(), secret)),
                Err(_) => invalid(format!(
                    "-X {key}=env:{name}: the environment variable {name} is not set"
                )),
            },
            None => Ok((key.clone(), value.clone())),
        })
        .collect()
}

#[cfg(test)]
mod tests;
