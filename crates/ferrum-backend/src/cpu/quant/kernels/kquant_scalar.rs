//! Portable kernels for the K formats against Q8_K activations.
//!
//! Per super-block the exact integers `isum = Σ_sub sc · (q · y)` and (Q4_K/Q5_K)
//! `imin = Σ_sub m · Σy` are formed first; [`combine`] then applies the f32 scales in the one
//! order the SIMD kernels share, so all variants agree bit for bit.

use crate::cpu::quant::activation::ActRow;
use crate::cpu::quant::dequant_k::q6k_quads;
use crate::cpu::quant::layout::{f16_at, k_scales_mins, Q4K_BYTES, Q5K_BYTES, Q6K_BYTES, QK_K};

/// Adds one super-block: `acc + (dx·d)·isum − (dx·dmin)·imin`.
#[inline(always)]
pub(crate) fn combine(acc: f32, dx: f32, d: f32, isum: i32, dmin: f32, imin: i32) -> f32 {
    acc + (dx * d) * isum as f32 - (dx * dmin) * imin as f32
}

/// `Σ_j mins[j] · (bsums[2j] + bsums[2j+1])`: the min term of Q4_K/Q5_K in integers.
#[inline(always)]
pub(crate) fn min_term(mins: &[u8; 8], bsums: &[i16]) -> i32 {
    (0..8)
        .map(|j| mins[j] as i32 * (bsums[2 * j] as i32 + bsums[2 * j + 1] as i32))
        .sum()
}

/// Q4_K/Q5_K share everything but how the fifth bit is found.
fn tile_4_5<const FIVE: bool>(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
    let bytes = if FIVE { Q5K_BYTES } else { Q4K_BYTES };
    for (x, o) in xs.iter().zip(out.iter_mut()) {
        let mut acc = 0.0f32;
        for b in 0..nb {
            let blk = &w[b * bytes..(b + 1) * bytes];
            let (sc, mn) = k_scales_mins(&blk[4..16]);
            let (qh, qs) = if FIVE {
                (&blk[16..48], &blk[48..176])
            } else {
                (&blk[0..0], &blk[16..144])
            };
            let y = &x.qs[b * QK_K..(b + 1) * QK_K];
            let mut isum = 0i32;
            for c in 0..4 {
                let (mut lo, mut hi) = (0i32, 0i32);
                for l in 0..32 {
                    let (mut ql, mut qhi) =
                        ((qs[32 * c + l] & 0x0F) as i32, (qs[32 * c + l] >> 4) as i32);
                    if FIVE {
                        ql |= (((qh[l] >> (2 * c)) & 1) as i32) << 4;
                        qhi |= (((qh[l] >> (2 * c + 1)) & 1) as i32) << 4;
                    }
                    lo += ql * y[64 * c + l] as i32;
                    hi += qhi * y[64 * c + 32 + l] as i32;
                }
                isum += sc[2 * c] as i32 * lo + sc[2 * c + 1] as i32 * hi;
            }
            let imin = min_term(&mn, &x.bsums[16 * b..16 * b + 16]);
            acc = combine(acc, x.d[b], f16_at(blk, 0), isum, f16_at(blk, 2), imin);
        }
        *o = acc;
    }
}

pub fn q4k(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
    tile_4_5::<false>(w, nb, xs, out)
}

pub fn q5k(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
    tile_4_5::<true>(w, nb, xs, out)
}

pub fn q6k(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
    for (x, o) in xs.iter().zip(out.iter_mut()) {
        let mut acc = 0.0f32;
        for b in 0..nb {
            let blk = &w[b * Q6K_BYTES..(b + 1) * Q6K_BYTES];
            let y = &x.qs[b * QK_K..(b + 1) * QK_K];
            // Sixteen sub-blocks of 16 elements, one signed scale each.
            let mut sub = [0i32; 16];
            for n in 0..2 {
                let (ql, qh) = (&blk[64 * n..64 * n + 64], &blk[128 + 32 * n..160 + 32 * n]);
                for l in 0..32 {
                    for (g, q) in q6k_quads(ql, qh, l).into_iter().enumerate() {
                        let e = 128 * n + 32 * g + l;
                        sub[e / 16] += q * y[e] as i32;
                    }
                }
            }
            let scales = &blk[192..208];
            let isum: i32 = sub
                .iter()
                .zip(scales)
                .map(|(&s, &sc)| s * sc as i8 as i32)
                .sum();
            acc = combine(acc, x.d[b], f16_at(blk, 208), isum, 0.0, 0);
        }
        *o = acc;
    }
}
