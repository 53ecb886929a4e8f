//! The dead-letter topic: malformed messages forwarded with their origin and reason, and
//! points InfluxDB refused, with its answer.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::time::Duration;

use crate::config::KafkaConfig;
use crate::kafka::fetched::Fetched;
use crate::kafka::{client_config, client_error, send_waiting, DeliveryTracker, KafkaError};
use crate::pipeline::parse::Malformed;
use crate::pipeline::sink::Refusal;

/// The process's dead-letter producer, shared by its workers' sources and sinks' writer
/// threads.
pub struct DeadLetters {
    topic: String,
    source_topic: String,
    producer: ThreadedProducer<DeliveryTracker>,
}

impl DeadLetters {
    /// A producer for `--dead-letter-topic`, if set.
    pub fn connect(kafka: &KafkaConfig) -> Result<Option<DeadLetters>, KafkaError> {
        let Some(topic) = &kafka.dead_letter_topic else {
            return Ok(None);
        };
        let producer = client_config(
            &kafka.connection,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "30000"),
                // A malformed message can be as large as the broker allowed it to be.
                ("message.max.bytes", "16777216"),
            ],
        )
        .create_with_context(DeliveryTracker::default())
        .map_err(client_error("creating the dead-letter producer"))?;
        Ok(Some(DeadLetters {
            topic: topic.clone(),
            source_topic: kafka.topic.clone(),
            producer,
        }))
    }

    /// Forwards one malformed message.
    pub fn send(&self, message: &Fetched<'_>, reason: Malformed) {
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "maxq.topic",
                value: Some(&self.source_topic),
            })
            .insert(Header {
                key: "maxq.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "maxq.offset",
                value: Some(&offset),
            })
            .insert(Header {
                key: "maxq.reason",
                value: Some(reason.as_str()),
            });
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic)
            .payload(message.payload())
            .headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        self.enqueue(record);
    }

    /// Forwards one point InfluxDB refused: its line of line protocol, with the reason
    /// (`refused:<reason>`) and InfluxDB's answer as headers.
    pub fn send_refused(&self, line: &str, reason: Refusal, answer: &str) {
        let reason = format!("refused:{reason}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "maxq.reason",
                value: Some(&reason),
            })
            .insert(Header {
                key: "maxq.influx_error",
                value: Some(answer),
            });
        let record = BaseRecord::<[u8], [u8]>::to(&self.topic)
            .payload(line.trim_end().as_bytes())
            .headers(headers);
        self.enqueue(record);
    }

    /// Queues a record, waiting for queue space; one that cannot be queued counts as failed.
    fn enqueue(&self, record: BaseRecord<'_, [u8], [u8]>) {
        if let Err(e) = send_waiting(&self.producer, record) {
            self.producer.context().unsent(&e);
        }
    }

    /// Waits until everything sent is delivered; an error if anything was not, since the
    /// offsets of undelivered messages must not be committed.
    pub fn flush(&self) -> Result<(), String> {
        self.producer
            .flush(Duration::from_secs(30))
            .map_err(|e| format!("dead-letter topic {}: flush failed: {e}", self.topic))?;
        self.producer.context().check().map_err(|e| {
            format!(
                "dead-letter topic {}: {e}; check that --dead-letter-topic exists and is writable",
                self.topic
            )
        })
    }
}
