//! Malformed messages never stop the pipeline: each is counted, forwarded to the
//! dead-letter topic with its partition, offset and reason, and the valid data's points
//! are those of the reference.

mod common;

use common::*;
use rdkafka::Message as _;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[test]
fn malformed_messages_are_dead_lettered_with_origin_and_reason() {
    let topic = unique("bad");
    let dead = unique("dead");
    create_topic(&topic, 2);
    create_topic(&dead, 1);
    let mut messages = stream(8, 2, 6, 500, 100, 0);
    let bad = [
        ("", "empty"),
        ("{", "invalid_json"),
        ("[1,2]", "not_an_object"),
        (r#"{"ts":1,"value":1}"#, "missing_sensor"),
        (r#"{"sensor":"a","ts":"x","value":1}"#, "bad_ts"),
        (
            r#"{"sensor":"a","ts":1795564800000,"value":"NaN"}"#,
            "bad_value",
        ),
    ];
    let mut expected_dead = BTreeMap::new();
    for (i, (payload, reason)) in bad.iter().enumerate() {
        let partition = (i % 2) as i32;
        let position = messages.iter().filter(|m| m.partition == partition).count() / 2 + i;
        let index = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.partition == partition)
            .nth(position)
            .unwrap()
            .0;
        messages.insert(
            index,
            Message {
                partition,
                key: "bad".into(),
                payload: payload.to_string(),
            },
        );
        expected_dead.insert((partition, *reason), ());
    }
    produce(&topic, &messages);
    let offsets: BTreeMap<(i32, String), i64> = {
        let mut next = BTreeMap::new();
        let mut out = BTreeMap::new();
        for m in &messages {
            let o = next.entry(m.partition).or_insert(0i64);
            if m.key == "bad" {
                out.insert((m.partition, m.payload.clone()), *o);
            }
            *o += 1;
        }
        out
    };

    let (args, db) = until_end_into_v1(&topic, &["-w", "2", "--dead-letter-topic", &dead]);
    let out = maxq_ok(&strs(&args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("malformed"),
        "malformed messages are logged: {stderr}"
    );

    let consumer = reader(&dead);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < bad.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let partition: i32 = header(&m, "maxq.partition").parse().unwrap();
            let offset: i64 = header(&m, "maxq.offset").parse().unwrap();
            let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            assert_eq!(header(&m, "maxq.topic"), topic);
            assert_eq!(
                offsets[&(partition, payload.clone())],
                offset,
                "offset of {payload:?}"
            );
            seen.push((partition, header(&m, "maxq.reason")));
        }
    }
    let mut expected: Vec<(i32, String)> = expected_dead
        .keys()
        .map(|(p, r)| (*p, r.to_string()))
        .collect();
    expected.sort();
    seen.sort();
    assert_eq!(
        seen, expected,
        "every malformed message dead-lettered once, with its reason"
    );
    assert_same(
        "valid data",
        &influx_points(&db, "telemetry_1m"),
        &reference(&messages, 60_000, 60_000, 5_000),
    );
}

#[test]
fn a_missing_dead_letter_topic_fails_at_start_naming_the_flag() {
    let topic = unique("bad");
    create_topic(&topic, 1);
    let started = std::time::Instant::now();
    let out = maxq(&[
        "run",
        "--brokers",
        &brokers(),
        "--topic",
        &topic,
        "--until-end",
        "--dead-letter-topic",
        &unique("nowhere"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert!(stderr.contains("--dead-letter-topic"), "{stderr}");
}
