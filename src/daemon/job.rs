//! One compile on the box: which compiler (allow-list, identity), the argv it writes from a
//! job's typed options (`box_args`),
//! a private temp dir, the child process with its pipes and pidfd, and the result.
//!
//! The event loop owns the registration of the pipes and pidfd (and makes the pipes
//! non-blocking as it registers them); this file only reads them when told they are ready,
//! so a child can never block on a full pipe (we drain both as they arrive and keep at most
//! `OUTPUT_CAP` bytes of each).
//!
//! A shipped job whose includes a macro names runs two children in turn: the preprocessing
//! `audit::Audit` reads, then, only if it passed, the compile; a job that fails the audit
//! ends `Withheld`, with nothing of it sent back.

use super::as_guard;
use super::audit::Audit;
use super::tree::Mirror;
use crate::compiler;
use crate::rules::box_args::BoxArgs;
use crate::sys;
use crate::wire::protocol::{Done, Exit, JobRequest};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The most data one compile may hold, in bytes (0: no limit): `--job-mem-max-mib`, set
/// once as the daemon starts.
static MEMORY_CAP: AtomicU64 = AtomicU64::new(0);

/// Sets the most data one compile may hold (`--job-mem-max-mib`; 0: no limit).
pub fn set_memory_cap(bytes: u64) {
    MEMORY_CAP.store(bytes, Ordering::Relaxed);
}

/// The largest file a compile may write (its object, the assembler text cc1 hands `as`):
/// four times the largest object a box sends by default.
pub const FILE_CAP: u64 = 1 << 30;

/// Most bytes of a compiler's stdout or stderr kept for the reply (the rest is dropped with a
/// note): a compiler that floods its stderr cannot exhaust the box's memory.
pub const OUTPUT_CAP: usize = 4 << 20;

/// The compilers this box will run, found by file name in `--compiler-path`, with identities
/// probed once and re-probed when the file changes (a gcc upgrade on the box).
pub struct Compilers {
    dirs: Vec<PathBuf>,
    known: HashMap<String, Known>,
}

struct Known {
    path: PathBuf,
    stamp: (u64, i64, u64),
    /// Its identity, or why probing it failed: a broken compiler is not probed again (each
    /// probe may take the whole probe timeout) until its file changes.
    identity: Result<String, String>,
}

/// Why a request's compiler cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompilerProblem {
    NotACompiler(String),
    NotFound(String),
    Unusable(String, String),
}

impl std::fmt::Display for CompilerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompilerProblem::NotACompiler(n) => write!(
                f,
                "\"{n}\" is not a C/C++ compiler driver name; rccd runs only gcc, g++, cc, c++, \
                 clang, clang++ and their target-prefixed or versioned forms"
            ),
            CompilerProblem::NotFound(n) => {
                write!(f, "no compiler \"{n}\" in this box's --compiler-path")
            }
            CompilerProblem::Unusable(n, e) => write!(f, "compiler \"{n}\" does not work: {e}"),
        }
    }
}

fn stamp(path: &Path) -> io::Result<(u64, i64, u64)> {
    let m = fs::metadata(path)?;
    Ok((m.ino(), m.mtime(), m.size()))
}

impl Compilers {
    pub fn new(dirs: Vec<PathBuf>) -> Compilers {
        Compilers {
            dirs,
            known: HashMap::new(),
        }
    }

    /// Probes every allowed compiler name found in the compiler path (for status and logs).
    pub fn probe_all(&mut self) {
        let mut names = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                if let Some(name) = e.file_name().to_str() {
                    if compiler::is_compiler_name(name) && !names.iter().any(|n| n == name) {
                        names.push(name.to_string());
                    }
                }
            }
        }
        names.sort();
        for name in names {
            // resolve logs what it finds, good or bad.
            let _ = self.resolve(&name);
        }
    }

    fn find(&self, name: &str) -> Option<PathBuf> {
        self.dirs.iter().map(|d| d.join(name)).find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
    }

    /// The path and identity of the compiler called `name`.
    pub fn resolve(&mut self, name: &str) -> Result<(PathBuf, String), CompilerProblem> {
        if !compiler::is_compiler_name(name) {
            return Err(CompilerProblem::NotACompiler(name.to_string()));
        }
        let path = self
            .find(name)
            .ok_or_else(|| CompilerProblem::NotFound(name.to_string()))?;
        let st = stamp(&path).map_err(|e| CompilerProblem::Unusable(name.into(), e.to_string()))?;
        if let Some(k) = self.known.get(name) {
            if k.path == path && k.stamp == st {
                return match &k.identity {
                    Ok(id) => Ok((k.path.clone(), id.clone())),
                    Err(e) => Err(CompilerProblem::Unusable(name.into(), e.clone())),
                };
            }
        }
        let identity = compiler::probe_identity(&path).map_err(|e| e.to_string());
        match &identity {
            Ok(id) => log::info!("compiler {name} = {} ({id})", path.display()),
            Err(e) => log::warn!("compiler {name} at {} is unusable: {e}", path.display()),
        }
        self.known.insert(
            name.to_string(),
            Known {
                path: path.clone(),
                stamp: st,
                identity: identity.clone(),
            },
        );
        identity
            .map(|id| (path, id))
            .map_err(|e| CompilerProblem::Unusable(name.into(), e))
    }

    /// Why this box has no compiler it can run (`None`: it has one), after `probe_all`.
    pub fn missing(&self) -> Option<String> {
        if self.known.values().any(|k| k.identity.is_ok()) {
            return None;
        }
        let path: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        let what = if self.known.is_empty() {
            "no compiler"
        } else {
            "no working compiler"
        };
        Some(format!("{what} in {}", path.join(":")))
    }

    /// Distinct identities known so far, with the names that have them.
    pub fn identities(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .known
            .iter()
            .filter_map(|(n, k)| Some((n.clone(), k.identity.clone().ok()?)))
            .collect();
        v.sort();
        v
    }
}

/// Checks the extensions a request names: only the preprocessed forms gcc will not
/// preprocess again (`input` is `None` for a job that ships its sources: the manifest names
/// the source).
pub fn check_exts(input: Option<&str>, output: &str) -> Result<(), String> {
    if let Some(input) = input.filter(|i| !matches!(*i, "i" | "ii" | "s")) {
        return Err(format!(
            "input extension \"{input}\" is not one of i, ii, s (preprocessed input)"
        ));
    }
    if !matches!(output, "o" | "s") {
        return Err(format!("output extension \"{output}\" is not o or s"));
    }
    Ok(())
}

/// The input of an accepted job, written piece by piece into the job's private dir as the
/// client sends it (so a 3 MB kernel translation unit never sits in the daemon's memory
/// whole). Dropping a spool that never became a job removes the dir.
#[derive(Debug)]
pub struct Spool {
    guard: DirGuard,
    file: fs::File,
    path: PathBuf,
    pub bytes: usize,
    /// The last bytes of the previous piece, so `.incbin` split across pieces is found.
    carry: [u8; 8],
    carry_len: usize,
    /// Set once the text names `.incbin`/`.include`, which would make the assembler read the
    /// box's file, not the master's; the job is refused at the end.
    pub reads_files: bool,
}

impl Spool {
    /// Creates the job dir (mode 0700) and its input file.
    pub fn create(root: &Path, seq: u64, input_ext: &str) -> io::Result<Spool> {
        let dir = make_dir(root, seq)?;
        let guard = DirGuard(Some(dir.clone()));
        let path = dir.join(format!("input.{input_ext}"));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Spool {
            guard,
            file,
            path,
            bytes: 0,
            carry: [0; 8],
            carry_len: 0,
            reads_files: false,
        })
    }

    /// Appends a piece of the input.
    pub fn write(&mut self, piece: &[u8]) -> io::Result<()> {
        self.scan(piece);
        self.append(piece)
    }

    /// Writes `piece` again after `write` failed on a full disk and room was made: what
    /// half of it was written is cut off first.
    pub fn rewrite(&mut self, piece: &[u8]) -> io::Result<()> {
        use std::io::Seek as _;
        self.file.set_len(self.bytes as u64)?;
        self.file.seek(io::SeekFrom::Start(self.bytes as u64))?;
        self.append(piece)
    }

    fn append(&mut self, piece: &[u8]) -> io::Result<()> {
        use std::io::Write as _;
        self.file.write_all(piece)?;
        self.bytes += piece.len();
        Ok(())
    }

    /// Looks for `.incbin`/`.include` in the piece, and across the seam with the last one.
    fn scan(&mut self, piece: &[u8]) {
        if !self.reads_files {
            // The seam: the end of the last piece and the start of this one.
            let mut seam = [0u8; 16];
            let head = piece.len().min(8);
            seam[..self.carry_len].copy_from_slice(&self.carry[..self.carry_len]);
            seam[self.carry_len..self.carry_len + head].copy_from_slice(&piece[..head]);
            self.reads_files = compiler::mentions_assembler_include(&seam[..self.carry_len + head])
                || compiler::mentions_assembler_include(piece);
            self.carry_len = piece.len().min(8);
            self.carry[..self.carry_len].copy_from_slice(&piece[piece.len() - self.carry_len..]);
        }
    }

    /// The job dir, now owned by the caller (a `Job`).
    fn into_dir(mut self) -> PathBuf {
        self.guard
            .0
            .take()
            .expect("a spool owns its dir until here")
    }
}

/// A child's stdout or stderr, read until it would block. std hands blocking pipes: the loop
/// makes each non-blocking when it registers it (`event_loop`), before anything reads it.
pub type Pipe = fs::File;

/// A compile that is running or has finished.
pub struct Job {
    pub dir: PathBuf,
    pub child: Child,
    pub pidfd: OwnedFd,
    pub stdout: Option<Pipe>,
    pub stderr: Option<Pipe>,
    out_buf: Vec<u8>,
    err_buf: Vec<u8>,
    out_dropped: usize,
    err_dropped: usize,
    pub status: Option<std::process::ExitStatus>,
    pub started: Instant,
    /// When the compiler exited, and the most memory it held (KiB).
    pub ended: Option<Instant>,
    pub peak_kib: u64,
    output: PathBuf,
    output_ext: String,
    pub label: String,
    /// Where a sources job's compiler writes the dependency file.
    depfile: Option<PathBuf>,
    /// While the audit's preprocessing runs (the running child is it): the audit, and the
    /// compile to start once it passed.
    audit: Option<(Audit, Start)>,
    /// A shipped job's mirror (see `tree::Mirror`), until `take_mirror`; its root is taken
    /// out of what the compiler says and of the dependency file (`result` comes first).
    mirror: Option<Mirror>,
}

/// What it takes to start a compiler.
#[derive(Clone)]
struct Start {
    compiler: PathBuf,
    argv: Vec<OsString>,
    cwd: PathBuf,
    /// The client's locale variables, so messages come in the user's language.
    locale: Vec<(String, String)>,
    /// A shipped job's mirror, to read.
    mirror: Option<PathBuf>,
}

/// A child just started, with its pidfd and its pipes.
struct Started {
    child: Child,
    pidfd: OwnedFd,
    stdout: Pipe,
    stderr: Pipe,
}

impl Start {
    /// Starts the child in its own process group, with the job dir as its TMPDIR, in the
    /// sandbox when the kernel has one.
    fn spawn(&self, dir: &Path) -> io::Result<Started> {
        let sandbox = super::sandbox::sandbox(&self.compiler, dir, self.mirror.as_deref())?;
        let mut cmd = Command::new(&self.compiler);
        // Without a sandbox nothing contains the assembler: it reads its input past the
        // guard first (from a file: no `-pipe`).
        let guard = match &sandbox {
            Some(_) => None,
            None => as_guard::wrapper(&self.compiler),
        };
        let piped = |a: &&OsString| guard.is_none() || *a != "-pipe";
        // Without a sandbox a line marker (`# 1 "/etc/shadow"`) would make gcc quote a line
        // of the box's file under its next diagnostic: no quoted source lines then (given
        // last, so that the job's own options cannot turn them back on).
        let no_quotes = sandbox.is_none().then_some("-fno-diagnostics-show-caret");
        cmd.args(guard.iter().flatten())
            .args(self.argv.iter().filter(piped))
            .args(no_quotes)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("TMPDIR", dir)
            .env_remove("LANG")
            .env_remove("LC_ALL")
            .env_remove("LC_CTYPE")
            .env_remove("LC_MESSAGES")
            .envs(self.locale.iter().map(|(k, v)| (k, v)))
            .process_group(0);
        if let Some(sb) = &sandbox {
            sb.apply(&mut cmd);
        }
        // No file a compile writes may outgrow what the box would send back (a `.fill` of a
        // few bytes would otherwise fill its disk), nor its data the box's memory.
        sys::limit_child(&mut cmd, FILE_CAP, MEMORY_CAP.load(Ordering::Relaxed));
        let mut child = cmd.spawn()?;
        drop(sandbox);
        let pidfd = match sys::pidfd_open(child.id()) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let stdout = Pipe::from(OwnedFd::from(child.stdout.take().expect("piped")));
        let stderr = Pipe::from(OwnedFd::from(child.stderr.take().expect("piped")));
        Ok(Started {
            child,
            pidfd,
            stdout,
            stderr,
        })
    }
}

/// How to run one compile: the job's private dir (removed with the job), the compiler's
/// arguments and working directory, where its object and dependency file go, and for a
/// shipped job the audit to pass first and its mirror of the master's files (whose root is
/// taken out of what the compiler says).
pub struct Launch {
    pub dir: PathBuf,
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    pub output: PathBuf,
    pub depfile: Option<PathBuf>,
    pub audit: Option<Audit>,
    /// A shipped job's mirror, given back to the pool when the job is over.
    pub mirror: Option<Mirror>,
}

/// Why a finished job gets no `Done`.
#[derive(Debug)]
pub enum Withheld {
    /// The object or dependency file cannot be read, or the compile cannot start after its
    /// audit (a full disk on the box): the box's problem, so the client tries another.
    Box(String),
    /// The audit's preprocessing opened this file, outside the job's mirror.
    Outside(PathBuf),
    /// The audit cannot vouch for the job (it says why).
    Unchecked(&'static str),
    /// Without a sandbox, the assembler's guard refused its input (what it said).
    Guard(String),
}

impl std::fmt::Display for Withheld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Withheld::Box(e) => write!(f, "{e}"),
            Withheld::Outside(p) => write!(
                f,
                "preprocessing it opened {}, outside the job's files; not compiled",
                p.display()
            ),
            Withheld::Unchecked(why) => write!(f, "{why}; not compiled"),
            Withheld::Guard(said) => write!(f, "not assembled: {said}"),
        }
    }
}

/// What the peer is told for every job that fails its audit, the same words whatever the
/// cause: that a name its macros make opens a file of the box, or that no such file exists,
/// is the box's business. A `BadRequest`, so the client compiles the job from text it
/// preprocesses itself.
pub const WITHHELD_REPLY: &str = "this box cannot vouch that the job reads only its own \
    files (an include named by a macro, or a file it could not open); compile it where it was \
    run";

/// Whether a failed compiler's stderr says the disk or the quota was full (`ENOSPC`,
/// `EDQUOT` in the C locale): the box's problem, not the job's.
fn out_of_space(stderr: &[u8]) -> bool {
    [&b"No space left on device"[..], b"Disk quota exceeded"]
        .iter()
        .any(|w| stderr.windows(w.len()).any(|x| x == *w))
}

/// Whether a failed compiler's stderr says it could not open a file (gcc's and cc1's
/// words in the C locale; with a translated locale the client sent, the reply shows the
/// box's answer, which says as much as the sandbox lets it).
fn could_not_open(stderr: &[u8]) -> bool {
    [
        &b"No such file or directory"[..],
        b"Permission denied",
        b"couldn't open",
        b"PCH file",
        b"cannot open",
    ]
    .iter()
    .any(|w| stderr.windows(w.len()).any(|x| x == *w))
}

/// `text` with every `root/` made `/`.
fn strip_root(text: Vec<u8>, root: Option<&[u8]>) -> Vec<u8> {
    let Some(root) = root.filter(|r| !r.is_empty()) else {
        return text;
    };
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(root) && text.get(i + root.len()) == Some(&b'/') {
            i += root.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// Creates the job's private temp dir (mode 0700).
pub fn make_dir(root: &Path, seq: u64) -> io::Result<PathBuf> {
    let dir = root.join(format!("rccd-{}-{seq}", sys::getpid()));
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Whether this process can make files in `dir`: makes one and removes it. A full disk
/// passes (a file with no data needs no room on most file systems, and `health` says `full`
/// from the free space).
pub fn probe_dir(dir: &Path) -> io::Result<()> {
    let p = dir.join(format!("rccd-{}-probe", sys::getpid()));
    let made = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p);
    match made {
        Ok(_) => fs::remove_file(&p),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::remove_file(&p),
        Err(e) if sys::no_space(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes temp dirs left by rccd processes that no longer run (a crash or SIGKILL).
pub fn clean_stale(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("rccd-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != sys::getpid() && !sys::pid_alive(pid) {
            log::info!("removing stale job dir {}", e.path().display());
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl Job {
    /// Starts the compiler on the spooled input, in its dir. The dir is removed when the job
    /// is dropped, whatever happened.
    pub fn start(
        spool: Spool,
        compiler: &Path,
        args: &BoxArgs,
        req: &JobRequest,
    ) -> io::Result<Job> {
        let input_path = spool.path.clone();
        let dir = spool.into_dir();
        let output = dir.join(format!("output.{}", req.output_ext));
        // Every element is one the box wrote: the options from their typed form, then paths
        // of its own (absolute, in the job dir).
        let mut argv: Vec<OsString> = args.argv(None).into_iter().map(OsString::from).collect();
        argv.push(input_path.into());
        argv.push("-o".into());
        argv.push(output.clone().into());
        if !req.cwd.is_empty() {
            // The preprocessed text names the master's directory; map ours away in case
            // anything (the assembler's debug info) still records where the compiler ran.
            let mut map = OsString::from("-fdebug-prefix-map=");
            map.push(&dir);
            map.push("=");
            map.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&req.cwd));
            argv.push(map);
        }
        let launch = Launch {
            cwd: dir.clone(),
            dir,
            argv,
            output,
            depfile: None,
            audit: None,
            mirror: None,
        };
        Job::spawn(launch, compiler, req)
    }

    /// Starts `compiler` as `launch` says (its audit first, if it has one); the job dir is
    /// removed when the job is dropped.
    pub fn spawn(launch: Launch, compiler: &Path, req: &JobRequest) -> io::Result<Job> {
        let Launch {
            dir,
            argv,
            cwd,
            output,
            depfile,
            audit,
            mirror,
        } = launch;
        let guard = DirGuard(Some(dir.clone()));
        let compile = Start {
            compiler: compiler.to_path_buf(),
            argv,
            cwd,
            locale: req.locale.clone(),
            mirror: mirror.as_ref().map(|m| m.root().to_path_buf()),
        };
        let (first, audit) = match audit {
            Some(a) => {
                let pre = Start {
                    argv: a.argv.clone(),
                    ..compile.clone()
                };
                (pre, Some((a, compile)))
            }
            None => (compile, None),
        };
        let c = first.spawn(&dir)?;
        let mut guard = guard;
        guard.0 = None;
        Ok(Job {
            dir,
            child: c.child,
            pidfd: c.pidfd,
            stdout: Some(c.stdout),
            stderr: Some(c.stderr),
            out_buf: Vec::new(),
            err_buf: Vec::new(),
            out_dropped: 0,
            err_dropped: 0,
            status: None,
            started: Instant::now(),
            ended: None,
            peak_kib: 0,
            output,
            output_ext: req.output_ext.clone(),
            label: req.label.clone(),
            depfile,
            audit,
            mirror,
        })
    }

    /// Drains one pipe until it would block; closes it at EOF.
    pub fn drain(&mut self, stderr: bool) {
        let (pipe, buf, dropped) = if stderr {
            (&mut self.stderr, &mut self.err_buf, &mut self.err_dropped)
        } else {
            (&mut self.stdout, &mut self.out_buf, &mut self.out_dropped)
        };
        let Some(p) = pipe.as_mut() else {
            return;
        };
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match p.read(&mut chunk) {
                Ok(0) => {
                    *pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = OUTPUT_CAP.saturating_sub(buf.len());
                    buf.extend_from_slice(&chunk[..n.min(room)]);
                    *dropped += n - n.min(room);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    *pipe = None;
                    return;
                }
            }
        }
    }

    /// Collects the exit status once the pidfd said the child exited.
    pub fn reap(&mut self) {
        if self.status.is_none() {
            // wait4 rather than std's try_wait: it also says how much memory the compile
            // took, which the box's memory admission learns from.
            if let Ok(Some((st, peak_kib))) = sys::reap(self.child.id()) {
                self.status = Some(st);
                self.ended = Some(Instant::now());
                self.peak_kib = peak_kib;
            }
        }
    }

    /// The mirror's root as bytes, while the job holds its mirror.
    fn mirror_root(&self) -> Option<&[u8]> {
        self.mirror
            .as_ref()
            .map(|m| m.root().as_os_str().as_encoded_bytes())
    }

    /// The mirror of a job whose compiler is gone, for the next job.
    pub fn take_mirror(&mut self) -> Option<Mirror> {
        self.status.as_ref()?;
        self.mirror.take()
    }

    pub fn is_complete(&self) -> bool {
        self.status.is_some() && self.stdout.is_none() && self.stderr.is_none()
    }

    /// Whether the running (or finished) child is the audit's preprocessing.
    pub fn auditing(&self) -> bool {
        self.audit.is_some()
    }

    /// The audit's preprocessing is complete: `Ok(true)` if it passed and the compile now
    /// runs (the loop watches its new pipes and pidfd); `Ok(false)` if it was killed (a
    /// timeout, the box too hot, the client gone), so the job ends as a killed compile does,
    /// saying nothing; `Err` if it failed the audit.
    pub fn after_audit(&mut self) -> Result<bool, Withheld> {
        let (audit, compile) = self.audit.take().expect("auditing");
        let st = self.status.expect("complete job has a status");
        let said = std::mem::take(&mut self.err_buf);
        let dropped = self.err_dropped + self.out_dropped;
        self.out_buf.clear();
        (self.out_dropped, self.err_dropped) = (0, 0);
        if let Some(p) = audit.outside(&said) {
            return Err(Withheld::Outside(p));
        }
        if st.signal().is_some() {
            return Ok(false);
        }
        if dropped > 0 {
            return Err(Withheld::Unchecked(
                "preprocessing it said more than the box keeps, so not every file it opened \
                 could be checked",
            ));
        }
        if !st.success() {
            // How it failed (no such file, permission denied) would tell which files exist
            // on the box; the master's own preprocessing gives the user gcc's words.
            return Err(Withheld::Unchecked("its preprocessing failed"));
        }
        let c = compile.spawn(&self.dir).map_err(|e| {
            Withheld::Box(format!(
                "cannot start the compile on this box after its audit: {e}"
            ))
        })?;
        self.child = c.child;
        self.pidfd = c.pidfd;
        self.stdout = Some(c.stdout);
        self.stderr = Some(c.stderr);
        self.status = None;
        self.ended = None;
        Ok(true)
    }

    /// Kills the compiler and everything it started (cc1, as).
    pub fn kill(&self) {
        let _ = sys::kill_group(self.child.id(), libc::SIGKILL);
    }

    /// A failed compile whose words the client does not get: the guard refused its input,
    /// the box's disk was full, or it could not open a file.
    fn failure_withheld(&self) -> Option<Withheld> {
        if as_guard::refused(&self.err_buf) {
            let said = String::from_utf8_lossy(&self.err_buf);
            let line = said.lines().find(|l| l.contains(as_guard::REFUSAL));
            return Some(Withheld::Guard(line.unwrap_or_default().to_string()));
        }
        if out_of_space(&self.err_buf) {
            // Its "error" is the box's full disk: the client compiles it elsewhere.
            return Some(Withheld::Box(
                "the disk of this box filled up while it compiled (No space left on device)".into(),
            ));
        }
        if could_not_open(&self.err_buf) {
            // Whether it was missing or denied would tell which files the box has (a
            // `#pragma GCC dependency` or `pch_preprocess` of any path): the same words for
            // both, and the client compiles it where it was run, where the files are.
            return Some(Withheld::Unchecked("it failed to open a file"));
        }
        None
    }

    /// What a compile that succeeded wrote, to send back: its object (none if it wrote
    /// none) and its dependency file. Reading them can fail (a full disk on the box): that
    /// is the box's problem, not the user's.
    fn outputs(&self, max_output: usize) -> Result<Vec<(String, Vec<u8>)>, Withheld> {
        let unreadable = |e: io::Error| {
            Withheld::Box(format!(
                "compiled but cannot read the object on this box: {e}"
            ))
        };
        let mut outputs = Vec::new();
        // Looked at before it is read: a few bytes of `.fill` make an object of any size.
        if let Ok(m) = fs::metadata(&self.output) {
            if m.len() > max_output as u64 {
                return Err(Withheld::Box(format!(
                    "the object is {} MiB, more than this box sends (--max-body-mib {})",
                    m.len() >> 20,
                    max_output >> 20
                )));
            }
        }
        match fs::read(&self.output) {
            Ok(data) => outputs.push((self.output_ext.clone(), data)),
            // A compiler that succeeds without writing its output (`-Wa,--version`
            // prints and stops) is the job's doing: say so with no output, and the
            // client compiles it at home.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(unreadable(e)),
        }
        if let Some(d) = &self.depfile {
            let text = fs::read(d).map_err(unreadable)?;
            outputs.push(("d".into(), strip_root(text, self.mirror_root())));
        }
        Ok(outputs)
    }

    /// The reply for a complete job: what the compiler said and, if it succeeded, what it
    /// wrote (`outputs`); or why the peer gets none of it (`Withheld`).
    pub fn result(&mut self, max_output: usize) -> Result<Done, Withheld> {
        let st = self.status.expect("complete job has a status");
        let exit = match (st.code(), st.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            _ => Exit::Signal(0),
        };
        if exit != Exit::Code(0) {
            if let Some(w) = self.failure_withheld() {
                return Err(w);
            }
        }
        let outputs = match exit {
            Exit::Code(0) => self.outputs(max_output)?,
            _ => Vec::new(),
        };
        let mut stderr = std::mem::take(&mut self.err_buf);
        if self.err_dropped > 0 || self.out_dropped > 0 {
            stderr.extend_from_slice(
                format!(
                    "rccd: dropped {} bytes of stdout and {} bytes of stderr past the {} byte cap\n",
                    self.out_dropped, self.err_dropped, OUTPUT_CAP
                )
                .as_bytes(),
            );
        }
        let stdout = std::mem::take(&mut self.out_buf);
        let root = self.mirror_root();
        Ok(Done {
            exit,
            stdout: strip_root(stdout, root),
            stderr: strip_root(stderr, root),
            outputs,
            compile_ms: self
                .ended
                .map_or(0, |e| e.duration_since(self.started).as_millis() as u32),
        })
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Only on shutdown or a bug: never leave a compiler running or a zombie behind.
            self.kill();
            let _ = self.child.wait();
            self.status = None;
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            log::warn!("could not remove job dir {}: {e}", self.dir.display());
        }
    }
}

/// Removes a job dir if starting the job failed half-way.
#[derive(Debug)]
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the spooled text, sent in `pieces`, is refused for reading a box's file.
    fn refused(pieces: &[&[u8]]) -> bool {
        let root = std::env::temp_dir();
        let seq = 1_000_000 + pieces.len() as u64 * 1000 + pieces[0].len() as u64;
        let mut s = Spool::create(&root, seq, "i").unwrap();
        for p in pieces {
            s.write(p).unwrap();
        }
        s.reads_files
    }

    #[test]
    fn incbin_is_refused() {
        assert!(!refused(&[b"int x;"]));
        assert!(refused(&[b"asm(\".incbin \\\"/etc/shadow\\\"\");"]));
        // Also when the directive is split across two pieces.
        assert!(refused(&[b"asm(\".inc", b"bin \\\"/etc/shadow\\\"\");"]));
    }

    #[test]
    fn a_piece_written_again_after_a_full_disk_replaces_its_half() {
        let root = std::env::temp_dir();
        let mut s = Spool::create(&root, 2_000_000 + u64::from(sys::getpid() % 1000), "i").unwrap();
        s.write(b"int a;\n").unwrap();
        // As if `write` had failed half-way through the next piece.
        {
            use std::io::Write as _;
            s.file.write_all(b"int b").unwrap();
        }
        s.rewrite(b"int b;\n").unwrap();
        assert_eq!(fs::read(&s.path).unwrap(), b"int a;\nint b;\n");
        assert_eq!(s.bytes, 14);
    }

    #[test]
    fn a_full_disk_in_a_compilers_words_is_the_boxs_problem() {
        let said = b"{standard input}: Fatal error: can't write 3885 bytes to section .text of \
            /tmp/x/output.o: 'No space left on device'\n";
        assert!(out_of_space(said));
        assert!(out_of_space(
            b"cc1: error: /tmp/x/cc.s: Disk quota exceeded"
        ));
        assert!(!out_of_space(
            b"x.c:1:1: error: expected ';' before '}' token"
        ));
    }

    #[test]
    fn a_temp_dir_is_probed_by_making_a_file_there() {
        let d = std::env::temp_dir().join(format!("rcc-probe-{}", sys::getpid()));
        let _ = fs::remove_dir_all(&d);
        assert_eq!(
            probe_dir(&d).map_err(|e| e.kind()),
            Err(io::ErrorKind::NotFound)
        );
        fs::create_dir(&d).unwrap();
        probe_dir(&d).unwrap();
        // Nothing is left of the probe.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        fs::remove_dir(&d).unwrap();
    }
}
