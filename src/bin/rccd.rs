//! rccd: the daemon on every box. Options as typed (argh) -> `daemon::Config` -> `daemon::run`.

#![forbid(unsafe_code)]

use argh::FromArgs;
use rcc::daemon::{self, sandbox, Config};
use rcc::rules::access::{AllowList, Cidr};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use std::time::Instant;

/// rccd: serve compile jobs from rcc clients on the LAN with this box's own compiler.
#[derive(FromArgs)]
struct Opts {
    /// address:port to listen on (repeatable; default 0.0.0.0:3633; port 0 picks a free port)
    #[argh(option)]
    listen: Vec<String>,
    /// compiles at once (default: online CPUs)
    #[argh(option, short = 'j')]
    jobs: Option<usize>,
    /// requests that may wait for a slot before the answer is "busy" (default: --jobs)
    #[argh(option)]
    queue: Option<usize>,
    /// peer network allowed to connect, CIDR or address (repeatable; default loopback only)
    #[argh(option)]
    allow: Vec<String>,
    /// allow the private LAN ranges (10/8, 172.16/12, 192.168/16, link-local, fc00::/7)
    #[argh(switch)]
    allow_private: bool,
    /// colon-separated directories searched for compilers (default /usr/local/bin:/usr/bin:/bin)
    #[argh(option)]
    compiler_path: Option<String>,
    /// where job dirs are made (default $TMPDIR or /tmp)
    #[argh(option)]
    temp_dir: Option<PathBuf>,
    /// write the bound port of the first --listen here once listening
    #[argh(option)]
    port_file: Option<PathBuf>,
    /// write the daemon's pid here
    #[argh(option)]
    pid_file: Option<PathBuf>,
    /// most open connections (default 1024)
    #[argh(option, default = "1024")]
    max_connections: usize,
    /// seconds a client may stay silent when it should talk (default 30)
    #[argh(option, default = "30")]
    idle_timeout: u64,
    /// seconds a compile may run before it is killed, 0 for no limit (default 3600)
    #[argh(option, default = "3600")]
    job_timeout: u64,
    /// largest input or object in MiB (default 256)
    #[argh(option, default = "256")]
    max_body_mib: usize,
    /// thermal zones and cooling devices to watch (default /sys/class/thermal; an empty
    /// directory turns thermal admission off in practice: "thermal unknown")
    #[argh(option)]
    thermal_root: Option<PathBuf>,
    /// cpufreq policies whose scaling_max_freq is watched (default
    /// /sys/devices/system/cpu/cpufreq)
    #[argh(option)]
    cpufreq_root: Option<PathBuf>,
    /// refuse new jobs at this temperature in °C (default: the CPU zone's lowest passive trip)
    #[argh(option)]
    max_temp: Option<f64>,
    /// °C below --max-temp where the box starts taking fewer jobs (default 5)
    #[argh(option)]
    margin: Option<f64>,
    /// °C of hysteresis before a throttled box accepts again (default: the trip's own, at
    /// least 2)
    #[argh(option)]
    hysteresis: Option<f64>,
    /// ignore the thermal state entirely
    #[argh(switch)]
    no_thermal: bool,
    /// where MemAvailable is read (default /proc/meminfo)
    #[argh(option)]
    meminfo: Option<PathBuf>,
    /// least memory in MiB a compile is assumed to need; a new job waits for that much
    /// MemAvailable (default 64; recent compiles' peaks raise it; 0 turns this off)
    #[argh(option)]
    job_mem_mib: Option<u64>,
    /// most memory in MiB one compile may hold (its data, RLIMIT_DATA; default the box's
    /// MemTotal; 0: no limit)
    #[argh(option)]
    job_mem_max_mib: Option<u64>,
    /// where sources and headers shipped by clients are kept by content hash (default
    /// TEMP_DIR/rccd-cache; on the same file system as --temp-dir, so jobs use hard links)
    #[argh(option)]
    cache_dir: Option<PathBuf>,
    /// most MiB the file cache keeps, least recently used out first (default 256)
    #[argh(option)]
    cache_size: Option<u64>,
    /// take preprocessed jobs only: clients preprocess every job themselves
    #[argh(switch)]
    no_sources: bool,
    /// do not answer discovery probes (UDP on the --listen ports): clients then find this
    /// box only in a host list
    #[argh(switch)]
    no_discovery: bool,
    /// error, warn, info, debug or trace (default info)
    #[argh(option, default = "String::from(\"info\")")]
    log_level: String,
    /// when started as root, the user to run as (default: rccd if /etc/passwd has it, else
    /// nobody; "root" keeps root, which is not safe)
    #[argh(option)]
    user: Option<String>,
    /// read settings from this file (/etc/default/rccd); flags given here win over it
    #[argh(option)]
    config: Option<PathBuf>,
    /// print the settings rccd would run with, and exit
    #[argh(switch)]
    check: bool,
    /// print the version and exit
    #[argh(switch)]
    version: bool,
}

/// The command line with `--config FILE`'s settings merged in (the command line wins).
fn arguments() -> Result<Vec<String>, String> {
    let mut cli = Vec::new();
    for a in std::env::args_os().skip(1) {
        cli.push(
            a.into_string()
                .map_err(|a| format!("argument {a:?} is not UTF-8"))?,
        );
    }
    let Some(i) = cli.iter().position(|a| a == "--config") else {
        return Ok(cli);
    };
    let path = cli
        .get(i + 1)
        .cloned()
        .ok_or("--config needs a file (e.g. /etc/default/rccd)")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("--config {path}: {e}"))?;
    let file = daemon::config_file::parse(&text).map_err(|e| format!("{path}: {e}"))?;
    let mut rest = cli;
    rest.drain(i..i + 2);
    // Keep --config in the list so --check can say where the settings came from.
    let mut merged = daemon::config_file::merge(&file, &rest);
    merged.extend(["--config".to_string(), path]);
    Ok(merged)
}

/// What `--check` prints: the settings as rccd resolved them.
fn describe(c: &Config, level: &str, user: Option<&str>) -> String {
    let listen: Vec<String> = c.listen.iter().map(|a| a.to_string()).collect();
    let compilers: Vec<String> = c
        .compiler_path
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!(
        "listen: {}\nallow: {}\njobs: {}\nqueue: {}\ncompiler path: {}\n{}\
         thermal: {}\nmax connections: {}\nidle timeout: {} s\njob timeout: {} s\n\
         max body: {} MiB\nmemory: {}.\ndiscovery: {}\nlog level: {level}\nuser: {}\n",
        listen.join(" "),
        c.allow,
        c.jobs,
        c.queue,
        compilers.join(":"),
        disk(c),
        thermal(c),
        c.max_connections,
        c.idle_timeout.as_secs(),
        c.job_timeout.as_secs(),
        c.limits.max_body >> 20,
        memory(c),
        discovery(c),
        match user {
            Some(u) => format!("{u} when started as root"),
            None => "rccd (else nobody) when started as root".into(),
        },
    )
}

/// The `--check` line about discovery, after `discovery: `.
fn discovery(c: &Config) -> String {
    if !c.discovery {
        return "off (--no-discovery): clients find this box only in a host list".into();
    }
    let mut ports: Vec<String> = c.listen.iter().map(|a| a.port().to_string()).collect();
    ports.dedup();
    format!(
        "answers probes on UDP port {} from the peers --allow admits ({}), with the \
         address each probe came to",
        ports.join(", "),
        c.allow
    )
}

/// The `--check` line about thermal admission, after `thermal: `.
fn thermal(c: &Config) -> String {
    if !c.thermal.enabled {
        return "off".into();
    }
    let celsius = |mc: i64| format!("{} C", mc as f64 / 1000.0);
    format!(
        "on (zones {}, cpufreq {}, max temp {}, margin {} C, hysteresis {})",
        c.thermal.thermal_root.display(),
        c.thermal.cpufreq_root.display(),
        c.thermal
            .max_temp_mc
            .map_or("the passive trip".into(), celsius),
        c.thermal.margin_mc as f64 / 1000.0,
        c.thermal.hyst_mc.map_or("the trip's own".into(), celsius),
    )
}

/// The `--check` line about memory, after `memory: `: when a new job waits, and what one
/// compile may hold.
fn memory(c: &Config) -> String {
    let memory = if c.job_mem_floor_kib == 0 {
        "not checked (--job-mem-mib 0)".to_string()
    } else {
        format!(
            "a new job waits until MemAvailable (read from {}) is at least {} MiB, or as \
             much as the most recent compiles needed if that is more",
            c.meminfo.display(),
            c.job_mem_floor_kib / 1024
        )
    };
    let cap = match c.job_mem_max_kib {
        0 => "; one compile's memory is not limited (--job-mem-max-mib 0)".to_string(),
        k => format!("; one compile holds at most {} MiB of data", k / 1024),
    };
    memory + &cap
}

/// The `--check` lines about the disk: whether rccd can write its temp dir and how much is
/// free there, and how large the file cache may grow.
fn disk(c: &Config) -> String {
    let whose = if c.temp_dir_given {
        ""
    } else {
        " ($TMPDIR, else /tmp)"
    };
    let user = sandbox::user_name();
    let free = daemon::job::probe_dir(&c.temp_dir).and_then(|()| rcc::sys::free_space(&c.temp_dir));
    let state = match free {
        Ok(f) => format!("writable by {user}, {} MiB free", f >> 20),
        Err(e) => format!("NOT writable by {user}: {}", daemon::health::said(&e)),
    };
    let floor = daemon::health::FREE_FLOOR >> 10;
    let cache = match &c.cache {
        None => "off (--no-sources): clients preprocess every job".to_string(),
        Some((dir, bound)) => {
            let share = daemon::cache::SHARE_PERCENT;
            // The cache dir is made as rccd starts: until then, its parent's disk.
            let free = rcc::sys::free_space(dir)
                .or_else(|e| dir.parent().map_or(Err(e), rcc::sys::free_space));
            let now = free
                .map(|f| {
                    let fit = daemon::cache::fit(*bound, f, 0) >> 20;
                    format!(" (now {fit} MiB, with {} MiB free there)", f >> 20)
                })
                .unwrap_or_default();
            format!(
                "{}, at most {} MiB (--cache-size) and never more than {share}% of its disk's \
                 free space plus what it holds{now}; least recently used files go first",
                dir.display(),
                bound >> 20
            )
        }
    };
    format!(
        "temp dir: {}{whose}: {state}; below {floor} KiB free (after the file cache gave \
         room) the box is full and takes no jobs\nfile cache: {cache}\n",
        c.temp_dir.display()
    )
}

/// What rccd checks before it does anything: that the directories it was told to use
/// exist. (Whether it can write them is checked as the user it serves as, once it gave
/// root up: `daemon::run`.)
fn preflight(c: &Config) -> Result<(), String> {
    let missing = |p: &std::path::Path| match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some("is not a directory".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".into()),
        Err(e) => Some(format!("cannot be used ({})", daemon::health::said(&e))),
    };
    if c.temp_dir_given {
        if let Some(why) = missing(&c.temp_dir) {
            let d = c.temp_dir.display();
            return Err(format!(
                "--temp-dir {d} {why}: create it (mkdir -p {d}), or leave --temp-dir out to \
                 use $TMPDIR or /tmp"
            ));
        }
    }
    for (flag, file) in [("--port-file", &c.port_file), ("--pid-file", &c.pid_file)] {
        let Some(f) = file else { continue };
        let dir = f.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(std::path::Path::new("."));
        if let Some(why) = missing(dir) {
            return Err(format!(
                "{flag} {}: its directory {} {why}: create it, or name a file in a directory \
                 that exists",
                f.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

/// The options as typed -> the daemon's `Config`, one flag group at a time; an error names
/// the flag and what it takes.
fn resolve(o: Opts) -> Result<Config, String> {
    let jobs = o.jobs.unwrap_or_else(rcc::sys::online_cpus);
    if jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let mut c = Config::loopback(jobs);
    c.listen = listen(&o.listen)?;
    c.allow = allow(&o.allow, o.allow_private)?;
    if let Some(p) = &o.compiler_path {
        c.compiler_path = p
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
    }
    if let Some(t) = &o.temp_dir {
        // Absolute: a compile runs in its own job directory, where a relative path would
        // name something else (every job failed to open its input).
        c.temp_dir = std::path::absolute(t).unwrap_or_else(|_| t.clone());
        c.temp_dir_given = true;
    }
    c.queue = o.queue.unwrap_or(jobs);
    c.port_file.clone_from(&o.port_file);
    c.pid_file.clone_from(&o.pid_file);
    c.max_connections = o.max_connections.max(1);
    c.idle_timeout = Duration::from_secs(o.idle_timeout.max(1));
    c.job_timeout = Duration::from_secs(o.job_timeout);
    c.limits.max_body = o.max_body_mib.max(1) << 20;
    thermal_flags(&mut c.thermal, &o)?;
    memory_flags(&mut c, &o);
    c.cache = (!o.no_sources).then(|| cache(&o, &c.temp_dir));
    c.discovery = !o.no_discovery;
    Ok(c)
}

/// `--listen`, each the first address its name resolves to (default 0.0.0.0:3633).
fn listen(flags: &[String]) -> Result<Vec<SocketAddr>, String> {
    let default = ["0.0.0.0:3633".to_string()];
    let flags = if flags.is_empty() { &default } else { flags };
    let mut listen = Vec::new();
    for l in flags {
        let mut addrs = l
            .to_socket_addrs()
            .map_err(|e| format!("--listen {l}: {e} (expected ADDR:PORT, e.g. 0.0.0.0:3633)"))?;
        listen.extend(addrs.next());
    }
    Ok(listen)
}

/// `--allow` and `--allow-private`; neither: loopback only.
fn allow(flags: &[String], private: bool) -> Result<AllowList, String> {
    let mut nets = Vec::new();
    for a in flags {
        nets.push(Cidr::parse(a).map_err(|e| e.to_string())?);
    }
    Ok(if private {
        let mut l = AllowList::private_lan();
        l.extend(nets);
        l
    } else if nets.is_empty() {
        AllowList::loopback()
    } else {
        AllowList::new(nets)
    })
}

/// Where the box's temperature is read, and the temperatures that change what it takes.
fn thermal_flags(t: &mut daemon::thermal::Settings, o: &Opts) -> Result<(), String> {
    if let Some(r) = &o.thermal_root {
        t.thermal_root.clone_from(r);
    }
    if let Some(r) = &o.cpufreq_root {
        t.cpufreq_root.clone_from(r);
    }
    if let Some(v) = o.max_temp {
        t.max_temp_mc = Some(millis("--max-temp", v, 20.0, 150.0)?);
    }
    if let Some(v) = o.margin {
        t.margin_mc = millis("--margin", v, 0.0, 50.0)?;
    }
    if let Some(v) = o.hysteresis {
        t.hyst_mc = Some(millis("--hysteresis", v, 0.0, 50.0)?);
    }
    t.enabled = !o.no_thermal;
    Ok(())
}

/// `v` °C in thousandths, if it is between `lo` and `hi`.
fn millis(flag: &str, v: f64, lo: f64, hi: f64) -> Result<i64, String> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok((v * 1000.0).round() as i64)
    } else {
        Err(format!("{flag} {v}: give °C between {lo} and {hi}"))
    }
}

/// Where free memory is read, what a job is assumed to need, and what one may hold.
fn memory_flags(c: &mut Config, o: &Opts) {
    if let Some(m) = &o.meminfo {
        c.meminfo.clone_from(m);
    }
    if let Some(m) = o.job_mem_mib {
        c.job_mem_floor_kib = m.saturating_mul(1024);
    }
    // One compile may take at most the box's memory: past it, the OOM killer would choose.
    c.job_mem_max_kib = match o.job_mem_max_mib {
        Some(m) => m.saturating_mul(1024),
        None => std::fs::read(&c.meminfo)
            .ok()
            .and_then(|t| rcc::daemon::memory::mem_total_kib(&t))
            .unwrap_or(0),
    };
}

/// The file cache of shipped sources: its directory and its bound in bytes.
fn cache(o: &Opts, temp_dir: &std::path::Path) -> (PathBuf, u64) {
    (
        o.cache_dir
            .as_ref()
            .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
            .unwrap_or_else(|| temp_dir.join("rccd-cache")),
        o.cache_size
            .unwrap_or(rcc::daemon::config::DEFAULT_CACHE_MIB)
            .max(1)
            << 20,
    )
}

fn main() -> ExitCode {
    // gcc runs every program of a compile through `rccd --as-guard` on a box without
    // Landlock (daemon::as_guard): check, then become the program.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == daemon::as_guard::FLAG) {
        return as_guard(&argv[2..]);
    }
    match run() {
        Ok(code) => code,
        Err(Stop { status, why }) => {
            eprintln!("rccd: {why}");
            ExitCode::from(status)
        }
    }
}

/// Why rccd stops without serving, and its exit status: 2 when what it was told cannot be
/// used (flags, settings), 1 when the box cannot serve.
struct Stop {
    status: u8,
    why: String,
}

impl Stop {
    fn told(why: impl ToString) -> Stop {
        Stop {
            status: 2,
            why: why.to_string(),
        }
    }
    fn cannot(why: impl ToString) -> Stop {
        Stop {
            status: 1,
            why: why.to_string(),
        }
    }
}

/// Reads the flags, then prints the version, checks the settings or serves.
fn run() -> Result<ExitCode, Stop> {
    let args = arguments().map_err(Stop::told)?;
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = match Opts::from_args(&["rccd"], &refs) {
        Ok(o) => o,
        Err(early) => return Ok(argh_said(early)),
    };
    if o.version {
        out(&format!("rccd {}\n", env!("CARGO_PKG_VERSION")));
        return Ok(ExitCode::SUCCESS);
    }
    let level = o.log_level.parse::<log::LevelFilter>().map_err(|_| {
        Stop::told(format!(
            "--log-level {}: use error, warn, info, debug or trace",
            o.log_level
        ))
    })?;
    let check = o.check;
    let level_name = o.log_level.clone();
    let file = o.config.clone();
    let user = o.user.clone();
    let config = resolve(o).map_err(Stop::told)?;
    if check {
        if let Some(f) = file {
            out(&format!("settings file: {}\n", f.display()));
        }
        out(&describe(&config, &level_name, user.as_deref()));
        // Read the box once, the way the daemon will.
        let t = rcc::daemon::thermal::Thermal::new(config.thermal.clone(), Instant::now());
        out(&format!("{}\n", t.report()));
        return Ok(ExitCode::SUCCESS);
    }
    serve(config, level, user.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// What argh answered instead of options: `--help` (on stdout), or a flag it could not
/// read (on stderr, with where to look).
fn argh_said(early: argh::EarlyExit) -> ExitCode {
    match early.status {
        Ok(()) => {
            out(&early.output);
            ExitCode::SUCCESS
        }
        Err(()) => {
            eprint!("{}", early.output);
            eprintln!("Run rccd --help for the flags.");
            ExitCode::from(2)
        }
    }
}

/// Checks the directories, starts the log, gives root up and runs the daemon until it stops.
fn serve(mut config: Config, level: log::LevelFilter, user: Option<&str>) -> Result<(), Stop> {
    preflight(&config).map_err(Stop::cannot)?;
    let _ = simple_logger::SimpleLogger::new().with_level(level).init();
    if std::env::var_os(sandbox::NO_LANDLOCK_VAR).is_some_and(|v| v == "1") {
        sandbox::turn_off_for_tests();
        log::warn!(
            "{}=1: compilers run WITHOUT their Landlock sandbox; this switch is for tests \
             only, never for a box that serves a network",
            sandbox::NO_LANDLOCK_VAR
        );
    }
    // Before anything is opened, bound or made: the daemon serves as the user it will stay.
    match sandbox::drop_root(user, &mut config).map_err(Stop::cannot)? {
        who @ sandbox::RunsAs::Root => log::warn!("rccd {who}"),
        who => log::info!("rccd {who}"),
    }
    daemon::run(config).map_err(Stop::cannot)
}

/// Writes `text` on stdout. A reader that went away (`rccd --check | grep -q x`) is not an
/// error worth a panic: `print!` would abort on the broken pipe.
fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|()| o.flush());
}

/// `rccd --as-guard PROGRAM ARGS...`: runs PROGRAM in this process if the guard lets it.
fn as_guard(argv: &[std::ffi::OsString]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    match daemon::as_guard::command(argv) {
        Ok(mut cmd) => {
            let e = cmd.exec();
            eprintln!("rccd --as-guard: cannot run {:?}: {e}", argv[0]);
            ExitCode::from(127)
        }
        Err(why) => {
            eprintln!("{why}");
            ExitCode::from(1)
        }
    }
}
