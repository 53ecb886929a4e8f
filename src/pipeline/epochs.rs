//! Epochs: records held per epoch until it can be decided, and the empty streams whose
//! frontier says how far an epoch has got.

use std::collections::BTreeMap;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// Write intents: an empty stream whose frontier is the epoch recorded up to (see
/// [`crate::pipeline::commit::intents`]); the sinks wait for it.
pub type Intents<'scope> = StreamVec<'scope, u64, ()>;

/// Acknowledgements: an empty stream whose frontier is the epoch every sink has durably
/// written; the commit waits for it.
pub type Acks<'scope> = StreamVec<'scope, u64, ()>;

/// Records received per epoch, each epoch with a capability retained to send its results.
pub type ByEpoch<D> = BTreeMap<u64, (Capability<u64>, Vec<D>)>;
