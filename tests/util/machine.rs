//! What this machine lets a test do (root, a tool), and what a box's kernel shows, faked
//! or made for real: a tmpfs of a given size, a thermal zone at a given temperature.

use super::TempDir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the tests run as root; if not, says on stderr that the test is skipped because
/// `needs` need root.
pub fn root(needs: &str) -> bool {
    let uid = rcc::sys::geteuid();
    if uid != 0 {
        eprintln!("note: not root; skipping ({needs} need root)");
    }
    uid == 0
}

/// Whether `tool arg` runs and succeeds here (`cmake --version`).
pub fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tmpfs on a fresh dir (root only), unmounted on drop even when the test panics.
/// Declared before the daemons that use it, so they stop first.
pub struct Tmpfs(pub TempDir);

impl Tmpfs {
    /// Mounted with `opts` (`size=1m,ro`); `None`, said on stderr, where it cannot be.
    pub fn mount(name: &str, opts: &str) -> Option<Tmpfs> {
        let d = TempDir::new(name);
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(d.path())
            .status();
        if !st.is_ok_and(|s| s.success()) {
            eprintln!("note: cannot mount a tmpfs ({opts}) here; skipping");
            return None;
        }
        Some(Tmpfs(d))
    }

    pub fn path(&self) -> &str {
        self.0.path().to_str().unwrap()
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }

    pub fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(self.0.path())
            .status()
            .unwrap();
        assert!(st.success(), "remount {opts}");
    }

    /// Fills it to the last byte with a file of its own, `filler`; returns the file.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let p = self.0.join("filler");
        let mut f = std::fs::File::create(&p).unwrap();
        let block = vec![0u8; 4096];
        // Bounded by the disk's size.
        while f.write_all(&block).is_ok() {}
        p
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.0.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
        }
    }
}

/// A fake `/sys/class/thermal` laid out like a mainline Amlogic GX box: one `cpu-thermal`
/// zone (passive trip 80 °C, hysteresis 2 °C; critical 110 °C) and its cpufreq cooling
/// device. Files are replaced by rename, as the kernel's values change under a reader.
pub struct FakeThermal {
    pub root: PathBuf,
}

impl FakeThermal {
    pub fn new(t: &TempDir, name: &str, celsius: f64) -> FakeThermal {
        let root = t.join(name);
        let z = root.join("thermal_zone0");
        let cd = root.join("cooling_device0");
        std::fs::create_dir_all(&z).unwrap();
        std::fs::create_dir_all(&cd).unwrap();
        let f = FakeThermal { root };
        for (p, v) in [
            ("thermal_zone0/type", "cpu-thermal"),
            ("thermal_zone0/mode", "enabled"),
            ("thermal_zone0/trip_point_0_type", "passive"),
            ("thermal_zone0/trip_point_0_temp", "80000"),
            ("thermal_zone0/trip_point_0_hyst", "2000"),
            ("thermal_zone0/trip_point_1_type", "critical"),
            ("thermal_zone0/trip_point_1_temp", "110000"),
            ("thermal_zone0/trip_point_1_hyst", "0"),
            ("cooling_device0/type", "thermal-cpufreq-0"),
            ("cooling_device0/max_state", "4"),
            ("cooling_device0/cur_state", "0"),
        ] {
            f.put(p, v);
        }
        f.set_temp(celsius);
        f
    }

    fn put(&self, rel: &str, value: &str) {
        let p = self.root.join(rel);
        let tmp = p.with_extension("new");
        std::fs::write(&tmp, format!("{value}\n")).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }

    pub fn set_temp(&self, celsius: f64) {
        self.put(
            "thermal_zone0/temp",
            &((celsius * 1000.0) as i64).to_string(),
        );
    }

    pub fn set_cooling(&self, state: u32) {
        self.put("cooling_device0/cur_state", &state.to_string());
    }

    pub fn flag(&self) -> [String; 2] {
        [
            "--thermal-root".into(),
            self.root.to_string_lossy().into_owned(),
        ]
    }
}
