//! The names a computed include (`#include TRACE_INCLUDE(TRACE_INCLUDE_FILE)`, the kernel's
//! trace events) may take, found without preprocessing: the macros it uses are expanded with
//! every definition any of the job's files gives them (and the compiler's own and `-D` ones),
//! and also left undefined, in every combination. Which definition holds at that line only
//! the preprocessor knows; the name it picks is always one of these. A file shipped because
//! of a combination that never happens costs a cache lookup on the box.
//!
//! What cannot be followed is said, never guessed: the built-in macros whose value depends on
//! where they are (`__FILE__`, `__LINE__`, `__COUNTER__`...), `__VA_OPT__`, a paste that does
//! not make one token, and more combinations than [`MAX_WAYS`].
//!
//! Text in, names out: no I/O. `client::ship` gathers the definitions and looks the names up.

use crate::rules::includes::Form;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Most expansions followed for one directive before giving up.
pub const MAX_WAYS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Number,
    /// A string or character literal, quotes included.
    Literal,
    Punct,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tok {
    kind: Kind,
    text: String,
    /// Whitespace came before it (what `#` and `<...>` names keep, as one space).
    space: bool,
    /// Macros this token came out of, which do not expand it again.
    hide: Vec<String>,
}

/// One `#define`: parameters (`None` for an object-like macro; a variadic one is named
/// `__VA_ARGS__` or as written before `...`) and the replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Def {
    params: Option<Vec<String>>,
    variadic: bool,
    body: Vec<Tok>,
}

/// Every definition seen, by name.
#[derive(Debug, Default)]
pub struct Defs {
    by_name: HashMap<String, Vec<Def>>,
}

/// Built-ins whose value depends on the place of use: a name made of them is unknowable.
const PLACE_DEPENDENT: &[&str] = &[
    "__FILE__",
    "__LINE__",
    "__COUNTER__",
    "__INCLUDE_LEVEL__",
    "__BASE_FILE__",
    "__FILE_NAME__",
    "__DATE__",
    "__TIME__",
    "__TIMESTAMP__",
    "__VA_OPT__",
    "__has_include",
    "__has_include_next",
    "_Pragma",
];

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Preprocessing tokens of one logical line (comments become whitespace).
fn lex(s: &[u8]) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut space = false;
    while i < s.len() {
        let c = s[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c' | b'\n' => {
                space = true;
                i += 1;
                continue;
            }
            b'/' if s.get(i + 1) == Some(&b'*') => {
                let end = s[i + 2..].windows(2).position(|w| w == b"*/");
                i = end.map_or(s.len(), |e| i + 2 + e + 2);
                space = true;
                continue;
            }
            b'/' if s.get(i + 1) == Some(&b'/') => break,
            _ if is_ident_start(c) => {
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
                Kind::Ident
            }
            _ if c.is_ascii_digit()
                || (c == b'.' && s.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                i += 1;
                while i < s.len() {
                    let sign = matches!(s[i], b'+' | b'-')
                        && matches!(s[i - 1], b'e' | b'E' | b'p' | b'P');
                    if !(sign || is_ident(s[i]) || s[i] == b'.') {
                        break;
                    }
                    i += 1;
                }
                Kind::Number
            }
            b'"' | b'\'' => {
                i += 1;
                while i < s.len() && s[i] != c {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
                if i >= s.len() {
                    return None;
                }
                i += 1;
                Kind::Literal
            }
            b'#' if s.get(i + 1) == Some(&b'#') => {
                i += 2;
                Kind::Punct
            }
            b'.' if s.get(i + 1..i + 3) == Some(b"..") => {
                i += 3;
                Kind::Punct
            }
            _ => {
                i += 1;
                Kind::Punct
            }
        };
        out.push(Tok {
            kind,
            text: String::from_utf8(s[start..i].to_vec()).ok()?,
            space,
            hide: Vec::new(),
        });
        space = false;
    }
    Some(out)
}

/// The definition on a `#define` line's remainder (after `define`), with its name.
fn parse_define(rest: &[u8]) -> Option<(String, Def)> {
    let toks = lex(rest)?;
    let name = toks.first().filter(|t| t.kind == Kind::Ident)?.text.clone();
    let mut at = 1;
    let mut params = None;
    let mut variadic = false;
    // Function-like only when `(` touches the name.
    if toks.get(1).is_some_and(|t| t.text == "(" && !t.space) {
        let mut list = Vec::new();
        at = 2;
        loop {
            let t = toks.get(at)?;
            at += 1;
            match (t.kind, t.text.as_str()) {
                (_, ")") if list.is_empty() && !variadic => break,
                (Kind::Punct, "...") => {
                    list.push("__VA_ARGS__".to_string());
                    variadic = true;
                }
                (Kind::Ident, p) => {
                    list.push(p.to_string());
                    if toks.get(at).is_some_and(|t| t.text == "...") {
                        variadic = true;
                        at += 1;
                    }
                }
                _ => return None,
            }
            match toks.get(at)?.text.as_str() {
                ")" => {
                    at += 1;
                    break;
                }
                "," if !variadic => at += 1,
                _ => return None,
            }
        }
        params = Some(list);
    }
    let mut body: Vec<Tok> = toks[at..].to_vec();
    if let Some(first) = body.first_mut() {
        first.space = false;
    }
    Some((
        name,
        Def {
            params,
            variadic,
            body,
        },
    ))
}

/// Where each `#define` line of `text` starts (where `#` starts a line; one inside a block
/// comment is taken too, which only adds names that cannot happen): the macro's name and
/// the offset of what follows `define`.
fn define_starts(text: &[u8]) -> Vec<(&[u8], usize)> {
    let mut out = Vec::new();
    // Found by the word, which is rare, rather than line by line: the kernel's headers
    // are megabytes, and this is most of what a trace-event job costs the master.
    let words: Box<dyn Iterator<Item = usize>> = match std::str::from_utf8(text) {
        Ok(s) => Box::new(s.match_indices("define").map(|(i, _)| i)),
        Err(_) => Box::new(
            text.windows(6)
                .enumerate()
                .filter(|(_, w)| *w == b"define")
                .map(|(i, _)| i),
        ),
    };
    let blank = |b: u8| matches!(b, b' ' | b'\t' | b'\x0b' | b'\x0c');
    for at in words {
        let mut i = at;
        while i > 0 && blank(text[i - 1]) {
            i -= 1;
        }
        if i == 0 || text[i - 1] != b'#' {
            continue;
        }
        i -= 1;
        while i > 0 && blank(text[i - 1]) {
            i -= 1;
        }
        if i > 0 && text[i - 1] != b'\n' {
            continue;
        }
        let offset = at + b"define".len();
        let rest = &text[offset..];
        if !rest.first().is_some_and(|b| blank(*b)) {
            continue;
        }
        let name_at = trim_start(rest);
        let n = name_at.iter().take_while(|b| is_ident(**b)).count();
        out.push((&name_at[..n], offset));
    }
    out
}

/// One text (a file, or `gcc -dM` output) with where each of its `#define`s is, sorted by
/// the name defined. The scan server keeps one per file content, so a trace-event job does
/// not read and search its ~700 headers again; only the few definitions wanted are parsed.
#[derive(Debug, Default)]
pub struct Definitions {
    text: Vec<u8>,
    /// (where the name is, where its definition starts), by name, then in text order.
    starts: Vec<(std::ops::Range<usize>, usize)>,
}

impl Definitions {
    pub fn of(text: Vec<u8>) -> Definitions {
        let base = text.as_ptr() as usize;
        let mut starts: Vec<_> = define_starts(&text)
            .into_iter()
            .map(|(name, at)| {
                let from = name.as_ptr() as usize - base;
                (from..from + name.len(), at)
            })
            .collect();
        starts.sort_by(|a, b| {
            text[a.0.clone()]
                .cmp(&text[b.0.clone()])
                .then(a.1.cmp(&b.1))
        });
        Definitions { text, starts }
    }

    /// The logical lines that define `name`, in text order.
    fn lines<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = Cow<'a, [u8]>> + 'a {
        let key = |s: &(std::ops::Range<usize>, usize)| &self.text[s.0.clone()];
        let from = self.starts.partition_point(|s| key(s) < name);
        self.starts[from..]
            .iter()
            .take_while(move |s| key(s) == name)
            .map(move |s| logical_line(&self.text, s.1))
    }

    /// Bytes held (for the server's bound).
    pub fn size(&self) -> usize {
        self.text.len() + self.starts.len() * std::mem::size_of::<(std::ops::Range<usize>, usize)>()
    }
}

/// The logical line from `offset`: joined at backslash-newlines.
fn logical_line(text: &[u8], offset: usize) -> Cow<'_, [u8]> {
    let mut lines = text[offset..].split(|&b| b == b'\n');
    let mut logical = Cow::Borrowed(lines.next().unwrap_or_default());
    while logical.ends_with(b"\\") || logical.ends_with(b"\\\r") {
        let l = logical.to_mut();
        while l.pop() != Some(b'\\') {}
        match lines.next() {
            Some(next) => l.extend_from_slice(next),
            None => break,
        }
    }
    logical
}

impl Defs {
    /// Adds a definition unless the same one is there.
    fn add(&mut self, name: String, def: Def) {
        let all = self.by_name.entry(name).or_default();
        if !all.contains(&def) {
            all.push(def);
        }
    }

    /// Adds every `#define` in `text` (a whole file, or `gcc -dM` output).
    #[cfg(test)]
    fn add_text(&mut self, text: &[u8]) {
        for (_, at) in define_starts(text) {
            if let Some((name, def)) = parse_define(&logical_line(text, at)) {
                self.add(name, def);
            }
        }
    }

    /// Adds a `-D` option's definition (`NAME`, `NAME=VALUE`, `NAME(ARGS)=VALUE`).
    pub fn add_option(&mut self, d: &str) {
        let line = match d.split_once('=') {
            Some((name, value)) => format!(" {name} {value}"),
            None => format!(" {d} 1"),
        };
        if let Some((name, def)) = parse_define(line.as_bytes()) {
            self.add(name, def);
        }
    }

    /// The definitions `directives` may use: of the names in them, then of the names in
    /// those definitions, and so on, from `files` (each file's `#define`s, and `gcc -dM`
    /// output), in order, and `options` (`-D` values).
    pub fn gather(directives: &[&str], files: &[&Definitions], options: &[&str]) -> Defs {
        let mut d = Defs::default();
        for o in options {
            d.add_option(o);
        }
        let mut wanted: HashSet<String> = directives.iter().flat_map(|t| idents(t)).collect();
        wanted.extend(d.idents_of(&d.by_name.keys().cloned().collect()));
        let mut todo: Vec<String> = wanted.iter().cloned().collect();
        // Bounded: a name is wanted once.
        while let Some(name) = todo.pop() {
            let lines = files.iter().flat_map(|f| f.lines(name.as_bytes()));
            for line in lines {
                let Some((name, def)) = parse_define(&line) else {
                    continue;
                };
                for t in &def.body {
                    if t.kind == Kind::Ident && wanted.insert(t.text.clone()) {
                        todo.push(t.text.clone());
                    }
                }
                d.add(name, def);
            }
        }
        d
    }

    /// Identifiers in the definitions of `names`.
    fn idents_of(&self, names: &HashSet<String>) -> HashSet<String> {
        names
            .iter()
            .filter_map(|n| self.by_name.get(n))
            .flatten()
            .flat_map(|d| d.body.iter())
            .filter(|t| t.kind == Kind::Ident)
            .map(|t| t.text.clone())
            .collect()
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\x0b' | b'\x0c'))
        .count();
    &s[n..]
}

/// The identifiers a computed include's directive line uses (where gathering starts).
fn idents(directive: &str) -> HashSet<String> {
    lex(directive.as_bytes())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.kind == Kind::Ident)
        .map(|t| t.text)
        .collect()
}

/// The tokens after `#include`, `#include_next` or `#import`.
fn operand(directive: &str) -> Result<Vec<Tok>, String> {
    let toks = lex(directive.as_bytes()).ok_or("an unterminated literal")?;
    match toks.get(..2) {
        Some([hash, word])
            if hash.text == "#"
                && matches!(word.text.as_str(), "include" | "include_next" | "import") =>
        {
            Ok(toks[2..].to_vec())
        }
        _ => Err("not an include directive".into()),
    }
}

#[cfg(test)]
fn spell(toks: &[Tok]) -> String {
    let mut s = String::new();
    for (i, t) in toks.iter().enumerate() {
        if i > 0 && t.space {
            s.push(' ');
        }
        s.push_str(&t.text);
    }
    s
}

/// `#x`: the argument's spelling as a string literal.
fn stringify(arg: &[Tok]) -> Tok {
    let mut s = String::from("\"");
    for (i, t) in arg.iter().enumerate() {
        if i > 0 && t.space {
            s.push(' ');
        }
        if t.kind == Kind::Literal {
            for c in t.text.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
        } else {
            s.push_str(&t.text);
        }
    }
    s.push('"');
    Tok {
        kind: Kind::Literal,
        text: s,
        space: false,
        hide: Vec::new(),
    }
}

/// The arguments of a call whose `(` is at `open`: each argument's tokens, and the index
/// after the `)`.
fn arguments(toks: &[Tok], open: usize) -> Option<(Vec<Vec<Tok>>, usize)> {
    let mut args = vec![Vec::new()];
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open + 1) {
        match t.text.as_str() {
            "(" if t.kind == Kind::Punct => depth += 1,
            ")" if t.kind == Kind::Punct && depth == 0 => return Some((args, i + 1)),
            ")" if t.kind == Kind::Punct => depth -= 1,
            "," if t.kind == Kind::Punct && depth == 0 => {
                args.push(Vec::new());
                continue;
            }
            _ => {}
        }
        args.last_mut().expect("starts with one").push(t.clone());
    }
    None
}

struct Expander<'a> {
    defs: &'a Defs,
    ways: usize,
}

impl Expander<'_> {
    /// Counts one more way followed, within [`MAX_WAYS`].
    fn step(&mut self) -> Result<(), String> {
        self.ways += 1;
        if self.ways > MAX_WAYS {
            return Err(format!("more than {MAX_WAYS} ways to expand it"));
        }
        Ok(())
    }

    /// Every full expansion of `toks`.
    fn all(&mut self, toks: Vec<Tok>) -> Result<Vec<Vec<Tok>>, String> {
        let mut done = Vec::new();
        let mut todo = vec![(toks, 0usize)];
        while let Some((toks, from)) = todo.pop() {
            self.step()?;
            let Some(at) = (from..toks.len()).find(|&i| {
                let t = &toks[i];
                t.kind == Kind::Ident
                    && !t.hide.contains(&t.text)
                    && (self.defs.by_name.contains_key(&t.text)
                        || PLACE_DEPENDENT.contains(&t.text.as_str()))
            }) else {
                if !done.contains(&toks) {
                    done.push(toks);
                }
                continue;
            };
            let name = toks[at].text.clone();
            if PLACE_DEPENDENT.contains(&name.as_str()) {
                return Err(format!("it uses {name}"));
            }
            // Undefined where the directive is.
            todo.push((toks.clone(), at + 1));
            for def in &self.defs.by_name[&name] {
                for (replacement, after) in self.apply(&toks, at, def)? {
                    let mut next = toks[..at].to_vec();
                    next.extend(replacement);
                    next.extend_from_slice(&toks[after..]);
                    todo.push((next, at));
                }
            }
        }
        Ok(done)
    }

    /// The replacements of the macro at `at` by `def`, each with where the call ended.
    fn apply(
        &mut self,
        toks: &[Tok],
        at: usize,
        def: &Def,
    ) -> Result<Vec<(Vec<Tok>, usize)>, String> {
        let name = &toks[at];
        let mut hide = name.hide.clone();
        hide.push(name.text.clone());
        let mark = |mut out: Vec<Tok>| {
            for t in &mut out {
                t.hide.extend(hide.iter().cloned());
            }
            if let Some(first) = out.first_mut() {
                first.space = name.space;
            }
            out
        };
        let Some(params) = &def.params else {
            return Ok(vec![(mark(def.body.clone()), at + 1)]);
        };
        if toks.get(at + 1).map(|t| t.text.as_str()) != Some("(") {
            return Ok(Vec::new());
        }
        let Some((mut args, after)) = arguments(toks, at + 1) else {
            return Ok(Vec::new());
        };
        if def.variadic && args.len() > params.len() {
            let rest: Vec<Tok> = args
                .drain(params.len() - 1..)
                .collect::<Vec<_>>()
                .join(&Tok {
                    kind: Kind::Punct,
                    text: ",".into(),
                    space: false,
                    hide: Vec::new(),
                });
            args.push(rest);
        }
        if params.is_empty() && args.len() == 1 && args[0].is_empty() {
            args.clear();
        }
        if def.variadic && args.len() + 1 == params.len() {
            args.push(Vec::new());
        }
        if args.len() != params.len() {
            return Ok(Vec::new());
        }
        // Each argument fully expanded, for the parameters used plainly.
        let mut expanded: Vec<Vec<Vec<Tok>>> = Vec::new();
        for a in &args {
            expanded.push(self.all(a.clone())?);
        }
        let mut out = Vec::new();
        let mut pick = vec![0usize; args.len()];
        loop {
            if let Some(body) = self.substitute(def, params, &args, &expanded, &pick)? {
                out.push((mark(body), after));
            }
            // The next combination of the arguments' expansions.
            let mut k = 0;
            while k < pick.len() {
                pick[k] += 1;
                if pick[k] < expanded[k].len() {
                    break;
                }
                pick[k] = 0;
                k += 1;
            }
            if k == pick.len() {
                break;
            }
            self.step()?;
        }
        Ok(out)
    }

    /// The body with parameters replaced (`#p` stringified, `##` pasted); `None` when a
    /// paste makes no single token (an error in any preprocessor).
    fn substitute(
        &self,
        def: &Def,
        params: &[String],
        args: &[Vec<Tok>],
        expanded: &[Vec<Vec<Tok>>],
        pick: &[usize],
    ) -> Result<Option<Vec<Tok>>, String> {
        let param = |t: &Tok| {
            (t.kind == Kind::Ident)
                .then(|| params.iter().position(|p| *p == t.text))
                .flatten()
        };
        let body = &def.body;
        let mut out: Vec<Tok> = Vec::new();
        // Where the last `##` left its left operand, to paste the next token onto.
        let mut paste_next = false;
        let mut i = 0;
        while i < body.len() {
            let t = &body[i];
            if t.text == "##" && t.kind == Kind::Punct {
                paste_next = true;
                i += 1;
                continue;
            }
            let pasting_right = body.get(i + 1).is_some_and(|n| n.text == "##");
            let mut piece: Vec<Tok> = if t.text == "#" && t.kind == Kind::Punct {
                let Some(p) = body.get(i + 1).and_then(param) else {
                    return Err("`#` not before a parameter".into());
                };
                i += 1;
                let mut s = stringify(&args[p]);
                s.space = t.space;
                vec![s]
            } else if let Some(p) = param(t) {
                let mut a = if paste_next || pasting_right {
                    args[p].clone()
                } else {
                    expanded[p][pick[p]].clone()
                };
                if let Some(first) = a.first_mut() {
                    first.space = t.space;
                }
                a
            } else {
                vec![t.clone()]
            };
            if paste_next {
                paste_next = false;
                // GNU `, ## __VA_ARGS__`: the comma goes when the arguments are empty, and
                // stays, unpasted, when they are not.
                let gnu_comma = def.variadic
                    && param(t) == Some(params.len() - 1)
                    && out.last().is_some_and(|l| l.text == ",");
                if gnu_comma {
                    if piece.is_empty() {
                        out.pop();
                    }
                } else if let (Some(left), false) = (out.last(), piece.is_empty()) {
                    let left = left.clone();
                    out.pop();
                    let joined = format!("{}{}", left.text, piece[0].text);
                    let Some(mut one) = lex(joined.as_bytes()).filter(|v| v.len() == 1) else {
                        return Ok(None);
                    };
                    let mut tok = one.remove(0);
                    tok.space = left.space;
                    tok.hide = left.hide;
                    piece[0] = tok;
                }
            }
            out.append(&mut piece);
            i += 1;
        }
        Ok(Some(out))
    }
}

/// A header name from an expansion: a string literal, or tokens between `<` and `>`.
fn header(toks: &[Tok]) -> Option<(Form, String)> {
    let first = toks.first()?;
    if first.kind == Kind::Literal && first.text.starts_with('"') {
        let name = &first.text[1..first.text.len() - 1];
        return (!name.is_empty() && !name.contains('\\')).then(|| (Form::Quote, name.into()));
    }
    if first.text != "<" {
        return None;
    }
    let close = toks.iter().position(|t| t.text == ">")?;
    let inner = &toks[1..close];
    let mut name = String::new();
    for t in inner {
        if t.space {
            name.push(' ');
        }
        name.push_str(&t.text);
    }
    let name = name.trim_end().to_string();
    (!name.is_empty()).then_some((Form::Angle, name))
}

/// Every header name `directive` (a whole `#include ...` line) may give with `defs`. An
/// expansion that is not a header name is left out: the preprocessor would stop with an
/// error there, on every machine alike.
pub fn candidates(directive: &str, defs: &Defs) -> Result<Vec<(Form, String)>, String> {
    let toks = operand(directive)?;
    let mut x = Expander { defs, ways: 0 };
    let mut out = Vec::new();
    for e in x.all(toks)? {
        if let Some(h) = header(&e) {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    Ok(out)
}

/// What `spell` gives for a directive's operand fully expanded, for messages and tests.
#[cfg(test)]
fn expansions(text: &str, defs: &Defs) -> Vec<String> {
    let mut x = Expander { defs, ways: 0 };
    let mut v: Vec<String> = x
        .all(lex(text.as_bytes()).unwrap())
        .unwrap()
        .iter()
        .map(|e| spell(e))
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(text: &str) -> Defs {
        let mut d = Defs::default();
        d.add_text(text.as_bytes());
        d
    }

    fn names(directive: &str, d: &Defs) -> Vec<String> {
        let mut v: Vec<String> = candidates(directive, d)
            .unwrap()
            .into_iter()
            .map(|(f, n)| match f {
                Form::Quote => format!("\"{n}\""),
                Form::Angle => format!("<{n}>"),
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_kernels_trace_include_gives_every_system_it_could_be() {
        // include/linux/stringify.h, include/trace/define_trace.h and two trace headers.
        let d = defs(
            "#define __stringify_1(x...)\t#x\n\
             #define __stringify(x...)\t__stringify_1(x)\n\
             #ifndef TRACE_INCLUDE_FILE\n\
             # define TRACE_INCLUDE_FILE TRACE_SYSTEM\n\
             #endif\n\
             #ifndef TRACE_INCLUDE_PATH\n\
             # define __TRACE_INCLUDE(system) <trace/events/system.h>\n\
             #else\n\
             # define __TRACE_INCLUDE(system) __stringify(TRACE_INCLUDE_PATH/system.h)\n\
             #endif\n\
             # define TRACE_INCLUDE(system) __TRACE_INCLUDE(system)\n\
             #define TRACE_SYSTEM sched\n\
             #define TRACE_SYSTEM task\n\
             #define TRACE_INCLUDE_PATH ../../fs/xfs /* a driver's */\n\
             #define TRACE_INCLUDE_FILE xfs_trace\n",
        );
        let got = names("#include TRACE_INCLUDE(TRACE_INCLUDE_FILE)", &d);
        for want in [
            "<trace/events/sched.h>",
            "<trace/events/task.h>",
            "<trace/events/xfs_trace.h>",
            "\"../../fs/xfs/sched.h\"",
            "\"../../fs/xfs/xfs_trace.h\"",
            "\"TRACE_INCLUDE_PATH/task.h\"",
        ] {
            assert!(got.contains(&want.to_string()), "{want} not in {got:?}");
        }
        // Nothing else: the names are the combinations, no more.
        assert!(got.len() <= 16, "{got:?}");
    }

    #[test]
    fn expansion_follows_the_rules_of_cpp() {
        let d = defs(
            "#define STR(x) #x\n#define XSTR(x) STR(x)\n#define V 3\n\
             #define CAT(a, b) a ## b\n#define SELF SELF + 1\n\
             #define E(fmt, ...) f(fmt, ## __VA_ARGS__)\n",
        );
        assert_eq!(expansions("STR(V)", &d), ["\"V\"", "STR(3)", "STR(V)"]);
        assert!(expansions("XSTR(V)", &d).contains(&"\"3\"".to_string()));
        assert!(expansions("CAT(V, 2)", &d).contains(&"V2".to_string()));
        // A macro does not expand inside itself.
        assert!(expansions("SELF", &d).contains(&"SELF + 1".to_string()));
        assert!(expansions("E(a)", &d).contains(&"f(a)".to_string()));
        assert!(expansions("E(a, b, c)", &d).contains(&"f(a, b, c)".to_string()));
        assert_eq!(
            stringify(&lex(br#"a  "q\"" 'c'"#).unwrap()).text,
            r#""a \"q\\\"\" 'c'""#
        );
    }

    #[test]
    fn what_depends_on_the_place_or_explodes_is_said() {
        let d = defs("#define HERE __FILE__\n");
        assert!(candidates("#include HERE", &d).is_err());
        let mut many = String::new();
        for i in 0..20 {
            many.push_str(&format!("#define A{i} x\n#define A{i} y\n"));
        }
        let d = defs(&many);
        let line = format!(
            "#include <{}>",
            (0..20)
                .map(|i| format!("A{i}"))
                .collect::<Vec<_>>()
                .join("/")
        );
        assert!(candidates(&line, &d).unwrap_err().contains("ways"));
    }

    #[test]
    fn a_name_nothing_defines_gives_no_file_and_options_count() {
        let d = Defs::default();
        assert!(candidates("#include LUA_USER_H", &d).unwrap().is_empty());
        let mut d = Defs::default();
        d.add_option("LUA_USER_H=\"user.h\"");
        assert_eq!(names("#include LUA_USER_H", &d), ["\"user.h\""]);
        // Only what the directive can reach is gathered, through every level.
        let file: &[u8] = b"#define WANTED <a.h>\n#define OTHER <b.h>\n#define a \\\n  deep/a\n";
        let d = Defs::gather(
            &["#include_next WANTED"],
            &[&Definitions::of(file.to_vec())],
            &["h=H"],
        );
        assert_eq!(
            names("#include_next WANTED", &d),
            ["<a.H>", "<a.h>", "<deep/a.H>", "<deep/a.h>"]
        );
        assert!(!d.by_name.contains_key("OTHER"));
    }
}
