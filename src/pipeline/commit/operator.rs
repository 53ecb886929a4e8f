//! What may be committed when.
//!
//! The commit operator of a worker commits the offsets of the partitions that worker owns,
//! and only for epochs every worker's sink has durably written: it waits for the frontier
//! of the sinks' acknowledgements to pass the epoch. The resume point recorded per partition
//! is the offset a restart must replay from to rebuild every window that is still alive
//! (not yet evicted), never past what was read when the epoch closed; the group offset
//! committed beside it is what was read by then, for lag tools. Dead letters are flushed
//! first, so a malformed message's offset is never committed before it is delivered.
//! Nothing is committed while a restart replays: what it rebuilds is not written yet.
//! Records are sent without waiting (the worker reads on); the last one, when the dataflow
//! ends, is waited for.

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;
use tracing::{debug, warn};

use crate::pipeline::commit::resume_log::ResumeLog;
use crate::pipeline::commit::resume_log::{Saving, CHECK_AT_LEAST_EVERY};
use crate::pipeline::commit::resume_points::{Commit, ResumePoints};
use crate::pipeline::context::Context;
use crate::pipeline::epochs::Acks;
use crate::pipeline::progress::{PartitionProgress, ResumePoint};
use crate::pipeline::source::KafkaInput;
use crate::targets;

/// Tries of the last resume-point save and group-offset commit, when the dataflow ends.
const FINAL_COMMIT_ATTEMPTS: u32 = 5;

/// Commit-operator settings.
pub struct CommitConfig {
    /// Input topic.
    pub topic: String,
    /// Number of partitions.
    pub partitions: usize,
    /// `--max-state-age`, ms.
    pub max_state_age_ms: i64,
    /// Commit period.
    pub interval: Duration,
    /// `--lateness`, ms.
    pub lateness_ms: i64,
}

/// Builds worker's commit operator. `finish` says, once the sources end, whether every
/// window was finished (so everything read may be committed).
pub fn commit<'scope>(
    progress: StreamVec<'scope, u64, PartitionProgress>,
    acks: Acks<'scope>,
    input: &KafkaInput,
    resume_log: Arc<ResumeLog>,
    config: CommitConfig,
    finish: Rc<Cell<bool>>,
    context: Context,
) {
    let control = context.control.clone();
    let live = context.metrics.live.clone();
    let consumer = input.consumer.clone();
    let partitions = input.partitions.clone();
    let dead_letters = input.dead_letters.clone();
    let scope = progress.scope();
    progress.binary_frontier::<_, CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
        acks,
        Pipeline,
        Pipeline,
        "Commit",
        move |_cap, info| {
            let activator = scope.activator_for(info.address.clone());
            resume_log.wake_on_reports(scope.worker().sync_activator_for(info.address.to_vec()));
            let mut resume_points = ResumePoints::new(
                config.partitions,
                config.max_state_age_ms,
                config.interval,
                config.lateness_ms,
            );
            // The record under way (sent without waiting, so the worker goes on reading),
            // and the group offsets to commit once it is durable.
            let mut in_flight: Option<(Saving, Commit)> = None;
            move |(reports, reports_frontier), (acks, acks_frontier), _output| {
                reports.for_each(|cap, data| {
                    if let Some(time) = cap.least() {
                        resume_points.report(*time, data.drain(..));
                    }
                });
                acks.for_each(|_, _| {});
                let durable = acks_frontier
                    .frontier()
                    .first()
                    .copied()
                    .unwrap_or(u64::MAX);
                let read = reports_frontier
                    .frontier()
                    .first()
                    .copied()
                    .unwrap_or(u64::MAX);
                resume_points.advance(durable, read);
                let done = durable == u64::MAX && read == u64::MAX;
                if let Some((saving, commit)) = in_flight.take() {
                    match resume_log.outcome(&saving) {
                        None if !done => {
                            in_flight = Some((saving, commit));
                            activator.activate_after(CHECK_AT_LEAST_EVERY);
                            return;
                        }
                        // The last commit below records everything again anyway.
                        None => {}
                        Some(Ok(())) => {
                            let offsets = group_offsets(&config.topic, &commit.offsets);
                            live.committed(&commit.offsets);
                            note_horizon(&context, &commit.points);
                            resume_points.recorded(commit.points);
                            if let Err(e) = consumer.commit(&offsets, CommitMode::Async) {
                                debug!(target: targets::COMMIT, "committing group offsets failed (the resume log has them): {e}");
                            }
                        }
                        Some(Err(e)) => warn!(target: targets::COMMIT, "{e}; trying again at the next commit"),
                    }
                }
                let Some(commit) = resume_points.due(
                    Instant::now(),
                    done,
                    finish.get(),
                    &mut partitions.borrow_mut().states,
                ) else {
                    return;
                };
                debug!(target: targets::COMMIT, partitions = commit.points.len(), "committing");
                if let Some(dl) = &dead_letters {
                    if let Err(e) = dl.flush() {
                        control.fail(e);
                        return;
                    }
                }
                if !done {
                    // A failed save is tried again at the next commit, with what is
                    // durable then.
                    in_flight = Some((resume_log.send(&commit.points), commit));
                    activator.activate_after(CHECK_AT_LEAST_EVERY);
                    return;
                }
                // The last one waits, with a few tries, as there is no next commit.
                let mut saved = resume_log.save(&commit.points);
                for _ in 1..FINAL_COMMIT_ATTEMPTS {
                    if saved.is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    saved = resume_log.save(&commit.points);
                }
                if let Err(e) = saved {
                    control.fail(e);
                    return;
                }
                let offsets = group_offsets(&config.topic, &commit.offsets);
                live.committed(&commit.offsets);
                note_horizon(&context, &commit.points);
                resume_points.recorded(commit.points);
                for attempt in 1..=FINAL_COMMIT_ATTEMPTS {
                    match consumer.commit(&offsets, CommitMode::Sync) {
                        Ok(()) => {
                            debug!(target: targets::COMMIT, ?offsets, "committed");
                            break;
                        }
                        Err(e) if attempt < FINAL_COMMIT_ATTEMPTS => {
                            debug!(target: targets::COMMIT, "committing group offsets failed, trying again: {e}");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        Err(e) => {
                            warn!(target: targets::COMMIT, "committing group offsets failed (the resume log has them): {e}")
                        }
                    }
                }
            }
        },
    );
}

/// `points` are durable: no restart resumes below their eviction horizon any more.
fn note_horizon(context: &Context, points: &BTreeMap<i32, ResumePoint>) {
    if let Some(horizon) = points.values().filter_map(|p| p.evicted_below).max() {
        context.committed_horizon.fetch_max(horizon, Relaxed);
    }
}

/// The group offsets of `topic` to commit.
fn group_offsets(topic: &str, offsets: &BTreeMap<i32, i64>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        // The group offset says how far the run has read and durably accounted for, so
        // lag tools see a caught-up pipeline near 0; where a restart replays from is the
        // resume point's business.
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    list
}
