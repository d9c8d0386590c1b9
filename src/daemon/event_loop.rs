//! The only file that touches mio. One thread: accept, read requests, start compilers,
//! drain their pipes, notice their exit through a pidfd, write replies, fire timers. Nothing
//! here blocks; timers are the poll timeout.
//!
//! Tokens: listener `i` is `LISTEN_BASE + i`; connection slot `c` owns four tokens,
//! `4c` (socket), `4c+1` (compiler stdout), `4c+2` (stderr), `4c+3` (pidfd).

use super::admit::{Admission, Slots};
use super::as_guard;
use super::cache::Cache;
use super::config::Config;
use super::conn::{Conn, Pending, Phase, ReadOutcome};
use super::health::{self, Watch, FREE_FLOOR};
use super::job::{self, Compilers, Job, Spool, Withheld};
use super::memory::Memory;
use super::sources::{self, IncludeVerdicts, Tree};
use super::status::{self, BoxIdentity};
use super::thermal::{Thermal, Verdict};
use super::tree::Mirrors;
use crate::box_args::BoxArgs;
use crate::protocol::{Accept, Message, Mode, Reject, RejectReason};
use crate::sys;
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const LISTEN_BASE: usize = usize::MAX - 256;
const SOCK: usize = 0;
const OUT: usize = 1;
const ERR: usize = 2;
const PID: usize = 3;

fn token(conn: usize, what: usize) -> Token {
    Token(conn * 4 + what)
}

struct Daemon {
    poll: Poll,
    config: Config,
    listeners: Vec<TcpListener>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    live: usize,
    slots: Slots,
    compilers: Compilers,
    identity: BoxIdentity,
    started: Instant,
    seq: u64,
    thermal: Thermal,
    memory: Memory,
    /// Sources and headers by hash, for jobs that ship them (`None`: `--no-sources`, or
    /// it cannot be opened: `cache_error` says why).
    cache: Option<Cache>,
    cache_error: Option<String>,
    /// Ok, full or broken, and the last thing that went wrong on the box.
    health: Watch,
    /// When a broken box may look again at what broke it.
    next_look: Instant,
    include_verdicts: IncludeVerdicts,
    /// The mirrors of finished sources jobs, kept for the next ones.
    mirrors: Mirrors,
}

/// How old a thermal sample may be when a job asks for a slot.
const THERMAL_FRESH: Duration = Duration::from_secs(1);

pub fn run(config: Config) -> io::Result<()> {
    let mut health = Watch::new(&config.temp_dir);
    health.set_writable(check_temp_dir(&config)?);
    sys::install_stop_handler();
    job::set_memory_cap(config.job_mem_max_kib.saturating_mul(1024));
    match sys::raise_fd_limit() {
        // A connection holds up to four fds (socket, two pipes, pidfd).
        Ok(n) if (n as usize) < config.max_connections * 4 + 64 => log::warn!(
            "open files limited to {n}: fewer than --max-connections {} may be served \
             (raise LimitNOFILE or ulimit -n)",
            config.max_connections
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot raise the open files limit: {e}"),
    }
    match super::sandbox::landlock_in_use() {
        Some(v) => log::info!(
            "compilers run in a Landlock sandbox (ABI {v}): they run only their own \
             toolchain, read only the system's libraries, their toolchain and their job's \
             files, and write only their job dir"
        ),
        None => log::warn!(
            "compilers run without a Landlock sandbox (this kernel has none, or a test turned \
             it off): they can read every file this user can; the option parser, the include \
             checks and the assembler's guard keep a job to its own files; run rccd as a \
             user without access to secrets (see README, Security)"
        ),
    }
    let poll = Poll::new()?;
    let mut listeners = Vec::new();
    for (i, addr) in config.listen.iter().enumerate() {
        let mut l = TcpListener::bind(*addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        poll.registry()
            .register(&mut l, Token(LISTEN_BASE + i), Interest::READABLE)?;
        log::info!("listening on {}", l.local_addr()?);
        listeners.push(l);
    }
    if let Some(p) = &config.pid_file {
        std::fs::write(p, format!("{}\n", sys::getpid()))
            .map_err(|e| file_error("--pid-file", p, e))?;
    }
    job::clean_stale(&config.temp_dir);
    let mut compilers = Compilers::new(config.compiler_path.clone());
    compilers.probe_all();
    if let Some(why) = compilers.missing() {
        log::error!(
            "{why} (--compiler-path): rccd runs gcc, g++, cc, c++, clang and clang++ (and \
             their target-prefixed or versioned forms) found there; install one, or point \
             --compiler-path at their directory; until then this box takes no jobs"
        );
        health.set_no_compiler(Some(why));
    }
    if let Some(p) = &config.port_file {
        let port = listeners[0].local_addr()?.port();
        // Written after everything is ready, so a waiting script can connect at once.
        let tmp = p.with_extension("tmp");
        let text = format!("{port}\n");
        let written = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, p));
        // In place when rccd gave root up and may not make files beside it (root made
        // the file empty and gave it to rccd's user: `sandbox::drop_root`).
        if let Err(e) = written.or_else(|_| std::fs::write(p, &text)) {
            if let Some(pid) = &config.pid_file {
                let _ = std::fs::remove_file(pid);
            }
            return Err(file_error("--port-file", p, e));
        }
    }
    // Without a temp dir to write in, no job runs: say that, not why the cache under it
    // failed too.
    let (cache, cache_error) = open_cache(&config, health.writable());
    let d_thermal = config.thermal.clone();
    let (d_temp, d_jobs) = (config.temp_dir.clone(), config.jobs);
    let (d_meminfo, d_mem_floor) = (config.meminfo.clone(), config.job_mem_floor_kib);
    let mut d = Daemon {
        poll,
        slots: Slots::new(config.jobs, config.queue),
        config,
        listeners,
        conns: Vec::new(),
        free: Vec::new(),
        live: 0,
        compilers,
        identity: BoxIdentity::load(),
        started: Instant::now(),
        seq: 0,
        thermal: Thermal::new(d_thermal, Instant::now()),
        memory: Memory::new(d_meminfo, d_mem_floor),
        cache,
        cache_error,
        health,
        next_look: Instant::now(),
        include_verdicts: IncludeVerdicts::default(),
        mirrors: Mirrors::new(&d_temp, format!("rccd-{}", sys::getpid()), d_jobs),
    };
    d.memory.sample(Instant::now());
    d.apply_thermal();
    d.check_space();
    if let Some(why) = d
        .health
        .refusal()
        .filter(|_| d.health.health() == health::Health::Full)
    {
        log::warn!("{why}");
    }
    log::info!(
        "rccd {} serving {} slots",
        env!("CARGO_PKG_VERSION"),
        d.config.jobs
    );
    let result = d.serve();
    let c = &d.slots.counters;
    // One line for whoever reads the log after a run (the farm bench does).
    log::info!(
        "stopping: {} jobs done, {} failed, {} rejected ({} sent their input too slowly, {} \
         gave their slot to another address); {} shipped their sources, naming {} files of \
         which {} were not cached ({} bytes received); {} bytes in, {} out",
        c.done,
        c.failed,
        c.rejected,
        c.too_slow,
        c.given_up,
        c.sources,
        c.files_named,
        c.files_received,
        c.file_bytes_received,
        c.bytes_in,
        c.bytes_out
    );
    // Dropping the connections kills running compilers and removes their dirs.
    d.conns.clear();
    if let Some(p) = &d.config.pid_file {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// The error that stops rccd when it cannot write the file a `flag` names.
fn file_error(flag: &str, path: &std::path::Path, e: io::Error) -> io::Error {
    let path = path.display().to_string();
    let line = super::sandbox::cannot_write_file(flag, &path, &health::said(&e));
    io::Error::new(e.kind(), line)
}

/// Whether rccd can write in its temp dir, by making a file there as the user it serves as.
/// A given `--temp-dir` it cannot write (or that is gone) stops it with one line; for the
/// default one it starts and says why it takes no jobs (`Err`: the reason, for `health`).
fn check_temp_dir(config: &Config) -> io::Result<Result<(), String>> {
    let Err(e) = job::probe_dir(&config.temp_dir) else {
        return Ok(Ok(()));
    };
    let dir = config.temp_dir.display().to_string();
    let why = health::said(&e);
    let user = super::sandbox::user_name();
    let line = super::sandbox::cannot_write(&dir, config.temp_dir_given, &user, &why);
    if config.temp_dir_given {
        // Made for rccd before it gave root up; it will not start.
        super::sandbox::forget_files(config);
        return Err(io::Error::new(e.kind(), line));
    }
    log::error!("{line}; until then this box takes no jobs");
    Ok(Err(format!("cannot write in {dir} ({why})")))
}

/// The file cache, or why there is none (`--no-sources` is no error).
fn open_cache(config: &Config, writable: bool) -> (Option<Cache>, Option<String>) {
    let Some((dir, size)) = config.cache.as_ref() else {
        return (None, None);
    };
    match Cache::open(dir, *size) {
        Ok(c) => {
            log::info!(
                "file cache {} holds {} KiB of at most {} KiB ({} MiB, and never more than \
                 {}% of the free space and its own)",
                dir.display(),
                c.used() >> 10,
                c.limit() >> 10,
                size >> 20,
                super::cache::SHARE_PERCENT
            );
            (Some(c), None)
        }
        Err(e) => {
            let why = format!(
                "cannot use --cache-dir {}: {}",
                dir.display(),
                health::said(&e)
            );
            if writable {
                // Preprocessed jobs still work: say why sources jobs do not.
                log::error!("{why}; taking preprocessed jobs only");
            }
            (None, Some(why))
        }
    }
}

/// What a request asks the box to run, parsed into types: its options (`BoxArgs`, in the
/// forms its mode allows), its extensions and its working directory, which reaches the
/// compiler's argv in a prefix map (a sources job's is checked again with its manifest). No
/// string of the request reaches the compiler as it came.
fn parse_request(req: &crate::protocol::JobRequest) -> Result<BoxArgs, String> {
    if !req.cwd.is_empty() {
        std::str::from_utf8(&req.cwd)
            .map_err(|_| "is not UTF-8".to_string())
            .and_then(super::tree::check_path)
            .map_err(|e| format!("the working directory {e}"))?;
    }
    let args = BoxArgs::parse(&req.args).map_err(|e| e.to_string())?;
    if req.mode == Mode::Sources {
        args.check_for_sources().map_err(|e| e.to_string())?;
    }
    // A sources job's input is named by its manifest, not by an extension.
    let input_ext = (req.mode == Mode::Preprocessed).then_some(req.input_ext.as_str());
    job::check_exts(input_ext, &req.output_ext)?;
    Ok(args)
}

impl Daemon {
    fn serve(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while !sys::stop_requested() {
            let timeout = self.config.heartbeat.min(Duration::from_secs(1));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                let t = ev.token().0;
                if t >= LISTEN_BASE {
                    self.accept(t - LISTEN_BASE);
                    continue;
                }
                let (c, what) = (t / 4, t % 4);
                if self.conns.get(c).map_or(true, |s| s.is_none()) {
                    continue; // an event for a connection already closed
                }
                match what {
                    SOCK => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(c);
                        }
                        if ev.is_writable() && self.conns[c].is_some() {
                            self.flush(c);
                        }
                    }
                    OUT | ERR => self.on_pipe(c, what == ERR),
                    _ => self.on_exit(c),
                }
            }
            self.timers(Instant::now());
        }
        log::info!("stopping: killing running compilers");
        Ok(())
    }

    fn accept(&mut self, i: usize) {
        loop {
            let (mut stream, peer) = match self.listeners[i].accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of fds and the like: log and let the next event try again.
                    log::warn!("accept failed: {e}");
                    return;
                }
            };
            if !self.config.allow.permits(peer.ip()) {
                self.slots.counters.refused_peers += 1;
                let n = self.slots.counters.refused_peers;
                if n <= 10 || n.is_power_of_two() {
                    log::warn!(
                        "refused {peer}: not in --allow ({n} refused so far); \
                         add its network with --allow CIDR if it should compile here"
                    );
                }
                continue; // dropping the stream closes it
            }
            if self.live >= self.config.max_connections {
                self.slots.counters.over_limit += 1;
                let n = self.slots.counters.over_limit;
                if n <= 10 || n.is_power_of_two() {
                    log::warn!(
                        "refused {peer}: {} connections open (--max-connections; {n} \
                         refused so far)",
                        self.live
                    );
                }
                continue;
            }
            let c = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, token(c, SOCK), Interest::READABLE)
            {
                log::warn!("cannot register {peer}: {e}");
                self.free.push(c);
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.slots.counters.connections += 1;
            self.live += 1;
            self.conns[c] = Some(Conn::new(stream, peer, Instant::now()));
        }
    }

    fn conn(&mut self, c: usize) -> &mut Conn {
        self.conns[c].as_mut().expect("live connection")
    }

    fn on_readable(&mut self, c: usize) {
        let now = Instant::now();
        let limits = self.config.limits;
        let outcome = self.conn(c).read_some(now, &limits);
        loop {
            let frame = self.conn(c).next_frame(&limits);
            match frame {
                Ok(Some(msg)) => self.on_message(c, msg),
                Ok(None) => break,
                Err(e) => {
                    let peer = self.conn(c).peer;
                    log::warn!("{peer}: {e}");
                    self.reject(c, RejectReason::BadRequest, 0, e.to_string());
                    break;
                }
            }
            if self.conns[c].is_none() || matches!(self.conn(c).phase, Phase::Closing) {
                break;
            }
        }
        if let ReadOutcome::Closed = outcome {
            if self.conns[c].is_some() {
                self.peer_gone(c);
            }
        }
    }

    fn on_message(&mut self, c: usize, msg: Message) {
        let phase = std::mem::replace(&mut self.conn(c).phase, Phase::Closing);
        match (phase, msg) {
            (Phase::Hello, Message::StatusRequest) => {
                self.check_health();
                let mut kv = status::build(
                    &self.slots,
                    &self.compilers.identities(),
                    &self.identity,
                    self.started,
                );
                self.thermal.status(&mut kv);
                self.memory.sample(Instant::now());
                self.memory.status(&mut kv);
                Cache::status(self.cache.as_ref(), &mut kv);
                self.health.status(&mut kv);
                self.conn(c).send(&Message::Status(kv), false);
                self.flush(c);
            }
            (Phase::Hello, Message::JobRequest(req)) => self.on_job_request(c, req),
            (Phase::Input(p), Message::Input(piece)) if p.req.mode == Mode::Preprocessed => {
                self.spool_input(c, p, &piece)
            }
            (Phase::Input(p), Message::InputEnd) if p.req.mode == Mode::Preprocessed => {
                self.start_job(c, *p)
            }
            (Phase::Input(p), Message::Manifest(m))
                if p.req.mode == Mode::Sources && p.tree.is_none() =>
            {
                self.take_manifest(c, p, m)
            }
            (Phase::Input(p), Message::Blob(i, data)) if p.tree.is_some() => {
                self.take_blob(c, p, i, &data)
            }
            (Phase::Input(p), Message::InputEnd) if p.tree.is_some() => self.start_sources(c, *p),
            (phase, msg) => {
                let what = format!("{:?} frame was not expected now", msg.kind());
                self.conn(c).phase = phase;
                self.reject(c, RejectReason::BadRequest, 0, what);
            }
        }
    }

    fn on_job_request(&mut self, c: usize, req: crate::protocol::JobRequest) {
        let peer = self.conn(c).peer;
        self.check_health();
        if let Some(text) = self.health.refusal() {
            // It advertises no slots; this client did not ask (a `/LIMIT`, or older).
            log::info!("{peer}: refused {}: {text}", req.label);
            return self.reject(c, RejectReason::Internal, 10_000, text);
        }
        let (path, identity) = match self.compilers.resolve(&req.compiler) {
            Ok(x) => x,
            Err(e) => {
                let reason = match e {
                    job::CompilerProblem::NotACompiler(_) => RejectReason::BadRequest,
                    _ => RejectReason::NoCompiler,
                };
                log::warn!("{peer}: {e}");
                return self.reject(c, reason, 0, e.to_string());
            }
        };
        if super::sandbox::landlock_in_use().is_none() && !as_guard::can_guard(&req.compiler) {
            // clang assembles inside itself, past the assembler's guard (`as_guard`).
            let text = "this box has no Landlock sandbox, and clang's built-in assembler \
                        cannot be guarded there (.incbin would read a file of the box); \
                        compile clang jobs on a box with Landlock or at home";
            return self.reject(c, RejectReason::BadRequest, 0, text.into());
        }
        if identity != req.identity {
            let text = format!(
                "this box's {} is \"{identity}\", the client's is \"{}\"",
                req.compiler, req.identity
            );
            return self.reject(c, RejectReason::CompilerMismatch, 0, text);
        }
        let args = match parse_request(&req) {
            Ok(a) => a,
            Err(text) => {
                log::warn!("{peer}: refused {}: {text}", req.label);
                return self.reject(c, RejectReason::BadRequest, 0, text);
            }
        };
        let now = Instant::now();
        if now.duration_since(self.thermal.last_sample()) >= THERMAL_FRESH {
            self.thermal.sample(now);
            self.apply_thermal();
        }
        if !self.thermal.accepts() {
            // Not a failure: the client sends the job to a cool box at once and skips this
            // one until the hint runs out.
            let text = self.thermal.describe();
            let after = self.thermal.retry_after().as_millis().min(u32::MAX as u128) as u32;
            self.slots.counters.throttled += 1;
            return self.reject(c, RejectReason::Throttled, after, text);
        }
        self.memory.sample(now);
        if let Some(text) = self.memory.refuse() {
            // Busy, not failed: the OOM killer would take a compiler (or rccd) instead.
            self.slots.counters.busy += 1;
            self.slots.counters.low_memory += 1;
            return self.reject(c, RejectReason::Busy, 2000, text);
        }
        if let Some(text) = self.sources_refusal(req.mode) {
            return self.reject(c, RejectReason::BadRequest, 0, text);
        }
        let pending = Box::new(Pending {
            req,
            args,
            compiler: path,
            since: now,
            spool: None,
            tree: None,
        });
        match self.slots.admit(c, peer.ip()) {
            Admission::Run => self.accept_job(c, pending),
            Admission::Wait => {
                self.conn(c).phase = Phase::Waiting(pending);
                self.share_slots();
            }
            Admission::Busy => {
                let text = if self.slots.limit < self.slots.jobs {
                    format!(
                        "{} of {} slots in use while {}",
                        self.slots.held,
                        self.slots.jobs,
                        self.thermal.describe()
                    )
                } else {
                    format!("all {} slots and the queue are full", self.slots.jobs)
                };
                // Counted as busy and rejected by `admit` already.
                self.slots.counters.rejected -= 1;
                self.reject(c, RejectReason::Busy, 500, text);
            }
        }
    }

    /// Why a job of `mode` cannot ship its sources here (`None`: it can, or it does not).
    /// "unknown job mode" makes a client send this box preprocessed jobs for a while.
    fn sources_refusal(&self, mode: Mode) -> Option<String> {
        if mode != Mode::Sources || self.cache.is_some() {
            return None;
        }
        Some(match &self.cache_error {
            Some(why) => format!(
                "unknown job mode: this box cannot keep shipped files ({why}), so it takes \
                 preprocessed jobs only"
            ),
            None => "unknown job mode: this box takes preprocessed jobs only (--no-sources)".into(),
        })
    }

    /// The slot is reserved: tell the client to send its input.
    fn accept_job(&mut self, c: usize, pending: Box<Pending>) {
        let accept = Accept {
            slots: self.slots.limit as u32,
            running: self.slots.held as u32,
            jobs: self.slots.jobs as u32,
        };
        let now = Instant::now();
        let conn = self.conn(c);
        conn.holds_slot = true;
        conn.last_io = now;
        conn.start_input_clock(now);
        conn.phase = Phase::Input(pending);
        conn.send(&Message::Accept(accept), false);
        self.flush(c);
    }

    /// Writes a piece of the input to the job's dir (made with the first piece).
    fn spool_input(&mut self, c: usize, mut p: Box<Pending>, piece: &[u8]) {
        if p.spool.is_none() {
            match self.new_spool(&p.req.input_ext) {
                Ok(s) => p.spool = Some(s),
                Err(e) => return self.cannot_spool(c, e),
            }
        }
        let spool = p.spool.as_mut().expect("made above");
        if spool.bytes + piece.len() > self.config.limits.max_body {
            let text = format!(
                "the input is larger than this box's limit of {} MiB (--max-body-mib)",
                self.config.limits.max_body >> 20
            );
            return self.reject(c, RejectReason::BadRequest, 0, text);
        }
        let written = match spool.write(piece) {
            // The disk is full: the cache gives room, and the piece is written once more.
            Err(e) if sys::no_space(&e) => {
                self.give_room(piece.len() as u64);
                let spool = p.spool.as_mut().expect("made above");
                spool.rewrite(piece)
            }
            r => r,
        };
        if let Err(e) = written {
            return self.cannot_spool(c, e);
        }
        let conn = self.conn(c);
        conn.last_io = Instant::now();
        conn.phase = Phase::Input(p);
    }

    /// A job's dir and input file; on a full disk the cache gives room first, once.
    fn new_spool(&mut self, input_ext: &str) -> io::Result<Spool> {
        self.seq += 1;
        match Spool::create(&self.config.temp_dir, self.seq, input_ext) {
            Err(e) if sys::no_space(&e) => {
                self.give_room(FREE_FLOOR);
                self.seq += 1;
                Spool::create(&self.config.temp_dir, self.seq, input_ext)
            }
            r => r,
        }
    }

    /// The box cannot hold the input (its temp dir is full or gone): its problem, not the
    /// job's, so the client tries elsewhere and backs this box off for a while.
    fn cannot_spool(&mut self, c: usize, e: std::io::Error) {
        let text = format!(
            "cannot write the input on this box ({}): {}",
            self.config.temp_dir.display(),
            health::said(&e)
        );
        log::error!("{text}");
        self.box_failed(&text);
        self.reject(c, RejectReason::Internal, 10_000, text)
    }

    /// Something went wrong on the box, not in the job: kept for `last_error`, and what the
    /// box's health depends on is read again (the temp dir may have gone read-only or full).
    fn box_failed(&mut self, text: &str) {
        self.health.failed(text);
        self.health.set_writable(self.probe_temp_dir());
        self.check_space();
    }

    /// Whether rccd can still make files in its temp dir (`Err`: why not, for `health`).
    fn probe_temp_dir(&self) -> Result<(), String> {
        job::probe_dir(&self.config.temp_dir).map_err(|e| {
            let dir = self.config.temp_dir.display();
            format!("cannot write in {dir} ({})", health::said(&e))
        })
    }

    /// Reads what the box's health depends on now, and logs when it changed. A broken box
    /// looks again at what broke it (a temp dir made writable, a compiler installed), at
    /// most once a second (a flood of requests costs no directory scans), so it mends
    /// without a restart.
    fn check_health(&mut self) {
        let before = self.health.health();
        let now = Instant::now();
        if before != health::Health::Ok && now >= self.next_look {
            self.next_look = now + Duration::from_secs(1);
            self.look_again();
        }
        self.check_space();
        let after = self.health.health();
        if after != before {
            match self.health.refusal() {
                Some(why) => log::warn!("health {after}: {why}"),
                None => log::info!("health {after}: taking jobs again"),
            }
        }
    }

    /// Looks again at what makes a box broken: its temp dir (and the cache under it) and
    /// its compilers.
    fn look_again(&mut self) {
        if !self.health.writable() {
            self.health.set_writable(self.probe_temp_dir());
            if self.health.writable() && self.cache.is_none() {
                (self.cache, self.cache_error) = open_cache(&self.config, true);
            }
        }
        if !self.health.has_compiler() {
            self.compilers.probe_all();
            self.health.set_no_compiler(self.compilers.missing());
        }
    }

    /// Reads the temp dir's free space for `health`; below `FREE_FLOOR` the file cache and
    /// the idle mirrors give room first. The cache's bound follows its disk (`Cache::refit`).
    fn check_space(&mut self) {
        if let Some(cache) = self.cache.as_mut() {
            let _ = cache.refit();
        }
        let dir = self.config.temp_dir.clone();
        let mut free = sys::free_space(&dir).ok();
        if let Some(f) = free.filter(|&f| f < FREE_FLOOR) {
            self.give_room(2 * FREE_FLOOR - f);
            free = sys::free_space(&dir).ok();
        }
        self.health.set_free(free);
    }

    /// The disk is full: idle mirrors go (the cache's files they link free nothing while
    /// they stay), then the cache's least recently used files, until `bytes` came free.
    fn give_room(&mut self, bytes: u64) {
        let mirrors = self.mirrors.drop_idle();
        let freed = match self.cache.as_mut() {
            Some(cache) => {
                let _ = cache.refit();
                cache.give_room(bytes).unwrap_or(0)
            }
            None => 0,
        };
        if mirrors > 0 || freed > 0 {
            log::warn!(
                "the disk of {} is full: removed {mirrors} idle mirrors and {} KiB of the \
                 file cache",
                self.config.temp_dir.display(),
                freed >> 10
            );
        }
    }

    /// A sources job's manifest: lay out what the cache has, ask for the rest.
    fn take_manifest(&mut self, c: usize, mut p: Box<Pending>, m: crate::protocol::Manifest) {
        self.seq += 1;
        let cache = self.cache.as_ref().expect("sources jobs need the cache");
        // What travels may add up to four inputs' worth.
        let max_bytes = self.config.limits.max_body.saturating_mul(4);
        match Tree::open(
            &self.config.temp_dir,
            self.seq,
            &p.req.cwd,
            m,
            cache,
            &mut self.mirrors,
            max_bytes,
        ) {
            Ok(t) => {
                let need = Message::Need(t.needed().to_vec());
                self.slots.counters.files_named += t.files() as u64;
                self.slots.counters.files_received += t.needed().len() as u64;
                p.tree = Some(Box::new(t));
                let conn = self.conn(c);
                conn.last_io = Instant::now();
                conn.phase = Phase::Input(p);
                conn.send(&need, false);
                self.flush(c);
            }
            Err(r) => self.refuse_sources(c, &p, r),
        }
    }

    fn refuse_sources(&mut self, c: usize, p: &Pending, r: sources::Refusal) {
        let peer = self.conn(c).peer;
        log::warn!("{peer}: refused {}: {}", p.req.label, r.text);
        let after = if r.reason == RejectReason::Internal {
            self.box_failed(&r.text);
            10_000
        } else {
            0
        };
        self.reject(c, r.reason, after, r.text);
    }

    /// One file a sources job's box lacked.
    fn take_blob(&mut self, c: usize, mut p: Box<Pending>, index: u32, data: &[u8]) {
        let cache = self.cache.as_mut().expect("sources jobs need the cache");
        let t = p.tree.as_mut().expect("matched on a tree");
        let before = t.bytes_received();
        let taken = t.blob(index, data, cache);
        self.slots.counters.file_bytes_received += (t.bytes_received() - before) as u64;
        match taken {
            Ok(()) => {
                let conn = self.conn(c);
                conn.last_io = Instant::now();
                conn.phase = Phase::Input(p);
            }
            Err(r) => self.refuse_sources(c, &p, r),
        }
    }

    /// Every file is there: check what they include, and compile.
    fn start_sources(&mut self, c: usize, mut p: Pending) {
        let t = p.tree.take().expect("matched on a tree");
        let launch = match t.finish(&mut self.include_verdicts, &p.args, &p.req.output_ext) {
            Ok(l) => l,
            Err(r) => return self.refuse_sources(c, &p, r),
        };
        self.slots.counters.sources += 1;
        let started = Job::spawn(launch, &p.compiler, &p.req);
        self.run_job(c, started, &p);
    }

    fn start_job(&mut self, c: usize, mut p: Pending) {
        let spool = match p.spool.take() {
            Some(s) => s,
            // An empty input still compiles (to an empty object), as gcc does here.
            None => match self.new_spool(&p.req.input_ext) {
                Ok(s) => s,
                Err(e) => return self.cannot_spool(c, e),
            },
        };
        if spool.reads_files {
            let text = "the input uses .incbin or .include, which would read a file on the box";
            return self.reject(c, RejectReason::BadRequest, 0, text.into());
        }
        let started = Job::start(spool, &p.compiler, &p.args, &p.req);
        self.run_job(c, started, &p);
    }

    /// Watches a started compiler's pipes and exit; a compiler that could not start is the
    /// box's problem (its temp dir), so the client tries elsewhere.
    fn run_job(&mut self, c: usize, started: std::io::Result<Job>, p: &Pending) {
        let job = match started {
            Ok(j) => j,
            Err(e) => {
                let text = format!(
                    "cannot start the compile on this box ({}): {e}",
                    self.config.temp_dir.display()
                );
                log::error!("{text}");
                self.box_failed(&text);
                return self.reject(c, RejectReason::Internal, 10_000, text);
            }
        };
        log::debug!("{}: compiling {}", self.conn(c).peer, p.req.label);
        let heartbeat = self.config.heartbeat;
        let conn = self.conn(c);
        conn.next_heartbeat = Instant::now() + heartbeat;
        conn.phase = Phase::Running {
            compress: p.req.compress,
        };
        conn.job = Some(job);
        self.watch(c);
    }

    /// Registers the pipes and pidfd of connection `c`'s running child (a job's first, or
    /// its compile after the audit).
    fn watch(&mut self, c: usize) {
        let reg = self.poll.registry();
        let job = self.conns[c]
            .as_mut()
            .and_then(|k| k.job.as_mut())
            .expect("a running job");
        let ok = reg
            .register(
                job.stdout.as_mut().expect("new child"),
                token(c, OUT),
                Interest::READABLE,
            )
            .and_then(|_| {
                reg.register(
                    job.stderr.as_mut().expect("new child"),
                    token(c, ERR),
                    Interest::READABLE,
                )
            })
            .and_then(|_| {
                reg.register(
                    &mut SourceFd(&job.pidfd.as_raw_fd()),
                    token(c, PID),
                    Interest::READABLE,
                )
            });
        if let Err(e) = ok {
            log::error!("cannot watch the compiler: {e}");
            // Dropping the job kills the child and removes its dir.
            self.conn(c).job = None;
            self.reject(c, RejectReason::Internal, 0, e.to_string());
        }
    }

    fn on_pipe(&mut self, c: usize, stderr: bool) {
        let reg = self.poll.registry();
        let Some(job) = self.conns[c].as_mut().and_then(|k| k.job.as_mut()) else {
            return;
        };
        job.drain(stderr);
        // A pipe at EOF was dropped by `drain`, which closed and so deregistered its fd.
        let _ = reg;
        self.maybe_finish(c);
    }

    fn on_exit(&mut self, c: usize) {
        let reg = self.poll.registry();
        let Some(job) = self.conns[c].as_mut().and_then(|k| k.job.as_mut()) else {
            return;
        };
        job.reap();
        if job.status.is_some() {
            let _ = reg.deregister(&mut SourceFd(&job.pidfd.as_raw_fd()));
            // The compiler may have exited before we drained the last bytes.
            job.drain(false);
            job.drain(true);
        }
        self.maybe_finish(c);
    }

    fn maybe_finish(&mut self, c: usize) {
        let conn = self.conns[c].as_mut().expect("live connection");
        let Some(job) = conn.job.as_mut() else {
            return;
        };
        if !job.is_complete() {
            return;
        }
        let started = job.started;
        let label = job.label.clone();
        if job.peak_kib > 0 {
            self.memory.learn(job.peak_kib);
        }
        let result = if job.auditing() {
            if conn.stream.is_none() {
                // The client is gone: nothing to compile for.
                conn.job = None;
                self.release_slot(c);
                return self.close(c);
            }
            match job.after_audit() {
                Ok(true) => return self.watch(c),
                Ok(false) => job.result(self.config.limits.max_body),
                Err(w) => Err(w),
            }
        } else {
            job.result(self.config.limits.max_body)
        };
        if let Some(m) = job.take_mirror() {
            self.mirrors.give(m);
        }
        conn.job = None; // removes the job dir
        let compress = matches!(conn.phase, Phase::Running { compress: true });
        match result {
            Ok(done) => {
                let ok = done.exit == crate::protocol::Exit::Code(0);
                log::info!(
                    "{} {} {:?} in {} ms",
                    conn.peer,
                    label,
                    done.exit,
                    started.elapsed().as_millis()
                );
                self.slots.finished(ok, started);
                conn.phase = Phase::Closing;
                conn.send(&Message::Done(done), compress);
            }
            Err(e @ Withheld::Box(_)) => {
                self.slots.counters.failed += 1;
                let text = e.to_string();
                log::error!("{text}");
                // Its free space is read again below (`check_space`).
                self.health.failed(&text);
                conn.phase = Phase::Closing;
                conn.send(
                    &Message::Reject(Reject {
                        reason: RejectReason::Internal,
                        retry_after_ms: 10_000,
                        text,
                    }),
                    false,
                );
            }
            Err(w) => {
                // The box's log says what happened; the peer hears the same words whatever
                // it was (see `job::WITHHELD_REPLY`).
                match &w {
                    Withheld::Outside(_) => log::warn!("{}: {label}: {w}", conn.peer),
                    _ => log::info!("{}: {label}: {w}", conn.peer),
                }
                self.slots.counters.rejected += 1;
                conn.phase = Phase::Closing;
                conn.send(
                    &Message::Reject(Reject {
                        reason: RejectReason::BadRequest,
                        retry_after_ms: 0,
                        text: job::WITHHELD_REPLY.into(),
                    }),
                    false,
                );
            }
        }
        self.release_slot(c);
        self.check_space();
        if self.conn(c).stream.is_none() {
            self.close(c);
        } else {
            self.flush(c);
        }
    }

    fn release_slot(&mut self, c: usize) {
        let peer = self.conn(c).peer.ip();
        if std::mem::take(&mut self.conn(c).holds_slot) {
            self.slots.release(peer);
        }
        while let Some(w) = self.slots.next_waiting() {
            self.start_waiting(w);
        }
    }

    /// A slot was reserved for waiting connection `w`: accept its job.
    fn start_waiting(&mut self, w: usize) {
        let phase = std::mem::replace(&mut self.conn(w).phase, Phase::Closing);
        match phase {
            Phase::Waiting(p) => self.accept_job(w, p),
            other => {
                // Not waiting any more (cannot happen: waiting conns are forgotten when
                // they leave); give the slot back.
                let peer = self.conn(w).peer.ip();
                self.conn(w).phase = other;
                self.slots.release(peer);
            }
        }
    }

    /// While a request waits, an address holding two slots more than the waiter's gives one
    /// up: its newest job still receiving input is told "busy" (its client tries another
    /// box at once) and the slot goes to the waiter. A running compile is never cut. The
    /// rule is `Slots::to_cut`'s; one master alone keeps every slot (see `admit`).
    fn share_slots(&mut self) {
        let receiving = |k: &Conn| k.holds_slot && matches!(k.phase, Phase::Input(_));
        while self.slots.waiting() > 0 {
            let conns = &self.conns;
            let cuttable = |ip| {
                conns
                    .iter()
                    .flatten()
                    .any(|k| k.peer.ip() == ip && receiving(k))
            };
            let Some(ip) = self.slots.to_cut(cuttable) else {
                return;
            };
            let newest = (0..self.conns.len())
                .filter_map(|c| Some((c, self.conns[c].as_ref()?)))
                .filter(|(_, k)| k.peer.ip() == ip && receiving(k))
                .max_by_key(|(_, k)| k.accepted_at)
                .map(|(c, _)| c)
                .expect("to_cut names an address with a job receiving input");
            let text = format!(
                "{ip} holds {} of this box's {} slots while another address waits: the \
                 newest of its jobs still sending input gives its slot up (try another box)",
                self.slots.held_by(ip),
                self.slots.limit
            );
            log::info!("{}: {text}", self.conn(newest).peer);
            self.slots.counters.busy += 1;
            self.slots.counters.given_up += 1;
            self.reject(newest, RejectReason::Busy, 500, text);
        }
    }

    /// The client closed or broke the connection.
    fn peer_gone(&mut self, c: usize) {
        let conn = self.conn(c);
        if let Some(mut s) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        let conn = self.conns[c].as_mut().expect("live connection");
        if let Some(job) = &conn.job {
            log::info!("{}: client went away; killing {}", conn.peer, job.label);
            job.kill();
            // The slot and the dir are freed when the pidfd says the compiler is gone.
            return;
        }
        if let Phase::Waiting(_) = conn.phase {
            self.slots.forget(c);
        }
        self.release_slot(c);
        self.close(c);
    }

    fn reject(&mut self, c: usize, reason: RejectReason, retry_after_ms: u32, text: String) {
        self.slots.counters.rejected += 1;
        if let Phase::Waiting(_) = self.conn(c).phase {
            self.slots.forget(c);
        }
        let conn = self.conn(c);
        conn.phase = Phase::Closing;
        conn.rbuf.clear();
        conn.send(
            &Message::Reject(Reject {
                reason,
                retry_after_ms,
                text,
            }),
            false,
        );
        self.release_slot(c);
        self.flush(c);
    }

    /// Writes pending output; registers for writability only while something is left.
    fn flush(&mut self, c: usize) {
        let now = Instant::now();
        let conn = self.conns[c].as_mut().expect("live connection");
        match conn.flush(now) {
            Ok(true) => {
                if conn.wants_write {
                    conn.wants_write = false;
                    if let Some(s) = conn.stream.as_mut() {
                        let _ =
                            self.poll
                                .registry()
                                .reregister(s, token(c, SOCK), Interest::READABLE);
                    }
                }
                if matches!(conn.phase, Phase::Closing) && conn.job.is_none() {
                    if let Some(s) = conn.stream.as_ref() {
                        let _ = s.shutdown(std::net::Shutdown::Write);
                    }
                    self.close(c);
                }
            }
            Ok(false) => {
                if !conn.wants_write {
                    conn.wants_write = true;
                    if let Some(s) = conn.stream.as_mut() {
                        let _ = self.poll.registry().reregister(
                            s,
                            token(c, SOCK),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                    }
                }
            }
            Err(_) => self.peer_gone(c),
        }
    }

    fn close(&mut self, c: usize) {
        if let Some(mut conn) = self.conns[c].take() {
            if let Some(mut s) = conn.stream.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
            if conn.job.is_some() {
                // Never expected: a job is only dropped after its pidfd fired.
                log::error!("closing a connection with a live job");
            }
            if conn.holds_slot {
                self.slots.release(conn.peer.ip());
            }
            self.slots.counters.bytes_in += conn.bytes_in;
            self.slots.counters.bytes_out += conn.bytes_out;
            self.live -= 1;
            self.free.push(c);
        }
    }

    /// Carries the thermal verdict into the slot limit; at critical also stops running
    /// compiles (their clients retry them elsewhere).
    fn apply_thermal(&mut self) {
        let before = self.slots.limit;
        self.slots.limit = self.thermal.effective_slots(self.slots.jobs);
        if self.slots.limit != before {
            log::info!(
                "slots now {} of {} ({})",
                self.slots.limit,
                self.slots.jobs,
                self.thermal.describe()
            );
        }
        if self.thermal.verdict() == Verdict::Critical {
            for conn in self.conns.iter().flatten() {
                if let Some(job) = &conn.job {
                    if job.status.is_none() {
                        log::warn!(
                            "{}: stopping {}: {}",
                            conn.peer,
                            job.label,
                            self.thermal.describe()
                        );
                        job.kill();
                    }
                }
            }
        }
        // A slot may have opened for a waiting request (the box cooled down).
        while let Some(w) = self.slots.next_waiting() {
            self.start_waiting(w);
        }
    }

    fn timers(&mut self, now: Instant) {
        self.mirrors.expire(now);
        self.share_slots();
        if now.duration_since(self.thermal.last_sample()) >= THERMAL_FRESH {
            self.thermal.sample(now);
            self.apply_thermal();
        }
        let idle = self.config.idle_timeout;
        let queue_wait = self.config.queue_wait;
        let job_timeout = self.config.job_timeout;
        let heartbeat = self.config.heartbeat;
        for c in 0..self.conns.len() {
            let Some(conn) = self.conns[c].as_mut() else {
                continue;
            };
            match &conn.phase {
                Phase::Hello if now.duration_since(conn.opened) > idle => {
                    log::info!("{}: no whole request within {idle:?}; closing", conn.peer);
                    self.peer_gone(c);
                }
                Phase::Input(_) if conn.input_too_slow(now).is_some() => {
                    let text = conn.input_too_slow(now).expect("matched");
                    log::warn!("{}: {text}; freeing its slot", conn.peer);
                    self.slots.counters.too_slow += 1;
                    self.reject(c, RejectReason::BadRequest, 0, text);
                }
                Phase::Hello | Phase::Input(_) | Phase::Closing => {
                    if now.duration_since(conn.last_io) > idle && conn.job.is_none() {
                        log::info!("{}: idle for {idle:?}; closing", conn.peer);
                        if matches!(conn.phase, Phase::Closing) {
                            self.close(c);
                        } else {
                            self.peer_gone(c);
                        }
                    }
                }
                Phase::Waiting(p) => {
                    if now.duration_since(p.since) > queue_wait {
                        let text = format!("waited {queue_wait:?} for a free slot");
                        self.slots.counters.busy += 1;
                        self.reject(c, RejectReason::Busy, 500, text);
                    }
                }
                Phase::Running { .. } => {
                    if let Some(job) = &conn.job {
                        if !job_timeout.is_zero()
                            && now.duration_since(job.started) > job_timeout
                            && job.status.is_none()
                        {
                            log::warn!(
                                "{}: {} ran past --job-timeout; killing",
                                conn.peer,
                                job.label
                            );
                            job.kill();
                        }
                    }
                    if conn.stream.is_some() && now >= conn.next_heartbeat {
                        conn.next_heartbeat = now + heartbeat;
                        conn.send(&Message::Progress, false);
                        self.flush(c);
                    }
                }
            }
        }
    }
}
