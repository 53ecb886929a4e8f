//! `maxq produce` and `maxq generate` against the real broker.

mod common;

use common::*;
use maxq::pipeline::parse::Reading;
use rdkafka::Message as _;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Every message of `topic` as (partition, reading), read with a plain consumer.
fn read_back(topic: &str, expected: usize) -> Vec<(i32, Reading)> {
    let consumer = reader(topic);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push((m.partition(), Reading::parse(m.payload().unwrap()).unwrap()));
        }
    }
    out
}

fn maxq_produce(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .arg("produce")
        .arg("--brokers")
        .arg(brokers())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_produced_file_reads_back_identical_and_each_sensor_in_one_partition() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("readings.jsonl");
    let messages = stream(9, 1, 25, 3_000, 20, 0);
    std::fs::write(
        &file,
        messages
            .iter()
            .map(|m| format!("{}\n", m.payload))
            .collect::<String>(),
    )
    .unwrap();
    let topic = unique("produce");
    let report = maxq_produce(&[
        "--topic",
        &topic,
        "--partitions",
        "3",
        file.to_str().unwrap(),
    ]);
    assert!(report.contains("sent 3000 readings, 0 failed"), "{report}");

    let mut expected: Vec<Reading> = messages
        .iter()
        .map(|m| Reading::parse(m.payload.as_bytes()).unwrap())
        .collect();
    let back = read_back(&topic, expected.len());
    let mut partition_of: BTreeMap<String, i32> = BTreeMap::new();
    for (p, r) in &back {
        assert_eq!(
            *partition_of.entry(r.series.clone()).or_insert(*p),
            *p,
            "{} in two partitions",
            r.series
        );
    }
    let mut actual: Vec<Reading> = back.into_iter().map(|(_, r)| r).collect();
    let order = |a: &Reading, b: &Reading| {
        (&a.series, a.ts_ms, a.value.to_bits()).cmp(&(&b.series, b.ts_ms, b.value.to_bits()))
    };
    expected.sort_by(order);
    actual.sort_by(order);
    assert_eq!(actual, expected);
}

#[test]
fn existing_topic_with_other_partition_count_is_a_clear_error() {
    let topic = unique("parts");
    create_topic(&topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.jsonl");
    std::fs::write(&file, "{\"sensor\":\"a\",\"ts\":0,\"value\":1}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args([
            "produce",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "--partitions",
            "4",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--partitions 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_line_names_file_and_line_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, "{\"sensor\":\"a\",\"ts\":0,\"value\":1}\nnot json\n").unwrap();
    let topic = unique("badline");
    let out = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args([
            "produce",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = maxq_produce(&["--topic", &topic, "--skip-bad", file.to_str().unwrap()]);
    assert!(report.contains("sent 1 readings"), "{report}");
}

#[test]
fn rate_5000_for_3_seconds_sends_15000_in_3_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.jsonl");
    let lines: String = (0..15_000)
        .map(|i| format!("{{\"sensor\":\"s{}\",\"ts\":{i},\"value\":1}}\n", i % 50))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let topic = unique("rate");
    create_topic(&topic, 2);
    let report = maxq_produce(&[
        "--topic",
        &topic,
        "--partitions",
        "2",
        "--rate",
        "5000",
        file.to_str().unwrap(),
    ]);
    // "sent 15000 readings, 0 failed, in 3.05 s: 4918 readings/s"
    assert!(
        report.starts_with("sent 15000 readings, 0 failed"),
        "{report}"
    );
    let seconds: f64 = report
        .split(" in ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (2.7..3.3).contains(&seconds),
        "15 000 readings at --rate 5000 should take 3 s ± 10 %: {report}"
    );
}

#[test]
fn generate_is_deterministic_per_seed() {
    let run = |seed: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_maxq"))
            .args([
                "generate",
                "--sensors",
                "20",
                "--hz",
                "5",
                "--duration",
                "30s",
                "--seed",
                seed,
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let a = run("1");
    assert!(a.len() > 10_000);
    assert_eq!(a, run("1"));
    assert_ne!(a, run("2"));
}

#[test]
fn crs11_through_the_pipeline_shows_meco_and_apogee() {
    let topic = unique("crs11");
    let capture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/datasets/crs-11/stage1_raw.jsonl"
    );
    maxq_produce(&[
        "--topic",
        &topic,
        "--partitions",
        "4",
        "--format",
        "spacex",
        "--launch-time",
        "2017-06-03T21:07:38Z",
        "--stage",
        "stage1",
        capture,
    ]);
    let (args, db) = until_end_into_v1(&topic, &["-w", "2"]);
    maxq_ok(&strs(&args));
    let points = influx_points(&db, "telemetry_1m");
    let launch = chrono::DateTime::parse_from_rfc3339("2017-06-03T21:07:38Z")
        .unwrap()
        .timestamp_millis();
    let minute_of = |t_plus_s: i64| (launch + t_plus_s * 1000).div_euclid(60_000) * 60_000;
    let peak = |sensor: &str| {
        points
            .iter()
            .filter(|((s, _), _)| s == sensor)
            .max_by(|a, b| a.1.max.total_cmp(&b.1.max))
            .map(|((_, start), p)| (*start, p.max))
            .unwrap()
    };
    let (velocity_minute, velocity) = peak("stage1.velocity");
    assert_eq!(
        velocity_minute,
        minute_of(145),
        "highest velocity in the minute of MECO (T+145 s)"
    );
    assert!(
        (1_600.0..1_800.0).contains(&velocity),
        "peak stage-1 velocity {velocity} m/s"
    );
    let (altitude_minute, altitude) = peak("stage1.altitude");
    assert_eq!(
        altitude_minute,
        minute_of(248),
        "highest altitude in the minute of apogee (T+248 s)"
    );
    assert!((110.0..130.0).contains(&altitude), "apogee {altitude} km");
}

#[test]
fn a_closed_broker_port_fails_fast_naming_brokers() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.jsonl");
    std::fs::write(&file, "{\"sensor\":\"a\",\"ts\":0,\"value\":1}\n").unwrap();
    let brokers = closed.to_string();
    let file = file.to_str().unwrap();
    for args in [
        vec!["produce", "--brokers", &brokers, "--topic", "t", file],
        vec!["generate", "--brokers", &brokers, "--topic", "t"],
    ] {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_maxq"))
            .args(&args)
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            elapsed < Duration::from_secs(15),
            "{args:?} took {elapsed:?} to fail"
        );
        assert!(
            stderr.contains(&format!("--brokers {brokers}")) && stderr.contains("port"),
            "{args:?}: the error names --brokers and what to check: {stderr}"
        );
    }
}

#[test]
fn realtime_speed_rebase_now_compresses_event_time_so_no_stamp_runs_ahead() {
    // The first 10 s of the CRS-11 capture, 5 times faster: 2 s of sending.
    let speed = 5.0;
    let capture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/datasets/crs-11/stage1_raw.jsonl"
    ))
    .unwrap();
    let sample: Vec<&str> = capture
        .lines()
        .take_while(|l| {
            let s: serde_json::Value = serde_json::from_str(l).unwrap();
            s["time"].as_f64().unwrap() <= 10.0
        })
        .collect();
    let recorded_ms: Vec<f64> = sample
        .iter()
        .map(|l| {
            let s: serde_json::Value = serde_json::from_str(l).unwrap();
            s["time"].as_f64().unwrap() * 1000.0
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("first-10s.jsonl");
    std::fs::write(&file, sample.join("\n")).unwrap();
    let topic = unique("speed");
    maxq_produce(&[
        "--topic",
        &topic,
        "--partitions",
        "1",
        "--realtime",
        "--speed",
        "5",
        "--rebase-now",
        file.to_str().unwrap(),
    ]);

    // (stamp, the Kafka record's own time: when the producer sent it), in send order.
    let consumer = reader(&topic);
    let mut back: Vec<(i64, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while back.len() < 2 * sample.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let sent_ms = m
                .timestamp()
                .to_millis()
                .expect("the producer sets the record's time");
            let stamp = Reading::parse(m.payload().unwrap()).unwrap().ts_ms;
            back.push((stamp, sent_ms));
        }
    }
    assert_eq!(
        back.len(),
        2 * sample.len(),
        "velocity and altitude per sample"
    );
    for (stamp, sent_ms) in &back {
        assert!(
            *stamp <= sent_ms + 1_000,
            "stamped {} ms after it was sent",
            stamp - sent_ms
        );
    }
    let mut stamps: Vec<i64> = back.iter().map(|(stamp, _)| *stamp).collect();
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), recorded_ms.len(), "one stamp per sample");
    for (stamp, recorded) in stamps.iter().zip(&recorded_ms) {
        let expected = (recorded - recorded_ms[0]) / speed;
        assert!(
            ((stamp - stamps[0]) as f64 - expected).abs() <= 1.0,
            "a sample recorded {recorded} ms in is stamped {} ms after the first, not {expected}",
            stamp - stamps[0]
        );
    }
}
