//! Settings that can never work fail at start, naming the flag and the fix, instead of
//! running into a retry loop or a silent truncation.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Runs `maxq run` with `extra` on a topic that exists; returns (exit code, stderr), and
/// checks it took less than 15 s.
fn run_with(extra: &[&str]) -> (Option<i32>, String) {
    let topic = unique("check");
    create_topic(&topic, 1);
    let mut args = run_args(&brokers(), &topic, &unique("g"));
    args.push("--until-end".to_owned());
    args.extend(extra.iter().map(|s| s.to_string()));
    let started = Instant::now();
    let out = maxq(&strs(&args));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{extra:?} took {:?}",
        started.elapsed()
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_broker_port_fails_at_once_naming_brokers() {
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = maxq(&["run", "--brokers", &brokers, "--topic", "t", "--until-end"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains(&format!("--brokers {brokers}")), "{stderr}");
}

#[test]
fn an_influx_url_without_a_scheme_fails_at_start() {
    let (code, stderr) = run_with(&[
        "--influx-url",
        "localhost:8086",
        "--influx-api",
        "v1",
        "--influx-db",
        "x",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--influx-url") && stderr.contains("http://localhost:8086"),
        "{stderr}"
    );
}

#[test]
fn the_v2_api_against_an_influxdb_1_server_suggests_v1() {
    let (code, stderr) = run_with(&[
        "--influx-url",
        &service("MAXQ_TEST_INFLUX_V1"),
        "--influx-org",
        "o",
        "--influx-bucket",
        "b",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("try --influx-api v1"), "{stderr}");
}

#[test]
fn an_influxdb_that_is_down_at_start_is_named_once_and_retried() {
    let port = free_port();
    // An empty topic: nothing to write, so the run ends although nobody listens.
    let (code, stderr) = run_with(&[
        "--influx-url",
        &format!("http://127.0.0.1:{port}"),
        "--influx-api",
        "v1",
        "--influx-db",
        "x",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("does not answer /ping").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn the_resume_topic_must_differ_from_the_input_topic() {
    let out = maxq(&["run", "--topic", "t", "--resume-topic", "t"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--resume-topic must differ"), "{stderr}");
}

#[test]
fn event_time_durations_are_neither_truncated_nor_months() {
    for (flag, value, says) in [
        ("--window", "1500us", "whole number of milliseconds"),
        ("--window", "1M", "means months"),
        ("--lateness", "1y", "means months or years"),
        ("--max-future", "2h", "shorter than --max-state-age"),
    ] {
        let out = maxq(&["run", flag, value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag} {value}: {stderr}"
        );
    }
}
