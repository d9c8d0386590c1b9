//! Where a job is admitted, or turned away. A job request passes, in order: the box's
//! health, its compiler (allow-listed, the same identity as the client's, and without
//! Landlock one the assembler's guard can watch), its options (`box_args`), the heat
//! (`thermal`), the memory (`memory`) and its mode; then it asks for a slot, and
//! `admit::Slots` (the pure rule) says run, wait or busy. Slots come back here too: a job
//! reaped, a client gone, the box cooled down, an address holding more than its share.
//! What happens when the box gets hot: the loop samples `thermal` about once a second,
//! `apply_thermal` turns the verdict into the slot limit (and at critical stops running
//! compiles), and `vet` refuses new jobs as throttled until the box cooled down.

use super::admit::Admission;
use super::as_guard;
use super::conn::{Conn, Pending, Phase};
use super::event_loop::Daemon;
use super::job::{self, CompilerProblem};
use super::thermal::ThermalVerdict;
use crate::rules::box_args::BoxArgs;
use crate::wire::protocol::{JobRequest, Mode, RejectReason};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How old a thermal sample may be when a job asks for a slot.
const THERMAL_FRESH: Duration = Duration::from_secs(1);

/// Why a job request is turned away, as the reply says it.
pub(super) struct Refused {
    pub(super) reason: RejectReason,
    pub(super) retry_after_ms: u32,
    pub(super) text: String,
}

fn refused(reason: RejectReason, retry_after_ms: u32, text: impl Into<String>) -> Refused {
    Refused {
        reason,
        retry_after_ms,
        text: text.into(),
    }
}

/// A job request that passed every check: its compiler, its options, and when it passed.
pub(super) struct Vetted {
    pub(super) compiler: PathBuf,
    pub(super) args: BoxArgs,
    pub(super) at: Instant,
}

impl Daemon {
    /// Every check a job request from `peer` passes before it asks for a slot, in order.
    pub(super) fn vet(&mut self, peer: SocketAddr, req: &JobRequest) -> Result<Vetted, Refused> {
        self.check_health();
        if let Some(text) = self.health.refusal() {
            // It advertises no slots; this client did not ask (a `/LIMIT`, or older).
            log::info!("{peer}: refused {}: {text}", req.label);
            return Err(refused(RejectReason::Internal, 10_000, text));
        }
        let compiler = self.vet_compiler(peer, req)?;
        let args = parse_request(req).map_err(|text| {
            log::warn!("{peer}: refused {}: {text}", req.label);
            refused(RejectReason::BadRequest, 0, text)
        })?;
        let at = Instant::now();
        self.vet_load(at, req.mode)?;
        Ok(Vetted { compiler, args, at })
    }

    /// The compiler a request names: allow-listed and found here, one the box can keep to
    /// the job's files, and the same as the client's.
    fn vet_compiler(&mut self, peer: SocketAddr, req: &JobRequest) -> Result<PathBuf, Refused> {
        let (path, identity) = self.compilers.resolve(&req.compiler).map_err(|e| {
            let reason = match e {
                CompilerProblem::NotACompiler(_) => RejectReason::BadRequest,
                _ => RejectReason::NoCompiler,
            };
            log::warn!("{peer}: {e}");
            refused(reason, 0, e.to_string())
        })?;
        if super::sandbox::landlock_in_use().is_none() && !as_guard::can_guard(&req.compiler) {
            // clang assembles inside itself, past the assembler's guard (`as_guard`).
            let text = "this box has no Landlock sandbox, and clang's built-in assembler \
                        cannot be guarded there (.incbin would read a file of the box); \
                        compile clang jobs on a box with Landlock or at home";
            return Err(refused(RejectReason::BadRequest, 0, text));
        }
        if identity != req.identity {
            let text = format!(
                "this box's {} is \"{identity}\", the client's is \"{}\"",
                req.compiler, req.identity
            );
            return Err(refused(RejectReason::CompilerMismatch, 0, text));
        }
        Ok(path)
    }

    /// Whether the box can take a job of `mode` `now`: cool enough, memory enough, and
    /// for a job that ships its sources, a cache to keep them.
    fn vet_load(&mut self, now: Instant, mode: Mode) -> Result<(), Refused> {
        self.refresh_thermal(now);
        if !self.thermal.accepts() {
            // Not a failure: the client sends the job to a cool box at once and skips this
            // one until the hint runs out.
            let text = self.thermal.describe();
            let after = self.thermal.retry_after().as_millis().min(u32::MAX as u128) as u32;
            self.slots.counters.throttled += 1;
            return Err(refused(RejectReason::Throttled, after, text));
        }
        self.memory.sample(now);
        if let Some(text) = self.memory.refuse() {
            // Busy, not failed: the OOM killer would take a compiler (or rccd) instead.
            self.slots.counters.busy += 1;
            self.slots.counters.low_memory += 1;
            return Err(refused(RejectReason::Busy, 2000, text));
        }
        match self.sources_refusal(mode) {
            Some(text) => Err(refused(RejectReason::BadRequest, 0, text)),
            None => Ok(()),
        }
    }

    /// Why a job of `mode` cannot ship its sources here (`None`: it can, or it does not).
    /// "unknown job mode" makes a client send this box preprocessed jobs for a while.
    fn sources_refusal(&self, mode: Mode) -> Option<String> {
        if mode != Mode::Sources || self.cache.is_some() {
            return None;
        }
        Some(match &self.cache_error {
            Some(why) => format!(
                "unknown job mode: this box cannot keep shipped files ({why}), so it takes \
                 preprocessed jobs only"
            ),
            None => "unknown job mode: this box takes preprocessed jobs only (--no-sources)".into(),
        })
    }

    /// A vetted job of connection `c` asks for a slot: it runs (the client is told to send
    /// its input), waits in the queue, or hears busy.
    pub(super) fn admit(&mut self, c: usize, pending: Box<Pending>) {
        let peer = self.conn(c).peer;
        match self.slots.admit(c, peer.ip()) {
            Admission::Run => self.accept_job(c, pending),
            Admission::Wait => {
                self.conn(c).phase = Phase::Waiting(pending);
                self.share_slots();
            }
            Admission::Busy => {
                let text = if self.slots.limit < self.slots.jobs {
                    format!(
                        "{} of {} slots in use while {}",
                        self.slots.held,
                        self.slots.jobs,
                        self.thermal.describe()
                    )
                } else {
                    format!("all {} slots and the queue are full", self.slots.jobs)
                };
                // Counted as busy and rejected by `admit` already.
                self.slots.counters.rejected -= 1;
                self.reject(c, RejectReason::Busy, 500, text);
            }
        }
    }

    /// Connection `c` is done with its slot (if it held one); waiting jobs take what is free.
    pub(super) fn release_slot(&mut self, c: usize) {
        let peer = self.conn(c).peer.ip();
        if std::mem::take(&mut self.conn(c).holds_slot) {
            self.slots.release(peer);
        }
        self.start_waiting_jobs();
    }

    /// Gives every free slot to the waiting job `admit::Slots` picks.
    fn start_waiting_jobs(&mut self) {
        while let Some(w) = self.slots.next_waiting() {
            self.start_waiting(w);
        }
    }

    /// A slot was reserved for waiting connection `w`: accept its job.
    fn start_waiting(&mut self, w: usize) {
        let phase = std::mem::replace(&mut self.conn(w).phase, Phase::Closing);
        match phase {
            Phase::Waiting(p) => self.accept_job(w, p),
            other => {
                // Not waiting any more (cannot happen: waiting conns are forgotten when
                // they leave); give the slot back.
                let peer = self.conn(w).peer.ip();
                self.conn(w).phase = other;
                self.slots.release(peer);
            }
        }
    }

    /// While a request waits, an address holding two slots more than the waiter's gives one
    /// up: its newest job still receiving input is told "busy" (its client tries another
    /// box at once) and the slot goes to the waiter. A running compile is never cut. The
    /// rule is `Slots::to_cut`'s; one master alone keeps every slot (see `admit`).
    pub(super) fn share_slots(&mut self) {
        let receiving = |k: &Conn<_>| k.holds_slot && matches!(k.phase, Phase::Input(_));
        while self.slots.waiting() > 0 {
            let conns = &self.conns;
            let cuttable = |ip| {
                conns
                    .iter()
                    .flatten()
                    .any(|k| k.peer.ip() == ip && receiving(k))
            };
            let Some(ip) = self.slots.to_cut(cuttable) else {
                return;
            };
            let newest = (0..self.conns.len())
                .filter_map(|c| Some((c, self.conns[c].as_ref()?)))
                .filter(|(_, k)| k.peer.ip() == ip && receiving(k))
                .max_by_key(|(_, k)| k.accepted_at)
                .map(|(c, _)| c)
                .expect("to_cut names an address with a job receiving input");
            let text = format!(
                "{ip} holds {} of this box's {} slots while another address waits: the \
                 newest of its jobs still sending input gives its slot up (try another box)",
                self.slots.held_by(ip),
                self.slots.limit
            );
            log::info!("{}: {text}", self.conn(newest).peer);
            self.slots.counters.busy += 1;
            self.slots.counters.given_up += 1;
            self.reject(newest, RejectReason::Busy, 500, text);
        }
    }

    /// Samples the heat again if the last sample is older than `THERMAL_FRESH`.
    pub(super) fn refresh_thermal(&mut self, now: Instant) {
        if now.duration_since(self.thermal.last_sample()) >= THERMAL_FRESH {
            self.thermal.sample(now);
            self.apply_thermal();
        }
    }

    /// Carries the thermal verdict into the slot limit; at critical also stops running
    /// compiles (their clients retry them elsewhere).
    pub(super) fn apply_thermal(&mut self) {
        let before = self.slots.limit;
        self.slots.limit = self.thermal.effective_slots(self.slots.jobs);
        if self.slots.limit != before {
            log::info!(
                "slots now {} of {} ({})",
                self.slots.limit,
                self.slots.jobs,
                self.thermal.describe()
            );
        }
        if self.thermal.verdict() == ThermalVerdict::Critical {
            for conn in self.conns.iter().flatten() {
                if let Some(job) = &conn.job {
                    if job.status.is_none() {
                        log::warn!(
                            "{}: stopping {}: {}",
                            conn.peer,
                            job.label,
                            self.thermal.describe()
                        );
                        job.kill();
                    }
                }
            }
        }
        // A slot may have opened for a waiting request (the box cooled down).
        self.start_waiting_jobs();
    }
}

/// What a request asks the box to run, parsed into types: its options (`BoxArgs`, in the
/// forms its mode allows), its extensions and its working directory, which reaches the
/// compiler's argv in a prefix map (a sources job's is checked again with its manifest). No
/// string of the request reaches the compiler as it came.
fn parse_request(req: &JobRequest) -> Result<BoxArgs, String> {
    if !req.cwd.is_empty() {
        std::str::from_utf8(&req.cwd)
            .map_err(|_| "is not UTF-8".to_string())
            .and_then(super::tree::check_path)
            .map_err(|e| format!("the working directory {e}"))?;
    }
    let args = BoxArgs::parse(&req.args).map_err(|e| e.to_string())?;
    if req.mode == Mode::Sources {
        args.check_for_sources().map_err(|e| e.to_string())?;
    }
    // A sources job's input is named by its manifest, not by an extension.
    let input_ext = (req.mode == Mode::Preprocessed).then_some(req.input_ext.as_str());
    job::check_exts(input_ext, &req.output_ext)?;
    Ok(args)
}
