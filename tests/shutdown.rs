//! Stopping and failing: SIGTERM flushes, records where to resume and exits 0 quickly;
//! operator errors fail fast with a message naming what to fix.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_flushes_commits_and_exits_zero_within_5_s() {
    let topic = unique("term");
    create_topic(&topic, 2);
    let messages = stream(12, 2, 10, 3_000, 60, 0);
    produce(&topic, &messages);
    let db = unique("db");
    influx_create_db(&db);
    let group = unique("g");
    let mut child = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args([
            "run",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "--group",
            &group,
        ])
        .args(v1_flags(&db, "telemetry_1m"))
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while influx_points(&db, "telemetry_1m").is_empty() {
        assert!(Instant::now() < deadline, "no point written within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let resume = maxq::resume::load(&resume_config(&topic, &group)).unwrap();
    assert_eq!(
        resume.len(),
        2,
        "both partitions' resume points recorded before exit: {resume:?}"
    );
}

#[test]
fn a_missing_cluster_peer_fails_naming_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hostfile(dir.path(), 2);
    let topic = unique("peer");
    create_topic(&topic, 1);
    let started = Instant::now();
    let out = maxq(&[
        "run",
        "--brokers",
        &brokers(),
        "--topic",
        &topic,
        "-n",
        "2",
        "-p",
        "0",
        "-h",
        hosts.to_str().unwrap(),
        "--connect-timeout",
        "2s",
    ]);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--connect-timeout") && stderr.contains("-h "),
        "{stderr}"
    );
}

#[test]
fn a_secret_from_the_environment_must_exist() {
    let out = maxq(&[
        "run",
        "--brokers",
        &brokers(),
        "-X",
        "sasl.password=env:MAXQ_TEST_UNSET_SECRET",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MAXQ_TEST_UNSET_SECRET") && stderr.contains("-X sasl.password"),
        "{stderr}"
    );
}
