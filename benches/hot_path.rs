//! Micro-benchmarks of the per-reading hot path: parsing a payload, folding a reading into
//! a window's statistic, and encoding a window as line protocol. `cargo bench` runs them;
//! `maxq bench` measures the whole pipeline.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use maxq::commands::generate::{write_json_line, GeneratedReading};
use maxq::line_protocol::encode_point;
use maxq::pipeline::parse::Reading;
use maxq::stats::Stats;

/// A payload as `maxq generate` writes it.
fn generated_payload() -> Vec<u8> {
    let mut line = Vec::new();
    let reading = GeneratedReading {
        sensor: "altitude.17",
        ts_ms: 1_795_442_523_250,
        value: 12_345.678,
        unit: "m",
    };
    write_json_line(&mut line, &reading);
    line
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    let generated = generated_payload();
    group.bench_function("generated", |b| {
        b.iter(|| Reading::parse(black_box(&generated)))
    });
    let rfc3339_and_tags = br#"{"sensor_name":"temp sensor,1","timestamp":"2026-11-23T14:02:03.250Z","reading":21.5,"unit":"degC","tags":{"stage":"1","engine":"m1d-7"}}"#;
    group.bench_function("rfc3339_aliases_and_tags", |b| {
        b.iter(|| Reading::parse(black_box(rfc3339_and_tags)))
    });
    let malformed = br#"{"sensor":"altitude.17","ts":1795442523250,"value":"high"}"#;
    group.bench_function("malformed_value", |b| {
        b.iter(|| Reading::parse(black_box(malformed)))
    });
    group.finish();
}

fn aggregate(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats");
    group.throughput(Throughput::Elements(1));
    let mut stats = Stats::of(0.0);
    let mut value = 0.0;
    group.bench_function("merge_one_reading", |b| {
        b.iter(|| {
            value += 0.5;
            stats.merge(black_box(&Stats::of(value)));
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("line_protocol");
    group.throughput(Throughput::Elements(1));
    let mut stats = Stats::of(1.0);
    stats.merge(&Stats::of(3.5));
    let mut out = String::with_capacity(256);
    group.bench_function("encode_point", |b| {
        b.iter(|| {
            out.clear();
            encode_point(
                "telemetry_1m",
                black_box("sensor=altitude.17,unit=m"),
                black_box(&stats),
                1_795_442_520_000,
                &mut out,
            );
        })
    });
    group.finish();
}

criterion_group!(benches, parse, aggregate, encode);
criterion_main!(benches);
