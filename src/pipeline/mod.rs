//! The pipeline's stages, in the order data flows through them, and [`build`], which wires
//! them into one timely dataflow:
//!
//! ```text
//! KafkaSource ──updates──▶ aggregate (differential) ──▶ Emit ──writes──▶ Sink ──acks──▶ Commit
//!      │                        ▲                        │  ▲                             ▲
//!      │                        └──────evictions─────────┘  │                             │
//!      └──progress (broadcast)──────────────────────────────┴─────────────────────────────┘
//! ```

pub(crate) mod source;
pub mod parse;
pub(crate) mod lateness;
pub(crate) mod window;
pub(crate) mod aggregate;
pub(crate) mod emit;
pub mod sink;
pub mod commit;

pub(crate) mod context;
pub(crate) mod control;
pub(crate) mod epochs;
pub mod metrics;
pub mod progress;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{ConnectLoop, Feedback, Inspect};
use timely::worker::Worker;

use crate::config::RunConfig;
use crate::kafka::KafkaError;
use aggregate::aggregate;
use commit::resume_log::ResumeLog;
use commit::{commit, intents, CommitConfig};
use emit::{emit, EmitConfig};
use progress::ResumePoint;
use sink::sink;
use source::{kafka_source, KafkaInput, ProcessInput};

pub use context::{Context, Tap};
pub use source::Placement;

/// The process's Kafka clients, shared by its workers: the consumer of every partition
/// they own, the dead-letter producer and the resume log.
pub struct ProcessClients {
    input: ProcessInput,
    resume_log: Arc<ResumeLog>,
}

impl ProcessClients {
    /// Connects the process placed at `placement` (see [`ProcessInput::connect`]).
    pub fn connect(
        config: &RunConfig,
        placement: Placement,
        partitions: usize,
        resume: &BTreeMap<i32, ResumePoint>,
    ) -> Result<ProcessClients, KafkaError> {
        Ok(ProcessClients {
            input: ProcessInput::connect(config, placement, partitions, resume)?,
            resume_log: Arc::new(ResumeLog::connect(&config.kafka)?),
        })
    }
}

/// A worker's Kafka clients: its part of the process's consumer, and the process's resume
/// log.
pub struct Clients {
    /// The queues and states of the worker's partitions, and the dead-letter producer.
    pub input: KafkaInput,
    /// Where intents and resume points are recorded.
    pub resume_log: Arc<ResumeLog>,
}

impl Clients {
    /// Takes local worker `local`'s part of `process`.
    pub fn take(process: &ProcessClients, local: usize) -> Clients {
        Clients {
            input: process.input.take(local),
            resume_log: process.resume_log.clone(),
        }
    }
}

/// Builds the pipeline on `worker`. `finish` is read when the sources end: true when every
/// window is to be finished (`--until-end`), false on a shutdown.
pub fn build(
    worker: &mut Worker,
    config: Rc<RunConfig>,
    partitions: usize,
    clients: &Clients,
    finish: Rc<Cell<bool>>,
    evicted_below: Option<i64>,
    context: &Context,
) {
    let index = worker.index();
    let input = &clients.input;
    worker.dataflow::<u64, _, _>(|scope| {
        let (updates, progress) = kafka_source(scope, input, config.clone(), context.clone());
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
            context.metrics.clone(),
        );
        evictions.connect_loop(eviction_loop);
        let writes = match context.tap.clone() {
            Some(tap) => writes.inspect(move |(key, stats)| tap(key, stats)),
            None => writes,
        };
        let intents = intents(progress.clone(), input, clients.resume_log.clone());
        let acks = sink(
            writes,
            intents,
            config.sink.clone(),
            index,
            input.dead_letters.clone(),
            context.clone(),
        );
        let commit_config = CommitConfig {
            topic: config.kafka.topic.clone(),
            partitions,
            max_state_age_ms: config.max_state_age_ms,
            interval: config.kafka.commit_interval,
            lateness_ms: config.lateness_ms,
        };
        commit(
            progress,
            acks,
            input,
            clients.resume_log.clone(),
            commit_config,
            finish,
            context.clone(),
        );
    });
}
