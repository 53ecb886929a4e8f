//! Losing one process of a cluster: the others exit promptly with one clear line and a
//! documented code (no panic), and the restarted cluster writes the fault-free points.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn process(args: &[String], index: usize, hosts: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(args)
        .args(["-n", "2", "-p", &index.to_string()])
        .args(["-h", hosts.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_of_one_process_exits_the_other_with_one_line_and_a_restart_gives_the_reference() {
    let topic = unique("peer");
    create_topic(&topic, 4);
    let messages = stream(21, 4, 12, 1_500, 60, 0);
    produce(&topic, &messages);
    let db = unique("db");
    influx_create_db(&db);
    let group = unique("g");
    let mut args = run_args(&brokers(), &topic, &group);
    args.extend(v1_flags(&db, "telemetry_1m"));
    args.extend(["--epoch", "100ms", "--commit-interval", "300ms"].map(String::from));
    let dir = tempfile::tempdir().unwrap();
    let hosts = hostfile(dir.path(), 2);
    let survivor = process(&args, 0, &hosts);
    let mut victim = process(&args, 1, &hosts);
    wait_until("points written by the cluster", 60, || {
        !influx_points(&db, "telemetry_1m").is_empty()
    });
    victim.kill().unwrap();
    victim.wait().unwrap();
    let killed = Instant::now();
    let out = survivor.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "exited {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("maxq: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("cluster process 1") && errors[0].contains("restart"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The restarted cluster resumes from the resume log; `--until-end` finishes every window.
    args.push("--until-end".to_owned());
    maxq_cluster(2, &args);
    assert_same(
        "after the restart",
        &influx_points(&db, "telemetry_1m"),
        &reference(&messages, 60_000, 60_000, 5_000),
    );
}
