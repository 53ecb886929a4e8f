//! Parsing: every reason named, the documented timestamp forms, the one-pass and
//! field-by-field parses in agreement, no panic on any bytes.

use super::*;
use proptest::prelude::*;

fn parse(s: &str) -> Result<Reading, Malformed> {
    Reading::parse(s.as_bytes())
}

#[test]
fn parses_both_timestamp_forms_and_aliases() {
    let a = parse(r#"{"sensor":"alt","ts":"2026-11-23T14:02:03.250Z","value":1234.5}"#);
    let b = parse(r#"{"sensor_name":"alt","timestamp":1795442523250,"reading":1234.5}"#);
    assert_eq!(a, b);
    let a = a.unwrap();
    assert_eq!(a.series, "sensor=alt");
    assert_eq!(a.ts_ms, 1_795_442_523_250);
    let offset = parse(r#"{"sensor":"alt","ts":"2026-11-23T15:02:03.250+01:00","value":1}"#);
    assert_eq!(offset.unwrap().ts_ms, 1_795_442_523_250);
}

#[test]
fn carries_unit_and_tags_sorted_and_escaped() {
    let r = parse(
        r#"{"sensor":"temp sensor,1=\"a\\b\"","ts":0,"value":1,"unit":"°C","tags":{"stage":"1","a b":"x"}}"#,
    )
    .unwrap();
    assert_eq!(
        r.series,
        r#"a\ b=x,sensor=temp\ sensor\,1\="a\b",stage=1,unit=°C"#
    );
}

#[test]
fn names_each_reason() {
    let cases = [
        ("", Malformed::Empty),
        ("  ", Malformed::Empty),
        ("{", Malformed::InvalidJson),
        ("[1]", Malformed::NotAnObject),
        (r#"["a", 0, 1]"#, Malformed::NotAnObject),
        ("7", Malformed::NotAnObject),
        (
            r#"{"sensor":"a","sensor_name":"b","ts":0,"value":1}"#,
            Malformed::NotAnObject,
        ),
        (r#"{"ts":0,"value":1}"#, Malformed::MissingSensor),
        (r#"{"sensor":"","ts":0,"value":1}"#, Malformed::BadSensor),
        (r#"{"sensor":7,"ts":0,"value":1}"#, Malformed::BadSensor),
        (
            r#"{"sensor":"a\nb","ts":0,"value":1}"#,
            Malformed::BadSensor,
        ),
        (r#"{"sensor":"a\\","ts":0,"value":1}"#, Malformed::BadSensor),
        (r#"{"sensor":"a","value":1}"#, Malformed::MissingTs),
        (
            r#"{"sensor":"a","ts":"yesterday","value":1}"#,
            Malformed::BadTs,
        ),
        (
            r#"{"sensor":"a","ts":"2026-11-23T14:02:03","value":1}"#,
            Malformed::BadTs,
        ),
        (r#"{"sensor":"a","ts":1.5,"value":1}"#, Malformed::BadTs),
        (
            r#"{"sensor":"a","ts":99999999999999999,"value":1}"#,
            Malformed::BadTs,
        ),
        (r#"{"sensor":"a","ts":0}"#, Malformed::MissingValue),
        (r#"{"sensor":"a","ts":0,"value":"1"}"#, Malformed::BadValue),
        (
            r#"{"sensor":"a","ts":0,"value":1e999}"#,
            Malformed::BadValue,
        ),
        (
            r#"{"sensor":"a","ts":0,"value":1,"unit":3}"#,
            Malformed::BadUnit,
        ),
        (
            r#"{"sensor":"a","ts":0,"value":1,"tags":{"k":1}}"#,
            Malformed::BadTags,
        ),
        (
            r#"{"sensor":"a","ts":0,"value":1,"tags":{"sensor":"x"}}"#,
            Malformed::BadTags,
        ),
        (
            r#"{"sensor":"a","ts":0,"value":1,"tags":{"mean":"x"}}"#,
            Malformed::BadTags,
        ),
        (
            r#"{"sensor":"a","ts":0,"value":1,"tags":{"count":"x"}}"#,
            Malformed::BadTags,
        ),
    ];
    for (input, reason) in cases {
        assert_eq!(parse(input), Err(reason), "{input}");
    }
}

#[test]
fn a_ts_too_far_ahead_of_its_record_is_malformed() {
    let reading = parse(r#"{"sensor":"a","ts":70000,"value":1}"#).unwrap();
    assert_eq!(
        reading.clone().within(Some(10_000), 60_000),
        Ok(reading.clone())
    );
    assert_eq!(
        reading.clone().within(Some(9_999), 60_000),
        Err(Malformed::FutureTs)
    );
    assert_eq!(reading.clone().within(None, 0), Ok(reading));
}

#[test]
fn documented_timestamp_forms() {
    let ms =
        |ts: &str| parse(&format!(r#"{{"sensor":"a","ts":"{ts}","value":1}}"#)).map(|r| r.ts_ms);
    let t = ms("2026-11-23T14:02:03.250Z").unwrap();
    assert_eq!(
        ms("2026-11-23 14:02:03.250Z"),
        Ok(t),
        "a space instead of T"
    );
    assert_eq!(ms("2026-11-23t14:02:03.250z"), Ok(t), "lower case");
    assert_eq!(
        ms("2016-12-31T23:59:60.500Z"),
        ms("2017-01-01T00:00:00.500Z"),
        "a leap second counts as the first second of the next minute"
    );
    assert!(
        ms("1684-10-19T08:00:00Z").is_ok(),
        "the first accepted time"
    );
    assert_eq!(ms("1684-10-19T07:59:59.999Z"), Err(Malformed::BadTs));
    assert!(ms("2255-03-14T16:00:00Z").is_ok(), "the last accepted time");
    assert_eq!(ms("2255-03-14T16:00:00.001Z"), Err(Malformed::BadTs));
}

#[test]
fn deep_nesting_and_invalid_utf8_are_malformed_not_fatal() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(parse(&deep), Err(Malformed::NotAnObject));
    let deep_field = format!(
        r#"{{"sensor":{}{},"ts":0,"value":1}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(parse(&deep_field), Err(Malformed::BadSensor));
    assert_eq!(
        Reading::parse(b"{\"sensor\":\"\xff\"}"),
        Err(Malformed::InvalidJson)
    );
}

/// JSON texts of one field, half of them valid for it.
fn one_of(texts: &[&'static str]) -> impl Strategy<Value = Option<&'static str>> {
    proptest::option::weighted(0.9, proptest::sample::select(texts.to_vec()))
}

proptest::proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn the_one_pass_parse_agrees_with_the_field_by_field_one(
        sensor in one_of(&[r#""alt""#, r#""a\"b,c=d e""#, r#""Température""#, r#""""#, "null", "7", "[]"]),
        ts in one_of(&[
            "1795442523250", "-5", r#""2026-11-23T14:02:03.250Z""#,
            r#""2026-11-23T14:02:03+02:00""#, r#""yesterday""#, "-0", "1.5", "1e3",
            "18446744073709551615", "9000000000001", "null",
        ]),
        value in one_of(&["1234.5", "-0", "7", "1e3", "1e400", r#""1""#, "null", "true"]),
        unit in one_of(&[r#""m/s""#, r#""""#, "null", "3", r#""a=b c""#]),
        tags in one_of(&[r#"{"k":"v"}"#, "{}", "null", r#"{"sensor":"x"}"#, r#"{"k":1}"#, "[]"]),
        aliases in proptest::array::uniform3(proptest::bool::ANY),
        duplicate in proptest::option::of(0usize..5),
    ) {
        let names = [
            if aliases[0] { "sensor_name" } else { "sensor" },
            if aliases[1] { "timestamp" } else { "ts" },
            if aliases[2] { "reading" } else { "value" },
            "unit",
            "tags",
        ];
        let mut fields: Vec<String> = [sensor, ts, value, unit, tags]
            .iter()
            .zip(names)
            .filter_map(|(text, name)| text.map(|t| format!("\"{name}\":{t}")))
            .collect();
        if let Some(field) = duplicate.and_then(|i| fields.get(i).cloned()) {
            fields.push(field);
        }
        let text = format!("{{{}}}", fields.join(","));
        prop_assert_eq!(Reading::parse(text.as_bytes()), Reading::parse_fields(&text), "{}", text);
    }

    #[test]
    fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = Reading::parse(&bytes);
    }
}
