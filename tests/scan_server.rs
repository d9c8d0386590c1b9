//! The scan server: the first job of a build that ships its sources starts one process per
//! `RCC_DIR` (`rcc --scan-server`), and the build's later jobs ask it for their manifests
//! instead of scanning on their own. What it answers must be what the disk holds when the
//! job runs — a header rewritten or one that appears earlier in the search path is seen by
//! the next job — and whatever happens to it, the build goes on.

use crate::util::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Waits (at most 10 s) until the server of `rcc_dir` listens.
fn wait_for_server(rcc_dir: &Path) {
    let sock = rcc_dir.join("scan.sock");
    wait_until("a scan server listens", 10, || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });
}

/// A test's dir, one box of one slot, its host list and the build's `RCC_DIR`.
fn one_box(name: &str) -> (TempDir, Daemon, String, PathBuf) {
    let t = TempDir::new(name);
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    let rcc_dir = t.join(".rcc");
    (t, d, hosts, rcc_dir)
}

/// The scan servers running for `rcc_dir` (found by their command line and environment).
fn servers(rcc_dir: &Path) -> Vec<u32> {
    let want = format!("RCC_DIR={}", rcc_dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            alive(*pid)
                && cmd.ends_with(b"--scan-server\0")
                && env.split(|&b| b == 0).any(|v| v == want.as_bytes())
        })
        .collect()
}

/// Whether `pid` runs (a zombie no longer does: nobody may be reaping it here).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| st.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Compiles `main.c` (with `args`) with plain gcc and through rcc; the objects must be the
/// same. Returns what rcc said under `RCC_VERBOSE=1`.
fn plain_and_rcc(dir: &Path, rcc_dir: &Path, hosts: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["-c", "main.c", "-o", "main.o"]);
    assert!(gcc(dir, "gcc", &all).status.success());
    let want = read(dir.join("main.o"));
    std::fs::remove_file(dir.join("main.o")).unwrap();
    let out = ok(rcc(dir, rcc_dir, hosts)
        .env("RCC_VERBOSE", "1")
        .arg("gcc")
        .args(&all));
    assert!(
        read(dir.join("main.o")) == want,
        "main.o differs from a plain build's:\n{}",
        s(&out.stderr)
    );
    s(&out.stderr)
}

/// `plain_and_rcc` for a job the scan server must have scanned: the value it compiled.
fn served(dir: &Path, rcc_dir: &Path, hosts: &str, args: &[&str]) -> String {
    let said = plain_and_rcc(dir, rcc_dir, hosts, args);
    assert!(said.contains("by the scan server"), "{said}");
    value(dir)
}

/// The value `V` compiled into main.o (`return V;`), in hex.
fn value(dir: &Path) -> String {
    let dis = ok(std::process::Command::new("objdump")
        .arg("-d")
        .arg(dir.join("main.o")));
    let text = s(&dis.stdout);
    let at = text.find("mov    $0x").expect("a constant") + 10;
    text[at..].split(',').next().unwrap().to_string()
}

#[test]
fn later_jobs_are_scanned_by_the_server_and_see_every_change_on_disk() {
    let (t, d, hosts, rcc_dir) = one_box("scan-server");
    t.write("main.c", "#include <v.h>\nint v(void) { return V; }\n");
    t.write("second/v.h", "#define V 1\n");
    std::fs::create_dir_all(t.join("first")).unwrap();
    let args = ["-O2", "-Ifirst", "-Isecond"];
    // Directories still for a while: their listings are kept from job to job.
    std::thread::sleep(Duration::from_millis(2200));

    // The first job starts the server and scans on its own.
    let said = plain_and_rcc(t.path(), &rcc_dir, &hosts, &args);
    assert!(said.contains(" ms here: "), "{said}");
    wait_for_server(&rcc_dir);
    assert_eq!(served(t.path(), &rcc_dir, &hosts, &args), "1");

    // Rewritten with the same size and mtime: only the ctime tells.
    t.write("second/v.h", "#define V 2\n");
    ok(std::process::Command::new("touch")
        .args(["-d", "2024-01-01 00:00:00"])
        .arg(t.join("second/v.h")));
    assert_eq!(served(t.path(), &rcc_dir, &hosts, &args), "2");

    // A header of the same name appears earlier in the search path: gcc now opens it.
    t.write("first/v.h", "#define V 3\n");
    assert_eq!(served(t.path(), &rcc_dir, &hosts, &args), "3");

    // And goes again.
    std::fs::remove_file(t.join("first/v.h")).unwrap();
    plain_and_rcc(t.path(), &rcc_dir, &hosts, &args);
    assert_eq!(value(t.path()), "2");

    // A header in a directory that did not exist: the server kept where `<sub/v.h>` led,
    // and that answer held only while `first/sub` was missing.
    t.write("main.c", "#include <sub/v.h>\nint v(void) { return V; }\n");
    t.write("second/sub/v.h", "#define V 4\n");
    // Still for more than 2 s even in whole seconds: the answer is kept from the first job.
    std::thread::sleep(Duration::from_millis(3100));
    plain_and_rcc(t.path(), &rcc_dir, &hosts, &args);
    assert_eq!(value(t.path()), "4");
    assert_eq!(served(t.path(), &rcc_dir, &hosts, &args), "4");
    t.write("first/sub/v.h", "#define V 5\n");
    assert_eq!(served(t.path(), &rcc_dir, &hosts, &args), "5");
    assert_eq!(d.counter("sources"), 8);
    assert_eq!(servers(&rcc_dir).len(), 1, "one server per RCC_DIR");
}

#[test]
fn a_request_that_is_not_one_costs_nothing_and_the_next_job_is_served() {
    use std::io::{Read, Write};
    let (t, _d, hosts, rcc_dir) = one_box("scan-server-hostile");
    t.write("main.c", "#include \"v.h\"\nint v(void) { return V; }\n");
    t.write("v.h", "#define V 7\n");
    plain_and_rcc(t.path(), &rcc_dir, &hosts, &["-O2"]);
    wait_for_server(&rcc_dir);
    let sock = rcc_dir.join("scan.sock");
    for junk in [
        &b""[..],                                   // closes at once
        b"\x00\x00\x00\x05RCS1x",                   // cut inside a field
        b"\xff\xff\xff\xffRCS1",                    // a length past the bound
        b"\x00\x00\x00\x08GET / HT",                // not ours at all
        b"\x00\x00\x00\x10RCS1\x00\x00\x00\x03/cc", // a relative cwd and no more
    ] {
        let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.write_all(junk);
        let _ = c.shutdown(std::net::Shutdown::Write);
        // No answer: the connection is closed.
        let mut back = Vec::new();
        let _ = c.read_to_end(&mut back);
        assert!(back.is_empty(), "{back:?}");
    }
    let said = plain_and_rcc(t.path(), &rcc_dir, &hosts, &["-O2"]);
    assert!(said.contains("by the scan server"), "{said}");
}

#[test]
fn the_server_leaves_with_its_rcc_dir_and_can_be_turned_off() {
    let (t, _d, hosts, rcc_dir) = one_box("scan-server-leaves");
    t.write("main.c", "int v(void) { return 5; }\n");

    // Off: every job scans on its own and no server starts.
    let off = t.join(".rcc-off");
    for _ in 0..2 {
        let out = ok(rcc(t.path(), &off, &hosts)
            .env("RCC_VERBOSE", "1")
            .env("RCC_SCAN_SERVER", "0")
            .args(["gcc", "-c", "main.c"]));
        assert!(s(&out.stderr).contains(" ms here: "), "{}", s(&out.stderr));
    }
    assert!(!off.join("scan.sock").exists());
    assert!(servers(&off).is_empty());

    plain_and_rcc(t.path(), &rcc_dir, &hosts, &[]);
    wait_for_server(&rcc_dir);
    let pids = servers(&rcc_dir);
    assert_eq!(pids.len(), 1);
    std::fs::remove_dir_all(&rcc_dir).unwrap();
    wait_until("the server leaves with its RCC_DIR", 10, || !alive(pids[0]));
}

#[test]
fn a_computed_include_follows_its_macro_when_the_header_defining_it_changes() {
    let (t, d, hosts, rcc_dir) = one_box("scan-server-computed");
    t.write(
        "main.c",
        "#include \"names.h\"\n#include WHICH\nint v(void) { return V; }\n",
    );
    t.write("a.h", "#define V 1\n");
    t.write("b.h", "#define V 2\n");
    t.write("names.h", "#define WHICH \"a.h\"\n");
    plain_and_rcc(t.path(), &rcc_dir, &hosts, &["-O2"]);
    wait_for_server(&rcc_dir);
    let said = plain_and_rcc(t.path(), &rcc_dir, &hosts, &["-O2"]);
    assert!(said.contains("by the scan server"), "{said}");
    assert_eq!(value(t.path()), "1");
    // The macro now names the other header: the server reads the new definition.
    t.write("names.h", "#define WHICH \"b.h\"\n");
    let said = plain_and_rcc(t.path(), &rcc_dir, &hosts, &["-O2"]);
    assert!(said.contains("by the scan server"), "{said}");
    assert_eq!(value(t.path()), "2");
    // Every job went to the box with its sources (the box checked what each one read).
    assert_eq!(d.counter("sources"), 3, "{}", d.log_text());
}

#[test]
fn a_server_of_another_rcc_build_leaves_and_the_next_job_starts_its_own() {
    use std::io::Write;
    let (t, _d, hosts, rcc_dir) = one_box("scan-server-rebuilt");
    t.write("main.c", "int v(void) { return 4; }\n");
    plain_and_rcc(t.path(), &rcc_dir, &hosts, &[]);
    wait_for_server(&rcc_dir);
    let old = servers(&rcc_dir);
    assert_eq!(old.len(), 1);
    // What an rcc rebuilt or upgraded since the server started would ask.
    let req = rcc::client::scan_server::Request {
        build: "0.0.0 another binary".into(),
        compiler: "/usr/bin/gcc".into(),
        identity: "x".into(),
        cwd: t.path().to_path_buf(),
        args: vec!["-c".into(), "main.c".into()],
    }
    .encode();
    let mut c = std::os::unix::net::UnixStream::connect(rcc_dir.join("scan.sock")).unwrap();
    c.write_all(&(req.len() as u32).to_be_bytes()).unwrap();
    c.write_all(&req).unwrap();
    wait_until("the old server leaves", 10, || !alive(old[0]));
    // The next job scans for itself and starts a server of this build, which then answers.
    let said = plain_and_rcc(t.path(), &rcc_dir, &hosts, &[]);
    assert!(said.contains(" ms here: "), "{said}");
    wait_for_server(&rcc_dir);
    let said = plain_and_rcc(t.path(), &rcc_dir, &hosts, &[]);
    assert!(said.contains("by the scan server"), "{said}");
    assert_ne!(servers(&rcc_dir), old);
}
