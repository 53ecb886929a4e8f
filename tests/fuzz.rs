//! Bad input at volume: 10 000 fuzzed payloads of every kind mixed into valid data. No
//! crash; the per-reason counts are exact; every bad payload is in the dead-letter topic
//! with its partition, offset and reason; the valid data's points are unaffected.

mod common;

use common::*;
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A payload and, for a bad one, the reason it must be given.
type Payload = (Vec<u8>, Option<&'static str>);

/// A fuzzed payload and the reason it must be given (decided here, independently).
fn fuzzed(rng: &mut Rng) -> (Vec<u8>, &'static str) {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    match rng.below(20) {
        0 => {
            // Random bytes that cannot start JSON (a UTF-8 continuation byte first).
            let mut bytes: Vec<u8> = (0..rng.below(200) + 1)
                .map(|_| rng.below(256) as u8)
                .collect();
            bytes.insert(0, 0x80 | rng.below(0x40) as u8);
            (bytes, "invalid_json")
        }
        1 => (
            b"{\"sensor\":\"\xff\xfe\",\"ts\":0,\"value\":1}".to_vec(),
            "invalid_json",
        ),
        2 => (
            deep(1_000 + rng.below(1_000) as usize).into_bytes(),
            "not_an_object",
        ),
        3 => (
            format!(r#"{{"sensor":{},"ts":0,"value":1}}"#, deep(1_000)).into_bytes(),
            "bad_sensor",
        ),
        4 => {
            // Over 256 bytes; one in fifty is a 1 MiB string.
            let len = if rng.below(50) == 0 {
                1 << 20
            } else {
                300 + rng.below(2_000) as usize
            };
            (
                format!(r#"{{"sensor":"{}","ts":0,"value":1}}"#, "x".repeat(len)).into_bytes(),
                "bad_sensor",
            )
        }
        5 => (r#"{"sensor":"a","ts":0,"value":1e400}"#.into(), "bad_value"),
        6 => (r#"{"sensor":"a","ts":1e30,"value":1}"#.into(), "bad_ts"),
        7 => (
            r#"{"sensor":"a","ts":0,"value":NaN}"#.into(),
            "invalid_json",
        ),
        8 => (
            r#"{"sensor":"a","ts":0,"value":-Infinity}"#.into(),
            "invalid_json",
        ),
        9 => (r#"{"sensor":5,"ts":0,"value":1}"#.into(), "bad_sensor"),
        10 => (r#"{"sensor":"a","ts":true,"value":1}"#.into(), "bad_ts"),
        11 => (r#"{"sensor":"a","ts":0,"value":"1"}"#.into(), "bad_value"),
        12 => (
            r#"{"sensor":"a","ts":0,"value":1,"unit":1}"#.into(),
            "bad_unit",
        ),
        13 => (
            r#"{"sensor":"a","ts":0,"value":1,"tags":[1]}"#.into(),
            "bad_tags",
        ),
        14 => (Vec::new(), "empty"),
        15 => (r#"{"ts":0,"value":1}"#.into(), "missing_sensor"),
        16 => (r#"{"sensor":"a","value":1}"#.into(), "missing_ts"),
        17 => (r#"{"sensor":"a","ts":0}"#.into(), "missing_value"),
        18 => (
            ["[1,2]", "\"text\"", "42", "null", "true"][rng.below(5) as usize].into(),
            "not_an_object",
        ),
        _ => (
            format!("{{\"sensor\":\"a{}", "b".repeat(rng.below(50) as usize)).into_bytes(),
            "invalid_json",
        ),
    }
}

#[test]
fn ten_thousand_fuzzed_payloads_are_counted_dead_lettered_and_harmless() {
    // A broker of its own: after 10 000 odd payloads tansu's sqlite storage answers much
    // more slowly, and after the whole suite the shared one is slow already. nextest runs
    // each test in its own process, so the variable the helpers read is this test's alone.
    let tansu = PrivateService::start("tansu");
    std::env::set_var("MAXQ_TEST_BROKERS", tansu.address());
    let topic = unique("fuzz");
    let dead = unique("fuzzdead");
    create_topic(&topic, 3);
    create_topic(&dead, 1);
    let valid = stream(13, 3, 12, 3_000, 50, 0);
    let mut rng = Rng::new(99);
    // Interleave per partition, remembering each bad payload's offset and reason.
    let mut by_partition: BTreeMap<i32, Vec<Payload>> = BTreeMap::new();
    for m in &valid {
        by_partition
            .entry(m.partition)
            .or_default()
            .push((m.payload.clone().into_bytes(), None));
    }
    for _ in 0..10_000 {
        let p = rng.below(3) as i32;
        let list = by_partition.get_mut(&p).unwrap();
        let at = rng.below(list.len() as u64 + 1) as usize;
        let (payload, reason) = fuzzed(&mut rng);
        list.insert(at, (payload, Some(reason)));
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "16777216")
        .create()
        .unwrap();
    let mut expected_dead: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    let mut expected_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (p, list) in &by_partition {
        let deliveries: Vec<_> = list
            .iter()
            .map(|(payload, _)| {
                producer
                    .send_result(
                        FutureRecord::<(), [u8]>::to(&topic)
                            .partition(*p)
                            .payload(payload),
                    )
                    .map_err(|(e, _)| e)
                    .unwrap()
            })
            .collect();
        for (d, (_, reason)) in deliveries.into_iter().zip(list) {
            let delivery = futures::executor::block_on(d)
                .unwrap()
                .map_err(|(e, _)| e)
                .unwrap();
            if let Some(reason) = reason {
                expected_dead.insert((delivery.partition, delivery.offset), reason);
                *expected_counts.entry(reason).or_default() += 1;
            }
        }
    }
    assert_eq!(expected_dead.len(), 10_000);

    let (args, db) = until_end_into_v1(&topic, &["-w", "2", "--dead-letter-topic", &dead]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(&args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let counted: BTreeMap<&str, usize> = stderr
        .lines()
        .rfind(|l| l.contains(" done "))
        .and_then(|l| l.split("malformed=").nth(1))
        .map(|m| m.split_whitespace().next().unwrap_or(""))
        .unwrap_or("")
        .split(',')
        .filter(|s| *s != "0")
        .map(|kv| {
            let (k, v) = kv.split_once(':').unwrap();
            (k, v.parse().unwrap())
        })
        .collect();
    assert_eq!(counted, expected_counts, "per-reason counts");

    let consumer = reader(&dead);
    let mut seen: BTreeMap<(i32, i64), String> = BTreeMap::new();
    // tansu serves these small batches slowly (about 100 a second on 2 busy cores), after a
    // group join that can take tens of seconds: wait as long as they keep coming.
    let mut last_seen = Instant::now();
    while seen.len() < expected_dead.len() && last_seen.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            last_seen = Instant::now();
            let header = |key: &str| {
                let h = m.headers().unwrap().iter().find(|h| h.key == key).unwrap();
                String::from_utf8(h.value.unwrap().to_vec()).unwrap()
            };
            let origin = (
                header("maxq.partition").parse().unwrap(),
                header("maxq.offset").parse().unwrap(),
            );
            assert!(
                seen.insert(origin, header("maxq.reason")).is_none(),
                "{origin:?} dead-lettered twice"
            );
        }
    }
    let expected: BTreeMap<(i32, i64), String> = expected_dead
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
    assert_eq!(
        seen, expected,
        "every bad payload dead-lettered with its origin and reason"
    );
    assert_same(
        "valid data among the fuzz",
        &influx_points(&db, "telemetry_1m"),
        &reference(&valid, 60_000, 60_000, 5_000),
    );
}
