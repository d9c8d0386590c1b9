//! The boxes found on the LAN, for a build with no host list or a `+discover` entry: one
//! probe per build (`RCC_DIR/state/discovered`, shared for `Settings::discover_period`;
//! while one rcc process probes again, the others go on with the finding before),
//! to every up interface's IPv4 broadcast address and the IPv6 all-nodes group, answered by
//! the rccd that admit this machine (`src/daemon/discovery.rs`); the datagrams are
//! `wire::discovery`'s.
//!
//! What a reply may make rcc do is bounded, since anyone on the LAN can answer: a reply
//! counts only if it echoes this probe's nonce, comes from the address it names and that
//! address is on a network rcc probed (so rcc never connects outside them), and its numbers
//! are in range; at most `MAX_DATAGRAMS` are read, one box kept per address and at most
//! `MAX_BOXES` in all. A box that answers
//! on two interfaces or addresses is one box (`identity`: its machine-id, MACs and host
//! name), reached at its IPv4 address where it has one; the master's own rccd is
//! `localhost`; a box the host list names is the list's (its options win).

use super::advert;
use super::state::{Advert, State};
use crate::rules::hosts::{self, HostKind, HostList, HostSpec, Origin};
use crate::sys;
use crate::wire::discovery::{self, Reply};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a build waits for answers.
pub const WAIT: Duration = Duration::from_millis(300);
/// How long one build's finding is shared by its rcc processes before one probes again.
pub const PERIOD: Duration = Duration::from_secs(10);
/// The probe's length: room for a box's answer with its compilers.
pub const PROBE_LEN: usize = 1200;
/// The most datagrams read for one probe, and the most boxes kept.
pub const MAX_DATAGRAMS: usize = 1024;
pub const MAX_BOXES: usize = 64;

/// A box that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where its rccd listens (an IPv6 link-local one with its interface).
    pub addr: SocketAddr,
    pub advert: Advert,
    pub hostname: String,
    /// Who it is: one box answering twice says the same.
    pub identity: String,
    /// The master's own rccd.
    pub local: bool,
}

/// A network rcc probed: an address of one of its interfaces, the mask, the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: IpAddr,
    pub mask: IpAddr,
    pub ifindex: u32,
}

impl Subnet {
    /// Whether `ip` (from interface `scope` where it is IPv6 link-local) is on this network.
    pub fn contains(&self, ip: IpAddr, scope: u32) -> bool {
        let within =
            |a: &[u8], m: &[u8], b: &[u8]| a.iter().zip(m).zip(b).all(|((a, m), b)| a & m == b & m);
        match (self.addr, self.mask, ip) {
            (IpAddr::V4(a), IpAddr::V4(m), IpAddr::V4(b)) => {
                within(&a.octets(), &m.octets(), &b.octets())
            }
            (IpAddr::V6(a), IpAddr::V6(m), IpAddr::V6(b)) => {
                if link_local(&b) {
                    scope == self.ifindex && link_local(&a)
                } else {
                    within(&a.octets(), &m.octets(), &b.octets())
                }
            }
            _ => false,
        }
    }
}

fn link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The box a reply from `from` describes, if it is an answer to the probe `nonce` that rcc
/// may use; `Err`: why not.
pub fn check_reply(
    reply: &Reply,
    nonce: u64,
    from: SocketAddr,
    subnets: &[Subnet],
) -> Result<Found, String> {
    if reply.nonce != nonce {
        return Err("it answers another probe".into());
    }
    let addr: IpAddr = reply
        .get("addr")
        .and_then(|a| a.parse().ok())
        .ok_or("no address")?;
    if addr != from.ip() {
        return Err(format!("it names {addr}, not the address it came from"));
    }
    let scope = match from {
        SocketAddr::V6(v6) => v6.scope_id(),
        SocketAddr::V4(_) => 0,
    };
    if !subnets.iter().any(|s| s.contains(addr, scope)) {
        return Err(format!("{addr} is not on a network rcc probed"));
    }
    let port: u16 = reply
        .get("port")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p > 0)
        .ok_or("no port")?;
    let number = |k: &str| -> Result<u32, String> {
        reply
            .get(k)
            .and_then(|v| v.parse().ok())
            .filter(|n| *n <= hosts::MAX_LIMIT)
            .ok_or(format!("no {k} from 0 to {}", hosts::MAX_LIMIT))
    };
    let jobs = number("slots")?;
    let slots_now = if advert::healthy(reply.get("health")) {
        reply
            .get("slots_now")
            .map_or(Ok(jobs), |_| number("slots_now"))?
    } else {
        0
    };
    let text = |k: &str| reply.get(k).unwrap_or("").to_string();
    let mut addr = SocketAddr::new(addr, port);
    if let (SocketAddr::V6(a), true) = (&mut addr, scope != 0) {
        *a = SocketAddrV6::new(*a.ip(), port, 0, scope);
    }
    Ok(Found {
        addr,
        advert: Advert { jobs, slots_now },
        hostname: text("hostname"),
        identity: format!(
            "{}/{}/{}",
            text("machine_id"),
            text("macs"),
            text("hostname")
        ),
        local: false,
    })
}

/// The boxes `found`, each once: a box that answered twice (two interfaces, two
/// addresses) at its IPv4 address where it has one; the master's own (`own` addresses) as
/// `local`; those `listed` (their addresses) left out; at most `MAX_BOXES`.
pub fn merge(found: Vec<Found>, own: &[IpAddr], listed: &[SocketAddr]) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    for mut f in found {
        if listed.iter().any(|l| same_place(l, &f.addr)) {
            continue;
        }
        f.local = own.contains(&f.addr.ip());
        if let Some(i) = out.iter().position(|o| o.identity == f.identity) {
            let better = f.addr.is_ipv4() && !out[i].addr.is_ipv4() || f.local && !out[i].local;
            if better {
                out[i] = f;
            }
            continue;
        }
        if out.len() < MAX_BOXES {
            out.push(f);
        }
    }
    // In address order, so every probe of one farm lists it alike.
    out.sort_by_key(|b| b.addr);
    out
}

fn same_place(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.ip() == b.ip() && a.port() == b.port()
}

/// What one probe found, and where it looked.
#[derive(Debug, Default)]
pub struct Probed {
    pub found: Vec<Found>,
    /// `eth0 192.168.1.255`, ... (empty: no interface to probe on).
    pub probed: Vec<String>,
    /// Replies left out, with why (shown by `rcc --discover`).
    pub refused: Vec<String>,
}

/// A nonce no one off the path can guess: std's per-process random hash keys.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Probes every up interface for rccd on `port` and collects answers for `wait`.
pub fn probe(port: u16, wait: Duration) -> Probed {
    let mut p = Probed::default();
    let ifs = sys::interfaces().unwrap_or_default();
    let nonce = nonce();
    let v4 = sys::udp_socket((std::net::Ipv4Addr::UNSPECIFIED, 0).into(), false, true).ok();
    let v6 = sys::udp_socket((Ipv6Addr::UNSPECIFIED, 0).into(), false, false).ok();
    for s in v4.iter().chain(v6.iter()) {
        // Room for a LAN's answers at once (the kernel caps it); a flood still drops some.
        let _ = sys::set_recv_buffer(s, 1 << 20);
    }
    let bytes = discovery::encode_probe(nonce, PROBE_LEN);
    let subnets = send_probes(
        &ifs,
        port,
        &bytes,
        (v4.as_ref(), v6.as_ref()),
        &mut p.probed,
    );
    let socks: Vec<&std::net::UdpSocket> = v4.iter().chain(v6.iter()).collect();
    let found = collect(&socks, nonce, &subnets, wait, &mut p.refused);
    let own: Vec<IpAddr> = ifs.iter().map(|i| i.addr).collect();
    p.found = merge(found, &own, &[]);
    p
}

/// Sends `bytes` to the broadcast address of every up IPv4 interface and to ff02::1 on
/// every up IPv6 one (once per interface), noting each in `probed`; the subnets a reply
/// may come from.
fn send_probes(
    ifs: &[sys::IfAddr],
    port: u16,
    bytes: &[u8],
    (v4, v6): (Option<&std::net::UdpSocket>, Option<&std::net::UdpSocket>),
    probed: &mut Vec<String>,
) -> Vec<Subnet> {
    let mut subnets = Vec::new();
    let mut v6_done = Vec::new();
    for i in ifs.iter().filter(|i| i.up && !i.loopback) {
        let sent = match i.addr {
            IpAddr::V4(_) => {
                let (Some(b), Some(s)) = (i.broadcast, v4) else {
                    continue;
                };
                let ok = s.send_to(bytes, (b, port)).is_ok();
                if ok {
                    probed.push(format!("{} {b}", i.name));
                }
                ok
            }
            IpAddr::V6(_) => {
                let Some(s) = v6 else { continue };
                if !v6_done.contains(&i.index) {
                    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                    let to = SocketAddrV6::new(all_nodes, port, 0, i.index);
                    if s.send_to(bytes, to).is_err() {
                        continue;
                    }
                    v6_done.push(i.index);
                    probed.push(format!("{} ff02::1", i.name));
                }
                true
            }
        };
        if sent {
            subnets.push(Subnet {
                addr: i.addr,
                mask: i.netmask,
                ifindex: i.index,
            });
        }
    }
    subnets
}

/// Reads the replies to the probe `nonce` on `socks` for `wait` (at most `MAX_DATAGRAMS`):
/// the boxes they name, one per address; why others were left out goes to `refused` (the
/// first 16).
fn collect(
    socks: &[&std::net::UdpSocket],
    nonce: u64,
    subnets: &[Subnet],
    wait: Duration,
    refused: &mut Vec<String>,
) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let mut buf = [0u8; discovery::MAX_DATAGRAM + 1];
    let (deadline, mut read) = (Instant::now() + wait, 0);
    while read < MAX_DATAGRAMS && !socks.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // Both sockets are non-blocking: wait on the first a little, then read both.
        let _ = sys::wait_readable(socks[0], left.as_millis().clamp(1, 10) as i32);
        for s in socks {
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                read += 1;
                let checked = discovery::decode_reply(&buf[..n])
                    .map_err(|e| e.to_string())
                    .and_then(|r| check_reply(&r, nonce, from, subnets));
                match checked {
                    // One box per address: one host posing as many is one.
                    Ok(f) if !found.iter().any(|o| o.addr.ip() == f.addr.ip()) => found.push(f),
                    Ok(_) => {}
                    Err(why) if refused.len() < 16 => refused.push(format!("{from}: {why}")),
                    Err(_) => {}
                }
                if read >= MAX_DATAGRAMS {
                    break;
                }
            }
        }
    }
    found
}

/// What a build's rcc processes share of one probe: the boxes, and where it looked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shared {
    pub boxes: Vec<Found>,
    pub probed: Vec<String>,
}

/// `Shared` as the file `state/discovered` holds it: the time, where it looked, a line per
/// box (`addr jobs slots_now local identity hostname`; the host name last, it may hold
/// spaces).
fn to_text(s: &Shared, now: SystemTime) -> String {
    let mut t = format!("{}\n{}\n", millis(now), s.probed.join(", "));
    for b in &s.boxes {
        t.push_str(&format!(
            "{} {} {} {} {} {}\n",
            b.addr,
            b.advert.jobs,
            b.advert.slots_now,
            u8::from(b.local),
            b.identity.replace(' ', "_"),
            b.hostname
        ));
    }
    t
}

fn from_text(t: &str, now: SystemTime, period: Duration) -> Option<Shared> {
    let mut lines = t.lines();
    let at: u64 = lines.next()?.parse().ok()?;
    let age = millis(now).checked_sub(at)?;
    if u128::from(age) >= period.as_millis() {
        return None;
    }
    let probed = lines
        .next()?
        .split(", ")
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let mut boxes = Vec::new();
    for l in lines.take(MAX_BOXES) {
        let mut w = l.splitn(6, ' ');
        let addr = w.next()?.parse().ok()?;
        let jobs = w.next()?.parse().ok()?;
        let slots_now = w.next()?.parse().ok()?;
        let local = w.next()? == "1";
        let identity = w.next()?.to_string();
        let hostname = w.next().unwrap_or("").to_string();
        boxes.push(Found {
            addr,
            advert: Advert { jobs, slots_now },
            hostname,
            identity,
            local,
        });
    }
    Some(Shared { boxes, probed })
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The build's finding: the one shared in `RCC_DIR` if it is younger than `period`, else
/// a new probe (by one rcc process; the others wait for it and read what it found).
pub fn shared(state: &State, period: Duration) -> Shared {
    let file = state.state_dir().join("discovered");
    let read = |now, period| {
        std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| from_text(&t, now, period))
    };
    if let Some(s) = read(SystemTime::now(), period) {
        return s;
    }
    // One prober per build: while it probes, the others use the finding before (if there
    // is a recent one), or wait on its lock and read what it wrote.
    let lock_path = state.state_dir().join("discover.lock");
    let lock = match try_lock_file(&lock_path) {
        Some(l) => Some(l),
        None => match read(SystemTime::now(), period * STALE_PERIODS) {
            Some(s) => return s,
            None => lock_file(&lock_path),
        },
    };
    if let Some(s) = read(SystemTime::now(), period) {
        return s;
    }
    let p = probe(hosts::DEFAULT_PORT, WAIT);
    let s = Shared {
        boxes: p.found,
        probed: p.probed,
    };
    let now = SystemTime::now();
    for b in s.boxes.iter().filter(|b| !b.local) {
        let _ = state.save_advert(&spec(b).key(), b.advert, now);
    }
    let _ = super::output::write_atomically(&file, to_text(&s, now).as_bytes());
    drop(lock);
    s
}

/// How many periods old a finding may be for the rcc processes that start while another
/// probes again: none of them waits for the probe.
const STALE_PERIODS: u32 = 6;

fn open_lock(path: &Path) -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()
}

/// The lock at `path` if no one holds it.
fn try_lock_file(path: &Path) -> Option<std::fs::File> {
    let f = open_lock(path)?;
    sys::try_lock(&f).ok()?.then_some(f)
}

/// The lock at `path`, waited for (at most a few probes' time); `None` if it cannot be
/// had, and then this process probes too.
fn lock_file(path: &Path) -> Option<std::fs::File> {
    let f = open_lock(path)?;
    let deadline = Instant::now() + WAIT * 5;
    while Instant::now() < deadline {
        if sys::try_lock(&f).ok()? {
            return Some(f);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A found box as a host of the list.
pub fn spec(b: &Found) -> HostSpec {
    let (kind, token) = if b.local {
        (HostKind::Local, "localhost".to_string())
    } else {
        let host = match b.addr {
            SocketAddr::V6(a) if a.scope_id() != 0 => format!("{}%{}", a.ip(), a.scope_id()),
            a => a.ip().to_string(),
        };
        (
            HostKind::Tcp {
                host,
                port: b.addr.port(),
            },
            b.addr.to_string(),
        )
    };
    HostSpec::new(kind, &token, Origin::Discovered)
}

/// Adds the boxes of `found` to `list` with the options of its `+discover` entry, but those
/// it lists (by address, resolved; a listed `localhost` is the master's own rccd).
pub fn extend(list: &mut HostList, found: &[Found]) {
    let listed: Vec<SocketAddr> = list
        .hosts
        .iter()
        .filter_map(|h| match &h.kind {
            HostKind::Tcp { host, port } => Some((host.as_str(), *port)),
            HostKind::Local => None,
        })
        .flat_map(|hp| hp.to_socket_addrs().into_iter().flatten())
        .collect();
    let has_local = list.hosts.iter().any(|h| h.kind == HostKind::Local);
    for b in found {
        if listed.iter().any(|l| same_place(l, &b.addr)) || (b.local && has_local) {
            continue;
        }
        let mut h = spec(b);
        h.compress = list.discover_options.compress;
        h.pump = list.discover_options.pump;
        list.hosts.push(h);
    }
}

/// A found box's line for a host list (`rcc --discover`), with what it said as a comment.
pub fn host_line(b: &Found) -> String {
    let what = format!(
        "{} slots{}",
        b.advert.jobs,
        if b.hostname.is_empty() {
            String::new()
        } else {
            format!(", {}", b.hostname)
        }
    );
    match b.addr {
        _ if b.local => format!("localhost    # this machine's own rccd, {what}\n"),
        SocketAddr::V6(a) if a.scope_id() != 0 => format!(
            "# [{}]:{}    # {what}; link-local, cannot be listed: give it an address\n",
            a.ip(),
            a.port()
        ),
        a if a.port() == hosts::DEFAULT_PORT && a.is_ipv4() => format!("{}    # {what}\n", a.ip()),
        a => format!("{a}    # {what}\n"),
    }
}

/// Why a discovering list has no box, for `RCC_VERBOSE` and `rcc --status`.
pub fn none_found(s: &Shared) -> String {
    if s.probed.is_empty() {
        "no host list, and no network to look for boxes on (no interface is up with a \
         broadcast or IPv6 address)"
            .into()
    } else {
        format!(
            "no host list, and no rccd answered a discovery probe ({}) within {} ms: is \
             rccd running on the boxes, with this machine in its --allow (ALLOW=\"private\" \
             in /etc/default/rccd) and discovery on? Or list them in RCC_HOSTS",
            s.probed.join(", "),
            WAIT.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::discovery::{encode_reply, Probe};

    fn net(addr: &str, mask: &str, ifindex: u32) -> Subnet {
        Subnet {
            addr: addr.parse().unwrap(),
            mask: mask.parse().unwrap(),
            ifindex,
        }
    }

    fn reply(nonce: u64, kv: &[(&str, &str)]) -> Reply {
        let kv: Vec<(String, String)> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let b = encode_reply(Probe { nonce, len: 1200 }, &kv, 0).unwrap();
        discovery::decode_reply(&b).unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const LAN: &[(&str, &str)] = &[
        ("addr", "192.168.1.21"),
        ("port", "3633"),
        ("slots", "4"),
        ("slots_now", "3"),
        ("machine_id", "abc"),
        ("hostname", "box1"),
    ];

    #[test]
    fn a_good_reply_is_a_box() {
        let subnets = [net("192.168.1.2", "255.255.255.0", 2)];
        let f = check_reply(&reply(9, LAN), 9, sa("192.168.1.21:3633"), &subnets).unwrap();
        assert_eq!(f.addr, sa("192.168.1.21:3633"));
        assert_eq!(
            f.advert,
            Advert {
                jobs: 4,
                slots_now: 3
            }
        );
        assert_eq!(f.hostname, "box1");
    }

    #[test]
    fn hostile_replies_are_not_boxes() {
        let subnets = [net("192.168.1.2", "255.255.255.0", 2)];
        let from = sa("192.168.1.21:3633");
        let with = |k: &str, v: &str| -> Vec<(&str, String)> {
            LAN.iter()
                .map(|(a, b)| {
                    (
                        *a,
                        if *a == k {
                            v.to_string()
                        } else {
                            b.to_string()
                        },
                    )
                })
                .collect()
        };
        let check = |kv: Vec<(&str, String)>, from: SocketAddr| {
            let kv: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (*k, v.as_str())).collect();
            check_reply(&reply(9, &kv), 9, from, &subnets)
        };
        // Another probe's answer (a guess, or a replay).
        assert!(check_reply(&reply(8, LAN), 9, from, &subnets).is_err());
        // Lying about its address: another host on the LAN, or one outside it.
        assert!(check(with("addr", "192.168.1.22"), from).is_err());
        assert!(check(with("addr", "8.8.8.8"), sa("8.8.8.8:3633")).is_err());
        // From outside the probed networks, whatever it says.
        assert!(check(with("addr", "10.0.0.5"), sa("10.0.0.5:3633")).is_err());
        for (k, v) in [
            ("port", "0"),
            ("port", "99999"),
            ("slots", "100000"),
            ("slots", "-1"),
            ("slots_now", "x"),
        ] {
            assert!(check(with(k, v), from).is_err(), "{k}={v}");
        }
        // A box that is not healthy offers no slot.
        let sick = check(with("slots_now", "4"), from).map(|f| f.advert.slots_now);
        assert_eq!(sick, Ok(4));
        let mut kv = with("slots_now", "4");
        kv.push(("health", "broken: x".into()));
        assert_eq!(check(kv, from).map(|f| f.advert.slots_now), Ok(0));
    }

    #[test]
    fn link_local_replies_are_bound_to_their_interface() {
        let subnets = [net("fe80::1", "ffff:ffff:ffff:ffff::", 3)];
        let kv = [("addr", "fe80::2"), ("port", "3633"), ("slots", "2")];
        let from = SocketAddr::V6(SocketAddrV6::new("fe80::2".parse().unwrap(), 3633, 0, 3));
        let f = check_reply(&reply(1, &kv), 1, from, &subnets).unwrap();
        assert_eq!(f.addr.to_string(), "[fe80::2%3]:3633");
        assert_eq!(spec(&f).addr_string(), "[fe80::2%3]:3633");
        let elsewhere = SocketAddr::V6(SocketAddrV6::new("fe80::2".parse().unwrap(), 3633, 0, 4));
        assert!(check_reply(&reply(1, &kv), 1, elsewhere, &subnets).is_err());
    }

    fn found(addr: &str, identity: &str) -> Found {
        Found {
            addr: sa(addr),
            advert: Advert {
                jobs: 2,
                slots_now: 2,
            },
            hostname: identity.into(),
            identity: identity.into(),
            local: false,
        }
    }

    #[test]
    fn one_box_is_one_box_and_ours_is_localhost() {
        let f = vec![
            found("[fd00::5]:3633", "a"),
            found("10.0.0.5:3633", "a"),
            found("10.1.0.5:3633", "a"),
            found("10.0.0.6:3633", "b"),
            found("10.0.0.1:3633", "me"),
            found("10.0.0.7:3633", "listed"),
        ];
        let own: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap()];
        let m = merge(f, &own, &[sa("10.0.0.7:3633")]);
        let addrs: Vec<String> = m.iter().map(|b| b.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:3633", "10.0.0.5:3633", "10.0.0.6:3633"]);
        assert!(m[0].local && !m[1].local);
        assert_eq!(spec(&m[0]).kind, HostKind::Local);
        // Thousands of fake boxes: a bounded few are kept.
        let many: Vec<Found> = (0..5000u32)
            .map(|i| {
                let [_, _, a, b] = i.to_be_bytes();
                found(&format!("10.9.{a}.{b}:3633"), &i.to_string())
            })
            .collect();
        assert_eq!(merge(many, &[], &[]).len(), MAX_BOXES);
    }

    #[test]
    fn the_shared_finding_round_trips_and_expires() {
        let mut b = found("10.0.0.5:3633", "id/aa:bb/box 1");
        b.hostname = "box 1".into();
        let s = Shared {
            boxes: vec![b, found("[fe80::2%3]:3633", "x")],
            probed: vec!["eth0 10.0.0.255".into(), "eth0 ff02::1".into()],
        };
        let now = SystemTime::now();
        let t = to_text(&s, now);
        let back = from_text(&t, now, PERIOD).unwrap();
        assert_eq!(back.boxes[0].hostname, "box 1");
        assert_eq!(back.boxes[1].addr, s.boxes[1].addr);
        assert_eq!(back.probed, s.probed);
        assert_eq!(from_text(&t, now + PERIOD, PERIOD), None);
        assert_eq!(from_text("garbage", now, PERIOD), None);
    }

    #[test]
    fn a_build_shares_one_probe_and_never_waits_for_a_second() {
        let dir = std::env::temp_dir().join(format!("rcc-discover-share-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = State::open(&dir).unwrap();
        let file = state.state_dir().join("discovered");
        let s = Shared {
            boxes: vec![found("10.0.0.5:3633", "a")],
            probed: vec!["eth0 10.0.0.255".into()],
        };
        // Fresh: used as it is (no probe: this test sends nothing).
        std::fs::write(&file, to_text(&s, SystemTime::now())).unwrap();
        assert_eq!(shared(&state, PERIOD), s);
        // Stale while another rcc process probes (it holds the lock): the finding before.
        let old = SystemTime::now() - PERIOD * 2;
        std::fs::write(&file, to_text(&s, old)).unwrap();
        let held = try_lock_file(&state.state_dir().join("discover.lock")).unwrap();
        assert_eq!(shared(&state, PERIOD), s);
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn listed_boxes_win_over_found_ones() {
        let mut list = hosts::parse(
            "10.0.0.5:3633/2,nocompress localhost +discover,nocompress",
            "t",
        )
        .unwrap();
        let mut me = found("10.0.0.1:3633", "me");
        me.local = true;
        extend(
            &mut list,
            &[found("10.0.0.5:3633", "a"), found("10.0.0.6:3633", "b"), me],
        );
        let tokens: Vec<(&str, Origin)> = list
            .hosts
            .iter()
            .map(|h| (h.token.as_str(), h.origin))
            .collect();
        assert_eq!(
            tokens,
            [
                ("10.0.0.5:3633/2,nocompress", Origin::Listed),
                ("localhost", Origin::Listed),
                ("10.0.0.6:3633", Origin::Discovered)
            ]
        );
        // The options of `+discover,...` are every found box's.
        assert!(!list.hosts[2].compress);
    }
}
