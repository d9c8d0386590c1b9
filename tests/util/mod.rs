//! Shared by the integration tests: a temp dir per test, a real `rccd` on 127.0.0.1 with an
//! ephemeral port (killed on drop), and `rcc` commands with their own `RCC_DIR`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const RCC: &str = env!("CARGO_BIN_EXE_rcc");
pub const RCCD: &str = env!("CARGO_BIN_EXE_rccd");

/// A directory removed when the test ends (kept if `RCC_TEST_KEEP=1`, for debugging).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rcc-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("RCC_TEST_KEEP").as_deref() != Ok("1") {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running rccd; killed (and waited for) on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: TempDir,
    pub log: PathBuf,
}

/// Unless a test names its own, a daemon reads an empty thermal tree and no cpufreq
/// policies, so the machine the tests run on never throttles them.
fn own_thermal(dir: &TempDir, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    for flag in ["--thermal-root", "--cpufreq-root"] {
        if !extra.contains(&flag) {
            let d = dir.join(&flag[2..]);
            std::fs::create_dir_all(&d).unwrap();
            out.push(flag.into());
            out.push(d.into_os_string());
        }
    }
    out
}

/// A fake `/sys/class/thermal` laid out like a mainline Amlogic GX box: one `cpu-thermal`
/// zone (passive trip 80 °C, hysteresis 2 °C; critical 110 °C) and its cpufreq cooling
/// device. Files are replaced by rename, as the kernel's values change under a reader.
pub struct FakeThermal {
    pub root: PathBuf,
}

impl FakeThermal {
    pub fn new(t: &TempDir, name: &str, celsius: f64) -> FakeThermal {
        let root = t.join(name);
        let z = root.join("thermal_zone0");
        let cd = root.join("cooling_device0");
        std::fs::create_dir_all(&z).unwrap();
        std::fs::create_dir_all(&cd).unwrap();
        let f = FakeThermal { root };
        for (p, v) in [
            ("thermal_zone0/type", "cpu-thermal"),
            ("thermal_zone0/mode", "enabled"),
            ("thermal_zone0/trip_point_0_type", "passive"),
            ("thermal_zone0/trip_point_0_temp", "80000"),
            ("thermal_zone0/trip_point_0_hyst", "2000"),
            ("thermal_zone0/trip_point_1_type", "critical"),
            ("thermal_zone0/trip_point_1_temp", "110000"),
            ("thermal_zone0/trip_point_1_hyst", "0"),
            ("cooling_device0/type", "thermal-cpufreq-0"),
            ("cooling_device0/max_state", "4"),
            ("cooling_device0/cur_state", "0"),
        ] {
            f.put(p, v);
        }
        f.set_temp(celsius);
        f
    }

    fn put(&self, rel: &str, value: &str) {
        let p = self.root.join(rel);
        let tmp = p.with_extension("new");
        std::fs::write(&tmp, format!("{value}\n")).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }

    pub fn set_temp(&self, celsius: f64) {
        self.put(
            "thermal_zone0/temp",
            &((celsius * 1000.0) as i64).to_string(),
        );
    }

    pub fn set_cooling(&self, state: u32) {
        self.put("cooling_device0/cur_state", &state.to_string());
    }

    pub fn flag(&self) -> [String; 2] {
        [
            "--thermal-root".into(),
            self.root.to_string_lossy().into_owned(),
        ]
    }
}

impl Daemon {
    /// rccd on 127.0.0.1:0 with `jobs` slots and extra flags.
    pub fn start(jobs: usize, extra: &[&str]) -> Daemon {
        Self::start_on("127.0.0.1:0", jobs, extra)
    }

    pub fn start_on(listen: &str, jobs: usize, extra: &[&str]) -> Daemon {
        Self::start_wrapped(&[], listen, jobs, extra)
    }

    /// rccd run through `wrapper` (e.g. `ip netns exec NS`), which must exec it.
    pub fn start_wrapped(wrapper: &[&str], listen: &str, jobs: usize, extra: &[&str]) -> Daemon {
        Self::launch(wrapper, listen, jobs, extra, None)
    }

    /// rccd on 127.0.0.1:0 without `--temp-dir`: its default temp dir is `tmpdir` (as
    /// `$TMPDIR`).
    pub fn start_default_temp(jobs: usize, extra: &[&str], tmpdir: &Path) -> Daemon {
        Self::launch(&[], "127.0.0.1:0", jobs, extra, Some(tmpdir))
    }

    /// `start_wrapped`, or with `default_temp` the default temp dir (`$TMPDIR`) instead of
    /// a `--temp-dir`.
    fn launch(
        wrapper: &[&str],
        listen: &str,
        jobs: usize,
        extra: &[&str],
        default_temp: Option<&Path>,
    ) -> Daemon {
        let dir = TempDir::new("rccd");
        let port_file = dir.join("port");
        let log = dir.join("rccd.log");
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(RCCD);
                c
            }
            None => Command::new(RCCD),
        };
        let child = cmd
            .args(["--listen", listen, "--jobs", &jobs.to_string()])
            .arg("--port-file")
            .arg(&port_file)
            .args(if extra.contains(&"--temp-dir") || default_temp.is_some() {
                vec![]
            } else {
                vec!["--temp-dir".into(), tmp.clone().into_os_string()]
            })
            .args(["--log-level", "debug"])
            // As root, rccd would give root up to nobody, who cannot write this test's dirs.
            .args(if rcc::sys::geteuid() == 0 && !extra.contains(&"--user") {
                vec!["--user", "root"]
            } else {
                vec![]
            })
            .args(extra)
            .args(own_thermal(&dir, extra))
            .envs(default_temp.map(|t| ("TMPDIR", t)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start rccd");
        let mut d = Daemon {
            child: Some(child),
            port: 0,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(t) = std::fs::read_to_string(&port_file) {
                if let Ok(p) = t.trim().parse() {
                    d.port = p;
                    return d;
                }
            }
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("rccd exited with {st}: {}", d.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("rccd did not listen within 20 s: {}", d.log_text());
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's status reply.
    pub fn status(&self) -> HashMap<String, String> {
        let kv = rcc::client::remote::status(&self.addr(), Default::default())
            .unwrap_or_else(|e| panic!("status of {}: {e}\n{}", self.addr(), self.log_text()));
        kv.into_iter().collect()
    }

    /// A status value as text.
    pub fn value(&self, key: &str) -> String {
        self.status()
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key} in status"))
    }

    pub fn counter(&self, key: &str) -> u64 {
        self.status()
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in status"))
            .parse()
            .unwrap()
    }

    /// Job dirs left in the daemon's temp dir (its file cache, `rccd-cache`, is meant to
    /// stay, and so are the mirrors it keeps for the next jobs: see `mirrors`).
    pub fn leftovers(&self) -> Vec<String> {
        self.temp_entries()
            .into_iter()
            .filter(|n| n != "rccd-cache" && !is_mirror(n))
            .collect()
    }

    /// The mirrors of shipped jobs the daemon keeps for the next ones (`rccd-PID-mN`).
    pub fn mirrors(&self) -> Vec<String> {
        self.temp_entries()
            .into_iter()
            .filter(|n| is_mirror(n))
            .collect()
    }

    fn temp_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("tmp"))
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops the daemon as a service manager would (SIGTERM), and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `rccd-PID-mN`: a kept mirror's name.
fn is_mirror(name: &str) -> bool {
    let mut parts = name.split('-');
    parts.next() == Some("rccd")
        && parts.next().is_some_and(|p| p.parse::<u32>().is_ok())
        && parts
            .next()
            .and_then(|m| m.strip_prefix('m'))
            .is_some_and(|n| n.parse::<u64>().is_ok())
        && parts.next().is_none()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first: the daemon kills its compilers and removes its job dirs.
        self.stop();
    }
}

/// An `rcc` command run in `cwd` with its own RCC_DIR and the given host list; nothing of
/// the caller's distcc/rcc environment leaks in.
pub fn rcc(cwd: &Path, rcc_dir: &Path, hosts: &str) -> Command {
    let mut c = Command::new(RCC);
    c.current_dir(cwd)
        .env("RCC_DIR", rcc_dir)
        .env("RCC_HOSTS", hosts)
        .env_remove("DISTCC_HOSTS")
        .env_remove("RCC_VERBOSE")
        .env_remove("_RCC_SAFEGUARD");
    c
}

/// Runs a command, panicking with everything it said if it fails to start.
pub fn run(c: &mut Command) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"))
}

/// Waits (polling, at most `secs`) until `f` holds; fails the test naming `what` if not.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command that must succeed.
pub fn ok(c: &mut Command) -> Output {
    let out = run(c);
    assert!(
        out.status.success(),
        "{c:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `gcc ARGS` in `cwd`.
pub fn gcc(cwd: &Path, compiler: &str, args: &[&str]) -> Output {
    let mut c = Command::new(compiler);
    c.current_dir(cwd).args(args);
    run(&mut c)
}

pub fn read(p: impl AsRef<Path>) -> Vec<u8> {
    let p = p.as_ref();
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Lua's C sources (from the lua-src crate, a dev-dependency), found through cargo.
pub fn lua_src() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    let text = String::from_utf8_lossy(&out.stdout);
    let marker = "lua-src-547.1.0/Cargo.toml";
    let end = text.find(marker).expect("lua-src in cargo metadata") + "lua-src-547.1.0".len();
    let start = text[..end].rfind('"').unwrap() + 1;
    PathBuf::from(&text[start..end]).join("lua-5.4.7")
}

/// The project's test fixture directory.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A directory with a fake compiler named `name` (a shell script) for staging faults and
/// identities; `script` is the script's body after `#!/bin/sh`.
pub fn fixture_compiler(dir: &TempDir, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

pub fn s(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// A TCP connection to `dst` from the loopback address `src` (e.g. 127.0.0.2), to test a
/// daemon's allow-list without leaving loopback.
pub fn connect_from(src: std::net::Ipv4Addr, dst: std::net::SocketAddrV4) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let sa = |a: std::net::SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket syscalls on a fresh fd with correctly sized sockaddr_in values;
    // the fd is handed to TcpStream, which owns and closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let from = sa(std::net::SocketAddrV4::new(src, 0));
        assert_eq!(
            libc::bind(fd, &from as *const _ as *const libc::sockaddr, len),
            0
        );
        let to = sa(dst);
        let rc = libc::connect(fd, &to as *const _ as *const libc::sockaddr, len);
        assert_eq!(
            rc,
            0,
            "connect {src} -> {dst}: {}",
            std::io::Error::last_os_error()
        );
        std::net::TcpStream::from_raw_fd(fd)
    }
}

impl Daemon {
    /// A status counter, asked from the loopback address `src`.
    pub fn counter_from(&self, src: &str, key: &str) -> u64 {
        use std::io::{Read, Write};
        let mut s = connect_from(
            src.parse().unwrap(),
            std::net::SocketAddrV4::new("127.0.0.1".parse().unwrap(), self.port),
        );
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&rcc::protocol::encode(
            &rcc::protocol::Message::StatusRequest,
            None,
        ))
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        match rcc::protocol::decode(&buf, &Default::default()) {
            Ok(Some((rcc::protocol::Message::Status(kv), _))) => kv
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or_else(|| panic!("no {key}")),
            other => panic!("status from {src}: {other:?}"),
        }
    }
}
