//! Jobs that ship their sources: the box preprocesses the master's own files, sent by content
//! hash, and the objects and dependency files are byte for byte a plain build's — with `-g`
//! too. Each test builds twice in the same directory (debug info records it): once with
//! plain gcc, kept aside, then through rcc and one real rccd.

use crate::util::*;

use std::path::Path;

/// Moves `names` (objects and dependency files) aside as the reference.
fn keep(dir: &Path, names: &[String]) {
    for n in names {
        std::fs::rename(dir.join(n), dir.join(format!("{n}.want"))).unwrap();
    }
}

/// Asserts each of `names` equals its reference from `keep`.
fn same(dir: &Path, names: &[String]) {
    for n in names {
        let (got, want) = (read(dir.join(n)), read(dir.join(format!("{n}.want"))));
        if n.ends_with(".d") {
            assert_eq!(s(&got), s(&want), "{n} differs from a plain build's");
        } else {
            assert!(got == want, "{n} differs from a plain build's");
        }
    }
}

/// Compiles `args` with plain `cc` in `dir` and keeps `names` aside, then again through rcc
/// (with `RCC_VERBOSE=1`), and asserts each of `names` equals the plain build's. What rcc
/// said comes back.
fn plain_then_rcc(
    dir: &Path,
    rcc_dir: &Path,
    hosts: &str,
    cc: &str,
    args: &[&str],
    names: &[String],
) -> std::process::Output {
    assert!(gcc(dir, cc, args).status.success());
    keep(dir, names);
    let out = ok(rcc(dir, rcc_dir, hosts)
        .env("RCC_VERBOSE", "1")
        .arg(cc)
        .args(args));
    same(dir, names);
    out
}

/// Asserts the x86-64 object `obj` returns the constant `v` (its code loads `$0xV` into
/// `%eax`).
fn returns(obj: &Path, v: u32) {
    let dis = ok(std::process::Command::new("objdump").arg("-d").arg(obj));
    assert!(
        s(&dis.stdout).contains(&format!("$0x{v},%eax")),
        "{}",
        s(&dis.stdout)
    );
}

/// What a Lua build left in `obj/`.
fn lua_outputs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("obj"))
        .unwrap()
        .flatten()
        .map(|e| format!("obj/{}", e.file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".o") || n.ends_with(".d"))
        .collect();
    v.sort();
    v
}

fn make_lua(dir: &Path, cc: &str, cflags: &str, hosts: Option<(&Path, &str)>) {
    let mut c = lua_make(dir, cc);
    c.args(["-s", "-j4"]).arg(format!("CFLAGS={cflags}"));
    if let Some((rcc_dir, h)) = hosts {
        c.env("RCC_DIR", rcc_dir).env("RCC_HOSTS", h);
    }
    ok(&mut c);
}

#[test]
fn lua_objects_and_dependency_files_equal_a_plain_build_with_and_without_g() {
    let t = TempDir::new("sources-lua");
    let d = Daemon::start(4, &[]);
    let hosts = format!("{}/4,lzo", d.addr());
    for (round, cflags) in [
        "-O2 -Wall -std=gnu99 -DLUA_USE_LINUX",
        "-O2 -g -Wall -std=gnu99 -DLUA_USE_LINUX",
    ]
    .iter()
    .enumerate()
    {
        make_lua(t.path(), "gcc", cflags, None);
        let outputs = lua_outputs(t.path());
        assert_eq!(outputs.len(), 64, "{outputs:?}");
        keep(t.path(), &outputs);
        std::fs::remove_file(t.join("liblua.a")).unwrap();
        make_lua(
            t.path(),
            &format!("{RCC} gcc"),
            cflags,
            Some((&t.join(".rcc"), &hosts)),
        );
        same(t.path(), &outputs);
        // Every job went to the box with its sources: none was preprocessed here.
        assert_eq!(
            d.counter("sources"),
            (round as u64 + 1) * 32,
            "{}",
            d.log_text()
        );
        for o in &outputs {
            std::fs::remove_file(t.join(o)).unwrap();
        }
    }
    // The second round's headers were all on the box already.
    assert!(d.counter("files_received") < d.counter("files_named") / 10);
}

#[test]
fn cxx_templates_with_and_without_g_and_dependency_targets() {
    let t = TempDir::new("sources-cxx");
    let d = Daemon::start(2, &[]);
    let hosts = format!("{}/2", d.addr());
    std::fs::create_dir_all(t.join("inc")).unwrap();
    t.write(
        "inc/table.hpp",
        "#pragma once\n#include <map>\n#include <string>\n#include <vector>\n\
         template <typename K, typename V> struct Table {\n  std::map<K, std::vector<V>> rows;\n  \
         void add(const K &k, V v) { rows[k].push_back(v); }\n  \
         std::size_t count(const K &k) const { auto i = rows.find(k); return i == rows.end() ? 0 : i->second.size(); }\n};\n",
    );
    t.write(
        "main.cc",
        "#include \"table.hpp\"\n#include <algorithm>\nint main() {\n  Table<std::string, int> t;\n  \
         t.add(\"a\", 1); t.add(\"a\", 2);\n  std::vector<int> v{3, 1, 2}; std::sort(v.begin(), v.end());\n  \
         return int(t.count(\"a\")) + v[0] - 3;\n}\n",
    );
    let args = [
        "-O2",
        "-g",
        "-std=c++17",
        "-Iinc",
        "-MD",
        "-MP",
        "-MT",
        "main.o",
        "-MQ",
        "x$y",
        "-c",
        "main.cc",
        "-o",
        "out/main.o",
    ];
    std::fs::create_dir_all(t.join("out")).unwrap();
    let names = ["out/main.o".to_string(), "out/main.d".to_string()];
    for debug in ["-g", "-g0"] {
        let mut args = args;
        args[1] = debug;
        plain_then_rcc(t.path(), &t.join(".rcc"), &hosts, "g++", &args, &names);
    }
    assert_eq!(d.counter("sources"), 2);
}

/// A project in several directories: a header generated by the build, `-iquote`, a
/// `#include_next` wrapper, `../` includes, `-include`, and the compile run from a
/// subdirectory with relative paths.
fn project(t: &TempDir) {
    for d in ["src/net", "include/sys", "wrap", "build/gen", "common"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    t.write("common/defs.h", "#define GREETING \"hello\"\n");
    t.write("include/sys/types.h", "typedef unsigned long my_size;\n");
    // A wrapper that adds to the real header found further down the search path.
    t.write(
        "wrap/limits.h",
        "#include_next <limits.h>\n#define MY_MAX (INT_MAX / 2)\n",
    );
    t.write(
        "src/net/net.h",
        "#include \"../../common/defs.h\"\n#include <sys/types.h>\nint send_it(my_size n);\n",
    );
    t.write(
        "src/net/net.c",
        "#include \"net.h\"\n#include \"version.h\"\n#include <limits.h>\n#include <stdio.h>\n\
         int send_it(my_size n) {\n  printf(\"%s %d %s\\n\", GREETING, MY_MAX, VERSION);\n  \
         return (int)n + CFG_LEVEL;\n}\n",
    );
    t.write("cfg.h", "#define CFG_LEVEL 3\n");
}

#[test]
fn a_multi_directory_project_with_a_generated_header() {
    let t = TempDir::new("sources-project");
    let d = Daemon::start(2, &[]);
    let hosts = format!("{}/2", d.addr());
    project(&t);
    let src = t.join("src");
    let args = [
        "-O1",
        "-g",
        "-Wall",
        "-I../include",
        "-I../wrap",
        "-iquote",
        "../build/gen",
        "-include",
        "../cfg.h",
        "-MMD",
        "-c",
        "net/net.c",
        "-o",
        "net/net.o",
    ];
    let names = ["net/net.o".to_string(), "net/net.d".to_string()];
    // With and without debug info, and the generated header changing in between.
    for (version, debug) in [("1.0", "-g"), ("1.1", "-g0")] {
        // The build generates the header before compiling.
        t.write(
            "build/gen/version.h",
            &format!("#define VERSION \"{version}\"\n"),
        );
        let mut args = args;
        args[1] = debug;
        plain_then_rcc(&src, &t.join(".rcc"), &hosts, "gcc", &args, &names);
    }
    assert_eq!(d.counter("sources"), 2);
}

/// The kernel's trace events, in small: a header names the file to read again with
/// `#include TRACE_INCLUDE(TRACE_INCLUDE_FILE)`, macros another header defines, in two forms
/// (`<trace/events/NAME.h>`, and `"PATH/NAME.h"` made by `__stringify`), with a decoy of the
/// same name beside the includer, which gcc finds first.
fn trace_events(t: &TempDir) {
    for d in [
        "include/linux",
        "include/trace/events",
        "drivers/foo",
        "kernel",
    ] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    t.write(
        "include/linux/stringify.h",
        "#define __stringify_1(x...)\t#x\n#define __stringify(x...)\t__stringify_1(x)\n",
    );
    t.write(
        "include/trace/define_trace.h",
        "#ifdef CREATE_TRACE_POINTS\n#undef CREATE_TRACE_POINTS\n#include <linux/stringify.h>\n\
         #undef TRACE_INCLUDE\n#undef __TRACE_INCLUDE\n\
         #ifndef TRACE_INCLUDE_FILE\n# define TRACE_INCLUDE_FILE TRACE_SYSTEM\n\
         # define UNDEF_TRACE_INCLUDE_FILE\n#endif\n\
         #ifndef TRACE_INCLUDE_PATH\n# define __TRACE_INCLUDE(system) <trace/events/system.h>\n\
         # define UNDEF_TRACE_INCLUDE_PATH\n#else\n\
         # define __TRACE_INCLUDE(system) __stringify(TRACE_INCLUDE_PATH/system.h)\n#endif\n\
         # define TRACE_INCLUDE(system) __TRACE_INCLUDE(system)\n\
         #define TRACE_HEADER_MULTI_READ\n#define DEFINE_EVENTS\n\
         #include TRACE_INCLUDE(TRACE_INCLUDE_FILE)\n\
         #undef TRACE_HEADER_MULTI_READ\n#undef DEFINE_EVENTS\n\
         #ifdef UNDEF_TRACE_INCLUDE_FILE\n# undef TRACE_INCLUDE_FILE\n#endif\n\
         #ifdef UNDEF_TRACE_INCLUDE_PATH\n# undef TRACE_INCLUDE_PATH\n#endif\n\
         #define CREATE_TRACE_POINTS\n#endif\n",
    );
    let events = |system: &str| {
        let up = system.to_uppercase();
        format!(
            "#undef TRACE_SYSTEM\n#define TRACE_SYSTEM {system}\n\
             #if !defined(_TRACE_{up}_H) || defined(TRACE_HEADER_MULTI_READ)\n\
             #define _TRACE_{up}_H\n#ifdef DEFINE_EVENTS\nint {system}_events[] = {{ 1, 2, 3 }};\n\
             #else\nstatic inline int trace_{system}(int x) {{ return x + 1; }}\n#endif\n#endif\n\
             #include <trace/define_trace.h>\n"
        )
    };
    t.write("include/trace/events/sched.h", &events("sched"));
    t.write("include/trace/events/task.h", &events("task"));
    // A driver's own trace header, read again through `"./foo_trace.h"`: from
    // define_trace.h's directory first, where the decoy is.
    t.write(
        "drivers/foo/foo_trace.h",
        "#undef TRACE_SYSTEM\n#define TRACE_SYSTEM foo\n#undef TRACE_INCLUDE_PATH\n\
         #define TRACE_INCLUDE_PATH .\n#define TRACE_INCLUDE_FILE foo_trace\n\
         #ifndef _FOO_TRACE_H\n#define _FOO_TRACE_H\nint trace_foo(void);\n#endif\n\
         #include <trace/define_trace.h>\n",
    );
    t.write(
        "include/trace/foo_trace.h",
        "int foo_read_from_the_includers_directory = 7;\n",
    );
    t.write(
        "kernel/sched.c",
        "#include <trace/events/task.h>\n#define CREATE_TRACE_POINTS\n\
         #include <trace/events/sched.h>\nint run(int x) { return trace_sched(x) + trace_task(x); }\n",
    );
    t.write(
        "drivers/foo/foo.c",
        "#define CREATE_TRACE_POINTS\n#include \"foo_trace.h\"\nint trace_foo(void) { return 0; }\n",
    );
}

#[test]
fn trace_event_headers_named_by_macros_ship_and_give_the_plain_objects() {
    let t = TempDir::new("sources-trace");
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    trace_events(&t);
    let jobs = [
        ("kernel/sched.c", "kernel/sched.o"),
        ("drivers/foo/foo.c", "drivers/foo/foo.o"),
    ];
    for debug in ["-g", "-g0"] {
        for (src, obj) in jobs {
            let args = [
                "-O2",
                debug,
                "-Iinclude",
                "-Idrivers/foo",
                "-Wp,-MMD,dep.d",
                "-c",
                src,
                "-o",
                obj,
            ];
            let names = [obj.to_string(), "dep.d".to_string()];
            let before = d.counter("sources");
            let out = plain_then_rcc(t.path(), &t.join(".rcc"), &hosts, "gcc", &args, &names);
            assert_eq!(
                d.counter("sources") - before,
                1,
                "{src}: {}",
                s(&out.stderr)
            );
        }
    }
    // The decoy was read by gcc, so it must have travelled.
    let sym = std::process::Command::new("nm")
        .arg(t.join("drivers/foo/foo.o"))
        .output()
        .unwrap();
    assert!(s(&sym.stdout).contains("foo_read_from_the_includers_directory"));
}

#[test]
fn assembler_through_the_preprocessor_ships_with_and_without_g() {
    let t = TempDir::new("sources-asm");
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    std::fs::create_dir_all(t.join("arch/inc")).unwrap();
    t.write("arch/inc/value.h", "#define VALUE 42 /* the answer */\n");
    t.write(
        "arch/answer.S",
        "#include <value.h>\n// a comment with an apostrophe: don't\n\t.text\n\
         \t.globl answer\nanswer:\n\tmovl $VALUE, %eax\n\tret\n",
    );
    for debug in ["-g", "-g0"] {
        let args = [
            debug,
            "-D__ASSEMBLY__",
            "-Iarch/inc",
            "-Wa,--noexecstack",
            "-Wp,-MMD,arch/.answer.o.d",
            "-c",
            "arch/answer.S",
            "-o",
            "arch/answer.o",
        ];
        let names = ["arch/answer.o".to_string(), "arch/.answer.o.d".to_string()];
        let before = d.counter("sources");
        let out = plain_then_rcc(t.path(), &t.join(".rcc"), &hosts, "gcc", &args, &names);
        assert_eq!(d.counter("sources") - before, 1, "{}", s(&out.stderr));
    }
}

#[test]
fn a_file_the_assembler_would_read_keeps_the_job_here_without_asking_the_box() {
    // The kernel's vdso-wrap.S (`.incbin` of the vDSO) and kernel/configs.c (`asm(".incbin
    // ...")`): on a box the assembler would read the box's file. rcc sees it in the scan and
    // preprocesses the job here; the box is never sent it.
    let t = TempDir::new("sources-incbin");
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    t.write("blob.bin", "\x01\x02\x03\x04");
    t.write("inc/wrap.h", "\t.section .rodata\n\t.incbin \"blob.bin\"\n");
    t.write(
        "wrap.S",
        "#include <wrap.h>\n\t.globl blob_end\nblob_end:\n",
    );
    let args = ["-Iinc", "-MMD", "-c", "wrap.S", "-o", "wrap.o"];
    let names = ["wrap.o".to_string(), "wrap.d".to_string()];
    let out = plain_then_rcc(t.path(), &t.join(".rcc"), &hosts, "gcc", &args, &names);
    let said = s(&out.stderr);
    assert!(
        said.contains("inc/wrap.h uses .incbin or .include"),
        "{said}"
    );
    assert_eq!(d.counter("rejected"), 0, "{said}");
    assert_eq!(d.counter("sources"), 0, "{said}");
}

#[test]
fn the_clocks_macros_are_expanded_here() {
    // `__TIMESTAMP__` is the modification time of the file it is expanded in: a box's copy
    // has its cache's time (or its spool's). And a TV box without a battery-backed clock may
    // have `__DATE__` wrong. Shipped or preprocessed here on directives alone (RCC_SHIP=0),
    // the box's compiler would expand them: such a job is compiled here.
    let t = TempDir::new("sources-clock");
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    t.write("stamp.h", "#define BUILT __TIMESTAMP__\n");
    t.write(
        "main.c",
        "#include \"stamp.h\"\nconst char *built(void) { return BUILT; }\n",
    );
    ok(std::process::Command::new("touch")
        .args(["-d", "2024-01-01 00:00:00"])
        .arg(t.join("main.c")));
    let names = ["main.o".to_string()];
    let args = ["-O2", "-c", "main.c"];
    for (ship, why) in [
        ("1", "stamp.h:1: uses __DATE__, __TIME__ or __TIMESTAMP__"),
        ("0", "the source uses __DATE__, __TIME__ or __TIMESTAMP__"),
    ] {
        assert!(gcc(t.path(), "gcc", &args).status.success());
        keep(t.path(), &names);
        let out = ok(rcc(t.path(), &t.join(".rcc"), &hosts)
            .env("RCC_VERBOSE", "1")
            .env("RCC_SHIP", ship)
            .arg("gcc")
            .args(args));
        same(t.path(), &names);
        let said = s(&out.stderr);
        assert!(said.contains(why), "{said}");
    }
    assert_eq!(d.counter("sources"), 0);
    assert_eq!(d.counter("done"), 0);
}

#[test]
fn the_builds_own_prefix_maps_give_the_plain_names() {
    // The kernel builds out of tree with `-fmacro-prefix-map=$(srctree)/=`, so that a header's
    // `__FILE__` (every BUG() and WARN() with CONFIG_DEBUG_BUGVERBOSE) reads
    // `fs/ext4/ext4.h`. On the box those paths start with the mirror's root, which rccd maps
    // away too: the build's own maps must still win where they match, as they do here.
    let t = TempDir::new("sources-maps");
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    t.write(
        "src/include/bug.h",
        "void warn_at(const char *file, int line);\n\
         #define WARN() warn_at(__FILE__, __LINE__)\n\
         static inline int check(int x) { if (x > 1) WARN(); return x; }\n",
    );
    t.write(
        "src/fs/a.c",
        "#include <bug.h>\nint a(int x) { if (!x) WARN(); return check(x); }\n",
    );
    std::fs::create_dir_all(t.join("build/fs")).unwrap();
    let (src, build) = (t.join("src"), t.join("build"));
    let (src, build) = (src.to_str().unwrap(), build.to_str().unwrap());
    let include = format!("-I{src}/include");
    let source = format!("{src}/fs/a.c");
    let names = ["fs/a.o".to_string(), "fs/a.d".to_string()];
    for maps in [
        vec![format!("-fmacro-prefix-map={src}/=")],
        vec![
            format!("-ffile-prefix-map={src}/="),
            format!("-fdebug-prefix-map={build}=."),
        ],
        vec![
            format!("-fdebug-prefix-map={src}/=/usr/src/"),
            format!("-fmacro-prefix-map={src}/include/=inc/"),
            format!("-fmacro-prefix-map={src}/=/usr/src/"),
        ],
    ] {
        let mut args: Vec<&str> = vec!["-O1", "-g", &include, "-MMD"];
        args.extend(maps.iter().map(String::as_str));
        args.extend(["-c", &source, "-o", "fs/a.o"]);
        plain_then_rcc(
            &t.join("build"),
            &t.join(".rcc"),
            &hosts,
            "gcc",
            &args,
            &names,
        );
    }
    assert_eq!(d.counter("sources"), 3);
}

#[test]
fn a_header_rewritten_with_the_same_size_and_time_is_sent_again() {
    let t = TempDir::new("sources-rewrite");
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    t.write("main.c", "#include \"v.h\"\nint v(void) { return V; }\n");
    let names = ["main.o".to_string()];
    for (text, want_v) in [("#define V 1\n", 1), ("#define V 2\n", 2)] {
        t.write("v.h", text);
        // Same size, same mtime to the second: only the content (and the ctime) differ.
        ok(std::process::Command::new("touch")
            .args(["-d", "2024-01-01 00:00:00"])
            .arg(t.join("v.h")));
        let args = ["-O2", "-c", "main.c"];
        plain_then_rcc(t.path(), &t.join(".rcc"), &hosts, "gcc", &args, &names);
        returns(&t.join("main.o"), want_v);
    }
    assert_eq!(d.counter("sources"), 2);
}

#[test]
fn a_header_removed_between_two_jobs_is_not_found_on_the_box() {
    // The box keeps a job's mirror for the next one: what the next job does not ship must
    // be gone from it, or the search would still find it there.
    let t = TempDir::new("sources-removed");
    let mut d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    t.write("main.c", "#include \"cfg.h\"\nint v(void) { return V; }\n");
    t.write("inc1/cfg.h", "#define V 1\n");
    t.write("inc2/cfg.h", "#define V 2\n");
    let names = ["main.o".to_string()];
    let args = ["-O2", "-Iinc1", "-Iinc2", "-c", "main.c"];
    for want_v in [1, 2] {
        plain_then_rcc(t.path(), &t.join(".rcc"), &hosts, "gcc", &args, &names);
        returns(&t.join("main.o"), want_v);
        if want_v == 1 {
            std::fs::remove_file(t.join("inc1/cfg.h")).unwrap();
        }
    }
    assert_eq!(d.counter("sources"), 2);
    // One mirror served both jobs, and goes with the daemon.
    assert_eq!(d.mirrors().len(), 1, "{:?}", d.mirrors());
    d.stop();
    assert!(d.mirrors().is_empty(), "{:?}", d.mirrors());
}

#[test]
fn computed_includes_and_has_include_never_give_a_wrong_object() {
    let t = TempDir::new("sources-computed");
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    t.write("a.h", "#define A 7\n");
    t.write("b.h", "#define A 9\n");
    // A macro names the header: its every definition is followed, and the one the
    // preprocessor takes is shipped.
    t.write(
        "computed.c",
        "#define PICK \"a.h\"\n#undef PICK\n#define PICK \"b.h\"\n#include PICK\n\
         int a(void) { return A; }\n",
    );
    // A name made from where it is used cannot be known without preprocessing.
    t.write(
        "placed.c",
        "#define SELF __FILE__\n#if 0\n#include SELF\n#endif\n#include \"a.h\"\n\
         int a(void) { return A; }\n",
    );
    // A computed include in code that is never compiled, whose macro nothing defines.
    t.write(
        "dead.c",
        "#if defined(USER_H)\n#include USER_H\n#endif\n#include \"a.h\"\nint a(void) { return A; }\n",
    );
    t.write(
        "probe.c",
        "#if __has_include(\"b.h\")\n#include \"b.h\"\n#else\n#include \"a.h\"\n#endif\n\
         #if __has_include(<no_such_header.h>)\n#error wrong\n#endif\nint a(void) { return A; }\n",
    );
    // What the box's audit (gcc preprocessing directives only) cannot do: it refuses, and
    // the job is preprocessed at home.
    t.write(
        "counter.c",
        "#define PICK \"a.h\"\n#if __COUNTER__ == 0\n#include PICK\n#endif\n\
         int a(void) { return A; }\n",
    );
    // A name that may be absolute: the box would read its own file, so it is not asked.
    t.write(
        "absolute.c",
        "#define PICK \"a.h\"\n#ifdef FAR\n#undef PICK\n#define PICK \"/usr/include/stdio.h\"\n\
         #endif\n#include PICK\nint a(void) { return A; }\n",
    );
    for (file, shipped) in [
        ("computed.c", true),
        ("counter.c", true),
        ("absolute.c", false),
        ("placed.c", false),
        ("dead.c", true),
        ("probe.c", true),
    ] {
        let before = d.counter("sources");
        assert!(gcc(t.path(), "gcc", &["-O2", "-c", file, "-o", "want.o"])
            .status
            .success());
        let out = ok(rcc(t.path(), &t.join(".rcc"), &hosts)
            .env("RCC_VERBOSE", "1")
            .args(["gcc", "-O2", "-c", file, "-o", "got.o"]));
        assert!(read(t.join("got.o")) == read(t.join("want.o")), "{file}");
        assert_eq!(
            d.counter("sources") - before,
            shipped as u64,
            "{file}: {}",
            s(&out.stderr)
        );
        if !shipped {
            let why = if file == "absolute.c" {
                "an absolute path"
            } else {
                "it uses __FILE__"
            };
            assert!(s(&out.stderr).contains(why), "{}", s(&out.stderr));
        }
    }
}

#[test]
fn a_header_probed_before_it_is_included_and_include_next_give_gccs_object() {
    let t = TempDir::new("sources-probe-next");
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    // `#if __has_include("p.h")` then `#include "p.h"`: what p.h includes is shipped too.
    t.write(
        "probed.c",
        "#if __has_include(\"p.h\")\n#include \"p.h\"\n#endif\nint a(void) { return V; }\n",
    );
    t.write(
        "p.h",
        "#if __has_include(\"q.h\")\n#include \"q.h\"\n#else\n#define V 1\n#endif\n",
    );
    t.write("q.h", "#define V 2\n");
    // gcc continues an `#include_next` from a header beside its includer in the quote chain
    // (`-iquote nq`), and takes one in the source itself as a plain `#include`.
    t.write("beside.c", "#include \"x.h\"\nint a(void) { return V; }\n");
    t.write("x.h", "#include_next \"y.h\"\n");
    t.write("nq/y.h", "#define V 3\n");
    t.write("nb/y.h", "#define V 4\n");
    t.write(
        "itself.c",
        "#include_next \"v.h\"\nint a(void) { return V; }\n",
    );
    t.write("v.h", "#define V 5\n");
    t.write("nb/v.h", "#define V 6\n");
    for (file, shipped, why) in [
        ("probed.c", true, ""),
        ("beside.c", false, "that the quote chain would answer"),
        ("itself.c", false, "in the source itself"),
    ] {
        let before = d.counter("sources");
        let args = [
            "-O2", "-iquote", "nq", "-I", "nb", "-c", file, "-o", "out.o",
        ];
        let out = plain_then_rcc(
            t.path(),
            &t.join(".rcc"),
            &hosts,
            "gcc",
            &args,
            &["out.o".into()],
        );
        assert_eq!(
            d.counter("sources") - before,
            shipped as u64,
            "{file}: {}",
            s(&out.stderr)
        );
        assert!(s(&out.stderr).contains(why), "{file}: {}", s(&out.stderr));
    }
}

#[test]
fn an_include_that_climbs_out_of_the_tree_is_preprocessed_at_home() {
    let t = TempDir::new("sources-climb");
    let d = Daemon::start(1, &[]);
    let hosts = format!("{}/1", d.addr());
    // From this directory, enough `..` reach `/`; a box must not follow them out of its
    // mirror, so it refuses, and the job is preprocessed here: still the right object.
    let up = "../".repeat(t.path().components().count() + 2);
    let climb = format!("#include \"{up}usr/include/stdio.h\"\nint x;\n");
    t.write("c.c", &climb);
    assert!(gcc(t.path(), "gcc", &["-O2", "-c", "c.c", "-o", "want.o"])
        .status
        .success());
    let out = ok(rcc(t.path(), &t.join(".rcc"), &hosts)
        .env("RCC_VERBOSE", "1")
        .args(["gcc", "-O2", "-c", "c.c", "-o", "got.o"]));
    assert!(read(t.join("got.o")) == read(t.join("want.o")));
    assert!(
        s(&out.stderr).contains("refused the sources"),
        "{}",
        s(&out.stderr)
    );
    assert_eq!(d.counter("sources"), 0);
    assert!(d.leftovers().is_empty(), "{:?}", d.leftovers());
}

#[test]
fn the_box_cache_keeps_its_bound_and_a_second_build_sends_far_less() {
    let t = TempDir::new("sources-cache");
    let d = Daemon::start(4, &["--cache-size", "2"]);
    let hosts = format!("{}/4,lzo", d.addr());
    let flags = "-O2 -std=gnu99 -DLUA_USE_LINUX";
    make_lua(
        t.path(),
        &format!("{RCC} gcc"),
        flags,
        Some((&t.join(".rcc"), &hosts)),
    );
    let first = d.counter("file_bytes_received");
    assert!(
        d.counter("cache_kib") <= 2048,
        "cache {} KiB over 2 MiB",
        d.counter("cache_kib")
    );
    std::fs::remove_dir_all(t.join("obj")).unwrap();
    std::fs::remove_file(t.join("liblua.a")).unwrap();
    make_lua(
        t.path(),
        &format!("{RCC} gcc"),
        flags,
        Some((&t.join(".rcc"), &hosts)),
    );
    let second = d.counter("file_bytes_received") - first;
    assert!(d.counter("cache_kib") <= 2048);
    eprintln!("sources bytes received by the box: first build {first}, second {second}");
    assert!(second * 4 < first, "first {first} B, second {second} B");
    assert_eq!(d.counter("sources"), 64);
}

#[test]
fn a_box_without_the_mode_gets_preprocessed_jobs() {
    let t = TempDir::new("sources-old");
    let d = Daemon::start(2, &["--no-sources"]);
    let hosts = format!("{}/2", d.addr());
    t.write(
        "m.c",
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    );
    for _ in 0..2 {
        let out = ok(rcc(t.path(), &t.join(".rcc"), &hosts)
            .env("RCC_VERBOSE", "1")
            .args(["gcc", "-O2", "-c", "m.c", "-o", "got.o"]));
        assert!(s(&out.stderr).contains("compiled"), "{}", s(&out.stderr));
    }
    assert!(gcc(t.path(), "gcc", &["-O2", "-c", "m.c", "-o", "want.o"])
        .status
        .success());
    assert!(read(t.join("got.o")) == read(t.join("want.o")));
    assert_eq!(d.counter("sources"), 0);
    assert_eq!(d.counter("done"), 2);
}
