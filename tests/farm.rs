//! Several boxes at once: slot limits hold under a burst of concurrent rcc processes, a box
//! whose compiler differs gets no jobs, and a real project built through two boxes equals
//! the plain build object for object.

use crate::util::*;

#[test]
fn concurrent_clients_never_exceed_a_box_limit() {
    let t = TempDir::new("burst");
    // Slow enough that 24 jobs overlap.
    let src: String = (0..400)
        .map(|i| format!("static int f{i}(int x) {{ return x * {i} + 1; }}\nint g{i}(int x) {{ return f{i}(x); }}\n"))
        .collect();
    t.write("work.c", &src);
    let a = Daemon::start(2, &[]);
    let b = Daemon::start(3, &[]);
    // The host list claims more slots than the daemons have: the daemons enforce their own.
    let hosts = format!("{}/4 {}/4", a.addr(), b.addr());
    let rcc_dir = t.join(".rcc");
    let children: Vec<_> = (0..24)
        .map(|i| {
            rcc(t.path(), &rcc_dir, &hosts)
                .args(["gcc", "-O2", "-c", "work.c", "-o", &format!("w{i}.o")])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let want = {
        assert!(
            gcc(t.path(), "gcc", &["-O2", "-c", "work.c", "-o", "plain.o"])
                .status
                .success()
        );
        read(t.join("plain.o"))
    };
    for i in 0..24 {
        assert!(read(t.join(format!("w{i}.o"))) == want, "w{i}.o differs");
    }
    let (pa, pb) = (a.counter("peak"), b.counter("peak"));
    assert!(pa <= 2, "box a ran {pa} at once");
    assert!(pb <= 3, "box b ran {pb} at once");
    assert!(a.counter("done") + b.counter("done") > 0);
}

#[test]
fn box_with_another_compiler_gets_no_jobs() {
    let t = TempDir::new("mismatch");
    let bin = fixture_compiler(
        &t,
        "gcc",
        "case \"$*\" in *--version*) echo 'gcc (Other 99.1-1) 99.1.0'; exit 0;; esac\nexec /usr/bin/gcc \"$@\"",
    );
    let odd = Daemon::start(2, &["--compiler-path", bin.to_str().unwrap()]);
    let good = Daemon::start(2, &[]);
    t.write("a.c", "int a(void) { return 1; }\n");
    let rcc_dir = t.join(".rcc");
    let hosts = format!("{} {}", odd.addr(), good.addr());
    let first = ok(rcc(t.path(), &rcc_dir, &hosts).args(["gcc", "-c", "a.c"]));
    // Said once per build, naming both compilers.
    assert!(s(&first.stderr).contains("99.1.0"), "{}", s(&first.stderr));
    for _ in 0..3 {
        let again = ok(rcc(t.path(), &rcc_dir, &hosts).args(["gcc", "-c", "a.c"]));
        assert!(!s(&again.stderr).contains("99.1.0"), "said twice");
    }
    assert_eq!(odd.counter("accepted"), 0);
    assert_eq!(good.counter("done"), 4);
}

#[test]
fn lua_built_through_two_boxes_equals_the_plain_build() {
    let plain = TempDir::new("lua-plain");
    let t = TempDir::new("lua-rcc");
    let a = Daemon::start(2, &[]);
    let b = Daemon::start(2, &[]);
    let make = |dir: &TempDir, cc: &str| {
        let mut c = lua_make(dir.path(), cc);
        c.arg("-j8")
            .env("RCC_DIR", dir.join(".rcc"))
            .env("RCC_HOSTS", format!("{},lzo {}", a.addr(), b.addr()))
            .env("PATH", path_with_rcc());
        ok(&mut c);
    };
    make(&plain, "gcc");
    make(&t, "rcc gcc");
    let mut objects = 0;
    for e in std::fs::read_dir(plain.join("obj")).unwrap() {
        let name = e.unwrap().file_name();
        let want = read(plain.join("obj").join(&name));
        let got = read(t.join("obj").join(&name));
        // .o and .d: the .d files name the same sources and headers.
        assert!(want == got, "{name:?} differs");
        objects += 1;
    }
    assert_eq!(objects, 2 * 32, "32 objects and their .d files");
    let remote = a.counter("done") + b.counter("done");
    assert_eq!(remote, 32, "every object was compiled on a box");
    assert!(
        a.counter("done") > 0 && b.counter("done") > 0,
        "both boxes worked"
    );
}

#[test]
fn status_shows_every_box_up_or_down() {
    let a = Daemon::start(3, &[]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = TempDir::new("status");
    let hosts = format!("{} 127.0.0.1:{dead} localhost", a.addr());
    let out = ok(rcc(t.path(), &t.join(".rcc"), &hosts).args(["--status", "--format", "kv"]));
    let text = s(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!("host={} state=up", a.addr())),
        "{text}"
    );
    for key in [
        "running=0",
        "slots=3",
        "done=0",
        "failed=0",
        "rejected=0",
        "peak=0",
    ] {
        assert!(lines[0].contains(key), "{key} missing in {}", lines[0]);
    }
    assert!(lines[1].contains("state=down"), "{text}");
    let table = ok(rcc(t.path(), &t.join(".rcc"), &hosts).arg("--status"));
    let table = s(&table.stdout);
    assert!(table.starts_with("HOST"), "{table}");
    assert!(table.contains("0/3"), "{table}");
}

#[test]
fn status_warns_when_two_boxes_share_an_identity() {
    let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    if id.trim().is_empty() {
        eprintln!("note: this machine has no /etc/machine-id; skipping");
        return;
    }
    // Two daemons on one machine look exactly like two cloned boxes.
    let a = Daemon::start(1, &[]);
    let b = Daemon::start(1, &[]);
    let t = TempDir::new("clones");
    let both = format!("{} {}", a.addr(), b.addr());
    let out = ok(rcc(t.path(), &t.join(".rcc"), &both).arg("--status"));
    let err = s(&out.stderr);
    assert!(err.contains("report the same machine-id"), "{err}");
    assert!(err.contains(&a.addr()) && err.contains(&b.addr()), "{err}");
    let kv = ok(rcc(t.path(), &t.join(".rcc"), &both).args(["--status", "--format", "kv"]));
    assert!(s(&kv.stdout).contains(&format!("machine_id={}", id.trim())));
    // One box alone: nothing to warn about.
    let out = ok(rcc(t.path(), &t.join(".rcc"), &a.addr()).arg("--status"));
    assert!(out.stderr.is_empty(), "{}", s(&out.stderr));
}
