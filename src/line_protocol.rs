//! InfluxDB line protocol: escaping and the encoding of one window aggregate as one line.
//!
//! Escaping follows the line-protocol rules: in the measurement `,` and space are escaped;
//! in tag keys, tag values and field keys `,`, `=` and space are. A backslash before any
//! other character is literal, so `a\b` is written as is. Two things have no escape at all
//! and are refused instead: control characters (a newline would end the line) and a
//! trailing backslash (it would escape the separator that follows).

use std::fmt::Write;

use crate::stats::Stats;

/// Text that line protocol cannot carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagError {
    /// A control character or a trailing backslash.
    Unencodable,
}

fn check(text: &str) -> Result<(), TagError> {
    let control = if text.is_ascii() {
        text.bytes().any(|b| b.is_ascii_control())
    } else {
        text.chars().any(char::is_control)
    };
    if control || text.ends_with('\\') {
        Err(TagError::Unencodable)
    } else {
        Ok(())
    }
}

/// Appends a tag key, tag value or field key, escaped.
pub fn escape_tag(text: &str, out: &mut String) -> Result<(), TagError> {
    check(text)?;
    escape_into(text, &[',', '=', ' '], out);
    Ok(())
}

/// Appends a measurement name, escaped.
pub fn escape_measurement(text: &str, out: &mut String) -> Result<(), TagError> {
    check(text)?;
    escape_into(text, &[',', ' '], out);
    Ok(())
}

/// `special` holds ASCII characters only, so each match is one byte long.
fn escape_into(text: &str, special: &[char], out: &mut String) {
    let mut rest = text;
    while let Some(at) = rest.find(special) {
        out.push_str(&rest[..at]);
        out.push('\\');
        out.push_str(&rest[at..=at]);
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Appends the line for one window: `measurement,series count=..i,max=..,mean=..,min=..,stddev=.. start_ms`.
///
/// `measurement` is already escaped. Every field is written, always: an upsert that left
/// one out would keep the previous value beside the new ones. [`Stats`] keeps every moment
/// finite for finite readings.
pub fn encode_point(
    measurement: &str,
    series: &str,
    stats: &Stats,
    start_ms: i64,
    out: &mut String,
) {
    out.push_str(measurement);
    out.push(',');
    out.push_str(series);
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        " count={}i,max={:?},mean={:?},min={:?},stddev={:?} {start_ms}",
        stats.count,
        stats.max,
        stats.mean,
        stats.min,
        stats.stddev()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_by_position() {
        let mut out = String::new();
        escape_tag(r#"temp sensor,1="a\b""#, &mut out).unwrap();
        assert_eq!(out, r#"temp\ sensor\,1\="a\b""#);
        out.clear();
        escape_measurement("tele metry,1=x", &mut out).unwrap();
        assert_eq!(out, r"tele\ metry\,1=x");
    }

    proptest::proptest! {
        #[test]
        fn escapes_as_a_character_by_character_rewrite_would(text in "[a-c ,=\\\\é\u{85}\n]{0,12}") {
            let mut expected = String::new();
            for c in text.chars() {
                if [',', '=', ' '].contains(&c) {
                    expected.push('\\');
                }
                expected.push(c);
            }
            let refused = text.chars().any(char::is_control) || text.ends_with('\\');
            let mut out = String::new();
            match escape_tag(&text, &mut out) {
                Ok(()) => proptest::prop_assert_eq!(out, expected),
                Err(_) => proptest::prop_assert!(refused),
            }
            proptest::prop_assert_eq!(escape_tag(&text, &mut String::new()).is_err(), refused);
        }
    }

    #[test]
    fn refuses_what_has_no_escape() {
        let mut out = String::new();
        assert!(escape_tag("a\nb", &mut out).is_err());
        assert!(escape_tag("ab\\", &mut out).is_err());
        assert!(escape_measurement("m\r", &mut out).is_err());
    }

    #[test]
    fn encodes_one_line() {
        let mut stats = Stats::of(1.0);
        stats.merge(&Stats::of(3.0));
        let mut out = String::new();
        encode_point("telemetry_1m", "sensor=a", &stats, 60_000, &mut out);
        assert_eq!(
            out,
            "telemetry_1m,sensor=a count=2i,max=3.0,mean=2.0,min=1.0,stddev=1.4142135623730951 60000\n"
        );
    }

    #[test]
    fn writes_all_five_fields_for_the_largest_readings() {
        let mut stats = Stats::of(f64::MAX);
        stats.merge(&Stats::of(-f64::MAX));
        let mut out = String::new();
        encode_point("m", "sensor=a", &stats, 0, &mut out);
        assert_eq!(
            out,
            "m,sensor=a count=2i,max=1.7976931348623157e308,mean=0.0,min=-1.7976931348623157e308,stddev=1.7976931348623157e308 0\n"
        );
    }
}
