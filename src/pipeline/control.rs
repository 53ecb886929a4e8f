//! How the workers of a process stop: a signal asks the sources to stop (what is due is
//! flushed and committed), a fatal error stops every worker at once.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// A process's stop request and first fatal error, shared by its workers.
#[derive(Debug, Default)]
pub struct Control {
    /// Set by SIGINT/SIGTERM (the signal handler holds it too).
    pub stop: Arc<AtomicBool>,
    fatal: Mutex<Option<String>>,
}

impl Control {
    /// Whether the sources are to stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// Records a fatal error (the first one wins); every worker stops.
    pub fn fail(&self, message: impl Into<String>) {
        if let Ok(mut fatal) = self.fatal.lock() {
            fatal.get_or_insert_with(|| message.into());
        }
    }

    /// The fatal error, if any.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }
}
