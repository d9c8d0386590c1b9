//! The box's own thermal state, and whether it should take work: rccd refuses new compiles
//! while the SoC is throttled, so a passively cooled TV box is not handed jobs it would run at
//! a fraction of its clock while a cooler box waits.
//!
//! Two halves live here:
//! - the reader ([`Thermal::new`], [`Thermal::sample`]) finds thermal zones, cpufreq cooling
//!   devices and cpufreq policies under the directories in [`Settings`] (the seam the tests and
//!   the bench's fake tree use) and re-reads them about once a second;
//! - the rule (`Thermal::observe`, `Rule`, `next_state`) does no I/O: it turns what one sample
//!   saw into a [`Verdict`].
//!
//! What it leaves to others: the event loop owns the clock and calls `sample` from its timer
//! (and before admitting a job when the last sample is older than a second); `admit.rs` asks
//! [`Thermal::accepts`] and [`Thermal::effective_slots`]; the status reply shows
//! [`Thermal::status`]; `--max-temp`, `--margin` and friends are parsed in `config.rs` into
//! [`Settings`]. Nothing here spawns a thread, and nothing here stops a job: `Critical` says
//! that running jobs should be stopped, the loop does it.
//!
//! # What is read (sysfs, nothing hard-coded for one SoC)
//! - `thermal_root/thermal_zone*/`: `type`, `temp` (m°C), `mode` (`disabled` means the kernel
//!   will not throttle for that zone; a missing file means enabled), and the trips
//!   `trip_point_K_{type,temp,hyst}`. CPU zones are those whose type contains `cpu` or `soc`
//!   (any case); when none does, every zone counts as one. Trips are read when zones are
//!   discovered; `temp` and `mode` on every sample.
//! - `thermal_root/cooling_device*/` whose type starts with `cpufreq-` or `thermal-cpufreq-`:
//!   `cur_state` on every sample, `max_state` at discovery. Fans and other coolers are not a
//!   sign of throttling and are ignored.
//! - `cpufreq_root/policy*/scaling_max_freq` (kHz), against a baseline taken at the first read
//!   (not `cpuinfo_max_freq`: Armbian caps the frequency itself at boot) and raised whenever a
//!   higher value is read. A missing cpufreq root is normal.
//!
//! Every file is opened, read into a stack buffer and closed on each sample: the bench replaces
//! its files by rename, and a kept descriptor would read the old file forever. Steady-state
//! sampling does not allocate. Discovery (directory listing) runs at construction and again at
//! most every 60 s while some read fails or no zone exists (a sensor driver loaded late). A
//! missing, unreadable or garbage file is logged once per path and otherwise skipped.
//!
//! # The rule
//! Names: `L` is the limit, `M` the margin, `H` the hysteresis, `C` a zone's critical trip
//! minus the critical margin.
//! - `L` is `--max-temp`, else the lowest passive trip of the CPU zones, else their lowest hot
//!   trip, else there is none (only coolers and cpufreq can then throttle). `H` is `hyst_mc`,
//!   else the hysteresis of that trip, but at least 2 °C so a trip with hyst 0 cannot flap.
//! - A zone with `mode` `disabled` has its lowest passive (else hot) trip as a *hard* limit:
//!   nothing else will cool that zone, so we refuse work at the trip exactly, whether or not it
//!   is a CPU zone, and `--max-temp` can lower that limit but not raise it.
//! - A *sign* is a cpufreq cooling device at `cur_state > 0` or a policy whose
//!   `scaling_max_freq` is below its baseline. *Calm* means no sign for `calm` (measured from
//!   the last sample that saw one).
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
//! cpufreq and cooling devices decide alone); `enabled = false` is `Off` and reads nothing.
//! While `Warm`, [`Thermal::effective_slots`] shrinks linearly from all slots at L − M to one
//! slot just below L.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Default `--margin`: the warm band below the limit.
pub const DEFAULT_MARGIN_MC: i64 = 5000;
/// Hysteresis when neither `Settings::hyst_mc` nor the trip gives one, and the least taken from a trip.
pub const DEFAULT_HYST_MC: i64 = 2000;
/// Default time the cooling devices must have been idle before the box is "ok" again.
pub const DEFAULT_CALM: Duration = Duration::from_secs(3);
/// Default distance below the critical trip at which running jobs are stopped.
pub const DEFAULT_CRIT_MARGIN_MC: i64 = 10_000;
/// How often a failing or empty tree is listed again.
const REDISCOVER_EVERY: Duration = Duration::from_secs(60);
/// Longest value read from a sysfs file; longer is garbage.
const VALUE_MAX: usize = 64;
/// Some vendor kernels print whole degrees: readings of 1..=this are taken as °C.
const CELSIUS_MAX: i64 = 200;
/// Temperatures (m°C) outside this range are garbage (or a "disabled trip" placeholder).
const PLAUSIBLE_MC: std::ops::RangeInclusive<i64> = -60_000..=250_000;
/// Trips below this (m°C) are placeholders, not limits: a box is never throttled at 20 °C.
const TRIP_MIN_MC: i64 = 20_000;
/// Upper bound of [`Thermal::retry_after`].
const RETRY_MAX: Duration = Duration::from_secs(60);
/// [`Thermal::retry_after`] while throttling is visible.
const RETRY_THROTTLED: Duration = Duration::from_secs(5);

/// Every number of the rule, overridable from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where `thermal_zone*` and `cooling_device*` are (`--thermal-root`).
    pub thermal_root: PathBuf,
    /// Where cpufreq `policy*` are; missing is normal.
    pub cpufreq_root: PathBuf,
    /// `--max-temp` (m°C): the limit. Default: lowest passive trip of the CPU zones, else their
    /// lowest hot trip, else none.
    pub max_temp_mc: Option<i64>,
    /// `--margin` (m°C): the warm band below the limit.
    pub margin_mc: i64,
    /// Hysteresis (m°C). Default: the trip's own, at least [`DEFAULT_HYST_MC`].
    pub hyst_mc: Option<i64>,
    /// Cooling devices and cpufreq caps must have been idle this long before "ok" again.
    pub calm: Duration,
    /// At a zone's critical trip minus this (m°C), running jobs are stopped.
    pub crit_margin_mc: i64,
    /// `false`: ignore thermal entirely (verdict `Off`, nothing is read).
    pub enabled: bool,
}

impl Settings {
    /// The real `/sys` paths and the default numbers.
    pub fn defaults() -> Settings {
        Settings {
            thermal_root: PathBuf::from("/sys/class/thermal"),
            cpufreq_root: PathBuf::from("/sys/devices/system/cpu/cpufreq"),
            max_temp_mc: None,
            margin_mc: DEFAULT_MARGIN_MC,
            hyst_mc: None,
            calm: DEFAULT_CALM,
            crit_margin_mc: DEFAULT_CRIT_MARGIN_MC,
            enabled: true,
        }
    }

    fn hyst(&self, trip_hyst: Option<i64>) -> i64 {
        let h = match self.hyst_mc {
            Some(h) => h,
            None => trip_hyst.unwrap_or(0).max(DEFAULT_HYST_MC),
        };
        h.max(0)
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::defaults()
    }
}

/// What the box should do with work, as of the last sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Cool: all slots.
    Ok,
    /// In the warm band below the limit: fewer slots ([`Thermal::effective_slots`]).
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

impl Verdict {
    /// The word used in the status reply (`thermal=`) and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warm => "warm",
            Verdict::Throttled => "throttled",
            Verdict::Critical => "critical",
            Verdict::Unknown => "unknown",
            Verdict::Off => "off",
        }
    }
}

impl fmt::Display for Verdict {
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

/// A trip point as read: temperature and raw hysteresis (m°C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trip {
    mc: i64,
    hyst_mc: Option<i64>,
}

#[derive(Debug)]
struct Zone {
    /// `thermal_zone0`.
    name: String,
    /// Its `type`, or `name` when that is unreadable.
    label: String,
    temp_path: PathBuf,
    mode_path: PathBuf,
    cpu: bool,
    passive: Option<Trip>,
    hot: Option<Trip>,
    /// Lowest passive (else hot) trip as a hard limit, used while the zone is disabled.
    own: Option<Bound>,
    /// Lowest critical trip and the hysteresis to leave it.
    critical: Option<(i64, i64)>,
    /// As of the last sample.
    temp_mc: Option<i64>,
    disabled: bool,
}

#[derive(Debug)]
struct Cooler {
    label: String,
    cur_path: PathBuf,
    max_state: Option<u64>,
    cur_state: Option<u64>,
}

#[derive(Debug)]
struct Policy {
    name: String,
    max_path: PathBuf,
    baseline_khz: Option<u64>,
    max_khz: Option<u64>,
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

/// What one sample saw, reduced to what the rule needs. Indices point into the reader's lists.
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

/// One step of the state machine in the module doc. Pure.
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

/// The state machine plus the clocks it needs. No I/O.
#[derive(Debug)]
struct Rule {
    state: State,
    last: Instant,
    /// Last sample that saw a sign.
    last_sign: Option<Instant>,
    throttled: Duration,
}

impl Rule {
    fn new(now: Instant) -> Rule {
        Rule {
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

/// Paths already complained about, so each problem is logged once.
#[derive(Debug, Default)]
struct Problems {
    seen: HashSet<PathBuf>,
    /// How many were logged (tests read it instead of capturing the log).
    count: u64,
}

impl Problems {
    fn report(&mut self, path: &Path, what: fmt::Arguments<'_>) {
        if self.seen.contains(path) {
            return;
        }
        self.seen.insert(path.to_path_buf());
        self.count += 1;
        log::warn!("thermal: {}: {what} (reported once)", path.display());
    }
}

/// The box's thermal state: the reader and the rule. See the module doc.
#[derive(Debug)]
pub struct Thermal {
    settings: Settings,
    zones: Vec<Zone>,
    coolers: Vec<Cooler>,
    policies: Vec<Policy>,
    /// `L` for the CPU zones.
    base: Option<Bound>,
    problems: Problems,
    last_discovery: Instant,
    rediscover: bool,
    /// The last "what is watched" line logged, so rediscovery logs only changes.
    announced: String,
    obs: Observation,
    rule: Rule,
}

impl Thermal {
    /// Discovers zones, cooling devices and policies, takes the cpufreq baseline and samples
    /// once. With `enabled == false` it reads nothing.
    pub fn new(settings: Settings, now: Instant) -> Thermal {
        let mut t = Thermal {
            settings,
            zones: Vec::new(),
            coolers: Vec::new(),
            policies: Vec::new(),
            base: None,
            problems: Problems::default(),
            last_discovery: now,
            rediscover: false,
            announced: String::new(),
            obs: Observation::default(),
            rule: Rule::new(now),
        };
        if t.settings.enabled {
            t.discover(now);
            t.step(now);
        }
        log::info!("thermal: {}", t.describe());
        t
    }

    /// What is watched (zones, the limit, coolers, policies) and what it says now: for
    /// `rccd --check`, so a user sees on a real box what rccd found there.
    pub fn report(&self) -> String {
        if !self.settings.enabled {
            return "thermal: off".into();
        }
        format!(
            "{}
thermal now: {}",
            self.announced,
            self.describe()
        )
    }

    /// Re-reads every temperature, mode, cooling state and frequency cap, and steps the rule.
    pub fn sample(&mut self, now: Instant) {
        if !self.settings.enabled {
            self.rule.last = now;
            return;
        }
        let before = self.verdict();
        self.step(now);
        let after = self.verdict();
        if before != after {
            log::info!("thermal: {before} -> {}", self.describe());
        }
    }

    /// Reads and decides (the body of `sample`, also the first sample of `new`).
    fn step(&mut self, now: Instant) {
        if self.rediscover && now.saturating_duration_since(self.last_discovery) >= REDISCOVER_EVERY
        {
            self.discover(now);
        }
        let complete = self.read_all();
        self.rediscover = !complete || self.zones.is_empty();
        self.obs = self.observe();
        self.rule.step(&self.obs, now, self.settings.calm);
    }

    /// When `sample` (or `new`) last ran.
    pub fn last_sample(&self) -> Instant {
        self.rule.last
    }

    /// What the box should do with work, as of the last sample.
    pub fn verdict(&self) -> Verdict {
        if !self.settings.enabled {
            return Verdict::Off;
        }
        match self.rule.state {
            State::Critical => Verdict::Critical,
            State::Throttled => Verdict::Throttled,
            State::Warm => Verdict::Warm,
            State::Ok if self.obs.hottest.is_none() => Verdict::Unknown,
            State::Ok => Verdict::Ok,
        }
    }

    /// May a new job start? (`Ok`, `Warm`, `Unknown`, `Off`.)
    pub fn accepts(&self) -> bool {
        !matches!(self.verdict(), Verdict::Throttled | Verdict::Critical)
    }

    /// How many of `slots` the box should fill now: all of them when `Ok`, `Unknown` or `Off`;
    /// none when `Throttled` or `Critical`; when `Warm`, all at L − M shrinking linearly to 1
    /// just below L (never 0).
    pub fn effective_slots(&self, slots: usize) -> usize {
        match self.verdict() {
            Verdict::Ok | Verdict::Unknown | Verdict::Off => slots,
            Verdict::Throttled | Verdict::Critical => 0,
            Verdict::Warm => {
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
        if let Some(quiet) = self.rule.quiet_for(self.rule.last) {
            wait = wait.max(self.settings.calm.saturating_sub(quiet));
        }
        wait.min(RETRY_MAX)
    }

    /// Temperature of the hottest readable CPU zone (m°C).
    pub fn temp_mc(&self) -> Option<i64> {
        self.obs.hottest.and_then(|i| self.zones[i].temp_mc)
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

    /// One line for logs and reject texts, e.g.
    /// `throttled: cpu-thermal 81.2 C >= passive trip 80.0 C`.
    pub fn describe(&self) -> String {
        let v = self.verdict();
        match v {
            Verdict::Off => "off: thermal checks disabled".to_string(),
            Verdict::Unknown => format!(
                "unknown: no readable CPU temperature under {}; no cooling device or cpufreq cap \
                 active",
                self.settings.thermal_root.display()
            ),
            Verdict::Ok | Verdict::Warm => {
                let text = match (self.obs.binding, self.obs.hottest) {
                    (Some(b), _) => {
                        let z = &self.zones[b.zone];
                        let t = b.bound.mc - b.headroom_mc;
                        format!(
                            "{} {} C, {} C below {}",
                            z.label,
                            Deg(t),
                            Deg(b.headroom_mc),
                            b.bound
                        )
                    }
                    (None, Some(i)) => format!(
                        "{} {} C, no passive or hot trip and no --max-temp",
                        self.zones[i].label,
                        Deg(self.zones[i].temp_mc.unwrap_or(0))
                    ),
                    (None, None) => "no readable temperature".to_string(),
                };
                format!("{v}: {text}")
            }
            Verdict::Critical => match self.obs.crit_zone {
                Some((i, stop)) if self.obs.crit == Level::Over => format!(
                    "critical: {} {} C >= critical trip {} C - {} C",
                    self.zones[i].label,
                    Deg(self.zones[i].temp_mc.unwrap_or(0)),
                    Deg(stop + self.settings.crit_margin_mc),
                    Deg(self.settings.crit_margin_mc)
                ),
                Some((i, stop)) => format!(
                    "critical: {} {} C, critical until below {} C",
                    self.zones[i].label,
                    Deg(self.zones[i].temp_mc.unwrap_or(0)),
                    Deg(stop - self.zone_crit_hyst(i))
                ),
                None => "critical".to_string(),
            },
            Verdict::Throttled => format!("throttled: {}", self.throttle_reason()),
        }
    }

    fn zone_crit_hyst(&self, i: usize) -> i64 {
        self.zones[i].critical.map_or(0, |(_, h)| h)
    }

    fn throttle_reason(&self) -> String {
        let o = &self.obs;
        if let (true, Some(i)) = (o.cooler_active, o.cooler) {
            let c = &self.coolers[i];
            return format!(
                "cooling device {} at state {}/{}",
                c.label,
                c.cur_state.unwrap_or(0),
                MaxState(c.max_state)
            );
        }
        if let Some(i) = o.capped {
            let p = &self.policies[i];
            return format!(
                "cpufreq {} scaling_max_freq {} kHz < {} kHz baseline",
                p.name,
                p.max_khz.unwrap_or(0),
                p.baseline_khz.unwrap_or(0)
            );
        }
        if let Some(b) = o.binding {
            let z = &self.zones[b.zone];
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
        let quiet = self.rule.quiet_for(self.rule.last).unwrap_or_default();
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
        if v == Verdict::Off {
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
            self.rule.throttled.as_secs().to_string(),
        ));
        if let Some(i) = self.obs.cooler {
            let c = &self.coolers[i];
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

    // ---- the rule: what the last read means (no I/O) ----

    /// The limit zone `z` is held to now: `L` for a CPU zone, its own trip while disabled,
    /// the lower of the two when both apply.
    fn zone_bound(&self, z: &Zone) -> Option<Bound> {
        let soft = if z.cpu { self.base } else { None };
        let hard = if z.disabled { z.own } else { None };
        match (soft, hard) {
            (Some(s), Some(h)) => Some(if h.mc <= s.mc { h } else { s }),
            (s, h) => s.or(h),
        }
    }

    fn observe(&self) -> Observation {
        let margin = self.settings.margin_mc.max(0);
        let mut o = Observation::default();
        for (i, z) in self.zones.iter().enumerate() {
            let Some(t) = z.temp_mc else { continue };
            if z.cpu && self.temp_of(o.hottest).map_or(true, |h| t > h) {
                o.hottest = Some(i);
            }
            if let Some(bound) = self.zone_bound(z) {
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
            if let (true, Some((crit, hyst))) = (z.cpu || z.disabled, z.critical) {
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
        }
        let mut busiest: Option<u128> = None;
        for (i, c) in self.coolers.iter().enumerate() {
            let Some(cur) = c.cur_state else { continue };
            o.cooler_active |= cur > 0;
            let max = c.max_state.unwrap_or(cur).max(1);
            let load = u128::from(cur) * 1_000_000 / u128::from(max);
            if busiest.map_or(true, |b| load > b) {
                busiest = Some(load);
                o.cooler = Some(i);
            }
        }
        o.capped = self
            .policies
            .iter()
            .position(|p| match (p.max_khz, p.baseline_khz) {
                (Some(v), Some(b)) => v < b,
                _ => false,
            });
        o
    }

    fn temp_of(&self, zone: Option<usize>) -> Option<i64> {
        zone.and_then(|i| self.zones[i].temp_mc)
    }

    // ---- the reader: sysfs ----

    /// Re-reads every per-sample file. Returns false when some read failed.
    fn read_all(&mut self) -> bool {
        let mut buf = [0u8; VALUE_MAX];
        let mut complete = true;
        let problems = &mut self.problems;
        for z in &mut self.zones {
            z.temp_mc = match read_value(&z.temp_path, &mut buf) {
                Ok(raw) => match parse_i64(raw).and_then(normalize_temp) {
                    Some(t) => Some(t),
                    None => {
                        problems.report(
                            &z.temp_path,
                            format_args!(
                                "\"{}\" is not a temperature in millidegrees C; zone {} ignored \
                                 while it stays so",
                                raw.escape_ascii(),
                                z.label
                            ),
                        );
                        None
                    }
                },
                Err(e) => {
                    problems.report(
                        &z.temp_path,
                        format_args!("cannot read ({e}); zone {} ignored while it fails", z.label),
                    );
                    None
                }
            };
            complete &= z.temp_mc.is_some();
            z.disabled = match read_value(&z.mode_path, &mut buf) {
                Ok(b"disabled") => true,
                Ok(b"enabled") => false,
                Ok(raw) => {
                    problems.report(
                        &z.mode_path,
                        format_args!(
                            "\"{}\" is neither enabled nor disabled; taken as enabled",
                            raw.escape_ascii()
                        ),
                    );
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => {
                    problems.report(
                        &z.mode_path,
                        format_args!("cannot read ({e}); taken as enabled"),
                    );
                    false
                }
            };
        }
        for c in &mut self.coolers {
            c.cur_state = read_u64(&c.cur_path, &mut buf, problems, "cooling state");
            complete &= c.cur_state.is_some();
        }
        for p in &mut self.policies {
            p.max_khz = read_u64(&p.max_path, &mut buf, problems, "frequency in kHz");
            complete &= p.max_khz.is_some();
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
        complete
    }

    /// Lists zones, cpufreq coolers and policies again (allocates; rare).
    fn discover(&mut self, now: Instant) {
        self.last_discovery = now;
        let s = &self.settings;
        let problems = &mut self.problems;

        self.zones.clear();
        self.coolers.clear();
        match numbered_dirs(&s.thermal_root, "thermal_zone") {
            Ok(dirs) => {
                for (name, dir) in dirs {
                    self.zones.push(load_zone(s, &dir, name, problems));
                }
            }
            Err(e) => problems.report(
                &s.thermal_root,
                format_args!("cannot list ({e}); CPU temperature unknown"),
            ),
        }
        if self.zones.is_empty() && s.thermal_root.is_dir() {
            problems.report(
                &s.thermal_root,
                format_args!("no thermal_zone*; CPU temperature unknown"),
            );
        }
        if let Ok(dirs) = numbered_dirs(&s.thermal_root, "cooling_device") {
            for (_, dir) in dirs {
                if let Some(c) = load_cooler(&dir, problems) {
                    self.coolers.push(c);
                }
            }
        }

        let old = std::mem::take(&mut self.policies);
        match numbered_dirs(&s.cpufreq_root, "policy") {
            Ok(dirs) => {
                for (name, dir) in dirs {
                    let baseline_khz = old
                        .iter()
                        .find(|p| p.name == name)
                        .and_then(|p| p.baseline_khz);
                    self.policies.push(Policy {
                        max_path: dir.join("scaling_max_freq"),
                        name,
                        baseline_khz,
                        max_khz: None,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => problems.report(
                &s.cpufreq_root,
                format_args!("cannot list ({e}); frequency caps not watched"),
            ),
        }

        let any_cpu = self.zones.iter().any(|z| is_cpu_type(&z.label));
        for z in &mut self.zones {
            z.cpu = !any_cpu || is_cpu_type(&z.label);
        }
        self.base = base_bound(s, &self.zones);
        let line = self.watching(any_cpu);
        if line != self.announced {
            log::info!("{line}");
            self.announced = line;
        }
    }

    /// The "what is watched" log line.
    fn watching(&self, any_cpu: bool) -> String {
        use fmt::Write as _;
        let mut line = String::from("thermal: ");
        let names = |cpu: bool| {
            let v: Vec<String> = self
                .zones
                .iter()
                .filter(|z| z.cpu == cpu)
                .map(|z| format!("{} ({})", z.label, z.name))
                .collect();
            v.join(", ")
        };
        if self.zones.is_empty() {
            line.push_str("no thermal zones");
        } else if any_cpu {
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
        let coolers: Vec<&str> = self.coolers.iter().map(|c| c.label.as_str()).collect();
        let policies: Vec<&str> = self.policies.iter().map(|p| p.name.as_str()).collect();
        let _ = write!(
            line,
            "; cpufreq coolers [{}]; cpufreq policies [{}]",
            coolers.join(", "),
            policies.join(", ")
        );
        line
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

/// `dir/PREFIX<N>` directories, sorted by N.
fn numbered_dirs(dir: &Path, prefix: &str) -> io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let path = entry.path();
        if path.is_dir() {
            found.push((n, name.to_string(), path));
        }
    }
    found.sort();
    Ok(found
        .into_iter()
        .map(|(_, name, path)| (name, path))
        .collect())
}

fn load_zone(s: &Settings, dir: &Path, name: String, problems: &mut Problems) -> Zone {
    let type_path = dir.join("type");
    let label = match fs::read_to_string(&type_path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        Ok(_) => name.clone(),
        Err(e) => {
            problems.report(
                &type_path,
                format_args!("cannot read ({e}); zone named {name}"),
            );
            name.clone()
        }
    };
    let mut passive: Option<Trip> = None;
    let mut hot: Option<Trip> = None;
    let mut critical: Option<Trip> = None;
    let trips: Vec<u64> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name();
                let n = n.to_str()?;
                n.strip_prefix("trip_point_")?
                    .strip_suffix("_type")?
                    .parse()
                    .ok()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    for k in trips {
        let type_path = dir.join(format!("trip_point_{k}_type"));
        let temp_path = dir.join(format!("trip_point_{k}_temp"));
        let slot = match fs::read_to_string(&type_path).as_deref().map(str::trim) {
            Ok("passive") => &mut passive,
            Ok("hot") => &mut hot,
            Ok("critical") => &mut critical,
            Ok(_) => continue, // active (fans) and unknown kinds do not limit us
            Err(e) => {
                problems.report(&type_path, format_args!("cannot read ({e}); trip ignored"));
                continue;
            }
        };
        let mc = match fs::read_to_string(&temp_path) {
            Ok(t) => match parse_i64(t.as_bytes()).and_then(normalize_temp) {
                Some(mc) if mc >= TRIP_MIN_MC => mc,
                _ => {
                    // Unused trips read as placeholders (-274000, 0, INT_MAX): not a problem.
                    log::debug!("thermal: {}: {:?} ignored", temp_path.display(), t.trim());
                    continue;
                }
            },
            Err(e) => {
                problems.report(&temp_path, format_args!("cannot read ({e}); trip ignored"));
                continue;
            }
        };
        // The hysteresis file may be missing or unreadable: the default applies.
        let hyst_mc = fs::read_to_string(dir.join(format!("trip_point_{k}_hyst")))
            .ok()
            .and_then(|h| parse_i64(h.as_bytes()))
            .filter(|h| *h >= 0);
        let trip = Trip { mc, hyst_mc };
        if slot.map_or(true, |old| trip.mc < old.mc) {
            *slot = Some(trip);
        }
    }
    let own = match (passive, hot) {
        (Some(t), _) => Some((t, BoundKind::Passive)),
        (None, Some(t)) => Some((t, BoundKind::Hot)),
        (None, None) => None,
    }
    .map(|(t, kind)| Bound {
        mc: t.mc,
        hyst_mc: s.hyst(t.hyst_mc),
        kind,
        hard: true,
    });
    Zone {
        temp_path: dir.join("temp"),
        mode_path: dir.join("mode"),
        label,
        name,
        cpu: false,
        passive,
        hot,
        own,
        critical: critical.map(|t| (t.mc, s.hyst(t.hyst_mc))),
        temp_mc: None,
        disabled: false,
    }
}

/// A cooling device, if it is a cpufreq one.
fn load_cooler(dir: &Path, problems: &mut Problems) -> Option<Cooler> {
    let type_path = dir.join("type");
    let label = match fs::read_to_string(&type_path) {
        Ok(t) => t.trim().to_string(),
        Err(e) => {
            problems.report(
                &type_path,
                format_args!("cannot read ({e}); device ignored"),
            );
            return None;
        }
    };
    if !(label.starts_with("cpufreq-") || label.starts_with("thermal-cpufreq-")) {
        return None;
    }
    let mut buf = [0u8; VALUE_MAX];
    let max_state = read_u64(&dir.join("max_state"), &mut buf, problems, "cooling state");
    Some(Cooler {
        label,
        cur_path: dir.join("cur_state"),
        max_state,
        cur_state: None,
    })
}

/// Reads a small sysfs file into `buf` (open, read, close: no allocation, and a file replaced
/// by rename is seen at once). Returns the value without surrounding whitespace.
fn read_value<'b>(path: &Path, buf: &'b mut [u8; VALUE_MAX]) -> io::Result<&'b [u8]> {
    let mut file = File::open(path)?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf[..len].trim_ascii())
}

fn read_u64(
    path: &Path,
    buf: &mut [u8; VALUE_MAX],
    problems: &mut Problems,
    what: &str,
) -> Option<u64> {
    match read_value(path, buf) {
        Ok(raw) => match std::str::from_utf8(raw).ok().and_then(|s| s.parse().ok()) {
            Some(v) => Some(v),
            None => {
                problems.report(
                    path,
                    format_args!("\"{}\" is not a {what}; ignored", raw.escape_ascii()),
                );
                None
            }
        },
        Err(e) => {
            problems.report(path, format_args!("cannot read ({e}); ignored"));
            None
        }
    }
}

fn parse_i64(raw: &[u8]) -> Option<i64> {
    std::str::from_utf8(raw).ok()?.trim().parse().ok()
}

/// m°C from a reading: whole degrees from old vendor kernels are scaled, absurd values dropped.
fn normalize_temp(v: i64) -> Option<i64> {
    let mc = if (1..=CELSIUS_MAX).contains(&v) {
        v * 1000
    } else {
        v
    };
    PLAUSIBLE_MC.contains(&mc).then_some(mc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake sysfs tree in its own temp dir, removed on drop (also when a test panics).
    struct Tree {
        root: PathBuf,
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    impl Tree {
        fn empty(tag: &str) -> Tree {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let root =
                std::env::temp_dir().join(format!("rcc-thermal-{}-{tag}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(root.join("thermal")).unwrap();
            Tree { root }
        }

        /// Writes `rel` (under the tree root) like the bench does: temp file, then rename.
        fn put(&self, rel: &str, text: &str) {
            let path = self.root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            let tmp = self.root.join(format!("{rel}.tmp"));
            fs::write(&tmp, text).unwrap();
            fs::rename(&tmp, &path).unwrap();
        }

        fn remove(&self, rel: &str) {
            fs::remove_file(self.root.join(rel)).unwrap();
        }

        fn link(&self, target: &str, rel: &str) {
            std::os::unix::fs::symlink(target, self.root.join(rel)).unwrap();
        }

        /// `lib.sh make_thermal_tree` with the bench's defaults (trip 75, crit 95, hyst 5,
        /// max_state 4, ambient 40); no cpufreq tree.
        fn bench(tag: &str) -> Tree {
            let t = Tree::empty(tag);
            let z = "thermal/thermal_zone0";
            t.put(&format!("{z}/type"), "cpu-thermal\n");
            t.put(&format!("{z}/temp"), "40000\n");
            t.put(&format!("{z}/mode"), "enabled\n");
            t.put(&format!("{z}/policy"), "step_wise\n");
            t.put(&format!("{z}/trip_point_0_temp"), "75000\n");
            t.put(&format!("{z}/trip_point_0_type"), "passive\n");
            t.put(&format!("{z}/trip_point_0_hyst"), "5000\n");
            t.put(&format!("{z}/trip_point_1_temp"), "95000\n");
            t.put(&format!("{z}/trip_point_1_type"), "critical\n");
            t.put(&format!("{z}/trip_point_1_hyst"), "0\n");
            t.put(&format!("{z}/cdev0_trip_point"), "0\n");
            t.put("thermal/cooling_device0/type", "cpufreq-cpu0\n");
            t.put("thermal/cooling_device0/cur_state", "0\n");
            t.put("thermal/cooling_device0/max_state", "4\n");
            t.link("../cooling_device0", &format!("{z}/cdev0"));
            t
        }

        /// A mainline Amlogic GX box (S905X): passive 80 °C, hot 90 °C, critical 110 °C, hyst
        /// 2 °C each, one cluster cooler, one cpufreq policy capped by Armbian at 1512 MHz.
        fn amlogic(tag: &str) -> Tree {
            let t = Tree::empty(tag);
            let z = "thermal/thermal_zone0";
            t.put(&format!("{z}/type"), "cpu-thermal\n");
            t.put(&format!("{z}/temp"), "52000\n");
            t.put(&format!("{z}/mode"), "enabled\n");
            t.put(&format!("{z}/policy"), "step_wise\n");
            let trips = [("passive", 80000), ("hot", 90000), ("critical", 110000)];
            for (k, (kind, mc)) in trips.iter().enumerate() {
                t.put(&format!("{z}/trip_point_{k}_type"), &format!("{kind}\n"));
                t.put(&format!("{z}/trip_point_{k}_temp"), &format!("{mc}\n"));
                t.put(&format!("{z}/trip_point_{k}_hyst"), "2000\n");
            }
            t.put(&format!("{z}/cdev0_trip_point"), "0\n");
            t.put(&format!("{z}/cdev1_trip_point"), "1\n");
            t.link("../cooling_device0", &format!("{z}/cdev0"));
            t.link("../cooling_device0", &format!("{z}/cdev1"));
            t.put("thermal/cooling_device0/type", "thermal-cpufreq-0\n");
            t.put("thermal/cooling_device0/cur_state", "0\n");
            t.put("thermal/cooling_device0/max_state", "6\n");
            let p = "cpufreq/policy0";
            t.put(&format!("{p}/scaling_max_freq"), "1512000\n");
            t.put(&format!("{p}/cpuinfo_max_freq"), "1512000\n");
            t.put(&format!("{p}/scaling_cur_freq"), "1000000\n");
            t.put(&format!("{p}/related_cpus"), "0 1 2 3\n");
            t
        }

        fn settings(&self) -> Settings {
            Settings {
                thermal_root: self.root.join("thermal"),
                cpufreq_root: self.root.join("cpufreq"),
                ..Settings::defaults()
            }
        }

        fn temp(&self, celsius: f64) {
            let mc = (celsius * 1000.0).round() as i64;
            self.put("thermal/thermal_zone0/temp", &format!("{mc}\n"));
        }

        fn cooler(&self, state: u64) {
            self.put("thermal/cooling_device0/cur_state", &format!("{state}\n"));
        }

        fn freq(&self, khz: u64) {
            self.put("cpufreq/policy0/scaling_max_freq", &format!("{khz}\n"));
        }
    }

    fn at(t0: Instant, secs: f64) -> Instant {
        t0 + Duration::from_secs_f64(secs)
    }

    fn status_of(th: &Thermal) -> Vec<(String, String)> {
        let mut v = Vec::new();
        th.status(&mut v);
        v
    }

    fn status_value(th: &Thermal, key: &str) -> Option<String> {
        status_of(th)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn above_the_passive_trip_is_throttled() {
        let tree = Tree::amlogic("above-trip");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        assert_eq!(th.verdict(), Verdict::Ok);
        assert_eq!(th.limit_mc(), Some(80_000));
        tree.temp(81.2);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert!(!th.accepts());
        assert_eq!(th.effective_slots(4), 0);
        assert_eq!(
            th.describe(),
            "throttled: cpu-thermal 81.2 C >= passive trip 80.0 C"
        );
        assert_eq!(th.headroom_mc(), Some(-1_200));
        assert_eq!(th.problems.count, 0);

        let bench = Tree::bench("above-trip-bench");
        let mut th = Thermal::new(bench.settings(), t0);
        assert_eq!(th.verdict(), Verdict::Ok);
        bench.temp(75.0);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert_eq!(
            th.problems.count, 0,
            "a bench tree without cpufreq is normal"
        );
    }

    #[test]
    fn busy_cooler_below_the_trip_is_throttled() {
        let tree = Tree::amlogic("busy-cooler");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        tree.temp(60.0);
        tree.cooler(2);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert_eq!(
            th.describe(),
            "throttled: cooling device thermal-cpufreq-0 at state 2/6"
        );
        assert_eq!(status_value(&th, "cooling").as_deref(), Some("2/6"));

        let bench = Tree::bench("busy-cooler-bench");
        let mut th = Thermal::new(bench.settings(), t0);
        bench.cooler(3);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert_eq!(
            th.describe(),
            "throttled: cooling device cpufreq-cpu0 at state 3/4"
        );
    }

    #[test]
    fn lowered_scaling_max_freq_is_throttled_and_baseline_only_rises() {
        let tree = Tree::amlogic("freq-cap");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        assert_eq!(status_value(&th, "freq_cap").as_deref(), Some("no"));
        tree.freq(1_200_000);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert_eq!(status_value(&th, "freq_cap").as_deref(), Some("yes"));
        assert_eq!(
            th.describe(),
            "throttled: cpufreq policy0 scaling_max_freq 1200000 kHz < 1512000 kHz baseline"
        );
        // Cap lifted: calm (3 s from the last sample that saw it) before ok.
        tree.freq(1_512_000);
        th.sample(at(t0, 2.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        th.sample(at(t0, 3.9));
        assert_eq!(th.verdict(), Verdict::Throttled);
        th.sample(at(t0, 4.0));
        assert_eq!(th.verdict(), Verdict::Ok);
        // Higher than the baseline: new baseline, not a problem.
        tree.freq(1_800_000);
        th.sample(at(t0, 5.0));
        assert_eq!(th.verdict(), Verdict::Ok);
        // Back to the old value is now below the new baseline.
        tree.freq(1_512_000);
        th.sample(at(t0, 6.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert_eq!(th.problems.count, 0);
    }

    #[test]
    fn ok_again_only_below_limit_minus_margin_minus_hyst_no_flapping() {
        // Amlogic: L 80, M 5, H 2: warm from 75, ok again below 73.
        let tree = Tree::amlogic("hysteresis");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        let steps = [
            (60.0, Verdict::Ok),
            (74.0, Verdict::Ok),
            (75.0, Verdict::Warm),
            (79.9, Verdict::Warm),
            (80.0, Verdict::Throttled),
            (79.9, Verdict::Throttled),
            (80.1, Verdict::Throttled),
            (77.0, Verdict::Throttled),
            (75.0, Verdict::Throttled),
            (74.9, Verdict::Throttled),
            (73.0, Verdict::Throttled),
            (72.9, Verdict::Ok),
            (74.9, Verdict::Ok),
            (75.0, Verdict::Warm),
            (73.5, Verdict::Warm),
            (73.0, Verdict::Warm),
            (72.9, Verdict::Ok),
        ];
        for (i, (c, want)) in steps.iter().enumerate() {
            tree.temp(*c);
            th.sample(at(t0, 1.0 + i as f64));
            assert_eq!(th.verdict(), *want, "step {i} at {c} C: {}", th.describe());
        }
        tree.temp(74.0);
        th.sample(at(t0, 30.0));
        tree.temp(80.0);
        th.sample(at(t0, 31.0));
        assert!(th.describe().starts_with("throttled: cpu-thermal 80.0 C"));
        tree.temp(76.0);
        th.sample(at(t0, 32.0));
        assert_eq!(
            th.describe(),
            "throttled: cooling down, cpu-thermal 76.0 C, ok below 73.0 C"
        );

        // Oscillating around the trip: one trip, then it stays throttled.
        tree.temp(60.0);
        let mut th = Thermal::new(tree.settings(), t0);
        let mut changes = 0;
        let mut last = th.verdict();
        for i in 0..200 {
            tree.temp(if i % 2 == 0 { 79.9 } else { 80.0 });
            th.sample(at(t0, 1.0 + f64::from(i)));
            if th.verdict() != last {
                changes += 1;
                last = th.verdict();
            }
        }
        assert_eq!(changes, 2, "ok -> warm -> throttled, then no flapping");
        assert_eq!(th.verdict(), Verdict::Throttled);

        // The bench tree's hyst file (5 C) is used: trip 75, ok below 65; the heater recovers
        // below 70, we stay out longer.
        let bench = Tree::bench("hysteresis-bench");
        let mut th = Thermal::new(bench.settings(), t0);
        for (i, (c, want)) in [
            (76.0, Verdict::Throttled),
            (69.0, Verdict::Throttled),
            (65.0, Verdict::Throttled),
            (64.9, Verdict::Ok),
        ]
        .iter()
        .enumerate()
        {
            bench.temp(*c);
            th.sample(at(t0, 1.0 + i as f64));
            assert_eq!(th.verdict(), *want, "bench at {c} C");
        }
    }

    #[test]
    fn cooling_devices_must_stay_idle_for_the_calm_period() {
        let tree = Tree::bench("calm");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        tree.temp(50.0);
        tree.cooler(1);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert_eq!(th.retry_after(), Duration::from_secs(5));
        tree.cooler(0);
        th.sample(at(t0, 2.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert!(th.describe().contains("calm"), "{}", th.describe());
        assert_eq!(th.retry_after(), Duration::from_secs(2));
        // A second burst restarts the calm period.
        tree.cooler(1);
        th.sample(at(t0, 3.0));
        tree.cooler(0);
        th.sample(at(t0, 4.0));
        th.sample(at(t0, 5.9));
        assert_eq!(th.verdict(), Verdict::Throttled);
        th.sample(at(t0, 6.0));
        assert_eq!(th.verdict(), Verdict::Ok);

        // A longer calm setting.
        let settings = Settings {
            calm: Duration::from_secs(10),
            ..tree.settings()
        };
        let mut th = Thermal::new(settings, t0);
        tree.cooler(2);
        th.sample(at(t0, 1.0));
        tree.cooler(0);
        for s in 2..11 {
            th.sample(at(t0, f64::from(s)));
            assert_eq!(th.verdict(), Verdict::Throttled, "at {s} s");
        }
        th.sample(at(t0, 11.0));
        assert_eq!(th.verdict(), Verdict::Ok);
    }

    #[test]
    fn warm_band_shrinks_slots_monotonically_and_never_to_zero() {
        let tree = Tree::amlogic("warm-slots");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        for slots in [1usize, 2, 4, 8, 16] {
            let mut prev = slots;
            let mut seen_warm = false;
            // 74.00 .. 79.99 in steps of 0.01 C, each a later sample.
            for (i, mc) in (74_000..80_000).step_by(10).enumerate() {
                tree.put("thermal/thermal_zone0/temp", &format!("{mc}\n"));
                th.sample(at(t0, 1.0 + i as f64));
                let e = th.effective_slots(slots);
                if mc < 75_000 {
                    assert_eq!(th.verdict(), Verdict::Ok);
                    assert_eq!(e, slots);
                    continue;
                }
                seen_warm = true;
                assert_eq!(th.verdict(), Verdict::Warm, "at {mc}");
                assert!(th.accepts());
                assert!(
                    e >= 1 && e <= prev,
                    "{slots} slots at {mc}: {e} after {prev}"
                );
                if mc == 75_000 {
                    assert_eq!(e, slots, "full slots at limit - margin");
                }
                prev = e;
            }
            assert!(seen_warm);
            assert_eq!(prev, 1, "one slot just below the limit");
            tree.temp(80.0);
            th.sample(at(t0, 10_000.0));
            assert_eq!(th.effective_slots(slots), 0);
            tree.temp(50.0);
            th.sample(at(t0, 10_001.0));
            assert_eq!(th.verdict(), Verdict::Ok);
            assert_eq!(th.effective_slots(slots), slots);
        }
        tree.temp(77.5);
        th.sample(at(t0, 20_000.0));
        assert_eq!(th.effective_slots(9), 5, "half way: 1 + 8 * 2.5/5");
        // A 2-slot box keeps both for the first half of the band.
        tree.temp(77.0);
        th.sample(at(t0, 20_001.0));
        assert_eq!(th.effective_slots(2), 2, "3 C of headroom");
        tree.temp(78.0);
        th.sample(at(t0, 20_002.0));
        assert_eq!(th.effective_slots(2), 1, "2 C of headroom");
        tree.temp(77.5);
        th.sample(at(t0, 20_003.0));
        assert_eq!(th.retry_after(), Duration::from_secs(1));
        assert_eq!(
            th.describe(),
            "warm: cpu-thermal 77.5 C, 2.5 C below passive trip 80.0 C"
        );
    }

    #[test]
    fn near_the_critical_trip_running_jobs_stop() {
        let tree = Tree::amlogic("critical");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        for (i, (c, want)) in [
            (99.9, Verdict::Throttled),
            (100.0, Verdict::Critical),
            (105.0, Verdict::Critical),
            (98.0, Verdict::Critical),
            (97.9, Verdict::Throttled),
            (100.0, Verdict::Critical),
            (98.0, Verdict::Critical),
            (97.9, Verdict::Throttled),
            (73.0, Verdict::Throttled),
            (72.0, Verdict::Ok),
        ]
        .iter()
        .enumerate()
        {
            tree.temp(*c);
            th.sample(at(t0, 1.0 + i as f64));
            assert_eq!(th.verdict(), *want, "at {c} C");
            if *want == Verdict::Critical {
                assert!(!th.accepts());
                assert_eq!(th.effective_slots(4), 0);
                assert_eq!(status_value(&th, "thermal").as_deref(), Some("critical"));
            }
            if i == 3 {
                assert_eq!(
                    th.describe(),
                    "critical: cpu-thermal 98.0 C, critical until below 98.0 C"
                );
            }
            if *c == 100.0 {
                assert_eq!(
                    th.describe(),
                    "critical: cpu-thermal 100.0 C >= critical trip 110.0 C - 10.0 C"
                );
                assert_eq!(th.retry_after(), Duration::from_secs(32));
            }
        }

        // The bench: critical 95, so jobs stop at 85 (its hyst file says 0: 2 C is used).
        let bench = Tree::bench("critical-bench");
        let mut th = Thermal::new(bench.settings(), t0);
        bench.temp(85.0);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Critical);
        bench.temp(83.0);
        th.sample(at(t0, 2.0));
        assert_eq!(th.verdict(), Verdict::Critical);
        bench.temp(82.9);
        th.sample(at(t0, 3.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
    }

    #[test]
    fn a_disabled_zone_makes_its_trip_a_hard_limit() {
        let tree = Tree::amlogic("mode-disabled");
        tree.put("thermal/thermal_zone0/mode", "disabled\n");
        let t0 = Instant::now();
        let raised = Settings {
            max_temp_mc: Some(85_000),
            ..tree.settings()
        };
        // --max-temp cannot raise a disabled zone's trip: refused at 80.0 exactly.
        let mut th = Thermal::new(raised.clone(), t0);
        tree.temp(79.9);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Warm);
        tree.temp(80.0);
        th.sample(at(t0, 2.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert_eq!(th.limit_mc(), Some(80_000));
        assert_eq!(
            th.describe(),
            "throttled: cpu-thermal 80.0 C >= passive trip 80.0 C (zone mode disabled: hard limit)"
        );
        // Enabled again: the override applies, 80.0 is at the bottom of its warm band.
        tree.put("thermal/thermal_zone0/mode", "enabled\n");
        let mut th = Thermal::new(raised, t0);
        assert_eq!(th.verdict(), Verdict::Warm);
        assert_eq!(th.effective_slots(4), 4);
        assert_eq!(th.limit_mc(), Some(85_000));
        // ... but it can lower it.
        tree.put("thermal/thermal_zone0/mode", "disabled\n");
        let lowered = Settings {
            max_temp_mc: Some(75_000),
            ..tree.settings()
        };
        th = Thermal::new(lowered, t0);
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert!(
            th.describe().ends_with(">= --max-temp 75.0 C"),
            "{}",
            th.describe()
        );
        // A missing mode file means enabled, and is not a problem.
        tree.remove("thermal/thermal_zone0/mode");
        tree.temp(80.0);
        let mut th = Thermal::new(raised_settings(&tree), t0);
        assert_eq!(th.verdict(), Verdict::Warm);
        th.sample(at(t0, 1.0));
        assert_eq!(th.problems.count, 0);

        // A disabled zone counts even when it is not a CPU zone.
        let tree = Tree::amlogic("mode-disabled-ddr");
        let d = "thermal/thermal_zone1";
        tree.put(&format!("{d}/type"), "ddr-thermal\n");
        tree.put(&format!("{d}/temp"), "69000\n");
        tree.put(&format!("{d}/mode"), "disabled\n");
        tree.put(&format!("{d}/trip_point_0_type"), "passive\n");
        tree.put(&format!("{d}/trip_point_0_temp"), "70000\n");
        tree.temp(50.0);
        let mut th = Thermal::new(tree.settings(), t0);
        assert_eq!(th.verdict(), Verdict::Warm);
        assert_eq!(th.temp_mc(), Some(50_000), "temp is the CPU zone's");
        tree.put(&format!("{d}/temp"), "70000\n");
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert!(th
            .describe()
            .starts_with("throttled: ddr-thermal 70.0 C >= passive trip 70.0"));
        tree.put(&format!("{d}/mode"), "enabled\n");
        th.sample(at(t0, 2.0));
        assert_eq!(
            th.verdict(),
            Verdict::Ok,
            "an enabled non-CPU zone is not watched"
        );
    }

    fn raised_settings(tree: &Tree) -> Settings {
        Settings {
            max_temp_mc: Some(85_000),
            ..tree.settings()
        }
    }

    #[test]
    fn no_zones_is_unknown_but_a_busy_cooler_still_throttles() {
        let tree = Tree::empty("no-zones");
        tree.put("thermal/cooling_device0/type", "cpufreq-cpu0\n");
        tree.put("thermal/cooling_device0/cur_state", "0\n");
        tree.put("thermal/cooling_device0/max_state", "4\n");
        tree.put("thermal/cooling_device1/type", "Fan\n");
        tree.put("thermal/cooling_device1/cur_state", "3\n");
        tree.put("thermal/cooling_device1/max_state", "3\n");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        assert_eq!(
            th.verdict(),
            Verdict::Unknown,
            "a running fan is not throttling"
        );
        assert!(th.accepts());
        assert_eq!(th.effective_slots(4), 4);
        assert_eq!(th.temp_mc(), None);
        assert_eq!(th.limit_mc(), None);
        assert_eq!(
            status_of(&th),
            [
                ("thermal", "unknown"),
                ("throttled_s", "0"),
                ("cooling", "0/4"),
                ("freq_cap", "no")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        tree.cooler(2);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        tree.cooler(0);
        th.sample(at(t0, 2.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        th.sample(at(t0, 4.0));
        assert_eq!(th.verdict(), Verdict::Unknown);
        assert_eq!(th.problems.count, 1, "the missing zones, once");
        assert_eq!(status_value(&th, "throttled_s").as_deref(), Some("3"));

        // No thermal tree at all: cpufreq alone decides.
        let tree = Tree::amlogic("no-thermal-root");
        fs::remove_dir_all(tree.root.join("thermal")).unwrap();
        let mut th = Thermal::new(tree.settings(), t0);
        assert_eq!(th.verdict(), Verdict::Unknown);
        assert!(th
            .describe()
            .starts_with("unknown: no readable CPU temperature under "));
        tree.freq(1_000_000);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        th.sample(at(t0, 2.0));
        assert_eq!(th.problems.count, 1, "the missing thermal root, once");
    }

    #[test]
    fn garbage_or_missing_temp_is_unknown_and_logged_once() {
        let tree = Tree::amlogic("garbage");
        tree.put("thermal/thermal_zone0/temp", "banana\n");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        assert_eq!(th.verdict(), Verdict::Unknown);
        assert_eq!(th.temp_mc(), None);
        assert_eq!(th.headroom_mc(), None);
        assert_eq!(th.limit_mc(), Some(80_000), "the trip is still known");
        for s in 1..100 {
            th.sample(at(t0, f64::from(s)));
        }
        assert_eq!(th.verdict(), Verdict::Unknown);
        assert_eq!(th.problems.count, 1);
        // Same file missing now: still the same file, still once.
        tree.remove("thermal/thermal_zone0/temp");
        th.sample(at(t0, 200.0));
        assert_eq!(th.verdict(), Verdict::Unknown);
        assert_eq!(th.problems.count, 1);
        // Absurd values are garbage too.
        tree.put("thermal/thermal_zone0/temp", "4294967295\n");
        th.sample(at(t0, 201.0));
        assert_eq!(th.verdict(), Verdict::Unknown);
        // Readable again: back to normal.
        tree.temp(70.0);
        th.sample(at(t0, 202.0));
        assert_eq!(th.verdict(), Verdict::Ok);
        assert_eq!(th.temp_mc(), Some(70_000));
        // Garbage elsewhere: logged once, and a garbage cooler is no sign.
        tree.put("thermal/cooling_device0/cur_state", "\u{1}\u{2}\n");
        for s in 203..210 {
            th.sample(at(t0, f64::from(s)));
        }
        assert_eq!(th.verdict(), Verdict::Ok);
        assert_eq!(th.problems.count, 2);
        // A long value is garbage, not an overflow.
        tree.put("thermal/thermal_zone0/temp", &"7".repeat(300));
        th.sample(at(t0, 211.0));
        assert_eq!(th.verdict(), Verdict::Unknown);
    }

    #[test]
    fn missing_hyst_files_fall_back_quietly() {
        let tree = Tree::amlogic("no-hyst");
        for k in 0..3 {
            tree.remove(&format!("thermal/thermal_zone0/trip_point_{k}_hyst"));
        }
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        tree.temp(80.0);
        th.sample(at(t0, 1.0));
        tree.temp(73.0);
        th.sample(at(t0, 2.0));
        assert_eq!(th.verdict(), Verdict::Throttled, "2 C default hyst");
        tree.temp(72.9);
        th.sample(at(t0, 3.0));
        assert_eq!(th.verdict(), Verdict::Ok);
        assert_eq!(th.problems.count, 0);

        // --hyst overrides the trip's.
        let settings = Settings {
            hyst_mc: Some(10_000),
            ..tree.settings()
        };
        let mut th = Thermal::new(settings, t0);
        tree.temp(80.0);
        th.sample(at(t0, 1.0));
        tree.temp(65.5);
        th.sample(at(t0, 2.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        tree.temp(64.9);
        th.sample(at(t0, 3.0));
        assert_eq!(th.verdict(), Verdict::Ok);
    }

    #[test]
    fn max_temp_overrides_the_trip() {
        let tree = Tree::amlogic("max-temp");
        let settings = Settings {
            max_temp_mc: Some(70_000),
            ..tree.settings()
        };
        let t0 = Instant::now();
        let mut th = Thermal::new(settings, t0);
        tree.temp(64.9);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Ok);
        tree.temp(66.0);
        th.sample(at(t0, 2.0));
        assert_eq!(th.verdict(), Verdict::Warm);
        tree.temp(70.0);
        th.sample(at(t0, 3.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert_eq!(
            th.describe(),
            "throttled: cpu-thermal 70.0 C >= --max-temp 70.0 C"
        );
        assert_eq!(status_value(&th, "limit_c").as_deref(), Some("70.0"));
        // The passive trip's hyst (2 C) still applies: ok below 63.
        tree.temp(63.0);
        th.sample(at(t0, 4.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        tree.temp(62.9);
        th.sample(at(t0, 5.0));
        assert_eq!(th.verdict(), Verdict::Ok);
    }

    #[test]
    fn disabled_settings_are_off_whatever_the_heat() {
        let tree = Tree::amlogic("off");
        tree.temp(105.0);
        tree.cooler(6);
        let settings = Settings {
            enabled: false,
            ..tree.settings()
        };
        let t0 = Instant::now();
        let mut th = Thermal::new(settings, t0);
        th.sample(at(t0, 1.0));
        assert_eq!(th.verdict(), Verdict::Off);
        assert!(th.accepts());
        assert_eq!(th.effective_slots(4), 4);
        assert_eq!(th.last_sample(), at(t0, 1.0));
        assert_eq!(th.temp_mc(), None);
        assert_eq!(th.limit_mc(), None);
        assert_eq!(
            status_of(&th),
            vec![("thermal".to_string(), "off".to_string())]
        );
        assert_eq!(th.describe(), "off: thermal checks disabled");
        assert_eq!(th.retry_after(), Duration::from_secs(1));

        let missing = Settings {
            enabled: false,
            thermal_root: tree.root.join("nowhere"),
            ..Settings::defaults()
        };
        let th = Thermal::new(missing, t0);
        assert_eq!(th.problems.count, 0, "nothing is read");
    }

    #[test]
    fn status_reports_temp_limit_headroom_and_throttled_time() {
        let tree = Tree::amlogic("status");
        tree.temp(61.3);
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
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
        assert_eq!(status_of(&th), want);
        assert_eq!(
            th.describe(),
            "ok: cpu-thermal 61.3 C, 18.7 C below passive trip 80.0 C"
        );
        tree.temp(85.0);
        for s in 1..=6 {
            th.sample(at(t0, f64::from(s)));
        }
        tree.temp(60.0);
        th.sample(at(t0, 7.5));
        assert_eq!(th.verdict(), Verdict::Ok);
        assert_eq!(status_value(&th, "throttled_s").as_deref(), Some("6"));
        assert_eq!(status_value(&th, "headroom_c").as_deref(), Some("20.0"));
        assert_eq!(th.last_sample(), at(t0, 7.5));
    }

    #[test]
    fn retry_after_grows_with_the_heat() {
        let tree = Tree::amlogic("retry");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        assert_eq!(th.retry_after(), Duration::from_secs(1));
        tree.temp(81.0);
        th.sample(at(t0, 1.0));
        // 5 s + 1 s per degree above 73.
        assert_eq!(th.retry_after(), Duration::from_secs(13));
        tree.temp(90.0);
        th.sample(at(t0, 2.0));
        assert_eq!(th.retry_after(), Duration::from_secs(22));
        tree.temp(107.0);
        th.sample(at(t0, 3.0));
        assert_eq!(th.verdict(), Verdict::Critical);
        assert_eq!(th.retry_after(), Duration::from_secs(39));
        tree.temp(150.0);
        th.sample(at(t0, 4.0));
        assert_eq!(th.retry_after(), RETRY_MAX);
    }

    #[test]
    fn cpu_zones_are_chosen_by_type_else_all_zones() {
        let tree = Tree::empty("zone-choice");
        let zone = |n: usize, kind: &str, temp: i64| {
            tree.put(
                &format!("thermal/thermal_zone{n}/type"),
                &format!("{kind}\n"),
            );
            tree.put(
                &format!("thermal/thermal_zone{n}/temp"),
                &format!("{temp}\n"),
            );
        };
        zone(0, "ddr-thermal", 90_000);
        zone(1, "CPU-thermal", 50_000);
        zone(2, "soc_thermal", 55_000);
        tree.put("thermal/thermal_zone1/trip_point_0_type", "passive\n");
        tree.put("thermal/thermal_zone1/trip_point_0_temp", "85000\n");
        tree.put("thermal/thermal_zone2/trip_point_0_type", "passive\n");
        tree.put("thermal/thermal_zone2/trip_point_0_temp", "80000\n");
        let t0 = Instant::now();
        let th = Thermal::new(tree.settings(), t0);
        assert_eq!(th.verdict(), Verdict::Ok, "{}", th.describe());
        assert_eq!(th.temp_mc(), Some(55_000), "hottest CPU zone; ddr ignored");
        assert_eq!(
            th.limit_mc(),
            Some(80_000),
            "lowest passive trip of CPU zones"
        );

        let tree = Tree::empty("zone-fallback");
        let zone = |n: usize, kind: &str, temp: &str| {
            tree.put(
                &format!("thermal/thermal_zone{n}/type"),
                &format!("{kind}\n"),
            );
            tree.put(&format!("thermal/thermal_zone{n}/temp"), temp);
        };
        zone(0, "acpitz", "45000\n");
        zone(10, "x86_pkg_temp", "52\n"); // whole degrees, as some vendor kernels print
        tree.put("thermal/thermal_zone0/trip_point_0_type", "hot\n");
        tree.put("thermal/thermal_zone0/trip_point_0_temp", "95000\n");
        tree.put("thermal/thermal_zone0/trip_point_1_type", "active\n");
        tree.put("thermal/thermal_zone0/trip_point_1_temp", "50000\n");
        // Placeholders for unused trips are not limits.
        tree.put("thermal/thermal_zone10/trip_point_0_type", "hot\n");
        tree.put("thermal/thermal_zone10/trip_point_0_temp", "-274000\n");
        tree.put("thermal/thermal_zone10/trip_point_1_type", "hot\n");
        tree.put("thermal/thermal_zone10/trip_point_1_temp", "0\n");
        let th = Thermal::new(tree.settings(), t0);
        assert_eq!(th.temp_mc(), Some(52_000));
        assert_eq!(
            th.limit_mc(),
            Some(95_000),
            "hot trip when no passive; fans ignored"
        );
        assert_eq!(th.verdict(), Verdict::Ok);
    }

    #[test]
    fn zones_appearing_later_are_found_within_a_minute() {
        let tree = Tree::empty("rediscover");
        let t0 = Instant::now();
        let mut th = Thermal::new(tree.settings(), t0);
        assert_eq!(th.verdict(), Verdict::Unknown);
        tree.put("thermal/thermal_zone0/type", "cpu-thermal\n");
        tree.put("thermal/thermal_zone0/temp", "81000\n");
        tree.put("thermal/thermal_zone0/trip_point_0_type", "passive\n");
        tree.put("thermal/thermal_zone0/trip_point_0_temp", "80000\n");
        th.sample(at(t0, 30.0));
        assert_eq!(th.verdict(), Verdict::Unknown, "no listing on every sample");
        th.sample(at(t0, 60.0));
        assert_eq!(th.verdict(), Verdict::Throttled);
        assert_eq!(th.temp_mc(), Some(81_000));
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
