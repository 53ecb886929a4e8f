//! The changelog writer: one per worker, for the series hashed to it.
//!
//! It records every sealed window the levels say to record, and holds the epoch it came in
//! until the record is durable: the frontier of the stream it returns is "recorded up to",
//! and the commit waits for it beside the sinks' acknowledgements, so a resume point never
//! passes a window whose record could be lost. Once a longer window's record is durable
//! and a resume point has passed its end (so no restart can need the shorter ones again),
//! the records inside it are deleted with tombstones; that is housekeeping, so a tombstone
//! that does not arrive only leaves a record that the next restart deletes.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use tracing::warn;

use super::records::{children, record_key};
use crate::config::Levels;
use crate::key::WindowKey;
use crate::pipeline::commit::resume_log::{ResumeLog, Saving, CHECK_AT_LEAST_EVERY};
use crate::pipeline::context::Context;
use crate::pipeline::epochs::Acks;
use crate::stats::Stats;
use crate::targets;

/// What the writer is told of a window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Entry {
    /// Evicted with this final statistic.
    Sealed(WindowKey, Stats),
    /// Recorded by an earlier run and still needed.
    Held(WindowKey),
}

impl Entry {
    fn series(&self) -> &str {
        match self {
            Entry::Sealed(key, _) | Entry::Held(key) => &key.series,
        }
    }
}

/// How often tombstones waiting for a resume point are looked at.
const TOMBSTONE_CHECK: Duration = Duration::from_secs(1);

/// Records of one epoch under way.
struct Flight {
    cap: Capability<u64>,
    records: Vec<(String, Option<Vec<u8>>)>,
    saving: Saving,
}

/// Tombstones waiting for their parent's record and a resume point past its end.
struct Waiting {
    parent_end: i64,
    parent_epoch: u64,
    keys: Vec<String>,
}

/// Builds the worker's changelog writer over `entries` from every worker.
pub fn writer<'scope>(
    entries: StreamVec<'scope, u64, Entry>,
    levels: Rc<Levels>,
    log: Arc<ResumeLog>,
    context: Context,
) -> Acks<'scope> {
    let scope = entries.scope();
    let by_series = Exchange::new(|entry: &Entry| {
        let mut hasher = DefaultHasher::new();
        entry.series().hash(&mut hasher);
        hasher.finish()
    });
    entries.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        by_series,
        "Changelog",
        move |_cap, info| {
            let activator = scope.activator_for(info.address.clone());
            log.wake_on_reports(scope.worker().sync_activator_for(info.address.to_vec()));
            let mut held: BTreeSet<(Arc<str>, u8, i64)> = BTreeSet::new();
            let mut flights: VecDeque<Flight> = VecDeque::new();
            let mut waiting: Vec<Waiting> = Vec::new();
            move |(input, frontier), _output| {
                input.for_each(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else {
                        return;
                    };
                    let epoch = *cap.time();
                    let mut records = Vec::new();
                    for entry in data.drain(..) {
                        let (key, stats) = match entry {
                            Entry::Held(key) => {
                                held.insert((key.series, key.level, key.start_ms));
                                continue;
                            }
                            Entry::Sealed(key, stats) => (key, stats),
                        };
                        let inside = children(&levels, &mut held, &key);
                        if !inside.is_empty() {
                            waiting.push(Waiting {
                                parent_end: levels.all[usize::from(key.level)]
                                    .windows
                                    .end(key.start_ms),
                                parent_epoch: epoch,
                                keys: inside.iter().map(|k| record_key(&levels, k)).collect(),
                            });
                        }
                        if levels.recorded(usize::from(key.level)) {
                            let payload = serde_json::to_vec(&stats).expect("stats serialize");
                            records.push((record_key(&levels, &key), Some(payload)));
                            held.insert((key.series, key.level, key.start_ms));
                        }
                    }
                    if !records.is_empty() {
                        let saving = log.send_records(records.iter().cloned());
                        flights.push_back(Flight {
                            cap,
                            records,
                            saving,
                        });
                    }
                });
                while let Some(flight) = flights.front_mut() {
                    match log.outcome(&flight.saving) {
                        None => break,
                        Some(Ok(())) => {
                            flights.pop_front();
                        }
                        Some(Err(e)) => {
                            warn!(target: targets::COMMIT, "{e}; recording the roll-ups' windows again");
                            flight.saving = log.send_records(flight.records.iter().cloned());
                        }
                    }
                }
                // Every epoch before this has its records durable.
                let durable = flights
                    .front()
                    .map(|f| *f.cap.time())
                    .or_else(|| frontier.frontier().first().copied())
                    .unwrap_or(u64::MAX);
                let committed = context.committed_horizon.load(Relaxed);
                let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut waiting)
                    .into_iter()
                    .partition(|w| w.parent_epoch < durable && w.parent_end <= committed);
                waiting = later;
                let tombstones: Vec<_> = due.into_iter().flat_map(|w| w.keys).map(|k| (k, None)).collect();
                if !tombstones.is_empty() {
                    log.send_records(tombstones);
                }
                if !flights.is_empty() {
                    activator.activate_after(CHECK_AT_LEAST_EVERY);
                } else if !waiting.is_empty() && !frontier.is_empty() {
                    activator.activate_after(TOMBSTONE_CHECK);
                }
            }
        },
    )
}
