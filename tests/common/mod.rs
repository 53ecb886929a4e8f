//! Test harness: the real broker and InfluxDB from `cluster/services.sh`, a seeded telemetry
//! stream, and an independent reference computation of the expected points.
#![allow(dead_code)]

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::process::{Command, Output};

/// A service address from the environment that `cluster/test.sh` sets.
pub fn service(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with cluster/test.sh, which starts tansu, InfluxDB and VictoriaMetrics")
    })
}

pub fn brokers() -> String {
    service("MAXQ_TEST_BROKERS")
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

pub fn create_topic(name: &str, partitions: i32) {
    create_topic_at(&brokers(), name, partitions);
}

/// Creates a topic on the broker at `brokers`.
pub fn create_topic_at(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results =
        futures::executor::block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// A plain consumer of `topic` from its first message, in a group of its own.
pub fn reader(topic: &str) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// The value of header `key` of a message (a dead letter's origin or reason).
pub fn header(message: &rdkafka::message::BorrowedMessage<'_>, key: &str) -> String {
    use rdkafka::message::Headers;
    use rdkafka::Message as _;
    let headers = message.headers().expect("dead letters carry headers");
    let found = headers.iter().find(|h| h.key == key).expect(key);
    String::from_utf8(found.value.unwrap().to_vec()).unwrap()
}

/// One message as produced: its partition and payload.
#[derive(Clone, Debug)]
pub struct Message {
    pub partition: i32,
    pub key: String,
    pub payload: String,
}

/// Produces `messages` in order, each to its partition, and waits for every delivery.
pub fn produce(topic: &str, messages: &[Message]) {
    produce_at(&brokers(), topic, messages);
}

/// Produces to the broker at `brokers`.
pub fn produce_at(brokers: &str, topic: &str, messages: &[Message]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .create()
        .unwrap();
    for chunk in messages.chunks(5_000) {
        let deliveries: Vec<_> = chunk
            .iter()
            .map(|m| {
                let record = FutureRecord::to(topic)
                    .partition(m.partition)
                    .key(&m.key)
                    .payload(&m.payload);
                producer.send_result(record).map_err(|(e, _)| e).unwrap()
            })
            .collect();
        for d in deliveries {
            futures::executor::block_on(d)
                .unwrap()
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
}

/// Deterministic pseudo-random numbers (xorshift64*), independent of the code under test.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Sensor names that test every escaping rule, then plain ones.
pub fn sensor_names(count: usize) -> Vec<String> {
    let awkward = [
        r#"temp sensor,1="a\b""#,
        "Température",
        "a=b",
        "stage1.velocity",
        "Ω space,comma",
    ];
    awkward
        .iter()
        .map(|s| s.to_string())
        .chain((0..).map(|i| format!("sensor_{i:04}")))
        .take(count)
        .collect()
}

/// Base time of generated streams: 2026-11-25T00:00:00Z.
pub const BASE_MS: i64 = 1_795_564_800_000;

/// A telemetry stream over `partitions` partitions: every sensor lives in one partition
/// (as when keyed), time advances ~`step_ms` per reading per partition, about 10 % of
/// readings arrive out of order within 4 s and about 2 % more than 8 s late (beyond the
/// default 5 s lateness), and `malformed_every`-th messages are malformed.
pub fn stream(
    seed: u64,
    partitions: i32,
    sensors: usize,
    per_partition: usize,
    step_ms: i64,
    malformed_every: usize,
) -> Vec<Message> {
    let mut rng = Rng::new(seed);
    let names = sensor_names(sensors);
    let mut out = Vec::new();
    for p in 0..partitions {
        let own: Vec<&String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as i32) % partitions == p)
            .map(|(_, n)| n)
            .collect();
        if own.is_empty() {
            continue;
        }
        let mut clock = BASE_MS + p as i64 * 1_000;
        for i in 0..per_partition {
            clock += rng.below(2 * step_ms as u64 + 1) as i64;
            let sensor = own[rng.below(own.len() as u64) as usize];
            let roll = rng.below(100);
            let ts = if roll < 10 {
                clock - rng.below(4_000) as i64
            } else if roll < 12 {
                clock - 8_000 - rng.below(20_000) as i64
            } else {
                clock
            };
            let value = (rng.below(2_000_000) as f64 - 1_000_000.0) / 1000.0;
            let payload = if malformed_every > 0 && i % malformed_every == malformed_every - 1 {
                match rng.below(3) {
                    0 => "not json".to_owned(),
                    1 => format!(
                        r#"{{"sensor":{},"ts":{ts}}}"#,
                        serde_json::to_string(sensor).unwrap()
                    ),
                    _ => format!(
                        r#"{{"sensor":{},"ts":"yesterday","value":1}}"#,
                        serde_json::to_string(sensor).unwrap()
                    ),
                }
            } else if rng.below(2) == 0 {
                serde_json::json!({"sensor": sensor, "ts": ts, "value": value, "unit": "m/s"})
                    .to_string()
            } else {
                let rfc = chrono::DateTime::from_timestamp_millis(ts)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                serde_json::json!({"sensor_name": sensor, "timestamp": rfc, "reading": value, "unit": "m/s"}).to_string()
            };
            out.push(Message {
                partition: p,
                key: sensor.clone(),
                payload,
            });
        }
    }
    out
}

/// One expected or observed point.
#[derive(Clone, Debug)]
pub struct Point {
    pub count: i64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub stddev: f64,
}

/// Points by (sensor, window start ms).
pub type Points = BTreeMap<(String, i64), Point>;

/// One reading the lateness rule accepts.
pub struct Accepted {
    pub partition: i32,
    /// Its offset in the partition, as produced in order to a fresh topic.
    pub offset: i64,
    pub sensor: String,
    pub ts: i64,
    pub value: f64,
}

/// The readings of `messages` that are well formed and not late, in order: the semantics of
/// DESIGN-NOTES computed directly.
pub fn accepted(messages: &[Message], lateness_ms: i64) -> Vec<Accepted> {
    let mut newest: BTreeMap<i32, i64> = BTreeMap::new();
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let mut out = Vec::new();
    for m in messages {
        let offset = offsets.entry(m.partition).or_default();
        let here = *offset;
        *offset += 1;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&m.payload) else {
            continue;
        };
        let sensor = v
            .get("sensor")
            .or(v.get("sensor_name"))
            .and_then(|s| s.as_str());
        let ts = v.get("ts").or(v.get("timestamp")).and_then(|t| match t {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.timestamp_millis()),
            _ => None,
        });
        let value = v.get("value").or(v.get("reading")).and_then(|x| x.as_f64());
        let (Some(sensor), Some(ts), Some(value)) = (sensor, ts, value) else {
            continue;
        };
        let newest = newest.entry(m.partition).or_insert(i64::MIN);
        if *newest != i64::MIN && ts < *newest - lateness_ms {
            continue;
        }
        *newest = (*newest).max(ts);
        out.push(Accepted {
            partition: m.partition,
            offset: here,
            sensor: sensor.to_owned(),
            ts,
            value,
        });
    }
    out
}

/// The reference: every accepted reading in each of its windows, two-pass statistics.
pub fn reference(messages: &[Message], window_ms: i64, slide_ms: i64, lateness_ms: i64) -> Points {
    let mut values: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for Accepted {
        sensor, ts, value, ..
    } in accepted(messages, lateness_ms)
    {
        let mut start = ts.div_euclid(slide_ms) * slide_ms;
        while start > ts - window_ms {
            values
                .entry((sensor.clone(), start))
                .or_default()
                .push(value);
            start -= slide_ms;
        }
    }
    values
        .into_iter()
        .map(|(k, vs)| {
            let n = vs.len() as f64;
            let mean = vs.iter().sum::<f64>() / n;
            let var = if vs.len() > 1 {
                vs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            let point = Point {
                count: vs.len() as i64,
                mean,
                min: vs.iter().cloned().fold(f64::INFINITY, f64::min),
                max: vs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                stddev: var.sqrt(),
            };
            (k, point)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Asserts two point sets are the same: counts, min and max exactly, mean and stddev to
/// within floating-point rounding (merge order differs with batching).
pub fn assert_same(what: &str, actual: &Points, expected: &Points) {
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, unexpected {extra:?} ({} vs {} points)",
        actual.len(),
        expected.len()
    );
    for (k, e) in expected {
        let a = &actual[k];
        assert!(same(a, e), "{what}: point {k:?} is {a:?}, expected {e:?}");
    }
}

/// Whether two points are the same, as `assert_same` compares them.
pub fn same(a: &Point, e: &Point) -> bool {
    a.count == e.count
        && a.min == e.min
        && a.max == e.max
        && close(a.mean, e.mean)
        && close(a.stddev, e.stddev)
}

/// Runs the maxq binary with `args`, returning its output.
pub fn maxq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running maxq")
}

/// A loopback port nobody listens on (free when asked).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The series an InfluxQL statement returns from `db`; an error fails the test.
pub fn influxql(db: &str, q: &str) -> Vec<serde_json::Value> {
    let url = service("MAXQ_TEST_INFLUX_V1");
    let response = match ureq::get(&format!("{url}/query"))
        .query("db", db)
        .query("q", q)
        .call()
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let body: serde_json::Value = response.into_json().unwrap();
    let result = &body["results"][0];
    assert!(result.get("error").is_none(), "{q}: {}", result["error"]);
    result["series"].as_array().cloned().unwrap_or_default()
}

/// Starts `maxq args` with `RUST_LOG=warn` and follows its stderr.
pub fn spawn_watched(args: &[String]) -> (std::process::Child, ProgressWatch) {
    spawn_logging(args, "warn")
}

/// Starts `maxq args` with `RUST_LOG=rust_log` and follows its stderr (its progress lines
/// need `info`).
pub fn spawn_logging(args: &[String], rust_log: &str) -> (std::process::Child, ProgressWatch) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(args)
        .env("RUST_LOG", rust_log)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running maxq");
    let watch = ProgressWatch::follow(&mut child);
    (child, watch)
}

/// A run of `maxq` followed for its progress lines; killed, with its log printed, if the
/// test fails while it runs.
pub struct Watched {
    pub child: std::process::Child,
    pub watch: ProgressWatch,
}

impl Watched {
    /// Starts `maxq args` with `RUST_LOG=rust_log`, as [`spawn_logging`] does.
    pub fn start(args: &[String], rust_log: &str) -> Watched {
        let (child, watch) = spawn_logging(args, rust_log);
        Watched { child, watch }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("maxq's log:\n{}", self.watch.log());
        }
    }
}

/// Runs maxq and asserts it exited 0.
pub fn maxq_ok(args: &[&str]) -> Output {
    let out = maxq(args);
    assert!(
        out.status.success(),
        "maxq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// InfluxDB 1.x: creates a database.
pub fn influx_create_db(db: &str) {
    influx_create_db_at(&service("MAXQ_TEST_INFLUX_V1"), db);
}

/// Creates a database on the InfluxDB 1.x at `url`.
pub fn influx_create_db_at(url: &str, db: &str) {
    ureq::post(&format!("{url}/query"))
        .send_form(&[("q", &format!("CREATE DATABASE \"{db}\""))])
        .unwrap();
}

/// InfluxDB 1.x: every point of `measurement` in `db`.
pub fn influx_points(db: &str, measurement: &str) -> Points {
    influx_points_at(&service("MAXQ_TEST_INFLUX_V1"), db, measurement)
}

/// Every point of `measurement` in `db` on the InfluxDB 1.x at `url`.
pub fn influx_points_at(url: &str, db: &str, measurement: &str) -> Points {
    influx_points_where(url, db, measurement, "")
}

/// The points of `measurement` in `db` that match an InfluxQL `WHERE` clause (or all, for
/// ""). A point being written may be seen with only some of its fields: it is left out.
pub fn influx_points_where(url: &str, db: &str, measurement: &str, filter: &str) -> Points {
    let q = format!("SELECT \"count\", \"mean\", \"min\", \"max\", \"stddev\" FROM \"{measurement}\" {filter} GROUP BY \"sensor\"");
    let body: serde_json::Value = ureq::get(&format!("{url}/query"))
        .query("db", db)
        .query("epoch", "ms")
        .query("q", &q)
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let mut points = Points::new();
    for series in body["results"][0]["series"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let sensor = series["tags"]["sensor"].as_str().unwrap().to_owned();
        for row in series["values"].as_array().unwrap() {
            let f = |i: usize| row[i].as_f64();
            let (Some(time), Some(count), Some(mean), Some(min), Some(max), Some(stddev)) =
                (row[0].as_i64(), row[1].as_i64(), f(2), f(3), f(4), f(5))
            else {
                continue;
            };
            points.insert(
                (sensor.clone(), time),
                Point {
                    count,
                    mean,
                    min,
                    max,
                    stddev,
                },
            );
        }
    }
    points
}

/// `maxq run --until-end` reading `topic` as a fresh group into a fresh InfluxDB 1.x
/// database, with `extra` flags; returns the arguments and the database.
pub fn until_end_into_v1(topic: &str, extra: &[&str]) -> (Vec<String>, String) {
    let db = unique("db");
    influx_create_db(&db);
    let mut args = run_args(&brokers(), topic, &unique("g"));
    args.push("--until-end".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(v1_flags(&db, "telemetry_1m"));
    (args, db)
}

/// `maxq run` reading `topic` on `brokers` as `group`; more flags are appended.
pub fn run_args(brokers: &str, topic: &str, group: &str) -> Vec<String> {
    [
        "run",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group",
        group,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Sends SIGTERM to `child` and waits (up to 10 s) for it to exit: its status and how long
/// that took.
pub fn sigterm(child: &mut std::process::Child) -> (std::process::ExitStatus, std::time::Duration) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = std::time::Instant::now();
    wait_until("exit after SIGTERM", 10, || {
        child.try_wait().unwrap().is_some()
    });
    (child.wait().unwrap(), signalled.elapsed())
}

/// Arguments as `&str`s.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The resume-log settings of `group` reading `topic`, as a restarted run would read them.
pub fn resume_config(topic: &str, group: &str) -> maxq::config::KafkaConfig {
    maxq::config::KafkaConfig {
        connection: maxq::config::Connection {
            brokers: brokers(),
            librdkafka: Vec::new(),
        },
        topic: topic.to_owned(),
        group: group.to_owned(),
        start: maxq::config::StartAt::Earliest,
        until_end: false,
        dead_letter_topic: None,
        resume_topic: "maxq.resume".to_owned(),
        commit_interval: std::time::Duration::from_secs(5),
    }
}

/// The v1 flags of a run writing to `db`.
pub fn v1_flags(db: &str, measurement: &str) -> Vec<String> {
    v1_flags_at(&service("MAXQ_TEST_INFLUX_V1"), db, measurement)
}

/// The v1 flags of a run writing to `db` on the InfluxDB 1.x at `url`.
pub fn v1_flags_at(url: &str, db: &str, measurement: &str) -> Vec<String> {
    [
        "--influx-url",
        url,
        "--influx-api",
        "v1",
        "--influx-db",
        db,
        "--measurement",
        measurement,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Two free loopback ports for a two-process hostfile.
pub fn hostfile(dir: &std::path::Path, processes: usize) -> std::path::PathBuf {
    let listeners: Vec<_> = (0..processes)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let hosts: String = listeners
        .iter()
        .map(|l| format!("{}\n", l.local_addr().unwrap()))
        .collect();
    let path = dir.join("hosts");
    std::fs::write(&path, hosts).unwrap();
    path
}

/// Runs the same command as processes `0..n` of one cluster and waits for all.
pub fn maxq_cluster(processes: usize, args: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hostfile(dir.path(), processes);
    let children: Vec<_> = (0..processes)
        .map(|p| {
            Command::new(env!("CARGO_BIN_EXE_maxq"))
                .args(args)
                .args([
                    "-n",
                    &processes.to_string(),
                    "-p",
                    &p.to_string(),
                    "-h",
                    hosts.to_str().unwrap(),
                ])
                .env("RUST_LOG", "warn")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "cluster process failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Each partition's messages split in two halves, in order: what is produced before a fault
/// and what after.
pub fn halves(messages: &[Message]) -> (Vec<Message>, Vec<Message>) {
    let mut by_partition: BTreeMap<i32, Vec<Message>> = BTreeMap::new();
    for m in messages {
        by_partition.entry(m.partition).or_default().push(m.clone());
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for mut own in by_partition.into_values() {
        second.extend(own.split_off(own.len() / 2));
        first.extend(own);
    }
    (first, second)
}

/// A service of the test's own (`cluster/services.sh` with a private state directory and
/// port), which the test can stop and start again on the same storage; stopped when dropped.
pub struct PrivateService {
    name: &'static str,
    port: u16,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl PrivateService {
    /// Starts `tansu`, `influxdb` or `vm` on a free loopback port.
    pub fn start(name: &'static str) -> PrivateService {
        PrivateService::start_with(name, &[])
    }

    /// Starts it with extra environment for `cluster/services.sh` (e.g. `MAXQ_VM_AUTH`).
    pub fn start_with(name: &'static str, env: &[(&str, &str)]) -> PrivateService {
        // influxd also binds port + 2 (its RPC address): take a port whose +2 is free too.
        let port = loop {
            let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = a.local_addr().unwrap().port();
            if port < 65_000 && std::net::TcpListener::bind(("127.0.0.1", port + 2)).is_ok() {
                break port;
            }
        };
        let service = PrivateService {
            name,
            port,
            dir: tempfile::tempdir().unwrap(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        service.up();
        service
    }

    /// `host:port` for a broker, `http://host:port` for InfluxDB.
    pub fn address(&self) -> String {
        match self.name {
            "influxdb" | "vm" => format!("http://127.0.0.1:{}", self.port),
            _ => format!("127.0.0.1:{}", self.port),
        }
    }

    fn script(&self, command: &str) {
        let port_var = match self.name {
            "tansu" => "MAXQ_KAFKA_PORT",
            "influxdb" => "MAXQ_INFLUX_V1_PORT",
            "vm" => "MAXQ_VM_PORT",
            other => panic!("no private {other}"),
        };
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster/services.sh"))
            .args([command, self.name])
            .env("MAXQ_SERVICES_DIR", self.dir.path())
            .env(port_var, self.port.to_string())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "services.sh {command} {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it (again, on the same storage) and waits for its port.
    pub fn up(&self) {
        self.script("start");
    }

    /// Stops it; its storage stays.
    pub fn down(&self) {
        self.script("stop");
    }
}

impl Drop for PrivateService {
    fn drop(&mut self) {
        self.down();
    }
}

/// The latest `readings=N` of a run's progress lines, read from its stderr as they come;
/// it can also `kill -9` the run the moment a given line appears.
pub struct ProgressWatch {
    readings: std::sync::Arc<std::sync::atomic::AtomicU64>,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    kill_on: std::sync::Arc<std::sync::Mutex<Option<&'static str>>>,
}

impl ProgressWatch {
    /// Follows `child`'s stderr (the run needs `RUST_LOG=info` and a short
    /// `--progress-interval`).
    pub fn follow(child: &mut std::process::Child) -> ProgressWatch {
        use std::io::BufRead as _;
        let stderr = child.stderr.take().expect("stderr piped");
        let readings = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kill_on = std::sync::Arc::new(std::sync::Mutex::new(None::<&'static str>));
        let (r, l, k, pid) = (readings.clone(), log.clone(), kill_on.clone(), child.id());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(pattern) = *k.lock().unwrap() {
                    if line.contains(pattern) {
                        let _ = Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status();
                    }
                }
                if let Some(n) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("readings="))
                    .and_then(|n| n.parse().ok())
                {
                    r.store(n, std::sync::atomic::Ordering::Relaxed);
                }
                let mut log = l.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        ProgressWatch {
            readings,
            log,
            kill_on,
        }
    }

    /// From now on, `kill -9` the run as soon as it logs a line containing `pattern`.
    pub fn kill_on(&self, pattern: &'static str) {
        *self.kill_on.lock().unwrap() = Some(pattern);
    }

    /// Readings accepted so far, as last reported.
    pub fn readings(&self) -> u64 {
        self.readings.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Everything the run logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Peak resident set of a running process, KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Waits up to `seconds` for `condition`, polling.
pub fn wait_until(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {seconds} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
