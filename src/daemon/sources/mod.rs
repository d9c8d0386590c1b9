//! A job that ships its sources, on the box: the job between its manifest and its compile
//! (`Tree`). It checks the manifest (`manifest`), lays out the job's private mirror of the
//! master's files from the cache (asking only for what is missing), takes the missing files
//! as they come, checks what the files include (`include_check`) and writes the compiler's
//! command (`command`). The conversation drives it; `tree` and `cache` do the file work.
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
//! `-H` (`audit::Audit`): gcc reports each header it opens, and the compile runs only if
//! every one lies inside the mirror and the preprocessing succeeded. `job` runs the two in
//! turn.

mod command;
mod include_check;
mod manifest;

pub use include_check::IncludeVerdicts;

use super::cache::{Cache, PutError};
use super::job::Launch;
use super::tree::{Mirror, Mirrors};
use crate::rules::box_args::BoxArgs;
use crate::wire::protocol::{Manifest, RejectReason};
use std::fs;
use std::path::{Path, PathBuf};

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
        let cwd = manifest::working_dir(cwd)?;
        let dirs = manifest::check(&cwd, &manifest)?;
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
        verdicts: &mut IncludeVerdicts,
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
}

#[cfg(test)]
mod tests {
    use super::include_check::judge;
    use super::*;
    use crate::wire::protocol::{DepRequest, FileEntry};
    use std::ffi::OsString;

    fn ba(list: &[&str]) -> BoxArgs {
        let raw: Vec<Vec<u8>> = list.iter().map(|a| a.as_bytes().to_vec()).collect();
        BoxArgs::parse(&raw).unwrap()
    }

    use crate::scratch::Scratch as Dir;

    /// A fresh directory of this test's own, removed when dropped.
    fn scratch(name: &str) -> Dir {
        Dir::new(&format!("sources-{name}"), true)
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
            .check_includes(&mut IncludeVerdicts::default(), &ba(&["-c"]))
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
            .check_includes(&mut IncludeVerdicts::default(), &ba(&["-c"]))
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
            t.check_includes(&mut IncludeVerdicts::default(), &ba(&line))
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
