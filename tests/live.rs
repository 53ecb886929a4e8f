//! Live mode: streaming runs (no `--until-end`) fed in bursts with pauses, with one partition
//! idle long past `--idle-timeout` and then waking, killed with `kill -9` in the middle of a
//! burst, stopped with SIGTERM and restarted on the same group, end with InfluxDB holding
//! exactly the independent reference's points for every window the data has made final, at
//! every level (the first and the roll-ups of `--rollups 2m,4m`, whose windows are open
//! across the kill and so are rebuilt from their changelog) — on one, two and three workers
//! and on two processes, with `--emit final` and `--emit updates`, tumbling and hopping,
//! each over a seed of its own. `--until-end` would finish every window at
//! the end of the topic and so hide a window that streaming never writes.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;
/// The runs' defaults: tumbling one-minute windows, 5 s lateness.
const WINDOW_MS: i64 = 60_000;
const LATENESS_MS: i64 = 5_000;
/// The roll-ups every run maintains, and their measurements and lengths.
const ROLLUPS: &str = "2m,4m";
const ROLLUP_LEVELS: [(&str, i64); 2] = [("telemetry_2m", 120_000), ("telemetry_4m", 240_000)];
/// The longest level's window: the last readings start one of these after the data.
const LONGEST_MS: i64 = 240_000;
/// The partition that gets no data through burst B.
const QUIET: i32 = 2;
/// Messages per partition in one burst: about a minute of event time, ~100 ms apart.
const PER_BURST: usize = 600;
/// How long the runs get to read a burst, or to converge on the reference at the end.
const PATIENCE_S: u64 = 30;
/// The commit operator's log target, and the line it logs as it starts a commit: never while
/// a restart replays, so the first one of a restart says it has caught up.
const COMMITTING_TARGET: &str = "maxq::commit";
const COMMITTING: &str = "maxq::commit: committing";

/// One partition's sensors and event-time clock, carried from burst to burst.
struct Source {
    partition: i32,
    /// Sensors with hundreds of readings per window.
    dense: Vec<String>,
    /// A sensor with one reading in some windows and none in others.
    sparse: String,
    /// Event time of the newest reading, Unix ms.
    clock: i64,
    /// When the sparse sensor reads next: once in its window at most.
    next_sparse: i64,
}

/// A seeded telemetry stream over the topic's partitions, generated a burst at a time. Every
/// sensor lives in one partition, as when producers key by sensor.
struct Telemetry {
    rng: Rng,
    sources: Vec<Source>,
}

impl Telemetry {
    fn new(seed: u64) -> Telemetry {
        let names = sensor_names(4 * PARTITIONS as usize);
        let sources = (0..PARTITIONS)
            .map(|p| {
                let mut own: Vec<String> = names
                    .iter()
                    .skip(p as usize)
                    .step_by(PARTITIONS as usize)
                    .cloned()
                    .collect();
                let sparse = own.pop().unwrap();
                // Partitions start apart, so their windows do not close together.
                let clock = BASE_MS + i64::from(p) * 7_000;
                Source {
                    partition: p,
                    dense: own,
                    sparse,
                    clock,
                    next_sparse: clock,
                }
            })
            .collect();
        Telemetry {
            rng: Rng::new(seed),
            sources,
        }
    }

    /// `PER_BURST` messages of each of `partitions`, interleaved as they would arrive.
    fn burst(&mut self, partitions: &[i32]) -> Vec<Message> {
        (0..PER_BURST)
            .flat_map(|_| partitions.to_vec())
            .map(|p| self.message(p))
            .collect()
    }

    /// The next message of partition `p`: ~10 % of readings out of order within the
    /// lateness, ~2 % late beyond it (dropped), ~1 % malformed; half with the field aliases
    /// and an RFC 3339 time.
    fn message(&mut self, p: i32) -> Message {
        let rng = &mut self.rng;
        let source = &mut self.sources[p as usize];
        source.clock += 1 + rng.below(200) as i64;
        let clock = source.clock;
        let (sensor, ts) = if clock >= source.next_sparse {
            source.next_sparse = (clock.div_euclid(WINDOW_MS) + 1) * WINDOW_MS
                + rng.below(2 * WINDOW_MS as u64) as i64;
            (source.sparse.clone(), clock)
        } else {
            let sensor = source.dense[rng.below(source.dense.len() as u64) as usize].clone();
            let ts = match rng.below(100) {
                0..=9 => clock - rng.below(4_000) as i64,
                10..=11 => clock - 8_000 - rng.below(20_000) as i64,
                _ => clock,
            };
            (sensor, ts)
        };
        let value = (rng.below(2_000_000) as f64 - 1_000_000.0) / 1000.0;
        let name = serde_json::to_string(&sensor).unwrap();
        let payload = match rng.below(200) {
            0 => "not json".to_owned(),
            1 => format!(r#"{{"sensor":{name},"ts":{ts}}}"#),
            2 => format!(r#"{{"sensor":{name},"ts":"yesterday","value":{value}}}"#),
            3..=100 => {
                serde_json::json!({"sensor": sensor, "ts": ts, "value": value, "unit": "m/s"})
                    .to_string()
            }
            _ => {
                let rfc = chrono::DateTime::from_timestamp_millis(ts)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let aliased = serde_json::json!({
                    "sensor_name": sensor, "timestamp": rfc, "reading": value, "unit": "m/s"
                });
                aliased.to_string()
            }
        };
        Message {
            partition: source.partition,
            key: sensor,
            payload,
        }
    }

    /// One reading in every partition, a whole longest-level window after the one holding
    /// every reading so far: every partition's watermark then passes every earlier window
    /// of every level, so all of those are final, and only the ones holding these are not.
    /// Returns the readings and the time they are at. They are all of one sensor, whose key
    /// lives on one worker: the other workers get no change of their own after them and must
    /// write their windows on progress alone.
    fn last_readings(&self) -> (Vec<Message>, i64) {
        let newest = self.sources.iter().map(|s| s.clock).max().unwrap();
        let open = (newest.div_euclid(LONGEST_MS) + 2) * LONGEST_MS;
        let messages = self
            .sources
            .iter()
            .map(|s| {
                let ts = open + i64::from(s.partition);
                let reading = serde_json::json!({
                    "sensor": "heartbeat", "ts": ts, "value": 1.0, "unit": "m/s"
                });
                Message {
                    partition: s.partition,
                    key: "heartbeat".to_owned(),
                    payload: reading.to_string(),
                }
            })
            .collect();
        (messages, open)
    }
}

/// The test's topic and everything produced to it, in production order.
struct Topic {
    name: String,
    produced: Vec<Message>,
}

impl Topic {
    fn send(&mut self, messages: Vec<Message>) {
        produce(&self.name, &messages);
        self.produced.extend(messages);
    }

    /// The reference's points over everything produced.
    fn reference(&self) -> Points {
        reference(&self.produced, WINDOW_MS, WINDOW_MS, LATENESS_MS)
    }

    /// Readings the reference accepts of everything produced: each is in one window.
    fn accepted(&self) -> u64 {
        self.reference().values().map(|p| p.count as u64).sum()
    }
}

/// The points of windows of `window_ms` that end by `open`, where the last readings are.
fn before(points: Points, window_ms: i64, open: i64) -> Points {
    points
        .into_iter()
        .filter(|((_, start), _)| *start + window_ms <= open)
        .collect()
}

/// The processes of one streaming run, each followed for its progress lines. Any still
/// running when it is dropped (a failed assertion) are killed, and their last log lines
/// printed.
struct Run {
    processes: Vec<(Child, ProgressWatch)>,
    /// Holds the hostfile of a cluster while its processes read it.
    _hosts: Option<tempfile::TempDir>,
}

impl Run {
    /// Starts `args` as `count` processes of one cluster, on free ports picked now (those of
    /// a run before may have been taken since).
    fn start(args: &[String], count: usize) -> Run {
        let dir = (count > 1).then(|| tempfile::tempdir().unwrap());
        let hosts = dir.as_ref().map(|d| hostfile(d.path(), count));
        let processes = (0..count)
            .map(|p| {
                let mut command = Command::new(env!("CARGO_BIN_EXE_maxq"));
                command
                    .args(args)
                    .env("RUST_LOG", format!("info,{COMMITTING_TARGET}=debug"))
                    .stderr(Stdio::piped());
                if let Some(hosts) = &hosts {
                    command.args(["-n", &count.to_string(), "-p", &p.to_string(), "-h"]);
                    command.arg(hosts);
                }
                let mut child = command.spawn().unwrap();
                let watch = ProgressWatch::follow(&mut child);
                (child, watch)
            })
            .collect();
        Run {
            processes,
            _hosts: dir,
        }
    }

    /// Waits until the processes together have accepted at least `readings`.
    fn read_at_least(&self, what: &str, readings: u64) {
        wait_until(
            &format!("{what}: {readings} readings accepted"),
            PATIENCE_S,
            || {
                self.processes
                    .iter()
                    .map(|(_, watch)| watch.readings())
                    .sum::<u64>()
                    >= readings
            },
        );
    }

    /// Waits until a process logs a line containing `pattern`.
    fn logged(&self, what: &str, pattern: &str) {
        wait_until(what, PATIENCE_S, || {
            self.processes
                .iter()
                .any(|(_, watch)| watch.log().contains(pattern))
        });
    }

    /// `kill -9` of every process, each still running.
    fn kill(&mut self) {
        for (p, (child, watch)) in self.processes.iter_mut().enumerate() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "process {p} exited before the kill:\n{}",
                watch.log()
            );
        }
        for (child, _) in &mut self.processes {
            child.kill().unwrap();
        }
        for (child, _) in &mut self.processes {
            child.wait().unwrap();
        }
    }

    /// SIGTERM to every process at once (one cluster finishes together); each must exit 0.
    fn terminate(&mut self) {
        let exits: Vec<_> = std::thread::scope(|s| {
            let signalled: Vec<_> = self
                .processes
                .iter_mut()
                .map(|(child, _)| s.spawn(|| sigterm(child)))
                .collect();
            signalled.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for (p, ((status, elapsed), (_, watch))) in exits.iter().zip(&self.processes).enumerate() {
            assert!(
                status.success(),
                "process {p}: exit {status} {elapsed:?} after SIGTERM:\n{}",
                watch.log()
            );
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for (p, (child, watch)) in self.processes.iter_mut().enumerate() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            if std::thread::panicking() {
                let log = watch.log();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                eprintln!("process {p}, last lines:\n{}", tail.join("\n"));
            }
        }
    }
}

/// What one test runs.
struct Setup {
    workers: usize,
    processes: usize,
    emit: &'static str,
    /// `--slide`: hopping windows if shorter than the window.
    slide: &'static str,
    seed: u64,
}

/// Streams bursts to a fresh topic while maxq runs, kills it mid-burst, restarts it twice
/// on the same group, then ends every partition with a reading past every window so far;
/// InfluxDB must then equal the reference on every one of those windows.
fn live(setup: Setup) {
    let started = Instant::now();
    let what = format!(
        "-w {} -n {} --emit {} --slide {} --rollups {ROLLUPS} (seed {})",
        setup.workers, setup.processes, setup.emit, setup.slide, setup.seed
    );
    let slide_ms = humantime::parse_duration(setup.slide).unwrap().as_millis() as i64;
    let mut topic = Topic {
        name: unique("live"),
        produced: Vec::new(),
    };
    create_topic(&topic.name, PARTITIONS);
    let db = unique("live");
    influx_create_db(&db);
    let mut args = run_args(&brokers(), &topic.name, &unique("g"));
    args.extend(v1_flags(&db, "telemetry_1m"));
    let workers = setup.workers.to_string();
    args.extend(
        [
            "-w",
            &workers,
            "--emit",
            setup.emit,
            "--slide",
            setup.slide,
            "--rollups",
            ROLLUPS,
            "--idle-timeout",
            "1s",
            "--epoch",
            "100ms",
            "--commit-interval",
            "300ms",
            "--progress-interval",
            "200ms",
        ]
        .map(String::from),
    );
    let mut telemetry = Telemetry::new(setup.seed);
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let busy: Vec<i32> = all.iter().copied().filter(|p| *p != QUIET).collect();

    // Run 1: burst A, a pause, burst B without the quiet partition, killed mid-burst.
    let mut run = Run::start(&args, setup.processes);
    topic.send(telemetry.burst(&all));
    run.read_at_least("burst A", topic.accepted());
    std::thread::sleep(Duration::from_millis(500));
    topic.send(telemetry.burst(&busy));
    run.read_at_least("burst B", topic.accepted());
    // The quiet partition is caught up with no data for longer than --idle-timeout: the
    // others' watermarks alone now make their windows final.
    std::thread::sleep(Duration::from_millis(1_500));
    let written_live = influx_points(&db, "telemetry_1m").len();
    let rest_of_b = telemetry.burst(&busy);
    std::thread::scope(|s| {
        let (delivered, chunks) = std::sync::mpsc::channel();
        let name = &topic.name;
        let rest = &rest_of_b;
        s.spawn(move || {
            for chunk in rest.chunks(rest.len() / 4) {
                produce(name, chunk);
                let _ = delivered.send(());
            }
        });
        chunks.recv().unwrap();
        chunks.recv().unwrap();
        run.kill();
    });
    topic.produced.extend(rest_of_b);

    // Run 2 resumes from the resume log; burst C wakes the quiet partition, whose readings
    // fall in windows the others made final while it was idle. Then SIGTERM.
    let mut run = Run::start(&args, setup.processes);
    let before_c = topic.accepted();
    topic.send(telemetry.burst(&all));
    run.read_at_least("burst C after the kill", topic.accepted() - before_c);
    std::thread::sleep(Duration::from_millis(500));
    run.terminate();

    // Run 3 first replays what run 2 wrote, so every worker has changes again; the last
    // readings come once it has caught up, so that the epochs that make the remaining
    // windows final change the keys of one worker only. Replaying is judged on every
    // partition's broadcast progress, so any process's first commit says all caught up.
    let mut run = Run::start(&args, setup.processes);
    run.logged("the restart caught up and committing", COMMITTING);
    let (last, open) = telemetry.last_readings();
    topic.send(last);
    let levels: Vec<(&str, i64, i64)> = std::iter::once(("telemetry_1m", WINDOW_MS, slide_ms))
        .chain(
            ROLLUP_LEVELS
                .iter()
                .map(|(m, length)| (*m, *length, *length)),
        )
        .collect();
    let expected: Vec<Points> = levels
        .iter()
        .map(|(_, window, slide)| {
            let points = reference(&topic.produced, *window, *slide, LATENESS_MS);
            before(points, *window, open)
        })
        .collect();
    for ((measurement, ..), points) in levels.iter().zip(&expected).skip(1) {
        let windows: std::collections::BTreeSet<i64> = points.keys().map(|(_, s)| *s).collect();
        assert!(
            windows.len() >= 2,
            "{measurement}: several windows: {windows:?}"
        );
    }
    let first = &expected[0];
    assert!(
        first.values().any(|p| p.count == 1) && first.values().any(|p| p.count >= 100),
        "the stream has sparse and dense windows"
    );
    let windows: std::collections::BTreeSet<i64> = first.keys().map(|(_, s)| *s).collect();
    assert!(windows.len() >= 4, "several windows: {windows:?}");
    let deadline = Instant::now() + Duration::from_secs(PATIENCE_S);
    let actual = loop {
        let actual: Vec<Points> = levels
            .iter()
            .map(|(measurement, window, _)| before(influx_points(&db, measurement), *window, open))
            .collect();
        let equal = actual.iter().zip(&expected).all(|(actual, expected)| {
            actual.len() == expected.len()
                && expected
                    .iter()
                    .all(|(k, e)| actual.get(k).is_some_and(|a| same(a, e)))
        });
        if equal || Instant::now() >= deadline {
            break actual;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for (((measurement, ..), actual), expected) in levels.iter().zip(&actual).zip(&expected) {
        assert_same(
            &format!("{what}: {measurement} in InfluxDB vs the reference, {PATIENCE_S} s after the last readings"),
            actual,
            expected,
        );
    }
    run.terminate();
    let points: Vec<String> = levels
        .iter()
        .zip(&expected)
        .map(|((measurement, ..), points)| format!("{} {measurement}", points.len()))
        .collect();
    println!(
        "{what}: {} messages in 4 bursts and the last readings; {written_live} points \
         written before the kill; {} final points over {} windows equal the reference; {:.1?}",
        topic.produced.len(),
        points.join(", "),
        windows.len(),
        started.elapsed()
    );
}

#[test]
fn emit_final_writes_every_final_window_with_one_worker() {
    live(Setup {
        workers: 1,
        processes: 1,
        emit: "final",
        slide: "1m",
        seed: 1,
    });
}

#[test]
fn emit_updates_leaves_every_final_window_right_with_one_worker() {
    live(Setup {
        workers: 1,
        processes: 1,
        emit: "updates",
        slide: "1m",
        seed: 2,
    });
}

#[test]
fn emit_final_writes_every_final_window_with_two_workers() {
    live(Setup {
        workers: 2,
        processes: 1,
        emit: "final",
        slide: "1m",
        seed: 3,
    });
}

#[test]
fn emit_updates_leaves_every_final_window_right_with_two_workers() {
    live(Setup {
        workers: 2,
        processes: 1,
        emit: "updates",
        slide: "1m",
        seed: 4,
    });
}

#[test]
fn emit_final_writes_every_final_window_with_three_workers() {
    live(Setup {
        workers: 3,
        processes: 1,
        emit: "final",
        slide: "1m",
        seed: 5,
    });
}

#[test]
fn emit_updates_leaves_every_final_window_right_with_three_workers() {
    live(Setup {
        workers: 3,
        processes: 1,
        emit: "updates",
        slide: "1m",
        seed: 6,
    });
}

/// Two processes of two workers each: four workers for three partitions, so one reads
/// none and still owns keys.
#[test]
fn emit_final_writes_every_final_window_with_two_processes() {
    live(Setup {
        workers: 2,
        processes: 2,
        emit: "final",
        slide: "1m",
        seed: 7,
    });
}

#[test]
fn emit_updates_leaves_every_final_window_right_with_two_processes() {
    live(Setup {
        workers: 2,
        processes: 2,
        emit: "updates",
        slide: "1m",
        seed: 8,
    });
}

/// Hopping first-level windows: their roll-ups are rebuilt from panes of one slide.
#[test]
fn hopping_windows_and_their_rollups_with_three_workers() {
    live(Setup {
        workers: 3,
        processes: 1,
        emit: "final",
        slide: "20s",
        seed: 9,
    });
}

#[test]
fn hopping_windows_and_their_rollups_with_two_processes() {
    live(Setup {
        workers: 2,
        processes: 2,
        emit: "updates",
        slide: "20s",
        seed: 10,
    });
}
