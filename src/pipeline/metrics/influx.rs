//! The figures as line protocol, measurement `maxq_pipeline`, so Grafana needs no
//! Prometheus. Three kinds of points, told apart by their tags:
//!
//! - `process`, `partition`: `lag`, `position`, `end_offset`, `idle` (0/1),
//!   `watermark_delay_s` (once the partition has a reading), `committed_offset` (once
//!   committed);
//! - `process`, `worker`: the counters since the process started (`readings`, `late`,
//!   `late_expired`, `malformed`, `dead_lettered`, `points_written`, `write_retries`,
//!   `points_refused`, `writes`, `write_seconds`, and `malformed_<reason>` /
//!   `refused_<reason>` for the reasons seen);
//! - `process`: `backlog`, `commit_age_s` (once committed), `watermark_delay_s` (once
//!   there is a watermark).

use std::fmt::Write;

use super::live::Live;
use super::worker::WorkerMetrics;
use crate::pipeline::parse::Malformed;
use crate::pipeline::sink::Refusal;

/// The measurement the figures are written to.
const MEASUREMENT: &str = "maxq_pipeline";

/// One point's fields, written in order.
#[derive(Default)]
struct Fields(String);

impl Fields {
    fn separator(&mut self) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
    }

    fn int(&mut self, name: &str, value: i64) -> &mut Self {
        self.separator();
        let _ = write!(self.0, "{name}={value}i");
        self
    }

    fn float(&mut self, name: &str, value: Option<f64>) -> &mut Self {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            self.separator();
            let _ = write!(self.0, "{name}={value:?}");
        }
        self
    }
}

fn line(out: &mut String, tags: &str, fields: &Fields, now_ms: i64) {
    let _ = writeln!(out, "{MEASUREMENT},{tags} {} {now_ms}", fields.0);
}

/// Every point of process `process`'s figures at `now_ms` (millisecond precision).
pub(super) fn encode(
    process: usize,
    live: &Live,
    workers: &[(usize, WorkerMetrics)],
    now_ms: i64,
) -> String {
    let mut out = String::new();
    for (partition, p) in live.partitions() {
        let mut fields = Fields::default();
        fields
            .int("lag", p.lag())
            .int("position", p.position)
            .int("end_offset", p.end_offset)
            .int("idle", i64::from(p.idle))
            .float("watermark_delay_s", Live::partition_delay_s(&p, now_ms));
        if let Some(committed) = p.committed {
            fields.int("committed_offset", committed);
        }
        line(
            &mut out,
            &format!("partition={partition},process={process}"),
            &fields,
            now_ms,
        );
    }
    for (index, w) in workers {
        let malformed: Vec<(Malformed, u64)> = Malformed::ALL
            .iter()
            .map(|r| (*r, w.malformed_count(*r)))
            .collect();
        let refused: Vec<(Refusal, u64)> = Refusal::ALL
            .iter()
            .map(|r| (*r, w.refused_count(*r)))
            .collect();
        let (writes, write_seconds) = w.write_totals();
        let count = |n: u64| n.min(i64::MAX as u64) as i64;
        let mut fields = Fields::default();
        fields
            .int("readings", count(w.readings.get()))
            .int("late", count(w.late.get()))
            .int("late_expired", count(w.late_expired.get()))
            .int("malformed", count(malformed.iter().map(|(_, n)| n).sum()))
            .int("dead_lettered", count(w.dead_lettered.get()))
            .int("points_written", count(w.points_written.get()))
            .int("write_retries", count(w.write_retries.get()))
            .int(
                "points_refused",
                count(refused.iter().map(|(_, n)| n).sum()),
            )
            .int("writes", count(writes))
            .float("write_seconds", Some(write_seconds));
        for (reason, n) in malformed.iter().filter(|(_, n)| *n > 0) {
            fields.int(&format!("malformed_{reason}"), count(*n));
        }
        for (reason, n) in refused.iter().filter(|(_, n)| *n > 0) {
            fields.int(&format!("refused_{reason}"), count(*n));
        }
        line(
            &mut out,
            &format!("process={process},worker={index}"),
            &fields,
            now_ms,
        );
    }
    let mut fields = Fields::default();
    fields
        .int("backlog", live.backlog())
        .float("commit_age_s", live.commit_age_s())
        .float("watermark_delay_s", live.watermark_delay_s(now_ms));
    line(&mut out, &format!("process={process}"), &fields, now_ms);
    out
}
