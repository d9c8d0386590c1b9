//! What rccd does before it serves and after it stops, apart from the poll: it checks its
//! temp dir, raises its open files limit, says whether compilers run in a sandbox, writes
//! its pid and port files, finds its compilers, opens its file cache, and at the end logs
//! its totals and removes its pid file. A setting that cannot work stops it here with one
//! line; a box that cannot take jobs starts and says why (`health`).

use super::admit::Counters;
use super::cache::Cache;
use super::config::Config;
use super::health::{self, Watch};
use super::job::{self, Compilers};
use crate::sys;
use std::io;
use std::path::Path;

/// The first steps, before the poll: whether the temp dir can be written (`Err`: a given
/// `--temp-dir` cannot), the stop handler, the compile's memory cap, the open files limit
/// and the sandbox, said once.
pub(super) fn prepare(config: &Config) -> io::Result<Watch> {
    let mut health = Watch::new(&config.temp_dir);
    health.set_writable(check_temp_dir(config)?);
    sys::install_stop_handler();
    job::set_memory_cap(config.job_mem_max_kib.saturating_mul(1024));
    raise_fd_limit(config);
    log_sandbox();
    Ok(health)
}

/// Raises the open files limit, and says when it is too low for `--max-connections`.
fn raise_fd_limit(config: &Config) {
    match sys::raise_fd_limit() {
        // A connection holds up to four fds (socket, two pipes, pidfd).
        Ok(n) if (n as usize) < config.max_connections * 4 + 64 => log::warn!(
            "open files limited to {n}: fewer than --max-connections {} may be served \
             (raise LimitNOFILE or ulimit -n)",
            config.max_connections
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot raise the open files limit: {e}"),
    }
}

/// Says what keeps a compile to its own files on this box.
fn log_sandbox() {
    match super::sandbox::landlock_in_use() {
        Some(v) => log::info!(
            "compilers run in a Landlock sandbox (ABI {v}): they run only their own \
             toolchain, read only the system's libraries, their toolchain and their job's \
             files, and write only their job dir"
        ),
        None => log::warn!(
            "compilers run without a Landlock sandbox (this kernel has none, or a test turned \
             it off): they can read every file this user can; the option parser, the include \
             checks and the assembler's guard keep a job to its own files; run rccd as a \
             user without access to secrets (see README, Security)"
        ),
    }
}

/// Writes `--pid-file`, if one was given.
pub(super) fn write_pid_file(config: &Config) -> io::Result<()> {
    if let Some(p) = &config.pid_file {
        std::fs::write(p, format!("{}\n", sys::getpid()))
            .map_err(|e| file_error("--pid-file", p, e))?;
    }
    Ok(())
}

/// Removes `--pid-file`, if one was given.
pub(super) fn remove_pid_file(config: &Config) {
    if let Some(p) = &config.pid_file {
        let _ = std::fs::remove_file(p);
    }
}

/// The compilers in `--compiler-path`, probed; without one the box takes no jobs.
pub(super) fn find_compilers(config: &Config, health: &mut Watch) -> Compilers {
    let mut compilers = Compilers::new(config.compiler_path.clone());
    compilers.probe_all();
    if let Some(why) = compilers.missing() {
        log::error!(
            "{why} (--compiler-path): rccd runs gcc, g++, cc, c++, clang and clang++ (and \
             their target-prefixed or versioned forms) found there; install one, or point \
             --compiler-path at their directory; until then this box takes no jobs"
        );
        health.set_no_compiler(Some(why));
    }
    compilers
}

/// Writes `port` (the first listener's) to the `--port-file` `p`: after everything else is
/// ready, so a waiting script can connect at once.
pub(super) fn write_port_file(config: &Config, p: &Path, port: u16) -> io::Result<()> {
    let tmp = p.with_extension("tmp");
    let text = format!("{port}\n");
    let written = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, p));
    // In place when rccd gave root up and may not make files beside it (root made
    // the file empty and gave it to rccd's user: `sandbox::drop_root`).
    if let Err(e) = written.or_else(|_| std::fs::write(p, &text)) {
        remove_pid_file(config);
        return Err(file_error("--port-file", p, e));
    }
    Ok(())
}

/// One line for whoever reads the log after a run (the farm bench does).
pub(super) fn log_totals(c: &Counters) {
    log::info!(
        "stopping: {} jobs done, {} failed, {} rejected ({} sent their input too slowly, {} \
         gave their slot to another address); {} shipped their sources, naming {} files of \
         which {} were not cached ({} bytes received); {} bytes in, {} out",
        c.done,
        c.failed,
        c.rejected,
        c.too_slow,
        c.given_up,
        c.sources,
        c.files_named,
        c.files_received,
        c.file_bytes_received,
        c.bytes_in,
        c.bytes_out
    );
}

/// The error that stops rccd when it cannot write the file a `flag` names.
fn file_error(flag: &str, path: &Path, e: io::Error) -> io::Error {
    let path = path.display().to_string();
    let line = super::sandbox::cannot_write_file(flag, &path, &health::said(&e));
    io::Error::new(e.kind(), line)
}

/// Whether rccd can write in its temp dir, by making a file there as the user it serves as.
/// A given `--temp-dir` it cannot write (or that is gone) stops it with one line; for the
/// default one it starts and says why it takes no jobs (`Err`: the reason, for `health`).
fn check_temp_dir(config: &Config) -> io::Result<Result<(), String>> {
    let Err(e) = job::probe_dir(&config.temp_dir) else {
        return Ok(Ok(()));
    };
    let dir = config.temp_dir.display().to_string();
    let why = health::said(&e);
    let user = super::sandbox::user_name();
    let line = super::sandbox::cannot_write(&dir, config.temp_dir_given, &user, &why);
    if config.temp_dir_given {
        // Made for rccd before it gave root up; it will not start.
        super::sandbox::forget_files(config);
        return Err(io::Error::new(e.kind(), line));
    }
    log::error!("{line}; until then this box takes no jobs");
    Ok(Err(format!("cannot write in {dir} ({why})")))
}

/// The file cache, or why there is none (`--no-sources` is no error).
pub(super) fn open_cache(config: &Config, writable: bool) -> (Option<Cache>, Option<String>) {
    let Some((dir, size)) = config.cache.as_ref() else {
        return (None, None);
    };
    match Cache::open(dir, *size) {
        Ok(c) => {
            log::info!(
                "file cache {} holds {} KiB of at most {} KiB ({} MiB, and never more than \
                 {}% of the free space and its own)",
                dir.display(),
                c.used() >> 10,
                c.limit() >> 10,
                size >> 20,
                super::cache::SHARE_PERCENT
            );
            (Some(c), None)
        }
        Err(e) => {
            let why = format!(
                "cannot use --cache-dir {}: {}",
                dir.display(),
                health::said(&e)
            );
            if writable {
                // Preprocessed jobs still work: say why sources jobs do not.
                log::error!("{why}; taking preprocessed jobs only");
            }
            (None, Some(why))
        }
    }
}
