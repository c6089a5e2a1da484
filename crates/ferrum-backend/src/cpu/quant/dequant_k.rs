//! Decoders for one super-block (256 elements) of the K formats.
//!
//! Invariant: each element is computed as `(d · sc) · q − (dmin · m)` (Q4_K/Q5_K) or
//! `(d · sc) · q` (Q6_K) in f32, the order the reference decoders use, so results are exact.

use super::layout::{f16_at, k_scales_mins, QK_K};

/// Q4_K: eight sub-blocks of 32; bytes `qs[32c..32c + 32]` hold sub-block `2c` in their low
/// nibbles and sub-block `2c + 1` in their high nibbles.
pub(super) fn q4k_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = k_scales_mins(&b[4..16]);
    let qs = &b[16..16 + QK_K / 2];
    for c in 0..4 {
        let q = &qs[32 * c..32 * c + 32];
        let (d1, m1) = (d * sc[2 * c] as f32, dmin * mn[2 * c] as f32);
        let (d2, m2) = (d * sc[2 * c + 1] as f32, dmin * mn[2 * c + 1] as f32);
        let o = &mut out[64 * c..64 * c + 64];
        for l in 0..32 {
            o[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            o[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// Q5_K: as Q4_K, plus a fifth bit per element: bit `2c` of `qh[l]` for element `l` of
/// sub-block `2c`, bit `2c + 1` for element `l` of sub-block `2c + 1`.
pub(super) fn q5k_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = k_scales_mins(&b[4..16]);
    let qh = &b[16..48];
    let qs = &b[48..48 + QK_K / 2];
    for c in 0..4 {
        let q = &qs[32 * c..32 * c + 32];
        let (d1, m1) = (d * sc[2 * c] as f32, dmin * mn[2 * c] as f32);
        let (d2, m2) = (d * sc[2 * c + 1] as f32, dmin * mn[2 * c + 1] as f32);
        let o = &mut out[64 * c..64 * c + 64];
        for l in 0..32 {
            let h_lo = ((qh[l] >> (2 * c)) & 1) << 4;
            let h_hi = ((qh[l] >> (2 * c + 1)) & 1) << 4;
            o[l] = d1 * ((q[l] & 0x0F) | h_lo) as f32 - m1;
            o[l + 32] = d2 * ((q[l] >> 4) | h_hi) as f32 - m2;
        }
    }
}

/// Q6_K: two halves of 128; in half `n`, element `32g + l` (group `g` of four) takes four low
/// bits from `ql[64n + l + 32(g & 1)]` (low nibble for `g < 2`, high for `g ≥ 2`) and two high
/// bits from `qh[32n + l] >> 2g`, is offset by −32, and uses the signed scale
/// `scales[8n + 2g + l / 16]`.
pub(super) fn q6k_block(b: &[u8], out: &mut [f32]) {
    let ql = &b[0..128];
    let qh = &b[128..192];
    let scales = &b[192..208];
    let d = f16_at(b, 208);
    for n in 0..2 {
        let (ql, qh) = (&ql[64 * n..64 * n + 64], &qh[32 * n..32 * n + 32]);
        let o = &mut out[128 * n..128 * n + 128];
        for l in 0..32 {
            let vals = q6k_quads(ql, qh, l);
            for (g, &q) in vals.iter().enumerate() {
                let sc = scales[8 * n + 2 * g + l / 16] as i8;
                o[32 * g + l] = (d * sc as f32) * q as f32;
            }
        }
    }
}

/// The four 6-bit values (already offset by −32) that share `qh[l]` in one Q6_K half.
#[inline(always)]
pub(super) fn q6k_quads(ql: &[u8], qh: &[u8], l: usize) -> [i32; 4] {
    let h = qh[l];
    [
        ((ql[l] & 0x0F) | ((h & 3) << 4)) as i32 - 32,
        ((ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) as i32 - 32,
        ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) as i32 - 32,
        ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) as i32 - 32,
    ]
}
