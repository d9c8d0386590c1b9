//! Memory admission: a box with 1 or 2 GB of RAM that takes one compile too many meets the
//! OOM killer, which kills a compiler (or worse, rccd) half-way. Before a new job the daemon
//! compares `MemAvailable` with what a job needs, learned from the peak resident size of its
//! recent compiles (with a floor), and answers busy when it would not fit; the client sends
//! the job elsewhere. Sampled at most once a second; a sample reads one small file into a
//! buffer kept between samples.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

/// How many recent compiles the need is learned from.
const RECENT: usize = 16;

pub struct Memory {
    meminfo: PathBuf,
    /// The least a job is assumed to need (KiB), whatever the recent ones took.
    floor_kib: u64,
    /// Peak resident sizes of recent compiles (KiB), a ring.
    recent: [u64; RECENT],
    next: usize,
    /// `MemAvailable` at the last sample; `None`: unknown (no such file or line), and then
    /// nothing is refused for memory.
    available_kib: Option<u64>,
    sampled: Option<Instant>,
    buf: Vec<u8>,
    complained: bool,
}

impl Memory {
    pub fn new(meminfo: PathBuf, floor_kib: u64) -> Memory {
        Memory {
            meminfo,
            floor_kib,
            recent: [0; RECENT],
            next: 0,
            available_kib: None,
            sampled: None,
            buf: Vec::with_capacity(4096),
            complained: false,
        }
    }

    /// Reads `MemAvailable` unless the last read is younger than a second.
    pub fn sample(&mut self, now: Instant) {
        if self
            .sampled
            .is_some_and(|t| now.duration_since(t).as_millis() < 1000)
        {
            return;
        }
        self.sampled = Some(now);
        self.buf.clear();
        let read = File::open(&self.meminfo).and_then(|mut f| f.read_to_end(&mut self.buf));
        self.available_kib = match read {
            Ok(_) => mem_available_kib(&self.buf),
            Err(_) => None,
        };
        if self.available_kib.is_none() && !self.complained {
            self.complained = true;
            log::warn!(
                "memory: no MemAvailable in {}; jobs are not refused for memory \
                 (reported once)",
                self.meminfo.display()
            );
        }
    }

    /// A compile ended having held `peak_kib` at most.
    pub fn learn(&mut self, peak_kib: u64) {
        self.recent[self.next] = peak_kib;
        self.next = (self.next + 1) % RECENT;
    }

    /// What one more job is expected to need (KiB).
    pub fn need_kib(&self) -> u64 {
        self.recent
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.floor_kib)
    }

    pub fn available_kib(&self) -> Option<u64> {
        self.available_kib
    }

    /// Key/values for the status reply: `mem_available_kib` (`-` when unknown), `job_mem_kib`
    /// (what a job is taken to need) and `load1` (the 1-minute load average, as the kernel
    /// prints it).
    pub fn status(&self, out: &mut Vec<(String, String)>) {
        let avail = self
            .available_kib
            .map_or_else(|| "-".to_string(), |k| k.to_string());
        out.push(("mem_available_kib".into(), avail));
        out.push(("job_mem_kib".into(), self.need_kib().to_string()));
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load1 = load.split_whitespace().next().unwrap_or("-");
        out.push(("load1".into(), load1.to_string()));
    }

    /// `Some(why)` when a new job would not fit in memory now.
    pub fn refuse(&self) -> Option<String> {
        if self.floor_kib == 0 {
            return None; // --job-mem-mib 0: turned off
        }
        let avail = self.available_kib?;
        let need = self.need_kib();
        (avail < need).then(|| {
            format!(
                "low on memory: {} MiB available, a job here needs about {} MiB",
                avail / 1024,
                need / 1024
            )
        })
    }
}

/// The `MemTotal:` value of a /proc/meminfo text, in KiB.
pub fn mem_total_kib(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// The `MemAvailable:` value of a /proc/meminfo text, in KiB.
fn mem_available_kib(text: &[u8]) -> Option<u64> {
    let start = text.windows(13).position(|w| w == b"MemAvailable:")?;
    let rest = &text[start + 13..];
    let digits: Vec<u8> = rest
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| b.is_ascii_digit())
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:        1919688 kB\nMemFree:          101204 kB\n\
                           MemAvailable:     812340 kB\nBuffers:           41208 kB\n";

    #[test]
    fn reads_mem_available() {
        assert_eq!(mem_available_kib(MEMINFO.as_bytes()), Some(812_340));
        assert_eq!(mem_available_kib(b"MemTotal: 5 kB\n"), None);
        assert_eq!(mem_available_kib(b"MemAvailable: lots\n"), None);
    }

    #[test]
    fn the_need_is_the_largest_recent_peak_with_a_floor() {
        let mut m = Memory::new(PathBuf::from("/nonexistent"), 65_536);
        assert_eq!(m.need_kib(), 65_536);
        m.learn(200_000);
        m.learn(90_000);
        assert_eq!(m.need_kib(), 200_000);
        // The big one ages out after RECENT smaller jobs.
        for _ in 0..RECENT {
            m.learn(80_000);
        }
        assert_eq!(m.need_kib(), 80_000);
    }

    #[test]
    fn refuses_only_when_known_and_short() {
        let dir = std::env::temp_dir().join(format!("rcc-meminfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("meminfo");
        std::fs::write(&f, MEMINFO).unwrap();
        let mut m = Memory::new(f.clone(), 65_536);
        let t0 = Instant::now();
        m.sample(t0);
        assert_eq!(m.refuse(), None);
        m.learn(900_000);
        assert_eq!(
            m.refuse().as_deref(),
            Some("low on memory: 793 MiB available, a job here needs about 878 MiB")
        );
        // Unknown: never refuse for memory.
        std::fs::write(&f, "garbage").unwrap();
        m.sample(t0 + std::time::Duration::from_secs(2));
        assert_eq!(m.refuse(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
