//! Publishing readings: topic creation and an idempotent producer whose every delivery is
//! confirmed. Shared by `produce`, `generate --topic` and the demo.

use indicatif::ProgressBar;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::info;

use crate::cli::PublishArgs;
use crate::config::Connection;
use crate::kafka::{
    check_reachable, client_config, create_topic, send_waiting, topic_partitions, DeliveryTracker,
};
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

/// An idempotent, `acks=all` producer to one topic.
pub struct Publisher {
    topic: String,
    producer: ThreadedProducer<DeliveryTracker>,
    /// Moved by each delivery; the per-second log line stands in for it off a terminal.
    progress: ProgressBar,
    started: Instant,
    last_report: Mutex<Instant>,
}

fn connection(args: &PublishArgs) -> Connection {
    Connection {
        brokers: args.brokers.clone(),
        librdkafka: args.librdkafka.clone(),
    }
}

/// Creates `--topic` with `--partitions` if it does not exist; an error if it exists with
/// another partition count.
pub fn ensure_topic(args: &PublishArgs) -> anyhow::Result<()> {
    let connection = connection(args);
    check_reachable(&connection)?;
    let doing = format!("creating topic {:?}", args.topic);
    if create_topic(
        &connection,
        &args.topic,
        args.partitions as i32,
        &[],
        &doing,
    )? {
        info!(target: targets::PRODUCE, topic = %args.topic, partitions = args.partitions, "created topic");
        return Ok(());
    }
    let existing = topic_partitions(&connection, &args.topic)?.unwrap_or_default();
    if existing != args.partitions {
        anyhow::bail!(
            "topic {:?} exists with {existing} partitions, not --partitions {}: use --partitions {existing} or another --topic",
            args.topic,
            args.partitions
        );
    }
    Ok(())
}

impl Publisher {
    /// Ensures the topic and connects; each delivery moves `progress` (see
    /// [`crate::terminal::progress_bar`]).
    pub fn connect(args: &PublishArgs, progress: ProgressBar) -> anyhow::Result<Publisher> {
        ensure_topic(args)?;
        Publisher::open_with_progress(args, progress)
    }

    /// Connects to an existing topic.
    pub fn open(args: &PublishArgs) -> anyhow::Result<Publisher> {
        Publisher::open_with_progress(args, ProgressBar::hidden())
    }

    /// Connects to an existing topic; each delivery moves `progress`.
    pub fn open_with_progress(
        args: &PublishArgs,
        progress: ProgressBar,
    ) -> anyhow::Result<Publisher> {
        let producer = client_config(
            &connection(args),
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "20"),
                ("batch.num.messages", "10000"),
                ("queue.buffering.max.messages", "1000000"),
                ("compression.type", "lz4"),
            ],
        )
        .create_with_context(DeliveryTracker::with_progress(progress.clone()))?;
        Ok(Publisher {
            topic: args.topic.clone(),
            producer,
            progress,
            started: Instant::now(),
            last_report: Mutex::new(Instant::now()),
        })
    }

    /// Queues one message, keyed by sensor; waits for queue space rather than drop it.
    pub fn send(&self, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.send_to(None, key, payload)
    }

    /// The same, to `partition` if given rather than to the key's.
    pub fn send_to(&self, partition: Option<i32>, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        let mut record = BaseRecord::<str, [u8]>::to(&self.topic)
            .key(key)
            .payload(payload);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        send_waiting(&self.producer, record)
            .map_err(|e| anyhow::anyhow!("producing to {}: {e}", self.topic))?;
        self.report_progress();
        Ok(())
    }

    fn report_progress(&self) {
        if !self.progress.is_hidden() {
            return;
        }
        let Ok(mut last) = self.last_report.try_lock() else {
            return;
        };
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            let c = self.producer.context();
            info!(target: targets::PRODUCE,
                delivered = c.delivered(),
                failed = c.failed(),
                seconds = self.started.elapsed().as_secs(),
                "producing"
            );
        }
    }

    /// Waits for every delivery; an error saying how many failed if any did.
    pub fn finish(self) -> anyhow::Result<PublishReport> {
        let flushed = self.producer.flush(Duration::from_secs(60));
        self.progress.finish_and_clear();
        flushed.map_err(|e| anyhow::anyhow!("waiting for deliveries to {}: {e}", self.topic))?;
        let c = self.producer.context();
        let report = PublishReport {
            sent: c.delivered(),
            failed: c.failed(),
            elapsed: self.started.elapsed(),
        };
        if report.failed > 0 {
            let last = c.last_error().unwrap_or_default();
            anyhow::bail!("{report}; last error: {last}");
        }
        Ok(report)
    }
}
