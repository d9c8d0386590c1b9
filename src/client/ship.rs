//! A job that ships its sources: the manifest a box needs to preprocess and compile it
//! itself (`prepare`: every file the compile may read, by content hash, and the compiler's
//! search path as gcc uses it here), the content of the files the box lacks
//! (`Shipment::content`), and the dependency file written here from the box's
//! (`Shipment::depfile`). Preprocessing leaves the master; what stays is one cached probe of
//! the search path per set of options, a stat per file, and hashing what changed.

use super::files::Files;
use super::scan::{self, SearchPaths};
use crate::fasthash::FastMap;
use crate::rules::box_rules::{is_plain, lexical};
use crate::rules::depfile;
use crate::rules::includes::Form;
use crate::rules::macros;
use crate::rules::ship_args::ShipPlan;
use crate::sha256::Digest;
use crate::wire::protocol::{DepRequest, FileEntry, Kind, Manifest, Message};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Everything a box gets for one job, and where each file's content is here.
pub struct Shipment {
    /// The manifest as the box gets it.
    pub body: Vec<u8>,
    /// The manifest, decoded from `body` only when a box lacks a file (a job from the scan
    /// server forwards the bytes it got).
    manifest: OnceCell<Option<Manifest>>,
    /// How many files the manifest names.
    pub files: usize,
    /// The arguments the box's compiler gets as they are.
    pub literal: Vec<String>,
    /// Where a local compile would write its dependency file, and what the box is asked to
    /// make (the manifest's `deps`).
    pub dep_file: Option<String>,
    deps: Option<DepRequest>,
    /// The implicit `stdc-predef.h` the box is told to include by name (it compiles with
    /// `-nostdinc`, which drops the implicit one): `-MMD` leaves it out here, so it is taken
    /// out of the box's list again.
    pub predef: Option<String>,
    /// Bytes of all the files named.
    pub bytes: u64,
}

/// One job's scan: the compiler and options its probes are asked of and kept under, and
/// the source it starts from.
pub struct Scan<'a> {
    /// The compiler, resolved to a path.
    pub compiler: &'a Path,
    pub identity: &'a str,
    pub sp: &'a ShipPlan,
    /// The source as the command names it.
    pub source: &'a str,
    pub cwd: &'a Path,
    pub rcc_dir: &'a Path,
}

impl Scan<'_> {
    /// Where what the compiler says for this job's options is kept (`RCC_DIR/probes/KEY`).
    fn probe_file(&self) -> PathBuf {
        let mut key = Vec::new();
        key.extend_from_slice(self.identity.as_bytes());
        key.push(0);
        key.extend_from_slice(self.sp.lang.as_bytes());
        for a in self
            .sp
            .probe_args
            .iter()
            .map(|a| a.as_bytes())
            .chain([self.cwd.as_os_str().as_bytes()])
        {
            key.push(0);
            key.extend_from_slice(a);
        }
        let name = &crate::sha256::hex(&crate::sha256::digest(&key))[..32];
        self.rcc_dir.join("probes").join(name)
    }
}

/// The search path for `args` as `compiler` answers it, from `RCC_DIR/probes` while it still
/// holds (no directory gcc left out has appeared since).
fn search_paths(job: &Scan) -> Result<SearchPaths, String> {
    let file = job.probe_file();
    if let Some(known) = fs::read_to_string(&file)
        .ok()
        .and_then(|t| SearchPaths::decode(&t))
        .filter(|s| s.still_true())
    {
        return Ok(known);
    }
    let sp = job.sp;
    let found =
        scan::probe(job.compiler, &sp.probe_args, sp.lang, job.cwd).map_err(|e| e.to_string())?;
    let _ = fs::create_dir_all(job.rcc_dir.join("probes"));
    let _ = super::output::write_atomically(&file, found.encode().as_bytes());
    Ok(found)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// What a scan keeps of the files and directories it saw: for one job in an rcc process, for
/// the whole build in the scan server (`scan_server`).
pub struct Scanner {
    pub files: Files,
    pub dirs: scan::Dirs,
    /// Each content's `#define`s, for computed includes (by content hash: never stale).
    defines: FastMap<Digest, Rc<macros::Definitions>>,
    defines_bytes: usize,
}

impl Scanner {
    /// For one job (directories are stat'ed, not listed).
    pub fn for_one_job(rcc_dir: &Path) -> io::Result<Scanner> {
        Scanner::with(rcc_dir, scan::Dirs::default())
    }

    /// For every job of a build (directory listings kept).
    pub fn for_the_build(rcc_dir: &Path) -> io::Result<Scanner> {
        Scanner::with(rcc_dir, scan::Dirs::kept())
    }

    fn with(rcc_dir: &Path, dirs: scan::Dirs) -> io::Result<Scanner> {
        Ok(Scanner {
            files: Files::open(rcc_dir)?,
            dirs,
            defines: FastMap::default(),
            defines_bytes: 0,
        })
    }

    /// Files known, directories listed, and bytes held of logs and definitions.
    pub fn held(&self) -> (usize, usize, usize) {
        let (files, logs) = self.files.held();
        let (dirs, answers) = self.dirs.held();
        (files + answers, dirs, logs + self.defines_bytes)
    }

    pub fn forget(&mut self) {
        self.files.forget();
        self.dirs.forget();
        self.defines.clear();
        self.defines_bytes = 0;
    }

    /// The `#define`s of `text` (read when not known), whose content has hash `hash`. Kept
    /// for the next jobs only in the scan server, and then only when what was read has that
    /// hash (a file rewritten since its scan would leave another content's under it).
    fn definitions(
        &mut self,
        hash: Digest,
        text: impl FnOnce() -> io::Result<Vec<u8>>,
    ) -> io::Result<Rc<macros::Definitions>> {
        if let Some(d) = self.defines.get(&hash) {
            return Ok(Rc::clone(d));
        }
        let text = text()?;
        if !self.dirs.keeps() {
            return Ok(Rc::new(macros::Definitions::of(text)));
        }
        if crate::sha256::digest(&text) != hash {
            return Err(io::Error::other("changed while it was scanned"));
        }
        let d = Rc::new(macros::Definitions::of(text));
        self.defines_bytes += d.size();
        self.defines.insert(hash, Rc::clone(&d));
        Ok(d)
    }
}

/// Builds the manifest for the job `job` scans, or says why the job is preprocessed here
/// instead. The job starts afresh in `scanner`: every file and directory it uses is checked
/// against the disk again.
pub fn prepare(scanner: &mut Scanner, job: &Scan) -> Result<Shipment, String> {
    scanner.files.next_job();
    scanner.dirs.next_job();
    let search = search_paths(job)?;
    let closure = closure_with_computed(scanner, job, &search)?;
    let (paths, predef) = box_search_path(job, &search)?;
    let files = manifest_files(scanner, closure)?;
    let manifest = Manifest {
        source: job.source.to_string(),
        paths,
        deps: job.sp.deps.as_ref().map(|d| d.request.clone()),
        files,
    };
    Ok(Shipment::new(manifest, job.sp, predef))
}

/// The include closure of the job's source with the files its computed includes can name:
/// those may add definitions and computed includes of their own, so again until nothing new
/// is found.
fn closure_with_computed(
    scanner: &mut Scanner,
    job: &Scan,
    search: &SearchPaths,
) -> Result<scan::IncludeClosure, String> {
    let source_abs = scan::clean(&job.cwd.join(job.source));
    let mut extra: Vec<(PathBuf, Option<usize>)> = Vec::new();
    let mut rounds = 0;
    loop {
        let Scanner { files, dirs, .. } = &mut *scanner;
        let closure = scan::include_closure(&source_abs, search, &extra, dirs, |p| {
            Ok(Rc::clone(&files.get(p)?.directives))
        })
        .map_err(|e| format!("cannot read what {} includes: {e}", job.source))?;
        if let Some(why) = closure.refused {
            return Err(why);
        }
        if closure.computed.is_empty() {
            return Ok(closure);
        }
        let why = closure.unknowable.clone().unwrap_or_default();
        let found =
            computed_files(&closure, search, job, scanner).map_err(|e| format!("{why}: {e}"))?;
        let new: Vec<_> = found
            .into_iter()
            .filter(|(p, _)| !closure.files.contains(p) && !closure.probed.contains(p))
            .collect();
        if new.is_empty() {
            return Ok(closure);
        }
        rounds += 1;
        if rounds > 8 {
            return Err(format!("{why}: its names keep leading to more files"));
        }
        extra.extend(new);
    }
}

/// A search-path option and its value as the box's compiler gets them (`-isystem`, `DIR`).
type PathOption = (String, String);

/// The search path as the box must use it: quote directories, then the `-I` directories gcc
/// kept (they come first in its list), then everything else as system directories, which is
/// what they are here (-isystem, the compiler's own, -idirafter); then the implicit
/// `stdc-predef.h` by name (returned too), and the command's `-include` and `-imacros`.
fn box_search_path(
    job: &Scan,
    search: &SearchPaths,
) -> Result<(Vec<PathOption>, Option<String>), String> {
    let sp = job.sp;
    let mut paths: Vec<PathOption> = Vec::new();
    for raw in &search.quote_raw {
        paths.push(("-iquote".into(), raw.clone()));
    }
    let user: Vec<PathBuf> = sp
        .user_dirs
        .iter()
        .map(|d| scan::clean(&job.cwd.join(d)))
        .collect();
    let mut system = false;
    for (raw, abs) in search.bracket_raw.iter().zip(&search.bracket) {
        system |= !user.contains(abs);
        let opt = if system { "-isystem" } else { "-I" };
        paths.push((opt.into(), raw.clone()));
    }
    if search.bracket_raw.len() != search.bracket.len()
        || search.quote_raw.len() != search.quote.len()
    {
        return Err("the cached search path is from an older rcc".into());
    }
    for (dir, raw) in search.bracket.iter().zip(&search.bracket_raw) {
        if raw.contains("..") && !same_file(dir, &lexical(dir)) {
            return Err(format!("{raw} climbs out of a symlinked directory"));
        }
    }
    // gcc reads `stdc-predef.h` before the source unless told not to; the box, which must
    // not see its own system headers, is told to read the master's by name.
    let predef = search
        .preincludes
        .first()
        .filter(|p| p.file_name().is_some_and(|n| n == "stdc-predef.h"))
        .filter(|_| {
            !sp.includes
                .iter()
                .any(|(_, f)| f.ends_with("stdc-predef.h"))
        })
        .map(|p| lexical(p).to_string_lossy().into_owned());
    if let Some(p) = &predef {
        paths.push(("-include".into(), p.clone()));
    }
    paths.extend(sp.includes.iter().cloned());
    Ok((paths, predef))
}

/// The manifest's files: everything in `closure`, each once by the name the box opens it
/// as, with its size and hash, sorted as the wire likes them.
fn manifest_files(
    scanner: &mut Scanner,
    closure: scan::IncludeClosure,
) -> Result<Vec<FileEntry>, String> {
    let mut entries = Vec::with_capacity(closure.files.len() + closure.probed.len());
    let mut named: std::collections::HashSet<String> = std::collections::HashSet::new();
    for p in closure.files.into_iter().chain(closure.probed) {
        let name = box_name(p)?;
        let plain = Path::new(&name);
        let known = scanner
            .files
            .get(plain)
            .map_err(|e| format!("{name}: {e}"))?;
        for d in known.directives.iter() {
            if let crate::rules::includes::Directive::Include { name: n, .. } = d {
                if Path::new(n).is_absolute() {
                    return Err(format!("{name} includes {n} by absolute path"));
                }
            }
        }
        // A header reached by two spellings (`dir/sub/../x.h`, `dir/x.h`) is one file: a
        // box refuses a manifest that names a path twice.
        if !named.insert(name.clone()) {
            continue;
        }
        entries.push(FileEntry {
            path: name,
            size: known.size,
            hash: known.hash,
        });
    }
    // Sorted, the paths share most of their bytes with the one before (see `protocol`).
    sort_by_directory(&mut entries);
    Ok(entries)
}

/// The name a box opens `p` as: resolved lexically (most paths need it not: the scan cleans
/// them), and UTF-8. `Err` when `..` would climb out of a symlinked directory.
fn box_name(p: PathBuf) -> Result<String, String> {
    let plain = if is_plain(p.as_os_str().as_bytes()) {
        p
    } else {
        let plain = lexical(&p);
        if plain.as_os_str() != p.as_os_str() && !same_file(&p, &plain) {
            return Err(format!(
                "{} climbs out of a symlinked directory",
                p.display()
            ));
        }
        plain
    };
    plain
        .into_os_string()
        .into_string()
        .map_err(|p| format!("{} is not UTF-8", Path::new(&p).display()))
}

/// Sorts `entries` as far as the wire cares: by directory. Comparing whole paths, which
/// share long prefixes, stood out in the scan server's profile (`bash
/// tests/tools/master-profile.sh`), and a job's files live in far fewer directories.
fn sort_by_directory(entries: &mut Vec<FileEntry>) {
    let split = |p: &str| p.rfind('/').map_or(0, |i| i + 1);
    let ranks: Vec<usize> = {
        let mut dirs: FastMap<&str, usize> = FastMap::default();
        for e in entries.iter() {
            dirs.insert(&e.path[..split(&e.path)], 0);
        }
        let mut sorted: Vec<&str> = dirs.keys().copied().collect();
        sorted.sort_unstable();
        for (i, d) in sorted.iter().enumerate() {
            dirs.insert(d, i);
        }
        entries
            .iter()
            .map(|e| dirs[&e.path[..split(&e.path)]])
            .collect()
    };
    // Within a directory the scan's order stays: names compared would cost more than the
    // few bytes they share.
    let mut keyed: Vec<(usize, FileEntry)> = ranks.into_iter().zip(entries.drain(..)).collect();
    keyed.sort_by_key(|(rank, _)| *rank);
    entries.extend(keyed.into_iter().map(|(_, e)| e));
}

/// The files the closure's computed includes can name (see `macros`), each as gcc would
/// find it from its includer, with its chain index; or why that cannot be known.
fn computed_files(
    closure: &scan::IncludeClosure,
    search: &SearchPaths,
    job: &Scan,
    scanner: &mut Scanner,
) -> Result<Vec<(PathBuf, Option<usize>)>, String> {
    let mut defines = Vec::with_capacity(closure.files.len() + 1);
    for f in &closure.files {
        let say = |e: io::Error| format!("{}: {e}", f.display());
        // As this job's scan saw it.
        let hash = scanner.files.get(f).map_err(say)?.hash;
        defines.push(scanner.definitions(hash, || fs::read(f)).map_err(say)?);
    }
    let predefined = predefined(job)?;
    let hash = crate::sha256::digest(&predefined);
    let d = scanner.definitions(hash, || Ok(predefined));
    defines.push(d.map_err(|e| e.to_string())?);
    let sp = job.sp;
    let options: Vec<&str> = sp
        .literal
        .iter()
        .filter_map(|a| a.strip_prefix("-D"))
        .collect();
    let directives: Vec<&str> = closure.computed.iter().map(|c| c.text.as_str()).collect();
    let defines: Vec<&macros::Definitions> = defines.iter().map(|d| d.as_ref()).collect();
    let defs = macros::Defs::gather(&directives, &defines, &options);
    let mut out = Vec::new();
    // The same directive recurs (trace_events.h has it seven times): its names once.
    let mut names: HashMap<&str, Vec<(Form, String)>> = HashMap::new();
    for c in &closure.computed {
        let next = c
            .text
            .trim_start_matches(['#', ' ', '\t'])
            .starts_with("include_next");
        if !names.contains_key(c.text.as_str()) {
            names.insert(&c.text, macros::candidates(&c.text, &defs)?);
        }
        for (form, name) in &names[c.text.as_str()] {
            let (form, name) = (*form, name.as_str());
            // The box reads no file by absolute path (it would be its own): no use asking.
            if Path::new(name).is_absolute() {
                return Err(format!("it can name {name}, an absolute path"));
            }
            if let Some(found) = scan::find(name, form, next, &c.file, c.chain, search) {
                if !out.contains(&found) {
                    out.push(found);
                }
            }
        }
    }
    Ok(out)
}

/// The compiler's own macros for this job's options, from `RCC_DIR/probes` once asked.
fn predefined(job: &Scan) -> Result<Vec<u8>, String> {
    let file = job.probe_file().with_extension("dM");
    if let Ok(known) = fs::read(&file) {
        return Ok(known);
    }
    let sp = job.sp;
    let found = scan::predefined(job.compiler, &sp.probe_args, sp.lang, job.cwd)
        .map_err(|e| e.to_string())?;
    let _ = super::output::write_atomically(&file, &found);
    Ok(found)
}

impl Shipment {
    /// The shipment of `manifest` (made for `sp`); `predef` as `prepare` found it.
    pub fn new(manifest: Manifest, sp: &ShipPlan, predef: Option<String>) -> Shipment {
        let body = crate::wire::protocol::manifest_body(&manifest);
        let (files, bytes) = (
            manifest.files.len(),
            manifest.files.iter().map(|f| f.size).sum(),
        );
        let sh = Shipment::encoded(body, files, bytes, sp, predef);
        let _ = sh.manifest.set(Some(manifest));
        sh
    }

    /// A shipment whose manifest is `body`, naming `files` files of `bytes` bytes in all (as
    /// the scan server answers).
    pub fn encoded(
        body: Vec<u8>,
        files: usize,
        bytes: u64,
        sp: &ShipPlan,
        predef: Option<String>,
    ) -> Shipment {
        Shipment {
            body,
            manifest: OnceCell::new(),
            files,
            literal: sp.literal.clone(),
            dep_file: sp.deps.as_ref().map(|d| d.file.clone()),
            deps: sp.deps.as_ref().map(|d| d.request.clone()),
            predef,
            bytes,
        }
    }

    /// The manifest, decoded once.
    fn manifest(&self) -> io::Result<&Manifest> {
        self.manifest
            .get_or_init(|| {
                let limits = crate::wire::protocol::Limits::default();
                let mut frame =
                    crate::wire::protocol::header(Kind::Manifest, false, self.body.len()).to_vec();
                frame.extend_from_slice(&self.body);
                match crate::wire::protocol::decode(&frame, &limits) {
                    Ok(Some((Message::Manifest(m), _))) => Some(m),
                    _ => None,
                }
            })
            .as_ref()
            .ok_or_else(|| io::Error::other("the job's manifest does not decode"))
    }

    /// The content of manifest file `i`, checked against the hash announced: a file rewritten
    /// since is an error (the job is then compiled here, from what is on disk now).
    pub fn content(&self, i: usize) -> io::Result<Vec<u8>> {
        let entry = self
            .manifest()?
            .files
            .get(i)
            .ok_or(io::ErrorKind::InvalidInput)?;
        // The manifest names each file as it is opened here.
        let p = Path::new(&entry.path);
        let data = fs::read(p)?;
        if crate::sha256::digest(&data) != entry.hash {
            return Err(io::Error::other(format!(
                "{} changed while the job was sent",
                p.display()
            )));
        }
        Ok(data)
    }

    /// The dependency file a local compile writes, from the box's (`text`, already named with
    /// the master's paths).
    pub fn depfile(&self, text: &str) -> Result<(String, String), String> {
        let (Some(file), Some(request)) = (&self.dep_file, &self.deps) else {
            return Err("no dependency file was asked for".into());
        };
        let targets = depfile::targets(&request.mt, &request.mq);
        let mut deps = depfile::prerequisites(text, &targets.join(" "))
            .ok_or("the box's dependency file does not start with the expected targets")?;
        self.only_shipped(&deps)?;
        if let Some(p) = &self.predef {
            if request.user_only {
                deps.retain(|d| d != p);
            } else {
                // Named once by the `-include` and again where a system header includes
                // it; gcc here lists it once, found both times the same way.
                let mut seen = false;
                deps.retain(|d| d != p || !std::mem::replace(&mut seen, true));
            }
        }
        Ok((file.clone(), depfile::write(&targets, &deps, request.phony)))
    }
}

impl Shipment {
    /// Checks that every prerequisite a box reports is a file this job shipped: a box can
    /// have opened nothing else, and a hostile one could otherwise write any text into a
    /// makefile rule here (`a.o: a.c ;touch x` runs `touch x` at the next make).
    fn only_shipped(&self, deps: &[String]) -> Result<(), String> {
        let m = self
            .manifest()
            .map_err(|e| format!("cannot check the box's dependency file: {e}"))?;
        let cwd = std::env::current_dir()
            .map_err(|e| format!("cannot check the box's dependency file: {e}"))?;
        let shipped: std::collections::HashSet<&str> =
            m.files.iter().map(|f| f.path.as_str()).collect();
        for d in deps {
            let full = lexical(&cwd.join(d));
            if !full.to_str().is_some_and(|p| shipped.contains(p)) {
                return Err(format!(
                    "the box's dependency file names {d:?}, which the job did not ship; \
                     not trusted"
                ));
            }
        }
        Ok(())
    }
}

/// Why this job's sources cannot travel: environment settings that make gcc write a
/// dependency file the box would not.
pub fn env_blocks(var: impl Fn(&str) -> Option<OsString>) -> Option<String> {
    [
        "DEPENDENCIES_OUTPUT",
        "SUNPRO_DEPENDENCIES",
        "CPATH",
        "C_INCLUDE_PATH",
        "CPLUS_INCLUDE_PATH",
    ]
    .iter()
    .find(|v| var(v).is_some())
    .map(|v| format!("{v} is set"))
}
