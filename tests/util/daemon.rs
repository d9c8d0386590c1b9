//! A real `rccd` for a test: on 127.0.0.1 with an ephemeral port (read back from its port
//! file), its own temp dir and log, and an empty thermal tree unless the test gives one;
//! stopped on drop.

use super::{Peer, TempDir, RCCD};
use rcc::wire::protocol::Message;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        Daemon {
            child: Some(child),
            port: 0,
            dir,
            log,
        }
        .listening(&port_file)
    }

    /// The daemon once it listens, with the port it wrote to `port_file`.
    fn listening(mut self, port_file: &Path) -> Daemon {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(t) = std::fs::read_to_string(port_file) {
                if let Ok(p) = t.trim().parse() {
                    self.port = p;
                    return self;
                }
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("rccd exited with {st}: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("rccd did not listen within 20 s: {}", self.log_text());
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

impl Daemon {
    /// A status counter, asked from the loopback address `src` (e.g. 127.0.0.2), to test a
    /// daemon's allow-list without leaving loopback.
    pub fn counter_from(&self, src: &str, key: &str) -> u64 {
        let mut p = Peer::connect_from(&self.addr(), src.parse().unwrap(), 10);
        p.send(&Message::StatusRequest);
        match p.next() {
            Ok(Message::Status(kv)) => kv
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or_else(|| panic!("no {key}")),
            other => panic!("status from {src}: {other:?}"),
        }
    }
}
