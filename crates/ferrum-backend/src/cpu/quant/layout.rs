//! Byte layouts of the GGUF block formats, as fixed by the format (all little-endian).
//!
//! | type | elements | bytes | fields in order |
//! |------|---------:|------:|-----------------|
//! | Q4_0 | 32  | 18  | `d: f16, qs: [u8; 16]` (element `j` is the low nibble of `qs[j]`, `j + 16` the high one) |
//! | Q4_1 | 32  | 20  | `d: f16, m: f16, qs: [u8; 16]` (nibbles as Q4_0) |
//! | Q8_0 | 32  | 34  | `d: f16, qs: [i8; 32]` |
//! | Q4_K | 256 | 144 | `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]` |
//! | Q5_K | 256 | 176 | `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]` |
//! | Q6_K | 256 | 210 | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` |
//! | Q8_1 | 32  | 36  | `d: f16, s: f16 (= d · Σq), qs: [i8; 32]` (activations only) |
//! | Q8_K | 256 | 292 | `d: f32, qs: [i8; 256], bsums: [i16; 16]` (activations only) |
//!
//! Nothing here checks lengths: callers slice whole blocks first.

/// Elements per block of the 32-element ("legacy") formats.
pub const QK: usize = 32;
/// Elements per super-block of the K formats.
pub const QK_K: usize = 256;

pub const Q4_0_BYTES: usize = 18;
pub const Q4_1_BYTES: usize = 20;
pub const Q8_0_BYTES: usize = 34;
pub const Q8_1_BYTES: usize = 36;
pub const Q4K_BYTES: usize = 144;
pub const Q5K_BYTES: usize = 176;
pub const Q6K_BYTES: usize = 210;
pub const Q8K_BYTES: usize = 4 + QK_K + 2 * (QK_K / 16);

/// Reads the little-endian f16 at `b[at..at + 2]` as f32.
#[inline(always)]
pub fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Rounds to f16 (nearest, ties to even) and returns the bits, as GGUF stores block scales.
#[inline(always)]
pub fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// The value an f32 takes after a round trip through f16.
#[inline(always)]
pub fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// The eight 6-bit scales and eight 6-bit mins packed in the 12 `scales` bytes of Q4_K/Q5_K.
///
/// Sub-block `j < 4` keeps its scale and min in the low six bits of bytes `j` and `j + 4`;
/// sub-block `j ≥ 4` keeps their low four bits in byte `j + 4` (scale low nibble, min high
/// nibble) and their top two bits in the top bits of bytes `j - 4` (scale) and `j` (min).
#[inline(always)]
pub fn k_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
    }
    for j in 4..8 {
        sc[j] = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
    (sc, mn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_agree_with_dtype() {
        use ferrum_types::DType;
        assert_eq!(DType::Q4_0.block_bytes(), Q4_0_BYTES);
        assert_eq!(DType::Q4_1.block_bytes(), Q4_1_BYTES);
        assert_eq!(DType::Q8_0.block_bytes(), Q8_0_BYTES);
        assert_eq!(DType::Q4K.block_bytes(), Q4K_BYTES);
        assert_eq!(DType::Q5K.block_bytes(), Q5K_BYTES);
        assert_eq!(DType::Q6K.block_bytes(), Q6K_BYTES);
        assert_eq!(Q8K_BYTES, 292);
    }

    #[test]
    fn k_scales_unpack_both_halves() {
        // Sub-block 1: scale 5, min 9; sub-block 6: scale 0b10_0111 = 39, min 0b01_1010 = 26.
        let mut s = [0u8; 12];
        s[1] = 5;
        s[5] = 9;
        s[10] = 0x07 | (0x0A << 4);
        s[2] |= 0b10 << 6;
        s[6] |= 0b01 << 6;
        let (sc, mn) = k_scales_mins(&s);
        assert_eq!((sc[1], mn[1]), (5, 9));
        assert_eq!((sc[6], mn[6]), (39, 26));
    }
}
