//! The resume log: for each partition, where a restarted pipeline resumes
//! ([`ResumePoint`]), kept in a Kafka topic of maxq's own (`--resume-topic`), keyed by
//! `group/topic/partition`, latest record wins.
//!
//! The broker's offset-commit metadata would be the natural home, but not every broker
//! keeps it (tansu drops it), so maxq records it beside the group offsets, before them:
//! the group offset is for lag tooling, the resume log is what a restart trusts.

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafka;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use timely::scheduling::SyncActivator;

use crate::config::KafkaConfig;
use crate::kafka::{
    client_config, client_error, create_topic, DeliveryTracker, KafkaError, LogContext,
    METADATA_TIMEOUT,
};
use crate::pipeline::progress::ResumePoint;

fn key_prefix(kafka: &KafkaConfig) -> String {
    format!("{}/{}/", kafka.group, kafka.topic)
}

/// Creates `topic`, one of maxq's own (one partition, compacted), if it does not exist.
fn ensure_topic(
    kafka: &KafkaConfig,
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
) -> Result<(), KafkaError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(client_error(format!(
            "looking up {}",
            own_topic(kafka, topic)
        )))?;
    let exists = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if exists {
        return Ok(());
    }
    create_topic(
        &kafka.connection,
        topic,
        1,
        &[("cleanup.policy", "compact")],
        &format!("creating {}", own_topic(kafka, topic)),
    )?;
    Ok(())
}

/// How errors name one of maxq's own topics.
fn own_topic(kafka: &KafkaConfig, topic: &str) -> String {
    if topic == kafka.resume_topic {
        format!("--resume-topic {topic}")
    } else {
        format!("{topic} (named after --resume-topic)")
    }
}

/// A consumer of `topic`, one of maxq's own (created if absent), assigned from its first
/// offset, with the topic's first and end offsets; `what` names the reader in errors.
pub fn open_reader(
    kafka: &KafkaConfig,
    topic: &str,
    group_id: &str,
    what: &str,
) -> Result<(BaseConsumer<LogContext>, i64, i64), KafkaError> {
    let consumer: BaseConsumer<LogContext> = client_config(
        &kafka.connection,
        &[("group.id", group_id), ("enable.auto.commit", "false")],
    )
    .create_with_context(LogContext)
    .map_err(client_error(format!("creating the {what} reader")))?;
    ensure_topic(kafka, &consumer, topic)?;
    let context = || format!("reading the {what} in {}", own_topic(kafka, topic));
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, METADATA_TIMEOUT)
        .map_err(client_error(context()))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(low))
        .map_err(client_error(context()))?;
    consumer
        .assign(&assignment)
        .map_err(client_error(context()))?;
    Ok((consumer, low, high))
}

/// Reads the resume points of `--group` for `--topic`, by partition.
pub fn load(kafka: &KafkaConfig) -> Result<BTreeMap<i32, ResumePoint>, KafkaError> {
    let records = read_latest(
        kafka,
        &kafka.resume_topic,
        "maxq-resume-reader",
        "resume log",
    )?;
    Ok(records
        .into_iter()
        .filter_map(|(key, payload)| {
            let partition = key.parse::<i32>().ok()?;
            Some((partition, serde_json::from_slice(&payload).ok()?))
        })
        .collect())
}

/// The newest payload of every key of `--group` for `--topic` in `topic`, one of maxq's
/// own, by the rest of its key; a key whose newest record has no payload (a tombstone) is
/// left out. `what` names the log in errors.
pub fn read_latest(
    kafka: &KafkaConfig,
    topic: &str,
    group_id: &str,
    what: &str,
) -> Result<BTreeMap<String, Vec<u8>>, KafkaError> {
    let (consumer, low, high) = open_reader(kafka, topic, group_id, what)?;
    let context = || format!("reading the {what} in {}", own_topic(kafka, topic));
    let mut latest = BTreeMap::new();
    let prefix = key_prefix(kafka);
    // Given up on when the broker sends nothing for this long, however long the log.
    let patience = Duration::from_secs(30);
    let mut deadline = Instant::now() + patience;
    let mut next = low;
    while next < high {
        if Instant::now() > deadline {
            return Err(KafkaError::Client {
                context: context(),
                cause: rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::RequestTimedOut,
                ),
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                next = message.offset() + 1;
                deadline = Instant::now() + patience;
                let key = message
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .unwrap_or_default();
                let Some(rest) = key.strip_prefix(&prefix) else {
                    continue;
                };
                match message.payload() {
                    Some(payload) => latest.insert(rest.to_owned(), payload.to_vec()),
                    None => latest.remove(rest),
                };
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => return Err(client_error(context())(e)),
        }
    }
    Ok(latest)
}

/// The process's writer of resume points, shared by its workers' intent and commit
/// operators (and, on a topic of its own, of the roll-up changelog's records). Its producer is polled by whoever asks about a save (not by a polling thread
/// of its own, which would wake up all the time: rdkafka's `ThreadedProducer` spins for the
/// last millisecond of every poll, even on an idle run).
///
/// Saves of different workers interleave in one producer. The resume topic has one
/// partition and one request in flight, so records settle in the order they were sent: a
/// save has settled once as many records as had been sent with it have. A failure of any
/// record settled meanwhile counts against every save waiting, which is then tried again:
/// never a save reported durable that is not.
pub struct ResumeLog {
    kafka: KafkaConfig,
    topic: String,
    prefix: String,
    current: Mutex<Current>,
    /// Woken when a producer of this log has reports to serve; declared after `current`
    /// so that it outlives every producer, whose callback points at it.
    waiting: Arc<Waiting>,
}

/// The operators that wait on saves of one [`ResumeLog`].
#[derive(Default)]
struct Waiting(Mutex<Vec<SyncActivator>>);

/// librdkafka calls this from a thread of its own, holding the producer's main queue's
/// lock, when that queue gets an event after being empty: a delivery report has come.
unsafe extern "C" fn reports_arrived(_client: *mut RDKafka, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Waiting` of the log whose producer this is; the log keeps it
    // alive longer than any of its producers.
    let waiting = unsafe { &*opaque.cast::<Waiting>() };
    for operator in waiting
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        let _ = operator.activate();
    }
}

/// The producer in use, replaced after a failure.
struct Current {
    producer: Arc<BaseProducer<DeliveryTracker>>,
    /// Records sent by this producer.
    sent: u64,
    /// Bumped whenever the producer is replaced.
    generation: u64,
}

/// How often [`ResumeLog::save`] checks its save while it waits.
const CHECK_EVERY: Duration = Duration::from_millis(2);

/// How soon an operator waiting on a save looks again if no delivery report woke it. The
/// reports wake it ([`ResumeLog::wake_on_reports`]); this only bounds a missed wake. Polling
/// every few milliseconds instead woke each worker hundreds of times a second while saves
/// to a slow broker were under way.
pub const CHECK_AT_LEAST_EVERY: Duration = Duration::from_millis(100);

/// How long [`ResumeLog::save`] waits for its records.
const SAVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Events served at most by one [`ResumeLog::outcome`].
const POLLS_PER_CHECK: usize = 64;

/// A save sent and not yet known to be durable.
#[derive(Debug)]
pub struct Saving {
    generation: u64,
    settled_at: u64,
    failed_before: u64,
}

impl ResumeLog {
    /// Connects to `--resume-topic`.
    pub fn connect(kafka: &KafkaConfig) -> Result<ResumeLog, KafkaError> {
        Self::connect_to(kafka, &kafka.resume_topic)
    }

    /// Connects to `topic`, one of maxq's own (created by whoever reads it first).
    pub fn connect_to(kafka: &KafkaConfig, topic: &str) -> Result<ResumeLog, KafkaError> {
        let waiting = Arc::<Waiting>::default();
        Ok(ResumeLog {
            kafka: kafka.clone(),
            topic: topic.to_owned(),
            prefix: key_prefix(kafka),
            current: Mutex::new(Current {
                producer: Arc::new(Self::producer(kafka, &waiting)?),
                sent: 0,
                generation: 0,
            }),
            waiting,
        })
    }

    /// Activates `operator` whenever delivery reports come, so that it can wait for a save
    /// without polling.
    pub fn wake_on_reports(&self, operator: SyncActivator) {
        self.waiting
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(operator);
    }

    fn producer(
        kafka: &KafkaConfig,
        waiting: &Arc<Waiting>,
    ) -> Result<BaseProducer<DeliveryTracker>, KafkaError> {
        let producer = Self::unwatched_producer(kafka)?;
        // SAFETY: the client pointer is valid while `producer` lives. The queue handle only
        // holds a reference to the client's main queue, which keeps the callback after the
        // handle is destroyed. The opaque `Waiting` outlives the producer: the log owns both
        // and drops its producers first.
        unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(producer.client().native_ptr());
            rdsys::rd_kafka_queue_cb_event_enable(
                queue,
                Some(reports_arrived),
                Arc::as_ptr(waiting).cast_mut().cast(),
            );
            rdsys::rd_kafka_queue_destroy(queue);
        }
        Ok(producer)
    }

    fn unwatched_producer(
        kafka: &KafkaConfig,
    ) -> Result<BaseProducer<DeliveryTracker>, KafkaError> {
        client_config(
            &kafka.connection,
            // Ordered without the idempotent producer: one request in flight. A retried
            // record written twice is harmless (the newest record per key wins, and a
            // duplicate lands before anything newer). Not idempotent because acquiring a
            // producer id can stall for seconds (seen with tansu).
            &[
                ("enable.idempotence", "false"),
                ("max.in.flight.requests.per.connection", "1"),
                ("acks", "all"),
                ("linger.ms", "0"),
                ("message.timeout.ms", "30000"),
            ],
        )
        .create_with_context(DeliveryTracker::default())
        .map_err(client_error("creating the resume-log producer"))
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `points` without waiting; [`ResumeLog::outcome`] tells when they are durable.
    pub fn send(&self, points: &BTreeMap<i32, ResumePoint>) -> Saving {
        self.send_records(points.iter().map(|(partition, point)| {
            let payload = serde_json::to_vec(point).expect("a resume point serializes");
            (partition.to_string(), Some(payload))
        }))
    }

    /// Sends `records` (each a key after the group's and topic's prefix, and a payload or
    /// `None` for a tombstone) without waiting.
    pub fn send_records(
        &self,
        records: impl IntoIterator<Item = (String, Option<Vec<u8>>)>,
    ) -> Saving {
        let mut current = self.current();
        let producer = current.producer.clone();
        let failed_before = producer.context().failed();
        for (key, payload) in records {
            let key = format!("{}{key}", self.prefix);
            current.sent += 1;
            let record = BaseRecord::to(&self.topic).key(&key);
            let record = match &payload {
                Some(payload) => record.payload(payload),
                None => record,
            };
            if let Err((e, _)) = producer.send(record) {
                producer.context().unsent(&e);
            }
        }
        producer.poll(Duration::ZERO);
        Saving {
            generation: current.generation,
            settled_at: current.sent,
            failed_before,
        }
    }

    /// `None` while `saving` is in flight; then whether it is durable. After a failure the
    /// producer is replaced, so the next save starts clean.
    pub fn outcome(&self, saving: &Saving) -> Option<Result<(), String>> {
        let topic = own_topic(&self.kafka, &self.topic);
        let mut current = self.current();
        if saving.generation != current.generation {
            return Some(Err(format!(
                "resume log {topic}: the producer was replaced"
            )));
        }
        let context = current.producer.context();
        // Each poll serves one event (one delivery report holds a request's records), until
        // one settles nothing: the queue is then empty, in practice, and its next report
        // wakes the operators again.
        for _ in 0..POLLS_PER_CHECK {
            let settled = context.settled();
            if settled >= saving.settled_at {
                break;
            }
            current.producer.poll(Duration::ZERO);
            if context.settled() == settled {
                break;
            }
        }
        if context.settled() < saving.settled_at {
            return None;
        }
        if context.failed() == saving.failed_before {
            return Some(Ok(()));
        }
        let Err(e) = context.check() else {
            return Some(Ok(()));
        };
        let old = self.replace(&mut current);
        // The old producer flushes for a while as it goes: not while the others wait.
        drop(current);
        drop(old);
        Some(Err(format!("resume log {topic}: {e}")))
    }

    /// Records `points` and waits until they are durable. Only [`ResumeLog::outcome`]
    /// polls, under the lock, so no other worker's poll can take this save's delivery
    /// report while its failures are being counted.
    pub fn save(&self, points: &BTreeMap<i32, ResumePoint>) -> Result<(), String> {
        self.wait(self.send(points))
    }

    /// Records `records` (as [`ResumeLog::send_records`] takes them) and waits until they
    /// are durable.
    pub fn save_records(
        &self,
        records: impl IntoIterator<Item = (String, Option<Vec<u8>>)>,
    ) -> Result<(), String> {
        self.wait(self.send_records(records))
    }

    fn wait(&self, saving: Saving) -> Result<(), String> {
        let deadline = Instant::now() + SAVE_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(outcome) = self.outcome(&saving) {
                return outcome;
            }
            std::thread::sleep(CHECK_EVERY);
        }
        let mut current = self.current();
        let old = (current.generation == saving.generation).then(|| self.replace(&mut current));
        drop(current);
        drop(old);
        Err(format!(
            "resume log {}: not written within {}",
            own_topic(&self.kafka, &self.topic),
            humantime::format_duration(SAVE_TIMEOUT)
        ))
    }

    /// Starts a fresh producer; returns the old one, to be dropped once the lock is let go.
    fn replace(&self, current: &mut Current) -> Option<Arc<BaseProducer<DeliveryTracker>>> {
        let fresh = Self::producer(&self.kafka, &self.waiting).ok()?;
        current.sent = 0;
        current.generation += 1;
        Some(std::mem::replace(&mut current.producer, Arc::new(fresh)))
    }
}
