//! Shared by the integration tests, each helper written once: a temp dir per test and the
//! commands a test runs (`rcc` with its own `RCC_DIR`, gcc, Lua's make, fixture compilers).
//! `daemon` starts a real `rccd` on 127.0.0.1 with an ephemeral port (killed on drop),
//! `wire` speaks frames to one as a peer would, and `machine` says what this machine lets a
//! test do and fakes what a box's kernel shows.

mod daemon;
mod machine;
mod wire;

pub use daemon::*;
pub use machine::*;
pub use wire::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const RCC: &str = env!("CARGO_BIN_EXE_rcc");
pub const RCCD: &str = env!("CARGO_BIN_EXE_rccd");

/// A directory removed when the test ends (kept if `RCC_TEST_KEEP=1`, for debugging).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rcc-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("RCC_TEST_KEEP").as_deref() != Ok("1") {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// An `rcc` command run in `cwd` with its own RCC_DIR and the given host list; nothing of
/// the caller's distcc/rcc environment leaks in.
pub fn rcc(cwd: &Path, rcc_dir: &Path, hosts: &str) -> Command {
    let mut c = Command::new(RCC);
    c.current_dir(cwd)
        .env("RCC_DIR", rcc_dir)
        .env("RCC_HOSTS", hosts)
        .env_remove("DISTCC_HOSTS")
        .env_remove("RCC_VERBOSE")
        .env_remove("_RCC_SAFEGUARD");
    c
}

/// Runs a command, panicking with everything it said if it fails to start.
pub fn run(c: &mut Command) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"))
}

/// Waits (polling, at most `secs`) until `f` holds; fails the test naming `what` if not.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command that must succeed.
pub fn ok(c: &mut Command) -> Output {
    let out = run(c);
    assert!(
        out.status.success(),
        "{c:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `gcc ARGS` in `cwd`.
pub fn gcc(cwd: &Path, compiler: &str, args: &[&str]) -> Output {
    let mut c = Command::new(compiler);
    c.current_dir(cwd).args(args);
    run(&mut c)
}

pub fn read(p: impl AsRef<Path>) -> Vec<u8> {
    let p = p.as_ref();
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Lua's C sources (from the lua-src crate, a dev-dependency), found through cargo once.
pub fn lua_src() -> PathBuf {
    static SRC: OnceLock<PathBuf> = OnceLock::new();
    SRC.get_or_init(find_lua_src).clone()
}

fn find_lua_src() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    let text = String::from_utf8_lossy(&out.stdout);
    let marker = "lua-src-547.1.0/Cargo.toml";
    let end = text.find(marker).expect("lua-src in cargo metadata") + "lua-src-547.1.0".len();
    let start = text[..end].rfind('"').unwrap() + 1;
    PathBuf::from(&text[start..end]).join("lua-5.4.7")
}

/// Lua's make in `dir` with `CC=cc`: `tests/fixtures/lua.mk` over the lua-src crate's
/// sources, a real multi-file C project. Nothing of the caller's distcc/rcc environment
/// leaks in; the caller adds `-j`, the flags and the build's own.
pub fn lua_make(dir: &Path, cc: &str) -> Command {
    let mut c = Command::new("make");
    c.current_dir(dir)
        .arg("-f")
        .arg(fixture("lua.mk"))
        .arg(format!("SRC={}", lua_src().display()))
        .arg(format!("CC={cc}"))
        .env_remove("DISTCC_HOSTS")
        .env_remove("RCC_VERBOSE")
        .env_remove("_RCC_SAFEGUARD");
    c
}

/// `dir`, then the caller's PATH.
pub fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The caller's PATH with rcc's own directory first, so a build's `CC="rcc gcc"` finds it.
pub fn path_with_rcc() -> String {
    path_with(Path::new(RCC).parent().unwrap())
}

/// The project's test fixture directory.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A directory with a fake compiler named `name` (a shell script) for staging faults and
/// identities; `script` is the script's body after `#!/bin/sh`.
pub fn fixture_compiler(dir: &TempDir, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// A compiler on the box that takes `secs` before doing the real work, so that jobs
/// overlap and a test can act while they run.
pub fn slow_gcc(t: &TempDir, secs: &str) -> PathBuf {
    fixture_compiler(
        t,
        "gcc",
        &format!(
            "case \"$*\" in *--version*|*-dumpmachine*) exec /usr/bin/gcc \"$@\";; esac\n\
             sleep {secs}\nexec /usr/bin/gcc \"$@\""
        ),
    )
}

/// What plain `gcc -O2 -c src -o out` makes in `t`: the object a build through rcc must
/// equal.
pub fn plain_object(t: &TempDir, src: &str, out: &str) -> Vec<u8> {
    let st = gcc(t.path(), "gcc", &["-O2", "-c", src, "-o", out]);
    assert!(st.status.success());
    read(t.join(out))
}

pub fn s(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}
