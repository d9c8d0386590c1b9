//! Which files a compile may read, found without preprocessing (`include_closure`): the
//! source, the files the compiler includes on its own (`stdc-predef.h`, `-include`,
//! `-imacros`), and everything reachable from them through include directives, each looked
//! up the way gcc looks it up (the includer's directory for `"..."`, then the quote paths,
//! then the bracket chain; an `#include_next` continues after the directory its includer
//! came from).
//!
//! The search paths are the compiler's own answer (`gcc ARGS -v -M` on an empty input): gcc
//! drops missing and duplicate directories and knows its system directories, so asking it is
//! the only way to be exact; the same run lists what it reads before any source (the
//! implicit `stdc-predef.h`, `-include` and `-imacros` files and what they include), which
//! become roots of the scan. A box that gets exactly these files, at these paths, and no
//! other system directories, finds the same file for every name gcc looks up here: each
//! lookup's first hit is shipped, and nothing that is not here exists there.

use super::files::Stamp;
use crate::fasthash::{FastMap, FastSet};
use crate::rules::includes::{Directive, Form};
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the compiler looks, as it said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchPaths {
    /// `#include "..."` only (`-iquote`), after the includer's directory.
    pub quote: Vec<PathBuf>,
    /// Both forms: `-I`, `-isystem`, the system directories, `-idirafter`, in order.
    pub bracket: Vec<PathBuf>,
    /// Files the compiler reads before the source (`stdc-predef.h`, `-include`, `-imacros`
    /// and what they include), in order.
    pub preincludes: Vec<PathBuf>,
    /// Directories named on the command line that gcc left out because they did not exist.
    /// If one appears later (a build creating `include/generated`), the lists are stale.
    pub missing: Vec<PathBuf>,
    /// `quote` and `bracket` as gcc printed them (relative where the command was): the
    /// strings gcc joins with a header's name, so the names it records (`__FILE__`, debug
    /// info, dependency files) come from these.
    pub quote_raw: Vec<String>,
    pub bracket_raw: Vec<String>,
}

impl SearchPaths {
    /// Text for the probe cache: one `kind path` line each.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        for (kind, list) in [
            ('q', &self.quote),
            ('b', &self.bracket),
            ('p', &self.preincludes),
            ('m', &self.missing),
        ] {
            for p in list {
                s.push(kind);
                s.push(' ');
                s.push_str(&p.to_string_lossy());
                s.push('\n');
            }
        }
        for (kind, list) in [('Q', &self.quote_raw), ('B', &self.bracket_raw)] {
            for p in list {
                s.push(kind);
                s.push(' ');
                s.push_str(p);
                s.push('\n');
            }
        }
        s
    }

    pub fn decode(text: &str) -> Option<SearchPaths> {
        let mut sp = SearchPaths::default();
        for line in text.lines() {
            let (kind, path) = line.split_once(' ')?;
            match kind {
                "Q" => {
                    sp.quote_raw.push(path.to_string());
                    continue;
                }
                "B" => {
                    sp.bracket_raw.push(path.to_string());
                    continue;
                }
                _ => {}
            }
            let list = match kind {
                "q" => &mut sp.quote,
                "b" => &mut sp.bracket,
                "p" => &mut sp.preincludes,
                "m" => &mut sp.missing,
                _ => return None,
            };
            list.push(PathBuf::from(path));
        }
        Some(sp)
    }

    /// Still true: every directory gcc left out is still missing.
    pub fn still_true(&self) -> bool {
        self.missing.iter().all(|d| !d.exists())
    }
}

/// Asks `compiler` where it looks with `args` (the compile's own options: its `-I`, `-isystem`,
/// `-nostdinc`, `-include`, `--sysroot`, `-m` and `-std` settings all matter) for language
/// `lang` (gcc's `-x` name), run in `cwd`.
pub fn probe(
    compiler: &Path,
    args: &[OsString],
    lang: &str,
    cwd: &Path,
) -> io::Result<SearchPaths> {
    let out = ask(compiler, args, &["-v", "-M"], lang, cwd, "its search paths")?;
    let mut sp = parse_probe(&String::from_utf8_lossy(&out.stderr), cwd);
    sp.preincludes = parse_deps(&String::from_utf8_lossy(&out.stdout), cwd)
        .into_iter()
        .filter(|p| p != Path::new("/dev/null"))
        .collect();
    Ok(sp)
}

/// The macros `compiler` defines on its own with `args` (`gcc ARGS -dM -E` on an empty
/// input): with the `-include` files' and the target's, as `#define` lines.
pub fn predefined(
    compiler: &Path,
    args: &[OsString],
    lang: &str,
    cwd: &Path,
) -> io::Result<Vec<u8>> {
    Ok(ask(compiler, args, &["-dM", "-E"], lang, cwd, "its macros")?.stdout)
}

/// Runs `compiler ARGS MODE -x LANG /dev/null` in `cwd` in the C locale; `what` it was
/// asked for names it in the error.
fn ask(
    compiler: &Path,
    args: &[OsString],
    mode: &[&str],
    lang: &str,
    cwd: &Path,
    what: &str,
) -> io::Result<std::process::Output> {
    let out = Command::new(compiler)
        .args(args)
        .args(mode)
        .args(["-x", lang, "/dev/null"])
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} {} could not tell {what} ({})",
            compiler.display(),
            mode.join(" "),
            out.status
        )));
    }
    Ok(out)
}

/// The prerequisites of a make rule as gcc writes it (`target: a b \` continued lines;
/// spaces in names escaped with a backslash).
pub fn parse_deps(text: &str, cwd: &Path) -> Vec<PathBuf> {
    let joined = text.replace("\\\n", " ");
    let Some((_, deps)) = joined.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            ' ' | '\t' | '\n' => {
                if !cur.is_empty() {
                    out.push(clean(&cwd.join(std::mem::take(&mut cur))));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(clean(&cwd.join(cur)));
    }
    out
}

/// Reads the search lists `gcc -v` printed.
pub fn parse_probe(text: &str, cwd: &Path) -> SearchPaths {
    let mut sp = SearchPaths::default();
    let mut list: Option<bool> = None; // Some(true): quote list, Some(false): bracket list
    for line in text.lines() {
        if line.starts_with("#include \"...\" search starts here") {
            list = Some(true);
            continue;
        }
        if line.starts_with("#include <...> search starts here") {
            list = Some(false);
            continue;
        }
        if line.starts_with("End of search list") {
            list = None;
            continue;
        }
        if let Some(rest) = line.strip_prefix("ignoring nonexistent directory \"") {
            if let Some(dir) = rest.strip_suffix('"') {
                sp.missing.push(clean(&cwd.join(dir)));
            }
            continue;
        }
        match list {
            Some(quote) if line.starts_with(' ') => {
                // gcc marks framework directories (macOS) with a suffix; not on Linux.
                let raw = line.trim();
                let dir = clean(&cwd.join(raw));
                if quote {
                    sp.quote.push(dir);
                    sp.quote_raw.push(raw.to_string());
                } else {
                    sp.bracket.push(dir);
                    sp.bracket_raw.push(raw.to_string());
                }
            }
            _ => {}
        }
    }
    sp
}

/// `p` with `.` components dropped and no trailing slash; `..` is kept (it is resolved
/// against the real directories, as the compiler does).
pub fn clean(p: &Path) -> PathBuf {
    if crate::rules::box_rules::is_plain(p.as_os_str().as_bytes()) {
        return p.to_path_buf();
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The include closure of a compile: the files it may read.
#[derive(Debug, Default)]
pub struct IncludeClosure {
    /// Absolute paths as the compiler opens them, each once, the source first.
    pub files: Vec<PathBuf>,
    /// Files only probed by `__has_include` (shipped so the answer is the same there).
    pub probed: Vec<PathBuf>,
    /// Why the closure cannot be trusted (a computed include), if so.
    pub unknowable: Option<String>,
    /// Every computed include: the file, the directive's text and the file's place in the
    /// bracket chain (where an `#include_next` continues).
    pub computed: Vec<Computed>,
    /// Why the box could not be trusted to open what gcc opens here, if so: the job is
    /// preprocessed here.
    pub refused: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Computed {
    pub file: PathBuf,
    pub text: String,
    pub chain: Option<usize>,
}

/// A file found through lookup: its path and, when it came from the bracket chain, the
/// chain index (for `#include_next`).
#[derive(Clone)]
struct Found {
    path: PathBuf,
    chain: Option<usize>,
}

/// An include followed: the file it found (its number in `Dirs`), the file's chain index, and
/// whether `__has_include` only probed it.
#[derive(Clone, Copy)]
struct Edge {
    file: u32,
    chain: Option<usize>,
    probe: bool,
}

/// A file the walk follows: its number in `Dirs`, its chain index, and how the walk came
/// to it.
#[derive(Clone, Copy)]
struct Visit {
    file: u32,
    chain: Option<usize>,
    origin: Origin,
}

/// Whether files exist, for the lookups of a scan. Most lookups try a directory of the search
/// path that has no such subdirectory at all (`<linux/x.h>` in `arch/arm64/include`), so
/// whether a directory exists is asked once per job and answers them all.
///
/// The scan server (`Dirs::kept`) also keeps each directory's names from job to job, so a
/// lookup costs no system call: each directory is checked once per job against its stamp
/// (`files::Stamp`), which any file created, removed or renamed in it changes. A
/// listing is trusted in a later job only once its directory has been still for
/// `SETTLED`: a file created in the same clock tick as the stamp was taken (timestamps are
/// coarse) would not change it.
///
/// The server also keeps where each file's includes led (`Resolved`), with the version of
/// every directory those lookups consulted. A later job that finds the file's directives
/// unchanged (the same scan: its stamp held) and each of those directories as it was takes
/// the answer without a lookup. An answer that needed a stat (a symlink, a directory that
/// cannot be listed) is not kept: no directory's version tells when it changes.
#[derive(Default)]
pub struct Dirs {
    keep: bool,
    /// Counts jobs: a directory is checked once per job.
    job: u64,
    /// Counts walks (a job may walk more than once): a file is followed once per walk.
    walk: u64,
    dir_ids: FastMap<OsString, u32>,
    dirs: Vec<Dir>,
    file_ids: FastMap<OsString, u32>,
    /// Each file numbered, with the walks that last followed and last probed it.
    files: Vec<Numbered>,
    searches: FastMap<String, u32>,
    resolved: FastMap<ResolvedKey, Resolved>,
    /// While the server resolves a file: the directories consulted, at their versions.
    consulted: Option<Vec<(u32, u64)>>,
    /// Whether an answer since the last look came from a stat.
    stated: bool,
}

/// How long a directory must have been unchanged for its listing to outlive the job.
const SETTLED: Duration = Duration::from_secs(2);

/// How a walk came to a file: what an `#include_next` in it continues from depends on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Origin {
    /// The job's source: gcc takes an `#include_next` there as a plain `#include`.
    Source,
    /// A file gcc reads before the source (`-include`, `stdc-predef.h`), found by a path
    /// the scan does not know.
    Preinclude,
    /// Reached by an include.
    Included,
}

struct Numbered {
    path: PathBuf,
    followed: u64,
    probed: u64,
}

struct Dir {
    path: PathBuf,
    /// The job it was last checked in, and whether it existed then.
    checked: u64,
    exists: bool,
    /// Changes whenever what a lookup in it answers may have changed.
    version: u64,
    listing: Option<Listing>,
}

struct Listing {
    stamp: Stamp,
    trusted: bool,
    /// Regular files, and names a stat must tell (symlinks, unknown types); `None` when the
    /// directory cannot be listed (searchable, not readable): every lookup stats.
    names: Option<(FastSet<OsString>, FastSet<OsString>)>,
}

/// What an answer of `Dirs::includes` is kept under: the search path's number, the file's,
/// its chain index and how the walk came to it.
type ResolvedKey = (u32, u32, Option<usize>, Origin);

/// Where a file's includes led, and what that depended on.
struct Resolved {
    /// The directives it was found from: the same `Rc` for as long as the file's stamp holds.
    directives: Rc<Vec<Directive>>,
    edges: Rc<[Edge]>,
    /// Why the file's includes cannot be followed as gcc follows them, if so.
    refused: Option<String>,
    consulted: Box<[(u32, u64)]>,
}

/// One walk's bracket lookups: a bracket lookup depends only on the name and where in the
/// chain it starts, so the same name from hundreds of headers (`<linux/types.h>`) is looked
/// up once; with what the lookup consulted and whether it stat'ed.
type BracketMemo = FastMap<String, Vec<(usize, Option<Found>, Vec<(u32, u64)>, bool)>>;

/// Checks directory `d` once in job `job`: whether it exists and, when listings are kept,
/// its listing (read again when its stamp changed or it was not yet trusted).
fn refresh(d: &mut Dir, job: u64, keep: bool) {
    if d.checked == job {
        return;
    }
    d.checked = job;
    let m = match std::fs::metadata(&d.path) {
        Ok(m) if m.is_dir() => m,
        _ => {
            if d.exists {
                d.version += 1;
            }
            d.exists = false;
            d.listing = None;
            return;
        }
    };
    if !keep {
        d.exists = true;
        return;
    }
    let stamp = Stamp::of(&m);
    if d.exists
        && d.listing
            .as_ref()
            .is_some_and(|l| l.trusted && l.stamp == stamp)
    {
        return;
    }
    // Listed after the stamp was taken: a file created in between is in the listing
    // and changes the stamp for the next job.
    let names = std::fs::read_dir(&d.path).ok().map(|entries| {
        let (mut files, mut other) = (FastSet::default(), FastSet::default());
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_file() => files.insert(e.file_name()),
                Ok(t) if t.is_dir() => false,
                _ => other.insert(e.file_name()),
            };
        }
        (files, other)
    });
    let settled = SystemTime::now()
        .checked_sub(SETTLED)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .is_some_and(|t| (m.mtime().max(m.ctime()) as u64) < t.as_secs());
    d.exists = true;
    d.listing = Some(Listing {
        stamp,
        trusted: settled,
        names,
    });
    d.version += 1;
}

impl Dirs {
    /// Lookups for the scan server: listings and answers kept across jobs.
    pub fn kept() -> Dirs {
        Dirs {
            keep: true,
            ..Dirs::default()
        }
    }

    /// Whether this keeps what it learns from job to job (the scan server's).
    pub fn keeps(&self) -> bool {
        self.keep
    }

    /// Starts the next job: every directory is checked again when it is first asked about.
    pub fn next_job(&mut self) {
        self.job += 1;
    }

    /// Directories known, and files numbered and answers kept (what the server holds).
    pub fn held(&self) -> (usize, usize) {
        (self.dirs.len(), self.files.len() + self.resolved.len())
    }

    pub fn forget(&mut self) {
        self.dir_ids.clear();
        self.dirs.clear();
        self.file_ids.clear();
        self.files.clear();
        self.searches.clear();
        self.resolved.clear();
    }

    fn dir_id(&mut self, dir: &Path) -> u32 {
        if let Some(&id) = self.dir_ids.get(dir.as_os_str()) {
            return id;
        }
        let id = self.dirs.len() as u32;
        self.dirs.push(Dir {
            path: dir.to_path_buf(),
            checked: u64::MAX,
            exists: false,
            version: 0,
            listing: None,
        });
        self.dir_ids.insert(dir.as_os_str().to_owned(), id);
        id
    }

    fn file_id(&mut self, path: PathBuf) -> u32 {
        if let Some(&id) = self.file_ids.get(path.as_os_str()) {
            return id;
        }
        let id = self.files.len() as u32;
        self.file_ids.insert(path.as_os_str().to_owned(), id);
        self.files.push(Numbered {
            path,
            followed: 0,
            probed: 0,
        });
        id
    }

    /// Whether this walk follows file `id` for the first time (and now it does).
    fn first_visit(&mut self, id: u32) -> bool {
        let f = &mut self.files[id as usize];
        let first = f.followed != self.walk;
        f.followed = self.walk;
        first
    }

    /// Whether this walk meets file `id` for the first time, only probed by `__has_include`
    /// (and now it has).
    fn first_probe(&mut self, id: u32) -> bool {
        let f = &mut self.files[id as usize];
        let first = f.followed != self.walk && f.probed != self.walk;
        f.probed = self.walk;
        first
    }

    fn path(&self, id: u32) -> &Path {
        &self.files[id as usize].path
    }

    fn search_id(&mut self, sp: &SearchPaths) -> u32 {
        let text = sp.encode();
        let next = self.searches.len() as u32;
        *self.searches.entry(text).or_insert(next)
    }

    fn is_file(&mut self, p: &Path) -> bool {
        let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
            return self.stat(p);
        };
        if dir.as_os_str().is_empty() {
            return self.stat(p);
        }
        let id = self.dir_id(dir);
        let d = &mut self.dirs[id as usize];
        refresh(d, self.job, self.keep);
        if let Some(c) = self.consulted.as_mut() {
            c.push((id, d.version));
        }
        if !d.exists {
            return false;
        }
        let listed = match d.listing.as_ref().and_then(|l| l.names.as_ref()) {
            Some((files, _)) if files.contains(name) => Some(true),
            Some((_, other)) if !other.contains(name) => Some(false),
            _ => None,
        };
        match listed {
            Some(answer) => answer,
            None => self.stat(p),
        }
    }

    /// Whether `p` is a file, by a stat: true now, but no directory's version says when that
    /// changes.
    fn stat(&mut self, p: &Path) -> bool {
        self.stated = true;
        std::fs::metadata(p).is_ok_and(|m| m.is_file())
    }

    /// Where the includes of the file `visit` follows (its `directives`) lead under `sp`
    /// (search path number `search`), or why the box cannot be trusted to follow them as gcc
    /// does.
    fn includes(
        &mut self,
        sp: &SearchPaths,
        search: u32,
        visit: Visit,
        directives: &Rc<Vec<Directive>>,
        bracket: &mut BracketMemo,
    ) -> (Rc<[Edge]>, Option<String>) {
        let key = (search, visit.file, visit.chain, visit.origin);
        if let Some(known) = self.still_resolved(&key, directives) {
            return known;
        }
        if self.keep {
            self.consulted = Some(Vec::new());
        }
        self.stated = false;
        let file = self.path(visit.file).to_path_buf();
        let dir = file.parent().unwrap_or(Path::new("/"));
        let mut edges = Vec::new();
        let mut refused = None;
        for d in directives.iter() {
            let Directive::Include {
                form,
                name,
                next,
                probe,
            } = d
            else {
                continue;
            };
            let (form, next, chain) = (*form, *next, visit.chain);
            if next && chain.is_none() && refused.is_none() {
                refused = self
                    .next_unfollowed(sp, name, visit.origin)
                    .map(|w| format!("{}: `#include_next` {w}", file.display()));
            }
            let look = |dirs: &mut Dirs| lookup(dirs, name, form, next, dir, chain, sp);
            let found = if form == Form::Angle || next {
                let start = if next { chain.map_or(0, |i| i + 1) } else { 0 };
                self.memo_bracket(bracket, name, start, look)
            } else {
                look(self)
            };
            // Not here, so not there either: the box sees the same absence.
            if let Some(f) = found {
                edges.push(Edge {
                    file: self.file_id(f.path),
                    chain: f.chain,
                    probe: *probe,
                });
            }
        }
        let edges: Rc<[Edge]> = edges.into();
        self.keep_resolved(key, directives, &edges, &refused);
        (edges, refused)
    }

    /// The answer kept for `key` (see `includes`), while the file's directives and every
    /// directory its lookups consulted are as they were.
    fn still_resolved(
        &mut self,
        key: &ResolvedKey,
        directives: &Rc<Vec<Directive>>,
    ) -> Option<(Rc<[Edge]>, Option<String>)> {
        let r = self.resolved.get(key)?;
        let (dirs, job) = (&mut self.dirs, self.job);
        let still = Rc::ptr_eq(&r.directives, directives)
            && r.consulted.iter().all(|&(d, version)| {
                let d = &mut dirs[d as usize];
                refresh(d, job, true);
                d.version == version
            });
        still.then(|| (Rc::clone(&r.edges), r.refused.clone()))
    }

    /// Why an `#include_next` of `name` in a file that did not come from the bracket chain
    /// is not followed here, if it is not. gcc continues an `#include_next` after the
    /// directory the file was found in: a place in the bracket chain, or for a file found
    /// beside its includer or through `-iquote`, the quote chain (the `-iquote` directories,
    /// then the whole bracket chain), which this follows only while no quote directory has
    /// the name. From the source itself it is a plain `#include`, and how gcc found a
    /// preinclude is not known here: those are left to the preprocessor.
    fn next_unfollowed(
        &mut self,
        sp: &SearchPaths,
        name: &str,
        origin: Origin,
    ) -> Option<&'static str> {
        match origin {
            Origin::Source => Some("in the source itself"),
            Origin::Preinclude => Some("in a file read before the source"),
            Origin::Included => sp
                .quote
                .iter()
                .any(|q| self.is_file(&clean(&q.join(name))))
                .then_some("that the quote chain would answer"),
        }
    }

    /// What `look` finds for a bracket lookup of `name` from chain index `start`: once per
    /// walk, then from `bracket`, with what the lookup consulted and whether it stat'ed.
    fn memo_bracket(
        &mut self,
        bracket: &mut BracketMemo,
        name: &str,
        start: usize,
        look: impl FnOnce(&mut Dirs) -> Option<Found>,
    ) -> Option<Found> {
        let known = bracket
            .get(name)
            .and_then(|v| v.iter().find(|(s, ..)| *s == start));
        if let Some((_, f, consulted, stated)) = known {
            if let Some(c) = self.consulted.as_mut() {
                c.extend_from_slice(consulted);
            }
            self.stated |= *stated;
            return f.clone();
        }
        let mark = self.consulted.as_ref().map_or(0, |c| c.len());
        let before = std::mem::replace(&mut self.stated, false);
        let f = look(self);
        let consulted = self
            .consulted
            .as_ref()
            .map_or(Vec::new(), |c| c[mark..].to_vec());
        bracket.entry(name.to_string()).or_default().push((
            start,
            f.clone(),
            consulted,
            self.stated,
        ));
        self.stated |= before;
        f
    }

    /// Keeps where a file's includes led (the scan server's `Dirs` only), unless an answer
    /// came from a stat: no directory's version says when that changes.
    fn keep_resolved(
        &mut self,
        key: ResolvedKey,
        directives: &Rc<Vec<Directive>>,
        edges: &Rc<[Edge]>,
        refused: &Option<String>,
    ) {
        let Some(mut consulted) = self.consulted.take() else {
            return;
        };
        if self.stated {
            // Never good again: no directory's version says when it changes.
            self.resolved.remove(&key);
            return;
        }
        consulted.sort_unstable();
        consulted.dedup();
        self.resolved.insert(
            key,
            Resolved {
                directives: Rc::clone(directives),
                edges: Rc::clone(edges),
                refused: refused.clone(),
                consulted: consulted.into(),
            },
        );
    }
}

/// Looks `name` up as gcc would from a file in `dir` found at chain index `from`.
fn lookup(
    dirs: &mut Dirs,
    name: &str,
    form: Form,
    next: bool,
    dir: &Path,
    from: Option<usize>,
    sp: &SearchPaths,
) -> Option<Found> {
    if Path::new(name).is_absolute() {
        let p = clean(Path::new(name));
        return dirs.is_file(&p).then_some(Found {
            path: p,
            chain: None,
        });
    }
    if next {
        // After the includer's own directory in the chain (from the top when it did not come
        // from the chain, as gcc then does): the first hit, which is what gcc opens.
        let start = from.map_or(0, |i| i + 1).min(sp.bracket.len());
        return sp.bracket[start..]
            .iter()
            .enumerate()
            .map(|(k, d)| (start + k, clean(&d.join(name))))
            .find(|(_, p)| dirs.is_file(p))
            .map(|(i, path)| Found {
                path,
                chain: Some(i),
            });
    }
    if form == Form::Quote {
        let p = clean(&dir.join(name));
        if dirs.is_file(&p) {
            // Found beside its includer: not from the chain.
            return Some(Found {
                path: p,
                chain: None,
            });
        }
        if let Some(path) = sp
            .quote
            .iter()
            .map(|d| clean(&d.join(name)))
            .find(|p| dirs.is_file(p))
        {
            return Some(Found { path, chain: None });
        }
    }
    sp.bracket
        .iter()
        .enumerate()
        .map(|(i, d)| (i, clean(&d.join(name))))
        .find(|(_, p)| dirs.is_file(p))
        .map(|(i, path)| Found {
            path,
            chain: Some(i),
        })
}

/// Where gcc finds `name` (`#include_next` when `next`) from the file `includer`, which
/// it reached at bracket-chain index `chain`: the path and its own chain index.
pub fn find(
    name: &str,
    form: Form,
    next: bool,
    includer: &Path,
    chain: Option<usize>,
    sp: &SearchPaths,
) -> Option<(PathBuf, Option<usize>)> {
    let dir = includer.parent().unwrap_or(Path::new("/"));
    lookup(&mut Dirs::default(), name, form, next, dir, chain, sp).map(|f| (f.path, f.chain))
}

/// The include closure of `source` (absolute): every file reached by following the
/// includes from it, the preincludes and `extra` (files found for computed includes, with
/// their chain index). `directives` reads one file's directives (from a cache, or by
/// scanning it).
pub fn include_closure(
    source: &Path,
    sp: &SearchPaths,
    extra: &[(PathBuf, Option<usize>)],
    dirs: &mut Dirs,
    mut directives: impl FnMut(&Path) -> io::Result<Rc<Vec<Directive>>>,
) -> io::Result<IncludeClosure> {
    let mut c = IncludeClosure::default();
    dirs.walk += 1;
    let search = dirs.search_id(sp);
    let mut todo = c.roots(source, sp, extra, dirs);
    let mut bracket = BracketMemo::default();
    // Bounded by the number of distinct files.
    while let Some(visit) = todo.pop() {
        let file = dirs.path(visit.file).to_path_buf();
        let found = directives(&file)?;
        c.note(&file, visit.chain, &found);
        let (edges, refused) = dirs.includes(sp, search, visit, &found, &mut bracket);
        if c.refused.is_none() {
            c.refused = refused;
        }
        c.follow(&edges, dirs, &mut todo);
    }
    Ok(c)
}

impl IncludeClosure {
    /// Where the walk starts: the source, the preincludes and `extra`, each taken in once.
    fn roots(
        &mut self,
        source: &Path,
        sp: &SearchPaths,
        extra: &[(PathBuf, Option<usize>)],
        dirs: &mut Dirs,
    ) -> Vec<Visit> {
        let mut todo = Vec::new();
        let roots = std::iter::once(source)
            .chain(sp.preincludes.iter().map(|p| p.as_path()))
            .map(|p| (p, None))
            .chain(extra.iter().map(|(p, i)| (p.as_path(), *i)));
        for (n, (p, chain)) in roots.enumerate() {
            let file = dirs.file_id(clean(p));
            let origin = match n {
                0 => Origin::Source,
                n if n <= sp.preincludes.len() => Origin::Preinclude,
                _ => Origin::Included,
            };
            if dirs.first_visit(file) {
                self.files.push(dirs.path(file).to_path_buf());
                todo.push(Visit {
                    file,
                    chain,
                    origin,
                });
            }
        }
        todo
    }

    /// Notes what in `file` (reached at chain index `chain`) the scan cannot follow or the
    /// box would refuse.
    fn note(&mut self, file: &Path, chain: Option<usize>, directives: &[Directive]) {
        for d in directives {
            match d {
                Directive::Computed { line, text } => {
                    self.computed.push(Computed {
                        file: file.to_path_buf(),
                        text: text.clone(),
                        chain,
                    });
                    if self.unknowable.is_none() {
                        self.unknowable = Some(format!(
                            "{}:{line}: `{text}` names its file with a macro",
                            file.display()
                        ));
                    }
                }
                // The box would refuse the file: no use sending it.
                Directive::ReadsFiles if self.refused.is_none() => {
                    self.refused = Some(format!(
                        "{} {}",
                        file.display(),
                        crate::rules::includes::READS_FILES
                    ));
                }
                Directive::Clock { line } if self.refused.is_none() => {
                    self.refused = Some(format!(
                        "{}:{line}: {}",
                        file.display(),
                        crate::rules::includes::CLOCK
                    ));
                }
                _ => {}
            }
        }
    }

    /// Takes in the files `edges` lead to: a probed one as probed, an included one (first
    /// seen in this walk) to be followed.
    fn follow(&mut self, edges: &[Edge], dirs: &mut Dirs, todo: &mut Vec<Visit>) {
        for e in edges {
            if e.probe {
                if dirs.first_probe(e.file) {
                    self.probed.push(dirs.path(e.file).to_path_buf());
                }
                continue;
            }
            if !dirs.first_visit(e.file) {
                continue;
            }
            let path = dirs.path(e.file).to_path_buf();
            // Probed first (`#if __has_include(<x.h>)`), included now: followed after all.
            if dirs.files[e.file as usize].probed == dirs.walk {
                self.probed.retain(|p| *p != path);
            }
            self.files.push(path);
            todo.push(Visit {
                file: e.file,
                chain: e.chain,
                origin: Origin::Included,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gccs_verbose_output_gives_the_lists() {
        let text = "ignoring nonexistent directory \"/usr/local/include/x86_64-linux-gnu\"\n\
                    #include \"...\" search starts here:\n /q\n\
                    #include <...> search starts here:\n inc\n /usr/lib/gcc/x86_64-linux-gnu/12/include\n \
                    /usr/include\nEnd of search list.\n";
        let sp = parse_probe(text, Path::new("/work"));
        assert_eq!(sp.quote, [PathBuf::from("/q")]);
        assert_eq!(sp.bracket_raw[0], "inc");
        assert_eq!(
            sp.missing,
            [PathBuf::from("/usr/local/include/x86_64-linux-gnu")]
        );
        assert_eq!(SearchPaths::decode(&sp.encode()), Some(sp.clone()));
        assert!(sp.still_true());
        assert_eq!(
            sp.bracket,
            [
                PathBuf::from("/work/inc"),
                PathBuf::from("/usr/lib/gcc/x86_64-linux-gnu/12/include"),
                PathBuf::from("/usr/include")
            ]
        );
    }

    #[test]
    fn make_rules_as_gcc_writes_them() {
        let rule =
            "null.o: /dev/null /usr/include/stdc-predef.h \\\n ./include/a\\ b.h \\\n  x.h\n";
        assert_eq!(
            parse_deps(rule, Path::new("/w")),
            [
                PathBuf::from("/dev/null"),
                PathBuf::from("/usr/include/stdc-predef.h"),
                PathBuf::from("/w/include/a b.h"),
                PathBuf::from("/w/x.h")
            ]
        );
    }
}
