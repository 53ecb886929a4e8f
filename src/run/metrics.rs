//! The pipeline's figures for the outside: Prometheus' endpoint (`--metrics-addr`) and the
//! export to InfluxDB (`--metrics-interval`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

use super::background::Background;
use crate::config::{SinkConfig, SinkTarget};
use crate::pipeline::control::Control;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::sink::Writer;
use crate::targets;

/// The Prometheus endpoint's thread.
pub struct Endpoint {
    server: Arc<tiny_http::Server>,
    thread: std::thread::JoinHandle<()>,
}

/// What `/healthz` answers: 200 while the run goes on, 503 once it has failed.
fn health(control: &Control) -> (u16, String) {
    match control.fatal() {
        None => (200, "ok\n".to_owned()),
        Some(fatal) => (503, format!("failed: {fatal}\n")),
    }
}

/// Serves `GET /metrics` (OpenMetrics text) and `GET /healthz` on `addr`.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    control: Arc<Control>,
) -> anyhow::Result<Endpoint> {
    let server = tiny_http::Server::http(addr).map_err(|e| {
        anyhow::anyhow!("--metrics-addr {addr}: cannot listen there ({e}); choose a free port or leave the flag out")
    })?;
    let server = Arc::new(server);
    info!(target: targets::RUN, %addr, "serving /metrics and /healthz");
    let serving = server.clone();
    let thread = std::thread::Builder::new()
        .name("maxq-metrics".to_owned())
        .spawn(move || {
            for request in serving.incoming_requests() {
                let path = request.url().split('?').next().unwrap_or_default();
                let (status, body, content_type) = match path {
                    "/metrics" => (
                        200,
                        metrics.prometheus_text(),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                    "/healthz" => {
                        let (status, body) = health(&control);
                        (status, body, "text/plain; charset=utf-8")
                    }
                    _ => (
                        404,
                        "not found: try /metrics or /healthz\n".to_owned(),
                        "text/plain; charset=utf-8",
                    ),
                };
                let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                    .expect("a valid header");
                let response = tiny_http::Response::from_string(body)
                    .with_status_code(status)
                    .with_header(header);
                let _ = request.respond(response);
            }
        })
        .expect("spawning a thread");
    Ok(Endpoint { server, thread })
}

impl Endpoint {
    /// Stops serving.
    pub fn finish(self) {
        self.server.unblock();
        let _ = self.thread.join();
    }
}

/// Writes the figures to the InfluxDB of `sink` every `interval`, and once more when
/// finished. Nothing is exported when the points go to files. A failed write is logged and
/// dropped: the next one carries every figure again.
pub fn export(
    sink: &SinkConfig,
    interval: Duration,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Option<Background>> {
    if matches!(sink.target, SinkTarget::Files(_)) {
        return Ok(None);
    }
    let mut writer = Writer::open(sink, 0).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(Background::every(interval, move || {
        let body = metrics.line_protocol(chrono::Utc::now().timestamp_millis());
        if let Err(e) = writer.write(&body) {
            if metrics.may_warn() {
                warn!(target: targets::RUN, "writing the pipeline's own figures (maxq_pipeline) failed, trying again in {}: {e}", humantime::format_duration(interval));
            }
        }
    })))
}
