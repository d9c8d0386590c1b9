//! rccd, the daemon on every box: one thread, one event loop that owns every socket, every
//! compiler's pipes and every compiler's exit (a pidfd), so a box with 1 GiB of RAM spends
//! it on compilers, not on the daemon.
//!
//! | file | job |
//! | --- | --- |
//! | **the loop** | |
//! | `event_loop.rs` | the poll side: bind, accept, register, read and write sockets, drain pipes, notice exits, fire timers |
//! | `conversation.rs` | what a connection says and what the daemon answers: status, job request, input, compile, reply |
//! | `conn.rs` | one connection: its buffers, its phase, its job, the clock its input runs against |
//! | `gate.rs` | where a job is admitted or turned away, in order: health, compiler, options, heat, memory, mode, slot; and where slots come back |
//! | `admit.rs` | the slot rule, no I/O: run, wait or busy, fair shares between addresses; the counters |
//! | `discovery.rs` | who gets an answer to a discovery probe (allowed, within budget, to an address rccd listens on) and what it says, no I/O; the UDP socket is the loop's |
//! | `startup.rs` | what rccd checks and writes before it serves, and logs when it stops |
//! | `upkeep.rs` | the box looking after itself: health read again, room made on a full disk |
//! | `config.rs` | the resolved configuration the loop runs with |
//! | `config_file.rs` | `/etc/default/rccd` (`--config`) into flags, no I/O |
//! | **a compile** | |
//! | `job.rs` | the compiler allow-list and identities, a preprocessed job's argv, the job dir, the child with its pipes and pidfd, the reply |
//! | `sandbox.rs` | what a compile may run, read and write (its toolchain, probed from the driver), and the user rccd gives root up to |
//! | `as_guard.rs` | without Landlock: gcc's `-wrapper` that reads the assembler's input before the assembler does |
//! | `sources/` | a job that ships its sources: `mod.rs` (from manifest to compile), `manifest.rs` (what a manifest may name), `include_check.rs` (what its files include, judged once per content), `command.rs` (its compiler's argv) |
//! | `audit.rs` | the `-H` preprocessing run before a shipped job whose includes a macro names, its report checked against the mirror |
//! | `tree.rs` | a shipped job's private mirror of the master's paths, linked from the cache |
//! | `cache.rs` | shipped files by content hash: checked, bounded, least recently used out |
//! | **the box's state** | |
//! | `thermal/` | the heat: `sysfs.rs` reads zones, coolers and cpufreq caps into `readings.rs`; `rule.rs` (no I/O) turns them into all slots, fewer, or none; `mod.rs` joins the two |
//! | `memory.rs` | `MemAvailable` against what recent compiles needed: accept or busy |
//! | `health.rs` | ok, full or broken (why), no I/O: what keeps jobs off a box that cannot take them |
//! | `status.rs` | the status reply |
//!
//! Three questions a newcomer asks:
//! - *What happens when a box gets hot?* `thermal/sysfs.rs` reads the zones, cooling devices
//!   and cpufreq caps, `thermal/rule.rs` judges them (ok, warm, throttled, critical). The loop
//!   samples about once a second (`event_loop.rs`, `timers`; `gate.rs` too before a job, if
//!   the sample is older), and `gate.rs` (`apply_thermal`) turns the verdict into the slot
//!   limit: fewer slots while warm, none while throttled, and at critical it kills running
//!   compiles (their clients retry elsewhere). A job that asks meanwhile is refused as
//!   throttled with a hint when to ask again (`gate.rs`, `vet`); the status reply shows
//!   `thermal=` and the slots now.
//! - *Where is a job admitted?* In `gate.rs`: `vet` runs every check in order, `admit` asks
//!   `admit.rs` for a slot (run, wait or busy). The conversation (`conversation.rs`) hands
//!   it the request and sends what it decided.
//! - *Where does a compile's argv get written?* Never from the request's strings:
//!   `crate::rules::box_args` parses the options into typed ones and writes them back out; then
//!   `job.rs` (`Job::start`) adds a preprocessed job's input and output, which are paths of
//!   the box's own, and `sources/command.rs` a shipped job's prefix maps, search paths,
//!   dependency options, source and object; `job.rs` (`Start::spawn`) adds the assembler's
//!   guard where there is no Landlock sandbox.
//!
//! What depends on what: only `event_loop.rs` names mio (its poll, listeners, sockets and
//! the pipes it makes non-blocking); a connection (`Conn`, over any `Read + Write`) and a
//! job (`Job`, whose pipes are plain files) are state machines the loop drives. The rules
//! (`admit`, `discovery`, `health`, `config_file`, `thermal/rule.rs`) do no I/O.

pub mod admit;
pub mod as_guard;
pub mod audit;
pub mod cache;
pub mod config;
pub mod config_file;
pub mod conn;
mod conversation;
pub mod discovery;
pub mod event_loop;
mod gate;
pub mod health;
pub mod job;
pub mod memory;
pub mod sandbox;
pub mod sources;
mod startup;
pub mod status;
pub mod thermal;
pub mod tree;
mod upkeep;

pub use config::Config;

/// Runs the daemon until it is told to stop (SIGTERM/SIGINT) or cannot go on.
pub fn run(config: Config) -> std::io::Result<()> {
    event_loop::run(config)
}
