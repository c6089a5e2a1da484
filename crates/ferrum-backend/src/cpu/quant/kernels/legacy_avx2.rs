//! AVX2 kernels for the 32-element formats, with a VNNI variant of the byte dot product.
//!
//! One block is 32 quants in one 256-bit register. The weight block is decoded once per tile
//! (nibbles split, or the sign trick applied) and multiplied against each activation row:
//! `u8 × i8` products summed in fours into eight i32 lanes (`vpmaddubsw` + `vpmaddwd`, or one
//! `vpdpbusd` with VNNI; both exact here: 4-bit quants times |q| ≤ 127 never saturate, and the
//! sign trick feeds |w| ≤ 128), converted to f32 and accumulated with one FMA per block. Signed
//! weights use the sign trick: `|w| · (y · sign w)` = `w · y`.

use std::arch::x86_64::*;

use crate::cpu::quant::activation::ActRow;
use crate::cpu::quant::layout::{Q4_0_BYTES, Q4_1_BYTES, Q8_0_BYTES, QK};

/// `u8 × i8` products summed in groups of four into eight i32 lanes.
trait Dot {
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i;
}

struct Maddubs;
impl Dot for Maddubs {
    #[inline(always)]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }
}

struct AvxVnni;
impl Dot for AvxVnni {
    #[inline(always)]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
    }
}

struct Vnni512;
impl Dot for Vnni512 {
    #[inline(always)]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    }
}

/// A 32-element weight format as the vector code sees it.
trait Fmt {
    const BYTES: usize;
    /// Quants are signed (sign trick needed) rather than 0..=15.
    const SIGNED: bool;
    /// The block has an f16 min at byte 2 (Q4_1).
    const HAS_MIN: bool;
    /// The 32 quants of the block at `p`, in element order.
    unsafe fn quants(p: *const u8) -> __m256i;
}

/// Splits 16 bytes of nibbles: low nibbles to bytes 0..16, high nibbles to bytes 16..32.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let t = _mm_loadu_si128(p as *const __m128i);
    let both = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(t), _mm_srli_epi16::<4>(t));
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

struct Q40;
impl Fmt for Q40 {
    const BYTES: usize = Q4_0_BYTES;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8))
    }
}

struct Q41;
impl Fmt for Q41 {
    const BYTES: usize = Q4_1_BYTES;
    const SIGNED: bool = false;
    const HAS_MIN: bool = true;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        nibbles(p.add(4))
    }
}

struct Q80;
impl Fmt for Q80 {
    const BYTES: usize = Q8_0_BYTES;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p.add(2) as *const __m256i)
    }
}

/// The f16 at `p` (unaligned) as f32.
#[inline(always)]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// Lane sum in llama.cpp's `hsum_float_8` order (see `kernels/mod.rs`).
#[inline(always)]
unsafe fn hsum8(v: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

#[inline(always)]
unsafe fn tile<F: Fmt, D: Dot, const N: usize>(
    w: &[u8],
    nb: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    let qx: [*const i8; N] = std::array::from_fn(|j| xs[j].qs.as_ptr());
    let dx: [*const f32; N] = std::array::from_fn(|j| xs[j].d.as_ptr());
    let sx: [*const f32; N] = std::array::from_fn(|j| xs[j].s.as_ptr());
    let mut acc = [_mm256_setzero_ps(); N];
    let mut summs = [0.0f32; N];
    let w = w.as_ptr();
    for b in 0..nb {
        let p = w.add(b * F::BYTES);
        let dw = f16_at(p);
        let q = F::quants(p);
        let u = if F::SIGNED { _mm256_sign_epi8(q, q) } else { q };
        let m = if F::HAS_MIN { f16_at(p.add(2)) } else { 0.0 };
        for j in 0..N {
            let y = _mm256_loadu_si256(qx[j].add(b * QK) as *const __m256i);
            let y = if F::SIGNED { _mm256_sign_epi8(y, q) } else { y };
            let lanes = _mm256_cvtepi32_ps(D::dot(u, y));
            let scale = _mm256_set1_ps(dw * *dx[j].add(b));
            acc[j] = _mm256_fmadd_ps(scale, lanes, acc[j]);
            if F::HAS_MIN {
                summs[j] += m * *sx[j].add(b);
            }
        }
    }
    for j in 0..N {
        out[j] = hsum8(acc[j]) + summs[j];
    }
}

/// Instantiates one kernel per (format, dot product, feature set), specialized per tile height.
macro_rules! kernel {
    ($name:ident, $fmt:ty, $dot:ty, $features:literal) => {
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
            debug_assert!(xs.len() == out.len() && xs.len() <= super::MAX_TILE);
            match xs.len() {
                1 => tile::<$fmt, $dot, 1>(w, nb, xs, out),
                2 => tile::<$fmt, $dot, 2>(w, nb, xs, out),
                3 => tile::<$fmt, $dot, 3>(w, nb, xs, out),
                4 => tile::<$fmt, $dot, 4>(w, nb, xs, out),
                _ => {}
            }
        }
    };
}

kernel!(q4_0_avx2, Q40, Maddubs, "avx2,fma,f16c");
kernel!(q4_1_avx2, Q41, Maddubs, "avx2,fma,f16c");
kernel!(q8_0_avx2, Q80, Maddubs, "avx2,fma,f16c");
kernel!(q4_0_avxvnni, Q40, AvxVnni, "avx2,fma,f16c,avxvnni");
kernel!(q4_1_avxvnni, Q41, AvxVnni, "avx2,fma,f16c,avxvnni");
kernel!(q8_0_avxvnni, Q80, AvxVnni, "avx2,fma,f16c,avxvnni");
kernel!(
    q4_0_vnni512,
    Q40,
    Vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl"
);
kernel!(
    q4_1_vnni512,
    Q41,
    Vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl"
);
kernel!(
    q8_0_vnni512,
    Q80,
    Vnni512,
    "avx2,fma,f16c,avx512vnni,avx512vl"
);
