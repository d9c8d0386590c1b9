//! The only file with `unsafe` and raw libc calls. Each block says why it is sound.
//!
//! Everything here is a thin, typed wrapper: record locks for the client's slot files,
//! pidfds, process-group signals, discovery's UDP sockets (which local address a datagram
//! came to, which one a reply leaves from) and the interfaces' addresses, the Landlock
//! sandbox for the daemon's children and the daemon's giving up of root, and a few facts about the machine (online CPUs, its SHA-256
//! instructions). Which rules a compile's sandbox holds and whom rccd runs as are decided in
//! `daemon::sandbox`. Callers never see a raw pointer.

#![allow(unsafe_code)]

/// An ELF note as the linker lays it out: sizes, type, the owner's name and the
/// description, each padded to 4 bytes.
#[repr(C, align(4))]
pub struct Note {
    namesz: u32,
    descsz: u32,
    kind: u32,
    name: [u8; 4],
    desc: [u8; 8],
}

pub const RCC_NOTE_OWNER: &[u8] = b"rcc";
pub const RCC_NOTE_KIND: u32 = 0x0052_4343;
pub const RCC_NOTE_DESC: [u8; 8] = *b"client\0\0";

/// The note that makes an rcc binary known as one to another rcc (`client::local`),
/// whatever its name or path. In the `PT_NOTE` segment: notes are never garbage-collected,
/// and `client::run` names it. `link_section` is why it lives here: placing data by hand is
/// the linker's business, and the compiler counts it as unsafe code.
#[link_section = ".note.rcc"]
#[used]
pub static RCC_NOTE: Note = Note {
    namesz: 4,
    descsz: RCC_NOTE_DESC.len() as u32,
    kind: RCC_NOTE_KIND,
    name: *b"rcc\0",
    desc: RCC_NOTE_DESC,
};

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Tries to take an exclusive open-file-description lock (`F_OFD_SETLK`) on the whole file
/// without waiting. Returns `Ok(false)` when someone else holds it. The kernel drops the
/// lock when the file is closed or the process exits, so a crashed rcc never leaves a stale
/// lock; unlike classic `F_SETLK` locks, closing some other fd of the same file in the same
/// process does not silently drop it.
pub fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = 0;
    fl.l_len = 0;
    fl.l_pid = 0; // required by OFD locks
                  // SAFETY: the fd is valid for the lifetime of `file`; `fl` is a valid flock struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Opens a pidfd for a child we spawned and have not reaped yet; it turns readable when
/// the child exits. Needs Linux 5.3+ (Armbian's kernels are 6.x).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Bounds the child `cmd` starts, and everything it starts: no file written past
/// `file_bytes` (RLIMIT_FSIZE: the write fails with EFBIG, or SIGXFSZ ends the writer), no
/// more than `data_bytes` of data held (RLIMIT_DATA: heap and private mappings, where a
/// compiler's memory is; an allocation past it fails, and the compiler says so); 0: no
/// limit. It is also the first the kernel's OOM killer takes (`oom_score_adj` 1000: never
/// rccd before a compiler).
pub fn limit_child(cmd: &mut std::process::Command, file_bytes: u64, data_bytes: u64) {
    use std::os::unix::process::CommandExt;
    let limit = |bytes: u64| libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    let limits = [
        (libc::RLIMIT_FSIZE, file_bytes, limit(file_bytes)),
        (libc::RLIMIT_DATA, data_bytes, limit(data_bytes)),
    ];
    // SAFETY: the closure runs in the forked child before exec and makes only raw syscalls
    // (open, write, close, setrlimit: async-signal-safe, no allocation) on data built before
    // the fork; the path is a NUL-terminated literal.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd >= 0 {
                libc::write(fd, b"1000".as_ptr().cast(), 4);
                libc::close(fd);
            }
            for (resource, bytes, rlimit) in &limits {
                if *bytes != 0 && libc::setrlimit(*resource, rlimit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Sends `sig` to every process in the process group `pgid` (the compiler driver and the
/// cc1/as it forked). A group that is already gone is not an error.
pub fn kill_group(pgid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill with a negative pid signals a process group; no memory is involved.
    let rc = unsafe { libc::kill(-(pgid as libc::pid_t), sig) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Sends `sig` to one process.
pub fn kill(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a pid.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reaps `pid` if it has exited, without blocking: its wait status and the peak resident
/// size (KiB) of it and the children it waited for (cc1 under gcc), which is what a compile
/// needs in memory. `None`: still running.
pub fn reap(pid: u32) -> io::Result<Option<(std::process::ExitStatus, u64)>> {
    use std::os::unix::process::ExitStatusExt;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data that wait4 fills in; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only to the two pointers, which point at live locals.
    let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut usage) };
    match rc {
        0 => Ok(None),
        r if r > 0 => Ok(Some((
            std::process::ExitStatus::from_raw(status),
            usage.ru_maxrss.max(0) as u64,
        ))),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Raises the soft limit on open files to the hard limit and returns it: every connection
/// may hold a socket, two pipes and a pidfd, and the soft limit is often 1024.
pub fn raise_fd_limit() -> io::Result<u64> {
    // SAFETY: rlimit is plain old data; getrlimit/setrlimit only read and write it.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return Err(io::Error::last_os_error());
        }
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(r.rlim_cur as u64)
    }
}

/// Whether a process with this pid exists (it may belong to someone else).
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Number of online CPUs, at least 1.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no memory side effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 {
        1
    } else {
        n as usize
    }
}

/// The CPU this process may use, in hundredths of a CPU: the online CPUs, or less when its
/// cgroup has a CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), as a container or a
/// shared master has.
pub fn cpu_budget_centi() -> u64 {
    let online = online_cpus() as u64 * 100;
    let groups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let read = |p: String| std::fs::read_to_string(p).ok();
    let mut budget = online;
    for line in groups.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let quota = if ctl.is_empty() {
            read(format!("/sys/fs/cgroup{path}/cpu.max")).and_then(|t| quota_v2(&t))
        } else if ctl.split(',').any(|c| c == "cpu") {
            let dir = format!("/sys/fs/cgroup/{ctl}{path}");
            let q = read(format!("{dir}/cpu.cfs_quota_us"));
            let p = read(format!("{dir}/cpu.cfs_period_us"));
            q.zip(p).and_then(|(q, p)| quota_v1(&q, &p))
        } else {
            None
        };
        budget = budget.min(quota.unwrap_or(online));
    }
    budget
}

/// `cpu.max` ("50000 100000", or "max 100000") as hundredths of a CPU.
fn quota_v2(text: &str) -> Option<u64> {
    let mut it = text.split_whitespace();
    quota_v1(it.next()?, it.next()?)
}

/// `cpu.cfs_quota_us` (-1 for none) over `cpu.cfs_period_us`, in hundredths of a CPU; no
/// number ("max", "-1") is no quota.
fn quota_v1(quota: &str, period: &str) -> Option<u64> {
    let quota: u64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    (period > 0).then(|| quota * 100 / period)
}

/// Tasks running or runnable on this machine now (the fourth field of /proc/loadavg,
/// "3/412"), this process included.
pub fn running_tasks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    running_of(&text)
}

fn running_of(loadavg: &str) -> Option<u64> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Waits up to `timeout_ms` for `fd` to turn readable (a listener with a connection
/// waiting). `Ok(false)`: the time passed, or a signal came first.
pub fn wait_readable(fd: &impl AsRawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and its count.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(err)
        };
    }
    Ok(rc > 0)
}

/// Tells when a file in a directory that was open for writing is closed (inotify's
/// `IN_CLOSE_WRITE`): a slot's holder closing its lock file, or exiting, which closes it too.
pub struct CloseWatch(OwnedFd);

impl CloseWatch {
    pub fn new(dir: &std::path::Path) -> io::Result<CloseWatch> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: no pointers; the fd returned is ours alone.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid fd and a NUL-terminated path that outlives the call.
        let wd =
            unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_CLOSE_WRITE) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(CloseWatch(fd))
    }

    /// Waits up to `timeout_ms` for the close of a file whose name `wanted` accepts, and
    /// forgets the closes seen so far; whether there was one. Closes of other files do not
    /// end the wait: the lock directory also holds what every waiter opens and closes as
    /// it looks, which would otherwise wake all the others for nothing.
    pub fn wait(&self, timeout_ms: i32, wanted: &dyn Fn(&[u8]) -> bool) -> io::Result<bool> {
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms.max(0) as u64);
        let mut buf = [0u8; 4096];
        // Bounded by the deadline, and each pass by the queue (max_queued_events, 16384 by
        // default).
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !wait_readable(&self.0, left.as_millis() as i32)? {
                return Ok(false);
            }
            let mut seen = false;
            for _ in 0..1024 {
                // SAFETY: `buf` is writable for its whole length.
                let n =
                    unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    break;
                }
                seen |= event_names(&buf[..n as usize]).any(wanted);
            }
            if seen {
                return Ok(true);
            }
            if left.is_zero() {
                return Ok(false);
            }
        }
    }
}

/// The names in a buffer of inotify events (each a 16-byte header, whose last field is the
/// length of the NUL-padded name that follows).
fn event_names(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(buf.get(12..16)?.try_into().ok()?) as usize;
        let name = buf.get(16..16 + len)?;
        buf = &buf[16 + len..];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some(&name[..end])
    })
}

/// The user id of the process at the other end of a Unix socket (`SO_PEERCRED`).
pub fn peer_uid(socket: &impl AsRawFd) -> io::Result<u32> {
    // SAFETY: `ucred` is a plain C struct; all-zero is valid and the kernel fills it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the fd is valid while `socket` lives; `cred` and `len` describe a buffer of
    // the size the option needs.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// This process's real user id.
pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// Closes every fd above stderr this process inherited: a long-lived process started by
/// a build must not keep the build's pipes (make's output capture) open after its parent
/// is gone. Call it first thing, before opening anything of one's own.
pub fn close_inherited_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    // Collected first: the directory's own fd is among them while it is read.
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: nothing in this process owns these fds yet (see above); a stale number
        // (the read_dir's, already closed) gives EBADF, which is harmless.
        unsafe { libc::close(fd) };
    }
}

/// The current process id.
pub fn getpid() -> u32 {
    std::process::id()
}

/// Resident set size of this process in KiB, from /proc/self/statm (for status replies).
pub fn rss_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory side effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * (page.max(4096) as u64) / 1024)
}

/// Bytes an unprivileged user may still write on the file system holding `dir`
/// (`f_bavail`, not the root-reserved `f_bfree`: rccd gives root up).
pub fn free_space(dir: &std::path::Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: `statvfs` is a plain C struct; all-zero is a valid value the call fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a valid, writable struct.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Whether an error says the disk or the user's quota is full: what a file cache can make
/// room for.
pub fn no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Makes SIGTERM and SIGINT set a flag (see `stop_requested`) instead of killing the
/// process, so the daemon can kill its compilers and remove its temp dirs first. A
/// blocking `epoll_wait` returns `EINTR` when the signal arrives.
pub fn install_stop_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; sigaction
    // is given a zeroed, then filled struct.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_stop_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}

/// Whether SIGTERM or SIGINT arrived since `install_stop_handler`.
pub fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// A Landlock ruleset (Linux 5.13+, unprivileged): a compiler started inside it may run only
/// the files given `Access::Run`, read only what it is given, change files only under what is
/// given `Access::Write` — whatever the job's sources include, its assembler `.incbin`s or a
/// smuggled `-wrapper` tries to start. On newer kernels it also cannot rename across
/// directories, truncate or ioctl devices outside its grants (ABI 2, 3, 5), open TCP
/// connections or listen (ABI 4), nor signal or reach through an abstract Unix socket any
/// process outside it, rccd included (ABI 6). The fd is kept open until the child entered it.
pub struct Sandbox {
    fd: OwnedFd,
}

/// What a sandbox rule lets its path (and everything under a directory) be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read and execute a file (a program, or the ELF interpreter the kernel opens for it).
    Run,
    /// Read files and list directories.
    Read,
    /// List a directory only; its files cannot be opened.
    List,
    /// Read, create, change, rename and remove files and directories (never execute them).
    Write,
    /// Read and write an existing file (`/dev/null`).
    Device,
}

// Landlock's filesystem rights, by the ABI that introduced them (include/uapi/linux/landlock.h).
const LL_EXECUTE: u64 = 1 << 0;
const LL_WRITE_FILE: u64 = 1 << 1;
const LL_READ_FILE: u64 = 1 << 2;
const LL_READ_DIR: u64 = 1 << 3;
const LL_REMOVE_DIR: u64 = 1 << 4;
const LL_REMOVE_FILE: u64 = 1 << 5;
const LL_MAKE_DIR: u64 = 1 << 7;
const LL_MAKE_REG: u64 = 1 << 8;
const LL_ALL_V1: u64 = (1 << 13) - 1;
const LL_REFER: u64 = 1 << 13; // ABI 2
const LL_TRUNCATE: u64 = 1 << 14; // ABI 3
const LL_IOCTL_DEV: u64 = 1 << 15; // ABI 5
/// The rights a rule on a file (not a directory) may carry.
const LL_FILE_RIGHTS: u64 = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV;
// Network rights (ABI 4) and scopes (ABI 6).
const LL_NET_BIND_TCP: u64 = 1 << 0;
const LL_NET_CONNECT_TCP: u64 = 1 << 1;
const LL_SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const LL_SCOPE_SIGNAL: u64 = 1 << 1;
const LL_CREATE_RULESET_VERSION: u32 = 1;
const LL_RULE_PATH_BENEATH: libc::c_int = 1;

impl Access {
    fn bits(self) -> u64 {
        match self {
            Access::Run => LL_EXECUTE | LL_READ_FILE,
            Access::Read => LL_READ_FILE | LL_READ_DIR,
            Access::List => LL_READ_DIR,
            Access::Write => {
                LL_READ_FILE
                    | LL_READ_DIR
                    | LL_WRITE_FILE
                    | LL_REMOVE_DIR
                    | LL_REMOVE_FILE
                    | LL_MAKE_DIR
                    | LL_MAKE_REG
                    | LL_REFER
                    | LL_TRUNCATE
            }
            Access::Device => LL_READ_FILE | LL_WRITE_FILE | LL_TRUNCATE,
        }
    }
}

/// The filesystem rights a kernel of Landlock ABI `abi` knows: all are handled (denied
/// unless a rule grants them).
fn handled_fs(abi: u32) -> u64 {
    let mut fs = LL_ALL_V1;
    if abi >= 2 {
        fs |= LL_REFER;
    }
    if abi >= 3 {
        fs |= LL_TRUNCATE;
    }
    if abi >= 5 {
        fs |= LL_IOCTL_DEV;
    }
    fs
}

/// `struct landlock_ruleset_attr` as of ABI 6; the kernel is given the prefix its ABI
/// knows (8 bytes before ABI 4, 16 before ABI 6).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

impl RulesetAttr {
    /// Everything ABI `abi` can deny, and the size of the struct that says it.
    fn for_abi(abi: u32) -> (RulesetAttr, usize) {
        let attr = RulesetAttr {
            handled_access_fs: handled_fs(abi),
            handled_access_net: if abi >= 4 {
                LL_NET_BIND_TCP | LL_NET_CONNECT_TCP
            } else {
                0
            },
            scoped: if abi >= 6 {
                LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL
            } else {
                0
            },
        };
        let size = match abi {
            ..=3 => 8,
            4..=5 => 16,
            _ => std::mem::size_of::<RulesetAttr>(),
        };
        (attr, size)
    }
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel offers, or `None` without Landlock (an older kernel,
/// or one built or booted without it).
pub fn landlock_abi() -> Option<u32> {
    // SAFETY: with a null attribute and size 0, this flag only asks for the version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LL_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as u32)
}

impl Sandbox {
    /// A ruleset granting each path its access (a rule on a file keeps only the rights a
    /// file can have). Paths that do not exist are left out. `Ok(None)` when the kernel has
    /// no Landlock.
    pub fn new(rules: &[(&std::path::Path, Access)]) -> io::Result<Option<Sandbox>> {
        let Some(abi) = landlock_abi() else {
            return Ok(None);
        };
        let (attr, size) = RulesetAttr::for_abi(abi);
        // SAFETY: `attr` is a valid ruleset attribute at least `size` bytes long; the kernel
        // reads that prefix and returns a new O_CLOEXEC fd or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this fd and nobody else owns it.
        let sandbox = Sandbox {
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        };
        for &(path, access) in rules {
            let Ok(f) = std::fs::File::options()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(path)
            else {
                continue;
            };
            let mut allowed = access.bits() & attr.handled_access_fs;
            if !f.metadata()?.is_dir() {
                allowed &= LL_FILE_RIGHTS;
            }
            if allowed == 0 {
                continue;
            }
            let rule = PathBeneathAttr {
                allowed_access: allowed,
                parent_fd: f.as_raw_fd(),
            };
            // SAFETY: `rule` is a valid path-beneath attribute; both fds are open.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    sandbox.fd.as_raw_fd(),
                    LL_RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                )
            };
            if rc != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("Landlock rule for {}: {e}", path.display()),
                ));
            }
        }
        Ok(Some(sandbox))
    }

    /// Makes the child `cmd` starts enter the sandbox before it runs the program; it and
    /// everything it starts stay inside. Keep `self` alive until `cmd` has spawned.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let fd = self.fd.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only makes two raw
        // syscalls (async-signal-safe, no allocation); `fd` stays open in the child because
        // the parent holds it until the spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// This process's effective user id (0: it may drop root).
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Gives up root for good, in the order that leaves nothing behind: no supplementary groups,
/// then the group, then the user (after `setuid` the others could no longer be changed).
/// Then checks that every id (real, effective, saved) is the new one and that neither root's
/// user nor its group can be taken back.
pub fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    let fail = |what: &str| {
        let e = io::Error::last_os_error();
        io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    // SAFETY: an empty list (count 0, null pointer) is valid for setgroups.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(fail("setgroups(0)"));
    }
    // SAFETY: plain syscalls on ids; no memory is involved.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err(fail(&format!("setgid({gid})")));
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(fail(&format!("setuid({uid})")));
    }
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: getresuid/getresgid write three ids through pointers to live locals.
    let ok_u = unsafe { libc::getresuid(&mut r, &mut e, &mut s) } == 0 && [r, e, s] == [uid; 3];
    // SAFETY: as above.
    let ok_g = unsafe { libc::getresgid(&mut r, &mut e, &mut s) } == 0 && [r, e, s] == [gid; 3];
    // SAFETY: a null buffer with size 0 only asks for the count.
    let groups = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let supplementary_ok = groups == 0 || (groups == 1 && gid_list_is(gid));
    if !ok_u || !ok_g || !supplementary_ok {
        return Err(io::Error::other(
            "the user and group ids did not all change",
        ));
    }
    if uid != 0 {
        // SAFETY: plain syscalls; each must fail now that root is gone.
        let regained = unsafe { libc::setuid(0) } == 0 || unsafe { libc::seteuid(0) } == 0;
        // SAFETY: as above.
        let regroup = gid != 0 && unsafe { libc::setgid(0) } == 0;
        if regained || regroup {
            return Err(io::Error::other(
                "root could be taken back after dropping it",
            ));
        }
    }
    Ok(())
}

/// Whether the supplementary group list is exactly `[gid]` (some systems report the
/// primary group there).
fn gid_list_is(gid: u32) -> bool {
    let mut one: [libc::gid_t; 1] = [0];
    // SAFETY: the buffer holds one gid and its size is passed.
    let n = unsafe { libc::getgroups(1, one.as_mut_ptr()) };
    n == 1 && one[0] == gid
}

/// SHA-256's rounds over `blocks` (whole 64-byte blocks) with the CPU's own instructions:
/// x86's SHA extensions, or the ARMv8 crypto extensions (the Cortex-A53 of most Amlogic
/// boxes has them). `false`, touching nothing, when the CPU has neither: the caller runs the
/// portable rounds. `k` is SHA-256's round constants (the caller's, so this file depends on
/// no module of the crate).
pub fn sha256_rounds(state: &mut [u32; 8], blocks: &[u8], k: &[u32; 64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
    {
        // SAFETY: the CPU has every instruction the function is compiled for (checked above).
        unsafe { x86::compress(state, blocks, k) };
        return true;
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("sha2") {
        // SAFETY: the CPU has the SHA-256 instructions (checked above).
        unsafe { arm::compress(state, blocks, k) };
        return true;
    }
    let _ = (state, blocks, k);
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The rounds with the SHA extensions. The state travels as two vectors, ABEF and CDGH,
    /// the order `sha256rnds2` wants; the message schedule rolls through four vectors.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn compress(state: &mut [u32; 8], blocks: &[u8], k: &[u32; 64]) {
        // Big-endian words: reverse the bytes of each 32-bit lane.
        let swap = _mm_set_epi64x(0x0c0d0e0f_08090a0b, 0x04050607_00010203);
        // SAFETY (all loads and stores): unaligned ops on in-bounds memory — `state` is 8
        // words, each block 64 bytes, `k` 64 words.
        let dcba = _mm_loadu_si128(state.as_ptr().cast());
        let hgfe = _mm_loadu_si128(state.as_ptr().add(4).cast());
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        let mut abef = _mm_alignr_epi8(cdab, efgh, 8);
        let mut cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
        for block in blocks.chunks_exact(64) {
            let (abef0, cdgh0) = (abef, cdgh);
            let p: *const __m128i = block.as_ptr().cast();
            let mut w = [
                _mm_shuffle_epi8(_mm_loadu_si128(p), swap),
                _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), swap),
                _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), swap),
                _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), swap),
            ];
            for i in 0..16 {
                let at = i % 4;
                if i >= 4 {
                    // w[at] holds words t-16.., the others t-12.., t-8.., t-4.. in turn.
                    let (old, next, prev2, prev) =
                        (w[at], w[(at + 1) % 4], w[(at + 2) % 4], w[(at + 3) % 4]);
                    let t = _mm_add_epi32(
                        _mm_sha256msg1_epu32(old, next),
                        _mm_alignr_epi8(prev, prev2, 4),
                    );
                    w[at] = _mm_sha256msg2_epu32(t, prev);
                }
                let wk = _mm_add_epi32(w[at], _mm_loadu_si128(k.as_ptr().add(4 * i).cast()));
                cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
                abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
            }
            abef = _mm_add_epi32(abef, abef0);
            cdgh = _mm_add_epi32(cdgh, cdgh0);
        }
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgfe = _mm_alignr_epi8(dchg, feba, 8);
        _mm_storeu_si128(state.as_mut_ptr().cast(), dcba);
        _mm_storeu_si128(state.as_mut_ptr().add(4).cast(), hgfe);
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    /// The rounds with the ARMv8 crypto extensions, four at a time.
    #[target_feature(enable = "sha2")]
    pub unsafe fn compress(state: &mut [u32; 8], blocks: &[u8], k: &[u32; 64]) {
        // SAFETY (all loads and stores): in-bounds memory — `state` is 8 words, each block 64
        // bytes, `k` 64 words.
        let mut abcd = vld1q_u32(state.as_ptr());
        let mut efgh = vld1q_u32(state.as_ptr().add(4));
        for block in blocks.chunks_exact(64) {
            let (abcd0, efgh0) = (abcd, efgh);
            let p = block.as_ptr();
            // Big-endian words: reverse the bytes of each 32-bit lane.
            let mut w = [
                vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p))),
                vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p.add(16)))),
                vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p.add(32)))),
                vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p.add(48)))),
            ];
            for i in 0..16 {
                let at = i % 4;
                if i >= 4 {
                    // w[at] holds words t-16.., the others t-12.., t-8.., t-4.. in turn.
                    let t = vsha256su0q_u32(w[at], w[(at + 1) % 4]);
                    w[at] = vsha256su1q_u32(t, w[(at + 2) % 4], w[(at + 3) % 4]);
                }
                let wk = vaddq_u32(w[at], vld1q_u32(k.as_ptr().add(4 * i)));
                let before = abcd;
                abcd = vsha256hq_u32(abcd, efgh, wk);
                efgh = vsha256h2q_u32(efgh, before, wk);
            }
            abcd = vaddq_u32(abcd, abcd0);
            efgh = vaddq_u32(efgh, efgh0);
        }
        vst1q_u32(state.as_mut_ptr(), abcd);
        vst1q_u32(state.as_mut_ptr().add(4), efgh);
    }
}

// ---------------------------------------------------------------- discovery's sockets ---

/// A `SocketAddr` as the kernel takes it, with its length.
fn to_sockaddr(addr: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value of the type.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as _;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as _;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            sin6.sin6_flowinfo = a.flowinfo();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// The address in `ss`, if it is IPv4 or IPv6.
fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<std::net::SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some((ip, u16::from_be(sin.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn set_int_opt(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to an int that outlives the call, with its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A non-blocking UDP socket bound to `addr` for discovery. IPv6 sockets are IPv6 only (an
/// IPv4 probe comes to the IPv4 socket, with its own destination). `pktinfo`: each datagram
/// read with `recv_to` says which local address it came to; `broadcast`: it may send to a
/// broadcast address.
pub fn udp_socket(
    addr: std::net::SocketAddr,
    pktinfo: bool,
    broadcast: bool,
) -> io::Result<std::net::UdpSocket> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: no pointers; the fd returned is ours alone.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned to us and nothing else owns it.
    let sock = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
    if addr.is_ipv6() {
        set_int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    if pktinfo {
        match addr {
            std::net::SocketAddr::V4(_) => set_int_opt(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?,
            std::net::SocketAddr::V6(_) => {
                set_int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?
            }
        }
    }
    if broadcast {
        sock.set_broadcast(true)?;
    }
    let (ss, len) = to_sockaddr(&addr);
    // SAFETY: a valid fd and a sockaddr of `len` bytes that outlives the call.
    let rc = unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// Asks for a receive buffer of `bytes` on `sock` (the kernel caps it at `rmem_max`): room
/// for many small datagrams that arrive at once.
pub fn set_recv_buffer(sock: &impl AsRawFd, bytes: i32) -> io::Result<()> {
    set_int_opt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)
}

/// One datagram as `recv_to` read it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes in the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer (the rest is lost).
    pub truncated: bool,
    pub from: std::net::SocketAddr,
    /// The local address it came to: for IPv4 the address a reply would come from (the
    /// interface's, even for a broadcast); for IPv6 the destination as sent (ff02::1 for a
    /// multicast). `None` without pktinfo.
    pub local: Option<std::net::IpAddr>,
    /// The interface it came in on (0: unknown).
    pub ifindex: u32,
}

/// Reads one datagram from `sock` (made by `udp_socket` with `pktinfo`) into `buf`, with
/// where it came from and to which local address (`recvmsg` with `IP_PKTINFO` /
/// `IPV6_PKTINFO`).
pub fn recv_to(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: an all-zero sockaddr_storage is a valid value of the type.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // Room for one pktinfo control message of either family, aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: an all-zero msghdr is a valid value of the type; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut from as *mut _ as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` points at a live buffer of the length it gives.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = from_sockaddr(&from).ok_or_else(|| io::Error::other("unknown address family"))?;
    let (mut local, mut ifindex) = (None, 0);
    // SAFETY: the kernel filled `msg_controllen` bytes of `control`; CMSG_FIRSTHDR and
    // CMSG_NXTHDR stay within them, and each message's type says what its data holds.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
                let info =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::in_pktinfo);
                let ip = std::net::Ipv4Addr::from(info.ipi_spec_dst.s_addr.to_ne_bytes());
                local = Some(ip.into());
                ifindex = info.ipi_ifindex as u32;
            } else if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
                let info =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::in6_pktinfo);
                local = Some(std::net::Ipv6Addr::from(info.ipi6_addr.s6_addr).into());
                ifindex = info.ipi6_ifindex;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received {
        len: (n as usize).min(buf.len()),
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        from,
        local,
        ifindex,
    })
}

/// Sends `buf` to `to` from the local address `from` (`sendmsg` with `IP_PKTINFO` /
/// `IPV6_PKTINFO`), so a reply comes from the address it names whatever the routing table
/// would pick.
pub fn send_from(
    sock: &impl AsRawFd,
    buf: &[u8],
    to: std::net::SocketAddr,
    from: std::net::IpAddr,
) -> io::Result<usize> {
    let (mut ss, len) = to_sockaddr(&to);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is a valid value of the type; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut ss as *mut _ as *mut libc::c_void;
    msg.msg_namelen = len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    // SAFETY: CMSG_SPACE only computes a size; the control buffer (64 bytes, aligned for
    // cmsghdr) holds one message of either pktinfo, which CMSG_FIRSTHDR then points at.
    unsafe {
        let (level, kind, size) = match from {
            std::net::IpAddr::V4(_) => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                std::mem::size_of::<libc::in_pktinfo>(),
            ),
            std::net::IpAddr::V6(_) => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                std::mem::size_of::<libc::in6_pktinfo>(),
            ),
        };
        msg.msg_controllen = libc::CMSG_SPACE(size as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size as u32) as _;
        match from {
            std::net::IpAddr::V4(a) => {
                let mut info: libc::in_pktinfo = std::mem::zeroed();
                info.ipi_spec_dst.s_addr = u32::from_ne_bytes(a.octets());
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in_pktinfo, info);
            }
            std::net::IpAddr::V6(a) => {
                let mut info: libc::in6_pktinfo = std::mem::zeroed();
                info.ipi6_addr.s6_addr = a.octets();
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in6_pktinfo, info);
            }
        }
    }
    // SAFETY: every pointer in `msg` points at a live buffer of the length it gives.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// One address of a network interface, as `getifaddrs` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub name: String,
    pub index: u32,
    pub up: bool,
    pub loopback: bool,
    pub addr: std::net::IpAddr,
    pub netmask: std::net::IpAddr,
    /// The IPv4 broadcast address, where the interface has one.
    pub broadcast: Option<std::net::Ipv4Addr>,
}

/// Every IPv4 and IPv6 address of this machine's interfaces (`getifaddrs`).
pub fn interfaces() -> io::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: a pointer to our pointer; on success the list is ours until freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let ip_of = |sa: *const libc::sockaddr| -> Option<std::net::IpAddr> {
        if sa.is_null() {
            return None;
        }
        // SAFETY: a non-null sockaddr from getifaddrs; its family says how long it is, and
        // only as much as that family's struct is copied.
        let ss = unsafe {
            let mut ss: libc::sockaddr_storage = std::mem::zeroed();
            let len = match i32::from((*sa).sa_family) {
                libc::AF_INET => std::mem::size_of::<libc::sockaddr_in>(),
                libc::AF_INET6 => std::mem::size_of::<libc::sockaddr_in6>(),
                _ => return None,
            };
            std::ptr::copy_nonoverlapping(sa as *const u8, &mut ss as *mut _ as *mut u8, len);
            ss
        };
        from_sockaddr(&ss).map(|a| a.ip())
    };
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs made, not yet freed.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        let (Some(addr), Some(netmask)) = (ip_of(ifa.ifa_addr), ip_of(ifa.ifa_netmask)) else {
            continue;
        };
        // SAFETY: ifa_name is a NUL-terminated string in the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        let flags = ifa.ifa_flags;
        let broadcast = if flags & libc::IFF_BROADCAST as u32 != 0 {
            match ip_of(ifa.ifa_ifu) {
                Some(std::net::IpAddr::V4(b)) => Some(b),
                _ => None,
            }
        } else {
            None
        };
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(ifa.ifa_name) };
        out.push(IfAddr {
            name: name.to_string_lossy().into_owned(),
            index,
            up: flags & libc::IFF_UP as u32 != 0 && flags & libc::IFF_RUNNING as u32 != 0,
            loopback: flags & libc::IFF_LOOPBACK as u32 != 0,
            addr,
            netmask,
            broadcast,
        });
    }
    // SAFETY: the list getifaddrs made, freed once, not used after.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_quotas_in_hundredths() {
        assert_eq!(quota_v2("50000 100000\n"), Some(50));
        assert_eq!(quota_v2("max 100000\n"), None);
        assert_eq!(quota_v1("150000\n", "100000\n"), Some(150));
        assert_eq!(quota_v1("-1\n", "100000\n"), None);
        assert!(cpu_budget_centi() <= online_cpus() as u64 * 100);
    }

    /// The ELF interpreters a test's `/bin/sh` may need, as the kernel opens them.
    fn loaders() -> Vec<std::path::PathBuf> {
        [
            "/lib64/ld-linux-x86-64.so.2",
            "/lib/ld-linux-aarch64.so.1",
            "/lib/ld-musl-x86_64.so.1",
            "/lib/ld-musl-aarch64.so.1",
        ]
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect()
    }

    #[test]
    fn a_sandboxed_child_reads_and_runs_only_what_it_was_given() {
        if landlock_abi().is_none() {
            eprintln!("no Landlock on this kernel: nothing to test");
            return;
        }
        let dir = std::env::temp_dir().join(format!("rcc-sandbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mine"), "ok").unwrap();
        let p = std::path::Path::new;
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        let cat = std::fs::canonicalize("/bin/cat").unwrap();
        let loaders = loaders();
        let mut rules = vec![
            (sh.as_path(), Access::Run),
            (cat.as_path(), Access::Run),
            (p("/lib"), Access::Read),
            (p("/lib64"), Access::Read),
            (p("/usr/lib"), Access::Read),
            (p("/etc/ld.so.cache"), Access::Read),
            (p("/usr/bin"), Access::List),
            (dir.as_path(), Access::Write),
        ];
        rules.extend(loaders.iter().map(|l| (l.as_path(), Access::Run)));
        let sb = Sandbox::new(&rules).unwrap().unwrap();
        let run = |script: &str| {
            let mut c = std::process::Command::new(&sh);
            c.args(["-c", script]).current_dir(&dir);
            sb.apply(&mut c);
            c.output().unwrap()
        };
        let own = run("cat mine && echo more > made && cat made && echo again > made");
        assert_eq!(String::from_utf8_lossy(&own.stdout), "okmore\n");
        assert!(own.status.success());
        for script in [
            "cat /etc/hostname",
            // Listed, not readable: `cp` or the dynamic loader could not copy or load it.
            "cat /usr/bin/ls",
            // Readable through its Run rule, but nothing else in /usr/bin runs.
            "ls /",
            "/usr/bin/env true",
            // Nothing written outside the job, not even into a file it may read.
            "echo x > /tmp/rcc-sandbox-escape-$$",
        ] {
            let other = run(script);
            assert!(!other.status.success(), "{script}: {other:?}");
            assert!(other.stdout.is_empty(), "{script}: {other:?}");
        }
        // The dir listed may be listed.
        let listed = run("echo /usr/bin/*");
        assert!(String::from_utf8_lossy(&listed.stdout).contains("/usr/bin/"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_ruleset_says_what_each_abi_can_deny_in_the_size_it_knows() {
        let (a1, s1) = RulesetAttr::for_abi(1);
        assert_eq!(
            (a1.handled_access_fs, a1.handled_access_net, a1.scoped, s1),
            (LL_ALL_V1, 0, 0, 8)
        );
        let (a3, s3) = RulesetAttr::for_abi(3);
        assert_eq!(a3.handled_access_fs, LL_ALL_V1 | LL_REFER | LL_TRUNCATE);
        assert_eq!(s3, 8);
        let (a4, s4) = RulesetAttr::for_abi(4);
        assert_eq!((a4.handled_access_net, a4.scoped, s4), (3, 0, 16));
        let (a6, s6) = RulesetAttr::for_abi(6);
        assert_eq!(a6.handled_access_fs, (1 << 16) - 1);
        assert_eq!((a6.scoped, s6), (3, 24));
        assert_eq!(RulesetAttr::for_abi(7).1, 24);
        // A job dir can change files, never run them; a device is no directory.
        assert_eq!(Access::Write.bits() & LL_EXECUTE, 0);
        assert_eq!(Access::List.bits(), LL_READ_DIR);
    }

    #[test]
    fn running_tasks_from_loadavg() {
        assert_eq!(running_of("0.52 0.58 0.59 3/412 12345\n"), Some(3));
        assert_eq!(running_of("garbage"), None);
        assert!(running_tasks().unwrap_or(1) >= 1);
    }
}
