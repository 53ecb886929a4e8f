//! `maxq run` against the real broker (tansu) and InfluxDB 1.x: the points written equal an
//! independent reference computation, whatever the worker and process count.

mod common;

use common::*;

fn run_args(topic: &str, group: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--brokers",
        &brokers(),
        "--topic",
        topic,
        "--group",
        group,
        "--until-end",
        "--epoch",
        "100ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs the pipeline into a fresh database and returns what InfluxDB holds.
fn run_into_influx(topic: &str, workers: usize, processes: usize, extra: &[&str]) -> Points {
    let db = unique("db");
    influx_create_db(&db);
    let mut args = run_args(topic, &unique("group"), extra);
    args.extend(v1_flags(&db, "telemetry_1m"));
    args.extend(["-w".to_owned(), workers.to_string()]);
    if processes > 1 {
        maxq_cluster(processes, &args);
    } else {
        maxq_ok(&strs(&args));
    }
    influx_points(&db, "telemetry_1m")
}

#[test]
fn points_equal_the_reference_for_any_worker_and_process_count() {
    let topic = unique("pipeline");
    create_topic(&topic, 5);
    let messages = stream(1, 5, 40, 4_000, 60, 97);
    produce(&topic, &messages);
    let expected = reference(&messages, 60_000, 60_000, 5_000);
    assert!(expected.len() > 100, "the stream spans many windows");

    assert_same("-w 1", &run_into_influx(&topic, 1, 1, &[]), &expected);
    assert_same("-w 3", &run_into_influx(&topic, 3, 1, &[]), &expected);
    assert_same("-n 2 -w 2", &run_into_influx(&topic, 2, 2, &[]), &expected);
}

#[test]
fn emit_updates_converges_to_emit_final() {
    let topic = unique("emit");
    create_topic(&topic, 3);
    let messages = stream(2, 3, 12, 3_000, 50, 0);
    produce(&topic, &messages);
    let updates = run_into_influx(&topic, 2, 1, &["--emit", "updates"]);
    let finals = run_into_influx(&topic, 2, 1, &["--emit", "final"]);
    assert_same("updates vs final", &updates, &finals);
    assert_same(
        "final vs reference",
        &finals,
        &reference(&messages, 60_000, 60_000, 5_000),
    );
}

#[test]
fn hopping_windows_and_other_lateness_match_the_reference() {
    let topic = unique("hopping");
    create_topic(&topic, 2);
    let messages = stream(3, 2, 8, 2_000, 80, 0);
    produce(&topic, &messages);
    let actual = run_into_influx(
        &topic,
        2,
        1,
        &["--window", "1m", "--slide", "20s", "--lateness", "2s"],
    );
    assert_same(
        "hopping",
        &actual,
        &reference(&messages, 60_000, 20_000, 2_000),
    );
}

#[test]
fn one_partition_and_eight_workers() {
    let topic = unique("single");
    create_topic(&topic, 1);
    let messages = stream(4, 1, 10, 2_000, 40, 0);
    produce(&topic, &messages);
    assert_same(
        "1 partition, -w 8",
        &run_into_influx(&topic, 8, 1, &[]),
        &reference(&messages, 60_000, 60_000, 5_000),
    );
}

#[test]
fn empty_topic_until_end_exits_zero() {
    let topic = unique("empty");
    create_topic(&topic, 4);
    assert!(run_into_influx(&topic, 2, 1, &[]).is_empty());
}

#[test]
fn each_worker_writes_a_disjoint_share_and_together_all() {
    let topic = unique("shards");
    create_topic(&topic, 4);
    let messages = stream(5, 4, 30, 1_500, 60, 0);
    produce(&topic, &messages);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    maxq_ok(&strs(&run_args(
        &topic,
        &unique("group"),
        &["-w", "3", "--emit", "final", "--output-dir", out],
    )));
    let mut owner: std::collections::BTreeMap<String, usize> = Default::default();
    for worker in 0..3 {
        let text = std::fs::read_to_string(dir.path().join(format!("worker-{worker}.lp"))).unwrap();
        for line in text.lines() {
            let (series, rest) = line.split_once(" count=").unwrap();
            let ts = rest.rsplit(' ').next().unwrap();
            let key = format!("{series}@{ts}");
            if let Some(other) = owner.insert(key.clone(), worker) {
                assert_eq!(
                    other, worker,
                    "{key} written by workers {other} and {worker}"
                );
            }
        }
    }
    let expected = reference(&messages, 60_000, 60_000, 5_000);
    assert_eq!(
        owner.len(),
        expected.len(),
        "every key written, once per owner"
    );
    let per_worker: Vec<usize> = (0..3)
        .map(|w| owner.values().filter(|o| **o == w).count())
        .collect();
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "keys spread over all workers: {per_worker:?}"
    );
}

#[test]
fn missing_topic_and_missing_database_fail_naming_the_flag() {
    let out = maxq(&strs(&run_args(&unique("nosuchtopic"), "g", &[])));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--topic"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let topic = unique("nodb");
    create_topic(&topic, 1);
    produce(&topic, &stream(6, 1, 2, 10, 100, 0));
    let mut args = run_args(&topic, &unique("group"), &[]);
    args.extend(v1_flags(&unique("nosuchdb"), "telemetry_1m"));
    let out = maxq(&strs(&args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--influx-db"), "{stderr}");
}

/// The group's committed offsets of `topic`'s partitions (`None` before any commit), next
/// to their end offsets.
fn committed_and_end(topic: &str, group: &str, partitions: i32) -> Vec<(Option<i64>, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    for p in 0..partitions {
        wanted.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(wanted, std::time::Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, std::time::Duration::from_secs(10))
                .unwrap();
            let offset = match committed.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            (offset, high)
        })
        .collect()
}

#[test]
fn until_end_commits_the_end_offsets_for_lag_tooling() {
    let topic = unique("commit");
    create_topic(&topic, 3);
    let messages = stream(10, 3, 9, 700, 60, 0);
    produce(&topic, &messages);
    let group = unique("group");
    maxq_ok(&strs(&run_args(
        &topic,
        &group,
        &[
            "-w",
            "2",
            "--output-dir",
            tempfile::tempdir().unwrap().path().to_str().unwrap(),
        ],
    )));
    for (p, (offset, high)) in committed_and_end(&topic, &group, 3).into_iter().enumerate() {
        assert_eq!(
            offset,
            Some(high),
            "partition {p}: committed {offset:?}, end {high}"
        );
    }
}

#[test]
fn a_caught_up_streaming_run_commits_a_lag_near_zero() {
    // Streaming, the newest windows stay open, so a restart must replay from their first
    // readings (the resume log has that); the group offset still says how far the run
    // has read and durably accounted for.
    let topic = unique("lag");
    create_topic(&topic, 2);
    produce(&topic, &stream(11, 2, 6, 500, 60, 0));
    let group = unique("group");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(common::run_args(&brokers(), &topic, &group))
        .args(["--commit-interval", "200ms", "--epoch", "100ms"])
        .args([
            "--output-dir",
            tempfile::tempdir().unwrap().path().to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    wait_until("the group's lag reaching 0", 30, || {
        committed_and_end(&topic, &group, 2)
            .iter()
            .all(|(offset, high)| *offset == Some(*high))
    });
    let (status, _) = sigterm(&mut child);
    assert!(status.success(), "{status}");
    let resume = maxq::pipeline::commit::resume_log::load(&resume_config(&topic, &group)).unwrap();
    for (p, (_, high)) in committed_and_end(&topic, &group, 2).into_iter().enumerate() {
        let point = resume[&(p as i32)];
        assert!(
            point.offset < high,
            "partition {p}: the resume point stays at the open windows' first readings: {point:?}"
        );
    }
}
