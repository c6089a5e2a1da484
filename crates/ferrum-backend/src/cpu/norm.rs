//! RMSNorm variants. Sums of squares accumulate in f64 so long rows lose nothing to rounding.
//! Rows are independent; a task takes enough rows to be worth a thread.

use super::pool::{par_chunks_mut, Parallel, SendPtr};
use crate::{BackendError, Result};

/// Elements per task (smaller inputs run on the calling thread alone).
const TASK_ELEMS: usize = 16 * 1024;

/// Rows per task for rows of `cols`.
fn rows_per_task(cols: usize) -> usize {
    TASK_ELEMS.div_ceil(cols.max(1))
}

fn check(w: &[f32], cols: usize) -> Result<()> {
    if cols == 0 || w.len() != cols {
        return Err(BackendError::Shape {
            what: "norm weight".into(),
            expected: format!("{cols} elements"),
            got: format!("{}", w.len()),
        });
    }
    Ok(())
}

#[inline]
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

#[inline]
fn normalize_into(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let s = inv_rms(x, eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * s * g;
    }
}

pub fn rms_norm(par: &dyn Parallel, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    let cols = w.len();
    check(w, cols)?;
    let per = rows_per_task(cols) * cols;
    par_chunks_mut(par, out, per, |i, o| {
        let xs = &x[i * per..i * per + o.len()];
        for (o, r) in o.chunks_mut(cols).zip(xs.chunks(cols)) {
            normalize_into(r, w, eps, o);
        }
    });
    Ok(())
}

pub fn add_rms_norm(
    par: &dyn Parallel,
    residual: &mut [f32],
    x: &[f32],
    w: &[f32],
    eps: f32,
    out: &mut [f32],
) -> Result<()> {
    let cols = w.len();
    check(w, cols)?;
    if residual.len() != out.len() || x.len() != out.len() {
        return Err(BackendError::Shape {
            what: "add_rms_norm operands".into(),
            expected: format!("{} values each", out.len()),
            got: format!("residual {}, x {}", residual.len(), x.len()),
        });
    }
    let per = rows_per_task(cols) * cols;
    let res = SendPtr(residual.as_mut_ptr());
    par_chunks_mut(par, out, per, |i, o| {
        // SAFETY: task `i` owns rows `i·per .. i·per + o.len()` of `residual` (same length as
        // `out`, checked above) as it owns them of `out`.
        let res = unsafe { std::slice::from_raw_parts_mut(res.get().add(i * per), o.len()) };
        let xs = &x[i * per..i * per + o.len()];
        for ((o, res), r) in o
            .chunks_mut(cols)
            .zip(res.chunks_mut(cols))
            .zip(xs.chunks(cols))
        {
            for (a, &b) in res.iter_mut().zip(r) {
                *a += b;
            }
            normalize_into(res, w, eps, o);
        }
    });
    Ok(())
}

pub fn head_rms_norm(
    par: &dyn Parallel,
    x: &mut [f32],
    w: &[f32],
    eps: f32,
    head_dim: usize,
) -> Result<()> {
    check(w, head_dim)?;
    par_chunks_mut(par, x, rows_per_task(head_dim) * head_dim, |_, x| {
        for h in x.chunks_mut(head_dim) {
            let s = inv_rms(h, eps);
            for (v, &g) in h.iter_mut().zip(w) {
                *v = *v * s * g;
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_definition() {
        let x = [1.0f32, -2.0, 3.0, 0.5];
        let w = [1.0f32, 0.5, 2.0, 1.0];
        let mut out = [0.0f32; 4];
        rms_norm(&super::super::pool::Serial, &x, &w, 1e-6, &mut out).unwrap();
        let ms = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
        for i in 0..4 {
            let e = x[i] / (ms + 1e-6).sqrt() * w[i];
            assert!((out[i] - e).abs() < 1e-6);
        }
    }

    #[test]
    fn add_rms_norm_updates_residual() {
        let mut res = [1.0f32, 1.0];
        let x = [1.0f32, -3.0];
        let w = [1.0f32, 1.0];
        let mut out = [0.0f32; 2];
        add_rms_norm(&super::super::pool::Serial, &mut res, &x, &w, 0.0, &mut out).unwrap();
        assert_eq!(res, [2.0, -2.0]);
        assert!((out[0] - 1.0).abs() < 1e-6 && (out[1] + 1.0).abs() < 1e-6);
    }
}
