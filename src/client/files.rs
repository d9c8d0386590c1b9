//! What the master knows of each file a job ships: its SHA-256 and its include directives,
//! kept in `RCC_DIR/files/` so the build's rcc processes hash and scan each header once —
//! and checked against the file's size, mtime, ctime and inode on every job, so a header
//! rewritten during the build (the kernel's `autoconf.h`) is read again. ctime is in the key
//! because no tool can set it: `touch -d` can make new content look old, not unchanged.
//!
//! One log per source directory, not one entry per file: a kernel job reads hundreds of
//! headers from far fewer directories, and opening a small file for each was most of what a
//! shipped job cost the master. Each rcc process appends what it learned as one `write`
//! (atomic between appenders on a local file system; each record carries a checksum for the
//! others), reads the newest record per file, and rewrites a log that is mostly stale
//! records.

use crate::fasthash::FastMap;
use crate::rules::includes::{self, Directive, Form};
use crate::sha256::{self, Digest};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One file, as of its stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub hash: Digest,
    pub size: u64,
    /// Shared: the scan and the manifest both hold them.
    pub directives: Rc<Vec<Directive>>,
}

/// A log is rewritten when it is larger than this and mostly stale.
const COMPACT_ABOVE: usize = 256 * 1024;

/// One directory's log as read by this process: its bytes and where each file's newest
/// record is in them (decoded only when asked for).
struct Log {
    path: PathBuf,
    data: Vec<u8>,
    newest: FastMap<Vec<u8>, (Range<usize>, u64)>,
}

pub struct Files {
    dir: PathBuf,
    logs: FastMap<OsString, Log>,
    /// What this process learned of each file, as of its stamp, and the last job that asked
    /// for it: the scan server keeps it across jobs, so a file it knows costs one stat.
    known: FastMap<OsString, (Stamp, Known, u64)>,
    /// The job asking now. A job asks for each file twice (the closure, then the manifest)
    /// and the second answer must be the first, whatever the disk says.
    job: u64,
}

/// What must not change for a file to be the one that was read: its size, mtime and ctime
/// (to the nanosecond), inode and device. (For a directory: what any entry created,
/// removed or renamed in it changes.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp([i64; 7]);

impl Stamp {
    pub fn of(m: &fs::Metadata) -> Stamp {
        Stamp([
            m.size() as i64,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.ino() as i64,
            m.dev() as i64,
        ])
    }
}

/// What the directives of a record can say: a new kind of directive makes every older
/// record unbelieved (it would not say whether the file has one), so files are scanned again.
/// v3: found after C's translation phases 1-3 (a directive behind a comment, a lone `\r`,
/// a splice or a trigraph), with `#pragma GCC dependency` and `#embed`.
const RECORDS: &str = "v3";

/// A stamp as the logs keep it, after the version of the records.
fn stamp_text(s: &Stamp) -> String {
    let [size, mt, mtn, ct, ctn, ino, dev] = s.0;
    format!(
        "{RECORDS} {} {mt}.{mtn} {ct}.{ctn} {} {}",
        size as u64, ino as u64, dev as u64
    )
}

/// FNV-1a: only to tell a torn or interleaved record from a whole one.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A record's body: the file's name in its directory, its stamp, its hash, its directives.
fn encode(name: &[u8], stamp: &str, k: &Known) -> Vec<u8> {
    let mut s = format!("\n{stamp}\n{}\n", sha256::hex(&k.hash));
    for d in k.directives.iter() {
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
            Directive::ReadsFiles => s.push_str("A\n"),
            Directive::Clock { line } => s.push_str(&format!("T {line}\n")),
        }
    }
    let mut body = name.to_vec();
    body.extend_from_slice(s.as_bytes());
    body
}

/// A whole record: `R <checksum> <length>\n` and the body.
fn record(body: &[u8]) -> Vec<u8> {
    let mut r = format!("R {:016x} {}\n", checksum(body), body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

/// A file's name, where its record's body is in the log, and the body's checksum.
type Record<'a> = (&'a [u8], Range<usize>, u64);

/// The records of a log, in order, and whether the log ended cleanly (a torn tail or a
/// foreign file stops the walk).
fn records(data: &[u8]) -> (Vec<Record<'_>>, bool) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let Some(nl) = data[at..].iter().position(|&b| b == b'\n') else {
            return (out, false);
        };
        let head = std::str::from_utf8(&data[at..at + nl]).unwrap_or("");
        let mut f = head.split(' ');
        let (Some("R"), Some(sum), Some(len), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return (out, false);
        };
        let (Ok(sum), Ok(len)) = (u64::from_str_radix(sum, 16), len.parse::<usize>()) else {
            return (out, false);
        };
        let start = at + nl + 1;
        let Some(body) = data.get(start..start.saturating_add(len)) else {
            return (out, false);
        };
        at = start + len;
        // The checksum is checked when a record is used: most records of a log are not.
        if let Some(end) = body.iter().position(|&b| b == b'\n') {
            out.push((&body[..end], start..start + len, sum));
        }
    }
    (out, true)
}

fn unhex(h: &str) -> Option<Digest> {
    let h = h.as_bytes();
    if h.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = nibble(h[2 * i])? << 4 | nibble(h[2 * i + 1])?;
    }
    Some(d)
}

/// The file a record describes, if it still has stamp `want`.
fn decode(body: &[u8], want: &str, size: u64) -> Option<Known> {
    let text = std::str::from_utf8(body).ok()?;
    let mut lines = text.lines().skip(1);
    if lines.next()? != want {
        return None;
    }
    let hash = unhex(lines.next()?)?;
    let mut directives = Vec::new();
    for l in lines {
        if l == "A" {
            directives.push(Directive::ReadsFiles);
            continue;
        }
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
            "T " => directives.push(Directive::Clock {
                line: rest.parse().ok()?,
            }),
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
        directives: Rc::new(directives),
    })
}

impl Log {
    fn load(path: PathBuf) -> Log {
        let data = fs::read(&path).unwrap_or_default();
        let (all, clean) = records(&data);
        let count = all.len();
        let newest: FastMap<Vec<u8>, (Range<usize>, u64)> = all
            .into_iter()
            .map(|(n, r, sum)| (n.to_vec(), (r, sum)))
            .collect();
        let mut log = Log { path, data, newest };
        let stale = count - log.newest.len();
        if !clean || (log.data.len() > COMPACT_ABOVE && stale > log.newest.len()) {
            log.compact();
        }
        log
    }

    /// Rewrites the log with the newest record of each file. An appender still holding the
    /// old file loses its record: a cache miss later, never a wrong answer.
    fn compact(&mut self) {
        let mut out = Vec::new();
        let mut newest = FastMap::default();
        for (name, (r, sum)) in &self.newest {
            let body = &self.data[r.clone()];
            if checksum(body) != *sum {
                continue;
            }
            let rec = record(body);
            let body_at = out.len() + rec.len() - r.len();
            newest.insert(name.clone(), (body_at..body_at + r.len(), *sum));
            out.extend_from_slice(&rec);
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        if fs::write(&tmp, &out).is_ok() && fs::rename(&tmp, &self.path).is_ok() {
            self.data = out;
            self.newest = newest;
        } else {
            let _ = fs::remove_file(&tmp);
        }
    }

    fn append(&self, body: &[u8]) {
        let rec = record(body);
        if let Ok(mut f) = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
        {
            // One write: appends from other rcc processes land before or after it.
            let _ = f.write_all(&rec);
        }
    }
}

impl Files {
    /// The cache under `rcc_dir/files`.
    pub fn open(rcc_dir: &Path) -> io::Result<Files> {
        let dir = rcc_dir.join("files");
        fs::create_dir_all(&dir)?;
        Ok(Files {
            dir,
            logs: FastMap::default(),
            known: FastMap::default(),
            job: 1,
        })
    }

    /// Where the log of the files in `dir` is kept.
    fn log_path(&self, dir: &Path) -> PathBuf {
        let h = sha256::digest(dir.as_os_str().as_bytes());
        self.dir.join(&sha256::hex(&h)[..32])
    }

    fn log(&mut self, dir: &Path) -> &mut Log {
        if !self.logs.contains_key(dir.as_os_str()) {
            let log = Log::load(self.log_path(dir));
            self.logs.insert(dir.as_os_str().to_owned(), log);
        }
        self.logs.get_mut(dir.as_os_str()).expect("inserted above")
    }

    /// The hash and directives of `path` as it is now (as it was when this job first asked,
    /// if it asked before).
    pub fn get(&mut self, path: &Path) -> io::Result<&Known> {
        // Keyed by the path's bytes: hashing a `Path` goes component by component.
        let key = path.as_os_str();
        let job = self.job;
        let asked = self.known.get(key).map(|(_, _, j)| *j == job);
        if asked == Some(true) {
            return Ok(&self.known[key].1);
        }
        let m = fs::metadata(path)?;
        let now = Stamp::of(&m);
        if asked.is_some() {
            let (stamp, _, asked_by) = self.known.get_mut(key).expect("looked up above");
            if *stamp == now {
                *asked_by = job;
                return Ok(&self.known[key].1);
            }
        }
        let want = stamp_text(&now);
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(d), Some(n)) => (d, n.as_bytes()),
            _ => (Path::new("/"), path.as_os_str().as_bytes()),
        };
        let log = self.log(dir);
        let cached = log
            .newest
            .get(name)
            .map(|(r, sum)| (&log.data[r.clone()], *sum))
            .filter(|(body, sum)| checksum(body) == *sum)
            .and_then(|(body, _)| decode(body, &want, m.size()));
        let mut stamp = now;
        let known = match cached {
            Some(k) => k,
            None => {
                let data = fs::read(path)?;
                let k = Known {
                    hash: sha256::digest(&data),
                    size: data.len() as u64,
                    directives: Rc::new(includes::scan(&data)),
                };
                // The file changed while we read it: the stamp kept must describe what was
                // read, so no record unless it held still. A name with a newline is not kept.
                let after = fs::metadata(path).map(|m| Stamp::of(&m)).ok();
                if after == Some(now) && !name.contains(&b'\n') {
                    log.append(&encode(name, &want, &k));
                } else {
                    // A stamp no file has: this job's answer, never believed again.
                    stamp = Stamp([-1; 7]);
                }
                k
            }
        };
        self.known.insert(key.to_owned(), (stamp, known, job));
        Ok(&self.known[key].1)
    }

    /// Starts the next job: what it asks is answered from the disk as it is now.
    pub fn next_job(&mut self) {
        self.job += 1;
    }

    /// Files known and bytes of logs held: what a long-lived server keeps in memory.
    pub fn held(&self) -> (usize, usize) {
        (
            self.known.len(),
            self.logs.values().map(|l| l.data.len()).sum(),
        )
    }

    /// Forgets everything learned (the logs on disk stay): bounds a long-lived server.
    pub fn forget(&mut self) {
        self.known.clear();
        self.logs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scratch::Scratch as Dir;

    fn dir(name: &str) -> Dir {
        Dir::new(&format!("files-{name}"), true)
    }

    fn logged(files: &Files, dir: &Path) -> usize {
        let data = fs::read(files.log_path(dir)).unwrap_or_default();
        records(&data).0.len()
    }

    #[test]
    fn a_hit_needs_the_same_stamp_and_a_rewrite_is_seen() {
        let d = dir("stamp");
        let h = d.0.join("cfg.h");
        fs::write(&h, "#define A 1\n#include <a.h>\n#include M\n").unwrap();
        let mut files = Files::open(&d.0).unwrap();
        let k = files.get(&h).unwrap().clone();
        assert_eq!(k.directives.len(), 2);
        assert_eq!(logged(&files, &d.0), 1, "a miss is recorded");
        // Another process (a new Files) finds the record and adds none.
        let mut files = Files::open(&d.0).unwrap();
        assert_eq!(files.get(&h).unwrap(), &k);
        assert_eq!(logged(&files, &d.0), 1, "a hit records nothing");
        // Same size, mtime set back: the ctime still tells.
        let m = fs::metadata(&h).unwrap();
        fs::write(&h, "#define A 2\n#include <b.h>\n#include M\n").unwrap();
        let f = fs::File::options().write(true).open(&h).unwrap();
        f.set_modified(m.modified().unwrap()).unwrap();
        let mut files = Files::open(&d.0).unwrap();
        let new = files.get(&h).unwrap().clone();
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
        assert_eq!(logged(&files, &d.0), 2);
        // The newest record wins in the next process.
        let mut files = Files::open(&d.0).unwrap();
        assert_eq!(files.get(&h).unwrap(), &new);
    }

    #[test]
    fn records_round_trip_and_a_torn_one_is_not_believed() {
        let k = Known {
            hash: sha256::digest(b"x"),
            size: 1,
            directives: Rc::new(vec![
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
                Directive::ReadsFiles,
                Directive::Clock { line: 12 },
            ]),
        };
        let one = record(&encode(b"f.h", "s", &k));
        let (all, clean) = records(&one);
        assert!(clean);
        assert_eq!(all[0].0, b"f.h");
        assert_eq!(checksum(&one[all[0].1.clone()]), all[0].2);
        assert_eq!(decode(&one[all[0].1.clone()], "s", 1), Some(k.clone()));
        assert_eq!(decode(&one[all[0].1.clone()], "t", 1), None);

        // A record whose body was overwritten fails its checksum when used; one cut short
        // ends the walk.
        let mut two = one.clone();
        let flip = two.len() - 3;
        two[flip] ^= 1;
        two.extend_from_slice(&one);
        let (all, clean) = records(&two);
        assert!(clean);
        let whole = |(_, r, sum): &Record| checksum(&two[r.clone()]) == *sum;
        assert_eq!(all.iter().map(whole).collect::<Vec<_>>(), [false, true]);
        let (all, clean) = records(&two[..two.len() - 2]);
        assert!(!clean);
        assert_eq!(all.iter().map(whole).collect::<Vec<_>>(), [false]);
    }

    #[test]
    fn a_log_of_stale_records_is_rewritten_with_the_newest() {
        let d = dir("compact");
        let h = d.0.join("gen.h");
        fs::write(&h, "#include \"v2.h\"\n").unwrap();
        let k = Files::open(&d.0).unwrap().get(&h).unwrap().clone();
        let log = Files::open(&d.0).unwrap().log_path(&d.0);
        let newest = fs::read(&log).unwrap();
        // What a long build of a generated header leaves: many stamps of it, then the last.
        let mut data = Vec::new();
        let old = Known {
            directives: Rc::new(vec![]),
            ..k.clone()
        };
        for i in 0..COMPACT_ABOVE / 100 {
            data.extend_from_slice(&record(&encode(b"gen.h", &format!("old {i}"), &old)));
        }
        data.extend_from_slice(&newest);
        fs::write(&log, &data).unwrap();
        let files = Files::open(&d.0).unwrap();
        let before = logged(&files, &d.0);
        assert!(before > 1000, "{before}");
        let mut files = files;
        assert_eq!(files.get(&h).unwrap(), &k);
        assert_eq!(logged(&files, &d.0), 1, "{before} records rewritten as one");
        assert_eq!(fs::read(&log).unwrap(), newest);
    }
}
