//! Which peers may use a box: a list of CIDR networks, checked right after `accept()`.
//!
//! distccd's worst hole (CVE-2004-2687) was a daemon that compiled for anyone; rccd's
//! default is loopback only, and a farm opts in to its LAN with `--allow` or
//! `--allow-private`. IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, what a dual-stack socket
//! reports) are checked as the IPv4 address they are.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a `--allow` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError {
    pub text: String,
    pub why: &'static str,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--allow {}: {} (expected ADDRESS or ADDRESS/PREFIX, e.g. 192.168.1.0/24 or fd00::/8)",
            self.text, self.why
        )
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// Parses `192.168.1.0/24`, `10.0.0.7` (a single host), `fd00::/8`, `::1`.
    /// Host bits set below the prefix are refused: `192.168.1.5/24` is almost always a typo
    /// for the network or for the host, and guessing would open the wrong one.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let err = |why| CidrError {
            text: text.to_string(),
            why,
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                    return Err(err("the prefix length is not a number"));
                }
                let n: u8 = p
                    .parse()
                    .map_err(|_| err("the prefix length is too long"))?;
                if n > max {
                    return Err(err("the prefix length is too long"));
                }
                n
            }
        };
        let c = Cidr { addr, prefix };
        if c.network() != c.addr {
            return Err(err(
                "host bits are set below the prefix; give the network address",
            ));
        }
        Ok(c)
    }

    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(a) => (u32::from(a) as u128, 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    /// The top `prefix` bits of a `width`-bit address.
    fn mask(width: u8, prefix: u8) -> u128 {
        let all = if width == 32 {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        all & !all.checked_shr(prefix as u32).unwrap_or(0)
    }

    fn network(&self) -> IpAddr {
        let (v, w) = Self::bits(self.addr);
        let m = Self::mask(w, self.prefix);
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from((v & m) as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v & m)),
        }
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let (v, w) = Self::bits(ip);
        let (n, nw) = Self::bits(self.addr);
        w == nw && (v & Self::mask(w, self.prefix)) == n
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `::ffff:a.b.c.d` is the IPv4 peer `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The networks whose peers may use the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<Cidr>,
}

impl AllowList {
    pub fn new(nets: Vec<Cidr>) -> AllowList {
        AllowList { nets }
    }

    /// 127.0.0.0/8 and ::1: the default, so a fresh rccd serves nobody but its own machine.
    pub fn loopback() -> AllowList {
        AllowList::new(vec![
            Cidr::parse("127.0.0.0/8").expect("valid"),
            Cidr::parse("::1").expect("valid"),
        ])
    }

    /// Loopback plus the private LAN ranges a home or lab farm lives in: RFC 1918, IPv6
    /// unique-local and link-local. Never the internet.
    pub fn private_lan() -> AllowList {
        let mut l = AllowList::loopback();
        for n in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
            "fe80::/10",
        ] {
            l.nets.push(Cidr::parse(n).expect("valid"));
        }
        l
    }

    pub fn extend(&mut self, nets: impl IntoIterator<Item = Cidr>) {
        self.nets.extend(nets);
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_what_they_should() {
        let cases = [
            ("192.168.1.0/24", "192.168.1.77", true),
            ("192.168.1.0/24", "192.168.2.1", false),
            ("10.0.0.0/8", "10.255.255.255", true),
            ("10.0.0.7", "10.0.0.7", true),
            ("10.0.0.7", "10.0.0.8", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::1", false),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::1", "::1", true),
            ("::/0", "2001:db8::1", true),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("172.16.0.0/12", "172.31.255.1", true),
            ("172.16.0.0/12", "172.32.0.1", false),
        ];
        for (net, addr, want) in cases {
            let c = Cidr::parse(net).unwrap();
            assert_eq!(c.contains(ip(addr)), want, "{net} contains {addr}");
        }
    }

    #[test]
    fn bad_networks_say_what_is_wrong() {
        for (text, why) in [
            ("192.168.1.5/24", "host bits"),
            ("192.168.1.0/33", "too long"),
            ("192.168.1.0/", "not a number"),
            ("192.168.1.0/-1", "not a number"),
            ("box1", "not an IP"),
            ("", "not an IP"),
            ("fd00::/129", "too long"),
            ("1.2.3.4/99999", "not a number"),
        ] {
            let e = Cidr::parse(text).unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
            assert!(e.to_string().contains("--allow"), "{e}");
        }
    }

    #[test]
    fn defaults_are_loopback_and_private_lan() {
        let lo = AllowList::loopback();
        assert!(lo.permits(ip("127.0.0.1")));
        assert!(lo.permits(ip("127.0.0.2")));
        assert!(lo.permits(ip("::1")));
        assert!(!lo.permits(ip("192.168.1.2")));
        let lan = AllowList::private_lan();
        for a in [
            "192.168.1.2",
            "10.1.2.3",
            "172.20.0.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(lan.permits(ip(a)), "{a}");
        }
        for a in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "100.64.0.1"] {
            assert!(!lan.permits(ip(a)), "{a}");
        }
        let mut l = AllowList::new(vec![]);
        assert!(!l.permits(ip("127.0.0.1")));
        l.extend([Cidr::parse("100.64.0.0/10").unwrap()]);
        assert!(l.permits(ip("100.100.1.1")));
        assert_eq!(l.to_string(), "100.64.0.0/10");
    }
}
