//! The ceiling: a plain rdkafka consumer with maxq's consumer settings that reads every
//! partition from its start to the end offset it had at start, optionally parsing each
//! payload into a [`Reading`]. It runs as a child process of its own (`maxq-bench consume`)
//! so that its CPU time and RSS are measured exactly like the pipeline's.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::path::Path;
use std::time::Duration;

use super::child::{spawn, Usage};
use super::preload::{connection, partition_offsets};
use crate::cli::BenchConsumeArgs;
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
    while remaining > 0 {
        match consumer.poll(Duration::from_millis(100)) {
            None | Some(Err(RdKafkaError::PartitionEOF(_))) => {}
            Some(Ok(message)) => {
                consumed.messages += 1;
                if args.parse && Reading::parse(message.payload().unwrap_or_default()).is_ok() {
                    consumed.parsed += 1;
                }
                let high = offsets[message.partition() as usize].2;
                if message.offset() == high - 1 {
                    remaining -= 1;
                }
            }
            Some(Err(e)) => anyhow::bail!("reading {:?}: {e}", args.topic),
        }
    }
    Ok(consumed)
}

/// Runs `maxq-bench consume` as a child and returns what it read and what it cost.
pub fn measure(
    dir: &Path,
    name: &str,
    brokers: &str,
    topic: &str,
    parse: bool,
) -> anyhow::Result<(Consumed, Usage)> {
    let mut args: Vec<String> = ["consume", "--brokers", brokers, "--topic", topic]
        .map(str::to_owned)
        .to_vec();
    if parse {
        args.push("--parse".to_owned());
    }
    let finished = spawn(dir, name, &args)?.wait()?;
    Ok((finished.stdout.trim().parse()?, finished.usage))
}
