//! Roll-ups' recovery: the changelog of sealed windows.
//!
//! Roll-up windows are long (an hour, a day), so rebuilding one by replaying its readings
//! would make a restart read a day of data. Instead the final statistic of every evicted
//! window of the base level and of each roll-up but the longest is recorded, as it is
//! evicted, in a compacted topic of maxq's own (`<--resume-topic>.rollups`), the way Kafka
//! Streams keeps a state store's changelog. A restart replays only what the first level
//! needs and seeds each open roll-up window with the records inside it
//! ([`records::load`]); the [`writer`] makes sure no resume point passes a window whose
//! record is not durable.

pub mod records;
pub mod writer;

use std::sync::Arc;

use crate::config::{KafkaConfig, Levels};
use crate::kafka::producer::SharedProducer;
use crate::pipeline::commit::resume_log::{read_latest, ResumeLog};
use records::Loaded;

/// The changelog topic of a run.
pub fn topic(kafka: &KafkaConfig) -> String {
    format!("{}.rollups", kafka.resume_topic)
}

/// Reads the changelog of `--group` for `--topic` and makes what a restart resuming after
/// base windows ending at or before `sealed_below` needs of it; records no restart needs
/// are deleted, by `producer`.
pub fn load(
    kafka: &KafkaConfig,
    levels: &Levels,
    sealed_below: i64,
    producer: &Arc<SharedProducer>,
) -> Result<Loaded, anyhow::Error> {
    let topic = topic(kafka);
    let records = read_latest(kafka, &topic, "maxq-rollups-reader", "roll-up changelog")?;
    let loaded = records::load(levels, records, sealed_below)?;
    if !loaded.obsolete.is_empty() {
        let log = ResumeLog::in_topic(kafka, &topic, producer.clone());
        let tombstones = loaded.obsolete.iter().map(|k| (k.clone(), None));
        if let Err(e) = log.save_records(tombstones) {
            tracing::warn!(target: crate::targets::COMMIT, "{e}; the next restart deletes them");
        }
    }
    Ok(loaded)
}

/// Nothing to seed: a run without roll-ups, or a fresh one.
pub fn fresh() -> Loaded {
    Loaded {
        sealed_below: i64::MIN,
        ..Loaded::default()
    }
}
