//! rcc, the client: classify the command, pick a box, preprocess here, send, write the
//! object back — and compile locally whenever the farm can't, so a build never fails
//! because of the farm.
//!
//! | file | job |
//! | --- | --- |
//! | `mod.rs` | how rcc was called, and the decision flow with its fallbacks |
//! | `pick.rs` | which box gets a job; the slot locks that hold it there |
//! | `state.rs` | what a build's rcc processes share in `RCC_DIR/state`: backoff, marks, adverts, speeds, notices |
//! | `advert.rs` | what boxes say about their slots; `rcc --jobs` |
//! | `remote.rs` | one exchange with a box |
//! | `cpp.rs` | local preprocessing |
//! | `local.rs` | finding and running the real compiler |
//! | `names.rs` | the source and directory names gcc records, in the preprocessed text a box compiles as its own file |
//! | `identity.rs` | the master compiler's identity, cached |
//! | `status.rs` | `rcc --status` |
//! | `scan.rs` | the files a compile may read, without preprocessing (shipping sources) |
//! | `files.rs` | each file's hash and include directives, cached per build by its stamp |
//! | `ship.rs` | a job that ships its sources: the manifest, the files' content, the `.d` back |
//! | `scan_server.rs` | the scan server: one process per `RCC_DIR` scanning the build's jobs with what it keeps in memory |

pub mod advert;
pub mod cpp;
pub mod files;
pub mod identity;
pub mod local;
pub mod names;
pub mod pick;
pub mod remote;
pub mod scan;
pub mod scan_server;
pub mod ship;
pub mod state;
pub mod status;

/// `scan_server`'s old name, kept while `tests/scan_server.rs` still says
/// `rcc::client::server`.
#[doc(hidden)]
pub use scan_server as server;

use crate::args::{self, Plan, Stage};
use crate::exit;
use crate::hosts::{self, HostKind, HostList, HostSpec};
use crate::protocol::{Exit, JobRequest, Mode, RejectReason};
use pick::Candidate;
use remote::{Failure, Timeouts};
use state::{Mark, Notice, State};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The environment rcc reads, passed in so tests and `main` agree on one seam.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
    fn var_os(&self, key: &str) -> Option<OsString>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
    fn var_os(&self, key: &str) -> Option<OsString> {
        std::env::var_os(key)
    }
}

/// How rcc was called.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Compile: run `compiler` (as typed, or a masquerade name) with `args`.
    Compile {
        compiler: OsString,
        args: Vec<OsString>,
        masquerade: bool,
    },
    Status {
        kv: bool,
        watch: bool,
    },
    /// Options rcc itself does not know; the text says which.
    BadUsage(String),
    /// `rcc --jobs`: the `-j` for make that keeps the farm full.
    Jobs,
    Version,
    Help,
    ShowHosts,
    /// `rcc --scan-server`: what rcc starts for itself (see `scan_server`).
    ScanServer,
}

const USAGE: &str = "\
usage: rcc COMPILER ARGS...      compile, on a box of the farm when possible
       rcc ARGS...               the same with the compiler cc
       rcc --status [--format kv] [--watch]
                                 ask every box in the host list how it is;
                                 --watch redraws the table every second until Ctrl-C
       rcc --jobs                the make -j that keeps the farm full: every box's slots
                                 (as it advertises them, or its /LIMIT) and localhost's,
                                 plus a quarter (at least 2) for jobs being preprocessed
       rcc --show-hosts          print the host list as rcc reads it
       rcc --version | --help

Hosts come from RCC_HOSTS, else DISTCC_HOSTS, else $RCC_DIR/hosts, else /etc/rcc/hosts.
RCC_VERBOSE=1 logs every decision to stderr. See README.md for the rest.
";

fn looks_like_source_or_object(a: &OsStr) -> bool {
    let b = a.as_bytes();
    [
        &b".c"[..],
        b".cc",
        b".cpp",
        b".cxx",
        b".C",
        b".c++",
        b".i",
        b".ii",
        b".S",
        b".sx",
        b".s",
        b".o",
    ]
    .iter()
    .any(|e| b.ends_with(e))
}

/// Reads argv (`argv[0]` included).
pub fn parse_invocation(argv: &[OsString]) -> Invocation {
    let me = argv
        .first()
        .map(|a| Path::new(a).file_name().unwrap_or(a).to_os_string())
        .unwrap_or_default();
    let me_str = me.to_string_lossy();
    if !(me_str == "rcc" || me_str.starts_with("rcc-") || me_str.starts_with("rcc.")) {
        // Masquerade: a symlink named gcc, cc, g++, ... pointing at rcc.
        return Invocation::Compile {
            compiler: me,
            args: argv[1..].to_vec(),
            masquerade: true,
        };
    }
    let rest = &argv[1..];
    match rest.first().and_then(|a| a.to_str()) {
        None => {
            return Invocation::BadUsage(
                "nothing to do: give a compiler command (rcc gcc -c x.c) or an option".into(),
            )
        }
        Some("--help") | Some("-h") => return Invocation::Help,
        Some("--version") => return Invocation::Version,
        Some("--show-hosts") => return Invocation::ShowHosts,
        Some("--jobs") if rest.len() == 1 => return Invocation::Jobs,
        Some("--status") => return parse_status(&rest[1..]),
        Some("--scan-server") if rest.len() == 1 => return Invocation::ScanServer,
        _ => {}
    }
    let first = &rest[0];
    if first.as_bytes().starts_with(b"-") || looks_like_source_or_object(first) {
        Invocation::Compile {
            compiler: "cc".into(),
            args: rest.to_vec(),
            masquerade: false,
        }
    } else {
        Invocation::Compile {
            compiler: first.clone(),
            args: rest[1..].to_vec(),
            masquerade: false,
        }
    }
}

/// Settings from the environment.
struct Settings {
    verbose: bool,
    rcc_dir: PathBuf,
    timeouts: Timeouts,
    backoff: Duration,
    /// The deflate level of what this client sends (`RCC_DEFLATE_LEVEL`, 0-9).
    deflate_level: u8,
}

impl Settings {
    fn load(env: &dyn Env) -> Settings {
        let secs = |k: &str, d: u64| {
            env.var(k)
                .and_then(|v| parse_seconds(&v))
                .unwrap_or(Duration::from_secs(d))
        };
        Settings {
            verbose: env.var("RCC_VERBOSE").is_some_and(|v| v == "1"),
            rcc_dir: rcc_dir(env),
            timeouts: Timeouts {
                connect: secs("RCC_CONNECT_TIMEOUT", 2),
                io: secs("RCC_IO_TIMEOUT", 20),
            },
            backoff: secs("RCC_BACKOFF_PERIOD", 60),
            deflate_level: env
                .var("RCC_DEFLATE_LEVEL")
                .and_then(|v| v.parse::<u8>().ok())
                .filter(|l| *l <= 9)
                .unwrap_or(crate::compress::DEFAULT_LEVEL),
        }
    }
}

/// Seconds as `12` or `0.5` (to the millisecond). Parsed by hand: float parsing and
/// printing would add some 30 KB to a binary that must stay small on the boxes.
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) || whole.len() > 9 {
        return None;
    }
    let ms: u64 = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |acc, b| acc * 10 + u64::from(b - b'0'));
    let s: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    Some(Duration::from_millis(s * 1000 + ms))
}

/// A duration as milliseconds with one decimal, for `RCC_VERBOSE` (no floats; see above).
fn ms(d: Duration) -> String {
    let tenths = d.as_micros() / 100;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// `RCC_DIR`, default `~/.rcc`.
pub fn rcc_dir(env: &dyn Env) -> PathBuf {
    if let Some(d) = env.var_os("RCC_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match env.var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Path::new(&h).join(".rcc"),
        None => std::env::temp_dir().join(format!("rcc-{}", crate::sys::getuid())),
    }
}

/// Loads the host list, or says why there is none.
pub fn load_hosts(env: &dyn Env) -> Result<HostList, String> {
    let get = |k: &str| env.var(k);
    let (text, source) = match hosts::source(get, &rcc_dir(env), |p| p.is_file()) {
        hosts::Source::Env(name) => (env.var(name).unwrap_or_default(), name.to_string()),
        hosts::Source::File(p) => match std::fs::read_to_string(&p) {
            Ok(t) => (t, p.display().to_string()),
            Err(e) => return Err(format!("cannot read host list {}: {e}", p.display())),
        },
        hosts::Source::None => {
            return Err(
                "no host list: set RCC_HOSTS (e.g. RCC_HOSTS='box1 box2 localhost') or \
                 write /etc/rcc/hosts"
                    .into(),
            )
        }
    };
    hosts::parse(&text, &source).map_err(|e| e.to_string())
}

/// `rcc --status` options, in any order.
fn parse_status(opts: &[OsString]) -> Invocation {
    let (mut kv, mut watch) = (false, false);
    let mut it = opts.iter().map(|o| o.to_string_lossy());
    while let Some(o) = it.next() {
        match o.as_ref() {
            "--watch" => watch = true,
            "--format" => match it.next().as_deref() {
                Some("kv") => kv = true,
                Some("table") => kv = false,
                other => {
                    return Invocation::BadUsage(format!(
                        "--format takes kv or table, not {}",
                        other.unwrap_or("nothing")
                    ))
                }
            },
            "--format=kv" => kv = true,
            "--format=table" => kv = false,
            other => {
                return Invocation::BadUsage(format!(
                    "--status does not take {other:?} (it takes --format kv|table and --watch)"
                ))
            }
        }
    }
    Invocation::Status { kv, watch }
}

/// Runs rcc with `argv` and returns the process exit code.
pub fn run(argv: Vec<OsString>, env: &dyn Env) -> u8 {
    // Named, so the linker keeps the note that tells another rcc this is one.
    std::hint::black_box(&crate::sys::RCC_NOTE);
    match parse_invocation(&argv) {
        Invocation::Help => {
            out(USAGE);
            0
        }
        Invocation::Version => {
            out(&format!("rcc {}\n", env!("CARGO_PKG_VERSION")));
            0
        }
        Invocation::ShowHosts => match load_hosts(env) {
            Ok(list) => {
                say_skipped(&list);
                for h in &list.hosts {
                    out(&format!("{}\n", h.token));
                }
                0
            }
            Err(e) => {
                eprintln!("rcc: {e}");
                exit::BAD_ARGUMENTS
            }
        },
        Invocation::ScanServer => {
            let settings = Settings::load(env);
            match scan_server::serve(&settings.rcc_dir) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("rcc --scan-server: {e}");
                    exit::BAD_ARGUMENTS
                }
            }
        }
        Invocation::Jobs => {
            let settings = Settings::load(env);
            let list = match load_hosts(env) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("rcc: {e}");
                    return exit::BAD_ARGUMENTS;
                }
            };
            say_skipped(&list);
            let (jobs, notes) = advert::make_jobs(&list, settings.timeouts);
            for n in notes {
                eprintln!("rcc: {n}");
            }
            out(&format!("{jobs}\n"));
            0
        }
        Invocation::BadUsage(e) => {
            eprintln!("rcc: {e}\n\n{USAGE}");
            exit::BAD_ARGUMENTS
        }
        Invocation::Status { kv, watch } => {
            let settings = Settings::load(env);
            let list = match load_hosts(env) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("rcc: {e}");
                    return exit::BAD_ARGUMENTS;
                }
            };
            say_skipped(&list);
            if watch {
                return status::watch(&list, settings.timeouts, kv);
            }
            let rows = status::collect(&list, settings.timeouts);
            if kv {
                out(&status::render_kv(&rows));
            } else {
                out(&status::render_table(&rows));
            }
            // On stderr, so scripts reading the kv lines still see them.
            for w in status::clones(&rows) {
                eprintln!("rcc: {w}");
            }
            0
        }
        Invocation::Compile {
            compiler,
            args,
            masquerade,
        } => {
            let settings = Settings::load(env);
            let mut c = Client {
                env,
                settings,
                started: Instant::now(),
            };
            let argv0 = argv.first().cloned().unwrap_or_default();
            c.compile(&argv0, &compiler, args, masquerade)
        }
    }
}

struct Client<'a> {
    env: &'a dyn Env,
    settings: Settings,
    started: Instant,
}

/// The preprocessor's run while streaming to a box.
enum Streamed {
    /// The text went to the box (`result` is the box's answer) and is kept for a retry.
    Sent {
        text: Vec<u8>,
        result: Result<(crate::protocol::Done, remote::Traffic), Failure>,
    },
    /// The preprocessor failed: the user's error, already shown; exit with this code.
    UserError(u8),
}

/// What to do after one attempt on a box.
enum Next {
    /// Done: exit with this code.
    Exit(u8),
    /// Try another box (this one was backed off or marked as needed).
    Another,
    /// Compile locally: the job cannot be distributed after all.
    Local(String),
}

impl Client<'_> {
    fn log(&self, msg: impl AsRef<str>) {
        if self.settings.verbose {
            eprintln!(
                "rcc[{}] {:>6}ms {}",
                std::process::id(),
                ms(self.started.elapsed()),
                msg.as_ref()
            );
        }
    }

    fn compile(
        &mut self,
        argv0: &OsStr,
        compiler: &OsStr,
        args: Vec<OsString>,
        masquerade: bool,
    ) -> u8 {
        let ran = local::chain(self.env.var_os(local::SAFEGUARD).as_deref());
        if ran.len() >= local::MAX_DEPTH {
            eprintln!(
                "rcc: {} runs rcc again, which ran it; stopping this loop here. Put the real \
                 compiler first on PATH after rcc's directory, or name it (rcc /usr/bin/gcc ...)",
                ran[ran.len() - 1].display()
            );
            return exit::RECURSION;
        }
        let program = match self.find_compiler(argv0, compiler, masquerade, &ran) {
            Ok(p) => p,
            Err(code) => return code,
        };
        // Every program rcc starts from here on (the compiler, the preprocessor, probes)
        // carries the chain, so an rcc it starts again knows it is one.
        std::env::set_var(local::SAFEGUARD, local::chain_value(&ran, &program));
        if !ran.is_empty() {
            // A compiler we started runs `gcc` again through a masquerade (a wrapper such as
            // ccache between us): compile here, with a compiler no rcc above has run.
            return self.run_local_now(&program, &args, "called from a compiler rcc started");
        }
        let verdict = self.distributable(&program, &args);
        let (plan, name) = match verdict {
            Ok(x) => x,
            Err(reason) => return self.run_local(&program, &args, &reason),
        };
        match self.distribute(&program, &name, &args, &plan) {
            Ok(code) => code,
            Err(reason) => self.run_local(&program, &args, &reason),
        }
    }

    /// The real compiler for `compiler`, never rcc itself; `Err(exit code)` once the reason
    /// is said.
    fn find_compiler(
        &self,
        argv0: &OsStr,
        compiler: &OsStr,
        masquerade: bool,
        ran: &[PathBuf],
    ) -> Result<PathBuf, u8> {
        let me = std::env::current_exe()
            .ok()
            .and_then(|p| p.canonicalize().ok());
        let path = self.env.var_os("PATH");
        let lookup = local::Lookup {
            path: path.as_deref(),
            me: me.as_deref(),
            own_dir: masquerade
                .then(|| local::own_dir(argv0, path.as_deref(), me.as_deref()))
                .flatten(),
            ran,
        };
        let Some(program) = lookup.find(compiler) else {
            eprintln!(
                "rcc: cannot find the compiler \"{}\" on PATH{}{}",
                compiler.to_string_lossy(),
                if masquerade {
                    " after rcc's own directory"
                } else {
                    ""
                },
                match ran.last().filter(|p| p.is_absolute()) {
                    Some(p) => format!(" (other than rcc, and {} which ran rcc)", p.display()),
                    None => " (other than rcc)".into(),
                }
            );
            return Err(exit::COMPILER_MISSING);
        };
        if local::is_rcc(&program, me.as_deref()) {
            eprintln!(
                "rcc: \"{}\" is rcc itself; name the real compiler (rcc gcc ...)",
                program.display()
            );
            return Err(exit::RECURSION);
        }
        Ok(program)
    }

    /// Decides whether this command may go to a box at all.
    fn distributable(&self, program: &Path, args: &[OsString]) -> Result<(Plan, String), String> {
        let plan = args::classify(args).map_err(|r| r.to_string())?;
        // `-x c /dev/null`: a build's probe of an option (the kernel's Makefile asks dozens
        // before it compiles anything, one after another). Nothing to send, and here it
        // takes a fraction of a round trip to a box.
        if !std::fs::metadata(&plan.source).is_ok_and(|m| m.is_file()) {
            return Err(format!(
                "{} is not a regular file (an option probe): compiled here",
                Path::new(&plan.source).display()
            ));
        }
        let name = program
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if !crate::compiler::is_compiler_name(&name) {
            return Err(format!(
                "\"{name}\" is not a compiler name the boxes will run"
            ));
        }
        for var in ["GCC_EXEC_PREFIX", "COMPILER_PATH", "GCC_COMPARE_DEBUG"] {
            if self.env.var_os(var).is_some() {
                return Err(format!("{var} is set and changes what the compiler runs"));
            }
        }
        Ok((plan, name))
    }

    fn state(&self) -> Option<State> {
        match State::open(&self.settings.rcc_dir) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!(
                    "rcc: cannot use RCC_DIR {}: {e}; compiling locally",
                    self.settings.rcc_dir.display()
                );
                None
            }
        }
    }

    /// Tries the farm. `Err(reason)`: compile locally.
    fn distribute(
        &mut self,
        program: &Path,
        name: &str,
        args: &[OsString],
        plan: &Plan,
    ) -> Result<u8, String> {
        let state = self.state().ok_or("RCC_DIR is not usable")?;
        // A bad host list is worth saying even without RCC_VERBOSE (the build goes on, but
        // slower than the user expects), once per build rather than once per job.
        let list = load_hosts(self.env).map_err(|e| {
            say_once(&state, Notice::Hosts, &format!("{e}; compiling locally"));
            e
        })?;
        for e in &list.skipped {
            say_once(
                &state,
                Notice::Hosts,
                &format!("{e}; left out, using the other hosts"),
            );
        }
        let identity = identity::get(program, &state.state_dir())
            .map_err(|e| format!("cannot ask {} who it is: {e}", program.display()))?;
        let cwd = std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
        let mut hosts: Vec<&HostSpec> = list.hosts.iter().filter(|h| !h.down).collect();
        if list.randomize {
            shuffle(&mut hosts);
        }
        // Preprocessing is the master's main cost for a remote job: at most this many run at
        // once (`--localslots_cpp=N`, else twice the local slots, at least 2), so a `make -j`
        // far above the farm's slots does not flood the master with preprocessors.
        let cpp_limit = list.local_slots_cpp.unwrap_or_else(|| {
            list.local_slots
                .unwrap_or_else(|| crate::sys::online_cpus() as u32)
                .saturating_mul(2)
                .max(2)
        });
        let now = SystemTime::now();
        let candidates: Vec<Candidate> = hosts
            .iter()
            .map(|h| {
                let key = h.key();
                let limit = match h.kind {
                    HostKind::Local => h.limit.unwrap_or_else(|| {
                        // A bare `localhost` compiles only with a CPU to spare: the master
                        // preprocesses, scans and links for the whole farm, and a job it
                        // compiles on a busy CPU delays all of that (tests/tools/MEASURED.md).
                        if master_has_a_spare_cpu() {
                            advert::DEFAULT_LOCAL_SLOTS
                        } else {
                            0
                        }
                    }),
                    // A box that is backed off is not asked; it is skipped below anyway.
                    HostKind::Tcp { .. }
                        if state.is_backed_off(&key, self.settings.backoff, now) =>
                    {
                        h.limit.unwrap_or(advert::DEFAULT_BOX_SLOTS)
                    }
                    HostKind::Tcp { .. } => {
                        match advert::box_slots(&state, h, self.settings.timeouts, now) {
                            Ok(n) => n,
                            Err(e) => {
                                self.log(format!("{key}: no advert ({e}); backing it off"));
                                let _ = state.backoff(&key, now);
                                advert::DEFAULT_BOX_SLOTS
                            }
                        }
                    }
                };
                let remote = matches!(h.kind, HostKind::Tcp { .. });
                Candidate {
                    cost: if remote { state.cost(&key, now) } else { None },
                    key,
                    limit,
                    remote,
                }
            })
            .collect();

        // Shipping the sources (the box preprocesses) unless this job or the user says no.
        let ship_plan = match self.ship_plan(args, plan) {
            Ok(sp) => Some(sp),
            Err(why) => {
                self.log(format!("preprocessing here: {why}"));
                None
            }
        };
        let mut shipment: Option<Result<ship::Shipment, String>> = None;
        let scan = |state: &State| -> Result<Result<ship::Shipment, String>, String> {
            // Scanning is the master's cost in this mode: bounded like preprocessing.
            let slot = state
                .lock_cpp(cpp_limit, Instant::now() + Duration::from_secs(600))
                .map_err(|e| format!("cannot lock a preprocessing slot: {e}"))?;
            let t = Instant::now();
            let sp = ship_plan.as_ref().expect("only with a ship plan");
            let source = plan.source.to_str().unwrap_or_default();
            let (made, by) = self.prepare(program, &identity, args, sp, source, &cwd);
            drop(slot);
            match &made {
                Ok(sh) => self.log(format!(
                    "scanned {source} in {} ms {by}: {} files, {} bytes",
                    ms(t.elapsed()),
                    sh.files,
                    sh.bytes
                )),
                Err(why) => self.log(format!("preprocessing here: {why}")),
            }
            Ok(made)
        };
        // Scanned before waiting for a slot when the job will go to a box: done while every
        // box is busy, the scan does not leave the slot that frees up idle (a box waits for
        // the master's scan otherwise, some 30-50 ms of a throttled master per job).
        let now = SystemTime::now();
        let local_slot = candidates.iter().any(|c| !c.remote && c.limit > 0);
        let some_box_takes_sources = candidates
            .iter()
            .any(|c| c.remote && state.marked(Mark::NoShipping, &c.key, now).is_none());
        if ship_plan.is_some() && !local_slot && some_box_takes_sources {
            shipment = Some(scan(&state)?);
        }
        let mut input: Option<Vec<u8>> = None;
        let mut tried = Vec::new();
        // Each box is tried at most once per job in each mode; bounded by the list.
        for _ in 0..=2 * hosts.len() {
            let now = SystemTime::now();
            let usable: Vec<Candidate> = candidates
                .iter()
                .filter(|c| !tried.contains(&c.key))
                // A box offering no slots now (throttled when it last said) is skipped.
                .filter(|c| c.limit > 0)
                .filter(|c| !c.remote || self.usable(&state, &c.key, &identity, now))
                .cloned()
                .collect();
            if !usable.iter().any(|c| c.remote) {
                return Err("no box is available".into());
            }
            let deadline = Instant::now() + Duration::from_secs(600);
            let Some(picked) = state
                .pick_wait(&usable, deadline)
                .map_err(|e| format!("cannot lock a slot in RCC_DIR: {e}"))?
            else {
                return Err("waited too long for a free slot".into());
            };
            let cand = &usable[picked.index];
            if !cand.remote {
                // The localhost entry won: run here, holding its slot until done.
                let code = self.run_local_now(program, args, "a localhost slot was free");
                drop(picked);
                return Ok(code);
            }
            let host = hosts
                .iter()
                .find(|h| h.key() == cand.key)
                .expect("candidate comes from the list");
            tried.push(cand.key.clone());
            let wants_sources =
                ship_plan.is_some() && state.marked(Mark::NoShipping, &cand.key, now).is_none();
            if wants_sources && shipment.is_none() {
                shipment = Some(scan(&state)?);
            }
            let sources = match &shipment {
                Some(Ok(sh)) if wants_sources => Some(sh),
                _ => None,
            };
            if let Some(sh) = sources {
                let req = self.request(name, &identity, plan, &cwd, host.compress, Some(sh));
                let t = Instant::now();
                let result = self.ask(&state, host, &req).and_then(|accepted| {
                    accepted
                        .ship(&sh.body, |i| sh.content(i))
                        .map(|(d, t, needed)| {
                            self.log(format!(
                                "{}: box needed {needed} of {} files",
                                host.addr_string(),
                                sh.files
                            ));
                            (d, t)
                        })
                });
                if let Err(Failure::Rejected(r)) = &result {
                    if r.reason == RejectReason::BadRequest {
                        // An older box, or one that will not take these files: the same box
                        // gets the job preprocessed.
                        self.log(format!(
                            "{} refused the sources ({}); preprocessing here",
                            host.addr_string(),
                            r.text
                        ));
                        if r.text.contains("unknown job mode") {
                            let until = now + Duration::from_secs(600);
                            let _ = state.mark(Mark::NoShipping, &cand.key, until, &r.text);
                        }
                        shipment = Some(Err(r.text.clone()));
                        tried.pop();
                        continue;
                    }
                }
                if let Err(Failure::Source(why)) = &result {
                    return Err(why.clone());
                }
                let attempt = Attempt {
                    started: t,
                    input_len: sh.bytes as usize,
                    shipped: Some(sh),
                };
                match self.conclude(&state, host, &req, plan, result, attempt) {
                    Next::Exit(code) => return Ok(code),
                    Next::Another => continue,
                    Next::Local(why) => return Err(why),
                }
            }
            if input.is_none() && plan.cpp_args.is_none() {
                // Already preprocessed (.i/.ii): the source is the input.
                let text = std::fs::read(&plan.source)
                    .map_err(|e| format!("cannot read {}: {e}", plan.source.to_string_lossy()))?;
                if crate::compiler::mentions_assembler_include(&text) {
                    return Err(
                        "the source uses .incbin/.include, which reads files at assembly".into(),
                    );
                }
                // The box compiles it as `input.i`: the names gcc records go in the text.
                let pwd = names::working_dir(self.env.var_os("PWD").as_deref());
                let source = plan.source.to_str().unwrap_or_default();
                let pwd = pwd.as_ref().map(|p| p.as_os_str().as_bytes());
                input = Some(names::as_named(text, source, pwd));
            }
            let req = self.request(name, &identity, plan, &cwd, host.compress, None);
            // Preprocessing is the master's main cost: at most `cpp_limit` run at once. The
            // slot is taken before the box is asked, since a box gives an accepted job's
            // input a deadline that a wait here must not spend (README "rccd flags").
            let mut cpp_slot = match input {
                Some(_) => None,
                None => Some(
                    state
                        .lock_cpp(cpp_limit, Instant::now() + Duration::from_secs(600))
                        .map_err(|e| format!("cannot lock a preprocessing slot: {e}"))?,
                ),
            };
            let t = Instant::now();
            let result = match self.ask(&state, host, &req) {
                Err(f) => Err(f),
                Ok(accepted) => match (&input, cpp_slot.take()) {
                    (Some(text), _) => accepted.compile(text),
                    (None, None) => unreachable!("a preprocessing slot was taken above"),
                    // The first box that accepts gets the text as the preprocessor makes it.
                    (None, Some(slot)) => match self.stream_cpp(program, plan, slot, accepted)? {
                        Streamed::UserError(code) => return Ok(code),
                        Streamed::Sent { text, result } => {
                            input = Some(text);
                            result
                        }
                    },
                },
            };
            let attempt = Attempt {
                started: t,
                input_len: input.as_ref().map_or(0, |t| t.len()),
                shipped: None,
            };
            match self.conclude(&state, host, &req, plan, result, attempt) {
                Next::Exit(code) => return Ok(code),
                Next::Another => continue,
                Next::Local(why) => return Err(why),
            }
        }
        Err("every box failed".into())
    }

    /// The job's shipment from the build's scan server, else scanned here (and a server
    /// started for the next jobs); and which of the two it was, for the log.
    fn prepare(
        &self,
        program: &Path,
        identity: &str,
        args: &[OsString],
        sp: &crate::ship_args::ShipPlan,
        source: &str,
        cwd: &Path,
    ) -> (Result<ship::Shipment, String>, &'static str) {
        let rcc_dir = &self.settings.rcc_dir;
        let use_server = !self.env.var("RCC_SCAN_SERVER").is_some_and(|v| v == "0");
        if use_server {
            let req = scan_server::Request {
                build: scan_server::this_build(),
                compiler: program.to_path_buf(),
                identity: identity.to_string(),
                cwd: cwd.to_path_buf(),
                args: args.to_vec(),
            };
            match scan_server::ask(rcc_dir, &req) {
                Ok(scan_server::Reply::Shipped {
                    body,
                    files,
                    bytes,
                    predef,
                }) => {
                    let sh = ship::Shipment::encoded(body, files as usize, bytes, sp, predef);
                    return (Ok(sh), "by the scan server");
                }
                Ok(scan_server::Reply::Refused(why)) => return (Err(why), "by the scan server"),
                Err(why) => {
                    self.log(format!("{why}; scanning here"));
                    if let Err(e) = scan_server::start(rcc_dir) {
                        self.log(format!("cannot start a scan server: {e}"));
                    }
                }
            }
        }
        let made = ship::Scanner::for_one_job(rcc_dir)
            .map_err(|e| format!("RCC_DIR/files: {e}"))
            .and_then(|mut scanner| {
                ship::prepare(&mut scanner, program, identity, sp, source, cwd, rcc_dir)
            });
        (made, "here")
    }

    /// Whether this job may ship its sources, and how; `Err` says why not.
    fn ship_plan(
        &self,
        args: &[OsString],
        plan: &Plan,
    ) -> Result<crate::ship_args::ShipPlan, String> {
        if self.env.var("RCC_SHIP").is_some_and(|v| v == "0") {
            return Err("RCC_SHIP=0".into());
        }
        if let Some(why) = ship::env_blocks(|k| self.env.var_os(k)) {
            return Err(why);
        }
        crate::ship_args::ship_plan(args, plan)
    }

    /// The hello for a job: preprocessed, or shipping its sources with `sources`.
    fn request(
        &self,
        name: &str,
        identity: &str,
        plan: &Plan,
        cwd: &Path,
        compress: bool,
        sources: Option<&ship::Shipment>,
    ) -> JobRequest {
        let (mode, args, input_ext) = match sources {
            None => (
                Mode::Preprocessed,
                plan.remote_args
                    .iter()
                    .map(|a| a.as_bytes().to_vec())
                    .collect(),
                plan.remote_input_ext.to_string(),
            ),
            Some(sh) => (
                Mode::Sources,
                sh.literal.iter().map(|a| a.as_bytes().to_vec()).collect(),
                // The box names the source as the command does; this is only for its logs.
                String::new(),
            ),
        };
        JobRequest {
            mode,
            compress,
            compiler: name.to_string(),
            identity: identity.to_string(),
            args,
            input_ext,
            output_ext: match plan.stage {
                Stage::Object => "o".into(),
                Stage::Assembly => "s".into(),
            },
            cwd: cwd.as_os_str().as_bytes().to_vec(),
            label: plan.source.to_string_lossy().into_owned(),
            locale: crate::protocol::LOCALE_VARS
                .iter()
                .filter_map(|k| Some((k.to_string(), self.env.var(k)?)))
                .filter(|(_, v)| crate::protocol::is_locale_value(v))
                .collect(),
        }
    }

    /// Asks `host` to take `req`. What the box says as it accepts (its slots now) is kept for
    /// the build's other rcc processes.
    fn ask(
        &self,
        state: &State,
        host: &HostSpec,
        req: &JobRequest,
    ) -> Result<remote::Accepted, Failure> {
        let accepted = remote::request(
            &host.addr_string(),
            req,
            self.settings.timeouts,
            self.settings.deflate_level,
        )?;
        let a = state::Advert {
            jobs: accepted.accept.jobs,
            slots_now: accepted.accept.slots,
        };
        advert::note_accept(state, &host.key(), a, SystemTime::now());
        Ok(accepted)
    }

    fn usable(&self, state: &State, key: &str, identity: &str, now: SystemTime) -> bool {
        if state.is_backed_off(key, self.settings.backoff, now) {
            self.log(format!("{key}: backed off"));
            return false;
        }
        for mark in [Mark::Busy, Mark::Hot] {
            if let Some(t) = state.marked(mark, key, now) {
                self.log(format!("{key}: {} ({t})", mark.name()));
                return false;
            }
        }
        if let Some(t) = state.marked(Mark::Mismatch, &mismatch_key(key, identity), now) {
            self.log(format!("{key}: {t}"));
            return false;
        }
        true
    }
}

/// One try of a job on a box: when it began, how much input it carried, and the sources it
/// shipped (if it did).
struct Attempt<'a> {
    started: Instant,
    input_len: usize,
    shipped: Option<&'a ship::Shipment>,
}

impl Client<'_> {
    /// Runs the preprocessor here and sends its output to the box piece by piece as it
    /// comes, so preprocessing, compressing, the transfer and the box's writing overlap. The
    /// text is kept for another box should this one fail. `Err`: compile locally.
    fn stream_cpp(
        &self,
        program: &Path,
        plan: &Plan,
        slot: pick::SlotLock,
        mut accepted: remote::Accepted,
    ) -> Result<Streamed, String> {
        let cpp_args = plan.cpp_args.as_ref().expect("a source to preprocess");
        let t = Instant::now();
        // The preprocessing slot is held while the preprocessor runs, not while its output
        // travels.
        // On directives alone gcc refuses a few things a full preprocessing takes
        // (`__COUNTER__` in an `#if`): its words are held until it is known they are the
        // user's, and if it fails the job compiles here, where gcc says what is wrong once.
        let directives_only = cpp_args.iter().any(|a| a == "-fdirectives-only");
        let (held, stderr) = match directives_only.then(cpp::hold_diagnostics).flatten() {
            Some((file, into)) => (Some(file), into),
            None => (None, std::process::Stdio::inherit()),
        };
        let events = cpp::Stream::start(program, cpp_args, stderr)
            .map_err(|e| format!("cannot run the preprocessor: {e}"))?
            .read_ahead(remote::PIECE, slot);
        let mut text = Vec::with_capacity(4 << 20);
        let mut failed: Option<Failure> = None;
        let code = loop {
            match events.recv() {
                cpp::Event::Piece(piece) => {
                    // The first piece starts with the names gcc records (see `names`).
                    let piece = if text.is_empty() {
                        names::without_escaped_dir(piece)
                    } else {
                        piece
                    };
                    if failed.is_none() {
                        // A box that fails mid-transfer: the text is still read whole, for
                        // the next box.
                        failed = accepted.send_piece(&piece).err();
                    }
                    text.extend_from_slice(&piece);
                }
                cpp::Event::End(code) => {
                    break code.map_err(|e| format!("cannot run the preprocessor: {e}"))?
                }
            }
        };
        if let Some(f) = held {
            let said = cpp::held(f);
            if code != 0 {
                return Err(format!(
                    "the preprocessor failed on directives alone ({code})"
                ));
            }
            let _ = std::io::stderr().write_all(&said);
        }
        if code != 0 {
            // The user's error, shown once by the preprocessor itself; dropping the
            // connection makes the box throw the partial input away.
            self.log(format!("preprocessor failed with {code}: the user's error"));
            return Ok(Streamed::UserError(code));
        }
        if crate::compiler::mentions_assembler_include(&text) {
            return Err("the source uses .incbin/.include, which reads files at assembly".into());
        }
        // On directives alone the box's compiler expands the macros, these with its clock and
        // its copy's file time: a build that stamps itself is stamped here, as gcc does.
        if directives_only && crate::includes::names_the_clock(&text) {
            return Err(format!("the source {}", crate::includes::CLOCK));
        }
        // And `__BASE_FILE__` to the name of its own copy of the text.
        if directives_only && crate::includes::names_the_base_file(&text) {
            return Err(format!("the source {}", crate::includes::BASE_FILE));
        }
        self.log(format!(
            "preprocessed {} in {} ms while sending it: {} bytes",
            plan.source.to_string_lossy(),
            ms(t.elapsed()),
            text.len()
        ));
        let result = match failed {
            Some(f) => Err(f),
            None => accepted.finish(),
        };
        Ok(Streamed::Sent { text, result })
    }

    /// What one try on one box came to, and what to do next.
    fn conclude(
        &self,
        state: &State,
        host: &HostSpec,
        req: &JobRequest,
        plan: &Plan,
        result: Result<(crate::protocol::Done, remote::Traffic), Failure>,
        attempt: Attempt,
    ) -> Next {
        let key = host.key();
        let addr = host.addr_string();
        let now = SystemTime::now();
        let (done, traffic) = match result {
            Ok(x) => x,
            Err(Failure::Rejected(r)) => {
                self.log(format!("{addr} said {}: {}", r.reason.name(), r.text));
                return self.on_reject(state, host, req, r);
            }
            Err(f) => {
                self.log(format!("{addr}: {f}; backing it off"));
                let _ = state.backoff(&key, now);
                return Next::Another;
            }
        };
        self.log(format!(
            "{addr} compiled {} in {} ms: sent {} B, received {} B, {:?}",
            req.label,
            ms(attempt.started.elapsed()),
            traffic.sent,
            traffic.received,
            done.exit
        ));
        match done.exit {
            Exit::Code(0) => {
                let Some((_, data)) = done.outputs.iter().find(|(n, _)| *n == req.output_ext)
                else {
                    // The compiler wrote nothing (e.g. `-Wa,--version`): the job's doing,
                    // not the box's, so no backoff; the real thing runs here.
                    return Next::Local(format!("{addr}: the compiler wrote no output"));
                };
                // The dependency file first: make trusts the object's time, so by the time
                // the object is there, so is the list of what it was made from.
                if let Some(sh) = attempt.shipped.filter(|sh| sh.dep_file.is_some()) {
                    let Some((_, text)) = done.outputs.iter().find(|(n, _)| n == "d") else {
                        return Next::Local(format!("{addr}: no dependency file came back"));
                    };
                    let written =
                        sh.depfile(&String::from_utf8_lossy(text))
                            .and_then(|(file, text)| {
                                write_atomically(Path::new(&file), text.as_bytes())
                                    .map_err(|e| format!("cannot write {file}: {e}"))
                            });
                    if let Err(e) = written {
                        return Next::Local(format!("{addr}: {e}"));
                    }
                }
                if let Err(e) = write_atomically(Path::new(&plan.output), data) {
                    return Next::Local(format!(
                        "cannot write {}: {e}",
                        plan.output.to_string_lossy()
                    ));
                }
                let _ = state.clear_backoff(&key);
                if done.compile_ms > 0 {
                    let _ = state.record_speed(&key, done.compile_ms, attempt.input_len, now);
                }
                relay(&done.stdout, &done.stderr);
                Next::Exit(0)
            }
            // gcc exits 1 for errors in the user's code. The box's words lack the source
            // excerpts (it has only the preprocessed text), and a few warnings only fire on
            // unpreprocessed source (`-Wimplicit-fallthrough` comments under `-Werror`), so
            // the verdict and the diagnostics come from the real compile here; the box is
            // not to blame.
            Exit::Code(1) => Next::Local(format!(
                "{addr} reported errors; compiling here for gcc's own words"
            )),
            // Anything else (an internal compiler error, a compiler killed on the box by the
            // OOM killer or a signal) is the box's problem: the job goes elsewhere.
            other => {
                self.log(format!(
                    "{addr}: compiler ended with {other:?}; backing it off"
                ));
                let _ = state.backoff(&key, now);
                Next::Another
            }
        }
    }

    fn on_reject(
        &self,
        state: &State,
        host: &HostSpec,
        req: &JobRequest,
        r: crate::protocol::Reject,
    ) -> Next {
        let key = host.key();
        let now = SystemTime::now();
        let later = |ms: u32, min: u64| now + Duration::from_millis((ms as u64).max(min));
        match r.reason {
            RejectReason::Busy => {
                let _ = state.mark(Mark::Busy, &key, later(r.retry_after_ms, 200), &r.text);
                Next::Another
            }
            RejectReason::Throttled => {
                let _ = state.mark(Mark::Hot, &key, later(r.retry_after_ms, 1000), &r.text);
                Next::Another
            }
            RejectReason::CompilerMismatch | RejectReason::NoCompiler => {
                let id_key = mismatch_key(&key, &req.identity);
                let _ = state.mark(
                    Mark::Mismatch,
                    &id_key,
                    now + Duration::from_secs(600),
                    &r.text,
                );
                if state
                    .first_to_say(Notice::Mismatch, &id_key)
                    .unwrap_or(true)
                {
                    eprintln!(
                        "rcc: not using {} for {}: {} (install the same compiler on every box)",
                        host.addr_string(),
                        req.compiler,
                        r.text
                    );
                }
                Next::Another
            }
            // The box refused this job's arguments or input: it is the job, not the box.
            RejectReason::BadRequest => Next::Local(format!("the box refused it: {}", r.text)),
            _ => {
                let _ = state.backoff(&key, now);
                Next::Another
            }
        }
    }

    fn run_local(&self, program: &Path, args: &[OsString], reason: &str) -> u8 {
        let limit = load_hosts(self.env)
            .ok()
            .and_then(|l| {
                l.local_slots.or_else(|| {
                    l.hosts
                        .iter()
                        .find(|h| matches!(h.kind, HostKind::Local))
                        .and_then(|h| h.limit)
                })
            })
            .unwrap_or_else(|| crate::sys::online_cpus() as u32);
        self.run_local_with(program, args, reason, Some(limit))
    }

    /// Runs the command here, unchanged, holding one of `limit` local slots.
    fn run_local_with(
        &self,
        program: &Path,
        args: &[OsString],
        reason: &str,
        limit: Option<u32>,
    ) -> u8 {
        let _slot = match (limit, self.state()) {
            (Some(l), Some(state)) => state
                .lock_local(l.max(1), Instant::now() + Duration::from_secs(3600))
                .ok()
                .flatten(),
            _ => None,
        };
        self.run_local_now(program, args, reason)
    }

    fn run_local_now(&self, program: &Path, args: &[OsString], reason: &str) -> u8 {
        self.log(format!("local: {reason}"));
        match local::run(program, args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("rcc: cannot run {}: {e}", program.display());
                exit::COMPILER_MISSING
            }
        }
    }
}

/// Says `text` on stderr if no other rcc process of this build has said it (see
/// `State::first_to_say`; if that cannot be known, it is said).
fn say_once(state: &State, notice: Notice, text: &str) {
    let key = format!("{:016x}", identity::fnv(text.as_bytes()));
    if state.first_to_say(notice, &key).unwrap_or(true) {
        say(text);
    }
}

/// The key of a `Mark::Mismatch`: box `key` lacks the compiler whose identity is `identity`.
fn mismatch_key(key: &str, identity: &str) -> String {
    format!("{key}_{:016x}", identity::fnv(identity.as_bytes()))
}

/// Writes `text` on stdout. A reader that went away (`rcc --status | head -1`) is not an
/// error worth a panic: `print!` would abort on the broken pipe.
fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|()| o.flush());
}

/// Writes `rcc: text` and a newline on stderr in one write, so the lines of a build's rcc
/// processes do not interleave (`eprintln!` writes its pieces one by one).
fn say(text: &str) {
    let _ = std::io::stderr().write_all(format!("rcc: {text}\n").as_bytes());
}

/// The entries of a host list that were left out, said on stderr (by the commands a user
/// types, every time).
fn say_skipped(list: &HostList) {
    for e in &list.skipped {
        say(&format!("{e}; left out, using the other hosts"));
    }
}

/// Writes the compiler's stdout and stderr once each.
fn relay(stdout: &[u8], stderr: &[u8]) {
    if !stdout.is_empty() {
        let _ = std::io::stdout().write_all(stdout);
        let _ = std::io::stdout().flush();
    }
    if !stderr.is_empty() {
        let _ = std::io::stderr().write_all(stderr);
    }
}

/// Writes `data` to `path` through a temp file in the same directory and a rename, so an
/// interrupted build never leaves a half-written object that make would trust.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path.file_name().ok_or(std::io::ErrorKind::InvalidInput)?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".rcc-{}.tmp", std::process::id()));
    let tmp = match dir {
        Some(d) => d.join(&tmp_name),
        None => PathBuf::from(&tmp_name),
    };
    let result = std::fs::write(&tmp, data).and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether the tasks running on this machine now (this one included) leave a whole CPU of
/// this process's budget (online CPUs, or its cgroup's quota) free.
fn master_has_a_spare_cpu() -> bool {
    let running = crate::sys::running_tasks().unwrap_or(u64::MAX / 200);
    running * 100 < crate::sys::cpu_budget_centi()
}

fn shuffle<T>(v: &mut [T]) {
    // Seeded from the clock and pid: each rcc process of a build gets its own order.
    let mut x = (SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ ((std::process::id() as u64) << 32))
        | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_to_the_millisecond() {
        for (text, want) in [
            ("2", Some(2000)),
            ("0.5", Some(500)),
            (".25", Some(250)),
            ("20.", Some(20_000)),
            (" 1.2345 ", Some(1234)),
            ("", None),
            (".", None),
            ("-1", None),
            ("1e3", None),
            ("abc", None),
            ("9999999999", None),
        ] {
            assert_eq!(
                parse_seconds(text).map(|d| d.as_millis() as u64),
                want,
                "{text:?}"
            );
        }
        assert_eq!(ms(Duration::from_micros(12_345)), "12.3");
        assert_eq!(ms(Duration::ZERO), "0.0");
    }
}
