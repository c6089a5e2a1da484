//! AVX2 kernels for Q4_K, Q5_K and Q6_K against Q8_K activations.
//!
//! Per 32 quants: `vpmaddubsw` (unsigned 4/5/6-bit quants × i8, never saturating: at most
//! 63 · 128 · 2 < 2¹⁵) then `vpmaddwd` with the sub-block scale as i16, accumulated in i32 lanes
//! and reduced to one integer per super-block; the f32 part is the scalar kernels' [`combine`],
//! so results equal the scalar ones exactly. Q6_K's `−32` offset is applied afterwards through
//! the activation block sums: `Σ (q − 32)·y = Σ q·y − 32·Σ y`.

use std::arch::x86_64::*;

use super::kquant_scalar::{combine, min_term};
use super::legacy_avx2::f16_at;
use crate::cpu::quant::activation::ActRow;
use crate::cpu::quant::layout::{k_scales_mins, Q4K_BYTES, Q5K_BYTES, Q6K_BYTES, QK_K};

#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
    _mm_cvtsi128_si32(s)
}

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline(always)]
unsafe fn tile_4_5<const FIVE: bool, const N: usize>(
    w: &[u8],
    nb: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    let bytes = if FIVE { Q5K_BYTES } else { Q4K_BYTES };
    let (m4, one) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(1));
    let mut acc = [0.0f32; N];
    for b in 0..nb {
        let blk = &w[b * bytes..(b + 1) * bytes];
        let (sc, mn) = k_scales_mins(&blk[4..16]);
        let p = blk.as_ptr();
        let qs = p.add(if FIVE { 48 } else { 16 });
        let hb = if FIVE {
            load(p.add(16))
        } else {
            _mm256_setzero_si256()
        };
        let mut sums = [_mm256_setzero_si256(); N];
        for c in 0..4 {
            let bits = load(qs.add(32 * c));
            let mut lo = _mm256_and_si256(bits, m4);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
            if FIVE {
                // Bit 2c (low half) and 2c + 1 (high half) of each qh byte become bit 4.
                let h_lo = _mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * c as i32));
                let h_hi = _mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * c as i32 + 1));
                lo = _mm256_or_si256(lo, _mm256_slli_epi16::<4>(_mm256_and_si256(h_lo, one)));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16::<4>(_mm256_and_si256(h_hi, one)));
            }
            let s_lo = _mm256_set1_epi16(sc[2 * c] as i16);
            let s_hi = _mm256_set1_epi16(sc[2 * c + 1] as i16);
            for j in 0..N {
                let y = xs[j].qs.as_ptr().add(b * QK_K + 64 * c) as *const u8;
                let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load(y)), s_lo);
                let p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load(y.add(32))), s_hi);
                sums[j] = _mm256_add_epi32(sums[j], _mm256_add_epi32(p_lo, p_hi));
            }
        }
        let (d, dmin) = (f16_at(p), f16_at(p.add(2)));
        for j in 0..N {
            let imin = min_term(&mn, &xs[j].bsums[16 * b..16 * b + 16]);
            acc[j] = combine(acc[j], xs[j].d[b], d, hsum_i32(sums[j]), dmin, imin);
        }
    }
    out[..N].copy_from_slice(&acc);
}

/// Two high bits of each Q6_K quant (bits `shift..shift + 2` of its `qh` byte) moved to bits 4..6.
#[inline(always)]
unsafe fn q6_high(qh: __m256i, shift: i32, m3: __m256i) -> __m256i {
    let bits = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(shift)), m3);
    _mm256_slli_epi16::<4>(bits)
}

#[inline(always)]
unsafe fn tile_6<const N: usize>(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
    let (m4, m3) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x03));
    let mut acc = [0.0f32; N];
    for b in 0..nb {
        let blk = &w[b * Q6K_BYTES..(b + 1) * Q6K_BYTES];
        let scales: [i16; 16] = std::array::from_fn(|k| blk[192 + k] as i8 as i16);
        let p = blk.as_ptr();
        let mut sums = [_mm256_setzero_si256(); N];
        for n in 0..2 {
            let ql0 = load(p.add(64 * n));
            let ql1 = load(p.add(64 * n + 32));
            let qh = load(p.add(128 + 32 * n));
            let groups = [
                _mm256_or_si256(_mm256_and_si256(ql0, m4), q6_high(qh, 0, m3)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4), q6_high(qh, 2, m3)),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                    q6_high(qh, 4, m3),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                    q6_high(qh, 6, m3),
                ),
            ];
            for (g, &q) in groups.iter().enumerate() {
                // Elements 0..16 of the group use scale 2g, elements 16..32 scale 2g + 1.
                let k = 8 * n + 2 * g;
                let sv = _mm256_set_m128i(_mm_set1_epi16(scales[k + 1]), _mm_set1_epi16(scales[k]));
                for j in 0..N {
                    let y = xs[j].qs.as_ptr().add(b * QK_K + 128 * n + 32 * g) as *const u8;
                    let prod = _mm256_madd_epi16(_mm256_maddubs_epi16(q, load(y)), sv);
                    sums[j] = _mm256_add_epi32(sums[j], prod);
                }
            }
        }
        let d = f16_at(p.add(208));
        for j in 0..N {
            let bsums = &xs[j].bsums[16 * b..16 * b + 16];
            let offset: i32 = (0..16).map(|k| scales[k] as i32 * bsums[k] as i32).sum();
            let isum = hsum_i32(sums[j]) - 32 * offset;
            acc[j] = combine(acc[j], xs[j].d[b], d, isum, 0.0, 0);
        }
    }
    out[..N].copy_from_slice(&acc);
}

/// Instantiates one kernel per tile height for the AVX2 feature set.
macro_rules! kernel {
    ($name:ident, $tile:ident $(, $five:literal)?) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(super) unsafe fn $name(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
            debug_assert!(xs.len() == out.len() && xs.len() <= super::MAX_TILE);
            match xs.len() {
                1 => $tile::<$($five,)? 1>(w, nb, xs, out),
                2 => $tile::<$($five,)? 2>(w, nb, xs, out),
                3 => $tile::<$($five,)? 3>(w, nb, xs, out),
                4 => $tile::<$($five,)? 4>(w, nb, xs, out),
                _ => {}
            }
        }
    };
}

kernel!(q4k, tile_4_5, false);
kernel!(q5k, tile_4_5, true);
kernel!(q6k, tile_6);
