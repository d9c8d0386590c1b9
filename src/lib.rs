//! rcc: distributed C/C++ compilation for build farms of small ARM boards.
//!
//! Two binaries share this library: `rcc`, the client a build runs as `CC="rcc gcc"`, and
//! `rccd`, the daemon on every box. The tree is the architecture:
//!
//! | room | job |
//! | --- | --- |
//! | [`client`] | `rcc`: classify, pick a box, send, write the object back, or compile here |
//! | [`daemon`] | `rccd`: one event loop that admits, receives, compiles in a sandbox and answers |
//! | [`wire`] | what travels between them: frames and their size caps, deflate, discovery's probe and reply; bytes in, bytes out |
//! | [`rules`] | pure parsers and deciders, no I/O: a command's options, the host list, the box's argv and paths, includes, dependency files, ELF headers |
//! | [`compiler`] | what counts as a compiler, and who a compiler is (its identity) |
//! | [`sha256`] | content hashes for files shipped by content |
//! | [`fasthash`] | a fast hasher for the scan's maps of paths and names |
//! | [`exit`] | rcc's own exit codes (the compiler's pass through) |
//! | [`sys`] | the only `unsafe`: record locks, pidfds, process-group signals, Landlock, free disk space, discovery's UDP sockets (pktinfo) and the interfaces' addresses |
//!
//! What must never depend on what (`tests/layering.rs` checks it): `rules` and `wire` do no
//! I/O; `client` and `daemon` never import each other; only `daemon::event_loop` names mio;
//! only [`sys`] holds `unsafe` (the compiler checks it: `sys` alone allows it).

#![deny(unsafe_code)]

pub mod client;
pub mod compiler;
pub mod daemon;
pub mod exit;
pub mod fasthash;
pub mod rules;
#[cfg(test)]
mod scratch;
pub mod sha256;
pub mod sys;
pub mod wire;
