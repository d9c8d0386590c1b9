//! Every way a build calls rcc reaches the box and gives gcc's object: `rcc gcc`, `rcc
//! /usr/bin/gcc`, `rcc ARGS` (cc), a masquerade symlink named like the compiler, a cross
//! compiler's name, CMake's `CMAKE_C_COMPILER_LAUNCHER=rcc` and ccache's `CCACHE_PREFIX=rcc`.

mod util;
use util::*;

use std::path::Path;
use std::process::Command;

const SRC: &str = "#include <string.h>\nint n(const char *s) { return (int)strlen(s) * 3; }\n";

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A directory of masquerade links (`name` -> rcc).
fn links(t: &TempDir, names: &[&str]) -> std::path::PathBuf {
    let dir = t.join("masq");
    std::fs::create_dir_all(&dir).unwrap();
    for n in names {
        std::os::unix::fs::symlink(RCC, dir.join(n)).unwrap();
    }
    dir
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
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
    if !have("aarch64-linux-gnu-gcc") {
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
    if !have("cmake") || !have("make") {
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
    if !have("ccache") {
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
