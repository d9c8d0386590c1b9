//! The wire format between `rcc` and `rccd`: frames, version, size caps. Bytes in, bytes out;
//! no sockets, no compilers (it carries a job, it does not interpret argv).
//!
//! # Frames
//!
//! Every frame is a 12-byte header and a body:
//!
//! ```text
//! offset 0  3 bytes  magic "RCC"
//!        3  u8       protocol version (VERSION)
//!        4  u8       kind (see `Kind`)
//!        5  u8       flags: bit 0 = body is zlib-compressed; other bits must be 0
//!        6  u16      reserved, must be 0
//!        8  u32      body length on the wire, big-endian
//! ```
//!
//! Bodies are sequences of fields: `u8`, `u32`/`u64`/`i32` big-endian, and byte strings as a
//! `u32` length followed by the bytes. Text fields must be UTF-8. A decoder ignores bytes after
//! the fields it knows, so a later minor revision can append fields without a new version.
//!
//! # Conversation
//!
//! One TCP connection carries one request. The client speaks first; its first frame is the
//! hello, which names the version and what it wants:
//!
//! ```text
//! status:  client StatusRequest            -> daemon Status, close
//! compile: client JobRequest               -> daemon Accept | Reject
//!          client Input, Input, ... (the preprocessed text, in pieces as it is made)
//!          client InputEnd
//!                                          <- daemon Progress (every few seconds while compiling)
//!                                          <- daemon Done (status, stdout, stderr, outputs) | Reject
//! ```
//!
//! The daemon answers the `JobRequest` before the input travels, so a busy, throttled or
//! mismatched box costs the client one round trip, not a transfer. The client starts its
//! preprocessor once the box accepted and sends the text in pieces as it comes (each `Input`
//! frame compressed on its own), so preprocessing, compressing, the transfer and the box's
//! writing overlap instead of adding up; the box spools the pieces to its job dir and starts the
//! compiler at `InputEnd`. `Progress` frames keep a long compile on a slow box alive: the client
//! gives up on a box that stops talking, never on one that compiles slowly.
//! `JobRequest::mode` says how the input travels. `Mode::Preprocessed`: `Input` frames, as
//! above. `Mode::Sources`: the box preprocesses, from the master's own files sent by content
//! hash:
//!
//! ```text
//! sources: client JobRequest (mode Sources)  -> daemon Accept | Reject
//!          client Manifest (source, search options, dependency file, files: path, size,
//!                           hash; each path as the bytes it shares with the one before
//!                           and the rest; sent uncompressed, being mostly hashes)
//!                                            <- daemon Need (the files whose hash it lacks)
//!          client Blob, Blob, ... (one per needed file, each compressed on its own)
//!          client InputEnd
//!                                            <- daemon Progress ... Done ("o", and "d") | Reject
//! ```
//!
//! A daemon that does not know a mode refuses the request as malformed; the client then sends
//! that box preprocessed jobs.
//!
//! A daemon that cannot serve a request says why in a `Reject` (busy, throttled, compiler
//! mismatch, not allowed, bad request...) with a human-readable text, then closes.

use crate::wire::compress;
use std::fmt;

pub const MAGIC: &[u8; 3] = b"RCC";
/// The protocol version this build speaks.
pub const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 12;
const FLAG_DEFLATE: u8 = 1;

/// Frame kinds. Requests are below 16, replies from 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    JobRequest = 1,
    StatusRequest = 2,
    Input = 3,
    InputEnd = 4,
    Manifest = 5,
    Blob = 6,
    Accept = 16,
    Reject = 17,
    Progress = 18,
    Done = 19,
    Status = 20,
    Need = 21,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::JobRequest,
            2 => Kind::StatusRequest,
            3 => Kind::Input,
            4 => Kind::InputEnd,
            5 => Kind::Manifest,
            6 => Kind::Blob,
            16 => Kind::Accept,
            17 => Kind::Reject,
            18 => Kind::Progress,
            19 => Kind::Done,
            20 => Kind::Status,
            21 => Kind::Need,
            _ => return None,
        })
    }

    /// Largest body of this kind, before and after inflating, given the limits.
    fn cap(self, limits: &Limits) -> usize {
        match self {
            Kind::Input | Kind::Done | Kind::Blob => limits.max_body,
            Kind::JobRequest | Kind::Status => limits.max_small,
            // Room for `MAX_FILES` entries with paths of 200 bytes: many times what a real
            // job's manifest takes.
            Kind::Manifest => 4 << 20,
            Kind::Need => 1 << 20,
            Kind::StatusRequest | Kind::InputEnd | Kind::Accept | Kind::Reject | Kind::Progress => {
                64 * 1024
            }
        }
    }
}

/// Size caps a decoder enforces. Every length that arrives is checked against one of these
/// before anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `Input` or `Done` body, on the wire and after inflating.
    pub max_body: usize,
    /// Largest `JobRequest` or `Status` body.
    pub max_small: usize,
    /// Most arguments in a job.
    pub max_args: usize,
    /// Longest single argument.
    pub max_arg_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 256 << 20,
            max_small: 1 << 20,
            max_args: 8192,
            max_arg_len: 64 * 1024,
        }
    }
}

/// How a job's input travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The client preprocessed; `Input` frames carry the text, `InputEnd` ends it.
    Preprocessed,
    /// The box preprocesses: `Manifest`, `Need`, `Blob`s, `InputEnd`.
    Sources,
}

/// Most files one manifest may name, several times what a large C++ unit reads; what a
/// manifest costs the box is bounded further by `daemon::tree::check_budget`.
pub const MAX_FILES: usize = 8_192;
/// What the decoder says of a longer list (`MAX_FILES` in words).
const TOO_MANY_FILES: &str = "more than 8192 files (the limit of files per manifest)";
/// The longest path a manifest may name (Linux's PATH_MAX).
pub const MAX_PATH: usize = 4096;

/// A file a sources job reads, as the master has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Absolute, in plain form (no `.`, `..`, `//`).
    pub path: String,
    pub size: u64,
    pub hash: [u8; 32],
}

/// The dependency file a sources job writes (`-MD`/`-MMD`), made on the box and rewritten
/// on the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepRequest {
    /// `-MMD` (system headers left out) rather than `-MD`.
    pub user_only: bool,
    /// `-MT` targets, as given.
    pub mt: Vec<String>,
    /// `-MQ` targets, as given.
    pub mq: Vec<String>,
    /// `-MP`.
    pub phony: bool,
}

/// What a sources job compiles, and the files it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The source as the command names it (relative to `JobRequest::cwd`, or absolute).
    pub source: String,
    /// Options naming a directory or file, in order: `-iquote`, `-I`, `-isystem`,
    /// `-idirafter`, `-include`, `-imacros`, each with its path as gcc would see it. The box
    /// puts its private tree in front of absolute ones.
    pub paths: Vec<(String, String)>,
    pub deps: Option<DepRequest>,
    pub files: Vec<FileEntry>,
}

/// The options a manifest may name a path with.
pub const PATH_OPTIONS: [&str; 6] = [
    "-iquote",
    "-I",
    "-isystem",
    "-idirafter",
    "-include",
    "-imacros",
];

/// The hello of a compile: who should compile what, with which flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    pub mode: Mode,
    /// Compress the `Input` and `Done` bodies (the `,lzo`/`,deflate` host option).
    pub compress: bool,
    /// Compiler file name, e.g. `gcc` or `aarch64-linux-gnu-gcc` (never a path).
    pub compiler: String,
    /// The client's compiler identity; the daemon refuses the job if its own differs.
    pub identity: String,
    /// Arguments for the compiler, without input and output (the daemon adds both).
    pub args: Vec<Vec<u8>>,
    /// Extension of the input file the daemon writes (`i`, `ii`, `s`).
    pub input_ext: String,
    /// Extension of the output the compiler makes (`o`, `s`).
    pub output_ext: String,
    /// The client's working directory, for debug-info path mapping on the box.
    pub cwd: Vec<u8>,
    /// A name for logs (the source file as the user wrote it).
    pub label: String,
    /// The client's locale variables (`LANG`, `LC_ALL`, `LC_CTYPE`, `LC_MESSAGES` only), so
    /// the box's compiler words and quotes its diagnostics as the master's would.
    pub locale: Vec<(String, String)>,
}

/// The environment variables a job may carry: locale only, never anything that changes
/// what the compiler runs or reads.
pub const LOCALE_VARS: [&str; 4] = ["LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES"];

/// Whether `value` looks like a locale name (`C`, `C.UTF-8`, `de_DE.utf8@euro`): nothing
/// a path or a shell could make use of.
pub fn is_locale_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@'))
}

/// Why a daemon did not take or could not finish a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// All slots and the queue are full: try another box now.
    Busy,
    /// The box's compiler of that name is not the client's.
    CompilerMismatch,
    /// The peer's address is not in the daemon's allow-list.
    NotAllowed,
    /// The request is malformed or asks for something the daemon never does.
    BadRequest,
    /// The box is thermally throttled.
    Throttled,
    /// The box has no allowed compiler of that name.
    NoCompiler,
    /// The client speaks a protocol version the daemon does not.
    Version,
    /// Something went wrong on the box that is not the client's fault (disk full...).
    Internal,
    /// The daemon is stopping.
    ShuttingDown,
    /// A reason this build does not know (sent by a newer peer).
    Other(u8),
}

impl RejectReason {
    pub fn code(self) -> u8 {
        match self {
            RejectReason::Busy => 1,
            RejectReason::CompilerMismatch => 2,
            RejectReason::NotAllowed => 3,
            RejectReason::BadRequest => 4,
            RejectReason::Throttled => 5,
            RejectReason::NoCompiler => 6,
            RejectReason::Version => 7,
            RejectReason::Internal => 8,
            RejectReason::ShuttingDown => 9,
            RejectReason::Other(c) => c,
        }
    }

    pub fn from_code(c: u8) -> RejectReason {
        match c {
            1 => RejectReason::Busy,
            2 => RejectReason::CompilerMismatch,
            3 => RejectReason::NotAllowed,
            4 => RejectReason::BadRequest,
            5 => RejectReason::Throttled,
            6 => RejectReason::NoCompiler,
            7 => RejectReason::Version,
            8 => RejectReason::Internal,
            9 => RejectReason::ShuttingDown,
            c => RejectReason::Other(c),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RejectReason::Busy => "busy",
            RejectReason::CompilerMismatch => "compiler-mismatch",
            RejectReason::NotAllowed => "not-allowed",
            RejectReason::BadRequest => "bad-request",
            RejectReason::Throttled => "throttled",
            RejectReason::NoCompiler => "no-compiler",
            RejectReason::Version => "version",
            RejectReason::Internal => "internal",
            RejectReason::ShuttingDown => "shutting-down",
            RejectReason::Other(_) => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    /// A hint: ask this box again after this many milliseconds (0: no hint).
    pub retry_after_ms: u32,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// The slots the daemon offers now (fewer than `jobs` while warm) and the jobs running
    /// (this one included), for scheduling.
    pub slots: u32,
    pub running: u32,
    /// Its `--jobs`. Appended in 0.1 (a decoder of an older daemon's Accept reads `slots`).
    pub jobs: u32,
}

/// How the compiler process ended on the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Files the compile produced, by role (`"o"` for the object); empty unless it succeeded.
    pub outputs: Vec<(String, Vec<u8>)>,
    /// How long the compiler ran on the box, from start to exit: how fast the box is now,
    /// without the transfer. Appended (0 from a daemon that does not say).
    pub compile_ms: u32,
}

/// Everything that travels, one variant per frame kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    JobRequest(JobRequest),
    StatusRequest,
    /// A piece of the input; the pieces in order are the whole.
    Input(Vec<u8>),
    /// The input is complete: compile.
    InputEnd,
    Accept(Accept),
    Reject(Reject),
    Progress,
    Done(Done),
    /// Ordered `key=value` pairs; see the daemon's status module for the keys.
    Status(Vec<(String, String)>),
    Manifest(Manifest),
    /// Indexes into the manifest's files, ascending.
    Need(Vec<u32>),
    /// One needed file: its index in the manifest and its content.
    Blob(u32, Vec<u8>),
}

impl Message {
    pub fn kind(&self) -> Kind {
        match self {
            Message::JobRequest(_) => Kind::JobRequest,
            Message::StatusRequest => Kind::StatusRequest,
            Message::Input(_) => Kind::Input,
            Message::InputEnd => Kind::InputEnd,
            Message::Accept(_) => Kind::Accept,
            Message::Reject(_) => Kind::Reject,
            Message::Progress => Kind::Progress,
            Message::Done(_) => Kind::Done,
            Message::Status(_) => Kind::Status,
            Message::Manifest(_) => Kind::Manifest,
            Message::Need(_) => Kind::Need,
            Message::Blob(..) => Kind::Blob,
        }
    }
}

/// What is wrong with bytes that arrived. Each is final for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    BadMagic,
    Version {
        theirs: u8,
    },
    UnknownKind(u8),
    BadFlags(u8),
    TooLarge {
        kind: Kind,
        len: usize,
        limit: usize,
    },
    Corrupt(compress::Error),
    Malformed {
        kind: Kind,
        what: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadMagic => write!(f, "not an rcc peer (bad magic; is this port a distccd?)"),
            Error::Version { theirs } => write!(
                f,
                "peer speaks protocol version {theirs}, this build speaks {VERSION}: \
                 install the same rcc release on client and boxes"
            ),
            Error::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            Error::BadFlags(b) => write!(f, "unknown frame flags {b:#04x}"),
            Error::TooLarge { kind, len, limit } => {
                write!(
                    f,
                    "{kind:?} frame of {len} bytes is over the limit of {limit} bytes"
                )
            }
            Error::Corrupt(e) => write!(f, "{e}"),
            Error::Malformed { kind, what } => write!(f, "malformed {kind:?} frame: {what}"),
        }
    }
}

impl std::error::Error for Error {}

/// A validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub compressed: bool,
    pub len: usize,
}

/// Checks the first 12 bytes of a frame. `Ok(None)`: not enough bytes yet.
pub fn decode_header(buf: &[u8], limits: &Limits) -> Result<Option<Header>, Error> {
    // Check what has arrived so far even before the header is complete, so garbage is
    // refused at its first byte.
    let have = buf.len().min(3);
    if buf[..have] != MAGIC[..have] {
        return Err(Error::BadMagic);
    }
    if buf.len() > 3 && buf[3] != VERSION {
        return Err(Error::Version { theirs: buf[3] });
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let kind = Kind::from_u8(buf[4]).ok_or(Error::UnknownKind(buf[4]))?;
    let flags = buf[5];
    if flags & !FLAG_DEFLATE != 0 || buf[6] != 0 || buf[7] != 0 {
        return Err(Error::BadFlags(flags));
    }
    let len = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    let limit = kind.cap(limits);
    if len > limit {
        return Err(Error::TooLarge { kind, len, limit });
    }
    Ok(Some(Header {
        kind,
        compressed: flags & FLAG_DEFLATE != 0,
        len,
    }))
}

/// Decodes one frame from the front of `buf`. Returns the message and how many bytes it
/// used, or `Ok(None)` when the frame is not complete yet (nothing is consumed).
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Message, usize)>, Error> {
    let Some(h) = decode_header(buf, limits)? else {
        return Ok(None);
    };
    let end = HEADER_LEN + h.len;
    if buf.len() < end {
        return Ok(None);
    }
    let raw = &buf[HEADER_LEN..end];
    let inflated;
    let body = if h.compressed {
        inflated = compress::inflate(raw, h.kind.cap(limits)).map_err(Error::Corrupt)?;
        &inflated[..]
    } else {
        raw
    };
    Ok(Some((parse_body(h.kind, body, limits)?, end)))
}

/// The message in a body of `kind`: one small parser per kind below, each beside the writer
/// it must agree with.
fn parse_body(kind: Kind, body: &[u8], limits: &Limits) -> Result<Message, Error> {
    let r = &mut Reader { buf: body, kind };
    Ok(match kind {
        Kind::JobRequest => Message::JobRequest(read_job_request(r, limits)?),
        Kind::StatusRequest => Message::StatusRequest,
        Kind::Input => Message::Input(body.to_vec()),
        Kind::InputEnd => Message::InputEnd,
        Kind::Accept => Message::Accept(read_accept(r)?),
        Kind::Reject => Message::Reject(read_reject(r)?),
        Kind::Progress => Message::Progress,
        Kind::Done => Message::Done(read_done(r)?),
        Kind::Status => Message::Status(read_status(r)?),
        Kind::Manifest => Message::Manifest(read_manifest(r, limits)?),
        Kind::Need => Message::Need(read_need(r)?),
        Kind::Blob => {
            let index = r.u32()?;
            Message::Blob(index, r.buf.to_vec())
        }
    })
}

/// The 12-byte header for a body of `len` bytes.
pub fn header(kind: Kind, compressed: bool, len: usize) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..3].copy_from_slice(MAGIC);
    h[3] = VERSION;
    h[4] = kind as u8;
    h[5] = if compressed { FLAG_DEFLATE } else { 0 };
    h[8..].copy_from_slice(&(len as u32).to_be_bytes());
    h
}

/// Encodes a whole frame; `level` compresses the body with deflate at that level.
pub fn encode(msg: &Message, level: Option<u8>) -> Vec<u8> {
    let raw = body(msg);
    let (payload, compressed) = match level {
        Some(l) => (compress::deflate(&raw, l), true),
        None => (raw, false),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header(msg.kind(), compressed, payload.len()));
    out.extend_from_slice(&payload);
    out
}

/// The body of a message, uncompressed.
pub fn body(msg: &Message) -> Vec<u8> {
    let mut w = Writer::default();
    match msg {
        Message::JobRequest(j) => write_job_request(&mut w, j),
        Message::StatusRequest | Message::Progress | Message::InputEnd => {}
        Message::Input(data) => w.buf.extend_from_slice(data),
        Message::Accept(a) => write_accept(&mut w, a),
        Message::Reject(r) => write_reject(&mut w, r),
        Message::Done(d) => write_done(&mut w, d),
        Message::Status(kv) => write_status(&mut w, kv),
        Message::Manifest(m) => write_manifest(&mut w, m),
        Message::Need(v) => write_need(&mut w, v),
        Message::Blob(index, data) => {
            w.u32(*index);
            w.buf.extend_from_slice(data);
        }
    }
    w.buf
}

/// The body of a `Manifest` message, without a copy of the manifest to make one.
pub fn manifest_body(m: &Manifest) -> Vec<u8> {
    let mut w = Writer::default();
    write_manifest(&mut w, m);
    w.buf
}

// JobRequest: mode, compress, compiler, identity, arguments, input and output extensions,
// working directory, label, locale.

fn read_job_request(r: &mut Reader, limits: &Limits) -> Result<JobRequest, Error> {
    let mode = match r.u8()? {
        1 => Mode::Preprocessed,
        // 2 was sources with whole paths in the manifest: such a client is told
        // "unknown job mode" and sends this box preprocessed jobs, as a box that
        // knows only 2 makes this client do.
        3 => Mode::Sources,
        _ => return Err(r.bad("unknown job mode")),
    };
    Ok(JobRequest {
        mode,
        compress: r.u8()? != 0,
        compiler: r.text()?,
        identity: r.text()?,
        args: read_args(r, limits)?,
        input_ext: r.text()?,
        output_ext: r.text()?,
        cwd: r.bytes()?.to_vec(),
        label: r.text()?,
        locale: read_locale(r)?,
    })
}

fn write_job_request(w: &mut Writer, j: &JobRequest) {
    w.u8(match j.mode {
        Mode::Preprocessed => 1,
        Mode::Sources => 3,
    });
    w.u8(j.compress as u8);
    w.text(&j.compiler);
    w.text(&j.identity);
    w.u32(j.args.len() as u32);
    for a in &j.args {
        w.bytes(a);
    }
    w.text(&j.input_ext);
    w.text(&j.output_ext);
    w.bytes(&j.cwd);
    w.text(&j.label);
    w.pairs(&j.locale);
}

fn read_args(r: &mut Reader, limits: &Limits) -> Result<Vec<Vec<u8>>, Error> {
    let argc = r.count(limits.max_args, "too many arguments")?;
    let mut args = Vec::with_capacity(argc.min(4096));
    for _ in 0..argc {
        let a = r.bytes()?;
        if a.len() > limits.max_arg_len {
            return Err(r.bad("argument too long"));
        }
        args.push(a.to_vec());
    }
    Ok(args)
}

/// Only the variables of `LOCALE_VARS`, each naming a locale: a peer cannot set anything
/// that changes what the box's compiler runs or reads.
fn read_locale(r: &mut Reader) -> Result<Vec<(String, String)>, Error> {
    let n = r.count(LOCALE_VARS.len(), "too many locale variables")?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let (k, val) = (r.text()?, r.text()?);
        if !LOCALE_VARS.contains(&k.as_str()) || !is_locale_value(&val) {
            return Err(r.bad("a locale variable that is not a locale"));
        }
        v.push((k, val));
    }
    Ok(v)
}

// Accept: slots, running, jobs (appended: an older daemon's Accept ends before it).

fn read_accept(r: &mut Reader) -> Result<Accept, Error> {
    let (slots, running) = (r.u32()?, r.u32()?);
    let jobs = r.u32_or(slots)?;
    Ok(Accept {
        slots,
        running,
        jobs,
    })
}

fn write_accept(w: &mut Writer, a: &Accept) {
    w.u32(a.slots);
    w.u32(a.running);
    w.u32(a.jobs);
}

// Reject: reason code, retry hint, text.

fn read_reject(r: &mut Reader) -> Result<Reject, Error> {
    Ok(Reject {
        reason: RejectReason::from_code(r.u8()?),
        retry_after_ms: r.u32()?,
        text: r.text()?,
    })
}

fn write_reject(w: &mut Writer, r: &Reject) {
    w.u8(r.reason.code());
    w.u32(r.retry_after_ms);
    w.text(&r.text);
}

// Done: exit kind and value, stdout, stderr, outputs by role, compile time (appended).

fn read_done(r: &mut Reader) -> Result<Done, Error> {
    let exit = match (r.u8()?, r.u32()? as i32) {
        (0, c) => Exit::Code(c),
        (1, s) => Exit::Signal(s),
        _ => return Err(r.bad("unknown exit kind")),
    };
    let stdout = r.bytes()?.to_vec();
    let stderr = r.bytes()?.to_vec();
    let n = r.count(64, "too many outputs")?;
    let mut outputs = Vec::with_capacity(n);
    for _ in 0..n {
        outputs.push((r.text()?, r.bytes()?.to_vec()));
    }
    Ok(Done {
        exit,
        stdout,
        stderr,
        outputs,
        compile_ms: r.u32_or(0)?,
    })
}

fn write_done(w: &mut Writer, d: &Done) {
    let (k, v) = match d.exit {
        Exit::Code(c) => (0, c),
        Exit::Signal(s) => (1, s),
    };
    w.u8(k);
    w.u32(v as u32);
    w.bytes(&d.stdout);
    w.bytes(&d.stderr);
    w.u32(d.outputs.len() as u32);
    for (name, data) in &d.outputs {
        w.text(name);
        w.bytes(data);
    }
    w.u32(d.compile_ms);
}

// Status: key=value pairs.

fn read_status(r: &mut Reader) -> Result<Vec<(String, String)>, Error> {
    let n = r.count(4096, "too many status entries")?;
    let mut kv = Vec::with_capacity(n);
    for _ in 0..n {
        kv.push((r.text()?, r.text()?));
    }
    Ok(kv)
}

fn write_status(w: &mut Writer, kv: &[(String, String)]) {
    w.pairs(kv);
}

// Manifest: source, path options, dependency file, files.

fn read_manifest(r: &mut Reader, limits: &Limits) -> Result<Manifest, Error> {
    Ok(Manifest {
        source: r.text()?,
        paths: read_path_options(r, limits)?,
        deps: read_deps(r)?,
        files: read_files(r, limits)?,
    })
}

fn write_manifest(w: &mut Writer, m: &Manifest) {
    w.text(&m.source);
    w.pairs(&m.paths);
    write_deps(w, m.deps.as_ref());
    write_files(w, &m.files);
}

fn read_path_options(r: &mut Reader, limits: &Limits) -> Result<Vec<(String, String)>, Error> {
    let n = r.count(limits.max_args.saturating_mul(4), "too many path options")?;
    let mut paths = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let opt = r.text()?;
        if !PATH_OPTIONS.contains(&opt.as_str()) {
            return Err(r.bad("a path option that is not one"));
        }
        paths.push((opt, r.text()?));
    }
    Ok(paths)
}

/// 0 (none), 1 (`-MD`) or 2 (`-MMD`); then `-MP`, the `-MT` targets and the `-MQ` targets.
fn read_deps(r: &mut Reader) -> Result<Option<DepRequest>, Error> {
    let user_only = match r.u8()? {
        0 => return Ok(None),
        kind @ (1 | 2) => kind == 2,
        _ => return Err(r.bad("unknown dependency kind")),
    };
    let phony = r.u8()? != 0;
    let mt = read_targets(r)?;
    let mq = read_targets(r)?;
    Ok(Some(DepRequest {
        user_only,
        mt,
        mq,
        phony,
    }))
}

fn read_targets(r: &mut Reader) -> Result<Vec<String>, Error> {
    let n = r.count(64, "too many dependency targets")?;
    (0..n).map(|_| r.text()).collect()
}

fn write_deps(w: &mut Writer, deps: Option<&DepRequest>) {
    let Some(d) = deps else {
        w.u8(0);
        return;
    };
    w.u8(if d.user_only { 2 } else { 1 });
    w.u8(d.phony as u8);
    for list in [&d.mt, &d.mq] {
        w.u32(list.len() as u32);
        for t in list {
            w.text(t);
        }
    }
}

fn read_files(r: &mut Reader, limits: &Limits) -> Result<Vec<FileEntry>, Error> {
    let n = r.count(MAX_FILES, TOO_MANY_FILES)?;
    let mut files = Vec::with_capacity(n.min(4096));
    let mut prev = String::new();
    // Shared bytes cost nothing on the wire: without a bound, a small body could name
    // 100,000 paths of megabytes each. Whole paths may take what the body itself may (as
    // when each path travelled whole), none more than PATH_MAX.
    let mut left = Kind::Manifest.cap(limits);
    for _ in 0..n {
        let path = read_shared_path(r, &prev, &mut left)?;
        prev.clone_from(&path);
        let size = r.varint()?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(r.take(32)?);
        files.push(FileEntry { path, size, hash });
    }
    Ok(files)
}

/// A path written as how many bytes it shares with `prev` and the rest (see `write_files`),
/// taking its whole length from `left`.
fn read_shared_path(r: &mut Reader, prev: &str, left: &mut usize) -> Result<String, Error> {
    let shared = usize::try_from(r.varint()?).unwrap_or(usize::MAX);
    let len = usize::try_from(r.varint()?).unwrap_or(usize::MAX);
    let rest = r.take(len)?;
    if shared > prev.len() || !prev.is_char_boundary(shared) {
        return Err(r.bad("a path sharing more than the path before it has"));
    }
    let whole = shared + rest.len();
    if whole > MAX_PATH || whole > *left {
        return Err(r.bad("paths longer than a manifest may name"));
    }
    *left -= whole;
    let rest = std::str::from_utf8(rest).map_err(|_| r.bad("a path that is not UTF-8"))?;
    let mut path = String::with_capacity(whole);
    path.push_str(&prev[..shared]);
    path.push_str(rest);
    Ok(path)
}

/// A path shares its start with the one before (a job's headers live in a few directories,
/// and the manifest lists them sorted): each entry is the length shared, the rest's length
/// and bytes, the size (numbers as varints) and the hash. What is left is mostly hashes,
/// which do not compress, so a manifest travels uncompressed.
fn write_files(w: &mut Writer, files: &[FileEntry]) {
    w.u32(files.len() as u32);
    w.buf.reserve(files.len() * 64);
    let mut prev: &str = "";
    for f in files {
        let mut shared = prev
            .bytes()
            .zip(f.path.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        while !f.path.is_char_boundary(shared) {
            shared -= 1;
        }
        let rest = &f.path.as_bytes()[shared..];
        w.varint(shared as u64);
        w.varint(rest.len() as u64);
        w.buf.extend_from_slice(rest);
        prev = &f.path;
        w.varint(f.size);
        w.buf.extend_from_slice(&f.hash);
    }
}

// Need: indexes into the manifest's files.

fn read_need(r: &mut Reader) -> Result<Vec<u32>, Error> {
    let n = r.count(MAX_FILES, "too many files")?;
    let mut v = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        v.push(r.u32()?);
    }
    Ok(v)
}

fn write_need(w: &mut Writer, v: &[u32]) {
    w.u32(v.len() as u32);
    for i in v {
        w.u32(*i);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    kind: Kind,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: &'static str) -> Error {
        Error::Malformed {
            kind: self.kind,
            what,
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(self.bad("body ends inside a field"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn varint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(self.bad("a number too large"));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("a number too large"))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// An appended field: `default` when the body ends before it (an older peer).
    fn u32_or(&mut self, default: u32) -> Result<u32, Error> {
        if self.buf.is_empty() {
            Ok(default)
        } else {
            self.u32()
        }
    }
    /// How many of something follow, refused as `what` above `max`, before anything is
    /// allocated for them.
    fn count(&mut self, max: usize, what: &'static str) -> Result<usize, Error> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(self.bad(what));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn text(&mut self) -> Result<String, Error> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.bad("text field is not UTF-8"))
    }
}

#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Seven bits a byte, low first; the high bit says another byte follows.
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// A count, then each pair as two texts.
    fn pairs(&mut self, kv: &[(String, String)]) {
        self.u32(kv.len() as u32);
        for (k, v) in kv {
            self.text(k);
            self.text(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Message {
        Message::JobRequest(JobRequest {
            mode: Mode::Preprocessed,
            compress: true,
            compiler: "gcc".into(),
            identity: "gcc 12.2.0 x86_64-linux-gnu".into(),
            args: vec![b"-c".to_vec(), b"-O2".to_vec(), vec![0xff, 0x00]],
            input_ext: "i".into(),
            output_ext: "o".into(),
            cwd: b"/home/me/src".to_vec(),
            label: "hello.c".into(),
            locale: vec![("LANG".into(), "C.UTF-8".into())],
        })
    }

    #[test]
    fn appended_fields_default_when_an_older_peer_leaves_them_out() {
        // An Accept and a Done as the first 0.1 daemons wrote them, without `jobs` and
        // `compile_ms`.
        let mut body = Vec::new();
        body.extend_from_slice(&4u32.to_be_bytes());
        body.extend_from_slice(&1u32.to_be_bytes());
        match parse_body(Kind::Accept, &body, &Limits::default()).unwrap() {
            Message::Accept(a) => assert_eq!((a.slots, a.running, a.jobs), (4, 1, 4)),
            other => panic!("{other:?}"),
        }
        let mut done = vec![0u8];
        for n in [0u32, 0, 0, 0] {
            done.extend_from_slice(&n.to_be_bytes());
        }
        match parse_body(Kind::Done, &done, &Limits::default()).unwrap() {
            Message::Done(d) => assert_eq!((d.exit, d.compile_ms), (Exit::Code(0), 0)),
            other => panic!("{other:?}"),
        }
    }

    fn all() -> Vec<Message> {
        vec![
            job(),
            Message::StatusRequest,
            Message::Input(b"int x;\n".repeat(100)),
            Message::InputEnd,
            Message::Accept(Accept {
                slots: 3,
                running: 1,
                jobs: 4,
            }),
            Message::Reject(Reject {
                reason: RejectReason::Throttled,
                retry_after_ms: 5000,
                text: "82.0 C".into(),
            }),
            Message::Progress,
            Message::Done(Done {
                exit: Exit::Signal(9),
                stdout: b"out".to_vec(),
                stderr: b"err".to_vec(),
                outputs: vec![("o".into(), vec![1, 2, 3])],
                compile_ms: 812,
            }),
            Message::Status(vec![("slots".into(), "4".into())]),
            Message::Manifest(Manifest {
                source: "src/lvm.c".into(),
                paths: vec![
                    ("-I".into(), "include".into()),
                    ("-isystem".into(), "/usr/include".into()),
                    ("-include".into(), "/usr/include/stdc-predef.h".into()),
                ],
                deps: Some(DepRequest {
                    user_only: true,
                    mt: vec!["m".into()],
                    mq: vec!["obj/lvm.o".into(), "a$b".into()],
                    phony: true,
                }),
                files: vec![FileEntry {
                    path: "/w/src/lvm.c".into(),
                    size: 5 << 32 | 7,
                    hash: [7; 32],
                }],
            }),
            Message::Manifest(Manifest {
                source: "/abs/x.cc".into(),
                paths: vec![],
                deps: None,
                files: vec![],
            }),
            Message::Need(vec![0, 3, 99]),
            Message::Blob(3, b"#include <stdio.h>\n".to_vec()),
            Message::Blob(0, vec![]),
        ]
    }

    #[test]
    fn every_message_round_trips_plain_and_compressed() {
        let limits = Limits::default();
        for msg in all() {
            for level in [None, Some(1)] {
                let bytes = encode(&msg, level);
                let (back, used) = decode(&bytes, &limits).unwrap().unwrap();
                assert_eq!(back, msg);
                assert_eq!(used, bytes.len());
            }
        }
    }

    #[test]
    fn partial_input_consumes_nothing() {
        let limits = Limits::default();
        for msg in all() {
            let bytes = encode(&msg, Some(1));
            for cut in 0..bytes.len() {
                assert_eq!(
                    decode(&bytes[..cut], &limits),
                    Ok(None),
                    "{msg:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn a_manifest_names_only_path_options() {
        let m = Message::Manifest(Manifest {
            source: "a.c".into(),
            paths: vec![("-fplugin=".into(), "/x.so".into())],
            deps: None,
            files: vec![],
        });
        assert!(matches!(
            decode(&encode(&m, None), &Limits::default()),
            Err(Error::Malformed {
                what: "a path option that is not one",
                ..
            })
        ));
    }

    /// A Manifest frame whose files are written as given: (bytes shared, the rest).
    fn manifest_frame(entries: &[(usize, &[u8])]) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(b"a.c");
        w.u32(0);
        w.u8(0);
        w.u32(entries.len() as u32);
        for (shared, rest) in entries {
            w.varint(*shared as u64);
            w.varint(rest.len() as u64);
            w.buf.extend_from_slice(rest);
            w.varint(1);
            w.buf.extend_from_slice(&[0; 32]);
        }
        let mut frame = header(Kind::Manifest, false, w.buf.len()).to_vec();
        frame.extend_from_slice(&w.buf);
        frame
    }

    fn refused(frame: Vec<u8>) -> bool {
        matches!(
            decode(&frame, &Limits::default()),
            Err(Error::Malformed { .. })
        )
    }

    #[test]
    fn manifest_paths_share_their_starts_and_a_lying_body_is_refused() {
        let entry = |path: &str, size: u64| FileEntry {
            path: path.into(),
            size,
            hash: [size as u8; 32],
        };
        // Sorted as a job sends them, plus names that share a multi-byte character's first
        // byte ("é" and "è" both start 0xC3) and one that is a prefix of the next.
        let files = vec![
            entry("/k/include/linux/cred.h", 1),
            entry("/k/include/linux/cred.h.orig", 300),
            entry("/k/include/linux/sched.h", 1 << 40),
            entry("/k/include/linux/é.h", u64::MAX),
            entry("/k/include/linux/è.h", 0),
            entry("/other.h", 127),
        ];
        let m = Message::Manifest(Manifest {
            source: "kernel/cred.c".into(),
            paths: vec![],
            deps: None,
            files,
        });
        let bytes = encode(&m, None);
        assert_eq!(decode(&bytes, &Limits::default()).unwrap().unwrap().0, m);
        // Much smaller than the paths written out whole.
        let whole: usize = 6 * 40 + "/k/include/linux/".len() * 5;
        assert!(bytes.len() < whole + 6 * 32, "{} bytes", bytes.len());

        // A body whose first path claims to share bytes with a path before it, and one whose
        // second path would split "é".
        assert!(refused(manifest_frame(&[(1, b"/a.h")])));
        assert!(refused(manifest_frame(&[
            (0, "/é.h".as_bytes()),
            (2, b"\xa8.h")
        ])));
        assert!(refused(manifest_frame(&[(0, b"/a\xff.h")])));
        assert!(!refused(manifest_frame(&[
            (0, "/é.h".as_bytes()),
            (1, "è.h".as_bytes())
        ])));
        // Paths that share what they cannot afford: one over PATH_MAX, and a body of some
        // 30 KB that would name 64 MB of paths (8,192 of 4,000 bytes), past the 4 MiB a
        // manifest's paths may take.
        let long = "/d".repeat(2100);
        assert!(refused(manifest_frame(&[(0, long.as_bytes())])));
        let near = "/d".repeat(2000);
        let mut bomb: Vec<(usize, &[u8])> = vec![(0, near.as_bytes())];
        assert!(!refused(manifest_frame(&bomb)));
        bomb.extend(std::iter::repeat((4000, &b""[..])).take(MAX_FILES - 1));
        assert!(refused(manifest_frame(&bomb)));
        // One file more than a manifest may name: refused before a path is read, in words
        // that name the limit.
        let many = vec![(0, &b"/a.h"[..]); MAX_FILES + 1];
        match decode(&manifest_frame(&many), &Limits::default()) {
            Err(e @ Error::Malformed { .. }) => {
                assert!(e.to_string().contains(&MAX_FILES.to_string()), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_manifest_number_that_never_ends_or_overflows_is_refused() {
        // A file size whose varint never ends, or overflows.
        let mut frame = manifest_frame(&[(0, b"/a.h")]);
        let at = frame.len() - 32 - 1;
        frame[at] = 0xff;
        frame.truncate(at + 1);
        frame.extend_from_slice(&[0xff; 9]);
        frame.push(0x7f);
        let len = (frame.len() - HEADER_LEN) as u32;
        frame[8..12].copy_from_slice(&len.to_be_bytes());
        assert!(refused(frame));
    }

    #[test]
    fn two_frames_back_to_back() {
        let mut bytes = encode(&Message::Progress, None);
        bytes.extend(encode(&Message::StatusRequest, None));
        let (m, used) = decode(&bytes, &Limits::default()).unwrap().unwrap();
        assert_eq!(m, Message::Progress);
        let (m2, _) = decode(&bytes[used..], &Limits::default()).unwrap().unwrap();
        assert_eq!(m2, Message::StatusRequest);
    }

    #[test]
    fn garbage_is_refused_at_the_first_byte() {
        assert_eq!(decode(b"D", &Limits::default()), Err(Error::BadMagic));
        assert_eq!(
            decode(b"DIST00000001", &Limits::default()),
            Err(Error::BadMagic)
        );
        assert_eq!(
            decode(b"RCC\x09", &Limits::default()),
            Err(Error::Version { theirs: 9 })
        );
    }

    #[test]
    fn unknown_kind_and_flags() {
        let mut h = header(Kind::Progress, false, 0);
        h[4] = 99;
        assert_eq!(decode(&h, &Limits::default()), Err(Error::UnknownKind(99)));
        let mut h = header(Kind::Progress, false, 0);
        h[5] = 0x80;
        assert_eq!(decode(&h, &Limits::default()), Err(Error::BadFlags(0x80)));
    }

    #[test]
    fn lengths_over_the_cap_are_refused_before_the_body() {
        let h = header(Kind::Input, false, u32::MAX as usize);
        assert!(matches!(
            decode(&h, &Limits::default()),
            Err(Error::TooLarge {
                kind: Kind::Input,
                ..
            })
        ));
        let h = header(Kind::JobRequest, false, (1 << 20) + 1);
        assert!(matches!(
            decode(&h, &Limits::default()),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn zero_length_job_request_is_malformed() {
        let h = header(Kind::JobRequest, false, 0);
        assert!(matches!(
            decode(&h, &Limits::default()),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn a_body_that_inflates_past_the_cap_is_refused() {
        let limits = Limits {
            max_body: 1 << 16,
            ..Limits::default()
        };
        let bytes = encode(&Message::Input(vec![b'x'; 1 << 20]), Some(9));
        assert!(bytes.len() < 1 << 16);
        assert!(matches!(decode(&bytes, &limits), Err(Error::Corrupt(_))));
    }

    #[test]
    fn invalid_deflate_is_corrupt() {
        let mut bytes = header(Kind::Input, true, 5).to_vec();
        bytes.extend_from_slice(b"hello");
        assert!(matches!(
            decode(&bytes, &Limits::default()),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn too_many_arguments_are_refused() {
        let limits = Limits {
            max_args: 2,
            ..Limits::default()
        };
        let bytes = encode(&job(), None);
        assert!(matches!(
            decode(&bytes, &limits),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn non_utf8_compiler_name_is_malformed() {
        let mut bytes = encode(&job(), None);
        // body: mode, compress, then the compiler name's length and bytes ("gcc").
        let at = HEADER_LEN + 2 + 4;
        bytes[at] = 0xff;
        assert!(matches!(
            decode(&bytes, &Limits::default()),
            Err(Error::Malformed { .. })
        ));
    }
}
