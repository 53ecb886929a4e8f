//! Writers: where a batch of line protocol goes. Each call writes one request's body and
//! says whether a failure is worth retrying; the operator's writer thread does the retrying.

use flate2::write::GzEncoder;
use flate2::Compression;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use crate::config::{SinkConfig, SinkTarget};

/// A failed write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Timeouts, connection failures, 5xx, 429: try again.
    #[error("{0}")]
    Retriable(String),
    /// InfluxDB refused points of the request (a fact about those points, not about the
    /// configuration): the others may have been written.
    #[error("{message}")]
    Refused {
        /// Why, as far as InfluxDB's answer tells.
        reason: Refusal,
        /// InfluxDB's answer.
        message: String,
    },
    /// Bad credentials, missing database or bucket: stop and say what to fix.
    #[error("{0}")]
    Final(String),
}

/// Why InfluxDB refused a point. The names are the per-reason counter labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Older than the retention policy keeps.
    BeyondRetention,
    /// A field of the measurement already has another type.
    FieldTypeConflict,
    /// The line could not be parsed.
    Unparsable,
    /// The request was too large (HTTP 413).
    TooLarge,
    /// Anything else InfluxDB said about the points (v2's 422).
    Other,
}

impl Refusal {
    /// Every reason, in counter order.
    pub const ALL: [Refusal; 5] = [
        Refusal::BeyondRetention,
        Refusal::FieldTypeConflict,
        Refusal::Unparsable,
        Refusal::TooLarge,
        Refusal::Other,
    ];

    /// The reason's label, as used in logs, counters and the dead-letter header.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BeyondRetention => "beyond_retention",
            Refusal::FieldTypeConflict => "field_type_conflict",
            Refusal::Unparsable => "unparsable",
            Refusal::TooLarge => "too_large",
            Refusal::Other => "refused",
        }
    }

    /// The reason an answer gives, if it refuses points rather than the request: 1.x
    /// answers 400 `partial write: …` (the other points were written) or `unable to
    /// parse`, 2.x 422, or 400 for lines it cannot parse.
    fn of(status: u16, text: &str) -> Option<Refusal> {
        let text = text.to_ascii_lowercase();
        let reason = if text.contains("beyond retention") {
            Refusal::BeyondRetention
        } else if text.contains("type conflict") {
            Refusal::FieldTypeConflict
        } else if text.contains("unable to parse") || text.contains("failed to parse") {
            Refusal::Unparsable
        } else {
            Refusal::Other
        };
        match status {
            413 => Some(Refusal::TooLarge),
            422 => Some(reason),
            400 if reason != Refusal::Other || text.contains("partial write") => Some(reason),
            _ => None,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One worker's connection to its destination.
pub enum Writer {
    /// Appends line protocol to a file.
    File(File),
    /// InfluxDB 1.x `/write`.
    V1 {
        /// Tokio runtime driving the client.
        runtime: tokio::runtime::Runtime,
        /// HTTP client.
        client: reqwest::Client,
        /// The sink settings.
        config: SinkConfig,
    },
    /// InfluxDB 2.x `/api/v2/write`, through the influxdb2 client.
    V2 {
        /// Tokio runtime driving the client.
        runtime: tokio::runtime::Runtime,
        /// The influxdb2 client.
        client: influxdb2::Client,
        /// The sink settings.
        config: SinkConfig,
    },
}

/// A body of line protocol as the influxdb2 client wants it.
struct LineProtocol(String);

impl influxdb2::models::WriteDataPoint for LineProtocol {
    fn write_data_point_to<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        w.write_all(self.0.as_bytes())
    }
}

impl Writer {
    /// Connects worker `index` to `config`'s destination.
    pub fn open(config: &SinkConfig, index: usize) -> Result<Writer, WriteError> {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| WriteError::Final(format!("starting the HTTP runtime: {e}")))
        };
        let http = || {
            reqwest::Client::builder()
                .timeout(config.timeout)
                .build()
                .map_err(|e| WriteError::Final(format!("building the HTTP client: {e}")))
        };
        match &config.target {
            SinkTarget::Files(dir) => {
                let path: PathBuf = dir.join(format!("worker-{index}.lp"));
                std::fs::create_dir_all(dir)
                    .and_then(|_| OpenOptions::new().create(true).append(true).open(&path))
                    .map(Writer::File)
                    .map_err(|e| {
                        WriteError::Final(format!(
                            "--output-dir: cannot write {}: {e}",
                            path.display()
                        ))
                    })
            }
            SinkTarget::V1 { .. } => Ok(Writer::V1 {
                runtime: runtime()?,
                client: http()?,
                config: config.clone(),
            }),
            SinkTarget::V2 {
                url, org, token, ..
            } => {
                let builder = reqwest::Client::builder().timeout(config.timeout);
                let client =
                    influxdb2::ClientBuilder::with_builder(builder, url, org, token.expose())
                        .gzip(true)
                        .build()
                        .map_err(|e| {
                            WriteError::Final(format!("building the InfluxDB client: {e}"))
                        })?;
                Ok(Writer::V2 {
                    runtime: runtime()?,
                    client,
                    config: config.clone(),
                })
            }
        }
    }

    /// Writes one body of line protocol (millisecond timestamps).
    pub fn write(&mut self, body: &str) -> Result<(), WriteError> {
        match self {
            Writer::File(file) => file
                .write_all(body.as_bytes())
                .and_then(|_| file.flush())
                .map_err(|e| WriteError::Retriable(format!("writing the output file: {e}"))),
            Writer::V1 {
                runtime,
                client,
                config,
            } => runtime.block_on(write_v1(client, config, body)),
            Writer::V2 {
                runtime,
                client,
                config,
            } => runtime.block_on(write_v2(client, config, body)),
        }
    }
}

async fn write_v1(
    client: &reqwest::Client,
    config: &SinkConfig,
    body: &str,
) -> Result<(), WriteError> {
    let SinkTarget::V1 {
        url,
        db,
        rp,
        credentials,
    } = &config.target
    else {
        unreachable!("a v1 writer has a v1 target")
    };
    let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    gz.write_all(body.as_bytes())
        .map_err(|e| WriteError::Final(format!("gzip: {e}")))?;
    let compressed = gz
        .finish()
        .map_err(|e| WriteError::Final(format!("gzip: {e}")))?;
    let mut query = vec![("db", db.as_str()), ("precision", "ms")];
    if let Some(rp) = rp {
        query.push(("rp", rp.as_str()));
    }
    let mut request = client
        .post(format!("{url}/write"))
        .query(&query)
        .header("Content-Encoding", "gzip")
        .body(compressed);
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password.expose()));
    }
    let response = request.send().await.map_err(|e| {
        WriteError::Retriable(format!(
            "InfluxDB at --influx-url {url}: {}",
            without_url(&e)
        ))
    })?;
    let status = response.status().as_u16();
    if status == 204 || status == 200 {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(classify(status, &text, url, || match status {
        401 | 403 => "check INFLUX_USERNAME and INFLUX_PASSWORD".to_owned(),
        404 if text.contains("database not found") => {
            format!("database {db:?} does not exist: create it (CREATE DATABASE \"{db}\") or fix --influx-db")
        }
        404 => "is --influx-url an InfluxDB 1.x server? For 2.x use --influx-api v2".to_owned(),
        _ => "InfluxDB refused the points".to_owned(),
    }))
}

async fn write_v2(
    client: &influxdb2::Client,
    config: &SinkConfig,
    body: &str,
) -> Result<(), WriteError> {
    let SinkTarget::V2 { url, bucket, .. } = &config.target else {
        unreachable!("a v2 writer has a v2 target")
    };
    let points = futures::stream::iter([LineProtocol(body.to_owned())]);
    let result = client
        .write_with_precision(
            bucket,
            points,
            influxdb2::api::write::TimestampPrecision::Milliseconds,
        )
        .await;
    match result {
        Ok(()) => Ok(()),
        Err(influxdb2::RequestError::Http { status, text }) => {
            Err(classify(status.as_u16(), &text, url, || {
                match status.as_u16() {
                    401 | 403 => format!(
                        "set INFLUX_TOKEN to a token that may write to --influx-bucket {bucket}"
                    ),
                    404 => "check --influx-org and --influx-bucket (not found)".to_owned(),
                    _ => "InfluxDB refused the points".to_owned(),
                }
            }))
        }
        Err(influxdb2::RequestError::ReqwestProcessing { source }) => Err(WriteError::Retriable(
            format!("InfluxDB at --influx-url {url}: {}", without_url(&source)),
        )),
        Err(e) => Err(WriteError::Retriable(format!(
            "InfluxDB at --influx-url {url}: {e}"
        ))),
    }
}

/// reqwest's message without the URL it may carry (the query holds no secret here, but the
/// flag is named separately and the text stays short).
pub(super) fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}

fn classify(status: u16, text: &str, url: &str, fix: impl FnOnce() -> String) -> WriteError {
    let text: String = text.trim().chars().take(300).collect();
    if let Some(reason) = Refusal::of(status, &text) {
        return WriteError::Refused {
            reason,
            message: format!("InfluxDB at --influx-url {url} answered HTTP {status} ({text})"),
        };
    }
    let message = format!(
        "InfluxDB at --influx-url {url} answered HTTP {status} ({text}): {}",
        fix()
    );
    if super::retry::retriable_status(status) {
        WriteError::Retriable(message)
    } else {
        WriteError::Final(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_about_points_are_refusals_and_the_rest_stay_fatal() {
        let cases = [
            (
                400,
                r#"{"error":"partial write: points beyond retention policy dropped=1"}"#,
                Some(Refusal::BeyondRetention),
            ),
            (
                400,
                r#"{"error":"partial write: field type conflict: input field \"count\" on measurement \"m\" is type integer, already exists as type float dropped=1"}"#,
                Some(Refusal::FieldTypeConflict),
            ),
            (
                400,
                r#"{"error":"unable to parse 'm x=inf 1': invalid number"}"#,
                Some(Refusal::Unparsable),
            ),
            (
                400,
                r#"{"error":"partial write: max-values-per-tag limit exceeded"}"#,
                Some(Refusal::Other),
            ),
            (
                422,
                r#"{"code":"unprocessable entity","message":"failure writing points to database: partial write: points beyond retention policy dropped=1"}"#,
                Some(Refusal::BeyondRetention),
            ),
            (
                422,
                r#"{"code":"unprocessable entity"}"#,
                Some(Refusal::Other),
            ),
            (413, "", Some(Refusal::TooLarge)),
            (400, r#"{"error":"database name required"}"#, None),
            (401, r#"{"error":"authorization failed"}"#, None),
            (404, r#"{"error":"database not found: \"x\""}"#, None),
        ];
        for (status, text, expected) in cases {
            assert_eq!(Refusal::of(status, text), expected, "{status} {text}");
        }
    }
}
