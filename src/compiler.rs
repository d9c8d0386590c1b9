//! What counts as a compiler, and who a compiler is: shared by the client (which names its
//! compiler and says who it is) and the daemon (which refuses everything else).
//!
//! Identity is what makes "every node has the same gcc" a guarantee instead of a warning:
//! the version line of `--version` (without the program's own name, so `gcc`, `g++` and
//! `aarch64-linux-gnu-gcc` of one release agree) plus the target of `-dumpmachine`.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether a file name is one of the compiler drivers rcc will ever run: `cc`, `c++`, `gcc`,
/// `g++`, `clang`, `clang++`, with an optional target prefix (`aarch64-linux-gnu-gcc`) and
/// an optional version suffix (`gcc-12`, `clang++-14`). Never a path, never `..`.
pub fn is_compiler_name(name: &str) -> bool {
    if name.is_empty()
        || name.len() > 128
        || name.starts_with('.')
        || name.starts_with('-')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
    {
        return false;
    }
    // Strip a version suffix: "-12", "-12.2", "-14".
    let mut base = name;
    if let Some((head, tail)) = name.rsplit_once('-') {
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            base = head;
        }
    }
    const DRIVERS: [&str; 6] = ["gcc", "g++", "clang", "clang++", "cc", "c++"];
    if DRIVERS.contains(&base) {
        return true;
    }
    // A target prefix: "<triple>-gcc" and friends (not "-cc": too easy to confuse with tools).
    ["-gcc", "-g++", "-clang", "-clang++"]
        .iter()
        .any(|d| base.len() > d.len() && base.ends_with(d))
}

/// Builds the identity string from a compiler's `--version` and `-dumpmachine` output.
pub fn identity_from(version_out: &str, machine_out: &str) -> String {
    let line = version_out.lines().next().unwrap_or("").trim();
    let machine = machine_out.trim();
    let what = if line.contains("clang") {
        line.to_string()
    } else {
        // "aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0" -> "gcc (Debian 12.2.0-14) 12.2.0"
        match line.find(" (") {
            Some(i) => format!("gcc {}", &line[i + 1..]),
            None => line.to_string(),
        }
    };
    format!("{what} for {machine}")
}

/// How long a compiler may take to say who it is.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a compiler driver said to one question (`driver ARG`).
#[derive(Debug)]
pub enum Answer {
    /// It printed this and succeeded.
    Said(String),
    /// It failed.
    Failed(std::process::ExitStatus),
    /// It did not answer within `PROBE_TIMEOUT`, and was killed.
    Silent,
    /// It could not be started.
    NotRun(io::Error),
}

/// Asks `driver` each of `args`, all at once: the daemon asks on its event loop (a compiler
/// changed by an upgrade), so a driver that hangs holds the box for one timeout, not one
/// per question. Each runs in its own process group, so a timeout kills whatever it started
/// too.
pub fn ask_all(driver: &Path, args: &[&str]) -> Vec<Answer> {
    let mut children = Vec::with_capacity(args.len());
    let mut answers = Vec::with_capacity(args.len());
    for arg in args {
        let started = Command::new(driver)
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env("LC_ALL", "C")
            .process_group(0)
            .spawn();
        match started {
            Ok(child) => {
                children.push(Some(child));
                answers.push(None);
            }
            Err(e) => {
                children.push(None);
                answers.push(Some(Answer::NotRun(e)));
            }
        }
    }
    let deadline = std::time::Instant::now() + PROBE_TIMEOUT;
    // Bounded by the deadline: every child is reaped or killed by then.
    while answers.iter().any(Option::is_none) {
        for (slot, answer) in children.iter_mut().zip(answers.iter_mut()) {
            let Some(child) = slot else { continue };
            *answer = Some(match child.try_wait() {
                Ok(None) if std::time::Instant::now() < deadline => continue,
                Ok(Some(st)) if st.success() => {
                    // A line or two: it fit in the pipe while we waited.
                    let mut text = String::new();
                    if let Some(mut out) = child.stdout.take() {
                        use std::io::Read;
                        let _ = out.read_to_string(&mut text);
                    }
                    Answer::Said(text)
                }
                Ok(Some(st)) => Answer::Failed(st),
                _ => {
                    let _ = crate::sys::kill_group(child.id(), libc::SIGKILL);
                    let _ = child.wait();
                    Answer::Silent
                }
            });
            *slot = None;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    answers.into_iter().flatten().collect()
}

/// Runs the compiler at `path` to find its identity. Takes a few milliseconds; callers cache.
pub fn probe_identity(path: &Path) -> io::Result<String> {
    let questions = ["--version", "-dumpmachine"];
    let mut said = Vec::with_capacity(questions.len());
    for (arg, answer) in questions.iter().zip(ask_all(path, &questions)) {
        said.push(match answer {
            Answer::Said(text) => text,
            Answer::Failed(status) => {
                return Err(io::Error::other(format!(
                    "{} {arg} failed ({status})",
                    path.display()
                )))
            }
            Answer::Silent => {
                return Err(io::Error::other(format!(
                    "{} {arg} did not answer within {} s",
                    path.display(),
                    PROBE_TIMEOUT.as_secs()
                )))
            }
            Answer::NotRun(e) => return Err(e),
        });
    }
    let (version, machine) = (&said[0], &said[1]);
    if version.trim().is_empty() || machine.trim().is_empty() {
        return Err(io::Error::other(format!(
            "{} does not say which compiler it is",
            path.display()
        )));
    }
    Ok(identity_from(version, machine))
}

/// Whether text mentions the assembler directives that read a file (`.incbin`,
/// `.include`): compiled on a box, they would read the box's file, not the master's. One
/// pass over a few MB of preprocessed text per job, so it looks for ".inc" with a byte scan
/// rather than comparing a window at every offset.
pub fn mentions_assembler_include(text: &[u8]) -> bool {
    let mut rest = text;
    while let Some(p) = rest.iter().position(|&b| b == b'.') {
        let tail = &rest[p..];
        if tail.starts_with(b".incbin") || tail.starts_with(b".include") {
            return true;
        }
        rest = &rest[p + 1..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembler_includes_are_found_anywhere() {
        for (text, want) in [
            (&b"asm(\".incbin \\\"x\\\"\");"[..], true),
            (b"\t.include \"macros.s\"\n", true),
            (b".incbin", true),
            (b"a.b = c.inc; .incl", false),
            (b"", false),
            (b"...", false),
        ] {
            assert_eq!(
                mentions_assembler_include(text),
                want,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn compiler_names() {
        for ok in [
            "gcc",
            "g++",
            "cc",
            "c++",
            "clang",
            "clang++",
            "gcc-12",
            "g++-12",
            "clang-14",
            "clang++-14",
            "aarch64-linux-gnu-gcc",
            "aarch64-linux-gnu-gcc-12",
            "x86_64-linux-gnu-g++",
            "arm-linux-gnueabihf-gcc",
        ] {
            assert!(is_compiler_name(ok), "{ok}");
        }
        for bad in [
            "",
            "sh",
            "/bin/sh",
            "/usr/bin/gcc",
            "../gcc",
            "..",
            "python3",
            "gcc;rm",
            "gcc ",
            "-gcc",
            ".gcc",
            "gcc/../sh",
            "ld",
            "as",
            "cc1",
            "gccgo",
            "x-cc",
            "bash-gcc\n",
        ] {
            assert!(!is_compiler_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn identity_ignores_the_program_name() {
        let native = identity_from(
            "gcc (Debian 12.2.0-14+deb12u1) 12.2.0\nCopyright...",
            "aarch64-linux-gnu\n",
        );
        let cross = identity_from(
            "aarch64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0\n",
            "aarch64-linux-gnu\n",
        );
        assert_eq!(native, cross);
        assert_eq!(
            native,
            "gcc (Debian 12.2.0-14+deb12u1) 12.2.0 for aarch64-linux-gnu"
        );
        let other = identity_from("gcc (Debian 13.2.0-1) 13.2.0", "aarch64-linux-gnu");
        assert_ne!(native, other);
    }

    #[test]
    fn clang_keeps_its_whole_line() {
        let id = identity_from(
            "Debian clang version 14.0.6\nTarget: x",
            "x86_64-pc-linux-gnu",
        );
        assert_eq!(id, "Debian clang version 14.0.6 for x86_64-pc-linux-gnu");
    }
}
