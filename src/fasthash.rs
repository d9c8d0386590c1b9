//! A fast hasher for the scan's maps of paths and names, and [`fnv`], a stable short name
//! for a text (state file names in `RCC_DIR`). The standard one (SipHash, keyed
//! against flooding) was a fifth of a job's scan: a kernel job looks up thousands of paths
//! of ~60 bytes. These keys are the user's own file names, so flooding is no concern.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: a stable short name for some bytes (not a security hash): the same on every
/// run and every machine, unlike [`Fast`], so names made from it can be shared on disk.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Word at a time: rotate, mix in, multiply (the scheme of rustc's FxHasher).
#[derive(Default, Clone, Copy)]
pub struct Fast(u64);

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Fast {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for Fast {
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some((w, rest)) = bytes.split_first_chunk::<8>() {
            self.add(u64::from_le_bytes(*w));
            bytes = rest;
        }
        if !bytes.is_empty() {
            // Byte by byte: a copy of a few bytes is a call to memcpy in musl, and paths
            // are hashed a component (a few bytes) at a time.
            let last = bytes
                .iter()
                .enumerate()
                .fold(0u64, |w, (i, &b)| w | (b as u64) << (8 * i));
            // The length keeps "a" and "a\0" apart.
            self.add(last ^ (bytes.len() as u64) << 59);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // A multiply carries a difference only upwards, and the table picks buckets by the
        // low bits: murmur3's finalizer spreads every bit over all of them.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fast>>;
pub type FastSet<K> = HashSet<K, BuildHasherDefault<Fast>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;
    use std::path::Path;

    fn h(p: &str) -> u64 {
        BuildHasherDefault::<Fast>::default().hash_one(Path::new(p))
    }

    #[test]
    fn paths_that_differ_hash_apart_and_equal_paths_together() {
        let names = [
            "/src/include/linux/types.h",
            "/src/include/linux/type.h",
            "/src/include/linux/types.hh",
            "/src/include/uapi/linux/types.h",
            "/src/arch/arm64/include/asm/types.h",
            "a",
            "a\0",
        ];
        let mut seen = FastSet::default();
        for n in names {
            assert!(seen.insert(h(n)), "{n} collides");
        }
        assert_eq!(
            h("/src/include/linux/types.h"),
            h("/src/include/linux/types.h")
        );
        // A map works as a map: every key found again among many similar ones.
        let mut m = FastMap::default();
        for i in 0..5000 {
            m.insert(format!("/src/include/linux/h{i}.h"), i);
        }
        assert!((0..5000).all(|i| m[&format!("/src/include/linux/h{i}.h")] == i));
    }
}
