//! The thermal rule, without I/O: what the reader found and last read (`Readings`) in,
//! a verdict out — whether the box takes work, how many slots, and the words for logs,
//! rejects and the status reply. Tested by feeding it readings; `sysfs` reads the real ones.
//!
//! Names: `L` is the limit, `M` the margin, `H` the hysteresis, `C` a zone's critical trip
//! minus the critical margin.
//! - `L` is `--max-temp`, else the lowest passive trip of the CPU zones, else their lowest hot
//!   trip, else there is none (only coolers and cpufreq can then throttle). `H` is `hyst_mc`,
//!   else the hysteresis of that trip, but at least 2 °C so a trip with hyst 0 cannot flap.
//! - CPU zones are those whose type contains `cpu` or `soc` (any case); when none does,
//!   every zone counts as one.
//! - A zone with `mode` `disabled` has its lowest passive (else hot) trip as a *hard* limit:
//!   nothing else will cool that zone, so we refuse work at the trip exactly, whether or not it
//!   is a CPU zone, and `--max-temp` can lower that limit but not raise it.
//! - A *sign* is a cpufreq cooling device at `cur_state > 0` or a policy whose
//!   `scaling_max_freq` is below its baseline (the first value read, raised whenever a higher
//!   one is read). *Calm* means no sign for `calm` (measured from the last sample that saw
//!   one).
//! - Each watched zone (CPU zones, and zones with a hard limit) is at one level, and the worst
//!   zone decides: `Over` (t ≥ L), `Warm` (L − M ≤ t < L), `Settling` (L − M − H ≤ t < L − M),
//!   `Clear` (t < L − M − H). Critical has its own levels: `Over` (t ≥ C), `Settling`
//!   (C − H ≤ t < C).
//!
//! ```text
//!  any state  --- some zone t >= C ------------------------------------> Critical
//!  Critical   --- every zone t < C - H: re-evaluated as Throttled ----> (below)
//!  any state  --- a sign, or level Over -----------------------------> Throttled
//!  Throttled  --- level Clear and calm -----------------------------> Ok
//!             (otherwise stays Throttled: Warm and Settling included, so it cannot flap)
//!  Ok         --- level Warm ---------------------------------------> Warm
//!             (Settling stays Ok)
//!  Warm       --- level Clear and calm -----------------------------> Ok
//!             (Settling stays Warm)
//! ```
//!
//! Verdicts: `Ok` with no readable CPU temperature is reported as `Unknown` (still accepting:
//! cpufreq and cooling devices decide alone); `enabled = false` is `Off`. While `Warm`,
//! `Rule::effective_slots` shrinks linearly from all slots at L − M to one slot just
//! below L.

use super::readings::{Readings, Trip, Zone};
use super::Settings;
use std::fmt;
use std::time::{Duration, Instant};

/// Upper bound of [`Rule::retry_after`].
const RETRY_MAX: Duration = Duration::from_secs(60);
/// [`Rule::retry_after`] while throttling is visible.
const RETRY_THROTTLED: Duration = Duration::from_secs(5);

/// What the box should do with work, as of the last sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThermalVerdict {
    /// Cool: all slots.
    Ok,
    /// In the warm band below the limit: fewer slots (`Rule::effective_slots`).
    Warm,
    /// Throttled, or not yet cooled down and calm: no new jobs; running jobs finish.
    Throttled,
    /// Near the critical trip: no new jobs, and running jobs should be stopped.
    Critical,
    /// No temperature readable and no cooling/cpufreq sign of throttling: all slots.
    Unknown,
    /// Thermal checks are switched off.
    Off,
}

impl ThermalVerdict {
    /// The word used in the status reply (`thermal=`) and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ThermalVerdict::Ok => "ok",
            ThermalVerdict::Warm => "warm",
            ThermalVerdict::Throttled => "throttled",
            ThermalVerdict::Critical => "critical",
            ThermalVerdict::Unknown => "unknown",
            ThermalVerdict::Off => "off",
        }
    }
}

impl fmt::Display for ThermalVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a limit comes from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BoundKind {
    MaxTemp,
    Passive,
    Hot,
}

/// A limit one zone is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    mc: i64,
    hyst_mc: i64,
    kind: BoundKind,
    /// From a zone whose `mode` is `disabled`.
    hard: bool,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            BoundKind::MaxTemp => "--max-temp",
            BoundKind::Passive => "passive trip",
            BoundKind::Hot => "hot trip",
        };
        write!(f, "{what} {} C", Deg(self.mc))?;
        if self.hard {
            f.write_str(" (zone mode disabled: hard limit)")?;
        }
        Ok(())
    }
}

/// m°C shown as °C with one decimal.
struct Deg(i64);

impl fmt::Display for Deg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0 as f64 / 1000.0)
    }
}

/// `cur_state`'s partner in messages: the number, or `?`.
struct MaxState(Option<u64>);

impl fmt::Display for MaxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(m) => write!(f, "{m}"),
            None => f.write_str("?"),
        }
    }
}

/// How close the worst zone is to its limit (ordered: worse is greater).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
enum Level {
    #[default]
    Clear,
    Settling,
    Warm,
    Over,
}

/// The zone closest to its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    zone: usize,
    bound: Bound,
    headroom_mc: i64,
}

/// What one sample saw, reduced to what the state machine needs. Indices point into the
/// readings' lists.
#[derive(Debug, Clone, Copy, Default)]
struct Observation {
    level: Level,
    crit: Level,
    binding: Option<Binding>,
    /// The zone that set `crit`, with its stop threshold (critical trip − margin).
    crit_zone: Option<(usize, i64)>,
    /// Hottest readable CPU zone.
    hottest: Option<usize>,
    /// Busiest readable cpufreq cooler (highest `cur/max`), active or not.
    cooler: Option<usize>,
    cooler_active: bool,
    /// First policy below its baseline.
    capped: Option<usize>,
}

impl Observation {
    fn sign(&self) -> bool {
        self.cooler_active || self.capped.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ok,
    Warm,
    Throttled,
    Critical,
}

/// One step of the state machine in the module doc.
fn next_state(state: State, level: Level, crit: Level, sign: bool, calm: bool) -> State {
    if crit == Level::Over || (state == State::Critical && crit == Level::Settling) {
        return State::Critical;
    }
    if sign || level == Level::Over {
        return State::Throttled;
    }
    match state {
        State::Critical | State::Throttled if level == Level::Clear && calm => State::Ok,
        State::Critical | State::Throttled => State::Throttled,
        State::Warm if level == Level::Clear && calm => State::Ok,
        State::Warm => State::Warm,
        State::Ok if level == Level::Warm => State::Warm,
        State::Ok => State::Ok,
    }
}

/// The state machine plus the clocks it needs.
#[derive(Debug)]
struct Machine {
    state: State,
    last: Instant,
    /// Last sample that saw a sign.
    last_sign: Option<Instant>,
    throttled: Duration,
}

impl Machine {
    fn new(now: Instant) -> Machine {
        Machine {
            state: State::Ok,
            last: now,
            last_sign: None,
            throttled: Duration::ZERO,
        }
    }

    /// Time since the last sign, `None` if there never was one.
    fn quiet_for(&self, now: Instant) -> Option<Duration> {
        self.last_sign.map(|t| now.saturating_duration_since(t))
    }

    fn step(&mut self, obs: &Observation, now: Instant, calm: Duration) {
        if matches!(self.state, State::Throttled | State::Critical) {
            self.throttled += now.saturating_duration_since(self.last);
        }
        self.last = now;
        if obs.sign() {
            self.last_sign = Some(now);
        }
        let calm_now = match self.quiet_for(now) {
            Some(quiet) => quiet >= calm,
            None => true,
        };
        self.state = next_state(self.state, obs.level, obs.crit, obs.sign(), calm_now);
    }
}

/// The rule: the settings, what was read, and the state it led to. See the module doc.
#[derive(Debug)]
pub struct Rule {
    settings: Settings,
    /// What the reader found and last read; [`Rule::step`] judges it.
    pub readings: Readings,
    /// `L` for the CPU zones.
    base: Option<Bound>,
    obs: Observation,
    machine: Machine,
}

impl Rule {
    /// A rule with nothing found yet, its clock at `now`.
    pub fn new(settings: Settings, now: Instant) -> Rule {
        Rule {
            settings,
            readings: Readings::default(),
            base: None,
            obs: Observation::default(),
            machine: Machine::new(now),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Takes what discovery found: marks the CPU zones and works out the limit `L`.
    pub fn found(&mut self, readings: Readings) {
        self.readings = readings;
        let any_cpu = self.any_cpu();
        for z in &mut self.readings.zones {
            z.cpu = !any_cpu || is_cpu_type(&z.label);
        }
        self.base = base_bound(&self.settings, &self.readings.zones);
    }

    fn any_cpu(&self) -> bool {
        self.readings.zones.iter().any(|z| is_cpu_type(&z.label))
    }

    /// Judges the readings as of `now` (with thermal checks off, only the clock moves).
    pub fn step(&mut self, now: Instant) {
        if !self.settings.enabled {
            self.machine.last = now;
            return;
        }
        self.follow_baselines();
        self.obs = self.observe();
        self.machine.step(&self.obs, now, self.settings.calm);
    }

    /// A policy's baseline is the first value read, raised whenever a higher one is read.
    fn follow_baselines(&mut self) {
        for p in &mut self.readings.policies {
            match (p.max_khz, p.baseline_khz) {
                (Some(v), None) => p.baseline_khz = Some(v),
                (Some(v), Some(b)) if v > b => {
                    log::info!(
                        "thermal: cpufreq {} scaling_max_freq rose to {v} kHz (baseline was {b} \
                         kHz): new baseline",
                        p.name
                    );
                    p.baseline_khz = Some(v);
                }
                _ => {}
            }
        }
    }

    /// When the last sample was judged.
    pub fn last_sample(&self) -> Instant {
        self.machine.last
    }

    /// What the box should do with work, as of the last sample.
    pub fn verdict(&self) -> ThermalVerdict {
        if !self.settings.enabled {
            return ThermalVerdict::Off;
        }
        match self.machine.state {
            State::Critical => ThermalVerdict::Critical,
            State::Throttled => ThermalVerdict::Throttled,
            State::Warm => ThermalVerdict::Warm,
            State::Ok if self.obs.hottest.is_none() => ThermalVerdict::Unknown,
            State::Ok => ThermalVerdict::Ok,
        }
    }

    /// May a new job start? (`Ok`, `Warm`, `Unknown`, `Off`.)
    pub fn accepts(&self) -> bool {
        !matches!(
            self.verdict(),
            ThermalVerdict::Throttled | ThermalVerdict::Critical
        )
    }

    /// How many of `slots` the box should fill now: all of them when `Ok`, `Unknown` or `Off`;
    /// none when `Throttled` or `Critical`; when `Warm`, all at L − M shrinking linearly to 1
    /// just below L (never 0).
    pub fn effective_slots(&self, slots: usize) -> usize {
        match self.verdict() {
            ThermalVerdict::Ok | ThermalVerdict::Unknown | ThermalVerdict::Off => slots,
            ThermalVerdict::Throttled | ThermalVerdict::Critical => 0,
            ThermalVerdict::Warm => {
                let margin = self.settings.margin_mc;
                let headroom = self.obs.binding.map_or(0, |b| b.headroom_mc);
                if slots <= 1 || margin <= 0 || headroom >= margin {
                    slots
                } else if headroom <= 0 {
                    1
                } else {
                    // Rounded, not floored: a 2-slot box keeps both for the first half of
                    // the band instead of halving its work the moment it turns warm.
                    let extra = ((slots - 1) as u128 * headroom as u128 + margin as u128 / 2)
                        / margin as u128;
                    1 + extra as usize
                }
            }
        }
    }

    /// Rough time until the box may accept again: 1 s when it accepts (a full warm box frees a
    /// slot soon); when throttled, 5 s plus 1 s per °C above the "ok" threshold, at least what
    /// is left of the calm period, at most 60 s.
    pub fn retry_after(&self) -> Duration {
        if self.accepts() {
            return Duration::from_secs(1);
        }
        let mut wait = Duration::from_secs(1);
        if self.obs.sign() {
            wait = RETRY_THROTTLED;
        }
        if let Some(b) = self.obs.binding {
            let above_ok = self.settings.margin_mc.max(0) + b.bound.hyst_mc - b.headroom_mc;
            if above_ok > 0 {
                // 1 s per °C is 1 ms per m°C.
                wait = wait.max(RETRY_THROTTLED) + Duration::from_millis(above_ok as u64);
            }
        }
        if let Some(quiet) = self.machine.quiet_for(self.machine.last) {
            wait = wait.max(self.settings.calm.saturating_sub(quiet));
        }
        wait.min(RETRY_MAX)
    }

    /// Temperature of the hottest readable CPU zone (m°C).
    pub fn temp_mc(&self) -> Option<i64> {
        self.temp_of(self.obs.hottest)
    }

    /// The limit of the zone closest to its limit (the CPU limit `L` unless a disabled zone's
    /// hard trip is closer); `L` itself when no temperature is readable.
    pub fn limit_mc(&self) -> Option<i64> {
        if !self.settings.enabled {
            return None;
        }
        match self.obs.binding {
            Some(b) => Some(b.bound.mc),
            None => self.base.map(|b| b.mc),
        }
    }

    /// Limit − temperature of the zone closest to its limit (m°C; negative when over).
    pub fn headroom_mc(&self) -> Option<i64> {
        self.obs.binding.map(|b| b.headroom_mc)
    }
}

// ---- the words: logs, reject texts, the status reply ----

impl Rule {
    /// One line for logs and reject texts, e.g.
    /// `throttled: cpu-thermal 81.2 C >= passive trip 80.0 C`.
    pub fn describe(&self) -> String {
        let v = self.verdict();
        match v {
            ThermalVerdict::Off => "off: thermal checks disabled".to_string(),
            ThermalVerdict::Unknown => format!(
                "unknown: no readable CPU temperature under {}; no cooling device or cpufreq cap \
                 active",
                self.settings.thermal_root.display()
            ),
            ThermalVerdict::Ok | ThermalVerdict::Warm => format!("{v}: {}", self.headroom()),
            ThermalVerdict::Critical => self.critical_reason(),
            ThermalVerdict::Throttled => format!("throttled: {}", self.throttle_reason()),
        }
    }

    /// How far the zone closest to its limit is from it.
    fn headroom(&self) -> String {
        let zones = &self.readings.zones;
        match (self.obs.binding, self.obs.hottest) {
            (Some(b), _) => {
                let t = b.bound.mc - b.headroom_mc;
                format!(
                    "{} {} C, {} C below {}",
                    zones[b.zone].label,
                    Deg(t),
                    Deg(b.headroom_mc),
                    b.bound
                )
            }
            (None, Some(i)) => format!(
                "{} {} C, no passive or hot trip and no --max-temp",
                zones[i].label,
                Deg(zones[i].temp_mc.unwrap_or(0))
            ),
            (None, None) => "no readable temperature".to_string(),
        }
    }

    fn critical_reason(&self) -> String {
        let zones = &self.readings.zones;
        match self.obs.crit_zone {
            Some((i, stop)) if self.obs.crit == Level::Over => format!(
                "critical: {} {} C >= critical trip {} C - {} C",
                zones[i].label,
                Deg(zones[i].temp_mc.unwrap_or(0)),
                Deg(stop + self.settings.crit_margin_mc),
                Deg(self.settings.crit_margin_mc)
            ),
            Some((i, stop)) => format!(
                "critical: {} {} C, critical until below {} C",
                zones[i].label,
                Deg(zones[i].temp_mc.unwrap_or(0)),
                Deg(stop - self.crit_of(&zones[i]).map_or(0, |(_, h)| h))
            ),
            None => "critical".to_string(),
        }
    }

    fn throttle_reason(&self) -> String {
        let o = &self.obs;
        if let (true, Some(i)) = (o.cooler_active, o.cooler) {
            let c = &self.readings.coolers[i];
            return format!(
                "cooling device {} at state {}/{}",
                c.label,
                c.cur_state.unwrap_or(0),
                MaxState(c.max_state)
            );
        }
        if let Some(i) = o.capped {
            let p = &self.readings.policies[i];
            return format!(
                "cpufreq {} scaling_max_freq {} kHz < {} kHz baseline",
                p.name,
                p.max_khz.unwrap_or(0),
                p.baseline_khz.unwrap_or(0)
            );
        }
        if let Some(b) = o.binding {
            let z = &self.readings.zones[b.zone];
            let t = b.bound.mc - b.headroom_mc;
            if o.level == Level::Over {
                return format!("{} {} C >= {}", z.label, Deg(t), b.bound);
            }
            if o.level > Level::Clear {
                let ok_below = b.bound.mc - self.settings.margin_mc.max(0) - b.bound.hyst_mc;
                return format!(
                    "cooling down, {} {} C, ok below {} C",
                    z.label,
                    Deg(t),
                    Deg(ok_below)
                );
            }
        }
        let quiet = self
            .machine
            .quiet_for(self.machine.last)
            .unwrap_or_default();
        format!(
            "throttling ended {:.1} s ago, waiting for {:.1} s of calm",
            quiet.as_secs_f64(),
            self.settings.calm.as_secs_f64()
        )
    }

    /// Key/values for the status reply: `thermal`, then when known `temp_c`, `limit_c`,
    /// `headroom_c`, then `throttled_s` (cumulative), `cooling` (cur/max of the busiest cpufreq
    /// cooler, when there is one) and `freq_cap` (`yes`/`no`). `Off` gives `thermal=off` only.
    pub fn status(&self, out: &mut Vec<(String, String)>) {
        let v = self.verdict();
        out.push(("thermal".to_string(), v.as_str().to_string()));
        if v == ThermalVerdict::Off {
            return;
        }
        let mut deg = |key: &str, mc: Option<i64>| {
            if let Some(mc) = mc {
                out.push((key.to_string(), Deg(mc).to_string()));
            }
        };
        deg("temp_c", self.temp_mc());
        deg("limit_c", self.limit_mc());
        deg("headroom_c", self.headroom_mc());
        out.push((
            "throttled_s".to_string(),
            self.machine.throttled.as_secs().to_string(),
        ));
        if let Some(i) = self.obs.cooler {
            let c = &self.readings.coolers[i];
            out.push((
                "cooling".to_string(),
                format!("{}/{}", c.cur_state.unwrap_or(0), MaxState(c.max_state)),
            ));
        }
        let cap = if self.obs.capped.is_some() {
            "yes"
        } else {
            "no"
        };
        out.push(("freq_cap".to_string(), cap.to_string()));
    }

    /// The "what is watched" line: zones, the limit, coolers, policies.
    pub fn watching(&self) -> String {
        use fmt::Write as _;
        let zones = &self.readings.zones;
        let mut line = String::from("thermal: ");
        let names = |cpu: bool| {
            let v: Vec<String> = zones
                .iter()
                .filter(|z| z.cpu == cpu)
                .map(|z| format!("{} ({})", z.label, z.name))
                .collect();
            v.join(", ")
        };
        if zones.is_empty() {
            line.push_str("no thermal zones");
        } else if self.any_cpu() {
            let _ = write!(line, "CPU zones {}", names(true));
        } else {
            let _ = write!(
                line,
                "no zone type has cpu or soc, watching all: {}",
                names(true)
            );
        }
        match self.base {
            Some(b) => {
                let _ = write!(
                    line,
                    "; limit = {b}, margin {} C, hyst {} C",
                    Deg(self.settings.margin_mc),
                    Deg(b.hyst_mc)
                );
            }
            None => line.push_str("; no limit (no passive or hot trip, no --max-temp)"),
        }
        let coolers: Vec<&str> = self
            .readings
            .coolers
            .iter()
            .map(|c| c.label.as_str())
            .collect();
        let policies: Vec<&str> = self
            .readings
            .policies
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let _ = write!(
            line,
            "; cpufreq coolers [{}]; cpufreq policies [{}]",
            coolers.join(", "),
            policies.join(", ")
        );
        line
    }
}

// ---- the observation: what the last readings mean ----

impl Rule {
    /// The limit zone `z` is held to now: `L` for a CPU zone, its own trip while disabled,
    /// the lower of the two when both apply.
    fn zone_bound(&self, z: &Zone) -> Option<Bound> {
        let soft = if z.cpu { self.base } else { None };
        let hard = if z.disabled { self.own_bound(z) } else { None };
        match (soft, hard) {
            (Some(s), Some(h)) => Some(if h.mc <= s.mc { h } else { s }),
            (s, h) => s.or(h),
        }
    }

    /// Zone `z`'s lowest passive (else hot) trip as a hard limit, for while it is disabled.
    fn own_bound(&self, z: &Zone) -> Option<Bound> {
        let (t, kind) = match (z.passive, z.hot) {
            (Some(t), _) => (t, BoundKind::Passive),
            (None, Some(t)) => (t, BoundKind::Hot),
            (None, None) => return None,
        };
        Some(Bound {
            mc: t.mc,
            hyst_mc: self.settings.hyst(t.hyst_mc),
            kind,
            hard: true,
        })
    }

    /// Zone `z`'s lowest critical trip and the hysteresis to leave it.
    fn crit_of(&self, z: &Zone) -> Option<(i64, i64)> {
        z.critical.map(|t| (t.mc, self.settings.hyst(t.hyst_mc)))
    }

    fn observe(&self) -> Observation {
        let mut o = Observation::default();
        for (i, z) in self.readings.zones.iter().enumerate() {
            let Some(t) = z.temp_mc else { continue };
            if z.cpu && self.temp_of(o.hottest).map_or(true, |h| t > h) {
                o.hottest = Some(i);
            }
            self.observe_limit(&mut o, i, z, t);
            self.observe_critical(&mut o, i, z, t);
        }
        self.observe_coolers(&mut o);
        o.capped = self
            .readings
            .policies
            .iter()
            .position(|p| match (p.max_khz, p.baseline_khz) {
                (Some(v), Some(b)) => v < b,
                _ => false,
            });
        o
    }

    /// Zone `i` (`z`, at `t`) against its limit: the level, and whether it binds.
    fn observe_limit(&self, o: &mut Observation, i: usize, z: &Zone, t: i64) {
        let Some(bound) = self.zone_bound(z) else {
            return;
        };
        let margin = self.settings.margin_mc.max(0);
        o.level = o.level.max(level_of(t, bound.mc, margin, bound.hyst_mc));
        let headroom_mc = bound.mc - t;
        if o.binding.map_or(true, |b| headroom_mc < b.headroom_mc) {
            o.binding = Some(Binding {
                zone: i,
                bound,
                headroom_mc,
            });
        }
    }

    /// Zone `i` (`z`, at `t`) against its critical trip, if it is watched.
    fn observe_critical(&self, o: &mut Observation, i: usize, z: &Zone, t: i64) {
        let (true, Some((crit, hyst))) = (z.cpu || z.disabled, self.crit_of(z)) else {
            return;
        };
        let stop = crit - self.settings.crit_margin_mc;
        let level = if t >= stop {
            Level::Over
        } else if t >= stop - hyst {
            Level::Settling
        } else {
            Level::Clear
        };
        if o.crit_zone.is_none() || level > o.crit {
            o.crit = level;
            o.crit_zone = Some((i, stop));
        }
    }

    /// Whether a cpufreq cooler is active, and the busiest.
    fn observe_coolers(&self, o: &mut Observation) {
        let mut busiest: Option<u128> = None;
        for (i, c) in self.readings.coolers.iter().enumerate() {
            let Some(cur) = c.cur_state else { continue };
            o.cooler_active |= cur > 0;
            let max = c.max_state.unwrap_or(cur).max(1);
            let load = u128::from(cur) * 1_000_000 / u128::from(max);
            if busiest.map_or(true, |b| load > b) {
                busiest = Some(load);
                o.cooler = Some(i);
            }
        }
    }

    fn temp_of(&self, zone: Option<usize>) -> Option<i64> {
        zone.and_then(|i| self.readings.zones[i].temp_mc)
    }
}

fn level_of(t: i64, limit: i64, margin: i64, hyst: i64) -> Level {
    if t >= limit {
        Level::Over
    } else if t >= limit - margin {
        Level::Warm
    } else if t >= limit - margin - hyst {
        Level::Settling
    } else {
        Level::Clear
    }
}

fn is_cpu_type(label: &str) -> bool {
    let l = label.as_bytes();
    let has = |w: &[u8]| l.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w));
    has(b"cpu") || has(b"soc")
}

/// `L`: `--max-temp`, else the lowest passive trip of the CPU zones, else their lowest hot trip.
fn base_bound(s: &Settings, zones: &[Zone]) -> Option<Bound> {
    let lowest = |pick: fn(&Zone) -> Option<Trip>| {
        zones
            .iter()
            .filter(|z| z.cpu)
            .filter_map(pick)
            .min_by_key(|t| t.mc)
    };
    let trip = match lowest(|z| z.passive) {
        Some(t) => Some((t, BoundKind::Passive)),
        None => lowest(|z| z.hot).map(|t| (t, BoundKind::Hot)),
    };
    let hyst_mc = s.hyst(trip.and_then(|(t, _)| t.hyst_mc));
    match (s.max_temp_mc, trip) {
        (Some(mc), _) => Some(Bound {
            mc,
            hyst_mc,
            kind: BoundKind::MaxTemp,
            hard: false,
        }),
        (None, Some((t, kind))) => Some(Bound {
            mc: t.mc,
            hyst_mc,
            kind,
            hard: false,
        }),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::readings::{Cooler, Policy, TripKind};
    use super::*;
    use TripKind::{Critical, Hot, Passive};

    /// m°C from °C.
    fn mc(celsius: f64) -> i64 {
        (celsius * 1000.0).round() as i64
    }

    /// Zone `thermal_zone<n>` of type `label` at `celsius`, with trips (kind, °C, hyst °C).
    fn zone(n: usize, label: &str, celsius: f64, trips: &[(TripKind, f64, Option<f64>)]) -> Zone {
        let mut z = Zone::new(format!("thermal_zone{n}"), label.into());
        z.temp_mc = Some(mc(celsius));
        for &(kind, c, hyst) in trips {
            let trip = Trip {
                mc: mc(c),
                hyst_mc: hyst.map(mc),
            };
            z.add_trip(kind, trip);
        }
        z
    }

    fn cooler(label: &str, max_state: u64) -> Cooler {
        Cooler {
            label: label.into(),
            max_state: Some(max_state),
            cur_state: Some(0),
        }
    }

    /// A mainline Amlogic GX box (S905X) at `celsius`, as the reader finds it: passive 80 °C,
    /// hot 90 °C, critical 110 °C, hyst 2 °C each, one cluster cooler, one cpufreq policy
    /// capped by Armbian at 1512 MHz.
    fn amlogic(celsius: f64) -> Readings {
        let trips = [
            (Passive, 80.0, Some(2.0)),
            (Hot, 90.0, Some(2.0)),
            (Critical, 110.0, Some(2.0)),
        ];
        Readings {
            zones: vec![zone(0, "cpu-thermal", celsius, &trips)],
            coolers: vec![cooler("thermal-cpufreq-0", 6)],
            policies: vec![Policy {
                name: "policy0".into(),
                baseline_khz: None,
                max_khz: Some(1_512_000),
            }],
        }
    }

    /// `lib.sh make_thermal_tree` at `celsius`, with the bench's defaults (trip 75, crit 95,
    /// hyst 5, max_state 4); no cpufreq policy.
    fn bench(celsius: f64) -> Readings {
        let trips = [(Passive, 75.0, Some(5.0)), (Critical, 95.0, Some(0.0))];
        Readings {
            zones: vec![zone(0, "cpu-thermal", celsius, &trips)],
            coolers: vec![cooler("cpufreq-cpu0", 4)],
            policies: Vec::new(),
        }
    }

    /// The rule of a box under test, and when it started.
    struct Fake {
        rule: Rule,
        t0: Instant,
    }

    impl Fake {
        /// The rule once discovery found `readings` and the first sample judged them, as
        /// `Thermal::new` leaves it.
        fn new(readings: Readings, settings: Settings) -> Fake {
            let t0 = Instant::now();
            let mut rule = Rule::new(settings, t0);
            rule.found(readings);
            rule.step(t0);
            Fake { rule, t0 }
        }

        fn temp(&mut self, celsius: f64) {
            self.rule.readings.zones[0].temp_mc = Some(mc(celsius));
        }

        fn cooler(&mut self, state: u64) {
            self.rule.readings.coolers[0].cur_state = Some(state);
        }

        fn freq(&mut self, khz: u64) {
            self.rule.readings.policies[0].max_khz = Some(khz);
        }

        /// Judges the readings `secs` after the start.
        fn at(&mut self, secs: f64) {
            self.rule.step(self.t0 + Duration::from_secs_f64(secs));
        }

        fn verdict(&self) -> ThermalVerdict {
            self.rule.verdict()
        }

        fn describe(&self) -> String {
            self.rule.describe()
        }

        fn status(&self) -> Vec<(String, String)> {
            let mut v = Vec::new();
            self.rule.status(&mut v);
            v
        }

        fn status_value(&self, key: &str) -> Option<String> {
            self.status()
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
        }
    }

    fn defaults() -> Settings {
        Settings::defaults()
    }

    use ThermalVerdict as V;

    #[test]
    fn above_the_passive_trip_is_throttled() {
        let mut b = Fake::new(amlogic(52.0), defaults());
        assert_eq!(b.verdict(), V::Ok);
        assert_eq!(b.rule.limit_mc(), Some(80_000));
        b.temp(81.2);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Throttled);
        assert!(!b.rule.accepts());
        assert_eq!(b.rule.effective_slots(4), 0);
        assert_eq!(
            b.describe(),
            "throttled: cpu-thermal 81.2 C >= passive trip 80.0 C"
        );
        assert_eq!(b.rule.headroom_mc(), Some(-1_200));

        let mut b = Fake::new(bench(40.0), defaults());
        assert_eq!(b.verdict(), V::Ok);
        b.temp(75.0);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Throttled);
    }

    #[test]
    fn busy_cooler_below_the_trip_is_throttled() {
        let mut b = Fake::new(amlogic(52.0), defaults());
        b.temp(60.0);
        b.cooler(2);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Throttled);
        assert_eq!(
            b.describe(),
            "throttled: cooling device thermal-cpufreq-0 at state 2/6"
        );
        assert_eq!(b.status_value("cooling").as_deref(), Some("2/6"));

        let mut b = Fake::new(bench(40.0), defaults());
        b.cooler(3);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Throttled);
        assert_eq!(
            b.describe(),
            "throttled: cooling device cpufreq-cpu0 at state 3/4"
        );
    }

    #[test]
    fn lowered_scaling_max_freq_is_throttled_and_baseline_only_rises() {
        let mut b = Fake::new(amlogic(52.0), defaults());
        assert_eq!(b.status_value("freq_cap").as_deref(), Some("no"));
        b.freq(1_200_000);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Throttled);
        assert_eq!(b.status_value("freq_cap").as_deref(), Some("yes"));
        assert_eq!(
            b.describe(),
            "throttled: cpufreq policy0 scaling_max_freq 1200000 kHz < 1512000 kHz baseline"
        );
        // Cap lifted: calm (3 s from the last sample that saw it) before ok.
        b.freq(1_512_000);
        b.at(2.0);
        assert_eq!(b.verdict(), V::Throttled);
        b.at(3.9);
        assert_eq!(b.verdict(), V::Throttled);
        b.at(4.0);
        assert_eq!(b.verdict(), V::Ok);
        // Higher than the baseline: new baseline, not a problem.
        b.freq(1_800_000);
        b.at(5.0);
        assert_eq!(b.verdict(), V::Ok);
        // Back to the old value is now below the new baseline.
        b.freq(1_512_000);
        b.at(6.0);
        assert_eq!(b.verdict(), V::Throttled);
    }

    #[test]
    fn ok_again_only_below_limit_minus_margin_minus_hyst_no_flapping() {
        // Amlogic: L 80, M 5, H 2: warm from 75, ok again below 73.
        let mut b = Fake::new(amlogic(52.0), defaults());
        let steps = [
            (60.0, V::Ok),
            (74.0, V::Ok),
            (75.0, V::Warm),
            (79.9, V::Warm),
            (80.0, V::Throttled),
            (79.9, V::Throttled),
            (80.1, V::Throttled),
            (77.0, V::Throttled),
            (75.0, V::Throttled),
            (74.9, V::Throttled),
            (73.0, V::Throttled),
            (72.9, V::Ok),
            (74.9, V::Ok),
            (75.0, V::Warm),
            (73.5, V::Warm),
            (73.0, V::Warm),
            (72.9, V::Ok),
        ];
        for (i, (c, want)) in steps.iter().enumerate() {
            b.temp(*c);
            b.at(1.0 + i as f64);
            assert_eq!(b.verdict(), *want, "step {i} at {c} C: {}", b.describe());
        }
        b.temp(74.0);
        b.at(30.0);
        b.temp(80.0);
        b.at(31.0);
        assert!(b.describe().starts_with("throttled: cpu-thermal 80.0 C"));
        b.temp(76.0);
        b.at(32.0);
        assert_eq!(
            b.describe(),
            "throttled: cooling down, cpu-thermal 76.0 C, ok below 73.0 C"
        );

        // Oscillating around the trip: one trip, then it stays throttled.
        let mut b = Fake::new(amlogic(60.0), defaults());
        let mut changes = 0;
        let mut last = b.verdict();
        for i in 0..200 {
            b.temp(if i % 2 == 0 { 79.9 } else { 80.0 });
            b.at(1.0 + f64::from(i));
            if b.verdict() != last {
                changes += 1;
                last = b.verdict();
            }
        }
        assert_eq!(changes, 2, "ok -> warm -> throttled, then no flapping");
        assert_eq!(b.verdict(), V::Throttled);

        // The bench's hyst (5 C) is used: trip 75, ok below 65; the heater recovers below
        // 70, we stay out longer.
        let mut b = Fake::new(bench(40.0), defaults());
        for (i, (c, want)) in [
            (76.0, V::Throttled),
            (69.0, V::Throttled),
            (65.0, V::Throttled),
            (64.9, V::Ok),
        ]
        .iter()
        .enumerate()
        {
            b.temp(*c);
            b.at(1.0 + i as f64);
            assert_eq!(b.verdict(), *want, "bench at {c} C");
        }
    }

    #[test]
    fn cooling_devices_must_stay_idle_for_the_calm_period() {
        let mut b = Fake::new(bench(40.0), defaults());
        b.temp(50.0);
        b.cooler(1);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Throttled);
        assert_eq!(b.rule.retry_after(), Duration::from_secs(5));
        b.cooler(0);
        b.at(2.0);
        assert_eq!(b.verdict(), V::Throttled);
        assert!(b.describe().contains("calm"), "{}", b.describe());
        assert_eq!(b.rule.retry_after(), Duration::from_secs(2));
        // A second burst restarts the calm period.
        b.cooler(1);
        b.at(3.0);
        b.cooler(0);
        b.at(4.0);
        b.at(5.9);
        assert_eq!(b.verdict(), V::Throttled);
        b.at(6.0);
        assert_eq!(b.verdict(), V::Ok);

        // A longer calm setting.
        let settings = Settings {
            calm: Duration::from_secs(10),
            ..defaults()
        };
        let mut b = Fake::new(bench(50.0), settings);
        b.cooler(2);
        b.at(1.0);
        b.cooler(0);
        for s in 2..11 {
            b.at(f64::from(s));
            assert_eq!(b.verdict(), V::Throttled, "at {s} s");
        }
        b.at(11.0);
        assert_eq!(b.verdict(), V::Ok);
    }

    #[test]
    fn warm_band_shrinks_slots_monotonically_and_never_to_zero() {
        let mut b = Fake::new(amlogic(52.0), defaults());
        for slots in [1usize, 2, 4, 8, 16] {
            let mut prev = slots;
            let mut seen_warm = false;
            // 74.00 .. 79.99 in steps of 0.01 C, each a later sample.
            for (i, t) in (74_000..80_000).step_by(10).enumerate() {
                b.rule.readings.zones[0].temp_mc = Some(t);
                b.at(1.0 + i as f64);
                let e = b.rule.effective_slots(slots);
                if t < 75_000 {
                    assert_eq!(b.verdict(), V::Ok);
                    assert_eq!(e, slots);
                    continue;
                }
                seen_warm = true;
                assert_eq!(b.verdict(), V::Warm, "at {t}");
                assert!(b.rule.accepts());
                assert!(
                    e >= 1 && e <= prev,
                    "{slots} slots at {t}: {e} after {prev}"
                );
                if t == 75_000 {
                    assert_eq!(e, slots, "full slots at limit - margin");
                }
                prev = e;
            }
            assert!(seen_warm);
            assert_eq!(prev, 1, "one slot just below the limit");
            b.temp(80.0);
            b.at(10_000.0);
            assert_eq!(b.rule.effective_slots(slots), 0);
            b.temp(50.0);
            b.at(10_001.0);
            assert_eq!(b.verdict(), V::Ok);
            assert_eq!(b.rule.effective_slots(slots), slots);
        }
        b.temp(77.5);
        b.at(20_000.0);
        assert_eq!(b.rule.effective_slots(9), 5, "half way: 1 + 8 * 2.5/5");
        // A 2-slot box keeps both for the first half of the band.
        b.temp(77.0);
        b.at(20_001.0);
        assert_eq!(b.rule.effective_slots(2), 2, "3 C of headroom");
        b.temp(78.0);
        b.at(20_002.0);
        assert_eq!(b.rule.effective_slots(2), 1, "2 C of headroom");
        b.temp(77.5);
        b.at(20_003.0);
        assert_eq!(b.rule.retry_after(), Duration::from_secs(1));
        assert_eq!(
            b.describe(),
            "warm: cpu-thermal 77.5 C, 2.5 C below passive trip 80.0 C"
        );
    }

    #[test]
    fn near_the_critical_trip_running_jobs_stop() {
        let mut b = Fake::new(amlogic(52.0), defaults());
        for (i, (c, want)) in [
            (99.9, V::Throttled),
            (100.0, V::Critical),
            (105.0, V::Critical),
            (98.0, V::Critical),
            (97.9, V::Throttled),
            (100.0, V::Critical),
            (98.0, V::Critical),
            (97.9, V::Throttled),
            (73.0, V::Throttled),
            (72.0, V::Ok),
        ]
        .iter()
        .enumerate()
        {
            b.temp(*c);
            b.at(1.0 + i as f64);
            assert_eq!(b.verdict(), *want, "at {c} C");
            if *want == V::Critical {
                assert!(!b.rule.accepts());
                assert_eq!(b.rule.effective_slots(4), 0);
                assert_eq!(b.status_value("thermal").as_deref(), Some("critical"));
            }
            if i == 3 {
                assert_eq!(
                    b.describe(),
                    "critical: cpu-thermal 98.0 C, critical until below 98.0 C"
                );
            }
            if *c == 100.0 {
                assert_eq!(
                    b.describe(),
                    "critical: cpu-thermal 100.0 C >= critical trip 110.0 C - 10.0 C"
                );
                assert_eq!(b.rule.retry_after(), Duration::from_secs(32));
            }
        }

        // The bench: critical 95, so jobs stop at 85 (its hyst is 0: 2 C is used).
        let mut b = Fake::new(bench(40.0), defaults());
        b.temp(85.0);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Critical);
        b.temp(83.0);
        b.at(2.0);
        assert_eq!(b.verdict(), V::Critical);
        b.temp(82.9);
        b.at(3.0);
        assert_eq!(b.verdict(), V::Throttled);
    }

    #[test]
    fn a_disabled_zone_makes_its_trip_a_hard_limit() {
        let raised = Settings {
            max_temp_mc: Some(85_000),
            ..defaults()
        };
        let disabled = |mut r: Readings| {
            r.zones[0].disabled = true;
            r
        };
        // --max-temp cannot raise a disabled zone's trip: refused at 80.0 exactly.
        let mut b = Fake::new(disabled(amlogic(52.0)), raised.clone());
        b.temp(79.9);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Warm);
        b.temp(80.0);
        b.at(2.0);
        assert_eq!(b.verdict(), V::Throttled);
        assert_eq!(b.rule.limit_mc(), Some(80_000));
        assert_eq!(
            b.describe(),
            "throttled: cpu-thermal 80.0 C >= passive trip 80.0 C (zone mode disabled: hard limit)"
        );
        // Enabled again: the override applies, 80.0 is at the bottom of its warm band.
        let b = Fake::new(amlogic(80.0), raised.clone());
        assert_eq!(b.verdict(), V::Warm);
        assert_eq!(b.rule.effective_slots(4), 4);
        assert_eq!(b.rule.limit_mc(), Some(85_000));
        // ... but it can lower it.
        let lowered = Settings {
            max_temp_mc: Some(75_000),
            ..defaults()
        };
        let b = Fake::new(disabled(amlogic(80.0)), lowered);
        assert_eq!(b.verdict(), V::Throttled);
        assert!(
            b.describe().ends_with(">= --max-temp 75.0 C"),
            "{}",
            b.describe()
        );

        // A disabled zone counts even when it is not a CPU zone.
        let mut r = amlogic(50.0);
        let mut ddr = zone(1, "ddr-thermal", 69.0, &[(Passive, 70.0, None)]);
        ddr.disabled = true;
        r.zones.push(ddr);
        let mut b = Fake::new(r, defaults());
        assert_eq!(b.verdict(), V::Warm);
        assert_eq!(b.rule.temp_mc(), Some(50_000), "temp is the CPU zone's");
        b.rule.readings.zones[1].temp_mc = Some(70_000);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Throttled);
        assert!(b
            .describe()
            .starts_with("throttled: ddr-thermal 70.0 C >= passive trip 70.0"));
        b.rule.readings.zones[1].disabled = false;
        b.at(2.0);
        assert_eq!(b.verdict(), V::Ok, "an enabled non-CPU zone is not watched");
    }

    #[test]
    fn no_zones_is_unknown_but_a_busy_cooler_still_throttles() {
        let r = Readings {
            coolers: vec![cooler("cpufreq-cpu0", 4)],
            ..Readings::default()
        };
        let mut b = Fake::new(r, defaults());
        assert_eq!(b.verdict(), V::Unknown);
        assert!(b.rule.accepts());
        assert_eq!(b.rule.effective_slots(4), 4);
        assert_eq!(b.rule.temp_mc(), None);
        assert_eq!(b.rule.limit_mc(), None);
        assert_eq!(
            b.status(),
            [
                ("thermal", "unknown"),
                ("throttled_s", "0"),
                ("cooling", "0/4"),
                ("freq_cap", "no")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        b.cooler(2);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Throttled);
        b.cooler(0);
        b.at(2.0);
        assert_eq!(b.verdict(), V::Throttled);
        b.at(4.0);
        assert_eq!(b.verdict(), V::Unknown);
        assert_eq!(b.status_value("throttled_s").as_deref(), Some("3"));

        // No thermal zone or cooler at all: cpufreq alone decides.
        let r = Readings {
            zones: Vec::new(),
            coolers: Vec::new(),
            ..amlogic(52.0)
        };
        let mut b = Fake::new(r, defaults());
        assert_eq!(b.verdict(), V::Unknown);
        assert!(b
            .describe()
            .starts_with("unknown: no readable CPU temperature under "));
        b.freq(1_000_000);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Throttled);
    }

    #[test]
    fn an_unreadable_temperature_is_unknown() {
        let mut r = amlogic(52.0);
        r.zones[0].temp_mc = None;
        r.coolers[0].cur_state = None;
        let mut b = Fake::new(r, defaults());
        assert_eq!(b.verdict(), V::Unknown);
        assert_eq!(b.rule.temp_mc(), None);
        assert_eq!(b.rule.headroom_mc(), None);
        assert_eq!(b.rule.limit_mc(), Some(80_000), "the trip is still known");
        // Readable again: back to normal; an unreadable cooler is no sign.
        b.temp(70.0);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Ok);
        assert_eq!(b.rule.temp_mc(), Some(70_000));
    }

    #[test]
    fn without_a_trips_hysteresis_the_default_applies() {
        let trips = [
            (Passive, 80.0, None),
            (Hot, 90.0, None),
            (Critical, 110.0, None),
        ];
        let no_hyst = || Readings {
            zones: vec![zone(0, "cpu-thermal", 52.0, &trips)],
            ..amlogic(52.0)
        };
        let mut b = Fake::new(no_hyst(), defaults());
        b.temp(80.0);
        b.at(1.0);
        b.temp(73.0);
        b.at(2.0);
        assert_eq!(b.verdict(), V::Throttled, "2 C default hyst");
        b.temp(72.9);
        b.at(3.0);
        assert_eq!(b.verdict(), V::Ok);

        // --hyst overrides the trip's.
        let settings = Settings {
            hyst_mc: Some(10_000),
            ..defaults()
        };
        let mut b = Fake::new(no_hyst(), settings);
        b.temp(80.0);
        b.at(1.0);
        b.temp(65.5);
        b.at(2.0);
        assert_eq!(b.verdict(), V::Throttled);
        b.temp(64.9);
        b.at(3.0);
        assert_eq!(b.verdict(), V::Ok);
    }

    #[test]
    fn max_temp_overrides_the_trip() {
        let settings = Settings {
            max_temp_mc: Some(70_000),
            ..defaults()
        };
        let mut b = Fake::new(amlogic(52.0), settings);
        b.temp(64.9);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Ok);
        b.temp(66.0);
        b.at(2.0);
        assert_eq!(b.verdict(), V::Warm);
        b.temp(70.0);
        b.at(3.0);
        assert_eq!(b.verdict(), V::Throttled);
        assert_eq!(
            b.describe(),
            "throttled: cpu-thermal 70.0 C >= --max-temp 70.0 C"
        );
        assert_eq!(b.status_value("limit_c").as_deref(), Some("70.0"));
        // The passive trip's hyst (2 C) still applies: ok below 63.
        b.temp(63.0);
        b.at(4.0);
        assert_eq!(b.verdict(), V::Throttled);
        b.temp(62.9);
        b.at(5.0);
        assert_eq!(b.verdict(), V::Ok);
    }

    #[test]
    fn disabled_settings_are_off_whatever_the_heat() {
        let mut r = amlogic(105.0);
        r.coolers[0].cur_state = Some(6);
        let settings = Settings {
            enabled: false,
            ..defaults()
        };
        let mut b = Fake::new(r, settings);
        b.at(1.0);
        assert_eq!(b.verdict(), V::Off);
        assert!(b.rule.accepts());
        assert_eq!(b.rule.effective_slots(4), 4);
        assert_eq!(b.rule.last_sample(), b.t0 + Duration::from_secs(1));
        assert_eq!(b.rule.temp_mc(), None);
        assert_eq!(b.rule.limit_mc(), None);
        assert_eq!(b.status(), vec![("thermal".to_string(), "off".to_string())]);
        assert_eq!(b.describe(), "off: thermal checks disabled");
        assert_eq!(b.rule.retry_after(), Duration::from_secs(1));
    }

    #[test]
    fn status_reports_temp_limit_headroom_and_throttled_time() {
        let mut b = Fake::new(amlogic(61.3), defaults());
        let want = [
            ("thermal", "ok"),
            ("temp_c", "61.3"),
            ("limit_c", "80.0"),
            ("headroom_c", "18.7"),
            ("throttled_s", "0"),
            ("cooling", "0/6"),
            ("freq_cap", "no"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(b.status(), want);
        assert_eq!(
            b.describe(),
            "ok: cpu-thermal 61.3 C, 18.7 C below passive trip 80.0 C"
        );
        b.temp(85.0);
        for s in 1..=6 {
            b.at(f64::from(s));
        }
        b.temp(60.0);
        b.at(7.5);
        assert_eq!(b.verdict(), V::Ok);
        assert_eq!(b.status_value("throttled_s").as_deref(), Some("6"));
        assert_eq!(b.status_value("headroom_c").as_deref(), Some("20.0"));
        assert_eq!(b.rule.last_sample(), b.t0 + Duration::from_millis(7500));
    }

    #[test]
    fn retry_after_grows_with_the_heat() {
        let mut b = Fake::new(amlogic(52.0), defaults());
        assert_eq!(b.rule.retry_after(), Duration::from_secs(1));
        b.temp(81.0);
        b.at(1.0);
        // 5 s + 1 s per degree above 73.
        assert_eq!(b.rule.retry_after(), Duration::from_secs(13));
        b.temp(90.0);
        b.at(2.0);
        assert_eq!(b.rule.retry_after(), Duration::from_secs(22));
        b.temp(107.0);
        b.at(3.0);
        assert_eq!(b.verdict(), V::Critical);
        assert_eq!(b.rule.retry_after(), Duration::from_secs(39));
        b.temp(150.0);
        b.at(4.0);
        assert_eq!(b.rule.retry_after(), RETRY_MAX);
    }

    #[test]
    fn cpu_zones_are_chosen_by_type_else_all_zones() {
        let r = Readings {
            zones: vec![
                zone(0, "ddr-thermal", 90.0, &[]),
                zone(1, "CPU-thermal", 50.0, &[(Passive, 85.0, None)]),
                zone(2, "soc_thermal", 55.0, &[(Passive, 80.0, None)]),
            ],
            ..Readings::default()
        };
        let b = Fake::new(r, defaults());
        assert_eq!(b.verdict(), V::Ok, "{}", b.describe());
        assert_eq!(
            b.rule.temp_mc(),
            Some(55_000),
            "hottest CPU zone; ddr ignored"
        );
        assert_eq!(
            b.rule.limit_mc(),
            Some(80_000),
            "lowest passive trip of CPU zones"
        );

        let r = Readings {
            zones: vec![
                zone(0, "acpitz", 45.0, &[(Hot, 95.0, None)]),
                zone(10, "x86_pkg_temp", 52.0, &[]),
            ],
            ..Readings::default()
        };
        let b = Fake::new(r, defaults());
        assert_eq!(b.rule.temp_mc(), Some(52_000));
        assert_eq!(b.rule.limit_mc(), Some(95_000), "hot trip when no passive");
        assert_eq!(b.verdict(), V::Ok);
    }

    #[test]
    fn the_rule_table() {
        use Level::*;
        let cases = [
            // state, level, crit, sign, calm -> next
            (State::Ok, Clear, Clear, false, true, State::Ok),
            (State::Ok, Settling, Clear, false, true, State::Ok),
            (State::Ok, Warm, Clear, false, true, State::Warm),
            (State::Ok, Over, Clear, false, true, State::Throttled),
            (State::Ok, Clear, Clear, true, false, State::Throttled),
            (State::Warm, Settling, Clear, false, true, State::Warm),
            (State::Warm, Clear, Clear, false, true, State::Ok),
            (State::Warm, Clear, Clear, false, false, State::Warm),
            (State::Throttled, Warm, Clear, false, true, State::Throttled),
            (
                State::Throttled,
                Settling,
                Clear,
                false,
                true,
                State::Throttled,
            ),
            (
                State::Throttled,
                Clear,
                Clear,
                false,
                false,
                State::Throttled,
            ),
            (State::Throttled, Clear, Clear, false, true, State::Ok),
            (State::Throttled, Clear, Settling, false, true, State::Ok),
            (State::Ok, Clear, Over, false, true, State::Critical),
            (
                State::Critical,
                Over,
                Settling,
                false,
                true,
                State::Critical,
            ),
            (State::Critical, Over, Clear, false, true, State::Throttled),
            (State::Critical, Clear, Clear, false, true, State::Ok),
        ];
        for (state, level, crit, sign, calm, want) in cases {
            assert_eq!(
                next_state(state, level, crit, sign, calm),
                want,
                "{state:?} {level:?} crit {crit:?} sign {sign} calm {calm}"
            );
        }
    }
}
