//! What a shipped job's files include, checked before its compiler starts: each file's
//! content is judged once per box (`IncludeVerdicts`, by hash: no absolute names, no
//! `.incbin`/`.include`, a name computed by a macro only through a plain macro name), then
//! the job's files are held to where their names are looked up from (no `..` that climbs
//! out, no plain definition of such a macro to a file outside). What a macro may still make
//! a job open is left to the audit (`daemon::audit`).

use super::{bad, internal, Refusal, Tree};
use crate::daemon::tree;
use crate::rules::box_args::BoxArgs;
use crate::rules::box_rules::{ascent, depth};
use crate::rules::includes::{self, Directive};
use crate::sha256::Digest;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// What a file's content allows, known once per hash: whether it names a file the box must
/// not read, and how far its quoted `..` names climb.
#[derive(Default)]
pub(super) struct IncludeVerdict {
    pub(super) refused: Option<String>,
    pub(super) ascent: usize,
    /// The macros its computed includes name (which may be defined anywhere, even by an
    /// option the box does not read as a definition: only the audit is sure).
    pub(super) computed: Vec<String>,
    /// Its own `#define NAME "file"` and `#define NAME <file>` of those macros: what its
    /// computed includes plainly open, checked before the compile like a written name (the
    /// audit sees to the rest).
    pub(super) named: Vec<(String, String)>,
}

/// The verdict on a file's content.
pub(super) fn judge(data: &[u8]) -> IncludeVerdict {
    let mut v = IncludeVerdict::default();
    let judged = judge_directives(data, &mut v).and_then(|()| judge_definitions(data, &mut v));
    if let Err(why) = judged {
        v.refused = Some(why);
    }
    v
}

/// Reads `data`'s include directives into `v`; `Err`: why the file is refused.
fn judge_directives(data: &[u8], v: &mut IncludeVerdict) -> Result<(), String> {
    for d in includes::scan(data) {
        match d {
            Directive::ReadsFiles => return Err(includes::READS_FILES.into()),
            Directive::Computed { line, text } => match includes::computed_macro(&text) {
                // `__FILE__` and friends name files of the box, and a name that is not a
                // plain macro cannot be told apart from one of them.
                Some(m) if !m.starts_with("__") => {
                    if !v.computed.iter().any(|c| c == m) {
                        // Bounded, so that judging a file stays linear in its size.
                        if v.computed.len() == MAX_COMPUTED {
                            return Err(format!(
                                "names its includes with more than {MAX_COMPUTED} macros"
                            ));
                        }
                        v.computed.push(m.to_string());
                    }
                }
                _ => return Err(format!("line {line}: `{text}` names its file with a macro")),
            },
            // The client keeps such a job at home; the box has nothing to guard here.
            Directive::Clock { .. } => {}
            Directive::Include { name, .. } => {
                if Path::new(&name).is_absolute() || name.contains('\0') {
                    return Err(format!("includes {name:?} by absolute path"));
                }
                v.ascent = v.ascent.max(ascent(Path::new(&name)));
            }
        }
    }
    Ok(())
}

/// Keeps in `v` what `data` plainly defines the macros of its computed includes to.
fn judge_definitions(data: &[u8], v: &mut IncludeVerdict) -> Result<(), String> {
    if v.computed.is_empty() {
        return Ok(());
    }
    let mut named: Vec<(String, String)> = data
        .split(|&b| b == b'\n')
        .filter_map(|l| named_file(std::str::from_utf8(l).ok()?))
        .filter(|(m, _)| v.computed.contains(m))
        .collect();
    named.sort_unstable();
    named.dedup();
    // Kept with the verdict for as long as the box runs: bounded like the macros.
    if named.iter().map(|(m, f)| m.len() + f.len()).sum::<usize>() > MAX_NAMED_BYTES {
        return Err(format!(
            "defines the macros its includes are named by to more than {MAX_NAMED_BYTES} \
             bytes of file names"
        ));
    }
    v.named = named;
    Ok(())
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

/// Include verdicts by content hash, so a header is read and judged once per box, not once
/// per job.
#[derive(Default)]
pub struct IncludeVerdicts {
    judged: HashMap<Digest, IncludeVerdict>,
}

/// Most verdicts kept before the map starts over.
const VERDICTS_KEPT: usize = 200_000;

fn read_shipped(path: &Path) -> Result<Vec<u8>, Refusal> {
    fs::read(path).map_err(|e| internal(format!("cannot read a shipped file: {e}")))
}

impl IncludeVerdicts {
    /// The verdict on the content `hash`, judged from the file at `path` the first time:
    /// that file must have that hash, so that no verdict is ever kept for other bytes than
    /// those it was made from.
    fn get(&mut self, hash: &Digest, path: &Path) -> Result<&IncludeVerdict, Refusal> {
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

impl Tree {
    /// Checks what every file includes (see the module doc); `args` are the compiler's.
    /// `Ok(true)`: some include names its file with a macro, so only the audit can tell
    /// what the compile opened.
    pub(super) fn check_includes(
        &self,
        verdicts: &mut IncludeVerdicts,
        args: &BoxArgs,
    ) -> Result<bool, Refusal> {
        let shallowest = self.shallowest_search_dir()?;
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
        definitions_stay_inside(&computed, &named)?;
        Ok(true)
    }

    /// The depth of the shallowest search directory (a name is looked up from there, or
    /// from the directory of the file that includes it).
    fn shallowest_search_dir(&self) -> Result<usize, Refusal> {
        let mut shallowest = usize::MAX;
        for (opt, p) in &self.manifest.paths {
            if !matches!(opt.as_str(), "-include" | "-imacros") {
                shallowest = shallowest.min(depth(&super::manifest::inside(&self.cwd, p)?));
            }
        }
        Ok(shallowest)
    }
}

/// What a plain definition `named` of a macro `computed` looks up from a depth is refused
/// before the compile, as if written out, when it leaves the job's files.
fn definitions_stay_inside(
    computed: &HashMap<String, usize>,
    named: &[(String, String)],
) -> Result<(), Refusal> {
    for (m, file) in named {
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
    Ok(())
}
