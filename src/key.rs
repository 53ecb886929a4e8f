//! The key of the aggregation: one window of one series at one level.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One window of one series at one level (the first, or a roll-up; see
/// [`crate::config::Level`]): the key of the aggregation. Ordered by level, then window
/// start, so within a level the oldest windows come first when evicting.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowKey {
    /// Index of the level in [`crate::config::RunConfig::levels`].
    pub level: u8,
    /// Window start, Unix ms.
    pub start_ms: i64,
    /// The escaped line-protocol tag set, shared by every copy of the key (differential
    /// copies keys when it merges batches).
    pub series: Arc<str>,
}
