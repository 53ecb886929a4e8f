//! Input that used to poison a streaming run: a reading with a wild clock, which moved the
//! event time of every quiet partition past its open windows, and readings near `f64::MAX`,
//! whose moments overflowed so that upserts kept stale fields.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn reading(partition: i32, sensor: &str, ts: i64, value: f64) -> Message {
    Message {
        partition,
        key: sensor.to_owned(),
        payload: serde_json::json!({"sensor": sensor, "ts": ts, "value": value}).to_string(),
    }
}

/// `maxq run` streaming `topic` into `db` with a short idle timeout and epoch.
fn streaming(topic: &str, db: &str, extra: &[&str]) -> (Child, ProgressWatch) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(run_args(&brokers(), topic, &unique("g")))
        .args(v1_flags(db, "telemetry_1m"))
        .args(["--idle-timeout", "1s", "--epoch", "100ms"])
        .args(["--progress-interval", "200ms"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watch = ProgressWatch::follow(&mut child);
    (child, watch)
}

#[test]
fn a_reading_dated_2100_is_malformed_and_cannot_expire_a_quiet_partitions_window() {
    let topic = unique("clock");
    create_topic(&topic, 2);
    let db = unique("db");
    influx_create_db(&db);
    let window = BASE_MS;
    let mut messages = vec![reading(0, "p0", window + 1_000, 1.0)];
    messages.extend((0..10).map(|i| reading(1, "p1", window + 2_000 + i * 1_000, i as f64)));
    produce(&topic, &messages);
    let (mut child, watch) = streaming(&topic, &db, &["-w", "2", "--emit", "final"]);
    wait_until("reading the first burst", 30, || watch.readings() == 11);
    // Partition 0's producer clock is now; the reading claims 2100.
    let wild = reading(0, "p0", 4_102_444_800_000, 2.0);
    produce(&topic, std::slice::from_ref(&wild));
    // Partition 1 stays quiet past --idle-timeout, so only partition 0 holds the
    // pipeline's watermark.
    std::thread::sleep(Duration::from_secs(3));
    let late: Vec<Message> = (10..20)
        .map(|i| reading(1, "p1", window + 2_000 + i * 1_000, i as f64))
        .collect();
    produce(&topic, &late);
    let closing = [
        reading(0, "p0", window + 180_000, 3.0),
        reading(1, "p1", window + 180_000, 3.0),
    ];
    produce(&topic, &closing);
    wait_until("both sensors' first window written", 30, || {
        influx_points(&db, "telemetry_1m").len() >= 2
    });
    let (status, _) = sigterm(&mut child);
    assert!(status.success(), "{status}: {}", watch.log());
    let mut expected = reference(
        &[messages.clone(), late.clone()].concat(),
        60_000,
        60_000,
        5_000,
    );
    expected.retain(|(_, start), _| *start == window);
    let mut actual = influx_points(&db, "telemetry_1m");
    actual.retain(|(_, start), _| *start == window);
    assert_same("the window before the wild clock", &actual, &expected);
    assert_eq!(actual[&("p1".to_owned(), window)].count, 20);
    assert!(
        watch.log().contains("malformed=1"),
        "the 2100 reading is counted malformed: {}",
        watch.log()
    );
}

/// Mean and sample stddev computed at a scale where nothing overflows, independently of
/// maxq: the values divided by 2^1000, summed in two passes, multiplied back.
fn scaled_moments(values: &[f64]) -> (f64, f64) {
    let k = 2f64.powi(1000);
    let scaled: Vec<f64> = values.iter().map(|v| v / k).collect();
    let n = scaled.len() as f64;
    let mean = scaled.iter().sum::<f64>() / n;
    let var = scaled.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean * k, (var.sqrt() * k).min(f64::MAX))
}

#[test]
fn readings_near_f64_max_keep_every_field_finite_and_each_upsert_whole() {
    let topic = unique("huge");
    create_topic(&topic, 1);
    let db = unique("db");
    influx_create_db(&db);
    let window = BASE_MS;
    let small = [
        reading(0, "big", window + 1_000, 1.0),
        reading(0, "big", window + 2_000, 2.0),
        reading(0, "dbl", window + 1_000, 1.0),
        reading(0, "dbl", window + 2_000, 2.0),
    ];
    produce(&topic, &small);
    let (mut child, watch) = streaming(&topic, &db, &["--emit", "updates"]);
    let point = |sensor: &str| {
        influx_points(&db, "telemetry_1m")
            .get(&(sensor.to_owned(), window))
            .cloned()
    };
    wait_until("the first values written", 30, || {
        point("big").is_some_and(|p| p.count == 2) && point("dbl").is_some_and(|p| p.count == 2)
    });
    let huge = [
        reading(0, "big", window + 3_000, 1.7e308),
        reading(0, "big", window + 4_000, 1.6e308),
        reading(0, "big", window + 5_000, 1e155),
        reading(0, "dbl", window + 3_000, f64::MAX),
        reading(0, "dbl", window + 4_000, -f64::MAX),
    ];
    produce(&topic, &huge);
    wait_until("the huge values written", 30, || {
        point("big").is_some_and(|p| p.count == 5) && point("dbl").is_some_and(|p| p.count == 4)
    });
    let (status, _) = sigterm(&mut child);
    assert!(status.success(), "{status}: {}", watch.log());
    for (sensor, values) in [
        ("big", vec![1.0, 2.0, 1.7e308, 1.6e308, 1e155]),
        ("dbl", vec![1.0, 2.0, f64::MAX, -f64::MAX]),
    ] {
        let p = point(sensor).unwrap();
        let (mean, stddev) = scaled_moments(&values);
        // f64 moments are exact to rounding relative to the largest magnitude read.
        let largest = values.iter().fold(1.0, |a: f64, v| a.max(v.abs()));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * largest;
        assert!(close(p.mean, mean), "{sensor}: mean {} vs {mean}", p.mean);
        assert!(
            close(p.stddev, stddev),
            "{sensor}: stddev {} vs {stddev} (a stale field would be the first epoch's)",
            p.stddev
        );
        assert_eq!(p.min, values.iter().cloned().fold(f64::INFINITY, f64::min));
        assert_eq!(
            p.max,
            values.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        );
    }
}
