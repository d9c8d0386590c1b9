//! The box looking after itself between requests: its health read again (a temp dir made
//! writable, a compiler installed: it mends without a restart), room made on a full disk
//! (idle mirrors first, then the file cache's least recently used files), and what went
//! wrong on the box kept for `last_error`. The rule that turns all this into ok, full or
//! broken is `health`'s; the loop calls these steps.

use super::event_loop::Daemon;
use super::health::{self, FREE_FLOOR};
use super::job;
use super::startup::open_cache;
use crate::sys;
use std::time::{Duration, Instant};

impl Daemon {
    /// Reads the box's state once before it serves: memory, heat, free space; says why a
    /// full box takes no jobs.
    pub(super) fn first_look(&mut self) {
        self.memory.sample(Instant::now());
        self.apply_thermal();
        self.check_space();
        if let Some(why) = self
            .health
            .refusal()
            .filter(|_| self.health.health() == health::Health::Full)
        {
            log::warn!("{why}");
        }
    }

    /// Something went wrong on the box, not in the job: kept for `last_error`, and what the
    /// box's health depends on is read again (the temp dir may have gone read-only or full).
    pub(super) fn box_failed(&mut self, text: &str) {
        self.health.failed(text);
        self.health.set_writable(self.probe_temp_dir());
        self.check_space();
    }

    /// Whether rccd can still make files in its temp dir (`Err`: why not, for `health`).
    fn probe_temp_dir(&self) -> Result<(), String> {
        job::probe_dir(&self.config.temp_dir).map_err(|e| {
            let dir = self.config.temp_dir.display();
            format!("cannot write in {dir} ({})", health::said(&e))
        })
    }

    /// Reads what the box's health depends on now, and logs when it changed. A broken box
    /// looks again at what broke it (a temp dir made writable, a compiler installed), at
    /// most once a second (a flood of requests costs no directory scans), so it mends
    /// without a restart.
    pub(super) fn check_health(&mut self) {
        let before = self.health.health();
        let now = Instant::now();
        if before != health::Health::Ok && now >= self.next_look {
            self.next_look = now + Duration::from_secs(1);
            self.look_again();
        }
        self.check_space();
        let after = self.health.health();
        if after != before {
            match self.health.refusal() {
                Some(why) => log::warn!("health {after}: {why}"),
                None => log::info!("health {after}: taking jobs again"),
            }
        }
    }

    /// Looks again at what makes a box broken: its temp dir (and the cache under it) and
    /// its compilers.
    fn look_again(&mut self) {
        if !self.health.writable() {
            self.health.set_writable(self.probe_temp_dir());
            if self.health.writable() && self.cache.is_none() {
                (self.cache, self.cache_error) = open_cache(&self.config, true);
            }
        }
        if !self.health.has_compiler() {
            self.compilers.probe_all();
            self.health.set_no_compiler(self.compilers.missing());
        }
    }

    /// Reads the temp dir's free space for `health`; below `FREE_FLOOR` the file cache and
    /// the idle mirrors give room first. The cache's bound follows its disk (`Cache::refit`).
    pub(super) fn check_space(&mut self) {
        if let Some(cache) = self.cache.as_mut() {
            let _ = cache.refit();
        }
        let dir = self.config.temp_dir.clone();
        let mut free = sys::free_space(&dir).ok();
        if let Some(f) = free.filter(|&f| f < FREE_FLOOR) {
            self.give_room(2 * FREE_FLOOR - f);
            free = sys::free_space(&dir).ok();
        }
        self.health.set_free(free);
    }

    /// The disk is full: idle mirrors go (the cache's files they link free nothing while
    /// they stay), then the cache's least recently used files, until `bytes` came free.
    pub(super) fn give_room(&mut self, bytes: u64) {
        let mirrors = self.mirrors.drop_idle();
        let freed = match self.cache.as_mut() {
            Some(cache) => {
                let _ = cache.refit();
                cache.give_room(bytes).unwrap_or(0)
            }
            None => 0,
        };
        if mirrors > 0 || freed > 0 {
            log::warn!(
                "the disk of {} is full: removed {mirrors} idle mirrors and {} KiB of the \
                 file cache",
                self.config.temp_dir.display(),
                freed >> 10
            );
        }
    }
}
