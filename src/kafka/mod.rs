//! Kafka client configuration, the checks made once before the dataflow starts, the helpers
//! every producer shares (topic creation, delivery tracking, waiting for queue space), and
//! the process's own producer ([`producer`]).

use indicatif::ProgressBar;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};
use std::sync::atomic::{
    AtomicI64, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

pub mod fetched;
pub mod producer;

use crate::config::{Connection, KafkaConfig};
use crate::targets;

/// How long start-up metadata requests may take before the broker counts as unreachable.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka failures, each naming the flag or broker to fix.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The brokers did not answer.
    #[error("cannot reach Kafka at --brokers {brokers} ({cause}); check the address and that the broker is up")]
    Unreachable {
        /// The `--brokers` value.
        brokers: String,
        /// librdkafka's error.
        cause: rdkafka::error::KafkaError,
    },
    /// librdkafka found every broker down (refused, unresolvable, closed).
    #[error("cannot reach Kafka at --brokers {brokers} ({reason}); check the host and port, and that the broker is up")]
    BrokersDown {
        /// The `--brokers` value.
        brokers: String,
        /// librdkafka's last connection error.
        reason: String,
    },
    /// The topic does not exist.
    #[error("topic {topic:?} does not exist on --brokers {brokers}; create it (e.g. `maxq produce --partitions 8`) or fix --topic")]
    MissingTopic {
        /// The `--topic` value.
        topic: String,
        /// The `--brokers` value.
        brokers: String,
    },
    /// The dead-letter topic does not exist.
    #[error("dead-letter topic {topic:?} does not exist on --brokers {brokers}; create it or fix --dead-letter-topic")]
    MissingDeadLetterTopic {
        /// The `--dead-letter-topic` value.
        topic: String,
        /// The `--brokers` value.
        brokers: String,
    },
    /// Any other client error.
    #[error("Kafka ({context}): {cause}")]
    Client {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        cause: rdkafka::error::KafkaError,
    },
}

/// A client context that logs librdkafka's errors as warnings (librdkafka retries on its
/// own; a failure that matters surfaces as an error of the call that needed it), except
/// end-of-partition, which the source expects: it tells a partition is caught up. The
/// error callback reports it as `Global(PartitionEOF)`, not as the `PartitionEOF(partition)`
/// that polling for messages returns.
pub struct LogContext;

impl ClientContext for LogContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::KafkaError::{Global, PartitionEOF};
        if !matches!(
            error,
            Global(RDKafkaErrorCode::PartitionEOF) | PartitionEOF(_)
        ) {
            warn!(target: targets::KAFKA, "Kafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for LogContext {}

/// Remembers librdkafka's connection errors, so that [`check_reachable`] can tell "every
/// broker is down" from "slow to answer".
#[derive(Default)]
struct ReachContext {
    failure: Mutex<ReachFailure>,
}

#[derive(Default)]
struct ReachFailure {
    /// The last connection error's reason, e.g. `Connect to ipv4#127.0.0.1:1 failed`.
    last: Option<String>,
    /// librdkafka has found every broker down.
    all_down: bool,
}

impl ClientContext for ReachContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let Ok(mut failure) = self.failure.lock() else {
            return;
        };
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => failure.all_down = true,
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::Resolve) => {
                failure.last = Some(reason.to_owned())
            }
            _ => {}
        }
    }

    fn log(&self, _: RDKafkaLogLevel, facility: &str, message: &str) {
        // A failure is reported once, as check_reachable's error; these lines repeat it.
        debug!(target: targets::KAFKA, "librdkafka: {facility} {message}");
    }
}

impl ConsumerContext for ReachContext {}

/// Waits until `--brokers` answers a metadata request: an error as soon as librdkafka has
/// found every broker down (a closed port fails within a second or so), or after
/// [`METADATA_TIMEOUT`] without an answer.
pub fn check_reachable(connection: &Connection) -> Result<(), KafkaError> {
    let client: BaseConsumer<ReachContext> = client_config(connection, &[])
        .create_with_context(ReachContext::default())
        .map_err(client_error("creating the consumer"))?;
    let deadline = Instant::now() + METADATA_TIMEOUT;
    loop {
        let cause = match client.fetch_metadata(None, Duration::from_millis(250)) {
            Ok(_) => return Ok(()),
            Err(cause) => cause,
        };
        // Serves the error events, which reach the context only when polled.
        client.poll(Duration::ZERO);
        let down = match client.context().failure.lock() {
            Ok(failure) if failure.all_down => Some(
                failure
                    .last
                    .clone()
                    .unwrap_or_else(|| "every broker is down".to_owned()),
            ),
            _ => None,
        };
        if let Some(reason) = down {
            return Err(KafkaError::BrokersDown {
                brokers: connection.brokers.clone(),
                reason,
            });
        }
        if Instant::now() >= deadline {
            return Err(KafkaError::Unreachable {
                brokers: connection.brokers.clone(),
                cause,
            });
        }
    }
}

/// Base client settings: brokers, then every `-X`, so that `-X` can override anything.
pub fn client_config(connection: &Connection, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &connection.brokers);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    for (k, v) in &connection.librdkafka {
        config.set(k, v);
    }
    config
}

/// Settings of the process consumer of `group`: manual assignment, offsets committed
/// by maxq only.
pub fn consumer_config(connection: &Connection, group: &str) -> ClientConfig {
    client_config(
        connection,
        &[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            ("allow.auto.create.topics", "false"),
            // librdkafka's default (1 s) stalls a partition for a whole second each time
            // the prefetch queue is full, i.e. whenever the broker outpaces the dataflow.
            ("fetch.queue.backoff.ms", "10"),
            // librdkafka keeps one fetch in flight per broker. When every partition with a
            // backlog has its queue full, the next fetch holds only partitions at their
            // end, and the broker holds it for this long before the backlog can be fetched
            // again: with the default (500 ms) one idle partition of nine cut the
            // in-process throughput by 40-47 % (maxq-bench's idle-partition run). An idle
            // run costs 0.4 % of a core at 50 ms against 0.2 % at 500.
            ("fetch.wait.max.ms", "50"),
        ],
    )
}

/// Wraps a client error with what was being done.
pub fn client_error(
    context: impl Into<String>,
) -> impl FnOnce(rdkafka::error::KafkaError) -> KafkaError {
    let context = context.into();
    move |cause| KafkaError::Client { context, cause }
}

/// Number of partitions of `topic`; `None` when it does not exist.
pub fn topic_partitions(connection: &Connection, topic: &str) -> Result<Option<usize>, KafkaError> {
    partitions_of(&metadata_client(connection)?, connection, topic)
}

/// Number of partitions of `--topic`, failing clearly when the broker, the topic or the
/// `--dead-letter-topic` is missing.
pub fn partition_count(kafka: &KafkaConfig) -> Result<usize, KafkaError> {
    let connection = &kafka.connection;
    let client = metadata_client(connection)?;
    let count = partitions_of(&client, connection, &kafka.topic)?.ok_or_else(|| {
        KafkaError::MissingTopic {
            topic: kafka.topic.clone(),
            brokers: connection.brokers.clone(),
        }
    })?;
    if let Some(topic) = &kafka.dead_letter_topic {
        if partitions_of(&client, connection, topic)?.is_none() {
            return Err(KafkaError::MissingDeadLetterTopic {
                topic: topic.clone(),
                brokers: connection.brokers.clone(),
            });
        }
    }
    Ok(count)
}

/// A client for metadata look-ups.
fn metadata_client(connection: &Connection) -> Result<BaseConsumer<LogContext>, KafkaError> {
    client_config(connection, &[])
        .create_with_context(LogContext)
        .map_err(client_error("creating the consumer"))
}

fn partitions_of(
    client: &BaseConsumer<LogContext>,
    connection: &Connection,
    topic: &str,
) -> Result<Option<usize>, KafkaError> {
    let metadata = client
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|cause| KafkaError::Unreachable {
            brokers: connection.brokers.clone(),
            cause,
        })?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len()))
}

/// Creates `topic` with `partitions` and the topic `settings` (e.g. compaction); `false`
/// when it exists already. Errors name what was being done.
pub fn create_topic(
    connection: &Connection,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
    doing: &str,
) -> Result<bool, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client_config(connection, &[])
        .create()
        .map_err(client_error("creating the admin client"))?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in settings {
        new = new.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results =
        futures::executor::block_on(admin.create_topics([&new], &options)).map_err(|cause| {
            KafkaError::Unreachable {
                brokers: connection.brokers.clone(),
                cause,
            }
        })?;
    let mut created = false;
    for result in results {
        match result {
            Ok(_) => created = true,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(client_error(doing)(rdkafka::error::KafkaError::AdminOp(
                    code,
                )))
            }
        }
    }
    Ok(created)
}

/// Queues `record`, waiting for queue space rather than drop it; the error of a record
/// that cannot be queued at all.
pub fn send_waiting<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
    producer: &ThreadedProducer<DeliveryTracker>,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), rdkafka::error::KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                r,
            )) => {
                record = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Counts deliveries that failed, keeping the last error for the message, and all that
/// settled (delivered or failed), moving a progress bar if it has one.
#[derive(Default)]
pub struct DeliveryTracker {
    failed: AtomicU64,
    settled: AtomicU64,
    /// One past the offset of the last message delivered by the process's producer
    /// ([`producer`]); 0 before any.
    delivered_to: AtomicI64,
    last_error: Mutex<Option<String>>,
    progress: Option<ProgressBar>,
}

impl DeliveryTracker {
    /// A tracker that moves `progress` by one for each message settled.
    pub fn with_progress(progress: ProgressBar) -> DeliveryTracker {
        DeliveryTracker {
            progress: Some(progress),
            ..DeliveryTracker::default()
        }
    }

    /// Records a message that could not even be queued: failed and settled.
    pub fn unsent(&self, error: &rdkafka::error::KafkaError) {
        self.fail(error);
        self.settle();
    }

    /// Counted after the failure, if any, and read before it: whoever sees a message
    /// settled sees its failure.
    fn settle(&self) {
        self.settled.fetch_add(1, Release);
        if let Some(progress) = &self.progress {
            progress.inc(1);
        }
    }

    /// Records where a message was delivered, before it is counted as settled.
    fn delivered_at(&self, offset: i64) {
        self.delivered_to
            .fetch_max(offset.saturating_add(1), Relaxed);
    }

    /// The offset of the last message delivered by the process's producer, if any.
    pub fn last_offset(&self) -> Option<i64> {
        // Read after the message was seen settled, which orders it after the write.
        let to = self.delivered_to.load(Relaxed);
        (to > 0).then(|| to - 1)
    }

    /// Messages failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }

    /// Messages settled so far.
    pub fn settled(&self) -> u64 {
        self.settled.load(Acquire)
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.settled().saturating_sub(self.failed())
    }

    /// The last failure's message, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|l| l.clone())
    }

    /// Records a failed send or delivery.
    pub fn fail(&self, error: &rdkafka::error::KafkaError) {
        self.failed.fetch_add(1, Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
    }

    /// An error saying how many messages failed, if any did.
    pub fn check(&self) -> Result<(), String> {
        match self.failed.load(Relaxed) {
            0 => Ok(()),
            failed => {
                let last = self.last_error().unwrap_or_default();
                Err(format!(
                    "{failed} messages not delivered (last error: {last})"
                ))
            }
        }
    }
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.fail(e);
        }
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What `LogContext::error` logs for `error`.
    fn logged(error: rdkafka::error::KafkaError) -> String {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || LogContext.error(error, "reason"));
        let bytes = lines.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn end_of_partition_is_not_logged_in_the_form_librdkafka_reports_it() {
        // The error callback wraps every code as `Global`, end-of-partition included.
        let eof = rdkafka::error::KafkaError::Global(RDKafkaErrorCode::PartitionEOF);
        assert_eq!(logged(eof), "");
    }

    #[test]
    fn other_errors_are_logged() {
        let down = rdkafka::error::KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert!(logged(down).contains("AllBrokersDown"));
    }
}
