//! x86 kernels for interleaved 16-row groups (see `packed.rs`): one i32 lane per weight row,
//! four quants per lane against a broadcast activation quad.
//!
//! - AVX2: 8 rows per register (two passes per group); `vpmaddubsw` + `vpmaddwd`. Q4_1 sums all
//!   eight `vpmaddubsw` results of a block in i16 first (16 products of ≤ 15·128 < 2¹⁵).
//!   Q8_0 uses the sign trick (`|w| · (x · sign w)`).
//! - AVX2 + VNNI (AVX-VNNI or AVX512-VL): the same with `vpdpbusd` on 256-bit registers.
//! - AVX-512 + VNNI: 16 rows per 512-bit register, one pass.
//!
//! With VNNI, Q8_0 weights become unsigned by flipping their top bit (`w + 128`) and the sum is
//! started at `−128 · Σx` (the activation block sum) so the result is still `Σ w·x`, exactly.
//! The float part is the scalar kernels' order, so all variants are bit-identical.
//!
//! Each exported kernel walks every activation row it is given in tiles of up to four (the
//! group's weights stay in L1 meanwhile) and stores straight into the output matrix; a row's
//! arithmetic is the same in every tile height, so a row's result never depends on its batch.

use std::arch::x86_64::*;

use crate::cpu::quant::activation::ActRow;
use crate::cpu::quant::layout::QK;
use crate::cpu::quant::packed::{GROUP, Q4_0_GROUP_BYTES, Q4_1_GROUP_BYTES, Q8_0_GROUP_BYTES};

/// How a 256-bit kernel forms `u8 × i8` sums of four.
trait Ymm {
    const VNNI: bool;
    unsafe fn dpbusd(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;
}

struct Plain;
impl Ymm for Plain {
    const VNNI: bool = false;
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, _: __m256i, _: __m256i) -> __m256i {
        acc
    }
}

struct AvxVnni;
impl Ymm for AvxVnni {
    const VNNI: bool = true;
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, u, s)
    }
}

struct Vnni512;
impl Ymm for Vnni512 {
    const VNNI: bool = true;
    #[inline(always)]
    unsafe fn dpbusd(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, u, s)
    }
}

/// The four activation quants at `x[at..at + 4]` as one i32.
#[inline(always)]
unsafe fn quad(x: &ActRow<'_>, at: usize) -> i32 {
    (x.qs.as_ptr().add(at) as *const i32).read_unaligned()
}

/// Where a tile's results go: row `j`, weight row `i` at `ptr[j·ld + i]` for `i < valid`.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    ld: usize,
    valid: usize,
}

/// Lanes `8h..8h + 8` of tile row `j`.
#[inline(always)]
unsafe fn store_ymm(out: Out, j: usize, h: usize, v: __m256) {
    let p = out.ptr.add(j * out.ld + 8 * h);
    let n = out.valid.saturating_sub(8 * h).min(8);
    if n == 8 {
        _mm256_storeu_ps(p, v);
    } else if n > 0 {
        let mut t = [0.0f32; 8];
        _mm256_storeu_ps(t.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(t.as_ptr(), p, n);
    }
}

/// All 16 lanes of tile row `j` (those below `valid`).
#[inline(always)]
unsafe fn store_zmm(out: Out, j: usize, v: __m512) {
    let p = out.ptr.add(j * out.ld);
    if out.valid == GROUP {
        _mm512_storeu_ps(p, v);
    } else {
        _mm512_mask_storeu_ps(p, ((1u32 << out.valid) - 1) as __mmask16, v);
    }
}

/// How far ahead of the block being multiplied its successors are requested. A task's groups
/// are contiguous, but the hardware prefetcher alone leaves a core well short of the memory
/// bandwidth in a matrix-vector product (measured: 6.6 → 4.0 ms per SmolLM2 decode step on
/// one thread, 3.5 → 2.5 ms on two); 4–16 KiB ahead all do about as well.
const PREFETCH_AHEAD: usize = 8192;

/// Hints the lines [`PREFETCH_AHEAD`] bytes after the `bytes` at `p` into L1.
#[inline(always)]
unsafe fn prefetch_ahead(p: *const u8, bytes: usize) {
    let mut off = 0;
    while off < bytes {
        // A hint never faults, even past the end of the matrix, so no bound is needed.
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_AHEAD + off) as *const i8);
        off += 64;
    }
}

/// The `−8·Σx` that turns `Σ q·x` into Q4_0's `Σ (q − 8)·x`.
#[inline(always)]
unsafe fn q4_0_offset(x: &ActRow<'_>, b: usize) -> i32 {
    -8 * *x.bsums.get_unchecked(b) as i32
}

/// Q4_1 (`MIN`) or Q4_0, as in `packed_scalar::q4`.
#[inline(always)]
unsafe fn q4_ymm<D: Ymm, const MIN: bool, const N: usize>(
    g: &[u8],
    nb: usize,
    xs: &[ActRow<'_>],
    out: Out,
) {
    let (m4, ones) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi16(1));
    let gbb = if MIN {
        Q4_1_GROUP_BYTES
    } else {
        Q4_0_GROUP_BYTES
    };
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..nb {
            let p = g.as_ptr().add(b * gbb);
            if h == 0 {
                prefetch_ahead(p, gbb);
            }
            let mut sum = [_mm256_setzero_si256(); N];
            for c in 0..4 {
                let bytes = _mm256_loadu_si256(p.add(64 * c + 32 * h) as *const __m256i);
                let lo = _mm256_and_si256(bytes, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bytes), m4);
                for j in 0..N {
                    let xl = _mm256_set1_epi32(quad(&xs[j], b * QK + 4 * c));
                    let xh = _mm256_set1_epi32(quad(&xs[j], b * QK + 16 + 4 * c));
                    sum[j] = if D::VNNI {
                        D::dpbusd(D::dpbusd(sum[j], lo, xl), hi, xh)
                    } else {
                        let pl = _mm256_maddubs_epi16(lo, xl);
                        let ph = _mm256_maddubs_epi16(hi, xh);
                        _mm256_add_epi16(sum[j], _mm256_add_epi16(pl, ph))
                    };
                }
            }
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(p.add(256 + 16 * h) as *const __m128i));
            for j in 0..N {
                let mut isum = if D::VNNI {
                    sum[j]
                } else {
                    _mm256_madd_epi16(sum[j], ones)
                };
                if !MIN {
                    isum = _mm256_add_epi32(isum, _mm256_set1_epi32(q4_0_offset(&xs[j], b)));
                }
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*xs[j].d.get_unchecked(b)));
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[j]);
                if MIN {
                    let m = _mm256_cvtph_ps(_mm_loadu_si128(p.add(288 + 16 * h) as *const __m128i));
                    let s = _mm256_set1_ps(*xs[j].s.get_unchecked(b));
                    acc[j] = _mm256_fmadd_ps(m, s, acc[j]);
                }
            }
        }
        for (j, &a) in acc.iter().enumerate() {
            store_ymm(out, j, h, a);
        }
    }
}

#[inline(always)]
unsafe fn q8_0_ymm<D: Ymm, const N: usize>(g: &[u8], nb: usize, xs: &[ActRow<'_>], out: Out) {
    let (ones, flip) = (_mm256_set1_epi16(1), _mm256_set1_epi8(-128));
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..nb {
            let p = g.as_ptr().add(b * Q8_0_GROUP_BYTES);
            if h == 0 {
                prefetch_ahead(p, Q8_0_GROUP_BYTES);
            }
            let mut sum: [__m256i; N] = std::array::from_fn(|j| {
                if D::VNNI {
                    _mm256_set1_epi32(-128 * *xs[j].bsums.get_unchecked(b) as i32)
                } else {
                    _mm256_setzero_si256()
                }
            });
            for c in 0..8 {
                let w = _mm256_loadu_si256(p.add(64 * c + 32 * h) as *const __m256i);
                let (u, a) = (_mm256_xor_si256(w, flip), _mm256_abs_epi8(w));
                for j in 0..N {
                    let xb = _mm256_set1_epi32(quad(&xs[j], b * QK + 4 * c));
                    sum[j] = if D::VNNI {
                        D::dpbusd(sum[j], u, xb)
                    } else {
                        let prod = _mm256_maddubs_epi16(a, _mm256_sign_epi8(xb, w));
                        _mm256_add_epi32(sum[j], _mm256_madd_epi16(prod, ones))
                    };
                }
            }
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(p.add(512 + 16 * h) as *const __m128i));
            for j in 0..N {
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*xs[j].d.get_unchecked(b)));
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[j]), scale, acc[j]);
            }
        }
        for (j, &a) in acc.iter().enumerate() {
            store_ymm(out, j, h, a);
        }
    }
}

/// Q4_1 (`MIN`) or Q4_0, as in `packed_scalar::q4`.
#[inline(always)]
unsafe fn q4_zmm<const MIN: bool, const N: usize>(
    g: &[u8],
    nb: usize,
    xs: &[ActRow<'_>],
    out: Out,
) {
    let m4 = _mm512_set1_epi8(0x0F);
    let gbb = if MIN {
        Q4_1_GROUP_BYTES
    } else {
        Q4_0_GROUP_BYTES
    };
    // Up to four rows, two chains per row (low and high nibbles) halve the dependent
    // `vpdpbusd` latency; with more rows there are chains enough, and one add fewer per row.
    let split = N <= 4;
    let mut acc = [_mm512_setzero_ps(); N];
    for b in 0..nb {
        let p = g.as_ptr().add(b * gbb);
        prefetch_ahead(p, gbb);
        let mut lo_sum: [__m512i; N] = std::array::from_fn(|j| {
            _mm512_set1_epi32(if MIN { 0 } else { q4_0_offset(&xs[j], b) })
        });
        let mut hi_sum = [_mm512_setzero_si512(); N];
        for c in 0..4 {
            let bytes = _mm512_loadu_si512(p.add(64 * c) as *const __m512i);
            let lo = _mm512_and_si512(bytes, m4);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(bytes), m4);
            for j in 0..N {
                let xl = _mm512_set1_epi32(quad(&xs[j], b * QK + 4 * c));
                let xh = _mm512_set1_epi32(quad(&xs[j], b * QK + 16 + 4 * c));
                lo_sum[j] = _mm512_dpbusd_epi32(lo_sum[j], lo, xl);
                if split {
                    hi_sum[j] = _mm512_dpbusd_epi32(hi_sum[j], hi, xh);
                } else {
                    lo_sum[j] = _mm512_dpbusd_epi32(lo_sum[j], hi, xh);
                }
            }
        }
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(256) as *const __m256i));
        for j in 0..N {
            let isum = if split {
                _mm512_add_epi32(lo_sum[j], hi_sum[j])
            } else {
                lo_sum[j]
            };
            let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*xs[j].d.get_unchecked(b)));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[j]);
            if MIN {
                let m = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(288) as *const __m256i));
                let s = _mm512_set1_ps(*xs[j].s.get_unchecked(b));
                acc[j] = _mm512_fmadd_ps(m, s, acc[j]);
            }
        }
    }
    for (j, &a) in acc.iter().enumerate() {
        store_zmm(out, j, a);
    }
}

#[inline(always)]
unsafe fn q8_0_zmm<const N: usize>(g: &[u8], nb: usize, xs: &[ActRow<'_>], out: Out) {
    let flip = _mm512_set1_epi8(-128);
    let mut acc = [_mm512_setzero_ps(); N];
    for b in 0..nb {
        let p = g.as_ptr().add(b * Q8_0_GROUP_BYTES);
        prefetch_ahead(p, Q8_0_GROUP_BYTES);
        // Two chains per row for up to four rows, as in `q4_zmm`.
        let split = N <= 4;
        let mut even: [__m512i; N] =
            std::array::from_fn(|j| _mm512_set1_epi32(-128 * *xs[j].bsums.get_unchecked(b) as i32));
        let mut odd = [_mm512_setzero_si512(); N];
        for c in 0..8 {
            let w = _mm512_loadu_si512(p.add(64 * c) as *const __m512i);
            let u = _mm512_xor_si512(w, flip);
            for j in 0..N {
                let xb = _mm512_set1_epi32(quad(&xs[j], b * QK + 4 * c));
                if c % 2 == 1 && split {
                    odd[j] = _mm512_dpbusd_epi32(odd[j], u, xb);
                } else {
                    even[j] = _mm512_dpbusd_epi32(even[j], u, xb);
                }
            }
        }
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(512) as *const __m256i));
        for j in 0..N {
            let isum = if split {
                _mm512_add_epi32(even[j], odd[j])
            } else {
                even[j]
            };
            let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*xs[j].d.get_unchecked(b)));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[j]);
        }
    }
    for (j, &a) in acc.iter().enumerate() {
        store_zmm(out, j, a);
    }
}

/// Instantiates one group kernel for one feature set: every row of `xs`, four at a time.
macro_rules! kernel {
    ($name:ident, $features:literal, $tile:ident [$($p:tt),*]) => {
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name(
            g: &[u8],
            nb: usize,
            xs: &[ActRow<'_>],
            out: *mut f32,
            ld: usize,
            valid: usize,
        ) {
            debug_assert!((1..=GROUP).contains(&valid));
            let mut r = 0;
            while r + 4 <= xs.len() {
                let o = Out { ptr: out.add(r * ld), ld, valid };
                $tile::<$($p,)* 4>(g, nb, &xs[r..r + 4], o);
                r += 4;
            }
            let o = Out { ptr: out.add(r * ld), ld, valid };
            match xs.len() - r {
                1 => $tile::<$($p,)* 1>(g, nb, &xs[r..], o),
                2 => $tile::<$($p,)* 2>(g, nb, &xs[r..], o),
                3 => $tile::<$($p,)* 3>(g, nb, &xs[r..], o),
                _ => {}
            }
        }
    };
}

/// As `kernel!`, eight rows at a time (512-bit kernels: 32 registers hold eight rows' sums).
macro_rules! kernel8 {
    ($name:ident, $features:literal, $tile:ident [$($p:tt),*]) => {
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name(
            g: &[u8],
            nb: usize,
            xs: &[ActRow<'_>],
            out: *mut f32,
            ld: usize,
            valid: usize,
        ) {
            debug_assert!((1..=GROUP).contains(&valid));
            let mut r = 0;
            while r + 8 <= xs.len() {
                let o = Out { ptr: out.add(r * ld), ld, valid };
                $tile::<$($p,)* 8>(g, nb, &xs[r..r + 8], o);
                r += 8;
            }
            let o = Out { ptr: out.add(r * ld), ld, valid };
            match xs.len() - r {
                1 => $tile::<$($p,)* 1>(g, nb, &xs[r..], o),
                2 => $tile::<$($p,)* 2>(g, nb, &xs[r..], o),
                3 => $tile::<$($p,)* 3>(g, nb, &xs[r..], o),
                4 => $tile::<$($p,)* 4>(g, nb, &xs[r..], o),
                5 => $tile::<$($p,)* 5>(g, nb, &xs[r..], o),
                6 => $tile::<$($p,)* 6>(g, nb, &xs[r..], o),
                7 => $tile::<$($p,)* 7>(g, nb, &xs[r..], o),
                _ => {}
            }
        }
    };
}

kernel!(q4_0_avx2, "avx2,fma,f16c", q4_ymm [Plain, false]);
kernel!(q4_1_avx2, "avx2,fma,f16c", q4_ymm [Plain, true]);
kernel!(q8_0_avx2, "avx2,fma,f16c", q8_0_ymm[Plain]);
kernel!(q4_0_avxvnni, "avx2,fma,f16c,avxvnni", q4_ymm [AvxVnni, false]);
kernel!(q4_1_avxvnni, "avx2,fma,f16c,avxvnni", q4_ymm [AvxVnni, true]);
kernel!(q8_0_avxvnni, "avx2,fma,f16c,avxvnni", q8_0_ymm[AvxVnni]);
kernel!(q4_0_vnni256, "avx2,fma,f16c,avx512vnni,avx512vl", q4_ymm [Vnni512, false]);
kernel!(q4_1_vnni256, "avx2,fma,f16c,avx512vnni,avx512vl", q4_ymm [Vnni512, true]);
kernel!(
    q8_0_vnni256,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    q8_0_ymm[Vnni512]
);
kernel8!(
    q4_0_avx512,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vnni",
    q4_zmm[false]
);
kernel8!(
    q4_1_avx512,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vnni",
    q4_zmm[true]
);
kernel8!(q8_0_avx512, "avx2,fma,f16c,avx512f,avx512bw,avx512vnni", q8_0_zmm []);
