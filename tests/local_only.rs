//! What rcc deliberately runs on the master: every such command gives exactly gcc's result
//! and the box never sees it (its counters do not move).

use crate::util::*;

const SRC: &str = "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n";

/// Runs `args` with plain gcc and through rcc in the same dir; compares exit status, stdout,
/// and the listed output files; checks the daemon accepted nothing.
fn goes_local(d: &Daemon, args: &[&str], outputs: &[&str]) {
    let t = TempDir::new("local");
    t.write("a.c", SRC);
    t.write("b.c", "int b(void) { return 2; }\n");
    t.write("a.s", "\t.text\n\t.globl f\nf:\n\tret\n");
    t.write("a.h", "int h(void);\n");
    t.write("opts.rsp", "-c a.c -o a.o\n");
    let plain = gcc(t.path(), "gcc", args);
    // `~name`: the file must be written, but gcc itself writes it differently each time
    // (coverage stamps), so only its existence is compared.
    let outputs: Vec<(&str, bool)> = outputs
        .iter()
        .map(|o| (o.trim_start_matches('~'), o.starts_with('~')))
        .collect();
    let want: Vec<Option<Vec<u8>>> = outputs
        .iter()
        .map(|(o, _)| {
            let p = t.join(o);
            let d = std::fs::read(&p).ok();
            let _ = std::fs::remove_file(&p);
            d
        })
        .collect();
    let before = d.counter("accepted");
    let rcc_dir = t.join(".rcc");
    let out = run(rcc(t.path(), &rcc_dir, &d.addr()).arg("gcc").args(args));
    assert_eq!(out.status.code(), plain.status.code(), "status of {args:?}");
    assert_eq!(out.stdout, plain.stdout, "stdout of {args:?}");
    for ((o, varies), w) in outputs.iter().zip(&want) {
        let g = std::fs::read(t.join(o)).ok();
        if *varies {
            assert_eq!(g.is_some(), w.is_some(), "{o} for {args:?}");
            continue;
        }
        // Linked executables and archives embed nothing variable here; objects are
        // deterministic: all must match.
        assert!(g == *w, "{o} differs for {args:?}");
    }
    assert_eq!(
        d.counter("accepted"),
        before,
        "{args:?} was sent to the box"
    );
}

#[test]
fn commands_that_must_run_here_do() {
    let d = Daemon::start(2, &[]);
    let cases: &[(&[&str], &[&str])] = &[
        (&["a.c", "-o", "prog"], &["prog"]),       // compile and link
        (&["-E", "a.c"], &[]),                     // preprocess only
        (&["-M", "a.c"], &[]),                     // dependencies only
        (&["-MM", "-c", "a.c"], &[]),              // -MM implies -E
        (&["-c", "a.c", "b.c"], &["a.o", "b.o"]),  // two sources
        (&["-c", "a.s", "-o", "as.o"], &["as.o"]), // plain assembler
        (&["-c", "a.c", "-o", "-"], &[]),          // object to stdout
        (&["-c", "-save-temps", "a.c"], &["a.o", "a.i", "a.s"]), // temps next to the object
        (&["@opts.rsp"], &["a.o"]),                // response file
        (&["-c", "-march=native", "a.c", "-o", "n.o"], &["n.o"]), // depends on this CPU
        (&["-c", "-mtune=native", "a.c", "-o", "n.o"], &["n.o"]),
        (
            &["-c", "--coverage", "a.c", "-o", "cov.o"],
            &["~cov.o", "~cov.gcno"],
        ),
        (&["-c", "-fprofile-generate", "a.c", "-o", "p.o"], &["~p.o"]),
        (
            &["-c", "-ftest-coverage", "a.c", "-o", "t.o"],
            &["~t.o", "~t.gcno"],
        ),
        (
            &["-c", "-frecord-gcc-switches", "a.c", "-o", "r.o"],
            &["r.o"],
        ),
        (
            &["-c", "-gsplit-dwarf", "a.c", "-o", "s.o"],
            &["s.o", "s.dwo"],
        ),
        (
            &["-c", "-fstack-usage", "a.c", "-o", "su.o"],
            &["su.o", "su.su"],
        ),
        (
            &["-c", "-fdump-tree-original", "a.c", "-o", "du.o"],
            &["du.o"],
        ),
        (
            &["-c", "-Wa,-adhln=listing.txt", "a.c", "-o", "l.o"],
            &["l.o", "listing.txt"],
        ),
        (
            &["-c", "-aux-info", "aux.txt", "a.c", "-o", "ax.o"],
            &["ax.o", "aux.txt"],
        ),
        (
            &["-c", "-x", "c-header", "a.h", "-o", "a.h.gch"],
            &["~a.h.gch"], // a PCH records its own build
        ),
        (&["-c", "unknown.xyz"], &[]), // unknown extension
        // A build's option probe (the kernel's cc-option): nothing to send.
        (
            &[
                "-Werror",
                "-fno-PIE",
                "-c",
                "-x",
                "c",
                "/dev/null",
                "-o",
                "probe.o",
            ],
            &["probe.o"],
        ),
        (&["-c", "missing.c", "-o", "m.o"], &[]), // gcc says what is missing
        (&["--version"], &[]),
        (&["-dumpmachine"], &[]),
        (&["-c", "-fsyntax-only", "a.c"], &[]),
    ];
    for (args, outputs) in cases {
        goes_local(&d, args, outputs);
    }
}

#[test]
fn stdin_source_goes_local() {
    let d = Daemon::start(1, &[]);
    let t = TempDir::new("stdin");
    let rcc_dir = t.join(".rcc");
    let mut c = rcc(t.path(), &rcc_dir, &d.addr());
    c.args(["gcc", "-x", "c", "-c", "-", "-o", "stdin.o"]);
    c.stdin(std::process::Stdio::piped());
    c.stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SRC.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(t.join("stdin.o").exists());
    assert_eq!(d.counter("accepted"), 0);
}
