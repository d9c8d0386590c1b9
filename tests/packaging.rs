//! What ships to the boxes: the settings file means what its comments say, the SysV script
//! starts, reports and stops a real rccd, the scripts (the packages' maintainer scripts
//! among them) pass shellcheck, the systemd unit passes `systemd-analyze verify`, and cross
//! reads the same settings on every OS. The .deb packages themselves are built, linted and
//! installed by `tests/deb.sh` (release builds and a chroot: not for `cargo test`).

use crate::util::*;

use std::path::Path;
use std::process::Command;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn the_shipped_settings_check_out() {
    let out = ok(Command::new(RCCD)
        .arg("--config")
        .arg(repo("initscripts/rccd.default"))
        .arg("--check"));
    let text = s(&out.stdout);
    assert!(text.contains("listen: 0.0.0.0:3633"), "{text}");
    assert!(
        text.contains("192.168.0.0/16") && text.contains("10.0.0.0/8"),
        "{text}"
    );
    assert!(text.contains("thermal: on"), "{text}");
    // A freshly flashed box is found: discovery on, for the private ranges.
    let line = text
        .lines()
        .find(|l| l.starts_with("discovery: "))
        .unwrap_or_else(|| panic!("no discovery line: {text}"));
    assert!(
        line.contains("answers probes on UDP port 3633") && line.contains("192.168.0.0/16"),
        "{line}"
    );
    // A flag on the command line wins over the file.
    let out = ok(Command::new(RCCD)
        .arg("--config")
        .arg(repo("initscripts/rccd.default"))
        .args(["--jobs", "3", "--allow", "10.9.0.0/16", "--check"]));
    let text = s(&out.stdout);
    assert!(text.contains("jobs: 3"), "{text}");
    assert!(text.contains("allow: 10.9.0.0/16\n"), "{text}");
}

#[test]
fn a_bad_settings_file_says_which_line() {
    let t = TempDir::new("badcfg");
    let cfg = t.write("rccd", "LISTEN=\"0.0.0.0:3633\"\nJOBZ=4\n");
    let out = run(Command::new(RCCD).arg("--config").arg(&cfg).arg("--check"));
    assert_eq!(out.status.code(), Some(2));
    let err = s(&out.stderr);
    assert!(err.contains("line 2: unknown setting JOBZ"), "{err}");
    let out = run(Command::new(RCCD).args(["--config", "/nonexistent/rccd"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        s(&out.stderr).contains("/nonexistent/rccd"),
        "{}",
        s(&out.stderr)
    );
}

#[test]
fn scripts_pass_shellcheck() {
    if !have("shellcheck", "--version") {
        eprintln!("note: shellcheck not installed; skipping");
        return;
    }
    for f in [
        "initscripts/rccd.init",
        "armbian/userpatches/customize-image.sh",
        "armbian/userpatches/overlay/rccd/install.sh",
        "armbian/build-overlay.sh",
        "armbian/deb.sh",
        "armbian/deb/rccd.postinst",
        "armbian/deb/rccd.prerm",
        "armbian/deb/rccd.postrm",
        "tests/demo.sh",
        "tests/run-all.sh",
        "tests/rootfs.sh",
        "tests/rootfs-cache.sh",
        "tests/deb.sh",
        ".ci/run",
    ] {
        ok(Command::new("shellcheck").arg(repo(f)));
    }
}

#[test]
fn the_systemd_unit_verifies() {
    if !have("systemd-analyze", "--version") {
        eprintln!("note: systemd-analyze not installed; skipping");
        return;
    }
    // verify wants the ExecStart binary to exist: point a copy of the unit at ours.
    let t = TempDir::new("unit");
    let unit = std::fs::read_to_string(repo("initscripts/rccd.service")).unwrap();
    let unit = unit.replace("/usr/sbin/rccd", RCCD);
    let path = t.write("rccd.service", &unit);
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    let err = s(&out.stderr);
    // Only complaints about this unit count (the host's other units are not ours to fix),
    // and the dedicated user does not exist on a build machine.
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("rccd.service") && !l.contains("User"))
        .collect();
    assert!(ours.is_empty() && out.status.success(), "{err}");
}

#[test]
fn the_sysv_script_starts_reports_and_stops_rccd() {
    let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if root.ok() != Some(0) || !have("start-stop-daemon", "--version") {
        eprintln!("note: needs root and start-stop-daemon; skipping");
        return;
    }
    let t = TempDir::new("sysv");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = t.write(
        "rccd",
        &format!("LISTEN=\"127.0.0.1:{port}\"\nALLOW=loopback\nJOBS=2\nTHERMAL=off\n"),
    );
    let script = |action: &str| {
        run(Command::new("sh")
            .arg(repo("initscripts/rccd.init"))
            .arg(action)
            .env("RCCD_DAEMON", RCCD)
            .env("RCCD_CONFIG", &cfg)
            .env("RCCD_PIDFILE", t.join("rccd.pid"))
            .env("RCCD_LOGFILE", t.join("rccd.log"))
            .env("RCCD_USER", "root"))
    };
    assert_eq!(script("status").status.code(), Some(3), "not running yet");
    // Whatever fails below, the daemon is stopped when the test ends.
    struct StopOnDrop<F: Fn()>(F);
    impl<F: Fn()> Drop for StopOnDrop<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let _stop = StopOnDrop(|| {
        script("stop");
    });
    assert!(script("start").status.success());
    let addr = format!("127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if rcc::client::remote::status(&addr, Default::default()).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !up {
        panic!(
            "rccd did not answer: {}",
            std::fs::read_to_string(t.join("rccd.log")).unwrap_or_default()
        );
    }
    let st = script("status");
    assert!(st.status.success(), "{}", s(&st.stdout));
    assert!(s(&st.stdout).contains("is running"));
    assert!(script("restart").status.success());
    assert!(script("stop").status.success());
    assert_eq!(script("status").status.code(), Some(3));
    assert!(!t.join("rccd.pid").exists());
}

/// cross reads Cross.toml, or Cargo.toml's metadata; cross.toml must say the same as the
/// metadata so a case-insensitive checkout builds like a Linux one.
#[test]
fn cross_settings_agree() {
    let pairs = |text: &str, prefix: &str| -> Vec<(String, String)> {
        let mut table = String::new();
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(t) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                table = t.to_string();
            } else if let Some((k, v)) = line.split_once('=') {
                if let Some(t) = table.strip_prefix(prefix) {
                    out.push((format!("{t}.{}", k.trim()), v.trim().to_string()));
                }
            }
        }
        out.sort();
        out
    };
    let cross = std::fs::read_to_string(repo("cross.toml")).unwrap();
    let cargo = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
    let a = pairs(&cross, "");
    let b = pairs(&cargo, "package.metadata.cross.");
    assert!(!a.is_empty());
    assert_eq!(a, b);
}
