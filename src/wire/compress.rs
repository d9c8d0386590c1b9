//! The one user of miniz_oxide: deflate bodies on the way out, inflate them with a hard output
//! limit on the way in (a small frame must never become a zip bomb on a 1 GiB box).
//!
//! The format is zlib (deflate plus an Adler-32 checksum), so a corrupted body is an error
//! instead of a wrong object. Framing and the decision to compress live in `protocol`.

use std::fmt;

/// Default deflate level: fast enough that the master's CPU is not the bottleneck, and
/// preprocessed C shrinks to about a quarter (distcc's LZO gets about the same).
pub const DEFAULT_LEVEL: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The data is not valid zlib/deflate (or its checksum is wrong).
    Corrupt,
    /// Inflating would produce more than `limit` bytes.
    TooLarge { limit: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Corrupt => write!(
                f,
                "compressed body is corrupt (bad deflate data or checksum)"
            ),
            Error::TooLarge { limit } => {
                write!(
                    f,
                    "compressed body inflates past the limit of {limit} bytes"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// Compresses `data` with zlib at `level` (0-10).
pub fn deflate(data: &[u8], level: u8) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, level.min(10))
}

/// A compressor kept for many bodies: its tables (some 300 KB) are allocated once instead
/// of once per piece, which a client streaming a kernel translation unit in a dozen pieces
/// would otherwise pay for in page faults.
pub struct Deflater {
    state: Box<miniz_oxide::deflate::core::CompressorOxide>,
    out: Vec<u8>,
}

impl Deflater {
    pub fn new(level: u8) -> Deflater {
        use miniz_oxide::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
        // Window bits > 0: a zlib stream, as `deflate` and `inflate` speak.
        let flags = create_comp_flags_from_zip_params(level.min(10) as i32, 15, 0);
        Deflater {
            state: Box::new(CompressorOxide::new(flags)),
            out: Vec::new(),
        }
    }

    /// Compresses `data` into a zlib body, the same bytes `deflate` gives.
    pub fn compress(&mut self, data: &[u8]) -> &[u8] {
        use miniz_oxide::deflate::core::{compress_to_output, TDEFLFlush};
        self.state.reset();
        self.out.clear();
        let out = &mut self.out;
        let _ = compress_to_output(&mut self.state, data, TDEFLFlush::Finish, |chunk| {
            out.extend_from_slice(chunk);
            true
        });
        &self.out
    }
}

/// Inflates zlib `data`, refusing to produce more than `limit` bytes.
pub fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    use miniz_oxide::inflate::TINFLStatus;
    match miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(data, limit) {
        Ok(v) => Ok(v),
        Err(e) if e.status == TINFLStatus::HasMoreOutput => Err(Error::TooLarge { limit }),
        Err(_) => Err(Error::Corrupt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_compressor_gives_the_same_bodies() {
        let mut d = Deflater::new(DEFAULT_LEVEL);
        for text in [&b"int x;\n".repeat(5000)[..], b"", b"#define A 1\nA A A\n"] {
            let body = d.compress(text).to_vec();
            assert_eq!(body, deflate(text, DEFAULT_LEVEL));
            assert_eq!(inflate(&body, text.len()).unwrap(), text);
        }
    }

    #[test]
    fn round_trip_shrinks_text() {
        let text = b"int main(void) { return 0; }\n".repeat(1000);
        let packed = deflate(&text, DEFAULT_LEVEL);
        assert!(packed.len() < text.len() / 10);
        assert_eq!(inflate(&packed, text.len()).unwrap(), text);
    }

    #[test]
    fn empty_round_trips() {
        assert_eq!(inflate(&deflate(b"", 1), 0).unwrap(), b"");
    }

    #[test]
    fn zip_bomb_hits_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let packed = deflate(&zeros, 9);
        assert!(packed.len() < 20_000);
        assert_eq!(
            inflate(&packed, 1 << 20),
            Err(Error::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn garbage_is_corrupt() {
        assert_eq!(inflate(b"not deflate at all", 1000), Err(Error::Corrupt));
        let mut packed = deflate(b"hello hello hello", 1);
        let last = packed.len() - 1;
        packed[last] ^= 0xff; // break the checksum
        assert_eq!(inflate(&packed, 1000), Err(Error::Corrupt));
    }
}
