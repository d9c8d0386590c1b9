//! A scratch directory for the unit tests, empty at the start and removed when the test
//! ends (the integration tests have their own, `tests/util`).

use std::path::PathBuf;

pub struct Scratch(pub PathBuf);

impl Scratch {
    /// `rcc-WHAT-PID` in the temp dir, emptied; made only if `create` (some tests want to
    /// see a directory come into being).
    pub fn new(what: &str, create: bool) -> Scratch {
        let d = std::env::temp_dir().join(format!("rcc-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        if create {
            std::fs::create_dir_all(&d).unwrap();
        }
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
