//! Synthetic launch telemetry: a physically plausible two-stage ascent sampled by many sensors.
//!
//! One [`Vehicle`] state is integrated on a fixed 10 ms grid (independent of the sample
//! rate, so the same flight is seen at any `hz`); at every sample tick each sensor derives
//! its value from that shared state and adds its own bias and noise. Dropouts and
//! one-tick-late deliveries come from a single seeded SplitMix64 stream, so a seed always
//! yields the same bytes.

use anyhow::Context as _;
use std::io::Write as _;

use crate::cli::GenerateArgs;
use crate::commands::publish::Publisher;
use crate::terminal;

mod json;
#[cfg(test)]
mod tests;
mod vehicle;

pub use json::write_json_line;
use json::write_u64;
use vehicle::*;

/// Sensor kinds, in `i % K` order: name, unit, bias half-range, noise sigma, decimals scale.
const KINDS: [Kind; K] = [
    Kind::new("altitude", "m", 10.0, 3.0, 100.0),
    Kind::new("velocity", "m/s", 0.5, 0.2, 1000.0),
    Kind::new("acceleration", "m/s^2", 0.05, 0.02, 1000.0),
    Kind::new("dynamic_pressure", "Pa", 20.0, 10.0, 10.0),
    Kind::new("chamber_pressure", "bar", 0.2, 0.1, 1000.0),
    Kind::new("engine_bay_temperature", "degC", 0.5, 0.2, 100.0),
    Kind::new("lox_tank_level", "percent", 0.2, 0.05, 1000.0),
    Kind::new("rp1_tank_level", "percent", 0.2, 0.05, 1000.0),
];
const K: usize = 8;

/// Per-reading event probabilities as thresholds on 32 random bits.
const DROPOUT_THRESHOLD: u64 = (0.005 * 4_294_967_296.0) as u64;
const DELAY_THRESHOLD: u64 = (0.002 * 4_294_967_296.0) as u64;

struct Kind {
    name: &'static str,
    unit: &'static str,
    bias: f64,
    sigma: f64,
    /// Values are rounded to `1 / scale`: finer than the noise, and short to print.
    scale: f64,
}

impl Kind {
    const fn new(
        name: &'static str,
        unit: &'static str,
        bias: f64,
        sigma: f64,
        scale: f64,
    ) -> Kind {
        Kind {
            name,
            unit,
            bias,
            sigma,
            scale,
        }
    }
}

/// What `maxq generate` simulates.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateConfig {
    /// Number of sensors (>= 1; 1_000_000 must work).
    pub sensors: usize,
    /// Samples per second per sensor (> 0, e.g. 10.0).
    pub hz: f64,
    /// Flight time covered, ms (e.g. 600_000).
    pub duration_ms: i64,
    /// Seed: the same seed gives the same readings, byte for byte.
    pub seed: u64,
    /// Unix ms of T+0.
    pub launch_ms: i64,
}

/// One generated reading; `sensor` borrows from the [`Generator`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeneratedReading<'a> {
    /// Sensor name, `"{kind}.{channel}"`, e.g. `altitude.0`.
    pub sensor: &'a str,
    /// Sample time, Unix ms.
    pub ts_ms: i64,
    /// Measured value, always finite.
    pub value: f64,
    /// Unit of the sensor's kind, e.g. `m/s`.
    pub unit: &'static str,
}

/// Produces the readings of one simulated launch; see [`Generator::run`].
#[derive(Debug)]
pub struct Generator {
    config: GenerateConfig,
    /// All sensor names concatenated; sensor `i` is `names[ends[i - 1]..ends[i]]`, so a
    /// million sensors cost two allocations rather than a million.
    names: String,
    ends: Vec<usize>,
    /// Constant per-sensor calibration error.
    bias: Vec<f64>,
}

/// SplitMix64: tiny, fast, and identical on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn symmetric(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0
    }

    /// Roughly standard normal: the sum of four 16-bit uniforms from one draw, centred
    /// and scaled to unit variance (Irwin–Hall, cheap and bounded at ±3.46).
    fn gaussish(&mut self) -> f64 {
        let r = self.next();
        let sum = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
        (sum as f64 - 131_070.0) * (1.732_050_807_568_877_2 / 65_536.0)
    }
}

impl Generator {
    /// Names the sensors and draws their biases from `config.seed`.
    ///
    /// # Panics
    /// If `sensors` is 0, `hz` is not positive and finite, or `duration_ms` is negative.
    pub fn new(config: GenerateConfig) -> Generator {
        assert!(config.sensors >= 1, "generate: sensors must be >= 1");
        assert!(
            config.hz.is_finite() && config.hz > 0.0,
            "generate: hz must be > 0"
        );
        assert!(
            config.duration_ms >= 0,
            "generate: duration_ms must be >= 0"
        );
        let mut names = String::with_capacity(config.sensors * 24);
        let mut ends = Vec::with_capacity(config.sensors);
        let mut bias = Vec::with_capacity(config.sensors);
        let mut rng = Rng(config.seed);
        let mut digits = Vec::with_capacity(20);
        for i in 0..config.sensors {
            let kind = &KINDS[i % K];
            names.push_str(kind.name);
            names.push('.');
            digits.clear();
            write_u64(&mut digits, (i / K) as u64);
            names.push_str(std::str::from_utf8(&digits).expect("digits are ASCII"));
            ends.push(names.len());
            bias.push(kind.bias * rng.symmetric());
        }
        Generator {
            config,
            names,
            ends,
            bias,
        }
    }

    /// Readings of a flight without dropouts: sample ticks × sensors, what a progress bar
    /// can count towards before the run.
    pub fn samples(&self) -> u64 {
        let mut ticks = 0;
        while self.offset_ms(ticks) < self.config.duration_ms {
            ticks += 1;
        }
        ticks * self.config.sensors as u64
    }

    /// Flight time of tick `k`.
    fn offset_ms(&self, k: u64) -> i64 {
        (k as f64 * 1000.0 / self.config.hz).round() as i64
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.names[start..self.ends[i]]
    }

    /// Calls `emit` for every reading, in delivery order, and returns how many were emitted.
    ///
    /// Ticks are `k = 0, 1, ..` at `launch_ms + round(k * 1000 / hz)` while that offset is
    /// below `duration_ms`; each tick visits sensors `0..sensors` in order. About 0.5 % of
    /// samples are dropped, and 0.2 % are held back and delivered right after the same
    /// sensor's next reading, keeping their own (earlier) timestamp; any still held at the
    /// end follow the last tick. Every call replays the same readings. Stops at the first
    /// error from `emit` and returns it.
    pub fn run<E>(
        &mut self,
        mut emit: impl FnMut(&GeneratedReading<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let n = self.config.sensors;
        // A stream distinct from the bias stream, so biases and noise are independent.
        let mut rng = Rng(self.config.seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let mut vehicle = Vehicle::new();
        // NaN marks "nothing held": generated values are always finite.
        let mut held = vec![f64::NAN; n];
        let mut prev_ts = self.config.launch_ms;
        let mut emitted = 0u64;
        let mut k = 0u64;
        loop {
            let offset = self.offset_ms(k);
            if offset >= self.config.duration_ms {
                break;
            }
            vehicle.advance_to(offset);
            let truth = vehicle.truth();
            let ts = self.config.launch_ms + offset;
            for (i, held_value) in held.iter_mut().enumerate() {
                let kind = &KINDS[i % K];
                let event = rng.next();
                let dropped = (event >> 32) < DROPOUT_THRESHOLD;
                let delayed = !dropped && (event & 0xFFFF_FFFF) < DELAY_THRESHOLD;
                let mut fresh = f64::NAN;
                if !dropped {
                    let raw = truth[i % K] + self.bias[i] + kind.sigma * rng.gaussish();
                    fresh = (raw * kind.scale).round() / kind.scale;
                    if !delayed {
                        emit(&reading(self.name(i), ts, fresh, kind))?;
                        emitted += 1;
                    }
                }
                if !held_value.is_nan() {
                    emit(&reading(self.name(i), prev_ts, *held_value, kind))?;
                    emitted += 1;
                }
                *held_value = if delayed { fresh } else { f64::NAN };
            }
            prev_ts = ts;
            k += 1;
        }
        for (i, held_value) in held.iter().enumerate() {
            if !held_value.is_nan() {
                emit(&reading(self.name(i), prev_ts, *held_value, &KINDS[i % K]))?;
                emitted += 1;
            }
        }
        Ok(emitted)
    }
}

fn reading<'a>(sensor: &'a str, ts_ms: i64, value: f64, kind: &Kind) -> GeneratedReading<'a> {
    GeneratedReading {
        sensor,
        ts_ms,
        value,
        unit: kind.unit,
    }
}

/// Runs `maxq generate`: JSON lines to standard output or `--output`, or published to
/// `--topic`. Returns a one-line report.
pub fn generate(args: &GenerateArgs) -> anyhow::Result<String> {
    if args.sensors == 0 || !(args.hz.is_finite() && args.hz > 0.0) {
        anyhow::bail!(
            "--sensors must be at least 1 and --hz positive (e.g. --sensors 100 --hz 10)"
        );
    }
    let launch_ms = chrono::DateTime::parse_from_rfc3339(&args.launch_time)
        .map_err(|e| anyhow::anyhow!("--launch-time {:?}: {e}; write RFC 3339", args.launch_time))?
        .timestamp_millis();
    let mut generator = Generator::new(GenerateConfig {
        sensors: args.sensors,
        hz: args.hz,
        duration_ms: i64::try_from(args.duration.as_millis())
            .map_err(|_| anyhow::anyhow!("--duration is too long"))?,
        seed: args.seed,
        launch_ms,
    });
    let started = std::time::Instant::now();
    let mut line = Vec::with_capacity(128);
    let progress = terminal::progress_bar("generating", "readings", Some(generator.samples()));
    let count = match &args.topic {
        Some(topic) => {
            let publisher = Publisher::connect(&args.broker.target(topic), progress)?;
            let pace = args
                .rate
                .map(|rate| std::time::Duration::from_secs_f64(1.0 / rate));
            let mut sent: u32 = 0;
            let count = generator.run(|reading| {
                if let Some(period) = pace {
                    let due = started + period * sent;
                    if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    sent = sent.saturating_add(1);
                }
                line.clear();
                write_json_line(&mut line, reading);
                publisher.send(reading.sensor, &line)
            })?;
            publisher.finish()?;
            count
        }
        None => {
            let sink: Box<dyn std::io::Write> = match &args.output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("--output {}", path.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut out = std::io::BufWriter::with_capacity(1 << 20, sink);
            let mut written = 0u64;
            let count = generator.run(|reading| {
                line.clear();
                write_json_line(&mut line, reading);
                written += 1;
                // The bar reads the clock on each move: not once per line.
                if written.is_multiple_of(4096) {
                    progress.set_position(written);
                }
                out.write_all(&line)
            });
            progress.finish_and_clear();
            match count.and_then(|c| out.flush().map(|_| c)) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(String::new()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "generated {count} readings in {seconds:.2} s: {:.0} readings/s",
        count as f64 / seconds.max(1e-9)
    ))
}
