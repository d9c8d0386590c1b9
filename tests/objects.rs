//! Objects made through rcc and a box are the objects plain gcc makes: byte for byte without
//! `-g`, code and data identical with `-g` (and no trace of the box's temp dir), dependency
//! files identical in every form, with and without compression.

mod util;
use util::*;

use std::path::Path;

const HEADER: &str =
    "#ifndef UTIL_H\n#define UTIL_H\n#define SQUARE(x) ((x) * (x))\nint twice(int);\n#endif\n";
const C_SRC: &str = r#"#include <stdio.h>
#include "inc/util.h"
static const char *names[] = { "zero", "one", __FILE__ };
int twice(int v) { return SQUARE(v) + v; }
int main(int argc, char **argv) {
    (void)argv;
    printf("%s %d %d\n", names[argc % 3], twice(argc), __LINE__);
    return 0;
}
"#;
const CXX_SRC: &str = r#"#include <vector>
#include <string>
#include <numeric>
template <typename T> struct Box { T v; T get() const { return v * 2; } };
int sum(const std::vector<int>& xs) { return std::accumulate(xs.begin(), xs.end(), 0); }
std::string greet(const std::string& who) { Box<int> b{21}; return who + std::to_string(b.get()); }
"#;
const ASM_SRC: &str =
    "#define VALUE 42\n\t.text\n\t.globl answer\nanswer:\n\tmovl $VALUE, %eax\n\tret\n";

fn project() -> TempDir {
    let t = TempDir::new("objects");
    t.write("src/hello.c", C_SRC);
    t.write("src/inc/util.h", HEADER);
    t.write("src/lib.cc", CXX_SRC);
    t.write("src/answer.S", ASM_SRC);
    std::fs::create_dir_all(t.join("out")).unwrap();
    t
}

/// Files a compile wrote in the project (relative path -> bytes), removing them.
fn take_outputs(dir: &Path, names: &[&str]) -> Vec<(String, Vec<u8>)> {
    names
        .iter()
        .map(|n| {
            let p = dir.join(n);
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{n} missing: {e}"));
            std::fs::remove_file(&p).unwrap();
            (n.to_string(), data)
        })
        .collect()
}

fn section(obj: &[u8], dir: &Path, name: &str) -> Vec<u8> {
    let src = dir.join("sec-in.o");
    let out = dir.join("sec-out.bin");
    std::fs::write(&src, obj).unwrap();
    let st = std::process::Command::new("objcopy")
        .args(["-O", "binary", "--only-section", name])
        .arg(&src)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let data = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&out);
    data
}

/// Compiles `args` with plain `compiler` and through rcc (hosts = `hosts`), in the same
/// directory, and compares the files in `outputs`. `debug`: compare code and data only.
fn same_as_gcc(d: &Daemon, hosts: &str, compiler: &str, args: &[&str], outputs: &[&str]) {
    let t = project();
    let rcc_dir = t.join(".rcc");
    let plain = gcc(t.path(), compiler, args);
    assert!(plain.status.success(), "gcc {args:?}: {}", s(&plain.stderr));
    let want = take_outputs(t.path(), outputs);

    let before = d.counter("done");
    let out = ok(rcc(t.path(), &rcc_dir, hosts).arg(compiler).args(args));
    assert_eq!(s(&out.stderr), s(&plain.stderr), "stderr of {args:?}");
    assert_eq!(
        d.counter("done"),
        before + 1,
        "{args:?} did not go to the box"
    );
    let got = take_outputs(t.path(), outputs);

    let debug = args.iter().any(|a| a.starts_with("-g"));
    for ((name, w), (_, g)) in want.iter().zip(&got) {
        if !debug || !name.ends_with(".o") {
            assert!(w == g, "{name} differs for {args:?}");
            continue;
        }
        for sec in [".text", ".data", ".rodata", ".bss"] {
            assert!(
                section(w, t.path(), sec) == section(g, t.path(), sec),
                "{sec} of {name} differs for {args:?}"
            );
        }
        let box_tmp = d.dir.join("tmp");
        let text = String::from_utf8_lossy(g);
        assert!(
            !text.contains(box_tmp.to_str().unwrap()),
            "{name} names the box's temp dir"
        );
        assert!(
            text.contains(t.path().to_str().unwrap()),
            "{name} does not name the master's directory"
        );
    }
}

#[test]
fn c_object_equals_gcc() {
    let d = Daemon::start(2, &[]);
    let h = d.addr();
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &["-O2", "-c", "src/hello.c", "-o", "out/hello.o"],
        &["out/hello.o"],
    );
    same_as_gcc(&d, &h, "gcc", &["-c", "src/hello.c"], &["hello.o"]);
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &[
            "-O2",
            "-Wall",
            "-DNDEBUG",
            "-Isrc",
            "-c",
            "src/hello.c",
            "-o",
            "out/x.o",
        ],
        &["out/x.o"],
    );
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &["-O2", "-S", "src/hello.c", "-o", "out/hello.s"],
        &["out/hello.s"],
    );
}

#[test]
fn compressed_and_plain_transfers_give_the_same_object() {
    let d = Daemon::start(2, &[]);
    for hosts in [
        d.addr(),
        format!("{},nocompress", d.addr()),
        format!("{},lzo", d.addr()),
        format!("{},deflate", d.addr()),
    ] {
        same_as_gcc(
            &d,
            &hosts,
            "gcc",
            &["-O2", "-c", "src/hello.c", "-o", "out/hello.o"],
            &["out/hello.o"],
        );
    }
}

#[test]
fn cxx_object_equals_gxx() {
    let d = Daemon::start(2, &[]);
    let h = format!("{},lzo", d.addr());
    same_as_gcc(
        &d,
        &h,
        "g++",
        &["-O2", "-std=c++17", "-c", "src/lib.cc", "-o", "out/lib.o"],
        &["out/lib.o"],
    );
    same_as_gcc(
        &d,
        &h,
        "g++",
        &["-O2", "-g", "-c", "src/lib.cc", "-o", "out/lib.o"],
        &["out/lib.o"],
    );
}

#[test]
fn debug_objects_keep_code_and_name_the_master() {
    let d = Daemon::start(2, &[]);
    let h = d.addr();
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &["-g", "-O2", "-c", "src/hello.c", "-o", "out/hello.o"],
        &["out/hello.o"],
    );
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &["-gdwarf-4", "-O0", "-c", "src/hello.c", "-o", "out/hello.o"],
        &["out/hello.o"],
    );
    // -g3 records macro definitions, which preprocessed text no longer has: it stays here
    // and the object is gcc's own.
    let t = project();
    let args = ["-g3", "-O0", "-c", "src/hello.c", "-o", "out/hello.o"];
    assert!(gcc(t.path(), "gcc", &args).status.success());
    let want = read(t.join("out/hello.o"));
    let before = d.counter("accepted");
    ok(rcc(t.path(), &t.join(".rcc"), &h).arg("gcc").args(args));
    assert!(read(t.join("out/hello.o")) == want);
    assert_eq!(d.counter("accepted"), before);
}

#[test]
fn assembler_with_cpp_equals_gcc() {
    let d = Daemon::start(2, &[]);
    let h = d.addr();
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &["-c", "src/answer.S", "-o", "out/answer.o"],
        &["out/answer.o"],
    );
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &["-DVALUE2=1", "-c", "src/answer.S"],
        &["answer.o"],
    );
}

#[test]
fn dependency_files_equal_gcc_in_every_form() {
    let d = Daemon::start(2, &[]);
    let h = d.addr();
    let c = ["-O2", "-c", "src/hello.c"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v: Vec<&str> = c.to_vec();
        v.extend_from_slice(extra);
        v
    };
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &with(&["-MD", "-o", "out/hello.o"]),
        &["out/hello.o", "out/hello.d"],
    );
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &with(&["-MMD", "-o", "out/hello.o"]),
        &["out/hello.o", "out/hello.d"],
    );
    same_as_gcc(&d, &h, "gcc", &with(&["-MD"]), &["hello.o", "hello.d"]);
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &with(&["-MD", "-MF", "out/deps.d", "-o", "out/hello.o"]),
        &["out/hello.o", "out/deps.d"],
    );
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &with(&[
            "-MMD",
            "-MP",
            "-MT",
            "custom",
            "-MF",
            "out/deps.d",
            "-o",
            "out/hello.o",
        ]),
        &["out/hello.o", "out/deps.d"],
    );
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &with(&["-MD", "-MQ", "$(weird) name", "-o", "out/hello.o"]),
        &["out/hello.o", "out/hello.d"],
    );
    // The Linux kernel's form.
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &with(&["-Wp,-MD,out/.hello.o.d", "-o", "out/hello.o"]),
        &["out/hello.o", "out/.hello.o.d"],
    );
    same_as_gcc(
        &d,
        &h,
        "gcc",
        &with(&["-Wp,-MMD,out/.hello.o.d", "-o", "out/hello.o"]),
        &["out/hello.o", "out/.hello.o.d"],
    );
}
