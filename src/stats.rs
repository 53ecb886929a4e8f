//! The statistic of a set of readings: count, mean, M2, min and max, mergeable in any
//! order, and differential's difference type.
//!
//! Mean and variance are kept as mergeable moments (count, mean, M2) combined with Chan's
//! parallel formula, which stays accurate when partial aggregates from many workers and
//! epochs merge (sum and sum of squares cancel catastrophically). The moments are computed
//! in units of a power of two near the largest magnitude read, so that no finite input
//! overflows them: readings of ±1.7e308 (`DBL_MAX`, a common "invalid" marker) or 1e155
//! give a finite mean and stddev; M2 is stored in those units. A standard deviation beyond
//! `f64::MAX` (only when a window spans more than about 1.3e308) is written as `f64::MAX`.
//!
//! A window is evicted by adding [`Stats::retraction`] of its count. `is_zero` looks at the
//! count alone, so the key's accumulation becomes zero and differential drops it; min and
//! max of a zero-count statistic are meaningless and never read.

use differential_dataflow::difference::{IsZero, Semigroup};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Count, mean, M2 (sum of squared deviations), min and max of a set of readings.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Stats {
    /// Number of readings; negative only inside a retraction.
    pub count: i64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean, divided by the square of [`Stats::scale`]
    /// (so that it stays finite where the sum itself would overflow).
    scaled_m2: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Stats {
    /// The statistic of a single reading.
    pub fn of(value: f64) -> Stats {
        Stats {
            count: 1,
            mean: value,
            scaled_m2: 0.0,
            min: value,
            max: value,
        }
    }

    /// The update that removes a key whose accumulated count is `count`.
    pub fn retraction(count: i64) -> Stats {
        Stats {
            count: -count,
            mean: 0.0,
            scaled_m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// The statistic of no readings.
    pub fn zero() -> Stats {
        Stats::retraction(0)
    }

    /// The power of two the moments are computed in: the largest finite magnitude of `min`
    /// and `max` rounded down to one (at least `f64::MIN_POSITIVE`), so every reading and
    /// the mean divided by it is below 2 in magnitude. It only grows as readings merge in,
    /// and dividing by it is exact.
    fn scale(&self) -> f64 {
        let largest = [self.min, self.max]
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(0.0, |a: f64, v| a.max(v.abs()));
        if largest < f64::MIN_POSITIVE {
            f64::MIN_POSITIVE
        } else {
            f64::from_bits(largest.to_bits() & 0x7ff0_0000_0000_0000)
        }
    }

    /// Folds `other` in (Chan et al.'s parallel update of mean and M2, in units of the
    /// merged statistic's scale).
    pub fn merge(&mut self, other: &Stats) {
        let count = self.count + other.count;
        if count == 0 {
            *self = Stats::zero();
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        if other.count != 0 {
            let (scale_a, scale_b) = (self.scale(), other.scale());
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
            let scale = self.scale();
            let (n_a, n_b, n) = (self.count as f64, other.count as f64, count as f64);
            let (mean_a, mean_b) = (self.mean / scale, other.mean / scale);
            let delta = mean_b - mean_a;
            self.mean = (mean_a + delta * n_b / n) * scale;
            let (r_a, r_b) = (scale_a / scale, scale_b / scale);
            self.scaled_m2 = self.scaled_m2 * r_a * r_a
                + other.scaled_m2 * r_b * r_b
                + delta * delta * n_a * n_b / n;
            self.count = count;
        }
    }

    /// Sample standard deviation; 0 for a single reading; at most `f64::MAX`.
    pub fn stddev(&self) -> f64 {
        if self.count > 1 {
            let scaled = (self.scaled_m2.max(0.0) / (self.count - 1) as f64).sqrt();
            (scaled * self.scale()).min(f64::MAX)
        } else {
            0.0
        }
    }
}

impl IsZero for Stats {
    fn is_zero(&self) -> bool {
        self.count == 0
    }
}

impl Semigroup for Stats {
    fn plus_equals(&mut self, rhs: &Self) {
        self.merge(rhs);
    }
}

impl PartialEq for Stats {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Stats {}

impl PartialOrd for Stats {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A total order (differential needs `Ord`); `f64::total_cmp` makes it one.
impl Ord for Stats {
    fn cmp(&self, other: &Self) -> Ordering {
        self.count
            .cmp(&other.count)
            .then(self.mean.total_cmp(&other.mean))
            .then(self.scaled_m2.total_cmp(&other.scaled_m2))
            .then(self.min.total_cmp(&other.min))
            .then(self.max.total_cmp(&other.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        (mean, var.sqrt())
    }

    proptest! {
        #[test]
        fn any_merge_order_matches_the_two_pass_formula(
            values in proptest::collection::vec(-1e6f64..1e6, 1..200),
            split in 0usize..200,
        ) {
            let split = split % values.len();
            let fold = |vs: &[f64]| vs.iter().fold(Stats::zero(), |mut s, v| { s.merge(&Stats::of(*v)); s });
            let mut left = fold(&values[..split]);
            left.merge(&fold(&values[split..]));
            let (mean, stddev) = naive(&values);
            prop_assert_eq!(left.count, values.len() as i64);
            prop_assert!((left.mean - mean).abs() <= 1e-9 * mean.abs().max(1.0));
            prop_assert!((left.stddev() - stddev).abs() <= 1e-6 * stddev.max(1.0));
            prop_assert_eq!(left.min, values.iter().cloned().fold(f64::INFINITY, f64::min));
            prop_assert_eq!(left.max, values.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        }
    }

    proptest! {
        #[test]
        fn moments_stay_finite_and_exact_for_any_finite_magnitude(
            values in proptest::collection::vec(-1.0f64..1.0, 1..50),
            exponent in -900i32..1020,
            split in 0usize..50,
        ) {
            // The same readings scaled by a power of two: every moment scales exactly with
            // them, so the huge and tiny cases are checked against ordinary ones.
            let scale = 2f64.powi(exponent);
            let fold = |vs: &[f64], k: f64| vs.iter().fold(Stats::zero(), |mut s, v| { s.merge(&Stats::of(v * k)); s });
            let split = split % values.len();
            let mut big = fold(&values[..split], scale);
            big.merge(&fold(&values[split..], scale));
            let small = fold(&values, 1.0);
            let (mean, stddev) = naive(&values);
            prop_assert!(big.mean.is_finite() && big.stddev().is_finite());
            prop_assert!((big.mean / scale - mean).abs() <= 1e-9);
            prop_assert!((big.stddev() / scale - stddev).abs() <= 1e-9);
            prop_assert!((small.stddev() - stddev).abs() <= 1e-9);
        }
    }

    #[test]
    fn dbl_max_readings_have_a_finite_mean_and_a_bounded_stddev() {
        let mut s = Stats::of(f64::MAX);
        s.merge(&Stats::of(-f64::MAX));
        assert_eq!(s.mean, 0.0);
        assert_eq!(s.stddev(), f64::MAX, "the true 2.5e308 saturates");
        let mut s = Stats::of(1.7e308);
        s.merge(&Stats::of(1.7e308));
        s.merge(&Stats::of(1.6e308));
        assert!((s.mean - 1.6666666666666667e308).abs() <= 1e293);
        assert!((s.stddev() - 5.773502691896258e306).abs() <= 1e292);
        let mut s = Stats::of(1e155);
        s.merge(&Stats::of(-1e155));
        assert!((s.stddev() - std::f64::consts::SQRT_2 * 1e155).abs() <= 1e140);
    }

    #[test]
    fn retraction_cancels_to_zero_in_any_order() {
        let mut a = Stats::of(5.0);
        a.merge(&Stats::of(7.0));
        let mut r = Stats::retraction(2);
        r.merge(&Stats::of(5.0));
        r.merge(&Stats::of(7.0));
        assert!(r.is_zero());
        a.merge(&Stats::retraction(2));
        assert!(a.is_zero());
    }

    #[test]
    fn one_reading_has_zero_stddev() {
        assert_eq!(Stats::of(3.0).stddev(), 0.0);
    }
}
