//! `maxq-bench` at a reduced size against the real broker and InfluxDB: every section
//! produces its figures, and every run's results are right (the bench exits non-zero when a
//! run's points do not account for every reading loaded).

mod common;

use common::*;

/// The table rows of the section headed `heading` in `markdown`.
fn rows<'a>(markdown: &'a str, heading: &str) -> Vec<Vec<&'a str>> {
    let section = markdown
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?} in:\n{markdown}"));
    section
        .split("\n###")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ---"))
        .skip(1)
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect()
}

#[test]
fn bench_produces_every_figure_with_correct_results() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("BENCHMARKS.md");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_maxq-bench"))
        .args([
            "--brokers",
            &brokers(),
            "--influx-url",
            &service("MAXQ_TEST_INFLUX_V1"),
            "--readings",
            "20000",
            "--partitions",
            "4",
            "--sensors",
            "50",
            "--workers",
            "1,2",
            "--latency-rate",
            "2000",
            "--latency-duration",
            "3s",
            "--keys",
            "5000",
            "--endless-duration",
            "4s",
            "--endless-rate",
            "2000",
            "--report",
            report.to_str().unwrap(),
            "--work-dir",
            dir.path().to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "maxq-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let markdown = String::from_utf8(out.stdout).unwrap();

    let throughput = rows(&markdown, "### Throughput and CPU per reading");
    let runs: Vec<(&str, &str)> = throughput.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        runs,
        [
            ("external", "plain consumer: read"),
            ("external", "plain consumer: read + parse"),
            ("external", "plain consumer: read in batches + parse"),
            ("external", "`maxq run --until-end -w 1`"),
            ("external", "`maxq run --until-end -w 2`"),
            ("in-process", "plain consumer: read"),
            ("in-process", "plain consumer: read + parse"),
            ("in-process", "plain consumer: read in batches + parse"),
            ("in-process", "`maxq run --until-end -w 1`"),
            ("in-process", "`maxq run --until-end -w 2`"),
            (
                "in-process",
                "`maxq run --until-end -w 2`, one more partition, idle"
            ),
        ]
    );
    for row in &throughput {
        assert_eq!(row[2], "20\u{202f}000", "{row:?}");
        assert!(row[12].starts_with('✓'), "{row:?}");
        let cpu_us: f64 = row[6].parse().unwrap();
        assert!(cpu_us > 0.0, "{row:?}");
        if row[1].starts_with("`maxq") {
            assert!(
                row[12].ends_with("sum of count in InfluxDB 20000"),
                "{row:?}"
            );
            // The idle-partition run is compared with the run without, in the targets.
            if !row[1].ends_with("idle") {
                for ratio in &row[8..=10] {
                    assert!(ratio.parse::<f64>().unwrap() > 0.0, "ratios: {row:?}");
                }
            }
        }
    }

    let latency = rows(&markdown, "### Update latency");
    let brokers: Vec<&str> = latency.iter().map(|r| r[0]).collect();
    assert_eq!(brokers, ["in-process", "external"]);
    for row in &latency {
        let probes: usize = row[2].parse().unwrap();
        assert!(probes >= 40, "a probe every 50 ms for 3 s: {row:?}");
        assert_eq!(row[3], row[2], "every probe acknowledged: {row:?}");
        let p99: f64 = row[5].parse().unwrap();
        let broker_p50: f64 = row[9].parse().unwrap();
        assert!(p99 > 0.0 && broker_p50 > 0.0, "{row:?}");
        let (sent, counted) = row[12].split_once(" / ").unwrap();
        assert_eq!(sent, counted, "every reading counted: {row:?}");
    }

    let keys = rows(&markdown, "### Memory per live key");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0][2], "baseline");
    let live: u64 = keys[1][0].replace('\u{202f}', "").parse().unwrap();
    assert!((4_900..=5_000).contains(&live), "{keys:?}");

    let endless = rows(&markdown, "### RSS on an endless stream");
    assert_eq!(endless.len(), 4);
    assert!(markdown.contains("### Targets"));
    assert!(
        markdown.contains("| readings/s beside an idle partition ≥ 0.8× without one (in-process broker, `-w 2`) | "),
        "{markdown}"
    );

    let written = std::fs::read_to_string(&report).unwrap();
    assert!(written.starts_with("# maxq benchmarks"));
    assert!(written.contains(markdown.trim()));
}
