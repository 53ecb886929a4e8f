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
        .args(run_args(&brokers(), &topic, &group))
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
    let (status, elapsed) = sigterm(&mut child);
    assert!(
        elapsed < Duration::from_secs(5),
        "still running 5 s after SIGTERM"
    );
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let resume = maxq::pipeline::commit::resume_log::load(&resume_config(&topic, &group)).unwrap();
    assert_eq!(
        resume.len(),
        2,
        "both partitions' resume points recorded before exit: {resume:?}"
    );
}

#[test]
fn sigterm_while_influxdb_is_unreachable_exits_non_zero_in_bounded_time_committing_nothing() {
    let topic = unique("stuck");
    create_topic(&topic, 2);
    produce(&topic, &stream(13, 2, 10, 3_000, 60, 0));
    let group = unique("g");
    // A port nobody listens on: every write is refused and retried with backoff.
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(run_args(&brokers(), &topic, &group))
        .args(["--progress-interval", "200ms"])
        .args(v1_flags_at(
            &format!("http://127.0.0.1:{port}"),
            "db",
            "telemetry_1m",
        ))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watch = ProgressWatch::follow(&mut child);
    wait_until("write retries", 30, || {
        watch.log().split_whitespace().any(|w| {
            w.strip_prefix("write_retries=")
                .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
        })
    });
    let (status, elapsed) = sigterm(&mut child);
    assert!(
        elapsed < Duration::from_secs(5),
        "exited {elapsed:?} after SIGTERM"
    );
    assert_eq!(status.code(), Some(3), "{}", watch.log());
    assert!(
        watch.log().contains("--shutdown-timeout"),
        "{}",
        watch.log()
    );
    let resume = maxq::pipeline::commit::resume_log::load(&resume_config(&topic, &group)).unwrap();
    assert!(
        resume.values().all(|p| p.offset == 0),
        "nothing unwritten is committed: a restart reads from the start ({resume:?})"
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
