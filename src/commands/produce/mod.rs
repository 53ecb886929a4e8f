//! `maxq produce`: publish readings from JSON lines, a JSON array or a SpaceX webcast
//! capture to Kafka, keyed by sensor, every delivery confirmed.

use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::io::Read;
use std::path::Path;
use tracing::info;

use crate::cli::{InputFormat, ProduceArgs};
use crate::commands::publish::{PublishReport, Publisher};
use crate::pipeline::parse::Reading;
use crate::{targets, terminal};

mod pace;

/// One reading to publish: its key, time and JSON object (with `ts` normalized to ms).
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Sensor name, the message key.
    pub sensor: String,
    /// Event time, Unix ms.
    pub ts_ms: i64,
    /// The reading object.
    pub body: Map<String, Value>,
}

impl Outgoing {
    /// The payload with the time shifted by `shift_ms`.
    pub fn payload(&self, shift_ms: i64) -> Vec<u8> {
        let mut body = self.body.clone();
        body.remove("timestamp");
        body.insert("ts".into(), Value::from(self.ts_ms + shift_ms));
        serde_json::to_vec(&body).expect("a JSON map serializes")
    }
}

/// Reads every input (standard input when there is none).
pub fn read_inputs(args: &ProduceArgs) -> anyhow::Result<(Vec<Outgoing>, u64)> {
    let mut all = Vec::new();
    let mut skipped = 0;
    if args.files.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        skipped += parse_input("<stdin>", &text, args, &mut all)?;
    }
    for file in &args.files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        skipped += parse_input(&file.display().to_string(), &text, args, &mut all)?;
    }
    Ok((all, skipped))
}

fn detect(name: &str, text: &str) -> InputFormat {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if first.starts_with('[') {
        InputFormat::Json
    } else if first.contains("\"time\"")
        && !first.contains("\"sensor")
        && Path::new(name).extension().is_some_and(|e| e == "jsonl")
    {
        InputFormat::Spacex
    } else {
        InputFormat::Jsonl
    }
}

fn parse_input(
    name: &str,
    text: &str,
    args: &ProduceArgs,
    out: &mut Vec<Outgoing>,
) -> anyhow::Result<u64> {
    let format = args.format.unwrap_or_else(|| detect(name, text));
    let mut skipped = 0;
    let mut bad = |line: usize, why: String| -> anyhow::Result<()> {
        if args.skip_bad {
            skipped += 1;
            Ok(())
        } else {
            bail!("{name}:{line}: {why} (use --skip-bad to count and skip such lines)")
        }
    };
    match format {
        InputFormat::Jsonl => {
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                match reading_object(line) {
                    Ok(o) => out.push(o),
                    Err(why) => bad(i + 1, why)?,
                }
            }
        }
        InputFormat::Json => {
            let values: Vec<Value> =
                serde_json::from_str(text).with_context(|| format!("{name}: not a JSON array"))?;
            for (i, v) in values.iter().enumerate() {
                match reading_object(&v.to_string()) {
                    Ok(o) => out.push(o),
                    Err(why) => bad(i + 1, format!("element {}: {why}", i + 1))?,
                }
            }
        }
        InputFormat::Spacex => {
            let launch = launch_ms(&args.launch_time)?;
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                match spacex_sample(line, &args.stage, launch) {
                    Ok(readings) => out.extend(readings),
                    Err(why) => bad(i + 1, why)?,
                }
            }
        }
    }
    Ok(skipped)
}

fn reading_object(line: &str) -> Result<Outgoing, String> {
    let reading =
        Reading::parse(line.as_bytes()).map_err(|r| format!("malformed reading ({r})"))?;
    let body: Map<String, Value> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let sensor = body
        .get("sensor")
        .or_else(|| body.get("sensor_name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(Outgoing {
        sensor,
        ts_ms: reading.ts_ms,
        body,
    })
}

/// `--launch-time` as Unix ms.
fn launch_ms(text: &str) -> anyhow::Result<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            anyhow::anyhow!(
                "--launch-time {text:?}: {e}; write RFC 3339, e.g. 2017-06-03T21:07:38Z"
            )
        })
}

/// Units of the SpaceX capture's quantities.
fn spacex_unit(field: &str) -> Option<&'static str> {
    match field {
        "velocity" | "velocity_x" | "velocity_y" => Some("m/s"),
        "altitude" | "downrange_distance" => Some("km"),
        "acceleration" => Some("m/s^2"),
        "angle" => Some("deg"),
        "q" => Some("Pa"),
        _ => None,
    }
}

/// One capture sample: one reading per quantity, `ts` = launch + `time`.
pub fn spacex_sample(line: &str, stage: &str, launch_ms: i64) -> Result<Vec<Outgoing>, String> {
    let sample: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let time = sample
        .get("time")
        .and_then(Value::as_f64)
        .ok_or("no numeric \"time\"")?;
    let ts_ms = launch_ms + (time * 1000.0).round() as i64;
    let mut out = Vec::new();
    for (field, value) in &sample {
        let (Some(unit), Some(value)) = (spacex_unit(field), value.as_f64()) else {
            continue;
        };
        let sensor = format!("{stage}.{field}");
        let mut body = Map::new();
        body.insert("sensor".into(), Value::from(sensor.clone()));
        body.insert("ts".into(), Value::from(ts_ms));
        body.insert("value".into(), Value::from(value));
        body.insert("unit".into(), Value::from(unit));
        out.push(Outgoing {
            sensor,
            ts_ms,
            body,
        });
    }
    Ok(out)
}

/// Runs `maxq produce`.
pub fn produce(args: &ProduceArgs) -> anyhow::Result<PublishReport> {
    pace::check(args)?;
    let (readings, skipped) = read_inputs(args)?;
    if skipped > 0 {
        info!(target: targets::PRODUCE, skipped, "skipped bad input lines");
    }
    let total = (!args.r#loop).then_some(readings.len() as u64);
    let progress = terminal::progress_bar("producing", "readings", total);
    let publisher = Publisher::connect(&args.broker.target(&args.topic), progress)?;
    pace::pace(&readings, args, |o, shift| {
        publisher.send(&o.sensor, &o.payload(shift))
    })?;
    publisher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacex_sample_becomes_one_reading_per_quantity() {
        let r = spacex_sample(
            r#"{"time": 1.5, "velocity": 2.0, "altitude": 0.1}"#,
            "stage1",
            1_000_000,
        )
        .unwrap();
        let names: Vec<&str> = r.iter().map(|o| o.sensor.as_str()).collect();
        assert_eq!(names, vec!["stage1.altitude", "stage1.velocity"]);
        assert!(r.iter().all(|o| o.ts_ms == 1_001_500));
        let parsed = Reading::parse(&r[1].payload(0)).unwrap();
        assert_eq!(parsed.series, "sensor=stage1.velocity,unit=m/s");
    }

    #[test]
    fn payload_normalizes_the_time_field() {
        let o =
            reading_object(r#"{"sensor_name":"a","timestamp":"1970-01-01T00:00:01Z","reading":3}"#)
                .unwrap();
        let parsed = Reading::parse(&o.payload(5)).unwrap();
        assert_eq!(parsed.ts_ms, 1_005);
        assert_eq!(parsed.value, 3.0);
    }
}
