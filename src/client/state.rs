//! What a build's rcc processes share besides their slots, in `RCC_DIR/state`: which boxes
//! are backed off, which are marked, what each advertised and how fast each compiled lately,
//! and who has said what once for the whole build.
//!
//! `make -j24` starts 24 rcc processes that know nothing of each other. They agree through
//! files: a box that failed is backed off (`state/backoff_<host>`, holding when); a box that
//! said busy, hot or "different compiler" is marked until a time (`state/<mark>_<host>`, see
//! `Mark`). What the boxes advertise (`state/advert_<host>`) and how fast each compiled
//! lately (`state/speed_<host>`) are kept the same way. Every file is written whole through a
//! rename, so a reader never sees half of one. The slots themselves are `pick`'s.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long "this box has a different compiler" is said only once.
const SAY_ONCE_FOR: Duration = Duration::from_secs(600);

/// How long a box's speed record counts. Older, the box is taken to be as fast as the
/// best again, so a box that was slow gets jobs (and a new record) once it has recovered.
pub const SPEED_FOR: Duration = Duration::from_secs(60);

/// How long what a box advertised is trusted before it is asked again.
pub const ADVERT_FOR: Duration = Duration::from_secs(10);

/// What a box said about its size: `--jobs` and the slots it offers now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    pub jobs: u32,
    pub slots_now: u32,
}

/// What keeps a box from a build's jobs for a while: kept as `state/<name>_<key>` until a
/// time, with the box's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// It had no free slot.
    Busy,
    /// It is throttled by heat.
    Hot,
    /// It lacks this job's compiler (the key names the box and the compiler's identity).
    Mismatch,
    /// It takes no shipped jobs (an rccd older than shipping).
    NoShipping,
}

impl Mark {
    /// The mark's file name before `_<key>`: the build's other rcc processes, older ones
    /// included, read the same files, so these never change.
    pub fn name(self) -> &'static str {
        match self {
            Mark::Busy => "busy",
            Mark::Hot => "hot",
            Mark::Mismatch => "mismatch",
            Mark::NoShipping => "nosources",
        }
    }
}

/// What one rcc process of a build says for all of them (see `State::first_to_say`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Something about the host list.
    Hosts,
    /// A box lacks the master's compiler.
    Mismatch,
}

impl Notice {
    /// The file name before `_<key>` that claims the notice (never changes, as `Mark::name`).
    fn name(self) -> &'static str {
        match self {
            Notice::Hosts => "said_hosts",
            Notice::Mismatch => "said_mismatch",
        }
    }
}

/// `RCC_DIR`, opened.
pub struct State {
    pub(super) lock_dir: PathBuf,
    state_dir: PathBuf,
    /// Slot files found locked while waiting, kept open for the next look: opening them
    /// again at every look cost more than the lock attempt itself. They never hold a lock.
    pub(super) tried: RefCell<HashMap<String, File>>,
}

impl State {
    /// Creates `dir`, `dir/lock` and `dir/state` (mode 0700) as needed.
    pub fn open(dir: &Path) -> io::Result<State> {
        let lock_dir = dir.join("lock");
        let state_dir = dir.join("state");
        for d in [dir, &lock_dir, &state_dir] {
            match fs::DirBuilder::new().mode(0o700).recursive(true).create(d) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", d.display()))),
            }
        }
        Ok(State {
            lock_dir,
            state_dir,
            tried: RefCell::default(),
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone()
    }

    fn path(&self, kind: &str, key: &str) -> PathBuf {
        self.state_dir.join(format!("{kind}_{key}"))
    }

    /// Records that `key` failed at `now`: every rcc process skips it for the backoff period.
    pub fn backoff(&self, key: &str, now: SystemTime) -> io::Result<()> {
        super::output::write_atomically(
            &self.path("backoff", key),
            &millis(now).to_string().into_bytes(),
        )
    }

    pub fn is_backed_off(&self, key: &str, period: Duration, now: SystemTime) -> bool {
        let Ok(text) = fs::read_to_string(self.path("backoff", key)) else {
            return false;
        };
        match text.trim().parse::<u64>() {
            Ok(at) => millis(now) < at.saturating_add(period.as_millis() as u64),
            Err(_) => false,
        }
    }

    pub fn clear_backoff(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.path("backoff", key)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Records how long a job took on box `key`: `compile_ms` for `input` bytes, folded into
    /// a moving average (a quarter per job) of the cost per MiB. Inputs under 64 KiB count as
    /// 64 KiB: a tiny file's time is mostly the compiler starting.
    pub fn record_speed(
        &self,
        key: &str,
        compile_ms: u32,
        input: usize,
        now: SystemTime,
    ) -> io::Result<()> {
        let kib = (input as u64 / 1024).max(64);
        let sample = (u64::from(compile_ms) * 1024 / kib).min(u64::from(u32::MAX)) as u32;
        let cost = match self.cost(key, now) {
            Some(old) => ((u64::from(old) * 3 + u64::from(sample)) / 4) as u32,
            None => sample,
        };
        let body = format!("{cost} {}", millis(now));
        super::output::write_atomically(&self.path("speed", key), body.as_bytes())
    }

    /// Box `key`'s recent cost (ms per MiB of input), if its record is fresh.
    pub fn cost(&self, key: &str, now: SystemTime) -> Option<u32> {
        let text = fs::read_to_string(self.path("speed", key)).ok()?;
        let (cost, at) = text.trim().split_once(' ')?;
        let at: u64 = at.parse().ok()?;
        (millis(now) < at.saturating_add(SPEED_FOR.as_millis() as u64))
            .then(|| cost.parse().ok())
            .flatten()
    }

    /// Keeps what box `key` advertised, for the build's other rcc processes.
    pub fn save_advert(&self, key: &str, a: Advert, now: SystemTime) -> io::Result<()> {
        let body = format!("{} {} {}", a.jobs, a.slots_now, millis(now));
        super::output::write_atomically(&self.path("advert", key), body.as_bytes())
    }

    /// What box `key` advertised, if it said so less than `ADVERT_FOR` ago; with its age.
    pub fn advert(&self, key: &str, now: SystemTime) -> Option<(Advert, Duration)> {
        let text = fs::read_to_string(self.path("advert", key)).ok()?;
        let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
        let (jobs, slots_now, at) = (it.next()??, it.next()??, it.next()??);
        let age = Duration::from_millis(millis(now).checked_sub(at)?);
        (age < ADVERT_FOR).then_some((
            Advert {
                jobs: jobs.min(u64::from(u32::MAX)) as u32,
                slots_now: slots_now.min(u64::from(u32::MAX)) as u32,
            },
            age,
        ))
    }

    /// Marks `key` with `mark` until `until`, with the box's words.
    pub fn mark(&self, mark: Mark, key: &str, until: SystemTime, text: &str) -> io::Result<()> {
        let body = format!("{}\n{}", millis(until), text.replace('\n', " "));
        super::output::write_atomically(&self.path(mark.name(), key), body.as_bytes())
    }

    /// The text of a `mark` on `key` still in force at `now`.
    pub fn marked(&self, mark: Mark, key: &str, now: SystemTime) -> Option<String> {
        let text = fs::read_to_string(self.path(mark.name(), key)).ok()?;
        let (until, words) = text.split_once('\n').unwrap_or((&text, ""));
        let until: u64 = until.trim().parse().ok()?;
        (millis(now) < until).then(|| words.to_string())
    }

    /// Says `text` on stderr if no other rcc process of this build has said it (see
    /// `first_to_say`; if that cannot be known, it is said).
    pub fn say_once(&self, notice: Notice, text: &str) {
        let key = format!("{:016x}", crate::fasthash::fnv(text.as_bytes()));
        if self.first_to_say(notice, &key).unwrap_or(true) {
            super::output::say(text);
        }
    }

    /// True for the one rcc process (per `SAY_ONCE_FOR`) that should say `notice` about
    /// `key` — so a build of thousands of files warns once, not once per file.
    pub fn first_to_say(&self, notice: Notice, key: &str) -> io::Result<bool> {
        let path = self.path(notice.name(), key);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let age = fs::metadata(&path)?
                    .modified()?
                    .elapsed()
                    .unwrap_or(Duration::ZERO);
                if age < SAY_ONCE_FOR {
                    return Ok(false);
                }
                // Stale: claim it again. Two processes may both win this race; two
                // warnings are fine.
                fs::remove_file(&path)?;
                self.first_to_say(notice, key)
            }
            Err(e) => Err(e),
        }
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scratch::Scratch as Dir;

    fn dir(name: &str) -> Dir {
        Dir::new(&format!("state-{name}"), false)
    }

    #[test]
    fn speed_records_average_and_expire() {
        let d = dir("speedrec");
        let s = State::open(&d.0).unwrap();
        let now = SystemTime::now();
        assert_eq!(s.cost("a", now), None);
        // 500 ms for 2 MiB: 250 ms/MiB.
        s.record_speed("a", 500, 2 << 20, now).unwrap();
        assert_eq!(s.cost("a", now), Some(250));
        // A quarter of the new sample: (3 x 250 + 1250) / 4.
        s.record_speed("a", 2500, 2 << 20, now).unwrap();
        assert_eq!(s.cost("a", now), Some(500));
        // Tiny inputs count as 64 KiB.
        s.record_speed("b", 100, 10, now).unwrap();
        assert_eq!(s.cost("b", now), Some(1600));
        assert_eq!(s.cost("a", now + SPEED_FOR), None);
    }

    #[test]
    fn adverts_are_kept_briefly() {
        let d = dir("advert");
        let s = State::open(&d.0).unwrap();
        let now = SystemTime::now();
        let a = Advert {
            jobs: 4,
            slots_now: 3,
        };
        s.save_advert("a", a, now).unwrap();
        assert_eq!(s.advert("a", now).map(|(x, _)| x), Some(a));
        assert_eq!(s.advert("a", now + ADVERT_FOR), None);
        assert_eq!(s.advert("b", now), None);
    }

    #[test]
    fn backoff_and_marks_expire() {
        let d = dir("marks");
        let s = State::open(&d.0).unwrap();
        let now = SystemTime::now();
        assert!(!s.is_backed_off("a", Duration::from_secs(60), now));
        s.backoff("a", now).unwrap();
        assert!(s.is_backed_off("a", Duration::from_secs(60), now));
        assert!(!s.is_backed_off("a", Duration::from_secs(60), now + Duration::from_secs(61)));
        s.clear_backoff("a").unwrap();
        s.clear_backoff("a").unwrap();
        assert!(!s.is_backed_off("a", Duration::from_secs(60), now));

        s.mark(
            Mark::Hot,
            "b",
            now + Duration::from_secs(5),
            "82.0 C\nthrottled",
        )
        .unwrap();
        assert_eq!(
            s.marked(Mark::Hot, "b", now).as_deref(),
            Some("82.0 C throttled")
        );
        assert_eq!(s.marked(Mark::Hot, "b", now + Duration::from_secs(6)), None);
        assert_eq!(s.marked(Mark::Busy, "b", now), None);
    }

    #[test]
    fn only_the_first_says_it() {
        let d = dir("say");
        let s = State::open(&d.0).unwrap();
        assert!(s.first_to_say(Notice::Mismatch, "a").unwrap());
        assert!(!s.first_to_say(Notice::Mismatch, "a").unwrap());
        assert!(s.first_to_say(Notice::Mismatch, "b").unwrap());
    }
}
