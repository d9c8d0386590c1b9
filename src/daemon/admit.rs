//! Who gets a slot: at most `jobs` compiles hold one, a few more requests wait in a bounded
//! queue, everyone else hears "busy" at once. Also the counters that the status reply shows.
//! No I/O: the loop asks, this decides.
//!
//! Slots are shared fairly between peer addresses, without costing the usual farm anything:
//! one master (one address sending all of a build's jobs) gets every slot while nobody else
//! asks. Only when a request waits does the address matter:
//! - a freed slot goes to the waiting request whose address holds the fewest slots (the
//!   oldest of those), not simply to the oldest request;
//! - an address holding at least two slots more than a waiting request's address gives one
//!   up: the loop cuts its newest job that is still receiving input (nothing is compiling
//!   yet, the client is told "busy" and tries another box), and the slot goes to the waiter.
//!   A running compile is never cut for this.
//!
//! So with N slots, two addresses that both want them end up within one slot of each other,
//! and a peer that holds every slot with jobs it never finishes sending loses them to the
//! first other peer that asks. (A job whose input is too slow loses its slot anyway: see
//! `conn::Conn::input_too_slow`.)

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
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
    /// Requests waiting for a slot, oldest first: connection and peer address.
    waiting: VecDeque<(usize, IpAddr)>,
    /// Slots held by each peer address (addresses holding none are left out).
    by_peer: HashMap<IpAddr, usize>,
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
    /// Jobs cut because their input fell below the floor rate (also counted in `rejected`).
    pub too_slow: u64,
    /// Jobs still receiving input cut to give their slot to another peer (see the module
    /// doc; also counted in `rejected` and `busy`).
    pub given_up: u64,
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
            by_peer: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// A request from connection `id` at address `peer` wants a slot. It runs at once only
    /// when nobody waits, so a newcomer never overtakes a waiting request.
    pub fn admit(&mut self, id: usize, peer: IpAddr) -> Admission {
        if self.held < self.limit && self.waiting.is_empty() {
            self.take(peer);
            Admission::Run
        } else if self.waiting.len() < self.queue_len {
            self.waiting.push_back((id, peer));
            Admission::Wait
        } else {
            self.counters.busy += 1;
            self.counters.rejected += 1;
            Admission::Busy
        }
    }

    fn take(&mut self, peer: IpAddr) {
        self.held += 1;
        *self.by_peer.entry(peer).or_insert(0) += 1;
        self.counters.accepted += 1;
        self.counters.peak = self.counters.peak.max(self.held);
    }

    /// A slot of `peer`'s was freed (a compile was reaped, or an accepted client went away).
    pub fn release(&mut self, peer: IpAddr) {
        debug_assert!(self.held > 0);
        self.held = self.held.saturating_sub(1);
        if let Some(n) = self.by_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.by_peer.remove(&peer);
            }
        }
    }

    /// Slots held by `peer`.
    pub fn held_by(&self, peer: IpAddr) -> usize {
        self.by_peer.get(&peer).copied().unwrap_or(0)
    }

    /// If a slot is free and someone waits, reserves the slot for the waiting request whose
    /// address holds the fewest slots (the oldest of those), and says which connection.
    pub fn next_waiting(&mut self) -> Option<usize> {
        if self.held >= self.limit {
            return None;
        }
        let (at, _) = self
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(i, (_, peer))| (self.held_by(*peer), *i))?;
        let (id, peer) = self.waiting.remove(at).expect("found above");
        self.take(peer);
        Some(id)
    }

    /// The address that should give up a slot to a waiting request: one holding at least
    /// two slots more than the neediest waiting address (the one holding most, if several),
    /// among those `cuttable` says have a job still receiving input. `None` while the box
    /// holds more than its limit (it is warm: a freed slot would go to nobody).
    pub fn to_cut(&self, cuttable: impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
        if self.held > self.limit {
            return None;
        }
        let neediest = self.waiting.iter().map(|(_, p)| self.held_by(*p)).min()?;
        self.by_peer
            .iter()
            .filter(|(p, n)| **n >= neediest + 2 && cuttable(**p))
            .max_by_key(|(p, n)| (**n, **p))
            .map(|(p, _)| *p)
    }

    /// A waiting request went away or timed out.
    pub fn forget(&mut self, id: usize) {
        self.waiting.retain(|w| w.0 != id);
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

    /// Peer address `n` (127.0.0.n).
    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    const A: u8 = 1;
    const B: u8 = 2;

    #[test]
    fn slots_then_queue_then_busy() {
        let mut s = Slots::new(2, 1);
        assert_eq!(s.admit(1, ip(A)), Admission::Run);
        assert_eq!(s.admit(2, ip(A)), Admission::Run);
        assert_eq!(s.admit(3, ip(A)), Admission::Wait);
        assert_eq!(s.admit(4, ip(A)), Admission::Busy);
        assert_eq!(s.next_waiting(), None);
        s.release(ip(A));
        assert_eq!(s.next_waiting(), Some(3));
        assert_eq!(s.counters.peak, 2);
        assert_eq!(s.held, 2);
        assert_eq!(s.held_by(ip(A)), 2);
    }

    #[test]
    fn a_queued_request_that_leaves_is_forgotten() {
        let mut s = Slots::new(1, 2);
        assert_eq!(s.admit(1, ip(A)), Admission::Run);
        assert_eq!(s.admit(2, ip(A)), Admission::Wait);
        assert_eq!(s.admit(3, ip(A)), Admission::Wait);
        s.forget(2);
        s.release(ip(A));
        assert_eq!(s.next_waiting(), Some(3));
    }

    #[test]
    fn a_lower_limit_holds_back_new_jobs_only() {
        let mut s = Slots::new(3, 1);
        assert_eq!(s.admit(1, ip(A)), Admission::Run);
        assert_eq!(s.admit(2, ip(A)), Admission::Run);
        s.limit = 1; // the box got warm: two run, none more until one ends
        assert_eq!(s.admit(3, ip(B)), Admission::Wait);
        assert_eq!(s.to_cut(|_| true), None, "a cut would free no slot");
        s.release(ip(A));
        assert_eq!(s.next_waiting(), None);
        s.release(ip(A));
        assert_eq!(s.next_waiting(), Some(3));
    }

    #[test]
    fn the_queue_is_fair_to_earlier_requests() {
        let mut s = Slots::new(1, 2);
        assert_eq!(s.admit(1, ip(A)), Admission::Run);
        assert_eq!(s.admit(2, ip(A)), Admission::Wait);
        s.release(ip(A));
        // A newcomer does not overtake the waiting request.
        assert_eq!(s.admit(3, ip(A)), Admission::Wait);
        assert_eq!(s.next_waiting(), Some(2));
    }

    #[test]
    fn one_address_alone_gets_every_slot_and_is_never_cut() {
        let mut s = Slots::new(4, 4);
        for id in 0..4 {
            assert_eq!(s.admit(id, ip(A)), Admission::Run);
        }
        assert_eq!(s.admit(4, ip(A)), Admission::Wait);
        assert_eq!(s.held_by(ip(A)), 4);
        assert_eq!(s.to_cut(|_| true), None, "its own request does not cut it");
    }

    #[test]
    fn a_freed_slot_goes_to_the_address_holding_fewest() {
        let mut s = Slots::new(2, 4);
        assert_eq!(s.admit(1, ip(A)), Admission::Run);
        assert_eq!(s.admit(2, ip(A)), Admission::Run);
        assert_eq!(s.admit(3, ip(A)), Admission::Wait);
        assert_eq!(s.admit(4, ip(A)), Admission::Wait);
        assert_eq!(s.admit(5, ip(B)), Admission::Wait);
        s.release(ip(A));
        // B holds none: it goes before A's older requests.
        assert_eq!(s.next_waiting(), Some(5));
        s.release(ip(A));
        assert_eq!(s.next_waiting(), Some(3));
        assert_eq!((s.held_by(ip(A)), s.held_by(ip(B))), (1, 1));
    }

    #[test]
    fn an_address_two_slots_ahead_of_a_waiting_one_gives_one_up() {
        let mut s = Slots::new(4, 4);
        for id in 0..4 {
            assert_eq!(s.admit(id, ip(A)), Admission::Run);
        }
        assert_eq!(s.admit(10, ip(B)), Admission::Wait);
        // Only an address with a job still receiving input can give one up.
        assert_eq!(s.to_cut(|p| p != ip(A)), None);
        assert_eq!(s.to_cut(|_| true), Some(ip(A)));
        s.release(ip(A)); // the loop cut A's newest job
        assert_eq!(s.next_waiting(), Some(10));
        assert_eq!(s.admit(11, ip(B)), Admission::Wait);
        assert_eq!(s.to_cut(|_| true), Some(ip(A)), "3 against 1");
        s.release(ip(A));
        assert_eq!(s.next_waiting(), Some(11));
        assert_eq!(s.admit(12, ip(B)), Admission::Wait);
        assert_eq!(s.to_cut(|_| true), None, "2 against 2 is fair");
        // With one slot there is nothing to share: the waiter waits.
        let mut s = Slots::new(1, 1);
        assert_eq!(s.admit(1, ip(A)), Admission::Run);
        assert_eq!(s.admit(2, ip(B)), Admission::Wait);
        assert_eq!(s.to_cut(|_| true), None);
    }
}
