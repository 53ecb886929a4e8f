//! The Grafana dashboards in `grafana/dashboards/` against the real InfluxDB 1.x. Grafana
//! cannot run here, so the test sends what Grafana would: after a streaming run stamped near
//! now (as `produce --rebase-now` stamps), every variable's query and every panel's query, with
//! `$timeFilter` for the dashboard's default time range, `$__interval` and the variables filled
//! in as Grafana fills them, must return rows. Each dashboard also has what Grafana needs to
//! load it, and names only the datasource that every file in `grafana/datasources/` provisions.

mod common;

use common::*;
use serde_json::Value;
use std::process::Child;

const TELEMETRY: &str = "grafana/dashboards/telemetry.json";
const HEALTH: &str = "grafana/dashboards/health.json";
const DATASOURCES: [&str; 3] = [
    "grafana/datasources/influxdb-v1.yml",
    "grafana/datasources/influxdb-v2.yml",
    "grafana/datasources/influxdb-v3.yml",
];

/// `$__interval`: what Grafana picks for a short range; the health run writes its figures
/// every second, so a derivative over it has a point per interval.
const INTERVAL: &str = "1s";

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn dashboard(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value of the first `key: value` line of a provisioning file.
fn yaml_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_owned())
}

/// Every `"datasource"` object anywhere in the dashboard: panels, targets, variables and
/// annotations.
fn datasource_references(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "datasource" {
                    found.push(inner.clone());
                }
                datasource_references(inner, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| datasource_references(i, found)),
        _ => {}
    }
}

/// The dashboard's panels other than rows, each with the variable it is repeated over (its
/// own `repeat` or that of the row it is in).
fn panels(board: &Value) -> Vec<(Value, Option<String>)> {
    let repeat = |p: &Value| p["repeat"].as_str().map(str::to_owned);
    let mut out = Vec::new();
    let mut row_repeat = None;
    for panel in board["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            row_repeat = repeat(panel);
            for inner in panel["panels"].as_array().into_iter().flatten() {
                out.push((inner.clone(), repeat(inner).or(row_repeat.clone())));
            }
        } else {
            out.push((panel.clone(), repeat(panel).or(row_repeat.clone())));
        }
    }
    out
}

/// Grafana's `$timeFilter` for the dashboard's default range, e.g. `now-30m` to `now`.
fn time_filter(board: &Value) -> String {
    let (from, to) = (&board["time"]["from"], &board["time"]["to"]);
    assert_eq!(to, "now", "the default range ends now");
    let ago = from
        .as_str()
        .and_then(|f| f.strip_prefix("now-"))
        .expect("a default range relative to now");
    format!("time >= now() - {ago} and time <= now()")
}

/// Values as Grafana writes a multi-value variable into an InfluxQL regex such as
/// `/^$sensor$/`: metacharacters escaped, several values as one alternation.
fn regex_value(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            v.chars()
                .flat_map(|c| {
                    let meta = r"\^$*+?.()|{}[]/".contains(c);
                    meta.then_some('\\').into_iter().chain([c])
                })
                .collect()
        })
        .collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// The query with Grafana's macros and `variables` filled in; panics if a `$name` is left.
fn interpolate(query: &str, time_filter: &str, variables: &[(String, String)]) -> String {
    let mut q = query
        .replace("$timeFilter", time_filter)
        .replace("$__interval_ms", "1000")
        .replace("$__interval", INTERVAL);
    for (name, value) in variables {
        q = q.replace(&format!("${name}"), value);
    }
    let left = q.match_indices('$').find(|(i, _)| {
        q[i + 1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '{')
    });
    assert!(left.is_none(), "a variable the test does not know in {q}");
    q
}

/// Rows over all series.
fn rows(series: &[Value]) -> Vec<Value> {
    series
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Runs every variable's query and every panel target's query of the dashboard at `path` on
/// `db`, as Grafana would for its default time range: each must return rows. A panel repeated
/// over a variable runs once per value, the others with every value (the default, "All").
fn assert_every_query_returns_rows(path: &str, db: &str) {
    let board = dashboard(path);
    let filter = time_filter(&board);
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for variable in board["templating"]["list"].as_array().expect("templating") {
        let name = variable["name"].as_str().unwrap();
        let every = all(&values);
        let q = interpolate(variable["query"].as_str().unwrap(), &filter, &every);
        let found: Vec<String> = rows(&influxql(db, &q))
            .iter()
            .map(|row| row[1].as_str().unwrap().to_owned())
            .collect();
        assert!(
            !found.is_empty(),
            "{path}: variable {name}: {q} found nothing"
        );
        values.push((name.to_owned(), found));
    }
    let mut queries = 0;
    for (panel, repeat) in panels(&board) {
        let title = panel["title"].as_str().unwrap_or_default();
        let scopes: Vec<Vec<(String, String)>> = match &repeat {
            Some(over) => {
                let (_, each) = values
                    .iter()
                    .find(|(name, _)| name == over)
                    .unwrap_or_else(|| panic!("{path}: {title} repeats over no variable {over}"));
                each.iter()
                    .map(|v| {
                        let mut scope = vec![(over.clone(), regex_value(std::slice::from_ref(v)))];
                        scope.extend(all(&values));
                        scope
                    })
                    .collect()
            }
            None => vec![all(&values)],
        };
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "{path}: panel {title} has no query");
        for target in &targets {
            for scope in &scopes {
                let q = interpolate(target["query"].as_str().unwrap(), &filter, scope);
                assert!(
                    !rows(&influxql(db, &q)).is_empty(),
                    "{path}: panel {title}: {q} returned no rows"
                );
                queries += 1;
            }
        }
    }
    assert!(queries > 0, "{path}: no panel queries");
}

/// Every variable at its default, "All": each one's values as one alternation.
fn all(values: &[(String, Vec<String>)]) -> Vec<(String, String)> {
    values
        .iter()
        .map(|(name, vs)| (name.clone(), regex_value(vs)))
        .collect()
}

/// Three sensors of different units over the last six minutes, stamped near now, one
/// reading every 2 s each, in two partitions; then one late reading per partition and one
/// malformed message, so the drop counters have something to count.
fn launch_near_now() -> Vec<Message> {
    let now = chrono::Utc::now().timestamp_millis();
    let sensors = [
        ("stage1.velocity", "m/s", 0),
        ("stage1.altitude", "km", 0),
        ("engine.chamber_pressure", "Pa", 1),
    ];
    let reading = |sensor: &str, unit: &str, partition: i32, ts: i64, value: f64| Message {
        partition,
        key: sensor.to_owned(),
        payload: serde_json::json!({"sensor": sensor, "ts": ts, "value": value, "unit": unit})
            .to_string(),
    };
    let mut messages = Vec::new();
    for i in 0..180 {
        let ts = now - 360_000 + i * 2_000;
        for (n, (sensor, unit, partition)) in sensors.iter().enumerate() {
            let value = (i as f64 * 7.5 + n as f64 * 1_000.0) * if i % 3 == 0 { 0.9 } else { 1.1 };
            messages.push(reading(sensor, unit, *partition, ts, value));
        }
    }
    for (sensor, unit, partition) in [sensors[0], sensors[2]] {
        messages.push(reading(sensor, unit, partition, now - 300_000, 1.0));
    }
    messages.push(Message {
        partition: 1,
        key: "broken".to_owned(),
        payload: "not json".to_owned(),
    });
    messages
}

/// A streaming run; killed, with its log printed, if the test fails while it runs.
struct Run {
    child: Child,
    watch: ProgressWatch,
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("maxq's log:\n{}", self.watch.log());
        }
    }
}

/// Produces `launch_near_now` to a topic of its own and runs `maxq run` (streaming, 2
/// workers, `extra` flags) into a fresh InfluxDB 1.x database until every window is written
/// and `done(db)` holds (`what`), then stops it with SIGTERM; returns the database.
fn run_until(extra: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
    let topic = unique("grafana");
    create_topic(&topic, 2);
    let messages = launch_near_now();
    produce(&topic, &messages);
    let expected = reference(&messages, 60_000, 60_000, 5_000);
    let db = unique("db");
    influx_create_db(&db);
    let mut args = run_args(&brokers(), &topic, &unique("g"));
    args.extend(v1_flags(&db, "telemetry_1m"));
    args.extend(
        ["-w", "2", "--epoch", "100ms", "--commit-interval", "500ms"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    let (child, watch) = spawn_watched(&args);
    let mut run = Run { child, watch };
    wait_until(&format!("every window written, {what}"), 60, || {
        if let Some(status) = run.child.try_wait().unwrap() {
            panic!("maxq exited {status} while running");
        }
        influx_points(&db, "telemetry_1m")
            .keys()
            .eq(expected.keys())
            && done(&db)
    });
    let (status, _) = sigterm(&mut run.child);
    assert!(status.success(), "maxq exited {status} after SIGTERM");
    db
}

#[test]
fn every_telemetry_dashboard_query_returns_rows_after_a_run() {
    let db = run_until(&[], "nothing more", |_| true);
    assert_every_query_returns_rows(TELEMETRY, &db);
}

#[test]
fn every_health_dashboard_query_returns_rows_after_a_run() {
    let what = "3 figures written after the first commit";
    let db = run_until(&["--metrics-interval", "1s"], what, |db| {
        let counted = rows(&influxql(
            db,
            r#"SELECT count("commit_age_s") FROM "maxq_pipeline""#,
        ));
        counted.first().and_then(|row| row[1].as_i64()) >= Some(3)
    });
    assert_every_query_returns_rows(HEALTH, &db);
}

#[test]
fn dashboards_load_and_name_only_the_provisioned_datasource() {
    let provisioned: Vec<(String, String)> = DATASOURCES
        .iter()
        .map(|path| {
            let text = read(path);
            assert_eq!(
                yaml_value(&text, "version").as_deref(),
                Some("InfluxQL"),
                "{path}: the dashboards are InfluxQL"
            );
            let field = |key| yaml_value(&text, key).unwrap_or_else(|| panic!("{path}: no {key}"));
            (field("type"), field("uid"))
        })
        .collect();
    let mut uids = Vec::new();
    for path in [TELEMETRY, HEALTH] {
        let board = dashboard(path);
        for key in [
            "schemaVersion",
            "uid",
            "title",
            "annotations",
            "time",
            "templating",
        ] {
            assert!(board.get(key).is_some(), "{path}: no {key}");
        }
        uids.push(board["uid"].clone());
        let mut references = Vec::new();
        datasource_references(&board, &mut references);
        assert!(!references.is_empty(), "{path}: names no datasource");
        for reference in references {
            let grafana_builtin =
                reference["type"] == "grafana" && reference["uid"] == "-- Grafana --";
            let everywhere = provisioned.iter().all(|(kind, uid)| {
                reference["type"] == kind.as_str() && reference["uid"] == uid.as_str()
            });
            assert!(
                grafana_builtin || everywhere,
                "{path}: datasource {reference} is not the one each of {DATASOURCES:?} provisions"
            );
        }
        let mut ids = Vec::new();
        for (panel, _) in panels(&board) {
            assert!(
                panel.get("datasource").is_some(),
                "{path}: panel {} names no datasource",
                panel["title"]
            );
            ids.push(panel["id"].as_u64().expect("panel id"));
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), panels(&board).len(), "{path}: panel ids repeat");
    }
    assert_ne!(uids[0], uids[1], "each dashboard has its own uid");
}

#[test]
fn compose_mounts_files_that_exist() {
    let compose = read("docker-compose.yml");
    let mounts: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ./grafana/"))
        .map(|m| m.split(':').next().unwrap())
        .collect();
    assert!(
        mounts.contains(&"datasources/influxdb-v2.yml"),
        "compose (InfluxDB 2) provisions the 2.x datasource: {mounts:?}"
    );
    for mount in mounts {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("grafana")
            .join(mount);
        assert!(
            path.exists(),
            "docker-compose.yml mounts {}",
            path.display()
        );
    }
}
