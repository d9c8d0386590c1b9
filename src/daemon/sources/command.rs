//! The compiler's argv for a shipped job, written by the box from typed data: prefix maps
//! that take the mirror's root out of what the compiler records, the job's options
//! (`box_args`), `-nostdinc` and the manifest's search paths rooted in the mirror, the
//! dependency file's options, then the source and the object, both paths of the box's own.
//! For a job whose includes a macro names, the same line again as the audit's preprocessing.

use super::Tree;
use crate::daemon::audit::Audit;
use crate::daemon::job::Launch;
use crate::daemon::tree;
use crate::rules::box_args::BoxArgs;
use crate::wire::protocol::DepRequest;
use std::ffi::OsString;
use std::path::Path;

impl Tree {
    /// The job dir, and what to run in it: the arguments after the compiler's name (`args`
    /// are the request's, already checked by `box_rules`), the directory to run in, the
    /// object's path, the dependency file's path, the mirror's root (to take out of what
    /// the compiler says), and when an include names its file with a macro (`audit`), the
    /// preprocessing that audits what the compile will open.
    pub(super) fn command(mut self, args: &BoxArgs, output_ext: &str, audit: bool) -> Launch {
        let dir = self.dir.0.take().expect("a tree owns its dir until here");
        let root = self.mirror.root().to_string_lossy().into_owned();
        let mut argv = self.options(args, &root);
        let cwd = tree::under(self.mirror.root(), &self.cwd);
        let source = rooted(&root, &self.manifest.source);
        let audit = audit.then(|| audit_of(&argv, &source, self.mirror.root(), &cwd));
        let output = dir.join(format!("output.{output_ext}"));
        let depfile = self.manifest.deps.as_ref().map(|d| {
            let f = dir.join("output.d");
            dep_options(d, &f, &mut argv);
            f
        });
        argv.push(source.into());
        argv.push("-o".into());
        argv.push(output.clone().into());
        Launch {
            cwd,
            dir,
            argv,
            output,
            depfile,
            mirror: Some(self.mirror),
            audit,
        }
    }

    /// What comes before the source: the mirror's prefix maps, the job's options and its
    /// search paths, each rooted in the mirror at `root`.
    fn options(&self, args: &BoxArgs, root: &str) -> Vec<OsString> {
        // First, so that the build's own maps (given later, and rooted below) win where they
        // match, as they do on the master. Not one `-ffile-prefix-map`: gcc applies those
        // after every `-fmacro-prefix-map`, wherever they are given, so it would take the
        // root away from `__FILE__` in place of the kernel's `-fmacro-prefix-map=$(srctree)/=`
        // (a header's name would be absolute where the master's is relative).
        let mut argv: Vec<OsString> = vec![
            format!("-fmacro-prefix-map={root}=").into(),
            format!("-fdebug-prefix-map={root}=").into(),
        ];
        argv.extend(args.argv(Some(root)).into_iter().map(OsString::from));
        argv.push("-nostdinc".into());
        // Each option with its path joined: one element that starts with the option.
        for (opt, p) in &self.manifest.paths {
            argv.push(format!("{opt}{}", rooted(root, p)).into());
        }
        argv
    }
}

/// A path as gcc gets it: an absolute one in the mirror at `root`, a relative one as the
/// master's command names it (checked by `manifest::inside` to start with no `-`, `@`, `=`).
fn rooted(root: &str, p: &str) -> String {
    if p.starts_with('/') {
        format!("{root}{p}")
    } else {
        p.to_string()
    }
}

/// The same preprocessing as the compile's `options` with gcc's report of every header it
/// opens, and nothing written but to /dev/null. Not `-H` in the compile itself: with `-g`
/// gcc records its options in the object, which would then differ from the master's.
/// A full preprocessing, not on directives alone: a `_Pragma("pop_macro(...)")` in a
/// macro's expansion (even one pasted together with `##`, which no text check sees)
/// changes what a later `#include MACRO` opens, and `-fdirectives-only` does not run it.
fn audit_of(options: &[OsString], source: &str, root: &Path, cwd: &Path) -> Audit {
    let mut argv = options.to_vec();
    argv.push(source.into());
    argv.extend(["-E", "-H", "-o", "/dev/null"].map(OsString::from));
    Audit::new(root.to_path_buf(), cwd.to_path_buf(), argv)
}

/// The options that make the compiler write the dependency file `file` as `d` asks.
fn dep_options(d: &DepRequest, file: &Path, argv: &mut Vec<OsString>) {
    argv.push(if d.user_only { "-MMD" } else { "-MD" }.into());
    argv.push("-MF".into());
    argv.push(file.into());
    // Joined, so a target is never an argument of its own (`@file`, `-o`).
    for t in &d.mq {
        argv.push(format!("-MQ{t}").into());
    }
    for t in &d.mt {
        argv.push(format!("-MT{t}").into());
    }
    if d.phony {
        argv.push("-MP".into());
    }
}
