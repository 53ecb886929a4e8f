//! maxq: rocket-launch telemetry from a partitioned Kafka topic to per-sensor window
//! aggregates in InfluxDB.
//!
//! Every worker reads the partitions it owns ([`pipeline::source`]), parses each message into
//! a reading ([`pipeline::parse`]), applies the per-partition lateness rule
//! ([`pipeline::lateness`]) and turns the reading into one update per window it falls in
//! ([`pipeline::window`]), keyed by (window start, series), whose difference is a
//! [`stats::Stats`]. Differential exchanges the updates by key and keeps one statistic per
//! key ([`pipeline::aggregate`]); the emit stage decides which windows are written when and
//! evicts final ones ([`pipeline::emit`]); each worker's sink writes the keys it owns once
//! every worker has recorded how far the epoch may have read ([`pipeline::sink`],
//! [`pipeline::commit`]); the resume points and group offsets are committed once every sink
//! has durably written the epoch.
//!
//! ```text
//! Kafka ─▶ source ─▶ parse ─▶ lateness ─▶ window ─▶ aggregate ─▶ emit ─▶ sink ─▶ InfluxDB
//!            (per partition)                        (per key)              │
//!            ◀──────────────────────────── commit ◀────────────────────────┘
//! ```
//!
//! [`key`], [`stats`] and [`line_protocol`] are the types every stage shares; they import
//! nothing of the pipeline. [`run`] starts the workers and the threads beside them,
//! [`commands`] holds the other subcommands, [`kafka`] the client helpers, [`terminal`] the
//! progress bars and live views drawn on a terminal.
#![forbid(missing_docs)]

pub mod key;
pub mod line_protocol;
pub mod stats;
pub mod targets;
pub mod terminal;

pub mod cli;
pub mod config;
pub mod exit;
pub mod kafka;
pub mod pipeline;
pub mod run;

pub mod commands;
