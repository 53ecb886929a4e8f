//! The flight: a two-stage ascent integrated on a fixed 10 ms grid, from which every
//! sensor reads.

use super::K;

/// Integration step, ms. A fixed grid keeps stage events exact and the physics identical
/// whatever the sample rate.
pub(super) const STEP_MS: i64 = 10;
pub(super) const EARTH_RADIUS_M: f64 = 6_371_000.0;
pub(super) const G0: f64 = 9.81;
pub(super) const SCALE_HEIGHT_M: f64 = 8_500.0;
pub(super) const RHO0: f64 = 1.225;
pub(super) const CD_A: f64 = 0.3 * 10.5;

pub(super) const PAYLOAD_KG: f64 = 22_800.0;
pub(super) const S1_WET_KG: f64 = 420_000.0;
pub(super) const S1_DRY_KG: f64 = 25_600.0;
pub(super) const S1_THRUST_SL_N: f64 = 7.6e6;
pub(super) const S1_THRUST_VAC_N: f64 = 8.2e6;
pub(super) const S2_WET_KG: f64 = 110_000.0;
pub(super) const S2_DRY_KG: f64 = 4_000.0;
pub(super) const S2_THRUST_N: f64 = 0.98e6;
pub(super) const MECO_MS: i64 = 162_000;
pub(super) const SEPARATION_MS: i64 = 165_000;
pub(super) const S2_IGNITION_MS: i64 = 172_000;
pub(super) const SECO_MS: i64 = 540_000;
pub(super) const VERTICAL_MS: i64 = 10_000;
/// Thrust angle from vertical reached at MECO: near-horizontal, as a gravity turn ends.
pub(super) const PITCH_AT_MECO_RAD: f64 = 82.0 * std::f64::consts::PI / 180.0;
/// Stage 2 thrust elevation above the local horizontal at ignition and at SECO: lofted
/// first (stage 2 alone cannot yet hold altitude), then flat to build orbital speed. Tuned
/// so SECO lands near a ~200 km, ~7.9 km/s, level (vertical speed ~0) orbit.
pub(super) const S2_ELEVATION_START_RAD: f64 = 36.0 * std::f64::consts::PI / 180.0;
pub(super) const S2_ELEVATION_END_RAD: f64 = 0.0;

/// The shared flight state, integrated in a rotating-frame-free polar model: `vx` is the
/// horizontal and `vh` the vertical speed, and the curvature terms (`vx² / r`, `-vx·vh / r`)
/// let a coasting vehicle at orbital speed stay in orbit instead of flying off a flat Earth.
#[derive(Clone, Debug)]
pub(super) struct Vehicle {
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
pub(super) struct Forces {
    ax: f64,
    ah: f64,
    /// What an accelerometer reads: thrust and drag, not gravity.
    sensed: f64,
    q: f64,
}

impl Vehicle {
    pub(super) fn new() -> Vehicle {
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

    pub(super) fn mass(&self) -> f64 {
        let s1 = if self.separated {
            0.0
        } else {
            S1_DRY_KG + self.s1_prop
        };
        s1 + S2_DRY_KG + self.s2_prop + PAYLOAD_KG
    }

    pub(super) fn stage1_burning(&self) -> bool {
        self.t_ms < MECO_MS
    }

    pub(super) fn stage2_burning(&self) -> bool {
        (S2_IGNITION_MS..SECO_MS).contains(&self.t_ms)
    }

    /// Thrust (N) and its angle from the local vertical (rad).
    pub(super) fn thrust(&self, pressure_ratio: f64) -> (f64, f64) {
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

    pub(super) fn forces(&self) -> Forces {
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
    pub(super) fn step(&mut self) {
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
    pub(super) fn advance_to(&mut self, t_ms: i64) {
        while self.t_ms + STEP_MS <= t_ms {
            self.step();
        }
    }

    /// Noise-free value of every sensor kind, in [`KINDS`] order.
    pub(super) fn truth(&self) -> [f64; K] {
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
