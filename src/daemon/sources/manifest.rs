//! What a shipped job's manifest may name, checked before anything is made: its working
//! directory, its source (a C, C++ or `.S` file by its suffix), its search paths and files
//! (inside the mirror, no precompiled headers) and its dependency targets; and the
//! directories the mirror needs for its search paths.

use super::{bad, Refusal};
use crate::daemon::tree;
use crate::rules::box_rules::{ascent, lexical};
use crate::wire::protocol::Manifest;
use std::path::{Component, Path, PathBuf};

/// The master's working directory `cwd`, checked as a path the mirror may hold.
pub(super) fn working_dir(cwd: &[u8]) -> Result<PathBuf, Refusal> {
    let cwd = std::str::from_utf8(cwd).map_err(|_| bad("the working directory is not UTF-8"))?;
    let cwd = tree::check_path(cwd).map_err(|e| bad(format!("working directory: {e}")))?;
    Ok(cwd.to_path_buf())
}

/// Checks `manifest` for a compile run from `cwd`; the directories its search paths need in
/// the mirror.
pub(super) fn check(cwd: &Path, manifest: &Manifest) -> Result<Vec<PathBuf>, Refusal> {
    check_source(cwd, manifest)?;
    let mut dirs = Vec::new();
    search_dirs(cwd, ".", &mut dirs);
    for (opt, p) in &manifest.paths {
        inside(cwd, p)?;
        if !matches!(opt.as_str(), "-include" | "-imacros") {
            search_dirs(cwd, p, &mut dirs);
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
    Ok(dirs)
}

/// The source: a C, C++ or `.S` file inside the mirror; and the dependency file's targets.
fn check_source(cwd: &Path, manifest: &Manifest) -> Result<(), Refusal> {
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
    inside(cwd, &manifest.source)?;
    let Some(d) = &manifest.deps else {
        return Ok(());
    };
    match d
        .mt
        .iter()
        .chain(&d.mq)
        .find(|t| t.contains(['\0', '\n', '\r']))
    {
        Some(t) => Err(bad(format!(
            "dependency target {t:?} has a NUL byte or a line end"
        ))),
        None => Ok(()),
    }
}

/// The suffixes of sources the box preprocesses (C and C++, as gcc names them).
const SOURCE_SUFFIXES: [&str; 10] = [
    "c", "cc", "cp", "cxx", "cpp", "CPP", "c++", "C", // C and C++
    "S", "sx", // assembler through the preprocessor
];

/// `p` as gcc would use it from `cwd`, checked to stay inside the mirror; its plain form
/// (for its depth and to make its directories).
pub(super) fn inside(cwd: &Path, p: &str) -> Result<PathBuf, Refusal> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
