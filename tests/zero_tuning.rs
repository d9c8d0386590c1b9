//! A farm that needs no numbers: boxes advertise their slots, rcc fills them by headroom,
//! `rcc --jobs` says what `-j` keeps them full, and a box short of memory says busy.

use crate::util::*;

use std::process::Stdio;

fn with_compiler(jobs: usize, bin: &std::path::Path) -> Daemon {
    Daemon::start(jobs, &["--compiler-path", bin.to_str().unwrap()])
}

/// `n` compiles of small distinct files, `at_once` at a time, through `hosts`.
fn build(t: &TempDir, hosts: &str, n: usize, at_once: usize) {
    for i in 0..n {
        t.write(
            &format!("j{i}.c"),
            &format!("int j{i}(int x) {{ return x * {i}; }}\n"),
        );
    }
    for chunk in (0..n).collect::<Vec<_>>().chunks(at_once) {
        let kids: Vec<_> = chunk
            .iter()
            .map(|i| {
                rcc(t.path(), &t.join(".rcc"), hosts)
                    .args(["gcc", "-O2", "-c", &format!("j{i}.c")])
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", s(&out.stderr));
        }
    }
    for i in 0..n {
        let want = gcc(
            t.path(),
            "gcc",
            &["-O2", "-c", &format!("j{i}.c"), "-o", "want.o"],
        );
        assert!(want.status.success());
        assert!(
            read(t.join(format!("j{i}.o"))) == read(t.join("want.o")),
            "j{i}.o differs"
        );
    }
}

#[test]
fn boxes_listed_without_numbers_get_what_they_advertise() {
    let t = TempDir::new("adverts");
    let bin = slow_gcc(&t, "0.5");
    let (one, two, four) = (
        with_compiler(1, &bin),
        with_compiler(2, &bin),
        with_compiler(4, &bin),
    );
    let hosts = format!("{} {} {}", one.addr(), two.addr(), four.addr());
    build(&t, &hosts, 30, 30);
    let (p1, p2, p4) = (
        one.counter("peak"),
        two.counter("peak"),
        four.counter("peak"),
    );
    assert!(p1 <= 1 && p2 <= 2 && p4 <= 4, "peaks {p1} {p2} {p4}");
    let (d1, d2, d4) = (
        one.counter("done"),
        two.counter("done"),
        four.counter("done"),
    );
    assert_eq!(d1 + d2 + d4, 30, "every job went to a box");
    assert!(
        d4 > d2 && d4 > d1,
        "jobs {d1} {d2} {d4}: the 4-slot box should get the most"
    );
    // Not one "busy": rcc never asked a box for more than it offers.
    for d in [&one, &two, &four] {
        assert_eq!(d.counter("busy"), 0);
    }
}

#[test]
fn a_slow_box_gets_a_smaller_share() {
    let t = TempDir::new("slowbox");
    let slow_bin = slow_gcc(&t, "0.3");
    let slow = with_compiler(2, &slow_bin);
    let fast = Daemon::start(2, &[]);
    // The slow box is first in the list: by list order it would get every job.
    build(&t, &format!("{} {}", slow.addr(), fast.addr()), 40, 2);
    let (s_done, f_done) = (slow.counter("done"), fast.counter("done"));
    assert_eq!(s_done + f_done, 40);
    assert!(
        s_done * 3 < f_done,
        "slow box got {s_done} of 40, fast {f_done}"
    );
}

#[test]
fn rcc_jobs_is_the_advertised_total_plus_the_margin() {
    let t = TempDir::new("jobs");
    let (a, b) = (Daemon::start(3, &[]), Daemon::start(5, &[]));
    let jobs = |hosts: &str| -> (u32, String) {
        let out = ok(rcc(t.path(), &t.join(".rcc"), hosts).arg("--jobs"));
        (s(&out.stdout).trim().parse().unwrap(), s(&out.stderr))
    };
    // 3 + 5 slots, and a quarter (at least 2) for jobs being preprocessed and sent.
    assert_eq!(jobs(&format!("{} {}", a.addr(), b.addr())).0, 8 + 2);
    // localhost's slots count too.
    assert_eq!(
        jobs(&format!("{} {} localhost/1", a.addr(), b.addr())).0,
        9 + 3
    );
    // An explicit /LIMIT wins over the advert.
    assert_eq!(jobs(&format!("{}/2 {}", a.addr(), b.addr())).0, 7 + 2);
    // A box that does not answer is not counted, and rcc says so.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let (n, err) = jobs(&format!("{} {dead_addr}", a.addr()));
    assert_eq!(n, 3 + 2);
    assert!(
        err.contains(&dead_addr) && err.contains("not counted"),
        "{err}"
    );
}

#[test]
fn an_explicit_limit_wins_over_the_advert() {
    let t = TempDir::new("limit");
    let bin = slow_gcc(&t, "0.4");
    let d = with_compiler(4, &bin);
    build(&t, &format!("{}/1", d.addr()), 6, 6);
    assert_eq!(d.counter("peak"), 1);
    assert_eq!(d.counter("busy"), 0);
}

#[test]
fn a_box_short_of_memory_says_busy_and_the_job_goes_elsewhere() {
    let t = TempDir::new("lowmem");
    let meminfo = t.write(
        "meminfo",
        "MemTotal: 1919688 kB\nMemFree: 9000 kB\nMemAvailable: 20000 kB\n",
    );
    let tight = Daemon::start(2, &["--meminfo", meminfo.to_str().unwrap()]);
    let roomy = Daemon::start(2, &[]);
    assert_eq!(tight.value("mem_available_kib"), "20000");
    // 20 MB free; a job is taken to need at least 64 MiB.
    build(&t, &format!("{} {}", tight.addr(), roomy.addr()), 2, 1);
    assert_eq!(tight.counter("accepted"), 0);
    assert!(tight.counter("low_memory") >= 1);
    assert_eq!(roomy.counter("done"), 2);
    // Memory freed: the box takes jobs again (it re-reads at most once a second, and rcc
    // skips a busy box for the 2 s it was told).
    t.write(
        "meminfo",
        "MemTotal: 1919688 kB\nMemFree: 9000 kB\nMemAvailable: 900000 kB\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    t.write("late.c", "int late(void) { return 7; }\n");
    ok(rcc(t.path(), &t.join(".rcc"), &tight.addr()).args(["gcc", "-c", "late.c"]));
    assert_eq!(tight.counter("done"), 1);
    // What a job needs is learned from the compiles (gcc's peak resident size).
    let need: u64 = tight.value("job_mem_kib").parse().unwrap();
    assert!(need >= 64 * 1024, "job_mem_kib {need}");
}

/// Busy loops, one more than the machine has CPUs, for as long as the guard lives (and at
/// most two minutes if the test dies without dropping it). Each is the shell itself, so
/// killing the child ends it, and it holds none of the test's output pipes.
struct Spinners(Vec<std::process::Child>);

impl Spinners {
    fn start() -> Spinners {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
        Spinners(
            (0..n)
                .map(|_| {
                    std::process::Command::new("bash")
                        .args(["-c", "while [ $SECONDS -lt 120 ]; do :; done"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        )
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_bare_localhost_compiles_only_while_the_master_has_a_cpu_to_spare() {
    let t = TempDir::new("spare");
    let bin = slow_gcc(&t, "0.4");
    let d = with_compiler(1, &bin);
    let _busy = Spinners::start();
    // Every CPU is busy: the box's one slot takes all six jobs, in turn.
    build(&t, &format!("{} localhost", d.addr()), 6, 6);
    assert_eq!(d.counter("done"), 6, "a busy master compiled some itself");
    // An explicit localhost/1 is the user's choice: it compiles while the box is full.
    build(&t, &format!("{} localhost/1", d.addr()), 6, 6);
    assert!(
        d.counter("done") < 12,
        "localhost/1 never compiled: {} jobs on the box",
        d.counter("done")
    );
}
