//! A job that ships its sources, on the box: check the manifest, lay out the job's private
//! mirror of the master's files from the cache (asking only for what is missing), take the
//! missing files as they come, check what the files include, and make the compiler's
//! command. The event loop drives it; `tree` and `cache` do the file work.
//!
//! What keeps a peer inside the mirror: every path is checked (`tree::check_path` for files;
//! search paths and the source may be relative or hold `..` the way gcc prints them, but may
//! never climb above the mirror's root); the compiler runs with `-nostdinc`, so only the
//! directories named here are searched, each under the mirror; every shipped file's include
//! directives are checked before the compiler starts — no absolute names, no `..` that climbs
//! out from where it is looked up, no `.incbin`/`.include`, a name computed by a macro only
//! through a plain macro name, and no plain `#define`/`-D` of such a macro to a name that
//! leaves the mirror — and the mirror holds only directories and regular files, never links.
//!
//! What a name computed by a macro opens only the preprocessor knows (and the macro may be
//! defined anywhere, even by `--define-macro=`), so such a job is first preprocessed with
//! `-H` (`audit::Audit`): gcc reports each header it opens, and the compile runs only if every one
//! lies inside the mirror and the preprocessing succeeded. `job` runs the two in turn.

use super::audit::Audit;
use super::cache::{Cache, PutError};
use super::job::Launch;
use super::tree::{self, Mirror, Mirrors};
use crate::box_args::BoxArgs;
use crate::box_rules::{ascent, depth, lexical};
use crate::includes::{self, Directive};
use crate::protocol::{Manifest, RejectReason};
use crate::sha256::Digest;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Why a sources job cannot go on, as the reply says it.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RejectReason,
    pub text: String,
}

fn bad(text: impl Into<String>) -> Refusal {
    Refusal {
        reason: RejectReason::BadRequest,
        text: text.into(),
    }
}

fn internal(text: impl Into<String>) -> Refusal {
    Refusal {
        reason: RejectReason::Internal,
        text: text.into(),
    }
}

/// A file that cannot be laid out: the box's problem when its disk is full or failing (the
/// client tries another box), the job's when its paths clash (a file where the manifest
/// also has a directory: the client preprocesses it at home).
fn layout_error(e: std::io::Error) -> Refusal {
    let text = format!("cannot lay out the job's files: {e}");
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT | libc::EIO | libc::EROFS | libc::ENOMEM) => {
            internal(text)
        }
        Some(_) if e.kind() == std::io::ErrorKind::PermissionDenied => internal(text),
        Some(_) => bad(text),
        None => internal(text),
    }
}

/// The suffixes of sources the box preprocesses (C and C++, as gcc names them).
const SOURCE_SUFFIXES: [&str; 10] = [
    "c", "cc", "cp", "cxx", "cpp", "CPP", "c++", "C", // C and C++
    "S", "sx", // assembler through the preprocessor
];

/// `p` as gcc would use it from `cwd`, checked to stay inside the mirror; its plain form
/// (for its depth and to make its directories).
fn inside(cwd: &Path, p: &str) -> Result<PathBuf, Refusal> {
    if p.is_empty() || p.contains(['\0', '\n', '\r']) || p.len() > 4096 {
        return Err(bad(format!(
            "path {p:?} is empty, too long or has a NUL byte or a line end"
        )));
    }
    // gcc reads an argument that starts with `-` as an option and one with `@` as a file
    // of more arguments, and a search path that starts with `=` or `$SYSROOT` as one in the
    // sysroot (`-I=/etc` is /etc): a relative path the box passes must start otherwise.
    if p.starts_with(['-', '@', '=']) || p.starts_with("$SYSROOT") {
        return Err(bad(format!(
            "path {p:?} starts with a character gcc would read as something other than a path; \
             name it ./{p} on the master"
        )));
    }
    let full = cwd.join(p);
    if ascent(&full) > 0 {
        return Err(bad(format!("path {p:?} climbs out of the job's files")));
    }
    Ok(lexical(&full))
}

/// Whether `path` is (or lies in) a precompiled header: gcc tries `NAME.gch`, and every
/// file in a directory `NAME.gch`, before the header `NAME` (clang's are `.pch`).
fn is_precompiled(path: &str) -> bool {
    path.split('/')
        .any(|c| c.ends_with(".gch") || c.ends_with(".pch"))
}

/// The directories a search path `p` needs in the mirror: the one it names and every one it
/// passes through before a `..` (gcc resolves `a/b/../c` through `a/b`, which must exist in
/// the mirror as it does on the master).
fn search_dirs(cwd: &Path, p: &str, out: &mut Vec<PathBuf>) {
    let mut at = PathBuf::from("/");
    for c in cwd.join(p).components() {
        match c {
            Component::Normal(n) => at.push(n),
            Component::ParentDir => {
                out.push(at.clone());
                at.pop();
            }
            _ => {}
        }
    }
    out.push(at);
}

/// What a file's content allows, known once per hash: whether it names a file the box must
/// not read, and how far its quoted `..` names climb.
struct Verdict {
    refused: Option<String>,
    ascent: usize,
    /// The macros its computed includes name (which may be defined anywhere, even by an
    /// option the box does not read as a definition: only the audit is sure).
    computed: Vec<String>,
    /// Its own `#define NAME "file"` and `#define NAME <file>` of those macros: what its
    /// computed includes plainly open, checked before the compile like a written name (the
    /// audit sees to the rest).
    named: Vec<(String, String)>,
}

fn judge(data: &[u8]) -> Verdict {
    let mut v = Verdict {
        refused: None,
        ascent: 0,
        computed: Vec::new(),
        named: Vec::new(),
    };
    for d in includes::scan(data) {
        match d {
            Directive::ReadsFiles => {
                v.refused = Some(includes::READS_FILES.into());
                return v;
            }
            Directive::Computed { line, text } => match includes::computed_macro(&text) {
                // `__FILE__` and friends name files of the box, and a name that is not a
                // plain macro cannot be told apart from one of them.
                Some(m) if !m.starts_with("__") => {
                    if !v.computed.iter().any(|c| c == m) {
                        // Bounded, so that judging a file stays linear in its size.
                        if v.computed.len() == MAX_COMPUTED {
                            v.refused = Some(format!(
                                "names its includes with more than {MAX_COMPUTED} macros"
                            ));
                            return v;
                        }
                        v.computed.push(m.to_string());
                    }
                }
                _ => {
                    v.refused = Some(format!("line {line}: `{text}` names its file with a macro"));
                    return v;
                }
            },
            // The client keeps such a job at home; the box has nothing to guard here.
            Directive::Clock { .. } => {}
            Directive::Include { name, .. } => {
                if Path::new(&name).is_absolute() || name.contains('\0') {
                    v.refused = Some(format!("includes {name:?} by absolute path"));
                    return v;
                }
                v.ascent = v.ascent.max(ascent(Path::new(&name)));
            }
        }
    }
    if !v.computed.is_empty() {
        let mut named: Vec<(String, String)> = data
            .split(|&b| b == b'\n')
            .filter_map(|l| named_file(std::str::from_utf8(l).ok()?))
            .filter(|(m, _)| v.computed.contains(m))
            .collect();
        named.sort_unstable();
        named.dedup();
        // Kept with the verdict for as long as the box runs: bounded like the macros.
        if named.iter().map(|(m, f)| m.len() + f.len()).sum::<usize>() > MAX_NAMED_BYTES {
            v.refused = Some(format!(
                "defines the macros its includes are named by to more than {MAX_NAMED_BYTES} \
                 bytes of file names"
            ));
            return v;
        }
        v.named = named;
    }
    v
}

/// Most distinct macros one file may name its includes with (the kernel's trace headers use
/// two or three).
const MAX_COMPUTED: usize = 64;
/// Most bytes of `#define NAME "file"` of those macros one file's verdict keeps.
const MAX_NAMED_BYTES: usize = 16 << 10;

/// `#define NAME "file"` (or `<file>`) as (NAME, file). A plain line only: this check only
/// refuses early what the audit would refuse after the compile.
fn named_file(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let rest = rest.strip_prefix("define")?;
    let rest = rest.strip_prefix([' ', '\t'])?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (name, value) = rest.split_at(end);
    if name.is_empty() || !value.starts_with([' ', '\t']) {
        return None; // no name, or a function-like macro
    }
    let value = value.trim();
    let close = match value.chars().next()? {
        '"' => '"',
        '<' => '>',
        _ => return None,
    };
    let end = value[1..].find(close)? + 1;
    let after = value[end + 1..].trim_start();
    if !(after.is_empty() || after.starts_with("//") || after.starts_with("/*")) {
        return None;
    }
    Some((name.to_string(), header_name(&value[..=end])?.to_string()))
}

/// The file in a header name `"file"` or `<file>`.
fn header_name(text: &str) -> Option<&str> {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('<').and_then(|t| t.strip_suffix('>')))
        .filter(|f| !f.is_empty())
}

/// Verdicts by content hash, so a header is read and judged once per box, not once per job.
#[derive(Default)]
pub struct Verdicts {
    judged: HashMap<Digest, Verdict>,
}

/// Most verdicts kept before the map starts over.
const VERDICTS_KEPT: usize = 200_000;

fn read_shipped(path: &Path) -> Result<Vec<u8>, Refusal> {
    fs::read(path).map_err(|e| internal(format!("cannot read a shipped file: {e}")))
}

impl Verdicts {
    /// The verdict on the content `hash`, judged from the file at `path` the first time:
    /// that file must have that hash, so that no verdict is ever kept for other bytes than
    /// those it was made from.
    fn get(&mut self, hash: &Digest, path: &Path) -> Result<&Verdict, Refusal> {
        if !self.judged.contains_key(hash) {
            let data = read_shipped(path)?;
            if crate::sha256::digest(&data) != *hash {
                return Err(bad(format!(
                    "{} does not hold the content its manifest entry names",
                    path.display()
                )));
            }
            let v = judge(&data);
            if self.judged.len() >= VERDICTS_KEPT {
                self.judged.clear();
            }
            self.judged.insert(*hash, v);
        }
        Ok(&self.judged[hash])
    }
}

/// A sources job between its manifest and its compile. Dropping it removes its dir and its
/// mirror (in no known state if the job did not get as far as its compile).
pub struct Tree {
    dir: JobDir,
    mirror: Mirror,
    cwd: PathBuf,
    manifest: Manifest,
    /// Indexes of the files the box asked for, ascending, and whether each has come.
    needed: Vec<u32>,
    arrived: Vec<bool>,
    /// Bytes of files received so far, and at most how many this job may send.
    bytes_received: usize,
    max_bytes: usize,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tree({} files, {} needed)",
            self.manifest.files.len(),
            self.needed.len()
        )
    }
}

/// A job's dir, removed when dropped unless taken.
struct JobDir(Option<PathBuf>);

impl Drop for JobDir {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

impl Tree {
    /// Checks `manifest` (for a compile run from the master's `cwd`), makes the job dir under
    /// `temp_dir` and lays out a mirror from `mirrors` with every file the cache has. The
    /// files that travel may add up to `max_bytes`.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        temp_dir: &Path,
        seq: u64,
        cwd: &[u8],
        manifest: Manifest,
        cache: &Cache,
        mirrors: &mut Mirrors,
        max_bytes: usize,
    ) -> Result<Tree, Refusal> {
        let cwd =
            std::str::from_utf8(cwd).map_err(|_| bad("the working directory is not UTF-8"))?;
        let cwd = tree::check_path(cwd)
            .map_err(|e| bad(format!("working directory: {e}")))?
            .to_path_buf();
        let suffix = Path::new(&manifest.source)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("");
        if !SOURCE_SUFFIXES.contains(&suffix) {
            return Err(bad(format!(
                "source {:?} is not a C, C++ or .S file by its suffix",
                manifest.source
            )));
        }
        inside(&cwd, &manifest.source)?;
        if let Some(d) = &manifest.deps {
            if let Some(t) =
                d.mt.iter()
                    .chain(&d.mq)
                    .find(|t| t.contains(['\0', '\n', '\r']))
            {
                return Err(bad(format!(
                    "dependency target {t:?} has a NUL byte or a line end"
                )));
            }
        }
        let mut dirs = Vec::new();
        search_dirs(&cwd, ".", &mut dirs);
        for (opt, p) in &manifest.paths {
            inside(&cwd, p)?;
            if !matches!(opt.as_str(), "-include" | "-imacros") {
                search_dirs(&cwd, p, &mut dirs);
            }
        }
        for f in &manifest.files {
            tree::check_path(&f.path).map_err(|e| bad(format!("file: {e}")))?;
            if is_precompiled(&f.path) {
                return Err(bad(format!(
                    "file {:?} is a precompiled header, which gcc would load in place of its \
                     header: an image of the compiler's memory, not text a box can check",
                    f.path
                )));
            }
        }
        tree::check_budget(&manifest.files, &dirs).map_err(bad)?;
        let dir = super::job::make_dir(temp_dir, seq).map_err(|e| internal(e.to_string()))?;
        let dir = JobDir(Some(dir));
        let mirror = mirrors
            .take()
            .map_err(|e| internal(format!("cannot make the job's mirror: {e}")))?;
        let mut t = Tree {
            dir,
            mirror,
            cwd,
            manifest,
            needed: Vec::new(),
            arrived: Vec::new(),
            bytes_received: 0,
            max_bytes,
        };
        t.needed = t
            .mirror
            .lay_out(&t.manifest.files, dirs, cache)
            .map_err(layout_error)?;
        t.arrived = vec![false; t.needed.len()];
        Ok(t)
    }

    /// How many files the manifest names.
    pub fn files(&self) -> usize {
        self.manifest.files.len()
    }

    /// The files the box lacks.
    pub fn needed(&self) -> &[u32] {
        &self.needed
    }

    /// Bytes of files received so far.
    pub fn bytes_received(&self) -> usize {
        self.bytes_received
    }

    /// Takes file `index`'s content: checked against its hash, kept in the cache, placed.
    pub fn blob(&mut self, index: u32, data: &[u8], cache: &mut Cache) -> Result<(), Refusal> {
        if self.bytes_received + data.len() > self.max_bytes {
            return Err(bad(format!(
                "the job's files are larger than this box's limit of {} MiB (4 x --max-body-mib)",
                self.max_bytes >> 20
            )));
        }
        self.bytes_received += data.len();
        let k = self
            .needed
            .binary_search(&index)
            .map_err(|_| bad(format!("file {index} was not asked for")))?;
        if self.arrived[k] {
            return Err(bad(format!("file {index} came twice")));
        }
        let f = &self.manifest.files[index as usize];
        if data.len() as u64 != f.size {
            return Err(bad(format!(
                "{} came with {} bytes where its manifest entry says {}",
                f.path,
                data.len(),
                f.size
            )));
        }
        let io = layout_error;
        let placed = match cache.put(&f.hash, data) {
            Ok(cached) => self.mirror.place(&f.path, f.hash, &cached).map_err(io),
            Err(PutError::WrongHash) => Err(bad(format!("{} does not have its hash", f.path))),
            // Larger than the whole cache: checked the same way, kept for this job only.
            Err(PutError::TooLarge) => {
                if crate::sha256::digest(data) != f.hash {
                    return Err(bad(format!("{} does not have its hash", f.path)));
                }
                let written = match self.mirror.write(&f.path, f.hash, data) {
                    // A full disk: the cache gives room, and the file is written once more.
                    Err(e) if crate::sys::no_space(&e) => {
                        let _ = cache.give_room(data.len() as u64);
                        self.mirror.write(&f.path, f.hash, data)
                    }
                    r => r,
                };
                written.map_err(io)
            }
            Err(PutError::Io(e)) => Err(internal(format!("cannot keep a file in the cache: {e}"))),
        };
        self.arrived[k] = placed.is_ok();
        placed
    }

    /// The input has ended: every file asked for must have come and pass the include checks;
    /// then what to run with `compiler` (see `command`).
    pub fn finish(
        self,
        verdicts: &mut Verdicts,
        args: &BoxArgs,
        output_ext: &str,
    ) -> Result<Launch, Refusal> {
        if !self.complete() {
            return Err(bad("the input ended before every file asked for came"));
        }
        let audit = self.check_includes(verdicts, args)?;
        Ok(self.command(args, output_ext, audit))
    }

    /// Whether every file asked for has come.
    fn complete(&self) -> bool {
        self.arrived.iter().all(|a| *a)
    }

    /// Checks what every file includes (see the module doc); `args` are the compiler's.
    /// `Ok(true)`: some include names its file with a macro, so only the audit can tell
    /// what the compile opened.
    fn check_includes(&self, verdicts: &mut Verdicts, args: &BoxArgs) -> Result<bool, Refusal> {
        // The shallowest place a name is looked up from: any search directory, or the
        // directory of the file that includes it.
        let mut shallowest = usize::MAX;
        for (opt, p) in &self.manifest.paths {
            if !matches!(opt.as_str(), "-include" | "-imacros") {
                shallowest = shallowest.min(depth(&inside(&self.cwd, p)?));
            }
        }
        // The macros computed includes name, each with the shallowest place it is looked
        // up from; and what plain definitions give them.
        let mut computed: HashMap<String, usize> = HashMap::new();
        let mut named: Vec<(String, String)> = Vec::new();
        for f in &self.manifest.files {
            let path = Path::new(&f.path);
            let v = verdicts.get(&f.hash, &tree::under(self.mirror.root(), path))?;
            if let Some(why) = &v.refused {
                return Err(bad(format!("{} {why}", f.path)));
            }
            let from = shallowest.min(depth(path).saturating_sub(1));
            if v.ascent > from {
                return Err(bad(format!(
                    "{} includes a name with `..` that would climb out of the job's files",
                    f.path
                )));
            }
            for m in &v.computed {
                let at = computed.entry(m.clone()).or_insert(from);
                *at = (*at).min(from);
            }
            named.extend(v.named.iter().cloned());
        }
        if computed.is_empty() {
            return Ok(false);
        }
        for (m, value) in args.defines() {
            let Some(value) = value else { continue };
            if let Some(file) = header_name(value) {
                named.push((m.to_string(), file.to_string()));
            }
        }
        // What a plain definition names is refused before the compile, as if written out.
        for (m, file) in &named {
            let Some(&from) = computed.get(m) else {
                continue;
            };
            let p = Path::new(file);
            if p.is_absolute() || file.contains('\0') || ascent(p) > from {
                return Err(bad(format!(
                    "an include names its file with {m}, defined as {file:?}, which is \
                     outside the job's files"
                )));
            }
        }
        Ok(true)
    }

    /// The job dir, and what to run in it: the arguments after the compiler's name (`args`
    /// are the request's, already checked by `box_rules`), the directory to run in, the
    /// object's path, the dependency file's path, the mirror's root (to take out of what
    /// the compiler says), and when an include names its file with a macro (`audit` is
    /// `Some`: whether the compiler can preprocess directives alone), the preprocessing that
    /// audits what the compile will open.
    fn command(mut self, args: &BoxArgs, output_ext: &str, audit: bool) -> Launch {
        let dir = self.dir.0.take().expect("a tree owns its dir until here");
        let root = self.mirror.root().to_string_lossy().into_owned();
        // Paths as gcc gets them: absolute ones in the mirror, relative ones as the master's
        // command names them (checked by `inside` to start with no `-`, `@`, `=`).
        let rooted = |p: &str| -> String {
            if p.starts_with('/') {
                format!("{root}{p}")
            } else {
                p.to_string()
            }
        };
        // First, so that the build's own maps (given later, and rooted below) win where they
        // match, as they do on the master. Not one `-ffile-prefix-map`: gcc applies those
        // after every `-fmacro-prefix-map`, wherever they are given, so it would take the
        // root away from `__FILE__` in place of the kernel's `-fmacro-prefix-map=$(srctree)/=`
        // (a header's name would be absolute where the master's is relative).
        let mut argv: Vec<OsString> = vec![
            format!("-fmacro-prefix-map={root}=").into(),
            format!("-fdebug-prefix-map={root}=").into(),
        ];
        argv.extend(args.argv(Some(&root)).into_iter().map(OsString::from));
        argv.push("-nostdinc".into());
        // Each option with its path joined: one element that starts with the option.
        for (opt, p) in &self.manifest.paths {
            argv.push(format!("{opt}{}", rooted(p)).into());
        }
        let cwd = tree::under(self.mirror.root(), &self.cwd);
        // The same preprocessing with gcc's report of every header it opens, and nothing
        // written but to /dev/null. Not `-H` in the compile itself: with `-g` gcc records
        // its options in the object, which would then differ from the master's.
        // A full preprocessing, not on directives alone: a `_Pragma("pop_macro(...)")` in
        // a macro's expansion (even one pasted together with `##`, which no text check
        // sees) changes what a later `#include MACRO` opens, and `-fdirectives-only` does
        // not run it.
        let audit = audit.then(|| {
            let mut argv = argv.clone();
            argv.push(rooted(&self.manifest.source).into());
            argv.extend(["-E", "-H", "-o", "/dev/null"].map(OsString::from));
            Audit::new(self.mirror.root().to_path_buf(), cwd.clone(), argv)
        });
        let output = dir.join(format!("output.{output_ext}"));
        let depfile = self.manifest.deps.as_ref().map(|d| {
            let f = dir.join("output.d");
            argv.push(if d.user_only { "-MMD" } else { "-MD" }.into());
            argv.push("-MF".into());
            argv.push(f.clone().into());
            // Joined, so a target is never an argument of its own (`@file`, `-o`).
            for t in &d.mq {
                argv.push(format!("-MQ{t}").into());
            }
            for t in &d.mt {
                argv.push(format!("-MT{t}").into());
            }
            if d.phony {
                argv.push("-MP".into());
            }
            f
        });
        argv.push(rooted(&self.manifest.source).into());
        argv.push("-o".into());
        argv.push(output.clone().into());
        Launch {
            cwd,
            dir,
            argv,
            output,
            depfile,
            mirror: Some(self.mirror),
            audit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DepRequest, FileEntry};

    fn ba(list: &[&str]) -> BoxArgs {
        let raw: Vec<Vec<u8>> = list.iter().map(|a| a.as_bytes().to_vec()).collect();
        BoxArgs::parse(&raw).unwrap()
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A fresh directory of this test's own, removed when dropped.
    fn scratch(name: &str) -> Dir {
        let d =
            Dir(std::env::temp_dir().join(format!("rcc-sources-{name}-{}", std::process::id())));
        let _ = fs::remove_dir_all(&d.0);
        fs::create_dir_all(&d.0).unwrap();
        d
    }

    fn manifest(source: &str, paths: &[(&str, &str)], files: &[(&str, &[u8])]) -> Manifest {
        Manifest {
            source: source.into(),
            paths: paths
                .iter()
                .map(|(o, p)| (o.to_string(), p.to_string()))
                .collect(),
            deps: Some(DepRequest {
                user_only: true,
                mt: vec![],
                mq: vec!["a.o".into()],
                phony: false,
            }),
            files: files
                .iter()
                .map(|(p, d)| FileEntry {
                    path: p.to_string(),
                    size: d.len() as u64,
                    hash: crate::sha256::digest(d),
                })
                .collect(),
        }
    }

    #[test]
    fn paths_may_not_leave_the_mirror() {
        let cwd = Path::new("/w/p");
        assert!(inside(cwd, "../../x").is_ok());
        assert!(inside(cwd, "../../../x").is_err());
        assert!(inside(cwd, "/usr/lib/gcc/x/12/../../../../include").is_ok());
        assert!(inside(cwd, "/usr/../../etc").is_err());
        assert_eq!(
            inside(cwd, "a/./b/../c").unwrap(),
            PathBuf::from("/w/p/a/c")
        );
        assert_eq!(ascent(Path::new("a/../../x")), 1);
        assert_eq!(ascent(Path::new("../../x")), 2);
    }

    #[test]
    fn a_job_is_laid_out_checked_and_commanded() {
        let d = scratch("layout");
        let mut cache = Cache::open(&d.0.join("cache"), 1 << 20).unwrap();
        let mut mirrors = Mirrors::new(&d.0, "mirror".into(), 2);
        let src: &[u8] = b"#include \"a.h\"\n#include <sys.h>\nint main(void){return A;}\n";
        let m = manifest(
            "src/main.c",
            &[("-I", "inc"), ("-isystem", "/usr/include")],
            &[
                ("/w/p/src/main.c", src),
                ("/w/p/inc/a.h", b"#define A 0\n"),
                ("/usr/include/sys.h", b"\n"),
            ],
        );
        let mut t = Tree::open(&d.0, 1, b"/w/p", m.clone(), &cache, &mut mirrors, 1 << 30).unwrap();
        assert_eq!(t.needed(), [0, 1, 2]);
        assert!(t.blob(1, b"#define A 1\n", &mut cache).is_err(), "a lie");
        t.blob(0, src, &mut cache).unwrap();
        assert!(t.blob(0, src, &mut cache).is_err(), "twice");
        t.blob(1, b"#define A 0\n", &mut cache).unwrap();
        assert!(!t.complete());
        t.blob(2, b"\n", &mut cache).unwrap();
        assert!(t.complete());
        assert!(!t
            .check_includes(&mut Verdicts::default(), &ba(&["-c"]))
            .unwrap());
        let c = t.command(&ba(&["-c", "-fdebug-prefix-map=/w=."]), "o", true);
        let root = c.mirror.as_ref().unwrap().root().to_path_buf();
        let argv: Vec<String> = c.argv.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(argv[0], format!("-fmacro-prefix-map={}=", root.display()));
        assert_eq!(argv[1], format!("-fdebug-prefix-map={}=", root.display()));
        assert_eq!(
            argv[3],
            format!("-fdebug-prefix-map={}/w=.", root.display())
        );
        assert!(argv.contains(&format!("-isystem{}/usr/include", root.display())));
        assert!(argv.contains(&"-Iinc".to_string()));
        assert!(argv.contains(&"-MQa.o".to_string()));
        assert!(!argv.contains(&"-H".to_string()));
        assert_eq!(c.cwd, root.join("w/p"));
        let gcc = |argv: &[OsString]| {
            let out = std::process::Command::new("gcc")
                .args(argv)
                .current_dir(&c.cwd)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{said}");
            said
        };
        // The audit: the same preprocessing, reporting both headers, both in the mirror.
        let audit = c.audit.as_ref().unwrap();
        let said = gcc(&audit.argv);
        assert!(said.starts_with(". inc/a.h\n. "), "{said}");
        assert_eq!(audit.outside(said.as_bytes()), None);
        assert!(!c.output.exists());
        assert_eq!(gcc(&c.argv), "");
        let deps = fs::read_to_string(c.depfile.as_ref().unwrap()).unwrap();
        assert!(deps.starts_with("a.o: src/main.c inc/a.h"), "{deps}");
        // A second job finds everything in the cache.
        let t2 = Tree::open(&d.0, 2, b"/w/p", m, &cache, &mut mirrors, 1 << 30).unwrap();
        assert!(t2.needed().is_empty());
        let _ = fs::remove_dir_all(&c.dir);
    }

    #[test]
    fn files_that_would_read_the_box_are_refused() {
        for (text, why) in [
            (&b"#include \"/etc/passwd\"\n"[..], "absolute"),
            (b"#include __FILE__\n", "macro"),
            (b"asm(\".incbin \\\"/etc/shadow\\\"\");\n", ".incbin"),
        ] {
            let v = judge(text);
            assert!(v.refused.is_some_and(|r| r.contains(why)), "{why}");
        }
        // A plain macro (or macro call) is compiled, and audited; anything else is refused.
        for (text, computed) in [
            (&b"#define P \"a.h\"\n#include P\n"[..], true),
            (b"#include TRACE_INCLUDE(TRACE_INCLUDE_FILE)\n", true),
            (b"#include \"a.h\"\n", false),
        ] {
            let v = judge(text);
            assert_eq!((v.refused, !v.computed.is_empty()), (None, computed));
        }
        assert_eq!(
            judge(
                b"#define P \"a.h\"\n#  define Q <sys/q.h> // q\n#define F(x) \"f.h\"\n\
                  #define V \"1.2\"\n#include P\n#include Q\n#include F(x)\n"
            )
            .named,
            [("P".into(), "a.h".into()), ("Q".into(), "sys/q.h".into())]
        );
        assert!(judge(b"#include __BASE_FILE__\n").refused.is_some());
        assert!(judge(b"#include 3\n").refused.is_some());
        assert_eq!(judge(b"#include \"../../a.h\"\n").ascent, 2);
        let d = scratch("up");
        let mut cache = Cache::open(&d.0.join("cache"), 1 << 20).unwrap();
        let mut mirrors = Mirrors::new(&d.0, "mirror".into(), 2);
        let src: &[u8] = b"#include \"../../../../etc/passwd\"\n";
        let m = manifest("a.c", &[], &[("/w/a.c", src)]);
        let mut t = Tree::open(&d.0, 3, b"/w", m, &cache, &mut mirrors, 1 << 30).unwrap();
        t.blob(0, src, &mut cache).unwrap();
        let e = t
            .check_includes(&mut Verdicts::default(), &ba(&["-c"]))
            .unwrap_err();
        assert!(e.text.contains("climb out"), "{}", e.text);
        assert!(Tree::open(
            &d.0,
            4,
            b"/w",
            manifest("../../x.c", &[], &[]),
            &cache,
            &mut mirrors,
            1 << 30
        )
        .is_err());
        assert!(Tree::open(
            &d.0,
            5,
            b"/w",
            manifest("a.s", &[], &[]),
            &cache,
            &mut mirrors,
            1 << 30
        )
        .is_err());
    }

    #[test]
    fn a_macro_plainly_defined_to_a_file_outside_is_refused_before_the_compile() {
        let d = scratch("def");
        let mut cache = Cache::open(&d.0.join("cache"), 1 << 20).unwrap();
        let mut mirrors = Mirrors::new(&d.0, "mirror".into(), 2);
        let mut seq = 10;
        let mut check = |src: &str, args: &[&str]| {
            let m = manifest("a.c", &[], &[("/w/p/a.c", src.as_bytes())]);
            seq += 1;
            let mut t = Tree::open(&d.0, seq, b"/w/p", m, &cache, &mut mirrors, 1 << 30).unwrap();
            if !t.needed().is_empty() {
                t.blob(0, src.as_bytes(), &mut cache).unwrap();
            }
            let mut line = args.to_vec();
            if !line.contains(&"-c") {
                line.push("-c");
            }
            t.check_includes(&mut Verdicts::default(), &ba(&line))
                .map_err(|e| e.text)
        };
        let refused = "outside the job's files";
        assert!(check("#define P \"/etc/passwd\"\n#include P\n", &[])
            .is_err_and(|e| e.contains(refused)));
        assert!(
            check("#define P \"../../../etc/passwd\"\n#include P\n", &[])
                .is_err_and(|e| e.contains(refused))
        );
        assert!(check("#include P\n", &["-c", "-DP=\"/etc/passwd\""]).is_err());
        assert!(check("#include P\n", &["-c", "--define-macro=P=</etc/passwd>"]).is_err());
        // What stays inside, or is not a plain name, is compiled and audited.
        assert_eq!(check("#define P \"../a.h\"\n#include P\n", &[]), Ok(true));
        assert_eq!(check("#define P \"/etc/passwd\"\nint x;\n", &[]), Ok(false));
        assert_eq!(
            check("#define P X(/etc/passwd)\n#include P\n", &[]),
            Ok(true)
        );
        assert_eq!(
            check("#include P\n", &["-c", "-DQ=\"/etc/passwd\""]),
            Ok(true)
        );
    }
}
