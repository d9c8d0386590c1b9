//! What the daemon runs with, after the command line was checked and defaults were filled in.
//! The argh struct in `bin/rccd.rs` is what was typed; this is what the loop sees.

use super::thermal;
use crate::rules::access::AllowList;
use crate::wire::protocol::Limits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on (port 0 binds an ephemeral port).
    pub listen: Vec<SocketAddr>,
    /// Most compiles at once.
    pub jobs: usize,
    /// Most requests waiting for a slot; past that the answer is "busy" at once.
    pub queue: usize,
    /// How long a request may wait in the queue before it is answered "busy".
    pub queue_wait: Duration,
    /// Peers allowed to connect; everyone else is closed at once.
    pub allow: AllowList,
    /// Directories searched for compilers by file name.
    pub compiler_path: Vec<PathBuf>,
    /// Where job dirs are made.
    pub temp_dir: PathBuf,
    /// Whether the temp dir was given (`--temp-dir`): one rccd cannot write stops it from
    /// starting; the default one (`$TMPDIR` or `/tmp`) makes it start broken, saying why.
    pub temp_dir_given: bool,
    /// Written with the bound port of the first listener once it listens.
    pub port_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// Frame and argument caps.
    pub limits: Limits,
    /// Most open connections; more are closed at once.
    pub max_connections: usize,
    /// A connection that sends or takes nothing for this long while it should is dropped.
    pub idle_timeout: Duration,
    /// A compile running longer than this is killed (0: never).
    pub job_timeout: Duration,
    /// How often a running job tells its client it is still alive.
    pub heartbeat: Duration,
    /// Where the thermal state is read and the rule's numbers.
    pub thermal: thermal::Settings,
    /// Where `MemAvailable` is read (`/proc/meminfo`).
    pub meminfo: PathBuf,
    /// The least memory a job is assumed to need (KiB); recent compiles' peaks raise it.
    pub job_mem_floor_kib: u64,
    /// The most data one compile may hold, in KiB (RLIMIT_DATA; 0: no limit).
    pub job_mem_max_kib: u64,
    /// Where shipped sources and headers are kept by hash, and at most how many bytes
    /// (`None`: this box takes preprocessed jobs only).
    pub cache: Option<(PathBuf, u64)>,
    /// Answer discovery probes (UDP on the listeners' ports) from `allow`ed peers.
    pub discovery: bool,
}

/// The file cache's default bound: a kernel build's headers take some 40 MiB.
pub const DEFAULT_CACHE_MIB: u64 = 256;

impl Config {
    /// A configuration for one loopback listener on an ephemeral port, as tests and the
    /// README demo use it.
    pub fn loopback(jobs: usize) -> Config {
        Config {
            listen: vec!["127.0.0.1:0".parse().expect("valid address")],
            jobs,
            queue: jobs,
            queue_wait: Duration::from_secs(10),
            allow: AllowList::loopback(),
            compiler_path: default_compiler_path(),
            temp_dir: std::env::temp_dir(),
            temp_dir_given: false,
            port_file: None,
            pid_file: None,
            limits: Limits::default(),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            job_timeout: Duration::from_secs(3600),
            heartbeat: Duration::from_secs(2),
            thermal: thermal::Settings::defaults(),
            meminfo: PathBuf::from("/proc/meminfo"),
            job_mem_floor_kib: DEFAULT_JOB_MEM_MIB * 1024,
            job_mem_max_kib: 0,
            cache: Some((
                std::env::temp_dir().join("rccd-cache"),
                DEFAULT_CACHE_MIB << 20,
            )),
            discovery: true,
        }
    }
}

/// What a compile is assumed to need at least before the box has seen any: cc1 on a
/// small C file stays under 30 MiB, a kernel file takes 60-150 MiB.
pub const DEFAULT_JOB_MEM_MIB: u64 = 64;

/// Where a box keeps its compilers.
pub fn default_compiler_path() -> Vec<PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin"]
        .iter()
        .map(PathBuf::from)
        .collect()
}
