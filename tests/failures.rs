//! A build never fails because of the farm: dead, wrong, lying or vanishing boxes all end in
//! a correct object (made elsewhere or here). A real compile error is the compiler's, once.

use crate::util::*;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const GOOD: &str = "int add(int a, int b) { return a + b; }\n";

fn plain_good(t: &TempDir) -> Vec<u8> {
    plain_object(t, "good.c", "plain.o")
}

/// Compiles good.c through rcc with `hosts` and checks the object is gcc's.
fn still_builds(hosts: &str, t: &TempDir) -> std::process::Output {
    t.write("good.c", GOOD);
    let want = plain_good(t);
    let rcc_dir = t.join(".rcc");
    let started = Instant::now();
    let out = ok(rcc(t.path(), &rcc_dir, hosts)
        .env("RCC_VERBOSE", "1")
        .args(["gcc", "-O2", "-c", "good.c", "-o", "good.o"]));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(read(t.join("good.o")) == want, "object differs from gcc's");
    out
}

#[test]
fn compile_error_is_reported_once_with_gccs_status() {
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("error");
    // Past the preprocessor, so the error comes from the box's compiler.
    t.write("bad.c", "int f(void) { return undefined_name; }\n");
    let plain = gcc(t.path(), "gcc", &["-c", "bad.c", "-o", "bad.o"]);
    let rcc_dir = t.join(".rcc");
    let out = run(rcc(t.path(), &rcc_dir, &d.addr()).args(["gcc", "-c", "bad.c", "-o", "bad.o"]));
    assert_eq!(out.status.code(), plain.status.code());
    // Word for word what gcc says here, once.
    assert_eq!(s(&out.stderr), s(&plain.stderr));
    assert_eq!(d.counter("failed"), 1, "the error came from the box");
    assert!(!t.join("bad.o").exists());
    // Not the box's fault: it is not backed off, the next job goes there.
    t.write("good.c", GOOD);
    ok(rcc(t.path(), &rcc_dir, &d.addr()).args(["gcc", "-c", "good.c"]));
    assert_eq!(d.counter("done"), 1);
}

#[test]
fn preprocessor_error_is_reported_once() {
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("cpperr");
    t.write("bad.c", "#include \"missing.h\"\nint x;\n");
    let plain = gcc(t.path(), "gcc", &["-c", "bad.c"]);
    let rcc_dir = t.join(".rcc");
    // Preprocessed here (RCC_SHIP=0): the box had accepted (the text streams to it as it is
    // made) but compiled nothing, and threw the partial input away when the client hung up.
    let out = run(rcc(t.path(), &rcc_dir, &d.addr())
        .env("RCC_SHIP", "0")
        .args(["gcc", "-c", "bad.c"]));
    assert_eq!(out.status.code(), plain.status.code());
    assert_eq!(s(&out.stderr), s(&plain.stderr));
    assert_eq!(d.counter("done") + d.counter("failed"), 0);
    // Shipping the sources, the box's preprocessor finds the header missing too, and
    // withholds the job (that a file is missing on the box is the box's business: its reply
    // says the same whether a file is missing or denied); the words come from the compile
    // here, once.
    let out = run(rcc(t.path(), &rcc_dir, &d.addr()).args(["gcc", "-c", "bad.c"]));
    assert_eq!(out.status.code(), plain.status.code());
    assert_eq!(s(&out.stderr), s(&plain.stderr));
    assert_eq!(d.counter("rejected"), 1);
    assert!(!t.join("bad.o").exists());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(d.leftovers().is_empty(), "{:?}", d.leftovers());
    // Not the box's fault: the next job goes to it.
    t.write("good.c", GOOD);
    ok(rcc(t.path(), &rcc_dir, &d.addr()).args(["gcc", "-c", "good.c"]));
    assert_eq!(d.counter("done"), 1);
}

#[test]
fn unreachable_host_and_wrong_port_fall_back() {
    // Nothing listens on a port we just bound and released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = TempDir::new("unreach");
    still_builds(&format!("127.0.0.1:{port}"), &t);
    // A port that is not a number is a host-list error: the build still proceeds.
    let t2 = TempDir::new("badport");
    let out = still_builds("127.0.0.1:notaport", &t2);
    assert!(s(&out.stderr).contains("notaport"), "{}", s(&out.stderr));
}

#[test]
fn dead_host_is_backed_off_and_the_next_box_used() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("next");
    still_builds(&format!("127.0.0.1:{port} {}", d.addr()), &t);
    assert_eq!(d.counter("done"), 1);
    // The backoff is shared through RCC_DIR: the next job does not even try the dead box.
    let out = still_builds(&format!("127.0.0.1:{port} {}", d.addr()), &t);
    assert!(s(&out.stderr).contains("backed off"), "{}", s(&out.stderr));
    assert_eq!(d.counter("done"), 2);
}

/// A fake box that answers every connection with `reply` (then closes).
fn fake_box(reply: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut served = 0;
        while Instant::now() < deadline && served < 4 {
            match l.accept() {
                Ok((mut c, _)) => {
                    served += 1;
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = c.read(&mut buf);
                    let _ = c.write_all(reply);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (addr, h)
}

#[test]
fn garbage_and_early_close_fall_back() {
    for reply in [
        &b"HTTP/1.0 400 Bad Request\r\n\r\n"[..],
        b"",
        b"RCC\x01\x10\x00\x00\x00\x00\x00",
    ] {
        let (addr, h) = fake_box(reply);
        let t = TempDir::new("garbage");
        still_builds(&addr, &t);
        drop(h);
    }
}

#[test]
fn daemon_killed_mid_job_falls_back() {
    let t = TempDir::new("killed");
    // A compiler that takes its time on the box, so the daemon dies while it runs.
    let bin = fixture_compiler(
        &t,
        "gcc",
        "case \"$*\" in *--version*|*-dumpmachine*) exec gcc \"$@\";; esac\nsleep 3\nexec /usr/bin/gcc \"$@\"",
    );
    let mut d = Daemon::start(1, &["--compiler-path", bin.to_str().unwrap()]);
    let addr = d.addr();
    t.write("good.c", GOOD);
    let want = plain_good(&t);
    let rcc_dir = t.join(".rcc");
    let child = rcc(t.path(), &rcc_dir, &addr)
        .args(["gcc", "-O2", "-c", "good.c", "-o", "good.o"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the job runs on the box, then SIGKILL the daemon.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.counter("running") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(read(t.join("good.o")) == want);
}

#[test]
fn compiler_killed_on_the_box_goes_elsewhere() {
    let t = TempDir::new("sig");
    let bin = fixture_compiler(
        &t,
        "gcc",
        "case \"$*\" in *--version*|*-dumpmachine*) exec gcc \"$@\";; esac\nkill -9 $$",
    );
    let d = Daemon::start(1, &["--compiler-path", bin.to_str().unwrap()]);
    still_builds(&d.addr(), &t);
    assert_eq!(d.counter("failed"), 1);
    assert!(
        d.leftovers().is_empty(),
        "job dirs left: {:?}",
        d.leftovers()
    );
}

#[test]
fn a_compiler_that_writes_nothing_is_compiled_here_without_blaming_the_box() {
    let t = TempDir::new("noout");
    // Succeeds without writing its output for good.c (like `-Wa,--version`), and behaves
    // for the next file. (It cannot keep a note of its own: a compiler on the box may write
    // only its job dir.)
    let bin = fixture_compiler(
        &t,
        "gcc",
        "case \"$*\" in *--version*|*-dumpmachine*) exec /usr/bin/gcc \"$@\";; \
         *good.c*) exit 0;; esac\nexec /usr/bin/gcc \"$@\"",
    );
    let d = Daemon::start(1, &["--compiler-path", bin.to_str().unwrap()]);
    still_builds(&d.addr(), &t);
    // Not backed off: the next job goes to the box and comes back from it.
    t.write("next.c", GOOD);
    ok(rcc(t.path(), &t.join(".rcc"), &d.addr()).args(["gcc", "-c", "next.c"]));
    assert_eq!(d.counter("done"), 2);
    assert!(t.join("next.o").exists());
}

#[test]
fn what_only_a_full_preprocessing_takes_compiles_here_without_a_word() {
    // gcc refuses `__COUNTER__` in an `#if` when it preprocesses directives alone (what rcc
    // does to send a job cheaply): not the user's error, so the job compiles here.
    let d = Daemon::start(1, &[]);
    let t = TempDir::new("counter");
    t.write(
        "c.c",
        "#if __COUNTER__ == 0\nint first(void) { return 1; }\n#endif\n",
    );
    let plain = gcc(t.path(), "gcc", &["-O2", "-c", "c.c", "-o", "want.o"]);
    assert!(plain.status.success());
    let out = run(rcc(t.path(), &t.join(".rcc"), &d.addr())
        .env("RCC_SHIP", "0")
        .args(["gcc", "-O2", "-c", "c.c", "-o", "got.o"]));
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(s(&out.stderr), "", "nothing to say");
    assert!(read(t.join("got.o")) == read(t.join("want.o")));
}
