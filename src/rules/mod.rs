//! The pure rules: parsers and deciders that read text and give typed answers, with no I/O
//! (no files, no processes, no sockets; `tests/layering.rs` checks it). Both binaries use
//! them: the client to decide what may go to a box, the box to decide what it will run.
//!
//! | file | job |
//! | --- | --- |
//! | [`args`] | compiler argv -> distribute (with the local preprocessing and remote argv) or local, with a reason |
//! | [`ship_args`] | compiler argv -> the box's half of a job that ships its sources (the box preprocesses) |
//! | [`box_args`] | the options a box runs: a request's arguments -> typed, allow-listed options -> the argv the box writes (the client checks its own jobs against them) |
//! | [`box_rules`] | where a box's paths may lead: names resolved as in its mirror, includes that stay inside |
//! | [`hosts`] | the host-list grammar (`RCC_HOSTS`, distcc-compatible) -> host specs, errors per entry |
//! | [`access`] | the CIDR allow-list for the daemon's peers |
//! | [`includes`] | the include directives of a C/C++ file, without preprocessing |
//! | [`macros`] | the names a computed include may take, from every definition of its macros |
//! | [`depfile`] | make dependency files, read and written as gcc writes them |
//! | [`elf`] | what rcc reads in ELF programs: a program's interpreter and its notes |

pub mod access;
pub mod args;
pub mod box_args;
pub mod box_rules;
pub mod depfile;
pub mod elf;
pub mod hosts;
pub mod includes;
pub mod macros;
pub mod ship_args;
