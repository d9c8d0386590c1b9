//! The master's compiler identity, cached in `RCC_DIR` so that a build of a thousand files
//! runs `gcc --version` once, not a thousand times. The cache is keyed on the compiler's
//! path, inode, size and mtime: upgrading gcc mid-build is noticed at the next job.

use crate::compiler;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The identity of the compiler at `path`, from the cache in `state_dir` or by asking it.
pub fn get(path: &Path, state_dir: &Path) -> io::Result<String> {
    let real = path.canonicalize()?;
    let m = fs::metadata(&real)?;
    let stamp = format!("{} {} {} {}", real.display(), m.ino(), m.size(), m.mtime());
    let file = state_dir.join(format!(
        "id_{:016x}",
        crate::fasthash::fnv(std::os::unix::ffi::OsStrExt::as_bytes(real.as_os_str()))
    ));
    if let Ok(text) = fs::read_to_string(&file) {
        if let Some((s, id)) = text.split_once('\n') {
            if s == stamp && !id.trim().is_empty() {
                return Ok(id.trim().to_string());
            }
        }
    }
    let id = compiler::probe_identity(&real)?;
    // A cache: if it cannot be written, the next job asks the compiler again.
    let _ = super::output::write_atomically(&file, format!("{stamp}\n{id}\n").as_bytes());
    Ok(id)
}
