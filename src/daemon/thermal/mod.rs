//! The box's own thermal state, and whether it should take work: rccd refuses new compiles
//! while the SoC is throttled, so a passively cooled TV box is not handed jobs it would run at
//! a fraction of its clock while a cooler box waits.
//!
//! Two rooms, and the [`Thermal`] that joins them:
//! - `sysfs.rs`, the reader: finds thermal zones, cpufreq cooling devices and cpufreq
//!   policies under the directories in [`Settings`] (the seam the tests and the bench's fake
//!   tree use) and re-reads them about once a second;
//! - `rule.rs`, the rule: does no I/O; it turns what the reader read into a
//!   [`ThermalVerdict`] (its module doc has the state machine), a number of slots, and the
//!   words for logs, rejects and the status reply.
//!
//! What it leaves to others: the event loop owns the clock and calls `sample` from its timer,
//! and `gate.rs` before admitting a job when the last sample is older than a second; `gate.rs`
//! asks [`Thermal::accepts`] and [`Thermal::effective_slots`] (and at `Critical` stops running
//! compiles); the status reply shows [`Thermal::status`]; `--max-temp`, `--margin` and friends
//! are parsed by `rccd` into [`Settings`]. Nothing here spawns a thread, and nothing here
//! stops a job.

mod readings;
mod rule;
mod sysfs;

pub use rule::ThermalVerdict;

use rule::Rule;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use sysfs::Reader;

/// Default `--margin`: the warm band below the limit.
pub const DEFAULT_MARGIN_MC: i64 = 5000;
/// Hysteresis when neither `Settings::hyst_mc` nor the trip gives one, and the least taken from a trip.
pub const DEFAULT_HYST_MC: i64 = 2000;
/// Default time the cooling devices must have been idle before the box is "ok" again.
pub const DEFAULT_CALM: Duration = Duration::from_secs(3);
/// Default distance below the critical trip at which running jobs are stopped.
pub const DEFAULT_CRIT_MARGIN_MC: i64 = 10_000;

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

/// The box's thermal state: the reader and the rule. See the module doc.
#[derive(Debug)]
pub struct Thermal {
    reader: Reader,
    rule: Rule,
    /// The last "what is watched" line logged, so rediscovery logs only changes.
    announced: String,
}

impl Thermal {
    /// Discovers zones, cooling devices and policies, takes the cpufreq baseline and samples
    /// once. With `enabled == false` it reads nothing.
    pub fn new(settings: Settings, now: Instant) -> Thermal {
        let mut t = Thermal {
            reader: Reader::new(&settings, now),
            rule: Rule::new(settings, now),
            announced: String::new(),
        };
        if t.rule.settings().enabled {
            t.discover(now);
            t.step(now);
        }
        log::info!("thermal: {}", t.describe());
        t
    }

    /// What is watched (zones, the limit, coolers, policies) and what it says now: for
    /// `rccd --check`, so a user sees on a real box what rccd found there.
    pub fn report(&self) -> String {
        if !self.rule.settings().enabled {
            return "thermal: off".into();
        }
        format!("{}\nthermal now: {}", self.announced, self.describe())
    }

    /// Re-reads every temperature, mode, cooling state and frequency cap, and steps the rule.
    pub fn sample(&mut self, now: Instant) {
        if !self.rule.settings().enabled {
            self.rule.step(now);
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
        if self.reader.due(now) {
            self.discover(now);
        }
        self.reader.read(&mut self.rule.readings);
        self.rule.step(now);
    }

    /// Lists what there is to read again, and logs what is watched when that changed.
    fn discover(&mut self, now: Instant) {
        let found = self.reader.discover(now, &self.rule.readings);
        self.rule.found(found);
        let line = self.rule.watching();
        if line != self.announced {
            log::info!("{line}");
            self.announced = line;
        }
    }

    /// When `sample` (or `new`) last ran.
    pub fn last_sample(&self) -> Instant {
        self.rule.last_sample()
    }

    /// What the box should do with work, as of the last sample.
    pub fn verdict(&self) -> ThermalVerdict {
        self.rule.verdict()
    }

    /// May a new job start? (`Ok`, `Warm`, `Unknown`, `Off`.)
    pub fn accepts(&self) -> bool {
        self.rule.accepts()
    }

    /// How many of `slots` the box should fill now (see `Rule::effective_slots` in `rule.rs`).
    pub fn effective_slots(&self, slots: usize) -> usize {
        self.rule.effective_slots(slots)
    }

    /// Rough time until the box may accept again (see `Rule::retry_after` in `rule.rs`).
    pub fn retry_after(&self) -> Duration {
        self.rule.retry_after()
    }

    /// Temperature of the hottest readable CPU zone (m°C).
    pub fn temp_mc(&self) -> Option<i64> {
        self.rule.temp_mc()
    }

    /// The limit of the zone closest to its limit (see `Rule::limit_mc` in `rule.rs`).
    pub fn limit_mc(&self) -> Option<i64> {
        self.rule.limit_mc()
    }

    /// Limit − temperature of the zone closest to its limit (m°C; negative when over).
    pub fn headroom_mc(&self) -> Option<i64> {
        self.rule.headroom_mc()
    }

    /// One line for logs and reject texts, e.g.
    /// `throttled: cpu-thermal 81.2 C >= passive trip 80.0 C`.
    pub fn describe(&self) -> String {
        self.rule.describe()
    }

    /// Key/values for the status reply (see `Rule::status` in `rule.rs`).
    pub fn status(&self, out: &mut Vec<(String, String)>) {
        self.rule.status(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_thermal_checks_off_nothing_is_read() {
        let settings = Settings {
            enabled: false,
            thermal_root: std::env::temp_dir().join("rcc-thermal-nowhere"),
            ..Settings::defaults()
        };
        let t0 = Instant::now();
        let mut th = Thermal::new(settings, t0);
        th.sample(t0 + Duration::from_secs(1));
        assert_eq!(th.verdict(), ThermalVerdict::Off);
        assert_eq!(th.last_sample(), t0 + Duration::from_secs(1));
        assert_eq!(th.report(), "thermal: off");
        assert_eq!(th.reader.problems.count, 0, "nothing is read");
    }
}
