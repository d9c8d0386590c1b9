//! Every way a build calls rcc reaches the box and gives gcc's object: `rcc gcc`, `rcc
//! /usr/bin/gcc`, `rcc ARGS` (cc), a masquerade symlink named like the compiler, a cross
//! compiler's name, CMake's `CMAKE_C_COMPILER_LAUNCHER=rcc` and ccache's `CCACHE_PREFIX=rcc`.

use crate::util::*;

use std::path::Path;
use std::process::Command;

const SRC: &str = "#include <string.h>\nint n(const char *s) { return (int)strlen(s) * 3; }\n";

/// A directory of masquerade links (`name` -> rcc).
fn links(t: &TempDir, names: &[&str]) -> std::path::PathBuf {
    let dir = t.join("masq");
    std::fs::create_dir_all(&dir).unwrap();
    for n in names {
        std::os::unix::fs::symlink(RCC, dir.join(n)).unwrap();
    }
    dir
}

#[test]
fn rcc_with_a_compiler_name_a_path_or_none() {
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("forms");
    t.write("a.c", SRC);
    assert!(gcc(t.path(), "gcc", &["-O2", "-c", "a.c", "-o", "want.o"])
        .status
        .success());
    let want = read(t.join("want.o"));
    for (i, form) in [&["gcc"][..], &["/usr/bin/gcc"], &[]].iter().enumerate() {
        let out = format!("got{i}.o");
        ok(rcc(t.path(), &t.join(".rcc"), &d.addr())
            .args(*form)
            .args(["-O2", "-c", "a.c", "-o", &out]));
        assert!(read(t.join(&out)) == want, "{form:?}");
        assert_eq!(
            d.counter("done"),
            i as u64 + 1,
            "{form:?} did not reach the box"
        );
    }
}

#[test]
fn masquerade_links_run_the_next_compiler_of_that_name() {
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("masq");
    t.write("a.c", SRC);
    let dir = links(&t, &["gcc", "cc"]);
    assert!(gcc(t.path(), "gcc", &["-O2", "-c", "a.c", "-o", "want.o"])
        .status
        .success());
    let want = read(t.join("want.o"));
    // `rcc gcc` with the links first on PATH: rcc skips itself and finds the real gcc.
    for name in ["gcc", "cc"] {
        let out = format!("{name}.o");
        ok(rcc(t.path(), &t.join(".rcc"), &d.addr())
            .env("PATH", path_with(&dir))
            .args([name, "-O2", "-c", "a.c", "-o", &out]));
        assert!(read(t.join(&out)) == want, "{name}");
    }
    // Called through the link directly, not as `rcc gcc`.
    let out = ok(Command::new(dir.join("gcc"))
        .current_dir(t.path())
        .env("PATH", path_with(&dir))
        .env("RCC_HOSTS", d.addr())
        .env("RCC_DIR", t.join(".rcc"))
        .args(["-O2", "-c", "a.c", "-o", "link.o"]));
    assert!(out.stderr.is_empty(), "{}", s(&out.stderr));
    assert!(read(t.join("link.o")) == want);
    assert_eq!(d.counter("done"), 3);
    // Linking through the link runs the real gcc (after rcc on PATH), never rcc again.
    ok(Command::new(dir.join("gcc"))
        .current_dir(t.path())
        .env("PATH", path_with(&dir))
        .env("RCC_HOSTS", d.addr())
        .env("RCC_DIR", t.join(".rcc"))
        .args(["want.o", "-shared", "-o", "liba.so"]));
    assert!(t.join("liba.so").exists());
}

#[test]
fn a_cross_compiler_for_the_boxes_target() {
    if !have("aarch64-linux-gnu-gcc", "--version") {
        eprintln!("note: aarch64-linux-gnu-gcc not installed; skipping");
        return;
    }
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("cross");
    t.write("a.c", SRC);
    let dir = links(&t, &["aarch64-linux-gnu-gcc"]);
    assert!(gcc(
        t.path(),
        "aarch64-linux-gnu-gcc",
        &["-O2", "-mcpu=cortex-a53", "-c", "a.c", "-o", "want.o"]
    )
    .status
    .success());
    let want = read(t.join("want.o"));
    ok(Command::new(dir.join("aarch64-linux-gnu-gcc"))
        .current_dir(t.path())
        .env("PATH", path_with(&dir))
        .env("RCC_HOSTS", d.addr())
        .env("RCC_DIR", t.join(".rcc"))
        .args(["-O2", "-mcpu=cortex-a53", "-c", "a.c", "-o", "got.o"]));
    assert!(read(t.join("got.o")) == want);
    assert_eq!(d.counter("done"), 1);
    let kv = d.status();
    assert!(
        kv.get("compiler.aarch64-linux-gnu-gcc")
            .is_some_and(|v| v.contains("aarch64-linux-gnu")),
        "{kv:?}"
    );
}

#[test]
fn cmake_compiler_launcher() {
    if !have("cmake", "--version") || !have("make", "--version") {
        eprintln!("note: cmake not installed; skipping");
        return;
    }
    let d = Daemon::start(4, &[]);
    let t = TempDir::new("cmake");
    t.write(
        "CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.13)\nproject(forms C)\n\
         add_library(forms STATIC a.c b.c)\n",
    );
    t.write("a.c", SRC);
    t.write("b.c", "int b(int x) { return x << 2; }\n");
    let hosts = d.addr();
    let configure = |dir: &str, launcher: bool| {
        let mut c = Command::new("cmake");
        c.current_dir(t.path())
            .env("RCC_HOSTS", &hosts)
            .env("RCC_DIR", t.join(".rcc"))
            .args(["-S", ".", "-B", dir, "-DCMAKE_BUILD_TYPE=Release"]);
        if launcher {
            c.arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={RCC}"));
        }
        ok(&mut c);
        ok(Command::new("cmake")
            .current_dir(t.path())
            .env("RCC_HOSTS", &hosts)
            .env("RCC_DIR", t.join(".rcc"))
            .args(["--build", dir, "-j", "4"]));
    };
    configure("plain", false);
    let before = d.counter("done");
    configure("farm", true);
    assert_eq!(
        d.counter("done"),
        before + 2,
        "both objects went to the box"
    );
    for o in ["a.c.o", "b.c.o"] {
        let rel = format!("CMakeFiles/forms.dir/{o}");
        assert!(
            read(t.join("plain").join(&rel)) == read(t.join("farm").join(&rel)),
            "{o}"
        );
    }
}

#[test]
fn ccache_prefix() {
    if !have("ccache", "--version") {
        eprintln!("note: ccache not installed; skipping");
        return;
    }
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("ccache");
    t.write("a.c", SRC);
    assert!(gcc(t.path(), "gcc", &["-O2", "-c", "a.c", "-o", "want.o"])
        .status
        .success());
    let want = read(t.join("want.o"));
    let run_ccache = |out: &str| {
        ok(Command::new("ccache")
            .current_dir(t.path())
            .env("CCACHE_DIR", t.join("ccache"))
            .env("CCACHE_PREFIX", RCC)
            .env("RCC_HOSTS", d.addr())
            .env("RCC_DIR", t.join(".rcc"))
            .args(["gcc", "-O2", "-c", "a.c", "-o", out]));
        read(t.join(out))
    };
    assert!(run_ccache("one.o") == want);
    assert_eq!(d.counter("done"), 1, "ccache's miss went to the box");
    // A hit: ccache answers from its cache, the box is not asked again.
    assert!(run_ccache("two.o") == want);
    assert_eq!(d.counter("done"), 1);
}

/// Runs `cmd` in its own process group; a command still running after a minute is a
/// runaway (rcc starting itself without end): its whole group is killed and the test fails.
fn bounded(cmd: &mut Command) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-KILL", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
    panic!("a runaway: {cmd:?} did not finish in a minute");
}

/// The rcc processes that spoke (RCC_VERBOSE lines are `rcc[PID] ...`).
fn rcc_pids(stderr: &[u8]) -> std::collections::BTreeSet<String> {
    s(stderr)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("rcc[")?
                .split_once(']')
                .map(|(p, _)| p.to_string())
        })
        .collect()
}

/// Two rcc binaries reachable as `gcc` (links, copies, hard links, in either order on
/// PATH) never run each other: one rcc compiles, on the box, with the real gcc.
#[test]
fn two_rcc_named_gcc_on_path_never_run_each_other() {
    let d = Daemon::start(2, &[]);
    let t = TempDir::new("twins");
    t.write("a.c", SRC);
    assert!(gcc(t.path(), "gcc", &["-O2", "-c", "a.c", "-o", "want.o"])
        .status
        .success());
    let want = read(t.join("want.o"));
    let copy = t.join("rcc-copy");
    std::fs::copy(RCC, &copy).unwrap();
    let second = t.join("rcc-second-copy");
    std::fs::copy(RCC, &second).unwrap();
    type Place = fn(&Path, &Path, &Path);
    let link: Place = |rcc, _, at| std::os::unix::fs::symlink(rcc, at).unwrap();
    let copied: Place = |_, copy, at| {
        std::fs::copy(copy, at).unwrap();
    };
    let hard: Place = |_, copy, at| std::fs::hard_link(copy, at).unwrap();
    let cases: [(&str, Place, Place); 4] = [
        ("a link, then a copy", link, copied),
        ("a copy, then a link", copied, link),
        ("links to two copies", link, |_, c, at| {
            std::os::unix::fs::symlink(c, at).unwrap()
        }),
        ("a hard link, then a link", hard, link),
    ];
    for (i, (what, first, then)) in cases.iter().enumerate() {
        let (a, b) = (t.join(format!("{i}/a")), t.join(format!("{i}/b")));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        first(Path::new(RCC), &copy, &a.join("gcc"));
        then(Path::new(RCC), &second, &b.join("gcc"));
        let out_name = format!("got{i}.o");
        let path = format!(
            "{}:{}:{}",
            a.display(),
            b.display(),
            std::env::var("PATH").unwrap()
        );
        let out = bounded(
            Command::new("gcc")
                .current_dir(t.path())
                .env("PATH", &path)
                .env("RCC_HOSTS", d.addr())
                .env("RCC_DIR", t.join(".rcc"))
                .env("RCC_VERBOSE", "1")
                .env_remove("_RCC_SAFEGUARD")
                .args(["-O2", "-c", "a.c", "-o", &out_name]),
        );
        assert!(out.status.success(), "{what}: {}", s(&out.stderr));
        assert!(read(t.join(&out_name)) == want, "{what}");
        assert_eq!(rcc_pids(&out.stderr).len(), 1, "{what}: {}", s(&out.stderr));
        assert_eq!(d.counter("done"), i as u64 + 1, "{what}: not on the box");
    }
    // Named by path, a copy of rcc is still rcc: said once, nothing run.
    let out = bounded(rcc(t.path(), &t.join(".rcc"), &d.addr()).args([
        copy.to_str().unwrap(),
        "-c",
        "a.c",
    ]));
    assert_eq!(out.status.code(), Some(111));
    let said = s(&out.stderr);
    assert!(
        said.contains("is rcc itself") && said.lines().count() == 1,
        "{said}"
    );
}

/// Wrappers between rcc and the compiler (scripts here; ccache in life) that run rcc again:
/// the rcc they start compiles with a compiler no rcc above it ran, and a loop through two
/// wrappers stops at the next level with one message.
#[test]
fn wrappers_that_run_rcc_again_are_bounded() {
    let t = TempDir::new("wrappers");
    t.write("a.c", SRC);
    let masq = links(&t, &["gcc"]);
    let wrapper = |dir: &str| {
        let d = t.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let script = format!("#!/bin/sh\nexec {} \"$@\"\n", masq.join("gcc").display());
        std::fs::write(d.join("gcc"), script).unwrap();
        std::fs::set_permissions(
            d.join("gcc"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        d
    };
    let (w1, w2) = (wrapper("w1"), wrapper("w2"));
    let run_with = |path: String, out: &str| {
        bounded(
            Command::new(masq.join("gcc"))
                .current_dir(t.path())
                .env("PATH", path)
                // A box that is not there: the job falls back to a local compile.
                .env("RCC_HOSTS", "127.0.0.1:1")
                .env("RCC_DIR", t.join(".rcc"))
                .env("RCC_VERBOSE", "1")
                .env_remove("_RCC_SAFEGUARD")
                .args(["-c", "a.c", "-o", out]),
        )
    };
    let system = std::env::var("PATH").unwrap();
    // One wrapper: the second rcc skips it and compiles with the real gcc.
    let out = run_with(format!("{}:{system}", w1.display()), "one.o");
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(t.join("one.o").exists());
    assert_eq!(rcc_pids(&out.stderr).len(), 2, "{}", s(&out.stderr));
    // Two wrappers that both lead back: the third rcc stops, saying so once.
    let out = run_with(
        format!("{}:{}:{system}", w1.display(), w2.display()),
        "two.o",
    );
    assert_eq!(out.status.code(), Some(111), "{}", s(&out.stderr));
    let said: Vec<String> = s(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("rcc:"))
        .map(String::from)
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("runs rcc again"), "{said:?}");
    assert!(rcc_pids(&out.stderr).len() <= 2, "{}", s(&out.stderr));
}

/// An rcc started under an older rcc (which set the guard to `1`) compiles here.
#[test]
fn an_older_rccs_guard_still_means_compile_here() {
    let d = Daemon::start(1, &[]);
    let t = TempDir::new("oldguard");
    t.write("a.c", SRC);
    ok(rcc(t.path(), &t.join(".rcc"), &d.addr())
        .env("_RCC_SAFEGUARD", "1")
        .args(["gcc", "-c", "a.c"]));
    assert!(t.join("a.o").exists());
    assert_eq!(d.counter("accepted"), 0);
}

/// `rcc` alone is a mistake, not a request for help: usage on stderr, a failing status.
#[test]
fn bare_rcc_says_what_to_give_and_fails() {
    let t = TempDir::new("bare");
    let out = run(&mut rcc(t.path(), &t.join(".rcc"), ""));
    assert_eq!(out.status.code(), Some(101), "rcc's exit for bad arguments");
    assert!(out.stdout.is_empty());
    assert!(s(&out.stderr).contains("usage: rcc"), "{}", s(&out.stderr));
    let help = ok(rcc(t.path(), &t.join(".rcc"), "").arg("--help"));
    assert!(s(&help.stdout).contains("usage: rcc"));
}

/// Output for a reader that went away (`rcc --status | head -1`, `rccd --check | grep -q`)
/// is dropped quietly: no panic, no abort, the command's own status.
#[test]
fn a_reader_that_went_away_is_not_a_crash() {
    let d = Daemon::start(1, &[]);
    let t = TempDir::new("epipe");
    let gone = || {
        // The other end is closed before the command starts: every write fails with EPIPE.
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(ours);
        std::process::Stdio::from(std::os::fd::OwnedFd::from(theirs))
    };
    let commands: [(&str, Command); 4] = [
        ("rccd --check", {
            let mut c = Command::new(RCCD);
            c.arg("--check");
            c
        }),
        ("rcc --status", {
            let mut c = rcc(t.path(), &t.join(".rcc"), &d.addr());
            c.arg("--status");
            c
        }),
        ("rcc --status --format kv", {
            let mut c = rcc(t.path(), &t.join(".rcc"), &d.addr());
            c.args(["--status", "--format", "kv"]);
            c
        }),
        ("rcc --show-hosts", {
            let mut c = rcc(t.path(), &t.join(".rcc"), &d.addr());
            c.arg("--show-hosts");
            c
        }),
    ];
    for (what, mut c) in commands {
        let out = c
            .stdout(gone())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: {:?} {}",
            out.status,
            s(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{what}: {}", s(&out.stderr));
    }
}
