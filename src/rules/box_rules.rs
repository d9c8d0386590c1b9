//! Where a box's paths may lead: names resolved the way a box resolves them in its mirror of
//! the master's files (which holds no links), and whether an include stays inside it. Shared
//! with the client, which keeps at home what a box would refuse. Pure: paths in, verdicts
//! out. (The options a box runs are `box_args`.)

/// How far `p` climbs above where it starts, by its names alone (`a/../../x`: 1). A box's
/// mirror of the master's files holds no symlinks, so names alone decide where a path leads.
pub fn ascent(p: &std::path::Path) -> usize {
    use std::path::Component;
    let (mut depth, mut lowest) = (0i64, 0i64);
    for c in p.components() {
        match c {
            Component::RootDir => depth = 0,
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                lowest = lowest.min(depth);
            }
            _ => {}
        }
    }
    (-lowest) as usize
}

/// How many names deep `p` is.
pub fn depth(p: &std::path::Path) -> usize {
    p.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count()
}

/// Whether a path has no empty, `.` or `..` component and no trailing slash: the form
/// `lexical` (and the client's `scan::clean`) give, which most paths already have —
/// building one again component by component was a tenth of a job's scan.
pub fn is_plain(b: &[u8]) -> bool {
    if b == b"/" {
        return true;
    }
    let mut parts = b.split(|&c| c == b'/');
    if b.first() == Some(&b'/') {
        parts.next(); // before the root
    }
    parts.all(|c| !matches!(c, b"" | b"." | b".."))
}

/// `p` (absolute) with `.` and `..` resolved by the names alone, as a box resolves them in its
/// mirror (`..` at `/` stays at `/`).
pub fn lexical(p: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    use std::path::Component;
    // Most paths have nothing to resolve (the client's scan cleans them).
    if p.is_absolute() && is_plain(p.as_os_str().as_bytes()) {
        return p.to_path_buf();
    }
    let mut out = std::path::PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Whether an include directive's `name`, looked up from a file in `includer_dir` or any of
/// `search` (absolute paths as the master has them), can only reach paths inside the
/// master's file system as a box mirrors it. On a box the mirror is a directory, so a name
/// that climbs above `/` (`../../../../etc/passwd` from a shallow directory) would leave it,
/// and an absolute name would read the box's own file: both are refused, and the job is
/// preprocessed at home instead. Names with `..` that stay inside are fine (the kernel has
/// hundreds: `#include "../workqueue_internal.h"`). The box applies this per file content
/// (`daemon::sources`): a file's largest `ascent` against the shallowest place it is looked
/// up from.
pub fn include_stays_inside(
    name: &str,
    includer_dir: &std::path::Path,
    search: &[std::path::PathBuf],
) -> bool {
    let name_path = std::path::Path::new(name);
    if name_path.is_absolute() || name.contains('\0') {
        return false;
    }
    let climb = ascent(name_path);
    std::iter::once(includer_dir)
        .chain(search.iter().map(|p| p.as_path()))
        .all(|base| depth(base) >= climb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn names_resolve_as_in_a_mirror_without_links() {
        assert_eq!(lexical(Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
        assert_eq!(lexical(Path::new("/../../x")), PathBuf::from("/x"));
        assert_eq!(
            lexical(Path::new(
                "/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12"
            )),
            PathBuf::from("/usr/include/c++/12")
        );
        assert_eq!(ascent(Path::new("a/../../x")), 1);
        assert_eq!(ascent(Path::new("../../x")), 2);
    }

    #[test]
    fn includes_that_would_leave_the_mirror_are_caught() {
        let search = [PathBuf::from("/usr/include"), PathBuf::from("/w/include")];
        let dir = Path::new("/w/kernel/sched");
        assert!(include_stays_inside("linux/sched.h", dir, &search));
        assert!(include_stays_inside(
            "../workqueue_internal.h",
            dir,
            &search
        ));
        assert!(include_stays_inside("../../include/x.h", dir, &search));
        // From /usr/include, three levels up is above the root.
        assert!(!include_stays_inside("../../../etc/passwd", dir, &search));
        assert!(!include_stays_inside("/etc/passwd", dir, &search));
        assert!(!include_stays_inside("a/../../../../../x", dir, &search));
    }
}
