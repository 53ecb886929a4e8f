//! Write intents: before any sink writes an epoch, how far that epoch had read is recorded.
//!
//! A run killed after writing epoch `e` but before recording `e` as durable leaves InfluxDB
//! holding values newer than its resume point. A restart that wrote again as soon as it had
//! replayed up to the durable point would overwrite them with values of fewer readings: with
//! `--emit updates`, a final window with a partial one. So each worker records, for the
//! partitions it owns, an offset at or beyond what every epoch had read, in the resume
//! point's `replay_until`, before any worker's sink may write that epoch; a restart writes
//! nothing until it has read that far again (or to the partition's end, if that is nearer).
//! The offset is declared ahead of reading, so records are few. The stream returned
//! carries no data: its frontier is "intents recorded up to", and the sinks wait for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;
use tracing::warn;

use crate::pipeline::commit::declared::Declared;
use crate::pipeline::commit::resume_log::ResumeLog;
use crate::pipeline::commit::resume_log::{Saving, CHECK_AT_LEAST_EVERY};
use crate::pipeline::epochs::Intents;
use crate::pipeline::progress::PartitionProgress;
use crate::pipeline::source::KafkaInput;
use crate::targets;

/// Builds worker's intent operator over the (broadcast) partition progress.
pub fn intents<'scope>(
    progress: StreamVec<'scope, u64, PartitionProgress>,
    input: &KafkaInput,
    resume_log: Arc<ResumeLog>,
) -> Intents<'scope> {
    let partitions = input.partitions.clone();
    let scope = progress.scope();
    progress.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Pipeline,
        "Intents",
        move |cap, info| {
            let activator = scope.activator_for(info.address.clone());
            resume_log.wake_on_reports(scope.worker().sync_activator_for(info.address.to_vec()));
            let mut held = Some(cap);
            let mut declared = Declared::new(
                partitions
                    .borrow()
                    .states
                    .iter()
                    .map(|s| (s.partition, s.recorded().replay_until))
                    .collect(),
            );
            let mut in_flight: Option<(Saving, BTreeMap<i32, i64>)> = None;
            move |(reports, frontier), _output| {
                reports.for_each(|cap, data| {
                    let Some(time) = cap.least() else {
                        return;
                    };
                    for report in data.drain(..) {
                        declared.report(*time, report.partition, report.next_offset);
                    }
                });
                let Some(cap) = held.as_mut() else {
                    return;
                };
                let mut owned = partitions.borrow_mut();
                if let Some((saving, declaring)) = in_flight.take() {
                    match resume_log.outcome(&saving) {
                        None => in_flight = Some((saving, declaring)),
                        Some(Ok(())) => declared.recorded(declaring),
                        Some(Err(e)) => {
                            warn!(target: targets::COMMIT, "{e}; epochs past what is recorded wait, trying again");
                            let points = declaring
                                .keys()
                                .filter_map(|p| Some((*p, owned.get_mut(*p)?.recorded())))
                                .collect();
                            in_flight = Some((resume_log.send(&points), declaring));
                        }
                    }
                }
                // The epochs complete and covered by what is declared may be written.
                let upper = frontier.frontier().first().copied().unwrap_or(u64::MAX);
                let next = declared.release(upper);
                if next > *cap.time() {
                    cap.downgrade(&next);
                }
                // Declare ahead before reading gets there.
                if in_flight.is_none() {
                    let declaring = declared.ahead();
                    let mut points = BTreeMap::new();
                    for (partition, target) in &declaring {
                        if let Some(state) = owned.get_mut(*partition) {
                            state.intended(*target);
                            points.insert(*partition, state.recorded());
                        }
                    }
                    if !points.is_empty() {
                        in_flight = Some((resume_log.send(&points), declaring));
                    }
                }
                if in_flight.is_some() {
                    activator.activate_after(CHECK_AT_LEAST_EVERY);
                } else if upper == u64::MAX && declared.drained() {
                    held = None;
                }
            }
        },
    )
}
