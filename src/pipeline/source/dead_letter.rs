//! The dead-letter topic: malformed messages forwarded with their origin and reason, and
//! points InfluxDB refused, with its answer.

use rdkafka::message::{Header, OwnedHeaders};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::config::KafkaConfig;
use crate::kafka::fetched::Fetched;
use crate::kafka::producer::{Record, SharedProducer, SETTLE_TIMEOUT};
use crate::kafka::DeliveryTracker;
use crate::pipeline::parse::Malformed;
use crate::pipeline::sink::Refusal;

/// The process's dead letters, shared by its workers' sources and sinks' writer threads,
/// written by the process's producer.
pub struct DeadLetters {
    topic: String,
    source_topic: String,
    producer: Arc<SharedProducer>,
    /// The deliveries of every dead letter sent.
    tracker: Arc<DeliveryTracker>,
    sent: AtomicU64,
}

impl DeadLetters {
    /// Dead letters for `--dead-letter-topic`, if set, written by `producer`.
    pub fn new(kafka: &KafkaConfig, producer: &Arc<SharedProducer>) -> Option<DeadLetters> {
        let topic = kafka.dead_letter_topic.as_ref()?;
        Some(DeadLetters {
            topic: topic.clone(),
            source_topic: kafka.topic.clone(),
            producer: producer.clone(),
            tracker: Arc::default(),
            sent: AtomicU64::new(0),
        })
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
        let mut record = Record::with_opaque_to(&self.topic, self.tracker.clone())
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
        let record = Record::with_opaque_to(&self.topic, self.tracker.clone())
            .payload(line.trim_end().as_bytes())
            .headers(headers);
        self.enqueue(record);
    }

    /// Queues a record, waiting for queue space; one that cannot be queued counts as failed.
    fn enqueue(&self, record: Record<'_>) {
        self.sent.fetch_add(1, Relaxed);
        self.producer.send(record);
    }

    /// Waits until everything sent is delivered; an error if anything was not, since the
    /// offsets of undelivered messages must not be committed.
    pub fn flush(&self) -> Result<(), String> {
        self.producer
            .wait(&self.tracker, self.sent.load(Relaxed), SETTLE_TIMEOUT)
            .map_err(|e| format!("dead-letter topic {}: flush failed: {e}", self.topic))?;
        self.tracker.check().map_err(|e| {
            format!(
                "dead-letter topic {}: {e}; check that --dead-letter-topic exists and is writable",
                self.topic
            )
        })
    }
}
