//! rccd runs compilers only, for allowed peers only. A hand-written client sends what a
//! hostile peer would; rccd refuses each with a reason and keeps serving.

use crate::util::*;

use rcc::wire::protocol::{self, JobRequest, Limits, Message, Mode, RejectReason};
use std::time::Duration;

/// The daemon's first message for `frames`.
fn exchange(addr: &str, frames: &[u8]) -> Option<Message> {
    let all = exchange_all(addr, frames);
    protocol::decode(&all, &Limits::default())
        .ok()
        .flatten()
        .map(|(m, _)| m)
}

fn request(compiler: &str, args: &[&str]) -> JobRequest {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    job_request(compiler, &args)
}

fn refused(d: &Daemon, req: JobRequest, want: RejectReason) {
    let frame = protocol::encode(&Message::JobRequest(req.clone()), None);
    match exchange(&d.addr(), &frame) {
        Some(Message::Reject(r)) => {
            assert_eq!(
                r.reason, want,
                "{:?} {:?}: {}",
                req.compiler, req.args, r.text
            );
            assert!(!r.text.is_empty());
        }
        other => panic!(
            "{:?} {:?} was not refused: {other:?}",
            req.compiler, req.args
        ),
    }
}

#[test]
fn only_compilers_run() {
    let d = Daemon::start(2, &[]);
    for name in [
        "sh",
        "/bin/sh",
        "python3",
        "../../bin/sh",
        "gcc/../../bin/sh",
        "bash",
        "env",
    ] {
        refused(&d, request(name, &["-c"]), RejectReason::BadRequest);
    }
    // A compiler name the box does not have.
    refused(&d, request("clang-99", &["-c"]), RejectReason::NoCompiler);
    assert_eq!(d.counter("accepted"), 0);
}

/// The working directory reaches the compiler's argv (a prefix map): it is parsed as a path,
/// absolute and plain, for a preprocessed job too.
#[test]
fn a_working_directory_that_is_no_plain_path_is_refused() {
    let d = Daemon::start(2, &[]);
    for cwd in [
        &b"@args"[..],
        b"-o/x",
        b"tmp",
        b"/tmp/../etc",
        b"/tmp\0x",
        b"/tmp/\xff",
    ] {
        let mut req = request("gcc", &["-c"]);
        req.cwd = cwd.to_vec();
        refused(&d, req, RejectReason::BadRequest);
    }
}

#[test]
fn arguments_that_run_other_code_are_refused() {
    let d = Daemon::start(2, &[]);
    for args in [
        &["-c", "-fplugin=/tmp/evil.so"][..],
        &["-c", "-specs=/tmp/evil.specs"],
        &["-c", "-B/tmp/evil"],
        &["-c", "-B", "/tmp/evil"],
        &["-c", "@/tmp/args"],
        &["-c", "-wrapper", "/bin/sh,-c"],
        &["-c", "-o", "/etc/cron.d/x"],
        &["-c", "--sysroot=/"],
        &["-c", "-include", "/etc/shadow"],
        &["-O2"],
    ] {
        refused(&d, request("gcc", args), RejectReason::BadRequest);
    }
    // ... and the daemon still serves a good job.
    let t = TempDir::new("sec-good");
    t.write("a.c", "int a;\n");
    ok(rcc(t.path(), &t.join(".rcc"), &d.addr()).args(["gcc", "-c", "a.c"]));
    assert_eq!(d.counter("done"), 1);
}

#[test]
fn peers_outside_the_allow_list_are_closed_at_once() {
    // Listens on all of 127/8 but admits only 127.0.0.2.
    let d = Daemon::start(1, &["--allow", "127.0.0.2/32"]);
    let t = TempDir::new("allow");
    t.write("a.c", "int a;\n");
    // rcc connects from 127.0.0.1: refused, and the build still succeeds locally.
    let out = ok(rcc(t.path(), &t.join(".rcc"), &d.addr())
        .env("RCC_VERBOSE", "1")
        .args(["gcc", "-c", "a.c"]));
    assert!(t.join("a.o").exists());
    assert!(s(&out.stderr).contains("local"), "{}", s(&out.stderr));
    assert!(d.counter_from("127.0.0.2", "refused_peers") >= 1);
    assert_eq!(d.counter_from("127.0.0.2", "accepted"), 0);
    assert!(d.log_text().contains("not in --allow"));
}

/// A job that ships its sources, spoken frame by frame as a peer would: the hello, the
/// manifest of `files` (paths under `/w`, compiled from there), every file the box asks for,
/// the end. Returns the box's answer and every byte it sent.
fn ship(d: &Daemon, args: &[&str], files: &[(&str, &[u8])]) -> (Option<Message>, Vec<u8>) {
    use rcc::wire::protocol::{DepRequest, FileEntry, Manifest};
    let mut req = request("gcc", args);
    req.mode = Mode::Sources;
    req.cwd = b"/w".to_vec();
    let manifest = Manifest {
        source: "a.c".into(),
        paths: vec![],
        deps: Some(DepRequest {
            user_only: true,
            mt: vec![],
            mq: vec!["a.o".into()],
            phony: false,
        }),
        files: files
            .iter()
            .map(|(p, data)| FileEntry {
                path: format!("/w/{p}"),
                size: data.len() as u64,
                hash: rcc::sha256::digest(data),
            })
            .collect(),
    };
    let mut p = Peer::connect(&d.addr(), 30);
    let next = |p: &mut Peer| match p.next() {
        Ok(m) => Some(m),
        Err(Ended::Garbage(e)) => panic!("the daemon sent garbage: {e}"),
        Err(_) => None,
    };
    p.send(&Message::JobRequest(req));
    match next(&mut p) {
        Some(Message::Accept(_)) => {}
        other => panic!("not accepted: {other:?}\n{}", d.log_text()),
    }
    p.send(&Message::Manifest(manifest));
    let need = match next(&mut p) {
        Some(Message::Need(v)) => v,
        other => return (other, p.got),
    };
    for i in need {
        p.send(&Message::Blob(i, files[i as usize].1.to_vec()));
    }
    p.send(&Message::InputEnd);
    let answer = next(&mut p);
    (answer, p.got)
}

/// What a `Reject` says, or a panic naming what came instead.
fn rejected(answer: Option<Message>) -> String {
    match answer {
        Some(Message::Reject(r)) => {
            // The client compiles a job the box refused as a bad request from text it
            // preprocesses itself.
            assert_eq!(r.reason, RejectReason::BadRequest, "{}", r.text);
            r.text
        }
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn an_include_a_macro_names_compiles_in_the_mirror_and_nothing_outside_it_comes_back() {
    let d = Daemon::start(1, &[]);
    // (a) The macro names a shipped header: preprocessed to check that, then compiled; what
    // gcc says and records is what a plain compile says and records (no `-H` report in its
    // words, no `-H` among the options `-g` keeps in the object).
    let a: &[u8] = b"#define PICK \"inside.h\"\n#include PICK\n#warning kept\nint x = INSIDE;\n";
    let inside: &[u8] = b"#define INSIDE 1\n";
    match ship(
        &d,
        &["-O2", "-g", "-c"],
        &[("a.c", a), ("inside.h", inside)],
    )
    .0
    {
        Some(Message::Done(done)) => {
            let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
            assert_eq!(done.exit, protocol::Exit::Code(0), "{stderr}");
            assert!(stderr.contains("#warning kept"), "{stderr}");
            assert!(!stderr.lines().any(|l| l.starts_with('.')), "{stderr}");
            assert!(!stderr.contains("include guards"), "{stderr}");
            let object = &done.outputs.iter().find(|(n, _)| n == "o").unwrap().1;
            assert!(object.starts_with(b"\x7fELF"));
            assert!(object.windows(4).any(|w| w == b" -g "));
            assert!(!object.windows(4).any(|w| w == b" -H "));
            let deps = &done.outputs.iter().find(|(n, _)| n == "d").unwrap().1;
            assert_eq!(s(deps), "a.o: a.c inside.h\n");
        }
        other => panic!("not compiled: {other:?}\n{}", d.log_text()),
    }
    assert_eq!(d.counter("done"), 1);

    // (b) and (c): names a macro makes for files of the box, by absolute path or by
    // climbing out of the mirror with `..`, as the kernel's trace headers make theirs. A
    // plain `#define P "/etc/passwd"` is refused at once; these only the preprocessor can
    // spell, so the box preprocesses them, sees where they lead, and compiles nothing.
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let first_line = passwd.split(|&b| b == b'\n').next().unwrap().to_vec();
    let stringify = "#define STR(x) #x\n#define XSTR(x) STR(x)\n";
    let absolute = format!("{stringify}#define P XSTR(/etc/passwd)\n#include P\n");
    let climbing = format!(
        "{stringify}#define UP {}etc\n#define TRACE_INCLUDE(f) XSTR(UP/f)\n\
         #include TRACE_INCLUDE(passwd)\n",
        "../".repeat(24)
    );
    // Valid C: its compile would succeed and carry the box's header in its object.
    let compiles =
        format!("{stringify}#define P XSTR(/usr/include/stdc-predef.h)\n#include P\nint y;\n");
    let option = format!("{stringify}#include Q\n");
    let mut replies = Vec::new();
    for (name, args, text, opened) in [
        ("an absolute name", &["-c"][..], &absolute, "/etc/passwd"),
        ("a climbing name", &["-c"], &climbing, "../etc/passwd"),
        (
            "a header that compiles",
            &["-c"],
            &compiles,
            "/usr/include/stdc-predef.h",
        ),
        // Defined by an option the box does not read as a definition.
        (
            "a --define-macro",
            &["-c", "--define-macro=Q=XSTR(/etc/passwd)"],
            &option,
            "/etc/passwd",
        ),
    ] {
        let before = d.log_text().len();
        let (answer, bytes) = ship(&d, args, &[("a.c", text.as_bytes())]);
        replies.push(rejected(answer));
        assert!(
            !bytes.windows(first_line.len()).any(|w| w == first_line),
            "{name}: a line of /etc/passwd came back"
        );
        let log = d.log_text()[before..].to_string();
        // Under Landlock the preprocessor cannot even open a file of the box outside the
        // toolchain (see the next test); without it, the audit sees it opened.
        let sandboxed = rcc::sys::landlock_abi().is_some();
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains("127.0.0.1")
                && l.contains(&format!("opened {}", opened.trim_start_matches("../")))
                    | l.contains(&format!("/{opened}")))
                || (sandboxed && log.contains("its preprocessing failed; not compiled")),
            "{name}: no warning naming the peer and {opened}:\n{log}"
        );
    }
    // A name that opens nothing is refused with the same words, so a peer cannot tell
    // which files exist on the box.
    let nothing = format!("{stringify}#define P XSTR(/no/such/file.h)\n#include P\n");
    replies.push(rejected(
        ship(&d, &["-c"], &[("a.c", nothing.as_bytes())]).0,
    ));
    assert!(replies.iter().all(|r| *r == replies[0]), "{replies:#?}");
    // The plain definition: refused before anything runs.
    let plain: &[u8] = b"#define P \"/etc/passwd\"\n#include P\n";
    let early = rejected(ship(&d, &["-c"], &[("a.c", plain)]).0);
    assert!(early.contains("defined as \"/etc/passwd\""), "{early}");

    // Nothing was counted as done, nothing is left, and the box serves the next job.
    assert_eq!(d.counter("done"), 1);
    assert_eq!(d.counter("rejected"), 6);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !d.leftovers().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.leftovers().is_empty(), "{:?}", d.leftovers());
    assert!(matches!(
        ship(&d, &["-c"], &[("a.c", a), ("inside.h", inside)]).0,
        Some(Message::Done(_))
    ));
    assert_eq!(d.counter("done"), 2);
}

/// What no text check can see (strings an assembler joins, escapes, macros that paste a
/// directive together) the sandbox stops: a compiler on the box reads only the system's
/// programs, its toolchain and its own job's files (Landlock; the daemon says at start when
/// the kernel lacks it, and then this test has nothing to check).
#[test]
fn a_compile_cannot_read_a_file_outside_its_job() {
    if rcc::sys::landlock_abi().is_none() {
        eprintln!("no Landlock on this kernel: nothing to test");
        return;
    }
    let t = TempDir::new("sandbox");
    let secret = t.write("secret.txt", "the box's secret 8d1f\n");
    let d = Daemon::start(1, &[]);
    assert!(
        d.log_text().contains("Landlock sandbox"),
        "{}",
        d.log_text()
    );
    let path = secret.display().to_string();
    let (dir, name) = path.rsplit_once('/').unwrap();
    // `.incbin` split in two strings and its name in octal escapes and a macro: each part
    // alone is harmless text.
    let octal: String = name.bytes().map(|b| format!("\\{b:o}")).collect();
    let evil = format!("#define IN \".inc\"\nasm(IN \"bin \\\"{dir}/{octal}\\\"\");\nint x;\n");
    // Preprocessed text has its macros expanded already.
    let expanded = evil
        .replace("#define IN \".inc\"\n", "")
        .replace("IN ", "\".inc\" ");
    for (mode, answer) in [
        ("preprocessed", {
            let mut req = request("gcc", &["-c"]);
            req.compress = false;
            let frames = [
                protocol::encode(&Message::JobRequest(req), None),
                protocol::encode(&Message::Input(expanded.as_bytes().to_vec()), None),
                protocol::encode(&Message::InputEnd, None),
            ]
            .concat();
            exchange_all(&d.addr(), &frames)
        }),
        ("shipped", ship(&d, &["-c"], &[("a.c", evil.as_bytes())]).1),
    ] {
        assert!(
            !answer.windows(4).any(|w| w == b"8d1f"),
            "{mode}: the secret came back"
        );
        assert!(!answer.is_empty(), "{mode}: no answer");
    }
    // And a plain job still compiles.
    assert!(matches!(
        ship(&d, &["-c"], &[("a.c", b"int ok;\n")]).0,
        Some(Message::Done(done)) if done.exit == protocol::Exit::Code(0)
    ));
}

/// Every byte the daemon sends for `frames`, until it closes or goes quiet.
fn exchange_all(addr: &str, frames: &[u8]) -> Vec<u8> {
    let mut p = Peer::connect(addr, 20);
    p.write(frames).unwrap();
    // Bounded by the daemon's reply and the read timeout.
    while let Ok(m) = p.frame() {
        if matches!(m, Message::Done(_) | Message::Reject(_)) {
            break;
        }
    }
    p.got
}

/// Each value-less `-f`, `-m` and `-W` option gcc lists in its own help that a box's parser
/// takes (`box_args`) compiles a C file to its object and nothing else: no file appears
/// beside the source and the object, nor in TMPDIR, and nothing is printed instead (gcc
/// reads `-fhelp` as `--help`). (The parser lets no value hold a `/`,
/// so what such an option could write elsewhere it would have to name without one.) Fails
/// if gcc gains a file-writing option the parser does not know to refuse.
#[test]
fn every_option_gcc_knows_that_a_box_takes_writes_only_the_object() {
    use rcc::rules::box_args::BoxArgs;
    let help = std::process::Command::new("gcc")
        .args([
            "--help=common",
            "--help=optimizers",
            "--help=warnings",
            "--help=c",
            "--help=c++",
            "--help=target",
        ])
        .output()
        .unwrap();
    let mut options: Vec<String> = s(&help.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("  -"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|o| o.starts_with(['f', 'm', 'W']) && !o.contains(['=', '<', '[']))
        .map(|o| format!("-{o}"))
        .collect();
    options.sort();
    options.dedup();
    let taken: Vec<&String> = options
        .iter()
        .filter(|o| BoxArgs::parse(&[b"-c".to_vec(), o.as_bytes().to_vec()]).is_ok())
        .collect();
    assert!(
        taken.len() > 500,
        "only {} of gcc's {} options are taken: is gcc's help still read right?",
        taken.len(),
        options.len()
    );
    let dir = TempDir::new("every-option");
    dir.write("x.c", "int f(int a) { return a * 2; }\n");
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut wrote = Vec::new();
    for o in &taken {
        let out = std::process::Command::new("gcc")
            .args(["-c", "x.c", "-o", "x.o", o.as_str()])
            .current_dir(dir.path())
            .env("TMPDIR", &tmp)
            .stderr(std::process::Stdio::null())
            .output()
            .unwrap();
        if !out.stdout.is_empty() {
            wrote.push(format!(
                "{o} printed {:?}",
                s(&out.stdout[..out.stdout.len().min(40)])
            ));
        }
        for e in std::fs::read_dir(dir.path())
            .unwrap()
            .chain(std::fs::read_dir(&tmp).unwrap())
        {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if !matches!(name.as_str(), "x.c" | "x.o" | "tmp") {
                wrote.push(format!("{o} wrote {name}"));
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    assert!(wrote.is_empty(), "{wrote:#?}");
}

/// Without Landlock, gcc runs its programs through `rccd --as-guard`: an `.incbin` the C
/// text hides (two strings the compiler joins) is caught in the assembler's own input and
/// the file is not read, while an ordinary compile gives exactly gcc's object.
#[test]
fn the_assembler_guard_sees_what_the_assembler_would_read() {
    let dir = TempDir::new("as-guard");
    let secret = dir.write("secret.txt", "GUARD_SECRET_MARKER\n");
    let wrapper = format!("{},--as-guard", env!("CARGO_BIN_EXE_rccd"));
    dir.write("ok.c", "int f(int a) { return a * 3; }\nint g;\n");
    dir.write(
        "hidden.c",
        &format!(
            "asm(\".inc\" \"bin \\\"{}\\\"\");\nint x;\n",
            secret.display()
        ),
    );
    let gcc = |args: &[&str]| {
        std::process::Command::new("gcc")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    // Plain gcc reads the secret into the object: the case is real.
    assert!(gcc(&["-c", "hidden.c", "-o", "plain.o"]).status.success());
    assert!(s(&read(dir.join("plain.o"))).contains("GUARD_SECRET_MARKER"));
    let out = gcc(&["-wrapper", &wrapper, "-c", "hidden.c", "-o", "guarded.o"]);
    assert!(!out.status.success());
    assert!(
        s(&out.stderr).contains(rcc::daemon::as_guard::REFUSAL),
        "{}",
        s(&out.stderr)
    );
    assert!(!dir.join("guarded.o").exists());
    // With `-pipe` gcc runs the assembler past the wrapper, reading the pipe: the box
    // leaves `-pipe` out whenever it uses the guard.
    let out = gcc(&[
        "-wrapper", &wrapper, "-pipe", "-c", "hidden.c", "-o", "piped.o",
    ]);
    assert!(
        s(&read(dir.join("piped.o"))).contains("GUARD_SECRET_MARKER"),
        "{out:?}"
    );
    dir.write("ok.S", "#define V 42\n\t.text\n\t.globl v\nv:\n\t.long V\n");
    for (args, source, name) in [
        (&["-O2", "-g"][..], "ok.c", "a"),
        (&["-O0"][..], "ok.c", "b"),
        // gcc gives the assembler each include directory apart (`-I DIR`), and each prefix
        // map (`--debug-prefix-map OLD=NEW`, for a `.S`).
        (&["-O2", "-I", "."][..], "ok.c", "c"),
        (&["-g", "-fdebug-prefix-map=/a=b"][..], "ok.S", "d"),
    ] {
        let mut plain = args.to_vec();
        let o1 = format!("{name}1.o");
        plain.extend_from_slice(&["-c", source, "-o", &o1]);
        assert!(gcc(&plain).status.success());
        let o2 = format!("{name}2.o");
        let mut guarded = vec!["-wrapper", &wrapper];
        guarded.extend_from_slice(args);
        guarded.extend_from_slice(&["-c", source, "-o", &o2]);
        let out = gcc(&guarded);
        assert!(out.status.success(), "{}", s(&out.stderr));
        assert_eq!(read(dir.join(&o1)), read(dir.join(&o2)), "{args:?}");
    }
}
