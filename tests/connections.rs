//! One set of Kafka clients per process, whatever `-w`: a run with three workers holds as
//! many connections to the broker as a run with one (issue 16), and as few clients as
//! librdkafka allows, with the lease, roll-ups and dead letters all in use: one consumer
//! and one producer (a librdkafka client either consumes or produces). Connections are
//! counted from the kernel's view of the process: its sockets (`/proc/<pid>/fd`) that are
//! established TCP connections to the broker's port (`/proc/<pid>/net/tcp`, `tcp6`).
//! Clients are counted by librdkafka's own threads: each client has one thread it names
//! `rdk:main` (`/proc/<pid>/task/*/comm`).

mod common;

use common::*;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The inodes of the sockets process `pid` has open.
fn sockets(pid: u32) -> BTreeSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// How many of process `pid`'s sockets are established TCP connections to `port`.
fn connections_to(pid: u32, port: u16) -> usize {
    let ours = sockets(pid);
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields
                .get(2)
                .and_then(|remote| remote.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            let established = fields.get(3) == Some(&"01");
            let inode = fields.get(9).and_then(|i| i.parse::<u64>().ok());
            established
                && remote_port == Some(port)
                && inode.is_some_and(|inode| ours.contains(&inode))
        })
        .count()
}

/// How many librdkafka clients process `pid` has: each runs one thread named `rdk:main`.
fn librdkafka_clients(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "rdk:main")
        .count()
}

/// The most connections to the broker, and the most librdkafka clients, a streaming run
/// with `workers` workers holds once it has read all of `topic`'s `readings`, with roll-ups
/// and a dead-letter topic.
fn broker_connections_with(workers: &str, topic: &str, readings: u64) -> (usize, usize) {
    let db = unique("db");
    influx_create_db(&db);
    let brokers = brokers();
    let port: u16 = brokers
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("MAXQ_TEST_BROKERS is host:port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(run_args(&brokers, topic, &unique("g")))
        .args(v1_flags(&db, "telemetry_1m"))
        .args([
            "-w",
            workers,
            "--epoch",
            "100ms",
            "--progress-interval",
            "200ms",
            "--rollups",
            "1h",
            "--dead-letter-topic",
            &format!("{topic}.dead"),
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watch = ProgressWatch::follow(&mut child);
    wait_until("reading every partition", 30, || {
        watch.readings() == readings
    });
    let (mut connections, mut clients) = (0, 0);
    for _ in 0..10 {
        connections = connections.max(connections_to(child.id(), port));
        clients = clients.max(librdkafka_clients(child.id()));
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = sigterm(&mut child);
    assert!(status.success(), "{status}: {}", watch.log());
    (connections, clients)
}

#[test]
fn a_process_holds_one_consumer_and_one_producer_whatever_its_workers() {
    let topic = unique("conns");
    create_topic(&topic, 6);
    create_topic(&format!("{topic}.dead"), 1);
    let messages: Vec<Message> = (0..6)
        .flat_map(|partition| {
            (0..20).map(move |i| {
                let sensor = format!("s{partition}");
                Message {
                    partition,
                    payload:
                        serde_json::json!({"sensor": sensor, "ts": BASE_MS + i * 1_000, "value": i})
                            .to_string(),
                    key: sensor,
                }
            })
        })
        .collect();
    produce(&topic, &messages);
    let readings = messages.len() as u64;
    let (one, one_clients) = broker_connections_with("1", &topic, readings);
    let (three, three_clients) = broker_connections_with("3", &topic, readings);
    eprintln!("connections to the broker: {one} with -w 1, {three} with -w 3");
    assert!(one > 0, "a run holds connections to the broker");
    assert_eq!(
        three, one,
        "-w 3 holds {three} connections to the broker, -w 1 holds {one}: one consumer, one producer per process"
    );
    for (workers, clients) in [(1, one_clients), (3, three_clients)] {
        assert_eq!(
            clients, 2,
            "-w {workers} with the lease, roll-ups and dead letters runs {clients} librdkafka clients: one consumer and one producer per process"
        );
    }
}
