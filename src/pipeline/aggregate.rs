//! Aggregate: the differential dataflow that maintains one [`Stats`] per key.
//!
//! A reading enters differential as the update `(key, time, Stats::of(value))`: the
//! *difference* is the statistic, so consolidation folds every reading of a key into one
//! `Stats` and the arrangement holds O(1) state per key, not a list of readings.
//! [`CountTotal`](differential_dataflow::operators::CountTotal) then reports, for every
//! key changed at a time, its new accumulated `Stats`.
//!
//! The arrangement is the only copy of the state: the emit operator reads the keys it
//! finalizes and evicts from its trace rather than keeping its own map.
//! A window is evicted by feeding [`Stats::retraction`] of its count back in.

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::operators::CountTotal;
use differential_dataflow::trace::implementations::KeySpine;
use differential_dataflow::AsCollection;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::key::WindowKey;
use crate::stats::Stats;

/// The updates fed to differential: `(key, epoch, statistic)`, a reading's or a retraction.
pub type Updates<'scope> = StreamVec<'scope, u64, (WindowKey, u64, Stats)>;

/// Every change of a key's accumulated statistic, as differential reports it:
/// `((key, stats), epoch, +1)` for the new value and `-1` for the one it replaces.
pub type Aggregates<'scope> = StreamVec<'scope, u64, ((WindowKey, Stats), u64, isize)>;

/// The arranged statistic of every live key of a worker: `(key, epoch, Stats)` updates.
pub type Trace = TraceAgent<KeySpine<WindowKey, u64, Stats>>;

/// Maintains the statistic of every live key from the readings' updates and the
/// evictions' retractions. Differential exchanges the updates by key hash, so each key
/// lives on (and is reported by) exactly one worker. Returns the changes and the trace
/// they come from.
pub fn aggregate<'scope>(
    updates: Updates<'scope>,
    evictions: Updates<'scope>,
) -> (Aggregates<'scope>, Trace) {
    let arranged = updates
        .concat(evictions)
        .as_collection()
        .arrange_by_self_named("Arrange: CountTotal");
    let trace = arranged.trace.clone();
    (arranged.count_total().inner, trace)
}
