//! The timely source operator: one per worker, reading the partitions that worker owns.
//!
//! It follows timely's custom-source pattern: the capability is kept in an `Option`,
//! downgraded to the current epoch as wall-clock time passes, dropped when the source is
//! finished (`--until-end`, or shutdown). It reads its partitions' queues in batches,
//! without waiting and within a per-activation budget, so the worker thread never blocks.
//! When it found nothing it is woken by a queue (librdkafka calls back when it gets a
//! message) or at the next epoch, not by polling: an idle worker sleeps. While messages keep
//! coming it reads every [`READ_EVERY`] instead of at each message's call, and it reads
//! before it ends an epoch. Each activation also serves the process consumer's own queue,
//! whose events (errors, commit results) librdkafka hands over only when polled.
//!
//! Two outputs: the window updates of accepted readings, at every level and folded per key
//! within an epoch, as differential updates `(key, epoch, Stats)`, and one
//! [`PartitionProgress`] per owned partition at the end of every epoch.

use rdkafka::bindings::rd_kafka_message_t;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::ffi::{CStr, CString};
use std::rc::Rc;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, StreamVec};

use super::combine::Combiner;
use super::consumer::PartitionQueue;
use super::{DeadLetters, KafkaInput, OwnedPartitions, PartitionState};
use crate::config::RunConfig;
use crate::kafka::fetched::Fetched;
use crate::kafka::LogContext;
use crate::key::WindowKey;
use crate::pipeline::aggregate::Updates;
use crate::pipeline::context::Context;
use crate::pipeline::metrics::{PartitionFigures, WorkerMetrics};
use crate::pipeline::parse::Reading;
use crate::pipeline::progress::PartitionProgress;
use crate::stats::Stats;

/// Most messages handled in one activation, so other operators get their turn.
const POLL_BUDGET: usize = 4096;

/// Most events of the process consumer's own queue served in one activation.
const EVENTS_PER_ACTIVATION: usize = 64;

/// Series whose readings are folded before they go out within an epoch; the rest go out as
/// the epoch ends. Folding over the whole epoch makes a sensor read a thousand times in it
/// one update per window and level, at the cost of this bound's memory.
const FOLD_SERIES: usize = 65_536;

/// How soon to read again after reading something, instead of being woken by each message:
/// a broker that answers in many small fetches would otherwise wake the worker for each.
/// Readings go out at the end of their epoch either way, so this costs no latency while it
/// is shorter than an epoch (it is capped at the epoch's end).
const READ_EVERY: Duration = Duration::from_millis(25);

/// How soon to look again while the sinks' backlog pauses reading.
const BACKLOG_POLL: Duration = Duration::from_millis(5);

/// Wall-clock time, Unix ms.
fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// The epoch that wall-clock time is in now.
fn current_epoch(epoch: Duration) -> u64 {
    (unix_ms() / epoch.as_millis().max(1)) as u64
}

/// How long until wall-clock time enters the next epoch.
fn until_next_epoch(epoch: Duration) -> Duration {
    let length = epoch.as_millis().max(1);
    Duration::from_millis((length - unix_ms() % length) as u64)
}

/// Readings counted during one activation, added to the worker's counters once.
#[derive(Default)]
struct Counted {
    readings: u64,
    late: u64,
}

impl Counted {
    fn add_to(self, counters: &WorkerMetrics) {
        if self.readings > 0 {
            counters.readings.inc_by(self.readings);
        }
        if self.late > 0 {
            counters.late.inc_by(self.late);
        }
    }
}

/// `state`'s figures for the metrics.
fn figures(state: &PartitionState, idle: bool, watermark_ms: Option<i64>) -> PartitionFigures {
    PartitionFigures {
        position: state.next_offset,
        end_offset: state.end_seen.max(state.next_offset),
        idle,
        watermark_ms,
        committed: None,
    }
}

/// What one activation reads with, beside the partitions' states.
struct Reader<'a> {
    config: &'a RunConfig,
    now: Instant,
    counted: Counted,
    counters: &'a WorkerMetrics,
    dead_letters: Option<&'a DeadLetters>,
    combiner: &'a mut Combiner,
    /// Readings whose base-level window ends at or before this are held by the roll-up
    /// changelog a restart loaded ([`crate::pipeline::rollups`]).
    sealed_below: i64,
}

/// What one round of polling found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Polled {
    /// Nothing: the queues are empty.
    Idle,
    /// Messages, and the queues are empty now.
    Some,
    /// A full budget: there is more to read at once.
    More,
}

impl Reader<'_> {
    /// Handles one message read: an accepted reading is folded into every window of every
    /// level it falls in, a malformed one is counted and dead-lettered, an end of partition
    /// is recorded. Messages of partitions not in `owned` are not this worker's (none are
    /// expected: each partition's messages go to its own queue).
    fn handle(&mut self, owned: &mut OwnedPartitions, message: &Fetched<'_>) {
        let config = self.config;
        if let Some(code) = message.error() {
            // As rdkafka's polling turns a fetched error into a result.
            return self.failed(
                owned,
                match code {
                    RDKafkaErrorCode::PartitionEOF => {
                        RdKafkaError::PartitionEOF(message.partition())
                    }
                    code => RdKafkaError::MessageConsumption(code),
                },
            );
        }
        let Some(state) = owned.get_mut(message.partition()) else {
            return;
        };
        if state.finished() {
            return;
        }
        state.read(message.offset(), self.now);
        let parsed = Reading::parse(message.payload())
            .and_then(|r| r.within(message.timestamp_ms(), config.max_future_ms));
        match parsed {
            Ok(reading) => {
                let newest_before = state.newest_ms;
                if !state.accept(reading.ts_ms, config.lateness_ms) {
                    self.counted.late += 1;
                    return;
                }
                self.counted.readings += 1;
                state.record_for_replay(
                    message.offset(),
                    config.windows.last_end(reading.ts_ms),
                    newest_before,
                );
                let stats = Stats::of(reading.value);
                let levels = &config.levels;
                // A replayed reading that a roll-up changelog record already holds counts
                // only in the first level (whose windows that old are evicted anyway).
                let base_end = levels.all[levels.base].windows.last_end(reading.ts_ms);
                let upto = if base_end <= self.sealed_below {
                    1
                } else {
                    levels.all.len()
                };
                let windows = levels.all[..upto]
                    .iter()
                    .enumerate()
                    .flat_map(|(level, shape)| {
                        let starts = shape.windows.starts(reading.ts_ms);
                        starts.map(move |start_ms| (level as u8, start_ms))
                    });
                self.combiner.add(&reading.series, stats, windows);
            }
            Err(reason) => {
                self.counters
                    .malformed(message.partition(), message.offset(), reason);
                if let Some(dl) = self.dead_letters {
                    dl.send(message, reason);
                    self.counters.dead_lettered.inc();
                }
            }
        }
    }

    /// Records an error in a message's place: a partition's end, or one to count.
    fn failed(&mut self, owned: &mut OwnedPartitions, error: RdKafkaError) {
        match error {
            RdKafkaError::PartitionEOF(p) => {
                if let Some(state) = owned.get_mut(p) {
                    state.reached_eof();
                }
            }
            e => self.counters.kafka_error(&e),
        }
    }

    /// Reads every queue of `owned`, an even share of the budget each so that no partition
    /// waits for another, and serves the process consumer's own queue.
    fn poll(
        &mut self,
        owned: &mut OwnedPartitions,
        queues: &[PartitionQueue],
        consumer: &BaseConsumer<LogContext>,
        batch: &mut Vec<*mut rd_kafka_message_t>,
    ) -> Polled {
        let share = (POLL_BUDGET / queues.len().max(1)).max(1);
        let mut polled = Polled::Idle;
        for queue in queues {
            let handled = queue.read(share, batch, |message| self.handle(owned, message));
            polled = match (polled, handled) {
                (_, n) if n == share => Polled::More,
                (Polled::Idle, n) if n > 0 => Polled::Some,
                (r, _) => r,
            };
        }
        for _ in 0..EVENTS_PER_ACTIVATION {
            match consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(message)) => self.handle(owned, &Fetched::of(&message)),
                Some(Err(e)) => self.failed(owned, e),
            }
        }
        polled
    }
}

/// Records `state`'s figures at the end of an epoch: its report, and the end offset the
/// consumer last saw (librdkafka's cached high watermark, no request).
fn report(
    context: &Context,
    consumer: &BaseConsumer<LogContext>,
    topic: &CStr,
    state: &mut PartitionState,
    progress: &PartitionProgress,
) {
    if let Some(high) = cached_end_offset(consumer, topic, state.partition) {
        state.end_seen = state.end_seen.max(high);
    }
    let figures = figures(state, progress.idle, progress.watermark_ms);
    context.metrics.live.partition(state.partition, figures);
}

/// The end offset of `partition` from the consumer's last fetch response, without a
/// request (rdkafka wraps only `fetch_watermarks`, which asks the broker and blocks).
fn cached_end_offset(
    consumer: &BaseConsumer<LogContext>,
    topic: &CStr,
    partition: i32,
) -> Option<i64> {
    let (mut low, mut high) = (0i64, 0i64);
    // SAFETY: the client pointer is valid while `consumer` lives; `topic` is NUL-terminated
    // and the call only reads librdkafka's cached offsets into the two locals.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// The source's output of window updates.
type UpdatesOut = OutputBuilder<u64, CapacityContainerBuilder<Vec<(WindowKey, u64, Stats)>>>;

/// Hands every key `combiner` folded to `out`, at the time of `cap`.
fn give_folded(out: &mut UpdatesOut, cap: &Capability<u64>, combiner: &mut Combiner) {
    let mut out = out.activate();
    let mut session = out.session(cap);
    let time = *cap.time();
    combiner.drain(|key, stats| session.give((key, time, stats)));
}

/// Builds worker's source operator over `input`; `sealed_below` is the horizon of the
/// roll-up changelog a restart loaded (`i64::MIN` if none).
pub fn kafka_source<'scope>(
    scope: Scope<'scope, u64>,
    input: &KafkaInput,
    config: Rc<RunConfig>,
    sealed_below: i64,
    context: Context,
) -> (Updates<'scope>, StreamVec<'scope, u64, PartitionProgress>) {
    let mut builder = OperatorBuilder::new("KafkaSource".to_owned(), scope);
    let address = builder.operator_info().address;
    let activator = scope.activator_for(address.clone());
    input
        .wake
        .set(scope.worker().sync_activator_for(address.to_vec()));
    let (updates_out, updates) = builder.new_output();
    let (progress_out, progress) = builder.new_output();
    let mut updates_out = UpdatesOut::from(updates_out);
    let mut progress_out =
        OutputBuilder::<u64, CapacityContainerBuilder<Vec<PartitionProgress>>>::from(progress_out);
    let consumer = input.consumer.clone();
    let queues = input.queues.clone();
    let wake = input.wake.clone();
    let partitions = input.partitions.clone();
    let dead_letters = input.dead_letters.clone();
    let counters = context.metrics.worker(scope.index());
    let topic = CString::new(config.kafka.topic.as_str()).unwrap_or_default();

    builder.build(move |mut capabilities| {
        let mut progress_cap = capabilities.pop();
        let mut updates_cap = capabilities.pop();
        if partitions.borrow().states.is_empty() {
            progress_cap = None;
            updates_cap = None;
        }
        // Where each partition starts, so that a run's progress counts from there.
        for state in &partitions.borrow().states {
            let figures = figures(state, false, None);
            context.metrics.live.partition(state.partition, figures);
        }
        let mut dead_letters = dead_letters;
        let mut combiner = Combiner::default();
        let mut batch = Vec::new();
        move |_frontiers| {
            let (Some(u_cap), Some(p_cap)) = (updates_cap.as_mut(), progress_cap.as_mut()) else {
                return;
            };
            let now = Instant::now();
            let mut owned = partitions.borrow_mut();
            let epoch = current_epoch(config.epoch);
            let stopping = context.control.stopping();
            let backlogged = context.backlog.full();
            // Read before the epoch ends: what arrived while the source waited for its
            // timer belongs to the epoch it arrived in.
            let mut polled = Polled::Idle;
            if !stopping && !backlogged {
                let mut reader = Reader {
                    config: &config,
                    now,
                    counted: Counted::default(),
                    counters: &counters,
                    dead_letters: dead_letters.as_deref(),
                    combiner: &mut combiner,
                    sealed_below,
                };
                polled = reader.poll(&mut owned, &queues, &consumer, &mut batch);
                if polled == Polled::Idle {
                    // A message that came between the poll and the arming woke nothing:
                    // look once more.
                    wake.arm(true);
                    polled = reader.poll(&mut owned, &queues, &consumer, &mut batch);
                }
                reader.counted.add_to(&counters);
                if combiner.series() >= FOLD_SERIES {
                    give_folded(&mut updates_out, u_cap, &mut combiner);
                }
            }
            let finished = owned.states.iter().all(PartitionState::finished);
            if epoch > *p_cap.time() || stopping || finished {
                // The epoch ends: what was folded in it goes out before its capability moves.
                give_folded(&mut updates_out, u_cap, &mut combiner);
                let mut out = progress_out.activate();
                let mut session = out.session(&*p_cap);
                for state in &mut owned.states {
                    let progress = state.progress(config.lateness_ms, now, config.idle_timeout);
                    report(&context, &consumer, &topic, state, &progress);
                    session.give(progress);
                }
            }
            if stopping || finished {
                if let Some(dl) = dead_letters.take() {
                    if let Err(e) = dl.flush() {
                        context.control.fail(e);
                    }
                }
                updates_cap = None;
                progress_cap = None;
                return;
            }
            if epoch > *p_cap.time() {
                p_cap.downgrade(&epoch);
                u_cap.downgrade(&epoch);
            }
            let next_epoch = until_next_epoch(config.epoch);
            match polled {
                _ if backlogged => activator.activate_after(BACKLOG_POLL),
                Polled::More => activator.activate(),
                Polled::Some => {
                    wake.arm(false);
                    activator.activate_after(next_epoch.min(READ_EVERY));
                }
                Polled::Idle => activator.activate_after(next_epoch),
            }
        }
    });
    (updates, progress)
}
