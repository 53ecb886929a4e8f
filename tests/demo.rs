//! The embedded demo, what `cargo run --release` runs: no services, under a minute, its
//! per-minute CRS-11 stage-1 velocity table equals an independent computation from the
//! committed capture.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// (count, mean, min, max) of a window.
type Minute = (usize, f64, f64, f64);

const CRS11: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/crs-11");

/// What a demo run printed.
struct Run {
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs the demo with `--output-dir dir`.
fn demo(dir: &Path) -> Run {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(["--output-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let run = Run {
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    };
    assert!(out.status.success(), "{}", run.stderr);
    run
}

/// (count, mean, min, max) per one-minute window start, T+ seconds, from the raw capture.
fn expected_velocity_minutes() -> BTreeMap<i64, Minute> {
    let launch_ms = chrono::DateTime::parse_from_rfc3339("2017-06-03T21:07:38Z")
        .unwrap()
        .timestamp_millis();
    let text = std::fs::read_to_string(format!("{CRS11}/stage1_raw.jsonl")).unwrap();
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

/// Seconds of a flight time written `T-0:38` or `T+2:25`.
fn flight_seconds(text: &str) -> Option<i64> {
    let sign = match text.get(..2)? {
        "T+" => 1,
        "T-" => -1,
        _ => return None,
    };
    let (minutes, seconds) = text[2..].split_once(':')?;
    Some(sign * (minutes.parse::<i64>().ok()? * 60 + seconds.parse::<i64>().ok()?))
}

/// The table printed for `sensor`: window start (T+ s) → (count, mean, min, max).
fn printed_minutes(stdout: &str, sensor: &str) -> BTreeMap<i64, Minute> {
    let table = stdout
        .split(&format!("sensor={sensor}"))
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    table
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let t = flight_seconds(cols.first()?)?;
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
        .collect()
}

#[test]
fn the_demo_runs_alone_and_prints_the_crs11_minutes() {
    let dir = tempfile::tempdir().unwrap();
    // What an earlier run left: it must not add to this run's output.
    std::fs::write(dir.path().join("worker-0.lp"), "earlier run\n").unwrap();
    std::fs::write(dir.path().join("worker-5.lp"), "earlier run\n").unwrap();
    let run = demo(dir.path());
    assert!(
        run.elapsed < Duration::from_secs(60),
        "the demo took {:?}",
        run.elapsed
    );
    assert!(
        !run.stderr.trim().is_empty(),
        "a live view is shown while it runs"
    );
    assert!(
        !run.stderr.contains("PartitionEOF"),
        "reaching a partition's end is expected, not a warning: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\x1b'),
        "standard error is not a terminal here: plain lines, no cursor movement"
    );

    let printed = printed_minutes(&run.stdout, "stage1.velocity");
    assert!(
        run.stdout.contains("\n T-0:38 "),
        "the first window starts 38 s before lift-off: {}",
        run.stdout
    );
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
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".lp"))
        .collect();
    files.sort();
    assert_eq!(files, ["worker-0.lp", "worker-1.lp"], "one file per worker");
    let mut written = 0;
    for file in &files {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(!text.contains("earlier run"), "{file} starts fresh");
        written += text.lines().count();
    }
    assert!(
        written >= expected.len(),
        "the points went to the line-protocol files"
    );
}
