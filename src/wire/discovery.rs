//! Discovery's datagrams: the probe `rcc` sends to a LAN's broadcast (and IPv6 all-nodes)
//! address on rccd's port, and the reply a box sends back. Bytes in, bytes out; the sockets
//! are `client::discover`'s and `daemon::event_loop`'s, who answers what is
//! `daemon::discovery`'s.
//!
//! ```text
//! offset 0  4 bytes  magic: "RCC?" (probe) or "RCC!" (reply)
//!        4  u8       discovery version (VERSION)
//!        5  u8       reserved, 0
//!        6  u16      reply: body length, big-endian; probe: 0
//!        8  u64      nonce: chosen by the client, echoed by the box
//!       16  ...      probe: padding (zeros) up to its length; reply: the body, `key=value`
//!                    lines, as in the status reply (`daemon::status`)
//! ```
//!
//! No amplification: a probe is at least `MIN_PROBE` bytes (the client pads it), and a reply
//! is never longer than the probe it answers — `encode_reply` leaves out the pairs that do
//! not fit, the first ones (`addr`, `port`) being the ones it must keep or send nothing. A
//! reply that echoes the wrong nonce is not the answer to this probe (an off-path sender
//! cannot guess it).

use std::fmt;

pub const PROBE_MAGIC: &[u8; 4] = b"RCC?";
pub const REPLY_MAGIC: &[u8; 4] = b"RCC!";
pub const VERSION: u8 = 1;
pub const HEADER: usize = 16;
/// The shortest probe a box answers: room for the answer of a box with a few compilers.
pub const MIN_PROBE: usize = 512;
/// The longest datagram either side reads: one Ethernet frame's payload, no fragments.
pub const MAX_DATAGRAM: usize = 1472;
/// The most `key=value` pairs a reply may carry.
pub const MAX_PAIRS: usize = 48;
/// The longest key and value.
pub const MAX_KEY: usize = 32;
pub const MAX_VALUE: usize = 256;

/// Why a datagram is not a probe or a reply (it is dropped, never answered with an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Shorter than a header (or, for a probe, than `MIN_PROBE`).
    Short(usize),
    /// Longer than `MAX_DATAGRAM`.
    Oversized(usize),
    Magic,
    Version(u8),
    /// The body's length field, bytes or lines are not what they must be.
    Body(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Short(n) => write!(f, "{n} bytes is too short"),
            Error::Oversized(n) => write!(f, "{n} bytes is more than {MAX_DATAGRAM}"),
            Error::Magic => write!(f, "not an rcc discovery datagram"),
            Error::Version(v) => write!(f, "discovery version {v} (this one speaks {VERSION})"),
            Error::Body(why) => write!(f, "malformed reply: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A probe of `len` bytes (at least `MIN_PROBE`, at most `MAX_DATAGRAM`) with `nonce`.
pub fn encode_probe(nonce: u64, len: usize) -> Vec<u8> {
    let len = len.clamp(MIN_PROBE, MAX_DATAGRAM);
    let mut b = vec![0u8; len];
    b[..4].copy_from_slice(PROBE_MAGIC);
    b[4] = VERSION;
    b[8..16].copy_from_slice(&nonce.to_be_bytes());
    b
}

/// A probe's nonce, and its length (the most a reply to it may take).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub nonce: u64,
    pub len: usize,
}

fn header(b: &[u8], magic: &[u8; 4], min: usize) -> Result<u64, Error> {
    if b.len() > MAX_DATAGRAM {
        return Err(Error::Oversized(b.len()));
    }
    if b.len() < HEADER.max(min) {
        return Err(Error::Short(b.len()));
    }
    if &b[..4] != magic {
        return Err(Error::Magic);
    }
    if b[4] != VERSION {
        return Err(Error::Version(b[4]));
    }
    Ok(u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")))
}

pub fn decode_probe(b: &[u8]) -> Result<Probe, Error> {
    let nonce = header(b, PROBE_MAGIC, MIN_PROBE)?;
    Ok(Probe {
        nonce,
        len: b.len(),
    })
}

fn key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY
        && k.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-+".contains(&c))
}

/// A value travels only as printable ASCII: no control characters (a name that would move
/// the cursor of the terminal `rcc --discover` prints on), no '\n' (the line separator), no
/// Unicode that reorders or hides text.
fn value_ok(v: &str) -> bool {
    v.len() <= MAX_VALUE && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// A reply carrying `kv` in order for the probe `to`, as many pairs as fit in `to.len`
/// bytes; `None` if not even the first `keep` do (then nothing is sent). Pairs that could
/// not be read back (a key or value that is not allowed) are left out.
pub fn encode_reply(to: Probe, kv: &[(String, String)], keep: usize) -> Option<Vec<u8>> {
    let max = to.len.min(MAX_DATAGRAM);
    let mut b = Vec::with_capacity(max);
    b.extend_from_slice(REPLY_MAGIC);
    b.extend_from_slice(&[VERSION, 0, 0, 0]);
    b.extend_from_slice(&to.nonce.to_be_bytes());
    let mut pairs = 0;
    for (i, (k, v)) in kv.iter().enumerate() {
        let fits = b.len() + k.len() + v.len() + 2 <= max;
        if !fits || pairs == MAX_PAIRS || !key_ok(k) || !value_ok(v) {
            if i < keep {
                return None;
            }
            continue;
        }
        b.extend_from_slice(k.as_bytes());
        b.push(b'=');
        b.extend_from_slice(v.as_bytes());
        b.push(b'\n');
        pairs += 1;
    }
    let body = (b.len() - HEADER) as u16;
    b[6..8].copy_from_slice(&body.to_be_bytes());
    Some(b)
}

/// A reply: the nonce it echoes and its pairs, each key and value checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub nonce: u64,
    pub kv: Vec<(String, String)>,
}

impl Reply {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kv
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub fn decode_reply(b: &[u8]) -> Result<Reply, Error> {
    let nonce = header(b, REPLY_MAGIC, HEADER)?;
    let body_len = usize::from(u16::from_be_bytes([b[6], b[7]]));
    if HEADER + body_len != b.len() {
        return Err(Error::Body("its length field is not its length"));
    }
    let text = std::str::from_utf8(&b[HEADER..]).map_err(|_| Error::Body("not UTF-8"))?;
    let mut kv: Vec<(String, String)> = Vec::new();
    for line in text.split_terminator('\n') {
        let (k, v) = line
            .split_once('=')
            .ok_or(Error::Body("a line without '='"))?;
        if !key_ok(k) {
            return Err(Error::Body("a key that is not [a-z0-9_.-+]"));
        }
        if !value_ok(v) {
            return Err(Error::Body("a value with control characters or too long"));
        }
        if kv.iter().any(|(old, _)| old == k) {
            return Err(Error::Body("a key twice"));
        }
        if kv.len() == MAX_PAIRS {
            return Err(Error::Body("too many pairs"));
        }
        kv.push((k.to_string(), v.to_string()));
    }
    Ok(Reply { nonce, kv })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_probe_round_trips_padded() {
        let p = encode_probe(0x1234_5678_9abc_def0, 1200);
        assert_eq!(p.len(), 1200);
        assert_eq!(
            decode_probe(&p),
            Ok(Probe {
                nonce: 0x1234_5678_9abc_def0,
                len: 1200
            })
        );
        // Asked for less than the minimum: padded to it.
        assert_eq!(encode_probe(1, 20).len(), MIN_PROBE);
        assert_eq!(encode_probe(1, 1 << 20).len(), MAX_DATAGRAM);
    }

    #[test]
    fn hostile_probes_are_refused() {
        let good = encode_probe(7, 600);
        assert_eq!(decode_probe(&good[..MIN_PROBE - 1]), Err(Error::Short(511)));
        assert_eq!(decode_probe(&good[..3]), Err(Error::Short(3)));
        assert_eq!(decode_probe(&[]), Err(Error::Short(0)));
        let mut big = good.clone();
        big.resize(MAX_DATAGRAM + 1, 0);
        assert_eq!(decode_probe(&big), Err(Error::Oversized(1473)));
        let mut magic = good.clone();
        magic[3] = b'!';
        assert_eq!(decode_probe(&magic), Err(Error::Magic));
        let mut version = good.clone();
        version[4] = 9;
        assert_eq!(decode_probe(&version), Err(Error::Version(9)));
        // A reply is not a probe: a box never answers another box's answer.
        let reply = encode_reply(decode_probe(&good).unwrap(), &kv(&[("a", "b")]), 1).unwrap();
        let mut reply = reply;
        reply.resize(600, 0);
        assert_eq!(decode_probe(&reply), Err(Error::Magic));
    }

    #[test]
    fn a_reply_round_trips() {
        let probe = Probe {
            nonce: 42,
            len: 600,
        };
        let pairs = kv(&[
            ("addr", "192.168.1.21"),
            ("port", "3633"),
            ("hostname", "box 1"),
        ]);
        let b = encode_reply(probe, &pairs, 2).unwrap();
        let r = decode_reply(&b).unwrap();
        assert_eq!(r.nonce, 42);
        assert_eq!(r.kv, pairs);
        assert_eq!(r.get("port"), Some("3633"));
    }

    #[test]
    fn a_reply_is_never_longer_than_its_probe() {
        let mut pairs = kv(&[("addr", "10.0.0.2"), ("port", "3633")]);
        for i in 0..40 {
            pairs.push((format!("compiler.gcc-{i}"), "x".repeat(60)));
        }
        for len in [MIN_PROBE, 700, 1000, MAX_DATAGRAM] {
            let b = encode_reply(Probe { nonce: 1, len }, &pairs, 2).unwrap();
            assert!(b.len() <= len, "{} > {len}", b.len());
            let r = decode_reply(&b).unwrap();
            assert_eq!(r.get("addr"), Some("10.0.0.2"));
            assert!(r.kv.len() < pairs.len());
        }
        // The pairs it must keep do not fit: nothing is sent.
        let huge = kv(&[("addr", &"1".repeat(250)), ("port", &"2".repeat(250))]);
        assert_eq!(encode_reply(Probe { nonce: 1, len: 400 }, &huge, 2), None);
        // A value it may not send is left out, or sends nothing if it must be kept.
        let bad = kv(&[("addr", "a"), ("hostname", "evil\x1b[2J"), ("port", "1")]);
        let r = decode_reply(&encode_reply(Probe { nonce: 1, len: 600 }, &bad, 1).unwrap());
        assert_eq!(r.unwrap().kv, kv(&[("addr", "a"), ("port", "1")]));
        assert_eq!(encode_reply(Probe { nonce: 1, len: 600 }, &bad, 2), None);
    }

    #[test]
    fn hostile_replies_are_refused() {
        let good = encode_reply(
            Probe { nonce: 5, len: 600 },
            &kv(&[("addr", "10.0.0.2"), ("port", "3633")]),
            2,
        )
        .unwrap();
        assert!(decode_reply(&good).is_ok());
        // Truncated anywhere: its length field no longer matches.
        for n in [0, 3, 15] {
            assert_eq!(decode_reply(&good[..n]), Err(Error::Short(n)));
        }
        for n in HEADER..good.len() {
            assert!(decode_reply(&good[..n]).is_err(), "cut at {n}");
        }
        let mut big = good.clone();
        big.resize(MAX_DATAGRAM + 1, b'a');
        assert_eq!(decode_reply(&big), Err(Error::Oversized(MAX_DATAGRAM + 1)));
        let mut v = good.clone();
        v[4] = 2;
        assert_eq!(decode_reply(&v), Err(Error::Version(2)));
        let mut m = good.clone();
        m[0] = b'X';
        assert_eq!(decode_reply(&m), Err(Error::Magic));
        let raw = |body: &[u8]| {
            let mut b = Vec::from(&REPLY_MAGIC[..]);
            b.extend_from_slice(&[VERSION, 0]);
            b.extend_from_slice(&(body.len() as u16).to_be_bytes());
            b.extend_from_slice(&5u64.to_be_bytes());
            b.extend_from_slice(body);
            b
        };
        assert!(decode_reply(&raw(b"addr=1\n")).is_ok());
        for (body, why) in [
            (&b"hostname=a\x1b[31mb\n"[..], "control"),
            (b"hostname=a\rb\n", "carriage return"),
            ("hostname=a\u{202e}b\n".as_bytes(), "a bidi override"),
            (b"hostname=a\x7fb\n", "DEL"),
            (b"no equals\n", "no '='"),
            (b"Addr=1\n", "upper-case key"),
            (b"=1\n", "empty key"),
            (b"addr=1\naddr=2\n", "a key twice"),
            (b"addr=\xff\n", "not UTF-8"),
        ] {
            assert!(decode_reply(&raw(body)).is_err(), "{why}");
        }
        let many: String = (0..=MAX_PAIRS).map(|i| format!("k{i}=v\n")).collect();
        assert_eq!(
            decode_reply(&raw(many.as_bytes())),
            Err(Error::Body("too many pairs"))
        );
        let long = format!("hostname={}\n", "a".repeat(MAX_VALUE + 1));
        assert!(decode_reply(&raw(long.as_bytes())).is_err());
    }
}
