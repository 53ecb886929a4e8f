//! What can be checked of InfluxDB once, before the run.

use super::writer::without_url;
use super::WriteError;
use crate::config::{SinkConfig, SinkTarget};
use crate::targets;

/// Checks once, before the run, what can be checked of the InfluxDB at `config`'s URL: that
/// it answers `/ping` (while it does not, a warning: writes are retried until it does), and
/// that a 1.x server is not asked for the v2 API it lacks.
pub fn check_server(config: &SinkConfig) -> Result<(), WriteError> {
    let (url, v2) = match &config.target {
        SinkTarget::Files(_) => return Ok(()),
        SinkTarget::V1 { url, .. } => (url, false),
        SinkTarget::V2 { url, .. } => (url, true),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| WriteError::Final(format!("starting the HTTP runtime: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(config.timeout.min(std::time::Duration::from_secs(5)))
        .build()
        .map_err(|e| WriteError::Final(format!("building the HTTP client: {e}")))?;
    let answer = runtime.block_on(async { client.get(format!("{url}/ping")).send().await });
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(target: targets::SINK,
                "InfluxDB at --influx-url {url} does not answer /ping ({}): starting anyway, writes are retried until it does",
                without_url(&e)
            );
            return Ok(());
        }
    };
    let version = response
        .headers()
        .get("X-Influxdb-Version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if v2 && version.starts_with("1.") {
        return Err(WriteError::Final(format!(
            "--influx-url {url} is InfluxDB {version}, which has no v2 write API: try --influx-api v1 with --influx-db <database>"
        )));
    }
    Ok(())
}
