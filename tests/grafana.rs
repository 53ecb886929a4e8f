//! The Grafana dashboards in `grafana/dashboards/` against the real InfluxDB 1.x. Grafana
//! cannot run here, so the test sends what Grafana would: after a streaming run stamped near
//! now (as `produce --rebase-now` stamps), every variable's query and every panel's query, with
//! `$timeFilter` for a time range, `$__interval` and the variables filled in as Grafana fills
//! them, must return rows. The telemetry dashboard is run for three ranges, its `level`
//! variable set to what Grafana computes for each, and must read the roll-up level its
//! description promises for that range, and only that one. Each dashboard also has what
//! Grafana needs to load it, and names only the datasource that every file in
//! `grafana/datasources/` provisions.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

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

/// What a `--rollups 1h,1d` run writes, each measurement with its window length: the first
/// level (`--window 1m`) and one level per roll-up.
const LEVELS: [(&str, i64); 3] = [
    ("telemetry_1m", 60_000),
    ("telemetry_1h", 3_600_000),
    ("telemetry_1d", 86_400_000),
];

/// Time ranges ending now (`now-30m` to `now`, ...), each with the level the telemetry
/// dashboard's description promises for it: minutes under 37.5 hours, hours under 50 days,
/// days beyond. The first is the dashboard's default.
const TELEMETRY_RANGES: [(&str, &str); 3] = [
    ("30m", "telemetry_1m"),
    ("7d", "telemetry_1h"),
    ("90d", "telemetry_1d"),
];

/// Grafana's `rangeUtil.roundInterval` (packages/grafana-data/src/datetime/rangeutil.ts) as
/// (below, nice): an interval under `below` ms becomes `nice` ms; a year past the last.
const NICE_INTERVALS_MS: [(i64, i64); 29] = [
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
];

/// Grafana's year in its intervals: 365 days.
const YEAR_MS: i64 = 31_536_000_000;

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

/// How far back the dashboard's default range starts: `30m` for `now-30m` to `now`.
fn default_range(board: &Value) -> String {
    let (from, to) = (&board["time"]["from"], &board["time"]["to"]);
    assert_eq!(to, "now", "the default range ends now");
    from.as_str()
        .and_then(|f| f.strip_prefix("now-"))
        .expect("a default range relative to now")
        .to_owned()
}

/// Grafana's `$timeFilter` for the range from `now-{ago}` to `now`.
fn time_filter(ago: &str) -> String {
    format!("time >= now() - {ago} and time <= now()")
}

/// Grafana's `rangeUtil.intervalToMs` for a whole number and a unit (`1m`, `7d`; no unit is
/// seconds); also the length of the range `now-7d` to `now`.
fn duration_ms(text: &str) -> i64 {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (count, unit) = text.split_at(digits);
    let unit_ms = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        "M" => 2_592_000_000,
        "y" => YEAR_MS,
        _ => panic!("{text}: not a Grafana interval"),
    };
    count.parse::<i64>().expect("a whole number") * unit_ms
}

/// Grafana's `rangeUtil.secondsToHms`: the largest unit with a non-zero count, e.g. `12h`.
fn grafana_hms(ms: i64) -> String {
    let units = [
        ("y", YEAR_MS),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = ms;
    for (unit, size) in units {
        if rest / size > 0 {
            return format!("{}{unit}", rest / size);
        }
        rest %= size;
    }
    panic!("{ms} ms: no interval")
}

/// The value of an interval variable for the range `now-{ago}` to `now`: its selected option,
/// or for `auto` what Grafana computes, `rangeUtil.calculateInterval(range, auto_count,
/// auto_min)`: the nice interval of the range divided by `auto_count`, at least `auto_min`.
/// Both Grafana's classic dashboards (`updateAutoValue` in
/// public/app/features/variables/interval/actions.ts) and its Scenes dashboards
/// (`IntervalVariable.getValue` in @grafana/scenes) call it, and neither snaps the result to
/// the listed options: a 7-day range over 50 is `3h`, not `1h`.
fn interval_value(variable: &Value, ago: &str) -> String {
    let current = variable["current"]["value"]
        .as_str()
        .expect("a current value");
    if !current.starts_with("$__auto_interval_") {
        return current.to_owned();
    }
    let count = variable["auto_count"].as_i64().expect("auto_count");
    let least = duration_ms(variable["auto_min"].as_str().expect("auto_min"));
    let interval = duration_ms(ago) as f64 / count as f64;
    let nice = NICE_INTERVALS_MS
        .iter()
        .find(|(below, _)| interval < *below as f64)
        .map_or(YEAR_MS, |&(_, nice)| nice);
    grafana_hms(nice.max(least))
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

/// Runs `q` on `db`: its rows, and into `read` the measurements of the series that have any.
fn answer(db: &str, q: &str, read: &mut BTreeSet<String>) -> Vec<Value> {
    let series = influxql(db, q);
    for s in &series {
        if s["values"].as_array().is_some_and(|v| !v.is_empty()) {
            read.insert(s["name"].as_str().expect("a series name").to_owned());
        }
    }
    rows(&series)
}

/// Runs every variable's query and every panel target's query of `board` (read from `path`)
/// on `db`, as Grafana would for the time range `now-{ago}` to `now`: each must return rows,
/// or the first that returns none is the error. A panel repeated over a variable runs once
/// per value, the others with every value (the default, "All"). Returns the measurements read.
fn every_query_answers(
    path: &str,
    board: &Value,
    db: &str,
    ago: &str,
) -> Result<BTreeSet<String>, String> {
    let filter = time_filter(ago);
    let mut read = BTreeSet::new();
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for variable in board["templating"]["list"].as_array().expect("templating") {
        let name = variable["name"].as_str().unwrap();
        if variable["type"] == "interval" {
            values.push((name.to_owned(), vec![interval_value(variable, ago)]));
            continue;
        }
        let every = all(&values);
        let q = interpolate(variable["query"].as_str().unwrap(), &filter, &every);
        let found: Vec<String> = answer(db, &q, &mut read)
            .iter()
            .map(|row| row[1].as_str().unwrap().to_owned())
            .collect();
        if found.is_empty() {
            return Err(format!("{path}: variable {name}: {q} found nothing"));
        }
        values.push((name.to_owned(), found));
    }
    let mut queries = 0;
    for (panel, repeat) in panels(board) {
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
                if answer(db, &q, &mut read).is_empty() {
                    return Err(format!("{path}: panel {title}: {q} returned no rows"));
                }
                queries += 1;
            }
        }
    }
    assert!(queries > 0, "{path}: no panel queries");
    Ok(read)
}

/// The telemetry dashboard's `level` variable.
fn level_variable(board: &mut Value) -> &mut Value {
    board["templating"]["list"]
        .as_array_mut()
        .expect("templating")
        .iter_mut()
        .find(|v| v["name"] == "level")
        .expect("a level variable")
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

/// Produces `launch_near_now` to a topic of its own and runs `maxq run` (streaming, 2
/// workers, `extra` flags) into a fresh InfluxDB 1.x database until every window of each of
/// `levels` (measurement, window length) is written and `done(db)` holds (`what`), then stops
/// it with SIGTERM; returns the database.
fn run_until(
    extra: &[&str],
    levels: &[(&str, i64)],
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let topic = unique("grafana");
    create_topic(&topic, 2);
    let messages = launch_near_now();
    produce(&topic, &messages);
    let expected: Vec<(&str, Points)> = levels
        .iter()
        .map(|&(measurement, window_ms)| {
            let windows = reference(&messages, window_ms, window_ms, 5_000);
            (measurement, windows)
        })
        .collect();
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
    let mut run = Watched::start(&args, "warn");
    wait_until(&format!("every window written, {what}"), 60, || {
        if let Some(status) = run.child.try_wait().unwrap() {
            panic!("maxq exited {status} while running");
        }
        expected
            .iter()
            .all(|(measurement, windows)| influx_points(&db, measurement).keys().eq(windows.keys()))
            && done(&db)
    });
    let (status, _) = sigterm(&mut run.child);
    assert!(status.success(), "maxq exited {status} after SIGTERM");
    db
}

#[test]
fn every_telemetry_dashboard_query_reads_the_level_of_its_time_range() {
    let db = run_until(&["--rollups", "1h,1d"], &LEVELS, "nothing more", |_| true);
    let mut board = dashboard(TELEMETRY);
    assert_eq!(default_range(&board), TELEMETRY_RANGES[0].0);
    for (ago, level) in TELEMETRY_RANGES {
        let read = every_query_answers(TELEMETRY, &board, &db, ago)
            .unwrap_or_else(|e| panic!("now-{ago}: {e}"));
        assert_eq!(
            read,
            BTreeSet::from([level.to_owned()]),
            "now-{ago}: the queries read {read:?}, not {level} alone"
        );
    }
    // Past the day level Grafana's auto value is 1y, which names no measurement: the check
    // fails, as it would for any level value that names none.
    let beyond = every_query_answers(TELEMETRY, &board, &db, "3000d");
    assert!(beyond.is_err(), "now-3000d read {beyond:?}");
    // An option picked instead of auto pins its level, whatever the range.
    let options = level_variable(&mut board)["query"]
        .as_str()
        .unwrap()
        .to_owned();
    for option in options.split(',') {
        level_variable(&mut board)["current"]["value"] = option.into();
        let read = every_query_answers(TELEMETRY, &board, &db, "90d")
            .unwrap_or_else(|e| panic!("level {option}: {e}"));
        let level = format!("telemetry_{option}");
        assert_eq!(read, BTreeSet::from([level]), "level {option}");
    }
}

#[test]
fn the_level_changes_unit_where_the_dashboard_says() {
    let mut board = dashboard(TELEMETRY);
    let level = level_variable(&mut board);
    for (ago, unit) in [
        ("1m", "m"),
        ("2249m", "m"),
        ("2250m", "h"),
        ("49d", "h"),
        ("50d", "d"),
        ("2099d", "d"),
        ("2100d", "y"),
    ] {
        let value = interval_value(level, ago);
        assert_eq!(
            value.trim_start_matches(|c: char| c.is_ascii_digit()),
            unit,
            "now-{ago}: Grafana's auto value {value}"
        );
    }
}

#[test]
fn every_health_dashboard_query_returns_rows_after_a_run() {
    let what = "3 figures written after the first commit";
    let db = run_until(&["--metrics-interval", "1s"], &LEVELS[..1], what, |db| {
        let counted = rows(&influxql(
            db,
            r#"SELECT count("commit_age_s") FROM "maxq_pipeline""#,
        ));
        counted.first().and_then(|row| row[1].as_i64()) >= Some(3)
    });
    let board = dashboard(HEALTH);
    let ago = default_range(&board);
    let read =
        every_query_answers(HEALTH, &board, &db, &ago).unwrap_or_else(|e| panic!("now-{ago}: {e}"));
    assert_eq!(read, BTreeSet::from(["maxq_pipeline".to_owned()]));
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
