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
//! else — so the compile cannot tell. Two kernel files share most of their headers;
//! building and removing the whole mirror for each job (a link, an unlink and a touch per
//! file) was most of rccd's own CPU. While a job runs, its mirror is its own; the compiler
//! may only read it (the sandbox writes only to the job's dir).
//!
//! Every path a peer sends is checked before it touches the disk: absolute, no `.` or `..`
//! components, no NUL, bounded length and depth. Only regular files and directories are
//! made, never links a peer chose, so nothing here leads out of the mirror.
//!
//! What one manifest may cost the box is bounded before anything is made (`check_budget`):
//! a kernel job names hundreds of files in a hundred-odd directories, a big C++ unit a few
//! thousand files, so `MAX_FILES`, `MAX_DIRS` and `MAX_DEPTH` leave them room many times
//! over while a hostile manifest can no longer make millions of directories on the event
//! loop.

use super::cache::Cache;
use crate::sha256::Digest;
use crate::wire::protocol::FileEntry;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest path accepted, and most components (of a file's path, or of a directory the
/// mirror makes).
const MAX_PATH: usize = 4096;
pub const MAX_DEPTH: usize = 32;
/// Most files a manifest may name (the decoder's own cap: a longer list is not even read).
pub const MAX_FILES: usize = crate::wire::protocol::MAX_FILES;
/// Most directories a mirror may hold: the ancestors of every file and search directory.
/// A directory costs far more to make than a file (a `mkdir` is many times a link on a
/// loaded ext4), and all of it happens on the event loop.
pub const MAX_DIRS: usize = 512;

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
        return Err(format!(
            "{p:?} has {depth} parts (1 to {MAX_DEPTH}, the limit of path depth)"
        ));
    }
    Ok(path)
}

/// What laying out `files` (checked paths) and the search directories `dirs` (absolute,
/// plain) would make, checked before anything is made: at most `MAX_FILES` files and
/// `MAX_DIRS` directories, none deeper than `MAX_DEPTH`; no path named twice (which entry
/// the include checks judged and which one the compiler reads would be left to the order of
/// the work: a way to poison the verdicts; the client names each path once); no path both a
/// file and a directory. `Err` says which limit, and the number. Pure: one hash-set insert
/// per directory level.
pub fn check_budget(files: &[FileEntry], dirs: &[PathBuf]) -> Result<(), String> {
    if files.len() > MAX_FILES {
        return Err(format!(
            "the manifest names {} files, more than the limit of {MAX_FILES}",
            files.len()
        ));
    }
    let mut named: HashSet<&str> = HashSet::with_capacity(files.len());
    for f in files {
        if !named.insert(f.path.as_str()) {
            return Err(format!("the manifest names {:?} twice", f.path));
        }
    }
    // Every directory the mirror holds: each ancestor of a file or search directory.
    let mut made: HashSet<&str> = HashSet::new();
    let search = dirs
        .iter()
        .map(|d| d.to_str().ok_or("a search directory is not UTF-8"));
    let parents = files.iter().map(|f| Ok(parent_of(&f.path)));
    for d in search.chain(parents) {
        let mut at = d?;
        while at.len() > 1 && made.insert(at) {
            let depth = at.matches('/').count();
            if depth > MAX_DEPTH {
                return Err(format!(
                    "the directory {at:?} is {depth} deep, past the limit of {MAX_DEPTH}"
                ));
            }
            if made.len() > MAX_DIRS {
                return Err(format!(
                    "the job's files need more than {MAX_DIRS} directories (the limit)"
                ));
            }
            at = parent_of(at);
        }
    }
    for f in files {
        if made.contains(f.path.as_str()) {
            return Err(format!(
                "the manifest names {:?} both as a file and as a directory",
                f.path
            ));
        }
    }
    Ok(())
}

/// `/a/b` of `/a/b/c`; `/` of `/a`.
fn parent_of(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
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
    /// its first entry (a job's manifest never does: `check_budget` refuses it first). On an
    /// error the mirror is in no known state: drop it.
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
        self.remove_files_but(&want)?;
        let files_dirs = want.keys().filter_map(|p| Path::new(p).parent());
        let wanted = with_ancestors(dirs.into_iter().chain(files_dirs.map(Path::to_path_buf)));
        self.fit_dirs(wanted)?;
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

    /// Removes every file but those `want` names (by path, with the same hash).
    fn remove_files_but(&mut self, want: &HashMap<&str, (u32, &Digest)>) -> io::Result<()> {
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
        Ok(())
    }

    /// Makes the mirror's directories `wanted`: the others go, the missing are made.
    fn fit_dirs(&mut self, wanted: HashSet<PathBuf>) -> io::Result<()> {
        // Deepest first: a directory's children go before it. rmdir fails on anything
        // left in it that this mirror did not put there.
        let mut stale: Vec<PathBuf> = self.dirs.difference(&wanted).cloned().collect();
        stale.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in stale {
            fs::remove_dir(under(&self.root, &d))?;
            self.dirs.remove(&d);
        }
        // Parents first: a prefix sorts before the paths it starts.
        let mut new: Vec<&PathBuf> = wanted.difference(&self.dirs).collect();
        new.sort();
        for d in new {
            fs::create_dir(under(&self.root, d))?;
        }
        self.dirs = wanted;
        Ok(())
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

    /// Removes every idle mirror now (the disk is full: the cache's files they link free
    /// nothing while they stay); how many there were.
    pub fn drop_idle(&mut self) -> usize {
        let n = self.idle.len();
        self.idle.clear();
        n
    }
}

/// `dirs` (absolute, plain) and every ancestor of each but `/`.
fn with_ancestors(dirs: impl Iterator<Item = PathBuf>) -> HashSet<PathBuf> {
    let mut all: HashSet<PathBuf> = HashSet::new();
    for d in dirs {
        let mut at = Some(d.as_path());
        while let Some(a) = at.filter(|a| *a != Path::new("/")) {
            if !all.insert(a.to_path_buf()) {
                break;
            }
            at = a.parent();
        }
    }
    all
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

    #[test]
    fn a_manifests_cost_is_bounded_before_anything_is_made() {
        let e = |paths: &[String]| -> Vec<FileEntry> {
            paths
                .iter()
                .map(|p| FileEntry {
                    path: p.clone(),
                    size: 0,
                    hash: [0; 32],
                })
                .collect()
        };
        let ok = |files: &[String], dirs: &[&str]| {
            let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
            check_budget(&e(files), &dirs)
        };
        let paths = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        // A kernel-sized job passes: 650 files in 150 directories.
        let kernel: Vec<String> = (0..650)
            .map(|i| format!("/src/linux/include/d{}/f{i}.h", i % 150))
            .collect();
        assert_eq!(ok(&kernel, &["/src/linux", "/src/linux/include"]), Ok(()));
        // Files at the cap pass, one more does not.
        let at_cap: Vec<String> = (0..MAX_FILES)
            .map(|i| format!("/w/d{}/f{i}", i % 64))
            .collect();
        assert_eq!(ok(&at_cap, &[]), Ok(()));
        let over: Vec<String> = (0..=MAX_FILES).map(|i| format!("/w/f{i}")).collect();
        let err = ok(&over, &[]).unwrap_err();
        assert!(err.contains("8193 files") && err.contains("8192"), "{err}");
        // Directories: made by files and by search directories alike.
        let dirs: Vec<String> = (0..MAX_DIRS).map(|i| format!("/d{i}/f.h")).collect();
        assert_eq!(ok(&dirs, &[]), Ok(()));
        let err = ok(&dirs, &["/one/more"]).unwrap_err();
        assert!(err.contains("more than 512 directories"), "{err}");
        let many: Vec<String> = (0..=MAX_DIRS / 2).map(|i| format!("/a{i}/b/f.h")).collect();
        assert!(ok(&many, &[]).unwrap_err().contains("512"));
        // Depth: a search directory deeper than a file may be.
        let deep = format!("/{}", vec!["d"; MAX_DEPTH + 1].join("/"));
        let err = ok(&paths(&["/w/a.c"]), &[&deep]).unwrap_err();
        assert!(err.contains("33 deep") && err.contains("32"), "{err}");
        let deepest = format!("/{}", vec!["d"; MAX_DEPTH].join("/"));
        assert_eq!(ok(&paths(&["/w/a.c"]), &[&deepest]), Ok(()));
        // One path twice, and a path both a file and a directory.
        let two = |a: u8, b: u8| {
            let mut v = e(&paths(&["/w/a.h", "/w/b.h", "/w/a.h"]));
            (v[0].hash[0], v[2].hash[0]) = (a, b);
            check_budget(&v, &[])
        };
        let err = two(1, 2).unwrap_err();
        assert!(err.contains("\"/w/a.h\" twice"), "{err}");
        let err = two(1, 1).unwrap_err();
        assert!(
            err.contains("\"/w/a.h\" twice"),
            "with the same content too: {err}"
        );
        let err = ok(&paths(&["/w/a.h", "/w/a.h/b.h"]), &[]).unwrap_err();
        assert!(err.contains("both as a file and as a directory"), "{err}");
        let err = ok(&paths(&["/w/a.h/b.h", "/w/a.h"]), &[]).unwrap_err();
        assert!(err.contains("\"/w/a.h\""), "{err}");
        assert!(ok(&paths(&["/w/inc"]), &["/w/inc"]).is_err());
        assert_eq!(ok(&paths(&["/w/inc.h"]), &["/w/inc"]), Ok(()));
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
