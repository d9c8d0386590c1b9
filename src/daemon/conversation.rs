//! The conversation: what a connection says and what the daemon answers. A status request
//! gets the status reply; a job request is vetted and admitted (`gate`), then its input
//! comes (a preprocessed job's pieces spooled to its dir, or a sources job's manifest and
//! the files the box lacks: `sources`), its compiler runs (`job`), and its reply goes back
//! (the object and what the compiler said, or a reject). Each step is a method the loop
//! calls when a frame arrives or a child is done; none touches the poll (`event_loop`
//! registers and writes).

use super::cache::Cache;
use super::conn::{Pending, Phase, ReadOutcome};
use super::event_loop::Daemon;
use super::health::{self, FREE_FLOOR};
use super::job::{self, Job, Spool, Withheld};
use super::sources::{self, Tree};
use super::status;
use crate::sys;
use crate::wire::protocol::{
    Accept, Done, Exit, JobRequest, Manifest, Message, Mode, Reject, RejectReason,
};
use std::io;
use std::time::Instant;

impl Daemon {
    /// Connection `c`'s socket is readable: reads what came, answers each whole frame, and
    /// notices a peer that left.
    pub(super) fn on_readable(&mut self, c: usize) {
        let now = Instant::now();
        let limits = self.config.limits;
        let outcome = self.conn(c).read_some(now, &limits);
        loop {
            let frame = self.conn(c).next_frame(&limits);
            match frame {
                Ok(Some(msg)) => self.on_message(c, msg),
                Ok(None) => break,
                Err(e) => {
                    let peer = self.conn(c).peer;
                    log::warn!("{peer}: {e}");
                    self.reject(c, RejectReason::BadRequest, 0, e.to_string());
                    break;
                }
            }
            if self.conns[c].is_none() || matches!(self.conn(c).phase, Phase::Closing) {
                break;
            }
        }
        if let ReadOutcome::Closed = outcome {
            if self.conns[c].is_some() {
                self.peer_gone(c);
            }
        }
    }

    /// One whole frame from connection `c`: what it means depends on the phase.
    fn on_message(&mut self, c: usize, msg: Message) {
        let phase = std::mem::replace(&mut self.conn(c).phase, Phase::Closing);
        match (phase, msg) {
            (Phase::Hello, Message::StatusRequest) => self.send_status(c),
            (Phase::Hello, Message::JobRequest(req)) => self.on_job_request(c, req),
            (Phase::Input(p), Message::Input(piece)) if p.req.mode == Mode::Preprocessed => {
                self.spool_input(c, p, &piece)
            }
            (Phase::Input(p), Message::InputEnd) if p.req.mode == Mode::Preprocessed => {
                self.start_job(c, *p)
            }
            (Phase::Input(p), Message::Manifest(m))
                if p.req.mode == Mode::Sources && p.tree.is_none() =>
            {
                self.take_manifest(c, p, m)
            }
            (Phase::Input(p), Message::Blob(i, data)) if p.tree.is_some() => {
                self.take_blob(c, p, i, &data)
            }
            (Phase::Input(p), Message::InputEnd) if p.tree.is_some() => self.start_sources(c, *p),
            (phase, msg) => {
                let what = format!("{:?} frame was not expected now", msg.kind());
                self.conn(c).phase = phase;
                self.reject(c, RejectReason::BadRequest, 0, what);
            }
        }
    }

    /// The status reply: slots, compilers, heat, memory, cache and health, as of now.
    fn send_status(&mut self, c: usize) {
        let kv = self.status_kv();
        self.conn(c).send(&Message::Status(kv), false);
        self.flush(c);
    }

    /// What the status reply says (a discovery reply says part of it).
    pub(super) fn status_kv(&mut self) -> Vec<(String, String)> {
        self.check_health();
        let mut kv = status::build(
            &self.slots,
            &self.compilers.identities(),
            &self.identity,
            self.started,
        );
        self.thermal.status(&mut kv);
        self.memory.sample(Instant::now());
        self.memory.status(&mut kv);
        Cache::status(self.cache.as_ref(), &mut kv);
        self.health.status(&mut kv);
        let p = self.probes;
        kv.push(("discovery".into(), self.discovery_state.clone()));
        for (k, v) in [
            ("probes", p.probes),
            ("probes_answered", p.answered),
            ("probes_refused", p.refused),
            ("probes_limited", p.limited),
            ("probes_ignored", p.ignored),
        ] {
            kv.push((k.into(), v.to_string()));
        }
        kv
    }

    /// What a discovery reply is made from: `status_kv` without the counters and the
    /// readings of `/proc` (a datagram costs no file read), health looked at as for a status.
    pub(super) fn advert_kv(&mut self) -> Vec<(String, String)> {
        self.check_health();
        let mut kv = status::advert(
            &self.slots,
            &self.compilers.identities(),
            &self.identity,
            self.started,
        );
        self.thermal.status(&mut kv);
        self.health.status(&mut kv);
        kv
    }

    /// A job request: vetted, then it asks for a slot (`gate`).
    fn on_job_request(&mut self, c: usize, req: JobRequest) {
        let peer = self.conn(c).peer;
        match self.vet(peer, &req) {
            Ok(v) => {
                let pending = Box::new(Pending {
                    req,
                    args: v.args,
                    compiler: v.compiler,
                    since: v.at,
                    spool: None,
                    tree: None,
                });
                self.admit(c, pending);
            }
            Err(r) => self.reject(c, r.reason, r.retry_after_ms, r.text),
        }
    }

    /// The slot is reserved: tell the client to send its input.
    pub(super) fn accept_job(&mut self, c: usize, pending: Box<Pending>) {
        let accept = Accept {
            slots: self.slots.limit as u32,
            running: self.slots.held as u32,
            jobs: self.slots.jobs as u32,
        };
        let now = Instant::now();
        let conn = self.conn(c);
        conn.holds_slot = true;
        conn.last_io = now;
        conn.start_input_clock(now);
        conn.phase = Phase::Input(pending);
        conn.send(&Message::Accept(accept), false);
        self.flush(c);
    }

    /// Writes a piece of the input to the job's dir (made with the first piece).
    fn spool_input(&mut self, c: usize, mut p: Box<Pending>, piece: &[u8]) {
        if p.spool.is_none() {
            match self.new_spool(&p.req.input_ext) {
                Ok(s) => p.spool = Some(s),
                Err(e) => return self.cannot_spool(c, e),
            }
        }
        let spool = p.spool.as_mut().expect("made above");
        if spool.bytes + piece.len() > self.config.limits.max_body {
            let text = format!(
                "the input is larger than this box's limit of {} MiB (--max-body-mib)",
                self.config.limits.max_body >> 20
            );
            return self.reject(c, RejectReason::BadRequest, 0, text);
        }
        let written = match spool.write(piece) {
            // The disk is full: the cache gives room, and the piece is written once more.
            Err(e) if sys::no_space(&e) => {
                self.give_room(piece.len() as u64);
                let spool = p.spool.as_mut().expect("made above");
                spool.rewrite(piece)
            }
            r => r,
        };
        if let Err(e) = written {
            return self.cannot_spool(c, e);
        }
        let conn = self.conn(c);
        conn.last_io = Instant::now();
        conn.phase = Phase::Input(p);
    }

    /// A job's dir and input file; on a full disk the cache gives room first, once.
    fn new_spool(&mut self, input_ext: &str) -> io::Result<Spool> {
        self.seq += 1;
        match Spool::create(&self.config.temp_dir, self.seq, input_ext) {
            Err(e) if sys::no_space(&e) => {
                self.give_room(FREE_FLOOR);
                self.seq += 1;
                Spool::create(&self.config.temp_dir, self.seq, input_ext)
            }
            r => r,
        }
    }

    /// The box cannot hold the input (its temp dir is full or gone): its problem, not the
    /// job's, so the client tries elsewhere and backs this box off for a while.
    fn cannot_spool(&mut self, c: usize, e: io::Error) {
        let text = format!(
            "cannot write the input on this box ({}): {}",
            self.config.temp_dir.display(),
            health::said(&e)
        );
        log::error!("{text}");
        self.box_failed(&text);
        self.reject(c, RejectReason::Internal, 10_000, text)
    }

    /// A sources job's manifest: lay out what the cache has, ask for the rest.
    fn take_manifest(&mut self, c: usize, mut p: Box<Pending>, m: Manifest) {
        self.seq += 1;
        let cache = self.cache.as_ref().expect("sources jobs need the cache");
        // What travels may add up to four inputs' worth.
        let max_bytes = self.config.limits.max_body.saturating_mul(4);
        match Tree::open(
            &self.config.temp_dir,
            self.seq,
            &p.req.cwd,
            m,
            cache,
            &mut self.mirrors,
            max_bytes,
        ) {
            Ok(t) => {
                let need = Message::Need(t.needed().to_vec());
                self.slots.counters.files_named += t.files() as u64;
                self.slots.counters.files_received += t.needed().len() as u64;
                p.tree = Some(Box::new(t));
                let conn = self.conn(c);
                conn.last_io = Instant::now();
                conn.phase = Phase::Input(p);
                conn.send(&need, false);
                self.flush(c);
            }
            Err(r) => self.refuse_sources(c, &p, r),
        }
    }

    fn refuse_sources(&mut self, c: usize, p: &Pending, r: sources::Refusal) {
        let peer = self.conn(c).peer;
        log::warn!("{peer}: refused {}: {}", p.req.label, r.text);
        let after = if r.reason == RejectReason::Internal {
            self.box_failed(&r.text);
            10_000
        } else {
            0
        };
        self.reject(c, r.reason, after, r.text);
    }

    /// One file a sources job's box lacked.
    fn take_blob(&mut self, c: usize, mut p: Box<Pending>, index: u32, data: &[u8]) {
        let cache = self.cache.as_mut().expect("sources jobs need the cache");
        let t = p.tree.as_mut().expect("matched on a tree");
        let before = t.bytes_received();
        let taken = t.blob(index, data, cache);
        self.slots.counters.file_bytes_received += (t.bytes_received() - before) as u64;
        match taken {
            Ok(()) => {
                let conn = self.conn(c);
                conn.last_io = Instant::now();
                conn.phase = Phase::Input(p);
            }
            Err(r) => self.refuse_sources(c, &p, r),
        }
    }

    /// Every file is there: check what they include, and compile.
    fn start_sources(&mut self, c: usize, mut p: Pending) {
        let t = p.tree.take().expect("matched on a tree");
        let launch = match t.finish(&mut self.include_verdicts, &p.args, &p.req.output_ext) {
            Ok(l) => l,
            Err(r) => return self.refuse_sources(c, &p, r),
        };
        self.slots.counters.sources += 1;
        let started = Job::spawn(launch, &p.compiler, &p.req);
        self.run_job(c, started, &p);
    }

    fn start_job(&mut self, c: usize, mut p: Pending) {
        let spool = match p.spool.take() {
            Some(s) => s,
            // An empty input still compiles (to an empty object), as gcc does here.
            None => match self.new_spool(&p.req.input_ext) {
                Ok(s) => s,
                Err(e) => return self.cannot_spool(c, e),
            },
        };
        if spool.reads_files {
            let text = "the input uses .incbin or .include, which would read a file on the box";
            return self.reject(c, RejectReason::BadRequest, 0, text.into());
        }
        let started = Job::start(spool, &p.compiler, &p.args, &p.req);
        self.run_job(c, started, &p);
    }

    /// Watches a started compiler's pipes and exit; a compiler that could not start is the
    /// box's problem (its temp dir), so the client tries elsewhere.
    fn run_job(&mut self, c: usize, started: io::Result<Job>, p: &Pending) {
        let job = match started {
            Ok(j) => j,
            Err(e) => {
                let text = format!(
                    "cannot start the compile on this box ({}): {e}",
                    self.config.temp_dir.display()
                );
                log::error!("{text}");
                self.box_failed(&text);
                return self.reject(c, RejectReason::Internal, 10_000, text);
            }
        };
        log::debug!("{}: compiling {}", self.conn(c).peer, p.req.label);
        let heartbeat = self.config.heartbeat;
        let conn = self.conn(c);
        conn.next_heartbeat = Instant::now() + heartbeat;
        conn.phase = Phase::Running {
            compress: p.req.compress,
        };
        conn.job = Some(job);
        self.watch(c);
    }

    /// Registers the pipes and pidfd of connection `c`'s running child (a job's first, or
    /// Once connection `c`'s child is complete: an audit that passed starts the compile;
    /// anything else ends the job, and its reply goes back (`Done`, or a reject).
    pub(super) fn maybe_finish(&mut self, c: usize) {
        let Some(job) = self.conn(c).job.as_mut().filter(|j| j.is_complete()) else {
            return;
        };
        let (started, label, peak_kib) = (job.started, job.label.clone(), job.peak_kib);
        if peak_kib > 0 {
            self.memory.learn(peak_kib);
        }
        let Some(result) = self.job_result(c) else {
            return;
        };
        let conn = self.conns[c].as_mut().expect("live connection");
        let job = conn.job.as_mut().expect("a complete job");
        if let Some(m) = job.take_mirror() {
            self.mirrors.give(m);
        }
        conn.job = None; // removes the job dir
        let compress = matches!(conn.phase, Phase::Running { compress: true });
        match result {
            Ok(done) => self.reply_done(c, done, compress, started, &label),
            Err(e @ Withheld::Box(_)) => self.reply_box_failed(c, e),
            Err(w) => self.reply_withheld(c, w, &label),
        }
        self.release_slot(c);
        self.check_space();
        if self.conn(c).stream.is_none() {
            self.close(c);
        } else {
            self.flush(c);
        }
    }

    /// What a complete job of connection `c` ends with; `None` when it goes on (its audit
    /// passed and the compile runs) or was dropped (its client left during the audit).
    fn job_result(&mut self, c: usize) -> Option<Result<Done, Withheld>> {
        let max_body = self.config.limits.max_body;
        let conn = self.conns[c].as_mut().expect("live connection");
        let job = conn.job.as_mut().expect("a complete job");
        if !job.auditing() {
            return Some(job.result(max_body));
        }
        if conn.stream.is_none() {
            // The client is gone: nothing to compile for.
            conn.job = None;
            self.release_slot(c);
            self.close(c);
            return None;
        }
        match job.after_audit() {
            Ok(true) => {
                self.watch(c);
                None
            }
            Ok(false) => Some(job.result(max_body)),
            Err(w) => Some(Err(w)),
        }
    }

    /// The compile ended (well or not, as the compiler says): its reply.
    fn reply_done(&mut self, c: usize, done: Done, compress: bool, started: Instant, label: &str) {
        let ok = done.exit == Exit::Code(0);
        let conn = self.conns[c].as_mut().expect("live connection");
        log::info!(
            "{} {} {:?} in {} ms",
            conn.peer,
            label,
            done.exit,
            started.elapsed().as_millis()
        );
        self.slots.finished(ok, started);
        conn.phase = Phase::Closing;
        conn.send(&Message::Done(done), compress);
    }

    /// The box failed the job (its disk, its object): the client tries another box.
    fn reply_box_failed(&mut self, c: usize, e: Withheld) {
        self.slots.counters.failed += 1;
        let text = e.to_string();
        log::error!("{text}");
        // Its free space is read again after the reply (`check_space`).
        self.health.failed(&text);
        let conn = self.conn(c);
        conn.phase = Phase::Closing;
        let reject = Reject {
            reason: RejectReason::Internal,
            retry_after_ms: 10_000,
            text,
        };
        conn.send(&Message::Reject(reject), false);
    }

    /// The job gets no `Done` (it failed its audit, or its words would tell what the box
    /// holds): the box's log says why; the peer hears the same words whatever it was (see
    /// `job::WITHHELD_REPLY`), and compiles it where it was run.
    fn reply_withheld(&mut self, c: usize, w: Withheld, label: &str) {
        let conn = self.conns[c].as_mut().expect("live connection");
        match &w {
            Withheld::Outside(_) => log::warn!("{}: {label}: {w}", conn.peer),
            _ => log::info!("{}: {label}: {w}", conn.peer),
        }
        self.slots.counters.rejected += 1;
        conn.phase = Phase::Closing;
        let reject = Reject {
            reason: RejectReason::BadRequest,
            retry_after_ms: 0,
            text: job::WITHHELD_REPLY.into(),
        };
        conn.send(&Message::Reject(reject), false);
    }

    /// Tells connection `c` no (`reason`, a hint when to try again, and why), gives back
    /// its slot or its place in the queue, and closes once the reply is written.
    pub(super) fn reject(
        &mut self,
        c: usize,
        reason: RejectReason,
        retry_after_ms: u32,
        text: String,
    ) {
        self.slots.counters.rejected += 1;
        if let Phase::Waiting(_) = self.conn(c).phase {
            self.slots.forget(c);
        }
        let conn = self.conn(c);
        conn.phase = Phase::Closing;
        conn.rbuf.clear();
        conn.send(
            &Message::Reject(Reject {
                reason,
                retry_after_ms,
                text,
            }),
            false,
        );
        self.release_slot(c);
        self.flush(c);
    }
}
