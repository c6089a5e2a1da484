//! Portable kernels for the 32-element formats (Q4_0·Q8_0, Q4_1·Q8_1, Q8_0·Q8_0).
//!
//! The reference the SIMD kernels are tested against: the same eight lanes of four elements,
//! fused multiply-adds and final lane order as the vector code (see `kernels/mod.rs`), so the
//! results are identical, not merely close. Bounds-checked safe Rust throughout.

use super::hsum8_order;
use crate::cpu::quant::activation::ActRow;
use crate::cpu::quant::layout::{f16_at, Q4_0_BYTES, Q4_1_BYTES, Q8_0_BYTES, QK};

/// A 32-element weight format: its block size and how to read one element's integer.
trait Legacy {
    const BYTES: usize;
    /// Element `e` (0..32) of block `b` as the integer the dot product uses.
    fn quant(b: &[u8], e: usize) -> i32;
    /// The additive min of the block (Q4_1), multiplied with the activation's `s`.
    fn min(b: &[u8]) -> Option<f32>;
}

/// Four-bit nibble `e` of a 16-byte quant array: low nibbles first, then high ones.
#[inline(always)]
fn nibble(qs: &[u8], e: usize) -> i32 {
    if e < QK / 2 {
        (qs[e] & 0x0F) as i32
    } else {
        (qs[e - QK / 2] >> 4) as i32
    }
}

struct Q40;
impl Legacy for Q40 {
    const BYTES: usize = Q4_0_BYTES;
    fn quant(b: &[u8], e: usize) -> i32 {
        nibble(&b[2..], e) - 8
    }
    fn min(_: &[u8]) -> Option<f32> {
        None
    }
}

struct Q41;
impl Legacy for Q41 {
    const BYTES: usize = Q4_1_BYTES;
    fn quant(b: &[u8], e: usize) -> i32 {
        nibble(&b[4..], e)
    }
    fn min(b: &[u8]) -> Option<f32> {
        Some(f16_at(b, 2))
    }
}

struct Q80;
impl Legacy for Q80 {
    const BYTES: usize = Q8_0_BYTES;
    fn quant(b: &[u8], e: usize) -> i32 {
        b[2 + e] as i8 as i32
    }
    fn min(_: &[u8]) -> Option<f32> {
        None
    }
}

fn tile<F: Legacy>(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
    for (x, o) in xs.iter().zip(out.iter_mut()) {
        let mut lanes = [0.0f32; 8];
        let mut summs = 0.0f32;
        for b in 0..nb {
            let blk = &w[b * F::BYTES..(b + 1) * F::BYTES];
            let q8 = &x.qs[b * QK..(b + 1) * QK];
            let scale = f16_at(blk, 0) * x.d[b];
            for (l, lane) in lanes.iter_mut().enumerate() {
                let sum: i32 = (4 * l..4 * l + 4)
                    .map(|e| F::quant(blk, e) * q8[e] as i32)
                    .sum();
                *lane = scale.mul_add(sum as f32, *lane);
            }
            if let Some(m) = F::min(blk) {
                summs += m * x.s[b];
            }
        }
        *o = hsum8_order(&lanes) + summs;
    }
}

pub fn q4_0(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
    tile::<Q40>(w, nb, xs, out)
}

pub fn q4_1(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
    tile::<Q41>(w, nb, xs, out)
}

pub fn q8_0(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
    tile::<Q80>(w, nb, xs, out)
}
