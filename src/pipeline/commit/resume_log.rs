//! The resume log: for each partition, where a restarted pipeline resumes
//! ([`ResumePoint`]), kept in a Kafka topic of maxq's own (`--resume-topic`), keyed by
//! `group/topic/partition`, latest record wins.
//!
//! The broker's offset-commit metadata would be the natural home, but not every broker
//! keeps it (tansu drops it), so maxq records it beside the group offsets, before them:
//! the group offset is for lag tooling, the resume log is what a restart trusts.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::scheduling::SyncActivator;

use crate::config::KafkaConfig;
use crate::kafka::producer::{Record, SharedProducer, SETTLE_TIMEOUT};
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

/// A consumer of `topic`, one of maxq's own (created if absent), assigned from offset
/// `from` (from its first offset if none, or if `from` is gone), with the offset it starts
/// from and the topic's end offset; `what` names the reader in errors.
pub fn open_reader(
    kafka: &KafkaConfig,
    topic: &str,
    group_id: &str,
    what: &str,
    from: Option<i64>,
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
    let start = from.map_or(low, |f| f.max(low));
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(start))
        .map_err(client_error(context()))?;
    consumer
        .assign(&assignment)
        .map_err(client_error(context()))?;
    Ok((consumer, start, high))
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
    let (consumer, start, high) = open_reader(kafka, topic, group_id, what, None)?;
    let context = || format!("reading the {what} in {}", own_topic(kafka, topic));
    let mut latest = BTreeMap::new();
    let prefix = key_prefix(kafka);
    // Given up on when the broker sends nothing for this long, however long the log.
    let patience = Duration::from_secs(30);
    let mut deadline = Instant::now() + patience;
    let mut next = start;
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
            // A record handed over again (seen over tansu) must not bring back an older
            // value of its key.
            Some(Ok(message)) if message.offset() < next => {}
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

/// The writer of resume points (or, on a topic of its own, of the roll-up changelog's
/// records), shared by the workers' intent and commit operators. It writes through the
/// process's one producer; each save has a delivery tracker of its own, so it is durable
/// once its own records are, whatever else the producer carries. A failed save is sent
/// again by its operator, with what it has then: records of one key land in the order they
/// were sent (one partition, one request in flight), so the newest sent and delivered wins.
pub struct ResumeLog {
    kafka: KafkaConfig,
    topic: String,
    prefix: String,
    producer: Arc<SharedProducer>,
}

/// How soon an operator waiting on a save looks again if no delivery report woke it. The
/// reports wake it ([`ResumeLog::wake_on_reports`]); this only bounds a missed wake. Polling
/// every few milliseconds instead woke each worker hundreds of times a second while saves
/// to a slow broker were under way.
pub const CHECK_AT_LEAST_EVERY: Duration = Duration::from_millis(100);

/// A save sent and not yet known to be durable.
pub struct Saving {
    tracker: Arc<DeliveryTracker>,
    records: u64,
}

impl ResumeLog {
    /// The log in `--resume-topic`, written by `producer`.
    pub fn new(kafka: &KafkaConfig, producer: Arc<SharedProducer>) -> ResumeLog {
        Self::in_topic(kafka, &kafka.resume_topic, producer)
    }

    /// The log in `topic`, one of maxq's own (created by whoever reads it first).
    pub fn in_topic(kafka: &KafkaConfig, topic: &str, producer: Arc<SharedProducer>) -> ResumeLog {
        ResumeLog {
            kafka: kafka.clone(),
            topic: topic.to_owned(),
            prefix: key_prefix(kafka),
            producer,
        }
    }

    /// Activates `operator` whenever delivery reports come, so that it can wait for a save
    /// without polling.
    pub fn wake_on_reports(&self, operator: SyncActivator) {
        self.producer.wake_on_reports(operator);
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
        let tracker = Arc::<DeliveryTracker>::default();
        let mut sent = 0;
        for (key, payload) in records {
            let key = format!("{}{key}", self.prefix);
            let record = Record::with_opaque_to(&self.topic, tracker.clone()).key(key.as_bytes());
            let record = match &payload {
                Some(payload) => record.payload(payload.as_slice()),
                None => record,
            };
            self.producer.send(record);
            sent += 1;
        }
        self.producer.serve();
        Saving {
            tracker,
            records: sent,
        }
    }

    /// `None` while `saving` is in flight; then whether it is durable.
    pub fn outcome(&self, saving: &Saving) -> Option<Result<(), String>> {
        self.producer.serve();
        if saving.tracker.settled() < saving.records {
            return None;
        }
        Some(saving.tracker.check().map_err(|e| self.failed(e)))
    }

    /// Records `points` and waits until they are durable.
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
        self.producer
            .wait(&saving.tracker, saving.records, SETTLE_TIMEOUT)
            .and_then(|()| saving.tracker.check())
            .map_err(|e| self.failed(e))
    }

    fn failed(&self, error: String) -> String {
        format!(
            "resume log {}: {error}",
            own_topic(&self.kafka, &self.topic)
        )
    }
}
