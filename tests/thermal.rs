//! A throttled box says no and the job goes to a cool one; a cooled box takes jobs again,
//! but only once it is clearly below its trip. Real rccd processes read fake sysfs trees
//! laid out like an Amlogic GX box's.

use crate::util::*;

use std::process::Command;
use std::time::{Duration, Instant};

fn flags(f: &FakeThermal) -> Vec<String> {
    f.flag().to_vec()
}

fn start(jobs: usize, f: &FakeThermal) -> Daemon {
    let fl = flags(f);
    let refs: Vec<&str> = fl.iter().map(|s| s.as_str()).collect();
    Daemon::start(jobs, &refs)
}

/// Waits (bounded) until the daemon reports `thermal=want`; it samples once a second.
fn wait_thermal(d: &Daemon, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if d.value("thermal") == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("thermal never became {want}: {:?}", d.status());
}

fn compile_n(t: &TempDir, hosts: &str, n: usize) {
    for i in 0..n {
        t.write(
            &format!("f{i}.c"),
            &format!("int f{i}(int x) {{ return x + {i}; }}\n"),
        );
        ok(rcc(t.path(), &t.join(".rcc"), hosts).args(["gcc", "-O2", "-c", &format!("f{i}.c")]));
        assert!(t.join(format!("f{i}.o")).exists());
    }
}

#[test]
fn a_box_above_its_passive_trip_gets_no_jobs() {
    let t = TempDir::new("hot");
    let hot_tree = FakeThermal::new(&t, "hot-sys", 85.0);
    let cool_tree = FakeThermal::new(&t, "cool-sys", 45.0);
    let hot = start(2, &hot_tree);
    let cool = start(2, &cool_tree);
    assert_eq!(hot.value("thermal"), "throttled");
    assert_eq!(cool.value("thermal"), "ok");
    // With a /LIMIT rcc asks the hot box (first in the list) and hears "throttled".
    compile_n(&t, &format!("{}/2 {}/2", hot.addr(), cool.addr()), 4);
    assert_eq!(hot.counter("accepted"), 0);
    let refused = hot.counter("throttled");
    assert!(refused >= 1);
    assert_eq!(cool.counter("done"), 4);
    // Without one, rcc goes by the box's advert (no slots now) and does not even ask.
    let fresh = TempDir::new("hot-advert");
    compile_n(&fresh, &format!("{} {}", hot.addr(), cool.addr()), 4);
    assert_eq!(hot.counter("accepted"), 0);
    assert_eq!(hot.counter("throttled"), refused);
    assert_eq!(cool.counter("done"), 8);
}

#[test]
fn a_busy_cooler_refuses_below_the_trip_too() {
    let t = TempDir::new("cooler");
    let tree = FakeThermal::new(&t, "sys", 60.0);
    tree.set_cooling(1);
    let d = start(2, &tree);
    assert_eq!(d.value("thermal"), "throttled");
    let other = Daemon::start(1, &[]);
    compile_n(&t, &format!("{} {}", d.addr(), other.addr()), 1);
    assert_eq!(d.counter("accepted"), 0);
    assert_eq!(other.counter("done"), 1);
}

#[test]
fn a_cooling_box_accepts_again_only_below_trip_minus_margin_and_hysteresis() {
    let t = TempDir::new("recover");
    let tree = FakeThermal::new(&t, "sys", 82.0);
    let d = start(4, &tree);
    assert_eq!(d.value("thermal"), "throttled");
    // 76 °C is below the trip but inside trip - margin(5) - hysteresis(2) = 73: still no.
    tree.set_temp(76.0);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(d.value("thermal"), "throttled");
    tree.set_temp(70.0);
    wait_thermal(&d, "ok");
    assert_eq!(d.value("slots_now"), "4");
    compile_n(&t, &d.addr(), 1);
    assert_eq!(d.counter("done"), 1);
}

#[test]
fn a_warm_box_offers_fewer_slots() {
    let t = TempDir::new("warm");
    let tree = FakeThermal::new(&t, "sys", 78.5);
    let d = start(8, &tree);
    assert_eq!(d.value("thermal"), "warm");
    let now: usize = d.value("slots_now").parse().unwrap();
    assert!((1..8).contains(&now), "slots_now={now}");
    tree.set_temp(79.5);
    std::thread::sleep(Duration::from_millis(1500));
    let hotter: usize = d.value("slots_now").parse().unwrap();
    assert!(hotter <= now && hotter >= 1, "{hotter} vs {now}");
}

#[test]
fn garbage_thermal_files_leave_the_box_serving_and_unknown() {
    let t = TempDir::new("garbage");
    let tree = FakeThermal::new(&t, "sys", 50.0);
    std::fs::write(tree.root.join("thermal_zone0/temp"), "not a number\n").unwrap();
    let d = start(2, &tree);
    assert_eq!(d.value("thermal"), "unknown");
    compile_n(&t, &d.addr(), 2);
    assert_eq!(d.counter("done"), 2);
    let warnings = d
        .log_text()
        .lines()
        .filter(|l| l.contains("thermal_zone0/temp"))
        .count();
    assert_eq!(warnings, 1, "{}", d.log_text());
}

#[test]
fn a_lowered_scaling_max_freq_refuses() {
    let t = TempDir::new("freqcap");
    let tree = FakeThermal::new(&t, "sys", 50.0);
    let policy = t.join("cpufreq/policy0");
    std::fs::create_dir_all(&policy).unwrap();
    let cap = |khz: u32| {
        std::fs::write(policy.join("new"), format!("{khz}\n")).unwrap();
        std::fs::rename(policy.join("new"), policy.join("scaling_max_freq")).unwrap();
    };
    // Armbian's own boot-time cap is the baseline, not cpuinfo_max_freq.
    cap(1_512_000);
    let root = t.join("cpufreq");
    let mut fl = flags(&tree);
    fl.extend(["--cpufreq-root".to_string(), root.display().to_string()]);
    let refs: Vec<&str> = fl.iter().map(|s| s.as_str()).collect();
    let d = Daemon::start(2, &refs);
    assert_eq!(d.value("thermal"), "ok");
    cap(1_000_000);
    wait_thermal(&d, "throttled");
    assert_eq!(d.value("freq_cap"), "yes");
    let other = Daemon::start(1, &[]);
    compile_n(&t, &format!("{} {}", d.addr(), other.addr()), 2);
    assert_eq!(d.counter("accepted"), 0);
    assert_eq!(other.counter("done"), 2);
}

#[test]
fn a_temperature_wobbling_around_the_trip_does_not_flap() {
    let t = TempDir::new("wobble");
    let tree = FakeThermal::new(&t, "sys", 81.0);
    let d = start(2, &tree);
    assert_eq!(d.value("thermal"), "throttled");
    // Around the 80 °C trip for 5 s, sampled by the daemon five times: never ok (the way
    // back is below 80 - 5 - 2 = 73 °C), so a box on the edge does not take and drop jobs.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut i = 0;
    while Instant::now() < deadline {
        tree.set_temp(if i % 2 == 0 { 79.0 } else { 80.5 });
        i += 1;
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(d.value("thermal"), "throttled", "after {i} changes");
    }
    assert_eq!(d.counter("accepted"), 0);
}

#[test]
fn a_warm_box_never_runs_more_jobs_than_its_shrunk_slots() {
    let t = TempDir::new("warm-peak");
    let tree = FakeThermal::new(&t, "sys", 78.5);
    let bin = slow_gcc(&t, "1");
    let mut fl = flags(&tree);
    fl.extend(["--compiler-path".to_string(), bin.display().to_string()]);
    let refs: Vec<&str> = fl.iter().map(|s| s.as_str()).collect();
    let d = Daemon::start(8, &refs);
    assert_eq!(d.value("thermal"), "warm");
    let now: u64 = d.value("slots_now").parse().unwrap();
    assert!((1..8).contains(&now), "slots_now={now}");
    // Eight compiles at once against a host entry that allows eight.
    let hosts = format!("{}/8", d.addr());
    let kids: Vec<_> = (0..8)
        .map(|i| {
            t.write(
                &format!("p{i}.c"),
                &format!("int p{i}(void) {{ return {i}; }}\n"),
            );
            rcc(t.path(), &t.join(".rcc"), &hosts)
                .args(["gcc", "-c", &format!("p{i}.c")])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
    }
    for i in 0..8 {
        assert!(t.join(format!("p{i}.o")).exists());
    }
    let peak = d.counter("peak");
    assert!(peak >= 1 && peak <= now, "peak {peak} with {now} slots");
}

#[test]
fn a_box_turning_hot_mid_build_gets_no_more_jobs() {
    let plain = TempDir::new("midhot-plain");
    let t = TempDir::new("midhot");
    let tree_a = FakeThermal::new(&t, "a-sys", 50.0);
    let tree_b = FakeThermal::new(&t, "b-sys", 50.0);
    let bin = slow_gcc(&t, "0.3");
    let daemon = |tree: &FakeThermal| {
        let mut fl = flags(tree);
        fl.extend(["--compiler-path".to_string(), bin.display().to_string()]);
        let refs: Vec<&str> = fl.iter().map(|s| s.as_str()).collect();
        Daemon::start(2, &refs)
    };
    let (a, b) = (daemon(&tree_a), daemon(&tree_b));
    let make = |dir: &TempDir, cc: &str| {
        let mut c = lua_make(dir.path(), cc);
        c.arg("-j4")
            .env("RCC_DIR", dir.join(".rcc"))
            .env("RCC_HOSTS", format!("{} {}", a.addr(), b.addr()))
            .env("PATH", path_with_rcc())
            .stdout(std::process::Stdio::null());
        c
    };
    ok(&mut make(&plain, "gcc"));
    let build = make(&t, "rcc gcc").spawn().unwrap();
    // Box a turns hot after its first jobs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.counter("done") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    tree_a.set_temp(85.0);
    wait_thermal(&a, "throttled");
    let a_before = a.counter("accepted");
    let b_before = b.counter("accepted");
    let status = build.wait_with_output().unwrap().status;
    assert!(status.success(), "make failed: {status}");
    assert_eq!(a.counter("accepted"), a_before, "a took jobs while hot");
    assert!(
        b.counter("accepted") > b_before,
        "b took none of the jobs after the change"
    );
    assert_eq!(a.counter("done") + b.counter("done"), 32);
    for e in std::fs::read_dir(plain.join("obj")).unwrap() {
        let name = e.unwrap().file_name();
        assert!(
            read(plain.join("obj").join(&name)) == read(t.join("obj").join(&name)),
            "{name:?} differs"
        );
    }
}

#[test]
fn near_critical_running_jobs_stop_and_run_elsewhere() {
    let t = TempDir::new("critical");
    let tree = FakeThermal::new(&t, "sys", 60.0);
    let bin = slow_gcc(&t, "5");
    let mut fl = flags(&tree);
    fl.extend(["--compiler-path".to_string(), bin.display().to_string()]);
    let refs: Vec<&str> = fl.iter().map(|s| s.as_str()).collect();
    let hot = Daemon::start(1, &refs);
    let cool = Daemon::start(1, &[]);
    t.write("c.c", "int c(int x) { return x * 3; }\n");
    gcc(t.path(), "gcc", &["-O2", "-c", "c.c", "-o", "want.o"]);
    let child = rcc(
        t.path(),
        &t.join(".rcc"),
        &format!("{} {}", hot.addr(), cool.addr()),
    )
    .args(["gcc", "-O2", "-c", "c.c"])
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while hot.counter("running") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(hot.counter("running"), 1);
    // The critical trip is 110 °C: at 100 °C the box stops what it runs.
    tree.set_temp(101.0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(read(t.join("c.o")) == read(t.join("want.o")));
    assert_eq!(cool.counter("done"), 1);
    assert_eq!(hot.counter("done"), 0);
    assert!(hot.log_text().contains("stopping"), "{}", hot.log_text());
    assert!(hot.leftovers().is_empty(), "{:?}", hot.leftovers());
}

#[test]
fn status_watch_redraws_the_farm_every_second_until_ctrl_c() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let t = TempDir::new("watch");
    let hot_tree = FakeThermal::new(&t, "hot-sys", 85.0);
    let cool_tree = FakeThermal::new(&t, "cool-sys", 45.0);
    let hot = start(2, &hot_tree);
    let cool = start(4, &cool_tree);
    // A pseudo-terminal, as a person at a console has: `script` runs rcc in one, its
    // stdin becomes the keyboard.
    let mut watch = Command::new("script")
        .args(["-qfec", &format!("{RCC} --status --watch"), "/dev/null"])
        .env("RCC_HOSTS", format!("{} {}", hot.addr(), cool.addr()))
        .env("RCC_DIR", t.join(".rcc"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let screen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let screen = screen.clone();
        let mut out = watch.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let frames = |want: usize| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = s(&screen.lock().unwrap());
            let n = text.matches("\x1b[H\x1b[2J").count();
            if n >= want {
                // The last whole frame.
                let last = text.rsplit("\x1b[H\x1b[2J").next().unwrap().to_string();
                if last.lines().count() >= 5 {
                    return (n, last);
                }
            }
            assert!(Instant::now() < deadline, "{n} frames in 15 s:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (_, first) = frames(1);
    let row = |frame: &str, addr: &str| -> String {
        frame
            .lines()
            .find(|l| l.starts_with(addr))
            .unwrap_or_else(|| panic!("no row for {addr}:\n{frame}"))
            .to_string()
    };
    assert!(first.contains("THERMAL"), "{first}");
    let h = row(&first, &hot.addr());
    assert!(
        h.contains("throttled") && h.contains("85.0/80.0C") && h.contains("0/4"),
        "{h}"
    );
    assert!(row(&first, &cool.addr()).contains(" ok "), "{first}");
    // The screen follows the box: the cool one warms up and a later frame says so.
    cool_tree.set_temp(78.5);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = 0;
    loop {
        let (n, last) = frames(seen + 1);
        seen = n;
        if row(&last, &cool.addr()).contains("warm") {
            assert!(row(&last, &cool.addr()).contains(" of 4"), "{last}");
            break;
        }
        assert!(Instant::now() < deadline, "never warm:\n{last}");
    }
    // Ctrl-C on the keyboard ends it.
    watch.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = watch.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = watch.kill();
            panic!("rcc --status --watch did not stop on Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    // script -e passes on rcc's end: killed by SIGINT.
    assert_eq!(status.code(), Some(130), "{status}");
}

#[test]
fn check_shows_what_rccd_found_on_the_box() {
    let t = TempDir::new("check");
    let tree = FakeThermal::new(&t, "sys", 77.0);
    let out = ok(Command::new(RCCD).args(["--check"]).args(tree.flag()));
    let text = s(&out.stdout);
    assert!(
        text.contains("CPU zones cpu-thermal (thermal_zone0); limit = passive trip 80.0 C"),
        "{text}"
    );
    assert!(
        text.contains("cpufreq coolers [thermal-cpufreq-0]"),
        "{text}"
    );
    assert!(
        text.contains("thermal now: warm: cpu-thermal 77.0 C"),
        "{text}"
    );
}
