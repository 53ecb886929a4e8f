//! Lateness: a reading is late iff its `ts` is more than `--lateness` older than the newest
//! `ts` read before it from the same partition. The rule looks at nothing but the
//! partition's own readings, so what is late is a function of the topic's contents.

/// Whether a reading at `ts_ms` is on time given `newest_ms`, the newest `ts` read before
/// it from its partition; an accepted reading advances `newest_ms`.
pub fn accept(newest_ms: &mut Option<i64>, ts_ms: i64, lateness_ms: i64) -> bool {
    match *newest_ms {
        Some(newest) if ts_ms < newest.saturating_sub(lateness_ms) => false,
        Some(newest) if ts_ms <= newest => true,
        _ => {
            *newest_ms = Some(ts_ms);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_means_more_than_lateness_older_than_the_newest_before() {
        let mut newest = None;
        assert!(accept(&mut newest, 10_000, 5_000));
        assert!(
            accept(&mut newest, 5_000, 5_000),
            "exactly lateness older is on time"
        );
        assert!(!accept(&mut newest, 4_999, 5_000));
        assert!(accept(&mut newest, 20_000, 5_000));
        assert!(
            !accept(&mut newest, 10_000, 5_000),
            "judged against the newest, not the last"
        );
        assert_eq!(newest, Some(20_000));
    }
}
