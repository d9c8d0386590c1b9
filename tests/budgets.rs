//! What one peer may hold of a box, over real sockets to a real rccd: an accepted job's
//! input must keep up a floor rate (`conn::INPUT_GRACE`, `INPUT_FLOOR`), a manifest's cost is
//! capped before anything is made on disk (`tree::check_budget`), and slots are shared
//! between peer addresses (`admit`). Other peers are other loopback addresses (127.0.0.2 and
//! up), which Linux routes through `lo` like 127.0.0.1.

use crate::util::*;

use rcc::daemon::tree::{MAX_DEPTH, MAX_DIRS, MAX_FILES};
use rcc::wire::protocol::{
    self, Exit, FileEntry, JobRequest, Manifest, Message, Mode, RejectReason,
};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What this file asks of one peer's conversation (`util::Peer`).
impl Peer {
    fn new(d: &Daemon, from: [u8; 4]) -> Peer {
        Peer::connect_from(&d.addr(), Ipv4Addr::from(from), 120)
    }

    /// The next frame other than a heartbeat; `None` if the daemon closed first.
    fn recv(&mut self) -> Option<Message> {
        match self.next() {
            Ok(m) => Some(m),
            Err(Ended::Closed) => None,
            Err(Ended::Garbage(e)) => panic!("the daemon sent garbage: {e}"),
            Err(Ended::Failed(e)) => panic!("no frame from the daemon: {e}"),
            Err(Ended::Hung) => panic!("no frame from the daemon within 120 s"),
        }
    }

    /// Asks for a slot; panics unless the job is accepted.
    fn accepted(d: &Daemon, from: [u8; 4], req: JobRequest) -> Peer {
        let mut p = Peer::new(d, from);
        p.send(&Message::JobRequest(req));
        match p.recv() {
            Some(Message::Accept(_)) => p,
            other => panic!("wanted Accept, got {other:?}\n{}", d.log_text()),
        }
    }

    /// A Reject's reason and text; panics on anything else.
    fn rejected(&mut self) -> (RejectReason, String) {
        match self.recv() {
            Some(Message::Reject(r)) => (r.reason, r.text),
            other => panic!("wanted Reject, got {other:?}"),
        }
    }

    /// Waits for the result and checks the compile succeeded.
    fn compiled(&mut self, d: &Daemon) {
        match self.recv() {
            Some(Message::Done(done)) => assert_eq!(
                done.exit,
                Exit::Code(0),
                "{}",
                String::from_utf8_lossy(&done.stderr)
            ),
            other => panic!("wanted Done, got {other:?}\n{}", d.log_text()),
        }
    }
}

fn request(mode: Mode) -> JobRequest {
    JobRequest {
        mode,
        cwd: b"/w".to_vec(),
        ..job_request("gcc", &[b"-O2", b"-c"])
    }
}

const GOOD: &[u8] = b"int a(void) { return 1; }\n";

/// A preprocessed job sent whole at once, from `from`.
fn good_job(d: &Daemon, from: [u8; 4]) {
    let mut p = Peer::accepted(d, from, request(Mode::Preprocessed));
    p.send(&Message::Input(GOOD.to_vec()));
    p.send(&Message::InputEnd);
    p.compiled(d);
}

/// Writes `bytes` one a second from another thread, until the daemon closes on it.
fn trickle_slowly(p: &Peer, bytes: Vec<u8>) -> std::thread::JoinHandle<bool> {
    trickle(&p.s, bytes, Duration::from_secs(1))
}

const LOCALHOST: [u8; 4] = [127, 0, 0, 1];
const PEER_2: [u8; 4] = [127, 0, 0, 2];
const PEER_3: [u8; 4] = [127, 0, 0, 3];

#[test]
fn two_tricklers_lose_their_slots_at_the_input_deadline_and_a_waiting_job_compiles() {
    let d = Daemon::start(2, &[]);
    let piece = protocol::encode(&Message::Input(vec![b' '; 4096]), None);
    // Two peers of one slot each: the share rule has nothing to take from either.
    let mut tricklers = Vec::new();
    for from in [PEER_2, PEER_3] {
        let p = Peer::accepted(&d, from, request(Mode::Preprocessed));
        let w = trickle_slowly(&p, piece.clone());
        tricklers.push((p, w, Instant::now()));
    }
    // Meanwhile a good job asks; it waits for a slot (up to 10 s), and is not told "busy".
    std::thread::sleep(Duration::from_secs(4));
    let good = std::thread::spawn({
        let d_addr = d.addr();
        move || {
            let mut p = Peer::connect(&d_addr, 120);
            p.send(&Message::JobRequest(request(Mode::Preprocessed)));
            let got = p.recv();
            assert!(matches!(got, Some(Message::Accept(_))), "{got:?}");
            p.send(&Message::Input(GOOD.to_vec()));
            p.send(&Message::InputEnd);
            p.recv()
        }
    });
    for (mut p, w, accepted) in tricklers {
        let (reason, text) = p.rejected();
        let after = accepted.elapsed();
        assert_eq!(reason, RejectReason::BadRequest, "{text}");
        assert!(text.contains("below the floor of 16 KiB/s"), "{text}");
        assert!(text.contains("sent "), "{text}");
        // Cut after the 10 s grace, on the next timer tick, long before the 30 s idle timeout.
        assert!(
            after >= Duration::from_secs(9) && after < Duration::from_secs(20),
            "cut after {after:?}"
        );
        w.join().unwrap();
    }
    match good.join().unwrap() {
        Some(Message::Done(done)) => assert_eq!(done.exit, Exit::Code(0)),
        other => panic!("wanted Done, got {other:?}\n{}", d.log_text()),
    }
    assert!(d.log_text().contains("freeing its slot"));
    assert_eq!(d.counter("done"), 1);
    assert_eq!(d.counter("running"), 0);
}

#[test]
fn a_slow_but_honest_sender_above_the_floor_completes() {
    let d = Daemon::start(1, &[]);
    let mut p = Peer::accepted(&d, LOCALHOST, request(Mode::Preprocessed));
    // Silent for most of the grace, as a client waiting for its preprocessor...
    std::thread::sleep(Duration::from_secs(6));
    p.send(&Message::Input(GOOD.to_vec()));
    // ...then 32 KiB a second, twice the floor, for well past the grace.
    let padding = [b' '; 1023]
        .iter()
        .chain(b"\n")
        .copied()
        .collect::<Vec<u8>>();
    for _ in 0..10 {
        p.send(&Message::Input(padding.repeat(32)));
        std::thread::sleep(Duration::from_secs(1));
    }
    p.send(&Message::InputEnd);
    p.compiled(&d);
}

#[test]
fn one_address_gets_every_slot_alone_and_gives_one_up_when_another_asks() {
    let d = Daemon::start(2, &[]);
    // One master alone: both slots at once, no waiting.
    let mut first = Peer::accepted(&d, PEER_2, request(Mode::Preprocessed));
    let mut newest = Peer::accepted(&d, PEER_2, request(Mode::Preprocessed));
    assert_eq!(d.counter("running"), 2);
    // Another address asks while both jobs are still receiving input: the newest gives its
    // slot up at once, far within the input deadline.
    let t = Instant::now();
    let mut other = Peer::accepted(&d, PEER_3, request(Mode::Preprocessed));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let (reason, text) = newest.rejected();
    assert_eq!(reason, RejectReason::Busy, "{text}");
    assert!(
        text.contains("127.0.0.2 holds 2 of this box's 2 slots"),
        "{text}"
    );
    other.send(&Message::Input(GOOD.to_vec()));
    other.send(&Message::InputEnd);
    other.compiled(&d);
    // The older job kept its slot and still compiles.
    first.send(&Message::Input(GOOD.to_vec()));
    first.send(&Message::InputEnd);
    first.compiled(&d);
    assert_eq!(d.counter("done"), 2);
    // A running compile is never cut: with both slots compiling, a newcomer waits its turn.
    good_job(&d, PEER_3);
}

/// A sources job's request, manifest and the blobs it is asked for.
struct Shipped {
    source: String,
    paths: Vec<(String, String)>,
    files: Vec<(String, Vec<u8>)>,
}

impl Shipped {
    fn manifest(&self) -> Message {
        Message::Manifest(Manifest {
            source: self.source.clone(),
            paths: self.paths.clone(),
            deps: None,
            files: self
                .files
                .iter()
                .map(|(p, data)| FileEntry {
                    path: p.clone(),
                    size: data.len() as u64,
                    hash: rcc::sha256::digest(data),
                })
                .collect(),
        })
    }

    fn one(files: Vec<(String, Vec<u8>)>) -> Shipped {
        Shipped {
            source: "a.c".into(),
            paths: vec![],
            files,
        }
    }

    /// Sends the manifest; the Need it gets (with how long it took), or the Reject.
    fn open(&self, p: &mut Peer) -> Result<(Vec<u32>, Duration), (RejectReason, String)> {
        let t = Instant::now();
        p.send(&self.manifest());
        match p.recv() {
            Some(Message::Need(v)) => Ok((v, t.elapsed())),
            Some(Message::Reject(r)) => Err((r.reason, r.text)),
            other => panic!("wanted Need or Reject, got {other:?}"),
        }
    }

    /// The whole job, which must compile; how long the manifest took to lay out.
    fn compiles(&self, d: &Daemon) -> Duration {
        let mut p = Peer::accepted(d, LOCALHOST, request(Mode::Sources));
        let (need, took) = self
            .open(&mut p)
            .unwrap_or_else(|r| panic!("refused: {r:?}"));
        for i in need {
            let data = self.files[i as usize].1.clone();
            p.send(&Message::Blob(i, data));
        }
        p.send(&Message::InputEnd);
        p.compiled(d);
        took
    }
}

fn file(path: &str, data: &[u8]) -> (String, Vec<u8>) {
    (path.to_string(), data.to_vec())
}

/// Every path under `dir` (directories end in `/`), with each file's content.
fn walk(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if e.file_type().unwrap().is_dir() {
                out.push((rel.join(""), vec![]));
                todo.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_manifest_over_a_cap_or_naming_a_path_twice_is_refused_before_anything_is_made() {
    let d = Daemon::start(2, &[]);
    // A first job leaves a mirror for the next ones.
    Shipped::one(vec![file("/w/a.c", GOOD), file("/w/inc/a.h", b"int h;\n")]).compiles(&d);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mirrors = d.mirrors();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    let mirror = d.dir.join("tmp").join(&mirrors[0]);
    let before = walk(&mirror);
    assert!(before.iter().any(|(p, _)| p.ends_with("w/inc/a.h")));

    let src = || file("/w/a.c", GOOD);
    let deep = |n: usize| format!("/{}", vec!["d"; n].join("/"));
    let many = |n: usize, dirs: usize| -> Vec<(String, Vec<u8>)> {
        std::iter::once(src())
            .chain((1..n).map(|i| file(&format!("/w/d{}/f{i}.h", i % dirs), b"")))
            .collect()
    };
    assert_eq!(MAX_DEPTH, 32, "the rows below name it");
    let mut search_deep = Shipped::one(vec![src()]);
    search_deep.paths = vec![("-I".into(), deep(33))];
    let rows: Vec<(&str, Shipped, String)> = vec![
        (
            "a file more than the limit",
            Shipped::one(many(MAX_FILES + 1, 100)),
            format!("more than {MAX_FILES} files (the limit of files per manifest)"),
        ),
        (
            "a directory more than the limit",
            // /w and MAX_DIRS below it.
            Shipped::one(many(MAX_DIRS + 1, MAX_DIRS)),
            format!("more than {MAX_DIRS} directories (the limit)"),
        ),
        (
            "a file 33 deep",
            Shipped::one(vec![src(), file(&(deep(32) + "/f.h"), b"")]),
            "has 33 parts (1 to 32, the limit of path depth)".into(),
        ),
        (
            "a search directory 33 deep",
            search_deep,
            "is 33 deep, past the limit of 32".into(),
        ),
        (
            "one path twice, with two contents",
            Shipped::one(vec![
                src(),
                file("/w/a.h", b"int x;\n"),
                file("/w/a.h", b""),
            ]),
            "names \"/w/a.h\" twice".into(),
        ),
        (
            "one path twice, with one content",
            Shipped::one(vec![
                src(),
                file("/w/a.h", b"int x;\n"),
                file("/w/a.h", b"int x;\n"),
            ]),
            "names \"/w/a.h\" twice".into(),
        ),
        (
            "a path as a file and as a directory",
            Shipped::one(vec![src(), file("/w/a.h", b""), file("/w/a.h/b.h", b"")]),
            "names \"/w/a.h\" both as a file and as a directory".into(),
        ),
    ];
    for (name, job, want) in rows {
        let mut p = Peer::accepted(&d, LOCALHOST, request(Mode::Sources));
        match job.open(&mut p) {
            Err((reason, text)) => {
                assert_eq!(reason, RejectReason::BadRequest, "{name}: {text}");
                assert!(text.contains(&want), "{name}: {text:?} lacks {want:?}");
            }
            Ok(_) => panic!("{name}: accepted\n{}", d.log_text()),
        }
        // Nothing was made: no job dir, and the mirror is as the last job left it.
        assert_eq!(d.leftovers(), Vec::<String>::new(), "{name}");
        assert_eq!(d.mirrors(), mirrors, "{name}");
        assert!(walk(&mirror) == before, "{name}: the mirror changed");
    }
    // Still serving, on the same mirror.
    Shipped::one(vec![src(), file("/w/inc/a.h", b"int h;\n")]).compiles(&d);
    assert_eq!(d.mirrors(), mirrors);
}

/// Not a speed test: prints how long the box's event loop spends laying out a manifest at
/// every cap, from the manifest sent to the box's answer (the loop serves nobody else
/// meanwhile), fresh and on a mirror that held another such manifest.
#[test]
fn a_manifest_at_every_cap_compiles() {
    let d = Daemon::start(1, &[]);
    // All 8,192 files share one content, which the first job puts in the cache: the
    // layout then links every one (the most work a manifest can ask of it).
    let header = b"/* empty */\n";
    Shipped::one(vec![file("/w/a.c", GOOD), file("/w/h.h", header)]).compiles(&d);
    let at_caps = |tag: &str| {
        // /w, /w/TAG and MAX_DIRS - 2 directories under it, the deepest MAX_DEPTH parts down.
        let chain = MAX_DEPTH - 3;
        let deep = format!("/w/{tag}/{}", vec!["z"; chain].join("/"));
        let mut files = vec![file("/w/a.c", GOOD), file(&(deep + "/f.h"), header)];
        let n = MAX_FILES - files.len();
        let dirs = MAX_DIRS - 2 - chain;
        files.extend((0..n).map(|i| file(&format!("/w/{tag}/d{}/f{i}.h", i % dirs), header)));
        Shipped::one(files)
    };
    let fresh = at_caps("x").compiles(&d);
    let reused = at_caps("y").compiles(&d);
    eprintln!(
        "a manifest at the caps ({MAX_FILES} files, {MAX_DIRS} directories, {MAX_DEPTH} \
         deep): laid out in {fresh:?} fresh, {reused:?} on a mirror that held another"
    );
    assert_eq!(d.counter("done"), 3);
}
