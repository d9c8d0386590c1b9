//! The host list: `RCC_HOSTS` (or distcc's `DISTCC_HOSTS`) into host specs.
//!
//! A farm's existing `DISTCC_HOSTS` should work unchanged, so the grammar is distcc's where
//! it applies: `box`, `box:PORT`, `box/LIMIT`, `box:PORT/LIMIT`, `box/LIMIT:PORT`,
//! `[v6addr]:PORT`, options `,lzo` `,cpp` `,down`, `localhost[/LIMIT]`, and the keywords
//! `--randomize`, `--localslots=N`, `--localslots_cpp=N`, and `+discover[,OPTIONS]`
//! (distcc's `+zeroconf` means the same): the boxes found on the LAN join the listed ones,
//! each with the entry's options (`client::discover`). Where distcc is sloppy we are
//! strict, because a typo silently becoming a host named `angry=8` costs a user an evening:
//! every token that is not understood is an error naming the token and where it came from.

use std::fmt;
use std::path::{Path, PathBuf};

/// The port rccd listens on by default (distccd uses 3632; a box may run both).
pub const DEFAULT_PORT: u16 = 3633;

/// Largest `/LIMIT` accepted: more than any small box has cores, small enough that a typo
/// (`/800`) is caught.
pub const MAX_LIMIT: u32 = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// This machine: the compiler runs in place, no daemon.
    Local,
    /// A box running rccd.
    Tcp { host: String, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub kind: HostKind,
    /// `/LIMIT`: at most this many jobs at once; `None` means the default.
    pub limit: Option<u32>,
    /// Compress what travels (deflate). On by default: preprocessed C shrinks 3-7 times,
    /// and a 100 Mbit link shared by the whole farm is worth the master's few ms per job;
    /// `,nocompress` turns it off (a fast link and a slow master). `,lzo` and `,deflate`
    /// are accepted for distcc lists and mean the default.
    pub compress: bool,
    /// `,down`: listed but never used.
    pub down: bool,
    /// `,cpp`: distcc's pump mode. Accepted so a distcc list works unchanged; rcc
    /// preprocesses on the master either way for now.
    pub pump: bool,
    /// The token as written, for messages and `--show-hosts`.
    pub token: String,
    /// Where it came from: the list, or discovery.
    pub origin: Origin,
}

/// Where a host of the list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// Written in the host list.
    #[default]
    Listed,
    /// Found on the LAN (`+discover`, or no host list at all).
    Discovered,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Listed => "listed",
            Origin::Discovered => "discovered",
        }
    }
}

impl HostSpec {
    /// A host of kind `kind` written as `token`, with every option at its default.
    pub fn new(kind: HostKind, token: &str, origin: Origin) -> HostSpec {
        HostSpec {
            kind,
            limit: None,
            compress: true,
            down: false,
            pump: false,
            token: token.to_string(),
            origin,
        }
    }

    /// A name safe to use in a file name, unique per host and port (the slot locks and
    /// backoff files of every rcc process of a build are keyed on it).
    pub fn key(&self) -> String {
        match &self.kind {
            HostKind::Local => "localhost".into(),
            HostKind::Tcp { host, port } => {
                let safe: String = host
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("tcp_{safe}_{port}")
            }
        }
    }

    /// `host:port` as `connect` takes it (`[v6]:port` for IPv6 literals).
    pub fn addr_string(&self) -> String {
        match &self.kind {
            HostKind::Local => "localhost".into(),
            HostKind::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            HostKind::Tcp { host, port } => format!("{host}:{port}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostList {
    pub hosts: Vec<HostSpec>,
    /// `--randomize`: each job sees the boxes in its own random order.
    pub randomize: bool,
    /// `--localslots=N`: local compiles (fallbacks and local-only commands) at once.
    pub local_slots: Option<u32>,
    /// `--localslots_cpp=N`: local preprocessors at once.
    pub local_slots_cpp: Option<u32>,
    /// Entries that could not be read, each with why: left out, the others are used.
    pub skipped: Vec<Error>,
    /// `+discover` (or `+zeroconf`), or no host list at all: boxes found on the LAN join.
    pub discover: bool,
    /// The options of `+discover,OPTIONS` (`,nocompress`, `,lzo`, `,cpp,lzo`), which every
    /// discovered box gets: a box found keeps the options the list gives the farm.
    pub discover_options: DiscoverOptions,
}

/// What `+discover,OPTIONS` gives every box found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoverOptions {
    pub compress: bool,
    pub pump: bool,
}

impl Default for DiscoverOptions {
    fn default() -> DiscoverOptions {
        DiscoverOptions {
            compress: true,
            pump: false,
        }
    }
}

fn is_discover(token: &str) -> bool {
    let base = token.split(',').next().unwrap_or("");
    base == "+discover" || base == "+zeroconf"
}

/// `+discover[,OPTIONS]`: the options are a host's (`host_options`), but `,down`.
fn discover(list: &mut HostList, token: &str) -> Result<(), String> {
    let mut spec = HostSpec::new(HostKind::Local, token, Origin::Discovered);
    host_options(&mut spec, token.split_once(',').map(|(_, o)| o))?;
    if spec.down {
        return Err("\",down\" on +discover: leave the entry out instead".into());
    }
    list.discover = true;
    list.discover_options = DiscoverOptions {
        compress: spec.compress,
        pump: spec.pump,
    };
    Ok(())
}

impl HostList {
    /// What rcc uses without any host list: the boxes it finds.
    pub fn discover_only() -> HostList {
        HostList {
            discover: true,
            ..HostList::default()
        }
    }
}

/// A host list that cannot be used, with the token and the place it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub source: String,
    pub token: String,
    pub why: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.token.is_empty() {
            write!(f, "host list {}: {}", self.source, self.why)
        } else {
            write!(
                f,
                "host list {}: \"{}\": {}",
                self.source, self.token, self.why
            )
        }
    }
}

impl std::error::Error for Error {}

/// Where the host list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An environment variable (its name).
    Env(&'static str),
    File(PathBuf),
    None,
}

/// Picks the host list's source, in order: `RCC_HOSTS`, `DISTCC_HOSTS`, `$RCC_DIR/hosts`
/// (`rcc_dir`, as the client resolves it), `/etc/rcc/hosts`. A variable that is set but empty is
/// still chosen (and then fails to parse, saying so) — like distcc, so an accidentally
/// cleared variable is noticed instead of silently reading some other list.
/// `is_file` says whether a candidate file is there (the caller looks; a parser does no I/O).
pub fn source(
    get: impl Fn(&str) -> Option<String>,
    rcc_dir: &Path,
    is_file: impl Fn(&Path) -> bool,
) -> Source {
    for name in ["RCC_HOSTS", "DISTCC_HOSTS"] {
        if get(name).is_some() {
            return Source::Env(name);
        }
    }
    [rcc_dir.join("hosts"), PathBuf::from("/etc/rcc/hosts")]
        .into_iter()
        .find(|f| is_file(f))
        .map(Source::File)
        .unwrap_or(Source::None)
}

/// Parses a host list. `source` names where it came from, for errors. An entry that
/// cannot be read is left out and listed in `skipped` (one typo must not take the whole
/// farm away); only a list with no usable host at all is an error.
pub fn parse(text: &str, source: &str) -> Result<HostList, Error> {
    let err = |token: &str, why: String| Error {
        source: source.to_string(),
        token: token.to_string(),
        why,
    };
    let mut list = HostList::default();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for token in line.split_ascii_whitespace() {
            let read = match token.strip_prefix("--") {
                Some(rest) => keyword(&mut list, rest),
                None if is_discover(token) => discover(&mut list, token),
                None if token.starts_with('+') => Err(
                    "unknown entry (known: +discover, or distcc's +zeroconf: the boxes found on the LAN)"
                        .into(),
                ),
                None => host(token).map(|h| list.hosts.push(h)),
            };
            if let Err(why) = read {
                list.skipped.push(err(token, why));
            }
        }
    }
    if list.hosts.is_empty() && !list.discover {
        return Err(match list.skipped.len() {
            0 => err(
                "",
                "lists no hosts (e.g. RCC_HOSTS='box1 box2 localhost')".into(),
            ),
            1 => list.skipped.remove(0),
            n => err(
                "",
                format!(
                    "none of its {n} entries can be used (the first, \"{}\": {})",
                    list.skipped[0].token, list.skipped[0].why
                ),
            ),
        });
    }
    Ok(list)
}

fn keyword(list: &mut HostList, rest: &str) -> Result<(), String> {
    let number = |v: &str| -> Result<u32, String> {
        match v.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("expected a number from 1 to {MAX_LIMIT}")),
        }
    };
    if rest == "randomize" {
        list.randomize = true;
    } else if let Some(v) = rest
        .strip_prefix("localslots=")
        .or_else(|| rest.strip_prefix("localslots/"))
    {
        list.local_slots = Some(number(v)?);
    } else if let Some(v) = rest
        .strip_prefix("localslots_cpp=")
        .or_else(|| rest.strip_prefix("localslots_cpp/"))
    {
        list.local_slots_cpp = Some(number(v)?);
    } else {
        return Err(
            "unknown keyword (known: --randomize, --localslots=N, --localslots_cpp=N)".into(),
        );
    }
    Ok(())
}

/// One host entry: `NAME`, `[V6]`, then `:PORT` and `/LIMIT` in either order, then options.
fn host(token: &str) -> Result<HostSpec, String> {
    if token.contains('@') {
        return Err(
            "ssh hosts are not supported; run rccd on the box and list it as \
                    box[:PORT]"
                .into(),
        );
    }
    let (main, options) = match token.find(',') {
        Some(i) => (&token[..i], Some(&token[i + 1..])),
        None => (token, None),
    };
    let mut spec = HostSpec::new(HostKind::Local, token, Origin::Listed);
    host_options(&mut spec, options)?;
    let (name, rest) = host_id(main)?;
    let is_local = name == "localhost" && !rest.starts_with(':') && !main.starts_with('[');
    let (port, limit) = port_and_limit(rest)?;
    spec.limit = limit;
    spec.kind = if is_local {
        HostKind::Local
    } else {
        HostKind::Tcp {
            host: name.to_string(),
            port: port.unwrap_or(DEFAULT_PORT),
        }
    };
    Ok(spec)
}

/// The options after the first ',' (`None`: there are none).
fn host_options(spec: &mut HostSpec, options: Option<&str>) -> Result<(), String> {
    for opt in options.into_iter().flat_map(|o| o.split(',')) {
        match opt {
            "lzo" | "deflate" => spec.compress = true,
            "nocompress" => spec.compress = false,
            "down" => spec.down = true,
            "cpp" => spec.pump = true,
            "" => return Err("empty option after ','".into()),
            other => {
                return Err(format!(
                    "unknown option \"{other}\" (known: lzo, deflate, nocompress, cpp, down)"
                ))
            }
        }
    }
    if spec.pump && !options.is_some_and(|o| o.split(',').any(|x| x == "lzo")) {
        // distcc refuses this too; keeping the rule keeps lists portable both ways.
        return Err("\",cpp\" needs \",lzo\" as well".into());
    }
    Ok(())
}

/// The host id, `[v6]` or a name/IPv4 running to ':' or '/', and what follows it.
fn host_id(main: &str) -> Result<(&str, &str), String> {
    let (name, rest) = if let Some(r) = main.strip_prefix('[') {
        let end = r
            .find(']')
            .ok_or("unclosed '[' (write IPv6 as [fd00::5]:3633)")?;
        let addr = &r[..end];
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("\"{addr}\" is not an IPv6 address"));
        }
        (addr, &r[end + 1..])
    } else {
        let end = main.find([':', '/']).unwrap_or(main.len());
        (&main[..end], &main[end..])
    };
    if name.is_empty() {
        return Err("no host name".into());
    }
    if !main.starts_with('[') {
        let ok = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "\"{name}\" is not a host name or address (letters, digits, '.', '-' only)"
            ));
        }
    }
    Ok((name, rest))
}

/// `:PORT` and `/LIMIT`, in either order, each at most once, and nothing after them.
fn port_and_limit(mut rest: &str) -> Result<(Option<u16>, Option<u32>), String> {
    let (mut port, mut limit) = (None, None);
    for _ in 0..2 {
        if let Some(r) = rest.strip_prefix(':') {
            if port.is_some() {
                return Err("two ports".into());
            }
            let end = r.find(['/', ':']).unwrap_or(r.len());
            port = Some(match r[..end].parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("\"{}\" is not a port (1-65535)", &r[..end])),
            });
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('/') {
            if limit.is_some() {
                return Err("two limits".into());
            }
            let end = r.find([':', '/']).unwrap_or(r.len());
            limit = Some(match r[..end].parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "\"/{}\": the job limit must be a number from 1 to {MAX_LIMIT}",
                        &r[..end]
                    ))
                }
            });
            rest = &r[end..];
        }
    }
    if !rest.is_empty() {
        return Err(format!("unexpected \"{rest}\""));
    }
    Ok((port, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(token: &str) -> HostSpec {
        let l = parse(token, "test").unwrap_or_else(|e| panic!("{token}: {e}"));
        assert_eq!(l.hosts.len(), 1);
        l.hosts[0].clone()
    }

    fn tcp(host: &str, port: u16) -> HostKind {
        HostKind::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn distcc_forms_parse() {
        let cases: &[(&str, HostKind, Option<u32>, bool)] = &[
            ("box1", tcp("box1", 3633), None, true),
            ("box1/8", tcp("box1", 3633), Some(8), true),
            ("box1:4000", tcp("box1", 4000), None, true),
            ("box1:4000/8,nocompress", tcp("box1", 4000), Some(8), false),
            ("box1/8:4000", tcp("box1", 4000), Some(8), true),
            ("box1/8,lzo", tcp("box1", 3633), Some(8), true),
            ("box1,deflate", tcp("box1", 3633), None, true),
            (
                "192.168.1.5:3633/4,lzo",
                tcp("192.168.1.5", 3633),
                Some(4),
                true,
            ),
            ("[fd00::5]:3700/2", tcp("fd00::5", 3700), Some(2), true),
            ("[::1],nocompress", tcp("::1", 3633), None, false),
            ("localhost", HostKind::Local, None, true),
            ("localhost/3", HostKind::Local, Some(3), true),
            ("localhost:3633", tcp("localhost", 3633), None, true),
            ("box_1.lan", tcp("box_1.lan", 3633), None, true),
        ];
        for (token, kind, limit, compress) in cases {
            let h = one(token);
            assert_eq!(&h.kind, kind, "{token}");
            assert_eq!(h.limit, *limit, "{token}");
            assert_eq!(h.compress, *compress, "{token}");
            assert_eq!(h.token, *token);
        }
        assert!(one("box,down").down);
        assert!(one("box,cpp,lzo").pump);
    }

    #[test]
    fn a_whole_list_with_keywords_and_comments() {
        let text = "# the farm\nbox1/8,lzo box2/8,lzo\t# the fast ones\n\
                    box3/4 --randomize localhost/3 --localslots=2 --localslots_cpp=6\n";
        let l = parse(text, "RCC_HOSTS").unwrap();
        let tokens: Vec<&str> = l.hosts.iter().map(|h| h.token.as_str()).collect();
        assert_eq!(
            tokens,
            ["box1/8,lzo", "box2/8,lzo", "box3/4", "localhost/3"]
        );
        assert!(l.randomize);
        assert_eq!(l.local_slots, Some(2));
        assert_eq!(l.local_slots_cpp, Some(6));
        // A comment straight after a token ends it, as in distcc.
        let l = parse("box1,lzo#x box9", "f").unwrap();
        assert_eq!(l.hosts.len(), 1);
        assert!(l.hosts[0].compress);
    }

    #[test]
    fn bad_tokens_are_named_with_what_to_do() {
        let cases = [
            ("box/0", "job limit"),
            ("box/x", "job limit"),
            ("box/100000", "job limit"),
            ("box:", "not a port"),
            ("box:notaport", "not a port"),
            ("box:70000", "not a port"),
            ("box::", "not a port"),
            (":4200", "no host name"),
            ("angry=8", "not a host name"),
            ("box,gzip", "unknown option"),
            ("box,", "empty option"),
            ("box,cpp", "needs \",lzo\""),
            ("user@box", "ssh hosts"),
            ("[fd00::5", "unclosed"),
            ("[box]:1", "not an IPv6"),
            ("box/4/4", "two limits"),
            ("box:1:2", "two ports"),
            ("--localslots=0", "number from 1"),
            ("--frobnicate", "unknown keyword"),
            ("box/4x", "job limit"),
        ];
        for (token, want) in cases {
            let e = parse(token, "RCC_HOSTS").unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(want), "{token}: {msg}");
            assert!(msg.contains("RCC_HOSTS"), "{msg}");
        }
        let e = parse("  # nothing\n", "RCC_HOSTS").unwrap_err();
        assert!(e.to_string().contains("lists no hosts"), "{e}");
    }

    #[test]
    fn a_bad_entry_is_left_out_and_the_others_are_used() {
        let l = parse("box1 box/0 --frobnicate\nbox2:4000 user@box3", "f").unwrap();
        let tokens: Vec<&str> = l.hosts.iter().map(|h| h.token.as_str()).collect();
        assert_eq!(tokens, ["box1", "box2:4000"]);
        let skipped: Vec<&str> = l.skipped.iter().map(|e| e.token.as_str()).collect();
        assert_eq!(skipped, ["box/0", "--frobnicate", "user@box3"]);
        assert!(l.skipped[0].to_string().contains("job limit"));
        // With nothing usable left, the list is an error that says so.
        let e = parse("box/0 user@box3", "f").unwrap_err();
        assert!(e.to_string().contains("none of its 2 entries"), "{e}");
        assert!(e.to_string().contains("box/0"), "{e}");
    }

    #[test]
    fn keys_are_file_name_safe_and_addresses_connectable() {
        assert_eq!(one("box1:4000").key(), "tcp_box1_4000");
        assert_eq!(one("[fd00::5]:3700").key(), "tcp_fd00__5_3700");
        assert_eq!(one("localhost/2").key(), "localhost");
        assert_eq!(one("[fd00::5]:3700").addr_string(), "[fd00::5]:3700");
        assert_eq!(one("box1").addr_string(), "box1:3633");
    }

    #[test]
    fn source_order() {
        let dir = std::env::temp_dir().join(format!("rcc-hosts-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".rcc")).unwrap();
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let rcc_dir = dir.join(".rcc");
        let is_file = |p: &Path| p.is_file();
        assert_eq!(
            source(
                env(&[("RCC_HOSTS", "a"), ("DISTCC_HOSTS", "b")]),
                &rcc_dir,
                is_file
            ),
            Source::Env("RCC_HOSTS")
        );
        assert_eq!(
            source(env(&[("DISTCC_HOSTS", "")]), &rcc_dir, is_file),
            Source::Env("DISTCC_HOSTS")
        );
        let before = source(env(&[]), &rcc_dir, is_file);
        assert!(matches!(before, Source::None | Source::File(_)));
        std::fs::write(dir.join(".rcc/hosts"), "box1\n").unwrap();
        assert_eq!(
            source(env(&[]), &rcc_dir, is_file),
            Source::File(dir.join(".rcc/hosts"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod discover_tests {
    use super::*;

    #[test]
    fn discover_and_zeroconf_ask_for_the_boxes_on_the_lan() {
        for text in [
            "+discover",
            "+zeroconf",
            "box1 +discover",
            "+zeroconf --randomize",
        ] {
            let l = parse(text, "test").unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(l.discover, "{text}");
            assert!(l.skipped.is_empty(), "{text}");
        }
        let l = parse("box1 +discover localhost", "test").unwrap();
        assert_eq!(l.hosts.len(), 2);
        assert!(l.hosts.iter().all(|h| h.origin == Origin::Listed));
        assert!(!parse("box1", "test").unwrap().discover);
        let l = parse("+discover,nocompress", "test").unwrap();
        assert!(l.discover && !l.discover_options.compress);
        let l = parse("+zeroconf,cpp,lzo", "test").unwrap();
        assert!(l.discover_options.pump && l.discover_options.compress);
        assert!(parse("+discover,down", "test").is_err());
        assert!(parse("+discover,bogus", "test").is_err());
        // A typo is said, not silently a host.
        let l = parse("box1 +discovr", "test").unwrap();
        assert!(!l.discover);
        assert!(l.skipped[0].why.contains("+discover"), "{:?}", l.skipped);
        assert!(HostList::discover_only().discover);
    }
}
