//! RMSNorm variants. Sums of squares accumulate in f64 so long rows lose nothing to rounding.

use rayon::prelude::*;

use crate::{BackendError, Result};

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

pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    let cols = w.len();
    check(w, cols)?;
    out.par_chunks_mut(cols)
        .zip(x.par_chunks(cols))
        .for_each(|(o, r)| normalize_into(r, w, eps, o));
    Ok(())
}

pub fn add_rms_norm(
    residual: &mut [f32],
    x: &[f32],
    w: &[f32],
    eps: f32,
    out: &mut [f32],
) -> Result<()> {
    let cols = w.len();
    check(w, cols)?;
    out.par_chunks_mut(cols)
        .zip(residual.par_chunks_mut(cols))
        .zip(x.par_chunks(cols))
        .for_each(|((o, res), r)| {
            for (a, &b) in res.iter_mut().zip(r) {
                *a += b;
            }
            normalize_into(res, w, eps, o);
        });
    Ok(())
}

pub fn head_rms_norm(x: &mut [f32], w: &[f32], eps: f32, head_dim: usize) -> Result<()> {
    check(w, head_dim)?;
    x.par_chunks_mut(head_dim).for_each(|h| {
        let s = inv_rms(h, eps);
        for (v, &g) in h.iter_mut().zip(w) {
            *v = *v * s * g;
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
        rms_norm(&x, &w, 1e-6, &mut out).unwrap();
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
        add_rms_norm(&mut res, &x, &w, 0.0, &mut out).unwrap();
        assert_eq!(res, [2.0, -2.0]);
        assert!((out[0] - 1.0).abs() < 1e-6 && (out[1] + 1.0).abs() < 1e-6);
    }
}
