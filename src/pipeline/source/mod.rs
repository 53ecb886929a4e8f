//! The Kafka source: partition ownership, polling, per-partition lateness, offsets.

mod dead_letter;
mod operator;
mod partition;

pub use dead_letter::DeadLetters;
pub use operator::{kafka_source, KafkaInput};
pub use partition::{OwnedPartitions, PartitionState};
