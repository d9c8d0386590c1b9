//! A job that ships its sources, on the box: check the manifest, lay out the job's private
//! mirror of the master's files from the cache (asking only for what is missing), take the
//! missing files as they come, check what the files include, and make the compiler's
//! command. The event loop drives it; `tree` and `cache` do the file work.
//!
//! What keeps a peer inside the mirror: every path is checked (`tree::check_path` for files;
//! search paths and the source may be relative or hold `..` the way gcc prints them, but may
//! never climb above the mirror's root); the compiler runs with `-nostdinc`, so only the
//! directories named here are searched, each under the mirror; every shipped file's include
//! directives are checked before the compiler starts — no absolute names, no names computed
//! by macros, no `..` that climbs out from where it is looked up, no `.incbin`/`.include` —
//! and the mirror holds only directories and regular files, never links.

use super::cache::{Cache, PutError};
use super::job::Launch;
use super::tree;
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
const SOURCE_SUFFIXES: [&str; 8] = ["c", "cc", "cp", "cxx", "cpp", "CPP", "c++", "C"];

/// `p` as gcc would use it from `cwd`, checked to stay inside the mirror; its plain form
/// (for its depth and to make its directories).
fn inside(cwd: &Path, p: &str) -> Result<PathBuf, Refusal> {
    if p.is_empty() || p.contains('\0') || p.len() > 4096 {
        return Err(bad(format!(
            "path {p:?} is empty, too long or has a NUL byte"
        )));
    }
    let full = cwd.join(p);
    if ascent(&full) > 0 {
        return Err(bad(format!("path {p:?} climbs out of the job's files")));
    }
    Ok(lexical(&full))
}

/// Makes `root/p` and every directory `p` passes through before a `..` (gcc resolves
/// `a/b/../c` through `a/b`, which must exist in the mirror as it does on the master).
fn make_dirs(root: &Path, cwd: &Path, p: &str) -> std::io::Result<()> {
    let mut at = PathBuf::from("/");
    for c in cwd.join(p).components() {
        match c {
            Component::Normal(n) => at.push(n),
            Component::ParentDir => {
                fs::create_dir_all(tree::under(root, &at))?;
                at.pop();
            }
            _ => {}
        }
    }
    fs::create_dir_all(tree::under(root, &at))
}

/// What a file's content allows, known once per hash: whether it names a file the box must
/// not read, and how far its quoted `..` names climb.
struct Verdict {
    refused: Option<String>,
    ascent: usize,
    /// Macros that computed includes name: allowed only when nothing defines them.
    computed: Vec<String>,
}

fn judge(data: &[u8]) -> Verdict {
    if crate::compiler::mentions_assembler_include(data) {
        return Verdict {
            refused: Some("uses .incbin or .include, which would read a file on the box".into()),
            ascent: 0,
            computed: Vec::new(),
        };
    }
    let mut v = Verdict {
        refused: None,
        ascent: 0,
        computed: Vec::new(),
    };
    for d in includes::scan(data) {
        match d {
            Directive::Computed { line, text } => match includes::computed_macro(&text) {
                Some(m) if !m.starts_with("__") => v.computed.push(m.to_string()),
                _ => {
                    v.refused = Some(format!("line {line}: `{text}` names its file with a macro"));
                    break;
                }
            },
            Directive::Include { name, .. } => {
                if Path::new(&name).is_absolute() || name.contains('\0') {
                    v.refused = Some(format!("includes {name:?} by absolute path"));
                    break;
                }
                v.ascent = v.ascent.max(ascent(Path::new(&name)));
            }
        }
    }
    v
}

/// Verdicts by content hash, so a header is read and judged once per box, not once per job;
/// and, for the macros computed includes name, whether a file defines them.
#[derive(Default)]
pub struct Verdicts {
    judged: HashMap<Digest, Verdict>,
    defines: HashMap<(Digest, String), bool>,
}

/// Most entries kept in each map before it starts over.
const VERDICTS_KEPT: usize = 200_000;

fn read_shipped(path: &Path) -> Result<Vec<u8>, Refusal> {
    fs::read(path).map_err(|e| internal(format!("cannot read a shipped file: {e}")))
}

impl Verdicts {
    fn get(&mut self, hash: &Digest, path: &Path) -> Result<&Verdict, Refusal> {
        if !self.judged.contains_key(hash) {
            let v = judge(&read_shipped(path)?);
            if self.judged.len() >= VERDICTS_KEPT {
                self.judged.clear();
            }
            self.judged.insert(*hash, v);
        }
        Ok(&self.judged[hash])
    }

    /// Whether the file with `hash` (at `path`) has a `#define` of `name`.
    fn defines(&mut self, hash: &Digest, path: &Path, name: &str) -> Result<bool, Refusal> {
        let key = (*hash, name.to_string());
        if let Some(&d) = self.defines.get(&key) {
            return Ok(d);
        }
        let d = includes::defines_any(&read_shipped(path)?, &[name]);
        if self.defines.len() >= VERDICTS_KEPT {
            self.defines.clear();
        }
        self.defines.insert(key, d);
        Ok(d)
    }
}

/// A sources job between its manifest and its compile. Dropping it removes its dir.
pub struct Tree {
    dir: Option<PathBuf>,
    root: PathBuf,
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

impl Drop for Tree {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

impl Tree {
    /// Checks `manifest` (for a compile run from the master's `cwd`), makes the job dir under
    /// `temp_dir` and the mirror of every file the cache has. The files that travel may add
    /// up to `max_bytes`.
    pub fn open(
        temp_dir: &Path,
        seq: u64,
        cwd: &[u8],
        manifest: Manifest,
        cache: &Cache,
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
                "source {:?} is not a C or C++ file by its suffix",
                manifest.source
            )));
        }
        inside(&cwd, &manifest.source)?;
        for (_, p) in &manifest.paths {
            inside(&cwd, p)?;
        }
        for f in &manifest.files {
            tree::check_path(&f.path).map_err(|e| bad(format!("file: {e}")))?;
        }
        let dir = super::job::make_dir(temp_dir, seq).map_err(|e| internal(e.to_string()))?;
        let root = dir.join("root");
        let mut t = Tree {
            dir: Some(dir),
            root,
            cwd,
            manifest,
            needed: Vec::new(),
            arrived: Vec::new(),
            bytes_received: 0,
            max_bytes,
        };
        let io = layout_error;
        make_dirs(&t.root, &t.cwd, ".").map_err(io)?;
        for (opt, p) in &t.manifest.paths {
            if !matches!(opt.as_str(), "-include" | "-imacros") {
                make_dirs(&t.root, &t.cwd, p).map_err(io)?;
            }
        }
        for (i, f) in t.manifest.files.iter().enumerate() {
            match cache.get(&f.hash) {
                Some(cached) => tree::place(&t.root, Path::new(&f.path), &cached).map_err(io)?,
                None => t.needed.push(i as u32),
            }
        }
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
        let path = Path::new(&f.path);
        let io = layout_error;
        let placed = match cache.put(&f.hash, data) {
            Ok(cached) => tree::place(&self.root, path, &cached).map_err(io),
            Err(PutError::WrongHash) => Err(bad(format!("{} does not have its hash", f.path))),
            // Larger than the whole cache: checked the same way, kept for this job only.
            Err(PutError::TooLarge) => {
                if crate::sha256::digest(data) != f.hash {
                    return Err(bad(format!("{} does not have its hash", f.path)));
                }
                let dest = tree::under(&self.root, path);
                if let Some(d) = dest.parent() {
                    fs::create_dir_all(d).map_err(io)?;
                }
                fs::write(dest, data).map_err(io)
            }
            Err(PutError::Io(e)) => Err(internal(format!("cannot keep a file in the cache: {e}"))),
        };
        self.arrived[k] = placed.is_ok();
        placed
    }

    /// The input has ended: every file asked for must have come and pass the include checks;
    /// then what to run (see `command`).
    pub fn finish(
        self,
        verdicts: &mut Verdicts,
        args: &[String],
        output_ext: &str,
    ) -> Result<Launch, Refusal> {
        if !self.complete() {
            return Err(bad("the input ended before every file asked for came"));
        }
        self.check_includes(verdicts, args)?;
        Ok(self.command(args, output_ext))
    }

    /// Whether every file asked for has come.
    fn complete(&self) -> bool {
        self.arrived.iter().all(|a| *a)
    }

    /// Checks what every file includes (see the module doc); `args` are the compiler's.
    fn check_includes(&self, verdicts: &mut Verdicts, args: &[String]) -> Result<(), Refusal> {
        // The shallowest place a name is looked up from: any search directory, or the
        // directory of the file that includes it.
        let mut shallowest = usize::MAX;
        for (opt, p) in &self.manifest.paths {
            if !matches!(opt.as_str(), "-include" | "-imacros") {
                shallowest = shallowest.min(depth(&inside(&self.cwd, p)?));
            }
        }
        let mut computed: Vec<String> = Vec::new();
        for f in &self.manifest.files {
            let path = Path::new(&f.path);
            let v = verdicts.get(&f.hash, &tree::under(&self.root, path))?;
            if let Some(why) = &v.refused {
                return Err(bad(format!("{} {why}", f.path)));
            }
            computed.extend(v.computed.iter().cloned());
            let from = shallowest.min(depth(path).saturating_sub(1));
            if v.ascent > from {
                return Err(bad(format!(
                    "{} includes a name with `..` that would climb out of the job's files",
                    f.path
                )));
            }
        }
        if computed.is_empty() {
            return Ok(());
        }
        // A computed include is harmless only if nothing can give its macro a value.
        let names: Vec<&str> = computed.iter().map(|s| s.as_str()).collect();
        let refuse = |m: &str| {
            bad(format!(
                "an include names its file with {m}, which is defined"
            ))
        };
        for a in args {
            if let Some(m) = a
                .strip_prefix("-D")
                .and_then(|d| d.split('=').next())
                .filter(|d| names.contains(d))
            {
                return Err(refuse(m));
            }
        }
        for f in &self.manifest.files {
            let path = tree::under(&self.root, Path::new(&f.path));
            for m in &names {
                if verdicts.defines(&f.hash, &path, m)? {
                    return Err(refuse(&names.join(", ")));
                }
            }
        }
        Ok(())
    }

    /// The job dir, and what to run in it: the arguments after the compiler's name (`args`
    /// are the request's, already checked by `box_rules`), the directory to run in, the
    /// object's path, the dependency file's path and the mirror's root (to take out of what
    /// the compiler says).
    fn command(mut self, args: &[String], output_ext: &str) -> Launch {
        let dir = self.dir.take().expect("a tree owns its dir until here");
        let root = self.root.to_string_lossy().into_owned();
        let rooted = |p: &str| -> OsString {
            if p.starts_with('/') {
                format!("{root}{p}").into()
            } else {
                p.into()
            }
        };
        // First, so that the user's own maps (given later) win where they match.
        let mut argv: Vec<OsString> = vec![format!("-ffile-prefix-map={root}=").into()];
        for a in args {
            let mut done = false;
            for map in [
                "-ffile-prefix-map=",
                "-fdebug-prefix-map=",
                "-fmacro-prefix-map=",
            ] {
                if let Some(rest) = a.strip_prefix(map).filter(|r| r.starts_with('/')) {
                    argv.push(format!("{map}{root}{rest}").into());
                    done = true;
                }
            }
            if !done {
                argv.push(a.into());
            }
        }
        argv.push("-nostdinc".into());
        for (opt, p) in &self.manifest.paths {
            argv.push(opt.into());
            argv.push(rooted(p));
        }
        let output = dir.join(format!("output.{output_ext}"));
        let depfile = self.manifest.deps.as_ref().map(|d| {
            let f = dir.join("output.d");
            argv.push(if d.user_only { "-MMD" } else { "-MD" }.into());
            argv.push("-MF".into());
            argv.push(f.clone().into());
            for t in &d.mq {
                argv.push("-MQ".into());
                argv.push(t.into());
            }
            for t in &d.mt {
                argv.push("-MT".into());
                argv.push(t.into());
            }
            if d.phony {
                argv.push("-MP".into());
            }
            f
        });
        argv.push(rooted(&self.manifest.source));
        argv.push("-o".into());
        argv.push(output.clone().into());
        Launch {
            cwd: tree::under(&self.root, &self.cwd),
            dir,
            argv,
            output,
            depfile,
            strip: Some(self.root.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DepRequest, FileEntry};

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
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
        let d = Dir(std::env::temp_dir().join(format!("rcc-sources-{}", std::process::id())));
        let _ = fs::remove_dir_all(&d.0);
        fs::create_dir_all(&d.0).unwrap();
        let mut cache = Cache::open(&d.0.join("cache"), 1 << 20).unwrap();
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
        let mut t = Tree::open(&d.0, 1, b"/w/p", m.clone(), &cache, 1 << 30).unwrap();
        assert_eq!(t.needed(), [0, 1, 2]);
        assert!(t.blob(1, b"#define A 1\n", &mut cache).is_err(), "a lie");
        t.blob(0, src, &mut cache).unwrap();
        assert!(t.blob(0, src, &mut cache).is_err(), "twice");
        t.blob(1, b"#define A 0\n", &mut cache).unwrap();
        assert!(!t.complete());
        t.blob(2, b"\n", &mut cache).unwrap();
        assert!(t.complete());
        t.check_includes(&mut Verdicts::default(), &[]).unwrap();
        let c = t.command(&["-c".into(), "-fdebug-prefix-map=/w=.".into()], "o");
        let root = c.dir.join("root");
        let argv: Vec<String> = c.argv.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(argv[0], format!("-ffile-prefix-map={}=", root.display()));
        assert_eq!(
            argv[2],
            format!("-fdebug-prefix-map={}/w=.", root.display())
        );
        assert!(argv.contains(&format!("{}/usr/include", root.display())));
        assert!(argv.contains(&"inc".to_string()));
        assert_eq!(c.cwd, root.join("w/p"));
        let out = std::process::Command::new("gcc")
            .args(&c.argv)
            .current_dir(&c.cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deps = fs::read_to_string(c.depfile.as_ref().unwrap()).unwrap();
        assert!(deps.starts_with("a.o: src/main.c inc/a.h"), "{deps}");
        // A second job finds everything in the cache.
        let t2 = Tree::open(&d.0, 2, b"/w/p", m, &cache, 1 << 30).unwrap();
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
        assert_eq!(judge(b"#include \"../../a.h\"\n").ascent, 2);
        let d = Dir(std::env::temp_dir().join(format!("rcc-sources-up-{}", std::process::id())));
        let _ = fs::remove_dir_all(&d.0);
        fs::create_dir_all(&d.0).unwrap();
        let mut cache = Cache::open(&d.0.join("cache"), 1 << 20).unwrap();
        let src: &[u8] = b"#include \"../../../../etc/passwd\"\n";
        let m = manifest("a.c", &[], &[("/w/a.c", src)]);
        let mut t = Tree::open(&d.0, 3, b"/w", m, &cache, 1 << 30).unwrap();
        t.blob(0, src, &mut cache).unwrap();
        let e = t.check_includes(&mut Verdicts::default(), &[]).unwrap_err();
        assert!(e.text.contains("climb out"), "{}", e.text);
        assert!(Tree::open(
            &d.0,
            4,
            b"/w",
            manifest("../../x.c", &[], &[]),
            &cache,
            1 << 30
        )
        .is_err());
        assert!(Tree::open(&d.0, 5, b"/w", manifest("a.s", &[], &[]), &cache, 1 << 30).is_err());
    }
}
