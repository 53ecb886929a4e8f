//! The backlog: points handed to the sinks and not yet written, per process. Above
//! `--sink-buffer` the sources pause, so an InfluxDB outage costs bounded memory.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// Points waiting to be written, and the bound above which reading pauses.
#[derive(Debug)]
pub struct Backlog {
    points: AtomicI64,
    max: i64,
}

impl Backlog {
    /// An empty backlog that pauses reading above `max` points.
    pub fn new(max: i64) -> Backlog {
        Backlog {
            points: AtomicI64::new(0),
            max,
        }
    }

    /// `points` more were handed to a sink.
    pub fn add(&self, points: usize) {
        self.points.fetch_add(points as i64, Relaxed);
    }

    /// `points` of them were written.
    pub fn written(&self, points: u64) {
        self.points.fetch_sub(points as i64, Relaxed);
    }

    /// Points not yet written.
    pub fn unwritten(&self) -> i64 {
        self.points.load(Relaxed)
    }

    /// Whether the sinks are so far behind that sources should stop reading for a while.
    pub fn full(&self) -> bool {
        self.unwritten() > self.max
    }
}
