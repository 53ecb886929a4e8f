//! One instance per group and topic: a second `maxq run` that is not part of the first's
//! cluster is refused with a clear message instead of doubling the work, a clean exit
//! frees the lease at once, and a crashed instance's lease expires.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(args)
        .env("RUST_LOG", "warn,maxq::run=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn streaming(topic: &str, group: &str, db: &str) -> Vec<String> {
    let mut args = run_args(&brokers(), topic, group);
    args.extend(v1_flags(db, "telemetry_1m"));
    args
}

fn setup(name: &str) -> (String, String, String) {
    let topic = unique(name);
    create_topic(&topic, 2);
    produce(&topic, &stream(51, 2, 6, 200, 100, 0));
    let db = unique("db");
    influx_create_db(&db);
    (topic, unique("g"), db)
}

#[test]
fn a_second_instance_is_refused_and_a_clean_exit_frees_the_lease() {
    let (topic, group, db) = setup("lease");
    let mut first = start(&streaming(&topic, &group, &db));
    wait_until("points from the first instance", 60, || {
        !influx_points(&db, "telemetry_1m").is_empty()
    });
    let other_db = unique("db");
    influx_create_db(&other_db);
    let started = Instant::now();
    let second = start(&streaming(&topic, &group, &other_db))
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another maxq instance")
            && stderr.contains(&format!("--group {group} and --topic {topic}")),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(15), "{stderr}");
    assert!(influx_points(&other_db, "telemetry_1m").is_empty());
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first instance stopped"
    );

    let (status, _) = sigterm(&mut first);
    assert!(status.success());
    let mut args = streaming(&topic, &group, &db);
    args.push("--until-end".into());
    let third = start(&args).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    assert!(!stderr.contains("lease expired"), "waited: {stderr}");
}

#[test]
fn a_crashed_instances_lease_expires_and_the_next_takes_it() {
    let (topic, group, db) = setup("lease-crash");
    let mut first = start(&streaming(&topic, &group, &db));
    wait_until("points from the first instance", 60, || {
        !influx_points(&db, "telemetry_1m").is_empty()
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let mut args = streaming(&topic, &group, &db);
    args.push("--until-end".into());
    let next = start(&args).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(next.status.success(), "{stderr}");
    assert!(stderr.contains("lease expired"), "{stderr}");
}
