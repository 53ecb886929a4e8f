//! The per-worker sink operator.
//!
//! Each worker writes only the keys it owns (differential put each key on one worker).
//! Epochs are written in order by one writer thread per worker, so a newer value of a point
//! is never overtaken by an older one still in flight. The operator keeps a capability for
//! every epoch until its points are acknowledged: the frontier of the returned [`Acks`]
//! stream is therefore "durably written up to", across all workers, and is what the commit
//! operator waits for.
//!
//! A point InfluxDB refuses (beyond the retention policy, a field type conflict, a line it
//! cannot parse) is a fact about that point: the request is halved until the refused point
//! stands alone, and that point is counted per reason, logged at a bounded rate and
//! forwarded to the dead-letter topic if one is set (delivered before the epoch counts as
//! written). Only errors that no retry can fix (credentials, a missing database or bucket)
//! stop the pipeline.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::scheduling::SyncActivator;
use tracing::{debug, warn};

use super::batches::Batches;
use super::retry::Backoff;
use super::{Refusal, WriteError, Writer};
use crate::config::SinkConfig;
use crate::key::WindowKey;
use crate::line_protocol::encode_point;
use crate::pipeline::context::Context;
use crate::pipeline::emit::Writes;
use crate::pipeline::epochs::{Acks, Intents};
use crate::pipeline::metrics::WorkerMetrics;
use crate::pipeline::source::DeadLetters;
use crate::stats::Stats;
use crate::targets;

/// Sealed epochs, encoded.
struct Job {
    bodies: Vec<String>,
    points: u64,
}

/// Builds worker `index`'s sink. It writes an epoch only once every worker has recorded
/// its intent to ([`crate::pipeline::commit::intents`]); refused points go to `dead_letters`.
pub fn sink<'scope>(
    writes: Writes<'scope>,
    intents: Intents<'scope>,
    config: SinkConfig,
    index: usize,
    dead_letters: Option<Arc<DeadLetters>>,
    context: Context,
) -> Acks<'scope> {
    let worker = writes.scope().worker();
    writes.binary_frontier::<_, CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
        intents,
        Pipeline,
        Pipeline,
        "Sink",
        move |_cap, info| {
            let activator = worker.sync_activator_for(info.address.to_vec());
            let (jobs, done) = spawn_writer(
                config.clone(),
                index,
                dead_letters.clone(),
                context.clone(),
                activator,
            );
            let mut batches: Batches<Capability<u64>> = Batches::default();
            move |(input, frontier), (intents, intents_frontier), _output| {
                intents.for_each(|_, _| {});
                input.for_each(|cap, data| {
                    let Some(retained) = cap.retain_least(0) else {
                        return;
                    };
                    context.backlog.add(data.len());
                    let time = *retained.time();
                    batches.add(time, || retained, data);
                });
                while let Ok(result) = done.try_recv() {
                    match result {
                        Ok(()) => {
                            if let Some(points) = batches.written() {
                                context.backlog.written(points);
                            }
                        }
                        Err(message) => {
                            debug!(target: targets::SINK, worker = index, "sink stopped: {message}");
                            context.control.fail(message);
                        }
                    }
                }
                let upper = [frontier.frontier(), intents_frontier.frontier()]
                    .iter()
                    .filter_map(|f| f.first().copied())
                    .min()
                    .unwrap_or(u64::MAX);
                let Some(epochs) = batches.seal(upper) else {
                    return;
                };
                let job = encode(epochs, &config);
                debug!(
                    target: targets::SINK,
                    worker = index,
                    points = job.points,
                    requests = job.bodies.len(),
                    "writing"
                );
                // A writer thread that stopped has said why (a fatal error: the run stops);
                // the job's epochs stay held, so nothing unwritten is committed.
                let _ = jobs.send(job);
            }
        },
    )
}

/// Encodes sealed epochs into request bodies. A key written in several of them is written
/// once, with its newest value.
fn encode(epochs: Vec<Vec<(WindowKey, Stats)>>, config: &SinkConfig) -> Job {
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
            encode_point(
                &config.measurements[usize::from(key.level)],
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
    dead_letters: Option<Arc<DeadLetters>>,
    context: Context,
    activator: SyncActivator,
) -> (mpsc::Sender<Job>, mpsc::Receiver<Result<(), String>>) {
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("maxq-sink-{index}"))
        .spawn(move || {
            let result = Writer::open(&config, index).and_then(|writer| {
                let mut writing = Writing {
                    writer,
                    index,
                    dead_letters,
                    metrics: context.metrics.worker(index),
                };
                for job in jobs_rx {
                    let mut refused = 0;
                    for body in &job.bodies {
                        refused += writing.write(body)?;
                    }
                    if refused > 0 {
                        if let Some(dl) = &writing.dead_letters {
                            dl.flush().map_err(WriteError::Final)?;
                        }
                    }
                    writing.metrics.points_written.inc_by(job.points - refused);
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

/// The writer thread's connection and where refused points go.
struct Writing {
    writer: Writer,
    index: usize,
    dead_letters: Option<Arc<DeadLetters>>,
    metrics: WorkerMetrics,
}

impl Writing {
    /// Writes one body of line protocol, retrying what is worth retrying; returns how many
    /// of its points InfluxDB refused.
    fn write(&mut self, body: &str) -> Result<u64, WriteError> {
        match self.write_with_retries(body) {
            Ok(()) => Ok(0),
            Err(WriteError::Refused { .. }) if body.trim_end().contains('\n') => {
                let lines: Vec<&str> = body.split_inclusive('\n').collect();
                self.write_lines(&lines)
            }
            Err(WriteError::Refused { reason, message }) => {
                self.refuse(body, reason, &message);
                Ok(1)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `lines` in two halves, each refused one alone (rewriting a point is an upsert,
    /// so writing again what a partial write kept is harmless).
    fn write_lines(&mut self, lines: &[&str]) -> Result<u64, WriteError> {
        let (first, second) = lines.split_at(lines.len() / 2);
        let mut refused = 0;
        for half in [first, second] {
            refused += match half {
                [] => 0,
                [line] => self.write(line)?,
                _ => match self.write_with_retries(&half.concat()) {
                    Ok(()) => 0,
                    Err(WriteError::Refused { .. }) => self.write_lines(half)?,
                    Err(e) => return Err(e),
                },
            };
        }
        Ok(refused)
    }

    fn refuse(&self, line: &str, reason: Refusal, message: &str) {
        self.metrics.refused(reason, message);
        if let Some(dl) = &self.dead_letters {
            dl.send_refused(line, reason, message);
        }
    }

    fn write_with_retries(&mut self, body: &str) -> Result<(), WriteError> {
        let mut backoff = Backoff::new(self.index as u64 + 1);
        loop {
            let started = Instant::now();
            match self.writer.write(body) {
                Ok(()) => {
                    self.metrics.written(started.elapsed());
                    return Ok(());
                }
                Err(WriteError::Retriable(message)) => {
                    self.metrics.write_retries.inc();
                    let delay = backoff.next_delay();
                    warn!(target: targets::SINK,
                        worker = self.index,
                        retry_in_ms = delay.as_millis() as u64,
                        "write failed, retrying: {message}"
                    );
                    std::thread::sleep(delay);
                }
                Err(other) => return Err(other),
            }
        }
    }
}
