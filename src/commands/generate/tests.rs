//! The generated flight against the physics it models, and the generator's output.

use super::vehicle::*;
use super::*;

fn config(seed: u64) -> GenerateConfig {
    GenerateConfig {
        sensors: 64,
        hz: 10.0,
        duration_ms: 20_000,
        seed,
        launch_ms: 1_700_000_000_000,
    }
}

fn bytes(config: GenerateConfig) -> Vec<u8> {
    run_bytes(&mut Generator::new(config))
}

fn run_bytes(generator: &mut Generator) -> Vec<u8> {
    let mut out = Vec::new();
    generator
        .run(|r| {
            write_json_line(&mut out, r);
            Ok::<_, ()>(())
        })
        .unwrap();
    out
}

/// Noise-free (time s, state, truth) every 100 ms through T+600 s.
fn flight() -> Vec<(f64, Vehicle, [f64; K])> {
    let mut v = Vehicle::new();
    (0..=6000)
        .map(|k| {
            v.advance_to(k * 100);
            (k as f64 / 10.0, v.clone(), v.truth())
        })
        .collect()
}

/// (time s, value) where sensor kind `kind` peaks.
fn peak(flight: &[(f64, Vehicle, [f64; K])], kind: usize) -> (f64, f64) {
    let (t, _, v) = flight
        .iter()
        .max_by(|a, b| a.2[kind].total_cmp(&b.2[kind]))
        .unwrap();
    (*t, v[kind])
}

fn at(flight: &[(f64, Vehicle, [f64; K])], t_s: f64) -> &[f64; K] {
    &flight[(t_s * 10.0).round() as usize].2
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let a = bytes(config(7));
    assert!(!a.is_empty());
    assert_eq!(a, bytes(config(7)));
    assert_ne!(a, bytes(config(8)));
    // Replaying the same generator is also identical.
    let mut g = Generator::new(config(7));
    assert_eq!(run_bytes(&mut g), run_bytes(&mut g));
}

#[test]
fn million_sensors_one_tick() {
    let mut g = Generator::new(GenerateConfig {
        sensors: 1_000_000,
        hz: 1.0,
        duration_ms: 1_000,
        seed: 1,
        launch_ms: 0,
    });
    let mut last = String::new();
    let count = g
        .run(|r| {
            if r.sensor.starts_with("rp1_tank_level.124999") {
                last = r.sensor.to_owned();
            }
            Ok::<_, ()>(())
        })
        .unwrap();
    // One tick, ~0.5 % dropped; held readings are flushed at the end.
    assert!((990_000..=1_000_000).contains(&count), "{count}");
    assert_eq!(last, "rp1_tank_level.124999");
}

#[test]
fn dropouts_and_late_readings_happen() {
    let mut count = 0u64;
    let mut late = 0;
    let mut latest = std::collections::HashMap::new();
    let n = Generator::new(config(3))
        .run(|r| {
            count += 1;
            let prev = latest
                .insert(r.sensor.to_owned(), r.ts_ms)
                .unwrap_or(i64::MIN);
            late += usize::from(r.ts_ms < prev);
            Ok::<_, ()>(())
        })
        .unwrap();
    let ticks = 200 * 64;
    assert_eq!(n, count);
    assert!(n < ticks && n > ticks * 98 / 100, "{n}");
    assert!(late > 0);
}

#[test]
fn emit_error_stops_the_run() {
    let mut calls = 0;
    let result = Generator::new(config(1)).run(|_| {
        calls += 1;
        if calls == 5 {
            Err("full")
        } else {
            Ok(())
        }
    });
    assert_eq!(result, Err("full"));
    assert_eq!(calls, 5);
}

#[test]
fn ascent_is_plausible() {
    let flight = flight();
    let speed = |t: f64| at(&flight, t)[1];
    // Speed builds to MECO, sags while unpowered, then peaks at SECO.
    assert!(speed(162.0) > speed(150.0) && speed(162.0) > speed(171.0));
    let (t_top, top) = peak(&flight, 1);
    // The coast after SECO is a near-circular orbit: the speed barely changes.
    assert!((539.0..=541.0).contains(&t_top) || top - speed(540.0) < 2.0);
    assert!(speed(539.0) > speed(500.0) && speed(500.0) > speed(300.0));
    assert!((7_500.0..8_300.0).contains(&top), "top speed {top}");
    let (t_max_q, _) = peak(&flight, 3);
    assert!((50.0..=90.0).contains(&t_max_q), "max-Q at T+{t_max_q}");
    let meco_alt = at(&flight, 162.0)[0];
    assert!(
        (60_000.0..=90_000.0).contains(&meco_alt),
        "MECO altitude {meco_alt}"
    );
    // Coasting after SECO stays up.
    assert!(at(&flight, 600.0)[0] > 120_000.0);
    // Engines, heat and tanks follow the burns.
    assert_eq!(at(&flight, 100.0)[4], 97.0);
    assert_eq!(at(&flight, 168.0)[4], 0.0);
    assert_eq!(at(&flight, 300.0)[4], 93.0);
    assert!(at(&flight, 160.0)[5] > at(&flight, 10.0)[5] + 50.0);
    assert!(at(&flight, 100.0)[6] < at(&flight, 10.0)[6]);
    assert!(at(&flight, 170.0)[6] > 99.0 && at(&flight, 539.0)[6] < 3.0);
    assert!(flight
        .iter()
        .all(|(_, _, v)| v.iter().all(|x| x.is_finite())));
}

#[test]
fn lines_parse_as_json() {
    let text = String::from_utf8(bytes(config(11))).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["sensor"].is_string() && v["unit"].is_string(), "{line}");
        assert!(v["ts"].is_i64() && v["value"].is_f64(), "{line}");
    }
}

#[test]
fn write_json_line_escapes_and_round_trips() {
    for value in [
        0.0,
        -0.0,
        1.5,
        -0.001,
        123.456,
        1e-7,
        -2.5e300,
        0.1 + 0.2,
        f64::MAX,
    ] {
        let reading = GeneratedReading {
            sensor: "a\"b\\c\n\u{1}é",
            ts_ms: i64::MIN,
            value,
            unit: "m/s",
        };
        let mut out = Vec::new();
        write_json_line(&mut out, &reading);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["sensor"], "a\"b\\c\n\u{1}é");
        assert_eq!(v["ts"], i64::MIN);
        assert_eq!(
            v["value"].as_f64(),
            Some(value),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
    let mut out = Vec::new();
    write_json_line(
        &mut out,
        &GeneratedReading {
            sensor: "s",
            ts_ms: 5,
            value: f64::NAN,
            unit: "",
        },
    );
    assert_eq!(
        out,
        b"{\"sensor\":\"s\",\"ts\":5,\"value\":null,\"unit\":\"\"}\n"
    );
}
