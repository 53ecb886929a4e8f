//! The whole pipeline under `docker-compose`: the user-facing `docker-compose.yml` with
//! `cluster/compose/test.yml`, which swaps in images built here from this machine's binaries
//! (tansu for Kafka, Debian's InfluxDB 1.x, this build of maxq). Replicas of `pipeline`
//! form one timely cluster through the service's DNS name; faults are real container kills
//! and network cuts; results are compared with the independent reference, at every level
//! the pipeline writes (the minutes and the `MAXQ_ROLLUPS: 1h,1d` hours and days).

mod common;

use common::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PROJECT: &str = "maxqtest";
const KAFKA: &str = "10.213.77.10:9092";
const INFLUX: &str = "http://10.213.77.11:8086";
const TOPIC: &str = "telemetry";
const DB: &str = "telemetry";

/// One compose project, taken down (with its volumes) before and after.
struct Compose;

impl Compose {
    fn start() -> Compose {
        let images = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/cluster/compose/images.sh"
        ))
        .arg(env!("CARGO_BIN_EXE_maxq"))
        .output()
        .unwrap();
        assert!(images.status.success(), "{}", text(&images));
        let compose = Compose;
        compose.down();
        compose
    }

    fn command(&self, replicas: usize, args: &[&str]) -> Command {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut command = Command::new("docker-compose");
        command
            .current_dir(root)
            .args(["-p", PROJECT, "-f", "docker-compose.yml", "-f"])
            .arg("cluster/compose/test.yml")
            .args(args)
            .env("PIPELINE_REPLICAS", replicas.to_string())
            .env("REPLAY_SPEED", "20");
        command
    }

    fn ok(&self, replicas: usize, args: &[&str]) -> String {
        let out = self.command(replicas, args).output().unwrap();
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts Kafka and InfluxDB, creates the database and (with the `topics` service) the
    /// topic.
    fn services(&self) {
        self.ok(1, &["up", "-d", "topics", "influxdb"]);
        let topics = format!("{PROJECT}_topics_1");
        let code = docker(&["wait", &topics]);
        assert_eq!(code.trim(), "0", "{}", docker(&["logs", &topics]));
        wait_until("InfluxDB answering", 60, || {
            ureq::get(&format!("{INFLUX}/ping")).call().is_ok()
        });
        influx_create_db_at(INFLUX, DB);
    }

    /// `up --scale pipeline=N`, with PIPELINE_REPLICAS=N.
    fn scale(&self, replicas: usize) {
        self.scale_with(replicas, replicas);
    }

    /// `up --scale pipeline=N` with PIPELINE_REPLICAS (each replica's -n) set to `processes`.
    fn scale_with(&self, replicas: usize, processes: usize) {
        let scale = format!("pipeline={replicas}");
        self.ok(processes, &["up", "-d", "--scale", &scale, "pipeline"]);
    }

    fn down(&self) {
        self.ok(1, &["down", "-v", "--remove-orphans", "-t", "2"]);
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(out) = self.command(1, &["logs", "--tail", "40"]).output() {
                eprintln!("{}", text(&out));
            }
        }
        self.down();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn replica(i: usize) -> String {
    format!("{PROJECT}_pipeline_{i}")
}

fn running(i: usize) -> bool {
    docker(&["inspect", "-f", "{{.State.Running}}", &replica(i)]).trim() == "true"
}

fn restarts(i: usize) -> u64 {
    docker(&["inspect", "-f", "{{.RestartCount}}", &replica(i)])
        .trim()
        .parse()
        .unwrap()
}

/// The levels the compose file's pipeline writes (`MAXQ_ROLLUPS: 1h,1d`), by length.
const LEVELS: [(&str, i64); 3] = [
    ("telemetry_1m", 60_000),
    ("telemetry_1h", 3_600_000),
    ("telemetry_1d", 86_400_000),
];

fn points(measurement: &str) -> Points {
    influx_points_at(INFLUX, DB, measurement)
}

/// Waits until InfluxDB holds exactly the reference of everything produced so far, at
/// every level (with `--emit updates`, an open window holds every reading so far too).
fn wait_for_reference(what: &str, produced: &[Message]) {
    for (measurement, length) in LEVELS {
        let expected = reference(produced, length, length, 5_000);
        let settled = (0..1_800).any(|_| {
            let found = points(measurement);
            let equal = found.len() == expected.len()
                && expected
                    .iter()
                    .all(|(k, e)| found.get(k).is_some_and(|a| same(a, e)));
            if !equal {
                std::thread::sleep(Duration::from_millis(100));
            }
            equal
        });
        if !settled {
            assert_same(
                &format!("{what}: {measurement}"),
                &points(measurement),
                &expected,
            );
        }
    }
}

/// The stream in `parts` pieces, each holding every partition's next messages in order.
fn pieces(messages: &[Message], parts: usize) -> Vec<Vec<Message>> {
    let mut out = vec![Vec::new(); parts];
    let mut by_partition: std::collections::BTreeMap<i32, Vec<&Message>> = Default::default();
    for m in messages {
        by_partition.entry(m.partition).or_default().push(m);
    }
    for own in by_partition.values() {
        let size = own.len().div_ceil(parts);
        for (i, chunk) in own.chunks(size).enumerate() {
            out[i].extend(chunk.iter().map(|m| (*m).clone()));
        }
    }
    out
}

#[test]
fn the_user_facing_file_and_the_override_are_valid_compose_files() {
    let root = env!("CARGO_MANIFEST_DIR");
    for files in [
        vec!["docker-compose.yml"],
        vec!["docker-compose.yml", "cluster/compose/test.yml"],
    ] {
        let mut command = Command::new("docker-compose");
        command.current_dir(root);
        for f in &files {
            command.args(["-f", f]);
        }
        let out = command.args(["config", "-q"]).output().unwrap();
        assert!(out.status.success(), "{files:?}: {}", text(&out));
    }
}

#[test]
fn three_replicas_form_one_cluster_and_survive_a_kill_and_a_network_cut() {
    let compose = Compose::start();
    compose.services();
    let messages = stream(41, 8, 64, 1_500, 80, 40);
    let parts = pieces(&messages, 3);
    let mut produced = Vec::new();
    produce_at(KAFKA, TOPIC, &parts[0]);
    produced.extend(parts[0].iter().cloned());
    compose.scale(3);
    wait_for_reference("3 replicas, before any fault", &produced);

    // kill -9 of one replica's process, as the kernel's OOM killer would (`docker kill` marks
    // the container stopped by hand, which no restart policy restarts): the others exit,
    // the restart policy brings all three back.
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &replica(2)]);
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let kill = Instant::now();
    produce_at(KAFKA, TOPIC, &parts[1]);
    produced.extend(parts[1].iter().cloned());
    wait_until("every replica restarted after the kill", 90, || {
        (1..=3).all(|i| running(i) && restarts(i) >= 1)
    });
    wait_for_reference("3 replicas, after a kill", &produced);
    eprintln!(
        "after the kill: the reference again {:.1} s later",
        kill.elapsed().as_secs_f64()
    );

    // One replica cut off the network for 20 s.
    let network = format!("{PROJECT}_default");
    docker(&["network", "disconnect", &network, &replica(1)]);
    produce_at(KAFKA, TOPIC, &parts[2]);
    produced.extend(parts[2].iter().cloned());
    std::thread::sleep(Duration::from_secs(20));
    docker(&["network", "connect", &network, &replica(1)]);
    let reconnect = Instant::now();
    wait_for_reference("3 replicas, after a 20 s network cut", &produced);
    eprintln!(
        "after the network cut: the reference {:.1} s after reconnecting; restarts {:?}",
        reconnect.elapsed().as_secs_f64(),
        (1..=3).map(restarts).collect::<Vec<_>>()
    );
    assert!((1..=3).all(running));
}

#[test]
fn rescaling_3_2_4_by_restart_keeps_the_reference() {
    let compose = Compose::start();
    compose.services();
    let messages = stream(42, 8, 48, 1_200, 80, 0);
    let parts = pieces(&messages, 3);
    let mut produced = Vec::new();
    for (replicas, part) in [3, 2, 4].into_iter().zip(&parts) {
        produce_at(KAFKA, TOPIC, part);
        produced.extend(part.iter().cloned());
        compose.scale(replicas);
        wait_for_reference(&format!("{replicas} replicas"), &produced);
        assert!((1..=replicas).all(running));
    }
}

#[test]
fn replicas_that_do_not_form_one_cluster_do_not_both_run() {
    let compose = Compose::start();
    compose.services();
    let messages = stream(43, 8, 24, 400, 80, 0);
    produce_at(KAFKA, TOPIC, &messages);
    // Two replicas, each told it is a cluster of one: two independent instances.
    compose.scale_with(2, 1);
    wait_for_reference("the instance that holds the lease", &messages);
    wait_until("the other replica refused, and restarted", 60, || {
        (1..=2).any(|i| restarts(i) >= 1)
    });
    let logs = compose.ok(1, &["logs", "pipeline"]);
    assert!(
        logs.contains("another maxq instance")
            && logs.contains("--group maxq and --topic telemetry"),
        "{logs}"
    );
    let refusals = logs.matches("another maxq instance").count();
    let restarted: u64 = (1..=2).map(restarts).sum();
    assert!(
        refusals as u64 >= restarted,
        "{refusals} refusals, {restarted} restarts"
    );
    assert!((1..=2).any(|i| restarts(i) == 0), "both replicas restarted");
}

#[test]
fn the_producer_service_replays_crs11_into_influxdb() {
    let compose = Compose::start();
    compose.services();
    compose.ok(1, &["up", "-d", "producer", "pipeline"]);
    let query = "SELECT max(\"max\") FROM \"telemetry_1m\" WHERE \"sensor\" = 'stage1.velocity'";
    wait_until("CRS-11's 1684.7 m/s (MECO) in InfluxDB", 120, || {
        let body: serde_json::Value = ureq::get(&format!("{INFLUX}/query"))
            .query("db", DB)
            .query("q", query)
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        body["results"][0]["series"][0]["values"][0][1].as_f64() == Some(1684.722)
    });
}
