//! The results as Markdown: the machine, the versions and the exact command, then one table
//! per section and the targets; added to the front of the report file so that runs can be
//! compared over time.

use super::embedded::Broker;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::child::Usage;
use super::latency::{quantile, LatencyRun};
use super::memory::{bytes_per_key, EndlessRun, KeysRun};

/// What a throughput row ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// The plain consumer, reading only.
    Read,
    /// The plain consumer, reading and parsing.
    ReadParse,
    /// The plain consumer, reading in batches (as maxq does) and parsing.
    ReadParseBatch,
    /// `maxq run --until-end -w N`.
    Maxq(usize),
    /// `maxq run --until-end -w N --rollups …`.
    MaxqRollups(usize),
    /// `maxq run --until-end -w N` over the same readings in a topic with one more
    /// partition, which stays idle.
    MaxqQuiet(usize),
}

/// One throughput measurement.
#[derive(Clone, Debug)]
pub struct Row {
    /// Source of the readings.
    pub broker: Broker,
    /// What ran.
    pub kind: RunKind,
    /// Readings processed.
    pub readings: u64,
    /// The child's figures.
    pub usage: Usage,
    /// CPU of the in-process broker during the run.
    pub broker_cpu: Option<Duration>,
    /// The correctness check: what it compared, and whether it held.
    pub check: (String, bool),
}

impl Row {
    /// CPU microseconds per reading.
    pub fn cpu_us_per_reading(&self) -> f64 {
        self.usage.cpu.as_secs_f64() * 1e6 / self.readings.max(1) as f64
    }

    /// Readings per second of wall time.
    pub fn rate(&self) -> f64 {
        self.readings as f64 / self.usage.wall.as_secs_f64().max(1e-9)
    }
}

/// Everything measured in one benchmark run.
#[derive(Debug, Default)]
pub struct Results {
    /// The sizes and the command, as one Markdown line each.
    pub setup: Vec<String>,
    /// Throughput rows, in the order run.
    pub rows: Vec<Row>,
    /// The latency runs.
    pub latency: Vec<LatencyRun>,
    /// The memory runs, the baseline first.
    pub keys: Vec<KeysRun>,
    /// The same with roll-ups, in the same order.
    pub rollup_keys: Vec<KeysRun>,
    /// The roll-up lengths of the runs with roll-ups.
    pub rollups: Vec<Duration>,
    /// The endless run.
    pub endless: Option<EndlessRun>,
    /// Sections that failed, with their error.
    pub failed: Vec<String>,
}

/// The targets of the issue, checked against the figures: CPU per reading over the plain
/// consumer's read + parse of the same broker.
pub const MAX_CPU_RATIO: f64 = 1.3;
/// Peak RSS with the most workers over that with one, the same broker.
pub const MAX_RSS_RATIO: f64 = 1.25;
/// Embedded throughput target with the most workers, readings/s.
pub const MIN_EMBEDDED_RATE: f64 = 1_000_000.0;
/// Throughput beside an idle partition, over throughput without one: a fetch of only
/// partitions at their end, held by the broker, must not hold up the backlog (0.53-0.60×
/// when it did; the runs vary by about 0.1).
pub const MIN_QUIET_RATIO: f64 = 0.8;
/// p99 update latency target.
pub const MAX_P99: Duration = Duration::from_millis(250);
/// Bytes per live key target.
pub const MAX_BYTES_PER_KEY: f64 = 200.0;
/// Most CPU per reading with roll-ups, relative to the same run without.
pub const MAX_ROLLUP_CPU_RATIO: f64 = 1.2;
/// Most bytes per live (sensor, level) key with roll-ups, relative to the bytes per live key
/// without.
pub const MAX_ROLLUP_BYTES_RATIO: f64 = 1.5;
/// RSS counts as flat when its peak in the last quarter of the endless run is at most this
/// much above its peak in the second quarter (state is complete after the first windows).
pub const MAX_RSS_GROWTH: f64 = 0.10;

const MIB: f64 = 1024.0 * 1024.0;

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

fn mark(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

impl Results {
    fn ceiling(&self, broker: Broker, kind: RunKind) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.broker == broker && r.kind == kind)
    }

    /// Each run with roll-ups, and the run without of the same broker and worker count.
    fn rollup_pairs(&self) -> impl Iterator<Item = (&Row, &Row, usize)> {
        self.rows.iter().filter_map(|with| match with.kind {
            RunKind::MaxqRollups(w) => self
                .ceiling(with.broker, RunKind::Maxq(w))
                .map(|without| (with, without, w)),
            _ => None,
        })
    }

    /// Each memory run with roll-ups, and the run without over the same sensors.
    fn rollup_keys_pairs(&self) -> impl Iterator<Item = (&KeysRun, &KeysRun)> {
        self.rollup_keys.iter().zip(&self.keys)
    }

    fn rollups_flag(&self) -> String {
        super::pipeline::rollups_flag(&self.rollups)
    }

    fn label(&self, kind: RunKind) -> String {
        match kind {
            RunKind::Read => "plain consumer: read".to_owned(),
            RunKind::ReadParse => "plain consumer: read + parse".to_owned(),
            RunKind::ReadParseBatch => "plain consumer: read in batches + parse".to_owned(),
            RunKind::Maxq(w) => format!("`maxq run --until-end -w {w}`"),
            RunKind::MaxqRollups(w) => format!(
                "`maxq run --until-end -w {w} --rollups {}`",
                self.rollups_flag()
            ),
            RunKind::MaxqQuiet(w) => {
                format!("`maxq run --until-end -w {w}`, one more partition, idle")
            }
        }
    }

    /// The Markdown of this run, headed by `title`.
    pub fn markdown(&self, title: &str) -> String {
        let mut md = format!("## {title}\n\n");
        for line in &self.setup {
            let _ = writeln!(md, "- {line}");
        }
        if !self.rows.is_empty() {
            md.push_str(&self.throughput_table());
        }
        if self
            .rows
            .iter()
            .any(|r| matches!(r.kind, RunKind::MaxqRollups(_)))
        {
            md.push_str(&self.rollups_table());
        }
        if !self.latency.is_empty() {
            md.push_str(&latency_table(&self.latency));
        }
        if !self.keys.is_empty() {
            md.push_str(&self.keys_table());
        }
        if !self.rollup_keys.is_empty() {
            md.push_str(&self.rollup_keys_table());
        }
        if let Some(endless) = &self.endless {
            md.push_str(&endless_table(endless));
        }
        md.push_str(&self.targets_table());
        if !self.failed.is_empty() {
            md.push_str("\n### Sections that failed\n\n");
            for failure in &self.failed {
                let _ = writeln!(md, "- {failure}");
            }
        }
        md
    }

    fn throughput_table(&self) -> String {
        let mut md = String::from("\n### Throughput and CPU per reading\n\n");
        md.push_str("CPU is the child process's user + system time (`wait4`), peak RSS its `VmHWM`; the in-process broker's CPU is the benchmark process's own, shown apart. Ratios compare CPU per reading with the plain consumer's over the same broker in the same run. The plain consumer polls message by message, as rdkafka's API does; maxq reads in batches (librdkafka's batch consume), which spares each poll's clock reads and event handling, so the last ratio is against a plain consumer that does the same.\n\n");
        md.push_str("| broker | run | readings | wall s | readings/s | CPU s | CPU µs/reading | peak RSS MiB | × read | × read+parse | × batches+parse | broker CPU s | check |\n");
        md.push_str(
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
        );
        for row in self
            .rows
            .iter()
            .filter(|r| !matches!(r.kind, RunKind::MaxqRollups(_)))
        {
            let ratio = |kind| {
                self.ceiling(row.broker, kind)
                    .filter(|_| matches!(row.kind, RunKind::Maxq(_)))
                    .map(|c| format!("{:.2}", row.cpu_us_per_reading() / c.cpu_us_per_reading()))
                    .unwrap_or_else(|| "—".to_owned())
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {} | {} {} |",
                row.broker.label(),
                self.label(row.kind),
                thousands(row.readings),
                row.usage.wall.as_secs_f64(),
                thousands(row.rate() as u64),
                row.usage.cpu.as_secs_f64(),
                row.cpu_us_per_reading(),
                row.usage.peak_rss_bytes as f64 / MIB,
                ratio(RunKind::Read),
                ratio(RunKind::ReadParse),
                ratio(RunKind::ReadParseBatch),
                row.broker_cpu
                    .map(|c| format!("{:.2}", c.as_secs_f64()))
                    .unwrap_or_else(|| "—".to_owned()),
                if row.check.1 { "✓" } else { "✗" },
                row.check.0,
            );
        }
        md
    }

    fn keys_table(&self) -> String {
        let mut md = String::from("\n### Memory per live key\n\n");
        let _ = writeln!(
            md,
            "One reading per sensor, all in one window, read by a streaming `maxq run -w 1 --emit final` from the in-process broker with `-X queued.max.messages.kbytes={}`; the window never becomes final, so every key stays live. RSS is taken once the run has counted every reading and {} s more have passed (maxq hands free heap memory back at each of its looks, every {} s, that finds nothing read since the one before); bytes/key = (RSS − RSS of the {}-key baseline) / (keys − baseline keys).\n",
            super::memory::QUEUE_KIB,
            2 * maxq::run::TRIM_EVERY.as_secs() + 1,
            maxq::run::TRIM_EVERY.as_secs(),
            thousands(super::memory::BASELINE_KEYS as u64)
        );
        md.push_str(
            "| live keys | RSS MiB | bytes/key | peak RSS MiB |\n| ---: | ---: | ---: | ---: |\n",
        );
        let baseline = &self.keys[0];
        for run in &self.keys {
            let per_key = if std::ptr::eq(run, baseline) {
                "baseline".to_owned()
            } else {
                format!("{:.0}", bytes_per_key(run, baseline))
            };
            let _ = writeln!(
                md,
                "| {} | {:.1} | {per_key} | {:.1} |",
                thousands(run.live_keys()),
                run.live_rss_bytes as f64 / MIB,
                run.usage.peak_rss_bytes as f64 / MIB
            );
        }
        md
    }

    fn rollups_table(&self) -> String {
        let mut md = String::from("\n### Roll-ups: CPU per reading\n\n");
        let names = super::pipeline::measurements(&self.rollups)
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            md,
            "Each run with `--rollups {}` read the same topic as the run without roll-ups above, right after it, and wrote {names}. Measured as above; × without: its CPU per reading over that of the run without roll-ups of the same broker and worker count. Its check: the sum of `count` in each measurement equals the readings loaded.\n",
            self.rollups_flag()
        );
        md.push_str("| broker | run | readings | wall s | readings/s | CPU s | CPU µs/reading | without: CPU µs/reading | × without | peak RSS MiB | without: peak RSS MiB | broker CPU s | check |\n");
        md.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
        for (with, without, _) in self.rollup_pairs() {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} | {} {} |",
                with.broker.label(),
                self.label(with.kind),
                thousands(with.readings),
                with.usage.wall.as_secs_f64(),
                thousands(with.rate() as u64),
                with.usage.cpu.as_secs_f64(),
                with.cpu_us_per_reading(),
                without.cpu_us_per_reading(),
                with.cpu_us_per_reading() / without.cpu_us_per_reading(),
                with.usage.peak_rss_bytes as f64 / MIB,
                without.usage.peak_rss_bytes as f64 / MIB,
                with.broker_cpu
                    .map(|c| format!("{:.2}", c.as_secs_f64()))
                    .unwrap_or_else(|| "—".to_owned()),
                if with.check.1 { "✓" } else { "✗" },
                with.check.0,
            );
        }
        md
    }

    fn rollup_keys_table(&self) -> String {
        let mut md = String::from("\n### Roll-ups: memory per (sensor, level)\n\n");
        let baseline = &self.rollup_keys[0];
        let _ = writeln!(
            md,
            "The same topics read again with `--rollups {}`: each sensor then has one live key per level, {} in all (its minute and the longer windows holding it, none of them final). bytes per (sensor, level) = (RSS − RSS of the {}-sensor baseline with roll-ups) / ((sensors − baseline sensors) × {}); × without: over the bytes/key without roll-ups of the same sensors above.\n",
            self.rollups_flag(),
            baseline.levels,
            thousands(baseline.sensors),
            baseline.levels,
        );
        md.push_str("| sensors | live keys | RSS MiB | bytes per (sensor, level) | without: bytes/key | × without | peak RSS MiB |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        let without_baseline = &self.keys[0];
        for (i, (with, without)) in self.rollup_keys_pairs().enumerate() {
            let (per_key, per_key_without, ratio) = if i == 0 {
                ("baseline".to_owned(), "baseline".to_owned(), "—".to_owned())
            } else {
                let (w, wo) = (
                    bytes_per_key(with, baseline),
                    bytes_per_key(without, without_baseline),
                );
                (
                    format!("{w:.0}"),
                    format!("{wo:.0}"),
                    format!("{:.2}", w / wo),
                )
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {per_key} | {per_key_without} | {ratio} | {:.1} |",
                thousands(with.sensors),
                thousands(with.live_keys()),
                with.live_rss_bytes as f64 / MIB,
                with.usage.peak_rss_bytes as f64 / MIB
            );
        }
        md
    }

    fn targets_table(&self) -> String {
        let mut lines = Vec::new();
        for row in &self.rows {
            let RunKind::Maxq(w) = row.kind else {
                continue;
            };
            if let Some(c) = self.ceiling(row.broker, RunKind::ReadParse) {
                let ratio = row.cpu_us_per_reading() / c.cpu_us_per_reading();
                lines.push(format!(
                    "| CPU per reading ≤ {MAX_CPU_RATIO}× the plain consumer's read + parse ({} broker, `-w {w}`) | {ratio:.2}× | {} |",
                    row.broker.label(),
                    mark(ratio <= MAX_CPU_RATIO)
                ));
            }
        }
        for broker in [Broker::External, Broker::InProcess] {
            let runs: Vec<(usize, u64)> = self
                .rows
                .iter()
                .filter(|r| r.broker == broker)
                .filter_map(|r| match r.kind {
                    RunKind::Maxq(w) => Some((w, r.usage.peak_rss_bytes)),
                    _ => None,
                })
                .collect();
            let one = runs.iter().find(|(w, _)| *w == 1);
            let most = runs.iter().max_by_key(|(w, _)| *w).filter(|(w, _)| *w > 1);
            if let (Some((_, one)), Some((w, most))) = (one, most) {
                let ratio = *most as f64 / (*one).max(1) as f64;
                lines.push(format!(
                    "| peak RSS with `-w {w}` ≤ {MAX_RSS_RATIO}× with `-w 1` ({} broker) | {ratio:.2}× | {} |",
                    broker.label(),
                    mark(ratio <= MAX_RSS_RATIO)
                ));
            }
        }
        for (with, without, w) in self.rollup_pairs() {
            let ratio = with.cpu_us_per_reading() / without.cpu_us_per_reading();
            lines.push(format!(
                "| CPU per reading with `--rollups {}` ≤ {MAX_ROLLUP_CPU_RATIO}× without ({} broker, `-w {w}`) | {ratio:.2}× | {} |",
                self.rollups_flag(),
                with.broker.label(),
                mark(ratio <= MAX_ROLLUP_CPU_RATIO)
            ));
        }
        let embedded = self
            .rows
            .iter()
            .filter(|r| r.broker == Broker::InProcess)
            .filter_map(|r| match r.kind {
                RunKind::Maxq(w) => Some((w, r.rate())),
                _ => None,
            })
            .max_by_key(|(w, _)| *w);
        if let Some((w, rate)) = embedded {
            lines.push(format!(
                "| in-process broker: ≥ {} readings/s with `-w {w}` | {} readings/s | {} |",
                thousands(MIN_EMBEDDED_RATE as u64),
                thousands(rate as u64),
                mark(rate >= MIN_EMBEDDED_RATE)
            ));
        }
        for quiet in &self.rows {
            let RunKind::MaxqQuiet(w) = quiet.kind else {
                continue;
            };
            if let Some(busy) = self.ceiling(quiet.broker, RunKind::Maxq(w)) {
                let ratio = quiet.rate() / busy.rate();
                lines.push(format!(
                    "| readings/s beside an idle partition ≥ {MIN_QUIET_RATIO}× without one ({} broker, `-w {w}`) | {ratio:.2}× | {} |",
                    quiet.broker.label(),
                    mark(ratio >= MIN_QUIET_RATIO)
                ));
            }
        }
        for l in &self.latency {
            let p99 = quantile(&l.latencies, 0.99);
            let all = l.latencies.len() == l.probes;
            lines.push(format!(
                "| p99 update latency < {} ms at {} readings/s ({} broker) | {} ms{} | {} |",
                MAX_P99.as_millis(),
                thousands(l.rate),
                l.broker.label(),
                p99.map(ms).unwrap_or_else(|| "—".to_owned()),
                if all {
                    ""
                } else {
                    " (not every probe acknowledged)"
                },
                mark(all && p99.is_some_and(|p| p < MAX_P99))
            ));
        }
        if let (Some(baseline), Some(largest)) = (self.keys.first(), self.keys.last()) {
            if self.keys.len() > 1 {
                let per_key = bytes_per_key(largest, baseline);
                lines.push(format!(
                    "| ≤ {MAX_BYTES_PER_KEY:.0} bytes per live key ({} keys) | {per_key:.0} B | {} |",
                    thousands(largest.live_keys()),
                    mark(per_key <= MAX_BYTES_PER_KEY)
                ));
            }
        }
        let pairs: Vec<_> = self.rollup_keys_pairs().collect();
        if let (Some((with_baseline, without_baseline)), Some((with, without))) =
            (pairs.first(), pairs.last())
        {
            if pairs.len() > 1 {
                let per_key = bytes_per_key(with, with_baseline);
                let per_key_without = bytes_per_key(without, without_baseline);
                let ratio = per_key / per_key_without;
                lines.push(format!(
                    "| bytes per live (sensor, level) key with `--rollups {}` ≤ {MAX_ROLLUP_BYTES_RATIO}× the bytes per live key without ({} sensors × {} levels) | {per_key:.0} B against {per_key_without:.0} B: {ratio:.2}× | {} |",
                    self.rollups_flag(),
                    thousands(with.sensors),
                    with.levels,
                    mark(ratio <= MAX_ROLLUP_BYTES_RATIO)
                ));
            }
        }
        if let Some(e) = &self.endless {
            if let Some(growth) = rss_growth(e) {
                lines.push(format!(
                    "| flat RSS on the endless stream (last-quarter peak ≤ {:.0} % above second-quarter peak) | {:+.1} % over {} | {} |",
                    MAX_RSS_GROWTH * 100.0,
                    growth * 100.0,
                    humantime::format_duration(e.duration),
                    mark(growth <= MAX_RSS_GROWTH)
                ));
            }
        }
        if lines.is_empty() {
            return String::new();
        }
        format!(
            "\n### Targets (2 cores)\n\n| target | measured | |\n| --- | --- | --- |\n{}\n",
            lines.join("\n")
        )
    }
}

/// Relative growth of the endless run's RSS peak from the second to the last quarter.
pub fn rss_growth(e: &EndlessRun) -> Option<f64> {
    let early = e.max_between(0.25, 0.5)? as f64;
    let late = e.max_between(0.75, 1.0)? as f64;
    Some(late / early - 1.0)
}

fn latency_table(runs: &[LatencyRun]) -> String {
    let mut md = String::from("\n### Update latency\n\n");
    let _ = writeln!(
        md,
        "Streaming `maxq run --emit updates --epoch {} -w {}`; a probe reading every {} ms among {} readings/s. Update latency: from handing the probe to the producer to InfluxDB's 2xx answer to the first write of its window that includes it (seen by a proxy in front of `/write`). Write request: from the same send to the arrival at the proxy of the write request that was acknowledged (the rest is InfluxDB's answer). Broker latency: from the same send to a plain consumer's receipt of the probe, the part no consumer can avoid. Over the in-process broker every consumer runs with `-X fetch.wait.max.ms={}`: librdkafka's mock broker holds a fetch that finds no data for the whole wait rather than answering when data arrives, as Kafka does.\n",
        super::latency::EPOCH,
        runs[0].workers,
        super::stream::PROBE_PERIOD.as_millis(),
        thousands(runs[0].rate),
        super::latency::MOCK_FETCH_WAIT_MS,
    );
    md.push_str("| broker | sent/s | probes | acknowledged | update p50 ms | p99 ms | max ms | write request p50 ms | p99 ms | broker p50 ms | p99 ms | maxq CPU s | readings sent / counted |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for l in runs {
        let q = |v: &[Duration], q| quantile(v, q).map(ms).unwrap_or_else(|| "—".to_owned());
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} / {} |",
            l.broker.label(),
            l.achieved_rate,
            l.probes,
            l.latencies.len(),
            q(&l.latencies, 0.5),
            q(&l.latencies, 0.99),
            q(&l.latencies, 1.0),
            q(&l.request_latencies, 0.5),
            q(&l.request_latencies, 0.99),
            q(&l.consumer_latencies, 0.5),
            q(&l.consumer_latencies, 0.99),
            l.usage.cpu.as_secs_f64(),
            thousands(l.sent_and_counted.0),
            thousands(l.sent_and_counted.1),
        );
    }
    for l in runs {
        if let Some(e) = &l.producer_error {
            let _ = writeln!(
                md,
                "\n{} broker: the producer did not get every reading delivered: {e}",
                l.broker.label()
            );
        }
    }
    md
}

fn endless_table(e: &EndlessRun) -> String {
    let mut md = String::from("\n### RSS on an endless stream\n\n");
    let _ = writeln!(
        md,
        "Streaming `maxq run -w {}` from the in-process broker, {} sensors at {} readings/s (sent: {:.0}/s) for {}; RSS sampled every second from `/proc`.\n",
        e.workers,
        thousands(e.sensors as u64),
        thousands(e.rate.0),
        e.rate.1,
        humantime::format_duration(e.duration),
    );
    md.push_str("| part of the run | peak RSS MiB |\n| --- | ---: |\n");
    for (from, to) in [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)] {
        let _ = writeln!(
            md,
            "| {:.0}–{:.0} % | {} |",
            from * 100.0,
            to * 100.0,
            e.max_between(from, to)
                .map(|b| format!("{:.1}", b as f64 / MIB))
                .unwrap_or_else(|| "—".to_owned())
        );
    }
    md
}

/// The report file's heading; runs follow it, newest first.
const HEADING: &str = "# maxq benchmarks\n\nWritten by `maxq-bench` (see the README's Benchmarks section); each run adds its section at the top. Figures are measured, never edited by hand.\n\n<!-- runs -->\n";

/// Adds `run` to the front of the runs in `path`, creating the file if needed.
pub fn write(path: &Path, run: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let earlier = old
        .split_once("<!-- runs -->\n")
        .map_or("", |(_, runs)| runs);
    let text = format!("{HEADING}\n{}\n\n{}", run.trim_end(), earlier.trim_start());
    std::fs::write(path, text.trim_end().to_owned() + "\n")
        .map_err(|e| anyhow::anyhow!("--report {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(5_000_000), "5\u{202f}000\u{202f}000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn write_puts_the_newest_run_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        write(&path, "## one\n").unwrap();
        write(&path, "## two\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADING));
        assert!(text.find("## two").unwrap() < text.find("## one").unwrap());
        assert_eq!(text.matches("<!-- runs -->").count(), 1);
    }
}
