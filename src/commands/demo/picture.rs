//! The demo's picture: for each CRS-11 series, the webcast samples as captured and the
//! one-minute windows maxq wrote for them (the mean, a point at the middle of its window,
//! over the min–max band), with max-Q and MECO marked from the dataset's events. One SVG,
//! the panels stacked on the same flight-time axis.

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

use super::{t_plus, CRS11_EVENTS, CRS11_LAUNCH, CRS11_SERIES};
use crate::commands::produce::Outgoing;
use crate::stats::Stats;

const SIZE: (u32, u32) = (1200, 900);
const FONT: &str = "sans-serif";

/// The events marked, by their name in `events.jsonl`.
const MARKED: [(&str, &str); 2] = [("maxq", "Max-Q"), ("meco", "MECO")];

const SAMPLES: RGBColor = RGBColor(110, 110, 110);
const BAND: RGBColor = RGBColor(40, 110, 200);
const MEAN: RGBColor = RGBColor(210, 70, 20);
const EVENT: RGBColor = RGBColor(30, 140, 60);

/// Draws the [`CRS11_SERIES`]' `readings` and their `windows` (start ms → statistic) to
/// an SVG at `path`, flight time from `launch_ms`.
pub(super) fn draw(
    path: &Path,
    readings: &[Outgoing],
    windows: &[BTreeMap<i64, Stats>],
    launch_ms: i64,
) -> anyhow::Result<()> {
    let events = events()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(
            "CRS-11 (Falcon 9, 2017-06-03), first stage: webcast samples and maxq's one-minute windows",
            (FONT, 22),
        )?;
        let (body, footer) = root.split_vertically(SIZE.1 - 60);
        footer.draw_text(
            "Data: SpaceX launch webcast telemetry, digitized by github.com/shahar603/Telemetry-Data",
            &(FONT, 14).into_text_style(&footer),
            (10, 10),
        )?;
        let panels = body.split_evenly((CRS11_SERIES.len(), 1));
        for ((series, windows), panel) in CRS11_SERIES.iter().zip(windows).zip(&panels) {
            let samples: Vec<(f64, f64)> = readings
                .iter()
                .filter(|r| Some(r.sensor.as_str()) == sensor(series))
                .filter_map(|r| {
                    let value = r.body.get("value")?.as_f64()?;
                    Some((minutes(r.ts_ms, launch_ms), value))
                })
                .collect();
            draw_panel(panel, series, &samples, windows, &events, launch_ms)?;
        }
        root.present()?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

/// `stage1.velocity` of `sensor=stage1.velocity,unit=m/s`.
fn sensor(series: &str) -> Option<&str> {
    series.strip_prefix("sensor=")?.split(',').next()
}

/// Flight time of `ts_ms`, in minutes: the axis' unit, so that its labels fall on whole
/// minutes.
fn minutes(ts_ms: i64, launch_ms: i64) -> f64 {
    (ts_ms - launch_ms) as f64 / 60_000.0
}

/// The [`MARKED`] events: label and flight time, s.
fn events() -> anyhow::Result<Vec<(&'static str, f64)>> {
    let mut found = Vec::new();
    for line in CRS11_EVENTS.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).context("datasets/crs-11/events.jsonl")?;
        for (name, label) in MARKED {
            if let Some(seconds) = event.get(name).and_then(serde_json::Value::as_f64) {
                found.push((label, seconds));
            }
        }
    }
    Ok(found)
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    series: &str,
    samples: &[(f64, f64)],
    windows: &BTreeMap<i64, Stats>,
    events: &[(&str, f64)],
    launch_ms: i64,
) -> anyhow::Result<()> {
    let (Some(first), Some(last)) = (windows.keys().next(), windows.keys().next_back()) else {
        return Ok(());
    };
    let x = minutes(*first, launch_ms)..minutes(last + 60_000, launch_ms);
    let top = windows.values().map(|s| s.max).fold(f64::MIN, f64::max);
    let bottom = windows.values().map(|s| s.min).fold(0.0, f64::min);
    let y = bottom..top + 0.1 * (top - bottom);
    let unit = series.split("unit=").nth(1).unwrap_or("");
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(x.clone(), y.clone())?;
    chart
        .configure_mesh()
        .x_labels(12)
        .x_label_formatter(&|m| t_plus((m * 60.0).round() as i64))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc(format!("{} ({unit})", sensor(series).unwrap_or(series)))
        .x_desc(format!("flight time, T+0:00 = lift-off ({CRS11_LAUNCH})"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(TRANSPARENT)
        .draw()?;

    chart
        .draw_series(windows.iter().map(|(start, s)| {
            let from = minutes(*start, launch_ms);
            Rectangle::new([(from, s.min), (from + 1.0, s.max)], BAND.mix(0.2).filled())
        }))?
        .label("min–max of each one-minute window")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], BAND.mix(0.2).filled()));
    chart
        .draw_series(LineSeries::new(samples.iter().copied(), SAMPLES))?
        .label("webcast samples")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], SAMPLES));
    chart
        .draw_series(
            LineSeries::new(
                windows
                    .iter()
                    .map(|(start, s)| (minutes(*start, launch_ms) + 0.5, s.mean)),
                MEAN.filled().stroke_width(2),
            )
            .point_size(4),
        )?
        .label("one-minute mean, as written by maxq")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], MEAN.stroke_width(2)));
    for (label, seconds) in events {
        let at = seconds / 60.0;
        chart.draw_series(DashedLineSeries::new(
            [(at, y.start), (at, y.end)],
            6,
            4,
            EVENT.stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((at, y.end))
                + Text::new(
                    format!("{label} {}", t_plus(seconds.round() as i64)),
                    (4, 0),
                    (FONT, 14).into_font().color(&EVENT),
                ),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
