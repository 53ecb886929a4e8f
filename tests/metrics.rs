//! The pipeline's own figures against tansu and InfluxDB 1.x: the Prometheus endpoint parses
//! as an exposition and counts what the run read, the lag reaches 0 once caught up, and the
//! same figures land in InfluxDB as `maxq_pipeline`, ending at lag 0 after `--until-end`.

mod common;

use common::*;
use std::collections::BTreeMap;

/// Readings the reference accepts into its windows (each in one tumbling window).
fn accepted(messages: &[Message]) -> i64 {
    reference(messages, 60_000, 60_000, 5_000)
        .values()
        .map(|p| p.count)
        .sum()
}

/// One scrape of `/metrics`, parsed as a Prometheus exposition.
fn scrape(port: u16) -> Option<prometheus_parse::Scrape> {
    let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    Some(prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap())
}

/// The sum of a metric's samples, by the value of `label` ("" for all).
fn sums(scrape: &prometheus_parse::Scrape, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for sample in scrape.samples.iter().filter(|s| s.metric == name) {
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        let key = sample.labels.get(label).unwrap_or_default().to_owned();
        *sums.entry(key).or_default() += value;
    }
    sums
}

fn total(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    sums(scrape, name, "").values().sum()
}

/// The rows of an InfluxQL query on the InfluxDB 1.x under test, as JSON arrays, with the
/// tags of their series.
fn query(db: &str, q: &str) -> Vec<(serde_json::Value, Vec<serde_json::Value>)> {
    influxql(db, q)
        .into_iter()
        .flat_map(|s| {
            let tags = s["tags"].clone();
            s["values"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |row| (tags.clone(), row.as_array().cloned().unwrap_or_default()))
        })
        .collect()
}

#[test]
fn the_endpoint_counts_what_a_streaming_run_read_and_its_lag_reaches_zero() {
    let topic = unique("metrics");
    create_topic(&topic, 3);
    let messages = stream(41, 3, 12, 400, 250, 50);
    produce(&topic, &messages);
    let db = unique("db");
    influx_create_db(&db);
    let port = free_port();
    let mut args = run_args(&brokers(), &topic, &unique("g"));
    args.extend(v1_flags(&db, "telemetry_1m"));
    args.extend(
        [
            "-w",
            "2",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--metrics-interval",
            "1s",
        ]
        .map(String::from),
    );
    let (mut child, watch) = spawn_watched(&args);

    let readings = accepted(&messages) as f64;
    let mut last = None;
    wait_until("the endpoint counts every reading with lag 0", 60, || {
        let Some(scrape) = scrape(port) else {
            return false;
        };
        let done = total(&scrape, "maxq_readings_total") == readings
            && total(&scrape, "maxq_partition_lag") == 0.0
            && sums(&scrape, "maxq_partition_position", "partition").len() == 3;
        last = Some(scrape);
        done
    });
    let scrape = last.unwrap();
    let malformed = messages.len() as f64 - readings - total(&scrape, "maxq_late_total");
    assert_eq!(
        total(&scrape, "maxq_malformed_total"),
        malformed,
        "read = accepted + late + malformed"
    );
    assert_eq!(
        sums(&scrape, "maxq_readings_total", "worker").len(),
        2,
        "one series per worker"
    );
    let positions = sums(&scrape, "maxq_partition_position", "partition");
    for p in 0..3 {
        let produced = messages.iter().filter(|m| m.partition == p).count() as f64;
        assert_eq!(positions[&p.to_string()], produced, "partition {p}");
    }
    let health = ureq::get(&format!("http://127.0.0.1:{port}/healthz"))
        .call()
        .unwrap();
    assert_eq!(health.status(), 200);

    wait_until("maxq_pipeline in InfluxDB shows lag 0", 30, || {
        let rows = query(
            &db,
            "SELECT last(\"lag\"), last(\"position\") FROM \"maxq_pipeline\" GROUP BY \"partition\"",
        );
        rows.len() == 3 && rows.iter().all(|(_, row)| row[1] == 0)
    });
    let (status, _) = sigterm(&mut child);
    assert!(status.success(), "{}", watch.log());
    let rows = query(
        &db,
        "SELECT last(\"readings\") FROM \"maxq_pipeline\" GROUP BY \"worker\"",
    );
    let written: f64 = rows.iter().map(|(_, row)| row[1].as_f64().unwrap()).sum();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(written, readings, "the last export counts every reading");
}

#[test]
fn an_until_end_run_exports_its_last_figures_at_lag_zero() {
    let topic = unique("metrics_end");
    create_topic(&topic, 2);
    let messages = stream(42, 2, 6, 300, 250, 0);
    produce(&topic, &messages);
    let (mut args, db) = until_end_into_v1(&topic, &["--metrics-interval", "30s"]);
    args.extend(["-w", "2"].map(String::from));
    maxq_ok(&strs(&args));
    let rows = query(
        &db,
        "SELECT \"lag\", \"position\" FROM \"maxq_pipeline\" WHERE \"partition\" != '' GROUP BY \"partition\"",
    );
    assert_eq!(
        rows.len(),
        2,
        "one export, at the end (the interval is longer than the run): {rows:?}"
    );
    for (tags, row) in rows {
        let p: i32 = tags["partition"].as_str().unwrap().parse().unwrap();
        let produced = messages.iter().filter(|m| m.partition == p).count();
        assert_eq!(row[1], 0, "lag of partition {p}");
        assert_eq!(row[2], produced, "position of partition {p}");
    }
    let rows = query(
        &db,
        "SELECT sum(\"readings\") FROM \"maxq_pipeline\" WHERE \"worker\" != ''",
    );
    assert_eq!(rows[0].1[1], accepted(&messages), "{rows:?}");
}
