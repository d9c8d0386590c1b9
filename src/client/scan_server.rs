//! The scan server: one process per `RCC_DIR` that scans the build's jobs for its rcc
//! processes, so what is known of each header stays in memory from job to job.
//!
//! An rcc process lives for one compile; on its own it loads what the build learned of
//! every header it reaches (hundreds for a kernel file, from the logs of their directories)
//! before it can stat them. That load was most of what a shipped job cost the master. The
//! server keeps it instead: a job then costs it one stat per file (every file is still
//! checked against its size, mtime, ctime and inode each time, so a header rewritten during
//! the build is read again) and the walk of the includes.
//!
//! The first rcc that finds no server starts one (`rcc --scan-server`, detached, in its own
//! process group, every inherited fd closed) and scans for itself; the next ones ask it
//! through `RCC_DIR/scan.sock`. One server per `RCC_DIR`, held by a lock on
//! `RCC_DIR/scan.lock`; it answers one job at a time (the master's CPU is the limit
//! anyway), only its own user, and leaves after `IDLE` without a
//! job or as soon as its socket is gone (`RCC_DIR` removed). Whatever goes wrong with it —
//! none running, a crash, a reply that does not come — the rcc that asked scans for itself,
//! as without a server. `RCC_SCAN_SERVER=0` turns it off.
//!
//! The exchange: one request (`u32` length, then the fields), one reply, then the
//! connection closes. The encoding below does no I/O.

use super::ship::{self, Scanner};
use crate::wire::protocol::{self, Kind, Limits};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The server's socket and lock, in `RCC_DIR`.
pub const SOCKET: &str = "scan.sock";
const LOCK: &str = "scan.lock";

/// How long the server waits for a job before it leaves: longer than the pauses of a build
/// (a link, a slow generator), short enough not to linger after it.
const IDLE: Duration = Duration::from_secs(30);

/// How long an rcc waits for the server's answer before scanning for itself. A first scan
/// of a directory the server has not seen (hashing every header) can take a second on a
/// small board; a compiler probe a little more.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// A request is an argv and three strings; a reply is a manifest (`MAX_FILES` entries).
const MAX_REQUEST: usize = 4 << 20;
const MAX_REPLY: usize = 64 << 20;

/// Bounds on what the server holds: past any, it forgets everything and learns again from
/// the logs on disk. An arm64 kernel tinyconfig build ships 4,682 files (tests/tools/
/// MEASURED.md, `bash tests/tools/sources-bench.sh 2`); the master may be a board with 1 GB.
const MAX_FILES_KNOWN: usize = 200_000;
const MAX_DIRS_LISTED: usize = 50_000;
const MAX_LOG_BYTES: usize = 128 << 20;

const MAGIC: &[u8; 4] = b"RCS1";

/// One job to scan: what `ship::prepare` needs, as the job's rcc has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The asking rcc's `this_build()`: a server of another build leaves instead of
    /// answering, and the next rcc starts one of its own.
    pub build: String,
    /// The compiler, resolved to a path.
    pub compiler: PathBuf,
    pub identity: String,
    pub cwd: PathBuf,
    /// The compiler's arguments (everything after its name).
    pub args: Vec<OsString>,
}

/// The server's answer: the job's manifest and its implicit `stdc-predef.h` (see
/// `ship::Shipment`), or why its sources cannot travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The manifest as the box gets it (encoded once, by the server: the job forwards these
    /// bytes and decodes them only if a box lacks a file), how many files it names and their
    /// bytes in all, and the `stdc-predef.h` named for the box.
    Shipped {
        body: Vec<u8>,
        files: u32,
        bytes: u64,
        predef: Option<String>,
    },
    Refused(String),
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// Reads fields off the front of a message; `None` when it ends inside one.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, tail) = self.0.split_first_chunk::<4>()?;
        self.0 = tail;
        Some(u32::from_be_bytes(*head))
    }
    fn field(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.field()?.to_vec()).ok()
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        put(&mut out, self.build.as_bytes());
        put(&mut out, self.compiler.as_os_str().as_bytes());
        put(&mut out, self.identity.as_bytes());
        put(&mut out, self.cwd.as_os_str().as_bytes());
        out.extend_from_slice(&(self.args.len() as u32).to_be_bytes());
        for a in &self.args {
            put(&mut out, a.as_bytes());
        }
        out
    }

    pub fn decode(data: &[u8]) -> Option<Request> {
        let mut f = Fields(data.strip_prefix(MAGIC)?);
        let build = f.text()?;
        let compiler = PathBuf::from(OsString::from_vec(f.field()?.to_vec()));
        let identity = f.text()?;
        let cwd = PathBuf::from(OsString::from_vec(f.field()?.to_vec()));
        let n = f.u32()? as usize;
        // Each argument takes at least its 4-byte length: a count the body cannot hold is
        // refused before anything is reserved for it.
        if n > f.0.len() / 4 {
            return None;
        }
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            args.push(OsString::from_vec(f.field()?.to_vec()));
        }
        (f.0.is_empty() && compiler.is_absolute() && cwd.is_absolute()).then_some(Request {
            build,
            compiler,
            identity,
            cwd,
            args,
        })
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        match self {
            Reply::Shipped {
                body,
                files,
                bytes,
                predef,
            } => {
                out.push(0);
                match predef {
                    Some(p) => {
                        out.push(1);
                        put(&mut out, p.as_bytes());
                    }
                    None => out.push(0),
                }
                out.extend_from_slice(&files.to_be_bytes());
                out.extend_from_slice(&bytes.to_be_bytes());
                out.extend_from_slice(&protocol::header(Kind::Manifest, false, body.len()));
                out.extend_from_slice(body);
            }
            Reply::Refused(why) => {
                out.push(1);
                put(&mut out, why.as_bytes());
            }
        }
        out
    }

    pub fn decode(data: &[u8]) -> Option<Reply> {
        let (&tag, rest) = data.strip_prefix(MAGIC)?.split_first()?;
        let mut f = Fields(rest);
        match tag {
            0 => {
                let (&has, rest) = f.0.split_first()?;
                f.0 = rest;
                let predef = match has {
                    0 => None,
                    1 => Some(f.text()?),
                    _ => return None,
                };
                let files = f.u32()?;
                let (bytes, rest) = f.0.split_first_chunk::<8>()?;
                let bytes = u64::from_be_bytes(*bytes);
                // The frame is checked here; the manifest in it is the box's to check.
                let limits = Limits {
                    max_body: MAX_REPLY,
                    ..Limits::default()
                };
                match protocol::decode_header(rest, &limits) {
                    Ok(Some(h))
                        if h.kind == Kind::Manifest
                            && !h.compressed
                            && h.len == rest.len() - protocol::HEADER_LEN =>
                    {
                        Some(Reply::Shipped {
                            body: rest[protocol::HEADER_LEN..].to_vec(),
                            files,
                            bytes,
                            predef,
                        })
                    }
                    _ => None,
                }
            }
            1 => {
                let why = f.text()?;
                f.0.is_empty().then_some(Reply::Refused(why))
            }
            _ => None,
        }
    }
}

/// What tells one rcc binary from another: its version and its file's size and mtime. A
/// rebuilt or upgraded rcc is not answered by a server still running the old one (whose
/// file is then gone or changed).
pub fn this_build() -> String {
    let stamp = std::env::current_exe()
        .and_then(fs::metadata)
        .map(|m| format!("{} {}.{}", m.size(), m.mtime(), m.mtime_nsec()))
        .unwrap_or_default();
    format!("{} {stamp}", env!("CARGO_PKG_VERSION"))
}

/// Writes `body` with its length in front.
fn send(stream: &mut UnixStream, body: &[u8]) -> io::Result<()> {
    let mut framed = (body.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(body);
    stream.write_all(&framed)
}

/// Reads one length-prefixed message of at most `max` bytes.
fn receive(stream: &mut UnixStream, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > max {
        return Err(io::Error::other(format!("a message of {n} bytes")));
    }
    let mut body = vec![0u8; n];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// Asks the server of `rcc_dir` to scan `req`. `Err`: no server answered (say why under
/// `RCC_VERBOSE`, scan here, and `start` one if none is running).
pub fn ask(rcc_dir: &Path, req: &Request) -> Result<Reply, String> {
    let mut stream =
        UnixStream::connect(rcc_dir.join(SOCKET)).map_err(|e| format!("no scan server ({e})"))?;
    let fail = |e: io::Error| format!("the scan server did not answer ({e})");
    stream.set_read_timeout(Some(ANSWER_WITHIN)).map_err(fail)?;
    stream
        .set_write_timeout(Some(ANSWER_WITHIN))
        .map_err(fail)?;
    send(&mut stream, &req.encode()).map_err(fail)?;
    let body = receive(&mut stream, MAX_REPLY).map_err(fail)?;
    Reply::decode(&body).ok_or_else(|| "the scan server's answer was not one".into())
}

/// Starts a scan server for `rcc_dir` (this same program, `--scan-server`) and does not
/// wait for it. If one is already running, the new one sees its lock and leaves.
pub fn start(rcc_dir: &Path) -> io::Result<()> {
    let me = std::env::current_exe()?;
    Command::new(me)
        // Named rcc whatever the binary is called: a masquerading one would compile.
        .arg0("rcc")
        .arg("--scan-server")
        .env("RCC_DIR", rcc_dir)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Not in the build's process group: a Ctrl-C to make is not for it (it leaves
        // on its own when idle).
        .process_group(0)
        .spawn()
        .map(drop)
}

/// Runs the scan server of `rcc_dir` until it is idle for `IDLE` or its socket is gone.
/// Returns at once when another server holds the lock.
pub fn serve(rcc_dir: &Path) -> io::Result<()> {
    crate::sys::close_inherited_fds();
    // What the compiler says about its search path must not depend on this process's
    // environment; rcc never asks with these set (see `ship::env_blocks`), nor should this.
    if ship::env_blocks(|k| std::env::var_os(k)).is_some()
        || ["GCC_EXEC_PREFIX", "COMPILER_PATH"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
    {
        return Err(io::Error::other("the environment changes what gcc says"));
    }
    let lock = File::create(rcc_dir.join(LOCK))?;
    if !crate::sys::try_lock(&lock)? {
        return Ok(());
    }
    let path = rcc_dir.join(SOCKET);
    // A socket left by a server that died: nobody listens on it (we hold the lock).
    let _ = fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    let mine = fs::metadata(&path)?.ino();
    listener.set_nonblocking(true)?;
    let mut scanner = Scanner::for_the_build(rcc_dir)?;
    let me = crate::sys::getuid();
    let build = this_build();
    let mut last = Instant::now();
    // Ends when idle; each turn waits at most half a second.
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                // A failed exchange concerns one rcc, which then scans for itself.
                let after = answer(stream, me, &build, &mut scanner, rcc_dir);
                if after.is_ok_and(|a| a == After::Leave) {
                    let _ = fs::remove_file(&path);
                    return Ok(());
                }
                let (files, dirs, logs) = scanner.held();
                if files > MAX_FILES_KNOWN || dirs > MAX_DIRS_LISTED || logs > MAX_LOG_BYTES {
                    scanner.forget();
                }
                last = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let ours = fs::metadata(&path).is_ok_and(|m| m.ino() == mine);
                if !ours {
                    return Ok(());
                }
                if last.elapsed() >= IDLE {
                    let _ = fs::remove_file(&path);
                    return Ok(());
                }
                crate::sys::wait_readable(&listener, 500)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What the server does after an exchange.
#[derive(PartialEq, Eq)]
enum After {
    Serve,
    /// The request came from another build of rcc, which needs a server of its own.
    Leave,
}

/// One exchange: a request from our own user, its reply.
fn answer(
    mut stream: UnixStream,
    me: u32,
    build: &str,
    scanner: &mut Scanner,
    rcc_dir: &Path,
) -> io::Result<After> {
    if crate::sys::peer_uid(&stream)? != me {
        return Err(io::Error::other("another user"));
    }
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let body = receive(&mut stream, MAX_REQUEST)?;
    let Some(req) = Request::decode(&body) else {
        return Err(io::Error::other("not a request"));
    };
    if req.build != build {
        return Ok(After::Leave);
    }
    // A bug that panics ends the server (release builds abort): the rcc that asked gets no
    // answer and scans for itself, and the next one starts a server again.
    let reply = scan(scanner, rcc_dir, &req);
    send(&mut stream, &reply.encode())?;
    Ok(After::Serve)
}

/// What the job's own rcc would find: the same plan from the same arguments, the same scan.
fn scan(scanner: &mut Scanner, rcc_dir: &Path, req: &Request) -> Reply {
    let plan = match crate::rules::args::classify(&req.args) {
        Ok(p) => p,
        Err(r) => return Reply::Refused(r.to_string()),
    };
    let sp = match crate::rules::ship_args::ship_plan(&req.args, &plan) {
        Ok(sp) => sp,
        Err(why) => return Reply::Refused(why),
    };
    let Some(source) = plan.source.to_str() else {
        return Reply::Refused("the source name is not UTF-8".into());
    };
    let scan = ship::Scan {
        compiler: &req.compiler,
        identity: &req.identity,
        sp: &sp,
        source,
        cwd: &req.cwd,
        rcc_dir,
    };
    match ship::prepare(scanner, &scan) {
        Ok(sh) => Reply::Shipped {
            files: sh.files as u32,
            bytes: sh.bytes,
            predef: sh.predef,
            body: sh.body,
        },
        Err(why) => Reply::Refused(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::{FileEntry, Manifest};

    fn request() -> Request {
        Request {
            build: this_build(),
            compiler: "/usr/bin/gcc".into(),
            identity: "gcc 12.2.0 x86_64-linux-gnu".into(),
            cwd: "/src/proj".into(),
            args: vec!["-c".into(), "a b.c".into(), OsString::from_vec(vec![0xff])],
        }
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let r = request();
        assert_eq!(Request::decode(&r.encode()), Some(r));
        let m = Manifest {
            source: "a.c".into(),
            paths: vec![("-I".into(), "inc".into())],
            deps: None,
            files: vec![FileEntry {
                path: "/src/proj/a.c".into(),
                size: 12,
                hash: [7; 32],
            }],
        };
        let body = crate::wire::protocol::manifest_body(&m);
        for reply in [
            Reply::Shipped {
                body: body.clone(),
                files: 1,
                bytes: 12,
                predef: Some("/usr/include/stdc-predef.h".into()),
            },
            Reply::Shipped {
                body,
                files: 1,
                bytes: 12,
                predef: None,
            },
            Reply::Refused("a.c:3: `#include X` names its file with a macro".into()),
        ] {
            let whole = reply.encode();
            // The job forwards a shipped manifest's bytes unread: a cut or padded answer
            // must not pass for one.
            for n in 0..whole.len() {
                assert_eq!(Reply::decode(&whole[..n]), None, "cut at {n}");
            }
            let mut padded = whole.clone();
            padded.push(0);
            assert_eq!(Reply::decode(&padded), None);
            assert_eq!(Reply::decode(&whole), Some(reply));
        }
    }

    #[test]
    fn a_cut_or_padded_or_foreign_message_is_not_believed() {
        let whole = request().encode();
        for n in 0..whole.len() {
            assert_eq!(Request::decode(&whole[..n]), None, "cut at {n}");
        }
        let mut padded = whole.clone();
        padded.push(0);
        assert_eq!(Request::decode(&padded), None);
        // A count of arguments the body cannot hold.
        let mut huge = MAGIC.to_vec();
        for f in [&b"0.1"[..], b"/cc", b"id", b"/"] {
            put(&mut huge, f);
        }
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Request::decode(&huge), None);
        // Relative paths are not what an rcc sends.
        let mut rel = request();
        rel.cwd = "proj".into();
        assert_eq!(Request::decode(&rel.encode()), None);
        let reply = Reply::Refused("no".into()).encode();
        assert_eq!(Reply::decode(&reply[..reply.len() - 1]), None);
        assert_eq!(Reply::decode(b"RCS1\x07"), None);
    }
}
