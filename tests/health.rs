//! A box says how it is, and a box that cannot work gets no jobs, with real rccd processes:
//! a small disk its file cache fills (it gives room, before and after a restart), a disk
//! full of other files (`full`), a temp dir it cannot write (refused at start, or `broken`
//! for the default one), no compilers (`broken`), and `rcc --status` naming each state
//! (`up`, `hot`, `full`, `broken: ...`, `mismatch: gcc`, `down`). Then the start-up
//! messages: one line each, naming the flag, the path and what to do.
//!
//! The tests that mount a tmpfs or change users need root; without it they say so and skip.

use crate::util::*;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What the tests that skip without root need it for.
const NEEDS_ROOT: &str = "mounts and other users";

/// A tmpfs mounted with `opts` (root only; without it, or where it cannot be mounted, the
/// test says so and skips).
fn tmpfs(name: &str, opts: &str) -> Option<Tmpfs> {
    if !root(NEEDS_ROOT) {
        return None;
    }
    Tmpfs::mount(name, opts)
}

/// `h{i}.h`, about 160 KiB, and `u{i}.c`, which includes it: a job whose header fills a
/// sixth of a 1 MiB disk.
fn job_files(t: &TempDir, i: u32) {
    t.write(
        &format!("h{i}.h"),
        &format!(
            "/* header {i}: {} */\n#define H{i} {i}\n",
            "x".repeat(160 << 10)
        ),
    );
    t.write(
        &format!("u{i}.c"),
        &format!("#include \"h{i}.h\"\nint f{i}(void) {{ return H{i}; }}\n"),
    );
}

/// Compiles `u{i}.c` through rcc with `hosts` and its own `RCC_DIR` (`rcc_dir`); it must
/// succeed and write the object, on the box or at home.
fn compile(t: &TempDir, rcc_dir: &str, hosts: &str, i: u32) -> Output {
    let obj = t.join(format!("u{i}.o"));
    let _ = std::fs::remove_file(&obj);
    let out = ok(rcc(t.path(), &t.join(rcc_dir), hosts)
        .env("RCC_VERBOSE", "1")
        .args(["gcc", "-c", &format!("u{i}.c"), "-o"])
        .arg(&obj));
    assert!(obj.exists(), "no object: {}", s(&out.stderr));
    out
}

/// The status line of `rcc --status --format kv` for `addr`, and the table's row.
fn status_of(t: &TempDir, hosts: &str, addr: &str) -> (String, String) {
    let kv = ok(rcc(t.path(), &t.join(".rcc-status"), hosts).args(["--status", "--format", "kv"]));
    let table = ok(rcc(t.path(), &t.join(".rcc-status"), hosts).arg("--status"));
    let find = |text: &str, prefix: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line for {addr}:\n{text}"))
            .to_string()
    };
    (
        find(&s(&kv.stdout), &format!("host={addr} ")),
        find(&s(&table.stdout), &format!("{addr} ")),
    )
}

#[test]
fn a_cache_that_fills_a_small_disk_gives_room_and_the_box_keeps_compiling() {
    let Some(disk) = tmpfs("small-disk", "size=1m") else {
        return;
    };
    let t = TempDir::new("small-disk-src");
    let mut d = Daemon::start(1, &["--temp-dir", disk.path()]);
    // Eight headers of 160 KiB: more than the disk holds, so the cache must let old ones go.
    for i in 0..8 {
        job_files(&t, i);
        let out = compile(&t, ".rcc", &d.addr(), i);
        assert_eq!(
            (d.counter("done"), d.counter("sources")),
            (u64::from(i) + 1, u64::from(i) + 1),
            "job {i} was not compiled on the box\nrcc: {}\nrccd: {}",
            s(&out.stderr),
            d.log_text()
        );
    }
    let st = d.status();
    assert_eq!(st["health"], "ok", "{st:?}");
    let limit: u64 = st["cache_limit_kib"].parse().unwrap();
    assert!(
        limit <= 512,
        "the cache may keep half of a 1 MiB disk: {st:?}"
    );
    assert!(st.contains_key("free_kib"), "{st:?}");
    // Other files fill the disk, and rccd restarts: the cache gives room, and the next job
    // is compiled on the box again.
    let filler = disk.fill();
    d.stop();
    let d = Daemon::start(1, &["--temp-dir", disk.path()]);
    job_files(&t, 8);
    let out = compile(&t, ".rcc-2", &d.addr(), 8);
    assert_eq!(
        d.counter("done"),
        1,
        "not compiled on the box after a restart on a full disk\nrcc: {}\nrccd: {}",
        s(&out.stderr),
        d.log_text()
    );
    assert_eq!(d.value("health"), "ok");
    std::fs::remove_file(filler).unwrap();
}

#[test]
fn a_box_whose_disk_is_full_says_full_gets_no_jobs_and_mends_when_room_comes_back() {
    let Some(disk) = tmpfs("full-disk", "size=1m") else {
        return;
    };
    let filler = disk.fill();
    let t = TempDir::new("full-disk-src");
    let d = Daemon::start(2, &["--temp-dir", disk.path()]);
    let st = d.status();
    assert_eq!(st["health"], "full", "{st:?}");
    assert_eq!(st["slots_now"], "0", "{st:?}");
    assert_eq!(st["slots"], "2", "{st:?}");
    assert!(st["free_kib"].parse::<u64>().unwrap() < 256, "{st:?}");
    assert!(
        st["last_error"].contains("no space left in its temp dir"),
        "{st:?}"
    );
    let (kv, row) = status_of(&t, &d.addr(), &d.addr());
    assert!(
        kv.contains(" state=full ") && kv.contains(" health=full "),
        "{kv}"
    );
    assert!(row.contains(" full "), "{row}");
    // It offers no slots: the client does not even ask it, and compiles at home.
    job_files(&t, 0);
    compile(&t, ".rcc", &d.addr(), 0);
    assert_eq!((d.counter("done"), d.counter("rejected")), (0, 0));
    // Room again: the next status says ok, and a client that asks anew sends it the job.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(d.value("health"), "ok");
    let out = compile(&t, ".rcc-2", &d.addr(), 0);
    assert_eq!(d.counter("done"), 1, "{}", s(&out.stderr));
}

/// Runs rccd with `args` (and `uid` if given), which must exit within 20 s; killed if not.
fn rccd_exits(args: &[&str], uid: Option<u32>) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let t = TempDir::new("rccd-exits");
    let err = t.join("stderr");
    let empty = t.join("sys");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = Command::new(RCCD);
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--thermal-root")
        .arg(&empty)
        .arg("--cpufreq-root")
        .arg(&empty)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap());
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "rccd {args:?} started instead of refusing:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), std::fs::read_to_string(&err).unwrap())
}

/// The `rccd: ...` lines of what rccd said: an error is one of them, said once.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("rccd: ")).collect()
}

#[test]
fn a_temp_dir_given_that_rccd_cannot_write_stops_it_with_one_line() {
    let Some(ro) = tmpfs("ro-temp", "size=1m,ro") else {
        return;
    };
    let (code, err) = rccd_exits(&["--temp-dir", ro.path(), "--user", "root"], None);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        error_lines(&err),
        [format!(
            "rccd: cannot write in --temp-dir {} (Read-only file system): give rccd a \
             writable directory (--temp-dir DIR, owned by root) and start it again",
            ro.path()
        )],
        "{err}"
    );
    assert!(!err.contains("preprocessed jobs only"), "{err}");
    // Started as nobody, with a temp dir root owns (0755): the same line, for nobody.
    let Some(nobody) = rcc::daemon::sandbox::find_account(
        &std::fs::read_to_string("/etc/passwd").unwrap(),
        "nobody",
    ) else {
        eprintln!("note: no user nobody; skipping its half");
        return;
    };
    let owned = TempDir::new("root-owned");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(owned.path(), mode).unwrap();
    let dir = owned.path().to_str().unwrap();
    let (code, err) = rccd_exits(&["--temp-dir", dir], Some(nobody.uid));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        error_lines(&err),
        [format!(
            "rccd: cannot write in --temp-dir {dir} (Permission denied): give rccd a writable \
             directory (--temp-dir DIR, owned by nobody) and start it again"
        )],
        "{err}"
    );
}

#[test]
fn root_giving_up_to_nobody_still_works_in_a_dir_of_its_own() {
    if !root(NEEDS_ROOT) {
        return;
    }
    let owned = TempDir::new("root-owned-ok");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(owned.path(), mode).unwrap();
    let dir = owned.path().to_str().unwrap();
    let d = Daemon::start(1, &["--temp-dir", dir, "--user", "nobody"]);
    assert_eq!(d.value("health"), "ok");
    let t = TempDir::new("root-owned-src");
    job_files(&t, 0);
    let out = compile(&t, ".rcc", &d.addr(), 0);
    assert_eq!(d.counter("done"), 1, "{}\n{}", s(&out.stderr), d.log_text());
    assert!(owned.join("rccd-nobody").is_dir());
}

/// A box's own words as `rcc --status` shows them: the first 80 characters, then "...". (The
/// tests share one process, and a temp dir's name grows with the number made before it.)
fn as_status_shows(words: &str) -> String {
    let mut shown: String = words.chars().take(80).collect();
    if words.chars().count() > 80 {
        shown.push_str("...");
    }
    shown
}

#[test]
fn a_default_temp_dir_rccd_cannot_write_starts_it_broken_until_it_can() {
    let Some(ro) = tmpfs("ro-default", "size=1m,ro") else {
        return;
    };
    let t = TempDir::new("ro-default-src");
    let d = Daemon::start_default_temp(1, &[], ro.0.path());
    let why = format!("cannot write in {} (Read-only file system)", ro.path());
    let st = d.status();
    assert_eq!(st["health"], format!("broken: {why}"), "{st:?}");
    assert_eq!(st["slots_now"], "0", "{st:?}");
    let log = d.log_text();
    let line = format!(
        "cannot write in the temp dir {} ($TMPDIR, else /tmp) (Read-only file system): give \
         rccd a writable directory (--temp-dir DIR, owned by root) and start it again; until \
         then this box takes no jobs",
        ro.path()
    );
    assert_eq!(log.matches(&line).count(), 1, "{log}");
    assert!(!log.contains("preprocessed jobs only"), "{log}");
    let (kv, row) = status_of(&t, &d.addr(), &d.addr());
    let state = as_status_shows(&format!("broken: {why}"));
    assert!(
        kv.contains(&format!(" state={}", state.replace(' ', "_"))),
        "{kv}"
    );
    assert!(row.contains(&format!(" {state} ")), "{row}");
    // A client told it has a slot sends the job anyway: refused with the reason, and
    // compiled at home.
    job_files(&t, 0);
    let out = compile(&t, ".rcc", &format!("{}/1", d.addr()), 0);
    assert_eq!(d.counter("done"), 0);
    assert_eq!(d.counter("rejected"), 1);
    assert!(s(&out.stderr).contains(&why), "{}", s(&out.stderr));
    // Writable again: it mends without a restart (it looks again at most once a second),
    // shipped sources included.
    ro.remount("rw");
    wait_until("the box mends", 10, || d.value("health") == "ok");
    let out = compile(&t, ".rcc-2", &d.addr(), 0);
    assert_eq!(
        (d.counter("done"), d.counter("sources")),
        (1, 1),
        "{}\n{}",
        s(&out.stderr),
        d.log_text()
    );
}

#[test]
fn a_compiler_path_without_compilers_is_said_and_makes_the_box_broken() {
    let t = TempDir::new("no-compilers");
    let empty = t.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = empty.to_str().unwrap();
    let d = Daemon::start(1, &["--compiler-path", e]);
    assert_eq!(d.value("health"), format!("broken: no compiler in {e}"));
    assert_eq!(d.value("slots_now"), "0");
    let log = d.log_text();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("no compiler in {e}")))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(
        said[0].contains("--compiler-path") && said[0].contains("install one"),
        "{log}"
    );
    // A compiler installed there: it mends without a restart.
    let gcc = ok(Command::new("sh").args(["-c", "command -v gcc"]));
    std::os::unix::fs::symlink(s(&gcc.stdout).trim(), empty.join("gcc")).unwrap();
    wait_until("the box finds its compiler", 10, || {
        d.value("health") == "ok"
    });
    assert!(d.status().contains_key("compiler.gcc"));
}

#[test]
fn status_names_each_boxs_state() {
    let t = TempDir::new("states");
    let up = Daemon::start(1, &[]);
    let tree = FakeThermal::new(&t, "hot-sys", 85.0);
    let hot_flags = tree.flag();
    let hot = Daemon::start(1, &[&hot_flags[0], &hot_flags[1]]);
    let other = fixture_compiler(
        &t,
        "gcc",
        "case \"$1\" in --version) echo 'gcc (Other) 1.0';; -dumpmachine) echo x86_64-linux-gnu;; esac",
    );
    let mismatch = Daemon::start(1, &["--compiler-path", other.to_str().unwrap()]);
    let empty = t.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let broken = Daemon::start(1, &["--compiler-path", empty.to_str().unwrap()]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let hosts = [&up, &hot, &mismatch, &broken]
        .iter()
        .map(|d| d.addr())
        .chain([dead.clone()])
        .collect::<Vec<_>>()
        .join(" ");
    // The hot box says so once it sampled its zone (once a second).
    wait_until("the hot box throttles", 15, || {
        hot.status().get("thermal").map(String::as_str) == Some("throttled")
    });
    let no_compiler = format!("broken: no compiler in {}", empty.display());
    for (addr, want) in [
        (up.addr(), "up".to_string()),
        (hot.addr(), "hot".into()),
        (mismatch.addr(), "mismatch: gcc".into()),
        (broken.addr(), no_compiler),
        (dead.clone(), "down".into()),
    ] {
        let (kv, row) = status_of(&t, &hosts, &addr);
        assert!(
            kv.contains(&format!(" state={} ", want.replace(' ', "_"))),
            "{want}: {kv}"
        );
        assert!(row.contains(&format!(" {want} ")), "{want}: {row}");
    }
}

#[test]
fn a_port_file_rccd_cannot_write_is_named_in_one_line() {
    let t = TempDir::new("port-file");
    let tmp = t.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut args = vec!["--port-file", "/nonexistent/pf", "--pid-file"];
    let pid = t.join("rccd.pid");
    args.push(pid.to_str().unwrap());
    args.extend(["--temp-dir", tmp.to_str().unwrap()]);
    if root(NEEDS_ROOT) {
        args.extend(["--user", "root"]);
    }
    let (code, err) = rccd_exits(&args, None);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        error_lines(&err),
        [
            "rccd: --port-file /nonexistent/pf: its directory /nonexistent does not exist: create \
          it, or name a file in a directory that exists"
        ],
        "{err}"
    );
    assert!(!pid.exists(), "a pid file was left behind");
    // A port file rccd cannot write (a directory): the same kind of line, whether rccd
    // writes it as itself or (as root, giving root up) makes it first.
    let users: &[&[&str]] = if root(NEEDS_ROOT) {
        &[&["--user", "root"], &[]]
    } else {
        &[&[]]
    };
    for user in users {
        let mut args = vec!["--port-file", tmp.to_str().unwrap(), "--pid-file"];
        args.push(pid.to_str().unwrap());
        args.extend(["--temp-dir", tmp.to_str().unwrap()]);
        args.extend(user.iter());
        let (code, err) = rccd_exits(&args, None);
        assert_eq!(code, Some(1), "{err}");
        assert_eq!(
            error_lines(&err),
            [format!(
                "rccd: --port-file {}: cannot write it (Is a directory): name a file in a \
                 directory rccd may write, or leave --port-file out",
                tmp.display()
            )],
            "{user:?}: {err}"
        );
        assert!(!pid.exists(), "{user:?}: a pid file was left behind");
    }
}

#[test]
fn a_missing_temp_dir_is_refused_not_made() {
    let t = TempDir::new("missing-temp");
    let missing = t.join("not/there");
    let m = missing.to_str().unwrap();
    let (code, err) = rccd_exits(&["--temp-dir", m], None);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        error_lines(&err),
        [format!(
            "rccd: --temp-dir {m} does not exist: create it (mkdir -p {m}), or leave \
             --temp-dir out to use $TMPDIR or /tmp"
        )],
        "{err}"
    );
    assert!(!missing.exists() && !t.join("not").exists());
}

#[test]
fn check_says_what_the_disk_and_memory_rules_are() {
    let t = TempDir::new("check-disk");
    let tmp = t.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = ok(Command::new(RCCD).args(["--check", "--temp-dir", tmp.to_str().unwrap()]));
    let text = s(&out.stdout);
    let line = |start: &str| -> &str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start} line:\n{text}"))
    };
    let temp = line("temp dir: ");
    assert!(
        temp.starts_with(&format!("temp dir: {}: writable by ", tmp.display()))
            && temp.contains(" MiB free;"),
        "{temp}"
    );
    let cache = line("file cache: ");
    assert!(
        cache.contains(
            "at most 256 MiB (--cache-size) and never more than 50% of its disk's free space"
        ),
        "{cache}"
    );
    let memory = line("memory: ");
    assert!(
        memory.contains("is at least 64 MiB, or as much as the most recent compiles needed")
            && memory.ends_with('.'),
        "{memory}"
    );
    // A temp dir rccd cannot use is said, not hidden.
    let gone = t.join("gone");
    let out = ok(Command::new(RCCD).args(["--check", "--temp-dir", gone.to_str().unwrap()]));
    assert!(
        s(&out.stdout).contains(&format!("temp dir: {}: NOT writable", gone.display())),
        "{}",
        s(&out.stdout)
    );
}

/// `--temp-dir` and `--cache-dir` given as relative paths name the directories where rccd
/// was started, and jobs compile there (each compile runs in its own job directory, where
/// the relative path would have named something else).
#[test]
fn relative_temp_and_cache_dirs_work() {
    let t = TempDir::new("relative");
    job_files(&t, 1);
    let tmp = t.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // The same directories, spelled relative to the directory rccd starts in (this test's).
    let here = std::env::current_dir().unwrap();
    let up = "../".repeat(here.components().count() - 1);
    let rel = |p: &std::path::Path| format!("{up}{}", p.strip_prefix("/").unwrap().display());
    let d = Daemon::start(
        1,
        &[
            "--temp-dir",
            &rel(&tmp),
            "--cache-dir",
            &rel(&t.join("cache")),
        ],
    );
    compile(&t, ".rcc", &d.addr(), 1);
    assert_eq!(d.counter("done"), 1, "{}", d.log_text());
    assert!(t.join("cache").read_dir().unwrap().next().is_some());
}
