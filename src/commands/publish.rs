//! Publishing readings: topic creation and an idempotent producer whose every delivery is
//! confirmed. Shared by `produce`, `generate --topic` and the demo.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::info;

use crate::cli::PublishArgs;
use crate::config::KafkaConfig;
use crate::kafka::{client_config, partition_count, KafkaError};
use crate::targets;

/// What a publication did.
#[derive(Debug)]
pub struct PublishReport {
    /// Messages delivered.
    pub sent: u64,
    /// Messages that failed.
    pub failed: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for PublishReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "sent {} readings, {} failed, in {secs:.2} s: {:.0} readings/s",
            self.sent,
            self.failed,
            self.sent as f64 / secs.max(1e-9)
        )
    }
}

#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Relaxed);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
            }
        }
    }
}

/// An idempotent, `acks=all` producer to one topic.
pub struct Publisher {
    topic: String,
    producer: ThreadedProducer<Deliveries>,
    started: Instant,
    last_report: Mutex<Instant>,
}

fn kafka_config(args: &PublishArgs) -> KafkaConfig {
    KafkaConfig {
        brokers: args.brokers.clone(),
        topic: args.topic.clone(),
        group: "maxq-produce".to_owned(),
        start: crate::config::StartAt::Earliest,
        until_end: false,
        dead_letter_topic: None,
        resume_topic: String::new(),
        commit_interval: Duration::ZERO,
        librdkafka: args.librdkafka.clone(),
    }
}

/// Creates `--topic` with `--partitions` if it does not exist; an error if it exists with
/// another partition count.
pub fn ensure_topic(args: &PublishArgs) -> anyhow::Result<()> {
    let kafka = kafka_config(args);
    let admin: AdminClient<DefaultClientContext> = client_config(&kafka, &[]).create()?;
    let topic = NewTopic::new(
        &args.topic,
        args.partitions as i32,
        TopicReplication::Fixed(1),
    );
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results =
        futures::executor::block_on(admin.create_topics([&topic], &options)).map_err(|cause| {
            KafkaError::Unreachable {
                brokers: args.brokers.clone(),
                cause,
            }
        })?;
    for result in results {
        match result {
            Ok(_) => {
                info!(target: targets::PRODUCE, topic = %args.topic, partitions = args.partitions, "created topic")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let existing = partition_count(&kafka)?;
                if existing != args.partitions {
                    anyhow::bail!(
                        "topic {:?} exists with {existing} partitions, not --partitions {}: use --partitions {existing} or another --topic",
                        args.topic,
                        args.partitions
                    );
                }
            }
            Err((_, code)) => anyhow::bail!("creating topic {:?}: {code}", args.topic),
        }
    }
    Ok(())
}

impl Publisher {
    /// Ensures the topic and connects.
    pub fn connect(args: &PublishArgs) -> anyhow::Result<Publisher> {
        ensure_topic(args)?;
        Publisher::open(args)
    }

    /// Connects to an existing topic.
    pub fn open(args: &PublishArgs) -> anyhow::Result<Publisher> {
        let kafka = kafka_config(args);
        let producer = client_config(
            &kafka,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "20"),
                ("batch.num.messages", "10000"),
                ("queue.buffering.max.messages", "1000000"),
                ("compression.type", "lz4"),
            ],
        )
        .create_with_context(Deliveries::default())?;
        Ok(Publisher {
            topic: args.topic.clone(),
            producer,
            started: Instant::now(),
            last_report: Mutex::new(Instant::now()),
        })
    }

    /// Queues one message, keyed by sensor; waits for queue space rather than drop it.
    pub fn send(&self, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        let mut record = BaseRecord::<str, [u8]>::to(&self.topic)
            .key(key)
            .payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => anyhow::bail!("producing to {}: {e}", self.topic),
            }
        }
        self.report_progress();
        Ok(())
    }

    fn report_progress(&self) {
        let Ok(mut last) = self.last_report.try_lock() else {
            return;
        };
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            let c = self.producer.context();
            info!(target: targets::PRODUCE,
                delivered = c.delivered.load(Relaxed),
                failed = c.failed.load(Relaxed),
                seconds = self.started.elapsed().as_secs(),
                "producing"
            );
        }
    }

    /// Waits for every delivery; an error saying how many failed if any did.
    pub fn finish(self) -> anyhow::Result<PublishReport> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| anyhow::anyhow!("waiting for deliveries to {}: {e}", self.topic))?;
        let c = self.producer.context();
        let report = PublishReport {
            sent: c.delivered.load(Relaxed),
            failed: c.failed.load(Relaxed),
            elapsed: self.started.elapsed(),
        };
        if report.failed > 0 {
            let last = c
                .last_error
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_default();
            anyhow::bail!("{report}; last error: {last}");
        }
        Ok(report)
    }
}
