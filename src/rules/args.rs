//! Compiler argv -> a plan for compiling on a box, or the reason to compile here.
//!
//! `rcc gcc ARGS…` may send a compile to a box only when the box can produce exactly what a
//! local `gcc ARGS…` would: one C, C++ or `.S` source, `-c` or `-S`, and nothing that loads
//! code into the compiler, reads or writes files other than the one output, or depends on
//! this machine. Everything else runs here, unchanged, and the reason is what
//! `RCC_VERBOSE=1` shows. When in doubt the answer is "local": a slow build is cheaper than
//! a wrong object.
//!
//! A distributable command becomes two argument lists. `cpp_args` preprocess here: that is
//! the only step that reads headers, so it is also the step that writes dependency files
//! (and must write them exactly as `gcc ARGS…` would, see `dep_file_args`). `remote_args`
//! compile the preprocessed text on the box, stripped of everything that only matters to
//! preprocessing or linking. This module does no I/O: `client::cpp` runs the first list, the
//! box runs the second, and the box checks its arguments again whatever this module decided
//! (`box_args`).
//!
//! Known and accepted: with `-g`, the box records other columns (DW_AT_decl_column, line
//! table) wherever a macro expanded earlier on a line, because it compiles expanded text.
//! Without `-g` the box's object is byte-identical to a local one (tested below with the
//! real gcc and g++, for C, C++, `.S` and a Linux kernel command line).

use std::ffi::OsString;
use std::fmt;

/// Where the compile stops: `-c` (an object) or `-S` (assembler text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Object,
    Assembly,
}

impl Stage {
    fn flag(self) -> &'static str {
        match self {
            Stage::Object => "-c",
            Stage::Assembly => "-S",
        }
    }

    /// The suffix gcc gives the output when there is no `-o`.
    fn suffix(self) -> &'static str {
        match self {
            Stage::Object => ".o",
            Stage::Assembly => ".s",
        }
    }
}

/// The source languages rcc distributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    C,
    Cxx,
    /// Assembler that goes through the preprocessor (`.S`, `.sx`).
    AsmCpp,
    /// Already preprocessed C (`.i`).
    CppOutput,
    /// Already preprocessed C++ (`.ii`).
    CxxCppOutput,
}

impl Lang {
    /// The language gcc infers from a file name. Case matters (`.C` is C++, `.s` is plain
    /// assembler and not ours). A name that is only a suffix (`.c`) has none, as in gcc.
    fn from_name(name: &str) -> Option<Lang> {
        let base = basename(name);
        let dot = base.rfind('.').filter(|&i| i > 0)?;
        match &base[dot + 1..] {
            "c" => Some(Lang::C),
            "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" => Some(Lang::Cxx),
            "S" | "sx" => Some(Lang::AsmCpp),
            "i" => Some(Lang::CppOutput),
            "ii" => Some(Lang::CxxCppOutput),
            _ => None,
        }
    }

    /// The language named by `-x`: `Ok(None)` for `-x none` (back to suffixes), `Err` for a
    /// language rcc does not distribute.
    fn from_x(name: &str) -> Result<Option<Lang>, ()> {
        match name {
            "none" => Ok(None),
            "c" => Ok(Some(Lang::C)),
            "c++" => Ok(Some(Lang::Cxx)),
            "assembler-with-cpp" => Ok(Some(Lang::AsmCpp)),
            "cpp-output" => Ok(Some(Lang::CppOutput)),
            "c++-cpp-output" => Ok(Some(Lang::CxxCppOutput)),
            _ => Err(()),
        }
    }

    /// The suffix of the preprocessed text the box compiles: gcc picks the language from it,
    /// which is why `remote_args` never carry `-x`.
    pub fn remote_input_ext(self) -> &'static str {
        match self {
            Lang::C | Lang::CppOutput => "i",
            Lang::Cxx | Lang::CxxCppOutput => "ii",
            Lang::AsmCpp => "s",
        }
    }

    fn is_preprocessed(self) -> bool {
        matches!(self, Lang::CppOutput | Lang::CxxCppOutput)
    }
}

/// How to compile one command on a box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The one source file, as given on the command line.
    pub source: OsString,
    /// Where a local gcc would write: the `-o` value, else the source's basename with its
    /// suffix replaced by `.o` or `.s`, in the current directory.
    pub output: OsString,
    pub lang: Lang,
    pub stage: Stage,
    /// Arguments (without the program name) for the local preprocessing run, which writes
    /// the text to stdout and any dependency file where `gcc ARGS…` would. `None` when the
    /// source is already preprocessed.
    pub cpp_args: Option<Vec<OsString>>,
    /// Arguments for the box, without the input and without `-o` (the box adds
    /// `input.<remote_input_ext> -o output.<o|s>`). Contains `-c` or `-S` exactly once.
    pub remote_args: Vec<OsString>,
    /// `i`, `ii` or `s`: the suffix the box gives the preprocessed text.
    pub remote_input_ext: &'static str,
}

/// Why an option keeps a compile local. Shown after the option, e.g.
/// `-march=native depends on the machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// `-E`, `-M`, `-v`, `--help`, `-print-*`, `-fsyntax-only`…
    NotACompile,
    /// `-fplugin`, `-specs`, `-B`, `-wrapper`…
    LoadsCode,
    /// `-march=native` and friends: the box would pick its own CPU.
    MachineDependent,
    /// `-save-temps`, `-gsplit-dwarf`, `-fdump-*`…: the extra files would stay on the box.
    WritesFiles,
    /// `-fprofile-*`, `--coverage`…: profile data lives here.
    Profile,
    /// `-frecord-gcc-switches`, `-fverbose-asm`: the output would record the box's command
    /// line or miss the source text.
    RecordsCommand,
    /// `-P`, `-C`, `-MG`, `-fdirectives-only`…: the `-E` run would write text that compiles
    /// differently from what `gcc -c` compiles internally.
    ChangesPreprocessing,
    /// `-d<letters>`: compiler debugging dumps, or a change to what `-E` writes.
    DebugDumps,
    /// `-g3`: macro definitions in the debug info, which the box would record from the
    /// preprocessed text, without the include structure.
    DebugMacros,
    /// `-Xpreprocessor`, `-Xassembler`, a `-Wp,` rcc does not know: options rcc cannot check.
    PassesThrough,
    /// `-Wa,` with listings, dependency files, includes or an output.
    AssemblerFiles,
    /// An option rcc does not know that may take a value or change what gcc does.
    Unrecognized,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::NotACompile => "does not compile one source into one output",
            Why::LoadsCode => "loads code into the compiler",
            Why::MachineDependent => "depends on the machine",
            Why::WritesFiles => "writes extra files, which would be left on the box",
            Why::Profile => "reads or writes profile or coverage data on this machine",
            Why::RecordsCommand => "records the command line or source text in the output",
            Why::ChangesPreprocessing => "changes the preprocessed text rcc would send",
            Why::DebugDumps => "asks for compiler dumps or changes what the preprocessor writes",
            Why::DebugMacros => "records macros, which the box would see only as expanded text",
            Why::PassesThrough => "passes options rcc cannot check to a sub-program",
            Why::AssemblerFiles => "makes the assembler read or write files",
            Why::Unrecognized => "is not an option rcc knows, so it may not be safe to send",
        })
    }
}

/// Why a command runs locally, as the user sees it under `RCC_VERBOSE=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalReason {
    /// No `-c` or `-S`: gcc links (or only preprocesses a `.S` with `-S`).
    Links,
    /// Both `-c` and `-S` (gcc stops at `-S`; rare enough not to reproduce).
    BothStages,
    /// `-S` on a `.S` source: gcc only preprocesses it, to stdout.
    AssemblyOfAsm,
    NoSource,
    /// More than one source file.
    Sources(usize),
    /// The source is `-` (stdin).
    Stdin,
    /// `-o -`.
    StdoutOutput,
    /// More than one `-o`.
    Outputs(usize),
    /// An input that is not a source rcc distributes (`.s`, `.o`, `.a`, `.h`, `.m`…).
    UnknownInput(String),
    /// `-x LANG` for a language rcc does not distribute.
    Language(String),
    /// `@file`: more arguments from a file.
    ResponseFile(String),
    /// An argument that is not UTF-8 (shown lossily); boxes take UTF-8 only.
    NotUtf8(String),
    /// An argument containing a NUL byte.
    Nul(String),
    /// An option that needs a value came last.
    MissingValue(String),
    /// `-Wp,-MD,FILE` together with `-MD`, `-MMD` or `-MF`: which file gcc writes then
    /// depends on the order in which the driver hands them to cc1.
    DepFiles,
    /// The remote command breaks a box's argument rules (`box_rules`): a box would refuse it.
    BoxRefuses(String),
    /// An option that keeps the compile here.
    Flag {
        arg: String,
        why: Why,
    },
}

impl fmt::Display for LocalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalReason::Links => f.write_str("links (no -c or -S)"),
            LocalReason::BothStages => f.write_str("both -c and -S given"),
            LocalReason::AssemblyOfAsm => {
                f.write_str("-S on an assembler source only preprocesses it")
            }
            LocalReason::NoSource => f.write_str("no source file"),
            LocalReason::Sources(n) => write!(f, "{n} source files"),
            LocalReason::Stdin => f.write_str("reads the source from stdin (-)"),
            LocalReason::StdoutOutput => f.write_str("writes the output to stdout (-o -)"),
            LocalReason::Outputs(n) => write!(f, "{n} -o options"),
            LocalReason::UnknownInput(name) => write!(
                f,
                "\"{name}\" is not a source rcc distributes (C, C++, .S, .i, .ii)"
            ),
            LocalReason::Language(lang) => write!(
                f,
                "-x {lang}: rcc distributes only c, c++, assembler-with-cpp, cpp-output and \
                 c++-cpp-output"
            ),
            LocalReason::ResponseFile(arg) => {
                write!(f, "{arg} reads more arguments from a file")
            }
            LocalReason::NotUtf8(arg) => {
                write!(f, "argument \"{arg}\" is not UTF-8, which boxes require")
            }
            LocalReason::Nul(arg) => write!(f, "argument {arg:?} contains a NUL byte"),
            LocalReason::MissingValue(arg) => write!(f, "{arg} is missing its value"),
            LocalReason::BoxRefuses(why) => write!(f, "a box would refuse it: {why}"),
            LocalReason::DepFiles => f.write_str(
                "-Wp,-MD (or -MMD) together with -MD, -MMD or -MF: which dependency file gcc \
                 writes depends on option order",
            ),
            LocalReason::Flag { arg, why } => write!(f, "{arg} {why}"),
        }
    }
}

/// How an option is spelled.
#[derive(Clone, Copy)]
enum Form {
    /// The whole argument is the name.
    Exact,
    /// The argument starts with the name: a family (`-fdump-`) or a joined value.
    Prefix,
    /// A value, joined (`-Idir`) or in the next argument (`-I dir`).
    Value,
    /// A value always in the next argument (`-Xlinker arg`).
    Separate,
}

/// What an option means for the two argument lists.
#[derive(Clone, Copy)]
pub(crate) enum Class {
    Stage(Stage),
    Output,
    Language,
    /// Preprocessing only: kept for the local `-E`, not sent to the box.
    Cpp,
    /// Dependency files: the local `-E` writes them (see [`dep_file_args`]).
    Dep(Dep),
    /// Linking only: harmless to `-E`, of no use to the box.
    Link,
    /// Matters to the compile: both lists.
    Both,
    /// `-Wp,…`: checked part by part.
    WpList,
    /// `-Wa,…`: checked part by part, then both lists.
    WaList,
    Local(Why),
}

#[derive(Clone, Copy)]
pub(crate) enum Dep {
    /// `-MD`, `-MMD`.
    Write,
    /// `-MF`.
    File,
    /// `-MT`, `-MQ`.
    Target,
    /// `-MP`.
    Other,
}

struct Rule {
    name: &'static str,
    form: Form,
    class: Class,
}

const fn exact(name: &'static str, class: Class) -> Rule {
    Rule {
        name,
        form: Form::Exact,
        class,
    }
}
const fn prefix(name: &'static str, class: Class) -> Rule {
    Rule {
        name,
        form: Form::Prefix,
        class,
    }
}
const fn value(name: &'static str, class: Class) -> Rule {
    Rule {
        name,
        form: Form::Value,
        class,
    }
}
const fn separate(name: &'static str, class: Class) -> Rule {
    Rule {
        name,
        form: Form::Separate,
        class,
    }
}

const NOT_A_COMPILE: Class = Class::Local(Why::NotACompile);
const LOADS_CODE: Class = Class::Local(Why::LoadsCode);
const WRITES_FILES: Class = Class::Local(Why::WritesFiles);
const PROFILE: Class = Class::Local(Why::Profile);
const CHANGES_CPP: Class = Class::Local(Why::ChangesPreprocessing);
const UNRECOGNIZED: Class = Class::Local(Why::Unrecognized);
const DEBUG_MACROS: Class = Class::Local(Why::DebugMacros);

/// gcc's options, as far as they matter here. The first matching rule wins, so longer
/// names come before the prefixes they start with (`-undef` before `-u`). An option that
/// matches nothing goes to both lists (`-O2`, `-Wall`, `-fPIC`, `-mcpu=cortex-a53`…),
/// except unknown `--long` options, which gcc rewrites in ways rcc does not follow.
const RULES: &[Rule] = &[
    exact("-c", Class::Stage(Stage::Object)),
    exact("-S", Class::Stage(Stage::Assembly)),
    value("-o", Class::Output),
    value("-x", Class::Language),
    // Not a compile at all.
    exact("-E", NOT_A_COMPILE),
    exact("-v", NOT_A_COMPILE),
    exact("-###", NOT_A_COMPILE),
    exact("--version", NOT_A_COMPILE),
    exact("--target-help", NOT_A_COMPILE),
    prefix("--help", NOT_A_COMPILE),
    prefix("-print", NOT_A_COMPILE),
    exact("-fsyntax-only", NOT_A_COMPILE),
    // Dependency files. -M and -MM imply -E; -MG makes -E drop its output.
    exact("-MD", Class::Dep(Dep::Write)),
    exact("-MMD", Class::Dep(Dep::Write)),
    exact("-MP", Class::Dep(Dep::Other)),
    value("-MF", Class::Dep(Dep::File)),
    value("-MT", Class::Dep(Dep::Target)),
    value("-MQ", Class::Dep(Dep::Target)),
    exact("-M", NOT_A_COMPILE),
    exact("-MM", NOT_A_COMPILE),
    exact("-MG", CHANGES_CPP),
    prefix("-M", UNRECOGNIZED),
    // Preprocessing only.
    value("-I", Class::Cpp),
    value("-D", Class::Cpp),
    value("-U", Class::Cpp),
    value("-A", Class::Cpp),
    value("-include", Class::Cpp),
    value("-imacros", Class::Cpp),
    value("-isystem", Class::Cpp),
    value("-isysroot", Class::Cpp),
    value("-iquote", Class::Cpp),
    value("-idirafter", Class::Cpp),
    value("-iprefix", Class::Cpp),
    value("-iwithprefixbefore", Class::Cpp),
    value("-iwithprefix", Class::Cpp),
    value("-imultilib", Class::Cpp),
    value("-imultiarch", Class::Cpp),
    prefix("-iplugindir", LOADS_CODE),
    prefix("-i", UNRECOGNIZED),
    prefix("--sysroot=", Class::Cpp),
    separate("--sysroot", Class::Cpp),
    exact("-nostdinc", Class::Cpp),
    exact("-nostdinc++", Class::Cpp),
    exact("-undef", Class::Cpp),
    exact("-trigraphs", Class::Cpp),
    exact("-traditional-cpp", Class::Cpp),
    exact("-remap", Class::Cpp),
    exact("-H", Class::Cpp),
    // The box reads the text already converted to UTF-8; converting again would be wrong.
    prefix("-finput-charset=", Class::Cpp),
    exact("-P", CHANGES_CPP),
    exact("-C", CHANGES_CPP),
    exact("-CC", CHANGES_CPP),
    exact("-fdirectives-only", CHANGES_CPP),
    exact("-fpreprocessed", CHANGES_CPP),
    exact("-fpch-preprocess", CHANGES_CPP),
    prefix("-Wp,", Class::WpList),
    prefix("-Xpreprocessor", Class::Local(Why::PassesThrough)),
    // Code from elsewhere.
    prefix("-fplugin", LOADS_CODE),
    prefix("-specs", LOADS_CODE),
    prefix("--specs", LOADS_CODE),
    prefix("-B", LOADS_CODE),
    prefix("-wrapper", LOADS_CODE),
    // Also `-mcpu=native+crypto` and the like.
    prefix("-march=native", Class::Local(Why::MachineDependent)),
    prefix("-mcpu=native", Class::Local(Why::MachineDependent)),
    prefix("-mtune=native", Class::Local(Why::MachineDependent)),
    // Extra files, or data from this machine.
    prefix("-save-temps", WRITES_FILES),
    exact("-gsplit-dwarf", WRITES_FILES),
    prefix("-fstack-usage", WRITES_FILES),
    prefix("-fdump-", WRITES_FILES),
    prefix("-fopt-info", WRITES_FILES),
    prefix("-fcallgraph-info", WRITES_FILES),
    prefix("-fsave-optimization-record", WRITES_FILES),
    prefix("-fcompare-debug", WRITES_FILES),
    exact("-fdiagnostics-format=json-file", WRITES_FILES),
    exact("-fdiagnostics-format=sarif-file", WRITES_FILES),
    prefix("-fdiagnostics-add-output", WRITES_FILES),
    prefix("-fdiagnostics-set-output", WRITES_FILES),
    prefix("-fdeps-", WRITES_FILES),
    // C++ modules read and write a module cache (gcm.cache) next to the build.
    exact("-fmodules-ts", WRITES_FILES),
    prefix("-fmodule-", WRITES_FILES),
    prefix("-aux-info", WRITES_FILES),
    prefix("-dumpbase", WRITES_FILES),
    prefix("-dumpdir", WRITES_FILES),
    prefix("-time=", WRITES_FILES),
    prefix("-dump", NOT_A_COMPILE),
    prefix("-d", Class::Local(Why::DebugDumps)),
    prefix("-fprofile-", PROFILE),
    prefix("-fauto-profile", PROFILE),
    exact("-fbranch-probabilities", PROFILE),
    exact("-ftest-coverage", PROFILE),
    exact("--coverage", PROFILE),
    exact("-frecord-gcc-switches", Class::Local(Why::RecordsCommand)),
    // The comments it adds quote the source, which the box does not have.
    exact("-fverbose-asm", Class::Local(Why::RecordsCommand)),
    // Macro debug info: compiling `-E` text records other include structure and lines.
    exact("-g3", DEBUG_MACROS),
    exact("-ggdb3", DEBUG_MACROS),
    exact("-gstabs3", DEBUG_MACROS),
    exact("-gstabs+3", DEBUG_MACROS),
    exact("-gxcoff3", DEBUG_MACROS),
    exact("-gxcoff+3", DEBUG_MACROS),
    exact("-gvms3", DEBUG_MACROS),
    prefix("-Wa,", Class::WaList),
    prefix("-Xassembler", Class::Local(Why::PassesThrough)),
    prefix("-Xclang", Class::Local(Why::PassesThrough)),
    // Linking only.
    separate("-Xlinker", Class::Link),
    prefix("-X", UNRECOGNIZED),
    prefix("-Wl,", Class::Link),
    prefix("-fuse-ld=", Class::Link),
    value("-L", Class::Link),
    value("-l", Class::Link),
    value("-T", Class::Link),
    value("-u", Class::Link),
    value("-z", Class::Link),
    value("-e", Class::Link),
    exact("-static", Class::Link),
    exact("-static-pie", Class::Link),
    prefix("-static-lib", Class::Link),
    exact("-shared", Class::Link),
    exact("-shared-libgcc", Class::Link),
    exact("-s", Class::Link),
    exact("-rdynamic", Class::Link),
    exact("-symbolic", Class::Link),
    exact("-pie", Class::Link),
    exact("-no-pie", Class::Link),
    exact("-nostdlib", Class::Link),
    exact("-nodefaultlibs", Class::Link),
    exact("-nostartfiles", Class::Link),
    exact("-nolibc", Class::Link),
    // Compile options with a separate value.
    separate("--param", Class::Both),
    prefix("--param=", Class::Both),
    value("-G", Class::Both),
    prefix("--", UNRECOGNIZED),
];

/// The rule for the option at `args[i]`, its value, and how many arguments it used.
pub(crate) fn lookup<'a>(
    args: &[&'a str],
    i: usize,
) -> Result<(Class, Option<&'a str>, usize), LocalReason> {
    let arg = args[i];
    for rule in RULES {
        let hit = match rule.form {
            Form::Exact => (arg == rule.name).then_some((None, 1)),
            Form::Prefix => arg.starts_with(rule.name).then_some((None, 1)),
            Form::Value | Form::Separate if arg == rule.name => match args.get(i + 1) {
                Some(v) => Some((Some(*v), 2)),
                None => return Err(LocalReason::MissingValue(arg.to_string())),
            },
            Form::Value => arg.strip_prefix(rule.name).map(|v| (Some(v), 1)),
            Form::Separate => None,
        };
        if let Some((value, used)) = hit {
            return Ok((rule.class, value, used));
        }
    }
    Ok((Class::Both, None, 1))
}

/// Checks a `-Wp,` list. Only forms whose effect is known pass: `-MD,FILE`, `-MMD,FILE`
/// (the Linux kernel's), `-D…`, `-U…`, `-I…`. Returns whether it writes a dependency file.
fn wp_list(list: &str) -> Option<bool> {
    let mut parts = list.split(',');
    let mut writes_deps = false;
    while let Some(part) = parts.next() {
        match part {
            "-MD" | "-MMD" => {
                parts.next().filter(|file| !file.is_empty())?;
                writes_deps = true;
            }
            _ if part.len() > 2 && ["-D", "-U", "-I"].iter().any(|p| part.starts_with(p)) => {}
            _ => return None,
        }
    }
    Some(writes_deps)
}

/// Whether a `-Wa,` list makes the assembler read or write files: listings (`-a…`,
/// `--listing…`), dependency files, includes, response files, another output. The same
/// parts the box refuses.
fn wa_touches_files(list: &str) -> bool {
    const BAD: &[&str] = &["-a", "--MD", "-MD", "@", "-o", "-I", "--listing"];
    list.split(',')
        .any(|part| BAD.iter().any(|b| part.starts_with(b)))
}

/// `-Wa,--version`, `-Wa,-v`, `-Wa,--help`: the assembler answers and writes nothing.
fn wa_does_not_assemble(list: &str) -> bool {
    list.split(',')
        .any(|part| matches!(part, "--version" | "-v" | "--help" | "-version"))
}

/// What the warning options make of `-Wimplicit-fallthrough`. Its levels 1 to 4 accept a
/// `/* fall through */` comment as the marker; full `-E` drops comments (and `-C`, which
/// keeps them, breaks `/* x */ #define` lines), so the mode of preprocessing follows it.
#[derive(Default)]
struct Fallthrough {
    /// `-Wextra` (or its old name `-W`): level 3 unless set explicitly.
    extra: bool,
    /// Set explicitly: 0 for off.
    level: Option<u8>,
    /// `-Werror`.
    werror: bool,
    /// `-Werror=implicit-fallthrough` (true) or `-Wno-error=…` (false).
    error: Option<bool>,
    /// `-w`: no warnings at all.
    silenced: bool,
}

impl Fallthrough {
    fn note(&mut self, arg: &str) {
        match arg {
            "-Wextra" | "-W" => self.extra = true,
            "-Wno-extra" => self.extra = false,
            "-Wimplicit-fallthrough" => self.level = Some(3),
            "-Wno-implicit-fallthrough" => self.level = Some(0),
            "-Werror" => self.werror = true,
            "-Wno-error" => self.werror = false,
            // It also turns the warning on, even after -Wno-implicit-fallthrough.
            "-Werror=implicit-fallthrough" => {
                self.error = Some(true);
                self.level = Some(self.level.filter(|&n| n > 0).unwrap_or(3));
            }
            "-Wno-error=implicit-fallthrough" => self.error = Some(false),
            "-w" => self.silenced = true,
            _ => {
                if let Some(n) = arg.strip_prefix("-Wimplicit-fallthrough=") {
                    // gcc rejects other values, so whatever this is fails here too.
                    self.level = n.parse().ok();
                }
            }
        }
    }

    /// Whether gcc reads fall-through comments here: full `-E` drops them, so the box
    /// would warn where gcc does not.
    fn reads_comments(&self) -> bool {
        let level = self.level.unwrap_or(if self.extra { 3 } else { 0 });
        !self.silenced && (1..=4).contains(&level)
    }
}

/// Whether the last word on debug info turns it on (`-g`, `-g2`, `-ggdb`, `-gdwarf-4`, ...)
/// or off (`-g0`, `-ggdb0`). Other `-g` options (`-gz`, `-gno-…`, `-gcolumn-info`) only
/// shape debug info that something else turned on.
fn debug_switch(arg: &str) -> Option<bool> {
    let digits = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    let rest = arg.strip_prefix("-g")?;
    if rest.is_empty() {
        return Some(true);
    }
    if digits(rest) {
        return Some(rest != "0");
    }
    for kind in ["gdb", "dwarf", "stabs+", "stabs", "xcoff+", "xcoff", "vms"] {
        if let Some(n) = rest.strip_prefix(kind) {
            let n = n.strip_prefix('-').unwrap_or(n);
            return match (kind, n) {
                (_, "") => Some(true),
                // -gdwarf-4 names a DWARF version and turns debug info on.
                ("dwarf", n) if digits(n) => Some(true),
                (_, n) if digits(n) => Some(n != "0"),
                _ => None,
            };
        }
    }
    matches!(rest, "btf" | "ctf").then_some(true)
}

/// The dependency-file options seen.
#[derive(Default)]
struct Deps {
    /// `-MD` or `-MMD` given to the driver.
    driver: bool,
    /// `-MF`.
    file: bool,
    /// `-MT` or `-MQ`.
    target: bool,
    /// `-Wp,-MD,FILE` or `-Wp,-MMD,FILE`, which go to cc1 untouched.
    wp: bool,
}

/// What the local `-E` run needs, beyond the user's own options, to write the dependency
/// file `gcc ARGS…` would write: same path, same target, same bytes.
///
/// Found with gcc 12 (the tests below check every case against the real gcc and g++):
/// - `-c`/`-S` with `-MD`/`-MMD` and `-o OUT`: the driver writes `OUT` with its suffix
///   replaced by `.d` (the last `.` after the last `/`, even a leading one: `obj/foo.x.y` ->
///   `obj/foo.x.d`, `obj/foo` -> `obj/foo.d`, `obj/.o` -> `obj/.d`), and passes `-MQ OUT`
///   (quoted: `a$b c.o` becomes `a$$b\ c.o`), also for `-S` (`-o obj/foo.s` -> target
///   `obj/foo.s`).
/// - Without `-o`: `basename(source minus suffix).d` in the current directory, target from
///   cc1: the source's basename with its suffix replaced by `.o`, even for `-S`.
/// - A user `-MF` replaces the file name; a user `-MT` or `-MQ` replaces the driver's
///   `-MQ` (all of them, in order, are the target). `-MP`: same in both modes.
/// - `-E` without `-o` writes the file and target of the "without `-o`" case. So when the
///   user gave `-o`, the `-E` run gets `-MF OUT.d` (unless the user gave `-MF`) and
///   `-MQ OUT` (unless the user gave `-MT`/`-MQ`); without `-o` it needs nothing.
/// - `-Wp,-MD,FILE` / `-Wp,-MMD,FILE` (the Linux kernel) go straight to cc1: the file is
///   FILE and the target is cc1's default (`foo.o`, without `-o`'s directory) in both
///   modes, so it needs nothing. Mixed with a driver `-MD`/`-MMD`/`-MF`, the file depends
///   on option order in the driver's cc1 command: kept local.
/// - `-MD -MMD` in either order writes the `-MMD` kind; `-E` does the same.
/// - Already preprocessed sources (`.i`, `.ii`) get no dependency file from `-MD`.
/// - `DEPENDENCIES_OUTPUT=file` in the environment: cc1 reads it in both modes and writes
///   the same file and target (`foo.o`), so the environment needs nothing either.
/// - Not reproduced: when a precompiled header (`h.h.gch`) is used, `gcc -c` leaves the
///   header out of the list and `-E` (which reads `h.h`) puts it in. The list is longer,
///   never wrong for make.
fn dep_file_args(deps: &Deps, output: Option<&str>) -> Result<Vec<String>, LocalReason> {
    if deps.wp && (deps.driver || deps.file) {
        return Err(LocalReason::DepFiles);
    }
    let mut extra = Vec::new();
    if let (true, Some(out)) = (deps.driver, output) {
        if !deps.file {
            extra.push("-MF".to_string());
            extra.push(dep_file_for(out));
        }
        if !deps.target {
            extra.push("-MQ".to_string());
            extra.push(out.to_string());
        }
    }
    Ok(extra)
}

/// gcc's `%.d` on the `-o` value: the suffix after the last `.` of the last path
/// component (wherever it is) becomes `.d`; with no `.`, `.d` is appended.
pub(crate) fn dep_file_for(output: &str) -> String {
    let start = output.rfind('/').map_or(0, |i| i + 1);
    let stem = match output[start..].rfind('.') {
        Some(dot) => &output[..start + dot],
        None => output,
    };
    format!("{stem}.d")
}

pub(crate) fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// gcc's output name without `-o`: the basename minus its suffix (a leading `.` is not a
/// suffix), plus `.o` or `.s`, in the current directory.
pub(crate) fn default_output(source: &str, stage: Stage) -> String {
    let base = basename(source);
    let stem = match base.rfind('.') {
        Some(dot) if dot > 0 => &base[..dot],
        _ => base,
    };
    format!("{stem}{}", stage.suffix())
}

/// The arguments as text. Boxes take UTF-8 only; NUL cannot reach a compiler intact; and
/// `@file` anywhere (even as an option's value) makes gcc read more arguments from a file.
pub(crate) fn texts(args: &[OsString]) -> Result<Vec<&str>, LocalReason> {
    args.iter()
        .map(|a| {
            let s = a
                .to_str()
                .ok_or_else(|| LocalReason::NotUtf8(a.to_string_lossy().into_owned()))?;
            if s.contains('\0') {
                return Err(LocalReason::Nul(s.to_string()));
            }
            if s.starts_with('@') {
                return Err(LocalReason::ResponseFile(s.to_string()));
            }
            Ok(s)
        })
        .collect()
}

/// Decides whether `gcc ARGS…` (`args` without the program name) may be compiled on a box.
pub fn classify(args: &[OsString]) -> Result<Plan, LocalReason> {
    let args = texts(args)?;
    let mut seen = Seen::walk(&args)?;
    let one = seen.one_compile()?;
    let extra = dep_file_args(&seen.deps, one.output)?;
    // Directives only: the master runs `#include`/`#if` and the box expands the macros.
    // Cheaper here (no macro expansion, the master's scarce CPU), and the object and the
    // diagnostics are exactly gcc's: comments (fall-through markers) survive and columns do
    // not shift. Its one trace is `-fdirectives-only` in DW_AT_producer, so with debug info
    // full preprocessing is kept — unless gcc reads fall-through comments, where right
    // warnings matter more than a producer string.
    let directives_only = matches!(one.lang, Lang::C | Lang::Cxx)
        && (!seen.debug || seen.fallthrough.reads_comments());
    if directives_only {
        seen.cpp.push("-fdirectives-only");
        seen.remote.push("-fpreprocessed");
        seen.remote.push("-fdirectives-only");
    }

    // Whatever the rules above let through, a box applies its own: a job it would refuse is
    // compiled here at once, without the round trip.
    let wire: Vec<Vec<u8>> = seen.remote.iter().map(|a| a.as_bytes().to_vec()).collect();
    if let Err(why) = crate::rules::box_args::BoxArgs::parse(&wire) {
        return Err(LocalReason::BoxRefuses(why.to_string()));
    }

    let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    let cpp_args = (!one.lang.is_preprocessed()).then(|| {
        let mut all = os(&seen.cpp);
        all.extend(extra.into_iter().map(OsString::from));
        all
    });
    Ok(Plan {
        source: one.source.into(),
        output: one
            .output
            .map_or_else(|| default_output(one.source, one.stage), str::to_string)
            .into(),
        lang: one.lang,
        stage: one.stage,
        cpp_args,
        remote_args: os(&seen.remote),
        remote_input_ext: one.lang.remote_input_ext(),
    })
}

/// What `classify` found walking a command's arguments: the two argument lists so far and
/// what decides the rest.
#[derive(Default)]
struct Seen<'a> {
    /// For the local preprocessing and for the box, in order (see `Plan`).
    cpp: Vec<&'a str>,
    remote: Vec<&'a str>,
    stages: Vec<Stage>,
    outputs: Vec<&'a str>,
    /// Inputs with the language gcc gives them (`None`: not one of ours).
    inputs: Vec<(&'a str, Option<Lang>)>,
    /// The language of the last `-x`.
    x_lang: Option<Lang>,
    deps: Deps,
    fallthrough: Fallthrough,
    /// Whether the last word on debug info turned it on.
    debug: bool,
}

/// The one compile a command is.
struct OneCompile<'a> {
    stage: Stage,
    source: &'a str,
    lang: Lang,
    /// The `-o` value; `None`: gcc's default name.
    output: Option<&'a str>,
}

impl<'a> Seen<'a> {
    /// Walks `args` (as text), each input and option taken in, or the reason the command
    /// stays here.
    fn walk(args: &[&'a str]) -> Result<Seen<'a>, LocalReason> {
        let mut seen = Seen {
            cpp: Vec::with_capacity(args.len() + 4),
            remote: Vec::with_capacity(args.len()),
            ..Seen::default()
        };
        let mut i = 0;
        while i < args.len() {
            let arg = args[i];
            if arg == "-" || !arg.starts_with('-') {
                let lang = seen.x_lang.or_else(|| Lang::from_name(arg));
                seen.inputs.push((arg, lang));
                seen.cpp.push(arg);
                i += 1;
                continue;
            }
            i += seen.option(args, i)?;
        }
        Ok(seen)
    }

    /// Takes in the option at `args[i]`: the lists it joins and what it decides. Returns how
    /// many arguments it used.
    fn option(&mut self, args: &[&'a str], i: usize) -> Result<usize, LocalReason> {
        let arg = args[i];
        let (class, value, used) = lookup(args, i)?;
        let words = &args[i..i + used];
        let value = value.unwrap_or("");
        let refuse = |why| LocalReason::Flag {
            arg: arg.to_string(),
            why,
        };
        match class {
            Class::Stage(stage) => {
                if !self.stages.contains(&stage) {
                    self.stages.push(stage);
                    self.cpp.push("-E");
                    self.remote.push(stage.flag());
                }
            }
            Class::Output => self.outputs.push(value),
            Class::Language => {
                self.x_lang =
                    Lang::from_x(value).map_err(|()| LocalReason::Language(value.to_string()))?;
                self.cpp.extend(words);
            }
            Class::Cpp | Class::Link => self.cpp.extend(words),
            Class::Dep(dep) => {
                match dep {
                    Dep::Write => self.deps.driver = true,
                    Dep::File => self.deps.file = true,
                    Dep::Target => self.deps.target = true,
                    Dep::Other => {}
                }
                self.cpp.extend(words);
            }
            Class::WpList => {
                let writes_deps = wp_list(&arg["-Wp,".len()..]);
                self.deps.wp |= writes_deps.ok_or_else(|| refuse(Why::PassesThrough))?;
                self.cpp.extend(words);
            }
            Class::WaList if wa_touches_files(&arg["-Wa,".len()..]) => {
                return Err(refuse(Why::AssemblerFiles));
            }
            // The kernel's as-version.sh: the assembler prints and writes no object.
            Class::WaList if wa_does_not_assemble(&arg["-Wa,".len()..]) => {
                return Err(refuse(Why::NotACompile));
            }
            // A `--param` value the box would refuse: gcc would reject it too, here.
            Class::Both if arg == "--param" && !crate::rules::box_args::is_param_setting(value) => {
                return Err(refuse(Why::Unrecognized));
            }
            Class::WaList | Class::Both => {
                self.fallthrough.note(arg);
                self.debug = debug_switch(arg).unwrap_or(self.debug);
                self.cpp.extend(words);
                self.remote.extend(words);
            }
            Class::Local(why) => return Err(refuse(why)),
        }
        Ok(used)
    }

    /// The one compile the command is: one stage, one source of ours, at most one output
    /// and not stdout; or the reason it is not.
    fn one_compile(&self) -> Result<OneCompile<'a>, LocalReason> {
        let stage = match self.stages[..] {
            [] => return Err(LocalReason::Links),
            [stage] => stage,
            _ => return Err(LocalReason::BothStages),
        };
        let inputs = &self.inputs;
        if inputs.iter().any(|(name, _)| *name == "-") {
            return Err(LocalReason::Stdin);
        }
        if let Some((name, _)) = inputs.iter().find(|(_, lang)| lang.is_none()) {
            return Err(LocalReason::UnknownInput(name.to_string()));
        }
        let (source, lang) = match inputs[..] {
            [] => return Err(LocalReason::NoSource),
            [(source, Some(lang))] => (source, lang),
            _ => return Err(LocalReason::Sources(inputs.len())),
        };
        let output = match self.outputs[..] {
            [] => None,
            ["-"] => return Err(LocalReason::StdoutOutput),
            [out] => Some(out),
            _ => return Err(LocalReason::Outputs(self.outputs.len())),
        };
        if lang == Lang::AsmCpp && stage == Stage::Assembly {
            return Err(LocalReason::AssemblyOfAsm);
        }
        Ok(OneCompile {
            stage,
            source,
            lang,
            output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    fn plan(line: &str) -> Plan {
        classify(&argv(line)).unwrap_or_else(|r| panic!("`{line}` stayed local: {r}"))
    }

    fn strs(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|a| a.to_str().unwrap()).collect()
    }

    fn flag(arg: &str, why: Why) -> LocalReason {
        LocalReason::Flag {
            arg: arg.to_string(),
            why,
        }
    }

    /// Asserts that `line` is distributed as expected. `cpp`: the local preprocessing
    /// arguments (`None` for an already preprocessed source); `remote`: the box's.
    fn ok(line: &str, source: &str, output: &str, lang: Lang, cpp: Option<&str>, remote: &str) {
        let p = plan(line);
        let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let owned = |v: &[OsString]| strs(v).iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(p.source, source, "`{line}`");
        assert_eq!(p.output, output, "`{line}`");
        assert_eq!(p.lang, lang, "`{line}`");
        let stage = if remote.contains("-S") {
            Stage::Assembly
        } else {
            Stage::Object
        };
        assert_eq!(p.stage, stage, "`{line}`");
        // The preprocessing mode has a test of its own; here, everything else.
        let mode = |v: Vec<String>| {
            v.into_iter()
                .filter(|a| a != "-fdirectives-only" && a != "-fpreprocessed")
                .collect::<Vec<_>>()
        };
        assert_eq!(
            p.cpp_args.as_deref().map(owned).map(mode),
            cpp.map(words),
            "`{line}`"
        );
        assert_eq!(mode(owned(&p.remote_args)), words(remote), "`{line}`");
        assert_eq!(p.remote_input_ext, lang.remote_input_ext(), "`{line}`");
    }

    #[test]
    fn the_box_gets_the_suffix_of_the_preprocessed_language() {
        assert_eq!(Lang::C.remote_input_ext(), "i");
        assert_eq!(Lang::CppOutput.remote_input_ext(), "i");
        assert_eq!(Lang::Cxx.remote_input_ext(), "ii");
        assert_eq!(Lang::CxxCppOutput.remote_input_ext(), "ii");
        assert_eq!(Lang::AsmCpp.remote_input_ext(), "s");
    }

    #[test]
    fn sources_are_recognised_by_suffix_or_x() {
        use Lang::*;
        ok("-c foo.c", "foo.c", "foo.o", C, Some("-E foo.c"), "-c");
        ok(
            "-S src/foo.cpp",
            "src/foo.cpp",
            "foo.s",
            Cxx,
            Some("-E src/foo.cpp"),
            "-S",
        );
        for ext in ["cc", "cp", "cxx", "cpp", "CPP", "c++", "C"] {
            let (line, src, cpp) = (
                format!("-c a.{ext}"),
                format!("a.{ext}"),
                format!("-E a.{ext}"),
            );
            ok(&line, &src, "a.o", Cxx, Some(&cpp), "-c");
        }
        ok("-c a.x.c", "a.x.c", "a.x.o", C, Some("-E a.x.c"), "-c");
        ok("-c .hid.c", ".hid.c", ".hid.o", C, Some("-E .hid.c"), "-c");
        ok("-c x.S -o x.o", "x.S", "x.o", AsmCpp, Some("-E x.S"), "-c");
        ok("-c x.sx", "x.sx", "x.o", AsmCpp, Some("-E x.sx"), "-c");
        ok("-c foo.i", "foo.i", "foo.o", CppOutput, None, "-c");
        ok(
            "-O2 -S foo.ii",
            "foo.ii",
            "foo.s",
            CxxCppOutput,
            None,
            "-O2 -S",
        );
        // -x: for later inputs, joined or separate, `none` resets; never sent to the box.
        ok("-x c -c f.k", "f.k", "f.o", C, Some("-x c -E f.k"), "-c");
        ok(
            "-xc++ -c foo",
            "foo",
            "foo.o",
            Cxx,
            Some("-xc++ -E foo"),
            "-c",
        );
        let asm = "-x assembler-with-cpp -E a.asm";
        ok(
            "-x assembler-with-cpp -c a.asm",
            "a.asm",
            "a.o",
            AsmCpp,
            Some(asm),
            "-c",
        );
        ok("-x cpp-output -c f.k", "f.k", "f.o", CppOutput, None, "-c");
        ok(
            "-x c++-cpp-output -c f.k",
            "f.k",
            "f.o",
            CxxCppOutput,
            None,
            "-c",
        );
        ok(
            "-x c -x none -c a.cc",
            "a.cc",
            "a.o",
            Cxx,
            Some("-x c -x none -E a.cc"),
            "-c",
        );
        ok(
            "-c a.c -x c++",
            "a.c",
            "a.o",
            C,
            Some("-E a.c -x c++"),
            "-c",
        );
    }

    #[test]
    fn options_go_to_the_preprocessor_the_box_or_both() {
        use Lang::*;
        ok(
            "-O2 -g -Wall -std=gnu11 -fno-common -mcpu=cortex-a53 -Werror -c src/x.c \
             -o obj/x.o -Iinc -DX=1",
            "src/x.c",
            "obj/x.o",
            C,
            Some(
                "-O2 -g -Wall -std=gnu11 -fno-common -mcpu=cortex-a53 -Werror -E src/x.c \
                 -Iinc -DX=1",
            ),
            "-O2 -g -Wall -std=gnu11 -fno-common -mcpu=cortex-a53 -Werror -c",
        );
        // -o joined; the stage flag once; option values are not sources.
        ok(
            "-c a.c -oobj/a.o",
            "a.c",
            "obj/a.o",
            C,
            Some("-E a.c"),
            "-c",
        );
        ok("-c -c a.c", "a.c", "a.o", C, Some("-E a.c"), "-c");
        let cpp = "-Xlinker b.c -E a.c -include c.c -D d.c";
        ok(
            "-Xlinker b.c -c a.c -include c.c -D d.c",
            "a.c",
            "a.o",
            C,
            Some(cpp),
            "-c",
        );
        // Linking only: kept for -E (harmless), not sent.
        let link = "-lm -L/x -L /y -l z -Wl,-z,now -static -shared -s -rdynamic -no-pie -pie \
                    -fuse-ld=gold -T x.ld -u sym -z now -e main -nostdlib -static-libgcc";
        let cpp = format!("-pthread -fPIC -E a.c {link}");
        ok(
            &format!("-pthread -fPIC -c a.c {link}"),
            "a.c",
            "a.o",
            C,
            Some(&cpp),
            "-pthread -fPIC -c",
        );
        // Preprocessing only: kept for -E, not sent.
        let pre = "-include cfg.h -imacros m.h -isystem s -iquote q -idirafter d -iprefix p \
                   -iwithprefix w -iwithprefixbefore wb -I i -Ij -D d -Ue -U u -A a=b -nostdinc \
                   -nostdinc++ -undef -trigraphs -traditional-cpp -H -isysroot /r --sysroot=/s \
                   --sysroot /t -finput-charset=latin1 -isystemx -imultilib m -imultiarch a";
        ok(
            &format!("{pre} -c a.c"),
            "a.c",
            "a.o",
            C,
            Some(&format!("{pre} -E a.c")),
            "-c",
        );
        // Prefix maps: __FILE__ for -E, debug info for the box.
        let maps = "-fdebug-prefix-map=/a=/b -ffile-prefix-map=/c=/d -fmacro-prefix-map=/e=/f -g";
        let (line, cpp, remote) = (
            format!("{maps} -c a.c"),
            format!("{maps} -E a.c"),
            format!("{maps} -c"),
        );
        ok(&line, "a.c", "a.o", C, Some(&cpp), &remote);
        // Assembler options and separate values that the compile needs.
        let both = "-Wa,-mfpu=neon,--noexecstack --param max-inline-insns-single=10 --param=l1=2 \
                    -G 8 -pipe";
        let (line, cpp, remote) = (
            format!("{both} -c x.S"),
            format!("{both} -E x.S"),
            format!("{both} -c"),
        );
        ok(&line, "x.S", "x.o", AsmCpp, Some(&cpp), &remote);
        // The Linux kernel.
        let flags = "-nostdinc -I./arch/arm64/include -I./include \
                     -include ./include/linux/compiler-version.h \
                     -include ./include/linux/kconfig.h \
                     -D__KERNEL__ -mlittle-endian -fmacro-prefix-map=./= -Wall -O2 \
                     -DKBUILD_MODNAME=\"fork\"";
        ok(
            &format!("-Wp,-MMD,kernel/.fork.o.d {flags} -c -o kernel/fork.o kernel/fork.c"),
            "kernel/fork.c",
            "kernel/fork.o",
            C,
            Some(&format!(
                "-Wp,-MMD,kernel/.fork.o.d {flags} -E kernel/fork.c"
            )),
            "-mlittle-endian -fmacro-prefix-map=./= -Wall -O2 -c",
        );
    }

    #[test]
    fn dependency_files_get_the_name_and_target_gcc_c_would_give() {
        use Lang::*;
        let cpp = "-MD -E src/a.c -MF obj/a.d -MQ obj/a.o";
        ok(
            "-MD -c src/a.c -o obj/a.o",
            "src/a.c",
            "obj/a.o",
            C,
            Some(cpp),
            "-c",
        );
        ok(
            "-MD -c src/a.c",
            "src/a.c",
            "a.o",
            C,
            Some("-MD -E src/a.c"),
            "-c",
        );
        let cpp = "-MMD -MP -MF d -E a.c -MQ o/a.o";
        ok(
            "-MMD -MP -MF d -c a.c -o o/a.o",
            "a.c",
            "o/a.o",
            C,
            Some(cpp),
            "-c",
        );
        let cpp = "-MMD -MT t -E a.c -MF o/a.d";
        ok("-MMD -MT t -c a.c -o o/a", "a.c", "o/a", C, Some(cpp), "-c");
        let cpp = "-MD -MQt -MFx.d -E a.c";
        ok(
            "-MD -MQt -MFx.d -S a.c -o o.x/a.s",
            "a.c",
            "o.x/a.s",
            C,
            Some(cpp),
            "-S",
        );
        let cpp = "-MD -E a.c -MF o.x/a.d -MQ o.x/a";
        ok("-MD -c a.c -o o.x/a", "a.c", "o.x/a", C, Some(cpp), "-c");
        let cpp = "-MD -E a.c -MF o/.d -MQ o/.o";
        ok("-MD -c a.c -o o/.o", "a.c", "o/.o", C, Some(cpp), "-c");
        let cpp = "-Wp,-MD,o/.a.o.d -E a.c";
        ok(
            "-Wp,-MD,o/.a.o.d -c a.c -o o/a.o",
            "a.c",
            "o/a.o",
            C,
            Some(cpp),
            "-c",
        );
        let wp = "-Wp,-MMD,o/.a.o.d,-DX=1,-UY,-Iinc -MT t";
        let (line, cpp) = (format!("{wp} -c a.c -o o/a.o"), format!("{wp} -E a.c"));
        ok(&line, "a.c", "o/a.o", C, Some(&cpp), "-c");
        ok("-MD -c p.i -o o/p.o", "p.i", "o/p.o", CppOutput, None, "-c");
    }

    #[test]
    fn arguments_with_spaces_stay_whole() {
        let args: Vec<OsString> = [
            "-MD",
            "-c",
            "my dir/a b.c",
            "-o",
            "out dir/a$b c.o",
            "-DMSG=\"hi there\"",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let p = classify(&args).unwrap();
        assert_eq!(p.source, "my dir/a b.c");
        assert_eq!(p.output, "out dir/a$b c.o");
        assert_eq!(
            strs(p.cpp_args.as_ref().unwrap()),
            [
                "-MD",
                "-E",
                "my dir/a b.c",
                "-DMSG=\"hi there\"",
                "-fdirectives-only",
                "-MF",
                "out dir/a$b c.d",
                "-MQ",
                "out dir/a$b c.o"
            ]
        );
        assert_eq!(
            strs(&p.remote_args),
            ["-c", "-fpreprocessed", "-fdirectives-only"]
        );
        let p = classify(&[OsString::from("-S"), OsString::from("dir.x/a b.cc")]).unwrap();
        assert_eq!(p.output, "a b.s");
    }

    #[test]
    fn unsafe_commands_stay_local_with_a_reason() {
        use LocalReason::*;
        let table: &[(&str, LocalReason)] = &[
            // Not one compile of one source.
            ("a.c", Links),
            ("a.c -o a", Links),
            ("a.o b.o -o prog", Links),
            ("-fPIC -shared a.c -o liba.so", Links),
            ("-c -S a.c", BothStages),
            ("-S -c a.c", BothStages),
            ("-S a.S", AssemblyOfAsm),
            ("-x assembler-with-cpp -S a.asm", AssemblyOfAsm),
            ("-c", NoSource),
            ("-c -O2 -o x.o", NoSource),
            ("-c a.c b.c", Sources(2)),
            ("-c a.c b.cc c.S", Sources(3)),
            ("-x c -c -", Stdin),
            ("-c -", Stdin),
            ("-c a.c -o -", StdoutOutput),
            ("-c a.c -o x.o -o y.o", Outputs(2)),
            ("-c a.c -oy.o -o y.o", Outputs(2)),
            ("-c a.s", UnknownInput("a.s".into())),
            ("-c a.o", UnknownInput("a.o".into())),
            ("-c a.c b.o", UnknownInput("b.o".into())),
            ("-c a.c lib.a", UnknownInput("lib.a".into())),
            ("-c a.h", UnknownInput("a.h".into())),
            ("-c a.hpp", UnknownInput("a.hpp".into())),
            ("-c a.m", UnknownInput("a.m".into())),
            ("-c a.f90", UnknownInput("a.f90".into())),
            ("-c .c", UnknownInput(".c".into())),
            ("-c dir/.c", UnknownInput("dir/.c".into())),
            ("-c noext", UnknownInput("noext".into())),
            ("-c a.c -x none b", UnknownInput("b".into())),
            ("-x objective-c -c a.m", Language("objective-c".into())),
            ("-x assembler -c a.s", Language("assembler".into())),
            ("-xc-header -c a.h", Language("c-header".into())),
            ("-c a.c -x go", Language("go".into())),
            ("-E a.c", flag("-E", Why::NotACompile)),
            ("-E -c a.c", flag("-E", Why::NotACompile)),
            ("-M -c a.c", flag("-M", Why::NotACompile)),
            ("-c a.c -MM", flag("-MM", Why::NotACompile)),
            ("-v -c a.c", flag("-v", Why::NotACompile)),
            ("-### -c a.c", flag("-###", Why::NotACompile)),
            ("--help", flag("--help", Why::NotACompile)),
            (
                "--help=common -c a.c",
                flag("--help=common", Why::NotACompile),
            ),
            ("--version", flag("--version", Why::NotACompile)),
            ("--target-help", flag("--target-help", Why::NotACompile)),
            (
                "-print-file-name=libc.a",
                flag("-print-file-name=libc.a", Why::NotACompile),
            ),
            (
                "-print-search-dirs",
                flag("-print-search-dirs", Why::NotACompile),
            ),
            ("-dumpversion", flag("-dumpversion", Why::NotACompile)),
            ("-dumpmachine", flag("-dumpmachine", Why::NotACompile)),
            (
                "-fsyntax-only -c a.c",
                flag("-fsyntax-only", Why::NotACompile),
            ),
            // Response files, anywhere (gcc expands them before anything else).
            ("@args.rsp", ResponseFile("@args.rsp".into())),
            ("-c a.c -D @x", ResponseFile("@x".into())),
            // Code from elsewhere, or this machine.
            (
                "-fplugin=./p.so -c a.c",
                flag("-fplugin=./p.so", Why::LoadsCode),
            ),
            (
                "-fplugin-arg-p-x=1 -c a.c",
                flag("-fplugin-arg-p-x=1", Why::LoadsCode),
            ),
            (
                "-iplugindir=/p -c a.c",
                flag("-iplugindir=/p", Why::LoadsCode),
            ),
            (
                "-specs=x.specs -c a.c",
                flag("-specs=x.specs", Why::LoadsCode),
            ),
            ("-specs x.specs -c a.c", flag("-specs", Why::LoadsCode)),
            (
                "--specs=x.specs -c a.c",
                flag("--specs=x.specs", Why::LoadsCode),
            ),
            ("-B/opt/bin -c a.c", flag("-B/opt/bin", Why::LoadsCode)),
            ("-B /opt/bin -c a.c", flag("-B", Why::LoadsCode)),
            (
                "-wrapper gdb,--args -c a.c",
                flag("-wrapper", Why::LoadsCode),
            ),
            (
                "-march=native -c a.c",
                flag("-march=native", Why::MachineDependent),
            ),
            (
                "-mcpu=native -c a.c",
                flag("-mcpu=native", Why::MachineDependent),
            ),
            (
                "-mtune=native -c a.c",
                flag("-mtune=native", Why::MachineDependent),
            ),
            (
                "-mcpu=native+crypto -c a.c",
                flag("-mcpu=native+crypto", Why::MachineDependent),
            ),
            ("-g3 -c a.c", flag("-g3", Why::DebugMacros)),
            ("-ggdb3 -c a.c", flag("-ggdb3", Why::DebugMacros)),
            (
                "-fmodules-ts -c a.cc",
                flag("-fmodules-ts", Why::WritesFiles),
            ),
            (
                "-fmodule-mapper=m -c a.cc",
                flag("-fmodule-mapper=m", Why::WritesFiles),
            ),
            (
                "-fdeps-file=a.ddi -c a.cc",
                flag("-fdeps-file=a.ddi", Why::WritesFiles),
            ),
            // Extra files that would stay on the box.
            ("-save-temps -c a.c", flag("-save-temps", Why::WritesFiles)),
            (
                "-save-temps=obj -c a.c",
                flag("-save-temps=obj", Why::WritesFiles),
            ),
            (
                "-gsplit-dwarf -c a.c",
                flag("-gsplit-dwarf", Why::WritesFiles),
            ),
            (
                "-fstack-usage -c a.c",
                flag("-fstack-usage", Why::WritesFiles),
            ),
            (
                "-fdump-tree-all -c a.c",
                flag("-fdump-tree-all", Why::WritesFiles),
            ),
            (
                "-fdump-rtl-expand -c a.c",
                flag("-fdump-rtl-expand", Why::WritesFiles),
            ),
            (
                "-fopt-info-vec=v.txt -c a.c",
                flag("-fopt-info-vec=v.txt", Why::WritesFiles),
            ),
            (
                "-fcallgraph-info=su -c a.c",
                flag("-fcallgraph-info=su", Why::WritesFiles),
            ),
            (
                "-fsave-optimization-record -c a.c",
                flag("-fsave-optimization-record", Why::WritesFiles),
            ),
            (
                "-fcompare-debug -c a.c",
                flag("-fcompare-debug", Why::WritesFiles),
            ),
            (
                "-fcompare-debug-second -c a.c",
                flag("-fcompare-debug-second", Why::WritesFiles),
            ),
            (
                "-fdiagnostics-format=sarif-file -c a.c",
                flag("-fdiagnostics-format=sarif-file", Why::WritesFiles),
            ),
            (
                "-fdiagnostics-format=json-file -c a.c",
                flag("-fdiagnostics-format=json-file", Why::WritesFiles),
            ),
            ("-aux-info a.x -c a.c", flag("-aux-info", Why::WritesFiles)),
            ("-dumpbase a -c a.c", flag("-dumpbase", Why::WritesFiles)),
            (
                "-dumpbase-ext .c -c a.c",
                flag("-dumpbase-ext", Why::WritesFiles),
            ),
            ("-dumpdir d/ -c a.c", flag("-dumpdir", Why::WritesFiles)),
            ("-time=t.txt -c a.c", flag("-time=t.txt", Why::WritesFiles)),
            (
                "-Wa,-adhln=a.lst -c a.c",
                flag("-Wa,-adhln=a.lst", Why::AssemblerFiles),
            ),
            (
                "-Wa,--noexecstack,-alh -c a.c",
                flag("-Wa,--noexecstack,-alh", Why::AssemblerFiles),
            ),
            (
                "-Wa,--MD,a.d -c a.S",
                flag("-Wa,--MD,a.d", Why::AssemblerFiles),
            ),
            (
                "-Wa,-MD,a.d -c a.S",
                flag("-Wa,-MD,a.d", Why::AssemblerFiles),
            ),
            ("-Wa,@opts -c a.S", flag("-Wa,@opts", Why::AssemblerFiles)),
            ("-Wa,-o,x.o -c a.S", flag("-Wa,-o,x.o", Why::AssemblerFiles)),
            ("-Wa,-I,inc -c a.S", flag("-Wa,-I,inc", Why::AssemblerFiles)),
            (
                "-Wa,--listing-cont-lines=9 -c a.S",
                flag("-Wa,--listing-cont-lines=9", Why::AssemblerFiles),
            ),
            // Profiles and coverage.
            (
                "-fprofile-arcs -c a.c",
                flag("-fprofile-arcs", Why::Profile),
            ),
            (
                "-fprofile-generate -c a.c",
                flag("-fprofile-generate", Why::Profile),
            ),
            (
                "-fprofile-use=p -c a.c",
                flag("-fprofile-use=p", Why::Profile),
            ),
            (
                "-fprofile-dir=p -c a.c",
                flag("-fprofile-dir=p", Why::Profile),
            ),
            (
                "-fprofile-update=atomic -c a.c",
                flag("-fprofile-update=atomic", Why::Profile),
            ),
            (
                "-fauto-profile=a.afdo -c a.c",
                flag("-fauto-profile=a.afdo", Why::Profile),
            ),
            (
                "-fbranch-probabilities -c a.c",
                flag("-fbranch-probabilities", Why::Profile),
            ),
            (
                "-ftest-coverage -c a.c",
                flag("-ftest-coverage", Why::Profile),
            ),
            ("--coverage -c a.c", flag("--coverage", Why::Profile)),
            (
                "-frecord-gcc-switches -c a.c",
                flag("-frecord-gcc-switches", Why::RecordsCommand),
            ),
            (
                "-fverbose-asm -S a.c",
                flag("-fverbose-asm", Why::RecordsCommand),
            ),
            // What -E would write differs from what -c compiles internally.
            ("-P -c a.c", flag("-P", Why::ChangesPreprocessing)),
            ("-C -c a.c", flag("-C", Why::ChangesPreprocessing)),
            ("-CC -c a.c", flag("-CC", Why::ChangesPreprocessing)),
            ("-MD -MG -c a.c", flag("-MG", Why::ChangesPreprocessing)),
            (
                "-fdirectives-only -c a.c",
                flag("-fdirectives-only", Why::ChangesPreprocessing),
            ),
            (
                "-fpreprocessed -c a.c",
                flag("-fpreprocessed", Why::ChangesPreprocessing),
            ),
            (
                "-fpch-preprocess -c a.c",
                flag("-fpch-preprocess", Why::ChangesPreprocessing),
            ),
            ("-dM -c a.c", flag("-dM", Why::DebugDumps)),
            ("-dD -c a.c", flag("-dD", Why::DebugDumps)),
            ("-dr -c a.c", flag("-dr", Why::DebugDumps)),
            // Options passed on unchecked.
            (
                "-Xpreprocessor -P -c a.c",
                flag("-Xpreprocessor", Why::PassesThrough),
            ),
            (
                "-Xassembler -adhln -c a.S",
                flag("-Xassembler", Why::PassesThrough),
            ),
            (
                "-Xclang -ast-dump -c a.c",
                flag("-Xclang", Why::PassesThrough),
            ),
            ("-Wp,-P -c a.c", flag("-Wp,-P", Why::PassesThrough)),
            ("-Wp,-MD -c a.c", flag("-Wp,-MD", Why::PassesThrough)),
            ("-Wp,-MD, -c a.c", flag("-Wp,-MD,", Why::PassesThrough)),
            (
                "-Wp,-MT,x,-MD,a.d -c a.c",
                flag("-Wp,-MT,x,-MD,a.d", Why::PassesThrough),
            ),
            ("-Wp,-D -c a.c", flag("-Wp,-D", Why::PassesThrough)),
            ("-Wp, -c a.c", flag("-Wp,", Why::PassesThrough)),
            // Options rcc does not know that may take a value.
            (
                "--output=a.o -c a.c",
                flag("--output=a.o", Why::Unrecognized),
            ),
            ("--include x.h -c a.c", flag("--include", Why::Unrecognized)),
            ("-MJ x.json -c a.c", flag("-MJ", Why::Unrecognized)),
            ("-ifoo -c a.c", flag("-ifoo", Why::Unrecognized)),
            ("-Xfoo -c a.c", flag("-Xfoo", Why::Unrecognized)),
            // Dependency files whose name depends on option order.
            ("-Wp,-MD,a.d -MD -c a.c -o o/a.o", DepFiles),
            ("-MMD -Wp,-MMD,a.d -c a.c", DepFiles),
            ("-Wp,-MD,a.d -MF b.d -c a.c", DepFiles),
            // The kernel's as-version.sh: nothing to compile.
            (
                "-Wa,--version -c -x assembler-with-cpp /dev/null -o /dev/null",
                flag("-Wa,--version", Why::NotACompile),
            ),
            // An option whose value is missing.
            ("-c a.c -o", MissingValue("-o".into())),
            ("-c a.c -I", MissingValue("-I".into())),
            ("-c a.c -x", MissingValue("-x".into())),
            ("-c a.c -Xlinker", MissingValue("-Xlinker".into())),
            ("-c a.c -MF", MissingValue("-MF".into())),
        ];
        for (line, want) in table {
            assert_eq!(classify(&argv(line)).as_ref(), Err(want), "`{line}`");
        }
    }

    #[test]
    fn directives_only_unless_debug_info_and_no_fall_through_comments() {
        let mode = |line: &str| {
            let p = plan(line);
            let cpp = p
                .cpp_args
                .as_ref()
                .map(|c| strs(c).contains(&"-fdirectives-only"));
            let remote = strs(&p.remote_args);
            let box_mode =
                remote.contains(&"-fpreprocessed") && remote.contains(&"-fdirectives-only");
            assert_eq!(cpp.unwrap_or(box_mode), box_mode, "`{line}`");
            box_mode
        };
        for line in [
            "-O2 -c a.c",
            "-c a.cc",
            "-g -g0 -c a.c",
            "-ggdb0 -c a.c",
            "-gz -c a.c",
            "-Wextra -c a.c",
            "-g -Wextra -c a.c",
            "-ggdb -Wimplicit-fallthrough=3 -c a.c",
            "-gdwarf-4 -Werror=implicit-fallthrough -c a.c",
        ] {
            assert!(mode(line), "`{line}` should preprocess directives only");
        }
        for line in [
            "-g -c a.c",
            "-g2 -O2 -c a.c",
            "-gdwarf-4 -c a.c",
            "-ggdb -c a.cc",
            "-g -Wextra -Wno-implicit-fallthrough -c a.c",
            "-g -Wextra -Wimplicit-fallthrough=5 -c a.c",
            "-g -Wextra -w -c a.c",
            "-c a.S",
            "-c a.i",
            "-c a.ii",
        ] {
            assert!(!mode(line), "`{line}` should preprocess fully");
        }
        assert_eq!(debug_switch("-gsplit-dwarf"), None);
        assert_eq!(debug_switch("-gno-column-info"), None);
        assert_eq!(debug_switch("-gstabs+"), Some(true));
    }

    #[test]
    fn arguments_the_box_cannot_take_stay_local() {
        use std::os::unix::ffi::OsStringExt;
        let nul = vec![OsString::from("-c"), OsString::from("a\0b.c")];
        assert_eq!(classify(&nul), Err(LocalReason::Nul("a\0b.c".into())));
        let latin1 = vec![
            OsString::from("-c"),
            OsString::from_vec(b"caf\xe9.c".to_vec()),
        ];
        assert_eq!(
            classify(&latin1),
            Err(LocalReason::NotUtf8("caf\u{fffd}.c".into()))
        );
        // Found by fuzzing (tests/fuzz/corpus/classifier/regress-*): a job a box would
        // refuse stays here instead of costing a round trip.
        let argv = |s: &str| s.split(' ').map(OsString::from).collect::<Vec<_>>();
        assert!(matches!(
            classify(&argv("--param max-inline-insns-sin~le=1000 -c x.c")),
            Err(LocalReason::Flag { .. })
        ));
        assert!(matches!(
            classify(&argv("-fuse-ldct-aliasing -c x.c")),
            Err(LocalReason::BoxRefuses(_))
        ));
        // ... and `-G 8` goes to a box that takes it.
        assert!(classify(&argv("-G 8 -c x.c")).is_ok());
    }

    #[test]
    fn reasons_read_as_sentences() {
        let cases = [
            (LocalReason::Links, "links (no -c or -S)"),
            (LocalReason::Sources(2), "2 source files"),
            (
                flag("-march=native", Why::MachineDependent),
                "-march=native depends on the machine",
            ),
            (
                flag("-fplugin=x.so", Why::LoadsCode),
                "-fplugin=x.so loads code into the compiler",
            ),
            (
                LocalReason::StdoutOutput,
                "writes the output to stdout (-o -)",
            ),
            (
                LocalReason::MissingValue("-o".into()),
                "-o is missing its value",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
        // Every variant says something.
        let whys = [
            Why::NotACompile,
            Why::LoadsCode,
            Why::MachineDependent,
            Why::WritesFiles,
            Why::Profile,
            Why::RecordsCommand,
            Why::ChangesPreprocessing,
            Why::DebugDumps,
            Why::DebugMacros,
            Why::PassesThrough,
            Why::AssemblerFiles,
            Why::Unrecognized,
        ];
        for why in whys {
            assert!(why.to_string().len() > 10, "{why:?}");
        }
    }

    #[test]
    fn remote_args_are_always_acceptable_to_the_box() {
        let lines = [
            "-c hello.c",
            "-O2 -g -Wall -c src/x.c -o obj/x.o",
            "-Wp,-MMD,kernel/.fork.o.d -nostdinc -I./arch/arm64/include \
             -I./arch/arm64/include/generated -I./include -I./arch/arm64/include/uapi \
             -I./include/uapi -include ./include/linux/compiler-version.h -include \
             ./include/linux/kconfig.h -include ./include/linux/compiler_types.h -D__KERNEL__ \
             -mlittle-endian -DKASAN_SHADOW_SCALE_SHIFT= -fmacro-prefix-map=./= -Wall -Wundef \
             -Werror=strict-prototypes -Wno-trigraphs -fno-strict-aliasing -fno-common \
             -fshort-wchar \
             -fno-PIE -Werror=implicit-function-declaration -std=gnu11 -mgeneral-regs-only \
             -DCONFIG_CC_HAS_K_CONSTRAINT=1 -Wno-psabi -mabi=lp64 -fno-asynchronous-unwind-tables \
             -fno-unwind-tables -mbranch-protection=pac-ret+leaf -Wa,-march=armv8.5-a \
             -DARM64_ASM_ARCH='\"armv8.5-a\"' -DKASAN_SHADOW_SCALE_SHIFT= -O2 \
             -fstack-protector-strong -fno-omit-frame-pointer -g -gdwarf-5 \
             -DKBUILD_MODFILE='\"kernel/fork\"' -DKBUILD_BASENAME='\"fork\"' \
             -DKBUILD_MODNAME='\"fork\"' -D__KBUILD_MODNAME=kmod_fork -c -o kernel/fork.o \
             kernel/fork.c",
            "-Wp,-MMD,arch/arm64/kernel/.head.o.d -nostdinc -I./arch/arm64/include -I./include \
             -include ./include/linux/kconfig.h -D__KERNEL__ -mlittle-endian -D__ASSEMBLY__ \
             -fno-PIE -mabi=lp64 -fno-asynchronous-unwind-tables -Wa,-gdwarf-5 -c -o \
             arch/arm64/kernel/head.o arch/arm64/kernel/head.S",
            "-DHAVE_CONFIG_H -I. -I.. -I/usr/include/glib-2.0 -pthread -g -O2 -MT foo.o -MD -MP \
             -MF .deps/foo.Tpo -c -o foo.o foo.c",
            "-std=c++17 -O3 -DNDEBUG -fPIC -fvisibility=hidden -isystem /opt/boost/include \
             -MD -MT CMakeFiles/x.dir/a.cpp.o -MF CMakeFiles/x.dir/a.cpp.o.d -o \
             CMakeFiles/x.dir/a.cpp.o -c /src/a.cpp",
            "-x c++ -std=gnu++20 -fno-exceptions -c weird.inl -o weird.o",
            "-march=armv8-a+crc -mtune=cortex-a72 -mcpu=cortex-a53 -S a.c",
            "--sysroot=/opt/sysroot -isysroot /x -c a.c -fdebug-prefix-map=/a=/b \
             -ffile-prefix-map=/c=. -flto=auto -ffunction-sections -fdata-sections",
            "-c a.c -Wl,--gc-sections -L. -lfoo -Xlinker -Map -Xlinker a.map -fuse-ld=lld -static",
            "-Wa,--noexecstack -c asm.sx",
            "-c pre.i -O2",
            "-S pre.ii -O1 -fno-rtti",
            "-DX -UY -A p=q -imacros m.h -idirafter d -iprefix p/ -iwithprefix w \
             -iwithprefixbefore wb -imultilib ml -imultiarch ma -nostdinc++ -undef -trigraphs \
             -traditional-cpp -remap -H -finput-charset=latin1 -c a.cc",
            "-c -c a.c -x none",
        ];
        for line in lines {
            let p = plan(line);
            let remote = strs(&p.remote_args);
            let stages = remote.iter().filter(|a| **a == "-c" || **a == "-S").count();
            assert_eq!(stages, 1, "`{line}` -> {remote:?}");
            let wire: Vec<Vec<u8>> = remote.iter().map(|a| a.as_bytes().to_vec()).collect();
            if let Err(e) = crate::rules::box_args::BoxArgs::parse(&wire) {
                panic!("`{line}` sends what the box refuses: {e}");
            }
        }
    }

    /// Runs the commands rcc would run against the real gcc and g++ and compares.
    mod real_gcc {
        use super::super::*;
        use super::argv;
        use std::collections::BTreeMap;
        use std::fs;
        use std::path::{Path, PathBuf};
        use std::process::{Command, Stdio};
        use std::sync::atomic::{AtomicUsize, Ordering};

        /// The project every case is built in: relative paths only, so that dependency
        /// files made in two copies of it can be compared byte for byte.
        const TREE: &[(&str, &str)] = &[
            (
                "src/foo.c",
                "#include <stddef.h>\n#include \"h.h\"\nstatic const char *file = __FILE__;\n\
                 size_t f(int x) { return x * X + sizeof(struct s) + (size_t)file[0]; }\n",
            ),
            (
                "src/foo.cpp",
                "#include <cstddef>\n#include \"h.h\"\ntemplate <typename T> T twice(T v) \
                 { return v + v; }\nnamespace { int hidden(int v) { return twice(v) * X; } }\n\
                 int g(int v) { return hidden(v) + (int)sizeof(s); }\n",
            ),
            // Weird suffix, valid as C and as C++.
            (
                "src/weird.k",
                "#include \"h.h\"\nint w(void) { return X; }\n",
            ),
            ("src/asm.S", ASM),
            ("src/asm.sx", ASM),
            ("src/a.asm", ASM),
            ("src/pre.i", "# 1 \"pre.c\"\nint pre(void) { return 7; }\n"),
            (
                "src/pre.ii",
                "# 1 \"pre.cc\"\nnamespace n { int pre() { return 7; } }\n",
            ),
            ("inc/h.h", "#define X 3\nstruct s { int a; };\n"),
            ("inc/asmdef.h", "#define VALUE 42\n"),
            (
                "kernel/fork.c",
                "#include <linux/types.h>\n#include <asm/page.h>\nconst char *fork_name = \
                 KBUILD_MODNAME \" \" __FILE__;\n\
                 u32 fork_pages(u32 n) { return n << PAGE_SHIFT; }\n",
            ),
            (
                "kernel/head.S",
                "#include <asm/page.h>\n\t.data\n\t.globl head_shift\nhead_shift:\n\t.long \
                 PAGE_SHIFT\n",
            ),
            (
                "include/linux/types.h",
                "#ifndef __ASSEMBLY__\ntypedef unsigned int u32;\n#endif\n",
            ),
            ("include/linux/kconfig.h", "#define CONFIG_FORK 1\n"),
            ("include/linux/compiler-version.h", "/* gcc 12 */\n"),
            ("arch/arm64/include/asm/page.h", "#define PAGE_SHIFT 12\n"),
            // Directories the outputs go to.
            ("obj/.keep", ""),
            ("o2/.keep", ""),
            ("a.b/.keep", ""),
            ("sp ace/.keep", ""),
        ];

        const ASM: &str = "#include \"asmdef.h\"\n\t.data\n\t.globl value\nvalue:\n\t.long VALUE\n";

        /// A fresh directory under the system temp dir, removed when dropped.
        struct TempDir(PathBuf);

        impl TempDir {
            fn new() -> TempDir {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let dir =
                    std::env::temp_dir().join(format!("rcc-args-test-{}-{n}", std::process::id()));
                let _ = fs::remove_dir_all(&dir);
                fs::create_dir_all(&dir).expect("create temp dir");
                TempDir(dir)
            }
        }

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = fs::remove_dir_all(&self.0);
            }
        }

        fn write_tree(root: &Path) {
            for (path, text) in TREE {
                let path = root.join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, text).unwrap();
            }
        }

        /// Every file under `root`, by relative path.
        fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
            fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
                for entry in fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        walk(root, &path, out);
                    } else {
                        let rel = path
                            .strip_prefix(root)
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_string();
                        out.insert(rel, fs::read(&path).unwrap());
                    }
                }
            }
            let mut out = BTreeMap::new();
            walk(root, root, &mut out);
            out
        }

        /// Files under `root` that are not part of the tree.
        fn new_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
            let mut all = files(root);
            all.retain(|path, _| !TREE.iter().any(|(p, _)| p == path));
            all
        }

        /// Runs a compiler; panics with everything needed to reproduce a failure.
        fn run(program: &str, args: &[OsString], cwd: &Path) -> Vec<u8> {
            let out = Command::new(program)
                .args(args)
                .current_dir(cwd)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
            assert!(
                out.status.success(),
                "{program} {args:?} in {}: {}\nstdout:\n{}\nstderr:\n{}",
                cwd.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }

        fn have_compilers() -> bool {
            let found = ["gcc", "g++"].iter().all(|c| {
                Command::new(c)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
            if !found {
                eprintln!("note: gcc or g++ is not on PATH; skipping the real-compiler checks");
            }
            found
        }

        fn show(files: &BTreeMap<String, Vec<u8>>) -> String {
            files
                .iter()
                .map(|(p, b)| format!("{p}:\n{}", String::from_utf8_lossy(b)))
                .collect::<Vec<_>>()
                .join("\n")
        }

        /// One command line, checked three ways:
        /// 1. `compiler ARGS` in one copy of the tree and `compiler cpp_args` in another
        ///    leave the same new files (the dependency file: same path, same bytes), apart
        ///    from the output, which must be where `plan.output` says;
        /// 2. that dependency file is `dep` = (path, target), to pin down what gcc does;
        /// 3. the text `cpp_args` write in the first copy (where the local compile ran, so
        ///    that `-g`'s working directory is the same), compiled in a third directory
        ///    with `remote_args`, gives the bytes of the local output, and nothing else.
        fn check(compiler: &str, line: &[&str], dep: Option<(&str, &str)>) {
            check_with(compiler, line, dep, true);
        }

        /// [`check`] without step 3, for `-g`: a compile of preprocessed text (distcc's
        /// too) records other columns wherever a macro expanded earlier on the line
        /// (stddef.h's `typedef __SIZE_TYPE__ size_t;`, `n << PAGE_SHIFT`), in
        /// DW_AT_decl_column and the line table. The rest of the debug info is the same.
        fn check_deps(compiler: &str, line: &[&str], dep: Option<(&str, &str)>) {
            check_with(compiler, line, dep, false);
        }

        fn check_with(
            compiler: &str,
            line: &[&str],
            dep: Option<(&str, &str)>,
            compare_object: bool,
        ) {
            let args: Vec<OsString> = line.iter().map(OsString::from).collect();
            let plan = classify(&args).unwrap_or_else(|r| panic!("{line:?} stayed local: {r}"));
            let tmp = TempDir::new();
            let (local, cpp, remote) = (tmp.0.join("local"), tmp.0.join("cpp"), tmp.0.join("box"));
            write_tree(&local);
            write_tree(&cpp);
            fs::create_dir(&remote).unwrap();

            run(compiler, &args, &local);
            if let Some(cpp_args) = &plan.cpp_args {
                run(compiler, cpp_args, &cpp);
            }
            let mut by_gcc = new_files(&local);
            let output = plan.output.to_str().unwrap();
            let object = by_gcc.remove(output).unwrap_or_else(|| {
                panic!(
                    "{line:?}: gcc did not write {output}; it wrote:\n{}",
                    show(&by_gcc)
                )
            });
            let by_cpp = new_files(&cpp);
            assert_eq!(
                by_gcc,
                by_cpp,
                "{line:?}: cpp_args {:?} wrote other files.\ngcc:\n{}\ncpp:\n{}",
                plan.cpp_args,
                show(&by_gcc),
                show(&by_cpp)
            );
            let found = by_gcc.iter().next().map(|(path, text)| {
                let text = String::from_utf8_lossy(text);
                (path.clone(), text.split(": ").next().unwrap().to_string())
            });
            let want = dep.map(|(p, t)| (p.to_string(), t.to_string()));
            assert_eq!(found, want, "{line:?}: dependency file (path, target)");
            assert!(by_gcc.len() <= 1, "{line:?}: {}", show(&by_gcc));

            if !compare_object {
                return;
            }
            // Rewrites the dependency file with the same bytes.
            let text = match &plan.cpp_args {
                Some(cpp_args) => run(compiler, cpp_args, &local),
                None => fs::read(local.join(&plan.source)).unwrap(),
            };
            let input = format!("input.{}", plan.remote_input_ext);
            let out_name = match plan.stage {
                Stage::Object => "output.o",
                Stage::Assembly => "output.s",
            };
            fs::write(remote.join(&input), &text).unwrap();
            let mut box_args = plan.remote_args.clone();
            box_args.extend([input.as_str(), "-o", out_name].map(OsString::from));
            run(compiler, &box_args, &remote);
            let mut on_box = files(&remote);
            on_box.remove(&input);
            let compiled = on_box
                .remove(out_name)
                .expect("the box compile wrote its output");
            assert!(
                on_box.is_empty(),
                "{line:?}: the box compile left {:?}",
                on_box.keys()
            );
            assert!(
                compiled == object,
                "{line:?}: the box's {out_name} differs from {output}"
            );
        }

        #[test]
        fn c_dependency_files_and_objects_match_gcc() {
            if !have_compilers() {
                return;
            }
            let c = |line: &[&str], dep| check("gcc", line, dep);
            let src = ["src/foo.c", "-Iinc"];
            let with = |pre: &[&'static str], post: &[&'static str]| -> Vec<&'static str> {
                pre.iter().chain(&src).chain(post).copied().collect()
            };
            c(&with(&["-MD", "-c"], &[]), Some(("foo.d", "foo.o")));
            c(
                &with(&["-MD", "-c"], &["-o", "obj/foo.o"]),
                Some(("obj/foo.d", "obj/foo.o")),
            );
            c(
                &with(&["-MMD", "-c"], &["-o", "obj/foo"]),
                Some(("obj/foo.d", "obj/foo")),
            );
            c(
                &with(&["-MD", "-c"], &["-o", "o2/foo.x.y"]),
                Some(("o2/foo.x.d", "o2/foo.x.y")),
            );
            c(
                &with(&["-MD", "-c"], &["-o", "a.b/foo"]),
                Some(("a.b/foo.d", "a.b/foo")),
            );
            c(
                &with(&["-MD", "-c"], &["-o", "obj/.o"]),
                Some(("obj/.d", "obj/.o")),
            );
            c(&with(&["-MMD", "-S"], &[]), Some(("foo.d", "foo.o")));
            c(
                &with(&["-MMD", "-S"], &["-o", "obj/foo.s"]),
                Some(("obj/foo.d", "obj/foo.s")),
            );
            c(
                &with(&["-MD", "-MF", "obj/dep.d", "-c"], &["-o", "obj/foo.o"]),
                Some(("obj/dep.d", "obj/foo.o")),
            );
            c(
                &with(&["-MD", "-MT", "tgt", "-c"], &["-o", "obj/foo.o"]),
                Some(("obj/foo.d", "tgt")),
            );
            c(
                &with(&["-MD", "-MQ", "x$y", "-c"], &["-o", "obj/foo.o"]),
                Some(("obj/foo.d", "x$$y")),
            );
            c(
                &with(
                    &["-MMD", "-MT", "t1", "-MQ", "t2", "-c"],
                    &["-o", "obj/foo.o"],
                ),
                Some(("obj/foo.d", "t1 t2")),
            );
            c(
                &with(&["-MD", "-MP", "-c"], &["-o", "obj/foo.o"]),
                Some(("obj/foo.d", "obj/foo.o")),
            );
            c(
                &with(&["-MD", "-MMD", "-c"], &["-o", "obj/foo.o"]),
                Some(("obj/foo.d", "obj/foo.o")),
            );
            c(
                &with(&["-MMD", "-MD", "-c"], &["-o", "obj/foo.o"]),
                Some(("obj/foo.d", "obj/foo.o")),
            );
            c(
                &with(&["-MD", "-c"], &["-o", "sp ace/a$b c.o"]),
                Some(("sp ace/a$b c.d", "sp\\ ace/a$$b\\ c.o")),
            );
            c(
                &with(&["-MD", "-MFobj/x.d", "-MTtgt", "-c"], &["-oobj/foo.o"]),
                Some(("obj/x.d", "tgt")),
            );
            // cc1 picks the target for -Wp,-MD: the source's basename, whatever -o says.
            c(
                &with(&["-Wp,-MD,obj/.foo.o.d", "-c"], &["-o", "o2/foo.o"]),
                Some(("obj/.foo.o.d", "foo.o")),
            );
            c(
                &with(
                    &["-Wp,-MMD,obj/.foo.o.d,-DEXTRA=1", "-c"],
                    &["-o", "o2/bar.o"],
                ),
                Some(("obj/.foo.o.d", "foo.o")),
            );
            c(
                &with(
                    &["-Wp,-MMD,obj/.foo.o.d", "-MT", "ttt", "-c"],
                    &["-o", "o2/bar.o"],
                ),
                Some(("obj/.foo.o.d", "ttt")),
            );
            // -g records the working directory: the -E text carries it to the box.
            check_deps(
                "gcc",
                &with(&["-MD", "-O2", "-g", "-c"], &["-o", "obj/foo.o"]),
                Some(("obj/foo.d", "obj/foo.o")),
            );
            c(
                &[
                    "-g",
                    "-O2",
                    "-x",
                    "c",
                    "-c",
                    "src/weird.k",
                    "-Iinc",
                    "-o",
                    "obj/w.o",
                ],
                None,
            );
            c(
                &[
                    "-MD",
                    "-x",
                    "c",
                    "-c",
                    "src/weird.k",
                    "-Iinc",
                    "-o",
                    "obj/w.o",
                ],
                Some(("obj/w.d", "obj/w.o")),
            );
            c(
                &["-MD", "-x", "c", "-c", "src/weird.k", "-Iinc"],
                Some(("weird.d", "weird.o")),
            );
            c(&["-MD", "-c", "src/pre.i", "-o", "obj/pre.o"], None);
            c(&["-O2", "-c", "src/pre.i"], None);
            c(
                &with(
                    &[
                        "-O2",
                        "-c",
                        "-DEXTRA=2",
                        "-fno-common",
                        "-Wall",
                        "-std=gnu11",
                    ],
                    &[],
                ),
                None,
            );
            c(
                &with(&["-O2", "-S", "-fmacro-prefix-map=src/=lib/"], &[]),
                None,
            );
        }

        #[test]
        fn cxx_dependency_files_and_objects_match_gxx() {
            if !have_compilers() {
                return;
            }
            let cxx = |line: &[&str], dep| check("g++", line, dep);
            cxx(
                &["-MMD", "-c", "src/foo.cpp", "-Iinc", "-o", "obj/foo.o"],
                Some(("obj/foo.d", "obj/foo.o")),
            );
            cxx(
                &["-MD", "-c", "src/foo.cpp", "-Iinc"],
                Some(("foo.d", "foo.o")),
            );
            cxx(
                &[
                    "-MD",
                    "-MP",
                    "-O2",
                    "-S",
                    "src/foo.cpp",
                    "-Iinc",
                    "-o",
                    "o2/foo.s",
                ],
                Some(("o2/foo.d", "o2/foo.s")),
            );
            cxx(
                &[
                    "-Wp,-MD,obj/.foo.d",
                    "-O2",
                    "-c",
                    "src/foo.cpp",
                    "-Iinc",
                    "-o",
                    "o2/foo.o",
                ],
                Some(("obj/.foo.d", "foo.o")),
            );
            cxx(
                &[
                    "-MD",
                    "-std=c++17",
                    "-c",
                    "src/foo.cpp",
                    "-Iinc",
                    "-o",
                    "sp ace/x$y.o",
                ],
                Some(("sp ace/x$y.d", "sp\\ ace/x$$y.o")),
            );
            cxx(&["-O2", "-c", "src/pre.ii", "-o", "obj/pre.o"], None);
            check(
                "gcc",
                &[
                    "-x",
                    "c++",
                    "-MD",
                    "-c",
                    "src/weird.k",
                    "-Iinc",
                    "-o",
                    "obj/wk.o",
                ],
                Some(("obj/wk.d", "obj/wk.o")),
            );
            check(
                "gcc",
                &["-O1", "-c", "src/foo.cpp", "-Iinc", "-o", "obj/foo.o"],
                None,
            );
        }

        #[test]
        fn assembler_dependency_files_and_objects_match_gcc() {
            if !have_compilers() {
                return;
            }
            let c = |line: &[&str], dep| check("gcc", line, dep);
            c(
                &["-MD", "-c", "src/asm.S", "-Iinc", "-o", "obj/asm.o"],
                Some(("obj/asm.d", "obj/asm.o")),
            );
            c(&["-g", "-c", "src/asm.S", "-Iinc", "-o", "obj/g.o"], None);
            c(&["-c", "src/asm.S", "-Iinc"], None);
            c(
                &["-MMD", "-c", "src/asm.sx", "-Iinc", "-Wa,--noexecstack"],
                Some(("asm.d", "asm.o")),
            );
            c(
                &[
                    "-MMD",
                    "-x",
                    "assembler-with-cpp",
                    "-c",
                    "src/a.asm",
                    "-Iinc",
                    "-o",
                    "obj/a.o",
                ],
                Some(("obj/a.d", "obj/a.o")),
            );
        }

        /// Full `-E` drops fall-through comments, so a box compiling its text would warn (and
        /// under `-Werror` fail) where gcc does not; directives-only text keeps them. With
        /// and without debug info, the plan gives gcc's object and gcc's (empty) stderr.
        #[test]
        fn fallthrough_comments_reach_the_box() {
            if !have_compilers() {
                return;
            }
            let tmp = TempDir::new();
            let source = "int f(int x) {\n  int r = 0;\n  switch (x) {\n  case 1:\n    r++;\n    \
                          /* fall through */\n  case 2:\n    r++;\n  }\n  return r;\n}\n";
            fs::write(tmp.0.join("ft.c"), source).unwrap();
            for line in [
                "-Wextra -Werror -O2 -c ft.c",
                "-g -Wextra -Werror -O2 -c ft.c",
            ] {
                let args = argv(line);
                let p = classify(&args).unwrap_or_else(|r| panic!("{line}: {r}"));
                assert!(
                    super::strs(&p.remote_args).contains(&"-fdirectives-only"),
                    "{line}"
                );
                run("gcc", &args, &tmp.0);
                let want = fs::read(tmp.0.join("ft.o")).unwrap();
                let text = run("gcc", p.cpp_args.as_ref().unwrap(), &tmp.0);
                fs::write(tmp.0.join("box.i"), text).unwrap();
                let mut remote = p.remote_args.clone();
                remote.extend(argv("box.i -o box.o"));
                let on_box = Command::new("gcc")
                    .args(&remote)
                    .current_dir(&tmp.0)
                    .output()
                    .unwrap();
                assert!(
                    on_box.status.success(),
                    "{line}: {}",
                    String::from_utf8_lossy(&on_box.stderr)
                );
                assert!(
                    on_box.stderr.is_empty(),
                    "{line}: {}",
                    String::from_utf8_lossy(&on_box.stderr)
                );
                if !line.starts_with("-g") {
                    assert!(fs::read(tmp.0.join("box.o")).unwrap() == want, "{line}");
                }
            }
        }

        #[test]
        fn linux_kernel_command_lines_match_gcc() {
            if !have_compilers() {
                return;
            }
            // As kbuild writes them, less the arm64-only -mlittle-endian (this runs on any
            // host), with the shell's quoting already removed.
            let common = [
                "-nostdinc",
                "-I./arch/arm64/include",
                "-I./include",
                "-include",
                "./include/linux/compiler-version.h",
                "-include",
                "./include/linux/kconfig.h",
                "-D__KERNEL__",
                "-fmacro-prefix-map=./=",
                "-Wall",
                "-O2",
            ];
            let mut fork = vec!["-Wp,-MMD,kernel/.fork.o.d"];
            fork.extend(common);
            fork.extend([
                "-DKBUILD_MODNAME=\"fork\"",
                "-c",
                "-o",
                "kernel/fork.o",
                "kernel/fork.c",
            ]);
            check("gcc", &fork, Some(("kernel/.fork.o.d", "fork.o")));
            let mut head = vec!["-Wp,-MMD,kernel/.head.o.d"];
            head.extend(common);
            head.extend([
                "-D__ASSEMBLY__",
                "-c",
                "-o",
                "kernel/head.o",
                "kernel/head.S",
            ]);
            check("gcc", &head, Some(("kernel/.head.o.d", "head.o")));
        }
    }
}
