//! Who gets an answer to a discovery probe, and what it says; no I/O. The UDP socket beside
//! each TCP port is `event_loop`'s, the datagrams' format `crate::wire::discovery`'s.
//!
//! A probe is answered only when, in order: its sender is in `--allow` (checked by the
//! loop before anything is parsed), it is a well-formed probe from an unprivileged port
//! (never a service's, which a spoofed probe would set two servers talking with), the sender's own budget and
//! the box's global budget allow one more reply now (`Limiter`: a spoofed flood makes the
//! box answer at most `GLOBAL_PER_S` replies a second, to anyone, and at most `SOURCE_PER_S`
//! to one address), and it came to an address rccd listens on (`answer_addr`). The reply is
//! never longer than the probe (`wire::discovery::encode_reply`), so the box amplifies
//! nothing it is made to reflect.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Replies a second to one address, after a burst of `SOURCE_BURST`.
pub const SOURCE_PER_S: u32 = 2;
pub const SOURCE_BURST: u32 = 4;
/// Replies a second to everyone together, after a burst of `GLOBAL_BURST`.
pub const GLOBAL_PER_S: u32 = 32;
pub const GLOBAL_BURST: u32 = 64;
/// The most addresses whose budget is remembered; past that, a new address is answered
/// only once a remembered one has been idle long enough to be forgotten.
pub const MAX_SOURCES: usize = 256;

/// A token bucket in thousandths of a reply.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Bucket {
        Bucket {
            milli: u64::from(burst) * 1000,
            at: now,
        }
    }

    /// Refills at `per_s` up to `burst`; takes one reply if there is one.
    fn take(&mut self, per_s: u32, burst: u32, now: Instant) -> bool {
        let ms = now.saturating_duration_since(self.at).as_millis() as u64;
        self.milli = (self.milli + ms * u64::from(per_s)).min(u64::from(burst) * 1000);
        self.at = now;
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }

    /// Whether it would be full again by `now` (nothing to remember).
    fn refilled(&self, per_s: u32, burst: u32, now: Instant) -> bool {
        let ms = now.saturating_duration_since(self.at).as_millis() as u64;
        self.milli + ms * u64::from(per_s) >= u64::from(burst) * 1000
    }
}

/// The reply budgets: one per source address (a bounded table) and one for the box.
#[derive(Debug)]
pub struct Limiter {
    sources: HashMap<IpAddr, Bucket>,
    global: Bucket,
}

impl Limiter {
    pub fn new(now: Instant) -> Limiter {
        Limiter {
            sources: HashMap::new(),
            global: Bucket::full(GLOBAL_BURST, now),
        }
    }

    /// Whether a probe from `src` may be answered now (and if so, it is counted).
    pub fn allow(&mut self, src: IpAddr, now: Instant) -> bool {
        if !self.sources.contains_key(&src) && self.sources.len() >= MAX_SOURCES {
            self.sources
                .retain(|_, b| !b.refilled(SOURCE_PER_S, SOURCE_BURST, now));
            if self.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let own = self
            .sources
            .entry(src)
            .or_insert_with(|| Bucket::full(SOURCE_BURST, now));
        // The source's budget first: one noisy address does not spend everyone's.
        own.take(SOURCE_PER_S, SOURCE_BURST, now)
            && self.global.take(GLOBAL_PER_S, GLOBAL_BURST, now)
    }

    /// Addresses remembered now.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

/// What rccd counts of discovery, for the status reply.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Datagrams read.
    pub probes: u64,
    pub answered: u64,
    /// From an address `--allow` does not admit.
    pub refused: u64,
    /// Over a budget.
    pub limited: u64,
    /// Not a probe (malformed, truncated, another version), or for an address not served.
    pub ignored: u64,
}

/// The TCP address a probe that came to `local` (for IPv4 the interface's address even for
/// a broadcast; for IPv6 `unicast` is the arrival interface's address when the probe came to
/// a multicast group) is answered with: a wildcard listener of that family answers with the
/// arrival address, a specific one only for probes that came to its own address. `None`:
/// not answered.
pub fn answer_addr(listen: &[SocketAddr], local: IpAddr) -> Option<SocketAddr> {
    if local.is_unspecified() || local.is_multicast() {
        return None;
    }
    listen
        .iter()
        .find(|l| l.ip() == local)
        .or_else(|| {
            listen
                .iter()
                .find(|l| l.ip().is_unspecified() && l.is_ipv4() == local.is_ipv4())
        })
        .map(|l| SocketAddr::new(local, l.port()))
}

/// The keys a reply carries, first to last: what the master needs to use the box, then
/// what it shows. The status reply's `kv` is the source; `addr` and `port` come first and
/// must fit.
pub const REPLY_KEYS: &[&str] = &[
    "slots",
    "slots_now",
    "health",
    "machine_id",
    "hostname",
    "thermal",
    "protocol",
    "version",
    "macs",
];

/// How many pairs of `reply_pairs` a reply must carry to be sent.
pub const KEEP: usize = 3;

/// The reply's pairs: where to connect, then `REPLY_KEYS` and the compilers from `status`.
pub fn reply_pairs(addr: SocketAddr, status: &[(String, String)]) -> Vec<(String, String)> {
    let mut kv = vec![
        ("addr".to_string(), addr.ip().to_string()),
        ("port".to_string(), addr.port().to_string()),
    ];
    for key in REPLY_KEYS {
        if let Some((k, v)) = status.iter().find(|(k, _)| k == key) {
            kv.push((k.clone(), v.clone()));
        }
    }
    kv.extend(
        status
            .iter()
            .filter(|(k, _)| k.starts_with("compiler."))
            .cloned(),
    );
    kv
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let a = ip("192.168.1.5");
        let answered = (0..100).filter(|_| l.allow(a, t0)).count();
        assert_eq!(answered as u32, SOURCE_BURST);
        // A second later: its rate.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            (0..100).filter(|_| l.allow(a, t1)).count() as u32,
            SOURCE_PER_S
        );
        // Another address is not held back by the first.
        assert!(l.allow(ip("192.168.1.6"), t1));
    }

    #[test]
    fn a_spoofed_flood_from_many_addresses_gets_the_global_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let mut answered = 0;
        // 10 000 probes a second for 10 s, each from a new address.
        for s in 0..10u64 {
            for i in 0..10_000u32 {
                let now = t0 + Duration::from_millis(s * 1000 + u64::from(i) / 10);
                let src = IpAddr::from((i + (s as u32) * 10_000).to_be_bytes());
                answered += u32::from(l.allow(src, now));
            }
            assert!(l.sources() <= MAX_SOURCES);
        }
        assert!(answered <= GLOBAL_BURST + 10 * GLOBAL_PER_S, "{answered}");
        assert!(answered > 0);
    }

    #[test]
    fn the_table_forgets_idle_sources_when_full() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        for i in 0..MAX_SOURCES as u32 {
            l.allow(IpAddr::from(i.to_be_bytes()), t0);
        }
        // Full, and nobody idle long enough: a new address waits.
        assert!(!l.allow(ip("10.9.9.9"), t0));
        // Later every remembered one has refilled: forgotten, the new one is answered.
        assert!(l.allow(ip("10.9.9.9"), t0 + Duration::from_secs(60)));
        assert_eq!(l.sources(), 1);
    }

    #[test]
    fn the_address_answered_is_the_one_listened_on() {
        let any: SocketAddr = "0.0.0.0:3633".parse().unwrap();
        let one: SocketAddr = "192.168.1.21:4000".parse().unwrap();
        let v6any: SocketAddr = "[::]:3633".parse().unwrap();
        assert_eq!(
            answer_addr(&[any], ip("10.0.0.5")),
            Some("10.0.0.5:3633".parse().unwrap())
        );
        assert_eq!(answer_addr(&[one], ip("10.0.0.5")), None);
        assert_eq!(answer_addr(&[one], ip("192.168.1.21")), Some(one));
        assert_eq!(answer_addr(&[one, any], ip("192.168.1.21")), Some(one));
        assert_eq!(answer_addr(&[any], ip("fe80::1")), None);
        assert_eq!(
            answer_addr(&[v6any], ip("fe80::1")),
            Some("[fe80::1]:3633".parse().unwrap())
        );
        assert_eq!(answer_addr(&[v6any], ip("ff02::1")), None);
        assert_eq!(answer_addr(&[any], ip("0.0.0.0")), None);
    }

    #[test]
    fn the_reply_leads_with_where_to_connect() {
        let status: Vec<(String, String)> = [
            ("version", "0.1"),
            ("slots", "4"),
            ("done", "7"),
            ("compiler.gcc", "gcc 12"),
            ("hostname", "box1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kv = reply_pairs("10.0.0.5:3633".parse().unwrap(), &status);
        let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "addr",
                "port",
                "slots",
                "hostname",
                "version",
                "compiler.gcc"
            ]
        );
    }
}
