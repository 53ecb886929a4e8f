//! The pipeline's stages, in the order data flows through them, and [`build`], which wires
//! them into one timely dataflow:
//!
//! ```text
//! KafkaSource ──updates──▶ aggregate (differential) ──▶ Emit ──writes──▶ Sink ──acks──▶ Commit
//!      │                        ▲                        │  ▲                             ▲
//!      │                        └──────evictions─────────┘  │                             │
//!      └──progress (broadcast)──────────────────────────────┴─────────────────────────────┘
//! ```

pub mod aggregate;
pub mod commit;
pub mod emit;
pub mod lateness;
pub mod parse;
pub mod sink;
pub mod source;
pub mod window;

pub mod epochs;
pub mod metrics;
pub mod progress;

use std::cell::Cell;
use std::rc::Rc;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{ConnectLoop, Feedback};
use timely::worker::Worker;

use crate::config::RunConfig;
use crate::run::Shared;
use aggregate::aggregate;
use commit::{commit, intents, CommitConfig};
use emit::{emit, EmitConfig};
use sink::sink;
use source::{kafka_source, KafkaInput};

/// Builds the pipeline on `worker`. `finish` is read when the sources end: true when every
/// window is to be finished (`--until-end`), false on a shutdown.
pub fn build(
    worker: &mut Worker,
    config: Rc<RunConfig>,
    partitions: usize,
    input: &KafkaInput,
    finish: Rc<Cell<bool>>,
    evicted_below: Option<i64>,
    shared: Shared,
) {
    let index = worker.index();
    worker.dataflow::<u64, _, _>(|scope| {
        let (updates, progress) = kafka_source(scope, input, config.clone(), shared.clone());
        let progress = progress.broadcast();
        let (eviction_loop, evictions) = scope.feedback(1);
        let (aggregates, trace) = aggregate(updates, evictions);
        let emit_config = EmitConfig {
            windows: config.windows,
            emit: config.emit,
            partitions,
            max_state_age_ms: config.max_state_age_ms,
            evicted_below,
        };
        let (writes, evictions) = emit(
            aggregates,
            trace,
            progress.clone(),
            emit_config,
            finish.clone(),
            shared.clone(),
        );
        evictions.connect_loop(eviction_loop);
        let intents = intents(progress.clone(), input);
        let acks = sink(
            writes,
            intents,
            config.sink.clone(),
            index,
            input.dead_letters.clone(),
            shared.clone(),
        );
        let commit_config = CommitConfig {
            topic: config.kafka.topic.clone(),
            partitions,
            max_state_age_ms: config.max_state_age_ms,
            interval: config.kafka.commit_interval,
            lateness_ms: config.lateness_ms,
        };
        commit(progress, acks, input, commit_config, finish, shared);
    });
}
