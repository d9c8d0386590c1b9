//! A throttled box says no and the job goes to a cool one; a cooled box takes jobs again,
//! but only once it is clearly below its trip. Real rccd processes read fake sysfs trees
//! laid out like an Amlogic GX box's.

mod util;
use util::*;

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
    // The hot box is first in the list: it would win every job if it said yes.
    compile_n(&t, &format!("{} {}", hot.addr(), cool.addr()), 4);
    assert_eq!(hot.counter("accepted"), 0);
    assert!(hot.counter("throttled") >= 1);
    assert_eq!(cool.counter("done"), 4);
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
