//! Running the real compiler on this machine: finding it on PATH (skipping rcc itself, so a
//! masquerade symlink named `gcc` never runs itself again) and running a command with the
//! user's stdin, stdout and stderr, passing its exit status through.

use crate::exit;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set in the environment of every compiler rcc runs, so that a compiler which calls `cc`
/// again (through a masquerade directory) compiles locally instead of recursing.
pub const SAFEGUARD: &str = "_RCC_SAFEGUARD";

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds the compiler `name` (a bare name or a path). A bare name is looked up on `path`
/// (the PATH value), skipping every entry that is this very program (`me`, canonical).
pub fn find_compiler(name: &OsStr, path: Option<&OsStr>, me: Option<&Path>) -> Option<PathBuf> {
    let as_path = Path::new(name);
    if as_path.components().count() > 1 {
        return Some(as_path.to_path_buf());
    }
    let path = path?;
    for dir in std::env::split_paths(path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let cand = dir.join(name);
        if !is_executable(&cand) {
            continue;
        }
        if let (Some(me), Ok(real)) = (me, cand.canonicalize()) {
            if real == me {
                continue;
            }
        }
        return Some(cand);
    }
    None
}

/// Runs `program args` with inherited stdio and returns its exit code (128+n for a signal).
pub fn run(program: &Path, args: &[OsString]) -> io::Result<u8> {
    let status = Command::new(program)
        .args(args)
        .env(SAFEGUARD, "1")
        .stdin(Stdio::inherit())
        .status()?;
    Ok(exit::from_status(status))
}
