//! Attacks an independent hostile client found against rccd, as a table of jobs: gcc's
//! response files (`@file`) reached through the manifest, gcc's long and abbreviated option
//! spellings, walks around the include check, verdict cache poisoning and a peer that lies.
//! Each row goes over a real socket to a real rccd, once with its Landlock sandbox and once
//! without (`RCCD_TEST_NO_LANDLOCK=1`), and must be refused or run with no effect outside
//! the job: no file made outside rccd's temp dir, no secret in the reply, no program run.
//! The rows assert effects, never exact messages. After the rows the daemon compiles a
//! good job and holds no job dirs. A failure names each failing row and what came back;
//! `ATTACKS_VERBOSE=1` prints every row's reply in one line.

use crate::util::*;

use rcc::wire::protocol::{
    self, DepRequest, Done, FileEntry, JobRequest, Manifest, Message, Mode, RejectReason,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the shell payloads print: only a shell that ran can spell it (the payload writes
/// `$((1000+337))`), so a reply that quotes the payload does not count.
const RAN: &str = "RCE_RAN_1337";
/// What the `__has_include` probes print when the box's file exists.
const PROBE_HIT: &str = "PROBE_HIT";
/// The job's working directory on the master.
const CWD: &str = "/w";

/// A test's own files outside rccd: a secret to steal, programs and argument files a
/// payload would run or read, and `out/`, where payloads would write.
struct Lab {
    t: TempDir,
    /// The secret file, and the marker in it (never in any request).
    secret: String,
    mark: String,
    /// A shell command that proves it ran: prints `RAN`, the secret, and makes `out/pwned`.
    shell: String,
    /// A directory with programs named as gcc's subprograms (`as`, `cc1`, `cc1plus`).
    evil: String,
    out: String,
}

impl Lab {
    fn new(name: &str) -> Lab {
        use std::os::unix::fs::PermissionsExt;
        let t = TempDir::new(name);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let mark = format!("SECRET_{:x}", nanos ^ std::process::id() as u128);
        let secret = t.write("secret/key.txt", &format!("{mark} of the box;\n"));
        let out = t.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let p = |p: &Path| p.display().to_string();
        let shell = format!(
            "echo RCE_RAN_$((1000+337)); cat {}; touch {}/pwned",
            p(&secret),
            p(&out)
        );
        let evil = t.join("evil");
        for prog in ["as", "cc1", "cc1plus", "mapper"] {
            let f = t.write(&format!("evil/{prog}"), &format!("#!/bin/sh\n{shell}\n"));
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let lab = Lab {
            secret: p(&secret),
            mark,
            shell,
            evil: p(&evil),
            out: p(&out),
            t,
        };
        // Argument files of the box itself, for `@ABS` rows.
        lab.t.write("evil/args.c", &lab.args_file(true));
        lab.t.write(
            "evil/evil.specs",
            &format!("*cpp:\n+ -include {}\n", lab.secret),
        );
        // A shared object whose constructor runs `shell` as the compiler loads it (before
        // gcc looks for a plugin's symbols), for `--plugin=` and `-fplugin=`.
        let c = lab.t.write(
            "evil/x.c",
            &format!(
                "#include <stdlib.h>\n__attribute__((constructor)) static void run(void) \
                 {{ system({:?}); }}\n",
                lab.shell
            ),
        );
        let so = format!("{}/x.so", lab.evil);
        ok(std::process::Command::new("gcc")
            .args(["-shared", "-fPIC", "-o", &so])
            .arg(&c));
        // An assembler's argument file, for `--for-assembler=@ABS`.
        lab.t
            .write("evil/as.args", &format!("-adhln={}/as-listing\n", lab.out));
        lab
    }

    /// A response file that makes gcc run `shell` through `-wrapper`; `with_input` when it
    /// stands for the source (it then names one, the job's `a.c`).
    fn args_file(&self, with_input: bool) -> String {
        let first = if with_input { "a.c" } else { "-D_X" };
        format!("{first} -wrapper '/bin/sh,-c,{}'\n", self.shell)
    }

    /// The secret's directory and file name.
    fn secret_dir(&self) -> &str {
        self.secret.rsplit_once('/').unwrap().0
    }

    /// A relative name that climbs from the job's files to the secret.
    fn climbing(&self) -> String {
        format!("{}{}", "../".repeat(40), &self.secret[1..])
    }

    /// Everything under the lab, to see what a row made there.
    fn files(&self) -> BTreeSet<PathBuf> {
        let mut all = BTreeSet::new();
        walk(self.t.path(), &mut all);
        all
    }
}

fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        out.insert(p.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        }
    }
}

/// What a row sends: a job request, then (sources) a manifest and the files asked for, or
/// (preprocessed) the text.
#[derive(Clone)]
struct Job {
    mode: Mode,
    args: Vec<Vec<u8>>,
    source: String,
    paths: Vec<(String, String)>,
    deps: Option<DepRequest>,
    files: Vec<FileEntry>,
    /// What to send for file `i` when it is asked for.
    contents: Vec<Vec<u8>>,
    /// Blobs sent instead of what was asked for (a lying peer).
    blobs: Option<Vec<(u32, Vec<u8>)>>,
    /// A hand-made manifest frame instead of the encoded one.
    raw_manifest: Option<Vec<u8>>,
    /// The compiler's name and path (gcc unless a row says).
    compiler: (&'static str, PathBuf),
}

impl Job {
    /// A sources job of `a.c` (in `CWD`) with `text`, compiled with `args`.
    fn c(args: &[&str], text: &str) -> Job {
        Job::named(args, "a.c", text)
    }

    /// A sources job of `source` (in `CWD`) with `text`.
    fn named(args: &[&str], source: &str, text: &str) -> Job {
        Job {
            mode: Mode::Sources,
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            source: source.into(),
            paths: vec![],
            deps: None,
            files: vec![],
            contents: vec![],
            blobs: None,
            raw_manifest: None,
            compiler: ("gcc", PathBuf::from("/usr/bin/gcc")),
        }
        .file(source, text.as_bytes())
    }

    /// A file of the job, relative to `CWD` or absolute.
    fn file(mut self, path: &str, data: &[u8]) -> Job {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{CWD}/{path}")
        };
        self.files.push(FileEntry {
            path,
            size: data.len() as u64,
            hash: rcc::sha256::digest(data),
        });
        self.contents.push(data.to_vec());
        self
    }

    fn source(mut self, s: &str) -> Job {
        self.source = s.into();
        self
    }

    fn path(mut self, opt: &str, p: &str) -> Job {
        self.paths.push((opt.into(), p.into()));
        self
    }

    fn deps(mut self, mt: &[&str], mq: &[&str]) -> Job {
        self.deps = Some(DepRequest {
            user_only: true,
            mt: mt.iter().map(|s| s.to_string()).collect(),
            mq: mq.iter().map(|s| s.to_string()).collect(),
            phony: false,
        });
        self
    }

    fn preprocessed(mut self) -> Job {
        self.mode = Mode::Preprocessed;
        self
    }

    fn request(&self) -> JobRequest {
        let identity = rcc::compiler::probe_identity(&self.compiler.1).unwrap();
        JobRequest {
            mode: self.mode,
            compress: false,
            compiler: self.compiler.0.into(),
            identity,
            args: self.args.clone(),
            input_ext: if self.source.ends_with(".cc") {
                "ii"
            } else {
                "i"
            }
            .into(),
            output_ext: "o".into(),
            cwd: CWD.as_bytes().to_vec(),
            label: "attack.c".into(),
            locale: vec![],
        }
    }

    fn manifest_frame(&self) -> Vec<u8> {
        self.raw_manifest.clone().unwrap_or_else(|| {
            protocol::encode(
                &Message::Manifest(Manifest {
                    source: self.source.clone(),
                    paths: self.paths.clone(),
                    deps: self.deps.clone(),
                    files: self.files.clone(),
                }),
                None,
            )
        })
    }
}

/// How an exchange ended.
#[derive(Debug)]
enum End {
    Done(Done),
    Reject(RejectReason, String),
    /// Closed (or a write failed) without a reply.
    Closed,
    /// Nothing within the deadline.
    Hung,
    /// A frame that makes no sense at this point.
    Other(String),
}

/// An exchange's end, where it ended, and every byte the daemon sent.
struct Reply {
    end: End,
    stage: &'static str,
    bytes: Vec<u8>,
}

impl Reply {
    /// All the text the peer got back, decoded: replies are sent uncompressed, but the
    /// raw bytes are searched too.
    fn said(&self) -> Vec<u8> {
        let mut all = self.bytes.clone();
        match &self.end {
            End::Done(d) => {
                all.extend_from_slice(&d.stdout);
                all.extend_from_slice(&d.stderr);
                for (_, o) in &d.outputs {
                    all.extend_from_slice(o);
                }
            }
            End::Reject(_, text) => all.extend_from_slice(text.as_bytes()),
            _ => {}
        }
        all
    }

    fn refused(&self) -> bool {
        matches!(self.end, End::Reject(..) | End::Closed)
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cut = |b: &[u8]| {
            let t = s(b);
            if t.len() > 600 {
                let mut end = 600;
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}...", &t[..end])
            } else {
                t
            }
        };
        match &self.end {
            End::Done(d) => write!(
                f,
                "Done after {} ({:?}, outputs {:?})\n  stdout: {}\n  stderr: {}",
                self.stage,
                d.exit,
                d.outputs
                    .iter()
                    .map(|(n, o)| (n, o.len()))
                    .collect::<Vec<_>>(),
                cut(&d.stdout),
                cut(&d.stderr)
            ),
            other => write!(f, "{other:?} at {}", self.stage),
        }
    }
}

/// One connection, frames in and out: a write the daemon no longer takes ends the writing,
/// not the reading (what it said before it closed still counts).
struct Speaker {
    p: Peer,
    broken: bool,
}

impl Speaker {
    fn send(&mut self, frame: &[u8]) {
        if !self.broken && self.p.write(frame).is_err() {
            self.broken = true;
        }
    }

    /// The next frame other than `Progress`, or how the exchange ended without one.
    fn next(&mut self) -> Result<Message, End> {
        self.p.next().map_err(|e| match e {
            Ended::Garbage(e) => End::Other(format!("garbage from the daemon: {e}")),
            Ended::Hung => End::Hung,
            Ended::Closed | Ended::Failed(_) => End::Closed,
        })
    }
}

/// Speaks `job` to the daemon at `addr` as a peer would.
fn exchange(addr: &str, job: &Job) -> Reply {
    let mut p = Speaker {
        p: Peer::connect(addr, 60),
        broken: false,
    };
    let mut stage = "the job request";
    let end = (|| {
        p.send(&protocol::encode(&Message::JobRequest(job.request()), None));
        match p.next()? {
            Message::Accept(_) => {}
            m => return Ok(m),
        }
        if job.mode == Mode::Preprocessed {
            stage = "the input";
            p.send(&protocol::encode(
                &Message::Input(job.contents[0].clone()),
                None,
            ));
        } else {
            stage = "the manifest";
            p.send(&job.manifest_frame());
            let need = match p.next()? {
                Message::Need(v) => v,
                m => return Ok(m),
            };
            let blobs = job.blobs.clone().unwrap_or_else(|| {
                need.iter()
                    .map(|&i| (i, job.contents[i as usize].clone()))
                    .collect()
            });
            for (i, data) in blobs {
                p.send(&protocol::encode(&Message::Blob(i, data), None));
            }
        }
        p.send(&protocol::encode(&Message::InputEnd, None));
        if job.mode == Mode::Sources {
            stage = "the files and the end of input";
        } else {
            stage = "the end of input";
        }
        p.next()
    })();
    let end = match end {
        Ok(Message::Done(d)) => End::Done(d),
        Ok(Message::Reject(r)) => End::Reject(r.reason, r.text),
        Ok(m) => End::Other(format!("{:?} frame", m.kind())),
        Err(e) => e,
    };
    Reply {
        end,
        stage,
        bytes: p.p.got,
    }
}

/// What a row must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// A Reject (or a close): the peer lied, nothing may run.
    Refused,
    /// A Reject, or a compile with no effect outside the job.
    Contained,
    /// As `Contained`, and the same reply as the job run with `missing` for the secret's
    /// path: whether a file of the box exists must not show.
    SameAsMissing,
    /// `SameAsMissing` in the sandbox, `Contained` without it: a `_Pragma("GCC dependency
    /// ...")` opens a file to read its time, and no check of the text can see every way
    /// macros build one. With Landlock the open fails for a file outside either way; without
    /// it, whether the compile succeeds says whether the file exists (one bit a job; README
    /// "What is still trusted").
    SameAsMissingInSandbox,
}

struct Row {
    name: String,
    job: Job,
    want: Want,
}

fn row(name: impl Into<String>, want: Want, job: Job) -> Row {
    Row {
        name: name.into(),
        job,
        want,
    }
}

const MAIN: &str = "int main(void) { return 0; }\n";

/// Attack 1: gcc reads more arguments from any argv element starting with `@`.
fn response_files(lab: &Lab, rows: &mut Vec<Row>) {
    use Want::Contained;
    let source = lab.args_file(true);
    let option = lab.args_file(false);
    // The shipped argument file is `CWD/args.c`; gcc runs in the mirror's `CWD`.
    let with = |text: &str| Job::c(&["-c"], MAIN).file("args.c", text.as_bytes());
    rows.push(row(
        "@: the source is @args.c",
        Contained,
        with(&source).source("@args.c"),
    ));
    let box_file = format!("@{}/args.c", lab.evil);
    rows.push(row(
        "@: the source is @ABS, a file of the box",
        Contained,
        with(&source).source(&box_file),
    ));
    for opt in protocol::PATH_OPTIONS {
        rows.push(row(
            format!("@: manifest {opt} @args.c"),
            Contained,
            with(&option).path(opt, "@args.c"),
        ));
        rows.push(row(
            format!("@: manifest {opt} @ABS, a file of the box"),
            Contained,
            with(&option).path(opt, &box_file),
        ));
    }
    rows.push(row(
        "@: dependency target -MT @args.c",
        Contained,
        with(&option).deps(&["@args.c"], &[]),
    ));
    rows.push(row(
        "@: dependency target -MQ @args.c",
        Contained,
        with(&option).deps(&[], &["@args.c"]),
    ));
    rows.push(row(
        "@: dependency target -MT @ABS",
        Contained,
        with(&option).deps(&[&box_file], &[]),
    ));
    for args in [
        &["@args.c", "-c"][..],
        &["-c", "@args.c"],
        &["-O2", "-c", "@args.c", "-g"],
        &["-c", "--param", "@args.c"],
        &["-c", "-G", "@args.c"],
        &["-c", &box_file],
    ] {
        let mut job = with(&option);
        job.args = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        rows.push(row(
            format!("@: arguments {}", args.join(" ")),
            Contained,
            job,
        ));
    }
}

/// Attack 2: the driver's long spellings, unique prefixes and `--X` for `-fX`, and the
/// options that run, load, read or write something.
fn options(lab: &Lab, rows: &mut Vec<Row>) {
    let (secret, dir, evil, out) = (&lab.secret, lab.secret_dir(), &lab.evil, &lab.out);
    let (secret_dir, secret_name) = (dir, lab.secret.rsplit_once('/').unwrap().1);
    let parent = secret_dir.rsplit_once('/').unwrap().0;
    // A source that includes the secret by a name only a search path makes it reach.
    let searching = format!("#include \"{secret_name}\"\nint x;\n");
    let searching_sub = format!("#include \"secret/{secret_name}\"\nint x;\n");
    let module = "export module m;\nexport int f() { return 1; }\n";
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![format!("--include={secret}")], MAIN),
        (vec![format!("--imacros={secret}")], MAIN),
        (vec![format!("--include-directory={dir}")], &searching),
        (vec![format!("--include-directory-after={dir}")], &searching),
        (
            vec![
                format!("--include-prefix={parent}/"),
                "--include-with-prefix=secret".into(),
            ],
            &searching,
        ),
        (
            vec![
                format!("--include-prefix={parent}/"),
                "--include-with-prefix-before=secret".into(),
            ],
            &searching,
        ),
        (
            vec![
                format!("--include-prefix={parent}/"),
                "--include-with-prefix-after=secret".into(),
            ],
            &searching,
        ),
        (
            vec![format!("--include-directory={parent}")],
            &searching_sub,
        ),
        (vec![format!("--prefix={evil}/")], MAIN),
        (vec![format!("--for-assembler=@{evil}/as.args")], MAIN),
        (vec![format!("--for-assembler=-adhln={out}/listing")], MAIN),
        (vec![format!("--for-assembler=--MD={out}/as.d")], MAIN),
        (vec!["--language=c".into()], MAIN),
        (vec!["--language=assembler-with-cpp".into()], MAIN),
        (vec![format!("--output={out}/object.o")], MAIN),
        (vec!["--save-temps".into()], MAIN),
        (vec!["--save-temps=obj".into()], MAIN),
        (vec!["--write-dependencies".into()], MAIN),
        (vec!["--write-user-dependencies".into()], MAIN),
        (vec!["-coverage".into()], MAIN),
        (vec!["--coverage".into()], MAIN),
        (vec![format!("--specs={evil}/evil.specs")], MAIN),
        (vec![format!("--sysroot={parent}")], MAIN),
        (
            vec![format!("--dumpbase={out}/base"), "-fstack-usage".into()],
            MAIN,
        ),
        (
            vec![format!("--dumpdir={out}/"), "-fstack-usage".into()],
            MAIN,
        ),
        (vec![format!("--param=lto-partitions={out}/x")], MAIN),
        (
            vec!["--param".into(), format!("lto-partitions={out}/x")],
            MAIN,
        ),
        (vec![format!("--incl={secret}")], MAIN),
        (vec![format!("--inc={secret}")], MAIN),
        (vec![format!("--imac={secret}")], MAIN),
        (vec![format!("--pref={evil}/")], MAIN),
        (vec![format!("--for-a=-adhln={out}/listing")], MAIN),
        (vec![format!("--plugin={evil}/x.so")], MAIN),
        (vec!["--dump-tree-all".into()], MAIN),
        (vec![format!("--profile-use={dir}")], MAIN),
        (vec![format!("--profile-generate={out}")], MAIN),
        (vec![format!("-fplugin={evil}/x.so")], MAIN),
        (vec!["-fdump-tree-all".into()], MAIN),
        (vec![format!("-fprofile-generate={out}/")], MAIN),
        (vec![format!("-fprofile-use={dir}")], MAIN),
        (vec![format!("-fauto-profile={secret}")], MAIN),
        (vec!["-aux-info".into(), format!("{out}/aux")], MAIN),
        (vec![format!("-aux-info={out}/aux")], MAIN),
        (vec!["-fcallgraph-info".into()], MAIN),
        (vec!["-fstack-usage".into()], MAIN),
        (vec!["-fdiagnostics-format=sarif-file".into()], MAIN),
        (vec!["-save-temps=obj".into()], MAIN),
        (vec!["-dumpdir".into(), format!("{out}/")], MAIN),
        (vec![format!("-dumpdir={out}/")], MAIN),
        (
            vec!["-wrapper".into(), format!("/bin/sh,-c,{}", lab.shell)],
            MAIN,
        ),
        (vec![format!("-B{evil}/")], MAIN),
        (vec![format!("-specs={evil}/evil.specs")], MAIN),
        (vec![format!("-Wa,-adhln={out}/listing")], MAIN),
        (vec![format!("-Wa,@{evil}/as.args")], MAIN),
        (
            vec!["-Xassembler".into(), format!("-adhln={out}/listing")],
            MAIN,
        ),
        (vec![format!("-Wp,-MD,{out}/pp.d")], MAIN),
        (
            vec!["-Xpreprocessor".into(), format!("-include{secret}")],
            MAIN,
        ),
        (vec![format!("-iplugindir={evil}")], MAIN),
        (
            vec![
                "-std=c++20".into(),
                "-fmodules-ts".into(),
                format!("-fmodule-mapper=|{evil}/mapper"),
            ],
            module,
        ),
        (
            vec![
                "-std=c++20".into(),
                "-fmodules-ts".into(),
                format!("-fmodule-mapper={secret}"),
            ],
            module,
        ),
        (
            vec![
                "-Xclang".into(),
                "-load".into(),
                "-Xclang".into(),
                format!("{evil}/x.so"),
            ],
            MAIN,
        ),
        (vec!["-mllvm".into(), "-debug".into()], MAIN),
        (vec![format!("-fself-test={dir}")], MAIN),
        (vec![format!("-fsanitize-ignorelist={secret}")], MAIN),
        (vec![format!("-fprofile-list={secret}")], MAIN),
    ];
    for (extra, text) in cases {
        let mut args = vec!["-c".to_string()];
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
        let name = extra.join(" ");
        let source = if text == module { "m.cc" } else { "a.c" };
        let job = Job::named(&args, source, text);
        // Preprocessed text has no directives for a search path to serve.
        if text != searching && text != searching_sub {
            rows.push(row(
                format!("option (preprocessed): {name}"),
                Want::Contained,
                job.clone().preprocessed(),
            ));
        }
        rows.push(row(format!("option: {name}"), Want::Contained, job));
    }
    // Third review: gcc hands the assembler `--debug-prefix-map OLD=NEW` apart, and gas reads
    // an argument that starts with `@` as a file of options: a shipped `x=y` saying `--MD
    // FILE` made gas write FILE (in the job dir with Landlock, anywhere without).
    let gas_rsp = format!("a=b --MD {out}/gas-deps.d\n");
    for map in ["-fdebug-prefix-map=@x=y", "-ffile-prefix-map=@x=y"] {
        let job =
            Job::named(&["-c", "-g", map], "a.S", ".long 1\n").file("x=y", gas_rsp.as_bytes());
        rows.push(row(
            format!("option: {map} with a shipped x=y of assembler options"),
            Want::Refused,
            job,
        ));
    }
}

/// Attack 3: directives the include check does not see as the preprocessor does.
fn include_walkarounds(lab: &Lab, rows: &mut Vec<Row>) {
    use Want::Contained;
    let s = &lab.secret;
    let up = lab.climbing();
    let texts: Vec<(&str, String, &[&str])> = vec![
        (
            "a comment between # and include",
            format!("#/**/include \"{s}\"\n"),
            &[],
        ),
        ("a comment before #", format!("/**/#include \"{s}\"\n"), &[]),
        (
            "a lone CR before the directive",
            format!("int a;\r#include \"{s}\"\n"),
            &[],
        ),
        (
            "CR line ends throughout",
            format!("int a;\r#include \"{s}\"\rint b;\r"),
            &[],
        ),
        (
            "backslash-CR splicing the directive",
            format!("#inc\\\rlude \"{s}\"\n"),
            &[],
        ),
        (
            "backslash-CRLF splicing the directive",
            format!("#inc\\\r\nlude \"{s}\"\n"),
            &[],
        ),
        (
            "backslash-space-newline splicing the directive",
            format!("#inc\\ \nlude \"{s}\"\n"),
            &[],
        ),
        (
            "a vertical tab after #",
            format!("#\x0binclude \"{s}\"\n"),
            &[],
        ),
        (
            "a form feed before #",
            format!("\x0c#include \"{s}\"\n"),
            &[],
        ),
        (
            "trigraph ??/ splicing with -trigraphs",
            format!("#inc??/\nlude \"{s}\"\n"),
            &["-trigraphs"],
        ),
        (
            "trigraph ??/ splicing with -std=c99",
            format!("#inc??/\nlude \"{s}\"\n"),
            &["-std=c99"],
        ),
        (
            "trigraph ??= for # with -std=c89",
            format!("??=include \"{s}\"\n"),
            &["-std=c89"],
        ),
        ("digraph %:include", format!("%:include \"{s}\"\n"), &[]),
        (
            "digraph %: with a comment",
            format!("%:/**/include \"{s}\"\n"),
            &[],
        ),
        (
            "_Pragma pop_macro restores a macro pushed naming the secret",
            format!(
                "#define X \\\n\"{s}\"\n#pragma push_macro(\"X\")\n#undef X\n\
                 #define X \"ok.h\"\n_Pragma(\"pop_macro(\\\"X\\\")\")\n#include X\n"
            ),
            &[],
        ),
        (
            "#pragma pop_macro restores a macro pushed naming the secret",
            format!(
                "#define X \\\n\"{s}\"\n#pragma push_macro(\"X\")\n#undef X\n\
                 #define X \"ok.h\"\n#pragma pop_macro(\"X\")\n#include X\n"
            ),
            &[],
        ),
        (
            "a macro defined across a line splice",
            format!("#define X \\\n\"{s}\"\n#include X\n"),
            &[],
        ),
        (
            "a macro defined after a comment",
            format!("#define X /**/ \"{s}\"\n#include X\n"),
            &[],
        ),
        (
            "a macro defined with #/**/define",
            format!("#/**/define X \"{s}\"\n#include X\n"),
            &[],
        ),
        (
            "a function-like macro",
            format!("#define F(x) \"{s}\"\n#include F(1)\n"),
            &[],
        ),
        ("-D naming the secret", "#include X\n".into(), &[]),
        (
            "_Pragma in a macro the include expands",
            format!(
                "#define X \"ok.h\"\n#define Y \\\n\"{s}\"\n#pragma push_macro(\"Y\")\n\
                 #define P _Pragma(\"pop_macro(\\\"Y\\\")\") Y\n#include P\n"
            ),
            &[],
        ),
        (
            ".. climbing out of the mirror",
            format!("#include \"{up}\"\n"),
            &[],
        ),
        (
            ".. climbing out, hidden by a comment",
            format!("#/**/include \"{up}\"\n"),
            &[],
        ),
        (
            ".. climbing out in a macro defined across a splice",
            format!("#define X \\\n\"{up}\"\n#include X\n"),
            &[],
        ),
        (
            ".. climbing out through #include_next",
            format!("#include_next \"{up}\"\n"),
            &[],
        ),
        (
            "an absolute #include_next",
            format!("#include_next \"{s}\"\n"),
            &[],
        ),
        (
            "#line naming the secret then __FILE__",
            format!("#line 1 \"{s}\"\n#include __FILE__\n"),
            &[],
        ),
        (
            "an .incbin split in two strings",
            format!("asm(\".inc\" \"bin \\\"{s}\\\"\");\n"),
            &[],
        ),
    ];
    for (name, text, extra) in texts {
        let mut args = vec!["-c"];
        args.extend_from_slice(extra);
        let text = format!("{text}int x;\n");
        let job = Job::c(&args, &text).file("ok.h", b"int ok;\n");
        if name == "-D naming the secret" {
            let quoted = format!("-DX=\"{s}\"");
            let angled = format!("-DX=<{s}>");
            let long = format!("--define-macro=X=\"{s}\"");
            let commented = format!("-DX=/**/\"{s}\"");
            let climbing = format!("-DX=\"{up}\"");
            for d in [&quoted, &angled, &long, &commented, &climbing] {
                let mut j = job.clone();
                j.args.push(d.as_bytes().to_vec());
                rows.push(row(format!("include: {d}"), Contained, j));
            }
            let mut j = job.clone();
            j.args.push(b"-D".to_vec());
            j.args.push(format!("X=\"{s}\"").into_bytes());
            rows.push(row("include: -D X=\"SECRET\" apart", Contained, j));
            continue;
        }
        rows.push(row(format!("include: {name}"), Contained, job));
    }
    // Climbing out from a search directory at the mirror's root.
    rows.push(row(
        "include: .. from a search dir at the root",
        Contained,
        Job::c(&["-c"], "#include <up.h>\nint x;\n")
            .path("-I", "/")
            .path("-I", "/inc")
            .file("/inc/up.h", format!("#include \"{up}\"\n").as_bytes()),
    ));
    rows.push(row(
        "include: a search dir climbing out by ..",
        Contained,
        Job::c(&["-c"], "#include \"key.txt\"\nint x;\n").path(
            "-I",
            &format!("{}{}", "../".repeat(40), &lab.secret_dir()[1..]),
        ),
    ));
    rows.push(row(
        "include: a search dir climbing out through a subdir",
        Contained,
        Job::c(&["-c"], "#include \"key.txt\"\nint x;\n").path(
            "-I",
            &format!("sub/{}{}", "../".repeat(40), &lab.secret_dir()[1..]),
        ),
    ));
    // Whether a file of the box exists must not show.
    for (name, text) in [
        (
            "__has_include of the secret",
            format!("#if __has_include(\"{s}\")\n#error {PROBE_HIT}\n#endif\nint x;\n"),
        ),
        (
            "__has_include climbing to the secret",
            format!("#if __has_include(\"{up}\")\n#error {PROBE_HIT}\n#endif\nint x;\n"),
        ),
        (
            "__has_include_next of the secret",
            format!("#if __has_include_next(\"{s}\")\n#error {PROBE_HIT}\n#endif\nint x;\n"),
        ),
        (
            "__has_include hidden in a macro",
            format!(
                "#define H(x) __has_include(x)\n#if H(\"{s}\")\n#error {PROBE_HIT}\n#endif\nint x;\n"
            ),
        ),
    ] {
        rows.push(row(
            format!("probe: {name}"),
            Want::SameAsMissing,
            Job::c(&["-c"], &text),
        ));
    }
}

/// Attack 4: a manifest naming one path twice, so a verdict is made from the other file's
/// content; then the hostile content alone must still be judged on its own.
fn verdict_poisoning(lab: &Lab, rows: &mut Vec<Row>) {
    for (order, n) in [("harmless first", 1), ("hostile first", 2)] {
        let hostile = format!("#include \"{}\"\nint x; /* {n} */\n", lab.secret);
        let (first, second) = if n == 1 {
            (MAIN, hostile.as_str())
        } else {
            (hostile.as_str(), MAIN)
        };
        let twice = Job::c(&["-c"], first).file("a.c", second.as_bytes());
        rows.push(row(
            format!("cache: one path twice, {order}"),
            Want::Refused,
            twice,
        ));
        rows.push(row(
            format!("cache: then the hostile content alone ({order})"),
            Want::Contained,
            Job::c(&["-c"], &hostile),
        ));
    }
    // The same content under two paths, one a header: judged once, for both places.
    let hostile = format!("#include \"{}\"\nint x; /* 3 */\n", lab.secret);
    rows.push(row(
        "cache: one content at two paths",
        Want::Contained,
        Job::c(&["-c"], "#include \"h.h\"\n").file("h.h", hostile.as_bytes()),
    ));
}

/// Attack 5: a peer that lies about its files. Each row's content is its own, so the box
/// lacks it and asks for it (a cached file is never sent again).
fn lies(rows: &mut Vec<Row>) {
    use Want::Refused;
    let fresh = |n: &str| format!("int lie_{}_{};\n", n, std::process::id());
    let good = || Job::c(&["-c"], MAIN);
    let mut j = Job::c(&["-c"], &fresh("larger"));
    j.files[0].size += 1;
    rows.push(row("lie: a size larger than the file", Refused, j));
    let mut j = Job::c(&["-c"], &fresh("smaller"));
    j.files[0].size -= 1;
    rows.push(row("lie: a size smaller than the file", Refused, j));
    let mut j = Job::c(&["-c"], &fresh("huge"));
    j.files[0].size = u64::MAX;
    rows.push(row("lie: a size of 2^64-1", Refused, j));
    // Its content is in the box's cache by now: the box need not read it again, but the
    // compile must be what the hash says.
    let mut j = good();
    j.files[0].size += 100;
    rows.push(row(
        "lie: a wrong size for a cached file",
        Want::Contained,
        j,
    ));
    let mut j = Job::c(&["-c"], &fresh("hash"));
    j.contents[0] = b"int evil;\n".to_vec();
    j.files[0].size = j.contents[0].len() as u64;
    rows.push(row("lie: a file without its hash", Refused, j));
    let text = fresh("unasked");
    let mut j = Job::c(&["-c"], &text);
    j.blobs = Some(vec![(7, text.as_bytes().to_vec())]);
    rows.push(row("lie: a blob not asked for", Refused, j));
    let text = fresh("index");
    let mut j = Job::c(&["-c"], &text);
    j.blobs = Some(vec![(u32::MAX, text.as_bytes().to_vec())]);
    rows.push(row("lie: a blob index 2^32-1", Refused, j));
    let text = fresh("twice");
    let mut j = Job::c(&["-c"], &text).file("b.h", fresh("twice_b").as_bytes());
    j.blobs = Some(vec![
        (0, text.as_bytes().to_vec()),
        (0, text.as_bytes().to_vec()),
    ]);
    rows.push(row("lie: the same blob twice", Refused, j));
    let mut j = Job::c(&["-c"], &fresh("early"));
    j.blobs = Some(vec![]);
    rows.push(row("lie: the end before the files", Refused, j));
    for (name, path) in [
        ("a file path with ..", "/w/../etc/a.c".to_string()),
        ("a file path with //", "/w//a.c".into()),
        ("a file path with /./", "/w/./a.c".into()),
        ("a relative file path", "w/a.c".into()),
        ("a file path with a NUL", "/w/a\0.c".into()),
        (
            "a file path of 5000 bytes",
            format!("/w/{}", "a".repeat(5000)),
        ),
        ("a file path of 100 parts", "/d".repeat(100)),
        ("a file path ending in /", "/w/a.c/".into()),
        ("the root as a file", "/".into()),
    ] {
        let mut j = good();
        j.files[0].path = path;
        rows.push(row(format!("lie: {name}"), Refused, j));
    }
    for (name, source) in [
        ("a source with a NUL", "a\0.c"),
        ("a source climbing out", "../../../../etc/a.c"),
        ("an empty source", ""),
    ] {
        rows.push(row(format!("lie: {name}"), Refused, good().source(source)));
    }
    rows.push(row(
        "lie: a search path with a NUL",
        Refused,
        good().path("-I", "inc\0/x"),
    ));
    rows.push(row(
        "lie: a file that is also a directory of another",
        Refused,
        good().file("a.h", b"int a;\n").file("a.h/b.h", b"int b;\n"),
    ));
    rows.push(row(
        "lie: a directory of another file named first as a file, deeper",
        Refused,
        good()
            .file("x/y", b"int y;\n")
            .file("x/y/z/w.h", b"int w;\n"),
    ));
    // A path that is not UTF-8: the manifest made by hand.
    let mut j = good().file("Xbad.h", b"int bad;\n");
    let mut frame = j.manifest_frame();
    let at = frame
        .windows(6)
        .position(|w| w == b"Xbad.h")
        .expect("the path in the frame");
    frame[at] = 0xff;
    j.raw_manifest = Some(frame);
    rows.push(row("lie: a file path that is not UTF-8", Refused, j));
}

/// Attack 6 (second review): pragmas that open a file by name where the include check does
/// not look. `#pragma GCC dependency` behind `_Pragma` (which no directive scan sees), the
/// same pragma in a preprocessed job (which has no include check at all, and cc1 still runs
/// it), and `#pragma GCC pch_preprocess`, which cc1 runs under `-fpreprocessed` (an option
/// the box takes, and what every preprocessed job is compiled with): it opens and reads the
/// named file as a precompiled header.
fn pragmas_that_open(lab: &Lab, rows: &mut Vec<Row>) {
    let s = &lab.secret;
    // gcc uses a precompiled header when it compiles but not when it preprocesses (`-E`):
    // the audit reads h.h (H is "ok.h"), the compile loads h.h.gch (H is the secret).
    let evil = lab.t.write(
        "pch-audit/evil.h",
        &format!("#define STR(x) #x\n#define XSTR(x) STR(x)\n#define H XSTR({s})\n"),
    );
    let gch = lab.t.join("pch-audit/h.h.gch");
    ok(std::process::Command::new("gcc")
        .args(["-nostdinc", "-x", "c-header"])
        .arg(&evil)
        .arg("-o")
        .arg(&gch));
    let gch = std::fs::read(&gch).unwrap();
    let _ = std::fs::remove_dir_all(lab.t.join("pch-audit"));
    rows.push(row(
        "include: a shipped .gch the audit does not load names the secret",
        Want::Contained,
        Job::c(&["-c"], "#include \"h.h\"\n#include H\nint x;\n")
            .file("h.h", b"#define H \"ok.h\"\n")
            .file("h.h.gch", &gch)
            .file("ok.h", b"int ok_h;\n"),
    ));
    // gcc quotes the source line of a diagnostic from the file its location names, and
    // `#line N "FILE"` (or a linemarker `# N "FILE"`) names any file: an error on the next
    // line prints line N of the box's file. One row per spelling; a line each, a whole file.
    for (name, text) in [
        ("#line then an error", format!("#line 1 \"{s}\"\n@\n")),
        ("a linemarker then an error", format!("# 1 \"{s}\"\n@\n")),
    ] {
        rows.push(row(
            format!("diagnostic: {name}"),
            Want::Contained,
            Job::c(&["-c"], &text),
        ));
        rows.push(row(
            format!("diagnostic (preprocessed): {name}"),
            Want::Contained,
            Job::c(&["-c"], &text).preprocessed(),
        ));
    }
    // `__has_include` of a name a macro makes: the audit's `-H` lists the headers gcc
    // includes, not the ones it only probes, so the audit passes whatever the probe asked.
    let probe = format!(
        "#define STR(x) #x\n#define XSTR(x) STR(x)\n#define P XSTR({s})\n\
         #if __has_include(P)\n#error {PROBE_HIT}\n#endif\nint x;\n"
    );
    rows.push(row(
        "probe: __has_include of a stringized macro",
        Want::SameAsMissing,
        Job::c(&["-c"], &probe),
    ));
    // The audit of a computed include runs the job's own options with `-E`: given
    // `-fdirectives-only`, that preprocessing leaves `POP` unexpanded, so the
    // `_Pragma("pop_macro")` in it never runs and H is "ok.h"; the compile (`-c`, where gcc
    // ignores `-fdirectives-only`) preprocesses fully, pops H and includes the secret.
    let popped = format!(
        "#define STR(x) #x\n#define XSTR(x) STR(x)\n#define H XSTR({s})\n\
         #pragma push_macro(\"H\")\n#undef H\n#define H \"ok.h\"\n\
         #define POP _Pragma(\"pop_macro(\\\"H\\\")\")\nPOP\n#include H\nint x;\n"
    );
    rows.push(row(
        "include: -fdirectives-only hides a _Pragma pop_macro from the audit",
        Want::Contained,
        Job::c(&["-c", "-fdirectives-only"], &popped).file("ok.h", b"int ok_h;\n"),
    ));
    rows.push(row(
        "probe: -fdirectives-only hides a _Pragma pop_macro from the audit",
        Want::SameAsMissing,
        Job::c(&["-c", "-fdirectives-only"], &popped).file("ok.h", b"int ok_h;\n"),
    ));
    // A preprocessed job's text has no include check, and `-fdirectives-only` (which the
    // grammar takes) makes cc1 run the directives of `-fpreprocessed` text: `#include` too.
    let include = format!("#include \"{s}\"\nint x;\n");
    for args in [
        &["-c", "-fdirectives-only"][..],
        &["-c", "-fpreprocessed", "-fdirectives-only"],
    ] {
        rows.push(row(
            format!(
                "include (preprocessed): {} and #include of the secret",
                args[1..].join(" ")
            ),
            Want::Contained,
            Job::c(args, &include).preprocessed(),
        ));
    }
    // gas takes a `/* */` comment out of a statement before it reads it: `.inc/**/bin` is
    // `.incbin` to gas, and neither the include check (a C string) nor the assembler's
    // guard (which looks for the word) sees one.
    for (name, text) in [
        (
            "asm .inc/**/bin",
            format!("asm(\".section .rodata\\n.inc/**/bin \\\"{s}\\\"\\n.text\");\nint x;\n"),
        ),
        (
            "asm .in/**/clude",
            format!("asm(\".in/**/clude \\\"{s}\\\"\");\nint x;\n"),
        ),
    ] {
        rows.push(row(
            format!("asm: {name}"),
            Want::Contained,
            Job::c(&["-c"], &text),
        ));
        rows.push(row(
            format!("asm (preprocessed): {name}"),
            Want::Contained,
            Job::c(&["-c"], &text).preprocessed(),
        ));
    }
    let dependency_pragma = format!("_Pragma(\"GCC dependency \\\"{s}\\\"\")\nint x;\n");
    rows.push(row(
        "probe: _Pragma(\"GCC dependency\") of the secret",
        Want::SameAsMissingInSandbox,
        Job::c(&["-c"], &dependency_pragma),
    ));
    let dependency = format!("#pragma GCC dependency \"{s}\"\nint x;\n");
    rows.push(row(
        "probe (preprocessed): #pragma GCC dependency of the secret",
        Want::SameAsMissing,
        Job::c(&["-c"], &dependency).preprocessed(),
    ));
    let pch = format!("#pragma GCC pch_preprocess \"{s}\"\nint x;\n");
    rows.push(row(
        "probe: -fpreprocessed and #pragma GCC pch_preprocess of the secret",
        Want::SameAsMissing,
        Job::c(&["-c", "-fpreprocessed"], &pch),
    ));
    rows.push(row(
        "probe (preprocessed): #pragma GCC pch_preprocess of the secret",
        Want::SameAsMissing,
        Job::c(&["-c"], &pch).preprocessed(),
    ));
}

fn table(lab: &Lab) -> Vec<Row> {
    let mut rows = Vec::new();
    response_files(lab, &mut rows);
    options(lab, &mut rows);
    include_walkarounds(lab, &mut rows);
    verdict_poisoning(lab, &mut rows);
    lies(&mut rows);
    pragmas_that_open(lab, &mut rows);
    rows
}

/// What a row's reply and the files around show that it should not; empty when contained.
fn effects(lab: &Lab, before: &BTreeSet<PathBuf>, reply: &Reply) -> Vec<String> {
    let mut bad = Vec::new();
    let said = reply.said();
    let has = |m: &str| said.windows(m.len()).any(|w| w == m.as_bytes());
    if has(&lab.mark) {
        bad.push("the secret came back".to_string());
    } else if said
        .to_ascii_lowercase()
        .windows(lab.mark.len())
        .any(|w| w == lab.mark.to_ascii_lowercase().as_bytes())
    {
        // gas quotes a line it cannot read with its mnemonic lowercased.
        bad.push("the secret came back, lowercased".to_string());
    }
    if has(RAN) {
        bad.push("a shell ran on the box".to_string());
    }
    if has(PROBE_HIT) {
        bad.push("a probe found the secret".to_string());
    }
    let made: Vec<_> = lab.files().difference(before).cloned().collect();
    if !made.is_empty() {
        bad.push(format!("files made outside the job: {made:?}"));
    }
    bad
}

/// The job of a probe row with the secret's path replaced by one that does not exist.
fn missing(lab: &Lab, job: &Job) -> Job {
    let gone = format!("{}.gone", lab.secret);
    let mut j = job.clone();
    let text = s(&j.contents[0]).replace(&lab.secret, &gone);
    j.contents[0] = text.into_bytes();
    j.files[0].size = j.contents[0].len() as u64;
    j.files[0].hash = rcc::sha256::digest(&j.contents[0]);
    j
}

/// A reply with the probed path and the job's own dirs (named per job) taken out, to
/// compare two probes.
fn shape(lab: &Lab, d: &Daemon, r: &Reply) -> String {
    let gone = format!("{}.gone", lab.secret);
    let text = match &r.end {
        End::Done(d) => format!("done {:?} {}{}", d.exit, s(&d.stdout), s(&d.stderr)),
        End::Reject(reason, text) => format!("reject {reason:?} {text}"),
        other => format!("{other:?}"),
    };
    let text = text.replace(&gone, "PATH").replace(&lab.secret, "PATH");
    let tmp = d.dir.join("tmp").display().to_string();
    text.split_inclusive(char::is_whitespace)
        .map(|w| if w.contains(&tmp) { "JOB " } else { w })
        .collect()
}

/// A reply in one line, for `ATTACKS_VERBOSE=1`.
fn summary(r: &Reply) -> String {
    let line = |b: &[u8]| s(b).lines().next().unwrap_or("").to_string();
    match &r.end {
        End::Done(d) => format!("done {:?}: {}", d.exit, line(&d.stderr)),
        End::Reject(reason, text) => format!("{reason:?} at {}: {text}", r.stage),
        other => format!("{other:?} at {}", r.stage),
    }
}

/// Runs every row against `d`; returns the failures, one line per row.
fn run_rows(d: &Daemon, lab: &Lab, landlock: bool) -> (usize, Vec<String>) {
    let rows = table(lab);
    let mut failures = Vec::new();
    for r in &rows {
        let before = lab.files();
        let reply = exchange(&d.addr(), &r.job);
        let mut bad = effects(lab, &before, &reply);
        let want = match r.want {
            Want::SameAsMissingInSandbox if landlock => Want::SameAsMissing,
            Want::SameAsMissingInSandbox => Want::Contained,
            w => w,
        };
        match (want, &reply.end) {
            (Want::Refused, _) if !reply.refused() => {
                bad.push("not refused".into());
            }
            (_, End::Hung) => bad.push("the daemon hung".into()),
            (_, End::Other(what)) => bad.push(format!("an unexpected {what}")),
            (Want::SameAsMissing, _) => {
                let other = exchange(&d.addr(), &missing(lab, &r.job));
                bad.extend(effects(lab, &before, &other));
                let (a, b) = (shape(lab, d, &reply), shape(lab, d, &other));
                if a != b {
                    bad.push(format!(
                        "the reply differs from a missing file's:\n    {a}\n    vs {b}"
                    ));
                }
            }
            _ => {}
        }
        if std::env::var_os("ATTACKS_VERBOSE").is_some() {
            eprintln!("{}: {}", r.name, summary(&reply));
        }
        if !bad.is_empty() {
            failures.push(format!("{}: {}\n    got {reply:?}", r.name, bad.join("; ")));
        }
        // Whatever a row made, the next one starts clean.
        for p in lab.files().difference(&before) {
            let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
        }
        if !d.status().contains_key("slots") {
            failures.push(format!("{}: the daemon stopped answering", r.name));
            break;
        }
    }
    (rows.len(), failures)
}

/// rccd with or without its sandbox, every row, then a good job and no job dirs left.
fn attacks_against(landlock: bool) {
    let lab = Lab::new(if landlock {
        "attacks-ll"
    } else {
        "attacks-noll"
    });
    let d = if landlock {
        Daemon::start(2, &[])
    } else {
        Daemon::start_wrapped(&["env", "RCCD_TEST_NO_LANDLOCK=1"], "127.0.0.1:0", 2, &[])
    };
    let sandbox = d
        .log_text()
        .lines()
        .find(|l| l.contains("Landlock"))
        .unwrap_or("(the log does not say)")
        .to_string();
    eprintln!("rccd (landlock wanted: {landlock}): {sandbox}");
    // Wanted is not had under qemu-user (the aarch64 suite), which offers no Landlock: the
    // rows are then judged as on a box without it.
    let landlock = landlock && sandbox.contains("run in a Landlock sandbox");
    let daemon_files = || {
        let mut all = BTreeSet::new();
        walk(d.dir.path(), &mut all);
        let tmp = d.dir.join("tmp");
        all.retain(|p| !p.starts_with(&tmp) && *p != d.log);
        all
    };
    let daemon_before = daemon_files();
    let (n, mut failures) = run_rows(&d, &lab, landlock);
    let made: Vec<_> = daemon_files().difference(&daemon_before).cloned().collect();
    if !made.is_empty() {
        failures.push(format!("files made beside rccd's temp dir: {made:?}"));
    }
    // The daemon still compiles a good job, and holds no job dirs.
    let good = exchange(&d.addr(), &Job::c(&["-c", "-O2"], MAIN));
    match &good.end {
        End::Done(done) if done.exit == protocol::Exit::Code(0) => {}
        _ => failures.push(format!("a good job after the rows: {good:?}")),
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !d.leftovers().is_empty() {
        failures.push(format!("job dirs left: {:?}", d.leftovers()));
    }
    assert!(
        failures.is_empty(),
        "{} of {n} rows failed (landlock wanted: {landlock}; {sandbox}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn attacks_are_refused_or_contained_with_landlock() {
    attacks_against(true);
}

#[test]
fn attacks_are_refused_or_contained_without_landlock() {
    attacks_against(false);
}

/// Second review: `-Wa,--M=FILE` passes the option grammar (gas takes `--M` as its unique
/// prefix of `--MD`), and gas writes its dependency file at a relative name from the
/// compile's directory, in the mirror, where every shipped file is a hard link to the
/// box's cache. Opening it truncates the cached file in place: its content is no longer
/// what its hash says, yet its verdict stays. A `.file` directive (from `asm`, with `#`
/// as `\043` and `;` as `\073`, so neither the include check nor the assembler's guard sees a word) puts
/// any line into what gas writes: here `#include "SECRET"`. The next job that ships the
/// harmless header by its hash gets the poisoned one, judged harmless, and gcc includes
/// the box's file.
fn poisoned_through_a_hard_link(landlock: bool) {
    let lab = Lab::new(if landlock { "poison-ll" } else { "poison-noll" });
    let d = if landlock {
        Daemon::start(2, &[])
    } else {
        Daemon::start_wrapped(&["env", "RCCD_TEST_NO_LANDLOCK=1"], "127.0.0.1:0", 2, &[])
    };
    let header = format!("int harmless_{};\n", std::process::id());
    let writer = format!(
        "asm(\".file \\\"\\\\073\\\\n\\\\043include\\\\\\\"{}\\\\\\\"\\\\n//\\\"\");\nint main(void) {{ return 0; }}\n",
        lab.secret
    );
    let first = Job::c(&["-c", "-Wa,--M=h.h"], &writer).file("h.h", header.as_bytes());
    let r1 = exchange(&d.addr(), &first);
    let second = Job::c(&["-c"], "#include \"h.h\"\nint x;\n").file("h.h", header.as_bytes());
    let r2 = exchange(&d.addr(), &second);
    let mut bad = effects(&lab, &BTreeSet::new(), &r2);
    bad.retain(|b| !b.starts_with("files made"));
    let cached_ok = match &r2.end {
        End::Done(done) => done.exit == protocol::Exit::Code(0),
        _ => false,
    };
    if !cached_ok {
        bad.push("a harmless job failed after the writer".into());
    }
    assert!(
        bad.is_empty(),
        "landlock wanted: {landlock}: {}\n  writer: {r1:?}\n  then: {r2:?}",
        bad.join("; ")
    );
}

#[test]
fn a_job_cannot_rewrite_a_cached_file_with_landlock() {
    poisoned_through_a_hard_link(true);
}

#[test]
fn a_job_cannot_rewrite_a_cached_file_without_landlock() {
    poisoned_through_a_hard_link(false);
}

/// The processes descended from `root`, with their resident sizes (KiB).
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut parent = std::collections::HashMap::new();
    let mut rss = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        for l in status.lines() {
            if let Some(v) = l.strip_prefix("PPid:") {
                parent.insert(pid, v.trim().parse::<u32>().unwrap_or(0));
            }
            if let Some(v) = l.strip_prefix("VmRSS:") {
                let kib = v.trim().trim_end_matches("kB").trim().parse::<u64>();
                rss.insert(pid, kib.unwrap_or(0));
            }
        }
    }
    let under = |mut p: u32| {
        for _ in 0..64 {
            match parent.get(&p) {
                Some(&pp) if pp == root => return true,
                Some(&pp) if pp > 1 => p = pp,
                _ => return false,
            }
        }
        false
    };
    parent
        .keys()
        .filter(|&&p| under(p))
        .map(|&p| (p, rss.get(&p).copied().unwrap_or(0)))
        .collect()
}

/// Whether RLIMIT_DATA set the way rccd sets it reaches a program it starts: not under
/// qemu-user (the aarch64 suite), which keeps data limits from its host process.
fn data_limits_apply() -> bool {
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", "ulimit -d"]);
    rcc::sys::limit_child(&mut sh, 0, 64 << 20);
    let out = sh.output().unwrap();
    s(&out.stdout).trim() == "65536"
}

/// Second review: one request of 600 bytes (a macro that doubles 30 times inside an
/// initializer) makes cc1 grow by about half a GB a second, and nothing on the box bounded a
/// compile's memory (no rlimit, no cgroup; the admission check only looks before a job
/// starts, and the job timeout is an hour): one peer could take the box's RAM and bring the
/// OOM killer onto rccd or the box's other jobs. Stopped here at 2 GiB.
#[test]
fn one_small_job_cannot_take_the_boxs_memory() {
    if !data_limits_apply() {
        eprintln!("RLIMIT_DATA does not reach a child here (qemu-user): nothing to test");
        return;
    }
    // The default is the box's MemTotal (24 GiB on a test machine): a box of 1 GiB says so.
    let d = Daemon::start(2, &["--job-mem-max-mib", "1024"]);
    let mut text = String::from("#define A0 1,\n");
    for i in 1..=30 {
        text.push_str(&format!("#define A{i} A{} A{}\n", i - 1, i - 1));
    }
    text.push_str("int a[] = { A30 };\n");
    let job = Job::c(&["-c"], &text);
    let addr = d.addr();
    let peer = std::thread::spawn(move || exchange(&addr, &job));
    const LIMIT_KIB: u64 = 2 << 20;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak = 0;
    let mut seen = Vec::new();
    while Instant::now() < deadline && !peer.is_finished() {
        let procs = descendants(d.pid());
        let total: u64 = procs.iter().map(|p| p.1).sum();
        peak = peak.max(total);
        seen = procs;
        if total > LIMIT_KIB {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The compilers this test's daemon started, by their pids.
    for (pid, _) in &seen {
        let _ = rcc::sys::kill(*pid, libc::SIGKILL);
    }
    drop(d);
    let _ = peer.join();
    assert!(
        peak <= LIMIT_KIB,
        "a 600-byte job's compiler grew to {} MiB on the box and was still growing",
        peak >> 10
    );
}

/// Second review: a shipped `NAME.gch` beside `NAME` is a precompiled header, and gcc loads
/// it in place of the header: a memory image of cc1's heap, read back with the pointers in
/// it. The include check reads it as text and finds nothing. Built by the master's own gcc
/// (`-nostdinc`, as the box compiles), it is used on the box (its macro comes back in the
/// object); with 8-byte words of it set to 0x4141414141414141, cc1 follows those pointers
/// (an internal compiler error: Bus error), so any peer hands cc1 the pointers it follows.
fn shipped_pch(landlock: bool) {
    let lab = Lab::new(if landlock { "pch-ll" } else { "pch-noll" });
    let d = if landlock {
        Daemon::start(2, &[])
    } else {
        Daemon::start_wrapped(&["env", "RCCD_TEST_NO_LANDLOCK=1"], "127.0.0.1:0", 2, &[])
    };
    let h = lab.t.write("pch/h.h", "#define FROM_PCH 42\n");
    let gch = lab.t.join("pch/h.h.gch");
    ok(std::process::Command::new("gcc")
        .args(["-nostdinc", "-c", "-x", "c-header"])
        .arg(&h)
        .arg("-o")
        .arg(&gch));
    let pch = std::fs::read(&gch).unwrap();
    let src = "#include \"h.h\"\nint f(void) { return FROM_PCH; }\n";
    let used = Job::c(&["-c"], src)
        .file("h.h", b"/* empty: FROM_PCH is only in the .gch */\n")
        .file("h.h.gch", &pch);
    let r1 = exchange(&d.addr(), &used);
    let mut bad = Vec::new();
    if let End::Done(done) = &r1.end {
        if done.exit == protocol::Exit::Code(0) {
            bad.push("a shipped .gch was loaded by cc1".to_string());
        }
    }
    let mut evil = pch.clone();
    let mut seed: u64 = 1;
    for _ in 0..50 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = (evil.len() / 2 + (seed >> 33) as usize % (evil.len() / 2 - 8)) & !7;
        evil[at..at + 8].copy_from_slice(&0x4141_4141_4141_4141u64.to_le_bytes());
    }
    let crash = Job::c(&["-c"], "#include \"h.h\"\nint g(void) { return 1; }\n")
        .file("h.h", b"/* corrupt */\n")
        .file("h.h.gch", &evil);
    let r2 = exchange(&d.addr(), &crash);
    if s(&r2.said()).contains("internal compiler error") {
        bad.push("cc1 followed the pointers of a shipped .gch".to_string());
    }
    assert!(
        bad.is_empty(),
        "landlock wanted: {landlock}: {}\n  valid .gch: {r1:?}\n  corrupt .gch: {r2:?}",
        bad.join("; ")
    );
}

#[test]
fn a_shipped_pch_is_not_loaded_with_landlock() {
    shipped_pch(true);
}

#[test]
fn a_shipped_pch_is_not_loaded_without_landlock() {
    shipped_pch(false);
}

/// Second review: the box judges a shipped file in its event loop (`Verdicts::get`), and the
/// judging is quadratic: every `#include MACRO` adds MACRO to a list (no set, duplicates
/// kept), and every `#define NAME "file"` line is then looked up in that list. A 1 MiB
/// header of 40,000 of each keeps the event loop from answering anyone for seconds (120,000:
/// over a minute, for 3 MiB; a status request here is what waits).
#[test]
fn a_shipped_file_cannot_stop_the_event_loop() {
    let d = Daemon::start(2, &[]);
    let k = 40_000;
    let mut text = String::with_capacity(k * 26);
    for _ in 0..k {
        text.push_str("#include M\n");
    }
    for _ in 0..k {
        text.push_str("#define Z \"a\"\n");
    }
    let job = Job::c(&["-c"], "int x;\n").file("q.h", text.as_bytes());
    let addr = d.addr();
    let peer = std::thread::spawn(move || exchange(&addr, &job));
    // Once the files are in, the box judges them; ask it how it is meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    let asked = Instant::now();
    let status = rcc::client::remote::status(&d.addr(), Default::default());
    let waited = asked.elapsed();
    let reply = peer.join().unwrap();
    let judged = asked.elapsed();
    assert!(
        status.is_ok() && waited < Duration::from_secs(2),
        "a status request waited {waited:?} ({:?}) while the box judged one 1 MiB header; \
         the job's reply came {judged:?} after it was asked ({reply:?})",
        status.err()
    );
}

/// Bytes of the regular files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut all = BTreeSet::new();
    walk(dir, &mut all);
    all.iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Second review: a 60-byte `asm(".fill N,8,0")` in a data section makes gas write N*8
/// bytes into the job dir (gas writes 256 MiB in a third of a second), and nothing bounds
/// what a compile writes (no RLIMIT_FSIZE, no quota; the object cap applies only when the
/// box reads the object back): one request fills a TV box's eMMC, and with it the cache,
/// the log and every other job. Stopped here at 1 GiB.
#[test]
fn one_small_job_cannot_fill_the_boxs_disk() {
    let d = Daemon::start(2, &[]);
    let job = Job::c(
        &["-c"],
        "asm(\".data\\n.fill 0x10000000,8,0\\n.text\");\nint x;\n",
    );
    let addr = d.addr();
    let peer = std::thread::spawn(move || exchange(&addr, &job));
    const LIMIT: u64 = 1 << 30;
    let tmp = d.dir.join("tmp");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak = 0;
    while Instant::now() < deadline && !peer.is_finished() {
        peak = peak.max(bytes_under(&tmp));
        if peak > LIMIT {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The compilers this test's daemon started, by their pids.
    for (pid, _) in descendants(d.pid()) {
        let _ = rcc::sys::kill(pid, libc::SIGKILL);
    }
    drop(d);
    let reply = peer.join().unwrap();
    assert!(
        peak <= LIMIT,
        "a 60-byte job wrote {} MiB on the box's disk and was still writing ({reply:?})",
        peak >> 20
    );
}

/// Second review: for a clang driver rccd puts no assembler guard (`as_guard::wrapper` is
/// `None`: clang assembles inside itself), so on a box without Landlock nothing reads the
/// assembler text clang's integrated assembler runs: `asm(".inc" "bin ...")` includes a file
/// of the box in the object (`llvm-mc`, the same assembler, takes `.incbin` as gas does).
/// Skipped where no clang is installed (the machine of this review had none).
#[test]
fn clang_without_landlock_cannot_incbin_a_box_file() {
    let Some(clang) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("clang"))
            .find(|c| c.is_file())
    }) else {
        eprintln!("note: no clang on PATH; skipping");
        return;
    };
    let lab = Lab::new("clang-incbin");
    let d = Daemon::start_wrapped(&["env", "RCCD_TEST_NO_LANDLOCK=1"], "127.0.0.1:0", 2, &[]);
    let text = format!(
        "asm(\".section .rodata\\n.inc\" \"bin \\\"{}\\\"\\n.text\");\nint x;\n",
        lab.secret
    );
    for job in [
        Job::c(&["-c"], &text),
        Job::c(&["-c"], &text).preprocessed(),
    ] {
        let mut job = job;
        job.compiler = ("clang", std::fs::canonicalize(&clang).unwrap());
        let r = exchange(&d.addr(), &job);
        let bad = effects(&lab, &lab.files(), &r);
        assert!(bad.is_empty(), "{}: {r:?}", bad.join("; "));
    }
}

/// Second review: a verdict keeps every computed include's macro name, duplicates and all
/// (`Verdict::computed`, a Vec), for as long as the verdict is kept (up to 200,000 of them).
/// One 32 MiB header of `#include M` lines grows rccd itself by hundreds of MiB, and keeps
/// it so after the job: a few such headers (each file may be 256 MiB) and the OOM killer
/// takes rccd.
#[test]
fn a_verdict_does_not_keep_rccd_large() {
    let d = Daemon::start(2, &[]);
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let before = rss(d.pid());
    let text = "#include M\n".repeat(3 << 20);
    let job = Job::c(&["-c"], "int x;\n").file("q.h", text.as_bytes());
    let reply = exchange(&d.addr(), &job);
    let after = rss(d.pid());
    let grown = after.saturating_sub(before);
    assert!(
        grown < 64 << 10,
        "rccd grew by {} MiB (to {} MiB) judging one 32 MiB header, and stays so ({reply:?})",
        grown >> 10,
        after >> 10
    );
}

/// Second review: rccd reads the whole object into its own memory (`fs::read`, in the event
/// loop), whatever its size, before any cap: a 60-byte job whose object is 1 GiB (`.fill`)
/// makes rccd itself take a GiB or more (and so does every such job at once).
#[test]
fn a_huge_object_is_not_read_into_rccd() {
    let d = Daemon::start(2, &[]);
    let hwm = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let job = Job::c(
        &["-c"],
        "asm(\".data\\n.fill 0x8000000,8,0\\n.text\");\nint x;\n",
    );
    let reply = exchange(&d.addr(), &job);
    let peak = hwm(d.pid());
    assert!(
        peak < 512 << 10,
        "rccd's resident size peaked at {} MiB for one job's 1 GiB object ({reply:?})",
        peak >> 10
    );
}
