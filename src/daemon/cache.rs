//! The box's store of sources and headers by content (for jobs whose files travel by hash):
//! one file per SHA-256 under `--cache-dir`, written through a temp name and renamed, so a
//! reader never sees half of one; every file is checked against the hash it was announced
//! with before it is kept, so a peer cannot plant content under another file's name. The
//! total size stays under a bound: the least recently used files go first (use is recorded
//! in the file's mtime, so the order survives a restart).
//!
//! The bound follows the disk: never more than `SHARE_PERCENT` of what the cache could have
//! (the file system's free space plus what it holds), read when it opens and whenever the
//! loop asks (`refit`). A write that finds the disk full (`ENOSPC`, `EDQUOT`) makes the
//! cache give room and is tried once more, so a full disk never ruins the box for good.
//!
//! No sockets, no event loop: the loop hands it bytes and asks for paths.

use crate::sha256::{self, Digest};
use crate::sys;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub struct Cache {
    dir: PathBuf,
    /// Most bytes kept as configured (`--cache-size`).
    bound: u64,
    /// Most bytes kept now: `bound`, or less on a disk with less room (`fit`).
    limit: u64,
    /// Bytes kept now (the sum of the files' sizes, as last counted).
    used: u64,
    seq: u64,
}

/// Why a file was not stored.
#[derive(Debug, PartialEq, Eq)]
pub enum PutError {
    /// The content's hash is not the one announced.
    WrongHash,
    /// The file alone is larger than the whole cache may be.
    TooLarge,
    Io(String),
}

/// The largest share of (free space + its own files) the cache keeps, in percent: the rest
/// is for the jobs' inputs, mirrors and objects.
pub const SHARE_PERCENT: u64 = 50;

/// How many bytes the cache may keep: its configured `bound`, never more than
/// `SHARE_PERCENT` of the `free` bytes of its file system plus the `used` bytes it holds.
pub fn fit(bound: u64, free: u64, used: u64) -> u64 {
    let share = (u128::from(free) + u128::from(used)) * u128::from(SHARE_PERCENT) / 100;
    bound.min(share.min(u128::from(u64::MAX)) as u64)
}

impl Cache {
    /// Opens (creating) the cache at `dir`, removes temp files a crash left, counts what is
    /// there and trims it to `limit` bytes.
    pub fn open(dir: &Path, limit: u64) -> io::Result<Cache> {
        fs::create_dir_all(dir)?;
        let mut c = Cache {
            dir: dir.to_path_buf(),
            bound: limit,
            limit,
            used: 0,
            seq: 0,
        };
        for e in fs::read_dir(dir)?.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("tmp-") {
                let _ = fs::remove_file(e.path());
            } else if let Ok(m) = e.metadata() {
                c.used += m.len();
            }
        }
        c.refit()?;
        Ok(c)
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    /// The most bytes it keeps now.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Reads its file system's free space, sets the bound from it (`fit`) and trims to it.
    pub fn refit(&mut self) -> io::Result<()> {
        if let Ok(free) = sys::free_space(&self.dir) {
            self.limit = fit(self.bound, free, self.used);
        }
        self.trim(0)
    }

    /// The status keys `cache_kib` and `cache_limit_kib` (zeros without a cache).
    pub fn status(cache: Option<&Cache>, kv: &mut Vec<(String, String)>) {
        let (used, limit) = cache.map_or((0, 0), |c| (c.used, c.limit));
        kv.push(("cache_kib".into(), (used >> 10).to_string()));
        kv.push(("cache_limit_kib".into(), (limit >> 10).to_string()));
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(sha256::hex(d))
    }

    /// The path of the file with hash `d`, if the cache has it; marks it used.
    pub fn get(&self, d: &Digest) -> Option<PathBuf> {
        let p = self.path(d);
        let f = fs::File::options().write(true).open(&p).ok()?;
        let _ = f.set_modified(SystemTime::now());
        Some(p)
    }

    /// Whether the cache has `d` (without marking it used).
    pub fn has(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Stores `data` as the content of hash `d`, after checking it; makes room first.
    pub fn put(&mut self, d: &Digest, data: &[u8]) -> Result<PathBuf, PutError> {
        if sha256::digest(data) != *d {
            return Err(PutError::WrongHash);
        }
        let len = data.len() as u64;
        if len > self.limit {
            return Err(PutError::TooLarge);
        }
        let dest = self.path(d);
        if dest.is_file() {
            return Ok(dest);
        }
        self.trim(len).map_err(|e| PutError::Io(e.to_string()))?;
        let written = match self.write_new(&dest, data) {
            // The disk is fuller than the bound knew (other files grew): give room, once.
            Err(e) if sys::no_space(&e) => {
                let _ = self.refit();
                let _ = self.give_room(len);
                self.write_new(&dest, data)
            }
            r => r,
        };
        written.map_err(|e| PutError::Io(e.to_string()))?;
        self.used += len;
        Ok(dest)
    }

    /// Writes `data` at `dest` through a temp name; nothing is left of a failed write.
    fn write_new(&mut self, dest: &Path, data: &[u8]) -> io::Result<()> {
        self.seq += 1;
        let tmp = self
            .dir
            .join(format!("tmp-{}-{}", std::process::id(), self.seq));
        let written = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, dest));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// Removes the least recently used files until `bytes` of disk came free (a file a
    /// mirror still links frees nothing: it goes last and is not counted); returns how many
    /// bytes came free. For a disk that is full for reasons of its own.
    pub fn give_room(&mut self, bytes: u64) -> io::Result<u64> {
        let mut freed = 0;
        for (linked, _, len, p) in self.by_age()? {
            if freed >= bytes {
                break;
            }
            if fs::remove_file(&p).is_ok() {
                self.used = self.used.saturating_sub(len);
                if !linked {
                    freed += len;
                }
            }
        }
        Ok(freed)
    }

    /// Removes the least recently used files until `extra` more bytes fit under the limit.
    fn trim(&mut self, extra: u64) -> io::Result<()> {
        if self.used + extra <= self.limit {
            return Ok(());
        }
        // Oldest first; bounded by the number of files.
        for (_, _, len, p) in self.by_age()? {
            if self.used + extra <= self.limit {
                break;
            }
            // A job may hold a hard link to it; removing the name is still safe.
            if fs::remove_file(&p).is_ok() {
                self.used = self.used.saturating_sub(len);
            }
        }
        Ok(())
    }

    /// Its files, the first to go first: (linked by a mirror, last used, size, path). A file
    /// linked into a mirror (see `tree::Mirror`) is in use: the jobs that keep it there do
    /// not mark it used again, so it goes only after every file that is not. Recounts
    /// `used` while at it: files may have gone behind our back.
    fn by_age(&mut self) -> io::Result<Vec<(bool, SystemTime, u64, PathBuf)>> {
        let mut files: Vec<(bool, SystemTime, u64, PathBuf)> = fs::read_dir(&self.dir)?
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with("tmp-"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.nlink() > 1, m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        self.used = files.iter().map(|f| f.2).sum();
        files.sort();
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scratch::Scratch as Dir;
    /// Marks `p` last used `secs` seconds ago.
    fn age(p: &Path, secs: u64) {
        let f = fs::File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::now() - std::time::Duration::from_secs(secs))
            .unwrap();
    }

    fn dir(name: &str) -> Dir {
        Dir::new(&format!("cache-{name}"), false)
    }

    #[test]
    fn stores_by_hash_and_refuses_a_lie() {
        let d = dir("put");
        let mut c = Cache::open(&d.0, 1 << 20).unwrap();
        let text = b"#define X 1\n";
        let h = sha256::digest(text);
        assert!(!c.has(&h));
        let p = c.put(&h, text).unwrap();
        assert_eq!(fs::read(&p).unwrap(), text);
        assert_eq!(c.get(&h), Some(p));
        assert_eq!(c.used(), text.len() as u64);
        // Content that is not what its hash says is not kept.
        let other = sha256::digest(b"something else");
        assert_eq!(c.put(&other, text), Err(PutError::WrongHash));
        assert!(!c.has(&other));
    }

    #[test]
    fn stays_under_its_bound_dropping_the_least_recently_used() {
        let d = dir("lru");
        let mut c = Cache::open(&d.0, 3000).unwrap();
        let blobs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000]).collect();
        let hashes: Vec<Digest> = blobs.iter().map(|b| sha256::digest(b)).collect();
        for (i, (h, b)) in hashes.iter().zip(&blobs).take(3).enumerate() {
            // Distinct ages: 0 oldest.
            age(&c.put(h, b).unwrap(), 100 - i as u64);
        }
        // Using 0 makes 1 the least recently used.
        assert!(c.get(&hashes[0]).is_some());
        c.put(&hashes[3], &blobs[3]).unwrap();
        assert!(c.used() <= 3000);
        assert!(c.has(&hashes[0]) && !c.has(&hashes[1]) && c.has(&hashes[2]));
        assert!(c.has(&hashes[3]));
        // Larger than the whole cache: refused, nothing dropped for it.
        let big = vec![9u8; 4000];
        assert_eq!(c.put(&sha256::digest(&big), &big), Err(PutError::TooLarge));
        assert!(c.has(&hashes[3]));
        // Reopened: counted again, and still within the bound.
        drop(c);
        let c = Cache::open(&d.0, 2000).unwrap();
        assert!(c.used() <= 2000);
    }

    #[test]
    fn a_file_a_mirror_links_goes_last() {
        let d = dir("linked");
        let mut c = Cache::open(&d.0, 2000).unwrap();
        let blobs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 1000]).collect();
        let hashes: Vec<Digest> = blobs.iter().map(|b| sha256::digest(b)).collect();
        for (i, (h, b)) in hashes.iter().zip(&blobs).take(2).enumerate() {
            age(&c.put(h, b).unwrap(), 100 - i as u64);
        }
        // 0 is the oldest, but a mirror still holds it: 1 goes instead.
        let link = d.0.with_extension("link");
        fs::hard_link(c.get(&hashes[0]).unwrap(), &link).unwrap();
        age(&link, 100);
        c.put(&hashes[2], &blobs[2]).unwrap();
        assert!(c.has(&hashes[0]) && !c.has(&hashes[1]) && c.has(&hashes[2]));
        fs::remove_file(link).unwrap();
    }

    #[test]
    fn the_bound_is_never_more_than_half_of_what_the_disk_could_give() {
        assert_eq!(SHARE_PERCENT, 50);
        assert_eq!(fit(256 << 20, 1 << 30, 0), 256 << 20);
        assert_eq!(fit(256 << 20, 1 << 20, 0), 512 << 10);
        // What it holds counts: its own files are room it could give back.
        assert_eq!(fit(256 << 20, 0, 400 << 10), 200 << 10);
        assert_eq!(fit(256 << 20, u64::MAX, 1), 256 << 20);
    }

    /// A small tmpfs (root only), unmounted on drop, even when the test panics.
    struct Tmpfs(Dir);
    impl Tmpfs {
        fn new(name: &str, kib: u32) -> Option<Tmpfs> {
            if sys::geteuid() != 0 {
                eprintln!("not root: no tmpfs to fill; skipping");
                return None;
            }
            let d = dir(name);
            fs::create_dir_all(&d.0).unwrap();
            let st = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
                .arg(&d.0)
                .status();
            if !st.is_ok_and(|s| s.success()) {
                eprintln!("cannot mount a tmpfs here; skipping");
                return None;
            }
            Some(Tmpfs(d))
        }
        /// Writes a file of zeros until the disk is full.
        fn fill(&self) {
            use std::io::Write;
            let mut f = fs::File::create(self.0 .0.join("filler")).unwrap();
            let block = vec![0u8; 4096];
            while f.write_all(&block).is_ok() {}
        }
    }
    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(&self.0 .0)
                .status();
        }
    }

    #[test]
    fn a_disk_filled_behind_its_back_makes_it_give_room_and_keep_the_file() {
        let Some(t) = Tmpfs::new("enospc", 512) else {
            return;
        };
        let mut c = Cache::open(&t.0 .0.join("cache"), 256 << 20).unwrap();
        // Half of an empty 512 KiB disk.
        assert!(c.limit() <= 256 << 10, "{}", c.limit());
        let blobs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 60 << 10]).collect();
        for b in &blobs[..2] {
            c.put(&sha256::digest(b), b).unwrap();
        }
        t.fill();
        // Full: the write fails, the cache gives room and the second try keeps it.
        let h = sha256::digest(&blobs[2]);
        let p = c.put(&h, &blobs[2]).unwrap();
        assert_eq!(fs::read(p).unwrap(), blobs[2]);
        assert!(c.used() < 3 * (60 << 10));
        // The bound followed the disk down: half of what the cache could still have.
        assert!(c.limit() < 120 << 10, "{}", c.limit());
    }
}
