//! rccd runs compilers only, for allowed peers only. A hand-written client sends what a
//! hostile peer would; rccd refuses each with a reason and keeps serving.

mod util;
use util::*;

use rcc::protocol::{self, JobRequest, Limits, Message, Mode, RejectReason};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn exchange(addr: &str, frames: &[u8]) -> Option<Message> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(frames).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some((m, _))) = protocol::decode(&buf, &Limits::default()) {
            return Some(m);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn request(compiler: &str, args: &[&str]) -> JobRequest {
    let identity = rcc::compiler::probe_identity(std::path::Path::new("/usr/bin/gcc")).unwrap();
    JobRequest {
        mode: Mode::Preprocessed,
        compress: false,
        compiler: compiler.into(),
        identity,
        args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        input_ext: "i".into(),
        output_ext: "o".into(),
        cwd: b"/tmp".to_vec(),
        label: "evil.c".into(),
        locale: vec![],
    }
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
