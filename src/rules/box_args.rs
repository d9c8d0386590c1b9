//! The compiler options a box runs, as typed values: a client's request is parsed here into
//! an allow-listed `BoxArgs`, and the box writes the compiler's argv back out from that, in
//! one canonical spelling per option. Nothing from the wire reaches the compiler unparsed.
//! This is where CVE-2004-2687 (distccd running whatever argv it was sent) is kept shut, with
//! the compiler allow-list in `daemon::job`: a deny-list of bad options would be walked around
//! by a spelling it forgot (`--include=`, `--incl=`, `--plugin=` which gcc reads as
//! `-fplugin=`), so only the forms below pass, each checked by its grammar:
//!
//! | form | what passes |
//! | --- | --- |
//! | stage | exactly one of `-c`, `-S` |
//! | `-O…`, `-g…` | the optimisation and debug levels and formats gcc and clang know (not `-gsplit-dwarf`: it writes a `.dwo`) |
//! | `-f…`, `-m…`, `-W…` | `[no-]NAME[=VALUE]`, NAME of letters, digits, `_`, `-`, `+`; VALUE of those and `.,=:` — so no path, no `@`; minus the families that read, write or run something (`NEVER_F`) |
//! | `-Wa,…` | known assembler options, whole (gas takes a prefix of a long option for it: `--M=` is `--MD=`), and machine options `-m…` of plain characters |
//! | `-D`, `-U` (also `--define-macro`, `--undefine-macro`, joined or separate) | a macro name (with parameters for `-D`), a value without NUL or line end |
//! | `--param` (`=` or separate) | `NAME=VALUE` of gcc's parameter characters |
//! | `-std=` (also `--std=`) | a standard's name |
//! | a few whole switches | `-w`, `-W`, `-ansi`, `-pedantic`, `-pedantic-errors`, `-pipe`, `-pthread`, `-p`, `-pg`, `-nostdinc`, `-nostdinc++`, `-undef`, `-trigraphs`, `-Qunused-arguments` |
//! | prefix maps | `-fdebug-prefix-map=`, `-fmacro-prefix-map=`, `-ffile-prefix-map=` with any `OLD=NEW` whose OLD starts with neither `-` nor `@` (gcc hands it to the assembler as an argument of its own), kept typed so the box can root them in its mirror |
//!
//! Everything else is refused with its name — among them every `@file`, `-o`, `-x`, `-I`
//! and the other search paths (a shipped job's paths travel in its manifest and the box
//! writes them itself), `-M…` (likewise), `-B`, `-wrapper`, `-specs`, `--sysroot`,
//! `-fplugin…`, `-fdump…`, `-fprofile…`, `-save-temps`, `-dumpdir`, `-aux-info`, `-Xclang`,
//! `-mllvm`, and every other double-dash spelling. Every emitted element starts with `-`
//! and is one whole option (values joined), so none can be taken for a file or an `@file`.
//! Pure: bytes in, a verdict out; the client checks its own jobs against the same rules.

use std::fmt;

/// Where the compile stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `-c`: an object.
    Object,
    /// `-S`: assembler text.
    Assembly,
}

/// Which prefix map: all three rewrite text only (file names in debug info and macros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    Debug,
    Macro,
    File,
}

impl MapKind {
    const ALL: [(MapKind, &'static str); 3] = [
        (MapKind::Debug, "-fdebug-prefix-map="),
        (MapKind::Macro, "-fmacro-prefix-map="),
        (MapKind::File, "-ffile-prefix-map="),
    ];

    pub fn flag(self) -> &'static str {
        MapKind::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .expect("listed")
            .1
    }
}

/// One option a box will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opt {
    Stage(Stage),
    /// `-DNAME`, `-DNAME=VALUE`, `-DNAME(ARGS)=VALUE`.
    Define {
        name: String,
        value: Option<String>,
    },
    /// `-UNAME`.
    Undef(String),
    /// `--param=NAME=VALUE`.
    Param {
        name: String,
        value: String,
    },
    /// `-G N` (small data size, MIPS and others).
    SmallData(u32),
    /// A prefix map: `OLD=NEW` as given (the box may root `OLD` in its mirror).
    PrefixMap {
        kind: MapKind,
        map: String,
    },
    /// `-Wa,` and its options.
    Assembler(Vec<String>),
    /// A switch that passed its grammar, in its canonical single-dash spelling (`-O2`,
    /// `-fno-common`, `-mcpu=cortex-a53`, `-Wall`, `-std=gnu11`, `-g`).
    Switch(String),
}

impl Opt {
    /// The option as one argv element.
    pub fn emit(&self) -> String {
        match self {
            Opt::Stage(Stage::Object) => "-c".into(),
            Opt::Stage(Stage::Assembly) => "-S".into(),
            Opt::Define { name, value: None } => format!("-D{name}"),
            Opt::Define {
                name,
                value: Some(v),
            } => format!("-D{name}={v}"),
            Opt::Undef(name) => format!("-U{name}"),
            Opt::Param { name, value } => format!("--param={name}={value}"),
            Opt::SmallData(n) => format!("-G{n}"),
            Opt::PrefixMap { kind, map } => format!("{}{map}", kind.flag()),
            Opt::Assembler(items) => format!("-Wa,{}", items.join(",")),
            Opt::Switch(s) => s.clone(),
        }
    }
}

/// A job's options, every one allow-listed, with exactly one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxArgs {
    pub stage: Stage,
    opts: Vec<Opt>,
}

/// Why a request's options are refused: which argument, and what it would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 1-based position in the request's arguments (0: the list as a whole).
    pub n: usize,
    /// The argument, as sent (lossy for non-UTF-8).
    pub arg: String,
    pub why: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.n == 0 {
            write!(f, "{}", self.why)
        } else {
            write!(
                f,
                "argument {} {:?} {}; rccd runs only the options it knows",
                self.n, self.arg, self.why
            )
        }
    }
}

/// `-f` families that read, write or run something, whatever follows their name (matched
/// after an optional `no-`): plugins, dumps, profiles, coverage, C++ modules (whose mapper
/// runs a program), LTO's internal stages, offloading compilers, files of diagnostics,
/// dependency and record files, and clang's list files and traces.
const NEVER_F: &[&str] = &[
    "plugin",
    "pass-plugin",
    "dump",
    "profile",
    "auto-profile",
    "branch-probabilities",
    "test-coverage",
    "coverage",
    "opt-info",
    "callgraph-info",
    "stack-usage",
    "save-optimization-record",
    "compare-debug",
    "self-test",
    "sanitize-blacklist",
    "sanitize-ignorelist",
    "sanitize-coverage-allowlist",
    "sanitize-coverage-blocklist",
    "sanitize-coverage-whitelist",
    "sanitize-coverage-blacklist",
    "record-gcc-switches",
    "record-command-line",
    "verbose-asm",
    "module",
    "prebuilt-module",
    "implicit-module",
    "crash-diagnostics",
    "time-trace",
    "resolution",
    "ltrans",
    "wpa",
    "lto-incremental",
    "offload",
    "deps-",
    "diagnostics-add-output",
    "diagnostics-set-output",
    "xray",
    "intrinsic-modules",
    "embed-",
    "ada-spec",
    "go-",
    "use-ld",
    "use-linker-plugin",
    // gcc reads `-fhelp`, `-ftarget-help` and `-fversion` as `--help`, `--target-help` and
    // `--version` (its `--NAME` is `-fNAME`): they print instead of compiling.
    "help",
    "target-help",
    "version",
    "print",
];

/// `-fdiagnostics-format=` values that write a file.
const DIAGNOSTIC_FILES: &[&str] = &["sarif-file", "json-file"];

/// `-m` names that hand options to another program (clang's `-mllvm VALUE`).
const NEVER_M: &[&str] = &["llvm"];

/// Whole switches a box takes as they are.
const SWITCHES: &[&str] = &[
    "-w",
    "-W",
    "-ansi",
    "-pedantic",
    "-pedantic-errors",
    "-pipe",
    "-pthread",
    "-p",
    "-pg",
    "-nostdinc",
    "-nostdinc++",
    "-undef",
    "-trigraphs",
    "-Qunused-arguments",
];

/// Long spellings a box takes, and the single-dash option each is.
const LONG_SWITCHES: &[(&str, &str)] = &[
    ("--compile", "-c"),
    ("--assemble", "-S"),
    ("--ansi", "-ansi"),
    ("--pedantic", "-pedantic"),
    ("--pedantic-errors", "-pedantic-errors"),
    ("--pipe", "-pipe"),
    ("--no-warnings", "-w"),
    ("--all-warnings", "-Wall"),
    ("--extra-warnings", "-W"),
    ("--trigraphs", "-trigraphs"),
    ("--no-standard-includes", "-nostdinc"),
];

fn refuse(n: usize, arg: &str, why: impl Into<String>) -> Refused {
    Refused {
        n,
        arg: arg.to_string(),
        why: why.into(),
    }
}

/// The characters of an option's name after `-f`, `-m`, `-W`.
fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+')
}

/// The characters of an option's value: no `/`, so no path; no `@`, no space.
fn value_byte(b: u8) -> bool {
    name_byte(b) || matches!(b, b'.' | b',' | b'=' | b':')
}

fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `[no-]NAME[=VALUE]` after `-f`, `-m` or `-W`: `Some((name without no-, value))`.
fn family(body: &str) -> Option<(&str, Option<&str>)> {
    let (name, value) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.bytes().all(name_byte)
        || value.is_some_and(|v| !v.bytes().all(value_byte))
    {
        return None;
    }
    Some((name.strip_prefix("no-").unwrap_or(name), value))
}

/// Whether `s` is a `--param` setting a box will take: `NAME=VALUE` in the characters gcc's
/// parameter names and values use (a name starts with a letter, so no value can pass for
/// an option).
pub fn is_param_setting(s: &str) -> bool {
    s.split_once('=').is_some_and(|(k, v)| {
        k.starts_with(|c: char| c.is_ascii_alphabetic())
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    })
}

/// `NAME`, `NAME=VALUE` or `NAME(ARGS)=VALUE` of a `-D`.
fn define(text: &str) -> Option<Opt> {
    let (head, value) = match text.split_once('=') {
        Some((h, v)) => (h, Some(v)),
        None => (text, None),
    };
    let name_ok = match head.split_once('(') {
        Some((name, params)) => {
            is_identifier(name)
                && params.strip_suffix(')').is_some_and(|p| {
                    p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_,. ".contains(&b))
                })
        }
        None => is_identifier(head),
    };
    // A line end would end the definition and start a line of the compiler's own.
    let value_ok = !value.is_some_and(|v| v.contains(['\n', '\r', '\0']));
    (name_ok && value_ok).then(|| Opt::Define {
        name: head.to_string(),
        value: value.map(str::to_string),
    })
}

/// The `-g` forms: levels, formats and the debug-info switches gcc and clang know.
fn debug_switch(arg: &str) -> bool {
    const LEVELS: &[&str] = &[
        "",
        "0",
        "1",
        "2",
        "3",
        "gdb",
        "gdb0",
        "gdb1",
        "gdb2",
        "gdb3",
        "dwarf",
        "dwarf-2",
        "dwarf-3",
        "dwarf-4",
        "dwarf-5",
        "dwarf32",
        "dwarf64",
        "btf",
        "ctf",
        "ctf0",
        "ctf1",
        "ctf2",
        "z",
        "z=none",
        "z=zlib",
        "z=zlib-gnu",
        "z=zstd",
    ];
    const SWITCHES: &[&str] = &[
        "strict-dwarf",
        "column-info",
        "record-gcc-switches",
        "statement-frontiers",
        "variable-location-views",
        "inline-points",
        "internal-reset-location-views",
        "as-loc-support",
        "as-locview-support",
        "describe-dies",
        "pubnames",
        "gnu-pubnames",
        "simple-template-names",
    ];
    let Some(body) = arg.strip_prefix("-g") else {
        return false;
    };
    LEVELS.contains(&body) || SWITCHES.contains(&body.strip_prefix("no-").unwrap_or(body))
}

/// The `-O` levels.
fn optimize_switch(arg: &str) -> bool {
    matches!(
        arg,
        "-O" | "-O0" | "-O1" | "-O2" | "-O3" | "-Os" | "-Oz" | "-Og" | "-Ofast"
    )
}

/// The assembler options a box passes on (`-Wa,`), whole: gas takes any unique prefix of a
/// long option for it (`--M=FILE` is `--MD=FILE`, which writes FILE), so only these exact
/// spellings pass, and its machine options (`-march=`, `-mcpu=`, `-mabi=`, `-mno-…`),
/// which read no file.
const ASSEMBLER: &[&str] = &[
    "-g",
    "--gen-debug",
    "-gdwarf-2",
    "-gdwarf-3",
    "-gdwarf-4",
    "-gdwarf-5",
    "--gdwarf-2",
    "--gdwarf-3",
    "--gdwarf-4",
    "--gdwarf-5",
    "--gdwarf-sections",
    "--noexecstack",
    "--execstack",
    "-EL",
    "-EB",
    "--64",
    "--32",
    "--x32",
    "--fatal-warnings",
    "--warn",
    "--no-warn",
    "-W",
    "--nocompress-debug-sections",
    "--compress-debug-sections",
    "--compress-debug-sections=none",
    "--compress-debug-sections=zlib",
    "--compress-debug-sections=zlib-gnu",
    "--compress-debug-sections=zlib-gabi",
    "--compress-debug-sections=zstd",
    "--size-check=error",
    "--size-check=warning",
    "--elf-stt-common=yes",
    "--elf-stt-common=no",
    "--generate-missing-build-notes=yes",
    "--generate-missing-build-notes=no",
    "--no-pad-sections",
    "--reduce-memory-overheads",
    "--sectname-subst",
    "--strip-local-absolute",
];

/// A `-Wa,` list: each item one of `ASSEMBLER`, or a machine option (`-m` and plain
/// characters) that is no prefix of gas's `--mri` (gas reads single-dash long options too).
fn assembler(list: &str) -> Result<Vec<String>, &'static str> {
    let mut items = Vec::new();
    for item in list.split(',') {
        let machine = item.len() > 2
            && item.starts_with("-m")
            && item.bytes().all(value_byte)
            && !"-mri".starts_with(item);
        if !machine && !ASSEMBLER.contains(&item) {
            return Err(
                "is not an assembler option a box passes on (only known ones, whole: \
                        gas reads a prefix of a long option as that option)",
            );
        }
        items.push(item.to_string());
    }
    Ok(items)
}

/// One `-f…` option.
fn f_option(arg: &str) -> Result<Opt, &'static str> {
    for (kind, flag) in MapKind::ALL {
        if let Some(map) = arg.strip_prefix(flag) {
            // gcc hands the assembler `--debug-prefix-map OLD=NEW` as two arguments, and the
            // assembler reads one that starts with `@` as a file of more options (`--MD
            // FILE` writes FILE): OLD may not start like an option or a response file.
            if map.contains('=')
                && !map.contains(['\n', '\r', '\0'])
                && !map.starts_with(['-', '@'])
            {
                return Ok(Opt::PrefixMap {
                    kind,
                    map: map.to_string(),
                });
            }
            return Err("is not a prefix map OLD=NEW whose OLD starts like a path");
        }
    }
    let (name, value) = family(&arg[2..]).ok_or("is not an -f option of plain characters")?;
    if NEVER_F.iter().any(|n| name.starts_with(n)) {
        return Err("reads, writes or runs something besides the compile");
    }
    if name == "diagnostics-format" && value.is_some_and(|v| DIAGNOSTIC_FILES.contains(&v)) {
        return Err("writes the diagnostics to a file");
    }
    Ok(Opt::Switch(arg.to_string()))
}

/// One option that is a single argument (`arg` starts with `-`).
fn single(arg: &str) -> Result<Opt, &'static str> {
    match arg {
        "-c" => return Ok(Opt::Stage(Stage::Object)),
        "-S" => return Ok(Opt::Stage(Stage::Assembly)),
        _ => {}
    }
    if let Some(&(_, short)) = LONG_SWITCHES.iter().find(|(long, _)| *long == arg) {
        return single(short);
    }
    if SWITCHES.contains(&arg) || optimize_switch(arg) || debug_switch(arg) {
        return Ok(Opt::Switch(arg.to_string()));
    }
    if let Some(std) = arg
        .strip_prefix("-std=")
        .or_else(|| arg.strip_prefix("--std="))
    {
        let ok = !std.is_empty()
            && std
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b':'));
        return ok
            .then(|| Opt::Switch(format!("-std={std}")))
            .ok_or("is not a language standard's name");
    }
    if let Some(setting) = arg.strip_prefix("--param=") {
        return param(setting);
    }
    if let Some(d) = arg
        .strip_prefix("-D")
        .or_else(|| arg.strip_prefix("--define-macro="))
    {
        return define(d).ok_or("is not a macro definition NAME[=VALUE] on one line");
    }
    if let Some(u) = arg
        .strip_prefix("-U")
        .or_else(|| arg.strip_prefix("--undefine-macro="))
    {
        return is_identifier(u)
            .then(|| Opt::Undef(u.to_string()))
            .ok_or("is not a macro name");
    }
    if let Some(n) = arg.strip_prefix("-G") {
        return small_data(n);
    }
    if let Some(list) = arg.strip_prefix("-Wa,") {
        return assembler(list).map(Opt::Assembler);
    }
    if arg.starts_with("--") {
        return Err("is a double-dash spelling (gcc reads an unknown `--NAME` as `-fNAME`, and any unique prefix of a long option as that option)");
    }
    if arg.starts_with("-f") {
        return f_option(arg);
    }
    if let Some(body) = arg.strip_prefix("-m") {
        let (name, _) = family(body).ok_or("is not an -m option of plain characters")?;
        if NEVER_M.contains(&name) {
            return Err("passes options to another program");
        }
        return Ok(Opt::Switch(arg.to_string()));
    }
    if let Some(body) = arg.strip_prefix("-W") {
        // `-Wp,` and `-Wl,` have a comma, which no warning's name has.
        family(body).ok_or("is not a warning option of plain characters")?;
        return Ok(Opt::Switch(arg.to_string()));
    }
    Err("is not an option a box runs")
}

fn param(setting: &str) -> Result<Opt, &'static str> {
    match setting.split_once('=') {
        Some((name, value)) if is_param_setting(setting) => Ok(Opt::Param {
            name: name.to_string(),
            value: value.to_string(),
        }),
        _ => Err("is not a --param NAME=VALUE"),
    }
}

fn small_data(n: &str) -> Result<Opt, &'static str> {
    n.parse::<u32>()
        .ok()
        .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
        .map(Opt::SmallData)
        .ok_or("is not a -G size")
}

/// How an option's value is read.
type ReadValue = fn(&str) -> Result<Opt, &'static str>;

/// The options that take their value as the next argument: which, and how to read it.
fn separate_value(arg: &str) -> Option<ReadValue> {
    match arg {
        "-D" | "--define-macro" => Some(|v| define(v).ok_or("is not a macro definition")),
        "-U" | "--undefine-macro" => Some(|v| {
            is_identifier(v)
                .then(|| Opt::Undef(v.to_string()))
                .ok_or("is not a macro name")
        }),
        "--param" => Some(param),
        "-G" => Some(small_data),
        "--std" => Some(|v| single(&format!("-std={v}"))),
        _ => None,
    }
}

impl BoxArgs {
    /// Parses a request's arguments: each must be UTF-8 without NUL, and an option of the
    /// table above; exactly one stage.
    pub fn parse(args: &[Vec<u8>]) -> Result<BoxArgs, Refused> {
        let mut opts = Vec::with_capacity(args.len());
        let mut i = 0;
        while i < args.len() {
            let n = i + 1;
            let arg = text(args, i)?;
            let opt = if let Some(read) = separate_value(arg) {
                let Some(_) = args.get(i + 1) else {
                    return Err(refuse(n, arg, "is missing its value"));
                };
                let value = text(args, i + 1)?;
                i += 1;
                read(value).map_err(|why| refuse(n + 1, value, why))?
            } else if arg.starts_with('@') {
                return Err(refuse(
                    n,
                    arg,
                    "reads more arguments from a file on the box",
                ));
            } else if !arg.starts_with('-') || arg == "-" {
                return Err(refuse(
                    n,
                    arg,
                    "is a file name; rccd adds the input and output itself",
                ));
            } else {
                single(arg).map_err(|why| refuse(n, arg, why))?
            };
            opts.push(opt);
            i += 1;
        }
        let stages: Vec<Stage> = opts
            .iter()
            .filter_map(|o| match o {
                Opt::Stage(s) => Some(*s),
                _ => None,
            })
            .collect();
        match stages[..] {
            [stage] => Ok(BoxArgs { stage, opts }),
            _ => Err(refuse(0, "", "a job must have exactly one of -c or -S")),
        }
    }

    pub fn opts(&self) -> &[Opt] {
        &self.opts
    }

    /// The options as argv elements, in the order given; `root` (a shipped job's mirror)
    /// is put in front of every absolute `OLD` of a prefix map, so that the build's own maps
    /// match the paths the compiler sees in the mirror.
    pub fn argv(&self, root: Option<&str>) -> Vec<String> {
        self.opts
            .iter()
            .map(|o| match (o, root) {
                (Opt::PrefixMap { kind, map }, Some(root)) if map.starts_with('/') => {
                    format!("{}{root}{map}", kind.flag())
                }
                _ => o.emit(),
            })
            .collect()
    }

    /// For a job whose box preprocesses (shipped sources): refuses the options that say
    /// the input is preprocessed already or preprocess it differently from the compile —
    /// with them the `-H` audit and the compile would read different files.
    pub fn check_for_sources(&self) -> Result<(), Refused> {
        for o in &self.opts {
            let Opt::Switch(s) = o else { continue };
            let name = s.strip_prefix("-f").unwrap_or("");
            let name = name.strip_prefix("no-").unwrap_or(name);
            if ["preprocessed", "directives-only", "pch-"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                return Err(refuse(
                    0,
                    s,
                    format!(
                        "{s} changes how the box would preprocess a job that ships its sources; \
                         send such a job preprocessed"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The `-D` definitions: (name, value).
    pub fn defines(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.opts.iter().filter_map(|o| match o {
            Opt::Define { name, value } => Some((name.as_str(), value.as_deref())),
            _ => None,
        })
    }
}

/// Argument `i` as text.
fn text(args: &[Vec<u8>], i: usize) -> Result<&str, Refused> {
    let raw = &args[i];
    let lossy = || String::from_utf8_lossy(raw).into_owned();
    if raw.contains(&0) {
        return Err(refuse(i + 1, &lossy(), "contains a NUL byte"));
    }
    std::str::from_utf8(raw).map_err(|_| refuse(i + 1, &lossy(), "is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> Result<BoxArgs, Refused> {
        let raw: Vec<Vec<u8>> = line.iter().map(|s| s.as_bytes().to_vec()).collect();
        BoxArgs::parse(&raw)
    }

    fn emitted(line: &[&str]) -> Vec<String> {
        parse(line)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .argv(None)
    }

    #[test]
    fn what_real_builds_send_passes_and_comes_out_canonical() {
        // Options of the kernel's arm64 build, Lua's and zstd's, as their clients send them.
        let kernel = [
            "-c",
            "-O2",
            "-Wall",
            "-Wundef",
            "-Werror=strict-prototypes",
            "-Wno-trigraphs",
            "-fno-strict-aliasing",
            "-fno-common",
            "-fshort-wchar",
            "-fno-PIE",
            "-Werror=implicit-function-declaration",
            "-std=gnu11",
            "-mgeneral-regs-only",
            "-DCONFIG_CC_HAS_K_CONSTRAINT=1",
            "-Wno-psabi",
            "-mabi=lp64",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
            "-mbranch-protection=pac-ret+leaf+bti",
            "-Wa,-march=armv8.5-a",
            "-DARM64_ASM_ARCH=\"armv8.5-a\"",
            "-fno-delete-null-pointer-checks",
            "-fno-allow-store-data-races",
            "-fstack-protector-strong",
            "-fno-omit-frame-pointer",
            "-fno-optimize-sibling-calls",
            "-ftrivial-auto-var-init=zero",
            "-fno-stack-clash-protection",
            "-fzero-call-used-regs=used-gpr",
            "-fpatchable-function-entry=4,2",
            "-fmin-function-alignment=8",
            "-fstrict-flex-arrays=3",
            "-fno-strict-overflow",
            "-fstack-check=no",
            "-fconserve-stack",
            "-g",
            "-gdwarf-5",
            "-fmacro-prefix-map=/w/linux/=",
            "-mstack-protector-guard=sysreg",
            "-mstack-protector-guard-reg=sp_el0",
            "-mstack-protector-guard-offset=1336",
            "--param=allow-store-data-races=0",
            "-DKBUILD_MODFILE=\"kernel/fork\"",
            "-DKBUILD_BASENAME=\"fork\"",
            "-DKBUILD_MODNAME=\"fork\"",
            "-D__KBUILD_MODNAME=kmod_fork",
            "-fpreprocessed",
            "-fdirectives-only",
            "-Wa,--noexecstack",
            "-Wa,-gdwarf-5",
            "-Qunused-arguments",
            "-G",
            "0",
            "--param",
            "tsan-distinguish-volatile=1",
        ];
        let out = emitted(&kernel);
        assert!(out.contains(&"-G0".to_string()));
        assert!(out.contains(&"--param=tsan-distinguish-volatile=1".to_string()));
        for a in &out {
            assert!(a.starts_with('-'), "{a}");
        }
        assert_eq!(
            emitted(&[
                "-S",
                "-D",
                "X=1",
                "--define-macro",
                "Y",
                "-U",
                "Z",
                "--std=c99"
            ]),
            ["-S", "-DX=1", "-DY", "-UZ", "-std=c99"]
        );
        assert_eq!(
            emitted(&["--compile", "-DF(a,b)=a+b", "--define-macro=V=\"a b\""]),
            ["-c", "-DF(a,b)=a+b", "-DV=\"a b\""]
        );
    }

    #[test]
    fn prefix_maps_are_rooted_in_the_mirror() {
        let a = parse(&[
            "-c",
            "-fdebug-prefix-map=/w=.",
            "-fmacro-prefix-map=./=",
            "-ffile-prefix-map=/w/src/=",
        ])
        .unwrap();
        assert_eq!(
            a.argv(Some("/j/m")),
            [
                "-c",
                "-fdebug-prefix-map=/j/m/w=.",
                "-fmacro-prefix-map=./=",
                "-ffile-prefix-map=/j/m/w/src/="
            ]
        );
    }

    /// Every spelling of an option that reads, writes or runs something, as gcc's own
    /// option table and its long-option map (gcc.cc `option_map`) spell them.
    const HOSTILE: &[&[&str]] = &[
        &["@args"],
        &["@/etc/passwd"],
        &["-D", "@args"],
        &["-o", "/tmp/x"],
        &["-o/tmp/x"],
        &["--output=/tmp/x"],
        &["--output", "/tmp/x"],
        &["-x", "c"],
        &["-xc"],
        &["--language=c"],
        &["--language", "c"],
        &["-include", "/etc/hostname"],
        &["-include/etc/hostname"],
        &["--include=/etc/hostname"],
        &["--include", "/etc/hostname"],
        &["--incl=/etc/hostname"],
        &["-imacros", "/etc/hostname"],
        &["--imacros=/etc/hostname"],
        &["-I/etc"],
        &["-I", "/etc"],
        &["--include-directory=/etc"],
        &["--include-directory-after=/etc"],
        &["--include-prefix=/etc"],
        &["--include-with-prefix=/etc"],
        &["--include-with-prefix-before=/etc"],
        &["--include-with-prefix-after=/etc"],
        &["-iquote/etc"],
        &["-isystem/etc"],
        &["-idirafter/etc"],
        &["-iprefix/etc"],
        &["-iwithprefix/etc"],
        &["-iwithprefixbefore/etc"],
        &["-imultilib/etc"],
        &["-isysroot/"],
        &["--sysroot=/"],
        &["--sysroot", "/"],
        &["-B/tmp"],
        &["-B", "/tmp"],
        &["--prefix=/tmp"],
        &["--prefix", "/tmp"],
        &["--pref=/tmp"],
        &["-wrapper", "/bin/sh,-c,id"],
        &["-specs=/tmp/x"],
        &["--specs=/tmp/x"],
        &["-fplugin=/tmp/x.so"],
        &["-fplugin=x"],
        &["--plugin=x"],
        &["-fplugin-arg-x-y=z"],
        &["-iplugindir=/tmp"],
        &["-fdump-tree-all"],
        &["-fdump-rtl-all=/tmp/x"],
        &["--dump-tree-all"],
        &["-fprofile-generate=/tmp/x"],
        &["-fprofile-use=/etc"],
        &["-fprofile-use"],
        &["--profile-use"],
        &["-fauto-profile=x"],
        &["-fprofile-arcs"],
        &["-ftest-coverage"],
        &["-coverage"],
        &["--coverage"],
        &["-fbranch-probabilities"],
        &["-aux-info", "/tmp/x"],
        &["-fcallgraph-info"],
        &["-fstack-usage"],
        &["-fdiagnostics-format=sarif-file"],
        &["-fdiagnostics-format=json-file"],
        &["-fdiagnostics-add-output=sarif:file=x"],
        &["-save-temps"],
        &["-save-temps=obj"],
        &["--save-temps"],
        &["-dumpdir", "/tmp/"],
        &["-dumpbase", "x"],
        &["--dumpbase", "x"],
        &["-dumpbase-ext", "x"],
        &["-Wa,-adhln=/tmp/x"],
        &["-Wa,-al"],
        &["-Wa,--listing-lhs-width=2"],
        &["-Wa,@/etc/x"],
        &["-Wa,-I/etc"],
        &["-Wa,-I,/etc"],
        &["-Wa,--MD,/tmp/x"],
        &["-Wa,-o,/tmp/x"],
        &["-Wa,--version"],
        &["-Wa,--M=h.h"],
        &["-Wa,--MD=h.h"],
        &["-Wa,-MD=h.h"],
        &["-Wa,--mri"],
        &["-Wa,-mri"],
        &["-Wa,-mr"],
        &["-Wa,--defsym,x=1"],
        &["-Wa,-Z"],
        &["--for-assembler=@/etc/x"],
        &["--for-assembler=-adhln=/tmp/x"],
        &["-Xassembler", "-adhln=/tmp/x"],
        &["-Wp,-MD,/tmp/x"],
        &["-Xpreprocessor", "-MD"],
        &["-Wl,-o,/tmp/x"],
        &["--for-linker=-o"],
        &["-Xlinker", "-o"],
        &["-MD"],
        &["-MMD"],
        &["-MF/tmp/x"],
        &["-MT", "x"],
        &["--write-dependencies"],
        &["--write-user-dependencies"],
        &["--dependencies"],
        &["-M"],
        &["-H"],
        &["--trace-includes"],
        &["-E"],
        &["--preprocess"],
        &["-v"],
        &["--verbose"],
        &["-###"],
        &["--version"],
        &["--help"],
        &["-print-prog-name=cc1"],
        &["--print-prog-name=cc1"],
        &["-fmodule-mapper=|sh"],
        &["-fmodules-ts"],
        &["-fmodule-file=x"],
        &["-Xclang", "-load"],
        &["-mllvm", "-x"],
        &["-fpass-plugin=x"],
        &["-fcompare-debug"],
        &["-fself-test=/tmp"],
        &["-fsanitize-blacklist=/etc/x"],
        &["-fsanitize-ignorelist=x"],
        &["-ftime-trace"],
        &["-fcrash-diagnostics-dir=/tmp"],
        &["-fresolution=/etc/x"],
        &["-flto-incremental=/tmp"],
        &["-foffload=nvptx-none"],
        &["-fdeps-file=x"],
        &["-frecord-gcc-switches"],
        &["-gsplit-dwarf"],
        &["-fuse-ld=/tmp/ld"],
        &["-fno-plugin"],
        &["-fhelp"],
        &["-ftarget-help"],
        &["-fversion"],
        &["-fprofile-prefix-map=/a=/b"],
        &["-fdebug-prefix-map=@x=y"],
        &["-ffile-prefix-map=@x=y"],
        &["-fmacro-prefix-map=@x=y"],
        &["-fdebug-prefix-map=-o=y"],
        &["-finput-charset=../../x"],
        &["-mcpu=/etc/x"],
        &["-Wframe-larger-than=@x"],
        &["-DX\nY"],
        &["-D", "X=1\n#include \"/etc/passwd\""],
        &["-DX=1\r#include \"/etc/passwd\""],
        &["-D@x"],
        &["-D", "-o"],
        &["-U/x"],
        &["--param", "/etc/passwd"],
        &["--param=--specs=x=1"],
        &["--param"],
        &["-G", "x"],
        &["-G"],
        &["-std=../x"],
        &["x.c"],
        &["/etc/passwd"],
        &["-"],
        &["-cc1"],
        &["-c", "-S"],
        &["-time"],
        &["-Q"],
        &["-static"],
        &["-target", "x"],
        &["--config=x"],
        &["-ccc-gcc-name", "x"],
    ];

    #[test]
    fn every_spelling_of_what_reads_writes_or_runs_is_refused() {
        for bad in HOSTILE {
            let mut line = vec!["-c"];
            line.extend_from_slice(bad);
            assert!(parse(&line).is_err(), "{line:?} passed");
            // Also before the stage, and between good options.
            let mut line = bad.to_vec();
            line.extend_from_slice(&["-O2", "-c"]);
            assert!(parse(&line).is_err(), "{line:?} passed");
        }
        assert!(parse(&[]).is_err());
        assert!(parse(&["-O2"]).is_err());
        let raw = vec![b"-c".to_vec(), b"-D\0x".to_vec()];
        assert!(BoxArgs::parse(&raw).is_err());
        let raw = vec![b"-c".to_vec(), vec![b'-', 0xff]];
        assert!(BoxArgs::parse(&raw).is_err());
    }

    #[test]
    fn a_shipped_job_preprocesses_as_its_compile_does() {
        assert!(parse(&["-c", "-O2"]).unwrap().check_for_sources().is_ok());
        for bad in [
            "-fpreprocessed",
            "-fdirectives-only",
            "-fno-directives-only",
            "-fpch-preprocess",
        ] {
            let a = parse(&["-c", bad]).unwrap();
            assert!(a.check_for_sources().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_refusal_names_the_argument_and_why() {
        let e = parse(&["-c", "-O2", "--include=/etc/hostname"]).unwrap_err();
        assert_eq!(e.n, 3);
        assert_eq!(e.arg, "--include=/etc/hostname");
        let text = e.to_string();
        assert!(
            text.contains("argument 3 \"--include=/etc/hostname\""),
            "{text}"
        );
        assert!(text.contains("double-dash"), "{text}");
        let e = parse(&["-c", "-D", "X\nY"]).unwrap_err();
        assert_eq!((e.n, e.arg.as_str()), (3, "X\nY"));
    }

    #[test]
    fn parsing_what_was_emitted_gives_the_same_args() {
        let a = parse(&[
            "-S",
            "-D",
            "A=1",
            "--param",
            "x=1",
            "-G",
            "8",
            "-Wa,--noexecstack,-mno-x",
            "-fdebug-prefix-map=/a=b",
        ])
        .unwrap();
        let again: Vec<Vec<u8>> = a.argv(None).into_iter().map(String::into_bytes).collect();
        assert_eq!(BoxArgs::parse(&again).unwrap(), a);
    }

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
}
