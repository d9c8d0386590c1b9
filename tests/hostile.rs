//! What a hostile or broken peer may send, as a table: each row goes over a real socket to
//! one real rccd, which must answer with a clear rejection or close cleanly, and keep serving
//! the next good request. At the end the daemon still compiles, holds no job dirs, and its
//! memory has not grown with the garbage.

use crate::util::*;

use rcc::wire::protocol::{self, FileEntry, Kind, Manifest, Message, Mode, RejectReason};
use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// What the daemon must do with a row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// A Reject frame with this reason (after an Accept, for rows that get that far).
    Reject(RejectReason),
    /// A Reject of any reason, or a close without a reply: both are clean.
    RejectOrClose,
    /// A status reply: bytes after the fields a decoder knows are ignored, so that a later
    /// minor revision can append fields (see src/wire/protocol.rs).
    Status,
}

/// How the daemon ended the exchange.
#[derive(Debug)]
enum Got {
    Reject(RejectReason, String),
    Closed,
    Other(Message),
    /// Nothing within the deadline: the daemon hung on this peer.
    Hung,
}

/// Sends `bytes`, says "no more" (so a truncated frame meets end of file instead of the
/// idle timeout), and reads until the daemon replies or closes. Accept and Need frames are
/// skipped: some rows are bad only after the job was accepted or its manifest read.
fn send(addr: &str, bytes: &[u8]) -> Got {
    let mut p = Peer::connect(addr, 10);
    // The daemon may close before reading it all; a failed write is a clean end too.
    if p.write(bytes).is_err() {
        return Got::Closed;
    }
    let _ = p.s.shutdown(Shutdown::Write);
    loop {
        match p.frame() {
            Ok(Message::Accept(_) | Message::Need(_)) => {}
            Ok(Message::Reject(r)) => return Got::Reject(r.reason, r.text),
            Ok(m) => return Got::Other(m),
            Err(Ended::Closed) => return Got::Closed,
            Err(Ended::Garbage(e)) => panic!("the daemon sent garbage: {e}"),
            Err(Ended::Hung | Ended::Failed(_)) => return Got::Hung,
        }
    }
}

fn job(compiler: &str, args: &[&[u8]]) -> Vec<u8> {
    protocol::encode(&Message::JobRequest(job_request(compiler, args)), None)
}

fn good_job() -> Vec<u8> {
    job("gcc", &[b"-O2", b"-c"])
}

/// A frame with a hand-made header.
fn frame(magic: &[u8; 3], version: u8, kind: u8, flags: u8, len: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(magic);
    f.extend_from_slice(&[version, kind, flags, 0, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn input(piece: &[u8]) -> Vec<u8> {
    protocol::encode(&Message::Input(piece.to_vec()), None)
}

fn table() -> Vec<(String, Vec<u8>, Want)> {
    use RejectReason::BadRequest;
    let v = protocol::VERSION;
    let good = good_job();
    let body = protocol::body(&Message::JobRequest(job_request("gcc", &[b"-c"])));
    let zeros = vec![0u8; 4 << 20];
    let bomb = rcc::wire::compress::deflate(&zeros, 9);
    let end = protocol::encode(&Message::InputEnd, None);
    let mut rows: Vec<(String, Vec<u8>, Want)> = vec![
        // Frames.
        (
            "wrong magic".into(),
            frame(b"DCC", v, 1, 0, 0, b""),
            Want::RejectOrClose,
        ),
        (
            "distcc's hello".into(),
            b"DIST00000001ARGC00000002".to_vec(),
            Want::RejectOrClose,
        ),
        (
            "an HTTP request".into(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Want::RejectOrClose,
        ),
        (
            "wrong version".into(),
            frame(b"RCC", v + 1, 1, 0, 0, b""),
            Want::Reject(BadRequest),
        ),
        (
            "version 0".into(),
            frame(b"RCC", 0, 2, 0, 0, b""),
            Want::Reject(BadRequest),
        ),
        (
            "unknown kind".into(),
            frame(b"RCC", v, 99, 0, 0, b""),
            Want::RejectOrClose,
        ),
        (
            "a reply kind as hello".into(),
            frame(b"RCC", v, Kind::Accept as u8, 0, 8, &[0; 8]),
            Want::RejectOrClose,
        ),
        (
            "unknown flag bits".into(),
            frame(b"RCC", v, 1, 0x80, body.len() as u32, &body),
            Want::RejectOrClose,
        ),
        (
            "reserved bytes set".into(),
            {
                let mut f = frame(b"RCC", v, 1, 0, body.len() as u32, &body);
                f[6] = 1;
                f
            },
            Want::RejectOrClose,
        ),
        (
            "job request of length 0".into(),
            frame(b"RCC", v, 1, 0, 0, b""),
            Want::Reject(BadRequest),
        ),
        (
            "length 2^32-1".into(),
            frame(b"RCC", v, 1, 0, u32::MAX, b"xx"),
            Want::RejectOrClose,
        ),
        (
            "input frame of length 2^32-1".into(),
            cat(&[
                &good,
                &frame(b"RCC", v, Kind::Input as u8, 0, u32::MAX, b"xx"),
            ]),
            Want::RejectOrClose,
        ),
        (
            "invalid deflate".into(),
            frame(b"RCC", v, 1, 1, 16, &[0xff; 16]),
            Want::RejectOrClose,
        ),
        (
            "deflate bomb as a job request".into(),
            frame(b"RCC", v, 1, 1, bomb.len() as u32, &bomb),
            Want::RejectOrClose,
        ),
        // Appended bytes are a later revision's fields: the job is accepted and, the input
        // never coming, dropped at end of file.
        (
            "a body with bytes after its fields".into(),
            {
                let mut b = body.clone();
                b.extend_from_slice(&[0xff; 7]);
                frame(b"RCC", v, 1, 0, b.len() as u32, &b)
            },
            Want::RejectOrClose,
        ),
        (
            "a field longer than the body".into(),
            {
                let mut b = body.clone();
                // The compiler name's length (after mode and compress bytes) claims 1 GiB.
                b[2..6].copy_from_slice(&(1u32 << 30).to_be_bytes());
                frame(b"RCC", v, 1, 0, b.len() as u32, &b)
            },
            Want::RejectOrClose,
        ),
        (
            "input before the job request".into(),
            input(b"int x;\n"),
            Want::RejectOrClose,
        ),
        (
            "input end before any input".into(),
            end.clone(),
            Want::RejectOrClose,
        ),
        (
            "a second job request instead of input".into(),
            cat(&[&good, &good]),
            Want::RejectOrClose,
        ),
        (
            "status request with a body".into(),
            frame(b"RCC", v, 2, 0, 4, b"abcd"),
            Want::Status,
        ),
        (
            "invalid deflate in an input piece".into(),
            cat(&[
                &good,
                &frame(b"RCC", v, Kind::Input as u8, 1, 16, &[0x55; 16]),
            ]),
            Want::RejectOrClose,
        ),
        (
            "an input piece that inflates past --max-body-mib".into(),
            {
                let big = vec![0u8; 3 << 20];
                let z = rcc::wire::compress::deflate(&big, 9);
                let piece = frame(b"RCC", v, Kind::Input as u8, 1, z.len() as u32, &z);
                cat(&[&good, &piece])
            },
            Want::RejectOrClose,
        ),
        (
            "input pieces adding up past --max-body-mib".into(),
            {
                let piece = input(&vec![b' '; 256 * 1024]);
                let mut f = good.clone();
                for _ in 0..13 {
                    f.extend_from_slice(&piece);
                }
                f.extend_from_slice(&end);
                f
            },
            Want::RejectOrClose,
        ),
        // Requests.
        (
            "unknown job mode".into(),
            {
                let mut b = body.clone();
                b[0] = 77;
                frame(b"RCC", v, 1, 0, b.len() as u32, &b)
            },
            Want::Reject(BadRequest),
        ),
        (
            "argument with a NUL byte".into(),
            job("gcc", &[b"-c", b"-DX=1\0-fplugin=/tmp/e.so"]),
            Want::Reject(BadRequest),
        ),
        (
            "argument that is not UTF-8".into(),
            job("gcc", &[b"-c", b"-DX=\xff\xfe"]),
            Want::Reject(BadRequest),
        ),
        (
            "10,000 arguments".into(),
            {
                let many: Vec<&[u8]> = std::iter::once(&b"-c"[..])
                    .chain(std::iter::repeat(&b"-O2"[..]).take(10_000))
                    .collect();
                job("gcc", &many)
            },
            Want::RejectOrClose,
        ),
        (
            "an argument of 100 KiB".into(),
            job("gcc", &[b"-c", &cat(&[b"-DX=", &vec![b'a'; 100 * 1024]])]),
            Want::RejectOrClose,
        ),
        (
            "compiler name with a slash".into(),
            job("/bin/sh", &[b"-c"]),
            Want::Reject(BadRequest),
        ),
        (
            "compiler name with ..".into(),
            job("../../bin/sh", &[b"-c"]),
            Want::Reject(BadRequest),
        ),
        (
            "compiler name that is not a compiler".into(),
            job("python3", &[b"-c"]),
            Want::Reject(BadRequest),
        ),
        (
            "empty compiler name".into(),
            job("", &[b"-c"]),
            Want::Reject(BadRequest),
        ),
        (
            "a compiler the box lacks".into(),
            job("clang-99", &[b"-c"]),
            Want::Reject(RejectReason::NoCompiler),
        ),
        (
            "another compiler identity".into(),
            {
                let mut r = job_request("gcc", &[b"-c"]);
                r.identity = "gcc (Other) 1.0 x86_64-linux-gnu".into();
                protocol::encode(&Message::JobRequest(r), None)
            },
            Want::Reject(RejectReason::CompilerMismatch),
        ),
        (
            "an input extension with a slash".into(),
            {
                let mut r = job_request("gcc", &[b"-c"]);
                r.input_ext = "/../../etc/x".into();
                protocol::encode(&Message::JobRequest(r), None)
            },
            Want::Reject(BadRequest),
        ),
        (
            "an output extension with a slash".into(),
            {
                let mut r = job_request("gcc", &[b"-c"]);
                r.output_ext = "../o".into();
                protocol::encode(&Message::JobRequest(r), None)
            },
            Want::Reject(BadRequest),
        ),
        (
            "a locale variable that is not one".into(),
            {
                let mut r = job_request("gcc", &[b"-c"]);
                r.locale = vec![("LD_PRELOAD".into(), "/tmp/e.so".into())];
                protocol::encode(&Message::JobRequest(r), None)
            },
            Want::RejectOrClose,
        ),
    ];
    // Arguments that would run, load or read other code or files on the box.
    for args in [
        &[&b"-c"[..], b"-fplugin=/tmp/evil.so"][..],
        &[b"-c", b"-fplugin-arg-evil-x=1"],
        &[b"-c", b"-specs=/tmp/evil.specs"],
        &[b"-c", b"--specs", b"/tmp/evil.specs"],
        &[b"-c", b"-B/tmp/evil"],
        &[b"-c", b"-B", b"/tmp/evil"],
        &[b"-c", b"@/tmp/args"],
        &[b"-c", b"-wrapper", b"/bin/sh,-c"],
        &[b"-c", b"-o", b"/etc/cron.d/x"],
        &[b"-c", b"-o/etc/cron.d/x"],
        &[b"-c", b"--sysroot=/"],
        &[b"-c", b"-isysroot", b"/"],
        &[b"-c", b"-include", b"/etc/shadow"],
        &[b"-c", b"-imacros", b"/etc/shadow"],
        &[b"-c", b"-I/etc"],
        &[b"-c", b"-Xassembler", b"--defsym"],
        &[b"-c", b"-Wa,@/tmp/args"],
        &[b"-c", b"-fprofile-generate=/tmp"],
        &[b"-c", b"-save-temps=/tmp"],
        &[b"-c", b"-fdump-tree-all=/tmp/x"],
        &[b"-c", b"-MF", b"/etc/x.d"],
        &[b"-O2"],
        &[b"-E"],
        &[b"-c", b"x.c", b"y.c"],
    ] {
        let name = String::from_utf8_lossy(&args.join(&b' ')).into_owned();
        rows.push((
            format!("arguments {name}"),
            job("gcc", args),
            Want::Reject(BadRequest),
        ));
    }
    // Jobs that ship their sources: every path, file and include must stay in the box's
    // mirror of the master's files, and every file must have its hash.
    let mut sources_req = job_request("gcc", &[b"-O2", b"-c"]);
    sources_req.mode = Mode::Sources;
    sources_req.cwd = b"/w".to_vec();
    let hello = protocol::encode(&Message::JobRequest(sources_req), None);
    let file = |path: &str, data: &[u8]| FileEntry {
        path: path.into(),
        size: data.len() as u64,
        hash: rcc::sha256::digest(data),
    };
    let manifest = |source: &str, paths: &[(&str, &str)], files: Vec<FileEntry>| {
        protocol::encode(
            &Message::Manifest(Manifest {
                source: source.into(),
                paths: paths
                    .iter()
                    .map(|(o, p)| (o.to_string(), p.to_string()))
                    .collect(),
                deps: None,
                files,
            }),
            None,
        )
    };
    let blob = |i: u32, data: &[u8]| protocol::encode(&Message::Blob(i, data.to_vec()), None);
    let main_c: &[u8] = b"int main(void) { return 0; }\n";
    let sources_rows: Vec<(&str, Vec<u8>)> = vec![
        (
            "a source above the root",
            manifest("../../etc/passwd.c", &[], vec![]),
        ),
        ("a source that is not C", manifest("a.s", &[], vec![])),
        (
            "a search path above the root",
            manifest("a.c", &[("-I", "../../..")], vec![]),
        ),
        (
            "an absolute search path climbing out",
            manifest("a.c", &[("-isystem", "/usr/../../etc")], vec![]),
        ),
        (
            "a relative file path",
            manifest("a.c", &[], vec![file("w/a.c", main_c)]),
        ),
        (
            "a file path with ..",
            manifest("a.c", &[], vec![file("/w/../etc/passwd", main_c)]),
        ),
        (
            "a file path with //",
            manifest("a.c", &[], vec![file("/w//a.c", main_c)]),
        ),
        (
            "a blob that does not have its hash",
            cat(&[
                &manifest("a.c", &[], vec![file("/w/a.c", main_c)]),
                &blob(0, b"int evil;\n"),
            ]),
        ),
        (
            "a blob not asked for",
            cat(&[
                &manifest("a.c", &[], vec![file("/w/a.c", main_c)]),
                &blob(7, main_c),
            ]),
        ),
        (
            "the same blob twice",
            cat(&[
                &manifest("a.c", &[], vec![file("/w/a.c", main_c)]),
                &blob(0, main_c),
                &blob(0, main_c),
            ]),
        ),
        (
            "the end before every file came",
            // Content no earlier row put in the box's cache.
            cat(&[
                &manifest("a.c", &[], vec![file("/w/a.c", b"int never_sent;\n")]),
                &end,
            ]),
        ),
        (
            "preprocessed input in a sources job",
            cat(&[&input(b"int x;\n"), &end]),
        ),
    ];
    for (name, rest) in sources_rows {
        rows.push((
            format!("sources: {name}"),
            cat(&[&hello, &rest]),
            Want::Reject(BadRequest),
        ));
    }
    for (name, text) in [
        ("an absolute include", &b"#include \"/etc/passwd\"\n"[..]),
        (
            "a computed include with a defined macro",
            b"#define F \"/etc/passwd\"\n#include F\n",
        ),
        (
            "an include climbing out",
            b"#include \"../../../etc/passwd\"\n",
        ),
        ("an .incbin", b"asm(\".incbin \\\"/etc/shadow\\\"\");\n"),
    ] {
        rows.push((
            format!("sources: {name}"),
            cat(&[
                &hello,
                &manifest("a.c", &[], vec![file("/w/a.c", text)]),
                &blob(0, text),
                &end,
            ]),
            Want::Reject(BadRequest),
        ));
    }
    // A good request cut at every offset: the daemon sees end of file mid-frame.
    for cut in 1..good.len() {
        rows.push((
            format!("job request cut at byte {cut}"),
            good[..cut].to_vec(),
            Want::RejectOrClose,
        ));
    }
    // Accepted, then the input cut mid-frame: the box must throw the spooled part away.
    let piece = input(b"int x;\n");
    for cut in [1, 5, 11, 12, piece.len() - 1] {
        rows.push((
            format!("input piece cut at byte {cut}"),
            cat(&[&good, &piece[..cut]]),
            Want::RejectOrClose,
        ));
    }
    rows
}

#[test]
fn every_row_of_hostile_input_is_refused_and_the_daemon_keeps_serving() {
    let d = Daemon::start(2, &["--max-body-mib", "2"]);
    let rss_before: u64 = d.value("rss_kib").parse().unwrap();
    let rows = table();
    let mut failures = Vec::new();
    for (name, bytes, want) in &rows {
        let got = send(&d.addr(), bytes);
        let fine = match (&got, want) {
            (Got::Reject(r, text), Want::Reject(w)) => r == w && !text.is_empty(),
            (Got::Reject(_, text), Want::RejectOrClose) => !text.is_empty(),
            (Got::Closed, Want::RejectOrClose) => true,
            (Got::Other(Message::Status(_)), Want::Status) => true,
            _ => false,
        };
        if !fine {
            let log = d.log_text();
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            failures.push(format!(
                "{name}: wanted {want:?}, got {got:?} (log: {tail:?})"
            ));
        }
        // The next good request is served after every row.
        if !d.status().contains_key("slots") {
            failures.push(format!("{name}: the daemon stopped answering"));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    eprintln!("{} hostile rows, all refused or closed", rows.len());
    // Nothing ran, nothing is left, and the daemon still compiles.
    assert_eq!(d.counter("done"), 0);
    assert_eq!(d.counter("running"), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        d.leftovers().is_empty(),
        "job dirs left: {:?}",
        d.leftovers()
    );
    let t = TempDir::new("hostile-after");
    t.write("a.c", "int a(void) { return 1; }\n");
    ok(rcc(t.path(), &t.join(".rcc"), &d.addr()).args(["gcc", "-c", "a.c"]));
    assert_eq!(d.counter("done"), 1);
    let rss_after: u64 = d.value("rss_kib").parse().unwrap();
    // Under qemu-user (the aarch64 suite) rccd's RSS is qemu's, and grows with the code it
    // translates for the first time, not with what the daemon keeps.
    let allowance = if cfg!(target_arch = "aarch64") { 16 } else { 8 };
    assert!(
        rss_after < rss_before + allowance * 1024,
        "rss grew from {rss_before} to {rss_after} KiB"
    );
}

#[test]
fn a_peer_that_trickles_is_dropped_at_the_idle_timeout() {
    let d = Daemon::start(1, &["--idle-timeout", "1"]);
    let good = good_job();
    let s = TcpStream::connect(d.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A byte every 300 ms: never idle for a second, but the hello is not whole within one.
    let first: Vec<u8> = good.into_iter().take(40).collect();
    let trickle = trickle(&s, first, Duration::from_millis(300));
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let r = (&s).read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(trickle.join().unwrap(), "the daemon never closed");
    // Meanwhile and after, others are served.
    assert_eq!(d.value("slots"), "1");
}
