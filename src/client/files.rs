//! What the master knows of each file a job ships: its SHA-256 and its include directives,
//! kept in `RCC_DIR/files/` so the build's rcc processes hash and scan each header once —
//! and checked against the file's size, mtime, ctime and inode on every job, so a header
//! rewritten during the build (the kernel's `autoconf.h`) is read again. ctime is in the key
//! because no tool can set it: `touch -d` can make new content look old, not unchanged.

use crate::includes::{self, Directive, Form};
use crate::sha256::{self, Digest};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One file, as of its stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub hash: Digest,
    pub size: u64,
    pub directives: Vec<Directive>,
}

pub struct Files {
    dir: PathBuf,
}

fn stamp(m: &fs::Metadata) -> String {
    format!(
        "{} {}.{} {}.{} {} {}",
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.ino(),
        m.dev()
    )
}

fn encode(stamp: &str, k: &Known) -> String {
    let mut s = format!("{stamp}\n{}\n", sha256::hex(&k.hash));
    for d in &k.directives {
        match d {
            Directive::Include {
                form,
                name,
                next,
                probe,
            } => {
                let f = if *form == Form::Quote { 'q' } else { 'a' };
                s.push_str(&format!("I {f} {} {} {name}\n", *next as u8, *probe as u8));
            }
            Directive::Computed { line, text } => {
                s.push_str(&format!("C {line} {}\n", text.replace('\n', " ")))
            }
        }
    }
    s
}

fn unhex(h: &str) -> Option<Digest> {
    if h.len() != 64 {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(d)
}

fn decode(text: &str, want: &str, size: u64) -> Option<Known> {
    let mut lines = text.lines();
    if lines.next()? != want {
        return None;
    }
    let hash = unhex(lines.next()?)?;
    let mut directives = Vec::new();
    for l in lines {
        let (kind, rest) = l.split_at_checked(2)?;
        match kind {
            "I " => {
                let mut p = rest.splitn(4, ' ');
                let form = match p.next()? {
                    "q" => Form::Quote,
                    "a" => Form::Angle,
                    _ => return None,
                };
                let next = p.next()? == "1";
                let probe = p.next()? == "1";
                directives.push(Directive::Include {
                    form,
                    name: p.next()?.to_string(),
                    next,
                    probe,
                });
            }
            "C " => {
                let (line, text) = rest.split_once(' ')?;
                directives.push(Directive::Computed {
                    line: line.parse().ok()?,
                    text: text.to_string(),
                });
            }
            _ => return None,
        }
    }
    Some(Known {
        hash,
        size,
        directives,
    })
}

impl Files {
    /// The cache under `rcc_dir/files`.
    pub fn open(rcc_dir: &Path) -> io::Result<Files> {
        let dir = rcc_dir.join("files");
        fs::create_dir_all(&dir)?;
        Ok(Files { dir })
    }

    fn entry(&self, path: &Path) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let h = sha256::digest(path.as_os_str().as_bytes());
        self.dir.join(&sha256::hex(&h)[..32])
    }

    /// The hash and directives of `path` as it is now; the content too when it had to be
    /// read (a miss), so a caller shipping it need not read it again.
    pub fn get(&self, path: &Path) -> io::Result<(Known, Option<Vec<u8>>)> {
        let m = fs::metadata(path)?;
        let want = stamp(&m);
        let entry = self.entry(path);
        if let Ok(text) = fs::read_to_string(&entry) {
            if let Some(k) = decode(&text, &want, m.size()) {
                return Ok((k, None));
            }
        }
        let data = fs::read(path)?;
        // The file changed while we read it: the stamp we keep must describe what we read,
        // so take it again and do not keep an entry if it moved.
        let after = fs::metadata(path).map(|m| stamp(&m)).unwrap_or_default();
        let k = Known {
            hash: sha256::digest(&data),
            size: data.len() as u64,
            directives: includes::scan(&data),
        };
        if after == want {
            let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
            if fs::write(&tmp, encode(&want, &k)).is_ok() {
                let _ = fs::rename(&tmp, &entry);
            }
        }
        Ok((k, Some(data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    fn dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("rcc-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    #[test]
    fn a_hit_needs_the_same_stamp_and_a_rewrite_is_seen() {
        let d = dir("stamp");
        let files = Files::open(&d.0).unwrap();
        let h = d.0.join("cfg.h");
        fs::write(&h, "#define A 1\n#include <a.h>\n#include M\n").unwrap();
        let (k, data) = files.get(&h).unwrap();
        assert!(data.is_some(), "first read is a miss");
        assert_eq!(k.directives.len(), 2);
        let (again, data) = files.get(&h).unwrap();
        assert!(data.is_none(), "second read is a hit");
        assert_eq!(again, k);
        // Same size, mtime set back: the ctime still tells.
        let m = fs::metadata(&h).unwrap();
        fs::write(&h, "#define A 2\n#include <b.h>\n#include M\n").unwrap();
        let f = fs::File::options().write(true).open(&h).unwrap();
        f.set_modified(m.modified().unwrap()).unwrap();
        let (new, data) = files.get(&h).unwrap();
        assert!(data.is_some());
        assert_ne!(new.hash, k.hash);
        assert_eq!(
            new.directives[0],
            Directive::Include {
                form: Form::Angle,
                name: "b.h".into(),
                next: false,
                probe: false
            }
        );
    }

    #[test]
    fn entries_round_trip() {
        let k = Known {
            hash: sha256::digest(b"x"),
            size: 1,
            directives: vec![
                Directive::Include {
                    form: Form::Quote,
                    name: "a b.h".into(),
                    next: true,
                    probe: false,
                },
                Directive::Computed {
                    line: 9,
                    text: "#include X(y)".into(),
                },
            ],
        };
        assert_eq!(decode(&encode("s", &k), "s", 1), Some(k.clone()));
        assert_eq!(decode(&encode("s", &k), "t", 1), None);
    }
}
