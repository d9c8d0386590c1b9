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
