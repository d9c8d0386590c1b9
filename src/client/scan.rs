//! Which files a compile may read, found without preprocessing: the source, the files the
//! compiler includes on its own (`stdc-predef.h`, `-include`, `-imacros`), and everything
//! reachable from them through include directives, each looked up the way gcc looks it up
//! (the includer's directory for `"..."`, then the quote paths, then the bracket chain; an
//! `#include_next` continues after the directory its includer came from).
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
use crate::includes::{Directive, Form};
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
    if crate::box_rules::is_plain(p.as_os_str().as_bytes()) {
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

/// The files a compile of `source` may read.
#[derive(Debug, Default)]
pub struct Closure {
    /// Absolute paths as the compiler opens them, each once, the source first.
    pub files: Vec<PathBuf>,
    /// Files only probed by `__has_include` (shipped so the answer is the same there).
    pub probed: Vec<PathBuf>,
    /// Why the closure cannot be trusted (a computed include), if so.
    pub unknowable: Option<String>,
    /// Every computed include: the file, the directive's text and the file's place in the
    /// bracket chain (where an `#include_next` continues).
    pub computed: Vec<Computed>,
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

/// Whether files exist, for one job's lookups. Most lookups try a directory of the search
/// path that has no such subdirectory at all (`<linux/x.h>` in `arch/arm64/include`), so
/// whether a directory exists is asked once per job and answers them all.
///
/// The scan server (`Dirs::kept`) also keeps each directory's names from job to job, so a
/// lookup costs no system call: each directory is checked once per job against its stamp
/// (`files::Stamp`), which any file created, removed or renamed in it changes. A
/// listing is trusted in a later job only once its directory has been still for
/// `SETTLED`: a file created in the same clock tick as the stamp was taken (timestamps are
/// coarse) would not change it.
#[derive(Default)]
pub struct Dirs {
    keep: bool,
    /// This job's answer for each directory asked about: whether it exists.
    exists: FastMap<OsString, bool>,
    listings: FastMap<OsString, Listing>,
}

/// How long a directory must have been unchanged for its listing to outlive the job.
const SETTLED: Duration = Duration::from_secs(2);

struct Listing {
    stamp: Stamp,
    trusted: bool,
    /// Regular files, and names a stat must tell (symlinks, unknown types); `None` when the
    /// directory cannot be listed (searchable, not readable): every lookup stats.
    names: Option<(FastSet<OsString>, FastSet<OsString>)>,
}

impl Dirs {
    /// Lookups for the scan server: listings kept across jobs.
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
        self.exists.clear();
    }

    /// Directories listed (what the server holds).
    pub fn held(&self) -> usize {
        self.listings.len()
    }

    pub fn forget(&mut self) {
        self.listings.clear();
        self.exists.clear();
    }

    fn is_file(&mut self, p: &Path) -> bool {
        let stat = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file());
        let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
            return stat(p);
        };
        if dir.as_os_str().is_empty() {
            return stat(p);
        }
        let exists = match self.exists.get(dir.as_os_str()) {
            Some(e) => *e,
            None => {
                let e = if self.keep {
                    self.check(dir)
                } else {
                    std::fs::metadata(dir).is_ok_and(|m| m.is_dir())
                };
                self.exists.insert(dir.as_os_str().to_owned(), e);
                e
            }
        };
        if !exists {
            return false;
        }
        match self
            .listings
            .get(dir.as_os_str())
            .and_then(|l| l.names.as_ref())
        {
            Some((files, other)) => files.contains(name) || (other.contains(name) && stat(p)),
            None => stat(p),
        }
    }

    /// Whether `dir` exists, with its listing brought up to date.
    fn check(&mut self, dir: &Path) -> bool {
        let m = match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => m,
            _ => {
                self.listings.remove(dir.as_os_str());
                return false;
            }
        };
        let stamp = Stamp::of(&m);
        if let Some(l) = self.listings.get(dir.as_os_str()) {
            if l.trusted && l.stamp == stamp {
                return true;
            }
        }
        // Listed after the stamp was taken: a file created in between is in the listing
        // and changes the stamp for the next job.
        let names = std::fs::read_dir(dir).ok().map(|entries| {
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
        self.listings.insert(
            dir.as_os_str().to_owned(),
            Listing {
                stamp,
                trusted: settled,
                names,
            },
        );
        true
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

/// Follows every include from `source` (absolute), the preincludes and `extra` (files found
/// for computed includes, with their chain index). `directives` reads one file's
/// directives (from a cache, or by scanning it).
pub fn closure(
    source: &Path,
    sp: &SearchPaths,
    extra: &[(PathBuf, Option<usize>)],
    dirs: &mut Dirs,
    mut directives: impl FnMut(&Path) -> io::Result<Rc<Vec<Directive>>>,
) -> io::Result<Closure> {
    let mut c = Closure::default();
    // By their bytes: hashing and comparing a `Path` goes component by component.
    let mut seen: FastSet<OsString> = FastSet::default();
    // (file, its bracket-chain index)
    let mut todo: Vec<(PathBuf, Option<usize>)> = Vec::new();
    let roots = std::iter::once(source)
        .chain(sp.preincludes.iter().map(|p| p.as_path()))
        .map(|p| (p, None))
        .chain(extra.iter().map(|(p, i)| (p.as_path(), *i)));
    for (p, chain) in roots {
        let p = clean(p);
        if seen.insert(p.clone().into_os_string()) {
            c.files.push(p.clone());
            todo.push((p, chain));
        }
    }
    // The same name is looked up from hundreds of headers (`<linux/types.h>`): a bracket
    // lookup depends only on the name and where in the chain it starts, so it is answered
    // once. (Quote lookups depend on the includer's directory too; they are cheap to keep.)
    let mut bracket_memo: FastMap<String, Vec<(usize, Option<Found>)>> = FastMap::default();
    // Bounded by the number of distinct files.
    while let Some((file, chain)) = todo.pop() {
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        for d in directives(&file)?.iter() {
            match d {
                Directive::Computed { line, text } => {
                    c.computed.push(Computed {
                        file: file.clone(),
                        text: text.clone(),
                        chain,
                    });
                    if c.unknowable.is_none() {
                        c.unknowable = Some(format!(
                            "{}:{line}: `{text}` names its file with a macro",
                            file.display()
                        ));
                    }
                }
                Directive::Include {
                    form,
                    name,
                    next,
                    probe,
                } => {
                    let (form, next, probe) = (*form, *next, *probe);
                    let found = if form == Form::Angle || next {
                        let start = if next { chain.map_or(0, |i| i + 1) } else { 0 };
                        let known = bracket_memo
                            .get(name.as_str())
                            .and_then(|v| v.iter().find(|(s, _)| *s == start));
                        match known {
                            Some((_, f)) => f.clone(),
                            None => {
                                let f = lookup(dirs, name, form, next, &dir, chain, sp);
                                bracket_memo
                                    .entry(name.clone())
                                    .or_default()
                                    .push((start, f.clone()));
                                f
                            }
                        }
                    } else {
                        lookup(dirs, name, form, next, &dir, chain, sp)
                    };
                    let Some(f) = found else {
                        // Not here, so not there either: the box sees the same absence.
                        continue;
                    };
                    if !seen.insert(f.path.clone().into_os_string()) {
                        continue;
                    }
                    if probe {
                        c.probed.push(f.path);
                    } else {
                        c.files.push(f.path.clone());
                        todo.push((f.path, f.chain));
                    }
                }
            }
        }
    }
    Ok(c)
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
