//! `rcc --status`: ask every box in the host list how it is and print one row per box, as a
//! table for people or as `key=value` lines (`--format kv`) for scripts and monitoring;
//! `--watch` redraws it every second, a terminal monitor for the whole farm.

use super::remote::{self, Timeouts};
use crate::hosts::{HostKind, HostList};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One box's answer, or why there was none.
pub struct Row {
    pub host: String,
    pub reply: Result<Vec<(String, String)>, String>,
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
    let addrs: Vec<String> = list
        .hosts
        .iter()
        .filter(|h| matches!(h.kind, HostKind::Tcp { .. }))
        .map(|h| h.addr_string())
        .collect();
    std::thread::scope(|s| {
        let asks: Vec<_> = addrs
            .iter()
            .map(|a| s.spawn(move || remote::status(a, timeouts).map_err(|e| e.to_string())))
            .collect();
        addrs
            .iter()
            .zip(asks)
            .map(|(a, ask)| Row {
                host: a.clone(),
                reply: ask
                    .join()
                    .unwrap_or_else(|_| Err("asking it failed".to_string())),
            })
            .collect()
    })
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

const KV_KEYS: [&str; 33] = [
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
    "bytes_in",
    "bytes_out",
    "hostname",
    "machine_id",
    "macs",
];

/// One line per host: `host=.. state=up|down key=value ...` (values never contain spaces;
/// the compiler identity is given with spaces replaced by `_`).
pub fn render_kv(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = write!(out, "host={}", r.host);
        match &r.reply {
            Ok(_) => {
                out.push_str(" state=up");
                for k in KV_KEYS {
                    let _ = write!(out, " {k}={}", r.get(k).unwrap_or("-").replace(' ', "_"));
                }
                let _ = write!(out, " compiler={}", compilers(r).replace(' ', "_"));
            }
            Err(e) => {
                out.push_str(" state=down");
                for k in KV_KEYS {
                    let _ = write!(out, " {k}=-");
                }
                let _ = write!(out, " error={}", e.replace(' ', "_"));
            }
        }
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

/// A table for people. THERMAL is the box's verdict (ok, warm, throttled, unknown, off),
/// TEMP its hottest CPU zone against the limit it holds it to, COOLING the busiest cpufreq
/// cooler's state, HOT how long it has been throttled since it started and how many jobs
/// it refused for heat.
pub fn render_table(rows: &[Row]) -> String {
    const HEAD: [&str; 12] = [
        "HOST",
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
    let mut lines: Vec<Vec<String>> = vec![HEAD.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let g = |k| r.get(k).unwrap_or("-").to_string();
        match &r.reply {
            Ok(_) => lines.push(vec![
                r.host.clone(),
                "up".into(),
                // Effective slots, and the configured ones when heat has shrunk them.
                match (r.get("slots_now"), r.get("slots")) {
                    (Some(now), Some(all)) if now != all => {
                        format!("{}/{now} of {all}", g("running"))
                    }
                    _ => format!("{}/{}", g("running"), g("slots_now")),
                },
                g("done"),
                g("failed"),
                g("rejected"),
                g("peak"),
                g("thermal"),
                match (r.get("temp_c"), r.get("limit_c")) {
                    (Some(t), Some(l)) => format!("{t}/{l}C"),
                    (Some(t), None) => format!("{t}C"),
                    _ => "-".into(),
                },
                g("cooling"),
                match r.get("throttled_s") {
                    Some(s) => format!("{s}s {} refused", g("throttled")),
                    None => "-".into(),
                },
                compilers(r),
            ]),
            Err(e) => {
                let mut l = vec![r.host.clone(), "down".into()];
                l.resize(HEAD.len() - 1, "-".into());
                l.push(e.clone());
                lines.push(l);
            }
        }
    }
    let mut widths = [0usize; HEAD.len()];
    for l in &lines {
        for (i, cell) in l.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
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
