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

/// Integration step, ms. A fixed grid keeps stage events exact and the physics identical
/// whatever the sample rate.
const STEP_MS: i64 = 10;
const EARTH_RADIUS_M: f64 = 6_371_000.0;
const G0: f64 = 9.81;
const SCALE_HEIGHT_M: f64 = 8_500.0;
const RHO0: f64 = 1.225;
const CD_A: f64 = 0.3 * 10.5;

const PAYLOAD_KG: f64 = 22_800.0;
const S1_WET_KG: f64 = 420_000.0;
const S1_DRY_KG: f64 = 25_600.0;
const S1_THRUST_SL_N: f64 = 7.6e6;
const S1_THRUST_VAC_N: f64 = 8.2e6;
const S2_WET_KG: f64 = 110_000.0;
const S2_DRY_KG: f64 = 4_000.0;
const S2_THRUST_N: f64 = 0.98e6;
const MECO_MS: i64 = 162_000;
const SEPARATION_MS: i64 = 165_000;
const S2_IGNITION_MS: i64 = 172_000;
const SECO_MS: i64 = 540_000;
const VERTICAL_MS: i64 = 10_000;
/// Thrust angle from vertical reached at MECO: near-horizontal, as a gravity turn ends.
const PITCH_AT_MECO_RAD: f64 = 82.0 * std::f64::consts::PI / 180.0;
/// Stage 2 thrust elevation above the local horizontal at ignition and at SECO: lofted
/// first (stage 2 alone cannot yet hold altitude), then flat to build orbital speed. Tuned
/// so SECO lands near a ~200 km, ~7.9 km/s, level (vertical speed ~0) orbit.
const S2_ELEVATION_START_RAD: f64 = 36.0 * std::f64::consts::PI / 180.0;
const S2_ELEVATION_END_RAD: f64 = 0.0;

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
            let offset = (k as f64 * 1000.0 / self.config.hz).round() as i64;
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

/// The shared flight state, integrated in a rotating-frame-free polar model: `vx` is the
/// horizontal and `vh` the vertical speed, and the curvature terms (`vx² / r`, `-vx·vh / r`)
/// let a coasting vehicle at orbital speed stay in orbit instead of flying off a flat Earth.
#[derive(Clone, Debug)]
struct Vehicle {
    t_ms: i64,
    h: f64,
    vx: f64,
    vh: f64,
    s1_prop: f64,
    s2_prop: f64,
    separated: bool,
    temp_c: f64,
}

/// Forces on the vehicle at one instant.
struct Forces {
    ax: f64,
    ah: f64,
    /// What an accelerometer reads: thrust and drag, not gravity.
    sensed: f64,
    q: f64,
}

impl Vehicle {
    fn new() -> Vehicle {
        Vehicle {
            t_ms: 0,
            h: 0.0,
            vx: 0.0,
            vh: 0.0,
            s1_prop: S1_WET_KG - S1_DRY_KG,
            s2_prop: S2_WET_KG - S2_DRY_KG,
            separated: false,
            temp_c: 15.0,
        }
    }

    fn mass(&self) -> f64 {
        let s1 = if self.separated {
            0.0
        } else {
            S1_DRY_KG + self.s1_prop
        };
        s1 + S2_DRY_KG + self.s2_prop + PAYLOAD_KG
    }

    fn stage1_burning(&self) -> bool {
        self.t_ms < MECO_MS
    }

    fn stage2_burning(&self) -> bool {
        (S2_IGNITION_MS..SECO_MS).contains(&self.t_ms)
    }

    /// Thrust (N) and its angle from the local vertical (rad).
    fn thrust(&self, pressure_ratio: f64) -> (f64, f64) {
        if self.stage1_burning() {
            let thrust = S1_THRUST_VAC_N - (S1_THRUST_VAC_N - S1_THRUST_SL_N) * pressure_ratio;
            // Vertical to clear the tower, then a steady pitch-over to near-horizontal at
            // MECO: climbs out of the thick air early, so max-Q comes near T+70 s at ~35 kPa.
            let s = (self.t_ms - VERTICAL_MS) as f64 / (MECO_MS - VERTICAL_MS) as f64;
            (thrust, PITCH_AT_MECO_RAD * s.clamp(0.0, 1.0))
        } else if self.stage2_burning() {
            let s = (self.t_ms - S2_IGNITION_MS) as f64 / (SECO_MS - S2_IGNITION_MS) as f64;
            let elevation =
                S2_ELEVATION_START_RAD + (S2_ELEVATION_END_RAD - S2_ELEVATION_START_RAD) * s;
            (S2_THRUST_N, std::f64::consts::FRAC_PI_2 - elevation)
        } else {
            (0.0, 0.0)
        }
    }

    fn forces(&self) -> Forces {
        let r = EARTH_RADIUS_M + self.h;
        let pressure_ratio = (-self.h / SCALE_HEIGHT_M).exp();
        let q = 0.5 * RHO0 * pressure_ratio * (self.vx * self.vx + self.vh * self.vh);
        let speed = (self.vx * self.vx + self.vh * self.vh).sqrt();
        let drag = q * CD_A;
        let (drag_x, drag_h) = if speed > 0.0 {
            (-drag * self.vx / speed, -drag * self.vh / speed)
        } else {
            (0.0, 0.0)
        };
        let (thrust, angle) = self.thrust(pressure_ratio);
        let m = self.mass();
        let fx = (thrust * angle.sin() + drag_x) / m;
        let fh = (thrust * angle.cos() + drag_h) / m;
        let gravity = G0 * (EARTH_RADIUS_M / r) * (EARTH_RADIUS_M / r);
        Forces {
            ax: fx - self.vx * self.vh / r,
            ah: fh - gravity + self.vx * self.vx / r,
            sensed: (fx * fx + fh * fh).sqrt(),
            q,
        }
    }

    /// One semi-implicit Euler step: velocity first, then position with the new velocity,
    /// which keeps a coasting orbit from gaining energy step by step.
    fn step(&mut self) {
        let dt = STEP_MS as f64 / 1000.0;
        let f = self.forces();
        self.vx += f.ax * dt;
        self.vh += f.ah * dt;
        self.h += self.vh * dt;
        // Constant mass flow empties each stage exactly at its cut-off.
        if self.stage1_burning() {
            self.s1_prop -= (S1_WET_KG - S1_DRY_KG) * STEP_MS as f64 / MECO_MS as f64;
        }
        if self.stage2_burning() {
            let burn_ms = (SECO_MS - S2_IGNITION_MS) as f64;
            self.s2_prop -= (S2_WET_KG - S2_DRY_KG) * STEP_MS as f64 / burn_ms;
        }
        // Burning engines heat the bay towards ~180 °C within a minute or two; once off it
        // cools slowly (little convection up high).
        let (target, tau_s) = if self.stage1_burning() || self.stage2_burning() {
            (180.0, 90.0)
        } else {
            (15.0, 900.0)
        };
        self.temp_c += (target - self.temp_c) * dt / tau_s;
        self.t_ms += STEP_MS;
        if self.t_ms >= SEPARATION_MS {
            self.separated = true;
        }
        // A trajectory that comes back down stays on the ground rather than tunnelling.
        if self.h < 0.0 {
            self.h = 0.0;
            self.vx = 0.0;
            self.vh = 0.0;
        }
    }

    /// Steps the 10 ms grid up to the last grid point at or before `t_ms`.
    fn advance_to(&mut self, t_ms: i64) {
        while self.t_ms + STEP_MS <= t_ms {
            self.step();
        }
    }

    /// Noise-free value of every sensor kind, in [`KINDS`] order.
    fn truth(&self) -> [f64; K] {
        let f = self.forces();
        let chamber_bar = if self.stage1_burning() {
            97.0
        } else if self.stage2_burning() {
            93.0
        } else {
            0.0
        };
        // The tanks of the stage in charge: stage 1 until separation, then stage 2.
        let full = if self.separated {
            self.s2_prop / (S2_WET_KG - S2_DRY_KG)
        } else {
            self.s1_prop / (S1_WET_KG - S1_DRY_KG)
        };
        [
            self.h,
            (self.vx * self.vx + self.vh * self.vh).sqrt(),
            f.sensed,
            f.q,
            chamber_bar,
            self.temp_c,
            // Unusable residuals differ a little between oxidiser and fuel.
            0.8 + 99.2 * full,
            1.6 + 98.4 * full,
        ]
    }
}

/// Appends one reading as a JSON line `{"sensor":"..","ts":<int ms>,"value":<f64>,"unit":".."}\n`.
///
/// Strings are JSON-escaped. Values with at most three decimals (all generated ones) are
/// printed by a fast integer path, others in Rust's shortest round-trip form; a
/// non-finite value, which JSON cannot carry, is written as `null`.
pub fn write_json_line(out: &mut Vec<u8>, reading: &GeneratedReading<'_>) {
    out.extend_from_slice(b"{\"sensor\":\"");
    write_escaped(out, reading.sensor);
    out.extend_from_slice(b"\",\"ts\":");
    write_i64(out, reading.ts_ms);
    out.extend_from_slice(b",\"value\":");
    write_f64(out, reading.value);
    out.extend_from_slice(b",\"unit\":\"");
    write_escaped(out, reading.unit);
    out.extend_from_slice(b"\"}\n");
}

fn write_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Fast path: plain names need no escaping at all.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1F => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xF) as usize]);
            }
            // Multi-byte UTF-8 passes through unchanged; JSON allows it raw.
            _ => out.push(b),
        }
    }
}

fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    // Fast path for values that are exactly some integer / 1000: printing that decimal
    // parses back to the same f64, because both are the correctly rounded quotient.
    let millis = (v * 1000.0).round();
    if millis.abs() < 1e15 && millis / 1000.0 == v {
        let millis = millis as i64;
        if millis < 0 {
            out.push(b'-');
        }
        let abs = millis.unsigned_abs();
        write_u64(out, abs / 1000);
        out.push(b'.');
        let frac = abs % 1000;
        let digits = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let keep = if digits[2] != b'0' {
            3
        } else if digits[1] != b'0' {
            2
        } else {
            1
        };
        out.extend_from_slice(&digits[..keep]);
        return;
    }
    // Shortest round-trip digits with an exponent (`1.5e-7`): valid JSON, and short even
    // for huge magnitudes that some parsers reject as 300-digit integers.
    write!(out, "{v:e}").expect("writing to a Vec cannot fail");
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
    let count = match &args.topic {
        Some(topic) => {
            let publisher = Publisher::connect(&args.broker.target(topic))?;
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
            let count = generator.run(|reading| {
                line.clear();
                write_json_line(&mut line, reading);
                out.write_all(&line)
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> GenerateConfig {
        GenerateConfig {
            sensors: 64,
            hz: 10.0,
            duration_ms: 20_000,
            seed,
            launch_ms: 1_700_000_000_000,
        }
    }

    fn bytes(config: GenerateConfig) -> Vec<u8> {
        run_bytes(&mut Generator::new(config))
    }

    fn run_bytes(generator: &mut Generator) -> Vec<u8> {
        let mut out = Vec::new();
        generator
            .run(|r| {
                write_json_line(&mut out, r);
                Ok::<_, ()>(())
            })
            .unwrap();
        out
    }

    /// Noise-free (time s, state, truth) every 100 ms through T+600 s.
    fn flight() -> Vec<(f64, Vehicle, [f64; K])> {
        let mut v = Vehicle::new();
        (0..=6000)
            .map(|k| {
                v.advance_to(k * 100);
                (k as f64 / 10.0, v.clone(), v.truth())
            })
            .collect()
    }

    /// (time s, value) where sensor kind `kind` peaks.
    fn peak(flight: &[(f64, Vehicle, [f64; K])], kind: usize) -> (f64, f64) {
        let (t, _, v) = flight
            .iter()
            .max_by(|a, b| a.2[kind].total_cmp(&b.2[kind]))
            .unwrap();
        (*t, v[kind])
    }

    fn at(flight: &[(f64, Vehicle, [f64; K])], t_s: f64) -> &[f64; K] {
        &flight[(t_s * 10.0).round() as usize].2
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let a = bytes(config(7));
        assert!(!a.is_empty());
        assert_eq!(a, bytes(config(7)));
        assert_ne!(a, bytes(config(8)));
        // Replaying the same generator is also identical.
        let mut g = Generator::new(config(7));
        assert_eq!(run_bytes(&mut g), run_bytes(&mut g));
    }

    #[test]
    fn million_sensors_one_tick() {
        let mut g = Generator::new(GenerateConfig {
            sensors: 1_000_000,
            hz: 1.0,
            duration_ms: 1_000,
            seed: 1,
            launch_ms: 0,
        });
        let mut last = String::new();
        let count = g
            .run(|r| {
                if r.sensor.starts_with("rp1_tank_level.124999") {
                    last = r.sensor.to_owned();
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        // One tick, ~0.5 % dropped; held readings are flushed at the end.
        assert!((990_000..=1_000_000).contains(&count), "{count}");
        assert_eq!(last, "rp1_tank_level.124999");
    }

    #[test]
    fn dropouts_and_late_readings_happen() {
        let mut count = 0u64;
        let mut late = 0;
        let mut latest = std::collections::HashMap::new();
        let n = Generator::new(config(3))
            .run(|r| {
                count += 1;
                let prev = latest
                    .insert(r.sensor.to_owned(), r.ts_ms)
                    .unwrap_or(i64::MIN);
                late += usize::from(r.ts_ms < prev);
                Ok::<_, ()>(())
            })
            .unwrap();
        let ticks = 200 * 64;
        assert_eq!(n, count);
        assert!(n < ticks && n > ticks * 98 / 100, "{n}");
        assert!(late > 0);
    }

    #[test]
    fn emit_error_stops_the_run() {
        let mut calls = 0;
        let result = Generator::new(config(1)).run(|_| {
            calls += 1;
            if calls == 5 {
                Err("full")
            } else {
                Ok(())
            }
        });
        assert_eq!(result, Err("full"));
        assert_eq!(calls, 5);
    }

    #[test]
    fn ascent_is_plausible() {
        let flight = flight();
        let speed = |t: f64| at(&flight, t)[1];
        // Speed builds to MECO, sags while unpowered, then peaks at SECO.
        assert!(speed(162.0) > speed(150.0) && speed(162.0) > speed(171.0));
        let (t_top, top) = peak(&flight, 1);
        // The coast after SECO is a near-circular orbit: the speed barely changes.
        assert!((539.0..=541.0).contains(&t_top) || top - speed(540.0) < 2.0);
        assert!(speed(539.0) > speed(500.0) && speed(500.0) > speed(300.0));
        assert!((7_500.0..8_300.0).contains(&top), "top speed {top}");
        let (t_max_q, _) = peak(&flight, 3);
        assert!((50.0..=90.0).contains(&t_max_q), "max-Q at T+{t_max_q}");
        let meco_alt = at(&flight, 162.0)[0];
        assert!(
            (60_000.0..=90_000.0).contains(&meco_alt),
            "MECO altitude {meco_alt}"
        );
        // Coasting after SECO stays up.
        assert!(at(&flight, 600.0)[0] > 120_000.0);
        // Engines, heat and tanks follow the burns.
        assert_eq!(at(&flight, 100.0)[4], 97.0);
        assert_eq!(at(&flight, 168.0)[4], 0.0);
        assert_eq!(at(&flight, 300.0)[4], 93.0);
        assert!(at(&flight, 160.0)[5] > at(&flight, 10.0)[5] + 50.0);
        assert!(at(&flight, 100.0)[6] < at(&flight, 10.0)[6]);
        assert!(at(&flight, 170.0)[6] > 99.0 && at(&flight, 539.0)[6] < 3.0);
        assert!(flight
            .iter()
            .all(|(_, _, v)| v.iter().all(|x| x.is_finite())));
    }

    #[test]
    fn lines_parse_as_json() {
        let text = String::from_utf8(bytes(config(11))).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["sensor"].is_string() && v["unit"].is_string(), "{line}");
            assert!(v["ts"].is_i64() && v["value"].is_f64(), "{line}");
        }
    }

    #[test]
    fn write_json_line_escapes_and_round_trips() {
        for value in [
            0.0,
            -0.0,
            1.5,
            -0.001,
            123.456,
            1e-7,
            -2.5e300,
            0.1 + 0.2,
            f64::MAX,
        ] {
            let reading = GeneratedReading {
                sensor: "a\"b\\c\n\u{1}é",
                ts_ms: i64::MIN,
                value,
                unit: "m/s",
            };
            let mut out = Vec::new();
            write_json_line(&mut out, &reading);
            assert_eq!(out.last(), Some(&b'\n'));
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["sensor"], "a\"b\\c\n\u{1}é");
            assert_eq!(v["ts"], i64::MIN);
            assert_eq!(
                v["value"].as_f64(),
                Some(value),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
        let mut out = Vec::new();
        write_json_line(
            &mut out,
            &GeneratedReading {
                sensor: "s",
                ts_ms: 5,
                value: f64::NAN,
                unit: "",
            },
        );
        assert_eq!(
            out,
            b"{\"sensor\":\"s\",\"ts\":5,\"value\":null,\"unit\":\"\"}\n"
        );
    }
}
