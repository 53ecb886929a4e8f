//! Commit: how far each epoch may have read is recorded before any sink writes it
//! ([`intents`]); once every sink has durably written an epoch, each partition's resume point
//! and the group offsets are recorded ([`operator`]) in the resume log ([`resume_log`]).

pub(crate) mod declared;
pub(crate) mod intents;
pub(crate) mod resume_points;
pub(crate) mod operator;
pub mod resume_log;

pub(crate) use intents::intents;
pub(crate) use operator::{commit, CommitConfig};
