//! Restarts: `kill -9` at random moments and the moment a sink flush or a commit starts,
//! restarts with other worker and process counts, and the final points equal a fault-free
//! run's (and the independent reference); no window, once written with its final value, is
//! ever written again with another, not even for a moment. A restart resumes each partition
//! from its resume point (the first reading of a window still alive, with the newest time
//! before it), replays without writing until it has read as far as the run before it may
//! have written, and never rewrites an evicted window.

mod common;

use common::*;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A sink flush starts: the sink logs this line, then sends the points.
const FLUSH: Option<&str> = Some("maxq::sink: writing");
/// A commit starts: the resume points are sent next.
const COMMIT: Option<&str> = Some("maxq::commit: committing");

/// Produces `messages` to a topic of `partitions`, runs fault-free, then runs with each of
/// `workers` in turn, killing each at its moment in `moments` (`None`: at random), and
/// finishes with two processes of one worker each. Returns what it did, for the log.
fn crash_and_restart(
    partitions: i32,
    messages: &[Message],
    workers: &[&str],
    moments: &[Option<&'static str>],
) -> String {
    let topic = unique("restart");
    create_topic(&topic, partitions);
    let started = Instant::now();
    produce(&topic, messages);
    let produced = started.elapsed();
    let expected = reference(messages, 60_000, 60_000, 5_000);

    let (clean, clean_db) = until_end_into_v1(&topic, &["-w", "2"]);
    maxq_ok(&strs(&clean));
    let fault_free_run = started.elapsed() - produced;
    let fault_free = influx_points(&clean_db, "telemetry_1m");
    assert_same("fault-free run vs reference", &fault_free, &expected);

    let db = unique("crashy");
    influx_create_db(&db);
    let group = unique("g");
    let base = |workers: &str| -> Vec<String> {
        let mut args = run_args(&brokers(), &topic, &group);
        args.extend(
            [
                "-w",
                workers,
                "--commit-interval",
                "200ms",
                "--epoch",
                "50ms",
            ]
            .map(String::from),
        );
        args.extend(v1_flags(&db, "telemetry_1m"));
        args
    };
    // Meanwhile, InfluxDB is read over and over: once a window holds its fault-free value it
    // must keep it (a replay writing a partial value over it, even briefly, is caught), and
    // no window ever counts more readings than it should.
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (db, done, fault_free) = (db.clone(), done.clone(), fault_free.clone());
        std::thread::spawn(move || {
            let url = service("MAXQ_TEST_INFLUX_V1");
            let read = |filter: &str| influx_points_where(&url, &db, "telemetry_1m", filter);
            let mut final_seen = std::collections::BTreeSet::new();
            let (mut polls, mut torn) = (0, 0);
            while !done.load(Relaxed) {
                // One sensor in ten, so that polling does not slow the runs down.
                for (key, point) in read("WHERE \"sensor\" =~ /0$/") {
                    let expected = fault_free
                        .get(&key)
                        .unwrap_or_else(|| panic!("{key:?} is not a point of the fault-free run"));
                    if same(&point, expected) {
                        final_seen.insert(key);
                        continue;
                    }
                    if !final_seen.contains(&key) && point.count < expected.count {
                        continue;
                    }
                    // InfluxDB 1.x reads each field on its own: a read racing an overwrite
                    // (or a compaction) can mix fields of two writes. A value really written
                    // stays until the next write of that window; read it again.
                    std::thread::sleep(Duration::from_millis(300));
                    let (sensor, time) = &key;
                    let again = read(&format!(
                        "WHERE \"sensor\" = '{}' AND time = {time}ms",
                        sensor.replace('\\', "\\\\").replace('\'', "\\'")
                    ));
                    match again.get(&key) {
                        Some(point) if !same(point, expected) => panic!(
                            "{key:?} was written as {point:?} after or beyond its final value {expected:?}"
                        ),
                        _ => torn += 1,
                    }
                }
                polls += 1;
            }
            (polls, final_seen.len(), torn)
        })
    };
    let mut rng = Rng::new(5);
    let mut kills = 0;
    for (workers, moment) in workers.iter().zip(moments) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_maxq"))
            .args(base(workers))
            .env("RUST_LOG", "warn,maxq::sink=debug,maxq::commit=debug")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let watch = ProgressWatch::follow(&mut child);
        // Killed the moment it starts its first flush or commit (after replaying what the
        // runs before it may have written), or at a random moment after its first flush.
        match moment {
            None => {
                wait_until("a run writing", 120, || {
                    watch.log().contains(FLUSH.unwrap())
                });
                std::thread::sleep(Duration::from_millis(rng.below(800)));
                let _ = child.kill(); // SIGKILL
            }
            Some(line) => {
                watch.kill_on(line);
                wait_until(&format!("a line {line:?}"), 120, || {
                    child.try_wait().unwrap().is_some()
                });
            }
        }
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            kills += 1;
        }
    }
    assert_eq!(kills, workers.len(), "every run was killed mid-stream");
    let resume = maxq::pipeline::commit::resume_log::load(&resume_config(&topic, &group)).unwrap();
    assert!(
        resume.values().any(|p| p.replay_until > p.offset),
        "the killed runs recorded resume points that make the last run replay: {resume:?}"
    );
    // The last restart: two processes of one worker each, to the end of the topic.
    let mut last = base("1");
    last.push("--until-end".into());
    maxq_cluster(2, &last);
    done.store(true, Relaxed);
    let (polls, final_seen, torn) = monitor
        .join()
        .expect("no final window was overwritten, none over-counted");
    assert!(
        polls > 1 && final_seen > 0,
        "{polls} polls saw {final_seen} final windows"
    );
    assert_same(
        "after the kills and restarts vs fault-free",
        &influx_points(&db, "telemetry_1m"),
        &fault_free,
    );
    format!(
        "{} readings over {partitions} partitions, {kills} kills (-w {}), then -n 2 -w 1: {} points identical to the fault-free run; {polls} polls of one sensor in ten saw {final_seen} windows final and none changed after ({torn} reads mixed two writes' fields and read right again); produced in {produced:.1?}, fault-free run {fault_free_run:.1?}, all {:.1?}",
        messages.len(),
        workers.join(", "),
        fault_free.len(),
        started.elapsed()
    )
}

#[test]
fn kill_9_during_flushes_commits_and_at_random_over_a_million_readings() {
    // A broker of its own: a million readings and their resume log would slow the shared
    // tansu (sqlite) down for every test after this one. nextest runs each test in its own
    // process, so the variable the helpers read is this test's alone.
    let tansu = PrivateService::start("tansu");
    std::env::set_var("MAXQ_TEST_BROKERS", tansu.address());
    // One partition: tansu serves a consumer's partitions one after another, which would
    // make every restart re-read nearly the whole topic before it may write.
    let messages = stream(11, 1, 400, 1_000_000, 15, 0);
    let moments = [None, FLUSH, COMMIT, None, FLUSH, COMMIT];
    let report = crash_and_restart(1, &messages, &["1", "2", "1", "3", "2", "1"], &moments);
    println!("{report}");
}

#[test]
fn rescale_by_restart_gives_the_fault_free_points() {
    let messages = stream(12, 4, 40, 12_000, 60, 0);
    let moments = [None, None, FLUSH, None, COMMIT];
    let report = crash_and_restart(4, &messages, &["2", "3", "1", "2", "3"], &moments);
    println!("{report}");
}
