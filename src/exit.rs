//! Exit codes, in one place: `main` maps errors to them, and the few threads that must end
//! the process at once use them.

/// Done: the end was reached, or a signal stopped the run and everything due was flushed.
pub const SUCCESS: u8 = 0;
/// An error that names what to fix: flags, Kafka, InfluxDB credentials or database.
pub const ERROR: u8 = 1;
/// The processes of `-n` did not all connect within `--connect-timeout` (clap's usage
/// errors exit 2 too).
pub const NOT_CONNECTED: i32 = 2;
/// The flush after a signal did not finish within `--shutdown-timeout`; a restart replays
/// what was not committed.
pub const SHUTDOWN_TIMEOUT: i32 = 3;
/// A process of the cluster was lost; restart the cluster whole.
pub const PEER_LOST: i32 = 4;
/// A second SIGINT/SIGTERM: exit at once.
pub const SECOND_SIGNAL: i32 = 130;
