//! Local preprocessing: the real compiler with `-E` (arguments from `args::Plan`), its
//! output read from a pipe into memory, its diagnostics going straight to the user's stderr
//! (so a `#warning` or a missing header is reported once, exactly as gcc reports it).

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};

/// What the preprocessor produced.
pub struct Preprocessed {
    /// Exit code (128+n for a signal); anything but 0 is the user's error, already shown.
    pub code: u8,
    pub text: Vec<u8>,
}

pub fn run(compiler: &Path, cpp_args: &[OsString]) -> io::Result<Preprocessed> {
    let mut child = Command::new(compiler)
        .args(cpp_args)
        .env(super::local::SAFEGUARD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut text = Vec::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_end(&mut text)?;
    let status = child.wait()?;
    Ok(Preprocessed {
        code: crate::exit::from_status(status),
        text,
    })
}

/// Whether preprocessed text makes the assembler read a file, which would be the box's file
/// there (distcc checks the same after a failure; we check before sending).
pub fn reads_files_at_assembly(text: &[u8]) -> bool {
    crate::compiler::mentions_assembler_include(text)
}
