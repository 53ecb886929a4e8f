//! maxq: rocket-launch telemetry from a partitioned Kafka topic to per-sensor window
//! aggregates in InfluxDB.
//!
//! Every worker reads the partitions it owns, parses each message into a [`reading::Reading`],
//! applies the per-partition lateness rule and turns the reading into differential updates
//! keyed by (window start, series), whose difference is a [`aggregate::Stats`]. Differential
//! exchanges the updates by key and keeps one statistic per key; the emit stage decides
//! which windows are written when (every change, or once final) and evicts final windows;
//! each worker's sink writes the keys it owns, once every worker has recorded how far the
//! epoch may have read ([`intent`]); offsets are committed once every sink has durably
//! written the epoch.
//!
//! ```text
//! Kafka ─▶ source ─▶ parse ─▶ window/lateness ─▶ aggregate ─▶ emit ─▶ sink ─▶ InfluxDB
//!            (per partition)                     (per key)            │
//!            ◀──────────────────────── commit ◀───────────────────────┘
//! ```
#![forbid(missing_docs)]

pub mod aggregate;
pub mod bench;
pub mod cli;
pub mod commit;
pub mod config;
pub mod dataflow;
pub mod demo;
pub mod emit;
pub mod generate;
pub mod intent;
pub mod kafka;
pub mod metrics;
pub mod produce;
pub mod publish;
pub mod reading;
pub mod resume;
pub mod run;
pub mod sink;
pub mod source;
pub mod watermark;
pub mod window;
