//! Records held per epoch until the epoch can be decided.

use std::collections::BTreeMap;
use timely::dataflow::operators::Capability;

/// Records received per epoch, each epoch with a capability retained to send its results.
pub type ByEpoch<D> = BTreeMap<u64, (Capability<u64>, Vec<D>)>;
