//! The resume log: for each partition, where a restarted pipeline resumes
//! ([`ResumePoint`]), kept in a Kafka topic of maxq's own (`--resume-topic`), keyed by
//! `group/topic/partition`, latest record wins.
//!
//! The broker's offset-commit metadata would be the natural home, but not every broker
//! keeps it (tansu drops it), so maxq records it beside the group offsets, before them:
//! the group offset is for lag tooling, the resume log is what a restart trusts.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::KafkaConfig;
use crate::kafka::{
    client_config, client_error, DeliveryTracker, KafkaError, LogContext, METADATA_TIMEOUT,
};
use crate::source::ResumePoint;

fn key_prefix(kafka: &KafkaConfig) -> String {
    format!("{}/{}/", kafka.group, kafka.topic)
}

/// Creates the resume topic (one partition, compacted) if it does not exist.
fn ensure_topic(
    kafka: &KafkaConfig,
    consumer: &BaseConsumer<LogContext>,
) -> Result<(), KafkaError> {
    let metadata = consumer
        .fetch_metadata(Some(&kafka.resume_topic), METADATA_TIMEOUT)
        .map_err(client_error(format!(
            "looking up --resume-topic {}",
            kafka.resume_topic
        )))?;
    let exists = metadata.topics().iter().any(|t| {
        t.name() == kafka.resume_topic && t.error().is_none() && !t.partitions().is_empty()
    });
    if exists {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(kafka, &[])
        .create()
        .map_err(client_error("creating the admin client"))?;
    let topic = NewTopic::new(&kafka.resume_topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&topic], &options)).map_err(
        client_error(format!("creating --resume-topic {}", kafka.resume_topic)),
    )?;
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(client_error(format!(
                    "creating --resume-topic {}",
                    kafka.resume_topic
                ))(rdkafka::error::KafkaError::AdminOp(
                    code,
                )))
            }
        }
    }
    Ok(())
}

/// Reads the resume points of `--group` for `--topic`, by partition.
pub fn load(kafka: &KafkaConfig) -> Result<BTreeMap<i32, ResumePoint>, KafkaError> {
    let consumer: BaseConsumer<LogContext> = client_config(
        kafka,
        &[
            ("group.id", "maxq-resume-reader"),
            ("enable.auto.commit", "false"),
        ],
    )
    .create_with_context(LogContext)
    .map_err(client_error("creating the resume-log reader"))?;
    ensure_topic(kafka, &consumer)?;
    let context = || {
        format!(
            "reading the resume log --resume-topic {}",
            kafka.resume_topic
        )
    };
    let (low, high) = consumer
        .fetch_watermarks(&kafka.resume_topic, 0, METADATA_TIMEOUT)
        .map_err(client_error(context()))?;
    let mut points = BTreeMap::new();
    if high <= low {
        return Ok(points);
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&kafka.resume_topic, 0, Offset::Offset(low))
        .map_err(client_error(context()))?;
    consumer
        .assign(&assignment)
        .map_err(client_error(context()))?;
    let prefix = key_prefix(kafka);
    let deadline = Instant::now() + Duration::from_secs(30);
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
                let key = message
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .unwrap_or_default();
                let Some(partition) = key
                    .strip_prefix(&prefix)
                    .and_then(|p| p.parse::<i32>().ok())
                else {
                    continue;
                };
                if let Some(point) = message
                    .payload()
                    .and_then(|p| serde_json::from_slice(p).ok())
                {
                    points.insert(partition, point);
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => return Err(client_error(context())(e)),
        }
    }
    Ok(points)
}

/// A worker's writer of resume points.
pub struct ResumeLog {
    kafka: KafkaConfig,
    prefix: String,
    producer: RefCell<ThreadedProducer<DeliveryTracker>>,
}

impl ResumeLog {
    /// Connects to `--resume-topic`.
    pub fn connect(kafka: &KafkaConfig) -> Result<ResumeLog, KafkaError> {
        Ok(ResumeLog {
            kafka: kafka.clone(),
            prefix: key_prefix(kafka),
            producer: RefCell::new(Self::producer(kafka)?),
        })
    }

    fn producer(kafka: &KafkaConfig) -> Result<ThreadedProducer<DeliveryTracker>, KafkaError> {
        client_config(
            kafka,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "30000"),
            ],
        )
        .create_with_context(DeliveryTracker::default())
        .map_err(client_error("creating the resume-log producer"))
    }

    /// Records `points` and waits until they are durable. After a failure (the broker went
    /// away, say) the producer is replaced, so the next call starts clean: a record that
    /// failed is simply written again, newer, by a later call.
    pub fn save(&self, points: &BTreeMap<i32, ResumePoint>) -> Result<(), String> {
        let topic = &self.kafka.resume_topic;
        let result = {
            let producer = self.producer.borrow();
            for (partition, point) in points {
                let key = format!("{}{partition}", self.prefix);
                let payload = serde_json::to_vec(point).expect("a resume point serializes");
                if let Err((e, _)) =
                    producer.send(BaseRecord::to(topic).key(&key).payload(&payload))
                {
                    producer.context().fail(&e);
                }
            }
            producer
                .flush(Duration::from_secs(30))
                .map_err(|e| e.to_string())
                .and_then(|()| producer.context().check())
        };
        result.map_err(|e| {
            if let Ok(fresh) = Self::producer(&self.kafka) {
                drop(self.producer.replace(fresh));
            }
            format!("resume log --resume-topic {topic}: {e}")
        })
    }
}
