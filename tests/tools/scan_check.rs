//! Checks the include scanner against gcc on real compile commands: `cargo run --release
//! --example scan_check -- CORPUS.json` (the corpus ../shared/bench writes: `cwd`, `cc` and
//! `jobs` with `argv`). For each job: the files `gcc -M` says the compile reads must all be
//! in the scanner's closure; prints the closure size, the time the scan took, and the jobs
//! with computed includes.
use rcc::client::scan;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The compile's options for probing and for `gcc -M`: no output, no source, no dep flags.
fn options(argv: &[String]) -> (Vec<String>, String) {
    let mut out = Vec::new();
    let mut src = String::new();
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        if a == "-o" || a == "-MF" || a == "-MT" || a == "-MQ" {
            i += 2;
            continue;
        }
        if a == "-c" || a.starts_with("-Wp,-M") || a == "-MD" || a == "-MMD" {
            i += 1;
            continue;
        }
        if !a.starts_with('-') && (a.ends_with(".c") || a.ends_with(".S")) {
            src = a.clone();
            i += 1;
            continue;
        }
        out.push(a.clone());
        i += 1;
    }
    (out, src)
}

/// Pulls `"key": "value"` and `"argv": [...]` out of the corpus without a JSON crate.
fn jobs(text: &str) -> (String, String, Vec<Vec<String>>) {
    let field = |k: &str| -> String {
        let p = text.find(&format!("\"{k}\": \"")).expect(k) + k.len() + 5;
        text[p..p + text[p..].find('"').unwrap()].to_string()
    };
    let mut all = Vec::new();
    for part in text.split("\"argv\": [").skip(1) {
        let end = part.find(']').unwrap();
        let mut v = Vec::new();
        let mut s = &part[..end];
        while let Some(p) = s.find('"') {
            let mut q = p + 1;
            let mut word = String::new();
            let b = s.as_bytes();
            while b[q] != b'"' {
                if b[q] == b'\\' {
                    q += 1;
                }
                word.push(b[q] as char);
                q += 1;
            }
            v.push(word);
            s = &s[q + 1..];
        }
        all.push(v);
    }
    (field("cwd"), field("cc"), all)
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: scan_check CORPUS.json");
    let (cwd, cc, all) = jobs(&std::fs::read_to_string(path).unwrap());
    let cwd = PathBuf::from(cwd);
    eprintln!("cwd {} cc {cc}, {} jobs", cwd.display(), all.len());
    let compiler = PathBuf::from(
        String::from_utf8(Command::new("which").arg(&cc).output().unwrap().stdout)
            .unwrap()
            .trim(),
    );
    let (mut missing_jobs, mut computed, mut total_files, mut total_needed) = (0, 0, 0, 0);
    let mut scan_ms = Vec::new();
    let mut warm_ms = Vec::new();
    let cache = std::env::temp_dir().join(format!("rcc-scan-check-{}", std::process::id()));
    for argv in &all {
        let (opts, src) = options(argv);
        let lang = if src.ends_with(".S") {
            "assembler-with-cpp"
        } else {
            "c"
        };
        let os: Vec<OsString> = opts.iter().map(OsString::from).collect();
        let t = Instant::now();
        let sp = scan::probe(&compiler, &os, lang, &cwd).unwrap();
        let probe_ms = t.elapsed().as_secs_f64() * 1e3;
        let source = scan::clean(&cwd.join(&src));
        // Cold: every file read, hashed and scanned; warm: the build's cache answers.
        let t = Instant::now();
        // One Files per job, as each rcc process opens its own.
        let mut files = rcc::client::files::Files::open(&cache).unwrap();
        let c = scan::include_closure(&source, &sp, &[], &mut scan::Dirs::default(), |p| {
            Ok(std::rc::Rc::clone(&files.get(p)?.directives))
        })
        .unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let mut files = rcc::client::files::Files::open(&cache).unwrap();
        let _ = scan::include_closure(&source, &sp, &[], &mut scan::Dirs::default(), |p| {
            Ok(std::rc::Rc::clone(&files.get(p)?.directives))
        })
        .unwrap();
        warm_ms.push(t.elapsed().as_secs_f64() * 1e3);
        scan_ms.push(ms);
        let deps = Command::new(&compiler)
            .args(&opts)
            .args(["-M", "-MF", "-", &src])
            .current_dir(&cwd)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&deps.stdout).replace("\\\n", " ");
        let needed: Vec<PathBuf> = text
            .split_whitespace()
            .skip(1)
            .map(|f| scan::clean(&cwd.join(f)))
            .collect();
        let have: std::collections::HashSet<&Path> = c
            .files
            .iter()
            .chain(&c.probed)
            .map(|p| p.as_path())
            .collect();
        let lost: Vec<&PathBuf> = needed
            .iter()
            .filter(|n| !have.contains(n.as_path()))
            .collect();
        total_files += c.files.len();
        total_needed += needed.len();
        if !lost.is_empty() {
            missing_jobs += 1;
            println!(
                "MISSING {src}: {} of {} not found, e.g. {:?}",
                lost.len(),
                needed.len(),
                &lost[..lost.len().min(3)]
            );
        }
        if let Some(why) = &c.unknowable {
            computed += 1;
            println!("COMPUTED {src}: {why}");
        }
        println!(
            "{src}: {} files shipped, {} read by gcc, scan {ms:.1} ms, probe {probe_ms:.1} ms",
            c.files.len(),
            needed.len()
        );
    }
    scan_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    warm_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let _ = std::fs::remove_dir_all(&cache);
    println!(
        "\n{} jobs: {missing_jobs} with files missing, {computed} with computed includes; \
         {:.0} files shipped per job vs {:.0} read; scan and hash median {:.1} ms cold, \
         {:.1} ms with the build's cache",
        all.len(),
        total_files as f64 / all.len() as f64,
        total_needed as f64 / all.len() as f64,
        scan_ms[scan_ms.len() / 2],
        warm_ms[warm_ms.len() / 2]
    );
}
