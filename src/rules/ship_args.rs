//! Compiler argv -> the box's half of a job that ships its sources (the box preprocesses):
//! which arguments the box's compiler gets as they are, which name include paths (the box
//! puts its private mirror of the master's files in front of absolute ones), which decide
//! where the compiler searches (asked of the master's compiler once per set), and which
//! dependency file the master must end up with. Runs after `args::classify` said the command
//! may go to a box at all; anything this mode does not reproduce exactly is an `Err` with the
//! reason, and the job is preprocessed at home as before. No I/O.

use crate::rules::args::{self, Class, Dep, Lang, Plan, Stage};
use crate::wire::protocol::DepRequest;
use std::ffi::OsString;

/// How a job that ships its sources is compiled on a box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipPlan {
    /// Passed to the box's compiler as they are (`-c`, `-O2`, `-DX=1`, `-std=gnu11`, prefix
    /// maps...). Values are joined to their options (`-D X` becomes `-DX`).
    pub literal: Vec<String>,
    /// `-include` and `-imacros` files, in order, as the command names them.
    pub includes: Vec<(String, String)>,
    /// The `-I` directories as the command names them, in order (to tell them from system
    /// directories in the compiler's search list).
    pub user_dirs: Vec<String>,
    /// What decides where the compiler looks: the command without its source, output,
    /// macros and dependency options (so one probe serves every file of a directory).
    pub probe_args: Vec<OsString>,
    /// The dependency file a local compile would write, and how the box makes it.
    pub deps: Option<DepPlan>,
    /// The language name for the search-path probe (`c`, `c++`).
    pub lang: &'static str,
}

/// Where the master writes the dependency file, and what the box is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepPlan {
    /// The path a local compile writes (relative to the working directory, or absolute).
    pub file: String,
    pub request: DepRequest,
}

/// The box's half of `plan` (from `args::classify(args)`), or why this job is preprocessed
/// at home instead.
pub fn ship_plan(argv: &[OsString], plan: &Plan) -> Result<ShipPlan, String> {
    let lang = match plan.lang {
        Lang::C => "c",
        Lang::Cxx => "c++",
        Lang::AsmCpp => "assembler-with-cpp",
        other => return Err(format!("{other:?} sources are preprocessed here")),
    };
    let a = args::texts(argv).map_err(|r| r.to_string())?;
    let source = plan.source.to_str().ok_or("the source name is not UTF-8")?;
    let output = plan.output.to_str().ok_or("the output name is not UTF-8")?;
    let mut sp = ShipPlan {
        literal: Vec::new(),
        includes: Vec::new(),
        user_dirs: Vec::new(),
        probe_args: Vec::new(),
        deps: None,
        lang,
    };
    let mut deps = DepOptions::default();
    let mut i = 0;
    while i < a.len() {
        let arg = a[i];
        if !arg.starts_with('-') || arg == "-" {
            // The one source (classify made sure); it travels in the manifest.
            i += 1;
            continue;
        }
        i += option(&mut sp, &mut deps, &a, i)?;
    }
    sp.deps = deps.plan(source, output)?;
    if sp
        .literal
        .iter()
        .filter(|l| *l == "-c" || *l == "-S")
        .count()
        != 1
    {
        return Err("needs exactly one -c or -S".into());
    }
    // A box refuses what its option parser does not take: keep such a job here without
    // the round trip.
    let wire: Vec<Vec<u8>> = sp.literal.iter().map(|a| a.as_bytes().to_vec()).collect();
    crate::rules::box_args::BoxArgs::parse(&wire)
        .and_then(|a| a.check_for_sources())
        .map_err(|e| format!("a box would refuse it: {e}"))?;
    Ok(sp)
}

/// The dependency-file options a command gave.
#[derive(Default)]
struct DepOptions<'a> {
    /// `-MD` or `-MMD`: whether only user headers are listed (`-MMD` anywhere).
    kind: Option<bool>,
    /// `-MF`.
    mf: Option<&'a str>,
    /// `-MT` and `-MQ` values, in order.
    mt: Vec<String>,
    mq: Vec<String>,
    /// `-MP`.
    phony: bool,
    /// `-Wp,-MD,FILE` or `-Wp,-MMD,FILE`: whether `-MMD`, and the file.
    wp: Option<(bool, &'a str)>,
    /// Whether the command has `-o`.
    outputs_seen: bool,
}

/// Takes the option at `a[i]` into `sp` and `deps`. Returns how many arguments it used;
/// `Err` when this mode does not reproduce it.
fn option<'a>(
    sp: &mut ShipPlan,
    deps: &mut DepOptions<'a>,
    a: &[&'a str],
    i: usize,
) -> Result<usize, String> {
    let arg = a[i];
    let (class, value, used) = args::lookup(a, i).map_err(|r| r.to_string())?;
    let words = &a[i..i + used];
    let v = value.unwrap_or("");
    match class {
        Class::Stage(_) => sp.literal.push(arg.to_string()),
        Class::Output => deps.outputs_seen = true,
        Class::Language => {
            return Err("-x: the box names the source by its suffix".into());
        }
        Class::Link => {}
        Class::Dep(d) => match d {
            Dep::Write => {
                let user_only = arg == "-MMD";
                deps.kind = Some(deps.kind.unwrap_or(false) || user_only);
            }
            Dep::File => deps.mf = Some(v),
            Dep::Target if arg.starts_with("-MT") => deps.mt.push(v.to_string()),
            Dep::Target => deps.mq.push(v.to_string()),
            Dep::Other => deps.phony = true,
        },
        Class::WpList => {
            let list = &arg["-Wp,".len()..];
            match list.split_once(',') {
                Some((m @ ("-MD" | "-MMD"), file)) if !file.contains(',') && !file.is_empty() => {
                    deps.wp = Some((m == "-MMD", file));
                }
                _ => {
                    return Err(format!(
                        "{arg}: only -Wp,-MD,FILE and -Wp,-MMD,FILE are shipped"
                    ))
                }
            }
        }
        Class::Cpp => cpp_option(sp, words, v)?,
        Class::Both | Class::WaList => {
            sp.literal.extend(words.iter().map(|w| w.to_string()));
            sp.probe_args.extend(words.iter().map(OsString::from));
        }
        Class::Local(_) => return Err(format!("{arg} stays local")),
    }
    Ok(used)
}

/// Takes a preprocessing option (`words`, its value `v`) into `sp`: where the compiler
/// searches goes to the probe, macros to the box's command line, the `-include` files to
/// the manifest. `Err` for what this mode does not reproduce.
fn cpp_option(sp: &mut ShipPlan, words: &[&str], v: &str) -> Result<(), String> {
    let arg = words[0];
    let name = arg.strip_suffix(v).unwrap_or(arg);
    let name = if words.len() == 2 { arg } else { name };
    match name {
        "-I" | "-isystem" | "-idirafter" | "-iquote" => {
            if v == "-" || v.is_empty() {
                return Err(format!("{arg} {v}: not a directory rcc follows"));
            }
            if name == "-I" {
                sp.user_dirs.push(v.to_string());
            }
            sp.probe_args.extend(words.iter().map(OsString::from));
        }
        "-include" | "-imacros" => {
            sp.includes.push((name.to_string(), v.to_string()));
            sp.probe_args.extend(words.iter().map(OsString::from));
        }
        "-D" | "-U" | "-A" => sp.literal.push(format!("{name}{v}")),
        "-nostdinc" | "-nostdinc++" | "-isysroot" => {
            sp.probe_args.extend(words.iter().map(OsString::from))
        }
        _ if arg.starts_with("--sysroot") => sp.probe_args.extend(words.iter().map(OsString::from)),
        "-undef" | "-trigraphs" => {
            sp.literal.push(arg.to_string());
            sp.probe_args.push(arg.into());
        }
        _ if arg.starts_with("-finput-charset=") => sp.literal.push(arg.to_string()),
        _ => return Err(format!("{arg} is preprocessed here")),
    }
    Ok(())
}

impl DepOptions<'_> {
    /// The dependency file a local compile of `source` (to `output`) would write, and how
    /// the box makes it; `None` when it writes none.
    fn plan(self, source: &str, output: &str) -> Result<Option<DepPlan>, String> {
        let DepOptions {
            kind,
            mf,
            mt,
            mut mq,
            phony,
            wp,
            outputs_seen,
        } = self;
        let stem_o = args::default_output(source, Stage::Object);
        let (user_only, file) = match (kind, wp) {
            (Some(_), Some(_)) => return Err("-Wp,-MD together with -MD or -MMD".into()),
            (None, None) => return Ok(None),
            (Some(user_only), None) => {
                let file = match mf {
                    Some(f) => f.to_string(),
                    None if outputs_seen => args::dep_file_for(output),
                    None => {
                        let stem = stem_o.strip_suffix(".o").unwrap_or(&stem_o);
                        format!("{stem}.d")
                    }
                };
                if mt.is_empty() && mq.is_empty() {
                    // The driver's own target: the output, or cc1's default without `-o`.
                    mq.push(if outputs_seen {
                        output.to_string()
                    } else {
                        stem_o.clone()
                    });
                }
                (user_only, file)
            }
            // cc1's own: the file given, and cc1's default target (without `-o`'s
            // directory), unless -MT/-MQ say otherwise.
            (None, Some((user_only, file))) => {
                if mt.is_empty() && mq.is_empty() {
                    mq.push(stem_o.clone());
                }
                (user_only, file.to_string())
            }
        };
        Ok(Some(DepPlan {
            file,
            request: DepRequest {
                user_only,
                mt,
                mq,
                phony,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ship(line: &str) -> Result<ShipPlan, String> {
        let argv: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        let plan = args::classify(&argv).map_err(|r| r.to_string())?;
        ship_plan(&argv, &plan)
    }

    #[test]
    fn options_are_split_between_the_box_the_probe_and_the_manifest() {
        let p = ship(
            "-O2 -g -Iinc -I /abs -isystem sys -D X=1 -DY -U Z -include cfg.h -std=gnu11 \
             -c src/a.c -o obj/a.o -lm -Wall",
        )
        .unwrap();
        assert_eq!(
            p.literal,
            [
                "-O2",
                "-g",
                "-DX=1",
                "-DY",
                "-UZ",
                "-std=gnu11",
                "-c",
                "-Wall"
            ]
        );
        assert_eq!(p.user_dirs, ["inc", "/abs"]);
        assert_eq!(p.includes, [("-include".to_string(), "cfg.h".to_string())]);
        let probe: Vec<_> = p.probe_args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            probe,
            [
                "-O2",
                "-g",
                "-Iinc",
                "-I",
                "/abs",
                "-isystem",
                "sys",
                "-include",
                "cfg.h",
                "-std=gnu11",
                "-Wall"
            ]
        );
        assert_eq!(p.deps, None);
        assert_eq!(p.lang, "c");
    }

    #[test]
    fn dependency_files_as_gcc_names_them() {
        let d = |line: &str| ship(line).unwrap().deps.unwrap();
        let x = d("-MD -c src/a.c -o obj/a.o");
        assert_eq!(x.file, "obj/a.d");
        assert_eq!(x.request.mq, ["obj/a.o"]);
        assert!(!x.request.user_only);
        let x = d("-MMD -MP -c src/a.c");
        assert_eq!(
            (x.file.as_str(), x.request.mq.clone()),
            ("a.d", vec!["a.o".to_string()])
        );
        assert!(x.request.user_only && x.request.phony);
        let x = d("-MD -MF deps/x -MT t1 -MQ t2 -c a.cc -o b.o");
        assert_eq!(x.file, "deps/x");
        assert_eq!(
            (x.request.mt.clone(), x.request.mq.clone()),
            (vec!["t1".to_string()], vec!["t2".to_string()])
        );
        // The kernel's: cc1 names the target without -o's directory.
        let x = d("-Wp,-MMD,kernel/.fork.o.d -c -o kernel/fork.o kernel/fork.c");
        assert_eq!(x.file, "kernel/.fork.o.d");
        assert_eq!(x.request.mq, ["fork.o"]);
        assert!(x.request.user_only);
    }

    #[test]
    fn what_this_mode_does_not_reproduce_is_preprocessed_here() {
        for line in [
            "-x c -c a.k",
            "-c a.i",
            "-H -c a.c",
            "-iprefix /p -c a.c",
            "-Wp,-DX -c a.c",
            "-I- -c a.c",
            "-A p=q -c a.c",
        ] {
            assert!(ship(line).is_err(), "{line}");
        }
    }
}
