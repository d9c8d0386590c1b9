//! What one try on a box came to: what the box's answer means (`judge`, which does no I/O),
//! and what becomes of it here — the `.d` and the object written (`deliver`), the box's
//! words relayed, the box backed off or marked (`on_reject`) — and so what the job does
//! next (`Next`, which the decision flow in `mod.rs` follows).

use super::output::{relay, write_atomically};
use super::remote::{Failure, Traffic};
use super::ship::Shipment;
use super::state::{Mark, Notice, State};
use super::{ms, Client, Next};
use crate::rules::args::Plan;
use crate::rules::hosts::HostSpec;
use crate::wire::protocol::{Done, Exit, JobRequest, Reject, RejectReason};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// One try of a job on a box: when it began, how much input it carried, and the sources it
/// shipped (if it did).
pub(super) struct Attempt<'a> {
    pub started: Instant,
    pub input_len: usize,
    pub shipped: Option<&'a Shipment>,
}

/// What a box's answer means for the job.
#[derive(Debug)]
enum Verdict<'a> {
    /// The box compiled it: the object, and the box's dependency file when the job asked
    /// for one.
    Compiled {
        done: &'a Done,
        object: &'a [u8],
        deps: Option<&'a [u8]>,
    },
    /// The box said no (`on_reject` says what that means).
    Rejected(&'a Reject),
    /// The box's fault (the connection, the protocol, its compiler crashing): back it off
    /// and try another. The words are for the log.
    BoxFailed(String),
    /// The job's: compile it here, for this reason.
    Local(String),
}

/// What the answer from the box at `addr` means for a job whose output has suffix
/// `output_ext` and that asked for a dependency file if `wants_deps`.
fn judge<'a>(
    addr: &str,
    answer: &'a Result<(Done, Traffic), Failure>,
    output_ext: &str,
    wants_deps: bool,
) -> Verdict<'a> {
    let done = match answer {
        Ok((done, _)) => done,
        Err(Failure::Rejected(r)) => return Verdict::Rejected(r),
        Err(f) => return Verdict::BoxFailed(f.to_string()),
    };
    let output = |ext: &str| {
        done.outputs
            .iter()
            .find(|(n, _)| n == ext)
            .map(|(_, d)| d.as_slice())
    };
    match done.exit {
        Exit::Code(0) => {
            let Some(object) = output(output_ext) else {
                // The compiler wrote nothing (e.g. `-Wa,--version`): the job's doing, not
                // the box's, so no backoff; the real thing runs here.
                return Verdict::Local(format!("{addr}: the compiler wrote no output"));
            };
            let deps = match (wants_deps, output("d")) {
                (false, _) => None,
                (true, Some(text)) => Some(text),
                (true, None) => {
                    return Verdict::Local(format!("{addr}: no dependency file came back"))
                }
            };
            Verdict::Compiled { done, object, deps }
        }
        // gcc exits 1 for errors in the user's code. The box's words lack the source
        // excerpts (it has only the preprocessed text), and a few warnings only fire on
        // unpreprocessed source (`-Wimplicit-fallthrough` comments under `-Werror`), so the
        // verdict and the diagnostics come from the real compile here; the box is not to
        // blame.
        Exit::Code(1) => Verdict::Local(format!(
            "{addr} reported errors; compiling here for gcc's own words"
        )),
        // Anything else (an internal compiler error, a compiler killed on the box by the OOM
        // killer or a signal) is the box's problem: the job goes elsewhere.
        other => Verdict::BoxFailed(format!("compiler ended with {other:?}")),
    }
}

/// Writes what the box at `addr` made: the dependency file first (make trusts the object's
/// time, so by the time the object is there, so is the list of what it was made from), then
/// the object. `Err`: compile here, for this reason.
fn deliver(
    addr: &str,
    plan: &Plan,
    shipped: Option<&Shipment>,
    object: &[u8],
    deps: Option<&[u8]>,
) -> Result<(), String> {
    if let (Some(sh), Some(text)) = (shipped, deps) {
        sh.depfile(&String::from_utf8_lossy(text))
            .and_then(|(file, text)| {
                write_atomically(Path::new(&file), text.as_bytes())
                    .map_err(|e| format!("cannot write {file}: {e}"))
            })
            .map_err(|e| format!("{addr}: {e}"))?;
    }
    write_atomically(Path::new(&plan.output), object)
        .map_err(|e| format!("cannot write {}: {e}", plan.output.to_string_lossy()))
}

impl Client<'_> {
    /// What one try on one box came to, and what to do next.
    pub(super) fn conclude(
        &self,
        state: &State,
        host: &HostSpec,
        req: &JobRequest,
        plan: &Plan,
        answer: Result<(Done, Traffic), Failure>,
        attempt: Attempt,
    ) -> Next {
        let key = host.key();
        let addr = host.addr_string();
        if let Ok((done, traffic)) = &answer {
            self.log(format!(
                "{addr} compiled {} in {} ms: sent {} B, received {} B, {:?}",
                req.label,
                ms(attempt.started.elapsed()),
                traffic.sent,
                traffic.received,
                done.exit
            ));
        }
        let wants_deps = attempt.shipped.is_some_and(|sh| sh.dep_file.is_some());
        match judge(&addr, &answer, &req.output_ext, wants_deps) {
            Verdict::Rejected(r) => {
                self.log(format!("{addr} said {}: {}", r.reason.name(), r.text));
                self.on_reject(state, host, req, r)
            }
            Verdict::BoxFailed(why) => {
                self.log(format!("{addr}: {why}; backing it off"));
                let _ = state.backoff(&key, SystemTime::now());
                Next::Another
            }
            Verdict::Local(why) => Next::Local(why),
            Verdict::Compiled { done, object, deps } => {
                if let Err(why) = deliver(&addr, plan, attempt.shipped, object, deps) {
                    return Next::Local(why);
                }
                let _ = state.clear_backoff(&key);
                if done.compile_ms > 0 {
                    let now = SystemTime::now();
                    let _ = state.record_speed(&key, done.compile_ms, attempt.input_len, now);
                }
                relay(&done.stdout, &done.stderr);
                Next::Exit(0)
            }
        }
    }

    /// What a box's refusal means: the box is marked, backed off or left alone, and the job
    /// goes to another box or, when the job is what the box refused, here.
    fn on_reject(&self, state: &State, host: &HostSpec, req: &JobRequest, r: &Reject) -> Next {
        let key = host.key();
        let now = SystemTime::now();
        let later = |ms: u32, min: u64| now + Duration::from_millis((ms as u64).max(min));
        match r.reason {
            RejectReason::Busy => {
                let _ = state.mark(Mark::Busy, &key, later(r.retry_after_ms, 200), &r.text);
                Next::Another
            }
            RejectReason::Throttled => {
                let _ = state.mark(Mark::Hot, &key, later(r.retry_after_ms, 1000), &r.text);
                Next::Another
            }
            RejectReason::CompilerMismatch | RejectReason::NoCompiler => {
                let id_key = mismatch_key(&key, &req.identity);
                let until = now + Duration::from_secs(600);
                let _ = state.mark(Mark::Mismatch, &id_key, until, &r.text);
                if state
                    .first_to_say(Notice::Mismatch, &id_key)
                    .unwrap_or(true)
                {
                    eprintln!(
                        "rcc: not using {} for {}: {} (install the same compiler on every box)",
                        host.addr_string(),
                        req.compiler,
                        r.text
                    );
                }
                Next::Another
            }
            // The box refused this job's arguments or input: it is the job, not the box.
            RejectReason::BadRequest => Next::Local(format!("the box refused it: {}", r.text)),
            _ => {
                let _ = state.backoff(&key, now);
                Next::Another
            }
        }
    }
}

/// The key of a `Mark::Mismatch`: box `key` lacks the compiler whose identity is `identity`.
pub(super) fn mismatch_key(key: &str, identity: &str) -> String {
    format!("{key}_{:016x}", crate::fasthash::fnv(identity.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::Exit;

    fn done(exit: Exit, outputs: &[(&str, &[u8])]) -> Result<(Done, Traffic), Failure> {
        let done = Done {
            exit,
            stdout: Vec::new(),
            stderr: Vec::new(),
            outputs: outputs
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_vec()))
                .collect(),
            compile_ms: 0,
        };
        Ok((done, Traffic::default()))
    }

    #[test]
    fn an_answer_is_the_boxs_fault_or_the_jobs() {
        let ok = done(Exit::Code(0), &[("o", b"obj"), ("d", b"a.o: a.c")]);
        match judge("b", &ok, "o", true) {
            Verdict::Compiled { object, deps, .. } => {
                assert_eq!((object, deps), (&b"obj"[..], Some(&b"a.o: a.c"[..])))
            }
            v => panic!("{v:?}"),
        }
        let no_deps = done(Exit::Code(0), &[("o", b"obj")]);
        assert!(matches!(
            judge("b", &no_deps, "o", false),
            Verdict::Compiled { deps: None, .. }
        ));
        let local = |answer, wants| match judge("b", &answer, "o", wants) {
            Verdict::Local(why) => why,
            v => panic!("{v:?}"),
        };
        assert_eq!(local(no_deps, true), "b: no dependency file came back");
        assert_eq!(
            local(done(Exit::Code(0), &[]), false),
            "b: the compiler wrote no output"
        );
        assert!(local(done(Exit::Code(1), &[]), false).contains("reported errors"));
        let crashed = done(Exit::Code(4), &[]);
        assert!(matches!(
            judge("b", &crashed, "o", false),
            Verdict::BoxFailed(_)
        ));
        let broken = Err(Failure::Broken("connection closed".into()));
        assert!(matches!(
            judge("b", &broken, "o", false),
            Verdict::BoxFailed(why) if why == "connection closed"
        ));
    }
}
