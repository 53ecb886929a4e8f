//! The InfluxDB v2 write path (`--influx-api v2`, through the influxdb2 client) against a
//! real server that speaks `/api/v2/write`: VictoriaMetrics. It keeps every sample of a
//! rewritten point (no upsert), so the run uses `--emit final`: one write per point.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Every sample VictoriaMetrics holds for `measurement`, as points.
fn vm_points(measurement: &str) -> Points {
    let url = service("MAXQ_TEST_INFLUX_V2");
    ureq::get(&format!("{url}/internal/force_flush"))
        .call()
        .unwrap();
    let text = ureq::get(&format!("{url}/api/v1/export"))
        .query("match[]", &format!("{{__name__=~\"{measurement}_.*\"}}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let mut fields: std::collections::BTreeMap<
        (String, i64),
        std::collections::BTreeMap<String, f64>,
    > = Default::default();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = row["metric"]["__name__"].as_str().unwrap();
        let field = name
            .strip_prefix(&format!("{measurement}_"))
            .unwrap()
            .to_owned();
        let sensor = row["metric"]["sensor"].as_str().unwrap().to_owned();
        let times = row["timestamps"].as_array().unwrap();
        let values = row["values"].as_array().unwrap();
        assert_eq!(times.len(), values.len());
        for (t, v) in times.iter().zip(values) {
            let key = (sensor.clone(), t.as_i64().unwrap());
            let previous = fields
                .entry(key)
                .or_default()
                .insert(field.clone(), v.as_f64().unwrap());
            assert!(previous.is_none(), "{sensor} {field} at {t} written twice");
        }
    }
    fields
        .into_iter()
        .map(|(key, f)| {
            let point = Point {
                count: f["count"] as i64,
                mean: f["mean"],
                min: f["min"],
                max: f["max"],
                stddev: f["stddev"],
            };
            (key, point)
        })
        .collect()
}

/// `maxq run --until-end` as `group`, writing through the v2 API at `url` (org `maxq`,
/// bucket `telemetry`) with `token`, and `extra` flags.
fn until_end_v2(
    topic: &str,
    group: &str,
    url: &str,
    extra: &[&str],
    token: &str,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(run_args(&brokers(), topic, group))
        .arg("--until-end")
        .args(extra)
        .args([
            "--influx-url",
            url,
            "--influx-api",
            "v2",
            "--influx-org",
            "maxq",
            "--influx-bucket",
            "telemetry",
        ])
        .env("INFLUX_TOKEN", token)
        .output()
        .unwrap()
}

#[test]
fn v2_writes_reach_the_server_byte_for_byte() {
    let topic = unique("v2");
    create_topic(&topic, 3);
    let messages = stream(7, 3, 12, 2_000, 60, 0);
    produce(&topic, &messages);
    let measurement = unique("vm");
    let url = service("MAXQ_TEST_INFLUX_V2");
    let out = until_end_v2(
        &topic,
        &unique("group"),
        &url,
        &["-w", "2", "--emit", "final", "--measurement", &measurement],
        "test-token",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("test-token"),
        "the token never appears in logs"
    );

    let expected = reference(&messages, 60_000, 60_000, 5_000);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let actual = vm_points(&measurement);
        if actual.len() == expected.len() || Instant::now() > deadline {
            assert_same("v2 via VictoriaMetrics", &actual, &expected);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_rejected_token_fails_fast_naming_influx_token_and_commits_nothing() {
    // A VictoriaMetrics of the test's own that answers 401 to every write without the
    // right credentials.
    let vm = PrivateService::start_with("vm", &[("MAXQ_VM_AUTH", "maxq:right-secret")]);
    let topic = unique("v2auth");
    create_topic(&topic, 2);
    produce(&topic, &stream(8, 2, 4, 500, 60, 0));
    let group = unique("group");
    let started = Instant::now();
    let out = until_end_v2(&topic, &group, &vm.address(), &[], "wrong-secret");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        stderr.contains("INFLUX_TOKEN") && stderr.contains("--influx-bucket"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-secret"), "the token never appears");
    let resume = maxq::pipeline::commit::resume_log::load(&resume_config(&topic, &group)).unwrap();
    assert!(
        resume.values().all(|p| p.offset == 0),
        "nothing committed: a restart reads from the start ({resume:?})"
    );
}
