//! Kafka client configuration and the checks made once, before the dataflow starts.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::time::Duration;

use crate::config::KafkaConfig;

/// How long start-up metadata requests may take before the broker counts as unreachable.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka failures, each naming the flag or broker to fix.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The brokers did not answer.
    #[error("cannot reach Kafka at --brokers {brokers}: {source}; check the address and that the broker is up")]
    Unreachable {
        /// The `--brokers` value.
        brokers: String,
        /// librdkafka's error.
        source: rdkafka::error::KafkaError,
    },
    /// The topic does not exist.
    #[error("topic {topic:?} does not exist on --brokers {brokers}; create it (e.g. `maxq produce --partitions 8`) or fix --topic")]
    MissingTopic {
        /// The `--topic` value.
        topic: String,
        /// The `--brokers` value.
        brokers: String,
    },
    /// Any other client error.
    #[error("Kafka ({context}): {source}")]
    Client {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        source: rdkafka::error::KafkaError,
    },
}

/// Base client settings: brokers, then every `-X`, so that `-X` can override anything.
pub fn client_config(kafka: &KafkaConfig, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    for (k, v) in &kafka.librdkafka {
        config.set(k, v);
    }
    config
}

/// Settings of the per-worker consumers: manual assignment, offsets committed by maxq only.
pub fn consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    client_config(
        kafka,
        &[
            ("group.id", kafka.group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            ("allow.auto.create.topics", "false"),
        ],
    )
}

/// Wraps a client error with what was being done.
pub fn client_error(
    context: impl Into<String>,
) -> impl FnOnce(rdkafka::error::KafkaError) -> KafkaError {
    let context = context.into();
    move |source| KafkaError::Client { context, source }
}

/// Number of partitions of `--topic`, failing clearly when the broker or topic is missing.
pub fn partition_count(kafka: &KafkaConfig) -> Result<usize, KafkaError> {
    let consumer: BaseConsumer = consumer_config(kafka)
        .create()
        .map_err(client_error("creating the consumer"))?;
    let metadata = consumer
        .fetch_metadata(Some(&kafka.topic), METADATA_TIMEOUT)
        .map_err(|source| KafkaError::Unreachable {
            brokers: kafka.brokers.clone(),
            source,
        })?;
    match metadata.topics().iter().find(|t| t.name() == kafka.topic) {
        Some(topic) if topic.error().is_none() && !topic.partitions().is_empty() => {
            Ok(topic.partitions().len())
        }
        _ => Err(KafkaError::MissingTopic {
            topic: kafka.topic.clone(),
            brokers: kafka.brokers.clone(),
        }),
    }
}
