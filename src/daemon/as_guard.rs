//! The assembler's guard, for boxes whose kernel has no Landlock: gcc runs every program of
//! a compile through it (`-wrapper RCCD,--as-guard`), and before the assembler runs, the
//! guard reads the very text it would assemble. `.incbin` and `.include` make the assembler
//! read a file of the box, and a C source can hide them from every check of its own text
//! (`asm(".inc" "bin \"/etc/shadow\"")`: the compiler joins the strings). In the assembler's
//! input they are plain, so this check sees what the assembler sees: the words
//! themselves in any case, and any statement whose directive or instruction is made from a
//! macro's arguments (`.\name`, `\a\()\b`, `.altmacro`'s `&`), which could spell them. A job
//! that has either is not assembled; the client compiles it at home. The same guard stands
//! before the compiler proper on a preprocessed input: an include left in it (which cc1
//! follows under `-fdirectives-only`) is not compiled. With Landlock the sandbox holds
//! whatever the text says, and the guard is not used.
//!
//! `check` is pure; `command` picks the program to run, which `bin/rccd.rs` executes.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// The flag that makes `rccd` the guard: `rccd --as-guard PROGRAM ARGS...`.
pub const FLAG: &str = "--as-guard";

/// Why an assembler input is not assembled here, or `None`.
pub fn check(text: &[u8]) -> Option<&'static str> {
    // gas takes block comments out before it reads a statement, so `.inc/**/bin` is
    // `.incbin` to it: they go here too.
    let text = &without_block_comments(text);
    let lower = text.to_ascii_lowercase();
    for word in [&b".incbin"[..], b".include", b".altmacro"] {
        if lower.windows(word.len()).any(|w| w == word) {
            return Some("uses .incbin, .include or .altmacro, which could read a file of the box");
        }
    }
    let computed = statements(text).any(|s| operation(s).is_some_and(|op| op.contains(&b'\\')));
    computed.then_some(
        "builds a directive's or instruction's name from a macro's arguments, which could \
         spell .incbin",
    )
}

/// `text` with every `/* ... */` taken out (to the end, if one is not closed).
fn without_block_comments(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b"/*") {
            i = text[i + 2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(text.len(), |p| i + 2 + p + 2);
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// The statements of `text`: split at line ends, and at `;` outside string literals (a
/// `.string "a; \\b"` is one statement).
fn statements(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= text.len() {
            return None;
        }
        let start = at;
        let mut quoted = false;
        while at < text.len() {
            match text[at] {
                b'\n' => break,
                b';' if !quoted => break,
                b'"' => quoted = !quoted,
                b'\\' if quoted => at += 1,
                _ => {}
            }
            at += 1;
        }
        let end = at.min(text.len());
        at += 1;
        Some(&text[start..end])
    })
}

/// The operation of a statement: its first word after any labels (`name:`).
fn operation(mut s: &[u8]) -> Option<&[u8]> {
    loop {
        s = s.trim_ascii_start();
        let end = s
            .iter()
            .position(|&b| b.is_ascii_whitespace() || b == b',' || b == b'"')
            .unwrap_or(s.len());
        let word = &s[..end];
        if word.is_empty() {
            return None;
        }
        match word.iter().position(|&b| b == b':') {
            // A label (`.L\@:` is one, counted by the macro): the operation follows it.
            Some(colon) if colon + 1 == word.len() || !word.starts_with(b".") => {
                s = &s[colon + 1..];
            }
            _ => return Some(word),
        }
    }
}

/// Whether `program` is an assembler (`as`, `x86_64-linux-gnu-as`, `aarch64-linux-gnu-as`).
fn is_assembler(program: &Path) -> bool {
    let name = program.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
    name == b"as" || name.ends_with(b"-as")
}

/// Whether `program` is gcc's compiler proper (`cc1`, `cc1plus`).
fn is_compiler_proper(program: &Path) -> bool {
    let name = program.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
    matches!(name, b"cc1" | b"cc1plus")
}

/// The program to run for `argv` (the program gcc would run, then its arguments): the same
/// program, unless it is the assembler and its input fails `check`, or the compiler proper
/// on preprocessed text that still has an include, or its input cannot be read (`Err`: what
/// to say).
pub fn command(argv: &[OsString]) -> Result<Command, String> {
    let (program, args) = argv
        .split_first()
        .ok_or("rccd --as-guard needs the program to run")?;
    let path = Path::new(program);
    if is_assembler(path) {
        check_assembler(args)?;
    } else if is_compiler_proper(path) && args.iter().any(|a| a == "-fpreprocessed") {
        check_preprocessed(args)?;
    }
    let mut cmd = Command::new(program);
    cmd.args(args);
    Ok(cmd)
}

/// The assembler's inputs, checked with `check`.
fn check_assembler(args: &[OsString]) -> Result<(), String> {
    let mut inputs = 0;
    let mut value_next = false;
    for a in args {
        // The values of the options gcc gives the assembler apart: `-o OBJECT`, `-I DIR` for
        // each of the compile's include directories, `--debug-prefix-map OLD=NEW` for each
        // of its prefix maps.
        if std::mem::take(&mut value_next) {
            continue;
        }
        if a == "-o" || a == "-I" || a == "--debug-prefix-map" {
            value_next = true;
            continue;
        }
        if a.as_bytes().starts_with(b"-") {
            continue;
        }
        // gcc hands the assembler `.s` files only: its own temporary, or the job's input.
        if !a.as_bytes().ends_with(b".s") {
            return Err(format!(
                "{REFUSAL}, and the assembler was given {}, which is not assembler text; not \
                 assembled here",
                Path::new(a).display()
            ));
        }
        if let Some(why) = check(&read_input(a)?) {
            return Err(format!(
                "{REFUSAL}, and the assembler's input {why}; not assembled here (compile it \
                 where it was run)"
            ));
        }
        inputs += 1;
    }
    if inputs == 0 {
        return Err(format!(
            "{REFUSAL}, and the assembler would read its standard input, which cannot be \
             checked; not assembled here"
        ));
    }
    Ok(())
}

/// The compiler proper's preprocessed input (`-fpreprocessed`, a job the client
/// preprocessed): its text has no include left, but with `-fdirectives-only` cc1 would still
/// follow one. Checked here, in the compile's own process, rather than on the daemon's loop.
fn check_preprocessed(args: &[OsString]) -> Result<(), String> {
    let mut inputs = 0;
    let mut value_next = false;
    for a in args {
        // The values gcc gives cc1 apart that may end like an input (`-dumpbase input.i`).
        if std::mem::take(&mut value_next) {
            continue;
        }
        if matches!(
            a.to_str(),
            Some("-o" | "-dumpbase" | "-dumpbase-ext" | "-dumpdir")
        ) {
            value_next = true;
            continue;
        }
        let b = a.as_bytes();
        if b.starts_with(b"-") || !(b.ends_with(b".i") || b.ends_with(b".ii")) {
            continue;
        }
        if let Some(why) = leftover_include(&read_input(a)?) {
            return Err(format!(
                "{REFUSAL}, and the preprocessed input {why}; not compiled here (compile it \
                 where it was run)"
            ));
        }
        inputs += 1;
    }
    if inputs == 0 {
        return Err(format!(
            "{REFUSAL}, and the compiler was given no preprocessed file it could check; not \
             compiled here"
        ));
    }
    Ok(())
}

/// What in preprocessed text would make the compiler open a file: an include left in it.
fn leftover_include(text: &[u8]) -> Option<String> {
    use crate::rules::includes::{self, Directive};
    includes::scan(text).into_iter().find_map(|d| match d {
        Directive::Include { name, .. } => Some(format!("still includes {name:?}")),
        Directive::Computed { line, .. } => Some(format!("still has an include at line {line}")),
        Directive::ReadsFiles => Some(includes::READS_FILES.into()),
        Directive::Clock { .. } => None,
    })
}

/// The text of an input the guard checks.
fn read_input(a: &OsString) -> Result<Vec<u8>, String> {
    std::fs::read(a).map_err(|e| {
        format!(
            "{REFUSAL}, and it cannot read the input {}: {e}",
            Path::new(a).display()
        )
    })
}

/// The first words of every refusal the guard prints, so that the box can tell its own
/// refusal from a compile error and withhold the job (the client compiles it at home).
pub const REFUSAL: &str = "rccd: this box has no Landlock sandbox";

/// Whether a compiler's stderr holds the guard's refusal.
pub fn refused(stderr: &[u8]) -> bool {
    let mark = REFUSAL.as_bytes();
    stderr.windows(mark.len()).any(|w| w == mark)
}

/// Whether the compiler called `name` runs its assembler as a program the guard can stand
/// in front of: not clang, which assembles inside itself and has no `-wrapper`.
pub fn can_guard(name: &str) -> bool {
    !name.contains("clang")
}

/// The arguments that make `compiler` run every program through the guard (the running
/// rccd as gcc's `-wrapper`), or `None` for clang, which assembles inside itself and has no
/// `-wrapper`. The caller also leaves out `-pipe`: with it gcc runs the assembler past the
/// wrapper, reading cc1's output from a pipe (`tests/security.rs` shows it).
pub fn wrapper(compiler: &Path) -> Option<[OsString; 2]> {
    if !can_guard(&compiler.file_name()?.to_string_lossy()) {
        return None;
    }
    let me = std::env::current_exe().ok()?;
    // gcc splits the wrapper's value at commas.
    if me.as_os_str().as_bytes().contains(&b',') {
        return None;
    }
    let mut value = me.into_os_string();
    value.push(format!(",{FLAG}"));
    Some(["-wrapper".into(), value])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_would_read_a_file_is_found_in_the_assemblers_own_text() {
        for text in [
            &b"\t.incbin \"/etc/shadow\"\n"[..],
            b"\t.INCBIN \"/etc/shadow\"\n",
            b"x: .include \"/etc/shadow\"\n",
            b"\t.altmacro\n",
            b"\t.macro m a\n\t.\\a \"/etc/shadow\"\n\t.endm\n\tm incbin\n",
            b"\t.macro m a, b\n\t\\a\\()\\b \"/etc/x\"\n\t.endm\n",
            b"\t.irpc c, x\n\tl: .in\\()cbin \"/x\"\n\t.endr\n",
            b"\tnop; \\op x0\n",
            b"\t.inc/**/bin \"/etc/shadow\"\n",
            b"\t.in/* x\n y */clude \"/etc/shadow\"\n",
        ] {
            assert!(check(text).is_some(), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn the_compiler_proper_gets_no_preprocessed_text_with_an_include_left() {
        let dir = std::env::temp_dir().join(format!("rcc-guard-cc1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let argv = |text: &str| -> Vec<OsString> {
            let input = dir.join("input.i");
            std::fs::write(&input, text).unwrap();
            ["/usr/lib/gcc/x/12/cc1", "-fpreprocessed"]
                .iter()
                .map(OsString::from)
                .chain([input.into_os_string()])
                .chain(["-dumpbase", "input.i", "-o", "/tmp/cc.s"].map(OsString::from))
                .collect()
        };
        assert!(command(&argv("# 1 \"a.c\"\nint x;\n")).is_ok());
        let e = command(&argv("#include \"/etc/hostname\"\n"))
            .err()
            .unwrap();
        assert!(e.starts_with(REFUSAL) && e.contains("/etc/hostname"), "{e}");
        assert!(command(&argv("#/**/include \"/x\"\n")).is_err());
        // Sources (not -fpreprocessed) include what they name: the include checks saw to them.
        let mut sources = argv("#include \"a.h\"\n");
        sources.remove(1);
        assert!(command(&sources).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_compilers_write_passes() {
        let text = b"\t.arch armv8-a\n\t.file\t\"a.c\"\n\t.text\n\t.align\t2\n\
            \t.global\tf\n\t.type\tf, %function\nf:\n.LFB0:\n\t.loc 1 1 1\n\
            \tlsl\tw0, w0, 1\n\tret\n.LFE0:\n\t.size\tf, .-f\n\
            \t.section\t.note.GNU-stack,\"\",@progbits\n\
            \t.macro m reg\n\tmov \\reg, #0\n.L\\@: b .L\\@\n\t.endm\n\tm x0\n\
            \t.ascii \"a\\\\b\"\n\t.string \"x; \\\\y\"; nop\n";
        assert_eq!(check(text), None);
    }
}
