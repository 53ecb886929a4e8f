//! The timely source operator: one per worker, reading the partitions that worker owns.
//!
//! It follows timely's custom-source pattern: the capability is kept in an `Option`,
//! downgraded to the current epoch as wall-clock time passes, dropped when the source is
//! finished (`--until-end`, or shutdown). It polls the consumer with a zero timeout and a
//! per-activation budget, so the worker thread never blocks. When it found nothing it is
//! woken by the consumer (librdkafka calls back when its queue gets a message) or at the
//! next epoch, not by polling: an idle worker sleeps.
//!
//! Two outputs: the window updates of accepted readings, as differential updates
//! `(key, epoch, Stats)`, and one [`PartitionProgress`] per owned partition at the end of
//! every epoch.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{Scope, StreamVec};
use timely::scheduling::SyncActivator;

use super::{DeadLetters, OwnedPartitions, PartitionState};
use crate::config::{RunConfig, StartAt};
use crate::kafka::{client_error, consumer_config, KafkaError, LogContext, METADATA_TIMEOUT};
use crate::key::WindowKey;
use crate::pipeline::aggregate::Updates;
use crate::pipeline::context::Context;
use crate::pipeline::metrics::{PartitionFigures, WorkerMetrics};
use crate::pipeline::parse::Reading;
use crate::pipeline::progress::{PartitionProgress, ResumePoint};
use crate::stats::Stats;

/// Most messages handled in one activation, so other operators get their turn.
const POLL_BUDGET: usize = 4096;

/// How soon to look again while the sinks' backlog pauses reading.
const BACKLOG_POLL: Duration = Duration::from_millis(5);

/// A worker's Kafka input, connected and assigned.
pub struct KafkaInput {
    /// The worker's consumer, shared with the commit operator.
    pub consumer: Rc<BaseConsumer<LogContext>>,
    /// The partitions this worker owns.
    pub partitions: Rc<RefCell<OwnedPartitions>>,
    /// The dead-letter producer, shared with the commit operator and the sink.
    pub dead_letters: Option<Arc<DeadLetters>>,
    /// Activated by librdkafka when the consumer's queue gets a message.
    pub wake: Arc<Mutex<Option<SyncActivator>>>,
}

impl KafkaInput {
    /// Creates worker `index`'s consumer and assigns it its partitions, each from its
    /// resume point, else the group's committed offset, else `--start`.
    pub fn connect(
        config: &RunConfig,
        index: usize,
        peers: usize,
        partitions: usize,
        resume: &BTreeMap<i32, ResumePoint>,
    ) -> Result<Self, KafkaError> {
        let kafka = &config.kafka;
        let mut consumer: BaseConsumer<LogContext> =
            consumer_config(&kafka.connection, &kafka.group)
                .create_with_context(LogContext)
                .map_err(client_error("creating the consumer"))?;
        let wake: Arc<Mutex<Option<SyncActivator>>> = Arc::default();
        let woken = wake.clone();
        consumer.set_nonempty_callback(move || {
            if let Some(source) = woken.lock().ok().as_deref().and_then(Option::as_ref) {
                let _ = source.activate();
            }
        });
        let ids = OwnedPartitions::ids(index, peers, partitions);
        let mut wanted = TopicPartitionList::new();
        for p in &ids {
            wanted.add_partition(&kafka.topic, *p);
        }
        let committed = if ids.is_empty() {
            TopicPartitionList::new()
        } else {
            consumer
                .committed_offsets(wanted, METADATA_TIMEOUT)
                .map_err(client_error(format!(
                    "reading group {:?}'s committed offsets",
                    kafka.group
                )))?
        };
        let mut assignment = TopicPartitionList::new();
        let mut states = Vec::new();
        for p in ids {
            let (low, high) = consumer
                .fetch_watermarks(&kafka.topic, p, METADATA_TIMEOUT)
                .map_err(client_error(format!(
                    "reading the offsets of partition {p}"
                )))?;
            let committed = committed
                .find_partition(&kafka.topic, p)
                .map(|e| e.offset());
            let start = match (resume.get(&p), committed) {
                (Some(point), _) => point.offset.clamp(low, high),
                (None, Some(Offset::Offset(o))) => o.clamp(low, high),
                _ => match kafka.start {
                    StartAt::Earliest => low,
                    StartAt::Latest => high,
                },
            };
            assignment
                .add_partition_offset(&kafka.topic, p, Offset::Offset(start))
                .map_err(client_error("building the assignment"))?;
            let mut state = PartitionState::new(p, start, kafka.until_end.then_some(high));
            state.end_seen = high;
            states.push(match resume.get(&p) {
                Some(point) => state.resuming(point, high),
                None => state,
            });
        }
        consumer
            .assign(&assignment)
            .map_err(client_error("assigning partitions"))?;
        Ok(KafkaInput {
            consumer: Rc::new(consumer),
            partitions: Rc::new(RefCell::new(OwnedPartitions { states })),
            dead_letters: DeadLetters::connect(kafka)?.map(Arc::new),
            wake,
        })
    }
}

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

/// Builds worker's source operator over `input`.
pub fn kafka_source<'scope>(
    scope: Scope<'scope, u64>,
    input: &KafkaInput,
    config: Rc<RunConfig>,
    context: Context,
) -> (Updates<'scope>, StreamVec<'scope, u64, PartitionProgress>) {
    let mut builder = OperatorBuilder::new("KafkaSource".to_owned(), scope);
    let address = builder.operator_info().address;
    let activator = scope.activator_for(address.clone());
    if let Ok(mut wake) = input.wake.lock() {
        *wake = Some(scope.worker().sync_activator_for(address.to_vec()));
    }
    let (updates_out, updates) = builder.new_output();
    let (progress_out, progress) = builder.new_output();
    let mut updates_out = OutputBuilder::<
        u64,
        CapacityContainerBuilder<Vec<(WindowKey, u64, Stats)>>,
    >::from(updates_out);
    let mut progress_out =
        OutputBuilder::<u64, CapacityContainerBuilder<Vec<PartitionProgress>>>::from(progress_out);
    let consumer = input.consumer.clone();
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
        move |_frontiers| {
            let (Some(u_cap), Some(p_cap)) = (updates_cap.as_mut(), progress_cap.as_mut()) else {
                return;
            };
            let now = Instant::now();
            let mut owned = partitions.borrow_mut();
            let epoch = current_epoch(config.epoch);
            let stopping = context.control.stopping();
            let finished = owned.states.iter().all(PartitionState::finished);
            if epoch > *p_cap.time() || stopping || finished {
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
            if context.backlog.full() {
                activator.activate_after(BACKLOG_POLL);
                return;
            }
            let mut out = updates_out.activate();
            let mut session = out.session(&*u_cap);
            let time = *u_cap.time();
            let mut counted = Counted::default();
            let mut handled = 0;
            while handled < POLL_BUDGET {
                match consumer.poll(Duration::ZERO) {
                    None => break,
                    Some(Ok(message)) => {
                        handled += 1;
                        let Some(state) = owned.get_mut(message.partition()) else {
                            continue;
                        };
                        if state.finished() {
                            continue;
                        }
                        state.read(message.offset(), now);
                        let parsed = Reading::parse(message.payload().unwrap_or_default())
                            .and_then(|r| {
                                r.within(message.timestamp().to_millis(), config.max_future_ms)
                            });
                        match parsed {
                            Ok(reading) => {
                                let newest_before = state.newest_ms;
                                if !state.accept(reading.ts_ms, config.lateness_ms) {
                                    counted.late += 1;
                                    continue;
                                }
                                counted.readings += 1;
                                state.record_for_replay(
                                    message.offset(),
                                    config.windows.last_end(reading.ts_ms),
                                    newest_before,
                                );
                                let stats = Stats::of(reading.value);
                                let series: Arc<str> = reading.series.into();
                                for start_ms in config.windows.starts(reading.ts_ms) {
                                    let series = series.clone();
                                    session.give((WindowKey { start_ms, series }, time, stats));
                                }
                            }
                            Err(reason) => {
                                counters.malformed(message.partition(), message.offset(), reason);
                                if let Some(dl) = &dead_letters {
                                    dl.send(&message, reason);
                                    counters.dead_lettered.inc();
                                }
                            }
                        }
                    }
                    Some(Err(RdKafkaError::PartitionEOF(p))) => {
                        if let Some(state) = owned.get_mut(p) {
                            state.reached_eof();
                        }
                    }
                    Some(Err(e)) => counters.kafka_error(&e),
                }
            }
            counted.add_to(&counters);
            if handled == POLL_BUDGET {
                activator.activate();
            } else {
                activator.activate_after(until_next_epoch(config.epoch));
            }
        }
    });
    (updates, progress)
}
