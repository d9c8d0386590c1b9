//! What the thermal reader found and last read, as plain data: zones with their trips and
//! temperature, cpufreq cooling devices with their state, cpufreq policies with their cap.
//! `sysfs` fills it, `rule` judges it, and the rule's tests write it by hand.

/// A trip point as read: temperature and raw hysteresis (m°C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trip {
    pub mc: i64,
    pub hyst_mc: Option<i64>,
}

/// The kinds of trip point that limit the box (active ones drive fans and do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripKind {
    Passive,
    Hot,
    Critical,
}

/// A thermal zone: what discovery found, and what the last sample read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// `thermal_zone0`.
    pub name: String,
    /// Its `type`, or `name` when that is unreadable.
    pub label: String,
    /// Whether it is watched as a CPU zone (set by `Rule::found`).
    pub cpu: bool,
    /// Its lowest trip of each kind.
    pub passive: Option<Trip>,
    pub hot: Option<Trip>,
    pub critical: Option<Trip>,
    /// As of the last sample.
    pub temp_mc: Option<i64>,
    pub disabled: bool,
}

impl Zone {
    /// A zone called `name` of type `label`, with no trips and nothing read yet.
    pub fn new(name: String, label: String) -> Zone {
        Zone {
            name,
            label,
            cpu: false,
            passive: None,
            hot: None,
            critical: None,
            temp_mc: None,
            disabled: false,
        }
    }

    /// Keeps `trip` if it is the lowest of its `kind` so far.
    pub fn add_trip(&mut self, kind: TripKind, trip: Trip) {
        let slot = match kind {
            TripKind::Passive => &mut self.passive,
            TripKind::Hot => &mut self.hot,
            TripKind::Critical => &mut self.critical,
        };
        if slot.map_or(true, |old| trip.mc < old.mc) {
            *slot = Some(trip);
        }
    }
}

/// A cpufreq cooling device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cooler {
    pub label: String,
    pub max_state: Option<u64>,
    /// As of the last sample.
    pub cur_state: Option<u64>,
}

/// A cpufreq policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    /// The highest `scaling_max_freq` read so far (kHz).
    pub baseline_khz: Option<u64>,
    /// As of the last sample (kHz).
    pub max_khz: Option<u64>,
}

/// What the reader found and last read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readings {
    pub zones: Vec<Zone>,
    pub coolers: Vec<Cooler>,
    pub policies: Vec<Policy>,
}
