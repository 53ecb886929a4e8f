//! Window assignment: epoch-aligned tumbling and hopping windows.
//!
//! A reading at `ts` belongs to every window `[s, s + window)` with `s` a multiple of
//! `slide` and `s <= ts < s + window`; tumbling when `slide == window`.

use serde::{Deserialize, Serialize};

/// Window length and slide, in milliseconds, both positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    /// Length of one window.
    pub window_ms: i64,
    /// Distance between the starts of consecutive windows.
    pub slide_ms: i64,
}

impl Windows {
    /// The starts of every window holding `ts_ms`, oldest first.
    pub fn starts(&self, ts_ms: i64) -> impl Iterator<Item = i64> {
        let last = self.last_start(ts_ms);
        let first =
            (ts_ms - self.window_ms).div_euclid(self.slide_ms) * self.slide_ms + self.slide_ms;
        let slide = self.slide_ms as usize;
        (first..=last).step_by(slide)
    }

    /// Start of the last window holding `ts_ms`.
    pub fn last_start(&self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.slide_ms) * self.slide_ms
    }

    /// End (exclusive) of the window starting at `start_ms`.
    pub fn end(&self, start_ms: i64) -> i64 {
        start_ms + self.window_ms
    }

    /// End of the last window holding `ts_ms`: once a watermark passes it, no window of
    /// this reading can change.
    pub fn last_end(&self, ts_ms: i64) -> i64 {
        self.last_start(ts_ms) + self.window_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tumbling_minute() {
        let w = Windows {
            window_ms: 60_000,
            slide_ms: 60_000,
        };
        assert_eq!(w.starts(59_999).collect::<Vec<_>>(), vec![0]);
        assert_eq!(w.starts(60_000).collect::<Vec<_>>(), vec![60_000]);
        assert_eq!(w.starts(-1).collect::<Vec<_>>(), vec![-60_000]);
    }

    #[test]
    fn hopping() {
        let w = Windows {
            window_ms: 60_000,
            slide_ms: 20_000,
        };
        assert_eq!(
            w.starts(65_000).collect::<Vec<_>>(),
            vec![20_000, 40_000, 60_000]
        );
        assert_eq!(w.last_end(65_000), 120_000);
    }

    proptest! {
        #[test]
        fn starts_are_exactly_the_windows_holding_ts(
            ts in -10_000_000i64..10_000_000, slide in 1i64..5_000, factor in 1i64..5, extra in 0i64..3,
        ) {
            let window = slide * factor + extra.min(slide - 1);
            let w = Windows { window_ms: window, slide_ms: slide };
            let starts: Vec<i64> = w.starts(ts).collect();
            let expected: Vec<i64> = ((ts - window - slide)..=ts)
                .filter(|s| s.rem_euclid(slide) == 0 && *s <= ts && ts < s + window)
                .collect();
            prop_assert_eq!(starts, expected);
        }
    }
}
