//! The status reply: what `rcc --status` shows for a box. Ordered `key=value` pairs, so a
//! newer daemon can add keys and an older client shows what it knows.
//!
//! Keys: `version`, `protocol`, `hostname`, `machine_id`, `macs`, `uptime_s`, `slots`, `running`,
//! `slots_now` (fewer while warm), `waiting`, `accepted`, `done`, `failed`, `rejected`, `busy`, `peak`, `connections`,
//! `refused_peers`, `compile_ms`, `throttled`, `rss_kib`, the thermal keys (`thermal`,
//! `temp_c`, `limit_c`, ...), `mem_available_kib` and the memory keys, `cache_kib` and
//! `cache_limit_kib`, the health keys (`health` = `ok` | `full` | `broken: <why>`,
//! `free_kib`, `last_error`: see `health.rs`, which also makes `slots_now` 0 while the box
//! cannot take jobs), and `compiler.<name>` = identity for each compiler the box has probed.

use super::admit::Slots;
use crate::sys;
use std::time::Instant;

/// Facts about the box that do not change while the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct BoxIdentity {
    pub hostname: String,
    pub machine_id: String,
    /// MAC addresses of the box's physical network interfaces (`eth0/aa:bb:..`), so the
    /// client can spot cloned boxes that share one.
    pub macs: String,
}

impl BoxIdentity {
    pub fn load() -> BoxIdentity {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        BoxIdentity {
            hostname: read("/proc/sys/kernel/hostname"),
            machine_id: read("/etc/machine-id"),
            macs: physical_macs(std::path::Path::new("/sys/class/net")),
        }
    }
}

/// `if/mac` for every interface under `net` that is backed by a device (not lo, bridges,
/// veths or tunnels), comma-separated and sorted.
pub fn physical_macs(net: &std::path::Path) -> String {
    let Ok(entries) = std::fs::read_dir(net) else {
        return String::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("device").exists())
        .filter_map(|e| {
            let mac = std::fs::read_to_string(e.path().join("address")).ok()?;
            let mac = mac.trim();
            (!mac.is_empty() && mac != "00:00:00:00:00:00")
                .then(|| format!("{}/{mac}", e.file_name().to_string_lossy()))
        })
        .collect();
    out.sort();
    out.join(",")
}

/// The whole status reply's own keys (the loop adds thermal, memory, cache, health and
/// discovery's).
pub fn build(
    slots: &Slots,
    compilers: &[(String, String)],
    id: &BoxIdentity,
    started: Instant,
) -> Vec<(String, String)> {
    let c = &slots.counters;
    let mut kv = head(slots, id, started);
    let counters = [
        ("accepted", c.accepted),
        ("done", c.done),
        ("failed", c.failed),
        ("rejected", c.rejected),
        ("busy", c.busy),
        ("peak", c.peak as u64),
        ("connections", c.connections),
        ("refused_peers", c.refused_peers),
        ("over_limit", c.over_limit),
        ("compile_ms", c.compile_ms),
        ("throttled", c.throttled),
        ("low_memory", c.low_memory),
        ("sources", c.sources),
        ("files_named", c.files_named),
        ("files_received", c.files_received),
        ("file_bytes_received", c.file_bytes_received),
        ("bytes_in", c.bytes_in),
        ("bytes_out", c.bytes_out),
        ("rss_kib", sys::rss_kib().unwrap_or(0)),
    ];
    kv.extend(counters.map(|(k, v)| (k.to_string(), v.to_string())));
    kv.extend(compiler_pairs(compilers));
    kv
}

/// What a discovery reply draws from (`daemon::discovery::reply_pairs`): who the box is, its
/// slots and its compilers — no counter, and nothing read from a file for a datagram.
pub fn advert(
    slots: &Slots,
    compilers: &[(String, String)],
    id: &BoxIdentity,
    started: Instant,
) -> Vec<(String, String)> {
    let mut kv = head(slots, id, started);
    kv.extend(compiler_pairs(compilers));
    kv
}

/// The reply's first keys: the box and its slots.
fn head(slots: &Slots, id: &BoxIdentity, started: Instant) -> Vec<(String, String)> {
    [
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("protocol", crate::wire::protocol::VERSION.to_string()),
        ("hostname", id.hostname.clone()),
        ("machine_id", id.machine_id.clone()),
        ("macs", id.macs.clone()),
        ("uptime_s", started.elapsed().as_secs().to_string()),
        ("slots", slots.jobs.to_string()),
        ("slots_now", slots.limit.to_string()),
        ("running", slots.held.to_string()),
        ("free", slots.limit.saturating_sub(slots.held).to_string()),
        ("waiting", slots.waiting().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn compiler_pairs(compilers: &[(String, String)]) -> impl Iterator<Item = (String, String)> + '_ {
    compilers
        .iter()
        .map(|(name, identity)| (format!("compiler.{name}"), identity.clone()))
}
