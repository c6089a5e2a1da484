//! `y = x · Wᵀ + b` for dense (f32) and block-quantized weights.
//!
//! Small row counts (decode) take a row-parallel dot-product path that streams each weight row
//! once; larger ones go to the `gemm` crate's blocked kernels.

use rayon::prelude::*;

use super::{quant, CpuWeight};
use crate::{BackendError, Result};

/// Below this many activation rows a matrix-vector loop beats a blocked GEMM.
const GEMV_MAX_ROWS: usize = 4;

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

fn dense_gemv(x: &[f32], rows: usize, w: &[f32], n: usize, k: usize, out: &mut [f32]) {
    for r in 0..rows {
        let xr = &x[r * k..(r + 1) * k];
        out[r * n..(r + 1) * n]
            .par_chunks_mut(64)
            .enumerate()
            .for_each(|(c, o)| {
                for (i, y) in o.iter_mut().enumerate() {
                    let row = c * 64 + i;
                    *y = dot(xr, &w[row * k..(row + 1) * k]);
                }
            });
    }
}

fn dense_gemm(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, out: &mut [f32], threads: usize) {
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the pointers and strides describe `x` as m×k (row-major), `w` read as k×n via its
    // transpose (element (i, o) at w[o*k + i]) and `out` as m×n; the caller checked the lengths.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

pub fn linear(
    x: &[f32],
    rows: usize,
    w: &CpuWeight,
    bias: Option<&[f32]>,
    out: &mut [f32],
    threads: usize,
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
        CpuWeight::Dense { data, .. } => {
            if rows <= GEMV_MAX_ROWS {
                dense_gemv(x, rows, data, n, k, out);
            } else {
                dense_gemm(x, rows, data, n, k, out, threads);
            }
        }
        CpuWeight::Quantized(m) => quant::quant_matmul_prepared(x, rows, m, out)?,
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn gemv_and_gemm_agree_with_naive() {
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
            linear(&x, m, &wt, None, &mut out, 2).unwrap();
            let e = naive(&x, m, &w, n, k);
            for (a, b) in out.iter().zip(&e) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b} (m={m})");
            }
        }
    }
}
