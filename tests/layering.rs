//! Keeps the house rules of `src/lib.rs` true as the code grows, by reading `src/` as text:
//! client and daemon never import each other, only the event loop touches mio's poll,
//! parsers do no I/O, only `sys.rs` may have `unsafe` (the compiler holds the rest to it),
//! library code never exits the process. And every file of `tests/` runs.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut v = Vec::new();
    files(&root, &mut v);
    v.into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // Only the code, not the test module at its end (a `#[cfg(test)]` helper
            // further up is checked with the rest).
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap()
                .to_string();
            (rel, code)
        })
        .collect()
}

#[test]
fn client_and_daemon_never_import_each_other() {
    for (f, code) in sources() {
        if f.starts_with("client/") {
            assert!(!code.contains("daemon::"), "{f} uses the daemon");
        }
        if f.starts_with("daemon/") {
            assert!(!code.contains("client::"), "{f} uses the client");
        }
    }
}

#[test]
fn only_the_event_loop_touches_poll() {
    for (f, code) in sources() {
        if f != "daemon/event_loop.rs" {
            for word in ["mio::", "Poll", "Registry", "Token("] {
                assert!(!code.contains(word), "{f} uses mio's {word}");
            }
        }
    }
}

#[test]
fn parsers_and_deciders_do_no_io() {
    // Whole rooms by directory, and the daemon's pure deciders by name.
    let pure = |f: &str| {
        f.starts_with("rules/")
            || f.starts_with("wire/")
            || [
                "daemon/admit.rs",
                "daemon/health.rs",
                "daemon/audit.rs",
                "daemon/config_file.rs",
                "daemon/thermal/rule.rs",
                "daemon/thermal/readings.rs",
                "daemon/sources/command.rs",
            ]
            .contains(&f)
    };
    let mut checked = 0;
    for (f, code) in sources() {
        if pure(&f) {
            checked += 1;
            for word in [
                "std::fs",
                "std::net::TcpStream",
                "std::process",
                "File::",
                "Command::new",
                "is_file()",
                "is_dir()",
                "exists()",
                "metadata(",
                "read_dir",
                "canonicalize",
            ] {
                assert!(!code.contains(word), "{f} does I/O ({word})");
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} files checked: did the rooms move?"
    );
}

#[test]
fn unsafe_lives_in_sys_only() {
    // The compiler enforces it: the library denies unsafe code and only sys.rs allows it;
    // the binaries forbid it. This test keeps those attributes where they are.
    for (f, code) in sources() {
        let allows = code.contains("allow(unsafe_code)");
        assert_eq!(
            allows,
            f == "sys.rs",
            "{f}: allow(unsafe_code) belongs to sys.rs only"
        );
        if f == "lib.rs" {
            assert!(
                code.contains("#![deny(unsafe_code)]"),
                "lib.rs must deny unsafe code"
            );
        }
        if f.starts_with("bin/") {
            assert!(
                code.contains("#![forbid(unsafe_code)]"),
                "{f} must forbid unsafe code"
            );
        }
        if f != "sys.rs" {
            assert!(!code.contains("unsafe "), "{f} has unsafe code");
        }
    }
}

#[test]
fn library_code_never_exits_the_process() {
    for (f, code) in sources() {
        if !f.starts_with("bin/") {
            assert!(!code.contains("process::exit"), "{f} exits the process");
        }
    }
}

#[test]
fn every_file_says_what_it_is_for() {
    for (f, code) in sources() {
        assert!(code.starts_with("//!"), "{f} does not open with a //! doc");
    }
}

/// Cargo builds one integration test binary, `tests/tests.rs` (`autotests` is off): a file
/// of `tests/` it does not declare as a module would never be compiled, let alone run.
#[test]
fn every_test_file_is_a_module_of_the_test_binary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let root = std::fs::read_to_string(dir.join("tests.rs")).unwrap();
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let module = if p.is_dir() {
            p.join("mod.rs").is_file()
        } else {
            p.extension().is_some_and(|x| x == "rs") && name != "tests"
        };
        if module {
            let line = format!("mod {name};");
            assert!(
                root.lines().any(|l| l == line),
                "tests/{} is not a module of tests/tests.rs: add `{line}` there",
                p.file_name().unwrap().to_string_lossy()
            );
            checked += 1;
        }
    }
    assert!(checked > 1, "no test files found in {}", dir.display());
}
