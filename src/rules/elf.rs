//! What rcc reads in ELF programs, from their first bytes (no I/O): the interpreter a
//! program names (`PT_INTERP`: the box's sandbox lets a compile run only its toolchain and
//! the loaders that start it) and the notes it carries (`PT_NOTE`: the client knows another
//! rcc by the note every rcc binary carries, whatever its name or path).

/// Why an ELF file could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// No ELF magic.
    NotElf,
    /// The headers point past the bytes given.
    Truncated,
    /// A field holds a value no ELF file has (named).
    Malformed(&'static str),
}

/// A program header: its type and where its bytes are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub kind: u32,
    pub offset: u64,
    pub size: u64,
}

pub const PT_INTERP: u32 = 3;
pub const PT_NOTE: u32 = 4;

/// An ELF file's class and byte order, read from its identification bytes.
#[derive(Debug, Clone, Copy)]
struct Layout {
    wide: bool,
    big: bool,
}

impl Layout {
    fn of(b: &[u8]) -> Result<Layout, ElfError> {
        if b.len() < 16 || &b[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        let wide = match b[4] {
            1 => false,
            2 => true,
            _ => return Err(ElfError::Malformed("class")),
        };
        let big = match b[5] {
            1 => false,
            2 => true,
            _ => return Err(ElfError::Malformed("byte order")),
        };
        Ok(Layout { wide, big })
    }

    /// The unsigned integer of `len` bytes at `at`.
    fn int(self, b: &[u8], at: u64, len: usize) -> Result<u64, ElfError> {
        let at = usize::try_from(at).map_err(|_| ElfError::Truncated)?;
        let bytes = b
            .get(at..at.checked_add(len).ok_or(ElfError::Truncated)?)
            .ok_or(ElfError::Truncated)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if self.big {
                bytes[i]
            } else {
                bytes[len - 1 - i]
            };
            v = v << 8 | byte as u64;
        }
        Ok(v)
    }
}

/// The program headers of the ELF file whose first bytes are `b` (they must hold them).
pub fn segments(b: &[u8]) -> Result<Vec<Segment>, ElfError> {
    let l = Layout::of(b)?;
    // e_phoff, e_phentsize, e_phnum; then each header's p_type, p_offset and p_filesz.
    let (phoff, entsize, count) = if l.wide {
        (l.int(b, 0x20, 8)?, l.int(b, 0x36, 2)?, l.int(b, 0x38, 2)?)
    } else {
        (l.int(b, 0x1c, 4)?, l.int(b, 0x2a, 2)?, l.int(b, 0x2c, 2)?)
    };
    if count == 0xffff {
        return Err(ElfError::Malformed(
            "program header count in a section header",
        ));
    }
    if count > 0 && entsize < if l.wide { 56 } else { 32 } {
        return Err(ElfError::Malformed("program header size"));
    }
    (0..count)
        .map(|i| {
            let at = phoff.checked_add(i * entsize).ok_or(ElfError::Truncated)?;
            let kind = l.int(b, at, 4)? as u32;
            let (offset, size) = if l.wide {
                (l.int(b, at + 8, 8)?, l.int(b, at + 32, 8)?)
            } else {
                (l.int(b, at + 4, 4)?, l.int(b, at + 16, 4)?)
            };
            Ok(Segment { kind, offset, size })
        })
        .collect()
}

/// The bytes of `s` within `b`.
fn bytes_of<'a>(b: &'a [u8], s: &Segment) -> Result<&'a [u8], ElfError> {
    let start = usize::try_from(s.offset).map_err(|_| ElfError::Truncated)?;
    let end = s.offset.checked_add(s.size).ok_or(ElfError::Truncated)?;
    let end = usize::try_from(end).map_err(|_| ElfError::Truncated)?;
    b.get(start..end).ok_or(ElfError::Truncated)
}

/// The `PT_INTERP` path of an ELF file (32- or 64-bit, either byte order) from its first
/// bytes: `Ok(None)` for a program without one (static, or the loader itself).
pub fn elf_interpreter(b: &[u8]) -> Result<Option<&[u8]>, ElfError> {
    let Some(s) = segments(b)?.into_iter().find(|s| s.kind == PT_INTERP) else {
        return Ok(None);
    };
    let path = bytes_of(b, &s)?
        .split(|&c| c == 0)
        .next()
        .unwrap_or_default();
    if path.is_empty() {
        return Err(ElfError::Malformed("empty interpreter"));
    }
    Ok(Some(path))
}

/// Whether the notes in `notes` (a `PT_NOTE` segment's bytes, of a file whose first bytes
/// are `head`) hold one from `owner` of type `kind` whose description is `desc`.
pub fn has_note(
    head: &[u8],
    notes: &[u8],
    owner: &[u8],
    kind: u32,
    desc: &[u8],
) -> Result<bool, ElfError> {
    let l = Layout::of(head)?;
    let pad = |n: u64| n.checked_add(3).map(|n| n & !3).ok_or(ElfError::Truncated);
    let mut at = 0u64;
    // Each note is at least 12 bytes long: bounded by the segment's size.
    while at + 12 <= notes.len() as u64 {
        let (namesz, descsz) = (l.int(notes, at, 4)?, l.int(notes, at + 4, 4)?);
        let note_kind = l.int(notes, at + 8, 4)?;
        let name_at = at + 12;
        let desc_at = name_at
            .checked_add(pad(namesz)?)
            .ok_or(ElfError::Truncated)?;
        let end = desc_at
            .checked_add(pad(descsz)?)
            .ok_or(ElfError::Truncated)?;
        let field = |from: u64, len: u64| {
            bytes_of(
                notes,
                &Segment {
                    kind: 0,
                    offset: from,
                    size: len,
                },
            )
        };
        let name = field(name_at, namesz)?;
        if name.strip_suffix(b"\0").unwrap_or(name) == owner
            && note_kind == u64::from(kind)
            && field(desc_at, descsz)? == desc
        {
            return Ok(true);
        }
        at = end;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &mut Vec<u8>, big: bool, at: usize, val: u64, len: usize) {
        if v.len() < at + len {
            v.resize(at + len, 0);
        }
        for i in 0..len {
            let shift = 8 * if big { len - 1 - i } else { i };
            v[at + i] = (val >> shift) as u8;
        }
    }

    /// An ELF header and its program headers, one per `(type, bytes)` in `parts`, each
    /// segment's bytes following the headers; in the class and byte order asked for.
    fn fake_elf(wide: bool, big: bool, parts: &[(u32, &[u8])]) -> Vec<u8> {
        let mut v = b"\x7fELF".to_vec();
        v.extend([if wide { 2 } else { 1 }, if big { 2 } else { 1 }, 1]);
        let (ehsize, entsize) = if wide { (64, 56) } else { (52, 32) };
        let count = parts.len() + 1;
        if wide {
            put(&mut v, big, 0x20, ehsize as u64, 8);
            put(&mut v, big, 0x36, entsize as u64, 2);
            put(&mut v, big, 0x38, count as u64, 2);
        } else {
            put(&mut v, big, 0x1c, ehsize as u64, 4);
            put(&mut v, big, 0x2a, entsize as u64, 2);
            put(&mut v, big, 0x2c, count as u64, 2);
        }
        put(&mut v, big, ehsize, 1, 4); // PT_LOAD
        let mut data_at = ehsize + count * entsize;
        for (i, (kind, bytes)) in parts.iter().enumerate() {
            let at = ehsize + (i + 1) * entsize;
            put(&mut v, big, at, u64::from(*kind), 4);
            let (off, size) = if wide { (8, 32) } else { (4, 16) };
            let width = if wide { 8 } else { 4 };
            put(&mut v, big, at + off, data_at as u64, width);
            put(&mut v, big, at + size, bytes.len() as u64, width);
            data_at += bytes.len();
        }
        v.resize(ehsize + count * entsize, 0);
        for (_, bytes) in parts {
            v.extend_from_slice(bytes);
        }
        v
    }

    fn note(big: bool, owner: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put(&mut v, big, 0, owner.len() as u64 + 1, 4);
        put(&mut v, big, 4, desc.len() as u64, 4);
        put(&mut v, big, 8, u64::from(kind), 4);
        v.extend_from_slice(owner);
        v.push(0);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    #[test]
    fn the_interpreter_of_every_class_and_byte_order() {
        let name = b"/lib/ld-musl-aarch64.so.1\0";
        for wide in [false, true] {
            for big in [false, true] {
                let elf = fake_elf(wide, big, &[(PT_INTERP, name)]);
                let want = &name[..name.len() - 1];
                assert_eq!(elf_interpreter(&elf), Ok(Some(want)), "{wide} {big}");
                assert_eq!(elf_interpreter(&fake_elf(wide, big, &[])), Ok(None));
                // Cut inside the interpreter's name: it points past the bytes given.
                let cut = &elf[..elf.len() - 4];
                assert_eq!(elf_interpreter(cut), Err(ElfError::Truncated));
            }
        }
    }

    #[test]
    fn what_is_not_an_elf_file_is_said() {
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert_eq!(elf_interpreter(b"\x7fELF"), Err(ElfError::NotElf));
        let good = fake_elf(true, false, &[(PT_INTERP, b"/x\0")]);
        let mut bad = good.clone();
        bad[4] = 3;
        assert_eq!(elf_interpreter(&bad), Err(ElfError::Malformed("class")));
        let mut bad = good.clone();
        bad[0x36] = 8; // program headers 8 bytes long
        assert_eq!(
            elf_interpreter(&bad),
            Err(ElfError::Malformed("program header size"))
        );
        let mut huge = good.clone();
        huge[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(elf_interpreter(&huge), Err(ElfError::Truncated));
        let mut empty = good;
        let at = empty.len() - 3;
        empty[at] = 0;
        assert_eq!(
            elf_interpreter(&empty),
            Err(ElfError::Malformed("empty interpreter"))
        );
    }

    /// The notes of a program are found in every class and byte order, among others, and
    /// only an exact owner, type and description count.
    #[test]
    fn notes_are_found_by_owner_type_and_description() {
        for wide in [false, true] {
            for big in [false, true] {
                let mut notes = note(big, b"GNU", 3, &[7; 20]);
                notes.extend(note(big, b"rcc", 1, b"client\0\0"));
                let elf = fake_elf(wide, big, &[(PT_NOTE, &notes)]);
                let seg = segments(&elf).unwrap()[1];
                assert_eq!(seg.kind, PT_NOTE);
                let bytes = bytes_of(&elf, &seg).unwrap();
                let found = |o: &[u8], k, d: &[u8]| has_note(&elf, bytes, o, k, d);
                assert_eq!(found(b"rcc", 1, b"client\0\0"), Ok(true), "{wide} {big}");
                assert_eq!(found(b"rcc", 2, b"client\0\0"), Ok(false));
                assert_eq!(found(b"rc", 1, b"client\0\0"), Ok(false));
                assert_eq!(found(b"rcc", 1, b"client"), Ok(false));
                assert_eq!(found(b"GNU", 3, &[7; 20]), Ok(true));
            }
        }
    }

    #[test]
    fn a_note_that_claims_more_than_its_segment_is_truncated() {
        let mut notes = note(false, b"rcc", 1, b"abcd");
        notes[4] = 200; // a description of 200 bytes in a 20-byte segment
        let elf = fake_elf(true, false, &[(PT_NOTE, &notes)]);
        let seg = segments(&elf).unwrap()[1];
        let bytes = bytes_of(&elf, &seg).unwrap();
        assert_eq!(
            has_note(&elf, bytes, b"rcc", 1, b"abcd"),
            Err(ElfError::Truncated)
        );
        // A size near u64::MAX does not wrap around.
        notes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let elf = fake_elf(true, false, &[(PT_NOTE, &notes)]);
        let bytes = bytes_of(&elf, &segments(&elf).unwrap()[1]).unwrap();
        assert!(has_note(&elf, bytes, b"rcc", 1, b"abcd").is_err());
    }
}
