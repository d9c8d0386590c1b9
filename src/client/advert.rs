//! What the boxes say about their size, so a host list needs no numbers: a box listed
//! without `/LIMIT` gets the slots it advertises (its `--jobs`, fewer while it is warm),
//! learned once and shared by the build's rcc processes through `RCC_DIR` for a few
//! seconds; every accepted job refreshes it for free. An explicit `/LIMIT` wins.
//! Also `rcc --jobs`: the `-j` that keeps such a farm full.

use super::remote::{self, Failure, Timeouts};
use super::state::{Advert, State};
use crate::rules::hosts::{HostKind, HostList, HostSpec};
use std::time::SystemTime;

/// Slots for a box that gives no advert (an older rccd, or one that did not answer): distcc's
/// default.
pub const DEFAULT_BOX_SLOTS: u32 = 4;

/// Slots for a `localhost` entry without `/LIMIT`. The master also scans (or preprocesses)
/// every job and links; it compiles only when every box is full and one of its CPUs is idle,
/// and then only this many at once. Measured on the farm bench (tests/tools/tuning-bench.sh,
/// arm64 tinyconfig, master as slow as a box): `localhost` at 2 slots 131.7 s, at 1 slot
/// 113.7 s (master 56.6 CPU-s), without it 113.3 s (41.5 CPU-s).
pub const DEFAULT_LOCAL_SLOTS: u32 = 1;

/// The advert in a status reply.
pub fn from_status(kv: &[(String, String)]) -> Option<Advert> {
    let get = |k: &str| -> Option<u32> {
        kv.iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.parse().ok())
    };
    let jobs = get("slots")?;
    let health = kv.iter().find(|(key, _)| key == "health");
    Some(Advert {
        jobs,
        slots_now: if healthy(health.map(|(_, v)| v.as_str())) {
            get("slots_now").unwrap_or(jobs)
        } else {
            0
        },
    })
}

/// Whether a box that says `health` takes jobs: a full or broken one offers no slot (a
/// newer box says so in `slots_now` too; no `health` at all is an older box, which is ok).
/// The one rule for status replies and discovery replies alike.
pub fn healthy(health: Option<&str>) -> bool {
    health.map_or(true, |h| h == "ok")
}

/// Asks a box how many slots it has.
pub fn ask(addr: &str, timeouts: Timeouts) -> Result<Advert, Failure> {
    let kv = remote::status(addr, timeouts)?;
    from_status(&kv).ok_or_else(|| Failure::Broken(format!("{addr}: its status has no slots")))
}

/// How many jobs `host` (a box) takes at once: its `/LIMIT`, else what it advertises now
/// (from the build's cache, or asked). `Err`: it did not answer, and the caller backs it off.
pub fn box_slots(
    state: &State,
    host: &HostSpec,
    timeouts: Timeouts,
    now: SystemTime,
) -> Result<u32, Failure> {
    if let Some(l) = host.limit {
        return Ok(l);
    }
    let key = host.key();
    if let Some((a, _)) = state.advert(&key, now) {
        return Ok(a.slots_now);
    }
    let a = ask(&host.addr_string(), timeouts)?;
    let _ = state.save_advert(&key, a, now);
    Ok(a.slots_now)
}

/// Keeps what an accepting box said about itself, when it changed or is getting old: the
/// build's other rcc processes then need not ask.
pub fn note_accept(state: &State, key: &str, a: Advert, now: SystemTime) {
    match state.advert(key, now) {
        Some((old, age)) if old == a && age < super::state::ADVERT_FOR / 2 => {}
        _ => {
            let _ = state.save_advert(key, a, now);
        }
    }
}

/// `rcc --jobs`: the slots of every box (its `/LIMIT` or its live advert) and of a listed
/// `localhost`, plus a margin for the jobs that are being preprocessed or are on the wire
/// (a quarter of the slots, at least 2). Without boxes: this machine's CPUs. The notes
/// say which boxes did not answer and were not counted.
pub fn make_jobs(list: &HostList, timeouts: Timeouts) -> (u32, Vec<String>) {
    let mut slots = 0u32;
    let mut boxes = 0;
    let mut notes = Vec::new();
    for h in list.hosts.iter().filter(|h| !h.down) {
        match h.kind {
            HostKind::Local => slots += h.limit.or(list.local_slots).unwrap_or(DEFAULT_LOCAL_SLOTS),
            HostKind::Tcp { .. } => {
                boxes += 1;
                match h
                    .limit
                    .map_or_else(|| ask(&h.addr_string(), timeouts).map(|a| a.jobs), Ok)
                {
                    Ok(n) => slots += n,
                    Err(e) => notes.push(format!(
                        "{} did not say how many jobs it takes ({e}); not counted",
                        h.addr_string()
                    )),
                }
            }
        }
    }
    if boxes == 0 {
        return (crate::sys::online_cpus() as u32, notes);
    }
    (slots + margin(slots), notes)
}

/// Jobs beyond the slots that keep every slot busy while others are being preprocessed and
/// sent: a quarter of the slots, at least 2.
pub fn margin(slots: u32) -> u32 {
    slots.div_ceil(4).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_quarter_at_least_two() {
        assert_eq!(margin(0), 2);
        assert_eq!(margin(6), 2);
        assert_eq!(margin(9), 3);
        assert_eq!(margin(24), 6);
    }

    #[test]
    fn adverts_come_from_the_status_reply() {
        let kv = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            from_status(&kv(&[("slots", "4"), ("slots_now", "3")])),
            Some(Advert {
                jobs: 4,
                slots_now: 3
            })
        );
        assert_eq!(
            from_status(&kv(&[("slots", "8")])),
            Some(Advert {
                jobs: 8,
                slots_now: 8
            })
        );
        assert_eq!(from_status(&kv(&[("running", "1")])), None);
        // A box that cannot take jobs offers none, whatever its slots say.
        for health in ["full", "broken: no compiler in /empty"] {
            assert_eq!(
                from_status(&kv(&[
                    ("slots", "4"),
                    ("slots_now", "4"),
                    ("health", health)
                ])),
                Some(Advert {
                    jobs: 4,
                    slots_now: 0
                })
            );
        }
        assert_eq!(
            from_status(&kv(&[("slots", "4"), ("health", "ok")])).map(|a| a.slots_now),
            Some(4)
        );
    }
}
