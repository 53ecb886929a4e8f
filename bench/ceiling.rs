//! The ceiling: a plain rdkafka consumer with maxq's consumer settings that reads every
//! partition from its start to the end offset it had at start, optionally parsing each
//! payload into a [`Reading`]. It polls message by message, as rdkafka's API does, or
//! reads in batches with librdkafka's batch consume, as maxq does. It runs as a child
//! process of its own (`maxq-bench consume`) so that its CPU time and RSS are measured
//! exactly like the pipeline's.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::path::Path;
use std::time::Duration;

use super::child::{spawn, Usage};
use super::preload::{connection, partition_offsets};
use crate::cli::BenchConsumeArgs;
use maxq::kafka::fetched::{read_batch, Fetched};
use maxq::kafka::{consumer_config, LogContext};
use maxq::pipeline::parse::Reading;

/// What one consumer pass read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Consumed {
    /// Messages read.
    pub messages: u64,
    /// Payloads that parsed into a reading (0 without `--parse`).
    pub parsed: u64,
}

impl std::fmt::Display for Consumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.messages, self.parsed)
    }
}

impl std::str::FromStr for Consumed {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Consumed> {
        let mut numbers = text.split_whitespace().map(str::parse::<u64>);
        match (numbers.next(), numbers.next()) {
            (Some(Ok(messages)), Some(Ok(parsed))) => Ok(Consumed { messages, parsed }),
            _ => anyhow::bail!("maxq-bench consume printed {text:?}, not two counts"),
        }
    }
}

/// `maxq-bench consume`: reads (and parses) every partition of `--topic` to its end.
pub fn consume(args: &BenchConsumeArgs) -> anyhow::Result<Consumed> {
    let offsets = partition_offsets(&args.brokers, &args.topic)?
        .ok_or_else(|| anyhow::anyhow!("topic {:?} does not exist", args.topic))?;
    let connection = connection(&args.brokers);
    let consumer: BaseConsumer<LogContext> =
        consumer_config(&connection, "maxq-bench-ceiling").create_with_context(LogContext)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for &(p, low, high) in &offsets {
        assignment.add_partition_offset(&args.topic, p, Offset::Offset(low))?;
        if high > low {
            remaining += 1;
        }
    }
    consumer.assign(&assignment)?;
    let mut consumed = Consumed::default();
    if remaining == 0 {
        return Ok(consumed);
    }
    let mut count = |partition: i32, offset: i64, payload: &[u8]| {
        consumed.messages += 1;
        if args.parse && Reading::parse(payload).is_ok() {
            consumed.parsed += 1;
        }
        if offset == offsets[partition as usize].2 - 1 {
            remaining -= 1;
        }
        remaining > 0
    };
    if args.batch {
        read_in_batches(&consumer, &args.topic, &mut count)?;
    } else {
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                None | Some(Err(RdKafkaError::PartitionEOF(_))) => {}
                Some(Ok(m)) => {
                    if !count(m.partition(), m.offset(), m.payload().unwrap_or_default()) {
                        break;
                    }
                }
                Some(Err(e)) => anyhow::bail!("reading {:?}: {e}", args.topic),
            }
        }
    }
    Ok(consumed)
}

/// Most messages read in one batch, as maxq's source reads per activation.
const BATCH: usize = 4096;

/// Hands each message of `consumer`'s queue to `each` (partition, offset, payload), read
/// in batches, until `each` returns false.
fn read_in_batches(
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
    each: &mut impl FnMut(i32, i64, &[u8]) -> bool,
) -> anyhow::Result<()> {
    use rdkafka::bindings as rdsys;
    use rdkafka::types::RDKafkaErrorCode;
    // SAFETY: the client pointer is valid while `consumer` lives; the queue handle is
    // destroyed below, before the consumer.
    let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
    anyhow::ensure!(!queue.is_null(), "reading {topic:?}: no consumer queue");
    let mut buffer = Vec::new();
    let mut outcome = Ok(());
    let mut going = true;
    while going && outcome.is_ok() {
        let on_message = |message: &Fetched<'_>| match message.error() {
            None if going && outcome.is_ok() => {
                going = each(message.partition(), message.offset(), message.payload())
            }
            None | Some(RDKafkaErrorCode::PartitionEOF) => {}
            Some(code) => outcome = Err(anyhow::anyhow!("reading {topic:?}: {code}")),
        };
        // SAFETY: the queue handle is valid until destroyed below.
        unsafe { read_batch(queue, 100, BATCH, &mut buffer, on_message) };
    }
    // SAFETY: the handle from rd_kafka_queue_get_consumer, destroyed once.
    unsafe { rdsys::rd_kafka_queue_destroy(queue) };
    outcome
}

/// Runs `maxq-bench consume` as a child and returns what it read and what it cost.
pub fn measure(
    dir: &Path,
    name: &str,
    brokers: &str,
    topic: &str,
    parse: bool,
    batch: bool,
) -> anyhow::Result<(Consumed, Usage)> {
    let mut args: Vec<String> = ["consume", "--brokers", brokers, "--topic", topic]
        .map(str::to_owned)
        .to_vec();
    if parse {
        args.push("--parse".to_owned());
    }
    if batch {
        args.push("--batch".to_owned());
    }
    let finished = spawn(dir, name, &args)?.wait()?;
    Ok((finished.stdout.trim().parse()?, finished.usage))
}
