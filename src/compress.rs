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
