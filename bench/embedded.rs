//! The in-process broker (librdkafka's mock cluster, as in the demo): it listens on
//! loopback, so a child `maxq run --brokers <it>` reads from it like from any broker, with
//! the external broker's throughput limit out of the way. Its CPU is this process's.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use super::preload::publish_args;
use maxq::cli::PublishArgs;

/// An in-process broker with the topics of maxq's own it expects by default.
pub struct Embedded {
    cluster: MockCluster<'static, DefaultProducerContext>,
    /// Its bootstrap address.
    pub brokers: String,
}

impl Embedded {
    /// Starts a one-broker cluster.
    pub fn start() -> anyhow::Result<Embedded> {
        let cluster = MockCluster::new(1)?;
        let brokers = cluster.bootstrap_servers();
        let embedded = Embedded { cluster, brokers };
        embedded.create_own_topics("maxq.resume")?;
        Ok(embedded)
    }

    /// Creates the topics of maxq's own that a run with `--resume-topic resume_topic`
    /// uses: the resume log, the lease and the roll-up changelog. The mock broker does not
    /// create topics on request, so they must exist before the run.
    pub fn create_own_topics(&self, resume_topic: &str) -> anyhow::Result<()> {
        for suffix in ["", ".lease", ".rollups"] {
            self.cluster
                .create_topic(&format!("{resume_topic}{suffix}"), 1, 1)?;
        }
        Ok(())
    }

    /// Where to publish to `topic`: zstd-compressed, because the mock broker keeps only
    /// about 5 MB of batches per partition and drops the oldest beyond that.
    pub fn publish_args(&self, topic: &str) -> PublishArgs {
        let mut args = publish_args(&self.brokers, topic, 0);
        args.librdkafka
            .push(("compression.type".to_owned(), "zstd".to_owned()));
        args
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: usize) -> anyhow::Result<()> {
        Ok(self.cluster.create_topic(topic, partitions as i32, 1)?)
    }
}

/// Where the readings of a throughput row came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    /// The broker at `--brokers`.
    External,
    /// The in-process broker.
    InProcess,
}

impl Broker {
    /// The name in the report's tables.
    pub fn label(self) -> &'static str {
        match self {
            Broker::External => "external",
            Broker::InProcess => "in-process",
        }
    }
}
