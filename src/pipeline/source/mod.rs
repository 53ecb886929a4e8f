//! The Kafka source: partition ownership, polling, per-partition lateness, offsets.

mod combine;
mod consumer;
mod dead_letter;
mod operator;
mod partition;

pub use consumer::{create_consumer, KafkaInput, Placement, ProcessInput};
pub use dead_letter::DeadLetters;
pub use operator::kafka_source;
pub use partition::{OwnedPartitions, PartitionState};
