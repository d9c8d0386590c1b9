//! rcc: distributed C/C++ compilation for build farms of small ARM boards.
//!
//! Two binaries share this library: `rcc`, the client a build runs as `CC="rcc gcc"`, and
//! `rccd`, the daemon on every box. The map of the house (one job per file):
//!
//! | module | job |
//! | --- | --- |
//! | [`client`] | `rcc`: classify, pick a box, send, write the object back, or compile here |
//! | [`daemon`] | `rccd`: one event loop that admits, receives, compiles in a sandbox and answers |
//! | [`protocol`] | the wire format: frames, version, size caps; bytes in, bytes out, no sockets |
//! | [`compress`] | deflate out, inflate in with a hard output limit |
//! | [`compiler`] | what counts as a compiler, and who a compiler is (its identity) |
//! | [`exit`] | rcc's own exit codes (the compiler's pass through) |
//! | [`args`] | compiler argv -> distribute (with the local preprocessing and remote argv) or local, with a reason |
//! | [`ship_args`] | compiler argv -> the box's half of a job that ships its sources (the box preprocesses) |
//! | [`hosts`] | the host-list grammar (`RCC_HOSTS`, distcc-compatible) -> host specs, errors per entry |
//! | [`box_args`] | the options a box runs: a request's arguments -> typed, allow-listed options -> the argv the box writes (the client checks its own jobs against them) |
//! | [`box_rules`] | where a box's paths may lead: names resolved as in its mirror, includes that stay inside |
//! | [`access`] | CIDR allow-list for the daemon's peers |
//! | [`sha256`] | content hashes for files shipped by content |
//! | [`includes`] | the include directives of a C/C++ file, without preprocessing |
//! | [`macros`] | the names a computed include may take, from every definition of its macros |
//! | [`fasthash`] | a fast hasher for the scan's maps of paths and names |
//! | [`depfile`] | make dependency files, read and written as gcc writes them |
//! | [`elf`] | what rcc reads in ELF programs: a program's interpreter and its notes |
//! | [`sys`] | the only `unsafe`: record locks, pidfds, process-group signals, free disk space |
//!
//! What must never depend on what: parsers and deciders do no I/O; `client` and `daemon`
//! never import each other; only `daemon::event_loop` touches mio; only [`sys`] holds
//! `unsafe` (the compiler checks it: `sys` alone allows it).

#![deny(unsafe_code)]

pub mod access;
pub mod args;
pub mod box_args;
pub mod box_rules;
pub mod client;
pub mod compiler;
pub mod compress;
pub mod daemon;
pub mod depfile;
pub mod elf;
pub mod exit;
pub mod fasthash;
pub mod hosts;
pub mod includes;
pub mod macros;
pub mod protocol;
pub mod sha256;
pub mod ship_args;
pub mod sys;
