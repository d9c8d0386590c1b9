//! The thermal reader: finds thermal zones, cpufreq cooling devices and cpufreq policies
//! under the directories in `Settings` (the seam the tests and the bench's fake tree use),
//! and re-reads their values on every sample into `Readings`. Nothing here
//! decides anything (`rule` does).
//!
//! What is read (sysfs, nothing hard-coded for one SoC):
//! - `thermal_root/thermal_zone*/`: `type`, `temp` (m°C), `mode` (`disabled` means the kernel
//!   will not throttle for that zone; a missing file means enabled), and the trips
//!   `trip_point_K_{type,temp,hyst}`. Trips are read when zones are discovered; `temp` and
//!   `mode` on every sample.
//! - `thermal_root/cooling_device*/` whose type starts with `cpufreq-` or `thermal-cpufreq-`:
//!   `cur_state` on every sample, `max_state` at discovery. Fans and other coolers are not a
//!   sign of throttling and are ignored.
//! - `cpufreq_root/policy*/scaling_max_freq` (kHz) on every sample (not `cpuinfo_max_freq`:
//!   Armbian caps the frequency itself at boot). A missing cpufreq root is normal.
//!
//! Every file is opened, read into a stack buffer and closed on each sample: the bench replaces
//! its files by rename, and a kept descriptor would read the old file forever. Steady-state
//! sampling does not allocate. Discovery (directory listing) runs at construction and again at
//! most every 60 s while some read fails or no zone exists (a sensor driver loaded late). A
//! missing, unreadable or garbage file is logged once per path and otherwise skipped.

use super::readings::{Cooler, Policy, Readings, Trip, TripKind, Zone};
use super::Settings;
use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// Paths already complained about, so each problem is logged once.
#[derive(Debug, Default)]
pub(super) struct Problems {
    seen: HashSet<PathBuf>,
    /// How many were logged (tests read it instead of capturing the log).
    pub(super) count: u64,
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

/// The files of one zone read on every sample.
#[derive(Debug)]
struct ZoneFiles {
    temp: PathBuf,
    mode: PathBuf,
}

/// Where the readings come from: the roots, and for each zone, cooler and policy of the
/// last discovery (in the order of its `Readings`) the files read on every sample.
#[derive(Debug)]
pub(super) struct Reader {
    thermal_root: PathBuf,
    cpufreq_root: PathBuf,
    zones: Vec<ZoneFiles>,
    coolers: Vec<PathBuf>,
    policies: Vec<PathBuf>,
    pub(super) problems: Problems,
    last_discovery: Instant,
    rediscover: bool,
}

impl Reader {
    pub(super) fn new(settings: &Settings, now: Instant) -> Reader {
        Reader {
            thermal_root: settings.thermal_root.clone(),
            cpufreq_root: settings.cpufreq_root.clone(),
            zones: Vec::new(),
            coolers: Vec::new(),
            policies: Vec::new(),
            problems: Problems::default(),
            last_discovery: now,
            rediscover: false,
        }
    }

    /// Whether the tree should be listed again: some read failed or no zone was found, and
    /// the last listing is `REDISCOVER_EVERY` old.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.rediscover && now.saturating_duration_since(self.last_discovery) >= REDISCOVER_EVERY
    }

    /// Lists zones, cpufreq coolers and policies again (allocates; rare). A policy keeps
    /// its baseline from `old`.
    pub(super) fn discover(&mut self, now: Instant, old: &Readings) -> Readings {
        self.last_discovery = now;
        let mut found = Readings::default();
        self.discover_zones(&mut found);
        self.discover_coolers(&mut found);
        self.discover_policies(&mut found, old);
        found
    }

    fn discover_zones(&mut self, found: &mut Readings) {
        self.zones.clear();
        let root = &self.thermal_root;
        match numbered_dirs(root, "thermal_zone") {
            Ok(dirs) => {
                for (name, dir) in dirs {
                    found.zones.push(load_zone(&dir, name, &mut self.problems));
                    self.zones.push(ZoneFiles {
                        temp: dir.join("temp"),
                        mode: dir.join("mode"),
                    });
                }
            }
            Err(e) => self.problems.report(
                root,
                format_args!("cannot list ({e}); CPU temperature unknown"),
            ),
        }
        if found.zones.is_empty() && root.is_dir() {
            self.problems.report(
                root,
                format_args!("no thermal_zone*; CPU temperature unknown"),
            );
        }
    }

    fn discover_coolers(&mut self, found: &mut Readings) {
        self.coolers.clear();
        let Ok(dirs) = numbered_dirs(&self.thermal_root, "cooling_device") else {
            return;
        };
        for (_, dir) in dirs {
            if let Some(c) = load_cooler(&dir, &mut self.problems) {
                found.coolers.push(c);
                self.coolers.push(dir.join("cur_state"));
            }
        }
    }

    fn discover_policies(&mut self, found: &mut Readings, old: &Readings) {
        self.policies.clear();
        match numbered_dirs(&self.cpufreq_root, "policy") {
            Ok(dirs) => {
                for (name, dir) in dirs {
                    let baseline_khz = old
                        .policies
                        .iter()
                        .find(|p| p.name == name)
                        .and_then(|p| p.baseline_khz);
                    found.policies.push(Policy {
                        name,
                        baseline_khz,
                        max_khz: None,
                    });
                    self.policies.push(dir.join("scaling_max_freq"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => self.problems.report(
                &self.cpufreq_root,
                format_args!("cannot list ({e}); frequency caps not watched"),
            ),
        }
    }

    /// Re-reads every per-sample file into `r` (as the last `discover` returned it); marks
    /// the tree for listing again when some read failed or no zone exists.
    pub(super) fn read(&mut self, r: &mut Readings) {
        let mut buf = [0u8; VALUE_MAX];
        let mut complete = true;
        let problems = &mut self.problems;
        for (z, files) in r.zones.iter_mut().zip(&self.zones) {
            z.temp_mc = read_temp(&files.temp, &mut buf, problems, &z.label);
            complete &= z.temp_mc.is_some();
            z.disabled = read_disabled(&files.mode, &mut buf, problems);
        }
        for (c, path) in r.coolers.iter_mut().zip(&self.coolers) {
            c.cur_state = read_u64(path, &mut buf, problems, "cooling state");
            complete &= c.cur_state.is_some();
        }
        for (p, path) in r.policies.iter_mut().zip(&self.policies) {
            p.max_khz = read_u64(path, &mut buf, problems, "frequency in kHz");
            complete &= p.max_khz.is_some();
        }
        self.rediscover = !complete || r.zones.is_empty();
    }
}

/// A zone's temperature (m°C), `None` (logged once) when unreadable or garbage.
fn read_temp(
    path: &Path,
    buf: &mut [u8; VALUE_MAX],
    problems: &mut Problems,
    zone: &str,
) -> Option<i64> {
    match read_value(path, buf) {
        Ok(raw) => match parse_i64(raw).and_then(normalize_temp) {
            Some(t) => Some(t),
            None => {
                problems.report(
                    path,
                    format_args!(
                        "\"{}\" is not a temperature in millidegrees C; zone {zone} ignored \
                         while it stays so",
                        raw.escape_ascii()
                    ),
                );
                None
            }
        },
        Err(e) => {
            problems.report(
                path,
                format_args!("cannot read ({e}); zone {zone} ignored while it fails"),
            );
            None
        }
    }
}

/// Whether a zone's `mode` says `disabled` (a missing or odd file is taken as enabled).
fn read_disabled(path: &Path, buf: &mut [u8; VALUE_MAX], problems: &mut Problems) -> bool {
    match read_value(path, buf) {
        Ok(b"disabled") => true,
        Ok(b"enabled") => false,
        Ok(raw) => {
            problems.report(
                path,
                format_args!(
                    "\"{}\" is neither enabled nor disabled; taken as enabled",
                    raw.escape_ascii()
                ),
            );
            false
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            problems.report(path, format_args!("cannot read ({e}); taken as enabled"));
            false
        }
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

/// Zone `name` in `dir`: its type and its trips.
fn load_zone(dir: &Path, name: String, problems: &mut Problems) -> Zone {
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
    let mut zone = Zone::new(name, label);
    for k in trip_numbers(dir) {
        if let Some((kind, trip)) = load_trip(dir, k, problems) {
            zone.add_trip(kind, trip);
        }
    }
    zone
}

/// The `K` of every `trip_point_K_type` in `dir`.
fn trip_numbers(dir: &Path) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name();
            let n = n.to_str()?;
            n.strip_prefix("trip_point_")?
                .strip_suffix("_type")?
                .parse()
                .ok()
        })
        .collect()
}

/// Trip `k` of the zone in `dir`, if it is one that limits the box and is not a
/// placeholder.
fn load_trip(dir: &Path, k: u64, problems: &mut Problems) -> Option<(TripKind, Trip)> {
    let type_path = dir.join(format!("trip_point_{k}_type"));
    let temp_path = dir.join(format!("trip_point_{k}_temp"));
    let kind = match fs::read_to_string(&type_path).as_deref().map(str::trim) {
        Ok("passive") => TripKind::Passive,
        Ok("hot") => TripKind::Hot,
        Ok("critical") => TripKind::Critical,
        Ok(_) => return None, // active (fans) and unknown kinds do not limit us
        Err(e) => {
            problems.report(&type_path, format_args!("cannot read ({e}); trip ignored"));
            return None;
        }
    };
    let mc = match fs::read_to_string(&temp_path) {
        Ok(t) => match parse_i64(t.as_bytes()).and_then(normalize_temp) {
            Some(mc) if mc >= TRIP_MIN_MC => mc,
            _ => {
                // Unused trips read as placeholders (-274000, 0, INT_MAX): not a problem.
                log::debug!("thermal: {}: {:?} ignored", temp_path.display(), t.trim());
                return None;
            }
        },
        Err(e) => {
            problems.report(&temp_path, format_args!("cannot read ({e}); trip ignored"));
            return None;
        }
    };
    // The hysteresis file may be missing or unreadable: the default applies.
    let hyst_mc = fs::read_to_string(dir.join(format!("trip_point_{k}_hyst")))
        .ok()
        .and_then(|h| parse_i64(h.as_bytes()))
        .filter(|h| *h >= 0);
    Some((kind, Trip { mc, hyst_mc }))
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
    use super::super::rule::ThermalVerdict;
    use super::super::Thermal;
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

        /// A reader of this tree, what its first discovery and read found, and the reader.
        fn read(&self) -> (Reader, Readings) {
            let now = Instant::now();
            let mut reader = Reader::new(&self.settings(), now);
            let mut r = reader.discover(now, &Readings::default());
            reader.read(&mut r);
            (reader, r)
        }
    }

    fn trip(mc: i64, hyst_mc: Option<i64>) -> Option<Trip> {
        Some(Trip { mc, hyst_mc })
    }

    #[test]
    fn a_kernels_tree_is_read_as_it_stands() {
        let tree = Tree::amlogic("kernel");
        let (mut reader, mut r) = tree.read();
        let mut zone = Zone::new("thermal_zone0".into(), "cpu-thermal".into());
        zone.passive = trip(80_000, Some(2_000));
        zone.hot = trip(90_000, Some(2_000));
        zone.critical = trip(110_000, Some(2_000));
        zone.temp_mc = Some(52_000);
        let want = Readings {
            zones: vec![zone],
            coolers: vec![Cooler {
                label: "thermal-cpufreq-0".into(),
                max_state: Some(6),
                cur_state: Some(0),
            }],
            policies: vec![Policy {
                name: "policy0".into(),
                baseline_khz: None,
                max_khz: Some(1_512_000),
            }],
        };
        assert_eq!(r, want);
        assert_eq!(reader.problems.count, 0);
        // Files replaced by rename are seen at the next read.
        tree.put("thermal/thermal_zone0/temp", "81200\n");
        tree.put("thermal/thermal_zone0/mode", "disabled\n");
        tree.put("thermal/cooling_device0/cur_state", "2\n");
        tree.put("cpufreq/policy0/scaling_max_freq", "1200000\n");
        reader.read(&mut r);
        assert_eq!(r.zones[0].temp_mc, Some(81_200));
        assert!(r.zones[0].disabled);
        assert_eq!(r.coolers[0].cur_state, Some(2));
        assert_eq!(r.policies[0].max_khz, Some(1_200_000));
        // A missing mode file means enabled, and is not a problem.
        tree.remove("thermal/thermal_zone0/mode");
        reader.read(&mut r);
        assert!(!r.zones[0].disabled);
        assert_eq!(reader.problems.count, 0);

        let bench = Tree::bench("kernel-bench");
        let (reader, r) = bench.read();
        assert_eq!(r.zones[0].passive, trip(75_000, Some(5_000)));
        assert_eq!(r.zones[0].critical, trip(95_000, Some(0)));
        assert_eq!(r.coolers[0].max_state, Some(4));
        assert!(r.policies.is_empty());
        assert_eq!(
            reader.problems.count, 0,
            "a bench tree without cpufreq is normal"
        );
    }

    #[test]
    fn odd_but_honest_trees_are_read_quietly() {
        let tree = Tree::empty("odd");
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
        // A fan is no sign of throttling.
        tree.put("thermal/cooling_device0/type", "Fan\n");
        tree.put("thermal/cooling_device0/cur_state", "3\n");
        let (reader, r) = tree.read();
        let names: Vec<&str> = r.zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(
            names,
            ["thermal_zone0", "thermal_zone10"],
            "sorted by number"
        );
        assert_eq!(r.zones[0].hot, trip(95_000, None), "no hyst file: none");
        assert_eq!(r.zones[0].passive, None, "an active trip is a fan's");
        assert_eq!(r.zones[1].temp_mc, Some(52_000));
        assert_eq!((r.zones[1].hot, r.zones[1].passive), (None, None));
        assert!(r.coolers.is_empty());
        assert_eq!(reader.problems.count, 0);
    }

    #[test]
    fn garbage_or_missing_files_are_logged_once() {
        let tree = Tree::amlogic("garbage");
        tree.put("thermal/thermal_zone0/temp", "banana\n");
        let (mut reader, mut r) = tree.read();
        assert_eq!(r.zones[0].temp_mc, None);
        for _ in 1..100 {
            reader.read(&mut r);
        }
        assert_eq!(reader.problems.count, 1);
        // Same file missing now: still the same file, still once.
        tree.remove("thermal/thermal_zone0/temp");
        reader.read(&mut r);
        assert_eq!(r.zones[0].temp_mc, None);
        assert_eq!(reader.problems.count, 1);
        // Absurd values are garbage too.
        tree.put("thermal/thermal_zone0/temp", "4294967295\n");
        reader.read(&mut r);
        assert_eq!(r.zones[0].temp_mc, None);
        // Readable again: back to normal.
        tree.put("thermal/thermal_zone0/temp", "70000\n");
        reader.read(&mut r);
        assert_eq!(r.zones[0].temp_mc, Some(70_000));
        // Garbage elsewhere: logged once.
        tree.put("thermal/cooling_device0/cur_state", "\u{1}\u{2}\n");
        for _ in 0..7 {
            reader.read(&mut r);
        }
        assert_eq!(r.coolers[0].cur_state, None);
        assert_eq!(reader.problems.count, 2);
        // A long value is garbage, not an overflow.
        tree.put("thermal/thermal_zone0/temp", &"7".repeat(300));
        reader.read(&mut r);
        assert_eq!(r.zones[0].temp_mc, None);

        // No zones: said once.
        let tree = Tree::empty("no-zones");
        let (mut reader, mut r) = tree.read();
        reader.read(&mut r);
        assert_eq!(reader.problems.count, 1, "the missing zones, once");
        // No thermal tree at all: said once; cpufreq is still read.
        let tree = Tree::amlogic("no-thermal-root");
        fs::remove_dir_all(tree.root.join("thermal")).unwrap();
        let (mut reader, mut r) = tree.read();
        reader.read(&mut r);
        assert_eq!(reader.problems.count, 1, "the missing thermal root, once");
        assert_eq!(r.policies[0].max_khz, Some(1_512_000));
    }

    #[test]
    fn zones_appearing_later_are_found_within_a_minute() {
        let tree = Tree::empty("rediscover");
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut th = Thermal::new(tree.settings(), t0);
        assert_eq!(th.verdict(), ThermalVerdict::Unknown);
        tree.put("thermal/thermal_zone0/type", "cpu-thermal\n");
        tree.put("thermal/thermal_zone0/temp", "81000\n");
        tree.put("thermal/thermal_zone0/trip_point_0_type", "passive\n");
        tree.put("thermal/thermal_zone0/trip_point_0_temp", "80000\n");
        th.sample(at(30));
        assert_eq!(
            th.verdict(),
            ThermalVerdict::Unknown,
            "no listing on every sample"
        );
        th.sample(at(60));
        assert_eq!(th.verdict(), ThermalVerdict::Throttled);
        assert_eq!(th.temp_mc(), Some(81_000));
    }

    #[test]
    fn the_bench_tree_throttles_through_thermal() {
        let bench = Tree::bench("bench");
        let t0 = Instant::now();
        let mut th = Thermal::new(bench.settings(), t0);
        assert_eq!(th.verdict(), ThermalVerdict::Ok);
        assert!(th
            .report()
            .contains("CPU zones cpu-thermal (thermal_zone0)"));
        bench.put("thermal/thermal_zone0/temp", "75000\n");
        th.sample(t0 + Duration::from_secs(1));
        assert_eq!(th.verdict(), ThermalVerdict::Throttled);
        assert_eq!(
            th.describe(),
            "throttled: cpu-thermal 75.0 C >= passive trip 75.0 C"
        );
        assert_eq!(th.reader.problems.count, 0);
    }
}
