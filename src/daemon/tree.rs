//! A job's private copy of the master's files, for jobs that ship sources and headers: under
//! the job dir, `root/` mirrors the master's paths (`/usr/include/stdio.h` becomes
//! `root/usr/include/stdio.h`), each file a hard link to the box's cache (a copy when the
//! cache is on another file system). The compiler then runs in `root/` + the master's working
//! directory with every absolute path prefixed by `root`, and `-ffile-prefix-map` takes the
//! prefix away again, so what it records names the master's paths.
//!
//! Every path a peer sends is checked before it touches the disk: absolute, no `.` or `..`
//! components, no NUL, bounded length and depth. Only regular files and directories are
//! made, never links a peer chose, so nothing here leads out of the job dir.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

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

/// Makes `root/abs` for a checked directory path.
pub fn make_dir(root: &Path, abs: &Path) -> io::Result<()> {
    fs::create_dir_all(under(root, abs))
}

/// Places the cached file `from` at `root/abs` (checked): a hard link, or a copy across file
/// systems. A path already present (the same file shipped twice) is left as it is. `made`
/// holds the directories this tree has: each is made once, not once per file in it.
pub fn place(root: &Path, abs: &Path, from: &Path, made: &mut HashSet<PathBuf>) -> io::Result<()> {
    let dest = under(root, abs);
    if let Some(d) = dest.parent().filter(|d| !made.contains(*d)) {
        fs::create_dir_all(d)?;
        made.insert(d.to_path_buf());
    }
    match fs::hard_link(from, &dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => fs::copy(from, &dest).map(|_| ()),
        Err(e) => Err(e),
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

    #[test]
    fn files_land_under_the_root_as_links() {
        let d = std::env::temp_dir().join(format!("rcc-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("cache")).unwrap();
        let blob = d.join("cache/abc");
        fs::write(&blob, "int x;\n").unwrap();
        let root = d.join("job/root");
        let p = check_path("/usr/include/x.h").unwrap();
        let mut made = HashSet::new();
        place(&root, p, &blob, &mut made).unwrap();
        place(&root, p, &blob, &mut made).unwrap();
        assert_eq!(fs::read(root.join("usr/include/x.h")).unwrap(), b"int x;\n");
        make_dir(&root, check_path("/w/build").unwrap()).unwrap();
        assert!(root.join("w/build").is_dir());
        fs::remove_dir_all(&d).unwrap();
    }
}
