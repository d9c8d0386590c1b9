//! The names an object records for its source — the `FILE` symbol, `DW_AT_name`,
//! `DW_AT_comp_dir` — when a box compiles preprocessed text, which it writes to a file of
//! its own (`input.i`) in a directory of its own.
//!
//! gcc (11 and later; checked with gcc 12, C and C++, with and without `-g`) takes them from
//! the text when it starts with a line marker spelled `# 0 "name"` or `# 1 "name"`, with
//! `# 0 "dir//"` or `# 1 "dir//"` on the next line for the working directory; else from the
//! file's name as its command line gives it and from where it runs. `gcc -E` here writes
//! both (the directory with `-g`), so the box records what gcc records here, unless the
//! directory needed escapes (`without_escaped_dir`). A user's `.i` or `.ii` may have
//! neither, and gets them here (`as_named`). A job that ships its sources names them on the
//! box's command line as here (rccd's `sources.rs`) and needs nothing of this.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// `text`, a preprocessed source the command names `source`, as a box must compile it to
/// record what `gcc -c source` records here, run in `pwd` (see `working_dir`; `None`: the
/// box's own directory, mapped to the master's, stands in for it).
///
/// - The first line names a file (`# 1 "name"`, see `file_marker`): gcc takes that name
///   wherever the text is, so it stays. Without a working directory line after it one is added (then the first
///   line again, as gcc -E writes them) unless the first line carries flags.
/// - Otherwise (no marker, or one only further down): `# 1 "source"`, the working
///   directory line and `# 1 "source"` again go in front (after a byte order mark, which
///   gcc skips only at the very start).
pub fn as_named(text: Vec<u8>, source: &str, pwd: Option<&[u8]>) -> Vec<u8> {
    let bom = if text.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let dir = pwd.and_then(dir_marker);
    let (at, insert) = match file_marker(&text[bom..]) {
        Some(first) => {
            let next = &text[bom + first.len..];
            match &dir {
                Some(dir) if !first.flags && !first.last && !is_dir_marker(next) => {
                    let line = &text[bom..bom + first.len];
                    (bom + first.len, [&dir[..], line].concat())
                }
                _ => return text,
            }
        }
        None => {
            let name = file_line(source.as_bytes());
            let insert = match &dir {
                Some(dir) => [&name[..], dir, &name].concat(),
                None => name,
            };
            (bom, insert)
        }
    };
    let mut out = Vec::with_capacity(text.len() + insert.len());
    out.extend_from_slice(&text[..at]);
    out.extend_from_slice(&insert);
    out.extend_from_slice(&text[at..]);
    out
}

/// The start of `gcc -E -g`'s text with its working directory line taken out when the
/// directory is spelled with escapes (a `"` or `\` in its name): gcc writes the line
/// escaped, but reads back the directory as spelled, escapes and all, where `gcc -c` of the
/// source records the directory itself. Without the line the box records its own
/// directory, which it maps to the master's.
pub fn without_escaped_dir(mut start: Vec<u8>) -> Vec<u8> {
    let Some(first) = file_marker(&start) else {
        return start;
    };
    let next = &start[first.len..];
    let escaped = marker_name(next).is_some_and(|(_, dir)| dir.contains(&b'\\'));
    if is_dir_marker(next) && escaped {
        if let Some(end) = next.iter().position(|&b| b == b'\n') {
            start.drain(first.len..first.len + end + 1);
        }
    }
    start
}

/// The directory `gcc` records as where it ran (libiberty's `getpwd`): `$PWD` when it is
/// absolute and names this directory (the path the user's shell took, links and all), else
/// the directory's own path.
pub fn working_dir(env_pwd: Option<&OsStr>) -> Option<PathBuf> {
    let same = |p: &OsStr| {
        let (Ok(a), Ok(b)) = (std::fs::metadata(p), std::fs::metadata(".")) else {
            return false;
        };
        a.ino() == b.ino() && a.dev() == b.dev()
    };
    match env_pwd {
        Some(p) if p.as_bytes().starts_with(b"/") && same(p) => Some(PathBuf::from(p)),
        _ => std::env::current_dir().ok(),
    }
}

/// `# 1 "name"` and a line end, `name` as a C string literal that means its exact bytes:
/// `\` and `"` escaped, control bytes in octal, `?` as `\?` (an ISO `-std` reads trigraphs,
/// even here).
fn file_line(name: &[u8]) -> Vec<u8> {
    let mut out = b"# 1 \"".to_vec();
    for &b in name {
        match b {
            b'\\' | b'"' | b'?' => out.extend_from_slice(&[b'\\', b]),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(b"\"\n");
    out
}

/// `# 1 "dir//"` and a line end, or `None` when `dir` cannot be written there: gcc takes the
/// directory from the string as it is spelled, escapes and all.
fn dir_marker(dir: &[u8]) -> Option<Vec<u8>> {
    let plain = |b: &u8| *b >= 0x20 && *b != 0x7f && *b != b'\\' && *b != b'"';
    if !dir.starts_with(b"/") || !dir.iter().all(plain) || dir.windows(2).any(|w| w == b"??") {
        return None;
    }
    Some([&b"# 1 \""[..], dir, b"//\"\n"].concat())
}

/// The first line of a text, when it is a line marker that names a file.
struct Marker {
    /// Its length, line end included.
    len: usize,
    /// Something follows the name (flags such as ` 1`, the start of an include).
    flags: bool,
    /// It is the text's last line (no line end).
    last: bool,
}

/// The line marker that starts `text`, when gcc takes the main file's name from it. gcc 11
/// and later look only at one spelling, `# 0 ` or `# 1 ` at the very first byte (no blank
/// line, comment or blank before it), then read the line as a marker: a string must follow,
/// and a flag `2` (the end of an include that never began) makes it ignore the line.
fn file_marker(text: &[u8]) -> Option<Marker> {
    let (name_end, _) = marker_name(text)?;
    let line_end = text[name_end..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| name_end + p);
    let rest = &text[name_end..line_end.unwrap_or(text.len())];
    let mut flags = rest
        .split(|b| b" \t\r".contains(b))
        .filter(|f| !f.is_empty());
    let first_flag = flags.next();
    if first_flag == Some(b"2") {
        return None;
    }
    Some(Marker {
        len: line_end.map_or(text.len(), |e| e + 1),
        flags: first_flag.is_some(),
        last: line_end.is_none(),
    })
}

/// Whether `text` starts with gcc's working directory line, spelled as gcc looks for it
/// after the first line: `# 0 ` or `# 1 `, then a string spelled with `//` at its end and
/// at least one byte before it.
fn is_dir_marker(text: &[u8]) -> bool {
    marker_name(text).is_some_and(|(_, spelled)| spelled.len() >= 3 && spelled.ends_with(b"//"))
}

/// Where the string of a line marker spelled `# 0 ` or `# 1 ` at the start of `text` ends,
/// and its bytes as spelled between the quotes.
fn marker_name(text: &[u8]) -> Option<(usize, &[u8])> {
    if !(text.starts_with(b"# 0 ") || text.starts_with(b"# 1 ")) {
        return None;
    }
    let quote = 4 + text[4..].iter().take_while(|b| b" \t".contains(b)).count();
    if text.get(quote) != Some(&b'"') {
        return None;
    }
    let mut i = quote + 1;
    while let Some(&b) = text.get(i) {
        match b {
            b'"' => return Some((i + 1, &text[quote + 1..i])),
            b'\\' => i += 2,
            b'\n' | b'\r' => return None,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(text: &str, source: &str, pwd: Option<&str>) -> String {
        let out = as_named(text.into(), source, pwd.map(str::as_bytes));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_text_without_a_first_marker_is_named_as_typed() {
        let body = "int main(void){return 0;}\n";
        assert_eq!(
            named(body, "hello.i", Some("/w")),
            format!("# 1 \"hello.i\"\n# 1 \"/w//\"\n# 1 \"hello.i\"\n{body}")
        );
        assert_eq!(
            named(body, "./a/hello.i", None),
            format!("# 1 \"./a/hello.i\"\n{body}")
        );
        // A marker further down, or one gcc does not read as naming the main file.
        for text in [
            "int x;\n# 1 \"foo.c\"\n",
            "\n# 1 \"foo.c\"\n",
            " # 1 \"foo.c\"\n",
            "#line 1 \"foo.c\"\n",
            "# 7\nint x;\n",
            "# 1\nint x;\n",
            "# 3 \"foo.c\"\n",
            "#  1 \"foo.c\"\n",
            "#\t1 \"foo.c\"\n",
            "#1 \"foo.c\"\n",
            "# 1 \"foo.c\" 2\n",
            "#\n",
            "",
            "%: 1 \"foo.c\"\n",
        ] {
            assert_eq!(
                named(text, "t.i", None),
                format!("# 1 \"t.i\"\n{text}"),
                "{text:?}"
            );
        }
        // After a byte order mark, which gcc skips at the start only.
        assert_eq!(
            named("\u{feff}int x;\n", "t.i", None),
            "\u{feff}# 1 \"t.i\"\nint x;\n"
        );
    }

    #[test]
    fn names_are_written_as_c_strings_of_their_exact_bytes() {
        assert_eq!(
            file_line("a \"b\"\\c?\n\té.i".as_bytes()),
            "# 1 \"a \\\"b\\\"\\\\c\\?\\012\\011é.i\"\n".as_bytes()
        );
        // gcc takes a working directory as spelled: one that needs escapes is left out.
        for dir in ["/a\\b", "/a\"b", "/a\nb", "/a??/b", "rel"] {
            assert_eq!(dir_marker(dir.as_bytes()), None, "{dir:?}");
        }
        assert_eq!(dir_marker(b"/"), Some(b"# 1 \"///\"\n".to_vec()));
        assert_eq!(
            dir_marker("/x y/é".as_bytes()),
            Some("# 1 \"/x y/é//\"\n".as_bytes().to_vec())
        );
    }

    #[test]
    fn a_directory_spelled_with_escapes_is_left_to_the_box() {
        let take = |t: &str| String::from_utf8(without_escaped_dir(t.into())).unwrap();
        let text = "# 0 \"m.c\"\n# 1 \"/w\\\"e\\\\ird//\"\n# 0 \"<built-in>\"\n";
        assert_eq!(take(text), "# 0 \"m.c\"\n# 0 \"<built-in>\"\n");
        for text in [
            "# 0 \"m.c\"\n# 1 \"/w é//\"\n# 0 \"<built-in>\"\n",
            "# 0 \"m.c\"\n# 0 \"<built-in>\"\n",
            "# 0 \"m\\\\.c\"\n# 0 \"<built-in>\"\n",
            "int x;\n# 1 \"/w\\\"e//\"\n",
        ] {
            assert_eq!(take(text), text, "{text:?}");
        }
    }

    #[test]
    fn a_first_marker_stays_and_gets_a_working_directory() {
        let text = "# 0 \"src/a.c\"\n# 0 \"<built-in>\"\nint x;\n";
        assert_eq!(named(text, "a.i", None), text);
        assert_eq!(
            named(text, "a.i", Some("/w")),
            "# 0 \"src/a.c\"\n# 1 \"/w//\"\n# 0 \"src/a.c\"\n# 0 \"<built-in>\"\nint x;\n"
        );
        // Already there, flags on the first line, or nothing after it: as it is.
        for text in [
            "# 0 \"src/a.c\"\n# 0 \"/x//\"\nint x;\n",
            "# 1 \"a.h\" 1\nint x;\n",
            "# 1 \"a.c\"",
            "\u{feff}# 1 \"a.c\" 3\n",
        ] {
            assert_eq!(named(text, "a.i", Some("/w")), text, "{text:?}");
        }
        let text = "\u{feff}# 1  \"a \\\"q\\\".c\" \r\nint x;\n";
        assert_eq!(
            named(text, "a.i", Some("/w")),
            "\u{feff}# 1  \"a \\\"q\\\".c\" \r\n# 1 \"/w//\"\n# 1  \"a \\\"q\\\".c\" \r\nint x;\n"
        );
        // gcc looks for the directory in one spelling only.
        let text = "# 1 \"a.c\"\n#  1 \"/x//\"\n";
        assert_eq!(
            named(text, "a.i", Some("/w")),
            "# 1 \"a.c\"\n# 1 \"/w//\"\n# 1 \"a.c\"\n#  1 \"/x//\"\n"
        );
    }
}
