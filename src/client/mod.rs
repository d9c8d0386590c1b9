//! rcc, the client: how rcc was called (`run`), and the decision flow of a compile —
//! classify the command, pick a box, send the job, write the object back — falling back to
//! compiling here whenever the farm can't, so a build never fails because of the farm. The
//! steps live in the files below; this one calls them in order: `Client::compile` →
//! `distributable` → `distribute` → `try_shipped` or `try_preprocessed` → `Next`.
//!
//! Which box gets this job: `Client::pick` (`pick.rs`) lists the places of the host list
//! with the slots each offers now; before each try `Client::usable` leaves out those tried,
//! offering no slot, backed off or marked (`state.rs`), and `State::pick_wait` takes the free
//! slot with the most headroom, a box's before this machine's.
//!
//! Why this job was compiled here: every local compile goes through `Client::run_local` or
//! `run_local_now` (`local.rs`), which log `local: <reason>` under `RCC_VERBOSE=1`. The
//! reason comes from `Client::compile` (called by a compiler rcc started),
//! `Client::distributable` (not a command a box can do: `args::classify`'s `LocalReason`, an
//! option probe, the environment), or `Client::distribute` (no `RCC_DIR` or host list, no
//! box free, or a box's answer that hands the job back: `conclude.rs`); a `localhost` slot
//! that wins the pick runs it here too.
//!
//! A job goes to a box one of two ways. *Shipped*: its sources and headers travel and the
//! box preprocesses (`ship.rs`, `ship_args.rs`, `Shipping`, `try_shipped`,
//! `Mark::NoShipping`; `RCC_SHIP=0` turns it off). The wire calls this `Mode::Sources` and
//! the mark's file in `RCC_DIR/state` is `nosources`: those names stay, for the boxes and
//! the running builds that read them. *Preprocessed*: this machine preprocesses and the box
//! compiles the text (`cpp.rs`, `try_preprocessed`, `Mode::Preprocessed`).
//!
//! | file | job |
//! | --- | --- |
//! | `mod.rs` | how rcc was called (`run`), and the decision flow with its fallbacks |
//! | `job.rs` | one compile as the farm sees it (`Job`): its hello, whether it ships, what it ships |
//! | `pick.rs` | which box gets a job (`Client::pick`, `Client::usable`, `State::pick_wait`); the slot locks |
//! | `state.rs` | what a build's rcc processes share in `RCC_DIR/state`: backoff, marks, adverts, speeds, notices |
//! | `discover.rs` | the boxes found on the LAN (no host list, or `+discover`): one probe per build, shared in `RCC_DIR`; what a reply may make rcc do; `rcc --discover` |
//! | `advert.rs` | what boxes say about their slots; `rcc --jobs` |
//! | `remote.rs` | one exchange with a box |
//! | `conclude.rs` | what a box's answer means (`judge`) and what becomes of it (`deliver`, `on_reject`) |
//! | `cpp.rs` | preprocessing here, streamed to a box; how many at once |
//! | `names.rs` | the source and directory names gcc records, in the preprocessed text a box compiles as its own file |
//! | `local.rs` | finding and running the real compiler (`run_local`: every compile done here) |
//! | `identity.rs` | the master compiler's identity, cached |
//! | `ship.rs` | a shipped job: its manifest, the files' content, the `.d` back |
//! | `scan.rs` | a shipped job's include closure, found without preprocessing |
//! | `files.rs` | each file's hash and include directives, cached per build by its stamp |
//! | `scan_server.rs` | the scan server: one process per `RCC_DIR` scanning the build's jobs with what it keeps in memory |
//! | `status.rs` | `rcc --status` |
//! | `output.rs` | what rcc writes: its answers, its `rcc:` lines, a box's words, files written whole |

pub mod advert;
mod conclude;
pub mod cpp;
pub mod discover;
pub mod files;
pub mod identity;
mod job;
pub mod local;
pub mod names;
mod output;
pub mod pick;
pub mod remote;
pub mod scan;
pub mod scan_server;
pub mod ship;
pub mod state;
pub mod status;

use crate::exit;
use crate::rules::args::{self, Plan};
use crate::rules::hosts::{self, HostList, HostSpec};
use crate::rules::ship_args::ShipPlan;
use crate::wire::protocol::{JobRequest, RejectReason};
use conclude::Attempt;
use cpp::Streamed;
use job::Job;
use output::{out, say_skipped};
use pick::{Candidate, Farm, Pick};
use remote::{Failure, Timeouts};
use ship::Shipment;
use state::{Mark, Notice, State};
use std::ffi::{OsStr, OsString};
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
    /// `rcc --discover`: the boxes on the LAN as a host list.
    Discover,
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
       rcc --discover            find the boxes on the LAN and print them as a host list
                                 (to paste into /etc/rcc/hosts)
       rcc --version | --help

Hosts come from RCC_HOSTS, else DISTCC_HOSTS, else $RCC_DIR/hosts, else /etc/rcc/hosts;
without any, and with a +discover entry, rcc finds the boxes on the LAN.
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
        Some("--discover") if rest.len() == 1 => return Invocation::Discover,
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
    /// How long one probe's finding serves a build (`RCC_DISCOVER_PERIOD`).
    discover_period: Duration,
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
                .unwrap_or(crate::wire::compress::DEFAULT_LEVEL),
            discover_period: env
                .var("RCC_DISCOVER_PERIOD")
                .and_then(|v| parse_seconds(&v))
                .unwrap_or(discover::PERIOD),
        }
    }
}

/// Seconds as `12` or `0.5` (to the millisecond). Parsed by hand: float parsing and
/// printing would grow a binary that must stay small on the boxes.
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
        // No list at all: the boxes on the LAN (`discover`).
        hosts::Source::None => return Ok(HostList::discover_only()),
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
        Invocation::ShowHosts => show_hosts(env),
        Invocation::Discover => discover_hosts(),
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
        Invocation::Jobs => jobs(env),
        Invocation::BadUsage(e) => {
            eprintln!("rcc: {e}\n\n{USAGE}");
            exit::BAD_ARGUMENTS
        }
        Invocation::Status { kv, watch } => status(env, kv, watch),
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

/// The host list for a command a user typed, its left-out entries said, with the boxes
/// found on the LAN where it asks for them (or is none); `Err(exit code)` once the reason
/// is said.
fn typed_hosts(env: &dyn Env) -> Result<HostList, u8> {
    match load_hosts(env) {
        Ok(mut list) => {
            say_skipped(&list);
            if list.discover {
                let dir = Settings::load(env).rcc_dir;
                let found = match State::open(&dir) {
                    Ok(state) => discover::shared(&state, Settings::load(env).discover_period),
                    Err(_) => {
                        let p = discover::probe(hosts::DEFAULT_PORT, discover::WAIT);
                        discover::Shared {
                            boxes: p.found,
                            probed: p.probed,
                        }
                    }
                };
                discover::extend(&mut list, &found.boxes);
                if list.hosts.is_empty() {
                    eprintln!("rcc: {}", discover::none_found(&found));
                }
            }
            Ok(list)
        }
        Err(e) => {
            eprintln!("rcc: {e}");
            Err(exit::BAD_ARGUMENTS)
        }
    }
}

/// `rcc --show-hosts`.
fn show_hosts(env: &dyn Env) -> u8 {
    let list = match typed_hosts(env) {
        Ok(l) => l,
        Err(code) => return code,
    };
    for h in &list.hosts {
        out(&format!("{}\n", h.token));
    }
    0
}

/// `rcc --discover`: the boxes that answer a probe now, as a host list to paste.
fn discover_hosts() -> u8 {
    let p = discover::probe(hosts::DEFAULT_PORT, discover::WAIT * 3);
    for r in &p.refused {
        eprintln!("rcc: left out {r}");
    }
    if p.found.is_empty() {
        let shared = discover::Shared {
            boxes: Vec::new(),
            probed: p.probed,
        };
        eprintln!("rcc: {}", discover::none_found(&shared));
        return 0;
    }
    out(&format!(
        "# found by rcc --discover, probing {}\n",
        p.probed.join(", ")
    ));
    for b in &p.found {
        out(&discover::host_line(b));
    }
    0
}

/// `rcc --jobs`.
fn jobs(env: &dyn Env) -> u8 {
    let settings = Settings::load(env);
    let list = match typed_hosts(env) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (jobs, notes) = advert::make_jobs(&list, settings.timeouts);
    for n in notes {
        eprintln!("rcc: {n}");
    }
    out(&format!("{jobs}\n"));
    0
}

/// `rcc --status`.
fn status(env: &dyn Env, kv: bool, watch: bool) -> u8 {
    let settings = Settings::load(env);
    let list = match typed_hosts(env) {
        Ok(l) => l,
        Err(code) => return code,
    };
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

/// Whether a job that plans to ship is scanned before it waits for a slot: when it will go
/// to a box (no local slot, and a box that takes shipped jobs). Done while every box is
/// busy, the scan does not leave the slot that frees up idle (a box would wait for the
/// master's scan otherwise).
fn scan_first(farm: &Farm, state: &State, shipping: &Shipping) -> bool {
    if !matches!(shipping, Shipping::Planned(_)) {
        return false;
    }
    let now = SystemTime::now();
    let local_slot = farm.candidates.iter().any(|c| !c.remote && c.limit > 0);
    let some_box_takes_shipped = farm
        .candidates
        .iter()
        .any(|c| c.remote && state.marked(Mark::NoShipping, &c.key, now).is_none());
    !local_slot && some_box_takes_shipped
}

/// A compile, as `run` hands it over: the environment, the settings read from it, and the
/// clock of the `RCC_VERBOSE` log. Its methods live with their jobs (see the table above).
struct Client<'a> {
    env: &'a dyn Env,
    settings: Settings,
    started: Instant,
}

/// What to do after one try on a box.
enum Next {
    /// Done: exit with this code.
    Exit(u8),
    /// Try another box (this one was backed off or marked as needed).
    Another,
    /// Pick again, this box included, and send the job preprocessed: the box refused its
    /// sources.
    Preprocess,
    /// Compile locally: the job cannot be distributed after all.
    Local(String),
}

/// Where a job stands on shipping its sources (the box preprocesses them) instead of being
/// preprocessed here.
enum Shipping {
    /// It is preprocessed here: the job or the user said so, or its scan or a box did.
    Off,
    /// It ships once scanned (`Client::scan`).
    Planned(ShipPlan),
    /// Scanned: what it ships.
    Scanned(Shipment),
}

impl Client<'_> {
    /// Says `msg` on stderr under `RCC_VERBOSE=1`, with the process and the time since it
    /// started.
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

    /// Compiles one command (`compiler` found as rcc was called): on a box when it can, here
    /// otherwise. Returns the exit code.
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
        // Why a job is compiled here: the command is not one a box can do (`distributable`),
        // or the farm cannot take it (`distribute`); the reason is logged by `run_local`.
        let (plan, name) = match self.distributable(&program, &args) {
            Ok(x) => x,
            Err(reason) => return self.run_local(&program, &args, &reason),
        };
        match self.distribute(&program, name, &args, plan) {
            Ok(code) => code,
            Err(reason) => self.run_local(&program, &args, &reason),
        }
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
        name: String,
        args: &[OsString],
        plan: Plan,
    ) -> Result<u8, String> {
        let state = self.state().ok_or("RCC_DIR is not usable")?;
        let list = self.host_list(&state)?;
        let job = self.job(program, name, args, plan, &list, &state)?;
        let farm = self.pick(&list, &state);
        let mut shipping = self.shipping(&job);
        if scan_first(&farm, &state, &shipping) {
            self.scan(&job, &state, &mut shipping)?;
        }
        // The preprocessed text, once made: kept for the next box.
        let mut text: Option<Vec<u8>> = None;
        let mut tried = Vec::new();
        // Each box is tried at most once per job in each mode; bounded by the list.
        for _ in 0..=2 * farm.candidates.len() {
            let now = SystemTime::now();
            let (cand, picked) = self.take_slot(&farm, &state, &job.identity, &tried, now)?;
            if !cand.remote {
                // The localhost entry won: run here, holding its slot until done.
                let code = self.run_local_now(program, args, "a localhost slot was free");
                drop(picked);
                return Ok(code);
            }
            let host = farm.host(&cand.key);
            tried.push(cand.key.clone());
            let ships = !matches!(shipping, Shipping::Off)
                && state.marked(Mark::NoShipping, &cand.key, now).is_none();
            if ships {
                self.scan(&job, &state, &mut shipping)?;
            }
            let next = match &shipping {
                Shipping::Scanned(sh) if ships => self.try_shipped(&job, &state, host, sh),
                _ => self.try_preprocessed(&job, &state, host, &mut text),
            };
            // The box's slot is held until its answer is in.
            drop(picked);
            match next {
                Next::Exit(code) => return Ok(code),
                Next::Another => {}
                Next::Preprocess => {
                    shipping = Shipping::Off;
                    tried.pop();
                }
                Next::Local(why) => return Err(why),
            }
        }
        Err("every box failed".into())
    }

    /// A slot on one of the places of `farm` the job has not `tried` and may use now
    /// (`usable`), waited for: the place, and its slot held. `Err`: compile locally.
    fn take_slot(
        &self,
        farm: &Farm,
        state: &State,
        identity: &str,
        tried: &[String],
        now: SystemTime,
    ) -> Result<(Candidate, Pick), String> {
        let usable = self.usable(farm, state, identity, tried, now);
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
        Ok((usable[picked.index].clone(), picked))
    }

    /// The host list for a compile. A bad one is worth saying even without `RCC_VERBOSE`
    /// (the build goes on, but slower than the user expects), once per build rather than
    /// once per job. `Err`: compile locally.
    fn host_list(&self, state: &State) -> Result<HostList, String> {
        let mut list = load_hosts(self.env).inspect_err(|e| {
            state.say_once(Notice::Hosts, &format!("{e}; compiling locally"));
        })?;
        if list.discover {
            let found = discover::shared(state, self.settings.discover_period);
            let names: Vec<String> = found.boxes.iter().map(|b| b.addr.to_string()).collect();
            self.log(format!("discovered: {}", names.join(" ")));
            discover::extend(&mut list, &found.boxes);
            if list.hosts.is_empty() {
                return Err(discover::none_found(&found));
            }
        }
        for e in &list.skipped {
            state.say_once(
                Notice::Hosts,
                &format!("{e}; left out, using the other hosts"),
            );
        }
        Ok(list)
    }

    /// One try of a job that ships its sources, as `sh`, on `host`.
    fn try_shipped(&self, job: &Job, state: &State, host: &HostSpec, sh: &Shipment) -> Next {
        let req = job.request(host.compress, Some(sh));
        let t = Instant::now();
        let answer = self.ask(state, host, &req).and_then(|accepted| {
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
        match &answer {
            // An older box, or one that will not take these files: the job goes
            // preprocessed, to this box or another.
            Err(Failure::Rejected(r)) if r.reason == RejectReason::BadRequest => {
                self.log(format!(
                    "{} refused the sources ({}); preprocessing here",
                    host.addr_string(),
                    r.text
                ));
                if r.text.contains("unknown job mode") {
                    let until = SystemTime::now() + Duration::from_secs(600);
                    let _ = state.mark(Mark::NoShipping, &host.key(), until, &r.text);
                }
                return Next::Preprocess;
            }
            // A file changed while it was sent: the job's doing, not the box's.
            Err(Failure::Source(why)) => return Next::Local(why.clone()),
            _ => {}
        }
        let attempt = Attempt {
            started: t,
            input_len: sh.bytes as usize,
            shipped: Some(sh),
        };
        self.conclude(state, host, &req, &job.plan, answer, attempt)
    }

    /// One try of a job preprocessed here on `host`. The first box that accepts gets the
    /// text as the preprocessor makes it; `text` keeps it for the next.
    fn try_preprocessed(
        &self,
        job: &Job,
        state: &State,
        host: &HostSpec,
        text: &mut Option<Vec<u8>>,
    ) -> Next {
        if text.is_none() && job.plan.cpp_args.is_none() {
            // Already preprocessed (.i/.ii): the source is the input.
            match self.read_preprocessed(&job.plan) {
                Ok(t) => *text = Some(t),
                Err(why) => return Next::Local(why),
            }
        }
        let req = job.request(host.compress, None);
        // Preprocessing is the master's main cost: at most `cpp_limit` run at once. The
        // slot is taken before the box is asked, since a box gives an accepted job's
        // input a deadline that a wait here must not spend (README "rccd flags").
        let mut cpp_slot = match text {
            Some(_) => None,
            None => match cpp::slot(state, job.cpp_limit) {
                Ok(slot) => Some(slot),
                Err(why) => return Next::Local(why),
            },
        };
        let t = Instant::now();
        let answer = match self.ask(state, host, &req) {
            Err(f) => Err(f),
            Ok(accepted) => match (&*text, cpp_slot.take()) {
                (Some(text), _) => accepted.compile(text),
                (None, None) => unreachable!("a preprocessing slot was taken above"),
                (None, Some(slot)) => match self.stream_cpp(job.program, &job.plan, slot, accepted)
                {
                    Err(why) => return Next::Local(why),
                    Ok(Streamed::UserError(code)) => return Next::Exit(code),
                    Ok(Streamed::Sent { text: made, result }) => {
                        *text = Some(made);
                        result
                    }
                },
            },
        };
        let attempt = Attempt {
            started: t,
            input_len: text.as_ref().map_or(0, |t| t.len()),
            shipped: None,
        };
        let next = self.conclude(state, host, &req, &job.plan, answer, attempt);
        drop(cpp_slot);
        next
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
