//! Who gets a slot: at most `jobs` compiles hold one, a few more requests wait in a bounded
//! queue (oldest first), everyone else hears "busy" at once. Also the counters that the
//! status reply shows. No I/O: the loop asks, this decides.

use std::collections::VecDeque;
use std::time::Instant;

/// What to tell a request that wants a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot is reserved for it.
    Run,
    /// It waits in the queue; the loop calls `next_waiting` when a slot frees.
    Wait,
    /// No room: answer busy.
    Busy,
}

#[derive(Debug)]
pub struct Slots {
    /// The configured slots (`--jobs`).
    pub jobs: usize,
    /// Slots usable now: `jobs`, fewer while the box is warm, none while it is throttled.
    pub limit: usize,
    pub queue_len: usize,
    /// Slots reserved (requests accepted whose compile has not been reaped yet).
    pub held: usize,
    waiting: VecDeque<usize>,
    pub counters: Counters,
}

#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub accepted: u64,
    pub done: u64,
    pub failed: u64,
    pub rejected: u64,
    pub busy: u64,
    pub peak: usize,
    pub connections: u64,
    pub refused_peers: u64,
    pub compile_ms: u64,
    /// Jobs refused because the box was throttled.
    pub throttled: u64,
    /// Jobs refused because a compile would not fit in memory (also counted in `busy`).
    pub low_memory: u64,
    /// Connections closed at once because `--max-connections` were open.
    pub over_limit: u64,
    /// Jobs that shipped their sources (the box preprocessed), files those jobs named, and
    /// the files and bytes the box lacked and received.
    pub sources: u64,
    pub files_named: u64,
    pub files_received: u64,
    pub file_bytes_received: u64,
    /// Bytes read from and written to every connection closed so far.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Slots {
    pub fn new(jobs: usize, queue_len: usize) -> Slots {
        Slots {
            jobs,
            limit: jobs,
            queue_len,
            held: 0,
            waiting: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// A request from connection `id` wants a slot.
    pub fn admit(&mut self, id: usize) -> Admission {
        if self.held < self.limit && self.waiting.is_empty() {
            self.take();
            Admission::Run
        } else if self.waiting.len() < self.queue_len {
            self.waiting.push_back(id);
            Admission::Wait
        } else {
            self.counters.busy += 1;
            self.counters.rejected += 1;
            Admission::Busy
        }
    }

    fn take(&mut self) {
        self.held += 1;
        self.counters.accepted += 1;
        self.counters.peak = self.counters.peak.max(self.held);
    }

    /// A slot was freed (a compile was reaped, or an accepted client went away).
    pub fn release(&mut self) {
        debug_assert!(self.held > 0);
        self.held = self.held.saturating_sub(1);
    }

    /// If a slot is free and someone waits, reserves the slot for it and says who.
    pub fn next_waiting(&mut self) -> Option<usize> {
        if self.held < self.limit {
            let id = self.waiting.pop_front()?;
            self.take();
            return Some(id);
        }
        None
    }

    /// A waiting request went away or timed out.
    pub fn forget(&mut self, id: usize) {
        self.waiting.retain(|w| *w != id);
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Counts a finished compile.
    pub fn finished(&mut self, ok: bool, started: Instant) {
        if ok {
            self.counters.done += 1;
        } else {
            self.counters.failed += 1;
        }
        self.counters.compile_ms += started.elapsed().as_millis() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_then_queue_then_busy() {
        let mut s = Slots::new(2, 1);
        assert_eq!(s.admit(1), Admission::Run);
        assert_eq!(s.admit(2), Admission::Run);
        assert_eq!(s.admit(3), Admission::Wait);
        assert_eq!(s.admit(4), Admission::Busy);
        assert_eq!(s.next_waiting(), None);
        s.release();
        assert_eq!(s.next_waiting(), Some(3));
        assert_eq!(s.counters.peak, 2);
        assert_eq!(s.held, 2);
    }

    #[test]
    fn a_queued_request_that_leaves_is_forgotten() {
        let mut s = Slots::new(1, 2);
        assert_eq!(s.admit(1), Admission::Run);
        assert_eq!(s.admit(2), Admission::Wait);
        assert_eq!(s.admit(3), Admission::Wait);
        s.forget(2);
        s.release();
        assert_eq!(s.next_waiting(), Some(3));
    }

    #[test]
    fn a_lower_limit_holds_back_new_jobs_only() {
        let mut s = Slots::new(3, 1);
        assert_eq!(s.admit(1), Admission::Run);
        assert_eq!(s.admit(2), Admission::Run);
        s.limit = 1; // the box got warm: two run, none more until one ends
        assert_eq!(s.admit(3), Admission::Wait);
        s.release();
        assert_eq!(s.next_waiting(), None);
        s.release();
        assert_eq!(s.next_waiting(), Some(3));
    }

    #[test]
    fn the_queue_is_fair_to_earlier_requests() {
        let mut s = Slots::new(1, 2);
        assert_eq!(s.admit(1), Admission::Run);
        assert_eq!(s.admit(2), Admission::Wait);
        s.release();
        // A newcomer does not overtake the waiting request.
        assert_eq!(s.admit(3), Admission::Wait);
        assert_eq!(s.next_waiting(), Some(2));
    }
}
