//! FNV-1a 64: a tiny stable hash for seeding per-tensor streams and fingerprinting files.
//!
//! Not cryptographic; it only has to be stable forever, which a hand-written FNV is.

use std::io::Read;
use std::path::Path;

use crate::error::{io_err, Result};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of a byte slice.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// FNV-1a 64 of a file's contents, streamed.
pub fn fnv1a64_file(path: &Path) -> Result<u64> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut h = OFFSET;
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            return Ok(h);
        }
        h = buf[..n]
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
