//! A compiler command line (NUL-separated arguments): the classifier never panics, and every
//! command it sends to a box is one the box accepts — a job rcc sends is never refused for
//! its arguments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|b| *b == 0)
        .take(256)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    if let Ok(plan) = rcc::rules::args::classify(&args) {
        let remote: Vec<Vec<u8>> = plan
            .remote_args
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        if let Err(e) = rcc::rules::box_args::BoxArgs::parse(&remote) {
            panic!("the box refuses what rcc sends for {args:?}: {e}\nremote args {:?}", plan.remote_args);
        }
    }
});
