//! The embedded demo, what `cargo run --release` runs: no services, under a minute, its
//! per-minute CRS-11 stage-1 velocity table equals an independent computation from the
//! committed capture, and its picture draws the minutes the table prints.

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

/// One drawn element: its position and, for text, its content, anchor and colour.
#[derive(Clone, Debug)]
struct Drawn {
    x: f64,
    y: f64,
    text: String,
    anchor: String,
    color: String,
}

/// A linear map from pixels to values, fitted through the axis' outermost labels.
struct Axis {
    pixel: (f64, f64),
    value: (f64, f64),
}

impl Axis {
    fn through(mut labels: Vec<(f64, f64)>) -> Axis {
        labels.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(labels.len() >= 2, "an axis needs two labels: {labels:?}");
        let (first, last) = (labels[0], labels[labels.len() - 1]);
        Axis {
            pixel: (first.0, last.0),
            value: (first.1, last.1),
        }
    }

    /// Value units per pixel.
    fn per_pixel(&self) -> f64 {
        ((self.value.1 - self.value.0) / (self.pixel.1 - self.pixel.0)).abs()
    }

    fn value(&self, pixel: f64) -> f64 {
        self.value.0
            + (pixel - self.pixel.0) * (self.value.1 - self.value.0) / (self.pixel.1 - self.pixel.0)
    }
}

/// One stacked panel of the picture, read as a person reads it: the points drawn, the
/// axes from their labels.
struct Panel {
    points: Vec<(f64, f64)>,
    texts: Vec<Drawn>,
    /// Vertical lines drawn in each colour: colour → x pixels.
    verticals: BTreeMap<String, Vec<f64>>,
    x: Axis,
    y: Axis,
}

/// The panels of the SVG, by the sensor named on their vertical axis.
fn panels(svg: &str) -> BTreeMap<String, Panel> {
    let doc = roxmltree::Document::parse(svg).expect("the picture is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let num = |node: roxmltree::Node, name: &str| -> f64 {
        node.attribute(name).unwrap().parse().unwrap()
    };
    let mut texts = Vec::new();
    let mut titles = Vec::new();
    let mut points = Vec::new();
    let mut verticals = Vec::new();
    for node in doc.descendants().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "text" => {
                let drawn = Drawn {
                    x: num(node, "x"),
                    y: num(node, "y"),
                    text: node.text().unwrap_or("").trim().to_owned(),
                    anchor: node.attribute("text-anchor").unwrap_or("").to_owned(),
                    color: node.attribute("fill").unwrap_or("").to_owned(),
                };
                if node
                    .attribute("transform")
                    .is_some_and(|t| t.starts_with("rotate(270"))
                {
                    titles.push(drawn);
                } else {
                    texts.push(drawn);
                }
            }
            "circle" => points.push((num(node, "cx"), num(node, "cy"))),
            "polyline" | "line" => {
                let xy: Vec<(f64, f64)> = match node.attribute("points") {
                    Some(p) => p
                        .split_whitespace()
                        .map(|xy| {
                            let (x, y) = xy.split_once(',').unwrap();
                            (x.parse().unwrap(), y.parse().unwrap())
                        })
                        .collect(),
                    None => vec![
                        (num(node, "x1"), num(node, "y1")),
                        (num(node, "x2"), num(node, "y2")),
                    ],
                };
                if xy.len() == 2 && xy[0].0 == xy[1].0 && xy[0].1 != xy[1].1 {
                    let color = node.attribute("stroke").unwrap_or("").to_owned();
                    verticals.push((color, xy[0].0, (xy[0].1 + xy[1].1) / 2.0));
                }
            }
            _ => {}
        }
    }
    // Each element belongs to the panel whose axis title is nearest vertically.
    let nearest = |y: f64| -> usize {
        (0..titles.len())
            .min_by(|&a, &b| (titles[a].y - y).abs().total_cmp(&(titles[b].y - y).abs()))
            .unwrap()
    };
    titles
        .iter()
        .enumerate()
        .map(|(i, title)| {
            let texts: Vec<Drawn> = texts
                .iter()
                .filter(|t| nearest(t.y) == i)
                .cloned()
                .collect();
            let mut lines: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for (color, x, _) in verticals.iter().filter(|v| nearest(v.2) == i) {
                lines.entry(color.clone()).or_default().push(*x);
            }
            let y = Axis::through(
                texts
                    .iter()
                    .filter(|t| t.anchor == "end")
                    .filter_map(|t| Some((t.y, t.text.parse::<f64>().ok()?)))
                    .collect(),
            );
            let x = Axis::through(
                texts
                    .iter()
                    .filter(|t| t.anchor == "middle")
                    .filter_map(|t| Some((t.x, flight_seconds(&t.text)? as f64)))
                    .collect(),
            );
            let panel = Panel {
                points: points
                    .iter()
                    .copied()
                    .filter(|p| nearest(p.1) == i)
                    .collect(),
                texts,
                verticals: lines,
                x,
                y,
            };
            (
                title.text.split_whitespace().next().unwrap().to_owned(),
                panel,
            )
        })
        .collect()
}

/// The marked events' flight times, s, from the dataset: (label, seconds).
fn marked_events() -> Vec<(&'static str, f64)> {
    let text = std::fs::read_to_string(format!("{CRS11}/events.jsonl")).unwrap();
    let mut events = Vec::new();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        for (name, label) in [("maxq", "Max-Q"), ("meco", "MECO")] {
            if let Some(seconds) = event[name].as_f64() {
                events.push((label, seconds));
            }
        }
    }
    assert_eq!(events.len(), 2, "max-Q and MECO are in the dataset");
    events
}

#[test]
fn the_picture_draws_the_printed_minutes_and_marks_max_q_and_meco() {
    let dir = tempfile::tempdir().unwrap();
    let run = demo(dir.path());
    let path = dir.path().join("crs11-stage1.svg");
    assert!(
        run.stdout.contains(&path.display().to_string()),
        "the demo prints where the picture is: {}",
        run.stdout
    );
    let svg = std::fs::read_to_string(&path).unwrap();
    let panels = panels(&svg);
    assert_eq!(
        panels.keys().collect::<Vec<_>>(),
        ["stage1.altitude", "stage1.velocity"]
    );
    for (sensor, panel) in &panels {
        let printed = printed_minutes(&run.stdout, sensor);
        let mut means = panel.points.clone();
        means.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(
            means.len(),
            printed.len(),
            "{sensor}: one mean drawn per printed minute"
        );
        // A drawn point is an integer pixel: within a pixel and a half of the value.
        let (x_tolerance, y_tolerance) = (1.5 * panel.x.per_pixel(), 1.5 * panel.y.per_pixel());
        for ((x, y), (start, (_, mean, _, _))) in means.iter().zip(&printed) {
            let (at, value) = (panel.x.value(*x), panel.y.value(*y));
            assert!(
                (at - (*start as f64 + 30.0)).abs() <= x_tolerance,
                "{sensor}: the mean of the window from T{start:+}s is drawn at T{at:+.1}s, not mid-window"
            );
            assert!(
                (value - mean).abs() <= y_tolerance,
                "{sensor}: the window from T{start:+}s shows mean {value:.2}, the table {mean:.3} (± {y_tolerance:.2})"
            );
        }
        for (label, seconds) in marked_events() {
            let clock = format!("T+{}:{:02}", seconds as i64 / 60, seconds as i64 % 60);
            let text = panel
                .texts
                .iter()
                .find(|t| t.text == format!("{label} {clock}"))
                .unwrap_or_else(|| panic!("{sensor}: no label {label} {clock}"));
            let lines = panel
                .verticals
                .get(&text.color)
                .unwrap_or_else(|| panic!("{sensor}: no line in the colour of {label}"));
            assert!(
                lines
                    .iter()
                    .any(|x| (panel.x.value(*x) - seconds).abs() <= x_tolerance),
                "{sensor}: no line marks {label} at T+{seconds}s"
            );
        }
    }
}
