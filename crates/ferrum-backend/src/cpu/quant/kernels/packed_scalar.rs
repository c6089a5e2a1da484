//! Portable kernels for interleaved 16-row groups (see `packed.rs`), the reference for the
//! vector ones.
//!
//! Per (weight row, activation row) and block, in this order: the exact integer dot product
//! `isum`, then `acc = fma(isum, d_w · d_x, acc)` and, for Q4_1, `acc = fma(m, s, acc)`. The
//! same order as llama.cpp's AMX-buffer (VNNI) kernels for these types.

use crate::cpu::quant::activation::ActRow;
use crate::cpu::quant::layout::{f16_at, QK};
use crate::cpu::quant::packed::{Q4_0_GROUP_BYTES, Q4_1_GROUP_BYTES, Q8_0_GROUP_BYTES};

/// Q4_1 (`MIN`: `d·q + m`, Q8_1 activations) or Q4_0 (`d·(q − 8)`, Q8_0 activations, the
/// offset applied through the activation block sum: `Σ (q − 8)·x = Σ q·x − 8·Σx`).
///
/// # Safety
/// As [`super::GroupFn`].
unsafe fn q4<const MIN: bool>(
    g: &[u8],
    nb: usize,
    xs: &[ActRow<'_>],
    out: *mut f32,
    ld: usize,
    valid: usize,
) {
    let gbb = if MIN {
        Q4_1_GROUP_BYTES
    } else {
        Q4_0_GROUP_BYTES
    };
    for (j, x) in xs.iter().enumerate() {
        for r in 0..valid {
            let mut acc = 0.0f32;
            for b in 0..nb {
                let p = &g[b * gbb..(b + 1) * gbb];
                let y = &x.qs[b * QK..(b + 1) * QK];
                let mut isum = if MIN { 0 } else { -8 * x.bsums[b] as i32 };
                for c in 0..4 {
                    for i in 0..4 {
                        let byte = p[c * 64 + r * 4 + i];
                        let k = 4 * c + i;
                        isum += (byte & 0x0F) as i32 * y[k] as i32;
                        isum += (byte >> 4) as i32 * y[k + 16] as i32;
                    }
                }
                acc = (isum as f32).mul_add(f16_at(p, 256 + 2 * r) * x.d[b], acc);
                if MIN {
                    acc = f16_at(p, 288 + 2 * r).mul_add(x.s[b], acc);
                }
            }
            // SAFETY: the caller's `out` has row `j` of `ld` values with `valid` in reach.
            *out.add(j * ld + r) = acc;
        }
    }
}

/// # Safety
/// As [`super::GroupFn`].
pub unsafe fn q4_0(g: &[u8], nb: usize, xs: &[ActRow<'_>], out: *mut f32, ld: usize, valid: usize) {
    q4::<false>(g, nb, xs, out, ld, valid)
}

/// # Safety
/// As [`super::GroupFn`].
pub unsafe fn q4_1(g: &[u8], nb: usize, xs: &[ActRow<'_>], out: *mut f32, ld: usize, valid: usize) {
    q4::<true>(g, nb, xs, out, ld, valid)
}

/// # Safety
/// As [`super::GroupFn`].
pub unsafe fn q8_0(g: &[u8], nb: usize, xs: &[ActRow<'_>], out: *mut f32, ld: usize, valid: usize) {
    for (j, x) in xs.iter().enumerate() {
        for r in 0..valid {
            let mut acc = 0.0f32;
            for b in 0..nb {
                let p = &g[b * Q8_0_GROUP_BYTES..(b + 1) * Q8_0_GROUP_BYTES];
                let y = &x.qs[b * QK..(b + 1) * QK];
                let mut isum = 0i32;
                for c in 0..8 {
                    for i in 0..4 {
                        isum += p[c * 64 + r * 4 + i] as i8 as i32 * y[4 * c + i] as i32;
                    }
                }
                let dw = f16_at(p, 512 + 2 * r);
                acc = (isum as f32).mul_add(dw * x.d[b], acc);
            }
            // SAFETY: as in `q4`.
            *out.add(j * ld + r) = acc;
        }
    }
}
