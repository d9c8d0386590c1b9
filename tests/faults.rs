//! Faults, end to end with real processes: a box that goes silent or loses its link, a
//! client killed mid-job, Ctrl-C on make, full disks on the box and on the master, a
//! thousand idle connections, a flood from a stranger. Each time the build either succeeds
//! with gcc's objects or fails exactly as gcc would, and nothing is left behind.
//!
//! The tests that need root (namespaces, tmpfs mounts) say so and skip without it; CI runs
//! as root.

use crate::util::*;

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GOOD: &str = "int add(int a, int b) { return a + b; }\n";

/// What the tests that skip without root need it for.
const NEEDS_ROOT: &str = "namespaces and mounts";

fn want_object(t: &TempDir, src: &str) -> Vec<u8> {
    plain_object(t, src, "want.o")
}

/// Processes whose command line mentions `needle` (our temp dirs are unique per test),
/// other than this test and its daemons (whose flags name the test's dirs too).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && pid != std::process::id().to_string() && !cmd.contains(RCCD)
            {
                found.push(format!("{pid}: {cmd}"));
            }
        }
    }
    found
}

#[test]
fn a_box_that_accepts_and_never_answers_is_given_up() {
    // A listener that takes connections and says nothing, ever.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        l.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && conns.len() < 4 {
            if let Ok((c, _)) = l.accept() {
                conns.push(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        conns
    });
    let t = TempDir::new("silent");
    t.write("good.c", GOOD);
    let want = want_object(&t, "good.c");
    // With and without a /LIMIT: the first asks for the advert, the second for a job.
    for hosts in [addr.clone(), format!("{addr}/2")] {
        let rcc_dir = t.join(format!(".rcc{}", hosts.len()));
        let started = Instant::now();
        ok(rcc(t.path(), &rcc_dir, &hosts)
            .env("RCC_IO_TIMEOUT", "2")
            .args(["gcc", "-O2", "-c", "good.c"]));
        assert!(started.elapsed() < Duration::from_secs(15));
        assert!(read(t.join("good.o")) == want);
    }
    drop(held);
}

#[test]
fn a_client_killed_mid_job_frees_the_box() {
    let t = TempDir::new("clientkill");
    // An odd duration, so no other process on the machine matches the search below.
    let bin = slow_gcc(&t, "29.71");
    let d = Daemon::start(1, &["--compiler-path", bin.to_str().unwrap()]);
    t.write("good.c", GOOD);
    let mut child = rcc(t.path(), &t.join(".rcc"), &d.addr())
        .args(["gcc", "-O2", "-c", "good.c"])
        .spawn()
        .unwrap();
    wait_until("the job runs on the box", 10, || d.counter("running") == 1);
    child.kill().unwrap();
    child.wait().unwrap();
    // The box notices the closed connection, kills the compiler (and its sleep) and removes
    // the job dir, long before the 30 s compile would have ended.
    wait_until("the box frees its slot", 10, || d.counter("running") == 0);
    wait_until("the job dir goes", 10, || d.leftovers().is_empty());
    let gone = || {
        processes_mentioning(&bin.display().to_string()).is_empty()
            && processes_mentioning("sleep 29.71").is_empty()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        gone(),
        "left: {:?} {:?}",
        processes_mentioning(&bin.display().to_string()),
        processes_mentioning("sleep 29.71")
    );
    assert!(!t.join("good.o").exists());
}

#[test]
fn ctrl_c_on_make_leaves_no_process_and_no_half_object() {
    let t = TempDir::new("ctrlc");
    let plain = TempDir::new("ctrlc-plain");
    let bin = slow_gcc(&t, "1");
    let d = Daemon::start(2, &["--compiler-path", bin.to_str().unwrap()]);
    let make = |dir: &TempDir, cc: &str| {
        let mut c = lua_make(dir.path(), cc);
        c.arg("-j4")
            .env("RCC_DIR", dir.join(".rcc"))
            .env("RCC_HOSTS", d.addr())
            .env("PATH", path_with_rcc())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    ok(&mut make(&plain, "gcc"));
    // make in its own process group, as a shell runs a foreground job; Ctrl-C signals the
    // whole group.
    use std::os::unix::process::CommandExt;
    // The build's own gcc is the slow one too: a job that compiles here (the farm busy or
    // slow on a loaded machine) must not let the build finish before Ctrl-C comes.
    let rcc_dir = std::path::Path::new(RCC).parent().unwrap();
    let mut build = make(&t, "rcc gcc");
    build.env("PATH", format!("{}:{}", rcc_dir.display(), path_with(&bin)));
    // Ctrl-C as a terminal delivers it, whatever this test inherited: a test run started in
    // the background by a shell without job control ignores SIGINT, and make would too.
    // SAFETY: only the async-signal-safe `signal` runs between fork and exec.
    unsafe {
        build.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        })
    };
    let mut build = build.process_group(0).spawn().unwrap();
    wait_until("jobs run on the box", 20, || d.counter("running") >= 1);
    std::thread::sleep(Duration::from_millis(700));
    let pgid = build.id() as i32;
    // SAFETY: kill on our own child's process group.
    unsafe { libc::kill(-pgid, libc::SIGINT) };
    let status = build.wait().unwrap();
    assert!(!status.success());
    // No rcc, gcc or make of this build is left, here or on the box.
    let here = t.path().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&here).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(processes_mentioning(&here), Vec::<String>::new());
    wait_until("the box's compilers end", 10, || d.counter("running") == 0);
    wait_until("the box's job dirs go", 10, || d.leftovers().is_empty());
    // Every object make would trust is whole: equal to the plain build's. No temp names.
    let mut whole = 0;
    for e in std::fs::read_dir(t.join("obj")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".rcc-"), "temp file left: {name}");
        if name.ends_with(".o") {
            assert!(
                read(e.path()) == read(plain.join("obj").join(&name)),
                "{name} is not gcc's object"
            );
            whole += 1;
        }
    }
    eprintln!("{whole} objects were done when Ctrl-C came; all whole");
}

#[test]
fn a_full_disk_on_the_box_sends_the_job_elsewhere() {
    if !root(NEEDS_ROOT) {
        return;
    }
    let fs = Tmpfs::mount("boxfull", "size=256k").expect("mount tmpfs");
    fs.fill();
    let full = Daemon::start(1, &["--temp-dir", fs.path()]);
    let good = Daemon::start(1, &[]);
    let t = TempDir::new("boxfull-src");
    let src = lua_src().join("lvm.c");
    let want = {
        let out = Command::new("gcc")
            .current_dir(t.path())
            .args(["-O2", "-c"])
            .arg(&src)
            .args(["-o", "want.o"])
            .output()
            .unwrap();
        assert!(out.status.success());
        read(t.join("want.o"))
    };
    let out = ok(rcc(
        t.path(),
        &t.join(".rcc"),
        &format!("{}/1 {}/1", full.addr(), good.addr()),
    )
    .env("RCC_VERBOSE", "1")
    .args(["gcc", "-O2", "-c"])
    .arg(&src)
    .args(["-o", "got.o"]));
    assert!(read(t.join("got.o")) == want, "{}", s(&out.stderr));
    assert_eq!(full.counter("done"), 0);
    assert_eq!(good.counter("done"), 1);
    // It says why: refused up front as full (it advertises no slots; this client's `/1`
    // asked anyway), or the write that found no space.
    assert!(
        full.log_text().to_lowercase().contains("no space left"),
        "{}",
        full.log_text()
    );
    assert_eq!(full.value("health"), "full");
    // The full box kept nothing but the filler (and its file cache's empty dir).
    let left: Vec<_> = std::fs::read_dir(fs.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "rccd-cache")
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let cached = std::fs::read_dir(fs.join("rccd-cache")).map_or(0, |r| r.count());
    assert_eq!(
        cached, 0,
        "a full disk keeps no half-written file in the cache"
    );
}

#[test]
fn a_full_disk_on_the_master_fails_as_gcc_does() {
    if !root(NEEDS_ROOT) {
        return;
    }
    let fs = Tmpfs::mount("masterfull", "size=64k").expect("mount tmpfs");
    fs.fill();
    let d = Daemon::start(1, &[]);
    let t = TempDir::new("masterfull-src");
    t.write("good.c", GOOD);
    let out_path = fs.join("good.o");
    let plain = Command::new("gcc")
        .current_dir(t.path())
        .args(["-O2", "-c", "good.c", "-o"])
        .arg(&out_path)
        .output()
        .unwrap();
    let ours = run(rcc(t.path(), &t.join(".rcc"), &d.addr())
        .args(["gcc", "-O2", "-c", "good.c", "-o"])
        .arg(&out_path));
    assert!(!plain.status.success());
    assert_eq!(
        ours.status.code(),
        plain.status.code(),
        "{}",
        s(&ours.stderr)
    );
    assert!(
        s(&ours.stderr).contains("No space left"),
        "{}",
        s(&ours.stderr)
    );
    // Nothing half-written where make would look, no temp file.
    let left: Vec<String> = std::fs::read_dir(fs.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["filler"], "{left:?}");
}

/// Two network namespaces joined by a veth pair: the master (`m`, 198.18.72.1) and a box
/// (`b`, 198.18.72.2). No default route, so nothing can leave. Removed on drop.
struct Net {
    m: String,
    b: String,
}

impl Net {
    fn new() -> Net {
        let tag = format!("rcct{}", std::process::id());
        let n = Net {
            m: format!("{tag}m"),
            b: format!("{tag}b"),
        };
        let ip = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &n.m]);
        ip(&["netns", "add", &n.b]);
        ip(&[
            "-n", &n.m, "link", "add", "vm", "type", "veth", "peer", "name", "vb", "netns", &n.b,
        ]);
        ip(&["-n", &n.m, "addr", "add", "198.18.72.1/24", "dev", "vm"]);
        ip(&["-n", &n.b, "addr", "add", "198.18.72.2/24", "dev", "vb"]);
        for (ns, dev) in [(&n.m, "vm"), (&n.b, "vb")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        n
    }

    /// The box's status, asked from inside its namespace.
    fn status(&self, port: u16) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.b, RCC, "--status", "--format", "kv"])
            .env("RCC_HOSTS", format!("127.0.0.1:{port}"))
            .output()
            .unwrap();
        s(&out.stdout)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.m, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn kv(status: &str, key: &str) -> String {
    status
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or("-")
        .to_string()
}

#[test]
fn a_box_whose_link_goes_down_mid_job_is_given_up_and_the_build_succeeds() {
    if !root(NEEDS_ROOT) {
        return;
    }
    let net = Net::new();
    let t = TempDir::new("linkdown");
    let bin = slow_gcc(&t, "4");
    let wrapper = ["ip", "netns", "exec", net.b.as_str()];
    let d = Daemon::start_wrapped(
        &wrapper,
        "0.0.0.0:0",
        1,
        &[
            "--compiler-path",
            bin.to_str().unwrap(),
            "--allow",
            "198.18.72.0/24",
            "--allow",
            "127.0.0.0/8",
            // The link may go down while the job's sources are still travelling: the box
            // then drops the silent connection at its idle timeout, not at the default 30 s.
            "--idle-timeout",
            "5",
        ],
    );
    t.write("good.c", GOOD);
    let want = want_object(&t, "good.c");
    let child = Command::new("ip")
        .args(["netns", "exec", &net.m, RCC, "gcc", "-O2", "-c", "good.c"])
        .current_dir(t.path())
        .env("RCC_DIR", t.join(".rcc"))
        .env("RCC_HOSTS", format!("198.18.72.2:{}", d.port))
        .env("RCC_IO_TIMEOUT", "3")
        .env("RCC_VERBOSE", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the job runs on the box", 10, || {
        kv(&net.status(d.port), "running") == "1"
    });
    let st = Command::new("ip")
        .args(["-n", &net.b, "link", "set", "vb", "down"])
        .status()
        .unwrap();
    assert!(st.success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(read(t.join("good.o")) == want);
    // Given up after the silence timeout, not after TCP's minutes of retries.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(s(&out.stderr).contains("local"), "{}", s(&out.stderr));
    // The box finishes the orphaned compile (or drops the half-sent job) and cleans up.
    wait_until("the box's job dir goes", 15, || d.leftovers().is_empty());
}

#[test]
fn a_thousand_idle_connections_do_not_stop_jobs() {
    let d = Daemon::start(2, &["--max-connections", "1100"]);
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(d.addr()).unwrap());
    }
    wait_until("the daemon sees them", 10, || {
        d.counter("connections") >= 1000
    });
    let t = TempDir::new("idle");
    t.write("good.c", GOOD);
    let want = want_object(&t, "good.c");
    ok(rcc(t.path(), &t.join(".rcc"), &d.addr()).args(["gcc", "-O2", "-c", "good.c"]));
    assert!(read(t.join("good.o")) == want);
    assert_eq!(d.counter("done"), 1);
    // Past --max-connections (1,100) a connection is closed at once, and the daemon goes
    // on: 150 more make at least 49 too many.
    let extra: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect(d.addr()).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(idle);
    // Asking while it is full is refused too; asked again until there is room.
    wait_until("connections over the limit are refused", 10, || {
        rcc::client::remote::status(&d.addr(), Default::default())
            .ok()
            .and_then(|kv| kv.into_iter().find(|(k, _)| k == "over_limit"))
            .is_some_and(|(_, v)| v.parse::<u64>().unwrap() >= 49)
    });
    drop(extra);
    assert_eq!(d.value("slots"), "2");
}

#[test]
fn a_flood_from_a_stranger_costs_nothing() {
    // Admits only 127.0.0.3; the flood comes from 127.0.0.1.
    let d = Daemon::start(1, &["--allow", "127.0.0.3/32"]);
    let rss = |d: &Daemon| -> u64 { d.counter_from("127.0.0.3", "rss_kib") };
    let before = rss(&d);
    for _ in 0..3000 {
        if let Ok(mut c) = TcpStream::connect(d.addr()) {
            let _ = std::io::Write::write_all(&mut c, b"RCC\x02\x01\x00\x00\x00\x00\x00\x00\x10");
        }
    }
    let refused = d.counter_from("127.0.0.3", "refused_peers");
    assert!(refused >= 3000, "{refused}");
    assert_eq!(d.counter_from("127.0.0.3", "accepted"), 0);
    let after = rss(&d);
    assert!(after < before + 1024, "rss {before} -> {after} KiB");
    // Logged, but not 3,000 times.
    let lines = d
        .log_text()
        .lines()
        .filter(|l| l.contains("not in --allow"))
        .count();
    assert!(lines < 50, "{lines} log lines for one flood");
}

#[test]
fn a_compiler_that_hangs_does_not_hang_the_box() {
    let t = TempDir::new("hangcc");
    // An odd duration, so no other process on the machine matches the search below.
    let bin = fixture_compiler(&t, "gcc", "sleep 119.73");
    let started = Instant::now();
    // rccd asks every compiler who it is as it starts: this one never answers, and is given
    // up after the probe timeout (5 s), its sleep killed with it.
    let d = Daemon::start(1, &["--compiler-path", bin.to_str().unwrap()]);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(d.log_text().contains("did not answer"), "{}", d.log_text());
    wait_until("the probe's sleep is killed", 5, || {
        processes_mentioning("sleep 119.73").is_empty()
    });
    // A job for it is refused at once (the failure is remembered), and built here.
    t.write("good.c", GOOD);
    let want = want_object(&t, "good.c");
    let asked = Instant::now();
    ok(rcc(t.path(), &t.join(".rcc"), &format!("{}/1", d.addr()))
        .args(["gcc", "-O2", "-c", "good.c"]));
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert!(read(t.join("good.o")) == want);
    assert_eq!(d.counter("accepted"), 0);
}

/// Lua's make through rcc with `hosts`; the build's stderr.
fn lua_build_said(t: &TempDir, hosts: &str) -> String {
    let out = ok(lua_make(t.path(), &format!("{RCC} gcc"))
        .arg("-j4")
        .env("RCC_DIR", t.join(".rcc"))
        .env("RCC_HOSTS", hosts));
    s(&out.stderr)
}

/// A typo in one entry of the host list leaves that entry out, says so once per build
/// (not once per job), and the other boxes still get the jobs. A list with nothing usable
/// is said once too, and the build compiles here.
#[test]
fn one_bad_host_entry_is_said_once_and_the_others_are_used() {
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("badentry");
    let said = lua_build_said(&t, &format!("box/0 {} user@box3", d.addr()));
    let lines: Vec<&str> = said.lines().filter(|l| l.starts_with("rcc:")).collect();
    assert_eq!(lines.len(), 2, "{said}");
    assert!(lines
        .iter()
        .any(|l| l.contains("\"box/0\"") && l.contains("job limit")));
    assert!(lines
        .iter()
        .any(|l| l.contains("\"user@box3\"") && l.contains("ssh")));
    assert!(lines.iter().all(|l| l.contains("left out")), "{said}");
    assert!(d.counter("done") > 20, "the good box was not used: {said}");

    let t = TempDir::new("badlist");
    let said = lua_build_said(&t, "box/0");
    let lines: Vec<&str> = said.lines().filter(|l| l.starts_with("rcc:")).collect();
    assert_eq!(lines.len(), 1, "{said}");
    assert!(lines[0].contains("compiling locally"), "{said}");
}
