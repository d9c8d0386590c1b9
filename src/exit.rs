//! rcc's own exit codes. The compiler's status always passes through unchanged (a signal
//! becomes 128+n, as a shell reports it); these are only for when rcc itself cannot run the
//! compiler at all. Chosen to match distcc's where one exists, so scripts keep working.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Bad arguments to rcc itself (`rcc --unknown`).
pub const BAD_ARGUMENTS: u8 = 101;
/// The compiler could not be found or started.
pub const COMPILER_MISSING: u8 = 110;
/// rcc would have run itself (two masquerade directories on PATH, or `rcc rcc`).
pub const RECURSION: u8 = 111;

/// The exit code a shell would report for this status.
pub fn from_status(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => 128u8.saturating_add(s as u8),
        _ => 1,
    }
}
