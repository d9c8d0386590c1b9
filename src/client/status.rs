//! `rcc --status`: ask every box in the host list how it is and print one row per box, as a
//! table for people or as `key=value` lines (`--format kv`) for scripts and monitoring.

use super::remote::{self, Timeouts};
use crate::hosts::{HostKind, HostList};
use std::fmt::Write as _;

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

/// Asks every TCP host of the list (the boxes are asked one after another; each answers in
/// a millisecond or times out at the connect timeout).
pub fn collect(list: &HostList, timeouts: Timeouts) -> Vec<Row> {
    list.hosts
        .iter()
        .filter(|h| matches!(h.kind, HostKind::Tcp { .. }))
        .map(|h| Row {
            host: h.addr_string(),
            reply: remote::status(&h.addr_string(), timeouts).map_err(|e| e.to_string()),
        })
        .collect()
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

const KV_KEYS: [&str; 15] = [
    "slots",
    "slots_now",
    "running",
    "done",
    "failed",
    "rejected",
    "throttled",
    "peak",
    "waiting",
    "thermal",
    "temp_c",
    "uptime_s",
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

/// A table for people.
pub fn render_table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "HOST".to_string(),
        "STATE".into(),
        "RUN/SLOTS".into(),
        "DONE".into(),
        "FAILED".into(),
        "REJECTED".into(),
        "PEAK".into(),
        "THERMAL".into(),
        "COMPILER".into(),
    ]];
    for r in rows {
        let g = |k| r.get(k).unwrap_or("-").to_string();
        match &r.reply {
            Ok(_) => lines.push([
                r.host.clone(),
                "up".into(),
                format!("{}/{}", g("running"), g("slots_now")),
                g("done"),
                g("failed"),
                g("rejected"),
                g("peak"),
                match r.get("temp_c") {
                    Some(t) => format!("{} {t}C", g("thermal")),
                    None => g("thermal"),
                },
                compilers(r),
            ]),
            Err(e) => lines.push([
                r.host.clone(),
                "down".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                e.clone(),
            ]),
        }
    }
    let mut widths = [0usize; 9];
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
