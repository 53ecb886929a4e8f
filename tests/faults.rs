//! Outages of the services around the pipeline, each on a private instance the test stops
//! and starts again on the same storage: InfluxDB down for 30 s, and the broker restarted.
//! The pipeline keeps running through both, pauses reading once its sink buffer is full,
//! commits nothing it has not written, and the final points equal a fault-free run's.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A streaming `maxq run` (no `--until-end`) with short epochs, commits and progress lines.
fn streaming(brokers: &str, topic: &str, group: &str, sink: &[String], extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(run_args(brokers, topic, group))
        .args([
            "--epoch",
            "50ms",
            "--commit-interval",
            "200ms",
            "--progress-interval",
            "200ms",
        ])
        .args(sink)
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The committed resume offsets, per partition: where a restart would read from.
fn committed(config: &maxq::config::KafkaConfig) -> BTreeMap<i32, i64> {
    maxq::pipeline::commit::resume_log::load(config)
        .unwrap()
        .into_iter()
        .map(|(p, point)| (p, point.offset))
        .collect()
}

/// Waits until the run has read nearly all `total` readings (some are late) and committed
/// beyond `before`.
fn caught_up(
    watch: &ProgressWatch,
    total: usize,
    config: &maxq::config::KafkaConfig,
    before: &BTreeMap<i32, i64>,
) {
    wait_until("reading everything and committing again", 120, || {
        watch.readings() as usize >= total * 9 / 10 && committed(config) != *before
    });
}

/// SIGTERM, then the run must exit 0 within 5 s.
fn terminate(mut child: Child, watch: &ProgressWatch) {
    let (status, elapsed) = sigterm(&mut child);
    assert!(
        elapsed < Duration::from_secs(5),
        "still running 5 s after SIGTERM"
    );
    assert!(
        status.success(),
        "exit {status} after SIGTERM:\n{}",
        watch.log()
    );
}

/// `maxq run --until-end` as `group`, writing with the `sink` flags; must succeed.
fn until_end(brokers: &str, topic: &str, group: &str, sink: &[String]) {
    let mut args = run_args(brokers, topic, group);
    args.push("--until-end".into());
    args.extend_from_slice(sink);
    maxq_ok(&strs(&args));
}

#[test]
fn influxdb_down_for_30_s_pauses_reading_commits_nothing_unwritten_and_loses_nothing() {
    let influx = PrivateService::start("influxdb");
    let url = influx.address();
    let topic = unique("outage");
    create_topic(&topic, 4);
    // 200 sensors, 12 one-minute windows each: every window close is 200 points, more than
    // the sink buffer of 100 below, so reading pauses soon after the outage begins.
    let messages = stream(21, 4, 200, 14_400, 50, 0);
    let (first, second) = halves(&messages);
    produce(&topic, &first);
    let db = unique("db");
    influx_create_db_at(&url, &db);
    let group = unique("g");
    let sink = v1_flags_at(&url, &db, "telemetry_1m");
    let mut child = streaming(&brokers(), &topic, &group, &sink, &["--sink-buffer", "100"]);
    let watch = ProgressWatch::follow(&mut child);
    wait_until("first points written", 60, || {
        !influx_points_at(&url, &db, "telemetry_1m").is_empty()
    });

    influx.down();
    let outage = Instant::now();
    produce(&topic, &second);
    let config = resume_config(&topic, &group);
    std::thread::sleep(Duration::from_secs(5).saturating_sub(outage.elapsed()));
    let (during, read) = (committed(&config), watch.readings());
    std::thread::sleep(Duration::from_secs(28).saturating_sub(outage.elapsed()));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run survives the outage:\n{}",
        watch.log()
    );
    assert_eq!(
        committed(&config),
        during,
        "nothing is committed while InfluxDB is down"
    );
    assert_eq!(watch.readings(), read, "reading paused during the outage");
    assert!(
        read < (messages.len() - second.len() / 2) as u64,
        "the sink buffer filled before half the readings produced in the outage were read ({read} of {})",
        messages.len()
    );
    let peak_kib = peak_rss_kib(child.id());
    println!(
        "InfluxDB outage: reading paused at {read} of {} readings, peak RSS {} MiB",
        messages.len(),
        peak_kib / 1024
    );
    std::thread::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed()));

    influx.up();
    caught_up(&watch, messages.len(), &config, &during);
    terminate(child, &watch);
    // The windows still open when it stopped: a last run to the end of the topic.
    until_end(&brokers(), &topic, &group, &sink);

    let (clean, clean_db) = until_end_into_v1(&topic, &[]);
    maxq_ok(&strs(&clean));
    assert_same(
        "after a 30 s InfluxDB outage vs fault-free",
        &influx_points_at(&url, &db, "telemetry_1m"),
        &influx_points(&clean_db, "telemetry_1m"),
    );
}

#[test]
fn a_broker_restart_mid_run_is_survived_without_loss() {
    let tansu = PrivateService::start("tansu");
    let brokers = tansu.address();
    let topic = unique("bounce");
    create_topic_at(&brokers, &topic, 4);
    let messages = stream(22, 4, 40, 3_000, 100, 0);
    let (first, second) = halves(&messages);
    produce_at(&brokers, &topic, &first);
    let db = unique("db");
    influx_create_db(&db);
    let group = unique("g");
    let sink = v1_flags(&db, "telemetry_1m");
    let mut child = streaming(&brokers, &topic, &group, &sink, &[]);
    let watch = ProgressWatch::follow(&mut child);
    wait_until("first points written", 60, || {
        !influx_points(&db, "telemetry_1m").is_empty()
    });

    let mut config = resume_config(&topic, &group);
    config.connection.brokers = brokers.clone();
    let before = committed(&config);
    tansu.down();
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run survives the broker's absence:\n{}",
        watch.log()
    );
    tansu.up();
    produce_at(&brokers, &topic, &second);
    caught_up(&watch, messages.len(), &config, &before);
    // Reconnected and caught up. A crash now; finishing is a restart's job.
    child.kill().unwrap();
    child.wait().unwrap();
    until_end(&brokers, &topic, &group, &sink);

    let clean_db = unique("db");
    influx_create_db(&clean_db);
    until_end(
        &brokers,
        &topic,
        &unique("g"),
        &v1_flags(&clean_db, "telemetry_1m"),
    );
    assert_same(
        "after a broker restart vs fault-free",
        &influx_points(&db, "telemetry_1m"),
        &influx_points(&clean_db, "telemetry_1m"),
    );
}
