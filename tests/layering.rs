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
                "daemon/discovery.rs",
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
                "UdpSocket",
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

/// `client/pick.rs` -> `client::pick`; `daemon/sources/mod.rs` -> `daemon::sources`.
fn module_of(file: &str) -> String {
    let m = file.trim_end_matches(".rs").trim_end_matches("/mod");
    m.replace('/', "::")
}

/// The paths a file names through `crate::` and `super::`, as full module paths (group
/// imports `crate::a::{b, c::d}` give `a::b` and `a::c::d`).
fn named_paths(module: &str, code: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let parent: Vec<&str> = module.split("::").collect();
    for (start, root) in [
        ("crate::", String::new()),
        ("super::", {
            // A file's `super` is its parent module (for `x/mod.rs` that is `x`'s parent too).
            parent[..parent.len().saturating_sub(1)].join("::")
        }),
    ] {
        for (at, _) in code.match_indices(start) {
            let rest = &code[at + start.len()..];
            let path: String = rest.chars().take_while(|&c| ident(c)).collect();
            let path = path.trim_end_matches(':');
            let full = |p: &str| {
                if root.is_empty() {
                    p.to_string()
                } else {
                    format!("{root}::{p}")
                }
            };
            let after = &rest[path.len()..].trim_start_matches(':');
            if after.starts_with('{') {
                let group = &after[1..after.find('}').unwrap_or(after.len() - 1)];
                for item in group.split(',') {
                    let item: String = item.trim().chars().take_while(|&c| ident(c)).collect();
                    if !item.is_empty() {
                        out.push(full(format!("{path}::{item}").trim_start_matches(':')));
                    }
                }
            } else if !path.is_empty() {
                out.push(full(path));
            }
        }
    }
    out
}

/// No two modules import each other, directly or around a circle (a module and its own
/// submodules aside): a circle means neither can be read, tested or moved alone.
#[test]
fn no_import_circles() {
    let files = sources();
    let modules: Vec<String> = files.iter().map(|(f, _)| module_of(f)).collect();
    // The module a path names: the longest module that starts it.
    let target = |path: &str| -> Option<usize> {
        (0..modules.len())
            .filter(|&i| path == modules[i] || path.starts_with(&format!("{}::", modules[i])))
            .max_by_key(|&i| modules[i].len())
    };
    let nested =
        |a: &str, b: &str| a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"));
    let mut edges = vec![Vec::new(); modules.len()];
    for (i, (_, code)) in files.iter().enumerate() {
        for p in named_paths(&modules[i], code) {
            if let Some(j) = target(&p) {
                if j != i && !nested(&modules[i], &modules[j]) && !edges[i].contains(&j) {
                    edges[i].push(j);
                }
            }
        }
    }
    // Depth-first search for a back edge; the path to it is the circle.
    fn visit(
        n: usize,
        edges: &[Vec<usize>],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[n] = 1;
        path.push(n);
        for &m in &edges[n] {
            if state[m] == 1 {
                let from = path.iter().position(|&x| x == m).unwrap();
                return Some(path[from..].to_vec());
            }
            if state[m] == 0 {
                if let Some(c) = visit(m, edges, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state[n] = 2;
        None
    }
    let mut state = vec![0u8; modules.len()];
    for n in 0..modules.len() {
        if state[n] == 0 {
            if let Some(circle) = visit(n, &edges, &mut state, &mut Vec::new()) {
                let names: Vec<&str> = circle.iter().map(|&i| modules[i].as_str()).collect();
                panic!("an import circle: {} -> back", names.join(" -> "));
            }
        }
    }
    // The reader found the edges it must: it is not passing by seeing nothing.
    let pick = modules.iter().position(|m| m == "client::pick").unwrap();
    assert!(
        edges[pick].iter().any(|&j| modules[j] == "rules::hosts"),
        "{:?}",
        edges[pick]
    );
}
