//! The audit of a shipped job whose includes a macro names: the preprocessing the box runs
//! first (gcc's `-H` reports every header it opens), and the check of that report against
//! the job's mirror. `sources` makes an audit when the include checks cannot tell what a
//! job opens; `job` runs it, and the compile only if it passes.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The preprocessing run before a job whose includes a macro names, and what to check in
/// what it says (`job` runs it, and the compile only if it passes).
#[derive(Debug, Clone)]
pub struct Audit {
    /// The mirror's root, and the directory the compiler runs in (inside it).
    root: PathBuf,
    cwd: PathBuf,
    /// The arguments after the compiler's name.
    pub argv: Vec<OsString>,
}

impl Audit {
    /// The preprocessing `argv` of a compile that runs in `cwd`, inside the mirror at `root`.
    pub fn new(root: PathBuf, cwd: PathBuf, argv: Vec<OsString>) -> Audit {
        Audit { root, cwd, argv }
    }

    /// The first file gcc's `-H` report in `stderr` names outside the mirror. gcc writes, for
    /// each header it opens, one dot per include depth, a space and the path as it opened it
    /// (relative to where it runs, or absolute); for a precompiled header it tries, dots then
    /// `!` (used) or `x` (not valid) and a space. Every other line is a diagnostic (a file
    /// name, a space or `In file included from` first) or, at the end, gcc's list of headers
    /// that lack an include guard (`Multiple include guards may be useful for:`, one path a
    /// line without dots: each already reported with its dots).
    pub fn outside(&self, stderr: &[u8]) -> Option<PathBuf> {
        stderr
            .split(|&b| b == b'\n')
            .filter_map(report_line)
            .find(|path| !stays_inside(&self.root, &self.cwd, path))
            .map(|path| PathBuf::from(OsStr::from_bytes(path)))
    }
}

/// The path a line of gcc's `-H` report names, or `None` for any other line.
fn report_line(line: &[u8]) -> Option<&[u8]> {
    let dots = line.iter().take_while(|&&b| b == b'.').count();
    match &line[dots..] {
        [b' ', path @ ..] if dots > 0 => Some(path),
        [b'!' | b'x', b' ', path @ ..] => Some(path),
        _ => None,
    }
}

/// Whether `path`, as a compiler running in `cwd` (inside `root`) opened it, stays in
/// `root`: an absolute path must start with `root`, and no `..` may climb above it at any
/// point. Stricter than resolving `..` by the names alone: the walk never passes through a
/// directory outside the mirror, where a link could lead anywhere.
fn stays_inside(root: &Path, cwd: &Path, path: &[u8]) -> bool {
    let full = cwd.join(Path::new(OsStr::from_bytes(path)));
    let Ok(rest) = full.strip_prefix(root) else {
        return false;
    };
    let mut depth = 0usize;
    for c in rest.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::CurDir => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// An audit for a compile that runs in `/j/root/w/p`.
    fn audit() -> Audit {
        Audit {
            root: "/j/root".into(),
            cwd: "/j/root/w/p".into(),
            argv: vec![],
        }
    }

    #[test]
    fn a_header_opened_outside_the_mirror_is_found_in_the_report() {
        for (path, inside) in [
            ("inc/a.h", true),
            ("../../usr/include/a.h", true),
            ("./inc/./a.h", true),
            ("src/../../p/inc/a.h", true),
            ("/j/root/usr/lib/gcc/x/12/../../../../include/a.h", true),
            ("/j/root/w/p/inc/a.h", true),
            ("/j/root//w/p/inc/a.h", true),
            ("../../../etc/passwd", false),
            ("src/../../../../etc/passwd", false),
            ("/etc/passwd", false),
            // Back in by name, but through a directory outside: refused all the same.
            ("/j/root/../root/w/a.h", false),
            ("/j/root/usr/../../etc/passwd", false),
            ("/j/rootx/a.h", false),
            ("/j/output.d", false),
            ("/proc/self/cwd/a.h", false),
        ] {
            // As gcc reports a header at any depth, and a precompiled one it tried.
            for form in [". ", "..... ", "! ", "..x "] {
                let stderr = format!(". inc/b.h\n{form}{path}\n. /etc/shadow\n");
                let got = audit().outside(stderr.as_bytes());
                let want = if inside { "/etc/shadow" } else { path };
                assert_eq!(got, Some(PathBuf::from(want)), "{form}{path}");
            }
        }
    }

    #[test]
    fn only_the_reports_own_lines_count() {
        let stderr = b"In file included from /etc/x.h:1,\n\
            \x20                from a.c:2:\n\
            /etc/x.h:1:5: warning: unused variable 'x' [-Wunused-variable]\n\
            \x20   1 | . /etc/passwd\n\
            ...: dots without a space\n\
            x: a file called x\n\
            Multiple include guards may be useful for:\n\
            /etc/passwd\n\
            . inc/a.h";
        assert_eq!(audit().outside(stderr), None);
        assert_eq!(audit().outside(b""), None);
    }

    #[test]
    fn gcc_reports_what_a_macro_made_it_open() {
        let d = std::env::temp_dir().join(format!("rcc-audit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let root = d.join("root");
        let cwd = root.join("w");
        fs::create_dir_all(cwd.join("inc")).unwrap();
        fs::write(cwd.join("inc/inside.h"), "int i;\n").unwrap();
        let audit = Audit {
            root: root.clone(),
            cwd: cwd.clone(),
            argv: vec![],
        };
        let stringify = "#define STR(x) #x\n#define XSTR(x) STR(x)\n";
        for (text, outside) in [
            ("#define P XSTR(inc/inside.h)\n#include P\n", None),
            (
                "#define P XSTR(../inc/../w/inc/inside.h)\n#include P\n",
                None,
            ),
            (
                "#define P XSTR(/usr/include/stdc-predef.h)\n#include P\n",
                Some("/usr/include/stdc-predef.h".to_string()),
            ),
            (
                "#define P XSTR(../../../../../../../../../../../../etc/passwd)\n#include P\n",
                Some("../../../../../../../../../../../../etc/passwd".to_string()),
            ),
        ] {
            fs::write(cwd.join("a.c"), format!("{stringify}{text}")).unwrap();
            let out = std::process::Command::new("gcc")
                .args([
                    "-nostdinc",
                    "-Iinc",
                    "-c",
                    "a.c",
                    "-E",
                    "-H",
                    "-o",
                    "/dev/null",
                ])
                .current_dir(&cwd)
                .output()
                .unwrap();
            assert_eq!(
                audit.outside(&out.stderr),
                outside.map(PathBuf::from),
                "{text}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = fs::remove_dir_all(&d);
    }
}
