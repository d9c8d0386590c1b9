//! Objects made through rcc and a box are the objects plain gcc makes: byte for byte without
//! `-g`, code and data identical with `-g` (and no trace of the box's temp dir), dependency
//! files identical in every form, with and without compression.

use crate::util::*;

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

// ---- The names an object records: FILE symbol, DW_AT_name, DW_AT_comp_dir, __FILE__ ----

/// A preprocessed source with no line marker (the box writes it as `input.i`).
const HELLO_I: &str = "int main(void){return 0;}\n";
/// What `gcc -E orig.c` writes (no working directory line: made without `-g`).
const MARKED_I: &str = "# 0 \"orig.c\"\n# 0 \"<built-in>\"\n# 0 \"<command-line>\"\n\
                        # 1 \"orig.c\"\nint main(void){return 0;}\n";
/// A line marker further down only.
const LATE_MARKER_I: &str = "int y;\n# 5 \"other.c\"\nint main(void){return y;}\n";
const BOM_I: &str = "\u{feff}int main(void){return 0;}\n";
const PLAIN_II: &str = "struct A { int f() { return 1; } };\nint g() { A a; return a.f(); }\n";
/// The names the preprocessor writes into the object. (A macro before code on its line would
/// move that code's columns in debug info made from preprocessed text: see `args`.)
const NAMES_H: &str = "static const char *header_file = __FILE__;\n\
                       static const int header_at = __LINE__;\n\
                       static int header_line(void) { return header_at + (header_file != 0); }\n";
const NAMES_C: &str = "#include \"names.h\"\nconst char *file = __FILE__;\n\
                       const char *base = __BASE_FILE__;\nint main(void) { return header_line(); }\n";
const FILE_ONLY_C: &str = "#include <names.h>\nconst char *file = __FILE__;\n\
                           int main(void) { return header_line(); }\n";
const NAMES_CC: &str = "#include <names.h>\nstruct A { int f() { return header_line(); } };\n\
                        int g() { A a; return a.f(); }\nconst char *where = __FILE__;\n";

/// Names gcc writes escaped in a line marker.
const WEIRD_I: &str = "sp ace/we\"ird\\back é.i";
const WEIRD_C: &str = "sp ace/we\"ird\\back é.c";
const WEIRD_DIR: &str = "w\"e\\ird é";
const WEIRD_DIR_I: &str = "w\"e\\ird é/hello.i";

/// One compile whose object must be plain gcc's, byte for byte, made on the box.
struct Case {
    files: &'static [(&'static str, &'static str)],
    /// Where both compiles run, in the project.
    cwd: &'static str,
    /// The command, split at blanks, with `{dir}` for the project's absolute path and
    /// `{weird.i}`, `{weird.c}` for `WEIRD_I` and `WEIRD_C`. The source follows `-c`; the
    /// object is the `-o` value or gcc's default.
    command: &'static str,
    /// `RCC_SHIP=0`: preprocessed here, not shipped.
    preprocessed_here: bool,
    /// Run through a symbolic link to `cwd`, named by `PWD` (gcc records that path).
    through_link: bool,
    /// Compiled here, not on the box, for a reason `RCC_VERBOSE=1` shows with these words.
    here_because: Option<&'static str>,
}

const fn case(
    files: &'static [(&'static str, &'static str)],
    cwd: &'static str,
    command: &'static str,
) -> Case {
    Case {
        files,
        cwd,
        command,
        preprocessed_here: false,
        through_link: false,
        here_because: None,
    }
}

impl Case {
    const fn here(self) -> Case {
        Case {
            preprocessed_here: true,
            ..self
        }
    }
    const fn linked(self) -> Case {
        Case {
            through_link: true,
            ..self
        }
    }
    const fn local(self, why: &'static str) -> Case {
        Case {
            here_because: Some(why),
            ..self
        }
    }

    /// The compiler, its arguments and the object, for a project in `dir`.
    fn argv(&self, dir: &str) -> (String, Vec<String>, String) {
        let mut words = self.command.split_whitespace().map(|w| {
            w.replace("{dir}", dir)
                .replace("{weird.i}", WEIRD_I)
                .replace("{weird.c}", WEIRD_C)
        });
        let compiler = words.next().unwrap();
        let args: Vec<String> = words.collect();
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag)?;
            args.get(i + 1).cloned()
        };
        let output = after("-o").unwrap_or_else(|| {
            let source = after("-c").unwrap();
            let base = Path::new(&source).file_stem().unwrap().to_str().unwrap();
            format!("{base}.o")
        });
        (compiler, args, output)
    }
}

/// The names in an object, to say what differs: its FILE symbols and DWARF names.
fn names_in(obj: &[u8], dir: &Path) -> String {
    let p = dir.join("names-of.o");
    std::fs::write(&p, obj).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("readelf")
            .args(args)
            .arg(&p)
            .output()
            .unwrap();
        s(&out.stdout)
    };
    let mut names: Vec<String> = run(&["-s"])
        .lines()
        .filter(|l| l.contains(" FILE "))
        .map(str::to_string)
        .collect();
    names.extend(
        run(&["--debug-dump=info"])
            .lines()
            .filter(|l| l.contains("DW_AT_name") || l.contains("DW_AT_comp_dir"))
            .take(4)
            .map(str::to_string),
    );
    let _ = std::fs::remove_file(&p);
    names.join("\n")
}

fn run_case(d: &Daemon, n: usize, c: &Case) {
    let t = TempDir::new("names");
    for (name, text) in c.files {
        t.write(name, text);
    }
    let (compiler, args, output) = c.argv(t.path().to_str().unwrap());
    // As a shell names it: no `/.` at the end.
    let real = match c.cwd {
        "." => t.path().to_path_buf(),
        sub => t.join(sub),
    };
    std::fs::create_dir_all(&real).unwrap();
    let cwd = if c.through_link {
        let link = t.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        link
    } else {
        real
    };
    let pwd = cwd.to_str().unwrap();
    let what = format!("case {n}: {compiler} {args:?} in {pwd}");

    let mut plain = std::process::Command::new(&compiler);
    plain.current_dir(&cwd).env("PWD", pwd).args(&args);
    let plain = run(&mut plain);
    assert!(plain.status.success(), "{what}: {}", s(&plain.stderr));
    let want = read(cwd.join(&output));
    std::fs::remove_file(cwd.join(&output)).unwrap();

    let before = d.counter("done");
    let mut cmd = rcc(&cwd, &t.join(".rcc"), &d.addr());
    cmd.env("PWD", pwd).arg(&compiler).args(&args);
    if c.preprocessed_here {
        cmd.env("RCC_SHIP", "0");
    }
    let out = ok(cmd.env("RCC_VERBOSE", "1"));
    match c.here_because {
        None => assert_eq!(
            d.counter("done"),
            before + 1,
            "{what}: not compiled on the box"
        ),
        Some(why) => {
            assert_eq!(d.counter("done"), before, "{what}: compiled on the box");
            assert!(s(&out.stderr).contains(why), "{what}: {}", s(&out.stderr));
        }
    }
    let got = read(cwd.join(&output));
    assert!(
        want == got,
        "{what}: the object differs from gcc's\ngcc's names:\n{}\nrcc's names:\n{}",
        names_in(&want, t.path()),
        names_in(&got, t.path())
    );
}

/// gcc records the source's name as the command line gives it and the directory it ran in;
/// the box compiles its own copy (`input.i`) or a mirror of the master's files, and must
/// record the master's names all the same.
#[test]
fn objects_record_the_masters_names() {
    let hello: &[(&str, &str)] = &[("hello.i", HELLO_I)];
    let marked = &[("m.i", MARKED_I)];
    let names = &[("src/names.c", NAMES_C), ("inc/names.h", NAMES_H)];
    let file_only = &[("src/file.c", FILE_ONLY_C), ("inc/names.h", NAMES_H)];
    let weird = &[
        (WEIRD_I, HELLO_I),
        (WEIRD_C, NAMES_C),
        ("sp ace/names.h", NAMES_H),
    ];
    let asm = &[("src/answer.S", ASM_SRC)];
    let cxx = &[("src/names.cc", NAMES_CC), ("inc/names.h", NAMES_H)];
    let in_weird_dir = &[
        (WEIRD_DIR_I, HELLO_I),
        ("src/names.c", NAMES_C),
        ("inc/names.h", NAMES_H),
    ];
    let cases = [
        // A user's preprocessed source, sent as it is.
        case(hello, ".", "gcc -c hello.i"),
        case(hello, ".", "gcc -g -c hello.i"),
        case(hello, ".", "gcc -O2 -g -c ./hello.i"),
        case(hello, ".", "gcc -g -c {dir}/hello.i -o h.o"),
        case(hello, "sub", "gcc -g -c ../hello.i"),
        case(hello, ".", "gcc -g -c hello.i").linked(),
        case(weird, ".", "gcc -g -c {weird.i}"),
        case(&[("q??=x.i", HELLO_I)], ".", "gcc -std=c99 -c q??=x.i"),
        case(marked, ".", "gcc -g -c m.i"),
        case(marked, ".", "gcc -g -c m.i").linked(),
        case(&[("late.i", LATE_MARKER_I)], ".", "gcc -g -c late.i"),
        case(&[("bom.i", BOM_I)], ".", "gcc -g -c bom.i"),
        case(&[("f.k", HELLO_I)], ".", "gcc -x cpp-output -c f.k"),
        case(&[("a.ii", PLAIN_II)], ".", "g++ -g -c a.ii"),
        case(in_weird_dir, WEIRD_DIR, "gcc -g -c hello.i"),
        // Sources the box preprocesses in a mirror of the master's paths.
        case(names, ".", "gcc -c src/names.c -Iinc"),
        case(names, ".", "gcc -g -c {dir}/src/names.c -I{dir}/inc"),
        case(names, "src", "gcc -c ./names.c -I../inc"),
        case(names, "src", "gcc -g -c ../src/names.c -I{dir}/inc"),
        case(weird, ".", "gcc -g -c {weird.c}"),
        case(asm, ".", "gcc -g -c src/answer.S"),
        case(asm, ".", "gcc -c {dir}/src/answer.S"),
        case(cxx, ".", "g++ -g -c src/names.cc -I{dir}/inc"),
        // Preprocessed here: fully with -g, on directives alone without.
        case(names, ".", "gcc -g -c src/names.c -Iinc").here(),
        case(names, "src", "gcc -g -c {dir}/src/names.c -I../inc").here(),
        case(file_only, "src", "gcc -c ../src/file.c -I{dir}/inc").here(),
        case(file_only, ".", "gcc -c ./src/file.c -Iinc").here(),
        case(weird, ".", "gcc -g -c {weird.c}").here(),
        case(asm, ".", "gcc -g -c {dir}/src/answer.S").here(),
        case(cxx, ".", "g++ -c src/names.cc -Iinc").here(),
        // gcc -E -g writes the directory escaped, and gcc reads it back as spelled.
        case(in_weird_dir, WEIRD_DIR, "gcc -g -c ../src/names.c -I../inc").here(),
    ];
    let d = Daemon::start(2, &[]);
    for (n, c) in cases.iter().enumerate() {
        run_case(&d, n, c);
    }
}

/// What a box would name wrongly is compiled here, and is gcc's own object.
#[test]
fn what_a_box_would_name_wrongly_is_compiled_here() {
    let names = &[("src/names.c", NAMES_C), ("inc/names.h", NAMES_H)];
    let asm: &[(&str, &str)] = &[("a.s", "\t.text\n\t.globl f\nf:\n\tret\n")];
    let cases = [
        // On directives alone a box expands `__BASE_FILE__` to its own file's name.
        case(names, ".", "gcc -c src/names.c -Iinc")
            .here()
            .local("__BASE_FILE__"),
        // gas records its input's name with -g: plain assembler is never sent.
        case(asm, ".", "gcc -g -c a.s").local("not a source rcc distributes"),
        // The object names its .dwo, which would stay on the box.
        case(names, ".", "gcc -gsplit-dwarf -c src/names.c -Iinc")
            .local("-gsplit-dwarf writes extra files"),
    ];
    let d = Daemon::start(2, &[]);
    for (n, c) in cases.iter().enumerate() {
        run_case(&d, n, c);
    }
}
