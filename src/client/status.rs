//! `rcc --status`: ask every box in the host list how it is and print one row per box, as a
//! table for people or as `key=value` lines (`--format kv`) for scripts and monitoring;
//! `--watch` redraws it every second, a terminal monitor for the whole farm.
//!
//! A box's state says whether it can take jobs: `up`, `hot` (thermally throttled), `full`
//! (no room in its temp dir), `broken: <why>` (its own word: its temp dir or its compilers),
//! `mismatch: <compiler>` (none of its compilers is the master's), or `down`. What a box
//! says is the network's: control characters never reach the terminal.

use super::remote::{self, Timeouts};
use crate::rules::hosts::{HostKind, HostList, Origin};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One box's answer, or why there was none.
pub struct Row {
    pub host: String,
    pub reply: Result<Vec<(String, String)>, String>,
    /// The master's compilers (`gcc`, `cc`) and their identities, to tell a box whose
    /// compilers differ.
    pub master: Vec<(String, String)>,
    /// Whether the host list names it or discovery found it.
    pub origin: Origin,
}

impl Row {
    fn get(&self, key: &str) -> Option<&str> {
        self.reply
            .as_ref()
            .ok()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Asks every TCP host of the list, all at once (a box that is down costs the connect
/// timeout once, not once per box after it), and keeps the list's order.
pub fn collect(list: &HostList, timeouts: Timeouts) -> Vec<Row> {
    let boxes: Vec<&crate::rules::hosts::HostSpec> = list
        .hosts
        .iter()
        .filter(|h| matches!(h.kind, HostKind::Tcp { .. }))
        .collect();
    let addrs: Vec<String> = boxes.iter().map(|h| h.addr_string()).collect();
    let rows: Vec<Row> = std::thread::scope(|s| {
        let asks: Vec<_> = addrs
            .iter()
            .map(|a| s.spawn(move || remote::status(a, timeouts).map_err(|e| e.to_string())))
            .collect();
        addrs
            .iter()
            .zip(asks)
            .zip(&boxes)
            .map(|((a, ask), h)| Row {
                host: a.clone(),
                origin: h.origin,
                reply: ask
                    .join()
                    .unwrap_or_else(|_| Err("asking it failed".to_string())),
                master: Vec::new(),
            })
            .collect()
    });
    rows.into_iter()
        .map(|mut r| {
            r.master = master_for(&r);
            r
        })
        .collect()
}

/// The targets a box's compilers compile for (`... for aarch64-linux-gnu`), at most a few.
fn targets(r: &Row) -> Vec<&str> {
    let mut out: Vec<&str> = r
        .reply
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("compiler."))
        .filter_map(|(_, id)| id.rsplit_once(" for ").map(|(_, t)| t))
        .collect();
    out.sort();
    out.dedup();
    out.truncate(4);
    out
}

/// The names of the master's compilers a box's are compared with: `gcc`, the cross
/// compiler for each target the box compiles for (`aarch64-linux-gnu-gcc`, as
/// `CC="rcc aarch64-linux-gnu-gcc"` runs it), and `cc`. A box's words become names looked
/// up on PATH: only compilers' names, never a path.
fn master_names(r: &Row) -> Vec<String> {
    let cross = targets(r).into_iter().map(|t| format!("{t}-gcc"));
    std::iter::once("gcc".to_string())
        .chain(cross)
        .chain(["cc".to_string()])
        .filter(|n| crate::compiler::is_compiler_name(n))
        .collect()
}

/// The master's compilers of `master_names` that it has, with their identities.
fn master_for(r: &Row) -> Vec<(String, String)> {
    master_names(r)
        .into_iter()
        .filter_map(|n| Some((n.clone(), master_identity(&n)?)))
        .collect()
}

/// The identity of the master's compiler `name`, found on PATH as a build finds it (never
/// rcc itself through a masquerade link); asked once per process (`--watch` asks the boxes
/// every second, not the compilers), for at most a few dozen names.
fn master_identity(name: &str) -> Option<String> {
    type Known = Vec<(String, Option<String>)>;
    static KNOWN: std::sync::Mutex<Known> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, id)) = known.iter().find(|(n, _)| n == name) {
        return id.clone();
    }
    if known.len() >= 32 {
        return None;
    }
    let path = std::env::var_os("PATH");
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    let lookup = super::local::Lookup {
        path: path.as_deref(),
        me: me.as_deref(),
        own_dir: None,
        ran: &[],
    };
    let id = lookup
        .find(OsStr::new(name))
        .and_then(|p| crate::compiler::probe_identity(&p).ok());
    known.push((name.to_string(), id.clone()));
    id
}

/// Text from a box, safe to print: no control characters (a hostile box could move the
/// cursor or rewrite the screen), at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// Most characters of a box's own words (its broken reason, its last error) shown.
const WORDS_CAP: usize = 80;

/// A row's state: `up`, `hot`, `full`, `broken: <why>`, `mismatch: <compiler>` or `down`;
/// what stops the box from taking jobs comes first. A box that does not say its health
/// (an older rccd) is ok.
pub fn state(r: &Row) -> String {
    if r.reply.is_err() {
        return "down".into();
    }
    match r.get("health").unwrap_or("ok") {
        "ok" => {}
        "full" => return "full".into(),
        other => return clean(other, WORDS_CAP),
    }
    if let Some(name) = mismatch(r) {
        return format!("mismatch: {name}");
    }
    match r.get("thermal") {
        Some("throttled" | "critical") => "hot".into(),
        _ => "up".into(),
    }
}

/// The master compiler none of the box's compilers is the same as (`None`: one is, or
/// there is nothing to compare): the first of the master's that compiles for a target the
/// box does, else its first.
fn mismatch(r: &Row) -> Option<&str> {
    let Ok(kv) = &r.reply else {
        return None;
    };
    let boxes: Vec<&str> = kv
        .iter()
        .filter(|(k, _)| k.starts_with("compiler."))
        .map(|(_, v)| v.as_str())
        .collect();
    if boxes.is_empty() || r.master.iter().any(|(_, id)| boxes.contains(&id.as_str())) {
        return None;
    }
    let targets = targets(r);
    let same_target = |id: &str| {
        id.rsplit_once(" for ")
            .is_some_and(|(_, t)| targets.contains(&t))
    };
    r.master
        .iter()
        .find(|(_, id)| same_target(id))
        .or(r.master.first())
        .map(|(name, _)| name.as_str())
}

/// `rcc --status --watch`: asks again every second and redraws the table in place (ANSI
/// home and clear), with the time of the last answer; `--format kv` instead prints one
/// block of lines per second, for a log. Ends when interrupted or when nobody reads the
/// output any more.
pub fn watch(list: &HostList, timeouts: Timeouts, kv: bool) -> u8 {
    let mut out = std::io::stdout();
    loop {
        let started = Instant::now();
        let rows = collect(list, timeouts);
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let clock = format!(
            "{:02}:{:02}:{:02} UTC",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60
        );
        let mut frame = String::new();
        if kv {
            let _ = writeln!(frame, "time={secs}");
            frame.push_str(&render_kv(&rows));
            frame.push('\n');
        } else {
            let _ = write!(
                frame,
                "\x1b[H\x1b[2Jrcc farm status at {clock}, every second (Ctrl-C to stop)\n\n"
            );
            frame.push_str(&render_table(&rows));
            for w in clones(&rows) {
                let _ = writeln!(frame, "\nrcc: {w}");
            }
        }
        if out
            .write_all(frame.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return 0;
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
    }
}

/// Warnings about boxes that share an identity: a machine-id or a MAC address. Cloned TV
/// boxes often do, and two boxes with one MAC make the LAN fail in baffling ways.
pub fn clones(rows: &[Row]) -> Vec<String> {
    let mut seen: Vec<(String, &str)> = Vec::new();
    for r in rows {
        if let Some(id) = r.get("machine_id").filter(|v| !v.is_empty()) {
            seen.push((format!("machine-id {id}"), &r.host));
        }
        for mac in r
            .get("macs")
            .unwrap_or("")
            .split(',')
            .filter(|m| !m.is_empty())
        {
            let mac = mac.split_once('/').map_or(mac, |(_, m)| m);
            seen.push((format!("MAC {mac}"), &r.host));
        }
    }
    seen.sort();
    seen.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < seen.len() {
        let j = (i..seen.len())
            .find(|&j| seen[j].0 != seen[i].0)
            .unwrap_or(seen.len());
        if j - i > 1 {
            let hosts: Vec<&str> = seen[i..j].iter().map(|(_, h)| *h).collect();
            out.push(format!(
                "warning: {} report the same {}: if they are different boxes, they were \
                 cloned (give each its own: rm /etc/machine-id && systemd-machine-id-setup, \
                 and its own MAC); if it is one box listed twice, list it once",
                hosts.join(" and "),
                seen[i].0
            ));
        }
        i = j;
    }
    out
}

const KV_KEYS: [&str; 42] = [
    "slots",
    "slots_now",
    "free",
    "load1",
    "mem_available_kib",
    "job_mem_kib",
    "low_memory",
    "running",
    "done",
    "failed",
    "rejected",
    "throttled",
    "peak",
    "waiting",
    "thermal",
    "temp_c",
    "limit_c",
    "headroom_c",
    "cooling",
    "freq_cap",
    "throttled_s",
    "uptime_s",
    "sources",
    "files_named",
    "files_received",
    "file_bytes_received",
    "cache_kib",
    "cache_limit_kib",
    "free_kib",
    "health",
    "last_error",
    "bytes_in",
    "bytes_out",
    "hostname",
    "machine_id",
    "macs",
    "discovery",
    "probes",
    "probes_answered",
    "probes_refused",
    "probes_limited",
    "probes_ignored",
];

/// A value for a `key=value` line: no spaces (`_`), no control characters.
fn kv_value(v: &str) -> String {
    clean(v, 300).replace([' ', '\u{a0}'], "_")
}

/// One line per host: `host=.. state=STATE key=value ...` (values never contain spaces:
/// they are replaced by `_`, in the state and the compiler identity too).
pub fn render_kv(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = write!(out, "host={}", r.host);
        match &r.reply {
            Ok(_) => {
                let _ = write!(out, " state={}", kv_value(&state(r)));
                for k in KV_KEYS {
                    let _ = write!(out, " {k}={}", kv_value(r.get(k).unwrap_or("-")));
                }
                let _ = write!(out, " compiler={}", kv_value(&compilers(r)));
            }
            Err(e) => {
                out.push_str(" state=down");
                for k in KV_KEYS {
                    let _ = write!(out, " {k}=-");
                }
                let _ = write!(out, " error={}", e.replace(' ', "_"));
            }
        }
        let _ = write!(out, " from={}", r.origin.name());
        out.push('\n');
    }
    out
}

fn compilers(r: &Row) -> String {
    let Ok(kv) = &r.reply else {
        return String::new();
    };
    // Show the identity of `gcc` if the box has one, else the first compiler it knows.
    kv.iter()
        .find(|(k, _)| k == "compiler.gcc")
        .or_else(|| kv.iter().find(|(k, _)| k.starts_with("compiler.")))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "-".into())
}

/// A table for people. FROM is whether the host list names the box or discovery found it,
/// STATE is whether the box takes jobs (see `state`), THERMAL its
/// thermal verdict (ok, warm, throttled, unknown, off),
/// TEMP its hottest CPU zone against the limit it holds it to, COOLING the busiest cpufreq
/// cooler's state, HOT how long it has been throttled since it started and how many jobs
/// it refused for heat.
pub fn render_table(rows: &[Row]) -> String {
    let mut lines: Vec<Vec<String>> = vec![HEAD.iter().map(|h| h.to_string()).collect()];
    lines.extend(rows.iter().map(table_row));
    columns(&lines)
}

/// The table's columns.
const HEAD: [&str; 13] = [
    "HOST",
    "FROM",
    "STATE",
    "RUN/SLOTS",
    "DONE",
    "FAILED",
    "REJECTED",
    "PEAK",
    "THERMAL",
    "TEMP/LIMIT",
    "COOLING",
    "HOT",
    "COMPILER",
];

/// One box's line of the table, a cell per column of `HEAD`.
fn table_row(r: &Row) -> Vec<String> {
    let g = |k| clean(r.get(k).unwrap_or("-"), WORDS_CAP);
    match &r.reply {
        Ok(_) => vec![
            r.host.clone(),
            r.origin.name().into(),
            state(r),
            // Effective slots, and the configured ones when heat has shrunk them.
            match (r.get("slots_now"), r.get("slots")) {
                (Some(now), Some(all)) if now != all => {
                    format!("{}/{} of {}", g("running"), g("slots_now"), g("slots"))
                }
                _ => format!("{}/{}", g("running"), g("slots_now")),
            },
            g("done"),
            g("failed"),
            g("rejected"),
            g("peak"),
            g("thermal"),
            match (r.get("temp_c"), r.get("limit_c")) {
                (Some(_), Some(_)) => format!("{}/{}C", g("temp_c"), g("limit_c")),
                (Some(_), None) => format!("{}C", g("temp_c")),
                _ => "-".into(),
            },
            g("cooling"),
            match r.get("throttled_s") {
                Some(_) => format!("{}s {} refused", g("throttled_s"), g("throttled")),
                None => "-".into(),
            },
            clean(&compilers(r), WORDS_CAP),
        ],
        Err(e) => {
            let mut l = vec![r.host.clone(), r.origin.name().into(), "down".into()];
            l.resize(HEAD.len() - 1, "-".into());
            l.push(e.clone());
            l
        }
    }
}

/// `lines` as text in columns, each as wide as its widest cell; the last column runs on.
fn columns(lines: &[Vec<String>]) -> String {
    let mut widths = [0usize; HEAD.len()];
    for l in lines {
        for (i, cell) in l.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for l in lines {
        let mut line = String::new();
        for (i, cell) in l.iter().enumerate() {
            if i == l.len() - 1 {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kv: &[(&str, &str)]) -> Row {
        Row {
            host: "box:3633".into(),
            reply: Ok(kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()),
            master: vec![("gcc".into(), "gcc 12 for aarch64".into())],
            origin: Origin::Listed,
        }
    }

    #[test]
    fn a_cross_farm_is_compared_with_the_masters_cross_compiler() {
        let mut r = row(&[("compiler.gcc", "gcc 12 for aarch64-linux-gnu")]);
        r.master = vec![
            ("gcc".into(), "gcc 12 for x86_64-linux-gnu".into()),
            (
                "aarch64-linux-gnu-gcc".into(),
                "gcc 12 for aarch64-linux-gnu".into(),
            ),
        ];
        assert_eq!(state(&r), "up");
        r.master[1].1 = "gcc 13 for aarch64-linux-gnu".into();
        assert_eq!(state(&r), "mismatch: aarch64-linux-gnu-gcc");
        // The names asked on the master: never a path a box made up.
        let evil = row(&[
            ("compiler.gcc", "x for ../../bin/sh"),
            ("compiler.cc", "x for arm"),
        ]);
        let names = master_names(&evil);
        assert_eq!(names, ["gcc", "arm-gcc", "cc"]);
    }

    #[test]
    fn the_state_says_first_what_keeps_jobs_away() {
        let same = ("compiler.gcc", "gcc 12 for aarch64");
        let other = ("compiler.gcc", "gcc 10 for aarch64");
        assert_eq!(state(&row(&[same])), "up");
        // An older rccd says nothing of its health or compilers: up.
        assert_eq!(state(&row(&[])), "up");
        assert_eq!(state(&row(&[same, ("thermal", "throttled")])), "hot");
        assert_eq!(state(&row(&[same, ("thermal", "warm")])), "up");
        assert_eq!(
            state(&row(&[other, ("thermal", "critical")])),
            "mismatch: gcc"
        );
        assert_eq!(state(&row(&[other, ("health", "full")])), "full");
        assert_eq!(
            state(&row(&[("health", "broken: no compiler in /empty")])),
            "broken: no compiler in /empty"
        );
        // One of its compilers is the master's: that one gets the jobs.
        let two = [other, ("compiler.cc", "gcc 12 for aarch64")];
        assert_eq!(state(&row(&two)), "up");
        let down = Row {
            reply: Err("connection refused".into()),
            ..row(&[])
        };
        assert_eq!(state(&down), "down");
    }

    #[test]
    fn what_a_box_says_cannot_reach_the_terminal_raw() {
        let evil = row(&[
            ("health", "broken: \x1b[2Jgone\nstate=up"),
            ("done", "1\x1b]0;pwned\x07"),
        ]);
        let table = render_table(std::slice::from_ref(&evil));
        assert!(
            !table.contains('\x1b') && !table.contains('\x07'),
            "{table:?}"
        );
        assert_eq!(table.lines().count(), 2, "{table}");
        let kv = render_kv(&[evil]);
        assert_eq!(kv.lines().count(), 1, "{kv}");
        assert!(kv.contains("state=broken:_?[2Jgone?state=up "), "{kv}");
        assert!(!kv.contains('\x1b'));
    }
}
