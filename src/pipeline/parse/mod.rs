//! The `Reading` type and its JSON parsing.
//!
//! One Kafka message is one reading: `{"sensor": .., "ts": .., "value": ..}` with the aliases
//! `sensor_name`, `timestamp` and `reading`, an optional `unit` and optional string `tags`.
//! Anything else is malformed and gets a [`Malformed`] reason; parsing never panics.
//!
//! The series identity (sensor, unit and tags) is encoded once, here, as the escaped
//! line-protocol tag set, so the dataflow carries one string per key and the sink writes it
//! as is.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::line_protocol::{escape_tag, TagError};

/// Earliest and latest reading time accepted, in Unix milliseconds: InfluxDB stores
/// nanoseconds in an `i64` (years 1677–2262), so windows must stay inside that range.
pub const TS_RANGE_MS: std::ops::RangeInclusive<i64> = -9_000_000_000_000..=9_000_000_000_000;

/// Longest sensor name, unit, tag key or tag value accepted, in bytes.
pub const MAX_TAG_BYTES: usize = 256;

/// Most input tags accepted on one reading.
pub const MAX_TAGS: usize = 16;

/// One sensor reading, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The escaped line-protocol tag set (`sensor=..[,tag=..][,unit=..]`, keys sorted).
    pub series: String,
    /// Event time in Unix milliseconds.
    pub ts_ms: i64,
    /// The measured value, finite.
    pub value: f64,
}

/// Why a message is not a reading. The names are the per-reason counter labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Malformed {
    /// The message has no payload or an empty one.
    Empty,
    /// Not valid UTF-8 JSON, or nested deeper than the parser allows.
    InvalidJson,
    /// Valid JSON, but not an object (or an object with a duplicated field).
    NotAnObject,
    /// No `sensor`/`sensor_name`.
    MissingSensor,
    /// `sensor` is not a non-empty string that can be stored as an InfluxDB tag.
    BadSensor,
    /// No `ts`/`timestamp`.
    MissingTs,
    /// `ts` is neither RFC 3339 with an offset nor integer epoch milliseconds in range.
    BadTs,
    /// No `value`/`reading`.
    MissingValue,
    /// `value` is not a finite number.
    BadValue,
    /// `unit` is not a string that can be stored as an InfluxDB tag.
    BadUnit,
    /// `tags` is not an object of strings that can be stored as InfluxDB tags.
    BadTags,
    /// `ts` is more than `--max-future` ahead of the Kafka record's own timestamp.
    FutureTs,
}

impl Malformed {
    /// Every reason, in counter order.
    pub const ALL: [Malformed; 12] = [
        Malformed::Empty,
        Malformed::InvalidJson,
        Malformed::NotAnObject,
        Malformed::MissingSensor,
        Malformed::BadSensor,
        Malformed::MissingTs,
        Malformed::BadTs,
        Malformed::MissingValue,
        Malformed::BadValue,
        Malformed::BadUnit,
        Malformed::BadTags,
        Malformed::FutureTs,
    ];

    /// The reason's label, as used in logs, counters and the dead-letter header.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Empty => "empty",
            Malformed::InvalidJson => "invalid_json",
            Malformed::NotAnObject => "not_an_object",
            Malformed::MissingSensor => "missing_sensor",
            Malformed::BadSensor => "bad_sensor",
            Malformed::MissingTs => "missing_ts",
            Malformed::BadTs => "bad_ts",
            Malformed::MissingValue => "missing_value",
            Malformed::BadValue => "bad_value",
            Malformed::BadUnit => "bad_unit",
            Malformed::BadTags => "bad_tags",
            Malformed::FutureTs => "future_ts",
        }
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The message split into its fields, each still raw so that each gets its own reason.
#[derive(Deserialize)]
struct RawReading<'a> {
    #[serde(borrow, alias = "sensor_name")]
    sensor: Option<&'a RawValue>,
    #[serde(borrow, alias = "timestamp")]
    ts: Option<&'a RawValue>,
    #[serde(borrow, alias = "reading")]
    value: Option<&'a RawValue>,
    #[serde(borrow)]
    unit: Option<&'a RawValue>,
    #[serde(borrow)]
    tags: Option<&'a RawValue>,
}

/// The usual message, typed in one pass: sensor and unit strings, `ts` an integer or a
/// string, `value` a number. Anything it does not take goes to [`RawReading`], which gives
/// the reason.
#[derive(Deserialize)]
struct PlainReading<'a> {
    #[serde(borrow, alias = "sensor_name")]
    sensor: Cow<'a, str>,
    #[serde(borrow, alias = "timestamp")]
    ts: Ts<'a>,
    #[serde(alias = "reading")]
    value: f64,
    #[serde(borrow)]
    unit: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tags: Option<&'a RawValue>,
}

/// A `ts` as written: integer milliseconds or (RFC 3339) text.
enum Ts<'a> {
    Ms(i64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Ts<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl<'de> serde::de::Visitor<'de> for TsVisitor {
            type Value = Ts<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("integer milliseconds or an RFC 3339 string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Ts::Ms(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(Ts::Ms)
                    .map_err(|_| E::custom("out of range"))
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Ts::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Ts::Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

impl PlainReading<'_> {
    /// The reading, or `None` where the full parse is to decide.
    fn reading(self) -> Option<Reading> {
        let tag_text = |s: &str| !s.is_empty() && s.len() <= MAX_TAG_BYTES;
        if !tag_text(&self.sensor) || !self.value.is_finite() {
            return None;
        }
        let ts_ms = match self.ts {
            Ts::Ms(ms) => ms,
            Ts::Text(text) => chrono::DateTime::parse_from_rfc3339(&text)
                .ok()?
                .timestamp_millis(),
        };
        if !TS_RANGE_MS.contains(&ts_ms)
            || self.unit.as_ref().is_some_and(|u| u.len() > MAX_TAG_BYTES)
        {
            return None;
        }
        let tags = match self.tags {
            Some(tags) if tags.get() != "null" => parse_tags(tags).ok()?,
            _ => BTreeMap::new(),
        };
        let series = encode_series(&self.sensor, self.unit.as_deref(), &tags).ok()?;
        Some(Reading {
            series,
            ts_ms,
            value: self.value,
        })
    }
}

impl Reading {
    /// Parses one message payload.
    pub fn parse(payload: &[u8]) -> Result<Reading, Malformed> {
        match payload.iter().find(|b| !b.is_ascii_whitespace()) {
            None => return Err(Malformed::Empty),
            // serde would read a struct from an array too: only an object is a reading.
            Some(b'{') => {}
            Some(_) => {
                return Err(
                    match serde_json::from_slice::<serde::de::IgnoredAny>(payload) {
                        Ok(_) => Malformed::NotAnObject,
                        Err(_) => Malformed::InvalidJson,
                    },
                )
            }
        }
        let text = std::str::from_utf8(payload).map_err(|_| Malformed::InvalidJson)?;
        match serde_json::from_str::<PlainReading>(text)
            .ok()
            .and_then(PlainReading::reading)
        {
            Some(reading) => Ok(reading),
            None => Reading::parse_fields(text),
        }
    }

    /// The reading, unless its `ts` is more than `max_future_ms` ahead of `record_ms`, its
    /// Kafka record's timestamp (when the record has one). The record's timestamp is part
    /// of the topic's contents, so the rule keeps the results a function of them, and one
    /// reading with a wild clock cannot move its partition's event time far past what the
    /// producer saw.
    pub fn within(self, record_ms: Option<i64>, max_future_ms: i64) -> Result<Reading, Malformed> {
        match record_ms {
            Some(record) if self.ts_ms > record.saturating_add(max_future_ms) => {
                Err(Malformed::FutureTs)
            }
            _ => Ok(self),
        }
    }

    /// Parses an object field by field, each with its own reason.
    fn parse_fields(text: &str) -> Result<Reading, Malformed> {
        let raw: RawReading = serde_json::from_str(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => Malformed::NotAnObject,
            _ => Malformed::InvalidJson,
        })?;
        let sensor = raw.sensor.ok_or(Malformed::MissingSensor)?;
        let sensor = parse_tag_text(sensor).ok_or(Malformed::BadSensor)?;
        if sensor.is_empty() {
            return Err(Malformed::BadSensor);
        }
        let ts_ms = parse_ts(raw.ts.ok_or(Malformed::MissingTs)?)?;
        let value = parse_value(raw.value.ok_or(Malformed::MissingValue)?)?;
        let unit = match raw.unit {
            Some(unit) if unit.get() != "null" => {
                Some(parse_tag_text(unit).ok_or(Malformed::BadUnit)?)
            }
            _ => None,
        };
        let tags = match raw.tags {
            Some(tags) if tags.get() != "null" => parse_tags(tags)?,
            _ => BTreeMap::new(),
        };
        let series = encode_series(&sensor, unit.as_deref(), &tags)?;
        Ok(Reading {
            series,
            ts_ms,
            value,
        })
    }
}

fn parse_tag_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text: Cow<str> = serde_json::from_str(raw.get()).ok()?;
    (text.len() <= MAX_TAG_BYTES).then_some(text)
}

fn parse_ts(raw: &RawValue) -> Result<i64, Malformed> {
    let text = raw.get();
    let ms = if text.starts_with('"') {
        let s: Cow<str> = serde_json::from_str(text).map_err(|_| Malformed::BadTs)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map_err(|_| Malformed::BadTs)?
            .timestamp_millis()
    } else {
        serde_json::from_str::<i64>(text).map_err(|_| Malformed::BadTs)?
    };
    if TS_RANGE_MS.contains(&ms) {
        Ok(ms)
    } else {
        Err(Malformed::BadTs)
    }
}

fn parse_value(raw: &RawValue) -> Result<f64, Malformed> {
    match serde_json::from_str::<f64>(raw.get()) {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Malformed::BadValue),
    }
}

fn parse_tags(raw: &RawValue) -> Result<BTreeMap<String, String>, Malformed> {
    let tags: BTreeMap<String, String> =
        serde_json::from_str(raw.get()).map_err(|_| Malformed::BadTags)?;
    // A tag named like a field would be stored beside it, and queries could not tell them
    // apart.
    let reserved = |k: &str| {
        matches!(
            k,
            "sensor" | "unit" | "time" | "" | "count" | "mean" | "min" | "max" | "stddev"
        )
    };
    let too_long = |s: &str| s.len() > MAX_TAG_BYTES;
    if tags.len() > MAX_TAGS
        || tags
            .iter()
            .any(|(k, v)| reserved(k) || too_long(k) || too_long(v))
    {
        return Err(Malformed::BadTags);
    }
    Ok(tags)
}

/// The escaped tag set: `sensor`, input tags and `unit`, sorted by key as InfluxDB wants.
/// Empty tag values are left out, as InfluxDB would drop them anyway.
fn encode_series(
    sensor: &str,
    unit: Option<&str>,
    tags: &BTreeMap<String, String>,
) -> Result<String, Malformed> {
    let sensor = ("sensor", sensor);
    let unit = ("unit", unit.unwrap_or_default());
    if tags.is_empty() {
        // Already in key order: nothing to collect and sort for the usual reading.
        return write_series(&[sensor, unit]);
    }
    let mut all: Vec<(&str, &str)> = tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([unit, sensor])
        .collect();
    all.sort_unstable();
    write_series(&all)
}

/// `pairs`, sorted by key, escaped as a tag set; empty values left out.
fn write_series(pairs: &[(&str, &str)]) -> Result<String, Malformed> {
    let pairs = || pairs.iter().filter(|(_, v)| !v.is_empty());
    let unescaped: usize = pairs().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut series = String::with_capacity(unescaped);
    for (i, &(key, value)) in pairs().enumerate() {
        if i > 0 {
            series.push(',');
        }
        let reason = |e: TagError, own: Malformed| match e {
            TagError::Unencodable if key == "sensor" => Malformed::BadSensor,
            TagError::Unencodable if key == "unit" => Malformed::BadUnit,
            TagError::Unencodable => own,
        };
        escape_tag(key, &mut series).map_err(|e| reason(e, Malformed::BadTags))?;
        series.push('=');
        escape_tag(value, &mut series).map_err(|e| reason(e, Malformed::BadTags))?;
    }
    Ok(series)
}

#[cfg(test)]
mod tests;
