//! How the box is, as the status reply tells clients: `ok`, `full` (its temp dir's file
//! system has less than `FREE_FLOOR` free even after the file cache gave room), or
//! `broken: <why>` (it cannot write its temp dir, or has no compiler). A box that is not ok
//! advertises no slots, so clients give it no jobs, and refuses the jobs that come anyway
//! (from a client with a `/LIMIT` for it, or an older client) with the same words, so they
//! are compiled elsewhere; nothing is lost.
//!
//! The rule only, no I/O: the event loop reads the facts (`sys::free_space`, the temp dir
//! probe of `job::probe_dir`, the compilers it found) and hands them in.

use std::path::{Path, PathBuf};

/// Below this much free space in the temp dir (after the file cache gave room) the box is
/// `full`: a small job's input, object and the compiler's own temp files need about as
/// much.
pub const FREE_FLOOR: u64 = 256 << 10;

/// The most of `last_error` kept: one line for a status table.
const ERROR_CAP: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    Full,
    Broken(String),
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Ok => write!(f, "ok"),
            Health::Full => write!(f, "full"),
            Health::Broken(why) => write!(f, "broken: {why}"),
        }
    }
}

/// What is known about the box's health, and the last thing that went wrong on it.
#[derive(Debug)]
pub struct Watch {
    temp_dir: PathBuf,
    /// Why the temp dir cannot be written (as the user rccd serves as).
    unwritable: Option<String>,
    /// Why no compiler can be run.
    no_compiler: Option<String>,
    /// Bytes free in the temp dir's file system, as last read.
    free: Option<u64>,
    last_error: Option<String>,
}

impl Watch {
    pub fn new(temp_dir: &Path) -> Watch {
        Watch {
            temp_dir: temp_dir.to_path_buf(),
            unwritable: None,
            no_compiler: None,
            free: None,
            last_error: None,
        }
    }

    /// What the last probe of the temp dir said (`Err`: why it cannot be written).
    pub fn set_writable(&mut self, probe: Result<(), String>) {
        self.unwritable = probe.err();
    }

    pub fn writable(&self) -> bool {
        self.unwritable.is_none()
    }

    /// Why no compiler can be run (`None`: at least one can).
    pub fn set_no_compiler(&mut self, why: Option<String>) {
        self.no_compiler = why;
    }

    pub fn has_compiler(&self) -> bool {
        self.no_compiler.is_none()
    }

    /// The temp dir's free space, read after the file cache gave what room it could.
    pub fn set_free(&mut self, free: Option<u64>) {
        self.free = free;
    }

    /// Notes something that went wrong on the box (not the job's fault), for `last_error`.
    pub fn failed(&mut self, text: &str) {
        let mut t: String = text.chars().take(ERROR_CAP).collect();
        t.retain(|c| !c.is_control());
        self.last_error = Some(t);
    }

    pub fn health(&self) -> Health {
        if let Some(why) = self.unwritable.as_ref().or(self.no_compiler.as_ref()) {
            return Health::Broken(why.clone());
        }
        match self.free {
            Some(free) if free < FREE_FLOOR => Health::Full,
            _ => Health::Ok,
        }
    }

    /// Why a job is refused now (`None`: the box takes jobs).
    pub fn refusal(&self) -> Option<String> {
        match self.health() {
            Health::Ok => None,
            Health::Full => Some(format!(
                "this box is full: no space left in its temp dir {} ({} KiB free after its \
                 file cache gave room, less than the {} KiB a job needs); free some space \
                 there or give rccd a larger --temp-dir",
                self.temp_dir.display(),
                self.free.unwrap_or(0) >> 10,
                FREE_FLOOR >> 10
            )),
            Health::Broken(why) => Some(format!("this box takes no jobs: {why}")),
        }
    }

    /// The status keys `health`, `free_kib` and `last_error`; a box that is not ok also
    /// says it has no slots (`slots_now`, `free`), which is what keeps clients away.
    pub fn status(&self, kv: &mut Vec<(String, String)>) {
        let health = self.health();
        if health != Health::Ok {
            for (k, v) in kv.iter_mut() {
                if k == "slots_now" || k == "free" {
                    *v = "0".into();
                }
            }
        }
        kv.push(("health".into(), health.to_string()));
        if let Some(free) = self.free {
            kv.push(("free_kib".into(), (free >> 10).to_string()));
        }
        let last = match (&health, &self.last_error) {
            (Health::Full, None) => self.refusal(),
            (_, e) => e.clone(),
        };
        if let Some(e) = last {
            kv.push(("last_error".into(), e));
        }
    }
}

/// An I/O error as a person reads it: "Read-only file system", without "(os error 30)".
pub fn said(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(w: &Watch) -> Vec<(String, String)> {
        let mut kv = vec![
            ("slots".to_string(), "4".to_string()),
            ("slots_now".to_string(), "4".to_string()),
            ("free".to_string(), "4".to_string()),
        ];
        w.status(&mut kv);
        kv
    }

    fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
        kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_box_with_room_and_a_compiler_is_ok() {
        let mut w = Watch::new(Path::new("/tmp"));
        assert_eq!(w.health(), Health::Ok);
        w.set_free(Some(FREE_FLOOR));
        assert_eq!(w.health(), Health::Ok);
        assert_eq!(w.refusal(), None);
        let kv = kv(&w);
        assert_eq!(get(&kv, "health"), Some("ok"));
        assert_eq!(get(&kv, "slots_now"), Some("4"));
        assert_eq!(get(&kv, "free_kib"), Some("256"));
        assert_eq!(get(&kv, "last_error"), None);
    }

    #[test]
    fn below_the_floor_it_is_full_and_offers_no_slots() {
        let mut w = Watch::new(Path::new("/mnt/t"));
        w.set_free(Some(FREE_FLOOR - 1));
        assert_eq!(w.health(), Health::Full);
        let why = w.refusal().unwrap();
        assert!(
            why.contains("no space left in its temp dir /mnt/t"),
            "{why}"
        );
        let kv = kv(&w);
        assert_eq!(get(&kv, "health"), Some("full"));
        assert_eq!(get(&kv, "slots_now"), Some("0"));
        assert_eq!(get(&kv, "free"), Some("0"));
        assert_eq!(get(&kv, "slots"), Some("4"));
        assert_eq!(get(&kv, "last_error"), Some(why.as_str()));
    }

    #[test]
    fn broken_says_why_and_wins_over_full() {
        let mut w = Watch::new(Path::new("/ro"));
        w.set_free(Some(0));
        w.set_writable(Err("cannot write in /ro (Read-only file system)".into()));
        w.set_no_compiler(Some("no compiler in /empty".into()));
        assert_eq!(
            w.health().to_string(),
            "broken: cannot write in /ro (Read-only file system)"
        );
        w.set_writable(Ok(()));
        assert_eq!(w.health().to_string(), "broken: no compiler in /empty");
        assert_eq!(
            w.refusal().as_deref(),
            Some("this box takes no jobs: no compiler in /empty")
        );
        w.set_no_compiler(None);
        assert_eq!(w.health(), Health::Full);
        w.set_free(None);
        assert_eq!(w.health(), Health::Ok);
    }

    #[test]
    fn the_last_error_is_one_bounded_line() {
        let mut w = Watch::new(Path::new("/tmp"));
        w.failed(&format!("bad\nthing\r{}", "x".repeat(1000)));
        let kv = kv(&w);
        let e = get(&kv, "last_error").unwrap();
        assert!(e.starts_with("badthing") && e.len() <= ERROR_CAP, "{e}");
        assert_eq!(get(&kv, "health"), Some("ok"));
    }

    #[test]
    fn io_errors_read_without_their_number() {
        let e = std::io::Error::from_raw_os_error(libc::EROFS);
        assert_eq!(said(&e), "Read-only file system");
        let e = std::io::Error::other("plain words");
        assert_eq!(said(&e), "plain words");
    }
}
