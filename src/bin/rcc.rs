//! rcc: the client. A shell around `client::run`, which decides everything.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    ExitCode::from(rcc::client::run(argv, &rcc::client::ProcessEnv))
}
