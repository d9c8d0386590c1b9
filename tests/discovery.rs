//! The farm finds itself: rccd answers discovery probes (allowed peers only, never more
//! bytes than asked, within its budgets), and rcc with no host list finds the boxes on the
//! LAN. On loopback here; the LAN tests build their own bridge of network namespaces
//! (`Lan`, root only).

use crate::util::*;
use rcc::wire::discovery::{self, Reply};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A probe of `len` bytes from `from` to `to`; the replies that came within `wait`.
fn probe_from(from: &str, to: SocketAddr, len: usize, wait: Duration) -> Vec<(usize, Reply)> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s.send_to(&discovery::encode_probe(77, len), to).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            out.push((n, discovery::decode_reply(&buf[..n]).expect("a good reply")));
        }
    }
    out
}

fn udp_of(d: &Daemon) -> SocketAddr {
    format!("127.0.0.1:{}", d.port).parse().unwrap()
}

#[test]
fn rccd_answers_a_probe_with_what_the_master_needs() {
    let d = Daemon::start(3, &[]);
    let got = probe_from("127.0.0.1", udp_of(&d), 1200, Duration::from_millis(500));
    assert_eq!(got.len(), 1, "{}", d.log_text());
    let (n, r) = &got[0];
    assert!(*n <= 1200);
    assert_eq!(r.nonce, 77);
    assert_eq!(r.get("addr"), Some("127.0.0.1"));
    assert_eq!(r.get("port"), Some(d.port.to_string().as_str()));
    assert_eq!(r.get("slots"), Some("3"));
    assert_eq!(r.get("health"), Some("ok"));
    assert!(r.get("compiler.gcc").is_some(), "{:?}", r.kv);
    let status = d.status();
    assert!(status["discovery"].starts_with("on"), "{status:?}");
    assert_eq!(status["probes_answered"], "1");
}

#[test]
fn a_short_probe_gets_a_short_reply_or_none() {
    let d = Daemon::start(1, &[]);
    // The smallest probe a box answers: the reply fits in it.
    let got = probe_from(
        "127.0.0.1",
        udp_of(&d),
        discovery::MIN_PROBE,
        Duration::from_millis(300),
    );
    assert!(got.iter().all(|(n, _)| *n <= discovery::MIN_PROBE));
    // Shorter than that: no answer at all.
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let short = &discovery::encode_probe(1, discovery::MIN_PROBE)[..100];
    s.send_to(short, udp_of(&d)).unwrap();
    let mut buf = [0u8; 2048];
    assert!(s.recv_from(&mut buf).is_err(), "a short probe was answered");
    wait_until("the short probe is counted", 5, || {
        d.counter("probes_ignored") == 1
    });
}

#[test]
fn a_probe_from_outside_the_allow_list_gets_no_answer() {
    let d = Daemon::start(1, &["--allow", "127.0.0.1/32"]);
    assert!(probe_from("127.0.0.2", udp_of(&d), 1200, Duration::from_millis(300)).is_empty());
    wait_until("the probe is counted", 5, || {
        d.counter("probes_refused") == 1
    });
    assert_eq!(
        probe_from("127.0.0.1", udp_of(&d), 1200, Duration::from_millis(300)).len(),
        1
    );
}

#[test]
fn no_discovery_binds_no_udp_socket() {
    let d = Daemon::start(1, &["--no-discovery"]);
    assert!(probe_from("127.0.0.1", udp_of(&d), 1200, Duration::from_millis(300)).is_empty());
    assert!(d.value("discovery").starts_with("off"));
    let check = run(std::process::Command::new(RCCD).args(["--no-discovery", "--check"]));
    assert!(
        s(&check.stdout).contains("discovery: off"),
        "{}",
        s(&check.stdout)
    );
    let check = run(std::process::Command::new(RCCD).arg("--check"));
    assert!(
        s(&check.stdout).contains("discovery: answers probes on UDP port 3633"),
        "{}",
        s(&check.stdout)
    );
}

/// CPU time (user + system, in clock ticks of 10 ms) the process `pid` used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_probe_flood_is_answered_within_budget_and_jobs_still_run() {
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("flood");
    t.write("a.c", "int a(void) { return 41 + 1; }\n");
    let to = udp_of(&d);
    let before = cpu_ticks(d.pid());
    let started = Instant::now();
    // Four flooders, each from addresses of its own (spoofed sources, as far as loopback
    // lets a test spoof): 127.0.0.2 ... 127.0.3.255, 1200-byte probes as fast as they go.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..4u8)
        .map(|k| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // One fixed port below the ephemeral range on every address: the flood takes
                // no ephemeral port a daemon of another test may be given.
                let socks: Vec<UdpSocket> = (2..=255u8)
                    .map(|i| UdpSocket::bind((format!("127.0.{k}.{i}"), 19_633)).unwrap())
                    .collect();
                let probe = discovery::encode_probe(9, 1200);
                let mut sent = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for s in &socks {
                        let _ = s.send_to(&probe, to);
                        sent += 1;
                    }
                }
                sent
            })
        })
        .collect();
    // Jobs while the flood runs: every one done on the box.
    let rcc_dir = t.join(".rcc");
    for i in 0..6 {
        ok(rcc(t.path(), &rcc_dir, &d.addr()).args(["gcc", "-c", "a.c", "-o", &format!("a{i}.o")]));
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: u64 = flooders.into_iter().map(|f| f.join().unwrap()).sum();
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_ticks(d.pid()) - before;
    assert_eq!(d.counter("done"), 6);
    let answered = d.counter("probes_answered");
    let read = d.counter("probes");
    eprintln!(
        "flood: {sent} probes sent in {secs:.1} s, rccd read {read}, answered {answered}, \
         limited {}; rccd used {} ms of CPU ({:.0}% of one core), 6 jobs done",
        d.counter("probes_limited"),
        cpu * 10,
        cpu as f64 * 10.0 / (secs * 10.0),
    );
    // The budget: a burst, then the global rate (plus one burst of slack for the clock).
    let most = 2 * u64::from(rcc::daemon::discovery::GLOBAL_BURST)
        + u64::from(rcc::daemon::discovery::GLOBAL_PER_S) * (secs.ceil() as u64);
    assert!(answered <= most, "{answered} answers > {most}");
}

/// A LAN of network namespaces: a switch namespace holding one bridge per subnet, and
/// members, each joined to some bridges by veth pairs; subnet `n` is 198.18.(100+n).0/24
/// with broadcast, and fd42:(100+n)::/64. No default route, so nothing leaves. Every namespace is removed on drop.
struct Lan {
    tag: String,
    sw: String,
    members: Vec<String>,
    links: usize,
}

fn ip(args: &[&str]) {
    let st = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "ip {args:?}");
}

impl Lan {
    /// A LAN with `subnets` bridges; `None` (said on stderr) where this machine cannot.
    fn new(name: &str, subnets: usize) -> Option<Lan> {
        if !root("network namespaces") || !have("ip", "-V") || !have("unshare", "--version") {
            return None;
        }
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let k = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("rd{}{name}{k}", std::process::id() % 100_000);
        let sw = format!("{tag}sw");
        ip(&["netns", "add", &sw]);
        let lan = Lan {
            tag,
            sw,
            members: Vec::new(),
            links: 0,
        };
        for n in 0..subnets {
            let br = format!("br{n}");
            ip(&["-n", &lan.sw, "link", "add", &br, "type", "bridge"]);
            ip(&["-n", &lan.sw, "link", "set", &br, "up"]);
        }
        Some(lan)
    }

    /// A member namespace `name` with address `.host` on each subnet in `on`; its name.
    fn member(&mut self, name: &str, host: u8, on: &[usize]) -> String {
        let ns = format!("{}{name}", self.tag);
        ip(&["netns", "add", &ns]);
        self.members.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        for (i, n) in on.iter().enumerate() {
            self.links += 1;
            let (inner, outer) = (format!("eth{i}"), format!("v{}", self.links));
            ip(&[
                "-n", &self.sw, "link", "add", &outer, "type", "veth", "peer", "name", &inner,
                "netns", &ns,
            ]);
            ip(&[
                "-n",
                &self.sw,
                "link",
                "set",
                &outer,
                "master",
                &format!("br{n}"),
            ]);
            ip(&["-n", &self.sw, "link", "set", &outer, "up"]);
            let addr = format!("{}/24", Lan::addr(*n, host));
            ip(&["-n", &ns, "addr", "add", &addr, "brd", "+", "dev", &inner]);
            let addr6 = format!("{}/64", Lan::addr6(*n, host));
            ip(&["-n", &ns, "addr", "add", &addr6, "nodad", "dev", &inner]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
        }
        ns
    }

    fn addr(subnet: usize, host: u8) -> String {
        format!("198.18.{}.{host}", 100 + subnet)
    }

    fn addr6(subnet: usize, host: u8) -> String {
        format!("fd42:{}::{host}", 100 + subnet)
    }

    /// rccd in `ns` (its own host name `name`, as a box of its own would have) on
    /// `listen`, with `extra` flags.
    fn rccd(ns: &str, name: &str, listen: &str, jobs: usize, extra: &[&str]) -> Daemon {
        let script = format!("hostname {name} && exec \"$@\"");
        let wrapper = [
            "ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c", &script, "sh",
        ];
        Daemon::start_wrapped(&wrapper, listen, jobs, extra)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.members.iter().chain([&self.sw]) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

/// `cmd` run in namespace `ns`: its program, arguments, environment and directory.
fn in_ns(ns: &str, cmd: &std::process::Command) -> std::process::Command {
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", ns]).arg(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// rcc in the master's namespace with no host list at all.
fn rcc_in(ns: &str, t: &TempDir, args: &[&str]) -> std::process::Command {
    let mut c = rcc(t.path(), &t.join(".rcc"), "");
    c.env_remove("RCC_HOSTS").args(args);
    in_ns(ns, &c)
}

/// The status of the rccd at `addr` in namespace `ns`, asked from inside.
fn ns_status(ns: &str, addr: &str) -> std::collections::HashMap<String, String> {
    let out = run(std::process::Command::new("ip")
        .args(["netns", "exec", ns, RCC, "--status", "--format", "kv"])
        .env("RCC_HOSTS", addr)
        .env("RCC_DIR", std::env::temp_dir().join("rcc-ns-status-unused")));
    s(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A counter of the rccd on `port` in namespace `ns` (at `host` there: 127.0.0.1 unless
/// it listens elsewhere only).
fn ns_counter(ns: &str, port: u16, key: &str) -> u64 {
    ns_counter_at(ns, &format!("127.0.0.1:{port}"), key)
}

fn ns_counter_at(ns: &str, addr: &str, key: &str) -> u64 {
    let st = ns_status(ns, addr);
    st.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {st:?}"))
}

const BOX_ALLOW: &[&str] = &["--allow", "198.18.0.0/16", "--allow", "127.0.0.0/8"];

#[test]
fn a_box_outside_reach_or_listening_elsewhere_is_found_only_where_it_answers() {
    let Some(mut lan) = Lan::new("r", 2) else {
        return;
    };
    let m = lan.member("m", 1, &[0, 1]);
    // Two interfaces, a wildcard listener: one box, found once.
    let two = lan.member("two", 11, &[0, 1]);
    // Listening on its second interface only: found there only.
    let one = lan.member("one", 12, &[0, 1]);
    // Its --allow leaves the master out: never found, never answers.
    let shy = lan.member("shy", 13, &[0]);
    let d_two = Lan::rccd(&two, "two", "0.0.0.0:3633", 2, BOX_ALLOW);
    let listen_one = format!("{}:3633", Lan::addr(1, 12));
    let _d_one = Lan::rccd(&one, "one", &listen_one, 2, BOX_ALLOW);
    let d_shy = Lan::rccd(&shy, "shy", "0.0.0.0:3633", 2, &["--allow", "127.0.0.0/8"]);
    let t = TempDir::new("lan-reach");
    let out = ok(&mut rcc_in(&m, &t, &["--discover"]));
    let text = s(&out.stdout);
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{text}\n{}", s(&out.stderr));
    assert!(
        listed.contains(&Lan::addr(0, 11).as_str()) || listed.contains(&Lan::addr(1, 11).as_str()),
        "{text}"
    );
    assert!(listed.contains(&Lan::addr(1, 12).as_str()), "{text}");
    assert!(!text.contains(&Lan::addr(0, 12)), "{text}");
    assert!(!text.contains(&Lan::addr(0, 13)), "{text}");
    assert!(text.contains("two") && text.contains("one"), "{text}");
    // The shy box read the probe and said nothing; the one-interface box ignored the probe
    // that came to its other address.
    assert!(ns_counter(&shy, d_shy.port, "probes_refused") >= 1);
    assert_eq!(ns_counter(&shy, d_shy.port, "probes_answered"), 0);
    assert!(ns_counter_at(&one, &listen_one, "probes_ignored") >= 1);
    assert!(ns_counter(&two, d_two.port, "probes_answered") >= 1);
    // The master's own rccd is localhost.
    let d_m = Lan::rccd(&m, "m", "0.0.0.0:3633", 1, BOX_ALLOW);
    let out = ok(&mut rcc_in(&m, &t, &["--discover"]));
    assert!(s(&out.stdout).contains("localhost"), "{}", s(&out.stdout));
    drop(d_m);
}

#[test]
fn the_farm_finds_itself_boxes_join_and_leave_between_builds() {
    let Some(mut lan) = Lan::new("f", 1) else {
        return;
    };
    let m = lan.member("m", 1, &[0]);
    let boxes: Vec<String> = (1..=4u8)
        .map(|i| lan.member(&format!("b{i}"), 10 + i, &[0]))
        .collect();
    let start = |i: usize| Lan::rccd(&boxes[i], &format!("box{i}"), "0.0.0.0:3633", 2, BOX_ALLOW);
    let mut d: Vec<Daemon> = (0..3).map(start).collect();
    let done = |i: usize| ns_counter(&boxes[i], 3633, "done");
    let rcc_dir = TempDir::new("farm-rccdir");
    let build = |name: &str| {
        let dir = TempDir::new(name);
        let mut c = lua_make(dir.path(), "rcc gcc");
        c.arg("-j8")
            .env("RCC_DIR", rcc_dir.path())
            .env("PATH", path_with_rcc())
            .env("RCC_DISCOVER_PERIOD", "2")
            .env_remove("RCC_HOSTS");
        (dir, in_ns(&m, &c))
    };
    // Three boxes, no host list: every one of them works.
    let (_b1, mut c) = build("farm1");
    ok(&mut c);
    let first: Vec<u64> = (0..3).map(done).collect();
    assert!(first.iter().all(|n| *n > 0), "done per box: {first:?}");
    assert_eq!(first.iter().sum::<u64>(), 32, "every object on a box");
    // A fourth box starts while a build runs; the next build uses it.
    let (_b2, mut c) = build("farm2");
    let running = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    d.push(start(3));
    assert!(running.wait_with_output().unwrap().status.success());
    std::thread::sleep(Duration::from_millis(2100));
    let before = done(3);
    let (_b3, mut c) = build("farm3");
    ok(&mut c);
    assert!(
        done(3) > before,
        "the fourth box got no job of the next build"
    );
    // A box stops while the build's finding still names it: the build goes on without it.
    let status = || {
        let t = TempDir::new("farm-status");
        let mut c = rcc(t.path(), rcc_dir.path(), "");
        c.env_remove("RCC_HOSTS")
            .env("RCC_DISCOVER_PERIOD", "2")
            .args(["--status", "--format", "kv"]);
        s(&ok(&mut in_ns(&m, &c)).stdout)
    };
    assert_eq!(status().lines().count(), 4);
    d[1].stop();
    let (_b4, mut c) = build("farm4");
    ok(&mut c);
    std::thread::sleep(Duration::from_millis(2100));
    let after = status();
    assert_eq!(after.lines().count(), 3, "{after}");
    assert!(!after.contains(&Lan::addr(0, 12)), "{after}");
    assert!(
        after.lines().all(|l| l.contains("from=discovered")),
        "{after}"
    );
}

#[test]
fn nothing_found_compiles_here_and_says_why() {
    let Some(mut lan) = Lan::new("n", 1) else {
        return;
    };
    let m = lan.member("m", 1, &[0]);
    let t = TempDir::new("lan-none");
    t.write("a.c", "int a(void) { return 1; }\n");
    let mut c = rcc_in(&m, &t, &["gcc", "-c", "a.c"]);
    c.env("RCC_VERBOSE", "1");
    let out = ok(&mut c);
    let err = s(&out.stderr);
    assert!(t.join("a.o").exists());
    assert!(err.contains("no rccd answered a discovery probe"), "{err}");
    assert!(err.contains(&Lan::addr(0, 255)), "{err}");
    // Quiet without RCC_VERBOSE: nothing found is not an error.
    let out = ok(&mut rcc_in(&m, &t, &["gcc", "-c", "a.c"]));
    assert!(out.stderr.is_empty(), "{}", s(&out.stderr));
    let out = ok(&mut rcc_in(&m, &t, &["--status"]));
    assert!(
        s(&out.stderr).contains("no rccd answered"),
        "{}",
        s(&out.stderr)
    );
}

/// A hostile "box": answers every probe with replies that lie about their address, echo
/// another nonce, carry control characters, are oversized, and a thousand more claiming to
/// be a thousand boxes at its own address.
const LIAR: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("0.0.0.0", 3633))
me = sys.argv[1]
print("ready", flush=True)
def reply(nonce, body):
    return b"RCC!" + bytes([1, 0]) + struct.pack(">H", len(body)) + struct.pack(">Q", nonce) + body
while True:
    data, peer = s.recvfrom(2048)
    if data[:4] != b"RCC?":
        continue
    nonce = struct.unpack(">Q", data[8:16])[0]
    s.sendto(reply(nonce, b"addr=198.18.100.1\nport=22\nslots=4\n"), peer)
    s.sendto(reply(nonce, b"addr=8.8.8.8\nport=3633\nslots=4\n"), peer)
    s.sendto(reply(nonce ^ 1, ("addr=%s\nport=3633\nslots=4\n" % me).encode()), peer)
    s.sendto(reply(nonce, ("addr=%s\nport=3633\nslots=4\nhostname=\x1b[2Jevil\n" % me).encode()), peer)
    s.sendto(reply(nonce, ("addr=%s\nport=3633\nslots=4\nhostname=%s\n" % (me, "x" * 1600)).encode()), peer)
    for i in range(1000):
        s.sendto(reply(nonce, ("addr=%s\nport=%d\nslots=9\nmachine_id=fake%d\nhostname=fake%d\n" % (me, 1000 + i, i, i)).encode()), peer)
"#;

/// A child killed and reaped on drop, even when the test fails first.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_hostile_box_cannot_steer_the_master() {
    if !have("python3", "--version") {
        eprintln!("note: no python3 to stage a hostile box; skipping");
        return;
    }
    let Some(mut lan) = Lan::new("h", 1) else {
        return;
    };
    let m = lan.member("m", 1, &[0]);
    let good = lan.member("good", 11, &[0]);
    let evil = lan.member("evil", 66, &[0]);
    let _d = Lan::rccd(&good, "good", "0.0.0.0:3633", 2, BOX_ALLOW);
    let mut liar = Killed(
        std::process::Command::new("ip")
            .args(["netns", "exec", &evil, "python3", "-c", LIAR])
            .arg(Lan::addr(0, 66))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Bound and listening once it says so.
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(liar.0.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let t = TempDir::new("lan-hostile");
    // A flood of answers can crowd the good box's out of the master's socket buffer (anyone
    // on a LAN can drown discovery; a host list is the cure): it is found in one of three
    // probes, and the hostile box steers none of them.
    let mut found_good = false;
    for _ in 0..3 {
        let out = run(&mut rcc_in(&m, &t, &["--discover"]));
        let text = s(&out.stdout);
        let err = s(&out.stderr);
        assert!(out.status.success(), "{text}{err}");
        // It was heard, and left out for what it is.
        for why in [
            "not the address it came from",
            "answers another probe",
            "control characters",
            "more than 1472",
        ] {
            assert!(err.contains(why), "{why}: {err}");
        }
        // Never an address it did not come from, nor one outside the probed network, nor
        // a control character; its thousand "boxes" at one address are one.
        assert!(
            !text.contains("198.18.100.1 ") && !text.contains("8.8.8.8"),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "{text:?}");
        let evil = text
            .lines()
            .filter(|l| l.contains(&Lan::addr(0, 66)))
            .count();
        assert!(evil <= 1, "{text}");
        found_good |= text.contains(&Lan::addr(0, 11));
    }
    drop(liar);
    assert!(found_good, "the good box was never found");
}

#[test]
fn an_ipv6_only_box_is_found_at_its_address() {
    let Some(mut lan) = Lan::new("six", 1) else {
        return;
    };
    let m = lan.member("m", 1, &[0]);
    let b = lan.member("b", 11, &[0]);
    let allow = ["--allow", "fd42::/16", "--allow", "::1"];
    let _d = Lan::rccd(&b, "six", "[::]:3633", 2, &allow);
    let t = TempDir::new("lan-six");
    let out = ok(&mut rcc_in(&m, &t, &["--discover"]));
    let text = s(&out.stdout);
    let want = format!("[{}]:3633", Lan::addr6(0, 11));
    assert!(
        text.lines().any(|l| l.starts_with(&want)),
        "{text}{}",
        s(&out.stderr)
    );
    assert!(text.contains("six"), "{text}");
    assert_eq!(
        text.lines().filter(|l| !l.starts_with('#')).count(),
        1,
        "{text}"
    );
}

#[test]
fn a_probe_from_a_service_port_is_not_answered() {
    // A spoofed probe "from" an echo or DNS port would set rccd and that service talking.
    let d = Daemon::start(1, &[]);
    for port in [7u16, 53] {
        let Ok(s) = UdpSocket::bind(("127.0.0.1", port)) else {
            eprintln!("note: cannot bind udp port {port} here; skipping it");
            continue;
        };
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.send_to(&discovery::encode_probe(1, 1200), udp_of(&d))
            .unwrap();
        let mut buf = [0u8; 2048];
        assert!(s.recv_from(&mut buf).is_err(), "answered port {port}");
    }
    assert_eq!(d.counter("probes_answered"), 0);
}
