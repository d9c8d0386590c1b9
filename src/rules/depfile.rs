//! Make dependency files as gcc writes them (`-MD`, `-MMD`, `-MP`), so a job compiled on a
//! box from shipped files leaves the same `.d` here as a local compile: the box's file names
//! its private tree, the master takes its prerequisites, drops the tree's prefix and writes
//! them again the way gcc does — the same escapes, the same line breaks (a name that would
//! pass column 72 starts a new line), the same phony targets.
//!
//! Text in, text out: no I/O.

/// How gcc escapes a prerequisite (and a `-MQ` target) for make: a space as `\ ` with the
/// backslashes just before it doubled, `#` as `\#` (the backslashes before it left alone),
/// `$` as `$$`. Other backslashes stay. (Found by comparing with gcc 12 on random names.)
pub fn munge(name: &str) -> String {
    // Most names need nothing: a kernel job's .d lists ~300 of them.
    if !name
        .bytes()
        .any(|b| matches!(b, b' ' | b'\t' | b'#' | b'$'))
    {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 4);
    let b: Vec<char> = name.chars().collect();
    for (i, &c) in b.iter().enumerate() {
        match c {
            ' ' | '\t' => {
                // Double the backslashes just before it, then escape it.
                let mut k = i;
                while k > 0 && b[k - 1] == '\\' {
                    out.push('\\');
                    k -= 1;
                }
                out.push('\\');
                out.push(c);
            }
            '#' => out.push_str("\\#"),
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

/// The inverse of `munge` for one token of a rule.
pub fn unmunge(token: &str) -> String {
    if !token.bytes().any(|b| matches!(b, b'\\' | b'$')) {
        return token.to_string();
    }
    let mut out = String::with_capacity(token.len());
    let b: Vec<char> = token.chars().collect();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            '\\' => {
                // A run of backslashes before a space: half of them are real.
                let start = i;
                while i < b.len() && b[i] == '\\' {
                    i += 1;
                }
                let n = i - start;
                match b.get(i) {
                    // Before a space, an odd run: the last one escapes it, the others are
                    // doubled.
                    Some(' ') | Some('\t') if n % 2 == 1 => {
                        for _ in 0..n / 2 {
                            out.push('\\');
                        }
                        out.push(b[i]);
                        i += 1;
                    }
                    // Before `#`, the last one escapes it, the others are themselves.
                    Some('#') => {
                        for _ in 0..n - 1 {
                            out.push('\\');
                        }
                        out.push('#');
                        i += 1;
                    }
                    _ => (0..n).for_each(|_| out.push('\\')),
                }
            }
            '$' if b.get(i + 1) == Some(&'$') => {
                out.push('$');
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The prerequisites of the first rule in `text` whose target part is `targets` (as
/// written, escapes included), unescaped. `None` if the text does not start that way.
pub fn prerequisites(text: &str, targets: &str) -> Option<Vec<String>> {
    // Joining the continuation lines turns the layout into single spaces.
    let joined = text.replace(" \\\n ", " ");
    let first = joined.lines().next()?;
    let want: String = targets.split_whitespace().collect::<Vec<_>>().join(" ");
    let rest = first.strip_prefix(&want)?.strip_prefix(':')?.as_bytes();
    // Tokens end at an unescaped blank; the bytes looked at are ASCII, so a token is
    // always whole UTF-8.
    let mut deps = Vec::new();
    let mut start = None;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b' ' | b'\t' => {
                if let Some(s) = start.take() {
                    deps.push(unmunge(std::str::from_utf8(&rest[s..i]).ok()?));
                }
                i += 1;
            }
            b => {
                start.get_or_insert(i);
                i += if b == b'\\' { 2 } else { 1 };
            }
        }
    }
    if let Some(s) = start {
        deps.push(unmunge(std::str::from_utf8(&rest[s..rest.len()]).ok()?));
    }
    Some(deps)
}

/// The targets of a rule in the order gcc 12 writes them: the driver passes every `-MQ`
/// (escaped) before every `-MT`, and each `-MT` then trades places with the first target
/// not yet moved (`-MQ a -MQ b -MT m` gives `m b a`). Checked against gcc on random mixes
/// (tests/depfiles.rs); a box's rule that does not start with these targets is not trusted.
pub fn targets(mt: &[String], mq: &[String]) -> Vec<String> {
    let mut t: Vec<String> = mq.iter().map(|q| munge(q)).collect();
    for (lwm, m) in mt.iter().enumerate() {
        t.push(m.clone());
        let last = t.len() - 1;
        t.swap(lwm, last);
    }
    t
}

/// Writes `name` after what is on the line so far (`col` columns), breaking the line first
/// when the name would pass column 72; returns the new column.
fn put(out: &mut String, name: &str, col: usize) -> usize {
    const COLMAX: usize = 72;
    let mut col = col;
    if col > 0 {
        if col + name.len() > COLMAX {
            out.push_str(" \\\n");
            col = 0;
        }
        col += 1;
        out.push(' ');
    }
    out.push_str(name);
    col + name.len()
}

/// `munge(name)`, borrowed when there is nothing to escape (nearly always).
fn munged(name: &str) -> std::borrow::Cow<'_, str> {
    if name
        .bytes()
        .any(|b| matches!(b, b' ' | b'\t' | b'#' | b'$'))
    {
        std::borrow::Cow::Owned(munge(name))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// A rule as gcc writes it: `targets` (each already in its final form: `-MT` as given,
/// `-MQ` munged), a colon, the prerequisites munged; with `phony` (`-MP`) an empty rule for
/// every prerequisite but the first (the source).
pub fn write(targets: &[String], deps: &[String], phony: bool) -> String {
    let size: usize = deps.iter().map(|d| d.len() + 4).sum::<usize>() * (1 + phony as usize);
    let mut out = String::with_capacity(size + 256);
    let mut col = 0;
    for t in targets {
        col = put(&mut out, t, col);
    }
    out.push(':');
    col += 1;
    for d in deps {
        col = put(&mut out, &munged(d), col);
    }
    out.push('\n');
    if phony {
        for d in deps.iter().skip(1) {
            out.push_str(&munged(d));
            out.push_str(":\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_gcc_does() {
        // From `gcc -M` on files with these names.
        for (name, written) in [
            ("a b.h", "a\\ b.h"),
            ("c#d.h", "c\\#d.h"),
            ("e$f.h", "e$$f.h"),
            ("g\\h.h", "g\\h.h"),
            ("i\\ j.h", "i\\\\\\ j.h"),
            ("k\\#l.h", "k\\\\#l.h"),
        ] {
            assert_eq!(munge(name), written);
            assert_eq!(unmunge(written), name);
        }
    }

    #[test]
    fn targets_in_gccs_order() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // Each seen with gcc 12 -M.
        assert_eq!(
            targets(&v(&["m.o"]), &v(&["z.o", "y.o"])),
            v(&["m.o", "y.o", "z.o"])
        );
        assert_eq!(
            targets(&v(&["m.o", "n.o", "o.o"]), &v(&["a.o", "b.o", "c.o"])),
            v(&["m.o", "n.o", "o.o", "a.o", "b.o", "c.o"])
        );
        assert_eq!(
            targets(&v(&["m.o"]), &v(&["a.o", "b.o", "c.o"])),
            v(&["m.o", "b.o", "c.o", "a.o"])
        );
        assert_eq!(targets(&[], &v(&["q2.o", "q1.o"])), v(&["q2.o", "q1.o"]));
    }

    #[test]
    fn gccs_own_layout() {
        let want = "x y.o q$$r\\ w.o: t.c /usr/include/stdc-predef.h a\\ b.h c\\#d.h e$$f.h \\\n \
                    g\\h.h i\\\\\\ j.h\n";
        let deps: Vec<String> = [
            "t.c",
            "/usr/include/stdc-predef.h",
            "a b.h",
            "c#d.h",
            "e$f.h",
            "g\\h.h",
            "i\\ j.h",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let targets = ["x y.o".to_string(), munge("q$r w.o")];
        assert_eq!(write(&targets, &deps, false), want);
        assert_eq!(prerequisites(want, "x y.o q$$r\\ w.o"), Some(deps.clone()));
        let phony = write(&targets[..1], &deps, true);
        assert!(phony.ends_with("\ng\\h.h:\ni\\\\\\ j.h:\n"), "{phony}");
        // Long targets wrap too.
        let long = write(
            &["a".repeat(50) + ".o", "b".repeat(48) + ".o"],
            &deps[..1],
            false,
        );
        assert_eq!(
            long,
            format!("{}.o \\\n {}.o: t.c\n", "a".repeat(50), "b".repeat(48))
        );
    }
}
