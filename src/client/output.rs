//! What rcc writes itself: a command's answer on stdout (`out`), its own `rcc: ...` lines on
//! stderr (`say`; `State::say_once` for a whole build), a compiler's words relayed from a box
//! (`relay`), and files written whole (`write_atomically`). What to write is decided
//! elsewhere.

use crate::rules::hosts::HostList;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `text` on stdout. A reader that went away (`rcc --status | head -1`) is not an
/// error worth a panic: `print!` would abort on the broken pipe.
pub(super) fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|()| o.flush());
}

/// Writes `rcc: text` and a newline on stderr in one write, so the lines of a build's rcc
/// processes do not interleave (`eprintln!` writes its pieces one by one).
pub(super) fn say(text: &str) {
    let _ = std::io::stderr().write_all(format!("rcc: {text}\n").as_bytes());
}

/// The entries of a host list that were left out, said on stderr (by the commands a user
/// types, every time).
pub(super) fn say_skipped(list: &HostList) {
    for e in &list.skipped {
        say(&format!("{e}; left out, using the other hosts"));
    }
}

/// Writes the compiler's stdout and stderr once each.
pub(super) fn relay(stdout: &[u8], stderr: &[u8]) {
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
