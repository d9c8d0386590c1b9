//! Which box gets a job, and the slots that hold it there: `Client::pick` lists the places a
//! job may go with the slots each offers now (a box's advert, `localhost` only with a CPU
//! to spare), `Client::usable` leaves out before each try those tried, full, backed off or
//! marked, and `State::pick_wait` takes a free slot.
//!
//! `make -j24` starts 24 rcc processes that know nothing of each other. A job slot on a box
//! is a lock file (`lock/<host>_<n>`) held with an open-file-description lock for as long as
//! the job runs, so a crashed rcc frees its slot the moment it dies.
//!
//! The slot taken: among the boxes with a free slot, the one with the most headroom — its
//! free share of its slots, scaled by its recent speed against the fastest box's — so load
//! spreads by what the boxes can take, not by their place in the list, and a box that got
//! slow (throttling it cannot see, a noisy neighbour) gets fewer jobs until it speeds up.
//! This machine only when no box has a free slot.

use super::state::{Mark, State};
use super::{advert, conclude, Client};
use crate::rules::hosts::{HostKind, HostList, HostSpec};
use crate::sys;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::time::{Duration, Instant, SystemTime};

/// How long a waiting rcc sleeps between looks at the slots. A compile takes hundreds of
/// milliseconds at least, so 15 ms costs nothing in latency; distcc sleeps a whole second.
const POLL: Duration = Duration::from_millis(15);
const POLL_WATCHED: Duration = Duration::from_millis(250);
const SOON: Duration = Duration::from_millis(2);
/// How many waiting rcc processes of one `RCC_DIR` watch; the others look every `POLL`.
const WATCHERS: u32 = 16;

/// A place to run a job, as the picker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `HostSpec::key()`.
    pub key: String,
    /// Jobs at once.
    pub limit: u32,
    /// A box (true) or this machine (false).
    pub remote: bool,
    /// Its recent compile cost (ms per MiB of input), if it has a fresh record.
    pub cost: Option<u32>,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SlotLock {
    _file: File,
    pub name: String,
}

/// The winner of `pick_wait`: `index` into the candidates, holding its slot.
#[derive(Debug)]
pub struct Pick {
    pub index: usize,
    pub slot: SlotLock,
}

impl State {
    fn try_slot(&self, key: &str, n: u32) -> io::Result<Option<SlotLock>> {
        let name = format!("{key}_{n}");
        let kept = self.tried.borrow_mut().remove(&name);
        let file = match kept {
            Some(f) => f,
            None => OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.lock_dir.join(&name))?,
        };
        if sys::try_lock(&file)? {
            return Ok(Some(SlotLock { _file: file, name }));
        }
        self.tried.borrow_mut().insert(name, file);
        Ok(None)
    }

    /// Takes a free slot now, if there is one: on the box with the most headroom (see the
    /// module's text; ties go to the earlier in the list), else on this machine.
    pub fn pick(&self, candidates: &[Candidate]) -> io::Result<Option<Pick>> {
        let fastest = candidates
            .iter()
            .filter(|c| c.remote)
            .filter_map(|c| c.cost)
            .min();
        let mut best: Option<(u64, Pick)> = None;
        for (index, c) in candidates.iter().enumerate() {
            if !c.remote || c.limit == 0 {
                continue;
            }
            let mut free = 0u64;
            let mut first = None;
            for n in 0..c.limit {
                if let Some(slot) = self.try_slot(&c.key, n)? {
                    free += 1;
                    first.get_or_insert(slot);
                }
            }
            let Some(slot) = first else { continue };
            let share = free * 1_000_000 / u64::from(c.limit);
            // A box with no fresh record counts as fast as the fastest: new and
            // recovered boxes get tried.
            let speed = match (c.cost, fastest) {
                (Some(cost), Some(f)) => u64::from(f) * 1000 / u64::from(cost.max(1)),
                _ => 1000,
            };
            let score = share * speed.max(1);
            if best.as_ref().map_or(true, |(s, _)| score > *s) {
                best = Some((score, Pick { index, slot }));
            }
        }
        if let Some((_, p)) = best {
            return Ok(Some(p));
        }
        // This machine also preprocesses and links, and is the farm's usual bottleneck:
        // it compiles only when every box is full.
        for (index, c) in candidates.iter().enumerate() {
            if c.remote {
                continue;
            }
            for n in 0..c.limit {
                if let Some(slot) = self.try_slot(&c.key, n)? {
                    return Ok(Some(Pick { index, slot }));
                }
            }
        }
        Ok(None)
    }

    /// `pick`, waiting for a slot to free up until `deadline`. `None`: the deadline passed.
    pub fn pick_wait(
        &self,
        candidates: &[Candidate],
        deadline: Instant,
    ) -> io::Result<Option<Pick>> {
        // Woken when a slot file is closed (its holder is done or gone), looking again at
        // least every `POLL_WATCHED` in case a close went unseen; every `POLL` where the
        // lock directory cannot be watched. Looking every 15 ms had the waiting rcc
        // processes of a `make -j8` on six box slots looking 66 times a second each.
        let mut watch: Option<(sys::CloseWatch, SlotLock)> = None;
        let mut first = true;
        // The kernel announces a close just before it lets go of the file's lock: after a
        // close that freed nothing yet, look again `SOON`.
        let mut woken = false;
        let found = loop {
            match self.pick(candidates) {
                Ok(None) if Instant::now() < deadline => {
                    if first {
                        first = false;
                        // Watched from now on; looked at once more before waiting, so a
                        // slot freed in between is not missed.
                        watch = self.watcher();
                        continue;
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    match &watch {
                        Some((w, _)) => {
                            let cap = if woken { SOON } else { POLL_WATCHED };
                            let ms = left.min(cap).as_millis().max(1) as i32;
                            let ours = |name: &[u8]| is_slot_of(name, candidates);
                            woken = w.wait(ms, &ours).unwrap_or_else(|_| {
                                std::thread::sleep(POLL);
                                false
                            });
                        }
                        None => std::thread::sleep(POLL),
                    }
                }
                other => break other,
            }
        };
        self.tried.borrow_mut().clear();
        found
    }

    /// A watch of the lock directory, for at most `WATCHERS` waiting rcc processes at once
    /// (each holds one of as many tickets): inotify instances are the user's (128 by
    /// default), and the user's other programs need theirs during a `make -j200` too.
    fn watcher(&self) -> Option<(sys::CloseWatch, SlotLock)> {
        let ticket = (0..WATCHERS).find_map(|n| self.try_slot("watcher", n).ok().flatten())?;
        let watch = sys::CloseWatch::new(&self.lock_dir).ok()?;
        Some((watch, ticket))
    }

    fn wait_slot(&self, key: &str, limit: u32, deadline: Instant) -> io::Result<Option<SlotLock>> {
        let c = [Candidate {
            key: key.to_string(),
            limit: limit.max(1),
            remote: true,
            cost: None,
        }];
        Ok(self.pick_wait(&c, deadline)?.map(|p| p.slot))
    }

    /// One of `limit` slots for compiling on this machine (the `localhost` entry's slots:
    /// local fallbacks and local-only commands share them). `None` at the deadline.
    pub fn lock_local(&self, limit: u32, deadline: Instant) -> io::Result<Option<SlotLock>> {
        self.wait_slot("localhost", limit, deadline)
    }

    /// One of `limit` preprocessing slots; an error at the deadline.
    pub fn lock_cpp(&self, limit: u32, deadline: Instant) -> io::Result<SlotLock> {
        self.wait_slot("cpp", limit, deadline)?.ok_or_else(|| {
            io::Error::new(
                ErrorKind::TimedOut,
                "no preprocessing slot freed up in time",
            )
        })
    }
}

/// Whether `name` is one of the slot files of `candidates` (`KEY_N`, as `try_slot` names
/// them).
fn is_slot_of(name: &[u8], candidates: &[Candidate]) -> bool {
    candidates.iter().any(|c| {
        name.strip_prefix(c.key.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"_"))
            .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
    })
}

/// The places one job may go, in the order the host list gives them (shuffled when it says
/// `--randomize`), each with the slots it offers: what `Client::pick` found.
pub(super) struct Farm<'h> {
    hosts: Vec<&'h HostSpec>,
    pub candidates: Vec<Candidate>,
}

impl<'h> Farm<'h> {
    /// The host of the candidate `key`.
    pub fn host(&self, key: &str) -> &'h HostSpec {
        self.hosts
            .iter()
            .find(|h| h.key() == key)
            .expect("candidate comes from the list")
    }
}

impl Client<'_> {
    /// The places a job may go, in order: every host of `list` that is not down, with the
    /// slots it offers now. Boxes are asked (or their advert read from `RCC_DIR`); one that
    /// does not answer is backed off.
    pub(super) fn pick<'h>(&self, list: &'h HostList, state: &State) -> Farm<'h> {
        let mut hosts: Vec<&HostSpec> = list.hosts.iter().filter(|h| !h.down).collect();
        if list.randomize {
            shuffle(&mut hosts);
        }
        let now = SystemTime::now();
        let candidates = hosts
            .iter()
            .map(|h| {
                let key = h.key();
                let limit = self.slots(h, state, now);
                let remote = matches!(h.kind, HostKind::Tcp { .. });
                Candidate {
                    cost: if remote { state.cost(&key, now) } else { None },
                    key,
                    limit,
                    remote,
                }
            })
            .collect();
        Farm { hosts, candidates }
    }

    /// How many jobs `h` takes at once now.
    fn slots(&self, h: &HostSpec, state: &State, now: SystemTime) -> u32 {
        let key = h.key();
        match h.kind {
            HostKind::Local => h.limit.unwrap_or_else(|| {
                // A bare `localhost` compiles only with a CPU to spare: the master
                // preprocesses, scans and links for the whole farm, and a job it compiles on
                // a busy CPU delays all of that (tests/tools/MEASURED.md).
                if master_has_a_spare_cpu() {
                    advert::DEFAULT_LOCAL_SLOTS
                } else {
                    0
                }
            }),
            // A box that is backed off is not asked; it is skipped anyway (`usable`).
            HostKind::Tcp { .. } if state.is_backed_off(&key, self.settings.backoff, now) => {
                h.limit.unwrap_or(advert::DEFAULT_BOX_SLOTS)
            }
            HostKind::Tcp { .. } => {
                match advert::box_slots(state, h, self.settings.timeouts, now) {
                    Ok(n) => n,
                    Err(e) => {
                        self.log(format!("{key}: no advert ({e}); backing it off"));
                        let _ = state.backoff(&key, now);
                        advert::DEFAULT_BOX_SLOTS
                    }
                }
            }
        }
    }

    /// The places of `farm` a job that has `tried` some may take a slot of now: not tried,
    /// offering slots, and (a box) neither backed off nor marked.
    pub(super) fn usable(
        &self,
        farm: &Farm,
        state: &State,
        identity: &str,
        tried: &[String],
        now: SystemTime,
    ) -> Vec<Candidate> {
        farm.candidates
            .iter()
            .filter(|c| !tried.contains(&c.key))
            // A box offering no slots now (throttled when it last said) is skipped.
            .filter(|c| c.limit > 0)
            .filter(|c| !c.remote || self.box_usable(state, &c.key, identity, now))
            .cloned()
            .collect()
    }

    /// Whether box `key` may get a job for the compiler `identity` now.
    fn box_usable(&self, state: &State, key: &str, identity: &str, now: SystemTime) -> bool {
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
        let id_key = conclude::mismatch_key(key, identity);
        if let Some(t) = state.marked(Mark::Mismatch, &id_key, now) {
            self.log(format!("{key}: {t}"));
            return false;
        }
        true
    }
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

    use crate::scratch::Scratch as Dir;

    fn dir(name: &str) -> Dir {
        Dir::new(&format!("pick-{name}"), false)
    }
    fn cand(key: &str, limit: u32, remote: bool) -> Candidate {
        Candidate {
            key: key.into(),
            limit,
            remote,
            cost: None,
        }
    }

    #[test]
    fn slots_fill_boxes_first_slot_major_then_localhost() {
        let d = dir("fill");
        let s = State::open(&d.0).unwrap();
        let c = [
            cand("localhost", 1, false),
            cand("a", 2, true),
            cand("b", 1, true),
        ];
        let mut held = Vec::new();
        let mut order = Vec::new();
        for _ in 0..4 {
            let p = s.pick(&c).unwrap().expect("a free slot");
            order.push(p.slot.name.clone());
            held.push(p);
        }
        assert_eq!(order, ["a_0", "b_0", "a_1", "localhost_0"]);
        assert!(s.pick(&c).unwrap().is_none(), "all four slots are held");
        // Freeing a box's slot makes the box win again, not localhost. Through `pick_wait`,
        // as rcc waits: a child another test thread forks in that instant holds a copy of the
        // fd (and so the lock) until it execs, which under qemu-user takes a moment.
        let freed = held.remove(2);
        drop(freed);
        let again = s.pick_wait(&c, Instant::now() + Duration::from_secs(2));
        assert_eq!(again.unwrap().expect("the freed slot").slot.name, "a_1");
    }

    #[test]
    fn a_slower_box_wins_only_with_more_free_room() {
        let d = dir("speed");
        let s = State::open(&d.0).unwrap();
        let slow = Candidate {
            cost: Some(3000),
            ..cand("slow", 4, true)
        };
        let fast = Candidate {
            cost: Some(1000),
            ..cand("fast", 4, true)
        };
        let c = [slow, fast];
        // Both idle: the fast one, though listed second.
        let mut held = vec![s.pick(&c).unwrap().unwrap()];
        assert_eq!(held[0].slot.name, "fast_0");
        // Fast at 3/4 free (750 x 1000) beats slow at 4/4 (1000 x 333)...
        held.push(s.pick(&c).unwrap().unwrap());
        assert_eq!(held[1].slot.name, "fast_1");
        held.push(s.pick(&c).unwrap().unwrap());
        assert_eq!(held[2].slot.name, "fast_2");
        // ... but at 1/4 free (250 x 1000) it loses to the idle slow box.
        held.push(s.pick(&c).unwrap().unwrap());
        assert_eq!(held[3].slot.name, "slow_0");
    }

    #[test]
    fn a_slot_held_by_another_process_is_busy_until_it_exits() {
        let d = dir("proc");
        let s = State::open(&d.0).unwrap();
        // OFD locks belong to the open file, so a second open in this process contends
        // exactly like another rcc process would.
        let held = s.try_slot("a", 0).unwrap().expect("free");
        assert!(s.try_slot("a", 0).unwrap().is_none());
        drop(held);
        // Waiting briefly, as rcc does: a child another test thread is forking may hold a
        // copy of the fd until it execs (a while under qemu-user).
        let again = s.pick_wait(
            &[cand("a", 1, true)],
            Instant::now() + Duration::from_secs(2),
        );
        assert!(again.unwrap().is_some());
    }

    #[test]
    fn a_waiter_is_woken_by_the_slot_file_closing() {
        let d = dir("close");
        let s = State::open(&d.0).unwrap();
        let watch = sys::CloseWatch::new(&s.lock_dir).unwrap();
        let a = [cand("a", 2, true)];
        let ours = |name: &[u8]| is_slot_of(name, &a);
        assert!(!watch.wait(0, &ours).unwrap(), "nothing closed yet");
        // Another kind of slot's close does not wake a waiter for `a`.
        drop(s.try_slot("cpp", 0).unwrap().expect("free"));
        drop(s.try_slot("ab", 1).unwrap().expect("free"));
        assert!(!watch.wait(50, &ours).unwrap(), "not a slot of a");
        let held = s.try_slot("a", 0).unwrap().expect("free");
        drop(held);
        assert!(
            watch.wait(10_000, &ours).unwrap(),
            "the holder's close is seen"
        );
        assert!(!watch.wait(0, &ours).unwrap(), "and forgotten once seen");
        // A waiter in another thread gets the slot when the holder drops it.
        let held = s.try_slot("a", 0).unwrap().expect("free");
        let dir = d.0.clone();
        let waiter = std::thread::spawn(move || {
            let s = State::open(&dir).unwrap();
            let got = s.pick_wait(
                &[cand("a", 1, true)],
                Instant::now() + Duration::from_secs(30),
            );
            got.unwrap().is_some()
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn at_most_sixteen_waiters_watch() {
        let d = dir("watchers");
        let s = State::open(&d.0).unwrap();
        let held: Vec<_> = (0..WATCHERS).filter_map(|_| s.watcher()).collect();
        assert_eq!(held.len(), WATCHERS as usize);
        assert!(s.watcher().is_none(), "a seventeenth waiter polls");
        drop(held);
        assert!(s.watcher().is_some());
    }

    #[test]
    fn waiting_gives_up_at_the_deadline() {
        let d = dir("wait");
        let s = State::open(&d.0).unwrap();
        let _held = s.lock_cpp(1, Instant::now()).unwrap();
        let t = Instant::now();
        assert!(s.lock_cpp(1, t + Duration::from_millis(50)).is_err());
        assert!(s.lock_local(1, Instant::now()).unwrap().is_some());
    }
}
