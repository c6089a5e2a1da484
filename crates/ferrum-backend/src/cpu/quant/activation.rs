//! 8-bit quantization of f32 activation rows, rounding exactly as llama.cpp's x86 CPU backend
//! does, because our greedy tokens are compared with its tokens one for one.
//!
//! Formats (the activation type each weight type is multiplied against):
//! - Q8_0 (for Q4_0, Q8_0) and Q8_1 (for Q4_1), blocks of 32: `amax = max|x|`, `d = amax / 127`,
//!   `q = round_half_even(x · (127 / amax))` (llama.cpp's AVX2 `quantize_row_q8_0/1`, which is
//!   what its x86 builds run; its portable `_ref` variant multiplies by `1 / d` and rounds half
//!   away from zero, which differs in rare last-bit cases). `d` is stored as f16; Q8_1 also stores
//!   `s = f16(d · Σq)` with the unrounded `d`.
//! - Q8_K (for Q4_K, Q5_K, Q6_K), blocks of 256: `max` = the first element of largest magnitude
//!   (sign kept), `iscale = −127 / max`, `q = min(127, round_half_even(iscale · x))`,
//!   `d = 1 / iscale` as f32 (so `d` may be negative), `bsums[k] = Σ q[16k..16k + 16]`
//!   (llama.cpp's `quantize_row_q8_K_ref`, which x86 builds call directly).
//!
//! Invariants: [`ActBuffer`] keeps the same numbers as the canonical blocks, laid out as separate
//! arrays (quants, scales as f32, sums) so kernels read scales without converting f16 each time.
//! The AVX2 block quantizer performs the scalar one's operations lane by lane (abs, max, one
//! multiply by the same `id`, ties-to-even rounding, NaN to 0), so both give the same bytes.

use super::layout::{f16_bits, round_f16, Q8K_BYTES, Q8_0_BYTES, Q8_1_BYTES, QK, QK_K};
use crate::cpu::pool::{par_chunks_mut, Parallel, SendPtr};
use crate::{BackendError, Result};

/// The 8-bit format activations are quantized to for one weight type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActFormat {
    Q8_0,
    Q8_1,
    Q8K,
}

impl ActFormat {
    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            ActFormat::Q8_0 | ActFormat::Q8_1 => QK,
            ActFormat::Q8K => QK_K,
        }
    }

    /// Integer sums kept per block: one for Q8_0/Q8_1, one per 16 elements for Q8_K.
    fn sums_per_block(self) -> usize {
        match self {
            ActFormat::Q8_0 | ActFormat::Q8_1 => 1,
            ActFormat::Q8K => QK_K / 16,
        }
    }
}

/// One quantized activation row as the kernels read it.
///
/// `d[b]` is block `b`'s scale as f32 (already rounded through f16 where the format stores f16),
/// `s[b]` is Q8_1's stored `f16(d · Σq)` as f32, `bsums` the integer sums of
/// [`ActFormat::sums_per_block`] per block.
#[derive(Debug, Clone, Copy)]
pub struct ActRow<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub bsums: &'a [i16],
}

/// Reusable storage for `rows` quantized activation rows (struct of arrays, row-major).
#[derive(Debug, Default)]
pub struct ActBuffer {
    rows: usize,
    cols: usize,
    blocks: usize,
    sums: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    bsums: Vec<i16>,
}

/// Elements quantized per task (a task must be worth waking a thread for).
const QUANT_TASK_ELEMS: usize = 16 * 1024;

impl ActBuffer {
    /// Quantizes `rows` rows of `cols` (a multiple of the block size) from `x`, reusing storage.
    pub fn quantize(
        &mut self,
        par: &dyn Parallel,
        format: ActFormat,
        x: &[f32],
        rows: usize,
        cols: usize,
    ) {
        let bs = format.block_size();
        debug_assert!(cols.is_multiple_of(bs) && x.len() >= rows * cols);
        self.rows = rows;
        self.cols = cols;
        self.blocks = cols / bs;
        self.sums = self.blocks * format.sums_per_block();
        // `resize` keeps the allocation once it has grown to the largest step.
        self.qs.resize(rows * cols, 0);
        self.d.resize(rows * self.blocks, 0.0);
        self.s.resize(rows * self.blocks, 0.0);
        self.bsums.resize(rows * self.sums, 0);
        let (nb, ns) = (self.blocks, self.sums);
        // Tasks of whole rows, large enough to be worth a thread (a decode step's few rows run
        // on the calling thread). The quants are split by `par_chunks_mut`, the per-block
        // arrays by the same row ranges below.
        let per = QUANT_TASK_ELEMS.div_ceil(cols.max(1));
        let (d, s, bsums) = (
            SendPtr(self.d.as_mut_ptr()),
            SendPtr(self.s.as_mut_ptr()),
            SendPtr(self.bsums.as_mut_ptr()),
        );
        par_chunks_mut(par, &mut self.qs[..rows * cols], per * cols, |t, qs| {
            let (r0, n) = (t * per, qs.len() / cols.max(1));
            // SAFETY: rows r0..r0 + n belong to this task only, and their ranges of `d`, `s`
            // and `bsums` (resized above to `rows` rows) are disjoint from other tasks'.
            let (d, s, bsums) = unsafe {
                (
                    std::slice::from_raw_parts_mut(d.get().add(r0 * nb), n * nb),
                    std::slice::from_raw_parts_mut(s.get().add(r0 * nb), n * nb),
                    std::slice::from_raw_parts_mut(bsums.get().add(r0 * ns), n * ns),
                )
            };
            let x = &x[r0 * cols..(r0 + n) * cols];
            let rows = x
                .chunks_exact(cols)
                .zip(qs.chunks_exact_mut(cols))
                .zip(d.chunks_exact_mut(nb).zip(s.chunks_exact_mut(nb)))
                .zip(bsums.chunks_exact_mut(ns));
            for (((x, qs), (d, s)), bsums) in rows {
                quantize_row(format, x, qs, d, s, bsums);
            }
        });
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `r` (< `rows`).
    pub fn row(&self, r: usize) -> ActRow<'_> {
        let (nb, ns, c) = (self.blocks, self.sums, self.cols);
        ActRow {
            qs: &self.qs[r * c..(r + 1) * c],
            d: &self.d[r * nb..(r + 1) * nb],
            s: &self.s[r * nb..(r + 1) * nb],
            bsums: &self.bsums[r * ns..(r + 1) * ns],
        }
    }
}

/// Quantizes one row into its slices of an [`ActBuffer`], with the x86 build's rounding
/// instructions where available (same results, without a libm call per element).
fn quantize_row(
    format: ActFormat,
    x: &[f32],
    qs: &mut [i8],
    d: &mut [f32],
    s: &mut [f32],
    bsums: &mut [i16],
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
    {
        // SAFETY: the features this function is compiled for were just detected.
        unsafe { quantize_row_avx2(format, x, qs, d, s, bsums) };
        return;
    }
    quantize_row_generic(format, x, qs, d, s, bsums);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_row_avx2(
    format: ActFormat,
    x: &[f32],
    qs: &mut [i8],
    d: &mut [f32],
    s: &mut [f32],
    bsums: &mut [i16],
) {
    if format == ActFormat::Q8K {
        return quantize_row_generic(format, x, qs, d, s, bsums);
    }
    let blocks = x.chunks_exact(QK).zip(qs.chunks_exact_mut(QK));
    let meta = d.iter_mut().zip(s.iter_mut()).zip(bsums.iter_mut());
    for ((x, q), ((d, s), bsum)) in blocks.zip(meta) {
        // SAFETY: both chunks hold exactly 32 elements; the features were detected.
        let (scale, sum) = quantize_block_32_avx2(x.as_ptr(), q.as_mut_ptr());
        *d = round_f16(scale);
        *s = round_f16(scale * sum as f32);
        *bsum = sum as i16;
    }
}

/// [`quantize_block_32`] with eight lanes: the same operations on each element.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_block_32_avx2(x: *const f32, q: *mut i8) -> (f32, i32) {
    use std::arch::x86_64::*;
    let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.add(8 * i)));
    let sign = _mm256_set1_ps(-0.0);
    // `maxps` returns its second operand when either is NaN: with the running maximum second,
    // NaN elements are skipped, as `f32::max` skips them in the scalar fold.
    let mut m = _mm256_setzero_ps();
    for v in v {
        m = _mm256_max_ps(_mm256_andnot_ps(sign, v), m);
    }
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mul = _mm256_set1_ps(id);
    let ints: [__m256i; 4] = std::array::from_fn(|i| {
        let p = _mm256_mul_ps(v[i], mul);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(p);
        // `as i8` saturates and maps NaN to 0 (`cvtps2dq` would give i32::MIN for both): zero
        // the NaNs, then clamp (±inf only arises when 127 / amax overflows).
        let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
        let r = _mm256_min_ps(
            _mm256_max_ps(r, _mm256_set1_ps(-128.0)),
            _mm256_set1_ps(127.0),
        );
        _mm256_cvtps_epi32(r)
    });
    let sum = _mm256_add_epi32(
        _mm256_add_epi32(ints[0], ints[1]),
        _mm256_add_epi32(ints[2], ints[3]),
    );
    let w01 = _mm256_packs_epi32(ints[0], ints[1]);
    let w23 = _mm256_packs_epi32(ints[2], ints[3]);
    let b = _mm256_packs_epi16(w01, w23);
    let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(q as *mut __m256i, b);
    let s4 = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256::<1>(sum),
    );
    let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32::<1>(s2));
    (d, _mm_cvtsi128_si32(s1))
}

#[inline(always)]
fn quantize_row_generic(
    format: ActFormat,
    x: &[f32],
    qs: &mut [i8],
    d: &mut [f32],
    s: &mut [f32],
    bsums: &mut [i16],
) {
    let bs = format.block_size();
    let ns = format.sums_per_block();
    let blocks = x.chunks_exact(bs).zip(qs.chunks_exact_mut(bs));
    let meta = d
        .iter_mut()
        .zip(s.iter_mut())
        .zip(bsums.chunks_exact_mut(ns));
    for ((x, q), ((d, s), bsums)) in blocks.zip(meta) {
        match format {
            ActFormat::Q8_0 | ActFormat::Q8_1 => {
                let (scale, sum) = quantize_block_32(x, q);
                *d = round_f16(scale);
                *s = round_f16(scale * sum as f32);
                bsums[0] = sum as i16;
            }
            ActFormat::Q8K => {
                *d = quantize_block_k(x, q, bsums);
                *s = 0.0;
            }
        }
    }
}

/// One 32-element block: returns the unrounded scale `amax / 127` and `Σq`.
#[inline(always)]
fn quantize_block_32(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in q.iter_mut().zip(x) {
        // `as` saturates (and maps NaN to 0), as the packing instructions do.
        let v = (v * id).round_ties_even() as i8;
        *q = v;
        sum += v as i32;
    }
    (d, sum)
}

/// One 256-element Q8_K block: fills `q` and the 16 `bsums`, returns `d`.
#[inline(always)]
fn quantize_block_k(x: &[f32], q: &mut [i8], bsums: &mut [i16]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        q.fill(0);
        bsums.fill(0);
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((iscale * v).round_ties_even() as i32).clamp(-128, 127) as i8;
    }
    for (sum, q) in bsums.iter_mut().zip(q.chunks_exact(16)) {
        *sum = q.iter().map(|&v| v as i16).sum();
    }
    1.0 / iscale
}

/// Quantizes `x` to canonical Q8_0 blocks (`{d: f16, qs: [i8; 32]}`).
pub fn quantize_row_q8_0(x: &[f32], out: &mut [u8]) -> Result<()> {
    check_canonical("Q8_0", x, out, QK, Q8_0_BYTES)?;
    for (x, b) in x.chunks_exact(QK).zip(out.chunks_exact_mut(Q8_0_BYTES)) {
        let mut q = [0i8; QK];
        let (d, _) = quantize_block_32(x, &mut q);
        b[0..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        for (o, q) in b[2..].iter_mut().zip(q) {
            *o = q as u8;
        }
    }
    Ok(())
}

/// Quantizes `x` to canonical Q8_1 blocks (`{d: f16, s: f16, qs: [i8; 32]}`).
pub fn quantize_row_q8_1(x: &[f32], out: &mut [u8]) -> Result<()> {
    check_canonical("Q8_1", x, out, QK, Q8_1_BYTES)?;
    for (x, b) in x.chunks_exact(QK).zip(out.chunks_exact_mut(Q8_1_BYTES)) {
        let mut q = [0i8; QK];
        let (d, sum) = quantize_block_32(x, &mut q);
        b[0..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        b[2..4].copy_from_slice(&f16_bits(d * sum as f32).to_le_bytes());
        for (o, q) in b[4..].iter_mut().zip(q) {
            *o = q as u8;
        }
    }
    Ok(())
}

/// Quantizes `x` to canonical Q8_K blocks (`{d: f32, qs: [i8; 256], bsums: [i16; 16]}`).
pub fn quantize_row_q8_k(x: &[f32], out: &mut [u8]) -> Result<()> {
    check_canonical("Q8_K", x, out, QK_K, Q8K_BYTES)?;
    for (x, b) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(Q8K_BYTES)) {
        let mut q = [0i8; QK_K];
        let mut bsums = [0i16; QK_K / 16];
        let d = quantize_block_k(x, &mut q, &mut bsums);
        b[0..4].copy_from_slice(&d.to_le_bytes());
        for (o, q) in b[4..4 + QK_K].iter_mut().zip(q) {
            *o = q as u8;
        }
        for (o, s) in b[4 + QK_K..].chunks_exact_mut(2).zip(bsums) {
            o.copy_from_slice(&s.to_le_bytes());
        }
    }
    Ok(())
}

fn check_canonical(name: &str, x: &[f32], out: &[u8], bs: usize, bytes: usize) -> Result<()> {
    if !x.len().is_multiple_of(bs) || out.len() != x.len() / bs * bytes {
        return Err(BackendError::Shape {
            what: format!("{name} quantization of {} values", x.len()),
            expected: format!("a multiple of {bs} values and {bytes} bytes per {bs}"),
            got: format!("{} output bytes", out.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_round_to_even_in_q8_0() {
        // amax = 127 makes the multiplier exactly 1, so 2.5 and -3.5 are ties.
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        let mut q = [0i8; 32];
        let (d, sum) = quantize_block_32(&x, &mut q);
        assert_eq!((d, q[0], q[1], q[2]), (1.0, 127, 2, -4));
        assert_eq!(sum, 125);
    }

    #[test]
    fn q8k_scale_follows_the_sign_of_the_largest_element() {
        let mut x = [0.0f32; 256];
        x[3] = -2.0;
        x[7] = 1.0;
        let mut q = [0i8; 256];
        let mut bsums = [0i16; 16];
        let d = quantize_block_k(&x, &mut q, &mut bsums);
        assert!(d > 0.0, "max is negative, so iscale is positive");
        assert_eq!((q[3], q[7]), (-127, 64));
        assert_eq!(bsums[0], -63);
    }

    /// The AVX2 row quantizer writes the generic one's bytes, edge cases included.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_quantizer_equals_generic() {
        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        {
            return;
        }
        let mut x: Vec<f32> = (0..32 * 40)
            .map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 0.0173)
            .collect();
        // Ties at amax = 127, zeros, NaN, ±inf, a tiny block whose 127/amax overflows.
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x[32..64].fill(0.0);
        x[70] = f32::NAN;
        x[100] = f32::INFINITY;
        x[101] = -1.0;
        x[140] = f32::NEG_INFINITY;
        for (i, v) in x[160..192].iter_mut().enumerate() {
            *v = if i % 3 == 0 { 1e-39 } else { -2e-39 };
        }
        for format in [ActFormat::Q8_0, ActFormat::Q8_1] {
            let nb = x.len() / 32;
            let mut a = (
                vec![0i8; x.len()],
                vec![0f32; nb],
                vec![0f32; nb],
                vec![0i16; nb],
            );
            let mut b = a.clone();
            quantize_row_generic(format, &x, &mut a.0, &mut a.1, &mut a.2, &mut a.3);
            // SAFETY: the features were checked above.
            unsafe { quantize_row_avx2(format, &x, &mut b.0, &mut b.1, &mut b.2, &mut b.3) };
            assert_eq!(a.0, b.0);
            assert_eq!(a.3, b.3);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.1), bits(&b.1));
            assert_eq!(bits(&a.2), bits(&b.2));
        }
    }

    #[test]
    fn buffer_matches_canonical_blocks() {
        let x: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let mut buf = ActBuffer::default();
        buf.quantize(&crate::cpu::pool::Serial, ActFormat::Q8_1, &x, 2, 256);
        let mut canon = vec![0u8; 16 * Q8_1_BYTES];
        quantize_row_q8_1(&x, &mut canon).unwrap();
        for r in 0..2 {
            let row = buf.row(r);
            for b in 0..8 {
                let blk = &canon[(r * 8 + b) * Q8_1_BYTES..];
                assert_eq!(row.d[b], super::super::layout::f16_at(blk, 0));
                assert_eq!(row.s[b], super::super::layout::f16_at(blk, 2));
                assert_eq!(row.qs[b * 32] as u8, blk[4]);
            }
        }
    }
}
