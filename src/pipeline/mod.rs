//! The pipeline's stages, in the order data flows through them, and [`build`], which wires
//! them into one timely dataflow:
//!
//! ```text
//! KafkaSource ──updates──▶ aggregate (differential) ──▶ Emit ──writes──▶ Sink ──acks──▶ Commit
//!      │      (one per level) ▲                        │ │ ▲                             ▲
//!      │                      └──────evictions─────────┘ │ │                             │
//!      │                         sealed windows ─────────┘ │ ──▶ rollups::writer ──acks──┤
//!      └──progress (broadcast)─────────────────────────────┴─────────────────────────────┘
//! ```
//!
//! Each level (the first, and each roll-up of `--rollups`) has its own arrangement and emit
//! operator; the source feeds them all, and the sink writes them all.

pub(crate) mod source;
pub mod parse;
pub(crate) mod lateness;
pub(crate) mod window;
pub(crate) mod aggregate;
pub(crate) mod emit;
pub mod sink;
pub mod rollups;
pub mod commit;

pub(crate) mod context;
pub(crate) mod control;
pub(crate) mod epochs;
pub mod metrics;
pub mod progress;

use rdkafka::consumer::BaseConsumer;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use timely::dataflow::operators::vec::{Broadcast, Map, Partition, ToStream};
use timely::dataflow::operators::{Concat, Concatenate, ConnectLoop, Feedback, Inspect};
use timely::worker::Worker;

use crate::config::RunConfig;
use crate::kafka::producer::SharedProducer;
use crate::kafka::{partition_count, KafkaError, LogContext};
use aggregate::aggregate;
use commit::resume_log::ResumeLog;
use commit::{commit, intents, CommitConfig};
use emit::{emit, EmitConfig, Role};
use progress::ResumePoint;
use rollups::records::Loaded;
use rollups::writer::{writer, Entry};
use sink::sink;
use source::{create_consumer, kafka_source, DeadLetters, KafkaInput, ProcessInput};

pub use context::{Context, Tap};
pub use source::Placement;

/// The process's two Kafka clients, created before anything reads or writes: the consumer
/// of the partitions its workers own and the producer of everything maxq writes to Kafka
/// (resume points, the roll-ups' changelog, the lease and dead letters). A librdkafka
/// client either consumes or produces, so this is the fewest.
pub struct KafkaClients {
    /// Where the process is in the cluster.
    pub placement: Placement,
    /// The partitions of `--topic`.
    pub partitions: usize,
    /// The process's consumer, nothing assigned yet.
    pub consumer: Arc<BaseConsumer<LogContext>>,
    /// The process's producer.
    pub producer: Arc<SharedProducer>,
}

impl KafkaClients {
    /// Creates the clients of the process placed at `placement`, for `--topic` as it is now.
    pub fn connect(config: &RunConfig, placement: Placement) -> Result<KafkaClients, KafkaError> {
        let partitions = partition_count(&config.kafka)?;
        Ok(KafkaClients {
            placement,
            partitions,
            consumer: create_consumer(config, placement, partitions)?,
            producer: Arc::new(SharedProducer::connect(&config.kafka.connection)?),
        })
    }
}

/// What the process's workers share of its Kafka clients: the consumer of every partition
/// they own, the dead letters, the resume log and the roll-ups' changelog.
pub struct ProcessClients {
    input: ProcessInput,
    resume_log: Arc<ResumeLog>,
    changelog: Option<Arc<ResumeLog>>,
}

impl ProcessClients {
    /// Assigns `clients`' consumer the partitions of its process (see
    /// [`ProcessInput::connect`]).
    pub fn connect(
        config: &RunConfig,
        resume: &BTreeMap<i32, ResumePoint>,
        clients: &KafkaClients,
    ) -> Result<ProcessClients, KafkaError> {
        let kafka = &config.kafka;
        let producer = &clients.producer;
        let dead_letters = DeadLetters::new(kafka, producer).map(Arc::new);
        let changelog = config
            .levels
            .rollups()
            .then(|| ResumeLog::in_topic(kafka, &rollups::topic(kafka), producer.clone()));
        Ok(ProcessClients {
            input: ProcessInput::connect(
                config,
                clients.placement,
                clients.partitions,
                resume,
                clients.consumer.clone(),
                dead_letters,
            )?,
            resume_log: Arc::new(ResumeLog::new(kafka, producer.clone())),
            changelog: changelog.map(Arc::new),
        })
    }
}

/// A worker's Kafka clients: its part of the process's consumer, and the process's resume
/// log.
pub struct Clients {
    /// The queues and states of the worker's partitions, and the dead letters.
    pub input: KafkaInput,
    /// Where intents and resume points are recorded.
    pub resume_log: Arc<ResumeLog>,
    /// Where the roll-ups' sealed windows are recorded.
    pub changelog: Option<Arc<ResumeLog>>,
}

impl Clients {
    /// Takes local worker `local`'s part of `process`.
    pub fn take(process: &ProcessClients, local: usize) -> Clients {
        Clients {
            input: process.input.take(local),
            resume_log: process.resume_log.clone(),
            changelog: process.changelog.clone(),
        }
    }
}

/// What a restart resumes from besides the resume points.
#[derive(Clone, Debug)]
pub struct Restart {
    /// Windows ending at or before this were evicted by a previous run.
    pub evicted_below: Option<i64>,
    /// What the roll-up changelog gives.
    pub rollups: Arc<Loaded>,
}

/// Builds the pipeline on `worker`. `finish` is read when the sources end: true when every
/// window is to be finished (`--until-end`), false on a shutdown.
pub fn build(
    worker: &mut Worker,
    config: Rc<RunConfig>,
    partitions: usize,
    clients: &Clients,
    finish: Rc<Cell<bool>>,
    restart: &Restart,
    context: &Context,
) {
    let index = worker.index();
    let input = &clients.input;
    worker.dataflow::<u64, _, _>(|scope| {
        let sealed_below = restart.rollups.sealed_below;
        let (updates, progress) =
            kafka_source(scope, input, config.clone(), sealed_below, context.clone());
        let progress = progress.broadcast();
        // Worker 0 seeds the open roll-up windows (differential puts each on its owner).
        let first = index == 0;
        let seeds = if first {
            restart.rollups.seeds.clone()
        } else {
            Vec::new()
        };
        let seeds = seeds.into_iter().map(|(key, stats)| (key, 0, stats));
        let updates = updates.concat(seeds.to_stream(scope));
        let levels = &config.levels;
        let by_level = updates.partition(levels.all.len() as u64, |update| {
            (u64::from(update.0.level), update)
        });
        let (mut writes, mut sealed) = (Vec::new(), Vec::new());
        for (level, updates) in by_level.into_iter().enumerate() {
            let (eviction_loop, evictions) = scope.feedback(1);
            let (aggregates, trace) = aggregate(updates, evictions);
            let role = Role {
                level: level as u8,
                written: levels.all[level].measurement.is_some(),
                first: level == 0,
                seals: levels.recorded(level)
                    || (levels.rollups() && level + 1 == levels.all.len()),
            };
            let emit_config = EmitConfig {
                windows: levels.all[level].windows,
                role,
                emit: config.emit,
                partitions,
                max_state_age_ms: config.max_state_age_ms,
                evicted_below: restart.evicted_below,
            };
            let (level_writes, level_evictions, level_sealed) = emit(
                aggregates,
                trace,
                progress.clone(),
                emit_config,
                finish.clone(),
                context.metrics.clone(),
            );
            level_evictions.connect_loop(eviction_loop);
            writes.push(level_writes);
            sealed.push(level_sealed);
        }
        let writes = scope.concatenate(writes);
        let writes = match context.tap.clone() {
            Some(tap) => writes.inspect(move |(key, stats)| tap(key, stats)),
            None => writes,
        };
        let intents = intents(progress.clone(), input, clients.resume_log.clone());
        let mut acks = sink(
            writes,
            intents,
            config.sink.clone(),
            index,
            input.dead_letters.clone(),
            context.clone(),
        );
        if let Some(log) = &clients.changelog {
            let held = if first {
                restart.rollups.held.clone()
            } else {
                Vec::new()
            };
            let entries = scope
                .concatenate(sealed)
                .map(|(key, stats)| Entry::Sealed(key, stats))
                .concat(held.into_iter().map(Entry::Held).to_stream(scope));
            let levels = Rc::new(levels.clone());
            acks = acks.concat(writer(entries, levels, log.clone(), context.clone()));
        }
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
