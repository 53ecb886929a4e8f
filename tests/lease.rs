//! One instance per group and topic: a second `maxq run` that is not part of the first's
//! cluster is refused with a clear message instead of doubling the work, a clean exit
//! frees the lease at once, a crashed instance's lease expires, and a holder that was cut
//! off while another instance took its lease exits when it comes back; of two started
//! together, one runs.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_maxq"))
        .args(args)
        .env("RUST_LOG", "warn,maxq::run=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn streaming(topic: &str, group: &str, db: &str) -> Vec<String> {
    let mut args = run_args(&brokers(), topic, group);
    args.extend(v1_flags(db, "telemetry_1m"));
    args
}

fn setup(name: &str) -> (String, String, String) {
    let topic = unique(name);
    create_topic(&topic, 2);
    produce(&topic, &stream(51, 2, 6, 200, 100, 0));
    let db = unique("db");
    influx_create_db(&db);
    (topic, unique("g"), db)
}

#[test]
fn a_second_instance_is_refused_and_a_clean_exit_frees_the_lease() {
    let (topic, group, db) = setup("lease");
    let mut first = start(&streaming(&topic, &group, &db));
    wait_until("points from the first instance", 60, || {
        !influx_points(&db, "telemetry_1m").is_empty()
    });
    let other_db = unique("db");
    influx_create_db(&other_db);
    let started = Instant::now();
    let second = start(&streaming(&topic, &group, &other_db))
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another maxq instance")
            && stderr.contains(&format!("--group {group} and --topic {topic}")),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(15), "{stderr}");
    assert!(influx_points(&other_db, "telemetry_1m").is_empty());
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first instance stopped"
    );

    let (status, _) = sigterm(&mut first);
    assert!(status.success());
    let mut args = streaming(&topic, &group, &db);
    args.push("--until-end".into());
    let third = start(&args).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    assert!(!stderr.contains("lease expired"), "waited: {stderr}");
}

#[test]
fn a_crashed_instances_lease_expires_and_the_next_takes_it() {
    let (topic, group, db) = setup("lease-crash");
    let mut first = start(&streaming(&topic, &group, &db));
    wait_until("points from the first instance", 60, || {
        !influx_points(&db, "telemetry_1m").is_empty()
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let mut args = streaming(&topic, &group, &db);
    args.push("--until-end".into());
    let next = start(&args).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(next.status.success(), "{stderr}");
    assert!(stderr.contains("lease expired"), "{stderr}");
}

/// A child killed when dropped, so that a failed assertion leaves nothing running (SIGKILL
/// ends a stopped process too).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Sends `signal` (e.g. `-STOP`) to `child`.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_holder_that_comes_back_after_its_lease_was_taken_exits() {
    let (topic, group, db) = setup("lease-taken");
    let mut first = Reaped(start(&streaming(&topic, &group, &db)));
    wait_until("points from the first instance", 60, || {
        !influx_points(&db, "telemetry_1m").is_empty()
    });
    // Frozen, it renews nothing: the second takes the lease once it expires.
    signal(&first.0, "-STOP");
    let mut second = Reaped(start(&streaming(&topic, &group, &db)));
    let stderr = second.0.stderr.take().unwrap();
    let taken = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let started = line.contains("starting");
            seen.push(line);
            if started {
                break;
            }
        }
        (seen, lines)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !taken.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        taken.is_finished(),
        "the second instance did not start within 60 s"
    );
    let (seen, _rest) = taken.join().unwrap();
    assert!(seen.iter().any(|l| l.contains("lease expired")), "{seen:?}");
    signal(&first.0, "-CONT");
    let back = Instant::now();
    wait_until("the first instance to exit", 15, || {
        first.0.try_wait().unwrap().is_some()
    });
    let status = first.0.wait().unwrap();
    let mut first_stderr = String::new();
    std::io::Read::read_to_string(&mut first.0.stderr.take().unwrap(), &mut first_stderr).unwrap();
    assert!(!status.success(), "{status}: {first_stderr}");
    assert!(
        first_stderr.contains("took the lease"),
        "exited {:?} after coming back: {first_stderr}",
        back.elapsed()
    );
    assert!(second.0.try_wait().unwrap().is_none(), "the holder goes on");
    let (status, _) = sigterm(&mut second.0);
    assert!(status.success(), "{status}");
}

#[test]
fn of_two_instances_started_together_exactly_one_runs() {
    let (topic, group, db) = setup("lease-race");
    let other_db = unique("db");
    influx_create_db(&other_db);
    let mut instances = [
        Reaped(start(&streaming(&topic, &group, &db))),
        Reaped(start(&streaming(&topic, &group, &other_db))),
    ];
    wait_until("one of the two to exit", 30, || {
        instances
            .iter_mut()
            .any(|i| i.0.try_wait().unwrap().is_some())
    });
    let (out, on) = if instances[0].0.try_wait().unwrap().is_some() {
        (0, 1)
    } else {
        (1, 0)
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut instances[out].0.stderr.take().unwrap(), &mut stderr)
        .unwrap();
    assert_eq!(instances[out].0.wait().unwrap().code(), Some(1), "{stderr}");
    assert!(stderr.contains("another maxq instance"), "{stderr}");
    // The winner renews past the loser's claim, several times, and goes on.
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        instances[on].0.try_wait().unwrap().is_none(),
        "the instance that took the lease stopped too"
    );
    let (db_on, db_out) = if on == 0 {
        (&db, &other_db)
    } else {
        (&other_db, &db)
    };
    wait_until("points from the instance that runs", 60, || {
        !influx_points(db_on, "telemetry_1m").is_empty()
    });
    assert!(influx_points(db_out, "telemetry_1m").is_empty());
    let (status, _) = sigterm(&mut instances[on].0);
    assert!(status.success(), "{status}");
}
