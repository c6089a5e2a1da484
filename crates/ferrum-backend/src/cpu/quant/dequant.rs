//! Decoding stored rows to f32 (embedding lookups, tests, debugging).
//!
//! Invariants:
//! - The arithmetic per element is the format's own (`d·q`, `d·q + m`, `d·sc·q − dmin·m`) in that
//!   order of f32 operations, with no fused multiply-add, so results are bit-identical to the
//!   GGUF reference decoders (checked against gguf-py in `tests/quant_dequant.rs`).
//! - `bytes` must be exactly the encoding of `out.len()` elements; anything else is a typed error.

use ferrum_types::DType;

use super::dequant_k;
use super::layout::{f16_at, QK};
use crate::{BackendError, Result};

/// Decodes one row (`out.len()` elements) stored as `dtype` in `bytes`.
pub fn dequantize_row(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let expected = dtype.size_in_bytes(out.len())?;
    if bytes.len() != expected {
        return Err(BackendError::Shape {
            what: format!("{dtype} row of {} elements", out.len()),
            expected: format!("{expected} bytes"),
            got: format!("{} bytes", bytes.len()),
        });
    }
    match dtype {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::Q4_0 => blocks(bytes, out, dtype, q4_0_block),
        DType::Q4_1 => blocks(bytes, out, dtype, q4_1_block),
        DType::Q8_0 => blocks(bytes, out, dtype, q8_0_block),
        DType::Q4K => blocks(bytes, out, dtype, dequant_k::q4k_block),
        DType::Q5K => blocks(bytes, out, dtype, dequant_k::q5k_block),
        DType::Q6K => blocks(bytes, out, dtype, dequant_k::q6k_block),
    }
    Ok(())
}

/// Applies a per-block decoder to every block of a row whose size was already checked.
fn blocks(bytes: &[u8], out: &mut [f32], dtype: DType, f: fn(&[u8], &mut [f32])) {
    let chunks = bytes.chunks_exact(dtype.block_bytes());
    for (b, o) in chunks.zip(out.chunks_exact_mut(dtype.block_size())) {
        f(b, o);
    }
}

fn q4_0_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..2 + QK / 2];
    for (j, &q) in qs.iter().enumerate() {
        out[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        out[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

fn q4_1_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..4 + QK / 2];
    for (j, &q) in qs.iter().enumerate() {
        out[j] = (q & 0x0F) as f32 * d + m;
        out[j + QK / 2] = (q >> 4) as f32 * d + m;
    }
}

fn q8_0_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..2 + QK]) {
        *o = (q as i8) as f32 * d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_block_by_hand() {
        // d = 0.5, m = -1.0, first byte 0x21: element 0 = 1, element 16 = 2.
        let mut b = vec![0u8; 20];
        b[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        b[2..4].copy_from_slice(&half::f16::from_f32(-1.0).to_le_bytes());
        b[4] = 0x21;
        let mut out = vec![0.0; 32];
        dequantize_row(DType::Q4_1, &b, &mut out).unwrap();
        assert_eq!(out[0], -0.5);
        assert_eq!(out[16], 0.0);
        assert_eq!(out[1], -1.0);
    }

    #[test]
    fn wrong_length_is_an_error() {
        let mut out = vec![0.0; 32];
        assert!(dequantize_row(DType::Q8_0, &[0u8; 33], &mut out).is_err());
        let mut odd = vec![0.0; 31];
        assert!(dequantize_row(DType::Q8_0, &[0u8; 34], &mut odd).is_err());
    }
}
