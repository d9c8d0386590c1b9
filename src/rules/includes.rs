//! The include directives of one C/C++ file, found without preprocessing: every `#include`,
//! `#include_next` and `#import`, and every `__has_include`/`__has_include_next` probe,
//! whatever `#if` surrounds them. Over-approximating is the point: the files a compile may
//! open are a subset of what these name (a file shipped needlessly costs a cache lookup on
//! the box). A directive whose name is a macro (`#include TRACE_INCLUDE(x)`) cannot be
//! followed; it is reported as `Computed` and the caller preprocesses that job at home.
//! Two more things a box must not see in a file are reported with them: the assembler's
//! `.incbin`/`.include` (`ReadsFiles`) and the macros of the clock (`Clock`).
//!
//! Text in, directives out: no I/O. The box trusts this scan to refuse a file that would
//! read one of its own (absolute names, `..`), so it reads the text as gcc's translation
//! phases 1-3 do, not line by line:
//! 1. trigraphs (`??=` is `#`, `??/` a backslash) — on only with `-trigraphs` or a strict
//!    `-std`, which the scan does not know: a text with any is read both ways;
//! 2. a backslash, optional horizontal space (gcc warns and accepts), then a line end
//!    (`\n`, `\r\n` or a lone `\r`) joins two lines, anywhere, even inside a word;
//! 3. a comment is one space, wherever it is (between `#` and `include` too), and the line
//!    ends inside it vanish (`/* a\nb */ #include` is a directive).
//!
//! Then a directive is `#`, `%:` or `??=` first on a logical line (after a byte order mark
//! at the start of the file), and a universal character name spells a letter of its name
//! as well as the letter does (`#incl\u0075de`: gcc complains, and includes).
//!
//! Where dialects read the same text differently, every reading is scanned and the union
//! reported: raw strings (`R"x(...)x"`, C++11 and gcc's GNU C), C90 without `//` comments,
//! digit separators (`1'000`, C++14 and C23), and the header name of `#include` (no
//! escapes, no comments inside `<...>`) against the ordinary lexing of a line gcc skips.
//! Each extra reading costs a pass only when the text has what makes it differ; the usual
//! header is one pass, and one copy of its text only if it has a splice or a `\r`. No text
//! makes the scan quadratic: the box runs it on what a peer sent.
//!
//! `#pragma GCC dependency "file"` is reported as a probe, `#embed` as an include.
//! `_Pragma` is no directive: [`mentions_after_splicing`] lets the box find it (and
//! `pop_macro`) however it is spelt.

use std::borrow::Cow;
use std::collections::HashSet;

/// How a name is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// `"name"`: the including file's directory first, then the quote and bracket paths.
    Quote,
    /// `<name>`: the bracket paths only.
    Angle,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// Scans `text` (a whole file): every reading of it (trigraphs off and on, each dialect
/// that reads it differently), the first in text order, the others adding what it lacked.
pub fn scan(text: &[u8]) -> Vec<Directive> {
    let mut sink = Sink::default();
    for trigraphs in trigraph_modes(text) {
        let spliced = splice(text, trigraphs);
        if !sink.out.contains(&Directive::ReadsFiles) && reads_files(&spliced.text) {
            sink.out.insert(0, Directive::ReadsFiles);
            if let Some(seen) = &mut sink.seen {
                seen.insert(Directive::ReadsFiles);
            }
        }
        let mut todo = vec![Dialect::BASE];
        let mut done = Vec::new();
        while let Some(dialect) = todo.pop() {
            let mut cursor = (0, 0);
            let differs = lex(&spliced, dialect, |line, start| {
                let mut number = || spliced.line_of(start, &mut cursor);
                scan_line(line, &mut number, &mut sink);
            });
            done.push(dialect);
            sink.union();
            for d in dialect.others(differs) {
                if !done.contains(&d) && !todo.contains(&d) {
                    todo.push(d);
                }
            }
        }
    }
    sink.out
}

/// Whether `word` appears in `text` after trigraphs (either way), line splicing and UCNs,
/// anywhere, strings and comments included: `_Pragma` and `pop_macro` run only under full
/// preprocessing, so the box must know a file has them however they are spelt. Not however
/// they are made: `CAT(_Prag, ma)(XSTR(CAT(pop_, macro)("H")))` has neither word (see the
/// test `pasted_pragma_is_no_word_but_its_include_is_computed`); only the computed
/// include it serves, and the audit, catch that.
pub fn mentions_after_splicing(text: &[u8], word: &[u8]) -> bool {
    trigraph_modes(text).into_iter().any(|t| {
        let spliced = splice(text, t);
        find(&ucns_decoded(&spliced.text, true), word).is_some()
    })
}

/// Whether the assembler's `.incbin` or `.include` is in `text`: what
/// `compiler::mentions_assembler_include` finds, after phases 1 and 2, and the words in any
/// case (`as` reads `.INCBIN` too; a C++ member `.IncludeLoc` is no directive).
fn reads_files(text: &[u8]) -> bool {
    let mut at = 0;
    while let Some(p) = text[at..].iter().position(|&b| b == b'.') {
        let word = &text[at + p + 1..];
        let is = |w: &[u8]| match word.get(..w.len()) {
            Some(x) if x == w => true,
            Some(x) => {
                x.eq_ignore_ascii_case(w) && !word.get(w.len()).is_some_and(|&b| is_ident_byte(b))
            }
            None => false,
        };
        if is(b"incbin") || is(b"include") {
            return true;
        }
        at += p + 1;
    }
    false
}

/// The directives found so far; after the first reading, only what is new is added.
#[derive(Default)]
struct Sink {
    out: Vec<Directive>,
    clock: bool,
    /// Set after the first reading: what `out` has, to add only the new.
    seen: Option<HashSet<Directive>>,
    /// More than `MAX_DIRECTIVES` came: the rest were not kept.
    overflow: bool,
}

/// Most directives one file's scan keeps (a real header has a few hundred at most): a peer's
/// file of nothing but `#include M` lines would otherwise take ~60 bytes of the box's memory
/// per line. Past it the scan ends with a `Computed` that no macro name can be read from,
/// so the box refuses the file and the client preprocesses the job at home.
pub const MAX_DIRECTIVES: usize = 1 << 16;

impl Sink {
    fn push(&mut self, d: Directive) {
        if self.out.len() >= MAX_DIRECTIVES {
            if !self.overflow {
                self.overflow = true;
                self.out.push(Directive::Computed {
                    line: 0,
                    text: format!("(more than {MAX_DIRECTIVES} directives in one file)"),
                });
            }
            return;
        }
        let new = match &mut self.seen {
            Some(seen) => seen.insert(d.clone()),
            None => true,
        };
        if new {
            self.out.push(d);
        }
    }

    fn union(&mut self) {
        if self.seen.is_none() {
            self.seen = Some(self.out.iter().cloned().collect());
        }
    }
}

/// Whether `text` has the identifier `__DATE__`, `__TIME__` or `__TIMESTAMP__` (in a
/// string literal or a comment too: a needless match only keeps the job here). Also run over
/// whole directives-only preprocessed text, so it skips from identifier to identifier.
pub fn names_the_clock(text: &[u8]) -> bool {
    names_one_of(text, &[b"__DATE__", b"__TIME__", b"__TIMESTAMP__"])
}

/// Why a job whose directives-only text names `__BASE_FILE__` is compiled here.
pub const BASE_FILE: &str = "uses __BASE_FILE__, which a box would expand to the name of its \
                             own copy of the preprocessed text";

/// Whether `text` has the identifier `__BASE_FILE__`, as `names_the_clock` looks: gcc expands
/// it to the name of the file on its command line, which no line marker changes.
pub fn names_the_base_file(text: &[u8]) -> bool {
    names_one_of(text, &[b"__BASE_FILE__"])
}

/// Whether `text` has one of `words` (identifiers that start with `_`) as an identifier.
fn names_one_of(text: &[u8], words: &[&[u8]]) -> bool {
    let mut at = 0;
    while let Some(p) = text[at..].iter().position(|&b| b == b'_') {
        let start = at + p;
        let (word, _) = ident(&text[start..]);
        if words.contains(&word) && (start == 0 || !is_ident_byte(text[start - 1])) {
            return true;
        }
        at = start + word.len();
    }
    false
}

// ---- Phases 1 and 2: trigraphs, line ends, splices ----

/// `[false]`, or `[false, true]` when `text` has a trigraph: whether `-trigraphs` is on is
/// the command line's business, so a text that has one is read both ways.
fn trigraph_modes(text: &[u8]) -> Vec<bool> {
    let mut at = 0;
    while let Some(p) = find(&text[at..], b"??") {
        if text.get(at + p + 2).and_then(|&c| trigraph(c)).is_some() {
            return vec![false, true];
        }
        at += p + 1;
    }
    vec![false]
}

/// What `??c` stands for.
fn trigraph(c: u8) -> Option<&'static u8> {
    const FROM: &[u8] = b"=/'()!<>-";
    const TO: &[u8] = b"#\\^[]|{}~";
    FROM.iter().position(|&f| f == c).map(|i| &TO[i])
}

/// A text after phases 1 and 2, whose only line end is `\n`, and the way back to the
/// original's offsets (for line numbers, and for raw strings, which undo both phases).
struct Spliced<'a> {
    orig: &'a [u8],
    text: Cow<'a, [u8]>,
    /// `(offset in text, offset in orig)` after each edit that changed the length.
    map: Vec<(usize, usize)>,
}

impl Spliced<'_> {
    fn to_orig(&self, at: usize) -> usize {
        match self.map.partition_point(|&(t, _)| t <= at) {
            0 => at,
            i => self.map[i - 1].1 + (at - self.map[i - 1].0),
        }
    }

    fn to_text(&self, at: usize) -> usize {
        match self.map.partition_point(|&(_, o)| o <= at) {
            0 => at,
            i => self.map[i - 1].0 + (at - self.map[i - 1].1),
        }
    }

    /// The physical line (from 1) of `at`; `cursor` (original offset, lines before it)
    /// carries the count from one call to the next, which come in text order.
    fn line_of(&self, at: usize, cursor: &mut (usize, usize)) -> usize {
        let o = self.to_orig(at).max(cursor.0);
        let part = &self.orig[cursor.0..o];
        let lone_cr = part
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\r' && self.orig.get(cursor.0 + i + 1) != Some(&b'\n'))
            .count();
        cursor.1 += part.iter().filter(|&&b| b == b'\n').count() + lone_cr;
        cursor.0 = o;
        cursor.1 + 1
    }
}

/// The end of a line splice whose backslash ends just before `at`: horizontal space (and
/// NUL, which gcc ignores) then one line end.
fn splice_end(text: &[u8], at: usize) -> Option<usize> {
    let space = text[at..]
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\x0b' | b'\x0c' | b'\0'))
        .count();
    match &text[at + space..] {
        [b'\r', b'\n', ..] => Some(at + space + 2),
        [b'\n' | b'\r', ..] => Some(at + space + 1),
        _ => None,
    }
}

/// Phases 1 (trigraphs, if asked) and 2, and every line end made `\n`. Borrows `text` when
/// nothing changes.
fn splice(text: &[u8], trigraphs: bool) -> Spliced<'_> {
    let mut out: Option<Vec<u8>> = None;
    let mut map = Vec::new();
    let (mut copied, mut i) = (0, 0);
    let special = |b: &u8| matches!(b, b'\\' | b'\r') || (trigraphs && *b == b'?');
    while let Some(p) = text[i..].iter().position(special) {
        let at = i + p;
        let tri = match text[at] {
            b'?' if text.get(at + 1) == Some(&b'?') => text.get(at + 2).and_then(|&c| trigraph(c)),
            _ => None,
        };
        let (end, with): (usize, &[u8]) = match (text[at], tri) {
            (b'\r', _) if text.get(at + 1) == Some(&b'\n') => (at + 2, b"\n"),
            (b'\r', _) => (at + 1, b"\n"),
            (b'\\', _) | (_, Some(b'\\')) => {
                let after = if text[at] == b'\\' { at + 1 } else { at + 3 };
                match splice_end(text, after) {
                    Some(end) => (end, b""),
                    None if text[at] == b'\\' => {
                        i = at + 1;
                        continue;
                    }
                    None => (at + 3, b"\\"),
                }
            }
            (_, Some(c)) => (at + 3, std::slice::from_ref(c)),
            _ => {
                i = at + 1;
                continue;
            }
        };
        let o = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
        o.extend_from_slice(&text[copied..at]);
        o.extend_from_slice(with);
        if end - at != with.len() {
            map.push((o.len(), end));
        }
        copied = end;
        i = end;
    }
    let text_out = match out {
        Some(mut o) => {
            o.extend_from_slice(&text[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(text),
    };
    Spliced {
        orig: text,
        text: text_out,
        map,
    }
}

// ---- Phase 3: comments, literals, logical lines ----

/// One way of reading the tokens of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dialect {
    /// `//` starts a comment (not in C90).
    line_comments: bool,
    /// `R"delim(...)delim"` (C++11, and gcc's GNU C).
    raw_strings: bool,
    /// A `"` or `<` on an `#include`, `#if` or `#elif` line starts a header name: no
    /// escapes, no comments inside (what gcc does on a line it does not skip).
    header_names: bool,
    /// `1'000` is one number (C++14, C23), not a 1 and a character literal.
    digit_separators: bool,
}

impl Dialect {
    const BASE: Dialect = Dialect {
        line_comments: true,
        raw_strings: false,
        header_names: false,
        digit_separators: false,
    };

    /// The readings a text with `differs` also needs, from this one.
    fn others(self, differs: Differs) -> Vec<Dialect> {
        let mut v = Vec::new();
        if differs.raw_strings {
            v.push(Dialect {
                raw_strings: true,
                ..self
            });
        }
        if differs.c90 {
            v.push(Dialect {
                line_comments: false,
                raw_strings: false,
                ..self
            });
        }
        if differs.header_names {
            v.push(Dialect {
                header_names: true,
                ..self
            });
        }
        if differs.digit_separators {
            v.push(Dialect {
                digit_separators: true,
                ..self
            });
        }
        v
    }
}

/// What another dialect would read differently in a text, found while lexing it.
#[derive(Debug, Default, Clone, Copy)]
struct Differs {
    raw_strings: bool,
    c90: bool,
    header_names: bool,
    digit_separators: bool,
}

/// The bytes the lexer stops at; everything else is copied in runs.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\n' as usize] = true;
    t[b'/' as usize] = true;
    t[b'"' as usize] = true;
    t[b'\'' as usize] = true;
    t[b'<' as usize] = true;
    t
};

/// Phase 3 over `s`: calls `emit(line, start)` for each logical line, comments made one
/// space and raw strings `""`, with the offset in `s.text` where the line starts.
fn lex(s: &Spliced, d: Dialect, mut emit: impl FnMut(&[u8], usize)) -> Differs {
    let t = &s.text[..];
    let mut x = Lexer {
        s,
        d,
        differs: Differs::default(),
        line: Vec::with_capacity(256),
        quoted: false,
        header_line: false,
        after_separator: 0,
        raw_unterminated: false,
        clean_to: [0, 0],
    };
    // gcc skips a UTF-8 byte order mark that starts a file.
    let (mut start, mut i) = (0, if t.starts_with(BOM) { BOM.len() } else { 0 });
    while i < t.len() {
        let run = t[i..].iter().position(|&b| SPECIAL[b as usize]);
        let run = run.unwrap_or(t.len() - i);
        x.line.extend_from_slice(&t[i..i + run]);
        i += run;
        match t.get(i) {
            None => break,
            Some(b'\n') => {
                emit(&x.line, start);
                x.new_line();
                i += 1;
                start = i;
            }
            Some(_) => i = x.token(t, i),
        }
    }
    if !x.line.is_empty() {
        emit(&x.line, start);
    }
    x.differs
}

/// Phase 3's state in one text, one dialect.
struct Lexer<'s, 'a> {
    s: &'s Spliced<'a>,
    d: Dialect,
    differs: Differs,
    /// The logical line so far.
    line: Vec<u8>,
    /// Whether a `"` or `<` came on this line, and if so whether the line is one where gcc
    /// may lex a header name (see `header_line`).
    quoted: bool,
    header_line: bool,
    /// The line's length after its last digit separator.
    after_separator: usize,
    /// A raw string had no end: gcc reads the rest of the file into it, so no other one
    /// needs looking for.
    raw_unterminated: bool,
    /// How far the last `<...>` and `"..."` header names read the usual way were looked
    /// through and found the same either way (a name starting before that ends there too).
    clean_to: [usize; 2],
}

impl Lexer<'_, '_> {
    fn new_line(&mut self) {
        self.line.clear();
        self.quoted = false;
        self.header_line = false;
        self.after_separator = 0;
    }

    /// Lexes what starts at `t[i]`, a special byte other than a line end; where it ends.
    fn token(&mut self, t: &[u8], i: usize) -> usize {
        let c = t[i];
        match (c, t.get(i + 1)) {
            (b'/', Some(b'*')) => {
                self.line.push(b' ');
                find(&t[i + 2..], b"*/").map_or(t.len(), |p| i + 2 + p + 2)
            }
            (b'/', Some(b'/')) => self.line_comment(t, i),
            (b'"' | b'<', _) if self.header_position() => self.header(t, i),
            (b'"', _) if raw_prefix(&self.line) => self.raw(t, i),
            (b'\'', _) if in_number(&self.line, self.after_separator) => self.separator(t, i),
            (b'"' | b'\'', _) => literal(t, i, &mut self.line),
            _ => {
                self.line.push(c);
                i + 1
            }
        }
    }

    fn line_comment(&mut self, t: &[u8], i: usize) -> usize {
        let end = t[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(t.len(), |p| i + p);
        // Without `//` comments, `//*` and `// /*` open a block comment.
        self.differs.c90 |= find(&t[i + 1..end], b"/*").is_some();
        if self.d.line_comments {
            self.line.push(b' ');
            end
        } else {
            self.line.push(b'/');
            i + 1
        }
    }

    /// Whether a header name may start here (one look at the line's start per line).
    fn header_position(&mut self) -> bool {
        if !self.quoted {
            self.quoted = true;
            self.header_line = header_line(&self.line);
        }
        // Known to differ already, the usual reading need not look again.
        self.header_line && (self.d.header_names || !self.differs.header_names)
    }

    fn header(&mut self, t: &[u8], i: usize) -> usize {
        let kind = usize::from(t[i] == b'"');
        if !self.d.header_names && i < self.clean_to[kind] {
            // Inside one looked through already: lexed the usual way.
            return self.header_as_usual(t, i);
        }
        let end = header_end(t, i);
        let body = &t[i + 1..end];
        self.differs.header_names |= find(body, b"/*").is_some()
            || find(body, b"//").is_some()
            || (t[i] == b'"' && body.contains(&b'\\'));
        self.clean_to[kind] = end;
        if self.d.header_names {
            self.line.extend_from_slice(&t[i..end]);
            end
        } else {
            self.header_as_usual(t, i)
        }
    }

    fn header_as_usual(&mut self, t: &[u8], i: usize) -> usize {
        if t[i] == b'<' {
            // `<` is an operator here, and what follows is lexed as usual.
            self.line.push(b'<');
            i + 1
        } else {
            literal(t, i, &mut self.line)
        }
    }

    fn raw(&mut self, t: &[u8], i: usize) -> usize {
        self.differs.raw_strings = true;
        if self.d.raw_strings && !self.raw_unterminated {
            match raw_end(self.s, i) {
                Raw::End(end) if end > i => {
                    self.line.extend_from_slice(b"\"\"");
                    return end;
                }
                Raw::Unterminated => self.raw_unterminated = true,
                _ => {}
            }
        }
        literal(t, i, &mut self.line)
    }

    fn separator(&mut self, t: &[u8], i: usize) -> usize {
        self.differs.digit_separators = true;
        if self.d.digit_separators && t.get(i + 1).is_some_and(|&b| is_ident_byte(b)) {
            self.line.push(b'\'');
            self.after_separator = self.line.len();
            i + 1
        } else {
            literal(t, i, &mut self.line)
        }
    }
}

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Whether `line` ends inside a preprocessing number (`0x1f`, `1.5e3`, `1'000`), where a
/// `'` may be a digit separator; `after_separator` is where the last one left the line.
fn in_number(line: &[u8], after_separator: usize) -> bool {
    let n = line
        .iter()
        .rev()
        .take_while(|&&b| is_ident_byte(b) || b == b'.')
        .count();
    let start = line.len() - n;
    if after_separator > 0 && start == after_separator {
        return true;
    }
    let run = &line[start..];
    let run = run.strip_prefix(b".").unwrap_or(run);
    run.first().is_some_and(u8::is_ascii_digit)
}

/// A string or character literal from its opening quote at `at` to its closing one or the
/// end of the line, copied to `line`; where it ends.
fn literal(t: &[u8], at: usize, line: &mut Vec<u8>) -> usize {
    let q = t[at];
    line.push(q);
    let mut i = at + 1;
    while i < t.len() && t[i] != q && t[i] != b'\n' {
        if t[i] == b'\\' && t.get(i + 1).is_some_and(|&b| b != b'\n') {
            line.push(b'\\');
            i += 1;
        }
        line.push(t[i]);
        i += 1;
    }
    if t.get(i) == Some(&q) {
        line.push(q);
        i += 1;
    }
    i
}

/// Where a header name starting at `at` (`"` or `<`) ends: after its terminator, or at the
/// end of the line.
fn header_end(t: &[u8], at: usize) -> usize {
    let close = if t[at] == b'<' { b'>' } else { b'"' };
    let rest = &t[at + 1..];
    match rest.iter().position(|&b| b == close || b == b'\n') {
        Some(p) if rest[p] == close => at + p + 2,
        Some(p) => at + 1 + p,
        None => t.len(),
    }
}

/// Whether `line` starts a directive where gcc may lex a `"` or `<` as a header name (no
/// escapes, no comments inside): all along an `#include` (`#include_next`, `#import`,
/// `#embed`) line, even in its macro arguments, and in `#if` and `#elif` after
/// `__has_include(`, which a macro may spell (`#define HI __has_include`, `#if HI(...)`):
/// so anywhere on those lines.
fn header_line(line: &[u8]) -> bool {
    let Some(rest) = hash(skip_space(line)) else {
        return false;
    };
    let rest = skip_space(rest);
    let n = rest.iter().take_while(|&&b| is_ident_byte(b) || b == b'\\');
    let word = ucns_decoded(&rest[..n.count()], false);
    matches!(
        &*word,
        b"include" | b"include_next" | b"import" | b"embed" | b"if" | b"elif"
    )
}

/// Whether `line` ends with the prefix of a raw string (`R`, `LR`, `uR`, `UR`, `u8R`), a
/// whole token.
fn raw_prefix(line: &[u8]) -> bool {
    let Some(before) = line.strip_suffix(b"R") else {
        return false;
    };
    let whole = |s: &[u8]| !s.last().is_some_and(|&b| is_ident_byte(b));
    whole(before)
        || [&b"u8"[..], b"u", b"U", b"L"]
            .iter()
            .any(|p| before.strip_suffix(*p).is_some_and(whole))
}

/// How a raw string ends.
enum Raw {
    /// Where, in `Spliced::text`.
    End(usize),
    /// Nowhere: the rest of the file is in it.
    Unterminated,
    /// Its delimiter is not one: gcc says so and reads on.
    Invalid,
}

/// Where the raw string whose `"` is at `at` in `s.text` ends. Inside a raw string phases
/// 1 and 2 are undone, so its delimiter is looked for in the original.
fn raw_end(s: &Spliced, at: usize) -> Raw {
    let o = s.to_orig(at) + 1;
    let rest = &s.orig[o.min(s.orig.len())..];
    let Some(n) = rest.iter().take(17).position(|&b| b == b'(') else {
        return Raw::Invalid;
    };
    let delim = &rest[..n];
    let bad = |b: &u8| b" )\\\t\x0b\x0c\n\r".contains(b);
    if delim.iter().any(bad) {
        return Raw::Invalid;
    }
    let mut close = vec![b')'];
    close.extend_from_slice(delim);
    close.push(b'"');
    match find(&rest[n + 1..], &close) {
        Some(p) => Raw::End(s.to_text(o + n + 1 + p + close.len())),
        None => Raw::Unterminated,
    }
}

// ---- Directives in a logical line ----

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

/// The rest of a directive line after its `#`: `%:` is `#` in C99 and C++ (a digraph),
/// `??=` with -trigraphs.
fn hash(s: &[u8]) -> Option<&[u8]> {
    s.strip_prefix(b"#")
        .or_else(|| s.strip_prefix(b"%:"))
        .or_else(|| s.strip_prefix(b"??="))
}

/// Whitespace to gcc inside a line: NUL too (it warns, and ignores it).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c' | b'\0')
}

fn skip_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
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

/// The directives of one logical line; `number` gives its line, when a report needs it.
fn scan_line(line: &[u8], number: &mut dyn FnMut() -> usize, out: &mut Sink) {
    let line = &*ucns_decoded(line, false);
    if !out.clock && names_the_clock(line) {
        out.clock = true;
        out.push(Directive::Clock { line: number() });
    }
    if let Some(rest) = hash(skip_space(line)) {
        let (word, after) = ident(skip_space(rest));
        // `#embed` (C23; gcc 15, clang 19) reads a file too.
        let next = match word {
            b"include" | b"import" | b"embed" => Some(false),
            b"include_next" => Some(true),
            b"pragma" => {
                dependency(after, out);
                None
            }
            _ => None,
        };
        if let Some(next) = next {
            out.push(match header_name(skip_space(after)) {
                Some((form, name, _)) => Directive::Include {
                    form,
                    name,
                    next,
                    probe: false,
                },
                // Spelt with `#` whatever the line used, for `computed_macro` and the
                // client's expansion.
                None => Directive::Computed {
                    line: number(),
                    text: format!("#{}", String::from_utf8_lossy(rest).trim()),
                },
            });
            return;
        }
    }
    probes(line, number, out);
}

/// `#pragma GCC dependency "file"` compares the file's time with this one's: the box must
/// not be asked about its own files (gcc does not expand a macro there).
fn dependency(after: &[u8], out: &mut Sink) {
    let (gcc, rest) = ident(skip_space(after));
    let (word, rest) = ident(skip_space(rest));
    if gcc != b"GCC" || word != b"dependency" {
        return;
    }
    if let Some((form, name, _)) = header_name(skip_space(rest)) {
        out.push(Directive::Include {
            form,
            name,
            next: false,
            probe: true,
        });
    }
}

/// `__has_include` anywhere on the line (in `#if`, `#elif`, or a macro that expands to
/// one later).
fn probes(line: &[u8], number: &mut dyn FnMut() -> usize, out: &mut Sink) {
    let mut s = line;
    while let Some(p) = find(s, b"__has_include") {
        let after = &s[p + b"__has_include".len()..];
        let (next, after) = match after.strip_prefix(b"_next") {
            Some(a) => (true, a),
            None => (false, after),
        };
        // Part of a longer identifier: not the operator.
        if after.first().is_some_and(|&b| is_ident_byte(b)) {
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
            // One report says the line is unknowable.
            _ if arg.starts_with(b"(") => {
                return out.push(Directive::Computed {
                    line: number(),
                    text: String::from_utf8_lossy(line).trim().to_string(),
                })
            }
            // `#ifdef __has_include` and the like: no file involved.
            _ => {}
        }
        s = after;
    }
}

/// `line` with each universal character name that spells a letter, digit or `_`
/// (`#incl\u0075de`: gcc says it is not valid, and includes) made that character; outside
/// literals unless `everywhere`.
fn ucns_decoded(line: &[u8], everywhere: bool) -> Cow<'_, [u8]> {
    if find(line, b"\\u").is_none() && find(line, b"\\U").is_none() {
        return Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len());
    let (mut quote, mut i) = (None, 0);
    while i < line.len() {
        let c = line[i];
        let digits = match line.get(i + 1) {
            Some(b'u') => 4,
            Some(b'U') => 8,
            _ => 0,
        };
        let value = line
            .get(i + 2..i + 2 + digits)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(|v| u8::try_from(v).ok())
            .filter(|&b| is_ident_byte(b));
        match (c, quote, value) {
            (b'\\', None, Some(b)) if digits > 0 => {
                out.push(b);
                i += 2 + digits;
                continue;
            }
            (b'\\', Some(_), _) => {
                out.extend(line.get(i..i + 2).unwrap_or(&line[i..]));
                i += 2;
                continue;
            }
            (b'"' | b'\'', None, _) if !everywhere => quote = Some(c),
            (q, Some(open), _) if q == open => quote = None,
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut at = 0;
    while let Some(p) = hay[at..].iter().position(|&b| b == first) {
        let start = at + p;
        if hay[start + 1..].starts_with(rest) {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_endless_directives_is_cut_short_and_computed() {
        let text = "#include M\n".repeat(MAX_DIRECTIVES + 10);
        let got = scan(text.as_bytes());
        assert_eq!(got.len(), MAX_DIRECTIVES + 1);
        match got.last() {
            Some(Directive::Computed { text, .. }) => assert!(computed_macro(text).is_none()),
            other => panic!("{other:?}"),
        }
    }

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
    fn the_base_file_is_found_as_an_identifier_only() {
        assert!(names_the_base_file(b"const char *b = __BASE_FILE__;\n"));
        assert!(names_the_base_file(b"__BASE_FILE__"));
        assert!(names_the_base_file(b"#define WHERE __BASE_FILE__\n"));
        assert!(!names_the_base_file(
            b"x__BASE_FILE__ __BASE_FILE__S __FILE__ __BASE__"
        ));
        assert!(!names_the_clock(b"__BASE_FILE__"));
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

    // ---- Tricks a hostile peer tried: each is proven with the real gcc first ----

    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A temp dir of its own with `target.h` in it, and that file's absolute name.
    fn setup(test: &str) -> (PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("rcc-includes-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target.h");
        std::fs::write(&target, "int rcc_target;\n").unwrap();
        // Directories whose names look like comments, for `<a/*/../../target.h>`.
        std::fs::create_dir_all(dir.join("*x*")).unwrap();
        std::fs::create_dir_all(dir.join("a/*")).unwrap();
        (dir, target.to_str().unwrap().to_string())
    }

    /// `template` with `{T}` made `target` and `{D}` its directory.
    fn fill(template: &[u8], target: &str) -> Vec<u8> {
        let dir = &target[..target.rfind('/').unwrap()];
        let mut out = Vec::new();
        let mut rest = template;
        while let Some(p) = find(rest, b"{") {
            out.extend_from_slice(&rest[..p]);
            rest = &rest[p..];
            let (with, len) = match rest {
                [b'{', b'T', b'}', ..] => (target, 3),
                [b'{', b'D', b'}', ..] => (dir, 3),
                _ => ("{", 1),
            };
            out.extend_from_slice(with.as_bytes());
            rest = &rest[len..];
        }
        out.extend_from_slice(rest);
        out
    }

    /// The name a trick's template names: around its `{T}` or `{D}`, or its `<...>`.
    fn named(template: &[u8], target: &str) -> String {
        let at = template
            .iter()
            .position(|&b| b == b'{')
            .or_else(|| template.iter().position(|&b| b == b'>'))
            .unwrap();
        let open = template[..at].iter().rposition(|&b| b == b'"' || b == b'<');
        let open = open.unwrap();
        let close = if template[open] == b'<' { b'>' } else { b'"' };
        let len = template[open + 1..].iter().position(|&b| b == close);
        let name = &template[open + 1..open + 1 + len.unwrap()];
        String::from_utf8(fill(name, target)).unwrap()
    }

    /// Runs `gcc <args> <dir>/t.c` on `source`: its status, stdout and stderr.
    fn gcc(dir: &Path, source: &[u8], args: &[&str]) -> (bool, String, String) {
        let src = dir.join("t.c");
        std::fs::write(&src, source).unwrap();
        let out = Command::new("gcc")
            .args(args)
            .arg(&src)
            .output()
            .expect("gcc runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// Whether `gcc -E -H <args>` on `source` opens `name` (what -H prints, a line of dots
    /// and the name, for each file it reads).
    fn gcc_opens(dir: &Path, source: &[u8], args: &[&str], name: &str) -> bool {
        let mut all = vec!["-E", "-H", "-o", "/dev/null"];
        all.extend_from_slice(args);
        let (_, _, err) = gcc(dir, source, &all);
        err.lines().any(|l| {
            let t = l.trim_start_matches('.');
            t.len() < l.len() && t.strip_prefix(' ') == Some(name)
        })
    }

    fn reports_include(text: &[u8], name: &str) -> bool {
        scan(text)
            .iter()
            .any(|d| matches!(d, Directive::Include { name: n, .. } if n == name))
    }

    /// Each trick: a name, the source (`{T}` is the target's absolute name), gcc's options.
    const INCLUDE_TRICKS: &[(&str, &[u8], &[&str])] = &[
        ("plain", b"#include \"{T}\"\n", &[]),
        ("spaces after #", b"#  include \"{T}\"\n", &[]),
        ("tab, vtab, ff", b"\x0c\t#\t\x0b\x0cinclude\t\"{T}\"\n", &[]),
        ("NUL as space", b"#\0include \"{T}\"\n", &[]),
        (
            "comment between # and include",
            b"#/**/include \"{T}\"\n",
            &[],
        ),
        ("comment with spaces", b"# /*x*/ include \"{T}\"\n", &[]),
        (
            "comment over lines after #",
            b"# /* a\n b */ include \"{T}\"\n",
            &[],
        ),
        (
            "comment over lines before the name",
            b"#include /* a\n */ \"{T}\"\n",
            &[],
        ),
        (
            "comment ends where # starts",
            b"/* a\n b */ # include \"{T}\"\n",
            &[],
        ),
        ("comment at line start", b"/* x */ # include \"{T}\"\n", &[]),
        ("lone CR line ends", b"int x;\r#include \"{T}\"\r", &[]),
        ("lone CR first", b"\r#include \"{T}\"\r", &[]),
        (
            "lone CR ends a // comment",
            b"// x\r#include \"{T}\"\r",
            &[],
        ),
        ("CRLF", b"/* x */\r\n#include \"{T}\"\r\n", &[]),
        ("splice in include", b"#inc\\\nlude \"{T}\"\n", &[]),
        ("CRLF splice", b"#inc\\\r\nlude \"{T}\"\r\n", &[]),
        ("lone CR splice", b"#inc\\\rlude \"{T}\"\r", &[]),
        ("splice after #", b"#\\\ninclude \"{T}\"\n", &[]),
        ("splice before #", b"\\\n#include \"{T}\"\n", &[]),
        ("splice before the name", b"#include\\\n\"{T}\"\n", &[]),
        (
            "spaces then splice",
            b"#inc\\ \t\x0b\x0c\nlude \"{T}\"\n",
            &[],
        ),
        ("NUL then splice", b"#inc\\\0\nlude \"{T}\"\n", &[]),
        (
            "many splices",
            b"#\\\ni\\\r\nn\\\rc\\ \nlude\\\n \"{T}\"\n",
            &[],
        ),
        (
            "// comment spliced over a /*",
            b"// x \\ \n /*\n#include \"{T}\"\n// */\n",
            &[],
        ),
        (
            "// comment CRLF-spliced over a /*",
            b"// x \\\r\n /*\r\n#include \"{T}\"\r\n// */\r\n",
            &[],
        ),
        ("trigraph #", b"??=include \"{T}\"\n", &["-trigraphs"]),
        (
            "trigraph splice",
            b"#inc??/\nlude \"{T}\"\n",
            &["-trigraphs"],
        ),
        (
            "trigraph splice, c99",
            b"#inc??/\nlude \"{T}\"\n",
            &["-std=c99"],
        ),
        (
            "trigraph splice of a // comment over a /*",
            b"// x ??/\n/*\n#include \"{T}\"\n// */\n",
            &["-trigraphs"],
        ),
        ("digraph #", b"%:include \"{T}\"\n", &[]),
        ("digraph #, comment", b"  %: /**/ include \"{T}\"\n", &[]),
        (
            "everything at once",
            b"/* a\r */ ??=/**/inc??/\r\nl\\\t\nude /* x\n */ \"{T}\"\r",
            &["-trigraphs"],
        ),
        (
            "digraph, CR and splices",
            b"int x; /*\r*/\r%:/*\r*/inc\\\r\nlude \"{T}\"\r",
            &[],
        ),
        ("include_next", b"#include_next \"{T}\"\n", &[]),
        ("byte order mark", b"\xef\xbb\xbf#include \"{T}\"\n", &[]),
        ("UCN in include", b"#incl\\u0075de \"{T}\"\n", &[]),
        ("long UCN after #", b"# \\U00000069nclude \"{T}\"\n", &[]),
        (
            "trigraph UCN",
            b"#incl??/u0075de \"{T}\"\n",
            &["-trigraphs"],
        ),
        (
            "digit separator, C++14",
            b"int x = 1'0'; /*\n#include \"{T}\"\n// */\n",
            &["-x", "c++", "-std=c++14"],
        ),
        (
            "digit separator, C2x",
            b"int x = 0x1'f'; /*\n#include \"{T}\"\n// */\n",
            &["-std=c2x"],
        ),
        ("import", b"#import \"{T}\"\n", &[]),
        (
            "raw string hides a /*",
            b"const char *s = R\"x( \" /* )x\";\n#include \"{T}\"\n// */\n",
            &[],
        ),
        (
            "raw string hides a /*, C++",
            b"const char *s = u8R\"( \" /* )\";\n#include \"{T}\"\n// */\n",
            &["-x", "c++"],
        ),
        (
            "raw string undoes a splice",
            b"const char *s = R\"x( )x\\\n\" /* )x\";\n#include \"{T}\"\n// */\n",
            &[],
        ),
        (
            "C90 has no // comments",
            b"//* x\n/*/\n#include \"{T}\"\n*/\n",
            &["-std=c89"],
        ),
        (
            "a header name has no escapes",
            b"#if __has_include(\"x\\\" \" /*)\n#endif\n#include \"{T}\"\n// */\n",
            &[],
        ),
        (
            "a header name has no escapes, __has_include spelt by a macro",
            b"#define HI __has_include\n#if HI(\"x\\\" \" /*)\n#endif\n#include \"{T}\"\n// */\n",
            &[],
        ),
        (
            "a header name has no escapes, UCN in the directive",
            b"#\\u0069f __has_include(\"x\\\" \" /*)\n#endif\n#include \"{T}\"\n// */\n",
            &[],
        ),
        (
            "a header name has no // comment",
            b"#include <{D}//target.h>\n",
            &[],
        ),
        (
            "a header name has no /* comment",
            b"#include <{D}/*x*/../target.h>\n",
            &[],
        ),
        (
            "a header name has no /* comment, relative",
            b"#include <a/*/../../target.h> // */ <ok.h>\n",
            &["-I{D}"],
        ),
    ];

    #[test]
    fn every_trick_that_makes_gcc_open_a_file_is_reported() {
        let (dir, target) = setup("tricks");
        let mut wrong = Vec::new();
        for (what, template, args) in INCLUDE_TRICKS {
            let text = fill(template, &target);
            let args: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8(fill(a.as_bytes(), &target)).unwrap())
                .collect();
            let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
            // The spliced ones name the target; the others spell it their way.
            let name = if find(&text, b"\\").is_some() || find(&text, b"??/").is_some() {
                target.clone()
            } else {
                named(template, &target)
            };
            let opened = if name.starts_with('/') {
                name.clone()
            } else {
                format!("{}/{name}", &target[..target.rfind('/').unwrap()])
            };
            if !gcc_opens(&dir, &text, &args, &opened) {
                wrong.push(format!("{what}: gcc {args:?} does not open {opened}"));
            } else if !reports_include(&text, &name) {
                wrong.push(format!("{what}: not reported: {:?}", scan(&text)));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn computed_names_behind_tricks_are_reported_as_computed() {
        let (dir, target) = setup("computed");
        for template in [
            &b"#define H \"{T}\"\n%:/**/inc\\\nlude H\n"[..],
            b"#define H \"{T}\"\r??=include/*\r*/H\r",
            b"#define H \"{T}\"\n# /* a\n */ include \\ \n H\n",
        ] {
            let text = fill(template, &target);
            assert!(gcc_opens(&dir, &text, &["-trigraphs"], &target));
            let computed: Vec<_> = scan(&text)
                .into_iter()
                .filter_map(|d| match d {
                    Directive::Computed { line, text } => Some((line, text)),
                    _ => None,
                })
                .collect();
            assert_eq!(computed.len(), 1, "{:?}", String::from_utf8_lossy(&text));
            assert_eq!(computed[0].0, 2);
            assert_eq!(computed_macro(&computed[0].1), Some("H"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn has_include_behind_tricks_is_reported() {
        let (dir, target) = setup("probes");
        for template in [
            &b"#if __has_include(\"{T}\")\nFOUND\n#endif\n"[..],
            b"#if __has_incl\\\nude /**/ ( /* x\n */ <{T}> )\nFOUND\n#endif\n",
            b"%:if __has_include_next\\\r(\"{T}\")\rFOUND\r#endif\r",
            b"??=if __has_include(\"{T}\")\nFOUND\n#endif\n",
        ] {
            let text = fill(template, &target);
            // gcc answers yes only because the file is there.
            let (_, out, err) = gcc(&dir, &text, &["-E", "-trigraphs", "-o", "-"]);
            assert!(out.contains("FOUND"), "{out}{err}");
            let probed = scan(&text).iter().any(
                |d| matches!(d, Directive::Include { name, probe: true, .. } if *name == target),
            );
            assert!(probed, "{:?}", scan(&text));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn incbin_split_by_a_splice_is_reported() {
        let (dir, target) = setup("incbin");
        for template in [
            &b"asm(\".inc\\\nbin \\\"{T}\\\"\");\n"[..],
            b"asm(\".inc\\ \r\nbin \\\"{T}\\\"\");\r\n",
            b"asm(\".inc??/\nbin \\\"{T}\\\"\");\n",
        ] {
            let text = fill(template, &target);
            // What gcc hands the assembler has the whole `.incbin`.
            let (ok, out, err) = gcc(&dir, &text, &["-S", "-trigraphs", "-o", "-"]);
            assert!(ok && out.contains(".incbin"), "{out}{err}");
            assert_eq!(scan(&text), [Directive::ReadsFiles]);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pragma_and_pop_macro_are_found_however_spelt() {
        let (dir, target) = setup("pragma");
        // The macro's value at `#include` comes from text no directive scan sees.
        let text = fill(
            b"#define H \"{T}\"\n#pragma push_macro(\"H\")\n#undef H\n#define H \"no.h\"\n\
              _Pra\\\ngma(\"pop_m\\\r\nacro(\\\"H\\\")\")\n#include H\n",
            &target,
        );
        assert!(gcc_opens(&dir, &text, &[], &target));
        assert!(find(&text, b"_Pragma").is_none() && find(&text, b"pop_macro").is_none());
        assert!(mentions_after_splicing(&text, b"_Pragma"));
        assert!(mentions_after_splicing(&text, b"pop_macro"));
        let tri = b"/* x */ _Prag??/\nma(\"pop_macro(\\\"H\\\")\")";
        assert!(mentions_after_splicing(tri, b"_Pragma"));
        assert!(!mentions_after_splicing(b"#include <a.h>\n", b"_Pragma"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lines_are_counted_in_the_original_text() {
        // Line ends of every kind, splices and comments over lines before each report.
        let text = b"a\rb\r\nc\n#inc\\\nlude X\r/* 1\n2\r3 */ int t = __TIME__;\n\
                     \n#if __has_include(Y)\n";
        assert_eq!(
            scan(text),
            [
                Directive::Computed {
                    line: 4,
                    text: "#include X".into()
                },
                Directive::Clock { line: 6 },
                Directive::Computed {
                    line: 10,
                    text: "#if __has_include(Y)".into()
                },
            ]
        );
    }

    #[test]
    fn both_trigraph_readings_are_scanned_once_each() {
        // Without -trigraphs the first line is a comment and the second an include; with
        // it, the splice makes the second a comment and the third is read from the first.
        let text = b"// a ??/\n#include \"off.h\"\n#include \"both.h\"\n??=include \"on.h\"\n";
        assert_eq!(
            scan(text),
            [
                inc(Form::Quote, "off.h"),
                inc(Form::Quote, "both.h"),
                inc(Form::Quote, "on.h"),
            ]
        );
        // A `??` that is no trigraph costs nothing.
        assert_eq!(trigraph_modes(b"a ?? b : c ??? d"), [false]);
    }

    #[test]
    fn pragma_dependency_is_a_probe() {
        let (dir, target) = setup("dependency");
        // gcc compares the times: a target from the future makes it say so.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        let f = std::fs::File::options().write(true).open(&target).unwrap();
        f.set_modified(later).unwrap();
        for template in [
            &b"#pragma GCC dependency \"{T}\"\n"[..],
            b"%:pragma /**/ GCC dep\\\nendency \"{T}\"\r",
        ] {
            let text = fill(template, &target);
            let (_, _, err) = gcc(&dir, &text, &["-E", "-o", "/dev/null"]);
            assert!(err.contains("is older than"), "{err}");
            let probed = scan(&text).iter().any(
                |d| matches!(d, Directive::Include { name, probe: true, .. } if *name == target),
            );
            assert!(probed, "{:?}", scan(&text));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ucns_spell_words_too() {
        let (dir, target) = setup("ucn");
        let text = fill(
            b"#define H \"{T}\"\n#pragma push_macro(\"H\")\n#undef H\n#define H \"no.h\"\n\
              _Pr\\u0061gma(\"pop_macro(\\\"H\\\")\")\n#include H\n",
            &target,
        );
        assert!(gcc_opens(&dir, &text, &[], &target));
        assert!(mentions_after_splicing(&text, b"_Pragma"));
        let probe = fill(
            b"#if __has_incl\\u0075de(\"{T}\")\nFOUND\n#endif\n",
            &target,
        );
        let (_, out, _) = gcc(&dir, &probe, &["-E", "-o", "-"]);
        assert!(out.contains("FOUND"));
        assert!(reports_include(&probe, &target));
        // In a literal, a UCN is the literal's business.
        assert_eq!(scan(b"s = \"#incl\\u0075de <x.h>\";\n"), []);
        assert_eq!(
            &*ucns_decoded(b"a\\u005fb \"\\u005f\"", false),
            b"a_b \"\\u005f\""
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_assemblers_directives_in_any_case() {
        let (dir, target) = setup("incbin-case");
        let bin = format!("{}/d.bin", &target[..target.rfind('/').unwrap()]);
        std::fs::write(&bin, "x").unwrap();
        let text = format!("asm(\".INCBIN \\\"{bin}\\\"\");\n");
        // gcc hands it to as, which reads it: an object comes out only if it is there.
        let args = ["-c", "-o", "/dev/null"];
        assert!(gcc(&dir, text.as_bytes(), &args).0);
        std::fs::remove_file(&bin).unwrap();
        assert!(!gcc(&dir, text.as_bytes(), &args).0);
        assert_eq!(scan(text.as_bytes()), [Directive::ReadsFiles]);
        assert_eq!(scan(b"x.Incl\\\nude = 1;"), [Directive::ReadsFiles]);
        assert_eq!(scan(b"return b.IncludeLoc;"), []);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The box scans what a hostile peer sends: no input may make the scan quadratic. Not a
    /// timing assert (the figures are printed: `--nocapture`); a quadratic scan of these
    /// ~3 MB texts would not finish in the life of the test run.
    #[test]
    fn hostile_texts_scan_in_linear_time() {
        let n = 200_000;
        let many = |unit: &[u8], head: &[u8]| {
            let mut t = head.to_vec();
            t.extend(unit.iter().cycle().take(unit.len() * n));
            t
        };
        let texts = [
            many(b"__has_include(<", b"#if "),
            many(b"__has_include(x) ", b"#if "),
            many(b"R\"(", b""),
            many(b"R\"x(", b"R\"(\n??=\n"),
            many(b"1'", b""),
            many(b"(<", b"#if "),
            many(b"#include \"a.h\"\n", b"??=\n"),
            many(b"\\u0069", b"#"),
            many(b"//*\n'1'/*/\n", b"??=\nR\"(\n"),
        ];
        for text in &texts {
            let t = std::time::Instant::now();
            let found = scan(text).len();
            println!(
                "{:?} for {found} directives from {} bytes of {:?}...",
                t.elapsed(),
                text.len(),
                String::from_utf8_lossy(&text[..20])
            );
        }
    }

    #[test]
    fn pasted_pragma_is_no_word_but_its_include_is_computed() {
        let (dir, target) = setup("pasted-pragma");
        let text = fill(
            b"#define CAT(a, b) a##b\n#define STR(x) #x\n#define XSTR(x) STR(x)\n\
              #define H \"{T}\"\n#pragma push_macro(\"H\")\n#undef H\n#define H \"no.h\"\n\
              CAT(_Prag, ma)(XSTR(CAT(pop_, macro)(\"H\")))\n#include H\n",
            &target,
        );
        assert!(gcc_opens(&dir, &text, &[], &target));
        assert!(!mentions_after_splicing(&text, b"_Pragma"));
        assert!(!mentions_after_splicing(&text, b"pop_macro"));
        assert_eq!(
            scan(&text),
            [Directive::Computed {
                line: 9,
                text: "#include H".into()
            }]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
