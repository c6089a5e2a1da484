//! `y = x · Wᵀ + b` for dense (f32) and block-quantized weights.
//!
//! Invariant (batch invariance): every output element is one dot product computed by the same
//! sequence of f32 operations whatever the number of rows, the tile it falls in, the thread
//! that computes it or the instruction set: 16 lanes `acc[l] += x[i]·w[i]` over `i ≡ l (mod
//! 16)` (a multiply then an add: Rust never fuses them), the lanes summed in order, then the
//! tail. A blocked GEMM crate does not give that (its k-blocking and its matrix-vector path
//! depend on the shape), so dense weights use this file's kernel: tiles of up to 4 activation
//! rows × 2 weight rows share their loads, and each task's weight rows stay in L2 while all
//! activation rows pass over them.

use super::pool::{Parallel, SendPtr};
use super::{quant, CpuWeight};
use crate::{BackendError, Result};

/// Lanes of a dot product.
const LANES: usize = 16;
/// Activation rows × weight rows of one register tile.
const TILE_X: usize = 4;
const TILE_W: usize = 2;
/// Weight bytes per task: at least this (a task switch must be worth it)...
const MIN_TASK_BYTES: usize = 64 * 1024;
/// ...and, when several activation rows reuse them, at most this (stays in L2).
const MAX_TASK_BYTES: usize = 256 * 1024;

/// `x_q` caches the 8-bit form of `x` for quantized weights (see [`quant::QuantizedActs`]).
pub fn linear(
    par: &dyn Parallel,
    x: &[f32],
    x_q: Option<&mut quant::QuantizedActs>,
    rows: usize,
    w: &CpuWeight,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    let (n, k) = (w.rows(), w.cols());
    if x.len() != rows * k || out.len() != rows * n || bias.is_some_and(|b| b.len() != n) {
        return Err(BackendError::Shape {
            what: "linear operands".into(),
            expected: format!("x {rows}×{k}, out {rows}×{n}, bias {n}"),
            got: format!(
                "x {}, out {}, bias {:?}",
                x.len(),
                out.len(),
                bias.map(<[f32]>::len)
            ),
        });
    }
    match w {
        CpuWeight::Dense { data, .. } => dense(par, x, rows, data, n, k, out),
        CpuWeight::Quantized(m) => quant::quant_matmul_prepared_on(par, x, rows, m, out, x_q)?,
    }
    if let Some(b) = bias {
        for row in out.chunks_mut(n) {
            for (y, &bb) in row.iter_mut().zip(b) {
                *y += bb;
            }
        }
    }
    Ok(())
}

/// `out[r·n + o] = x_r · w_o` for `x` of `m × k` and `w` of `n × k` (row-major).
fn dense(par: &dyn Parallel, x: &[f32], m: usize, w: &[f32], n: usize, k: usize, out: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    let row_bytes = (k * 4).max(1);
    let min_rows = MIN_TASK_BYTES.div_ceil(row_bytes);
    let mut chunk = n.div_ceil(par.threads().max(1) * 4).max(min_rows);
    if m > TILE_X {
        chunk = chunk.min(MAX_TASK_BYTES.div_ceil(row_bytes));
    }
    let chunk = chunk.div_ceil(TILE_W) * TILE_W;
    let dst = SendPtr(out.as_mut_ptr());
    par.run(n.div_ceil(chunk), &|c| {
        let outs = c * chunk..((c + 1) * chunk).min(n);
        // SAFETY: task `c` writes only columns `outs` of `out` (m × n), which it alone owns.
        unsafe { dense_task(x, m, w, n, k, outs, dst) }
    });
}

/// # Safety
/// `dst` points to `m × n` writable floats; no other thread writes columns `outs`.
unsafe fn dense_task(
    x: &[f32],
    m: usize,
    w: &[f32],
    n: usize,
    k: usize,
    outs: std::ops::Range<usize>,
    dst: SendPtr<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        return dense_task_avx2(x, m, w, n, k, outs, dst);
    }
    dense_task_generic(x, m, w, n, k, outs, dst)
}

/// The same code with 256-bit vectors (lane for lane the same arithmetic).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dense_task_avx2(
    x: &[f32],
    m: usize,
    w: &[f32],
    n: usize,
    k: usize,
    outs: std::ops::Range<usize>,
    dst: SendPtr<f32>,
) {
    dense_task_generic(x, m, w, n, k, outs, dst)
}

#[inline(always)]
unsafe fn dense_task_generic(
    x: &[f32],
    m: usize,
    w: &[f32],
    n: usize,
    k: usize,
    outs: std::ops::Range<usize>,
    dst: SendPtr<f32>,
) {
    let mut o = outs.start;
    while o < outs.end {
        let nw = TILE_W.min(outs.end - o);
        let mut r = 0;
        while r < m {
            let nx = TILE_X.min(m - r);
            let mut res = [[0.0f32; TILE_W]; TILE_X];
            match (nx, nw) {
                (4, 2) => tile::<4, 2>(x, w, k, r, o, &mut res),
                (4, _) => tile::<4, 1>(x, w, k, r, o, &mut res),
                (3, 2) => tile::<3, 2>(x, w, k, r, o, &mut res),
                (3, _) => tile::<3, 1>(x, w, k, r, o, &mut res),
                (2, 2) => tile::<2, 2>(x, w, k, r, o, &mut res),
                (2, _) => tile::<2, 1>(x, w, k, r, o, &mut res),
                (_, 2) => tile::<1, 2>(x, w, k, r, o, &mut res),
                _ => tile::<1, 1>(x, w, k, r, o, &mut res),
            }
            for (i, row) in res.iter().enumerate().take(nx) {
                for (j, &v) in row.iter().enumerate().take(nw) {
                    // SAFETY: r + i < m and o + j < outs.end ≤ n; see `dense_task`.
                    *dst.get().add((r + i) * n + o + j) = v;
                }
            }
            r += nx;
        }
        o += nw;
    }
}

/// `res[i][j] = x_{r+i} · w_{o+j}` for `i < X`, `j < W`, each as [`dot`] computes it.
#[inline(always)]
fn tile<const X: usize, const W: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    r: usize,
    o: usize,
    res: &mut [[f32; TILE_W]; TILE_X],
) {
    let xs: [&[f32]; X] = std::array::from_fn(|i| &x[(r + i) * k..(r + i + 1) * k]);
    let ws: [&[f32]; W] = std::array::from_fn(|j| &w[(o + j) * k..(o + j + 1) * k]);
    let mut acc = [[[0.0f32; LANES]; W]; X];
    let full = k / LANES * LANES;
    for c in (0..full).step_by(LANES) {
        let wv: [&[f32]; W] = std::array::from_fn(|j| &ws[j][c..c + LANES]);
        for i in 0..X {
            let xv = &xs[i][c..c + LANES];
            for j in 0..W {
                for l in 0..LANES {
                    acc[i][j][l] += xv[l] * wv[j][l];
                }
            }
        }
    }
    for i in 0..X {
        for j in 0..W {
            res[i][j] = finish(&acc[i][j], &xs[i][full..], &ws[j][full..]);
        }
    }
}

/// The lanes summed in order, then the tail.
#[inline(always)]
fn finish(acc: &[f32; LANES], xt: &[f32], wt: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &a in acc {
        s += a;
    }
    for (a, b) in xt.iter().zip(wt) {
        s += a * b;
    }
    s
}

/// One dot product, the reference for [`tile`].
#[cfg(test)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let full = a.len() / LANES * LANES;
    for c in (0..full).step_by(LANES) {
        for l in 0..LANES {
            acc[l] += a[c + l] * b[c + l];
        }
    }
    finish(&acc, &a[full..], &b[full..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::pool::{Serial, SpinPool};

    fn naive(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut o = vec![0.0; m * n];
        for r in 0..m {
            for c in 0..n {
                o[r * n + c] = (0..k).map(|i| x[r * k + i] * w[c * k + i]).sum();
            }
        }
        o
    }

    #[test]
    fn dense_agrees_with_naive() {
        let (n, k) = (70, 45);
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 13) as f32 * 0.1 - 0.6)
            .collect();
        let wt = CpuWeight::Dense {
            data: w.clone(),
            rows: n,
            cols: k,
        };
        for m in [1, 3, 9] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 31) % 11) as f32 * 0.2 - 1.0)
                .collect();
            let mut out = vec![0.0; m * n];
            linear(&Serial, &x, None, m, &wt, None, &mut out).unwrap();
            let e = naive(&x, m, &w, n, k);
            for (a, b) in out.iter().zip(&e) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b} (m={m})");
            }
        }
    }

    /// Each row of a batch equals the row alone and the reference dot product, bit for bit,
    /// for every batch size and thread count.
    #[test]
    fn dense_is_batch_invariant() {
        let (n, k) = (37, 100);
        let w: Vec<f32> = (0..n * k)
            .map(|i| (((i * 7919) % 1013) as f32 - 500.0) * 1e-3)
            .collect();
        let x: Vec<f32> = (0..11 * k)
            .map(|i| (((i * 104729) % 997) as f32 - 498.0) * 3e-3)
            .collect();
        let pool = SpinPool::new(3).unwrap();
        let want: Vec<u32> = (0..11)
            .flat_map(|r| (0..n).map(move |o| (r, o)))
            .map(|(r, o)| dot(&x[r * k..(r + 1) * k], &w[o * k..(o + 1) * k]).to_bits())
            .collect();
        for m in 1..=11 {
            for par in [&Serial as &dyn Parallel, &pool] {
                let mut out = vec![0.0; m * n];
                dense(par, &x[..m * k], m, &w, n, k, &mut out);
                let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want[..m * n], "m={m}");
            }
        }
    }
}
