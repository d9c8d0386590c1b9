//! A job's private copy of the master's files, for jobs that ship sources and headers: a
//! mirror dir under the temp dir mirrors the master's paths (`/usr/include/stdio.h` becomes
//! `MIRROR/usr/include/stdio.h`), each file a hard link to the box's cache (a copy when the
//! cache is on another file system). The compiler then runs in the mirror + the master's
//! working directory with every absolute path prefixed by the mirror's, and
//! `-fmacro-prefix-map`/`-fdebug-prefix-map` take the prefix away again, so what it records
//! names the master's paths.
//!
//! A mirror outlives its job (`Mirrors`): the next job on it changes only the files and
//! directories that differ, and leaves it holding exactly what a fresh mirror of its own
//! manifest would — the same files with the same contents, the same directories, nothing
//! else — so the compile cannot tell. Two kernel files share most of their ~740 headers;
//! building and removing the whole mirror for each job was most of rccd's own CPU (a link,
//! an unlink and a touch per file, ~25 ms a job on ext4). While a job runs, its mirror is
//! its own; the compiler may only read it (the sandbox writes only to the job's dir).
//!
//! Every path a peer sends is checked before it touches the disk: absolute, no `.` or `..`
//! components, no NUL, bounded length and depth. Only regular files and directories are
//! made, never links a peer chose, so nothing here leads out of the mirror.

use super::cache::Cache;
use crate::protocol::FileEntry;
use crate::sha256::Digest;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest path accepted, and most components.
const MAX_PATH: usize = 4096;
const MAX_DEPTH: usize = 64;

/// Checks a path from a peer; `Err` says what is wrong with it.
pub fn check_path(p: &str) -> Result<&Path, String> {
    if p.len() > MAX_PATH {
        return Err(format!("a path of {} bytes (at most {MAX_PATH})", p.len()));
    }
    if p.contains('\0') {
        return Err("a path with a NUL byte".into());
    }
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err(format!("{p:?} is not absolute"));
    }
    let mut depth = 0;
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(_) => depth += 1,
            _ => return Err(format!("{p:?} has . or .. in it")),
        }
    }
    // `components` hides `a/./b` and trailing slashes; the text must be clean too.
    if p.contains("/./")
        || p.ends_with("/.")
        || p.contains("//")
        || (p.len() > 1 && p.ends_with('/'))
    {
        return Err(format!("{p:?} is not in its plain form"));
    }
    if depth == 0 || depth > MAX_DEPTH {
        return Err(format!("{p:?} has {depth} parts (1 to {MAX_DEPTH})"));
    }
    Ok(path)
}

/// `root` + an absolute path.
pub fn under(root: &Path, abs: &Path) -> PathBuf {
    root.join(abs.strip_prefix("/").unwrap_or(abs))
}

/// Links the cached file `from` to `dest`, or copies it across file systems.
fn link(from: &Path, dest: &Path) -> io::Result<()> {
    match fs::hard_link(from, dest) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => fs::copy(from, dest).map(|_| ()),
        r => r,
    }
}

/// The master's files as one job sees them, kept for the next job (see the module doc).
/// Dropping it removes it.
#[derive(Debug)]
pub struct Mirror {
    root: PathBuf,
    /// The files it holds (checked absolute paths) and their contents' hashes.
    files: HashMap<String, Digest>,
    /// The directories it holds, the root's own excepted.
    dirs: HashSet<PathBuf>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

impl Mirror {
    /// An empty mirror at `dir` (mode 0700, made here).
    fn create(dir: PathBuf) -> io::Result<Mirror> {
        fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Mirror {
            root: dir,
            files: HashMap::new(),
            dirs: HashSet::new(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes the mirror hold `files` (checked paths) and the directories `dirs` (absolute,
    /// plain) with every ancestor of both, and nothing else: what differs from the last job
    /// is removed, what is missing is linked from `cache`. Returns the indexes of the files
    /// neither here nor in the cache, to be `place`d as they come. A path named twice keeps
    /// its first entry. On an error the mirror is in no known state: drop it.
    pub fn lay_out(
        &mut self,
        files: &[FileEntry],
        dirs: impl IntoIterator<Item = PathBuf>,
        cache: &Cache,
    ) -> io::Result<Vec<u32>> {
        let mut want: HashMap<&str, (u32, &Digest)> = HashMap::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            want.entry(f.path.as_str()).or_insert((i as u32, &f.hash));
        }
        // Files first, so that the directories left behind are empty.
        let mut gone = Vec::new();
        for (path, hash) in &self.files {
            if want.get(path.as_str()).map(|w| w.1) != Some(hash) {
                fs::remove_file(under(&self.root, Path::new(path)))?;
                gone.push(path.clone());
            }
        }
        for path in gone {
            self.files.remove(&path);
        }
        let mut wanted_dirs: HashSet<PathBuf> = HashSet::new();
        let files_dirs = want.keys().filter_map(|p| Path::new(p).parent());
        for d in dirs.into_iter().chain(files_dirs.map(Path::to_path_buf)) {
            let mut at = Some(d.as_path());
            while let Some(a) = at.filter(|a| *a != Path::new("/")) {
                if !wanted_dirs.insert(a.to_path_buf()) {
                    break;
                }
                at = a.parent();
            }
        }
        // Deepest first: a directory's children go before it. rmdir fails on anything
        // left in it that this mirror did not put there.
        let mut stale: Vec<PathBuf> = self.dirs.difference(&wanted_dirs).cloned().collect();
        stale.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in stale {
            fs::remove_dir(under(&self.root, &d))?;
            self.dirs.remove(&d);
        }
        // Parents first: a prefix sorts before the paths it starts.
        let mut new: Vec<&PathBuf> = wanted_dirs.difference(&self.dirs).collect();
        new.sort();
        for d in new {
            fs::create_dir(under(&self.root, d))?;
        }
        self.dirs = wanted_dirs;
        let mut needed = Vec::new();
        for (i, f) in files.iter().enumerate() {
            if want.get(f.path.as_str()).map(|w| w.0) != Some(i as u32)
                || self.files.contains_key(&f.path)
            {
                continue;
            }
            match cache.get(&f.hash) {
                Some(cached) => self.place(&f.path, f.hash, &cached)?,
                None => needed.push(i as u32),
            }
        }
        Ok(needed)
    }

    /// Places the cached file `from` at `path` (laid out by `lay_out`, not yet here).
    pub fn place(&mut self, path: &str, hash: Digest, from: &Path) -> io::Result<()> {
        link(from, &under(&self.root, Path::new(path)))?;
        self.files.insert(path.to_string(), hash);
        Ok(())
    }

    /// Writes `data` (of hash `hash`, checked) at `path`: a file too large for the cache.
    pub fn write(&mut self, path: &str, hash: Digest, data: &[u8]) -> io::Result<()> {
        fs::write(under(&self.root, Path::new(path)), data)?;
        self.files.insert(path.to_string(), hash);
        Ok(())
    }
}

/// The mirrors no job is using, most recently used last, and how long they are kept.
pub struct Mirrors {
    dir: PathBuf,
    prefix: String,
    made: u64,
    idle: Vec<Mirror>,
    keep: usize,
    last_use: Instant,
}

/// How long idle mirrors outlive the last job that used one: a box that is not building
/// gives back their disk and memory.
pub const MIRRORS_KEPT_FOR: Duration = Duration::from_secs(60);

impl Mirrors {
    /// Mirrors under `dir` named `PREFIX-mN`, at most `keep` of them idle.
    pub fn new(dir: &Path, prefix: String, keep: usize) -> Mirrors {
        Mirrors {
            dir: dir.to_path_buf(),
            prefix,
            made: 0,
            idle: Vec::new(),
            keep,
            last_use: Instant::now(),
        }
    }

    /// The mirror the last finished job used, or a new empty one.
    pub fn take(&mut self) -> io::Result<Mirror> {
        self.last_use = Instant::now();
        if let Some(m) = self.idle.pop() {
            return Ok(m);
        }
        self.made += 1;
        Mirror::create(self.dir.join(format!("{}-m{}", self.prefix, self.made)))
    }

    /// Takes back a mirror whose job is over.
    pub fn give(&mut self, m: Mirror) {
        self.last_use = Instant::now();
        self.idle.push(m);
        if self.idle.len() > self.keep {
            self.idle.remove(0);
        }
    }

    /// Removes the idle mirrors once none was used for `MIRRORS_KEPT_FOR`.
    pub fn expire(&mut self, now: Instant) {
        if !self.idle.is_empty() && now.duration_since(self.last_use) >= MIRRORS_KEPT_FOR {
            self.idle.clear();
        }
    }

    pub fn idle(&self) -> usize {
        self.idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_absolute_paths_pass() {
        for good in ["/usr/include/stdio.h", "/w/lua/lvm.c", "/a b/c#d.h"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in [
            "usr/include/stdio.h",
            "/usr/../etc/shadow",
            "/usr/./include",
            "/usr//include",
            "/usr/include/",
            "/",
            "/a\0b",
            "",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path(&format!("/{}", "a/".repeat(70) + "b")).is_err());
        assert!(check_path(&format!("/{}", "a".repeat(5000))).is_err());
    }

    /// Everything under `dir`: each path, and a file's content (`None`: a directory).
    fn walk(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                if e.file_type().unwrap().is_dir() {
                    out.push((rel, None));
                    todo.push(p);
                } else {
                    out.push((rel, Some(fs::read(&p).unwrap())));
                }
            }
        }
        out.sort();
        out
    }

    fn entries(files: &[(&str, &[u8])]) -> Vec<FileEntry> {
        files
            .iter()
            .map(|(p, d)| FileEntry {
                path: p.to_string(),
                size: d.len() as u64,
                hash: crate::sha256::digest(d),
            })
            .collect()
    }

    fn inode(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn a_reused_mirror_holds_what_a_fresh_one_would() {
        let d = std::env::temp_dir().join(format!("rcc-mirror-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let mut cache = Cache::open(&d.join("cache"), 1 << 20).unwrap();
        let mut mirrors = Mirrors::new(&d, "m".into(), 1);
        // Lays `files` out in `m` as a job would: from the cache, the rest as it comes.
        let mut job = |m: &mut Mirror, files: &[(&str, &[u8])], dirs: &[&str]| {
            let e = entries(files);
            let dirs = dirs.iter().map(PathBuf::from);
            for i in m.lay_out(&e, dirs, &cache).unwrap() {
                let f = &e[i as usize];
                let data = files[i as usize].1;
                let cached = cache.put(&f.hash, data).unwrap();
                m.place(&f.path, f.hash, &cached).unwrap();
            }
        };
        let first: &[(&str, &[u8])] = &[
            ("/w/p/x.c", b"#include <a.h>\n"),
            ("/w/a.h", b"int a;\n"),
            ("/usr/include/deep/er/b.h", b"int b;\n"),
            ("/w/p/x.c", b"a path named twice keeps its first entry"),
        ];
        let second: &[(&str, &[u8])] = &[
            ("/w/p/y.c", b"#include <a.h>\n"),
            ("/w/a.h", b"int a = 2;\n"),
            ("/w/p/x.c/c.h", b"a directory where a file was\n"),
            ("/usr/include/stdio.h", b"\n"),
        ];
        let mut m = mirrors.take().unwrap();
        job(&mut m, first, &["/w/p/inc", "/w/p/sub"]);
        assert_eq!(fs::read(m.root().join("w/p/x.c")).unwrap(), first[0].1);
        assert!(m.root().join("w/p/inc").is_dir());
        job(&mut m, second, &["/w/p"]);
        let mut fresh = Mirror::create(d.join("fresh")).unwrap();
        job(&mut fresh, second, &["/w/p"]);
        assert_eq!(walk(m.root()), walk(fresh.root()));
        assert_eq!(walk(m.root()).len(), 9, "{:?}", walk(m.root()));
        // Back to the pool and out again: what did not change is left as it was.
        let root = m.root().to_path_buf();
        let kept = inode(&root.join("w/a.h"));
        mirrors.give(m);
        let mut m = mirrors.take().unwrap();
        assert_eq!(m.root(), root);
        job(&mut m, &second[1..], &[]);
        assert_eq!(inode(&root.join("w/a.h")), kept);
        // Something the mirror did not put there stops a layout that would remove its
        // directory: the mirror is then dropped, never used as it is.
        fs::write(root.join("w/p/stray.h"), "").unwrap();
        let e = entries(&[("/usr/include/stdio.h", b"\n")]);
        assert!(m.lay_out(&e, [], &cache).is_err());
        drop(m);
        assert!(!root.exists());
        // Idle mirrors go after a while without jobs.
        let m = mirrors.take().unwrap();
        let root = m.root().to_path_buf();
        mirrors.give(m);
        mirrors.expire(Instant::now());
        assert_eq!(mirrors.idle(), 1);
        mirrors.expire(Instant::now() + MIRRORS_KEPT_FOR);
        assert_eq!(mirrors.idle(), 0);
        assert!(!root.exists());
        drop(fresh);
        fs::remove_dir_all(&d).unwrap();
    }
}
