//! What a box runs: the argument rules rccd enforces on every job, whatever the client says
//! (with the compiler allow-list in `daemon::job`, this is where CVE-2004-2687 — distccd
//! running any argv it was sent — is kept shut). Shared with the client, whose classifier
//! checks its own output against them, so a job rcc sends is never refused for its
//! arguments. Pure: strings in, a verdict out.

/// Whether `s` is a `--param` setting a box will take: `NAME=VALUE` in the characters gcc's
/// parameter names and values use.
pub fn is_param_setting(s: &str) -> bool {
    s.split_once('=').is_some_and(|(k, v)| {
        // gcc's parameter names start with a letter, so a value can never pass for an option.
        k.starts_with(|c: char| c.is_ascii_alphabetic())
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    })
}

/// Options that would run or load other code, read or write files outside the job, or make
/// the compiler do something other than compile one input to one output. Checked on the box
/// whatever the client says: this is where CVE-2004-2687 (distccd running any argv[0] it was
/// sent) is kept shut, together with the compiler allow-list above.
const DENY_PREFIX: &[(&str, &str)] = &[
    ("-fplugin", "loads a plugin into the compiler"),
    ("-iplugindir", "names a plugin directory"),
    ("-specs", "reads a specs file that can run other programs"),
    ("--specs", "reads a specs file that can run other programs"),
    ("-B", "makes the driver run programs from another directory"),
    (
        "-wrapper",
        "runs the compiler's subprocesses under another program",
    ),
    ("--sysroot", "reads files from the box's file system"),
    ("-isysroot", "reads files from the box's file system"),
    ("-o", "names an output path; rccd chooses the output itself"),
    ("-dumpbase", "writes auxiliary files"),
    ("-dumpdir", "writes auxiliary files"),
    ("-aux-info", "writes a file"),
    ("-save-temps", "writes files"),
    ("-fdump-", "writes dump files"),
    ("-fopt-info", "can write a file"),
    ("-fprofile-", "reads or writes profile files"),
    ("-fauto-profile", "reads a profile file"),
    ("--coverage", "writes coverage files"),
    ("-ftest-coverage", "writes coverage files"),
    ("-fcallgraph-info", "writes a file"),
    ("-fsave-optimization-record", "writes a file"),
    ("-fcompare-debug", "writes files"),
    ("-fdiagnostics-format=sarif-file", "writes a file"),
    ("-fdiagnostics-format=json-file", "writes a file"),
    ("-include", "reads a file from the box"),
    ("-imacros", "reads a file from the box"),
    ("-I", "reads files from the box"),
    ("-isystem", "reads files from the box"),
    ("-idirafter", "reads files from the box"),
    ("-iquote", "reads files from the box"),
    ("-iprefix", "reads files from the box"),
    ("-iwithprefix", "reads files from the box"),
    ("-M", "writes dependency files"),
    ("-Wp,", "passes options to the preprocessor"),
    ("-Xpreprocessor", "passes options to the preprocessor"),
    ("-Xassembler", "passes options to the assembler"),
    (
        "-x",
        "sets the input language; rccd names the input by its extension",
    ),
    ("--help", "does not compile"),
    ("-print", "does not compile"),
    ("-dump", "does not compile"),
    ("-fuse-ld", "picks a linker"),
];

/// Whole arguments refused for the same reasons (as prefixes they would catch good flags).
const DENY_EXACT: &[(&str, &str)] = &[
    ("-E", "does not compile"),
    ("-###", "does not compile"),
    ("--version", "does not compile"),
    ("-v", "prints the box's command lines"),
];

/// Checks a job's arguments. Returns them as strings, or a refusal naming the argument.
pub fn check_args(args: &[Vec<u8>]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(args.len());
    let mut stage = 0;
    // The options with a separate value that reach a box: `--param NAME=VALUE` and `-G N`.
    let mut param_value = false;
    let mut g_value = false;
    for (i, raw) in args.iter().enumerate() {
        let n = i + 1;
        if raw.contains(&0) {
            return Err(format!("argument {n} contains a NUL byte"));
        }
        let Ok(a) = std::str::from_utf8(raw) else {
            return Err(format!("argument {n} is not UTF-8"));
        };
        if a.starts_with('@') {
            return Err(format!(
                "argument {n} \"{a}\" reads more arguments from a file on the box"
            ));
        }
        if std::mem::take(&mut param_value) {
            if !is_param_setting(a) {
                return Err(format!("argument {n} \"{a}\" is not a --param NAME=VALUE"));
            }
            out.push(a.to_string());
            continue;
        }
        if std::mem::take(&mut g_value) {
            if a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("argument {n} \"{a}\" is not a -G size"));
            }
            out.push(a.to_string());
            continue;
        }
        if a == "--param" {
            param_value = true;
        } else if a == "-G" {
            g_value = true;
        } else if a == "-c" || a == "-S" {
            stage += 1;
        } else if a.starts_with('-') {
            for (exact, why) in DENY_EXACT {
                if a == *exact {
                    return Err(format!("argument {n} \"{a}\" {why}; rccd does not run it"));
                }
            }
            for (prefix, why) in DENY_PREFIX {
                if a.starts_with(prefix) {
                    return Err(format!("argument {n} \"{a}\" {why}; rccd does not run it"));
                }
            }
            if let Some(parts) = a.strip_prefix("-Wa,") {
                for p in parts.split(',') {
                    if p.starts_with("-a")
                        || p.starts_with("--MD")
                        || p.starts_with("-MD")
                        || p.starts_with('@')
                        || p.starts_with("-o")
                        || p.starts_with("-I")
                        || p.starts_with("--listing")
                    {
                        return Err(format!(
                            "argument {n} \"{a}\" makes the assembler read or write files"
                        ));
                    }
                }
            }
        } else {
            return Err(format!(
                "argument {n} \"{a}\" is a file name; rccd adds the input and output itself"
            ));
        }
        out.push(a.to_string());
    }
    if g_value {
        return Err("-G is missing its size".to_string());
    }
    if param_value {
        return Err("--param is missing its NAME=VALUE".to_string());
    }
    if stage != 1 {
        return Err("a job must have exactly one of -c or -S".to_string());
    }
    Ok(out)
}

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
    fn param_values_are_name_equals_value_and_never_an_option() {
        assert!(is_param_setting("max-inline-insns-single=1000"));
        assert!(is_param_setting("l1-cache-size=32"));
        // Found by fuzzing: a value shaped like an option passed for a setting.
        assert!(!is_param_setting("--specssingle=1000"));
        assert!(!is_param_setting("-fplugin=x"));
        assert!(!is_param_setting("=1"));
        assert!(!is_param_setting("name=a/b"));
    }

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
