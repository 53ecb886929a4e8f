//! The per-worker sink operator.
//!
//! Each worker writes only the keys it owns (differential put each key on one worker).
//! Epochs are written in order by one writer thread per worker, so a newer value of a point
//! is never overtaken by an older one still in flight. The operator keeps a capability for
//! every epoch until its points are acknowledged: the frontier of the returned [`Acks`]
//! stream is therefore "durably written up to", across all workers, and is what the commit
//! operator waits for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::scheduling::SyncActivator;
use tracing::{debug, warn};

use super::line_protocol::encode_point;
use super::retry::Backoff;
use super::{WriteError, Writer};
use crate::aggregate::{Stats, WindowKey};
use crate::config::SinkConfig;
use crate::dataflow::ByEpoch;
use crate::emit::Writes;
use crate::intent::Intents;
use crate::run::{Shared, Watch};

/// Acknowledgements: an empty stream whose frontier is the durably written epoch.
pub type Acks<'scope> = StreamVec<'scope, u64, ()>;

/// Jobs handed to the writer thread at once: one being written, one waiting. More epochs
/// wait in the operator and are coalesced into the next job.
const MAX_JOBS_IN_FLIGHT: usize = 2;

/// Sealed epochs, encoded.
struct Job {
    bodies: Vec<String>,
    points: u64,
}

/// Builds worker `index`'s sink. It writes an epoch only once every worker has recorded
/// its intent to ([`crate::intent`]).
pub fn sink<'scope>(
    writes: Writes<'scope>,
    intents: Intents<'scope>,
    config: SinkConfig,
    index: usize,
    shared: Shared,
) -> Acks<'scope> {
    let worker = writes.scope().worker();
    writes.binary_frontier::<_, CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
        intents,
        Pipeline,
        Pipeline,
        "Sink",
        move |_cap, info| {
            let activator = worker.sync_activator_for(info.address.to_vec());
            let (jobs, done) = spawn_writer(config.clone(), index, shared.clone(), activator);
            let mut pending: ByEpoch<(WindowKey, Stats)> = BTreeMap::new();
            let mut in_flight: VecDeque<(Vec<Capability<u64>>, u64)> = VecDeque::new();
            move |(input, frontier), (intents, intents_frontier), _output| {
                intents.for_each(|_, _| {});
                input.for_each(|cap, data| {
                    let Some(retained) = cap.retain_least(0) else {
                        return;
                    };
                    shared.backlog.fetch_add(data.len() as i64, Relaxed);
                    let entry = pending
                        .entry(*retained.time())
                        .or_insert_with(|| (retained, Vec::new()));
                    entry.1.append(data);
                });
                while let Ok(result) = done.try_recv() {
                    match result {
                        Ok(()) => {
                            if let Some((_caps, points)) = in_flight.pop_front() {
                                shared.backlog.fetch_sub(points as i64, Relaxed);
                            }
                        }
                        Err(message) => {
                            debug!(worker = index, "sink stopped: {message}");
                            shared.fail(message);
                        }
                    }
                }
                if in_flight.len() >= MAX_JOBS_IN_FLIGHT {
                    return;
                }
                let upper = [frontier.frontier(), intents_frontier.frontier()]
                    .iter()
                    .filter_map(|f| f.first().copied())
                    .min()
                    .unwrap_or(u64::MAX);
                let later = pending.split_off(&upper);
                let sealed = std::mem::replace(&mut pending, later);
                if sealed.is_empty() {
                    return;
                }
                let (caps, epochs): (Vec<_>, Vec<_>) = sealed.into_values().unzip();
                // What entered the backlog, before coalescing makes it fewer points.
                let buffered: usize = epochs.iter().map(Vec::len).sum();
                let job = encode(epochs, &config, shared.watch.as_deref());
                debug!(
                    worker = index,
                    points = job.points,
                    requests = job.bodies.len(),
                    "writing"
                );
                if jobs.send(job).is_ok() {
                    in_flight.push_back((caps, buffered as u64));
                }
            }
        },
    )
}

/// Encodes sealed epochs into request bodies. A key written in several of them is written
/// once, with its newest value.
fn encode(epochs: Vec<Vec<(WindowKey, Stats)>>, config: &SinkConfig, watch: Option<&Watch>) -> Job {
    let points: Vec<(WindowKey, Stats)> = if epochs.len() == 1 {
        epochs.into_iter().flatten().collect()
    } else {
        let newest: HashMap<WindowKey, Stats> = epochs.into_iter().flatten().collect();
        newest.into_iter().collect()
    };
    let mut bodies = Vec::new();
    for chunk in points.chunks(config.batch_size) {
        let mut body = String::with_capacity(chunk.len() * 128);
        for (key, stats) in chunk {
            if let Some(watch) = watch {
                watch.record(&key.series, key.start_ms, stats);
            }
            encode_point(
                &config.measurement,
                &key.series,
                stats,
                key.start_ms,
                &mut body,
            );
        }
        bodies.push(body);
    }
    Job {
        bodies,
        points: points.len() as u64,
    }
}

/// Starts the writer thread; it answers each job with `Ok` once every body is written, or
/// with the message of a final error, and then stops.
fn spawn_writer(
    config: SinkConfig,
    index: usize,
    shared: Shared,
    activator: SyncActivator,
) -> (mpsc::Sender<Job>, mpsc::Receiver<Result<(), String>>) {
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("maxq-sink-{index}"))
        .spawn(move || {
            let result = Writer::open(&config, index).and_then(|mut writer| {
                for job in jobs_rx {
                    for body in &job.bodies {
                        write_with_retries(&mut writer, body, index, &shared)?;
                    }
                    shared.metrics.points_written.fetch_add(job.points, Relaxed);
                    if done_tx.send(Ok(())).is_err() {
                        break;
                    }
                    let _ = activator.activate();
                }
                Ok(())
            });
            if let Err(e) = result {
                let _ = done_tx.send(Err(e.to_string()));
                let _ = activator.activate();
            }
        })
        .expect("spawning a thread");
    (jobs_tx, done_rx)
}

fn write_with_retries(
    writer: &mut Writer,
    body: &str,
    index: usize,
    shared: &Shared,
) -> Result<(), WriteError> {
    let mut backoff = Backoff::new(index as u64 + 1);
    loop {
        match writer.write(body) {
            Ok(()) => return Ok(()),
            Err(WriteError::Retriable(message)) => {
                shared.metrics.write_retries.fetch_add(1, Relaxed);
                let delay = backoff.next_delay();
                warn!(
                    worker = index,
                    retry_in_ms = delay.as_millis() as u64,
                    "write failed, retrying: {message}"
                );
                std::thread::sleep(delay);
            }
            Err(fatal) => return Err(fatal),
        }
    }
}
