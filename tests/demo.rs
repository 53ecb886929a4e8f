//! The embedded demo, what `cargo run --release` runs: no services, under a minute, and
//! its per-minute CRS-11 stage-1 velocity table equals an independent computation from the
//! committed capture.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// (count, mean, min, max) per one-minute window start, T+ seconds, from the raw capture.
fn expected_velocity_minutes() -> BTreeMap<i64, (usize, f64, f64, f64)> {
    let launch_ms = chrono::DateTime::parse_from_rfc3339("2017-06-03T21:07:38Z")
        .unwrap()
        .timestamp_millis();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/datasets/crs-11/stage1_raw.jsonl"
    ))
    .unwrap();
    let mut minutes: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for line in text.lines() {
        let sample: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = launch_ms + (sample["time"].as_f64().unwrap() * 1000.0).round() as i64;
        let start = ts.div_euclid(60_000) * 60_000;
        minutes
            .entry((start - launch_ms) / 1000)
            .or_default()
            .push(sample["velocity"].as_f64().unwrap());
    }
    minutes
        .into_iter()
        .map(|(t, v)| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            (t, (v.len(), mean, min, max))
        })
        .collect()
}

#[test]
fn the_demo_runs_alone_and_prints_the_crs11_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(["--output-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "the demo took {elapsed:?}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "a live view is shown while it runs"
    );

    let table = stdout
        .split("sensor=stage1.velocity")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let printed: BTreeMap<i64, (usize, f64, f64, f64)> = table
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let t = cols.first()?.strip_suffix('s')?.parse().ok()?;
            Some((
                t,
                (
                    cols[1].parse().unwrap(),
                    cols[2].parse().unwrap(),
                    cols[3].parse().unwrap(),
                    cols[4].parse().unwrap(),
                ),
            ))
        })
        .collect();
    let expected = expected_velocity_minutes();
    assert_eq!(
        printed.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (t, (count, mean, min, max)) in &expected {
        let p = printed[t];
        let close = |a: f64, b: f64| (a - b).abs() <= 0.0005 + 1e-9 * b.abs();
        assert!(
            p.0 == *count && close(p.1, *mean) && close(p.2, *min) && close(p.3, *max),
            "T+{t}s: printed {p:?}, expected {:?}",
            (count, mean, min, max)
        );
    }
    let written: usize = (0..2)
        .map(|w| {
            std::fs::read_to_string(dir.path().join(format!("worker-{w}.lp")))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert!(
        written >= expected.len(),
        "the points went to the line-protocol files"
    );
}
