//! `cluster/launch.sh N W -- <flags>`: N local processes in one command, with every flag also
//! taken from `MAXQ_…` environment variables.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A base port with `n` free ports after it.
fn free_ports(n: u16) -> u16 {
    loop {
        let base = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > u16::MAX - n {
            continue;
        }
        let free = (base..base + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
}

fn launch(processes: &str, workers: &str, flags: &[&str]) -> Command {
    let mut command = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster/launch.sh"));
    command
        .args([processes, workers, "--"])
        .args(flags)
        .env("MAXQ_BIN", env!("CARGO_BIN_EXE_maxq"))
        .env("MAXQ_BASE_PORT", free_ports(3).to_string())
        .env("RUST_LOG", "warn");
    command
}

#[test]
fn three_processes_configured_from_the_environment_write_the_reference() {
    let topic = unique("launch");
    create_topic(&topic, 6);
    let messages = stream(31, 6, 40, 800, 70, 50);
    produce(&topic, &messages);
    let db = unique("db");
    influx_create_db(&db);
    let out = launch("3", "2", &["--until-end"])
        .env("MAXQ_BROKERS", brokers())
        .env("MAXQ_TOPIC", &topic)
        .env("MAXQ_GROUP", unique("g"))
        .env("MAXQ_INFLUX_URL", service("MAXQ_TEST_INFLUX_V1"))
        .env("MAXQ_INFLUX_API", "v1")
        .env("MAXQ_INFLUX_DB", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(
        "3 processes × 2 workers from launch.sh",
        &influx_points(&db, "telemetry_1m"),
        &reference(&messages, 60_000, 60_000, 5_000),
    );
}

#[test]
fn sigint_to_the_script_stops_every_process_cleanly() {
    let topic = unique("launch-int");
    create_topic(&topic, 4);
    produce(&topic, &stream(32, 4, 8, 200, 100, 0));
    let db = unique("db");
    influx_create_db(&db);
    let mut args = run_args(&brokers(), &topic, &unique("g"));
    args.remove(0);
    args.extend(v1_flags(&db, "telemetry_1m"));
    let script = launch("2", "1", &strs(&args))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("points written by the cluster", 60, || {
        !influx_points(&db, "telemetry_1m").is_empty()
    });
    let status = Command::new("kill")
        .args(["-INT", &script.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    let out = script.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "took {:?}",
        signalled.elapsed()
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let maxq = env!("CARGO_BIN_EXE_maxq");
    let left = Command::new("pgrep")
        .args(["-f", &format!("{maxq} run .*{topic}")])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "still running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn a_process_that_fails_stops_the_cluster_and_its_code_is_the_scripts() {
    let topic = unique("launch-fail");
    create_topic(&topic, 2);
    produce(&topic, &stream(33, 2, 4, 50, 100, 0));
    let mut args = run_args(&brokers(), &topic, &unique("g"));
    args.remove(0);
    args.extend(v1_flags("maxq_no_such_database", "telemetry_1m"));
    let started = Instant::now();
    let out = launch("2", "1", &strs(&args)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--influx-db"), "{stderr}");
}
