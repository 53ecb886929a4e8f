//! Points InfluxDB refuses are facts about those points, not about the configuration: they
//! are counted per reason and dead-lettered, the other points of the same request are
//! written, and the pipeline goes on, streaming and after a restart.

mod common;

use common::*;
use rdkafka::Message as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn reading(sensor: &str, ts: i64, value: f64) -> Message {
    Message {
        partition: 0,
        key: sensor.to_owned(),
        payload: serde_json::json!({"sensor": sensor, "ts": ts, "value": value}).to_string(),
    }
}

/// The messages of `topic` (a dead-letter topic), waiting up to 20 s for `count` of them.
fn dead_letters(topic: &str, count: usize) -> Vec<(String, String, String)> {
    let consumer = reader(topic);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < count && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            seen.push((
                header(&m, "maxq.reason"),
                header(&m, "maxq.influx_error"),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            ));
        }
    }
    seen
}

#[test]
fn a_point_beyond_the_retention_policy_is_dead_lettered_and_the_stream_goes_on() {
    let topic = unique("retention");
    let dead = unique("dead");
    create_topic(&topic, 1);
    create_topic(&dead, 1);
    let db = unique("db");
    let url = service("MAXQ_TEST_INFLUX_V1");
    ureq::post(&format!("{url}/query"))
        .send_form(&[(
            "q",
            &format!("CREATE DATABASE \"{db}\" WITH DURATION 1h NAME \"hour\""),
        )])
        .unwrap();
    // Ten readings five minutes ago, one from 1970: InfluxDB 1.x answers the request of
    // eleven points with HTTP 400 `partial write: points beyond retention policy`.
    let recent = now_ms() - 5 * 60_000;
    let mut first: Vec<Message> = (0..10)
        .map(|i| reading(&format!("s{i}"), recent, i as f64))
        .collect();
    // First in the partition, or the lateness rule would drop it.
    first.insert(0, reading("old", 0, 1.0));
    produce(&topic, &first);
    let group = unique("g");
    let mut args = run_args(&brokers(), &topic, &group);
    args.extend(v1_flags(&db, "telemetry_1m"));
    args.extend(["--dead-letter-topic".to_owned(), dead.clone()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(&args)
        .args(["--epoch", "100ms", "--commit-interval", "300ms"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watch = ProgressWatch::follow(&mut child);
    wait_until("the ten recent points", 30, || {
        influx_points(&db, "telemetry_1m").len() == 10
    });
    // The pipeline is not stopped: a later burst is written too.
    let later = now_ms() - 4 * 60_000;
    let second: Vec<Message> = (10..20)
        .map(|i| reading(&format!("s{i}"), later, i as f64))
        .collect();
    produce(&topic, &second);
    wait_until("the second burst's points", 30, || {
        influx_points(&db, "telemetry_1m").len() == 20
    });
    assert!(child.try_wait().unwrap().is_none(), "{}", watch.log());
    let (status, _) = sigterm(&mut child);
    assert!(status.success(), "{status}: {}", watch.log());
    assert!(
        watch.log().contains("InfluxDB refused a point"),
        "the refusal is logged: {}",
        watch.log()
    );
    let refused = dead_letters(&dead, 1);
    assert_eq!(refused.len(), 1, "{refused:?}");
    let (reason, answer, line) = &refused[0];
    assert_eq!(reason, "refused:beyond_retention");
    assert!(answer.contains("beyond retention"), "{answer}");
    assert!(
        line.starts_with("telemetry_1m,sensor=old count=1i,") && line.ends_with(" 0"),
        "{line}"
    );
    // A restart replays what was not yet final, the refused point among it, and does not
    // stop on it either.
    let out = maxq(&strs(
        &[args.clone(), vec!["--until-end".to_owned()]].concat(),
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = reference(&[first, second].concat(), 60_000, 60_000, 5_000);
    expected.retain(|(sensor, _), _| sensor != "old");
    assert_same(
        "every point but the refused one",
        &influx_points(&db, "telemetry_1m"),
        &expected,
    );
}

#[test]
fn a_field_type_conflict_refuses_the_points_counts_them_and_exits_zero() {
    let topic = unique("conflict");
    create_topic(&topic, 1);
    let db = unique("db");
    influx_create_db(&db);
    let url = service("MAXQ_TEST_INFLUX_V1");
    // `count` is already a float field of the measurement in the shard the readings fall
    // in (field types are per shard): maxq writes it as an integer.
    ureq::post(&format!("{url}/write?db={db}&precision=ms"))
        .send_string(&format!("telemetry_1m,sensor=earlier count=1.5 {BASE_MS}"))
        .unwrap();
    let messages: Vec<Message> = (0..7)
        .map(|i| reading(&format!("s{i}"), BASE_MS + i * 1_000, i as f64))
        .collect();
    produce(&topic, &messages);
    let mut args = run_args(&brokers(), &topic, &unique("g"));
    args.push("--until-end".to_owned());
    args.extend(v1_flags(&db, "telemetry_1m"));
    let out = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(&args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("points_refused=field_type_conflict:7"),
        "every point counted under its reason: {stderr}"
    );
    assert!(
        influx_points(&db, "telemetry_1m").len() <= 1,
        "only the earlier point is stored"
    );
}
