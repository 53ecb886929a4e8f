//! Retry policy: which write failures are worth retrying, and how long to wait.

use std::time::Duration;

/// First wait after a failure.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Exponential backoff with full jitter, bounded by [`MAX_BACKOFF`].
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    seed: u64,
}

impl Backoff {
    /// A fresh policy; `seed` decorrelates workers' jitter.
    pub fn new(seed: u64) -> Self {
        Backoff {
            attempt: 0,
            seed: seed | 1,
        }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = INITIAL_BACKOFF
            .saturating_mul(1 << self.attempt.min(16))
            .min(MAX_BACKOFF);
        self.attempt += 1;
        // xorshift: jitter needs no cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let fraction = (self.seed % 1000) as f64 / 1000.0;
        ceiling.mul_f64(0.5 + fraction / 2.0)
    }
}

/// Whether an HTTP status is worth retrying: server errors, timeouts and throttling.
pub fn retriable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_stays_bounded() {
        let mut b = Backoff::new(7);
        let delays: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= INITIAL_BACKOFF);
        assert!(delays[5] > delays[0]);
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF));
    }

    #[test]
    fn classifies_statuses() {
        assert!(retriable_status(503));
        assert!(retriable_status(429));
        assert!(!retriable_status(400));
        assert!(!retriable_status(401));
        assert!(!retriable_status(404));
    }
}
