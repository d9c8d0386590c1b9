//! Local preprocessing: the real compiler with `-E` (arguments from `args::Plan`), its
//! output read from a pipe piece by piece (so the pieces can travel while it still runs),
//! its diagnostics going straight to the user's stderr (so a `#warning` or a missing header
//! is reported once, exactly as gcc reports it).

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::Receiver;

/// What the reading thread reports.
pub enum Event {
    /// The next piece of output.
    Piece(Vec<u8>),
    /// The preprocessor ended with this exit code (or could not be read).
    End(io::Result<u8>),
}

/// A running preprocessor.
pub struct Stream {
    child: Child,
    out: Option<ChildStdout>,
    buf: Vec<u8>,
}

impl Stream {
    pub fn start(compiler: &Path, cpp_args: &[OsString]) -> io::Result<Stream> {
        let mut child = Command::new(compiler)
            .args(cpp_args)
            .env(super::local::SAFEGUARD, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
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
    pub fn read_ahead(mut self, size: usize, hold: impl Send + 'static) -> Receiver<Event> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            loop {
                match self.next_piece(size) {
                    Ok([]) => break,
                    Ok(piece) => {
                        if tx.send(Event::Piece(piece.to_vec())).is_err() {
                            break; // the sender gave up; still reap the child below
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Event::End(Err(e)));
                        return;
                    }
                }
            }
            let code = self.wait();
            drop(hold);
            let _ = tx.send(Event::End(code));
        });
        rx
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

/// Whether preprocessed text makes the assembler read a file, which would be the box's file
/// there (distcc checks the same after a failure; we check before the box compiles).
pub fn reads_files_at_assembly(text: &[u8]) -> bool {
    crate::compiler::mentions_assembler_include(text)
}
