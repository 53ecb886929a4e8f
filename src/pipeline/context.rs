//! What the stages of a process share besides the data: counters, the stop request, the
//! sinks' backlog, and what watches the windows written.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use crate::key::WindowKey;
use crate::pipeline::control::Control;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::sink::Backlog;
use crate::stats::Stats;

/// What the workers of a process share: the counters, the stop request and first fatal
/// error, the sinks' backlog, and what watches the windows written.
#[derive(Clone)]
pub struct Context {
    /// Counters (and the rate-limited log lines that go with them).
    pub metrics: Arc<Metrics>,
    /// Stop request and fatal error.
    pub control: Arc<Control>,
    /// Points handed to the sinks and not yet written.
    pub backlog: Arc<Backlog>,
    /// Called with every window handed to the sink.
    pub tap: Option<Tap>,
    /// The highest eviction horizon this process's resume points durably record: no
    /// restart resumes below it (it takes the highest any partition records).
    pub committed_horizon: Arc<AtomicI64>,
}

/// Called with every window as it is handed to the sink (the demo's live view).
pub type Tap = Arc<dyn Fn(&WindowKey, &Stats) + Send + Sync>;
