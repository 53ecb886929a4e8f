//! How the workers of a process stop: a signal asks the sources to stop (what is due is
//! flushed and committed), a fatal error stops every worker at once.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;

/// A process's stop request and first fatal error, shared by its workers.
#[derive(Debug, Default)]
pub struct Control {
    /// Set by SIGINT/SIGTERM (the signal handler holds it too).
    pub stop: Arc<AtomicBool>,
    fatal: Mutex<Option<String>>,
    /// Threads parked until something happens here, woken by [`Control::wake`].
    sleepers: Mutex<Vec<Thread>>,
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
        self.wake();
    }

    /// The fatal error, if any.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }

    /// Unparks `thread` whenever a stop or a fatal error is recorded (and now, if one is),
    /// so that it can sleep until then instead of looking every few milliseconds.
    pub fn wake_on_change(&self, thread: Thread) {
        self.sleepers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(thread.clone());
        if self.stopping() || self.fatal().is_some() {
            thread.unpark();
        }
    }

    /// Unparks the threads waiting for a change (the stop flag is set by the signal
    /// handler, which cannot do this itself).
    pub fn wake(&self) {
        for thread in self
            .sleepers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            thread.unpark();
        }
    }
}
