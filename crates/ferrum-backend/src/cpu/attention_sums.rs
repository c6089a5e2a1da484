//! The sums inside CPU attention, in the two orders the backend offers.
//!
//! Invariants:
//! - [`Fast`] keeps every sum in registers: an 8-lane dot product, a sequential softmax sum,
//!   one accumulator per output value. Used by default.
//! - [`LlamaCpp`] sums exactly as llama.cpp's x86 CPU backend does (f32 cache, no flash
//!   attention, AVX-512 build), so a GGUF model can reproduce its activations bit for bit:
//!   a score is its `ggml_vec_dot_f32` (64 accumulators, dimension mod 64, of fused
//!   multiply-adds, folded by [`fold_rows`]); the softmax adds `e^(s − max)` per 16 context
//!   positions with [`tree16`], the chunk sums in f64; a value output is `ggml_vec_dot_f32`
//!   over the context (64 accumulators) for a step's only token, and its matrix-multiply order
//!   (16 accumulators, position mod 16) for the tokens of a multi-token step.
//! - Both use [`expf`] and are the same whatever else is in the batch. [`Fast`] does not
//!   depend on how a prompt was split into steps; [`LlamaCpp`] does, as llama.cpp does.

use super::expf::expf;

/// One order of the attention sums.
pub trait SumOrder {
    /// Whether value outputs are summed as [`LlamaCpp::dot`] sums (else one register-resident
    /// accumulator per output, added in context order).
    const VEC_DOT_VALUES: bool;
    /// `a·b`.
    fn dot(a: &[f32], b: &[f32]) -> f32;
    /// `x ← e^(x − max)` in place; returns `Σ x` in f64.
    fn exp_sum(x: &mut [f32], max: f32) -> f64;
}

/// Register-resident sums (the default).
pub struct Fast;

/// llama.cpp's summation order.
pub struct LlamaCpp;

impl SumOrder for Fast {
    const VEC_DOT_VALUES: bool = false;

    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        // Eight independent lanes let the compiler vectorize the reduction.
        let mut acc = [0.0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for l in 0..8 {
                acc[l] += x[l] * y[l];
            }
        }
        let mut s: f32 = acc.iter().sum();
        for (x, y) in ra.iter().zip(rb) {
            s += x * y;
        }
        s
    }

    #[inline(always)]
    fn exp_sum(x: &mut [f32], max: f32) -> f64 {
        let mut sum = 0.0f64;
        for v in x.iter_mut() {
            *v = expf(*v - max);
            sum += f64::from(*v);
        }
        sum
    }
}

impl SumOrder for LlamaCpp {
    const VEC_DOT_VALUES: bool = true;

    /// Four 16-lane accumulators per 64 elements, summed `(s0 + s2) + (s1 + s3)` and folded by
    /// [`tree16`]; a tail of fewer than 64 elements is added in f64.
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [[0.0f32; 16]; 4];
        let (ca, cb) = (a.chunks_exact(64), b.chunks_exact(64));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for (j, acc) in acc.iter_mut().enumerate() {
                for l in 0..16 {
                    acc[l] = x[16 * j + l].mul_add(y[16 * j + l], acc[l]);
                }
            }
        }
        let mut s0 = [0.0f32; 16];
        for l in 0..16 {
            s0[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        }
        let mut s = f64::from(tree16(&s0));
        for (x, y) in ra.iter().zip(rb) {
            s += f64::from(x * y);
        }
        s as f32
    }

    #[inline(always)]
    fn exp_sum(x: &mut [f32], max: f32) -> f64 {
        let mut sum = 0.0f64;
        for chunk in x.chunks_mut(16) {
            let mut e = [0.0f32; 16];
            for (v, e) in chunk.iter_mut().zip(e.iter_mut()) {
                *v = expf(*v - max);
                *e = *v;
            }
            sum += f64::from(tree16(&e));
        }
        sum
    }
}

/// The sum of 16 lanes as x86's 512-bit horizontal add forms it: halves, then quarters, then
/// `(l0 + l2) + (l1 + l3)`.
#[inline(always)]
pub fn tree16(v: &[f32; 16]) -> f32 {
    let mut h = [0.0f32; 8];
    for i in 0..8 {
        h[i] = v[i + 8] + v[i];
    }
    let g = [h[4] + h[0], h[5] + h[1], h[6] + h[2], h[7] + h[3]];
    (g[0] + g[2]) + (g[1] + g[3])
}

/// Folds the first `rows` rows of `acc` (each `width` wide, the rest taken as zero) into row 0.
/// With `lanes == 64`, in [`LlamaCpp::dot`]'s order: `(a[l] + a[32 + l]) + (a[16 + l] +
/// a[48 + l])` per lane `l`, then [`tree16`] over the lanes; with `lanes == 16`, [`tree16`]
/// alone. Absent rows are skipped rather than added, which is exact (adding +0 changes no
/// non-zero value).
#[inline(always)]
pub fn fold_rows(acc: &mut [f32], width: usize, rows: usize, lanes: usize) {
    let add = |acc: &mut [f32], dst: usize, src: usize| {
        if src < rows {
            let (lo, hi) = acc.split_at_mut(src * width);
            for (a, &b) in lo[dst * width..(dst + 1) * width]
                .iter_mut()
                .zip(&hi[..width])
            {
                *a += b;
            }
        }
    };
    if lanes == 64 {
        for l in 0..16 {
            add(acc, l, 32 + l);
            add(acc, 16 + l, 48 + l);
        }
        for l in 0..16 {
            add(acc, l, 16 + l);
        }
    }
    for i in 0..8 {
        add(acc, i, i + 8);
    }
    for i in 0..4 {
        add(acc, i, i + 4);
    }
    add(acc, 0, 2);
    add(acc, 1, 3);
    add(acc, 0, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's `ggml_vec_dot_f32` for n a multiple of 64, written as that loop is.
    fn reference_dot(x: &[f32], y: &[f32]) -> f32 {
        let mut sum = [[0.0f32; 16]; 4];
        for i in (0..x.len()).step_by(64) {
            for (j, s) in sum.iter_mut().enumerate() {
                for (t, s) in s.iter_mut().enumerate() {
                    *s = x[i + 16 * j + t].mul_add(y[i + 16 * j + t], *s);
                }
            }
        }
        let mut x = [0.0f32; 16];
        for (t, x) in x.iter_mut().enumerate() {
            let (x0, x1) = (sum[0][t] + sum[2][t], sum[1][t] + sum[3][t]);
            *x = x0 + x1;
        }
        tree16(&x)
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn dot_and_fold_follow_the_same_order() {
        for n in [64, 128, 256] {
            let (x, y) = (values(n, 1), values(n, 2));
            assert_eq!(LlamaCpp::dot(&x, &y), reference_dot(&x, &y));
            // fold_rows over one-column rows is the same sum as the dot of the products.
            for rows in [1, 5, 17, 40, 64] {
                let mut acc = vec![0.0f32; 64];
                let mut xs = vec![0.0f32; 64];
                for (p, (a, b)) in x.iter().zip(&y).take(rows).enumerate() {
                    acc[p] = a * b;
                    xs[p] = *a;
                }
                let mut ys = y[..64].to_vec();
                ys[rows..].fill(0.0);
                let mut acc16 = vec![0.0f32; 16];
                for (p, (a, b)) in x.iter().zip(&y).take(rows).enumerate() {
                    acc16[p % 16] = a.mul_add(*b, acc16[p % 16]);
                }
                fold_rows(&mut acc, 1, rows, 64);
                assert_eq!(acc[0], reference_dot(&xs, &ys), "rows {rows}");
                // The 16-lane order: a fused multiply-add chain per lane, then the tree.
                let mut lanes = [0.0f32; 16];
                lanes.copy_from_slice(&acc16);
                let want = tree16(&lanes);
                fold_rows(&mut acc16, 1, rows.min(16), 16);
                assert_eq!(acc16[0], want, "rows {rows}");
            }
        }
        let (x, y) = (values(100, 3), values(100, 4));
        let exact: f64 = x
            .iter()
            .zip(&y)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        assert!((f64::from(Fast::dot(&x, &y)) - exact).abs() < 1e-5);
        assert!((f64::from(LlamaCpp::dot(&x, &y)) - exact).abs() < 1e-5);
    }

    #[test]
    fn both_softmax_sums_agree_closely() {
        let x = values(300, 5);
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let (mut a, mut b) = (x.clone(), x.clone());
        let (sa, sb) = (Fast::exp_sum(&mut a, max), LlamaCpp::exp_sum(&mut b, max));
        assert_eq!(a, b);
        assert!((sa - sb).abs() < 1e-4 * sa);
    }
}
