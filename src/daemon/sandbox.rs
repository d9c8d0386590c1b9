//! What a compile on the box may touch, and what rccd itself runs as.
//!
//! Each compile runs in a Landlock sandbox (`sys::Sandbox`, built here per job): it may
//! execute only its compiler's own toolchain — the driver, what the driver's
//! `-print-prog-name=` names for cc1, cc1plus, as, collect2 and lto-wrapper, and the ELF
//! interpreter of each (the kernel opens it with exec intent) — read the system's libraries,
//! the toolchain's own directories and locale data, read its job's mirror, write its job dir.
//! Not `/usr/include` (shipped jobs run `-nostdinc` on their mirror, preprocessed ones compile
//! a `.i`), not `/etc` beyond the loader's cache, not `/home`, `/root`, `/var` or `/tmp`. On
//! newer kernels it also cannot open TCP connections, nor signal rccd or any other process
//! outside it (see `sys::Sandbox`). The toolchain is probed once per driver file and probed
//! again when the file changes (a gcc upgrade).
//!
//! What Landlock cannot stop: its execute right governs `execve`, not `mmap`, so the dynamic
//! loader, which must be executable for any program to start, can itself be run as a program
//! and map a file the compile may only read. Code started that way is still inside the
//! sandbox; what keeps a peer from starting anything is that the box writes every argument
//! itself (`crate::rules::box_rules`, `sources`). Landlock is the second wall, not the first.
//!
//! rccd started as root gives root up before it serves (`drop_root`): to `--user`, else the
//! user `rccd`, else `nobody`, looked up in `/etc/passwd` by a parser here.
//!
//! `RCCD_TEST_NO_LANDLOCK=1`, read by `bin/rccd.rs` at start, turns the sandbox off
//! (`turn_off_for_tests`) so the security tests can show the other defences hold alone.

use super::config::Config;
use super::health;
use crate::compiler;
use crate::rules::elf::{elf_interpreter, ElfError};
use crate::sys::{self, Access};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What every compile may read: the libraries its programs load, the loader's cache and
/// configuration, and message catalogs and locales for the client's language.
const SYSTEM_READ: &[&str] = &[
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libx32",
    "/usr/libexec",
    "/usr/share/locale",
    "/usr/lib/locale",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
];

/// Directories a compile may list but not open files in: where drivers look for their
/// siblings.
const SYSTEM_LIST: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin"];

/// Files a compile may read and write.
const DEVICES: &[&str] = &["/dev/null", "/dev/urandom"];

/// The programs a gcc driver starts for `-c` and `-S` of C, C++ and assembler (`objcopy`
/// splits the debug info out for `-gsplit-dwarf`; clang runs itself; names a driver does
/// not know are skipped).
const PROGRAMS: &[&str] = &["cc1", "cc1plus", "as", "collect2", "lto-wrapper", "objcopy"];

/// What a compiler that is a script may run: the system's programs and gcc's private ones.
const SCRIPT_RUN: &[&str] = &[
    "/usr/local/bin",
    "/usr/bin",
    "/bin",
    "/usr/lib/gcc",
    "/usr/libexec/gcc",
    "/usr/local/lib/gcc",
    "/usr/local/libexec/gcc",
];

/// The environment variable that turns the sandbox off, for tests only.
pub const NO_LANDLOCK_VAR: &str = "RCCD_TEST_NO_LANDLOCK";

static OFF: AtomicBool = AtomicBool::new(false);

/// Compiles run without Landlock from now on (`RCCD_TEST_NO_LANDLOCK=1`; rccd logs it).
pub fn turn_off_for_tests() {
    OFF.store(true, Ordering::SeqCst);
}

/// The Landlock ABI compiles run under, `None` when they run without (no Landlock in the
/// kernel, or `RCCD_TEST_NO_LANDLOCK=1`).
pub fn landlock_in_use() -> Option<u32> {
    if OFF.load(Ordering::SeqCst) {
        return None;
    }
    sys::landlock_abi()
}

/// The sandbox a compile runs in. `None` when compiles run without one (see
/// `landlock_in_use`); then the include checks in `sources` and `crate::rules::box_rules` and
/// the unprivileged user are what holds.
pub fn sandbox(
    compiler: &Path,
    job_dir: &Path,
    mirror: Option<&Path>,
) -> io::Result<Option<sys::Sandbox>> {
    if OFF.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let tools = toolchain(compiler);
    let p = |s: &&'static str| Path::new(*s);
    let mut rules: Vec<(&Path, Access)> = Vec::new();
    rules.extend(SYSTEM_READ.iter().map(|s| (p(s), Access::Read)));
    rules.extend(SYSTEM_LIST.iter().map(|s| (p(s), Access::List)));
    rules.extend(tools.read.iter().map(|d| (d.as_path(), Access::Read)));
    rules.extend(tools.run.iter().map(|f| (f.as_path(), Access::Run)));
    rules.extend(mirror.map(|m| (m, Access::Read)));
    rules.push((job_dir, Access::Write));
    rules.extend(DEVICES.iter().map(|s| (p(s), Access::Device)));
    sys::Sandbox::new(&rules)
}

/// A compiler's toolchain: the files a compile may execute (for a script driver, directories
/// too) and the directories of its own it may read. Paths are canonical: a Landlock rule follows the file, not its links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toolchain {
    pub run: Vec<PathBuf>,
    pub read: Vec<PathBuf>,
}

/// The toolchains probed so far: by driver path, with the identity of the driver and of
/// every program found, as they were when probed.
type Stamp = Option<(u64, i64, i64, u64)>;
static KNOWN: Mutex<Vec<(PathBuf, Vec<Stamp>, Toolchain)>> = Mutex::new(Vec::new());

fn stamps(driver: &Path, t: &Toolchain) -> Vec<Stamp> {
    let stamp = |p: &Path| {
        let m = fs::metadata(p).ok()?;
        Some((m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
    };
    std::iter::once(driver)
        .chain(t.run.iter().map(PathBuf::as_path))
        .map(stamp)
        .collect()
}

/// The toolchain of the driver at `driver`, probed on first use and again when the driver
/// or any of its programs changes (a gcc upgrade replaces cc1 too).
pub fn toolchain(driver: &Path) -> Toolchain {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, t)) = known
        .iter()
        .find(|(p, st, t)| p == driver && *st == stamps(driver, t))
    {
        return t.clone();
    }
    let t = Toolchain::probe(driver);
    let names: Vec<String> = t.run.iter().map(|p| p.display().to_string()).collect();
    log::info!(
        "compiler {} may run only {}",
        driver.display(),
        names.join(" ")
    );
    known.retain(|(p, _, _)| p != driver);
    known.push((driver.to_path_buf(), stamps(driver, &t), t.clone()));
    t
}

impl Toolchain {
    /// Asks the driver where its programs are, finds the bare names (`as`) in `PATH` as the
    /// driver will, and adds each program's interpreter. A driver that is a script (a
    /// wrapper) cannot say what it starts: it is not asked, and may run the system's
    /// compiler programs (see `SCRIPT_RUN`).
    pub fn probe(driver: &Path) -> Toolchain {
        let dirs = search_path(std::env::var_os("PATH").as_deref());
        let mut t = Toolchain::default();
        t.add_program(driver, 0);
        if head(driver).is_some_and(|h| script_interpreter(&h).is_some()) {
            log::warn!(
                "compiler {} is a script: what it starts cannot be known, so its sandbox lets \
                 it run every program in {}; name the real driver in --compiler-path for a \
                 sandbox that runs only the compiler's own programs",
                driver.display(),
                SCRIPT_RUN.join(" ")
            );
            t.run.extend(SCRIPT_RUN.iter().map(PathBuf::from));
            return t;
        }
        let questions: Vec<String> = PROGRAMS
            .iter()
            .map(|name| format!("-print-prog-name={name}"))
            .collect();
        let questions: Vec<&str> = questions.iter().map(String::as_str).collect();
        for answer in compiler::ask_all(driver, &questions) {
            match answer {
                compiler::Answer::Said(text) => {
                    let printed = text.lines().next().unwrap_or("").trim();
                    if let Some(p) = locate(printed, &dirs) {
                        t.add_program(&p, 0);
                    }
                }
                compiler::Answer::Silent => log::warn!(
                    "{} did not answer within {} s",
                    driver.display(),
                    compiler::PROBE_TIMEOUT.as_secs()
                ),
                _ => {}
            }
        }
        t
    }

    fn add_program(&mut self, path: &Path, depth: u32) {
        let Ok(real) = fs::canonicalize(path) else {
            return;
        };
        if self.run.contains(&real) {
            return;
        }
        self.run.push(real.clone());
        self.add_dirs(&real);
        // A script's interpreter may be a script too; the kernel follows four levels.
        if depth < 4 {
            if let Some(interp) = head(&real).as_deref().and_then(interpreter) {
                self.add_program(&interp, depth + 1);
            }
        }
    }

    /// A program's own directories: gcc's private one (`.../lib/gcc/TARGET/12` holding cc1),
    /// or for one in `PREFIX/bin` the prefix's `lib`, `lib64` and `libexec` (a toolchain in
    /// `/opt` loads its libraries from there). Never `PREFIX` itself: for `/usr/bin/gcc` that
    /// is `/usr`, headers and all.
    fn add_dirs(&mut self, program: &Path) {
        let Some(dir) = program.parent().filter(|d| d.parent().is_some()) else {
            return;
        };
        let dirs: Vec<PathBuf> = if dir.file_name().is_some_and(|n| n == "bin") {
            let prefix = dir.parent().unwrap_or(dir);
            ["lib", "lib64", "libexec"]
                .iter()
                .map(|s| prefix.join(s))
                .filter(|d| d.is_dir())
                .collect()
        } else {
            vec![dir.to_path_buf()]
        };
        for d in dirs {
            if !self.read.contains(&d) {
                self.read.push(d);
            }
        }
    }
}

/// The directories of a `PATH` value, or the usual ones when it is unset.
fn search_path(path: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    let default = std::ffi::OsStr::new("/usr/local/bin:/usr/bin:/bin");
    std::env::split_paths(path.unwrap_or(default))
        .filter(|d| d.is_absolute())
        .collect()
}

/// Where a program the driver printed lives: an absolute path as it is, a bare name found
/// in `dirs` as `execvp` finds it.
fn locate(printed: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let runnable = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.is_file() && m.mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if printed.starts_with('/') {
        return runnable(Path::new(printed)).then(|| PathBuf::from(printed));
    }
    if printed.is_empty() || printed.contains('/') {
        return None;
    }
    dirs.iter().map(|d| d.join(printed)).find(|p| runnable(p))
}

/// The first bytes of a file: where its ELF program headers or `#!` line are.
fn head(path: &Path) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(64 << 10)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// The program the kernel opens to start a file whose first bytes are `head`: an ELF
/// file's interpreter or a script's `#!` line. `None`: none (a static program, or the
/// interpreter itself), or not a file the kernel runs.
fn interpreter(head: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let name = match elf_interpreter(head) {
        Ok(found) => found?,
        Err(ElfError::NotElf) => script_interpreter(head)?,
        Err(_) => return None,
    };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(name)))
}

/// The interpreter a `#!` line names (the kernel reads the first 256 bytes).
fn script_interpreter(head: &[u8]) -> Option<&[u8]> {
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.len().min(254)];
    let line = line.split(|&c| c == b'\n').next()?;
    let start = line.iter().position(|&c| c != b' ' && c != b'\t')?;
    let rest = &line[start..];
    let end = rest
        .iter()
        .position(|&c| c == b' ' || c == b'\t')
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|p| !p.is_empty())
}

/// A user rccd may run as, from `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The account called `name` in the text of an `/etc/passwd` (`name:pw:uid:gid:...`).
pub fn find_account(passwd: &str, name: &str) -> Option<Account> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != name || name.is_empty() {
            return None;
        }
        let _password = f.next()?;
        Some(Account {
            name: name.to_string(),
            uid: f.next()?.trim().parse().ok()?,
            gid: f.next()?.trim().parse().ok()?,
        })
    })
}

/// The name of the account with `uid` in the text of an `/etc/passwd`.
pub fn account_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        (f.next()?.trim().parse::<u32>().ok()? == uid && !name.is_empty()).then_some(name)
    })
}

/// The name of the user this process runs as (for messages that say who must be able to
/// write a directory), else `uid N`.
pub fn user_name() -> String {
    let uid = sys::geteuid();
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| account_name(&p, uid).map(str::to_string))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The name of group `gid` in the text of an `/etc/group` (`name:pw:gid:members`).
pub fn group_name(group: &str, gid: u32) -> Option<&str> {
    group.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        (f.next()?.trim().parse::<u32>().ok()? == gid && !name.is_empty()).then_some(name)
    })
}

/// The account rccd gives root up to: `wanted` (`--user`), else `rccd`, else `nobody`.
pub fn choose_account(passwd: &str, wanted: Option<&str>) -> Result<Account, UserError> {
    match wanted {
        Some(w) => find_account(passwd, w).ok_or_else(|| UserError::NoSuchUser(w.to_string())),
        None => find_account(passwd, "rccd")
            .or_else(|| find_account(passwd, "nobody"))
            .ok_or(UserError::NoDefaultUser),
    }
}

/// Who rccd runs as after `drop_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunsAs {
    /// It was not root, and is what it was.
    Unchanged(u32),
    /// Root, kept because `--user root` asked for it.
    Root,
    /// It gave root up.
    Dropped { account: Account, group: String },
}

impl std::fmt::Display for RunsAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunsAs::Unchanged(uid) => write!(f, "runs as uid {uid} (started without root)"),
            RunsAs::Root => write!(
                f,
                "runs as root because --user root says so: a compiler that escapes its \
                 sandbox is root on this box"
            ),
            RunsAs::Dropped { account, group } => write!(
                f,
                "gave up root: runs as user {} (uid {}), group {group} (gid {}), no \
                 supplementary groups",
                account.name, account.uid, account.gid
            ),
        }
    }
}

/// Why rccd could not give root up; it then does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    NoSuchUser(String),
    NoDefaultUser,
    Read(String, String),
    LowPort(u16),
    PidFile(String, String),
    PortFile(String, String),
    Drop(String),
    TempDir(String, String, String),
    CacheDir(String, String, String),
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserError::NoSuchUser(u) => write!(
                f,
                "--user {u}: no such user in /etc/passwd (add it, e.g. `useradd --system {u}`)"
            ),
            UserError::NoDefaultUser => write!(
                f,
                "started as root, and /etc/passwd has neither a user rccd nor nobody to run as; \
                 add one (`useradd --system rccd`) or name one with --user"
            ),
            UserError::Read(p, e) => write!(f, "cannot read {p} to find the user to run as: {e}"),
            UserError::LowPort(port) => write!(
                f,
                "--listen port {port} needs root, and rccd gives root up before it listens; \
                 use a port from 1024 up (the default is 3633)"
            ),
            UserError::PidFile(p, e) => f.write_str(&cannot_write_file("--pid-file", p, e)),
            UserError::PortFile(p, e) => f.write_str(&cannot_write_file("--port-file", p, e)),
            UserError::Drop(e) => write!(f, "cannot give up root: {e}"),
            UserError::TempDir(d, user, e) => f.write_str(&cannot_write(d, true, user, e)),
            UserError::CacheDir(d, user, e) => write!(
                f,
                "cannot give the file cache --cache-dir {d} to user {user}, whom rccd runs \
                 as ({e}): give rccd a writable directory (--cache-dir DIR, owned by {user}) \
                 and start it again"
            ),
        }
    }
}

/// The one line that says rccd cannot write the file `path` a `flag` names, and what to do.
pub fn cannot_write_file(flag: &str, path: &str, why: &str) -> String {
    format!(
        "{flag} {path}: cannot write it ({why}): name a file in a directory rccd may write, or \
         leave {flag} out"
    )
}

/// The one line that says rccd cannot write its temp dir `dir` (as `user`), and what to do;
/// `given`: named by `--temp-dir` (else the default, `$TMPDIR` or `/tmp`).
pub fn cannot_write(dir: &str, given: bool, user: &str, why: &str) -> String {
    let which = if given {
        format!("--temp-dir {dir}")
    } else {
        format!("the temp dir {dir} ($TMPDIR, else /tmp)")
    };
    format!(
        "cannot write in {which} ({why}): give rccd a writable directory (--temp-dir DIR, \
         owned by {user}) and start it again"
    )
}

/// Gives root up before the daemon opens anything, as `wanted` (`--user`) or the default
/// says; does nothing without root. The pid file is written first (as root, then given to
/// the new user, so the daemon can write it again and remove it). A temp dir the new user
/// cannot write gets a dir of its own in it (`own_temp_dir`); if even that fails, a given
/// `--temp-dir` stops rccd here, and the default one is left to the daemon's own check
/// (`daemon::run`: it starts, broken, and says why).
pub fn drop_root(wanted: Option<&str>, config: &mut Config) -> Result<RunsAs, UserError> {
    if sys::geteuid() != 0 {
        return Ok(RunsAs::Unchanged(sys::geteuid()));
    }
    if wanted == Some("root") {
        return Ok(RunsAs::Root);
    }
    let read =
        |p: &str| fs::read_to_string(p).map_err(|e| UserError::Read(p.into(), e.to_string()));
    let account = choose_account(&read("/etc/passwd")?, wanted)?;
    if account.uid == 0 {
        return Ok(RunsAs::Root);
    }
    if let Some(port) = config
        .listen
        .iter()
        .map(|a| a.port())
        .find(|&p| p != 0 && p < 1024)
    {
        return Err(UserError::LowPort(port));
    }
    let group = read("/etc/group")
        .ok()
        .and_then(|g| group_name(&g, account.gid).map(str::to_string))
        .unwrap_or_else(|| account.gid.to_string());
    make_files(config, &account)?;
    own_dirs(config, &account)?;
    sys::drop_privileges(account.uid, account.gid).map_err(|e| UserError::Drop(e.to_string()))?;
    Ok(RunsAs::Dropped { account, group })
}

/// Makes the port file (empty) and the pid file for `account`, as root, before root is
/// given up.
fn make_files(config: &Config, account: &Account) -> Result<(), UserError> {
    if let Some(p) = &config.port_file {
        // Written once listening, by then as the new user: made here, empty (a script
        // waits for it to have the port), and given to that user.
        let shown = p.display().to_string();
        let fail = |e: io::Error| UserError::PortFile(shown.clone(), health::said(&e));
        fs::write(p, "").map_err(fail)?;
        std::os::unix::fs::chown(p, Some(account.uid), Some(account.gid)).map_err(fail)?;
    }
    if let Some(p) = &config.pid_file {
        let shown = p.display().to_string();
        let fail = |e: io::Error| UserError::PidFile(shown.clone(), health::said(&e));
        fs::write(p, format!("{}\n", sys::getpid())).map_err(fail)?;
        std::os::unix::fs::chown(p, Some(account.uid), Some(account.gid)).map_err(fail)?;
    }
    Ok(())
}

/// Gives `account` a temp dir (see `drop_root`) and the cache dir.
fn own_dirs(config: &mut Config, account: &Account) -> Result<(), UserError> {
    match own_temp_dir(config, account) {
        Err(e) if config.temp_dir_given => {
            forget_files(config);
            let dir = config.temp_dir.display().to_string();
            return Err(UserError::TempDir(
                dir,
                account.name.clone(),
                health::said(&e),
            ));
        }
        Err(e) => log::debug!("cannot make a temp dir for {}: {e}", account.name),
        Ok(()) => {}
    }
    own_cache(config, account).map_err(|e| {
        forget_files(config);
        UserError::CacheDir(
            config
                .cache
                .as_ref()
                .map_or(String::new(), |c| c.0.display().to_string()),
            account.name.clone(),
            health::said(&e),
        )
    })?;
    Ok(())
}

/// Removes the pid and port files made for a daemon that will not start.
pub fn forget_files(config: &Config) {
    for p in config.pid_file.iter().chain(&config.port_file) {
        let _ = fs::remove_file(p);
    }
}

/// Whether `meta` (a directory's) lets `account` make entries in it, by its mode bits.
fn writable_by(meta: &fs::Metadata, account: &Account) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    if meta.uid() == account.uid {
        mode & 0o300 == 0o300
    } else if meta.gid() == account.gid {
        mode & 0o030 == 0o030
    } else {
        mode & 0o003 == 0o003
    }
}

/// A temp dir the user rccd is about to become cannot write (a root-owned dir made for a
/// root-started daemon, as a farm script or a test makes it): rccd, still root, makes its own
/// dir in it, `rccd-USER` (mode 0700, owned by that user), and works there — the default
/// cache dir moves along. The user must still be able to pass through the temp dir's
/// parents; the check after the drop says so if not.
fn own_temp_dir(config: &mut Config, account: &Account) -> io::Result<()> {
    let meta = fs::metadata(&config.temp_dir)?;
    if writable_by(&meta, account) {
        return Ok(());
    }
    let own = config.temp_dir.join(format!("rccd-{}", account.name));
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o700).create(&own) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::chown(&own, Some(account.uid), Some(account.gid))?;
    if let Some((cache, _)) = &mut config.cache {
        if *cache == config.temp_dir.join("rccd-cache") {
            *cache = own.join("rccd-cache");
        }
    }
    log::info!(
        "--temp-dir {} is not writable by {}: working in {}",
        config.temp_dir.display(),
        account.name,
        own.display()
    );
    config.temp_dir = own;
    Ok(())
}

/// A file cache left by an rccd that ran as root (before it gave root up, or started with
/// `--user root`) is given to the user rccd becomes: its files are rccd's own, named by
/// their hash and checked again when used, and without this every shipped job would fail
/// to keep its files.
fn own_cache(config: &Config, account: &Account) -> io::Result<()> {
    let Some((cache, _)) = &config.cache else {
        return Ok(());
    };
    if !fs::symlink_metadata(cache).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    // Every entry, not the dir alone: a root rccd adds files to a cache it did not make.
    let given = chown_tree(cache, account)?;
    if given > 0 {
        log::info!(
            "gave {given} entries of the file cache {} to {}",
            cache.display(),
            account.name
        );
    }
    Ok(())
}

/// `dir` and everything under it that `account` does not own, given to it (links
/// themselves, never followed); how many were.
fn chown_tree(dir: &Path, account: &Account) -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let give = |p: &Path, m: &fs::Metadata| -> io::Result<usize> {
        if m.uid() == account.uid && m.gid() == account.gid {
            return Ok(0);
        }
        std::os::unix::fs::lchown(p, Some(account.uid), Some(account.gid)).map(|()| 1)
    };
    let mut given = give(dir, &fs::symlink_metadata(dir)?)?;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        given += if m.is_dir() {
            chown_tree(&e.path(), account)?
        } else {
            give(&e.path(), &m)?
        };
    }
    Ok(given)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    #[test]
    fn a_cache_left_by_root_is_given_to_the_user_rccd_becomes() {
        use std::os::unix::fs::MetadataExt;
        if sys::geteuid() != 0 {
            eprintln!("not root: nothing to give away");
            return;
        }
        let d = std::env::temp_dir().join(format!("rcc-own-cache-{}", std::process::id()));
        let cache = d.join("rccd-cache");
        fs::create_dir_all(cache.join("ab")).unwrap();
        fs::write(cache.join("ab/cdef"), "x").unwrap();
        let mut config = Config::loopback(1);
        config.cache = Some((cache.clone(), 1 << 20));
        let nobody = Account {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
        };
        own_cache(&config, &nobody).unwrap();
        for p in [cache.clone(), cache.join("ab"), cache.join("ab/cdef")] {
            assert_eq!(fs::metadata(&p).unwrap().uid(), 65534, "{}", p.display());
        }
        // A root rccd then adds a file to the cache it gave away: the next start takes it.
        fs::write(cache.join("ab/added"), "y").unwrap();
        own_cache(&config, &nobody).unwrap();
        assert_eq!(fs::metadata(cache.join("ab/added")).unwrap().uid(), 65534);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn scripts_name_their_interpreter() {
        assert_eq!(
            script_interpreter(b"#!/bin/sh\necho"),
            Some(&b"/bin/sh"[..])
        );
        assert_eq!(
            script_interpreter(b"#! /usr/bin/env -S x\n"),
            Some(&b"/usr/bin/env"[..])
        );
        assert_eq!(script_interpreter(b"#!\n"), None);
        assert_eq!(script_interpreter(b"echo"), None);
        assert_eq!(interpreter(b"#!/bin/sh\n"), Some(PathBuf::from("/bin/sh")));
    }

    #[test]
    fn real_programs_name_a_loader_that_needs_none() {
        for program in ["/bin/ls", "/usr/bin/gcc"] {
            let Some(bytes) = head(Path::new(program)) else {
                eprintln!("no {program} here");
                continue;
            };
            let loader = interpreter(&bytes).expect("a dynamic program");
            assert!(loader.is_absolute(), "{program}: {loader:?}");
            let loader_head = head(&loader).expect("the loader exists");
            assert_eq!(elf_interpreter(&loader_head), Ok(None), "{loader:?}");
        }
    }

    #[test]
    fn passwd_and_group_lines() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\n+nis\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      broken:x:12\nrccd:x:105:110::/var/lib/rccd:/usr/sbin/nologin\n";
        let rccd = Account {
            name: "rccd".into(),
            uid: 105,
            gid: 110,
        };
        assert_eq!(find_account(passwd, "rccd"), Some(rccd.clone()));
        assert_eq!(find_account(passwd, "broken"), None);
        assert_eq!(find_account(passwd, "nob"), None);
        assert_eq!(find_account(passwd, ""), None);
        assert_eq!(choose_account(passwd, None), Ok(rccd));
        let no_rccd = passwd.replace("rccd:", "other:");
        assert_eq!(choose_account(&no_rccd, None).unwrap().uid, 65534);
        assert_eq!(
            choose_account("root:x:0:0::/:/bin/sh\n", None),
            Err(UserError::NoDefaultUser)
        );
        assert_eq!(
            choose_account(passwd, Some("ghost")),
            Err(UserError::NoSuchUser("ghost".into()))
        );
        let group = "root:x:0:\nnogroup:x:65534:\nrccd:x:110:alice,bob\n";
        assert_eq!(group_name(group, 110), Some("rccd"));
        assert_eq!(group_name(group, 65534), Some("nogroup"));
        assert_eq!(group_name(group, 7), None);
        assert_eq!(account_name(passwd, 105), Some("rccd"));
        assert_eq!(account_name(passwd, 65534), Some("nobody"));
        assert_eq!(account_name(passwd, 7), None);
    }

    #[test]
    fn bare_names_are_found_in_the_search_path() {
        let dirs = search_path(Some(std::ffi::OsStr::new("relative:/usr/bin::/bin")));
        assert_eq!(dirs, [PathBuf::from("/usr/bin"), PathBuf::from("/bin")]);
        assert_eq!(locate("sh", &dirs), Some(PathBuf::from("/usr/bin/sh")));
        assert_eq!(locate("no-such-program-here", &dirs), None);
        assert_eq!(locate("./sh", &dirs), None);
        assert_eq!(locate("/bin/sh", &[]), Some(PathBuf::from("/bin/sh")));
    }

    /// A job dir of its own (mode 0700, as the daemon makes them), removed on drop.
    struct JobDir(PathBuf);

    impl JobDir {
        fn new(name: &str) -> JobDir {
            use std::os::unix::fs::DirBuilderExt;
            let d = std::env::temp_dir().join(format!("rcc-sandbox-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
            JobDir(d)
        }
    }

    impl Drop for JobDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `driver args` in `dir` as a job runs (its TMPDIR, its own process group), in
    /// the job's sandbox or not.
    fn compile(driver: &str, dir: &Path, args: &[&str], sandboxed: bool) -> std::process::Output {
        let driver = Path::new("/usr/bin").join(driver);
        let mut cmd = Command::new(&driver);
        cmd.args(args)
            .current_dir(dir)
            .env("TMPDIR", dir)
            .stdin(Stdio::null())
            .process_group(0);
        let sb = sandboxed.then(|| sandbox(&driver, dir, None).unwrap().unwrap());
        if let Some(sb) = &sb {
            sb.apply(&mut cmd);
        }
        cmd.output().unwrap()
    }

    fn landlock_and(driver: &str) -> bool {
        if sys::landlock_abi().is_none() {
            eprintln!("no Landlock on this kernel: nothing to test");
            return false;
        }
        if !Path::new("/usr/bin").join(driver).exists() {
            eprintln!("no /usr/bin/{driver} here: nothing to test");
            return false;
        }
        true
    }

    #[test]
    fn a_wrapper_cannot_start_a_shell_in_the_sandbox() {
        if !landlock_and("gcc") {
            return;
        }
        let d = JobDir::new("wrapper");
        fs::write(d.0.join("x.c"), "int x;\n").unwrap();
        let made = d.0.join("made");
        let touch = format!("/bin/sh,-c,touch {}", made.display());
        let evil = ["-c", "x.c", "-o", "x.o", "-wrapper"];
        let args: Vec<&str> = evil.iter().copied().chain([touch.as_str()]).collect();
        // Without the sandbox the shell runs (so the test tests something)...
        let free = compile("gcc", &d.0, &args, false);
        assert!(
            made.exists(),
            "the wrapper did not run even unsandboxed: {free:?}"
        );
        fs::remove_file(&made).unwrap();
        // ...in it, neither the shell, nor the loader started on the shell as a program,
        // nor any program outside the toolchain.
        let loader = interpreter(&head(Path::new("/bin/sh")).unwrap()).unwrap();
        let via_loader = format!("{},/bin/sh,-c,touch {}", loader.display(), made.display());
        let env = format!("/usr/bin/env,touch,{}", made.display());
        for wrapper in [touch.as_str(), &via_loader, &env] {
            let args: Vec<&str> = evil.iter().copied().chain([wrapper]).collect();
            let out = compile("gcc", &d.0, &args, true);
            assert!(!out.status.success(), "{wrapper}: {out:?}");
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(said.contains("Permission denied"), "{wrapper}: {said}");
            assert!(!made.exists(), "{wrapper} ran in the sandbox");
        }
    }

    #[test]
    fn ordinary_compiles_work_in_the_sandbox() {
        if !landlock_and("gcc") {
            return;
        }
        let d = JobDir::new("compiles");
        fs::write(
            d.0.join("x.c"),
            "static int y = 2;\nint f(int a) { return a * y; }\n",
        )
        .unwrap();
        fs::write(d.0.join("x.i"), "int g(void) { return 7; }\n").unwrap();
        fs::write(
            d.0.join("x.ii"),
            "template <class T> T h(T a) { return a; }\nint k() { return h(3); }\n",
        )
        .unwrap();
        fs::write(
            d.0.join("s.S"),
            "#define ONE 1\n.text\n.globl s\ns: .long ONE\n",
        )
        .unwrap();
        fs::write(d.0.join("t.s"), ".text\n.globl t\nt: .long 2\n").unwrap();
        let mut cases: Vec<(&str, Vec<&str>)> = vec![
            ("gcc", vec!["-c", "-nostdinc", "x.c"]),
            ("gcc", vec!["-c", "-O2", "-g", "-Wall", "x.i"]),
            ("gcc", vec!["-c", "-O2", "-flto", "x.i", "-o", "lto.o"]),
            ("gcc", vec!["-S", "x.i"]),
            (
                "gcc",
                vec!["-c", "-g", "-gsplit-dwarf", "x.i", "-o", "split.o"],
            ),
            ("gcc", vec!["-c", "-nostdinc", "s.S"]),
            ("gcc", vec!["-c", "t.s"]),
            (
                "gcc",
                vec!["-c", "-save-temps=obj", "-nostdinc", "x.c", "-o", "st.o"],
            ),
        ];
        if Path::new("/usr/bin/g++").exists() {
            cases.push(("g++", vec!["-c", "-O2", "-g", "x.ii"]));
            cases.push((
                "g++",
                vec!["-c", "-x", "c++", "-nostdinc", "x.c", "-o", "cxx.o"],
            ));
        }
        for (driver, args) in &cases {
            let out = compile(driver, &d.0, args, true);
            assert!(
                out.status.success(),
                "{driver} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for o in [
            "x.o",
            "lto.o",
            "x.s",
            "split.o",
            "split.dwo",
            "s.o",
            "t.o",
            "st.o",
        ] {
            let bytes = fs::read(d.0.join(o)).unwrap_or_default();
            assert!(!bytes.is_empty(), "{o} not written");
        }
    }

    #[test]
    fn a_sandboxed_compile_reads_no_file_of_the_box() {
        if !landlock_and("gcc") {
            return;
        }
        let d = JobDir::new("reads");
        for (name, text) in [
            ("inc.c", "#include \"/usr/include/stdio.h\"\n"),
            ("host.c", "#include \"/etc/hostname\"\n"),
            ("bin.S", ".incbin \"/etc/hostname\"\n"),
            ("sys.c", "#include <stdio.h>\n"),
        ] {
            fs::write(d.0.join(name), text).unwrap();
            let out = compile("gcc", &d.0, &["-c", name], true);
            assert!(!out.status.success(), "{name}: {out:?}");
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(
                said.contains("Permission denied") || said.contains("No such file"),
                "{name}: {said}"
            );
            // Outside the sandbox these compile (or fail for another reason than access).
            if name == "inc.c" {
                assert!(compile("gcc", &d.0, &["-c", name], false).status.success());
            }
        }
    }

    #[test]
    fn the_toolchain_is_the_drivers_own() {
        if !Path::new("/usr/bin/gcc").exists() {
            eprintln!("no gcc here");
            return;
        }
        let t = toolchain(Path::new("/usr/bin/gcc"));
        let real_gcc = fs::canonicalize("/usr/bin/gcc").unwrap();
        assert!(t.run.contains(&real_gcc), "{t:?}");
        assert!(t.run.iter().any(|p| p.ends_with("cc1")), "{t:?}");
        let real_as = fs::canonicalize("/usr/bin/as").unwrap();
        assert!(t.run.contains(&real_as), "{t:?}");
        let loader = interpreter(&head(&real_gcc).unwrap()).unwrap();
        assert!(t.run.contains(&fs::canonicalize(loader).unwrap()), "{t:?}");
        assert!(!t
            .run
            .iter()
            .any(|p| p.ends_with("dash") || p.ends_with("bash")));
        assert!(!t.read.iter().any(|p| p == Path::new("/usr")), "{t:?}");
        // Asked again, it comes from the cache.
        assert_eq!(toolchain(Path::new("/usr/bin/gcc")), t);
    }

    #[test]
    fn a_script_driver_may_run_the_system_compiler_and_nothing_outside_it() {
        if !landlock_and("gcc") {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let d = JobDir::new("script");
        let bin = std::env::temp_dir().join(format!("rcc-sandbox-bin-{}", std::process::id()));
        fs::create_dir_all(&bin).unwrap();
        let script = bin.join("gcc");
        fs::write(&script, "#!/bin/sh\nsleep 0.01\nexec gcc \"$@\"\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let t = toolchain(&script);
        assert!(t.run.contains(&fs::canonicalize(&script).unwrap()), "{t:?}");
        assert!(t.run.contains(&PathBuf::from("/usr/bin")), "{t:?}");
        fs::write(d.0.join("x.i"), "int x;\n").unwrap();
        let mut cmd = Command::new(&script);
        cmd.args(["-c", "x.i"])
            .current_dir(&d.0)
            .env("TMPDIR", &d.0);
        let sb = sandbox(&script, &d.0, None).unwrap().unwrap();
        sb.apply(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(d.0.join("x.o").exists());
        // Still no file of the box outside the rules.
        let mut cat = Command::new(&script);
        cat.args(["-c", "-x", "c", "/etc/hostname"])
            .current_dir(&d.0);
        sb.apply(&mut cat);
        assert!(!cat.output().unwrap().status.success());
        fs::remove_dir_all(&bin).unwrap();
    }

    const PROBE_VAR: &str = "RCC_TEST_SANDBOX_PROBE";

    /// Run by `a_sandboxed_child_cannot_signal_or_reach_its_parent` inside a sandbox (this
    /// test binary started again): does what `RCC_TEST_SANDBOX_PROBE` says, prints how it
    /// went. Without the variable it does nothing.
    #[test]
    fn probe_from_inside() {
        let Ok(what) = std::env::var(PROBE_VAR) else {
            return;
        };
        let errno = |e: io::Error| e.raw_os_error().unwrap_or(-1).to_string();
        let said = match what.split_once(':') {
            Some(("signal", _)) => sys::kill(std::os::unix::process::parent_id(), 0)
                .map_or_else(errno, |()| "ok".into()),
            Some(("abstract", name)) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
                std::os::unix::net::UnixStream::connect_addr(&addr)
                    .map_or_else(errno, |_| "ok".into())
            }
            Some(("tcp", addr)) => {
                std::net::TcpStream::connect(addr).map_or_else(errno, |_| "ok".into())
            }
            Some(("read", path)) => fs::read(path).map_or_else(errno, |_| "ok".into()),
            Some(("drop", id)) => {
                let id: u32 = id.parse().unwrap();
                match sys::drop_privileges(id, id) {
                    // Root is gone: taking it back fails at the first step.
                    Ok(()) if sys::geteuid() == id => sys::drop_privileges(0, 0).map_or_else(
                        |e| format!("dropped, then {}", e.kind()),
                        |()| "root again".into(),
                    ),
                    Ok(()) => "ids unchanged".into(),
                    Err(e) => errno(e),
                }
            }
            _ => "unknown probe".into(),
        };
        println!("probe said {said}.");
    }

    #[test]
    fn a_sandboxed_child_cannot_signal_or_reach_its_parent() {
        let Some(abi) = sys::landlock_abi() else {
            eprintln!("no Landlock on this kernel: nothing to test");
            return;
        };
        let exe = std::env::current_exe().unwrap();
        let mut tools = Toolchain::default();
        tools.add_program(&exe, 0);
        let name = format!("rcc-test-{}", std::process::id());
        let abstract_addr = {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap()
        };
        let _abstract = std::os::unix::net::UnixListener::bind_addr(&abstract_addr).unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        // What the probe said, `None` if it said nothing (a test binary that cannot start
        // itself again, as under qemu-user).
        let probe = |what: &str, sandboxed: bool| -> Option<String> {
            let mut rules: Vec<(&Path, Access)> = SYSTEM_READ
                .iter()
                .map(|s| (Path::new(*s), Access::Read))
                .collect();
            rules.extend(tools.run.iter().map(|f| (f.as_path(), Access::Run)));
            let sb = sys::Sandbox::new(&rules).unwrap().unwrap();
            let mut cmd = Command::new(&exe);
            cmd.args(["--exact", "daemon::sandbox::tests::probe_from_inside"])
                .args(["--nocapture", "--test-threads=1"])
                .env(PROBE_VAR, what);
            if sandboxed {
                sb.apply(&mut cmd);
            }
            let out = cmd.output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let said = text.split("probe said ").nth(1)?.split('.').next()?;
            Some(said.to_string())
        };
        if probe("signal:", false).is_none() {
            eprintln!("this test binary cannot run itself again here: nothing to test");
            return;
        }
        let probe = |what: &str, sandboxed: bool| {
            probe(what, sandboxed).unwrap_or_else(|| panic!("{what}: the probe said nothing"))
        };
        let eperm = libc::EPERM.to_string();
        if sys::geteuid() == 0 {
            let denied = io::Error::from_raw_os_error(libc::EPERM).kind();
            assert_eq!(
                probe("drop:65534", false),
                format!("dropped, then {denied}")
            );
        }
        let eacces = libc::EACCES.to_string();
        // The probe works, and outside a sandbox it reaches everything.
        assert_eq!(probe("signal:", false), "ok");
        assert_eq!(probe(&format!("abstract:{name}"), false), "ok");
        assert_eq!(probe(&format!("tcp:127.0.0.1:{port}"), false), "ok");
        assert_eq!(probe("read:/etc/hostname", false), "ok");
        // Inside, no file of the box outside its rules...
        assert_eq!(probe("read:/etc/hostname", true), eacces);
        if abi >= 4 {
            assert_eq!(probe(&format!("tcp:127.0.0.1:{port}"), true), eacces);
        }
        if abi >= 6 {
            // ...no signal to the process that started it (rccd), nor its abstract socket.
            assert_eq!(probe("signal:", true), eperm);
            assert_eq!(probe(&format!("abstract:{name}"), true), eperm);
        } else {
            eprintln!("Landlock ABI {abi}: no signal scope to test (needs 6, Linux 6.12)");
        }
    }
}
