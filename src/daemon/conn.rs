//! One client connection: its buffers, its phase in the conversation, and the job it owns.
//! The event loop says when the socket is readable or writable; this file moves bytes and
//! frames, never blocking (everything stops at `WouldBlock`). The socket is any `Read +
//! Write` (the loop's is a non-blocking TCP stream it registers itself). It also keeps the
//! clock an accepted job's input runs against (`Conn::input_too_slow`).

use super::job::{Job, Spool};
use crate::wire::protocol::{self, JobRequest, Limits, Message};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What an accepted job's input must keep up, from the Accept to its `InputEnd` (a sources
/// job's manifest and files; a preprocessed job's pieces): it may take `INPUT_GRACE` plus a
/// second for every `INPUT_FLOOR` bytes received so far. Silence alone is `--idle-timeout`.
///
/// The grace covers what an honest master does before its first bytes: a sources job's
/// manifest goes right after the Accept, but a preprocessed job's client may first wait for
/// a preprocessing slot and then run the preprocessor, whose first 256 KiB piece of a big
/// C++ unit can take seconds on a loaded master. After that even a compressed stream from a
/// loaded master is far above the floor: 16 KiB/s is 1% of a 100 Mbit link, and level-1
/// deflate of preprocessed text at some 6:1 asks the preprocessor for 100 KiB/s. A peer
/// that trickles a byte a second loses its slot after the grace, not after the idle timeout.
pub const INPUT_GRACE: Duration = Duration::from_secs(10);
/// Bytes a second (16 KiB/s): see `INPUT_GRACE`.
pub const INPUT_FLOOR: u64 = 16 * 1024;

/// Whether `bytes` received `elapsed` after the Accept are below the floor: more time has
/// passed than `INPUT_GRACE` + `bytes / INPUT_FLOOR` seconds.
pub fn below_floor(bytes: u64, elapsed: Duration) -> bool {
    let allowed_ms = INPUT_GRACE.as_millis() as u64 + bytes.saturating_mul(1000) / INPUT_FLOOR;
    elapsed.as_millis() > u128::from(allowed_ms)
}

/// A job request that passed every check, waiting for its slot or its input.
#[derive(Debug)]
pub struct Pending {
    pub req: JobRequest,
    /// Its options, parsed and allow-listed (`box_args`).
    pub args: crate::rules::box_args::BoxArgs,
    pub compiler: PathBuf,
    pub since: Instant,
    /// The input received so far (created with the first piece).
    pub spool: Option<Spool>,
    /// A sources job's files, from its manifest on.
    pub tree: Option<Box<super::sources::Tree>>,
}

#[derive(Debug)]
pub enum Phase {
    /// Waiting for the first frame.
    Hello,
    /// Queued for a slot; nothing sent yet.
    Waiting(Box<Pending>),
    /// Slot held, `Accept` sent, waiting for the input.
    Input(Box<Pending>),
    /// The compiler runs (the job is in `Conn::job`).
    Running { compress: bool },
    /// Write what is pending, then close.
    Closing,
}

/// A connection over socket `S`.
pub struct Conn<S> {
    /// `None` once the client is gone while its compiler is still being reaped.
    pub stream: Option<S>,
    pub peer: SocketAddr,
    pub rbuf: Vec<u8>,
    pub wbuf: Vec<u8>,
    pub wpos: usize,
    pub phase: Phase,
    pub last_io: Instant,
    /// When the peer connected: its hello must be whole within the idle timeout of this, so
    /// a peer that trickles a byte at a time cannot hold a connection open.
    pub opened: Instant,
    pub job: Option<Job>,
    pub holds_slot: bool,
    pub wants_write: bool,
    pub next_heartbeat: Instant,
    /// Bytes read from and written to the peer, for the daemon's totals.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// When the job was accepted, and `bytes_in` then: the input's clock (`input_too_slow`).
    pub accepted_at: Instant,
    pub bytes_at_accept: u64,
}

/// What reading found.
pub enum ReadOutcome {
    /// Got bytes or nothing; the peer is still there.
    Open,
    /// The peer closed its side or the connection broke.
    Closed,
}

impl<S: Read + Write> Conn<S> {
    pub fn new(stream: S, peer: SocketAddr, now: Instant) -> Conn<S> {
        Conn {
            stream: Some(stream),
            peer,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            phase: Phase::Hello,
            last_io: now,
            opened: now,
            job: None,
            holds_slot: false,
            wants_write: false,
            next_heartbeat: now,
            bytes_in: 0,
            bytes_out: 0,
            accepted_at: now,
            bytes_at_accept: 0,
        }
    }

    /// Starts the input's clock: the job was accepted `now`.
    pub fn start_input_clock(&mut self, now: Instant) {
        self.accepted_at = now;
        self.bytes_at_accept = self.bytes_in;
    }

    /// While the input of an accepted job comes: `Some(what the peer did)` once it has
    /// fallen below the floor (see `INPUT_GRACE`), for the Reject's text.
    pub fn input_too_slow(&self, now: Instant) -> Option<String> {
        let bytes = self.bytes_in - self.bytes_at_accept;
        let elapsed = now.duration_since(self.accepted_at);
        below_floor(bytes, elapsed).then(|| {
            format!(
                "the job's input is too slow: sent {bytes} bytes in {:.1} s, below the floor \
                 of {} KiB/s after the first {} s",
                elapsed.as_secs_f64(),
                INPUT_FLOOR / 1024,
                INPUT_GRACE.as_secs()
            )
        })
    }

    /// Reads until the socket would block. Never buffers more than one frame's worth past
    /// what the decoder already accepted: a header over the cap is refused by `next_frame`
    /// before its body is read.
    pub fn read_some(&mut self, now: Instant, limits: &Limits) -> ReadOutcome {
        let Some(stream) = self.stream.as_mut() else {
            return ReadOutcome::Closed;
        };
        let mut chunk = [0u8; 64 * 1024];
        loop {
            // Stop reading once a whole frame is buffered but not yet decoded, so a
            // flood cannot grow the buffer without bound.
            if self.rbuf.len() > limits.max_body + protocol::HEADER_LEN + chunk.len() {
                return ReadOutcome::Open;
            }
            match stream.read(&mut chunk) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    self.bytes_in += n as u64;
                    self.last_io = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    /// The next complete frame in the read buffer, if any.
    pub fn next_frame(&mut self, limits: &Limits) -> Result<Option<Message>, protocol::Error> {
        match protocol::decode(&self.rbuf, limits)? {
            Some((msg, used)) => {
                self.rbuf.drain(..used);
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Queues a frame for writing.
    pub fn send(&mut self, msg: &Message, compress: bool) {
        let level = compress.then_some(crate::wire::compress::DEFAULT_LEVEL);
        self.wbuf.extend_from_slice(&protocol::encode(msg, level));
    }

    /// Writes what it can. `Ok(true)`: everything is written.
    pub fn flush(&mut self, now: Instant) -> io::Result<bool> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(true);
        };
        while self.wpos < self.wbuf.len() {
            match stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    self.bytes_out += n as u64;
                    self.last_io = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Ok(true)
    }

    pub fn pending_write(&self) -> bool {
        self.wpos < self.wbuf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_may_take_the_grace_plus_a_second_per_floor() {
        let s = Duration::from_secs;
        assert!(!below_floor(0, INPUT_GRACE));
        assert!(below_floor(0, INPUT_GRACE + Duration::from_millis(1)));
        // A byte a second never earns its time.
        assert!(below_floor(20, s(20)));
        // 1 MiB buys 64 s past the grace.
        assert!(!below_floor(1 << 20, INPUT_GRACE + s(64)));
        assert!(below_floor(1 << 20, INPUT_GRACE + s(65)));
        assert!(!below_floor(u64::MAX, s(1 << 30)));
    }
}
