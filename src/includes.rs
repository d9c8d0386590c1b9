//! The include directives of one C/C++ file, found without preprocessing: every `#include`,
//! `#include_next` and `#import`, and every `__has_include`/`__has_include_next` probe,
//! whatever `#if` surrounds them. Over-approximating is the point: the files a compile may
//! open are a subset of what these name (a file shipped needlessly costs a cache lookup on
//! the box). A directive whose name is a macro (`#include TRACE_INCLUDE(x)`) cannot be
//! followed; it is reported as `Computed` and the caller preprocesses that job at home.
//! Two more things a box must not see in a file are reported with them: the assembler's
//! `.incbin`/`.include` (`ReadsFiles`) and the macros of the clock (`Clock`).
//!
//! Text in, directives out: no I/O. Comments are skipped (a commented-out include is not
//! one), line continuations are joined, and a line only counts when `#` starts it.

/// How a name is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `"name"`: the including file's directory first, then the quote and bracket paths.
    Quote,
    /// `<name>`: the bracket paths only.
    Angle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `#include`/`#import` (`next: false`) or `#include_next` (`next: true`), and the
    /// `__has_include` family (which only asks whether the file exists, so the answer must be
    /// the same on the box).
    Include {
        form: Form,
        name: String,
        next: bool,
        probe: bool,
    },
    /// A name the scanner cannot know without the preprocessor, with the line for messages.
    Computed { line: usize, text: String },
    /// The assembler's `.incbin` or `.include` appears in the text (an `asm` statement, a
    /// `.S` file), anywhere: assembled on a box, it would read the box's file, not this one.
    ReadsFiles,
    /// `__DATE__`, `__TIME__` or `__TIMESTAMP__` outside comments (the first, with its line):
    /// each expands to the clock, or the file's modification time, of the machine that
    /// preprocesses.
    Clock { line: usize },
}

/// Why a file with `Directive::ReadsFiles` cannot ship: the box refuses it, and the client
/// preprocesses the job at home without asking.
pub const READS_FILES: &str = "uses .incbin or .include, which would read a file on the box";

/// Why a file with `Directive::Clock` does not ship: a box's clock may be wrong (a TV box
/// without a battery-backed clock), and its copy of the file has the cache's time.
pub const CLOCK: &str = "uses __DATE__, __TIME__ or __TIMESTAMP__, which a box would expand \
                         to its own clock and file times";

/// Scans `text` (a whole file).
pub fn scan(text: &[u8]) -> Vec<Directive> {
    let mut out = Vec::new();
    if crate::compiler::mentions_assembler_include(text) {
        out.push(Directive::ReadsFiles);
    }
    let clean = strip_comments(text);
    let mut clock = false;
    for (i, line) in logical_lines(&clean) {
        if !clock && names_the_clock(&line) {
            clock = true;
            out.push(Directive::Clock { line: i + 1 });
        }
        scan_line(&line, i + 1, &mut out);
    }
    out
}

/// Whether `text` has the identifier `__DATE__`, `__TIME__` or `__TIMESTAMP__` (in a
/// string literal or a comment too: a needless match only keeps the job here). Also run over
/// whole directives-only preprocessed text, so it skips from identifier to identifier.
pub fn names_the_clock(text: &[u8]) -> bool {
    let mut at = 0;
    while let Some(p) = text[at..].iter().position(|&b| b == b'_') {
        let start = at + p;
        let (word, _) = ident(&text[start..]);
        if matches!(word, b"__DATE__" | b"__TIME__" | b"__TIMESTAMP__")
            && (start == 0 || !is_ident_byte(text[start - 1]))
        {
            return true;
        }
        at = start + word.len();
    }
    false
}

/// Replaces comments by a space and keeps newlines (so line numbers hold). String and
/// character literals are kept whole, so `"/*"` in a string does not start a comment.
fn strip_comments(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match c {
            b'/' if text.get(i + 1) == Some(&b'*') => {
                out.push(b' ');
                i += 2;
                while i < text.len() && !(text[i] == b'*' && text.get(i + 1) == Some(&b'/')) {
                    if text[i] == b'\n' {
                        out.push(b'\n');
                    }
                    i += 1;
                }
                i += 2;
            }
            b'/' if text.get(i + 1) == Some(&b'/') => {
                // To the end of the line; a backslash-newline continues the comment.
                while i < text.len() && text[i] != b'\n' {
                    if text[i] == b'\\' && text.get(i + 1) == Some(&b'\n') {
                        out.push(b'\n');
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'"' | b'\'' => {
                // A literal, to its closing quote on the same line.
                out.push(c);
                i += 1;
                while i < text.len() && text[i] != c && text[i] != b'\n' {
                    if text[i] == b'\\' && i + 1 < text.len() {
                        out.push(text[i]);
                        i += 1;
                    }
                    out.push(text[i]);
                    i += 1;
                }
                if i < text.len() && text[i] == c {
                    out.push(c);
                    i += 1;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Physical lines joined at backslash-newlines, each with the index of its first line.
fn logical_lines(text: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut start = 0;
    let mut n = 0;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\\' if text.get(i + 1) == Some(&b'\n') => {
                n += 1;
                i += 2;
            }
            b'\\' if text.get(i + 1) == Some(&b'\r') && text.get(i + 2) == Some(&b'\n') => {
                n += 1;
                i += 3;
            }
            b'\n' => {
                out.push((start, std::mem::take(&mut cur)));
                n += 1;
                start = n;
                i += 1;
            }
            c => {
                cur.push(c);
                i += 1;
            }
        }
    }
    if !cur.is_empty() {
        out.push((start, cur));
    }
    out
}

/// The macro a computed include names first (`#include LUA_USER_H` -> `LUA_USER_H`), if
/// the directive's text starts with one.
pub fn computed_macro(text: &str) -> Option<&str> {
    let rest = skip_space(text.as_bytes()).strip_prefix(b"#")?;
    let (word, after) = ident(skip_space(rest));
    if !matches!(word, b"include" | b"include_next" | b"import") {
        return None;
    }
    let (name, _) = ident(skip_space(after));
    let name = std::str::from_utf8(name).ok()?;
    (!name.is_empty() && !name.as_bytes()[0].is_ascii_digit()).then_some(name)
}

fn skip_space(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c'))
        .count();
    &s[n..]
}

fn ident(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|b| is_ident_byte(**b)).count();
    s.split_at(n)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `"name"` or `<name>` at the start of `s`: the form, the name and what follows.
fn header_name(s: &[u8]) -> Option<(Form, String, &[u8])> {
    let (form, close) = match s.first()? {
        b'"' => (Form::Quote, b'"'),
        b'<' => (Form::Angle, b'>'),
        _ => return None,
    };
    let end = s[1..].iter().position(|b| *b == close)?;
    let name = std::str::from_utf8(&s[1..1 + end]).ok()?;
    if name.is_empty() {
        return None;
    }
    Some((form, name.to_string(), &s[end + 2..]))
}

fn scan_line(line: &[u8], number: usize, out: &mut Vec<Directive>) {
    let rest = skip_space(line);
    // `%:` is `#` in C99 and C++ (a digraph), `??=` with -trigraphs: a directive either way.
    let hash = rest
        .strip_prefix(b"#")
        .or_else(|| rest.strip_prefix(b"%:"))
        .or_else(|| rest.strip_prefix(b"??="));
    if let Some(rest) = hash {
        let (word, after) = ident(skip_space(rest));
        let next = match word {
            b"include" | b"import" => Some(false),
            b"include_next" => Some(true),
            _ => None,
        };
        if let Some(next) = next {
            let arg = skip_space(after);
            match header_name(arg) {
                Some((form, name, _)) => out.push(Directive::Include {
                    form,
                    name,
                    next,
                    probe: false,
                }),
                None => out.push(Directive::Computed {
                    line: number,
                    text: String::from_utf8_lossy(line).trim().to_string(),
                }),
            }
            return;
        }
    }
    // `__has_include` anywhere on the line (in `#if`, `#elif`, or a macro that expands to
    // one later).
    let mut s = line;
    while let Some(p) = find(s, b"__has_include") {
        let after = &s[p + b"__has_include".len()..];
        let (next, after) = match after.strip_prefix(b"_next") {
            Some(a) => (true, a),
            None => (false, after),
        };
        // Part of a longer identifier: not the operator.
        if after
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            s = after;
            continue;
        }
        let arg = skip_space(after);
        match arg.strip_prefix(b"(").map(skip_space).and_then(header_name) {
            Some((form, name, tail)) if skip_space(tail).starts_with(b")") => {
                out.push(Directive::Include {
                    form,
                    name,
                    next,
                    probe: true,
                })
            }
            // `#define __has_include(x)`-style uses and macro arguments: unknowable.
            _ if arg.starts_with(b"(") => out.push(Directive::Computed {
                line: number,
                text: String::from_utf8_lossy(line).trim().to_string(),
            }),
            // `#ifdef __has_include` and the like: no file involved.
            _ => {}
        }
        s = after;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(form: Form, name: &str) -> Directive {
        Directive::Include {
            form,
            name: name.into(),
            next: false,
            probe: false,
        }
    }

    #[test]
    fn includes_of_every_kind() {
        let text = b"#include <stdio.h>\n\
                     #  include \"lua.h\" // the API\n\
                     \t#include_next <limits.h>\n\
                     #import <objc.h>\n\
                     #ifdef X\n#include \"maybe.h\"\n#endif\n\
                     int x; /* #include \"not.h\" */\n\
                     // #include \"nor.h\"\n\
                     #define F \"#include <nope.h>\"\n\
                     #inc\\\nlude \"joined.h\"\n";
        assert_eq!(
            scan(text),
            vec![
                inc(Form::Angle, "stdio.h"),
                inc(Form::Quote, "lua.h"),
                Directive::Include {
                    form: Form::Angle,
                    name: "limits.h".into(),
                    next: true,
                    probe: false
                },
                inc(Form::Angle, "objc.h"),
                inc(Form::Quote, "maybe.h"),
                inc(Form::Quote, "joined.h"),
            ]
        );
    }

    #[test]
    fn comments_spanning_lines_and_comments_before_the_directive() {
        let text = b"/* a\n#include \"in-comment.h\"\n*/ #include \"after.h\"\n\
                     /**/#include <x.h>\n# /* c */ include <y.h>\n";
        // After a comment that spans lines, `*/ #include` is a directive to gcc (checked
        // with gcc -M), and to us.
        assert_eq!(
            scan(text),
            vec![
                inc(Form::Quote, "after.h"),
                inc(Form::Angle, "x.h"),
                inc(Form::Angle, "y.h")
            ]
        );
    }

    #[test]
    fn computed_includes_are_reported_with_their_line() {
        let text = b"#include \"a.h\"\n#define H <b.h>\n#include H\n\
                     #include TRACE_INCLUDE(TRACE_INCLUDE_FILE)\n";
        let got = scan(text);
        assert_eq!(got[0], inc(Form::Quote, "a.h"));
        assert_eq!(
            got[1],
            Directive::Computed {
                line: 3,
                text: "#include H".into()
            }
        );
        assert!(matches!(got[2], Directive::Computed { line: 4, .. }));
    }

    #[test]
    fn the_assemblers_file_reading_directives_are_reported() {
        assert_eq!(
            scan(b"#include <v.h>\nasm(\".incbin \\\"config_data.gz\\\"\");\n"),
            [Directive::ReadsFiles, inc(Form::Angle, "v.h")]
        );
        assert_eq!(scan(b"\t.include \"macros.s\"\n"), [Directive::ReadsFiles]);
        assert_eq!(
            scan(b"\t.incomplete\n#include <v.h>\n"),
            [inc(Form::Angle, "v.h")]
        );
    }

    #[test]
    fn the_clocks_macros_are_reported_once_with_their_line() {
        let text = b"/* __DATE__ in a comment */\n#include <v.h>\nint x__TIME__, __TIMESTAMPS__;\n\
                     const char *when = __DA\\\nTE__;\nconst char *t = __TIME__;\n";
        assert_eq!(
            scan(text),
            [inc(Form::Angle, "v.h"), Directive::Clock { line: 4 }]
        );
        assert_eq!(scan(b"s = __TIMESTAMP__;"), [Directive::Clock { line: 1 }]);
    }

    #[test]
    fn has_include_probes() {
        let text = b"#if __has_include(<stdatomic.h>) && __has_include_next(\"cfg.h\")\n\
                     #endif\n#ifdef __has_include\n#endif\n\
                     #if defined(__has_include_x)\n#endif\n\
                     #if __has_include(HDR)\n#endif\n";
        assert_eq!(
            scan(text),
            vec![
                Directive::Include {
                    form: Form::Angle,
                    name: "stdatomic.h".into(),
                    next: false,
                    probe: true
                },
                Directive::Include {
                    form: Form::Quote,
                    name: "cfg.h".into(),
                    next: true,
                    probe: true
                },
                Directive::Computed {
                    line: 7,
                    text: "#if __has_include(HDR)".into()
                },
            ]
        );
    }

    #[test]
    fn literals_do_not_start_comments() {
        let text =
            b"const char *s = \"/*\";\n#include \"real.h\"\nchar c = '\"';\n#include <also.h>\n";
        assert_eq!(
            scan(text),
            vec![inc(Form::Quote, "real.h"), inc(Form::Angle, "also.h")]
        );
    }

    #[test]
    fn crlf_and_no_final_newline() {
        assert_eq!(
            scan(b"#include <a.h>\r\n#include \"b.h\""),
            vec![inc(Form::Angle, "a.h"), inc(Form::Quote, "b.h")]
        );
    }

    #[test]
    fn digraph_and_trigraph_directives_count() {
        assert_eq!(
            scan(b"%:include \"/etc/hostname\"\n  ??=include <b.h>\n"),
            vec![inc(Form::Quote, "/etc/hostname"), inc(Form::Angle, "b.h")]
        );
    }

    /// The client scans every header of a build: `cargo test --release --lib -- --ignored
    /// --nocapture scan_speed` prints how fast over /usr/include.
    #[test]
    #[ignore]
    fn scan_speed_over_usr_include() {
        fn walk(dir: &std::path::Path, out: &mut Vec<Vec<u8>>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let Ok(t) = e.file_type() else { continue };
                if t.is_dir() {
                    walk(&e.path(), out);
                } else if t.is_file() {
                    if let Ok(data) = std::fs::read(e.path()) {
                        out.push(data);
                    }
                }
            }
        }
        let mut files = Vec::new();
        walk(std::path::Path::new("/usr/include"), &mut files);
        let bytes: usize = files.iter().map(|f| f.len()).sum();
        let mut best = f64::MAX;
        let mut found = 0;
        for _ in 0..5 {
            let t = std::time::Instant::now();
            found = files.iter().map(|f| scan(f).len()).sum::<usize>();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{} files, {:.1} MB, {found} directives: best of 5 {:.3} s, {:.0} MB/s",
            files.len(),
            bytes as f64 / 1e6,
            best,
            bytes as f64 / 1e6 / best
        );
    }
}
