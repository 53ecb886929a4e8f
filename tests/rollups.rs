//! Roll-ups' recovery, shown by offsets: a run with `--rollups` killed with `kill -9` leaves
//! resume points at the first reading of a *first-level* window still alive — not at the
//! start of the open roll-up window, which a replay-based recovery would need — and the
//! restart reads exactly from there, seeds the open roll-up windows from the changelog of
//! sealed windows, and ends with every level equal to the independent reference.
//!
//! The scale is shrunk so a test fits in seconds: one-second windows rolled up into
//! one-minute ones stand for one-minute windows rolled up into hours.

mod common;

use common::*;
use std::collections::BTreeMap;

const PARTITIONS: i32 = 3;
const WINDOW_MS: i64 = 1_000;
const ROLLUP_MS: i64 = 60_000;
const LATENESS_MS: i64 = 5_000;

/// Per partition, the offset and time of every reading the lateness rule accepts.
fn accepted_by_partition(messages: &[Message]) -> BTreeMap<i32, Vec<(i64, i64)>> {
    let mut by_partition: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for reading in accepted(messages, LATENESS_MS) {
        by_partition
            .entry(reading.partition)
            .or_default()
            .push((reading.offset, reading.ts));
    }
    by_partition
}

/// The first offset among `readings` whose window of `length_ms` ends after `horizon`.
fn first_needed(readings: &[(i64, i64)], length_ms: i64, horizon: i64) -> Option<i64> {
    readings
        .iter()
        .filter(|(_, ts)| ts.div_euclid(length_ms) * length_ms + length_ms > horizon)
        .map(|(offset, _)| *offset)
        .min()
}

#[test]
fn a_restart_reads_what_the_first_level_needs_and_every_level_equals_the_reference() {
    let topic = unique("rollups");
    create_topic(&topic, PARTITIONS);
    // About 200 s of event time per partition, 4 sensors each.
    let messages = stream(21, PARTITIONS, 12, 5_000, 40, 97);
    let (first, second) = halves(&messages);
    produce(&topic, &first);
    let db = unique("rollups");
    influx_create_db(&db);
    let group = unique("g");
    let mut args = run_args(&brokers(), &topic, &group);
    args.extend(v1_flags(&db, "telemetry_1s"));
    args.extend(
        [
            "-w",
            "2",
            "--window",
            "1s",
            "--rollups",
            "1m",
            "--epoch",
            "50ms",
            "--commit-interval",
            "200ms",
            "--idle-timeout",
            "1s",
            "--progress-interval",
            "200ms",
        ]
        .map(String::from),
    );

    // Run 1 streams the first half; once its resume points have settled, kill -9.
    let mut run = Watched::start(&args, "info");
    let first_accepted: u64 = accepted_by_partition(&first)
        .values()
        .map(|r| r.len() as u64)
        .sum();
    wait_until("the first half read", 60, || {
        run.watch.readings() >= first_accepted
    });
    let config = resume_config(&topic, &group);
    let load = || maxq::pipeline::commit::resume_log::load(&config).unwrap();
    let mut points = load();
    wait_until("resume points that no longer move", 30, || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        let again = load();
        let settled = again.len() == PARTITIONS as usize && again == points;
        points = again;
        settled
    });
    run.child.kill().unwrap();
    run.child.wait().unwrap();

    // Each partition resumes at the first reading of a first-level window still alive,
    // far after the start of the roll-up window still open.
    let by_partition = accepted_by_partition(&first);
    let mut saved = 0;
    for (partition, readings) in &by_partition {
        let point = points[partition];
        let horizon = point.evicted_below.expect("windows were evicted");
        let read = readings.len() as i64;
        let needed = first_needed(readings, WINDOW_MS, horizon).unwrap_or(read);
        let rollup = first_needed(readings, ROLLUP_MS, horizon).unwrap_or(read);
        let produced = first.iter().filter(|m| m.partition == *partition).count() as i64;
        let needed_offset = if needed < read { needed } else { produced };
        assert_eq!(
            point.offset, needed_offset,
            "partition {partition}: resumes at the first reading whose one-second window ends after {horizon}"
        );
        assert!(
            point.offset > rollup,
            "partition {partition}: a replay of the open one-minute window would start at {rollup}, before {}",
            point.offset
        );
        saved += point.offset - rollup;
        println!(
            "partition {partition}: resumes at offset {} of {produced}; replaying the open roll-up window would start at {rollup}",
            point.offset
        );
    }
    assert!(saved > 0);

    // The restart reads from there to the end: exactly the readings at or after the
    // resume points, judged by the lateness rule as the first time.
    produce(&topic, &second);
    let all = accepted_by_partition(&messages);
    let expected_reads: u64 = all
        .iter()
        .map(|(p, readings)| {
            let from = points[p].offset;
            readings
                .iter()
                .filter(|(offset, _)| *offset >= from)
                .count() as u64
        })
        .sum();
    let mut restart = args.clone();
    restart.push("--until-end".into());
    let mut run = Watched::start(&restart, "info");
    let status = run.child.wait().unwrap();
    assert!(status.success(), "restart: {status}\n{}", run.watch.log());
    wait_until("the restart's summary", 5, || {
        run.watch.log().contains("points_refused")
    });
    assert_eq!(
        run.watch.readings(),
        expected_reads,
        "the restart read the readings from the resume points on"
    );
    for (measurement, length) in [("telemetry_1s", WINDOW_MS), ("telemetry_1m", ROLLUP_MS)] {
        let expected = reference(&messages, length, length, LATENESS_MS);
        assert_same(
            &format!("{measurement} after kill -9 and a restart"),
            &influx_points(&db, measurement),
            &expected,
        );
    }
    println!(
        "the restart read {expected_reads} of {} readings; {saved} fewer messages than a roll-up replay",
        all.values().map(|r| r.len()).sum::<usize>()
    );
}
