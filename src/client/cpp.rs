//! Preprocessing here: at most `limit` preprocessors (or scans) at once, each holding a
//! `slot`; the real compiler with `-E` (arguments from `args::Plan`), its output read from a
//! pipe piece by piece and sent to a box as it comes (`Client::stream_cpp`), its diagnostics
//! going straight to the user's stderr (so a `#warning` or a missing header is reported
//! once, exactly as gcc reports it). A source already preprocessed is read as it is
//! (`Client::read_preprocessed`).

use super::pick::SlotLock;
use super::remote::{self, Accepted, Failure};
use super::state::State;
use super::{ms, names, Client};
use crate::rules::args::Plan;
use crate::rules::hosts::HostList;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How many preprocessors run at once here (`--localslots_cpp=N`, else twice the local
/// slots, at least 2): preprocessing is the master's main cost for a remote job, and a
/// `make -j` far above the farm's slots must not flood the master with preprocessors.
/// Scanning a job that ships is bounded the same way.
pub(super) fn limit(list: &HostList) -> u32 {
    list.local_slots_cpp.unwrap_or_else(|| {
        list.local_slots
            .unwrap_or_else(|| crate::sys::online_cpus() as u32)
            .saturating_mul(2)
            .max(2)
    })
}

/// One of `limit` preprocessing slots, waited for. `Err`: compile locally.
pub(super) fn slot(state: &State, limit: u32) -> Result<SlotLock, String> {
    state
        .lock_cpp(limit, Instant::now() + Duration::from_secs(600))
        .map_err(|e| format!("cannot lock a preprocessing slot: {e}"))
}

/// What the reading thread has read and not yet handed over.
type Queue = (VecDeque<Vec<u8>>, Option<io::Result<u8>>);

/// The receiving end of `Stream::read_ahead`.
pub struct Pieces(Arc<(Mutex<Queue>, Condvar)>);

impl Pieces {
    /// The next piece, or the end; waits for the reading thread.
    pub fn recv(&self) -> Event {
        let (lock, cv) = &*self.0;
        let mut q = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(p) = q.0.pop_front() {
                return Event::Piece(p);
            }
            if let Some(end) = q.1.take() {
                return Event::End(end);
            }
            q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// What the reading thread reports.
pub enum Event {
    /// The next piece of output.
    Piece(Vec<u8>),
    /// The preprocessor ended with this exit code (or could not be read).
    End(io::Result<u8>),
}

/// A preprocessor's diagnostics held back: an unnamed file (`O_TMPFILE`, gone with its
/// last fd) and the preprocessor's stderr into it. `None` where no such file can be made.
pub fn hold_diagnostics() -> Option<(std::fs::File, Stdio)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(std::env::temp_dir())
        .ok()?;
    let into = f.try_clone().ok()?;
    Some((f, Stdio::from(into)))
}

/// What a preprocessor wrote into a file from `hold_diagnostics`.
pub fn held(mut f: std::fs::File) -> Vec<u8> {
    use std::io::Seek;
    let mut said = Vec::new();
    let _ = f.rewind().and_then(|_| f.read_to_end(&mut said));
    said
}

/// A running preprocessor.
pub struct Stream {
    child: Child,
    out: Option<ChildStdout>,
    buf: Vec<u8>,
}

impl Stream {
    /// Starts the preprocessor, its diagnostics going to `stderr` (the user's, or a file
    /// that holds them until it is known whether they are the user's).
    pub fn start(compiler: &Path, cpp_args: &[OsString], stderr: Stdio) -> io::Result<Stream> {
        let mut child = Command::new(compiler)
            .args(cpp_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let out = child.stdout.take();
        Ok(Stream {
            child,
            out,
            buf: Vec::new(),
        })
    }

    /// The next piece of output, `size` bytes unless the output ends first; empty at the end.
    pub fn next_piece(&mut self, size: usize) -> io::Result<&[u8]> {
        self.buf.resize(size, 0);
        let mut filled = 0;
        if let Some(out) = self.out.as_mut() {
            while filled < size {
                match out.read(&mut self.buf[filled..]) {
                    Ok(0) => {
                        self.out = None;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[..filled])
    }

    /// Reads the output on a thread of its own, in pieces of `size`, so the preprocessor
    /// runs at the speed of the CPU, not of the network that carries its output. `hold` (the
    /// preprocessing slot) is released the moment the preprocessor has exited.
    pub fn read_ahead(mut self, size: usize, hold: impl Send + 'static) -> Pieces {
        let pieces = Pieces(Arc::new((
            Mutex::new((VecDeque::new(), None)),
            Condvar::new(),
        )));
        let shared = pieces.0.clone();
        // A Mutex and a Condvar rather than a channel: the same job in less code, which
        // counts on a box-sized binary.
        let post = move |e: Event| {
            let (lock, cv) = &*shared;
            let mut q = lock.lock().unwrap_or_else(|p| p.into_inner());
            match e {
                Event::Piece(p) => q.0.push_back(p),
                Event::End(code) => q.1 = Some(code),
            }
            cv.notify_one();
        };
        std::thread::spawn(move || {
            loop {
                match self.next_piece(size) {
                    Ok([]) => break,
                    Ok(piece) => post(Event::Piece(piece.to_vec())),
                    Err(e) => return post(Event::End(Err(e))),
                }
            }
            let code = self.wait();
            drop(hold);
            post(Event::End(code));
        });
        pieces
    }

    /// Waits for the preprocessor; its exit code (128+n for a signal). Anything but 0 is
    /// the user's error, already shown on stderr.
    pub fn wait(mut self) -> io::Result<u8> {
        // Drain what is left so the child never blocks on a full pipe.
        if let Some(mut out) = self.out.take() {
            io::copy(&mut out, &mut io::sink())?;
        }
        Ok(crate::exit::from_status(self.child.wait()?))
    }
}

/// The preprocessor's run while streaming to a box.
pub(super) enum Streamed {
    /// The text went to the box (`result` is the box's answer) and is kept for a retry.
    Sent {
        text: Vec<u8>,
        result: Result<(crate::wire::protocol::Done, remote::Traffic), Failure>,
    },
    /// The preprocessor failed: the user's error, already shown; exit with this code.
    UserError(u8),
}

impl Client<'_> {
    /// Runs the preprocessor here and sends its output to the box piece by piece as it
    /// comes, so preprocessing, compressing, the transfer and the box's writing overlap. The
    /// text is kept for another box should this one fail. `Err`: compile locally.
    pub(super) fn stream_cpp(
        &self,
        program: &Path,
        plan: &Plan,
        slot: SlotLock,
        mut accepted: Accepted,
    ) -> Result<Streamed, String> {
        let cpp_args = plan.cpp_args.as_ref().expect("a source to preprocess");
        let t = Instant::now();
        // The preprocessing slot is held while the preprocessor runs, not while its output
        // travels.
        // On directives alone gcc refuses a few things a full preprocessing takes
        // (`__COUNTER__` in an `#if`): its words are held until it is known they are the
        // user's, and if it fails the job compiles here, where gcc says what is wrong once.
        let directives_only = cpp_args.iter().any(|a| a == "-fdirectives-only");
        let (kept, stderr) = match directives_only.then(hold_diagnostics).flatten() {
            Some((file, into)) => (Some(file), into),
            None => (None, Stdio::inherit()),
        };
        let events = Stream::start(program, cpp_args, stderr)
            .map_err(|e| format!("cannot run the preprocessor: {e}"))?
            .read_ahead(remote::PIECE, slot);
        let (text, code, failed) = send_pieces(&events, &mut accepted)?;
        if let Some(f) = kept {
            let said = held(f);
            if code != 0 {
                return Err(format!(
                    "the preprocessor failed on directives alone ({code})"
                ));
            }
            let _ = std::io::stderr().write_all(&said);
        }
        if code != 0 {
            // The user's error, shown once by the preprocessor itself; dropping the
            // connection makes the box throw the partial input away.
            self.log(format!("preprocessor failed with {code}: the user's error"));
            return Ok(Streamed::UserError(code));
        }
        if let Some(why) = unsendable(&text, directives_only) {
            return Err(why);
        }
        self.log(format!(
            "preprocessed {} in {} ms while sending it: {} bytes",
            plan.source.to_string_lossy(),
            ms(t.elapsed()),
            text.len()
        ));
        let result = match failed {
            Some(f) => Err(f),
            None => accepted.finish(),
        };
        Ok(Streamed::Sent { text, result })
    }

    /// The source of a job already preprocessed (`.i`, `.ii`), as a box must compile it.
    /// `Err`: compile locally.
    pub(super) fn read_preprocessed(&self, plan: &Plan) -> Result<Vec<u8>, String> {
        let text = std::fs::read(&plan.source)
            .map_err(|e| format!("cannot read {}: {e}", plan.source.to_string_lossy()))?;
        if crate::compiler::mentions_assembler_include(&text) {
            return Err("the source uses .incbin/.include, which reads files at assembly".into());
        }
        // The box compiles it as `input.i`: the names gcc records go in the text.
        let pwd = names::working_dir(self.env.var_os("PWD").as_deref());
        let source = plan.source.to_str().unwrap_or_default();
        let pwd = pwd.as_ref().map(|p| p.as_os_str().as_bytes());
        Ok(names::as_named(text, source, pwd))
    }
}

/// Sends the preprocessor's output to the box as it comes, and keeps all of it: the text,
/// the preprocessor's exit code, and how the box failed if it did (the text is then still
/// read whole, for the next box).
fn send_pieces(
    events: &Pieces,
    accepted: &mut Accepted,
) -> Result<(Vec<u8>, u8, Option<Failure>), String> {
    let mut text = Vec::with_capacity(4 << 20);
    let mut failed: Option<Failure> = None;
    let code = loop {
        match events.recv() {
            Event::Piece(piece) => {
                // The first piece starts with the names gcc records (see `names`).
                let piece = if text.is_empty() {
                    names::without_escaped_dir(piece)
                } else {
                    piece
                };
                if failed.is_none() {
                    failed = accepted.send_piece(&piece).err();
                }
                text.extend_from_slice(&piece);
            }
            Event::End(code) => {
                break code.map_err(|e| format!("cannot run the preprocessor: {e}"))?
            }
        }
    };
    Ok((text, code, failed))
}

/// Why text preprocessed here cannot be compiled on a box, if it cannot.
fn unsendable(text: &[u8], directives_only: bool) -> Option<String> {
    if crate::compiler::mentions_assembler_include(text) {
        return Some("the source uses .incbin/.include, which reads files at assembly".into());
    }
    // On directives alone the box's compiler expands the macros, these with its clock and
    // its copy's file time: a build that stamps itself is stamped here, as gcc does.
    if directives_only && crate::rules::includes::names_the_clock(text) {
        return Some(format!("the source {}", crate::rules::includes::CLOCK));
    }
    // And `__BASE_FILE__` to the name of its own copy of the text.
    if directives_only && crate::rules::includes::names_the_base_file(text) {
        return Some(format!("the source {}", crate::rules::includes::BASE_FILE));
    }
    None
}
