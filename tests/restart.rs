//! Restarts: `kill -9` at random moments, restarts with other worker counts, and the final
//! points equal a fault-free run's (and the independent reference). A restart resumes each
//! partition from its resume point (the first reading of a window still alive, with the
//! newest time before it), replays without writing until it has caught up with what was
//! written, and never rewrites an evicted window.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn kill_9_and_rescale_restarts_give_the_fault_free_points() {
    let topic = unique("restart");
    create_topic(&topic, 4);
    let messages = stream(11, 4, 40, 25_000, 60, 0);
    produce(&topic, &messages);
    let expected = reference(&messages, 60_000, 60_000, 5_000);

    let (clean, clean_db) = until_end_into_v1(&topic, &["-w", "2"]);
    maxq_ok(&strs(&clean));
    let fault_free = influx_points(&clean_db, "telemetry_1m");
    assert_same("fault-free run vs reference", &fault_free, &expected);

    let db = unique("crashy");
    influx_create_db(&db);
    let group = unique("g");
    let base = |workers: &str| -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            "--brokers",
            &brokers(),
            "--topic",
            &topic,
            "--group",
            &group,
            "-w",
            workers,
            "--commit-interval",
            "200ms",
            "--epoch",
            "50ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(v1_flags(&db, "telemetry_1m"));
        args
    };
    let mut rng = Rng::new(5);
    let mut kills = 0;
    for workers in ["2", "3", "1", "2", "3"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_maxq"))
            .args(base(workers))
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill once the run has made durable progress (or all was read before), at a random
        // moment after: while it reads, flushes or commits.
        let reached = |resume: &std::collections::BTreeMap<i32, maxq::source::ResumePoint>| {
            resume.values().map(|p| p.replay_until).sum::<i64>()
        };
        let before = reached(&maxq::resume::load(&resume_config(&topic, &group)).unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let total = messages.len() as i64;
        loop {
            let now = reached(&maxq::resume::load(&resume_config(&topic, &group)).unwrap());
            if now > before || now >= total {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a run made no durable progress in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(rng.below(800)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 5, "every run was killed mid-stream ({kills})");
    let resume = maxq::resume::load(&resume_config(&topic, &group)).unwrap();
    assert!(
        resume.values().any(|p| p.replay_until > p.offset),
        "the killed runs recorded resume points that make the last run replay: {resume:?}"
    );
    // The last restart: two processes of one worker each, to the end of the topic.
    let mut last = base("1");
    last.push("--until-end".into());
    maxq_cluster(2, &last);
    assert_same(
        "after 5 kills and rescales vs fault-free",
        &influx_points(&db, "telemetry_1m"),
        &fault_free,
    );
}
