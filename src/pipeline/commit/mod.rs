//! Commit: how far each epoch may have read is recorded before any sink writes it
//! ([`intents`]); once every sink has durably written an epoch, each partition's resume point
//! and the group offsets are recorded ([`operator`]) in the resume log ([`resume_log`]).

pub mod declared;
pub mod intents;
pub mod operator;
pub mod resume_log;
pub mod resume_points;

pub use intents::intents;
pub use operator::{commit, CommitConfig};
