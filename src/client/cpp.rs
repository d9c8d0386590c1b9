//! Local preprocessing: the real compiler with `-E` (arguments from `args::Plan`), its
//! output read from a pipe piece by piece (so the pieces can travel while it still runs),
//! its diagnostics going straight to the user's stderr (so a `#warning` or a missing header
//! is reported once, exactly as gcc reports it).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};

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
