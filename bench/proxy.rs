//! A loopback HTTP proxy in front of InfluxDB's `/write`: it forwards every request as is
//! and, when InfluxDB has answered 2xx, records which counts of the probe series the body
//! carried and when. That instant is the write acknowledgement a reading's latency ends at.

use flate2::read::GzDecoder;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One acknowledged write of a probe window: its start and the count it held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// When maxq's write request had arrived at the proxy.
    pub requested: Instant,
    /// When InfluxDB's 2xx answer had arrived.
    pub at: Instant,
    /// The window start, ms.
    pub start_ms: i64,
    /// The window's count in that write.
    pub count: u64,
}

/// The running proxy; it lives as long as the benchmark process.
pub struct WriteProxy {
    /// Its base URL, for `--influx-url`.
    pub url: String,
    acks: Arc<Mutex<Vec<Ack>>>,
}

impl WriteProxy {
    /// Listens on a free loopback port and forwards to `upstream` (an `http://` base URL);
    /// `probe` is the beginning of the probe series' lines, `measurement,tags `.
    pub fn start(upstream: &str, probe: String) -> anyhow::Result<WriteProxy> {
        let url = reqwest::Url::parse(upstream)?;
        let upstream = format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port_or_known_default().unwrap_or(80)
        );
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let acks = Arc::new(Mutex::new(Vec::new()));
        let recorded = acks.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, probe, acks) = (upstream.clone(), probe.clone(), recorded.clone());
                std::thread::spawn(move || {
                    if let Err(e) = serve(client, &upstream, &probe, &acks) {
                        tracing::warn!("bench write proxy: {e}");
                    }
                });
            }
        });
        Ok(WriteProxy { url, acks })
    }

    /// Every acknowledgement recorded so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// Forwards the requests of one client connection, one upstream connection each.
fn serve(
    client: TcpStream,
    upstream: &str,
    probe: &str,
    acks: &Mutex<Vec<Ack>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    client.set_nodelay(true)?;
    loop {
        let mut head = Vec::new();
        let (mut length, mut gzip) = (0usize, false);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            } else if lower.starts_with("content-encoding:") {
                gzip = lower.contains("gzip");
            } else if lower.starts_with("connection:") {
                continue;
            }
            head.extend_from_slice(line.as_bytes());
        }
        let requested = Instant::now();
        head.extend_from_slice(b"Connection: close\r\n\r\n");
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let mut up = TcpStream::connect(upstream)?;
        up.set_nodelay(true)?;
        head.extend_from_slice(&body);
        up.write_all(&head)?;
        let mut response = Vec::new();
        up.read_to_end(&mut response)?;
        let at = Instant::now();
        if response.starts_with(b"HTTP/1.1 2") || response.starts_with(b"HTTP/1.0 2") {
            let text = if gzip {
                let mut text = String::new();
                GzDecoder::new(&body[..]).read_to_string(&mut text)?;
                text
            } else {
                String::from_utf8_lossy(&body).into_owned()
            };
            let found: Vec<Ack> = text
                .lines()
                .filter_map(|l| l.strip_prefix(probe))
                .filter_map(|rest| probe_point(rest, requested, at))
                .collect();
            if let Ok(mut acks) = acks.lock() {
                acks.extend(found);
            }
        }
        client.write_all(&response)?;
    }
}

/// The count and window start of a probe line's fields and timestamp (`count=5i,.. 1700`).
fn probe_point(fields_and_time: &str, requested: Instant, at: Instant) -> Option<Ack> {
    let (fields, time) = fields_and_time.rsplit_once(' ')?;
    let count = fields
        .split(',')
        .find_map(|f| f.strip_prefix("count="))?
        .strip_suffix('i')?
        .parse()
        .ok()?;
    Some(Ack {
        requested,
        at,
        start_ms: time.trim().parse().ok()?,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_point_reads_count_and_time() {
        let at = Instant::now();
        let ack = probe_point(
            "count=12i,max=3,mean=2,min=1,stddev=0.5 1795564800000",
            at,
            at,
        );
        assert_eq!(
            ack,
            Some(Ack {
                requested: at,
                at,
                start_ms: 1_795_564_800_000,
                count: 12
            })
        );
        assert_eq!(probe_point("max=3 1795564800000", at, at), None);
    }
}
