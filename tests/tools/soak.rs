//! Soak and load for one rccd: `bash tests/tools/soak.sh` starts a release rccd and runs
//! this (`cargo run --release --example soak -- ADDR PID TEMPDIR JOBS CLIENTS`): JOBS real
//! compiles (gcc -O0 -c on a small preprocessed file, each a whole exchange on its own
//! connection) from CLIENTS threads, every object checked, then the daemon's open fds, RSS
//! and job dirs before and after.
use rcc::client::remote::{self, Timeouts};
use rcc::wire::protocol::{Exit, JobRequest, Mode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn fds(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn entries(dir: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    assert!(a.len() == 5, "usage: soak ADDR PID TEMPDIR JOBS CLIENTS");
    let (addr, pid, tmp) = (&a[0], &a[1], &a[2]);
    let jobs: u64 = a[3].parse().expect("JOBS");
    let clients: u64 = a[4].parse().expect("CLIENTS");
    let identity =
        rcc::compiler::probe_identity(std::path::Path::new("/usr/bin/gcc")).expect("gcc here");
    let before = (fds(pid), rss_kib(pid), entries(tmp));
    let next = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= jobs {
                    return;
                }
                let req = JobRequest {
                    mode: Mode::Preprocessed,
                    compress: n % 2 == 0,
                    compiler: "gcc".into(),
                    identity: identity.clone(),
                    args: vec![b"-O0".to_vec(), b"-c".to_vec()],
                    input_ext: "i".into(),
                    output_ext: "o".into(),
                    cwd: b"/tmp".to_vec(),
                    label: format!("soak{n}.c"),
                    locale: vec![],
                };
                let text = format!("int soak{n}(int x) {{ return x * {n}; }}\n");
                let timeouts = Timeouts {
                    connect: Duration::from_secs(5),
                    io: Duration::from_secs(60),
                };
                let ok = remote::request(addr, &req, timeouts, rcc::wire::compress::DEFAULT_LEVEL)
                    .and_then(|acc| acc.compile(text.as_bytes()))
                    .map(|(done, _)| {
                        done.exit == Exit::Code(0)
                            && done.outputs.iter().any(|(k, o)| k == "o" && o.len() > 100)
                    });
                if !matches!(ok, Ok(true)) {
                    // Busy answers count too: the clients outnumber the slots on purpose.
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    // Let the loop reap and close what the last clients left.
    std::thread::sleep(Duration::from_secs(2));
    let after = (fds(pid), rss_kib(pid), entries(tmp));
    let failed = failed.into_inner();
    println!(
        "{jobs} jobs from {clients} clients in {secs:.1} s ({:.0}/s), {failed} not compiled \
         (busy or failed)\nrccd open fds {} -> {}, VmRSS {} -> {} KiB, job dirs {} -> {}",
        jobs as f64 / secs,
        before.0,
        after.0,
        before.1,
        after.1,
        before.2,
        after.2
    );
}
