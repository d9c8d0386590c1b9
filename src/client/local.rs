//! Running the real compiler on this machine: finding it on PATH (`Client::find_compiler`) —
//! never rcc again, by any name, path or copy — and running a command with the user's stdin,
//! stdout and stderr, passing its exit status through (`Client::run_local`, or
//! `run_local_now` where a slot is held already: every compile done here, its reason
//! logged).
//!
//! Two rcc programs reachable as `gcc` (a masquerade link in one directory, a copy in
//! another) would otherwise run each other without end, a process each time. Three rules
//! keep that from happening:
//! - every rcc carries an ELF note (`sys::RCC_NOTE`) and a candidate that has it (or is this very
//!   file) is skipped, whatever it is called;
//! - a masquerade looks only after the PATH entry it was found in (distcc's rule);
//! - every rcc tells the programs it starts, in [`SAFEGUARD`], which compilers rcc has run
//!   on the way down. An rcc started below another one (a wrapper such as ccache between
//!   them) compiles here with a compiler not on that list; one more level and it stops with
//!   one message instead of starting anything.

use super::{load_hosts, Client};
use crate::exit;
use crate::rules::hosts::HostKind;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the environment of every program rcc starts: the compilers the rcc processes
/// above it ran, canonical, one per line. An rcc that finds it set was started, through
/// some wrapper, by a compiler that rcc ran.
pub const SAFEGUARD: &str = "_RCC_SAFEGUARD";

/// How many rcc may be stacked through wrappers: the first, and one that a wrapper it ran
/// started again (it compiles here). A third stops.
pub const MAX_DEPTH: usize = 2;

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether the program at `p` is an rcc: this very file (by device and inode, so a hard
/// link counts), or any file that carries rcc's note (a copy, another version).
pub fn is_rcc(p: &Path, me: Option<&Path>) -> bool {
    let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    };
    me.is_some_and(|me| same(p, me)) || carries_note(p)
}

/// Whether the ELF file at `p` has rcc's note. Reads its headers and its note segments
/// only: a few KiB, not the whole compiler.
fn carries_note(p: &Path) -> bool {
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    let mut head = Vec::with_capacity(4096);
    if f.take(4096).read_to_end(&mut head).is_err() {
        return false;
    }
    let Ok(segments) = crate::rules::elf::segments(&head) else {
        return false;
    };
    use crate::sys::{RCC_NOTE_DESC, RCC_NOTE_KIND, RCC_NOTE_OWNER};
    segments
        .iter()
        .filter(|s| s.kind == crate::rules::elf::PT_NOTE && s.size <= 64 << 10)
        .any(|s| {
            let mut notes = vec![0; s.size as usize];
            std::fs::File::open(p)
                .and_then(|f| f.read_exact_at(&mut notes, s.offset))
                .is_ok()
                && crate::rules::elf::has_note(
                    &head,
                    &notes,
                    RCC_NOTE_OWNER,
                    RCC_NOTE_KIND,
                    &RCC_NOTE_DESC,
                )
                .unwrap_or(false)
        })
}

/// The compilers rcc processes above this one ran (from [`SAFEGUARD`]'s value); its length
/// is how many rcc are above this one. An older rcc wrote `1`: one compiler, not named.
pub fn chain(value: Option<&OsStr>) -> Vec<PathBuf> {
    let Some(v) = value else {
        return Vec::new();
    };
    let named: Vec<PathBuf> = v
        .as_bytes()
        .split(|&b| b == b'\n')
        .filter(|p| p.starts_with(b"/"))
        .map(|p| PathBuf::from(OsStr::from_bytes(p)))
        .collect();
    if named.is_empty() {
        vec![PathBuf::new()]
    } else {
        named
    }
}

/// [`SAFEGUARD`]'s value for the programs this rcc starts: `chain` and `program`.
pub fn chain_value(chain: &[PathBuf], program: &Path) -> OsString {
    let real = program.canonicalize().unwrap_or_else(|_| program.into());
    let mut v = Vec::new();
    for p in chain.iter().map(PathBuf::as_path).chain([real.as_path()]) {
        if !v.is_empty() {
            v.push(b'\n');
        }
        v.extend_from_slice(p.as_os_str().as_bytes());
    }
    OsString::from_vec(v)
}

/// Where the compiler is looked for, and what is never taken.
pub struct Lookup<'a> {
    /// The PATH value.
    pub path: Option<&'a OsStr>,
    /// This program, canonical.
    pub me: Option<&'a Path>,
    /// A masquerade's own directory: only the PATH entries after the one holding it count.
    pub own_dir: Option<PathBuf>,
    /// Compilers rcc already ran above this process (see [`chain`]).
    pub ran: &'a [PathBuf],
}

impl Lookup<'_> {
    fn skips(&self, cand: &Path) -> bool {
        is_rcc(cand, self.me)
            || cand
                .canonicalize()
                .is_ok_and(|real| self.ran.contains(&real))
    }

    /// Finds the compiler `name` (a bare name or a path). A path is taken as it is (the
    /// caller refuses it if it is rcc); a bare name is the first on PATH after the
    /// masquerade's own entry that is neither rcc nor a compiler rcc already ran.
    pub fn find(&self, name: &OsStr) -> Option<PathBuf> {
        let as_path = Path::new(name);
        if as_path.components().count() > 1 {
            return Some(as_path.to_path_buf());
        }
        let dirs: Vec<PathBuf> = std::env::split_paths(self.path?)
            .map(|d| {
                if d.as_os_str().is_empty() {
                    ".".into()
                } else {
                    d
                }
            })
            .collect();
        let own = self.own_dir.as_ref().and_then(|own| {
            dirs.iter()
                .position(|d| d.canonicalize().is_ok_and(|d| &d == own))
        });
        let after = own.map_or(0, |i| i + 1);
        dirs[after..]
            .iter()
            .map(|d| d.join(name))
            .find(|cand| is_executable(cand) && !self.skips(cand))
    }
}

/// The directory a masquerade was started from, canonical: `argv0`'s own when it is a
/// path, else the first PATH entry holding an rcc of that name (where the shell found it).
pub fn own_dir(argv0: &OsStr, path: Option<&OsStr>, me: Option<&Path>) -> Option<PathBuf> {
    let as_path = Path::new(argv0);
    if as_path.components().count() > 1 {
        let parent = as_path.parent().filter(|p| !p.as_os_str().is_empty());
        return parent.unwrap_or(Path::new(".")).canonicalize().ok();
    }
    std::env::split_paths(path?)
        .map(|d| {
            if d.as_os_str().is_empty() {
                ".".into()
            } else {
                d
            }
        })
        .find(|d| {
            let cand = d.join(argv0);
            is_executable(&cand) && is_rcc(&cand, me)
        })
        .and_then(|d| d.canonicalize().ok())
}

/// Runs `program args` with inherited stdio and returns its exit code (128+n for a signal).
pub fn run(program: &Path, args: &[OsString]) -> io::Result<u8> {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::inherit())
        .status()?;
    Ok(exit::from_status(status))
}

impl Client<'_> {
    /// The real compiler for `compiler`, never rcc itself; `Err(exit code)` once the reason
    /// is said.
    pub(super) fn find_compiler(
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
        let lookup = Lookup {
            path: path.as_deref(),
            me: me.as_deref(),
            own_dir: masquerade
                .then(|| own_dir(argv0, path.as_deref(), me.as_deref()))
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
        if is_rcc(&program, me.as_deref()) {
            eprintln!(
                "rcc: \"{}\" is rcc itself; name the real compiler (rcc gcc ...)",
                program.display()
            );
            return Err(exit::RECURSION);
        }
        Ok(program)
    }

    /// Compiles here, unchanged, holding one of this machine's slots (the host list's, else
    /// one per CPU), and says why under `RCC_VERBOSE`.
    pub(super) fn run_local(&self, program: &Path, args: &[OsString], reason: &str) -> u8 {
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
        let deadline = Instant::now() + Duration::from_secs(3600);
        let _slot = self
            .state()
            .and_then(|state| state.lock_local(limit.max(1), deadline).ok().flatten());
        self.run_local_now(program, args, reason)
    }

    /// Compiles here, unchanged, at once (the caller holds a slot, or needs none), and says
    /// why under `RCC_VERBOSE`.
    pub(super) fn run_local_now(&self, program: &Path, args: &[OsString], reason: &str) -> u8 {
        self.log(format!("local: {reason}"));
        match run(program, args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("rcc: cannot run {}: {e}", program.display());
                exit::COMPILER_MISSING
            }
        }
    }
}
