//! The key of the aggregation: one window of one series.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One window of one series: the key of the aggregation. Ordered by window start first,
/// so the oldest windows come first when evicting.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowKey {
    /// Window start, Unix ms.
    pub start_ms: i64,
    /// The escaped line-protocol tag set, shared by every copy of the key (differential
    /// copies keys when it merges batches).
    pub series: Arc<str>,
}
