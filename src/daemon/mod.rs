//! rccd, the daemon on every box: one thread, one mio event loop that owns every socket,
//! every compiler's pipes and every compiler's exit (a pidfd), so a box with 1 GiB of RAM
//! spends it on compilers, not on the daemon.
//!
//! | file | job |
//! | --- | --- |
//! | `config.rs` | the resolved configuration the loop runs with |
//! | `config_file.rs` | `/etc/default/rccd` (`--config`) into flags |
//! | `event_loop.rs` | the poll side, the only file that names mio: accept, register, read, write, timers |
//! | `conversation.rs` | what a connection says and what the daemon answers: status, job request, input, reply |
//! | `gate.rs` | where a job is admitted or turned away, and where slots come back |
//! | `startup.rs` | what rccd checks and writes before it serves, and says when it stops |
//! | `upkeep.rs` | the box looking after itself: health read again, disk room made |
//! | `conn.rs` | one connection's buffers and phase, driven by the loop |
//! | `admit.rs` | slots, the wait queue and the counters |
//! | `job.rs` | compiler allow-list and identity, temp dir, child process in its Landlock sandbox, argv from the typed options (`crate::box_args`) |
//! | `sandbox.rs` | what a compile may run, read and write (its toolchain, probed from the driver), and the user rccd gives root up to |
//! | `as_guard.rs` | without Landlock: gcc's `-wrapper` that reads the assembler's input before the assembler does |
//! | `status.rs` | the status reply |
//! | `health.rs` | ok, full or broken (why): the rule that keeps jobs off a box that cannot take them |
//! | `thermal/` | the heat: `sysfs.rs` reads zones, coolers and cpufreq caps into `readings.rs`; `rule.rs` (no I/O) turns them into accept, fewer, or none; `mod.rs` joins the two |
//! | `memory.rs` | MemAvailable against what recent compiles needed -> accept or busy |
//! | `cache.rs` | sources and headers by content hash, checked, bounded, least recently used out |
//! | `tree.rs` | a job's private mirror of the master's paths, from the cache |
//! | `sources/` | a job that ships its sources: `mod.rs` (the job from manifest to compile), `manifest.rs` (what a manifest may name), `include_check.rs` (what its files include, judged once per content), `command.rs` (its compiler's argv) |
//! | `audit.rs` | the `-H` preprocessing run before a job whose includes a macro names, and its report checked against the mirror |

pub mod admit;
pub mod as_guard;
pub mod audit;
pub mod cache;
pub mod config;
pub mod config_file;
pub mod conn;
mod conversation;
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
