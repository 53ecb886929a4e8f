//! The process's one Kafka consumer, its partitions split among the process's workers.
//!
//! One librdkafka client per process, not per worker: one set of broker connections and
//! fetch buffers whatever `-w`. It is assigned every partition a worker of this process
//! owns (partition `p` belongs to global worker `p % peers`), and each of those partitions
//! gets its own queue, split off the consumer's queue before the assignment starts
//! fetching, so a message only ever reaches the worker that owns its partition. A worker
//! reads its partitions' queues in batches and is woken when one of them gets a message; the
//! consumer's own queue (errors, commit results) is served by the workers' sources too.

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use timely::scheduling::SyncActivator;

use super::{DeadLetters, OwnedPartitions, PartitionState};
use crate::config::{Connection, RunConfig, StartAt};
use crate::kafka::fetched::{read_batch, Fetched};
use crate::kafka::{client_error, consumer_config, KafkaError, LogContext, METADATA_TIMEOUT};
use crate::pipeline::progress::ResumePoint;

/// librdkafka's prefetch limits, with their defaults: they bound one queue, so each
/// partition's queue gets its share of them.
const PREFETCH_LIMITS: [(&str, u64); 2] = [
    ("queued.min.messages", 100_000),
    ("queued.max.messages.kbytes", 65_536),
];

/// The queue of one owned partition, read in batches.
///
/// rdkafka's handle keeps the queue split off the consumer's and calls back when it gets a
/// message; a second handle of librdkafka's own to the same queue is read with its batch
/// consume ([`read_batch`]).
pub struct PartitionQueue {
    batch: NonNull<rdsys::rd_kafka_queue_t>,
    /// Kept, not read: while it lives the queue stays split off and calls back.
    _split: rdkafka::consumer::base_consumer::PartitionQueue<LogContext>,
}

// SAFETY: librdkafka's queue handles may be used from any thread; each worker reads its own
// partitions' queues on its own thread.
unsafe impl Send for PartitionQueue {}

impl Drop for PartitionQueue {
    fn drop(&mut self) {
        // SAFETY: `batch` came from rd_kafka_queue_get_partition and is destroyed once; the
        // consumer it refers to outlives it, held by `_split`.
        unsafe { rdsys::rd_kafka_queue_destroy(self.batch.as_ptr()) };
    }
}

impl PartitionQueue {
    /// Hands up to `max` of the queue's messages (and errors, such as the partition's end)
    /// to `each` in order, without waiting; how many there were (see [`read_batch`]).
    pub fn read(
        &self,
        max: usize,
        buffer: &mut Vec<*mut rdsys::rd_kafka_message_t>,
        each: impl FnMut(&Fetched<'_>),
    ) -> usize {
        // SAFETY: the queue handle is valid while `self` lives.
        unsafe { read_batch(self.batch.as_ptr(), 0, max, buffer, each) }
    }
}

/// Where a worker is in the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// This process's index (`-p`).
    pub process: usize,
    /// Workers per process (`-w`).
    pub workers: usize,
    /// Workers in the cluster (`-w` × `-n`).
    pub peers: usize,
}

/// How a worker's queues wake its source: librdkafka calls back when a queue gets a
/// message after being empty, and the callback activates the source only while it is
/// armed. The source disarms it while it reads on a timer of its own, so a broker that
/// answers in many small fetches does not wake the worker for each.
#[derive(Default)]
pub struct Wake {
    source: Mutex<Option<SyncActivator>>,
    armed: AtomicBool,
}

impl Wake {
    /// Sets the source to activate.
    pub fn set(&self, source: SyncActivator) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = Some(source);
        self.arm(true);
    }

    /// Whether a queue's next message activates the source.
    pub fn arm(&self, armed: bool) {
        self.armed.store(armed, Ordering::SeqCst);
    }

    fn queue_got_a_message(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            if let Some(source) = self
                .source
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                let _ = source.activate();
            }
        }
    }
}

/// What one worker reads, handed from the process to the worker's thread.
struct WorkerPart {
    queues: Vec<PartitionQueue>,
    states: Vec<PartitionState>,
    wake: Arc<Wake>,
}

/// The process's consumer, assigned, with each worker's part not yet taken.
pub struct ProcessInput {
    consumer: Arc<BaseConsumer<LogContext>>,
    dead_letters: Option<Arc<DeadLetters>>,
    /// By local worker index.
    parts: Mutex<Vec<Option<WorkerPart>>>,
}

/// A worker's Kafka input: the process's consumer and the queues of its own partitions.
pub struct KafkaInput {
    /// The process's consumer, shared with the commit operator (group offsets) and with
    /// the other workers.
    pub consumer: Arc<BaseConsumer<LogContext>>,
    /// One queue per owned partition, in the order of `partitions`' states.
    pub queues: Rc<Vec<PartitionQueue>>,
    /// The partitions this worker owns.
    pub partitions: Rc<RefCell<OwnedPartitions>>,
    /// The process's dead letters, shared with the commit operator and the sink.
    pub dead_letters: Option<Arc<DeadLetters>>,
    /// Activates the source when one of the worker's queues gets a message.
    pub wake: Arc<Wake>,
}

/// The partitions each local worker of the process placed at `placement` owns, by local
/// index: partition `p` belongs to global worker `p % peers`.
fn owners(placement: Placement, partitions: usize) -> Vec<Vec<i32>> {
    (0..placement.workers)
        .map(|local| {
            let index = placement.process * placement.workers + local;
            OwnedPartitions::ids(index, placement.peers, partitions)
        })
        .collect()
}

/// Creates the process's consumer, nothing assigned yet, with the prefetch limits shared
/// among the queues of the partitions its workers will own.
pub fn create_consumer(
    config: &RunConfig,
    placement: Placement,
    partitions: usize,
) -> Result<Arc<BaseConsumer<LogContext>>, KafkaError> {
    let kafka = &config.kafka;
    let queues = owners(placement, partitions).iter().map(Vec::len).sum();
    let mut settings = consumer_config(&kafka.connection, &kafka.group);
    share_prefetch(&mut settings, &kafka.connection, queues);
    Ok(Arc::new(
        settings
            .create_with_context(LogContext)
            .map_err(client_error("creating the consumer"))?,
    ))
}

impl ProcessInput {
    /// Assigns `consumer` the partitions of the process's workers, each from its resume
    /// point, else the group's committed offset, else `--start`.
    pub fn connect(
        config: &RunConfig,
        placement: Placement,
        partitions: usize,
        resume: &BTreeMap<i32, ResumePoint>,
        consumer: Arc<BaseConsumer<LogContext>>,
        dead_letters: Option<Arc<DeadLetters>>,
    ) -> Result<Self, KafkaError> {
        let kafka = &config.kafka;
        let owners = owners(placement, partitions);
        let ids: Vec<i32> = owners.iter().flatten().copied().collect();
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
        let mut parts = Vec::new();
        let topic = CString::new(kafka.topic.as_str()).map_err(|_| KafkaError::Client {
            context: "naming the topic".to_owned(),
            cause: rdkafka::error::KafkaError::ClientCreation(format!(
                "--topic {:?} holds a NUL byte",
                kafka.topic
            )),
        })?;
        for owned in owners {
            let wake: Arc<Wake> = Arc::default();
            let mut part = WorkerPart {
                queues: Vec::new(),
                states: Vec::new(),
                wake: wake.clone(),
            };
            for p in owned {
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
                // Split before the assignment starts fetching: librdkafka then keeps the
                // partition's messages out of the consumer's own queue.
                let mut queue =
                    consumer
                        .split_partition_queue(&kafka.topic, p)
                        .ok_or_else(|| KafkaError::Client {
                            context: format!("splitting off the queue of partition {p}"),
                            cause: rdkafka::error::KafkaError::ClientCreation(
                                "librdkafka returned no partition queue".to_owned(),
                            ),
                        })?;
                let woken = wake.clone();
                queue.set_nonempty_callback(move || woken.queue_got_a_message());
                let batch = batch_handle(&consumer, &topic, p)?;
                part.queues.push(PartitionQueue {
                    batch,
                    _split: queue,
                });
                let mut state = PartitionState::new(p, start, kafka.until_end.then_some(high));
                state.end_seen = high;
                part.states.push(match resume.get(&p) {
                    Some(point) => state.resuming(point, high),
                    None => state,
                });
            }
            parts.push(Some(part));
        }
        consumer
            .assign(&assignment)
            .map_err(client_error("assigning partitions"))?;
        Ok(ProcessInput {
            consumer,
            dead_letters,
            parts: Mutex::new(parts),
        })
    }

    /// The input of local worker `local`, taken once, on the worker's thread.
    pub fn take(&self, local: usize) -> KafkaInput {
        let part = self
            .parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(local)
            .and_then(Option::take)
            .expect("each local worker takes its input once");
        KafkaInput {
            consumer: self.consumer.clone(),
            queues: Rc::new(part.queues),
            partitions: Rc::new(RefCell::new(OwnedPartitions {
                states: part.states,
            })),
            dead_letters: self.dead_letters.clone(),
            wake: part.wake,
        }
    }
}

/// A second handle to partition `partition`'s queue, split off before, to read it in batches.
fn batch_handle(
    consumer: &BaseConsumer<LogContext>,
    topic: &CStr,
    partition: i32,
) -> Result<NonNull<rdsys::rd_kafka_queue_t>, KafkaError> {
    // SAFETY: the client pointer is valid while `consumer` lives; `topic` is NUL-terminated.
    let raw = unsafe {
        rdsys::rd_kafka_queue_get_partition(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
        )
    };
    NonNull::new(raw).ok_or_else(|| KafkaError::Client {
        context: format!("opening the queue of partition {partition}"),
        cause: rdkafka::error::KafkaError::ClientCreation(
            "librdkafka returned no partition queue".to_owned(),
        ),
    })
}

/// Shares librdkafka's prefetch limits (the defaults, or `-X`'s) out among the `queues`
/// partition queues. They bound each queue, so split per partition they would let the
/// process prefetch `queues` times what one consumer queue holds: 8 partitions read from
/// a broker faster than the dataflow took 321 MiB instead of 97.
fn share_prefetch(settings: &mut ClientConfig, connection: &Connection, queues: usize) {
    for (key, default) in PREFETCH_LIMITS {
        let total = connection
            .librdkafka
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .unwrap_or(default);
        let share = (total / queues.max(1) as u64).max(1);
        settings.set(key, share.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_queues_share_the_default_prefetch_and_what_x_sets() {
        let connection = Connection {
            brokers: "localhost:9092".to_owned(),
            librdkafka: vec![("queued.max.messages.kbytes".to_owned(), "1024".to_owned())],
        };
        let mut settings = ClientConfig::new();
        share_prefetch(&mut settings, &connection, 8);
        assert_eq!(settings.get("queued.min.messages"), Some("12500"));
        assert_eq!(settings.get("queued.max.messages.kbytes"), Some("128"));
        share_prefetch(&mut settings, &connection, 0);
        assert_eq!(settings.get("queued.min.messages"), Some("100000"));
    }
}
